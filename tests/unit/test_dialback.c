/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Unit tests of the dialback keys (src/server/dialback.c) against XEP-0185's
 * recipe, with values computed independently (Python's hashlib/hmac): the
 * prepared secret of XEP-0185's example secret, a key for a known stream,
 * and that any change of input or key is refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "server/dialback.h"

#define SECRET "s3cr3tf0rd14lb4ck"
#define PREPARED "a7136eb1f46c9ef18c5e78c36ca257067c69b3d518285f0b18a96c33beae9acc"
#define KEY "787d747fddd82406a36c193fd1437027b163c5f9f787a2b77c30d15409c34aa3"

static void secret_is_prepared_as_hex_sha256(void **state)
{
    char out[KR_DIALBACK_HEX];
    kr_dialback_secret_prepare(SECRET, strlen(SECRET), out);
    assert_string_equal(out, PREPARED);
}

static void key_is_hmac_of_receiving_originating_and_stream_id(void **state)
{
    char out[KR_DIALBACK_HEX];
    kr_dialback_key(PREPARED, "example.net", "example.org", "D60000229F", out);
    assert_string_equal(out, KEY);
    assert_true(kr_dialback_key_check(PREPARED, "example.net", "example.org", "D60000229F", KEY));
}

static void any_other_input_is_refused(void **state)
{
    assert_false(kr_dialback_key_check(PREPARED, "example.org", "example.net", "D60000229F", KEY));
    assert_false(kr_dialback_key_check(PREPARED, "example.net", "example.org", "D60000229E", KEY));
    assert_false(kr_dialback_key_check(PREPARED, "example.net", "example.org", "D60000229F",
                                       "787d747f"));
    assert_false(kr_dialback_key_check(PREPARED, "example.net", "example.org", "D60000229F", NULL));
    char other[KR_DIALBACK_HEX];
    kr_dialback_secret_prepare("another secret", 14, other);
    assert_false(kr_dialback_key_check(other, "example.net", "example.org", "D60000229F", KEY));
    char bad[] = KEY;
    bad[63] = bad[63] == '0' ? '1' : '0';
    assert_false(kr_dialback_key_check(PREPARED, "example.net", "example.org", "D60000229F", bad));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(secret_is_prepared_as_hex_sha256),
        cmocka_unit_test(key_is_hmac_of_receiving_originating_and_stream_id),
        cmocka_unit_test(any_other_input_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
