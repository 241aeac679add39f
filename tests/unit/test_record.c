/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Unit tests of the record encoding (src/core/record.c): the exact bytes of the
 * documented format, round trips of strings, binary values with NULs, integers
 * and repeated keys, the length encoding at its byte boundaries, and the reader
 * refusing every strict prefix of a record, bytes after its end, each kind of
 * garbled length or key, and random bytes without reading outside the buffer
 * (every input sits in a heap block of exactly its size, so ASan sees an overrun).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/error.h"
#include "core/record.h"

/* Run the reader over a heap copy of exactly len bytes. */
static int check_bytes(const void *data, size_t len)
{
    unsigned char *copy = malloc(len ? len : 1);
    if (len)
        memcpy(copy, data, len);
    kr_record_reader r;
    int rc = kr_record_reader_init(&r, copy, len);
    kr_record_field f;
    size_t fields = 0;
    while (kr_record_next(&r, &f)) {
        assert_true((const unsigned char *)f.key > copy);
        assert_true((const unsigned char *)f.value + f.len <= copy + len);
        fields++;
    }
    if (rc < 0)
        assert_int_equal(fields, 0);
    free(copy);
    return rc;
}

static void test_encoding_has_the_documented_bytes(void **state)
{
    kr_buf b = KR_BUF_INIT;
    kr_record_begin(&b);
    kr_record_add_str(&b, "a", "xy");
    kr_record_add_int(&b, "n_1", -12);
    kr_record_add(&b, "E", NULL, 0);
    kr_record_end(&b);
    const unsigned char want[] = {0x01, 1, 'a', 2,   'x', 'y', 3,   'n', '_',
                                  '1',  3, '-', '1', '2', 1,   'E', 0,   0x00};
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    kr_buf_clear(&b);

    /* The empty record. */
    kr_record_begin(&b);
    kr_record_end(&b);
    assert_int_equal(b.len, 2);
    assert_memory_equal(b.data, "\x01\x00", 2);
    kr_record_reader r;
    kr_record_field f;
    assert_int_equal(kr_record_reader_init(&r, b.data, b.len), 0);
    assert_false(kr_record_next(&r, &f));
    kr_buf_clear(&b);
}

static void test_fields_round_trip_in_order_with_repeated_keys(void **state)
{
    const char bin[] = {'<', '\0', '\xff', '\0', '>'};
    kr_buf b = KR_BUF_INIT;
    kr_record_begin(&b);
    kr_record_add_str(&b, "name", "");
    kr_record_add_int(&b, "sub", 3);
    kr_record_add(&b, "xml", bin, sizeof bin);
    kr_record_add_str(&b, "group", "Friends");
    kr_record_add_str(&b, "group", "\xc3\xa9t\xc3\xa9");
    kr_record_add_int(&b, "big", INT64_MIN);
    kr_record_end(&b);

    kr_record_reader r;
    kr_record_field f;
    int64_t v = 0;
    char *s = NULL;
    assert_int_equal(kr_record_reader_init(&r, b.data, b.len), 0);
    assert_true(kr_record_next(&r, &f));
    assert_true(kr_record_field_is(&f, "name"));
    assert_false(kr_record_field_is(&f, "nam"));
    assert_false(kr_record_field_is(&f, "names"));
    assert_int_equal(f.len, 0);
    assert_int_equal(kr_record_field_strdup(&f, &s), 0);
    assert_string_equal(s, "");
    free(s);
    assert_true(kr_record_next(&r, &f));
    assert_true(kr_record_field_is(&f, "sub"));
    assert_int_equal(kr_record_field_int(&f, &v), 0);
    assert_int_equal(v, 3);
    assert_true(kr_record_next(&r, &f));
    assert_true(kr_record_field_is(&f, "xml"));
    assert_int_equal(f.len, sizeof bin);
    assert_memory_equal(f.value, bin, sizeof bin);
    /* A value with a NUL is not one C string. */
    s = (char *)1;
    assert_int_equal(kr_record_field_strdup(&f, &s), KR_EPARSE);
    assert_null(s);
    assert_true(kr_record_next(&r, &f));
    assert_true(kr_record_field_is(&f, "group"));
    assert_int_equal(kr_record_field_strdup(&f, &s), 0);
    assert_string_equal(s, "Friends");
    free(s);
    assert_true(kr_record_next(&r, &f));
    assert_true(kr_record_field_is(&f, "group"));
    assert_int_equal(kr_record_field_strdup(&f, &s), 0);
    assert_string_equal(s, "\xc3\xa9t\xc3\xa9");
    free(s);
    assert_true(kr_record_next(&r, &f));
    assert_int_equal(kr_record_field_int(&f, &v), 0);
    assert_true(v == INT64_MIN);
    assert_false(kr_record_next(&r, &f));
    assert_false(kr_record_next(&r, &f));
    kr_buf_clear(&b);
}

