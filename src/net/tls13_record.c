/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * TLS 1.3 records after the handshake (see tls13_record.h). A record on the wire is a 5-byte
 * header (type application_data, legacy version 0x0303, length) and the AEAD ciphertext of
 * the content, its real content type and no padding (we never pad; we accept padding). The
 * nonce is the direction's IV XORed with its 64-bit sequence number (RFC 8446 §5.3), the
 * additional data is the header (§5.2). Keys and IVs come from the traffic secret by
 * HKDF-Expand-Label (§7.1, §7.3); a KeyUpdate replaces the secret by its "traffic upd"
 * expansion and restarts the sequence at 0 (§7.2). Invariants: a plaintext is appended to the
 * caller's buffer only after its tag was verified; a sequence number is never used twice with
 * one key (the connection fails before it could wrap).
 */
#include "net/tls13_record.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

#define HDR_LEN 5
#define MAX_PLAIN 16384
#define MAX_CIPHERTEXT (MAX_PLAIN + 256) /* RFC 8446 §5.2 */
#define TAG_LEN 16
#define IV_LEN 12
#define MAX_SECRET 48
#define CT_ALERT 21
#define CT_HANDSHAKE 22
#define CT_APPLICATION_DATA 23
#define HS_KEY_UPDATE 24
#define ALERT_CLOSE_NOTIFY 0
#define ALERT_UNEXPECTED_MESSAGE 10
#define ALERT_BAD_RECORD_MAC 20
#define ALERT_RECORD_OVERFLOW 22
#define ALERT_ILLEGAL_PARAMETER 47
#define ALERT_DECODE_ERROR 50
#define ALERT_INTERNAL_ERROR 80
#define ALERT_USER_CANCELED 90
/* §5.5: AES-GCM keys are good for 2^24.5 full records; rekey our side well before. */
#define REKEY_AFTER_RECORDS (UINT64_C(1) << 24)

typedef struct kr_tls13_dir {
    uint8_t secret[MAX_SECRET];
    uint8_t key[32];
    uint8_t iv[IV_LEN];
    uint64_t seq;
} kr_tls13_dir;

struct kr_tls13 {
    const EVP_CIPHER *(*cipher)(void);
    const EVP_MD *(*md)(void);
    uint8_t key_len;
    uint8_t secret_len;
    uint16_t max_fragment;
    bool close_sent;
    bool close_received;
    bool failed;
    const char *error;
    kr_tls13_dir rd, wr;
    kr_buf in;  /* the start of a record not complete yet */
    kr_buf out; /* protected records for the network */
};

typedef struct suite_info {
    unsigned id;
    const EVP_CIPHER *(*cipher)(void);
    const EVP_MD *(*md)(void);
    uint8_t key_len;
} suite_info;

static const suite_info suites[] = {
    {0x1301, EVP_aes_128_gcm, EVP_sha256, 16},
    {0x1302, EVP_aes_256_gcm, EVP_sha384, 32},
    {0x1303, EVP_chacha20_poly1305, EVP_sha256, 32},
};

static const suite_info *find_suite(unsigned id)
{
    for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++)
        if (suites[i].id == id)
            return &suites[i];
    return NULL;
}

size_t kr_tls13_secret_len(unsigned suite)
{
    const suite_info *s = find_suite(suite);
    return s ? (size_t)EVP_MD_get_size(s->md()) : 0;
}

/* HKDF-Expand-Label(secret, label, "", len) for len <= hash length: one HMAC block (§7.1). */
static bool expand_label(kr_tls13 *t, const uint8_t *secret, const char *label, uint8_t *out,
                         size_t len)
{
    uint8_t info[2 + 1 + 6 + 16 + 1 + 1];
    size_t ll = strlen(label);
    info[0] = (uint8_t)(len >> 8);
    info[1] = (uint8_t)len;
    info[2] = (uint8_t)(6 + ll);
    memcpy(info + 3, "tls13 ", 6);
    memcpy(info + 9, label, ll);
    info[9 + ll] = 0;  /* empty context */
    info[10 + ll] = 1; /* T(1) */
    uint8_t block[EVP_MAX_MD_SIZE];
    unsigned block_len = 0;
    if (!HMAC(t->md(), secret, t->secret_len, info, 11 + ll, block, &block_len) || block_len < len)
        return false;
    memcpy(out, block, len);
    OPENSSL_cleanse(block, sizeof(block));
    return true;
}

