/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * libFuzzer harness of the record reader (src/core/record.c): the whole input
 * is one stored value handed to kr_record_reader_init(). Besides not reading
 * outside the input, it checks what the stores' users rely on:
 *  - a refused input yields no field;
 *  - an accepted input is canonical: writing its fields again with
 *    kr_record_begin/add/end gives back exactly the input bytes (one encoding
 *    per record, so no two byte strings decode to the same fields);
 *  - every field lies inside the input, keys are 1..KR_RECORD_KEY_MAX bytes;
 *  - kr_record_field_int accepts exactly what kr_record_add_int writes for the
 *    value it returns.
 * A violated property aborts with a message on stderr.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/error.h"
#include "core/record.h"

static void fuzz_fail(const char *what)
{
    fprintf(stderr, "fuzz_record: %s\n", what);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kr_record_reader r;
    int rc = kr_record_reader_init(&r, data, size);
    if (rc != 0 && rc != KR_EPARSE)
        fuzz_fail("unexpected error code");
    kr_buf again = KR_BUF_INIT;
    kr_record_begin(&again);
    kr_record_field f;
    size_t fields = 0;
    while (kr_record_next(&r, &f)) {
        fields++;
        if (f.key < (const char *)data || f.value < (const char *)data ||
            f.value + f.len > (const char *)data + size)
            fuzz_fail("field outside the input");
        if (f.key_len == 0 || f.key_len > KR_RECORD_KEY_MAX)
            fuzz_fail("key length out of range");
        char key[KR_RECORD_KEY_MAX + 1];
        memcpy(key, f.key, f.key_len);
        key[f.key_len] = '\0';
        kr_record_add(&again, key, f.value, f.len);
        int64_t v;
        if (kr_record_field_int(&f, &v) == 0) {
            char text[24];
            int n = snprintf(text, sizeof text, "%" PRId64, v);
            if ((size_t)n != f.len || memcmp(text, f.value, f.len) != 0)
                fuzz_fail("integer accepted in a form kr_record_add_int does not write");
        }
    }
    kr_record_end(&again);
    if (rc != 0 && fields)
        fuzz_fail("a refused record yielded fields");
    if (rc == 0 && (again.len != size || memcmp(again.data, data, size) != 0))
        fuzz_fail("an accepted record is not the one encoding of its fields");
    kr_buf_clear(&again);
    return 0;
}
