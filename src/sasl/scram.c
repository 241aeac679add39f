/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * SCRAM-SHA-1 and SCRAM-SHA-256, with and without -PLUS channel binding, on both sides
 * (see scram.h). Owns the two exchange objects and the credential derivation: PBKDF2 only
 * in kr_scram_creds_*() and on the client, never in the server's steps, which cost two
 * HMACs and a hash. Invariants: every peer message is bounded by KR_SCRAM_MAX_MESSAGE and
 * parsed strictly before any of it is used; a server exchange moves forward one state per
 * successful step and any failure or out-of-order call parks it in a failed state for good;
 * proofs and signatures are compared with CRYPTO_memcmp; key material is cleansed on free.
 * Implements RFC 5802 §3 (algorithm), §5 (exchange), §6 (channel binding negotiation) and
 * §7 (syntax), RFC 7677 (SHA-256), RFC 5929 / RFC 9266 binding type names.
 */
#include "sasl/scram.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "core/alloc.h"
#include "core/base64.h"
#include "core/error.h"

/* Our own invariants (never peer input): stay on in release builds. */
#define SCRAM_REQUIRE(cond)                                                                        \
    do {                                                                                           \
        if (!(cond))                                                                               \
            scram_bug(#cond, __LINE__);                                                            \
    } while (0)

#define SCRAM_NONCE_RAW 18 /* random bytes; 24 base64 characters */
#define SCRAM_FAKE_SALT 16
#define SCRAM_MAX_FIELDS 32
#define SCRAM_MAX_GIVEN_NONCE 256

static void scram_bug(const char *what, int line)
{
    fprintf(stderr, "kurier: scram.c:%d: invariant failed: %s\n", line, what);
    abort();
}

/* ---- hashing ------------------------------------------------------------------------------ */

static const EVP_MD *scram_md(kr_scram_hash h)
{
    SCRAM_REQUIRE(h == KR_SCRAM_SHA1 || h == KR_SCRAM_SHA256);
    return h == KR_SCRAM_SHA256 ? EVP_sha256() : EVP_sha1();
}

static bool scram_hash_valid(kr_scram_hash h)
{
    return h == KR_SCRAM_SHA1 || h == KR_SCRAM_SHA256;
}

size_t kr_scram_hash_len(kr_scram_hash h)
{
    SCRAM_REQUIRE(scram_hash_valid(h));
    return h == KR_SCRAM_SHA256 ? 32 : 20;
}

static void scram_hmac(kr_scram_hash h, const unsigned char *key, size_t key_len, const void *data,
                       size_t len, unsigned char *out)
{
    unsigned int n = 0;
    SCRAM_REQUIRE(key_len <= INT_MAX);
    SCRAM_REQUIRE(HMAC(scram_md(h), key, (int)key_len, data, len, out, &n) != NULL);
    SCRAM_REQUIRE(n == kr_scram_hash_len(h));
}

static void scram_digest(kr_scram_hash h, const unsigned char *data, size_t len, unsigned char *out)
{
    unsigned int n = 0;
    SCRAM_REQUIRE(EVP_Digest(data, len, out, &n, scram_md(h), NULL) == 1);
    SCRAM_REQUIRE(n == kr_scram_hash_len(h));
}

static void scram_random(unsigned char *out, size_t len)
{
    SCRAM_REQUIRE(len <= INT_MAX);
    SCRAM_REQUIRE(RAND_bytes(out, (int)len) == 1);
}

/* SaltedPassword := Hi(password, salt, i) (RFC 5802 §3), i.e. PBKDF2 with HMAC-H. */
static void scram_salt_password(kr_scram_hash h, const char *password, size_t len,
                                const unsigned char *salt, size_t salt_len, unsigned iterations,
                                unsigned char *out)
{
    static const unsigned char empty[1];
    SCRAM_REQUIRE(len <= INT_MAX && salt_len <= INT_MAX);
    SCRAM_REQUIRE(iterations >= 1 && iterations <= INT_MAX);
    int ok =
        PKCS5_PBKDF2_HMAC(len ? password : "", (int)len, salt_len ? salt : empty, (int)salt_len,
                          (int)iterations, scram_md(h), (int)kr_scram_hash_len(h), out);
    SCRAM_REQUIRE(ok == 1);
}

/* ClientKey, StoredKey := H(ClientKey), ServerKey from SaltedPassword (RFC 5802 §3). */
static void scram_keys(kr_scram_hash h, const unsigned char *salted, unsigned char *client_key,
                       unsigned char *stored_key, unsigned char *server_key)
{
    size_t hl = kr_scram_hash_len(h);
    scram_hmac(h, salted, hl, "Client Key", 10, client_key);
    scram_digest(h, client_key, hl, stored_key);
    scram_hmac(h, salted, hl, "Server Key", 10, server_key);
}

/* ---- mechanism names ---------------------------------------------------------------------- */

const char *kr_scram_mech_name(kr_scram_hash h, bool plus)
{
    SCRAM_REQUIRE(scram_hash_valid(h));
    if (h == KR_SCRAM_SHA256)
        return plus ? "SCRAM-SHA-256-PLUS" : "SCRAM-SHA-256";
    return plus ? "SCRAM-SHA-1-PLUS" : "SCRAM-SHA-1";
}

int kr_scram_mech_parse(const char *name, kr_scram_hash *h, bool *plus)
{
    static const kr_scram_hash hashes[] = {KR_SCRAM_SHA1, KR_SCRAM_SHA256};
    for (size_t i = 0; i < sizeof hashes / sizeof hashes[0]; i++) {
        for (int p = 0; p < 2; p++) {
            if (strcmp(name, kr_scram_mech_name(hashes[i], p)) == 0) {
                *h = hashes[i];
                *plus = p;
                return 0;
            }
        }
    }
    return KR_EINVAL;
}

/* ---- credentials -------------------------------------------------------------------------- */

void kr_scram_creds_derive(kr_scram_hash h, const char *password, size_t len,
                           const unsigned char *salt, size_t salt_len, unsigned iterations,
                           kr_scram_creds *out)
{
    unsigned char salted[KR_SCRAM_MAX_KEY];
    unsigned char client_key[KR_SCRAM_MAX_KEY];
    SCRAM_REQUIRE(salt_len <= KR_SCRAM_MAX_SALT);
    memset(out, 0, sizeof *out);
    out->hash = h;
    out->iterations = iterations;
    if (salt_len)
        memcpy(out->salt, salt, salt_len);
    out->salt_len = salt_len;
    scram_salt_password(h, password, len, salt, salt_len, iterations, salted);
    scram_keys(h, salted, client_key, out->stored_key, out->server_key);
    OPENSSL_cleanse(salted, sizeof salted);
    OPENSSL_cleanse(client_key, sizeof client_key);
}

void kr_scram_creds_new(kr_scram_hash h, const char *password, size_t len, unsigned iterations,
                        kr_scram_creds *out)
{
    unsigned char salt[16];
    scram_random(salt, sizeof salt);
    kr_scram_creds_derive(h, password, len, salt, sizeof salt, iterations, out);
}

void kr_scram_creds_fake(kr_scram_hash h, const char *username, const unsigned char *secret,
                         size_t secret_len, unsigned iterations, kr_scram_creds *out)
{
    unsigned char mac[32];
    kr_buf msg = KR_BUF_INIT;
    SCRAM_REQUIRE(iterations >= 1 && username && secret);
    kr_buf_puts(&msg, kr_scram_mech_name(h, false));
    kr_buf_append(&msg, "", 1); /* NUL separator: mechanism names contain none */
    kr_buf_puts(&msg, username);
    scram_hmac(KR_SCRAM_SHA256, secret, secret_len, msg.data, msg.len, mac);
    kr_buf_clear(&msg);

    memset(out, 0, sizeof *out);
    out->hash = h;
    out->iterations = iterations;
    memcpy(out->salt, mac, SCRAM_FAKE_SALT);
    out->salt_len = SCRAM_FAKE_SALT;
    scram_random(out->stored_key, kr_scram_hash_len(h));
    scram_random(out->server_key, kr_scram_hash_len(h));
}

bool kr_scram_creds_check(const kr_scram_creds *c, const char *password, size_t len)
{
    if (!scram_hash_valid(c->hash) || c->iterations < 1 || c->iterations > INT_MAX ||
        c->salt_len > KR_SCRAM_MAX_SALT || len > INT_MAX)
        return false;
    kr_scram_creds mine;
    kr_scram_creds_derive(c->hash, password, len, c->salt, c->salt_len, c->iterations, &mine);
    bool ok = CRYPTO_memcmp(mine.stored_key, c->stored_key, kr_scram_hash_len(c->hash)) == 0;
    OPENSSL_cleanse(&mine, sizeof mine);
    return ok;
}

/* ---- syntax (RFC 5802 §7) ----------------------------------------------------------------- */

typedef struct scram_field {
    const char *p;
    size_t len;
} scram_field;

/* Split at ','. Returns the number of fields, or 0 when there are more than max. */
static size_t scram_split(const char *msg, size_t len, scram_field *f, size_t max)
{
    size_t n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && msg[i] != ',')
            continue;
        if (n == max)
            return 0;
        f[n].p = msg + start;
        f[n].len = i - start;
        n++;
        start = i + 1;
    }
    return n;
}

