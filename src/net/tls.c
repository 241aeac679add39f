/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * OpenSSL server contexts and memory-BIO connections (see tls.h). The
 * policy lives in kr_tls_ctx_new_server(): change it only together with
 * docs/SECURITY.md and the TLS tests in tests/integration/test_tls.py.
 * Idle TLS 1.3 server connections can trade their SSL object for the record layer of
 * tls13_record.c (kr_tls_trim): for that a server connection keeps copies of the two
 * application traffic secrets (OpenSSL's keylog callback hands them over) and counts the
 * records read and written since the handshake (its message callback sees every record
 * header), which are the sequence numbers the record layer continues from. A connection on
 * which any handshake message passes after the handshake (KeyUpdate) is never handed over,
 * so the copies are never stale.
 */
#include "net/tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/base64.h"
#include "net/tls13_record.h"

/* TLS 1.2: ephemeral ECDHE, AEAD only. TLS 1.3 suites are all forward-secret AEAD. */
#define KR_TLS12_CIPHERS                                                                           \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define KR_TLS13_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

struct kr_tls_ctx {
    SSL_CTX *ssl_ctx;
    /* tls-server-end-point (RFC 5929 §4.1): hash of our certificate, computed once. */
    unsigned char end_point[EVP_MAX_MD_SIZE];
    unsigned end_point_len;
};

#define KR_TLS_SECRET_MAX 48

struct kr_tls {
    SSL *ssl;     /* NULL once rl has taken over */
    BIO *net_in;  /* we write network bytes here, OpenSSL reads them */
    BIO *net_out; /* OpenSSL writes records here, we send them */
    kr_tls_ctx *ctx;
    kr_tls13 *rl;        /* after the hand-over: the whole TLS state */
    const char *cipher;  /* after the hand-over: the suite's name (OpenSSL's static string) */
    uint64_t read_recs;  /* records read since the handshake finished */
    uint64_t write_recs; /* records written since the handshake finished */
    uint8_t client_secret[KR_TLS_SECRET_MAX]; /* client_application_traffic_secret_0 */
    uint8_t server_secret[KR_TLS_SECRET_MAX]; /* server_application_traffic_secret_0 */
    uint8_t client_secret_len;
    uint8_t server_secret_len;
    bool established; /* kr_tls_feed saw the handshake finish */
    bool no_handover; /* a post-handshake message passed: the secrets above are stale */
};

const char *kr_tls_last_error(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();
    if (!e) {
        snprintf(buf, len, "unknown TLS error");
        return buf;
    }
    ERR_error_string_n(e, buf, len);
    ERR_clear_error();
    return buf;
}

const char *kr_tls_failure(const kr_tls *t, char *buf, size_t len)
{
    if (t->rl) {
        snprintf(buf, len, "%s", kr_tls13_error(t->rl));
        return buf;
    }
    return kr_tls_last_error(buf, len);
}

static void kr_tls_end_point_hash(kr_tls_ctx *c)
{
    X509 *cert = SSL_CTX_get0_certificate(c->ssl_ctx);
    c->end_point_len = 0;
    if (!cert)
        return;
    int md_nid = NID_undef, pk_nid = NID_undef;
    if (!OBJ_find_sigid_algs(X509_get_signature_nid(cert), &md_nid, &pk_nid))
        md_nid = NID_undef;
    /* RFC 5929 §4.1: MD5 and SHA-1 are replaced by SHA-256. */
    const EVP_MD *md = NULL;
    if (md_nid == NID_undef || md_nid == NID_md5 || md_nid == NID_sha1)
        md = EVP_sha256();
    else
        md = EVP_get_digestbynid(md_nid);
    if (!md)
        md = EVP_sha256();
    X509_digest(cert, md, c->end_point, &c->end_point_len);
}

/* Verification results are read after the handshake: the callback lets every chain through
 * so that a peer with an untrusted certificate can still authenticate by Server Dialback
 * when the configuration allows it (the protocol decides, see tls.h). */
static int kr_tls_verify_cb(int preverify_ok, X509_STORE_CTX *store)
{
    (void)preverify_ok;
    (void)store;
    return 1;
}

int kr_tls_ctx_verify_peers(kr_tls_ctx *c, const char *ca_file, char *err, size_t errlen)
{
    char ebuf[256];
    if (SSL_CTX_set_default_verify_paths(c->ssl_ctx) != 1) {
        snprintf(err, errlen, "cannot load the system trust store: %s",
                 kr_tls_last_error(ebuf, sizeof(ebuf)));
        return -1;
    }
    if (ca_file && *ca_file && SSL_CTX_load_verify_locations(c->ssl_ctx, ca_file, NULL) != 1) {
        snprintf(err, errlen, "cannot load CA file %s: %s", ca_file,
                 kr_tls_last_error(ebuf, sizeof(ebuf)));
        return -1;
    }
    SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_PEER, kr_tls_verify_cb);
    SSL_CTX_set_verify_depth(c->ssl_ctx, 10);
    return 0;
}

