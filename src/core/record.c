/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Record encoding and its checking reader (see record.h for the format). The
 * reader walks a record twice: once in kr_record_reader_init() to refuse bad
 * input as a whole, then field by field with the same bounded decoder, so a
 * caller never acts on the first half of a garbled record.
 */
#include "core/record.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"

#define KR_RECORD_VARINT_MAX 10

static bool kr_record_key_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

static bool kr_record_key_valid(const unsigned char *key, size_t len)
{
    if (len == 0 || len > KR_RECORD_KEY_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!kr_record_key_char(key[i]))
            return false;
    return true;
}

void kr_record_begin(kr_buf *b)
{
    unsigned char v = KR_RECORD_VERSION;
    kr_buf_append(b, &v, 1);
}

void kr_record_add(kr_buf *b, const char *key, const void *value, size_t len)
{
    size_t klen = strlen(key);
    if (!kr_record_key_valid((const unsigned char *)key, klen)) {
        fprintf(stderr, "kurier: invalid record key \"%s\"\n", key);
        abort();
    }
    unsigned char head[1 + KR_RECORD_VARINT_MAX];
    size_t n = 0;
    head[n++] = (unsigned char)klen;
    kr_buf_reserve(b, sizeof head + klen + len);
    kr_buf_append(b, head, n);
    kr_buf_append(b, key, klen);
    n = 0;
    uint64_t v = len;
    do {
        unsigned char byte = v & 0x7f;
        v >>= 7;
        head[n++] = v ? (unsigned char)(byte | 0x80) : byte;
    } while (v);
    kr_buf_append(b, head, n);
    kr_buf_append(b, value, len);
}

void kr_record_end(kr_buf *b)
{
    unsigned char end = 0;
    kr_buf_append(b, &end, 1);
}

void kr_record_add_str(kr_buf *b, const char *key, const char *value)
{
    kr_record_add(b, key, value, strlen(value));
}

void kr_record_add_int(kr_buf *b, const char *key, int64_t v)
{
    char text[24];
    int n = snprintf(text, sizeof text, "%" PRId64, v);
    kr_record_add(b, key, text, (size_t)n);
}

/* Decode one minimal LEB128 length from [*pos, end); false if it is truncated,
 * longer than 10 bytes, not minimal or larger than 2^64 - 1. */
static bool kr_record_varint(const unsigned char **pos, const unsigned char *end, uint64_t *out)
{
    const unsigned char *p = *pos;
    uint64_t v = 0;
    for (unsigned i = 0; i < KR_RECORD_VARINT_MAX; i++) {
        if (p == end)
            return false;
        unsigned char byte = *p++;
        if (i == KR_RECORD_VARINT_MAX - 1 && byte > 1)
            return false; /* bits beyond the 64th */
        v |= (uint64_t)(byte & 0x7f) << (7 * i);
        if (!(byte & 0x80)) {
            if (byte == 0 && i > 0)
                return false; /* a trailing zero group: not the one encoding */
            *pos = p;
            *out = v;
            return true;
        }
    }
    return false;
}

/* Decode the field at r->pos; false (r unchanged) if it does not fit the rest. */
static bool kr_record_decode(kr_record_reader *r, kr_record_field *f)
{
    const unsigned char *p = r->pos;
    if (p == r->end)
        return false;
    size_t klen = *p++;
    if ((size_t)(r->end - p) < klen || !kr_record_key_valid(p, klen))
        return false;
    const unsigned char *key = p;
    p += klen;
    uint64_t vlen;
    if (!kr_record_varint(&p, r->end, &vlen) || vlen > (uint64_t)(r->end - p))
        return false;
    f->key = (const char *)key;
    f->key_len = klen;
    f->value = (const char *)p;
    f->len = (size_t)vlen;
    r->pos = p + vlen;
    return true;
}

int kr_record_reader_init(kr_record_reader *r, const void *data, size_t len)
{
    const unsigned char *p = data;
    r->pos = r->end = p;
    if (!p || len < 2 || p[0] != KR_RECORD_VERSION || p[len - 1] != 0)
        return KR_EPARSE;
    /* Fields fill [p + 1, p + len - 1) exactly; the last byte is the end byte. */
    kr_record_reader check = {p + 1, p + len - 1};
    kr_record_field f;
    while (check.pos != check.end)
        if (!kr_record_decode(&check, &f))
            return KR_EPARSE;
    r->pos = p + 1;
    r->end = p + len - 1;
    return 0;
}

bool kr_record_next(kr_record_reader *r, kr_record_field *f)
{
    if (r->pos == r->end)
        return false;
    if (!kr_record_decode(r, f)) {
        r->pos = r->end; /* cannot happen after a successful init: stay closed anyway */
        return false;
    }
    return true;
}

bool kr_record_field_is(const kr_record_field *f, const char *key)
{
    size_t n = strlen(key);
    return n == f->key_len && memcmp(f->key, key, n) == 0;
}

int kr_record_field_int(const kr_record_field *f, int64_t *out)
{
    const char *p = f->value, *end = f->value + f->len;
    bool neg = p < end && *p == '-';
    if (neg)
        p++;
    if (p == end || (*p == '0' && (end - p > 1 || neg)))
        return KR_EPARSE; /* empty, leading zero, "-0" */
    /* Accumulate as a negative number: its range includes INT64_MIN. */
    int64_t v = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return KR_EPARSE;
        int d = *p - '0';
        if (v < (INT64_MIN + d) / 10)
            return KR_EPARSE;
        v = v * 10 - d;
    }
    if (!neg) {
        if (v == INT64_MIN)
            return KR_EPARSE;
        v = -v;
    }
    *out = v;
    return 0;
}

int kr_record_field_strdup(const kr_record_field *f, char **out)
{
    *out = NULL;
    if (f->len && memchr(f->value, '\0', f->len))
        return KR_EPARSE;
    *out = kr_xstrndup(f->value, f->len);
    return 0;
}