/* Field "<name>=<value>": point at the value (which may be empty). */
static bool scram_attr(const scram_field *f, char name, scram_field *value)
{
    if (f->len < 2 || f->p[0] != name || f->p[1] != '=')
        return false;
    value->p = f->p + 2;
    value->len = f->len - 2;
    return true;
}

static bool scram_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool scram_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* printable = %x21-2B / %x2D-7E, at least one. */
static bool scram_printable(const char *p, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x21 || c > 0x7e || c == ',')
            return false;
    }
    return true;
}

/* Well-formed UTF-8 (RFC 3629): no overlongs, surrogates or values above U+10FFFF. */
static bool scram_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        size_t more;
        unsigned cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            more = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            more = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            more = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (len - i - 1 < more)
            return false;
        for (size_t k = 1; k <= more; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += more + 1;
    }
    return true;
}

/* attr-val = ALPHA "=" value, value = 1*value-char (UTF-8 except NUL and ','). */
static bool scram_extension(const scram_field *f)
{
    return f->len >= 3 && scram_alpha(f->p[0]) && f->p[1] == '=' &&
           scram_utf8_valid(f->p + 2, f->len - 2);
}

static bool scram_extensions(const scram_field *f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!scram_extension(&f[i]))
            return false;
    return true;
}