/* The policy both sides share (DESIGN.md, security defaults). */
static SSL_CTX *kr_tls_ssl_ctx_new(const SSL_METHOD *method, char *err, size_t errlen)
{
    char ebuf[256];
    SSL_CTX *ctx = SSL_CTX_new(method);
    if (!ctx) {
        snprintf(err, errlen, "cannot create TLS context: %s",
                 kr_tls_last_error(ebuf, sizeof(ebuf)));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_ENABLE_PARTIAL_WRITE);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    /* No resumption (no cache, no stateless tickets): TLS 1.3 would still send two
     * stateful NewSessionTickets per handshake, each costing a key derivation, random
     * bytes and a record, for tickets that can never be used. */
    SSL_CTX_set_num_tickets(ctx, 0);
    if (!SSL_CTX_set_cipher_list(ctx, KR_TLS12_CIPHERS) ||
        !SSL_CTX_set_ciphersuites(ctx, KR_TLS13_SUITES) ||
        !SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384")) {
        snprintf(err, errlen, "cannot set TLS ciphers: %s", kr_tls_last_error(ebuf, sizeof(ebuf)));
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static kr_tls_ctx *kr_tls_ctx_new(const SSL_METHOD *method, const char *cert_path,
                                  const char *key_path, char *err, size_t errlen)
{
    char ebuf[256];
    SSL_CTX *ctx = kr_tls_ssl_ctx_new(method, err, errlen);
    if (!ctx)
        return NULL;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
        snprintf(err, errlen, "cannot load certificate %s: %s", cert_path,
                 kr_tls_last_error(ebuf, sizeof(ebuf)));
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1) {
        snprintf(err, errlen, "cannot load private key %s: %s", key_path,
                 kr_tls_last_error(ebuf, sizeof(ebuf)));
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "private key %s does not match certificate %s", key_path, cert_path);
        SSL_CTX_free(ctx);
        return NULL;
    }
    kr_tls_ctx *c = kr_xcalloc(1, sizeof(*c));
    c->ssl_ctx = ctx;
    kr_tls_end_point_hash(c);
    return c;
}

/* "LABEL <client random hex> <secret hex>" (the NSS key log format) into out; its length. */
static uint8_t keylog_secret(const char *line, uint8_t *out)
{
    const char *hex = strrchr(line, ' ');
    long n = hex ? kr_hex_decode(out, KR_TLS_SECRET_MAX, hex + 1, strlen(hex + 1)) : -1;
    return n > 0 ? (uint8_t)n : 0;
}

/* OpenSSL's key log: the only public way to the traffic secrets. Only the application
 * secrets (generation 0) are kept; the line itself is OpenSSL's and cleansed by it. */
static void kr_tls_keylog_cb(const SSL *ssl, const char *line)
{
    kr_tls *t = SSL_get_app_data(ssl);
    if (!t)
        return;
    static const char client[] = "CLIENT_TRAFFIC_SECRET_0 ", server[] = "SERVER_TRAFFIC_SECRET_0 ";
    if (strncmp(line, client, sizeof(client) - 1) == 0)
        t->client_secret_len = keylog_secret(line, t->client_secret);
    else if (strncmp(line, server, sizeof(server) - 1) == 0)
        t->server_secret_len = keylog_secret(line, t->server_secret);
}

/* Every record header read or written passes here (SSL3_RT_HEADER): those after the
 * handshake are numbered from 0 in each direction under the application keys (TLS 1.3 has
 * no records between the Finished messages and the application keys, and kurierd sends no
 * session tickets). A handshake message after the handshake changes keys or state we do
 * not copy, so it rules the hand-over out. */
