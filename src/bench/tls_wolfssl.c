/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * kurier-bench's TLS engine on wolfSSL (see tls.h). wolfSSL reads and writes through two
 * callbacks; here they take from the connection's input buffer (what xconn read from the
 * socket) and append to its output buffer (what xconn sends next), so no socket is involved.
 * The context offers X25519 then P-256, like OpenSSL's default client, so a server's share of a
 * handshake is the same whichever engine drives the load. Invariant: the input buffer holds
 * exactly the bytes wolfSSL has not consumed yet (from `in_off` to the end).
 */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/tls.h"

typedef struct wolf_ctx {
    WOLFSSL_CTX *ctx;
    bool verify;
} wolf_ctx;

typedef struct wolf_conn {
    WOLFSSL *ssl;
    kr_buf in;
    size_t in_off;
    kr_buf out;
} wolf_conn;

static pthread_once_t wolf_once = PTHREAD_ONCE_INIT;

static void wolf_init(void)
{
    if (wolfSSL_Init() != WOLFSSL_SUCCESS)
        abort();
}

static int wolf_recv(WOLFSSL *ssl, char *buf, int sz, void *ud)
{
    (void)ssl;
    wolf_conn *c = ud;
    size_t avail = c->in.len - c->in_off;
    if (avail == 0)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    size_t n = avail < (size_t)sz ? avail : (size_t)sz;
    memcpy(buf, c->in.data + c->in_off, n);
    c->in_off += n;
    if (c->in_off == c->in.len) {
        c->in.len = 0;
        c->in_off = 0;
    }
    return (int)n;
}

static int wolf_send(WOLFSSL *ssl, char *buf, int sz, void *ud)
{
    (void)ssl;
    wolf_conn *c = ud;
    kr_buf_append(&c->out, buf, (size_t)sz);
    return sz;
}

static void wolf_why(int code, char *why, size_t whylen)
{
    char s[WOLFSSL_MAX_ERROR_SZ];
    wolfSSL_ERR_error_string_n((unsigned long)code, s, sizeof(s));
    /* wolfSSL's certificate errors: no signer (unknown CA), name mismatch, expiry and the
     * like all come through here; say so, as the OpenSSL engine does. */
    bool cert = code == ASN_NO_SIGNER_E || code == ASN_SELF_SIGNED_E ||
                code == DOMAIN_NAME_MISMATCH || code == ASN_AFTER_DATE_E ||
                code == ASN_BEFORE_DATE_E || code == ASN_SIG_CONFIRM_E || code == IPADDR_MISMATCH;
    snprintf(why, whylen, "%s%s", cert ? "certificate: " : "", s);
}

static void *wolf_ctx_new(const char *ca_file, bool insecure, char *err, size_t errlen)
{
    pthread_once(&wolf_once, wolf_init);
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
    if (!ctx) {
        snprintf(err, errlen, "cannot create TLS context");
        return NULL;
    }
    int groups[] = {WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1};
    if (wolfSSL_CTX_SetMinVersion(ctx, WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set_groups(ctx, groups, 2) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "cannot configure the TLS context (versions, groups)");
        wolfSSL_CTX_free(ctx);
        return NULL;
    }
    wolfSSL_CTX_SetIORecv(ctx, wolf_recv);
    wolfSSL_CTX_SetIOSend(ctx, wolf_send);
    if (insecure) {
        wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
    } else {
        int ok = ca_file ? wolfSSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                         : wolfSSL_CTX_load_system_CA_certs(ctx);
        if (ok != WOLFSSL_SUCCESS) {
            snprintf(err, errlen, "cannot load CA %s", ca_file ? ca_file : "(system)");
            wolfSSL_CTX_free(ctx);
            return NULL;
        }
        wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, NULL);
    }
    wolf_ctx *w = calloc(1, sizeof(*w));
    if (!w)
        abort();
    w->ctx = ctx;
    w->verify = !insecure;
    return w;
}

static void wolf_ctx_free(void *ctx)
{
    wolf_ctx *w = ctx;
    wolfSSL_CTX_free(w->ctx);
    free(w);
}

static void *wolf_conn_new(void *ctx, const char *host)
{
    wolf_ctx *w = ctx;
    wolf_conn *c = calloc(1, sizeof(*c));
    if (!c)
        abort();
    c->ssl = wolfSSL_new(w->ctx);
    if (!c->ssl)
        abort();
    wolfSSL_SetIOReadCtx(c->ssl, c);
    wolfSSL_SetIOWriteCtx(c->ssl, c);
    if (wolfSSL_UseSNI(c->ssl, WOLFSSL_SNI_HOST_NAME, host, (unsigned short)strlen(host)) !=
        WOLFSSL_SUCCESS)
        abort();
    /* RFC 6125 / RFC 7590: the certificate must name the XMPP domain. */
    if (w->verify && wolfSSL_check_domain_name(c->ssl, host) != WOLFSSL_SUCCESS)
        abort();
    return c;
}

static void wolf_conn_free(void *conn)
{
    wolf_conn *c = conn;
    wolfSSL_free(c->ssl);
    kr_buf_clear(&c->in);
    kr_buf_clear(&c->out);
    free(c);
}

static bool wolf_input(void *conn, const char *data, size_t len)
{
    wolf_conn *c = conn;
    kr_buf_append(&c->in, data, len);
    return true;
}

static int wolf_handshake(void *conn, char *why, size_t whylen)
{
    wolf_conn *c = conn;
    int r = wolfSSL_connect(c->ssl);
    if (r == WOLFSSL_SUCCESS)
        return 1;
    int e = wolfSSL_get_error(c->ssl, r);
    if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE)
        return 0;
    wolf_why(e, why, whylen);
    return -1;
}

static long wolf_read(void *conn, char *buf, size_t cap)
{
    wolf_conn *c = conn;
    int want = cap > 16384 ? 16384 : (int)cap;
    int r = wolfSSL_read(c->ssl, buf, want);
    if (r > 0)
        return r;
    int e = wolfSSL_get_error(c->ssl, r);
    if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE)
        return 0;
    return e == WOLFSSL_ERROR_ZERO_RETURN ? KR_BENCH_TLS_CLOSED : KR_BENCH_TLS_ERROR;
}

static bool wolf_write(void *conn, const char *data, size_t len)
{
    wolf_conn *c = conn;
    while (len > 0) {
        int n = len > 16384 ? 16384 : (int)len;
        int r = wolfSSL_write(c->ssl, data, n);
        if (r <= 0)
            return false;
        data += r;
        len -= (size_t)r;
    }
    return true;
}

static size_t wolf_output(void *conn, kr_buf *out)
{
    wolf_conn *c = conn;
    size_t n = c->out.len;
    if (n) {
        kr_buf_append(out, c->out.data, n);
        c->out.len = 0;
    }
    return n;
}

/* FP_ECC builds (Debian's) cache fixed-point tables per thread; they live until this. */
static void wolf_thread_end(void)
{
    wc_ecc_fp_free();
}

const kr_bench_tls_ops kr_bench_tls_wolfssl = {
    .name = "wolfssl",
    .ctx_new = wolf_ctx_new,
    .ctx_free = wolf_ctx_free,
    .conn_new = wolf_conn_new,
    .conn_free = wolf_conn_free,
    .input = wolf_input,
    .handshake = wolf_handshake,
    .read = wolf_read,
    .write = wolf_write,
    .output = wolf_output,
    .thread_end = wolf_thread_end,
};