/* cb-name = 1*(ALPHA / DIGIT / "." / "-") */
static bool scram_cb_name_syntax(const char *p, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!scram_alpha(p[i]) && !scram_digit(p[i]) && p[i] != '.' && p[i] != '-')
            return false;
    return true;
}

/* saslname: unescape "=2C" -> ',' and "=3D" -> '=' (ABNF strings are case-insensitive,
 * RFC 5234 §2.3); any other '=' is malformed (RFC 5802 §5.1). NULL when malformed or longer
 * than max after unescaping. Caller frees. */
static char *scram_saslname_decode(const scram_field *v, size_t max)
{
    if (v->len == 0 || !scram_utf8_valid(v->p, v->len))
        return NULL;
    char *out = kr_xmalloc(v->len + 1);
    size_t o = 0;
    for (size_t i = 0; i < v->len; i++) {
        char c = v->p[i];
        if (c == '=') {
            if (v->len - i < 3)
                goto bad;
            char a = v->p[i + 1], b = v->p[i + 2];
            if (a == '2' && (b == 'C' || b == 'c'))
                c = ',';
            else if (a == '3' && (b == 'D' || b == 'd'))
                c = '=';
            else
                goto bad;
            i += 2;
        }
        out[o++] = c;
    }
    if (o > max)
        goto bad;
    out[o] = '\0';
    return out;
bad:
    free(out);
    return NULL;
}

static void scram_saslname_encode(kr_buf *out, const char *s)
{
    for (; *s; s++) {
        if (*s == ',')
            kr_buf_puts(out, "=2C");
        else if (*s == '=')
            kr_buf_puts(out, "=3D");
        else
            kr_buf_append(out, s, 1);
    }
}

/* Strict base64 of a field value into out (cleared first); false when invalid. */
static bool scram_b64_value(const scram_field *v, kr_buf *out)
{
    out->len = 0;
    return kr_base64_decode(out, v->p, v->len) == 0;
}

/* Common checks on any peer message: bounded, no NUL. */
static bool scram_message_ok(const char *msg, size_t len)
{
    return msg && len > 0 && len <= KR_SCRAM_MAX_MESSAGE && !memchr(msg, '\0', len);
}

static char *scram_random_nonce(void)
{
    unsigned char raw[SCRAM_NONCE_RAW];
    kr_buf b = KR_BUF_INIT;
    scram_random(raw, sizeof raw);
    kr_base64_encode(&b, raw, sizeof raw);
    return kr_buf_detach(&b, NULL);
}

static char *scram_given_nonce(const char *nonce)
{
    size_t len = strlen(nonce);
    SCRAM_REQUIRE(len <= SCRAM_MAX_GIVEN_NONCE && scram_printable(nonce, len));
    return kr_xstrdup(nonce);
}

/* ---- channel binding types ---------------------------------------------------------------- */

static const char *const scram_cb_names[] = {"tls-exporter", "tls-server-end-point", "tls-unique"};

/* Index of a supported binding name, or -1. */
static int scram_cb_lookup(const char *p, size_t len)
{
    for (size_t i = 0; i < sizeof scram_cb_names / sizeof scram_cb_names[0]; i++)
        if (strlen(scram_cb_names[i]) == len && memcmp(scram_cb_names[i], p, len) == 0)
            return (int)i;
    return -1;
}