static void kr_tls_msg_cb(int write_p, int version, int content_type, const void *buf, size_t len,
                          SSL *ssl, void *arg)
{
    (void)version;
    (void)buf;
    (void)len;
    (void)arg;
    kr_tls *t = SSL_get_app_data(ssl);
    if (!t)
        return;
    /* OpenSSL re-enters "init" while it processes a post-handshake message, so that one is
     * recognized by our own flag, set when the handshake was seen to finish. */
    if (content_type == SSL3_RT_HANDSHAKE && t->established)
        t->no_handover = true;
    if (content_type == SSL3_RT_HEADER && SSL_is_init_finished(ssl)) {
        if (write_p)
            t->write_recs++;
        else
            t->read_recs++;
    }
}

kr_tls_ctx *kr_tls_ctx_new_server(const char *cert_path, const char *key_path, char *err,
                                  size_t errlen)
{
    kr_tls_ctx *c = kr_tls_ctx_new(TLS_server_method(), cert_path, key_path, err, errlen);
    if (c) {
        SSL_CTX_set_keylog_callback(c->ssl_ctx, kr_tls_keylog_cb);
        SSL_CTX_set_msg_callback(c->ssl_ctx, kr_tls_msg_cb);
    }
    return c;
}

kr_tls_ctx *kr_tls_ctx_new_client(const char *cert_path, const char *key_path, const char *ca_file,
                                  char *err, size_t errlen)
{
    kr_tls_ctx *c = kr_tls_ctx_new(TLS_client_method(), cert_path, key_path, err, errlen);
    if (c && kr_tls_ctx_verify_peers(c, ca_file, err, errlen) != 0) {
        kr_tls_ctx_free(c);
        return NULL;
    }
    return c;
}

void kr_tls_ctx_free(kr_tls_ctx *ctx)
{
    if (!ctx)
        return;
    SSL_CTX_free(ctx->ssl_ctx);
    free(ctx);
}

kr_tls *kr_tls_new(kr_tls_ctx *ctx)
{
    kr_tls *t = kr_xcalloc(1, sizeof(*t));
    t->ctx = ctx;
    t->ssl = SSL_new(ctx->ssl_ctx);
    if (!t->ssl) {
        fprintf(stderr, "kurierd: SSL_new failed\n");
        abort();
    }
    t->net_in = BIO_new(BIO_s_mem());
    t->net_out = BIO_new(BIO_s_mem());
    if (!t->net_in || !t->net_out)
        abort();
    BIO_set_mem_eof_return(t->net_in, -1);
    BIO_set_mem_eof_return(t->net_out, -1);
    SSL_set_bio(t->ssl, t->net_in, t->net_out);
    SSL_set_app_data(t->ssl, t);
    SSL_set_accept_state(t->ssl);
    return t;
}

/* The largest plaintext per record the peer accepts (RFC 6066 max_fragment_length). */
static size_t kr_tls_max_fragment(SSL *ssl)
{
    uint8_t mode = SSL_SESSION_get_max_fragment_length(SSL_get_session(ssl));
    return mode >= TLSEXT_max_fragment_length_512 && mode <= TLSEXT_max_fragment_length_4096
               ? (size_t)256 << mode
               : 16384;
}

/* Replace the SSL object by the record layer, when everything it holds is in our copies: a
 * finished TLS 1.3 handshake with both secrets, no post-handshake message, no input it has
 * not consumed or output we have not taken, no plaintext it buffered, no shutdown begun. */
static void kr_tls_hand_over(kr_tls *t)
{
    SSL *ssl = t->ssl;
    const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
    unsigned suite = cipher ? SSL_CIPHER_get_id(cipher) & 0xffff : 0;
    size_t slen = kr_tls13_secret_len(suite);
    if (t->no_handover || !slen || SSL_version(ssl) != TLS1_3_VERSION ||
        t->client_secret_len != slen || t->server_secret_len != slen || SSL_pending(ssl) > 0 ||
        SSL_has_pending(ssl) || SSL_get_shutdown(ssl) != 0 || !SSL_is_server(ssl))
        return;
    t->rl = kr_tls13_new(suite, t->client_secret, t->read_recs, t->server_secret, t->write_recs,
                         kr_tls_max_fragment(ssl));
    if (!t->rl)
        return;
    t->cipher = SSL_CIPHER_get_name(cipher);
    SSL_free(ssl); /* and both BIOs, which are empty */
    t->ssl = NULL;
    t->net_in = t->net_out = NULL;
    OPENSSL_cleanse(t->client_secret, sizeof(t->client_secret));
    OPENSSL_cleanse(t->server_secret, sizeof(t->server_secret));
}

