/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Unit tests of src/core: arena, growable and refcounted buffers, strict
 * base64 (RFC 4648 test vectors), hex, the hash maps (including deletion that
 * must keep probe chains intact), error texts and log level names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/arena.h"
#include "core/base64.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/hmap.h"
#include "core/log.h"
#include "core/time.h"

static void arena_allocations_are_aligned_and_distinct(void **state)
{
    kr_arena *a = kr_arena_new(256);
    char *prev = NULL;
    for (int i = 0; i < 1000; i++) {
        char *p = kr_arena_alloc(a, (size_t)(i % 37) + 1);
        assert_int_equal((uintptr_t)p % 16, 0);
        assert_ptr_not_equal(p, prev);
        memset(p, 0xab, (size_t)(i % 37) + 1);
        prev = p;
    }
    char *big = kr_arena_alloc(a, 1 << 20); /* larger than any block so far */
    memset(big, 1, 1 << 20);
    assert_true(kr_arena_used(a) >= (1u << 20));
    kr_arena_free(a);
}

static void arena_reset_releases_everything_but_first_block(void **state)
{
    kr_arena *a = kr_arena_new(256);
    for (int i = 0; i < 100; i++)
        kr_arena_alloc(a, 1000);
    kr_arena_reset(a);
    assert_int_equal(kr_arena_used(a), 0);
    char *s = kr_arena_strdup(a, "still usable");
    assert_string_equal(s, "still usable");
    assert_string_equal(kr_arena_printf(a, "%d-%s", 42, "x"), "42-x");
    assert_string_equal(kr_arena_strndup(a, "abcdef", 3), "abc");
    kr_arena_free(a);
}

static void buf_appends_formats_and_consumes(void **state)
{
    kr_buf b = KR_BUF_INIT;
    kr_buf_puts(&b, "hello");
    kr_buf_printf(&b, " %s %d", "world", 7);
    assert_string_equal(b.data, "hello world 7");
    kr_buf_consume(&b, 6);
    assert_string_equal(b.data, "world 7");
    assert_int_equal(b.len, 7);
    kr_buf_consume(&b, 100);
    assert_int_equal(b.len, 0);
    for (int i = 0; i < 10000; i++)
        kr_buf_append(&b, "x", 1);
    assert_int_equal(b.len, 10000);
    size_t len;
    char *d = kr_buf_detach(&b, &len);
    assert_int_equal(len, 10000);
    assert_null(b.data);
    free(d);
}

static void rbuf_is_freed_with_last_reference(void **state)
{
    kr_buf b = KR_BUF_INIT;
    kr_buf_puts(&b, "<message/>");
    kr_rbuf *r = kr_rbuf_from_buf(&b);
    assert_null(b.data);
    assert_int_equal(r->len, 10);
    assert_memory_equal(r->data, "<message/>", 10);
    kr_rbuf_ref(r);
    kr_rbuf_unref(r);
    assert_int_equal(atomic_load(&r->refs), 1);
    kr_rbuf_unref(r); /* LeakSanitizer would report it if this did not free */
}

/* RFC 4648 §10 test vectors. */
static const char *const kr_b64_vectors[][2] = {
    {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},         {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};

static void base64_matches_rfc4648_vectors(void **state)
{
    for (size_t i = 0; i < sizeof(kr_b64_vectors) / sizeof(kr_b64_vectors[0]); i++) {
        kr_buf enc = KR_BUF_INIT, dec = KR_BUF_INIT;
        kr_base64_encode(&enc, kr_b64_vectors[i][0], strlen(kr_b64_vectors[i][0]));
        assert_string_equal(enc.data ? enc.data : "", kr_b64_vectors[i][1]);
        assert_int_equal(kr_base64_decode(&dec, kr_b64_vectors[i][1],
                                          strlen(kr_b64_vectors[i][1])), 0);
        assert_int_equal(dec.len, strlen(kr_b64_vectors[i][0]));
        if (dec.len)
            assert_memory_equal(dec.data, kr_b64_vectors[i][0], dec.len);
        kr_buf_clear(&enc);
        kr_buf_clear(&dec);
    }
}

static void hex_encodes_every_byte_value(void **state)
{
    (void)state;
    /* RFC 4648 §10 vector, then all 256 byte values against snprintf's %02x. */
    char out[2 * 256 + 1];
    kr_hex_encode(out, "foobar", 6);
    assert_string_equal(out, "666f6f626172");
    kr_hex_encode(out, "", 0);
    assert_string_equal(out, "");
    unsigned char all[256];
    char want[2 * 256 + 1];
    for (size_t i = 0; i < sizeof(all); i++) {
        all[i] = (unsigned char)i;
        snprintf(want + 2 * i, 3, "%02x", (unsigned)i);
    }
    memset(out, 'X', sizeof(out));
    kr_hex_encode(out, all, sizeof(all));
    assert_string_equal(out, want);
}

static void hex_decodes_what_it_encodes_and_rejects_the_rest(void **state)
{
    (void)state;
    unsigned char out[8];
    assert_int_equal(kr_hex_decode(out, sizeof(out), "666f6F626172", 12), 6);
    assert_memory_equal(out, "foobar", 6);
    assert_int_equal(kr_hex_decode(out, sizeof(out), "", 0), 0);
    assert_int_equal(kr_hex_decode(out, sizeof(out), "abc", 3), -1);         /* odd */
    assert_int_equal(kr_hex_decode(out, sizeof(out), "zz", 2), -1);          /* not hex */
    assert_int_equal(kr_hex_decode(out, sizeof(out), "0g", 2), -1);
    assert_int_equal(kr_hex_decode(out, 2, "000102", 6), -1);                /* too long */
    assert_int_equal(kr_hex_decode(out, 3, "000102", 6), 3);
}

static void base64_rejects_non_canonical_input(void **state)
{
    static const char *const bad[] = {"Zg",   "Zg=",  "Z===", "Zm9v\n", "Zm 9", "Zg==Zg==",
                                      "Zm=v", "====", "Zm9*", "Zg=a", "Zh==", "Zm9=" /* non-zero dropped bits */};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        kr_buf dec = KR_BUF_INIT;
        kr_buf_puts(&dec, "keep");
        assert_int_equal(kr_base64_decode(&dec, bad[i], strlen(bad[i])), KR_EINVAL);
        assert_string_equal(dec.data, "keep"); /* output unchanged on error */
        kr_buf_clear(&dec);
    }
}