static void scram_cb_bytes(const kr_scram_cb_data *cb, int type, const unsigned char **data,
                           size_t *len)
{
    switch (type) {
    case 0:
        *data = cb->tls_exporter, *len = cb->tls_exporter_len;
        break;
    case 1:
        *data = cb->tls_server_end_point, *len = cb->tls_server_end_point_len;
        break;
    default:
        *data = cb->tls_unique, *len = cb->tls_unique_len;
        break;
    }
}

/* "c=" value: base64(gs2-header || cbind-data) (RFC 5802 §7, channel-binding). */
static void scram_cbind_input(kr_buf *out, const kr_buf *gs2, const unsigned char *cb, size_t len)
{
    kr_buf raw = KR_BUF_INIT;
    kr_buf_append(&raw, gs2->data, gs2->len);
    kr_buf_append(&raw, cb, len);
    kr_base64_encode(out, raw.data, raw.len);
    kr_buf_clear(&raw);
}

/* AuthMessage := client-first-message-bare "," server-first-message ","
 *                client-final-message-without-proof */
static void scram_auth_message(kr_buf *out, const kr_buf *bare, const kr_buf *server_first,
                               const char *final_wo_proof, size_t len)
{
    kr_buf_append(out, bare->data, bare->len);
    kr_buf_append(out, ",", 1);
    kr_buf_append(out, server_first->data, server_first->len);
    kr_buf_append(out, ",", 1);
    kr_buf_append(out, final_wo_proof, len);
}

/* ---- server ------------------------------------------------------------------------------- */

enum scram_server_state {
    SCRAM_S_START,      /* waiting for client-first */
    SCRAM_S_FIRST,      /* client-first parsed, waiting for credentials */
    SCRAM_S_CHALLENGED, /* server-first sent, waiting for client-final */
    SCRAM_S_DONE,       /* succeeded */
    SCRAM_S_FAILED,
};

struct kr_scram_server {
    kr_scram_hash hash;
    bool plus;
    bool advertised_plus;
    kr_scram_cb_data cb; /* all lengths 0 when created without binding data */
    enum scram_server_state state;
    const char *error;
    char *server_nonce; /* our part */
    char *nonce;        /* client part + our part */
    char *username;
    char *authzid;
    const char *cb_name;
    const unsigned char *cb_bytes; /* into cb */
    size_t cb_len;
    kr_buf gs2;  /* gs2-header as received, including its final ',' */
    kr_buf bare; /* client-first-message-bare */
    kr_buf server_first;
    unsigned char stored_key[KR_SCRAM_MAX_KEY];
    unsigned char server_key[KR_SCRAM_MAX_KEY];
};

kr_scram_server *kr_scram_server_new(kr_scram_hash h, bool plus, bool server_advertised_plus,
                                     const kr_scram_cb_data *cb, const char *nonce)
{
    SCRAM_REQUIRE(scram_hash_valid(h));
    kr_scram_server *s = kr_xcalloc(1, sizeof *s);
    s->hash = h;
    s->plus = plus;
    s->advertised_plus = server_advertised_plus;
    if (cb) {
        s->cb = *cb;
        SCRAM_REQUIRE(s->cb.tls_exporter_len <= sizeof s->cb.tls_exporter &&
                      s->cb.tls_server_end_point_len <= sizeof s->cb.tls_server_end_point &&
                      s->cb.tls_unique_len <= sizeof s->cb.tls_unique);
    }
    s->state = SCRAM_S_START;
    s->server_nonce = nonce ? scram_given_nonce(nonce) : scram_random_nonce();
    kr_buf_init(&s->gs2);
    kr_buf_init(&s->bare);
    kr_buf_init(&s->server_first);
    return s;
}

void kr_scram_server_free(kr_scram_server *s)
{
    if (!s)
        return;
    free(s->server_nonce);
    free(s->nonce);
    free(s->username);
    free(s->authzid);
    kr_buf_clear(&s->gs2);
    kr_buf_clear(&s->bare);
    kr_buf_clear(&s->server_first);
    OPENSSL_cleanse(s, sizeof *s);
    free(s);
}

static kr_scram_status scram_server_fail(kr_scram_server *s, kr_scram_status st, const char *err)
{
    s->state = SCRAM_S_FAILED;
    s->error = err;
    return st;
}