bool kr_tls_trim(kr_tls *t)
{
    if (t->rl) {
        kr_tls13_trim(t->rl);
        return false;
    }
    /* A memory BIO keeps the capacity of the largest write it ever held. Once the engine
     * has taken all input and we have taken all output, fresh BIOs hold nothing. The
     * handshake must be over: a new BIO pair is no place for half a flight. */
    if (!SSL_is_init_finished(t->ssl) || BIO_ctrl_pending(t->net_in) > 0 ||
        BIO_ctrl_pending(t->net_out) > 0)
        return false;
    kr_tls_hand_over(t);
    if (t->rl)
        return true;
    BIO *in = BIO_new(BIO_s_mem());
    BIO *out = BIO_new(BIO_s_mem());
    if (!in || !out)
        abort();
    BIO_set_mem_eof_return(in, -1);
    BIO_set_mem_eof_return(out, -1);
    SSL_set_bio(t->ssl, in, out); /* frees the old pair */
    t->net_in = in;
    t->net_out = out;
    return false;
}

kr_tls *kr_tls_new_client(kr_tls_ctx *ctx, const char *server_name)
{
    kr_tls *t = kr_tls_new(ctx);
    SSL_set_connect_state(t->ssl);
    unsigned char bin[16];
    bool literal = server_name && (inet_pton(AF_INET, server_name, bin) == 1 ||
                                   inet_pton(AF_INET6, server_name, bin) == 1);
    if (server_name && *server_name && !literal)
        SSL_set_tlsext_host_name(t->ssl, server_name);
    return t;
}

bool kr_tls_peer_verified(const kr_tls *t, char *why, size_t whylen)
{
    if (!t->ssl) {
        if (why && whylen)
            snprintf(why, whylen, "no certificate kept");
        return false;
    }
    X509 *cert = SSL_get0_peer_certificate(t->ssl);
    long r = SSL_get_verify_result(t->ssl);
    if (cert && r == X509_V_OK)
        return true;
    if (why && whylen)
        snprintf(why, whylen, "%s", cert ? X509_verify_cert_error_string(r) : "no certificate");
    return false;
}

X509 *kr_tls_peer_cert(const kr_tls *t)
{
    return t->ssl ? SSL_get0_peer_certificate(t->ssl) : NULL;
}

STACK_OF(X509) * kr_tls_peer_chain(const kr_tls *t)
{
    return t->ssl ? SSL_get_peer_cert_chain(t->ssl) : NULL;
}

void kr_tls_set_alpn(kr_tls *t, const char *proto)
{
    unsigned char wire[256];
    size_t len = strlen(proto);
    if (len == 0 || len > 255 || !t->ssl)
        return;
    wire[0] = (unsigned char)len;
    memcpy(wire + 1, proto, len);
    SSL_set_alpn_protos(t->ssl, wire, (unsigned)(len + 1));
}

void kr_tls_free(kr_tls *t)
{
    if (!t)
        return;
    SSL_free(t->ssl); /* frees both BIOs; NULL after the hand-over */
    kr_tls13_free(t->rl);
    OPENSSL_cleanse(t, sizeof(*t));
    free(t);
}

