/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Unit tests of the hand-over of idle TLS 1.3 connections from OpenSSL to Kurier's own
 * record layer (src/net/tls.c kr_tls_trim, src/net/tls13_record.c). The peer is an OpenSSL
 * client over memory BIOs, so every record we produce after the hand-over is checked by an
 * independent implementation, and every record it produces (application data, KeyUpdate,
 * close_notify) is read by ours: for each TLS 1.3 suite kurierd offers, after traffic in both
 * directions; byte by byte; with a tampered record (fails, with an alert); and the cases that
 * must stay on OpenSSL (TLS 1.2, a KeyUpdate before the hand-over).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/tls.h"
#include "net/tls13_record.h"

static char dir[] = "/tmp/kr-test-tls13-XXXXXX";
static char cert_path[64], key_path[64];
static kr_tls_ctx *server_ctx;

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        return -1;
    snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", dir);
    snprintf(key_path, sizeof(key_path), "%s/key.pem", dir);
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, key);
    X509_sign(x, key, EVP_sha256());
    FILE *f = fopen(cert_path, "w");
    PEM_write_X509(f, x);
    fclose(f);
    f = fopen(key_path, "w");
    PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(key);
    char err[256];
    server_ctx = kr_tls_ctx_new_server(cert_path, key_path, err, sizeof(err));
    return server_ctx ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    kr_tls_ctx_free(server_ctx);
    unlink(cert_path);
    unlink(key_path);
    rmdir(dir);
    return 0;
}

typedef struct pair {
    kr_tls *server;
    SSL_CTX *cctx;
    SSL *client;
    BIO *c_in, *c_out; /* the client's network side: c_in gets the server's bytes */
    kr_buf plain;      /* what the server decrypted */
    kr_tls_status last;
} pair;

/* An OpenSSL client that trusts nothing in particular (the tests are about records). */
static void pair_open(pair *p, int max_version, const char *suite)
{
    memset(p, 0, sizeof(*p));
    p->server = kr_tls_new(server_ctx);
    p->cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_max_proto_version(p->cctx, max_version);
    if (suite)
        assert_int_equal(SSL_CTX_set_ciphersuites(p->cctx, suite), 1);
    p->client = SSL_new(p->cctx);
    p->c_in = BIO_new(BIO_s_mem());
    p->c_out = BIO_new(BIO_s_mem());
    SSL_set_bio(p->client, p->c_in, p->c_out);
    SSL_set_connect_state(p->client);
}

static void pair_close(pair *p)
{
    kr_tls_free(p->server);
    SSL_free(p->client);
    SSL_CTX_free(p->cctx);
    kr_buf_clear(&p->plain);
}

/* Carry the client's bytes to the server, n at a time (0: all at once). */
static void to_server(pair *p, size_t n)
{
    char buf[65536];
    int got;
    while ((got = BIO_read(p->c_out, buf, sizeof(buf))) > 0) {
        size_t step = n ? n : (size_t)got;
        for (size_t off = 0; off < (size_t)got; off += step) {
            size_t len = (size_t)got - off < step ? (size_t)got - off : step;
            p->last = kr_tls_feed(p->server, buf + off, len, &p->plain);
            if (p->last != KR_TLS_OK)
                return;
        }
    }
}

static void to_client(pair *p)
{
    kr_buf out = KR_BUF_INIT;
    kr_tls_pending_out(p->server, &out);
    if (out.len)
        assert_int_equal(BIO_write(p->c_in, out.data, (int)out.len), (int)out.len);
    kr_buf_clear(&out);
}

static void handshake(pair *p)
{
    for (int i = 0; i < 10 && !(SSL_is_init_finished(p->client) &&
                                kr_tls_handshake_done(p->server));
         i++) {
        SSL_do_handshake(p->client);
        to_server(p, 0);
        assert_int_equal(p->last, KR_TLS_OK);
        to_client(p);
    }
    assert_true(SSL_is_init_finished(p->client));
    assert_true(kr_tls_handshake_done(p->server));
}

/* The client sends msg; the server must read exactly it. */
static void client_says(pair *p, const char *msg, size_t len, size_t step)
{
    p->plain.len = 0;
    assert_int_equal(SSL_write(p->client, msg, (int)len), (int)len);
    to_server(p, step);
    assert_int_equal(p->last, KR_TLS_OK);
    assert_int_equal(p->plain.len, len);
    assert_memory_equal(p->plain.data, msg, len);
    to_client(p); /* a KeyUpdate answer, if any */
}

/* The server sends msg; the client must read exactly it. */
static void server_says(pair *p, const char *msg, size_t len)
{
    assert_int_equal(kr_tls_write(p->server, msg, len), 0);
    to_client(p);
    char *got = malloc(len + 1);
    size_t have = 0;
    while (have < len) {
        int n = SSL_read(p->client, got + have, (int)(len - have));
        assert_true(n > 0);
        have += (size_t)n;
    }
    assert_memory_equal(got, msg, len);
    free(got);
}