/* gs2-cbind-flag against the mechanism and what we offered (RFC 5802 §6). */
static kr_scram_status scram_server_cbind(kr_scram_server *s, const scram_field *flag)
{
    if (flag->len == 1 && (flag->p[0] == 'n' || flag->p[0] == 'y')) {
        if (s->plus) /* -PLUS requires 'p=' (RFC 5802 §5.1 / §6) */
            return scram_server_fail(s, KR_SCRAM_MALFORMED, "other-error");
        if (flag->p[0] == 'y' && s->advertised_plus) /* downgrade */
            return scram_server_fail(s, KR_SCRAM_NOT_AUTHORIZED,
                                     "server-does-support-channel-binding");
        return KR_SCRAM_CONTINUE;
    }
    scram_field name;
    if (!scram_attr(flag, 'p', &name) || !scram_cb_name_syntax(name.p, name.len))
        return scram_server_fail(s, KR_SCRAM_MALFORMED, "invalid-encoding");
    if (!s->plus) /* binding asked for under a mechanism without it */
        return scram_server_fail(s, KR_SCRAM_MALFORMED, "other-error");
    int type = scram_cb_lookup(name.p, name.len);
    if (type < 0)
        return scram_server_fail(s, KR_SCRAM_NOT_AUTHORIZED, "unsupported-channel-binding-type");
    scram_cb_bytes(&s->cb, type, &s->cb_bytes, &s->cb_len);
    if (s->cb_len == 0) /* e.g. tls-unique under TLS 1.3, or no TLS at all */
        return scram_server_fail(s, KR_SCRAM_NOT_AUTHORIZED, "unsupported-channel-binding-type");
    s->cb_name = scram_cb_names[type];
    return KR_SCRAM_CONTINUE;
}

kr_scram_status kr_scram_server_client_first(kr_scram_server *s, const char *msg, size_t len)
{
    scram_field f[SCRAM_MAX_FIELDS], v;
    if (s->state != SCRAM_S_START)
        return scram_server_fail(s, KR_SCRAM_MALFORMED, "other-error");
    if (!scram_message_ok(msg, len))
        return scram_server_fail(s, KR_SCRAM_MALFORMED, "invalid-encoding");
    size_t n = scram_split(msg, len, f, SCRAM_MAX_FIELDS);
    if (n < 4)
        return scram_server_fail(s, KR_SCRAM_MALFORMED, "invalid-encoding");

    /* gs2-header = gs2-cbind-flag "," [ authzid ] "," */
    kr_scram_status st = scram_server_cbind(s, &f[0]);
    if (st != KR_SCRAM_CONTINUE)
        return st;
    if (f[1].len) {
        if (!scram_attr(&f[1], 'a', &v) || !(s->authzid = scram_saslname_decode(&v, len)))
            return scram_server_fail(s, KR_SCRAM_MALFORMED, "invalid-encoding");
    }

    /* client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions] */
    if (scram_attr(&f[2], 'm', &v)) /* no mandatory extension is supported */
        return scram_server_fail(s, KR_SCRAM_MALFORMED, "extensions-not-supported");
    if (!scram_attr(&f[2], 'n', &v) ||
        !(s->username = scram_saslname_decode(&v, KR_SCRAM_MAX_USERNAME)))
        return scram_server_fail(s, KR_SCRAM_MALFORMED, "invalid-username-encoding");
    if (!scram_attr(&f[3], 'r', &v) || !scram_printable(v.p, v.len) ||
        !scram_extensions(f + 4, n - 4))
        return scram_server_fail(s, KR_SCRAM_MALFORMED, "invalid-encoding");

    s->nonce = kr_xasprintf("%.*s%s", (int)v.len, v.p, s->server_nonce);
    size_t gs2_len = (size_t)(f[2].p - msg);
    kr_buf_append(&s->gs2, msg, gs2_len);
    kr_buf_append(&s->bare, msg + gs2_len, len - gs2_len);
    s->state = SCRAM_S_FIRST;
    return KR_SCRAM_CONTINUE;
}

const char *kr_scram_server_username(const kr_scram_server *s)
{
    return s->username;
}

const char *kr_scram_server_authzid(const kr_scram_server *s)
{
    return s->authzid;
}

const char *kr_scram_server_cb_type(const kr_scram_server *s)
{
    return s->cb_name;
}

const char *kr_scram_server_error(const kr_scram_server *s)
{
    return s->state == SCRAM_S_FAILED ? s->error : NULL;
}

kr_scram_status kr_scram_server_server_first(kr_scram_server *s, const kr_scram_creds *creds,
                                             kr_buf *out)
{
    if (s->state != SCRAM_S_FIRST)
        return scram_server_fail(s, KR_SCRAM_MALFORMED, "other-error");
    SCRAM_REQUIRE(creds->hash == s->hash && creds->iterations >= 1 &&
                  creds->salt_len <= KR_SCRAM_MAX_SALT);
    size_t hl = kr_scram_hash_len(s->hash);
    memcpy(s->stored_key, creds->stored_key, hl);
    memcpy(s->server_key, creds->server_key, hl);

    /* server-first-message = nonce "," salt "," iteration-count */
    kr_buf_printf(&s->server_first, "r=%s,s=", s->nonce);
    kr_base64_encode(&s->server_first, creds->salt, creds->salt_len);
    kr_buf_printf(&s->server_first, ",i=%u", creds->iterations);
    kr_buf_append(out, s->server_first.data, s->server_first.len);
    s->state = SCRAM_S_CHALLENGED;
    return KR_SCRAM_CONTINUE;
}