kr_tls_status kr_tls_feed(kr_tls *t, const char *data, size_t len, kr_buf *plain)
{
    if (t->rl) {
        int r = kr_tls13_feed(t->rl, data, len, plain);
        return r == KR_TLS13_OK ? KR_TLS_OK : r == KR_TLS13_CLOSED ? KR_TLS_CLOSED : KR_TLS_ERROR;
    }
    while (len > 0) {
        int n = BIO_write(t->net_in, data, (int)(len > (1u << 30) ? (1u << 30) : len));
        if (n <= 0)
            return KR_TLS_ERROR;
        data += n;
        len -= (size_t)n;
    }
    if (!SSL_is_init_finished(t->ssl)) {
        int r = SSL_do_handshake(t->ssl);
        if (r != 1) {
            int e = SSL_get_error(t->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return KR_TLS_OK;
            return KR_TLS_ERROR;
        }
    }
    t->established = true;
    for (;;) {
        kr_buf_reserve(plain, 16384);
        size_t got = 0;
        int r = SSL_read_ex(t->ssl, plain->data + plain->len, 16384, &got);
        if (r == 1) {
            plain->len += got;
            plain->data[plain->len] = '\0';
            continue;
        }
        int e = SSL_get_error(t->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return KR_TLS_OK;
        if (e == SSL_ERROR_ZERO_RETURN)
            return KR_TLS_CLOSED;
        return KR_TLS_ERROR;
    }
}

int kr_tls_write(kr_tls *t, const char *data, size_t len)
{
    if (t->rl)
        return kr_tls13_write(t->rl, data, len);
    while (len > 0) {
        size_t done = 0;
        if (SSL_write_ex(t->ssl, data, len, &done) != 1)
            return -1;
        data += done;
        len -= done;
    }
    return 0;
}

size_t kr_tls_pending_out(kr_tls *t, kr_buf *out)
{
    if (t->rl)
        return kr_tls13_pending_out(t->rl, out);
    size_t total = 0;
    size_t pending;
    while ((pending = BIO_ctrl_pending(t->net_out)) > 0) {
        kr_buf_reserve(out, pending);
        int n = BIO_read(t->net_out, out->data + out->len, (int)pending);
        if (n <= 0)
            break;
        out->len += (size_t)n;
        out->data[out->len] = '\0';
        total += (size_t)n;
    }
    return total;
}

void kr_tls_shutdown(kr_tls *t)
{
    if (t->rl)
        kr_tls13_close_notify(t->rl);
    else if (SSL_is_init_finished(t->ssl))
        SSL_shutdown(t->ssl);
}

bool kr_tls_handshake_done(const kr_tls *t)
{
    return t->rl || SSL_is_init_finished(t->ssl);
}

const char *kr_tls_version(const kr_tls *t)
{
    return t->rl ? "TLSv1.3" : SSL_get_version(t->ssl);
}

const char *kr_tls_cipher(const kr_tls *t)
{
    return t->rl ? t->cipher : SSL_get_cipher_name(t->ssl);
}

bool kr_tls_exporter_available(const kr_tls *t)
{
    /* RFC 9266 §2: tls-exporter needs TLS 1.3 or the extended master secret (RFC 7627).
     * After the hand-over the exporter secret is gone (SASL is long over by then). */
    if (!t->ssl)
        return false;
    return SSL_version(t->ssl) >= TLS1_3_VERSION || SSL_get_extms_support(t->ssl) == 1;
}

int kr_tls_cb_exporter(kr_tls *t, kr_scram_cb_data *out)
{
    static const char label[] = "EXPORTER-Channel-Binding";
    unsigned char value[32];
    if (!kr_tls_exporter_available(t) ||
        SSL_export_keying_material(t->ssl, value, sizeof(value), label, sizeof(label) - 1, NULL,
                                   0, 0) != 1)
        return -1;
    memcpy(out->tls_exporter, value, sizeof(value));
    out->tls_exporter_len = sizeof(value);
    return 0;
}

void kr_tls_cb_data(kr_tls *t, kr_scram_cb_data *out)
{
    memset(out, 0, sizeof(*out));
    if (!t->ssl)
        return;
    if (t->ctx->end_point_len <= sizeof(out->tls_server_end_point)) {
        memcpy(out->tls_server_end_point, t->ctx->end_point, t->ctx->end_point_len);
        out->tls_server_end_point_len = t->ctx->end_point_len;
    }
    /* RFC 5929 §3.1: the first Finished message of the most recent handshake; for a
     * full handshake that is the client's. RFC 9266 leaves it undefined for TLS 1.3, but
     * clients built on Python's ssl module (slixmpp) still send it, computed the same way
     * (the client's Finished); it is accepted there for interoperability and not advertised
     * (see docs/design-notes.md). */
    {
        size_t n = SSL_session_reused(t->ssl)
                       ? SSL_get_finished(t->ssl, out->tls_unique, sizeof(out->tls_unique))
                       : SSL_get_peer_finished(t->ssl, out->tls_unique, sizeof(out->tls_unique));
        out->tls_unique_len = n <= sizeof(out->tls_unique) ? n : 0;
    }
}