static bool derive_keys(kr_tls13 *t, kr_tls13_dir *d)
{
    d->seq = 0;
    return expand_label(t, d->secret, "key", d->key, t->key_len) &&
           expand_label(t, d->secret, "iv", d->iv, IV_LEN);
}

/* §7.2: application_traffic_secret_N+1 = HKDF-Expand-Label(secret_N, "traffic upd", "",
 * Hash.length) */
static bool next_secret(kr_tls13 *t, kr_tls13_dir *d)
{
    uint8_t next[MAX_SECRET];
    if (!expand_label(t, d->secret, "traffic upd", next, t->secret_len))
        return false;
    memcpy(d->secret, next, t->secret_len);
    OPENSSL_cleanse(next, sizeof(next));
    return derive_keys(t, d);
}

static void nonce_for(const kr_tls13_dir *d, uint8_t nonce[IV_LEN])
{
    memcpy(nonce, d->iv, IV_LEN);
    for (int i = 0; i < 8; i++)
        nonce[IV_LEN - 1 - i] ^= (uint8_t)(d->seq >> (8 * i));
}

kr_tls13 *kr_tls13_new(unsigned suite, const uint8_t *read_secret, uint64_t read_seq,
                       const uint8_t *write_secret, uint64_t write_seq, size_t max_fragment)
{
    const suite_info *s = find_suite(suite);
    if (!s)
        return NULL;
    kr_tls13 *t = kr_xcalloc(1, sizeof(*t));
    t->cipher = s->cipher;
    t->md = s->md;
    t->key_len = s->key_len;
    t->secret_len = (uint8_t)EVP_MD_get_size(s->md());
    t->max_fragment =
        (uint16_t)(max_fragment && max_fragment < MAX_PLAIN ? max_fragment : MAX_PLAIN);
    memcpy(t->rd.secret, read_secret, t->secret_len);
    memcpy(t->wr.secret, write_secret, t->secret_len);
    if (!derive_keys(t, &t->rd) || !derive_keys(t, &t->wr)) {
        kr_tls13_free(t);
        return NULL;
    }
    t->rd.seq = read_seq;
    t->wr.seq = write_seq;
    return t;
}

void kr_tls13_free(kr_tls13 *t)
{
    if (!t)
        return;
    kr_buf_clear(&t->in);
    kr_buf_clear(&t->out);
    OPENSSL_cleanse(t, sizeof(*t));
    free(t);
}

const char *kr_tls13_error(const kr_tls13 *t)
{
    return t->error ? t->error : "no error";
}

/* Append one record of content type `type` holding data to t->out. */
static bool seal(kr_tls13 *t, uint8_t type, const uint8_t *data, size_t len)
{
    if (len > MAX_PLAIN)
        return false;
    if (t->wr.seq == UINT64_MAX) /* §5.5: rekey or close long before; we close */
        return false;
    size_t clen = len + 1 + TAG_LEN;
    kr_buf_reserve(&t->out, HDR_LEN + clen);
    uint8_t *rec = (uint8_t *)t->out.data + t->out.len;
    rec[0] = CT_APPLICATION_DATA;
    rec[1] = 3;
    rec[2] = 3;
    rec[3] = (uint8_t)(clen >> 8);
    rec[4] = (uint8_t)clen;
    uint8_t nonce[IV_LEN];
    nonce_for(&t->wr, nonce);
    EVP_CIPHER_CTX *cx = EVP_CIPHER_CTX_new();
    uint8_t *p = rec + HDR_LEN;
    int n = 0, m = 0, k = 0, f = 0;
    bool ok = cx && EVP_EncryptInit_ex(cx, t->cipher(), NULL, t->wr.key, nonce) == 1 &&
              EVP_EncryptUpdate(cx, NULL, &n, rec, HDR_LEN) == 1 &&
              (len == 0 || EVP_EncryptUpdate(cx, p, &m, data, (int)len) == 1) &&
              EVP_EncryptUpdate(cx, p + m, &k, &type, 1) == 1 &&
              EVP_EncryptFinal_ex(cx, p + m + k, &f) == 1 && (size_t)(m + k + f) == len + 1 &&
              EVP_CIPHER_CTX_ctrl(cx, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, p + len + 1) == 1;
    EVP_CIPHER_CTX_free(cx);
    if (!ok)
        return false;
    t->wr.seq++;
    t->out.len += HDR_LEN + clen;
    t->out.data[t->out.len] = '\0';
    return true;
}

/* A fatal alert, then nothing more is read or written. */
static int fail(kr_tls13 *t, uint8_t alert, const char *why)
{
    if (!t->failed && !t->close_sent) {
        uint8_t a[2] = {2, alert};
        seal(t, CT_ALERT, a, sizeof(a));
    }
    t->failed = true;
    t->error = why;
    return KR_TLS13_ERROR;
}