/* ClientKey := ClientProof XOR HMAC(StoredKey, AuthMessage); then H(ClientKey) == StoredKey. */
static bool scram_server_proof_ok(kr_scram_server *s, const unsigned char *proof,
                                  const kr_buf *auth)
{
    size_t hl = kr_scram_hash_len(s->hash);
    unsigned char sig[KR_SCRAM_MAX_KEY], key[KR_SCRAM_MAX_KEY], stored[KR_SCRAM_MAX_KEY];
    scram_hmac(s->hash, s->stored_key, hl, auth->data, auth->len, sig);
    for (size_t i = 0; i < hl; i++)
        key[i] = proof[i] ^ sig[i];
    scram_digest(s->hash, key, hl, stored);
    bool ok = CRYPTO_memcmp(stored, s->stored_key, hl) == 0;
    OPENSSL_cleanse(key, sizeof key);
    return ok;
}

/* Parse client-final-message = channel-binding "," nonce ["," extensions] "," proof.
 * On success c, r and p hold the values and *wo_proof_len the length before ",p=". */
static bool scram_parse_client_final(const char *msg, size_t len, scram_field *c, scram_field *r,
                                     scram_field *p, size_t *wo_proof_len)
{
    scram_field f[SCRAM_MAX_FIELDS];
    if (!scram_message_ok(msg, len))
        return false;
    size_t n = scram_split(msg, len, f, SCRAM_MAX_FIELDS);
    if (n < 3 || !scram_attr(&f[0], 'c', c) || !scram_attr(&f[1], 'r', r) ||
        !scram_attr(&f[n - 1], 'p', p) || !scram_printable(r->p, r->len) ||
        !scram_extensions(f + 2, n - 3))
        return false;
    *wo_proof_len = (size_t)(f[n - 1].p - msg) - 1;
    return true;
}

kr_scram_status kr_scram_server_client_final(kr_scram_server *s, const char *msg, size_t len,
                                             kr_buf *out)
{
    scram_field c, r, p;
    size_t wo_proof;
    if (s->state != SCRAM_S_CHALLENGED)
        return scram_server_fail(s, KR_SCRAM_MALFORMED, "other-error");
    if (!scram_parse_client_final(msg, len, &c, &r, &p, &wo_proof))
        return scram_server_fail(s, KR_SCRAM_MALFORMED, "invalid-encoding");

    kr_buf tmp = KR_BUF_INIT, auth = KR_BUF_INIT;
    kr_scram_status st = KR_SCRAM_MALFORMED;
    const char *err = "invalid-encoding";
    if (!scram_b64_value(&c, &tmp))
        goto out;
    if (!scram_b64_value(&p, &tmp))
        goto out;
    /* Syntax is fine; from here on a mismatch is a failed authentication. */
    st = KR_SCRAM_NOT_AUTHORIZED;
    err = "invalid-proof";
    if (tmp.len != kr_scram_hash_len(s->hash))
        goto out;
    kr_buf expect = KR_BUF_INIT;
    scram_cbind_input(&expect, &s->gs2, s->cb_bytes, s->cb_len);
    bool cb_ok = expect.len == c.len && CRYPTO_memcmp(expect.data, c.p, c.len) == 0;
    kr_buf_clear(&expect);
    if (!cb_ok) {
        err = "channel-bindings-dont-match";
        goto out;
    }
    if (strlen(s->nonce) != r.len || memcmp(s->nonce, r.p, r.len) != 0) {
        err = "other-error";
        goto out;
    }
    scram_auth_message(&auth, &s->bare, &s->server_first, msg, wo_proof);
    if (!scram_server_proof_ok(s, (const unsigned char *)tmp.data, &auth))
        goto out;

    unsigned char sig[KR_SCRAM_MAX_KEY];
    scram_hmac(s->hash, s->server_key, kr_scram_hash_len(s->hash), auth.data, auth.len, sig);
    kr_buf_puts(out, "v=");
    kr_base64_encode(out, sig, kr_scram_hash_len(s->hash));
    s->state = SCRAM_S_DONE;
    st = KR_SCRAM_SUCCESS;
out:
    kr_buf_clear(&tmp);
    kr_buf_clear(&auth);
    return st == KR_SCRAM_SUCCESS ? st : scram_server_fail(s, st, err);
}

/* ---- client ------------------------------------------------------------------------------- */

enum scram_client_state {
    SCRAM_C_START,
    SCRAM_C_FIRST_SENT,
    SCRAM_C_FINAL_SENT,
    SCRAM_C_DONE,
};