/* A record with one field "v" of len bytes; the length's encoding starts at index 3. */
static void one_field(kr_buf *b, size_t len)
{
    char *value = malloc(len ? len : 1);
    memset(value, 'v', len);
    kr_record_begin(b);
    kr_record_add(b, "v", value, len);
    kr_record_end(b);
    free(value);
}

static void test_lengths_use_minimal_leb128_at_each_boundary(void **state)
{
    struct {
        size_t len;
        unsigned char enc[3];
        size_t enc_len;
    } cases[] = {
        {0, {0x00}, 1},
        {1, {0x01}, 1},
        {127, {0x7f}, 1},
        {128, {0x80, 0x01}, 2},
        {300, {0xac, 0x02}, 2},
        {16383, {0xff, 0x7f}, 2},
        {16384, {0x80, 0x80, 0x01}, 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kr_buf b = KR_BUF_INIT;
        one_field(&b, cases[i].len);
        assert_int_equal(b.len, 3 + cases[i].enc_len + cases[i].len + 1);
        assert_memory_equal(b.data + 3, cases[i].enc, cases[i].enc_len);
        kr_record_reader r;
        kr_record_field f;
        assert_int_equal(kr_record_reader_init(&r, b.data, b.len), 0);
        assert_true(kr_record_next(&r, &f));
        assert_int_equal(f.len, cases[i].len);
        assert_false(kr_record_next(&r, &f));
        kr_buf_clear(&b);
    }
}

static void test_every_strict_prefix_and_any_trailing_byte_is_refused(void **state)
{
    kr_buf b = KR_BUF_INIT;
    kr_record_begin(&b);
    kr_record_add_str(&b, "name", "Carol");
    kr_record_add_int(&b, "sub", 2);
    kr_record_add(&b, "empty", "", 0);
    kr_record_add_str(&b, "group", "G");
    kr_record_end(&b);
    assert_int_equal(check_bytes(b.data, b.len), 0);
    for (size_t cut = 0; cut < b.len; cut++)
        assert_int_equal(check_bytes(b.data, cut), KR_EPARSE);
    for (unsigned extra = 0; extra < 256; extra++) {
        kr_buf_append(&b, &(unsigned char){(unsigned char)extra}, 1);
        assert_int_equal(check_bytes(b.data, b.len), KR_EPARSE);
        b.len--;
    }
    kr_buf_clear(&b);
}

static void test_garbled_headers_keys_and_lengths_are_refused(void **state)
{
    static const struct {
        const char *what;
        unsigned char bytes[24];
        size_t len;
    } bad[] = {
        {"nothing", {0}, 0},
        {"version only", {0x01}, 1},
        {"unknown version", {0x02, 0x00}, 2},
        {"version 0", {0x00, 0x00}, 2},
        {"no end byte", {0x01, 1, 'a', 0}, 4},
        {"key longer than 32", {0x01, 33, 'a', 'a'}, 4},
        {"key of 255", {0x01, 255, 'a', 0}, 4},
        {"key with a space", {0x01, 2, 'a', ' ', 0, 0x00}, 6},
        {"key with a NUL", {0x01, 2, 'a', 0, 0, 0x00}, 6},
        {"key with a high byte", {0x01, 1, 0xc3, 0, 0x00}, 5},
        {"key cut", {0x01, 5, 'a', 'b', 0x00}, 5},
        {"length missing", {0x01, 1, 'a', 0x00}, 4},
        {"value longer than the rest", {0x01, 1, 'a', 3, 'x', 'y', 0x00}, 7},
        {"value swallows the end byte", {0x01, 1, 'a', 2, 'x', 0x00}, 6},
        {"length not minimal", {0x01, 1, 'a', 0x81, 0x00, 'x', 0x00}, 7},
        {"length cut in its continuation", {0x01, 1, 'a', 0x80}, 4},
        {"length of 11 bytes",
         {0x01, 1, 'a', 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00},
         15},
        {"length beyond 2^64",
         {0x01, 1, 'a', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00},
         14},
        {"length 2^64 - 1",
         {0x01, 1, 'a', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00},
         14},
        {"length 2^63",
         {0x01, 1, 'a', 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x00},
         14},
        {"end byte in the middle", {0x01, 0x00, 1, 'a', 0, 0x00}, 6},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (check_bytes(bad[i].bytes, bad[i].len) != KR_EPARSE)
            fail_msg("accepted: %s", bad[i].what);
    }
    kr_record_reader r;
    kr_record_field f;
    assert_int_equal(kr_record_reader_init(&r, NULL, 5), KR_EPARSE);
    assert_false(kr_record_next(&r, &f));
}

static void test_integers_parse_strictly(void **state)
{
    static const struct {
        const char *text;
        int64_t v;
    } good[] = {
        {"0", 0},
        {"7", 7},
        {"-1", -1},
        {"1000", 1000},
        {"9223372036854775807", INT64_MAX},
        {"-9223372036854775808", INT64_MIN},
    };
    static const char *const bad[] = {"",
                                      "-",
                                      "01",
                                      "-0",
                                      "+1",
                                      " 1",
                                      "1 ",
                                      "1a",
                                      "0x10",
                                      "--1",
                                      "1-",
                                      "9223372036854775808",
                                      "-9223372036854775809",
                                      "99999999999999999999"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        kr_record_field f = {"n", 1, good[i].text, strlen(good[i].text)};
        int64_t v = 42;
        assert_int_equal(kr_record_field_int(&f, &v), 0);
        assert_true(v == good[i].v);
        /* And what kr_record_add_int writes reads back. */
        kr_buf b = KR_BUF_INIT;
        kr_record_begin(&b);
        kr_record_add_int(&b, "n", good[i].v);
        kr_record_end(&b);
        kr_record_reader r;
        assert_int_equal(kr_record_reader_init(&r, b.data, b.len), 0);
        assert_true(kr_record_next(&r, &f));
        assert_int_equal(f.len, strlen(good[i].text));
        assert_memory_equal(f.value, good[i].text, f.len);
        kr_buf_clear(&b);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kr_record_field f = {"n", 1, bad[i], strlen(bad[i])};
        int64_t v = 42;
        if (kr_record_field_int(&f, &v) != KR_EPARSE)
            fail_msg("accepted integer \"%s\"", bad[i]);
        assert_int_equal(v, 42);
    }
    /* A NUL inside the digits. */
    kr_record_field f = {"n", 1, "1\0002", 3};
    int64_t v;
    assert_int_equal(kr_record_field_int(&f, &v), KR_EPARSE);
}

static void test_bad_key_from_a_writer_aborts(void **state)
{
    static const char *const keys[] = {"", "has space", "x\xc3\xa9",
                                       "a23456789012345678901234567890123"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(2); /* the abort message is expected */
            kr_buf b = KR_BUF_INIT;
            kr_record_begin(&b);
            kr_record_add_str(&b, keys[i], "v");
            _exit(0);
        }
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGABRT);
    }
    /* 32 characters of every allowed kind are fine. */
    kr_buf b = KR_BUF_INIT;
    kr_record_begin(&b);
    kr_record_add_str(&b, "aZ09_-.bxxxxxxxxxxxxxxxxxxxxxxxx", "v");
    kr_record_end(&b);
    kr_record_reader r;
    assert_int_equal(kr_record_reader_init(&r, b.data, b.len), 0);
    kr_buf_clear(&b);
}