int kr_tls13_write_record(kr_tls13 *t, uint8_t type, const void *data, size_t len)
{
    if (t->failed || t->close_sent || !seal(t, type, data, len))
        return -1;
    return 0;
}

int kr_tls13_key_update(kr_tls13 *t, bool request_peer)
{
    if (t->failed || t->close_sent)
        return -1;
    uint8_t ku[5] = {HS_KEY_UPDATE, 0, 0, 1, request_peer ? 1 : 0};
    if (!seal(t, CT_HANDSHAKE, ku, sizeof(ku)) || !next_secret(t, &t->wr)) {
        fail(t, ALERT_INTERNAL_ERROR, "cannot update the write key");
        return -1;
    }
    return 0;
}

int kr_tls13_write(kr_tls13 *t, const char *data, size_t len)
{
    if (t->failed || t->close_sent)
        return -1;
    while (len > 0) {
        if (t->wr.seq >= REKEY_AFTER_RECORDS && kr_tls13_key_update(t, false) != 0)
            return -1;
        size_t chunk = len < t->max_fragment ? len : t->max_fragment;
        if (!seal(t, CT_APPLICATION_DATA, (const uint8_t *)data, chunk)) {
            fail(t, ALERT_INTERNAL_ERROR, "cannot protect a record");
            return -1;
        }
        data += chunk;
        len -= chunk;
    }
    return 0;
}

void kr_tls13_close_notify(kr_tls13 *t)
{
    if (t->failed || t->close_sent)
        return;
    uint8_t a[2] = {1, ALERT_CLOSE_NOTIFY};
    seal(t, CT_ALERT, a, sizeof(a));
    t->close_sent = true;
}

/* §4.6.3. A KeyUpdate changes the read key, so it must end its record (§5.1: handshake
 * messages must not span a key change); any other handshake message is unexpected now. */
static int key_update(kr_tls13 *t, const uint8_t *p, size_t len)
{
    if (len < 4 || p[0] != HS_KEY_UPDATE)
        return fail(t, ALERT_UNEXPECTED_MESSAGE, "handshake message after the handshake");
    if (p[1] != 0 || p[2] != 0 || p[3] != 1 || len < 5)
        return fail(t, ALERT_DECODE_ERROR, "bad KeyUpdate");
    if (len != 5)
        return fail(t, ALERT_UNEXPECTED_MESSAGE, "data after a KeyUpdate in its record");
    uint8_t request = p[4];
    if (request > 1)
        return fail(t, ALERT_ILLEGAL_PARAMETER, "bad KeyUpdate request");
    if (!next_secret(t, &t->rd))
        return fail(t, ALERT_INTERNAL_ERROR, "cannot derive the next read key");
    /* Answer under the old key, then switch ours. */
    if (request == 1 && !t->close_sent && kr_tls13_key_update(t, false) != 0)
        return KR_TLS13_ERROR;
    return KR_TLS13_OK;
}

static int alert(kr_tls13 *t, const uint8_t *p, size_t len)
{
    if (len != 2)
        return fail(t, ALERT_DECODE_ERROR, "bad alert");
    if (p[1] == ALERT_CLOSE_NOTIFY) {
        t->close_received = true; /* §6.1: anything after it is ignored */
        return KR_TLS13_CLOSED;
    }
    if (p[1] == ALERT_USER_CANCELED)
        return KR_TLS13_OK; /* §6.1: a warning; close_notify follows */
    t->failed = true;
    t->error = "the peer sent a fatal alert";
    return KR_TLS13_ERROR;
}