static void u64map_survives_interleaved_deletes(void **state)
{
    kr_u64map m;
    kr_u64map_init(&m);
    for (uint64_t k = 1; k <= 5000; k++)
        kr_u64map_put(&m, k, (void *)(uintptr_t)(k * 3));
    for (uint64_t k = 1; k <= 5000; k += 2)
        assert_ptr_equal(kr_u64map_del(&m, k), (void *)(uintptr_t)(k * 3));
    assert_int_equal(m.count, 2500);
    for (uint64_t k = 1; k <= 5000; k++) {
        void *v = kr_u64map_get(&m, k);
        if (k % 2)
            assert_null(v);
        else
            assert_ptr_equal(v, (void *)(uintptr_t)(k * 3));
    }
    assert_null(kr_u64map_del(&m, 1));
    kr_u64map_put(&m, 2, (void *)7);
    assert_ptr_equal(kr_u64map_get(&m, 2), (void *)7);
    assert_int_equal(m.count, 2500);
    kr_u64map_clear(&m);
}

static void strmap_copies_keys_and_deletes(void **state)
{
    kr_strmap m;
    kr_strmap_init(&m);
    char key[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "user%d@example.org", i);
        kr_strmap_put(&m, key, (void *)(uintptr_t)(i + 1));
    }
    for (int i = 0; i < 3000; i += 3) {
        snprintf(key, sizeof(key), "user%d@example.org", i);
        assert_ptr_equal(kr_strmap_del(&m, key), (void *)(uintptr_t)(i + 1));
    }
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "user%d@example.org", i);
        void *v = kr_strmap_get(&m, key);
        if (i % 3 == 0)
            assert_null(v);
        else
            assert_ptr_equal(v, (void *)(uintptr_t)(i + 1));
    }
    assert_int_equal(m.count, 2000);
    kr_strmap_clear(&m);
}

static void errors_and_log_levels_have_names(void **state)
{
    assert_string_equal(kr_strerror(0), "success");
    assert_string_equal(kr_strerror(KR_ELOCKED), "store is locked by another process");
    assert_string_equal(kr_strerror(12345), "unknown error");
    kr_log_level l;
    assert_int_equal(kr_log_level_parse("debug", &l), 0);
    assert_int_equal(l, KR_LOG_DEBUG);
    assert_int_equal(kr_log_level_parse("verbose", &l), KR_EINVAL);
    char *s = kr_xasprintf("%s:%d", "f", 3);
    assert_string_equal(s, "f:3");
    free(s);
}

static void time_formats_xep0082_utc_with_milliseconds(void **state)
{
    struct timespec ts = {.tv_sec = 1031699305, .tv_nsec = 123456789}; /* XEP-0203 example stamp */
    char out[40];
    kr_time_format_utc(out, sizeof(out), &ts);
    assert_string_equal(out, "2002-09-10T23:08:25.123Z");
    struct timespec now;
    int64_t ms = kr_time_now_ms(&now);
    assert_int_equal(ms, (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
    assert_true(ms > 1577836800000LL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(arena_allocations_are_aligned_and_distinct),
        cmocka_unit_test(arena_reset_releases_everything_but_first_block),
        cmocka_unit_test(buf_appends_formats_and_consumes),
        cmocka_unit_test(rbuf_is_freed_with_last_reference),
        cmocka_unit_test(base64_matches_rfc4648_vectors),
        cmocka_unit_test(base64_rejects_non_canonical_input),
        cmocka_unit_test(hex_encodes_every_byte_value),
        cmocka_unit_test(hex_decodes_what_it_encodes_and_rejects_the_rest),
        cmocka_unit_test(u64map_survives_interleaved_deletes),
        cmocka_unit_test(strmap_copies_keys_and_deletes),
        cmocka_unit_test(errors_and_log_levels_have_names),
        cmocka_unit_test(time_formats_xep0082_utc_with_milliseconds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