struct kr_scram_client {
    kr_scram_hash hash;
    enum scram_client_state state;
    char *nonce; /* ours */
    kr_buf gs2;
    kr_buf bare;
    unsigned char *cb_data; /* only with 'p=' */
    size_t cb_len;
    unsigned char server_signature[KR_SCRAM_MAX_KEY];
    char *server_error;
};

kr_scram_client *kr_scram_client_new(kr_scram_hash h, const char *username, const char *authzid,
                                     const char *cb_type, const unsigned char *cb_data,
                                     size_t cb_len, const char *nonce)
{
    SCRAM_REQUIRE(scram_hash_valid(h) && username);
    kr_scram_client *c = kr_xcalloc(1, sizeof *c);
    c->hash = h;
    c->state = SCRAM_C_START;
    c->nonce = nonce ? scram_given_nonce(nonce) : scram_random_nonce();
    kr_buf_init(&c->gs2);
    kr_buf_init(&c->bare);

    if (cb_type) {
        SCRAM_REQUIRE(scram_cb_name_syntax(cb_type, strlen(cb_type)) && cb_data && cb_len > 0);
        kr_buf_printf(&c->gs2, "p=%s,", cb_type);
        c->cb_data = kr_xmalloc(cb_len);
        memcpy(c->cb_data, cb_data, cb_len);
        c->cb_len = cb_len;
    } else {
        kr_buf_puts(&c->gs2, cb_len > 0 ? "y," : "n,");
    }
    if (authzid && *authzid) {
        kr_buf_puts(&c->gs2, "a=");
        scram_saslname_encode(&c->gs2, authzid);
    }
    kr_buf_puts(&c->gs2, ",");

    kr_buf_puts(&c->bare, "n=");
    scram_saslname_encode(&c->bare, username);
    kr_buf_printf(&c->bare, ",r=%s", c->nonce);
    return c;
}

void kr_scram_client_free(kr_scram_client *c)
{
    if (!c)
        return;
    free(c->nonce);
    kr_buf_clear(&c->gs2);
    kr_buf_clear(&c->bare);
    free(c->cb_data);
    free(c->server_error);
    OPENSSL_cleanse(c, sizeof *c);
    free(c);
}

void kr_scram_client_first(kr_scram_client *c, kr_buf *out)
{
    kr_buf_append(out, c->gs2.data, c->gs2.len);
    kr_buf_append(out, c->bare.data, c->bare.len);
    if (c->state == SCRAM_C_START)
        c->state = SCRAM_C_FIRST_SENT;
}

/* iteration-count = "i=" posit-number, within 1..KR_SCRAM_CLIENT_MAX_ITERATIONS. */
static bool scram_parse_iterations(const scram_field *v, unsigned *out)
{
    if (v->len == 0 || v->len > 7 || v->p[0] == '0')
        return false;
    unsigned n = 0;
    for (size_t i = 0; i < v->len; i++) {
        if (!scram_digit(v->p[i]))
            return false;
        n = n * 10 + (unsigned)(v->p[i] - '0');
    }
    if (n > KR_SCRAM_CLIENT_MAX_ITERATIONS)
        return false;
    *out = n;
    return true;
}

/* server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count
 *                        ["," extensions]; 'm=' is refused. salt is decoded into *salt. */
static int scram_client_parse_first(const kr_scram_client *c, const char *msg, size_t len,
                                    scram_field *nonce, kr_buf *salt, unsigned *iterations)
{
    scram_field f[SCRAM_MAX_FIELDS], s, i;
    if (!scram_message_ok(msg, len))
        return KR_EPROTO;
    size_t n = scram_split(msg, len, f, SCRAM_MAX_FIELDS);
    if (n < 3 || !scram_attr(&f[0], 'r', nonce) || !scram_attr(&f[1], 's', &s) ||
        !scram_attr(&f[2], 'i', &i) || !scram_extensions(f + 3, n - 3))
        return KR_EPROTO;
    size_t ours = strlen(c->nonce);
    if (!scram_printable(nonce->p, nonce->len) || nonce->len < ours ||
        memcmp(nonce->p, c->nonce, ours) != 0)
        return KR_EPROTO;
    if (!scram_b64_value(&s, salt) || salt->len == 0 || !scram_parse_iterations(&i, iterations))
        return KR_EPROTO;
    return 0;
}

static bool scram_cache_matches(const kr_scram_salted_password *cache, kr_scram_hash h,
                                const kr_buf *salt, unsigned iterations)
{
    return cache && cache->valid && cache->hash == h && cache->iterations == iterations &&
           cache->salt_len == salt->len && memcmp(cache->salt, salt->data, salt->len) == 0;
}

