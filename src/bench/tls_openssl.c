/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * kurier-bench's TLS engine on OpenSSL (see tls.h): one SSL object per connection between two
 * memory BIOs, so the caller moves bytes between them and its libuv socket. Also holds
 * kr_bench_tls_find(), the table of engines.
 */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/tls.h"

typedef struct ossl_conn {
    SSL *ssl;
    BIO *net_in, *net_out;
} ossl_conn;

static void ossl_why(SSL *ssl, char *why, size_t whylen)
{
    long vr = SSL_get_verify_result(ssl);
    unsigned long e = ERR_get_error();
    if (vr != X509_V_OK)
        snprintf(why, whylen, "certificate: %s", X509_verify_cert_error_string(vr));
    else if (e)
        ERR_error_string_n(e, why, whylen);
    else
        snprintf(why, whylen, "TLS error");
    ERR_clear_error();
}

static void *ossl_ctx_new(const char *ca_file, bool insecure, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(err, errlen, "cannot create TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (insecure) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return ctx;
    }
    int ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                     : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        char e[200];
        ERR_error_string_n(ERR_get_error(), e, sizeof(e));
        ERR_clear_error();
        snprintf(err, errlen, "cannot load CA %s: %s", ca_file ? ca_file : "(system)", e);
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return ctx;
}

static void ossl_ctx_free(void *ctx)
{
    SSL_CTX_free(ctx);
}

static void *ossl_conn_new(void *ctx, const char *host)
{
    ossl_conn *c = calloc(1, sizeof(*c));
    if (!c)
        abort();
    c->ssl = SSL_new(ctx);
    c->net_in = BIO_new(BIO_s_mem());
    c->net_out = BIO_new(BIO_s_mem());
    if (!c->ssl || !c->net_in || !c->net_out)
        abort();
    BIO_set_mem_eof_return(c->net_in, -1);
    BIO_set_mem_eof_return(c->net_out, -1);
    SSL_set_bio(c->ssl, c->net_in, c->net_out);
    SSL_set_connect_state(c->ssl);
    SSL_set_tlsext_host_name(c->ssl, host);
    /* RFC 6125 / RFC 7590: the certificate must name the XMPP domain. */
    SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    SSL_set1_host(c->ssl, host);
    return c;
}

static void ossl_conn_free(void *conn)
{
    ossl_conn *c = conn;
    SSL_free(c->ssl); /* frees both BIOs */
    free(c);
}

static bool ossl_input(void *conn, const char *data, size_t len)
{
    ossl_conn *c = conn;
    size_t done = 0;
    return BIO_write_ex(c->net_in, data, len, &done) == 1 && done == len;
}

static int ossl_handshake(void *conn, char *why, size_t whylen)
{
    ossl_conn *c = conn;
    int r = SSL_do_handshake(c->ssl);
    if (r == 1)
        return 1;
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    ossl_why(c->ssl, why, whylen);
    return -1;
}

static long ossl_read(void *conn, char *buf, size_t cap)
{
    ossl_conn *c = conn;
    size_t got = 0;
    int r = SSL_read_ex(c->ssl, buf, cap, &got);
    if (r == 1)
        return (long)got;
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    ERR_clear_error();
    return e == SSL_ERROR_ZERO_RETURN ? KR_BENCH_TLS_CLOSED : KR_BENCH_TLS_ERROR;
}

static bool ossl_write(void *conn, const char *data, size_t len)
{
    ossl_conn *c = conn;
    while (len > 0) {
        size_t done = 0;
        if (SSL_write_ex(c->ssl, data, len, &done) != 1) {
            ERR_clear_error();
            return false;
        }
        data += done;
        len -= done;
    }
    return true;
}

static size_t ossl_output(void *conn, kr_buf *out)
{
    ossl_conn *c = conn;
    size_t total = 0, pending;
    while ((pending = BIO_ctrl_pending(c->net_out)) > 0) {
        kr_buf_reserve(out, pending);
        size_t n = 0;
        if (BIO_read_ex(c->net_out, out->data + out->len, pending, &n) != 1 || n == 0)
            break;
        out->len += n;
        out->data[out->len] = '\0';
        total += n;
    }
    return total;
}

static void ossl_thread_end(void)
{
    OPENSSL_thread_stop();
}

const kr_bench_tls_ops kr_bench_tls_openssl = {
    .name = "openssl",
    .ctx_new = ossl_ctx_new,
    .ctx_free = ossl_ctx_free,
    .conn_new = ossl_conn_new,
    .conn_free = ossl_conn_free,
    .input = ossl_input,
    .handshake = ossl_handshake,
    .read = ossl_read,
    .write = ossl_write,
    .output = ossl_output,
    .thread_end = ossl_thread_end,
};

const kr_bench_tls_ops *kr_bench_tls_find(const char *name)
{
    static const kr_bench_tls_ops *const all[] = {&kr_bench_tls_wolfssl, &kr_bench_tls_openssl};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (strcmp(all[i]->name, name) == 0)
            return all[i];
    return NULL;
}