/* A long message, so records are full and several. */
static char *big(size_t len)
{
    char *s = malloc(len);
    for (size_t i = 0; i < len; i++)
        s[i] = (char)('a' + i % 26);
    return s;
}

static void exchange(pair *p, size_t step)
{
    static const char hello[] = "<message to='bob@localhost'><body>hi</body></message>";
    client_says(p, hello, sizeof(hello) - 1, step);
    server_says(p, hello, sizeof(hello) - 1);
    char *b = big(40000);
    client_says(p, b, 40000, step);
    server_says(p, b, 40000);
    free(b);
}

/* Before the hand-over OpenSSL can still derive tls-exporter; after it nothing can. */
static bool handed_over(pair *p)
{
    return !kr_tls_exporter_available(p->server);
}

static void run_suite(const char *suite)
{
    pair p;
    pair_open(&p, TLS1_3_VERSION, suite);
    handshake(&p);
    exchange(&p, 0);
    assert_false(handed_over(&p));
    kr_tls_trim(p.server);
    assert_true(handed_over(&p));
    assert_string_equal(kr_tls_version(p.server), "TLSv1.3");
    assert_string_equal(kr_tls_cipher(p.server), suite);
    exchange(&p, 0);
    kr_tls_trim(p.server); /* trimming again is harmless */
    exchange(&p, 0);

    /* The client asks for new keys both ways (RFC 8446 §4.6.3). */
    assert_int_equal(SSL_key_update(p.client, SSL_KEY_UPDATE_REQUESTED), 1);
    exchange(&p, 0);
    exchange(&p, 0);
    assert_int_equal(SSL_key_update(p.client, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
    exchange(&p, 0);

    /* close_notify both ways. */
    SSL_shutdown(p.client);
    to_server(&p, 0);
    assert_int_equal(p.last, KR_TLS_CLOSED);
    kr_tls_shutdown(p.server);
    to_client(&p);
    char c;
    assert_int_equal(SSL_read(p.client, &c, 1), 0);
    assert_int_equal(SSL_get_error(p.client, 0), SSL_ERROR_ZERO_RETURN);
    pair_close(&p);
}

static void test_aes128(void **state)
{
    (void)state;
    run_suite("TLS_AES_128_GCM_SHA256");
}

static void test_aes256(void **state)
{
    (void)state;
    run_suite("TLS_AES_256_GCM_SHA384");
}

static void test_chacha(void **state)
{
    (void)state;
    run_suite("TLS_CHACHA20_POLY1305_SHA256");
}

static void test_byte_by_byte(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, TLS1_3_VERSION, NULL);
    handshake(&p);
    kr_tls_trim(p.server);
    assert_true(handed_over(&p));
    exchange(&p, 1);
    exchange(&p, 7);
    pair_close(&p);
}

static void test_tampered_record_fails(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, TLS1_3_VERSION, NULL);
    handshake(&p);
    exchange(&p, 0);
    kr_tls_trim(p.server);
    assert_true(handed_over(&p));
    assert_int_equal(SSL_write(p.client, "secret", 6), 6);
    char buf[256];
    int n = BIO_read(p.c_out, buf, sizeof(buf));
    assert_true(n > 10);
    buf[n - 3] ^= 1; /* in the tag */
    p.plain.len = 0;
    assert_int_equal(kr_tls_feed(p.server, buf, (size_t)n, &p.plain), KR_TLS_ERROR);
    assert_int_equal(p.plain.len, 0);
    char why[128];
    assert_string_equal(kr_tls_failure(p.server, why, sizeof(why)),
                        "a record did not authenticate");
    /* The client gets a bad_record_mac alert it can read, and nothing more is written. */
    to_client(&p);
    int r = SSL_read(p.client, buf, sizeof(buf));
    assert_true(r <= 0);
    assert_int_equal(SSL_get_error(p.client, r), SSL_ERROR_SSL);
    assert_int_equal(kr_tls_write(p.server, "x", 1), -1);
    pair_close(&p);
}

static void test_tls12_stays_on_openssl(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, TLS1_2_VERSION, NULL);
    handshake(&p);
    kr_tls_trim(p.server);
    assert_false(handed_over(&p));
    assert_string_equal(kr_tls_version(p.server), "TLSv1.2");
    exchange(&p, 0);
    pair_close(&p);
}

static void test_key_update_before_hand_over_keeps_openssl(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, TLS1_3_VERSION, NULL);
    handshake(&p);
    assert_int_equal(SSL_key_update(p.client, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
    exchange(&p, 0);
    kr_tls_trim(p.server);
    assert_false(handed_over(&p)); /* our copy of the read secret is stale now */
    exchange(&p, 0);
    pair_close(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aes128),
        cmocka_unit_test(test_aes256),
        cmocka_unit_test(test_chacha),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_tampered_record_fails),
        cmocka_unit_test(test_tls12_stays_on_openssl),
        cmocka_unit_test(test_key_update_before_hand_over_keeps_openssl),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