static void scram_cache_store(kr_scram_salted_password *cache, kr_scram_hash h, const kr_buf *salt,
                              unsigned iterations, const unsigned char *key)
{
    if (!cache || salt->len > KR_SCRAM_MAX_SALT)
        return;
    memset(cache, 0, sizeof *cache);
    cache->valid = true;
    cache->hash = h;
    cache->iterations = iterations;
    cache->salt_len = salt->len;
    memcpy(cache->salt, salt->data, salt->len);
    memcpy(cache->key, key, kr_scram_hash_len(h));
}

int kr_scram_client_final(kr_scram_client *c, const char *server_first, size_t len,
                          const char *password, kr_scram_salted_password *cache, kr_buf *out)
{
    if (c->state != SCRAM_C_FIRST_SENT)
        return KR_EINVAL;
    scram_field nonce;
    kr_buf salt = KR_BUF_INIT;
    unsigned iterations = 0;
    int rc = scram_client_parse_first(c, server_first, len, &nonce, &salt, &iterations);
    if (rc < 0)
        goto done;

    size_t hl = kr_scram_hash_len(c->hash);
    unsigned char salted[KR_SCRAM_MAX_KEY];
    if (scram_cache_matches(cache, c->hash, &salt, iterations)) {
        memcpy(salted, cache->key, hl);
    } else if (password) {
        scram_salt_password(c->hash, password, strlen(password), (unsigned char *)salt.data,
                            salt.len, iterations, salted);
        scram_cache_store(cache, c->hash, &salt, iterations, salted);
    } else {
        rc = KR_EINVAL;
        goto done;
    }

    unsigned char client_key[KR_SCRAM_MAX_KEY], stored_key[KR_SCRAM_MAX_KEY];
    unsigned char server_key[KR_SCRAM_MAX_KEY], proof[KR_SCRAM_MAX_KEY];
    scram_keys(c->hash, salted, client_key, stored_key, server_key);

    /* client-final-message-without-proof = channel-binding "," nonce */
    kr_buf final = KR_BUF_INIT, sf = KR_BUF_INIT, auth = KR_BUF_INIT;
    kr_buf_puts(&final, "c=");
    scram_cbind_input(&final, &c->gs2, c->cb_data, c->cb_len);
    kr_buf_puts(&final, ",r=");
    kr_buf_append(&final, nonce.p, nonce.len);
    kr_buf_append(&sf, server_first, len);
    scram_auth_message(&auth, &c->bare, &sf, final.data, final.len);

    scram_hmac(c->hash, stored_key, hl, auth.data, auth.len, proof); /* ClientSignature */
    for (size_t i = 0; i < hl; i++)
        proof[i] ^= client_key[i];
    scram_hmac(c->hash, server_key, hl, auth.data, auth.len, c->server_signature);

    kr_buf_puts(&final, ",p=");
    kr_base64_encode(&final, proof, hl);
    kr_buf_append(out, final.data, final.len);
    kr_buf_clear(&final);
    kr_buf_clear(&sf);
    kr_buf_clear(&auth);
    OPENSSL_cleanse(salted, sizeof salted);
    OPENSSL_cleanse(client_key, sizeof client_key);
    OPENSSL_cleanse(server_key, sizeof server_key);
    c->state = SCRAM_C_FINAL_SENT;
done:
    kr_buf_clear(&salt);
    return rc;
}

/* server-final-message = (server-error / verifier) ["," extensions] */
int kr_scram_client_verify(kr_scram_client *c, const char *server_final, size_t len)
{
    if (c->state != SCRAM_C_FINAL_SENT)
        return KR_EAUTH;
    c->state = SCRAM_C_DONE; /* one verdict per exchange */
    scram_field f[SCRAM_MAX_FIELDS], v;
    if (!scram_message_ok(server_final, len))
        return KR_EAUTH;
    size_t n = scram_split(server_final, len, f, SCRAM_MAX_FIELDS);
    if (n < 1 || !scram_extensions(f + 1, n - 1))
        return KR_EAUTH;
    if (scram_attr(&f[0], 'e', &v)) {
        if (v.len > 0 && scram_utf8_valid(v.p, v.len))
            c->server_error = kr_xstrndup(v.p, v.len);
        return KR_EAUTH;
    }
    if (!scram_attr(&f[0], 'v', &v))
        return KR_EAUTH;
    kr_buf sig = KR_BUF_INIT;
    size_t hl = kr_scram_hash_len(c->hash);
    bool ok = scram_b64_value(&v, &sig) && sig.len == hl &&
              CRYPTO_memcmp(sig.data, c->server_signature, hl) == 0;
    kr_buf_clear(&sig);
    return ok ? 0 : KR_EAUTH;
}

const char *kr_scram_client_server_error(const kr_scram_client *c)
{
    return c->server_error;
}