/* xorshift64: the same bytes on every run. */
static uint64_t next_random(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void test_random_and_mutated_bytes_stay_in_bounds(void **state)
{
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    unsigned char buf[64];
    size_t accepted = 0;
    for (int i = 0; i < 200000; i++) {
        size_t len = next_random(&x) % sizeof buf;
        for (size_t j = 0; j < len; j++)
            buf[j] = (unsigned char)next_random(&x);
        if (len > 0 && i % 2 == 0) /* often look like a record, to get past the first checks */
            buf[0] = KR_RECORD_VERSION;
        if (len > 1 && i % 4 == 0)
            buf[len - 1] = 0;
        if (check_bytes(buf, len) == 0)
            accepted++;
    }
    /* Mutations of a valid record: one byte changed at every position, every value. */
    kr_buf b = KR_BUF_INIT;
    kr_record_begin(&b);
    kr_record_add_str(&b, "k", "abc");
    kr_record_add_int(&b, "n", 300);
    kr_record_end(&b);
    for (size_t pos = 0; pos < b.len; pos++) {
        unsigned char saved = (unsigned char)b.data[pos];
        for (unsigned v = 0; v < 256; v++) {
            b.data[pos] = (char)v;
            if (check_bytes(b.data, b.len) == 0)
                accepted++;
        }
        b.data[pos] = (char)saved;
    }
    kr_buf_clear(&b);
    assert_true(accepted > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encoding_has_the_documented_bytes),
        cmocka_unit_test(test_fields_round_trip_in_order_with_repeated_keys),
        cmocka_unit_test(test_lengths_use_minimal_leb128_at_each_boundary),
        cmocka_unit_test(test_every_strict_prefix_and_any_trailing_byte_is_refused),
        cmocka_unit_test(test_garbled_headers_keys_and_lengths_are_refused),
        cmocka_unit_test(test_integers_parse_strictly),
        cmocka_unit_test(test_bad_key_from_a_writer_aborts),
        cmocka_unit_test(test_random_and_mutated_bytes_stay_in_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
