/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * libFuzzer harness of SCRAM (src/sasl/scram.c; RFC 5802 §5-§7, RFC 7677,
 * channel binding per RFC 5929 / RFC 9266). Input layout:
 *   byte 0     flags: bit 0 SHA-256 (else SHA-1); bit 5 client side (else
 *              server side); server side: bit 1 -PLUS mechanism, bit 2 -PLUS
 *              was advertised, bit 3 the connection has channel-binding data,
 *              bit 4 unknown user (kr_scram_creds_fake); client side: bit 6
 *              bind to tls-exporter, bit 7 send an authzid
 *   bytes 1-2  length L of the first message, little-endian (cut to what is left)
 *   then       the first message (L bytes), then the second (the rest)
 * Server side: client-first, server-first from user "user"/"pencil" (or fake
 * credentials), client-final. Client side: user "user", password "pencil",
 * given server-first, then server-final. Nonces are the RFC examples', so
 * the RFC exchanges in the corpus run to success. Every step runs even after
 * a failed one (the API promises that out-of-order calls fail, never crash),
 * and checks: no step after a failure succeeds, success carries "v=", a
 * continued first step names a user. PBKDF2 runs only at start-up: the
 * client is given a warm SaltedPassword cache (a dummy one when the input's
 * salt or iteration count differs from the RFC's), never the password, so
 * a server-first with i=1000000 costs nothing.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "core/buf.h"
#include "sasl/scram.h"

/* RFC 5802 §5 and RFC 7677 §3 */
static const char *const fuzz_snonce[2] = {"3rfcNHYJY1ZVvWVs7j", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"};
static const char *const fuzz_cnonce[2] = {"fyko+d2lbbFgONRv9qkxdawL", "rOprNGfwEbeRWgbNEkqO"};
static const char *const fuzz_salt[2] = {"QSXCR+Q6sek8bf92", "W22ZaJ0SNY7soEsUEjb6gQ=="};
static const unsigned char fuzz_secret[] = "fuzz secret for fake credentials";

static bool fuzz_ready;
static kr_scram_creds fuzz_creds[2];
static kr_scram_salted_password fuzz_cache[2];
static kr_scram_cb_data fuzz_cb;

static void fuzz_die(const char *what)
{
    fprintf(stderr, "fuzz_scram: %s\n", what);
    abort();
}

/* RFC credentials and the client's SaltedPassword for them: one PBKDF2 per hash per process. */
static void fuzz_init(void)
{
    for (int h = 0; h < 2; h++) {
        kr_buf salt = KR_BUF_INIT;
        if (kr_base64_decode(&salt, fuzz_salt[h], strlen(fuzz_salt[h])) != 0)
            fuzz_die("bad RFC salt");
        kr_scram_creds_derive((kr_scram_hash)h, "pencil", 6, (const unsigned char *)salt.data,
                              salt.len, 4096, &fuzz_creds[h]);
        kr_scram_client *c =
            kr_scram_client_new((kr_scram_hash)h, "user", NULL, NULL, NULL, 0, fuzz_cnonce[h]);
        kr_buf m = KR_BUF_INIT, sf = KR_BUF_INIT;
        kr_scram_client_first(c, &m);
        kr_buf_printf(&sf, "r=%s%s,s=%s,i=4096", fuzz_cnonce[h], fuzz_snonce[h], fuzz_salt[h]);
        m.len = 0;
        if (kr_scram_client_final(c, sf.data, sf.len, "pencil", &fuzz_cache[h], &m) != 0 ||
            !fuzz_cache[h].valid)
            fuzz_die("cannot warm the SaltedPassword cache");
        kr_scram_client_free(c);
        kr_buf_clear(&m);
        kr_buf_clear(&sf);
        kr_buf_clear(&salt);
    }
    for (size_t i = 0; i < sizeof(fuzz_cb.tls_exporter); i++)
        fuzz_cb.tls_exporter[i] = (unsigned char)(0x40 + i);
    fuzz_cb.tls_exporter_len = 32;
    for (size_t i = 0; i < sizeof(fuzz_cb.tls_server_end_point); i++)
        fuzz_cb.tls_server_end_point[i] = (unsigned char)(0x80 + i);
    fuzz_cb.tls_server_end_point_len = 32;
    fuzz_ready = true;
}

static void fuzz_server(unsigned flags, const char *first, size_t first_len, const char *second,
                        size_t second_len)
{
    kr_scram_hash h = (flags & 1) ? KR_SCRAM_SHA256 : KR_SCRAM_SHA1;
    bool plus = flags & 2, advertised = flags & 4;
    const kr_scram_cb_data *cb = (flags & 8) ? &fuzz_cb : NULL;
    kr_scram_server *s = kr_scram_server_new(h, plus, advertised, cb, fuzz_snonce[h]);
    kr_buf out = KR_BUF_INIT;

    kr_scram_status st1 = kr_scram_server_client_first(s, first, first_len);
    if (st1 == KR_SCRAM_SUCCESS)
        fuzz_die("client-first ended the exchange with success");
    kr_scram_creds creds = fuzz_creds[h];
    if (st1 == KR_SCRAM_CONTINUE) {
        const char *user = kr_scram_server_username(s);
        if (!user)
            fuzz_die("client-first accepted without a username");
        if (strlen(user) > KR_SCRAM_MAX_USERNAME)
            fuzz_die("username longer than KR_SCRAM_MAX_USERNAME");
        (void)kr_scram_server_authzid(s);
        (void)kr_scram_server_cb_type(s);
        if (flags & 16)
            kr_scram_creds_fake(h, user, fuzz_secret, sizeof(fuzz_secret), 4096, &creds);
    }
    kr_scram_status st2 = kr_scram_server_server_first(s, &creds, &out);
    if (st1 != KR_SCRAM_CONTINUE && st2 == KR_SCRAM_CONTINUE)
        fuzz_die("server-first produced after a failed client-first");
    if (st2 == KR_SCRAM_CONTINUE && (out.len < 2 || memcmp(out.data, "r=", 2) != 0))
        fuzz_die("server-first does not start with r=");
    if (st2 != KR_SCRAM_CONTINUE && out.len != 0)
        fuzz_die("a failed server-first appended output");
    out.len = 0;
    kr_scram_status st3 = kr_scram_server_client_final(s, second, second_len, &out);
    if (st3 == KR_SCRAM_SUCCESS) {
        if (st2 != KR_SCRAM_CONTINUE)
            fuzz_die("success after a failed step");
        if (out.len < 2 || memcmp(out.data, "v=", 2) != 0)
            fuzz_die("success without v= server-final");
        if (flags & 16)
            fuzz_die("an unknown user logged in");
    } else if (st3 == KR_SCRAM_CONTINUE) {
        fuzz_die("client-final asks to continue");
    }
    (void)kr_scram_server_error(s);
    /* Nothing may follow the end of an exchange. */
    out.len = 0;
    if (kr_scram_server_client_final(s, second, second_len, &out) == KR_SCRAM_SUCCESS)
        fuzz_die("a second client-final succeeded");
    kr_buf_clear(&out);
    kr_scram_server_free(s);
}

/* The salt and iteration count where the library expects them ("r=...,s=...,i=..."), so the
 * client can be given a matching SaltedPassword instead of running PBKDF2; false when absent. */
static bool fuzz_salt_of(const char *msg, size_t len, kr_buf *salt, unsigned *iterations)
{
    const char *s = memchr(msg, ',', len);
    if (!s || (size_t)(msg + len - s) < 4 || s[1] != 's' || s[2] != '=')
        return false;
    s += 3;
    const char *end = msg + len;
    const char *comma = memchr(s, ',', (size_t)(end - s));
    if (!comma || end - comma < 4 || comma[1] != 'i' || comma[2] != '=')
        return false;
    if (kr_base64_decode(salt, s, (size_t)(comma - s)) != 0)
        return false;
    unsigned n = 0;
    for (const char *p = comma + 3; p < end && *p >= '0' && *p <= '9' && n < 10000000; p++)
        n = n * 10 + (unsigned)(*p - '0');
    *iterations = n;
    return true;
}

static void fuzz_client(unsigned flags, const char *first, size_t first_len, const char *second,
                        size_t second_len)
{
    kr_scram_hash h = (flags & 1) ? KR_SCRAM_SHA256 : KR_SCRAM_SHA1;
    bool bind = flags & 64;
    kr_scram_client *c =
        kr_scram_client_new(h, "user", (flags & 128) ? "admin" : NULL, bind ? "tls-exporter" : NULL,
                            bind ? fuzz_cb.tls_exporter : NULL, bind ? 32 : 0, fuzz_cnonce[h]);
    kr_buf out = KR_BUF_INIT;
    kr_scram_client_first(c, &out);

    kr_scram_salted_password cache = fuzz_cache[h];
    kr_buf salt = KR_BUF_INIT;
    unsigned iterations = 0;
    if (fuzz_salt_of(first, first_len, &salt, &iterations) && salt.len <= KR_SCRAM_MAX_SALT &&
        (iterations != cache.iterations || salt.len != cache.salt_len ||
         memcmp(salt.data, cache.salt, salt.len) != 0)) {
        cache.iterations = iterations;
        cache.salt_len = salt.len;
        if (salt.len)
            memcpy(cache.salt, salt.data, salt.len);
        memset(cache.key, 0x5a, sizeof(cache.key));
    }
    kr_buf_clear(&salt);

    out.len = 0;
    int rc = kr_scram_client_final(c, first, first_len, NULL, &cache, &out);
    if (rc == 0 && (out.len < 2 || memcmp(out.data, "c=", 2) != 0))
        fuzz_die("client-final does not start with c=");
    int vr = kr_scram_client_verify(c, second, second_len);
    if (rc != 0 && vr == 0)
        fuzz_die("server-final verified after a failed client-final");
    if (vr == 0 && kr_scram_client_server_error(c))
        fuzz_die("verified server-final with a server error");
    if (kr_scram_client_verify(c, second, second_len) == 0)
        fuzz_die("server-final verified twice");
    kr_buf_clear(&out);
    kr_scram_client_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    if (!fuzz_ready)
        fuzz_init();
    unsigned flags = data[0];
    size_t first_len = (size_t)data[1] | (size_t)data[2] << 8;
    size_t rest = size - 3;
    if (first_len > rest)
        first_len = rest;
    /* Exact-size copies, so a read past either message is caught. */
    char *first = malloc(first_len ? first_len : 1);
    char *second = malloc(rest - first_len ? rest - first_len : 1);
    if (!first || !second)
        abort();
    memcpy(first, data + 3, first_len);
    memcpy(second, data + 3 + first_len, rest - first_len);
    if (flags & 32)
        fuzz_client(flags, first, first_len, second, rest - first_len);
    else
        fuzz_server(flags, first, first_len, second, rest - first_len);
    free(first);
    free(second);
    return 0;
}