/* Open one complete record (header at rec, body of blen bytes) into plain. */
static int open_record(kr_tls13 *t, const uint8_t *rec, size_t blen, kr_buf *plain)
{
    if (t->rd.seq == UINT64_MAX)
        return fail(t, ALERT_UNEXPECTED_MESSAGE, "read sequence exhausted");
    size_t clen = blen - TAG_LEN;
    kr_buf_reserve(plain, clen);
    uint8_t *out = (uint8_t *)plain->data + plain->len;
    uint8_t nonce[IV_LEN];
    nonce_for(&t->rd, nonce);
    EVP_CIPHER_CTX *cx = EVP_CIPHER_CTX_new();
    int n = 0, m = 0, f = 0;
    bool ok = cx && EVP_DecryptInit_ex(cx, t->cipher(), NULL, t->rd.key, nonce) == 1 &&
              EVP_DecryptUpdate(cx, NULL, &n, rec, HDR_LEN) == 1 &&
              (clen == 0 || EVP_DecryptUpdate(cx, out, &m, rec + HDR_LEN, (int)clen) == 1) &&
              EVP_CIPHER_CTX_ctrl(cx, EVP_CTRL_AEAD_SET_TAG, TAG_LEN,
                                  (void *)(rec + HDR_LEN + clen)) == 1 &&
              EVP_DecryptFinal_ex(cx, out + m, &f) == 1 && (size_t)(m + f) == clen;
    EVP_CIPHER_CTX_free(cx);
    if (!ok) {
        OPENSSL_cleanse(out, clen);
        return fail(t, ALERT_BAD_RECORD_MAC, "a record did not authenticate");
    }
    t->rd.seq++;
    /* §5.4: the content type is the last non-zero byte; zeros after it are padding. */
    size_t end = clen;
    while (end > 0 && out[end - 1] == 0)
        end--;
    if (end == 0)
        return fail(t, ALERT_UNEXPECTED_MESSAGE, "record without a content type");
    uint8_t type = out[end - 1];
    size_t len = end - 1;
    if (len > MAX_PLAIN)
        return fail(t, ALERT_RECORD_OVERFLOW, "record too long");
    int r;
    switch (type) {
    case CT_APPLICATION_DATA:
        plain->len += len;
        r = KR_TLS13_OK;
        break;
    case CT_ALERT:
        r = alert(t, out, len);
        break;
    case CT_HANDSHAKE:
        r = key_update(t, out, len);
        break;
    default:
        r = fail(t, ALERT_UNEXPECTED_MESSAGE, "unexpected content type");
        break;
    }
    if (type != CT_APPLICATION_DATA)
        OPENSSL_cleanse(out, clen);
    plain->data[plain->len] = '\0';
    return r;
}

/* Open every complete record in p[0..len); *used: the bytes they took. */
static int open_records(kr_tls13 *t, const uint8_t *p, size_t len, size_t *used, kr_buf *plain)
{
    size_t off = 0;
    int r = KR_TLS13_OK;
    while (r == KR_TLS13_OK && len - off >= HDR_LEN) {
        const uint8_t *rec = p + off;
        size_t blen = (size_t)rec[3] << 8 | rec[4];
        if (rec[0] != CT_APPLICATION_DATA) {
            r = fail(t, ALERT_UNEXPECTED_MESSAGE, "plaintext record after the handshake");
            break;
        }
        if (blen > MAX_CIPHERTEXT) {
            r = fail(t, ALERT_RECORD_OVERFLOW, "record too long");
            break;
        }
        if (blen < TAG_LEN + 1) {
            r = fail(t, ALERT_DECODE_ERROR, "record too short");
            break;
        }
        if (len - off < HDR_LEN + blen)
            break;
        r = open_record(t, rec, blen, plain);
        off += HDR_LEN + blen;
    }
    *used = off;
    return r;
}

int kr_tls13_feed(kr_tls13 *t, const char *data, size_t len, kr_buf *plain)
{
    if (t->failed)
        return KR_TLS13_ERROR;
    if (t->close_received)
        return KR_TLS13_CLOSED;
    if (len == 0)
        return KR_TLS13_OK;
    size_t used = 0;
    int r;
    if (t->in.len == 0) { /* the usual case: records straight from the read buffer */
        r = open_records(t, (const uint8_t *)data, len, &used, plain);
        if (r == KR_TLS13_OK && used < len)
            kr_buf_append(&t->in, data + used, len - used);
        return r;
    }
    kr_buf_append(&t->in, data, len);
    r = open_records(t, (const uint8_t *)t->in.data, t->in.len, &used, plain);
    kr_buf_consume(&t->in, used);
    return r;
}

size_t kr_tls13_pending_out(kr_tls13 *t, kr_buf *out)
{
    size_t n = t->out.len;
    if (n == 0)
        return 0;
    if (out->len == 0 && out->cap < t->out.cap) { /* hand the storage over, no copy */
        kr_buf tmp = *out;
        *out = t->out;
        t->out = tmp;
    } else {
        kr_buf_append(out, t->out.data, n);
    }
    t->out.len = 0;
    if (t->out.data)
        t->out.data[0] = '\0';
    return n;
}

void kr_tls13_trim(kr_tls13 *t)
{
    if (t->in.len == 0)
        kr_buf_clear(&t->in);
    if (t->out.len == 0)
        kr_buf_clear(&t->out);
}
