/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * TLSA matching (see dane.h). A record is compared with the DER encoding of
 * a whole certificate (selector 0) or of its SubjectPublicKeyInfo (selector
 * 1), either exactly (matching type 0) or through SHA-256/SHA-512 (1/2). For
 * DANE-TA the anchor must be one of the certificates the peer sent, and the
 * peer's certificate must verify up to it with OpenSSL's path building; the
 * anchor itself is trusted as given (X509_V_FLAG_PARTIAL_CHAIN).
 */
#include "net/dane.h"

#include <openssl/evp.h>
#include <openssl/x509_vfy.h>
#include <string.h>

/* Full certificates above this size are not worth comparing (and no TLSA RDATA is larger). */
#define KR_TLSA_MAX_DER 65535

static size_t mtype_len(uint8_t mtype)
{
    switch (mtype) {
    case KR_TLSA_MTYPE_SHA256:
        return 32;
    case KR_TLSA_MTYPE_SHA512:
        return 64;
    default:
        return 0;
    }
}

static bool tlsa_usable(const kr_tlsa *t)
{
    if (t->usage != KR_TLSA_USAGE_DANE_TA && t->usage != KR_TLSA_USAGE_DANE_EE)
        return false;
    if (t->selector != KR_TLSA_SELECTOR_CERT && t->selector != KR_TLSA_SELECTOR_SPKI)
        return false;
    if (t->mtype == KR_TLSA_MTYPE_FULL)
        return t->len > 0 && t->data != NULL;
    return mtype_len(t->mtype) != 0 && t->len == mtype_len(t->mtype) && t->data != NULL;
}

bool kr_tlsa_has_usable(const kr_tlsa *recs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (tlsa_usable(&recs[i]))
            return true;
    return false;
}

/* DER of the selected part of c; caller frees with OPENSSL_free. Returns length or -1. */
static int selected_der(X509 *c, uint8_t selector, unsigned char **out)
{
    *out = NULL;
    int len = -1;
    if (selector == KR_TLSA_SELECTOR_CERT)
        len = i2d_X509(c, out);
    else if (selector == KR_TLSA_SELECTOR_SPKI)
        len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(c), out);
    if (len <= 0 || len > KR_TLSA_MAX_DER) {
        OPENSSL_free(*out);
        *out = NULL;
        return -1;
    }
    return len;
}

static bool tlsa_matches_cert(const kr_tlsa *t, X509 *c)
{
    unsigned char *der;
    int len = selected_der(c, t->selector, &der);
    if (len < 0)
        return false;
    bool ok = false;
    if (t->mtype == KR_TLSA_MTYPE_FULL) {
        ok = (size_t)len == t->len && memcmp(der, t->data, t->len) == 0;
    } else {
        const EVP_MD *md = t->mtype == KR_TLSA_MTYPE_SHA256 ? EVP_sha256() : EVP_sha512();
        unsigned char dig[EVP_MAX_MD_SIZE];
        unsigned dlen = 0;
        if (EVP_Digest(der, (size_t)len, dig, &dlen, md, NULL) == 1)
            ok = dlen == t->len && memcmp(dig, t->data, dlen) == 0;
    }
    OPENSSL_free(der);
    return ok;
}

/* Does cert verify up to anchor, using chain for intermediates? */
static bool chains_to(X509 *cert, STACK_OF(X509) * chain, X509 *anchor)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    bool ok = false;
    if (store && ctx && X509_STORE_add_cert(store, anchor) == 1 &&
        X509_STORE_CTX_init(ctx, store, cert, chain) == 1) {
        X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_PARTIAL_CHAIN);
        ok = X509_verify_cert(ctx) == 1;
    }
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return ok;
}

int kr_tlsa_match(const kr_tlsa *recs, size_t n, X509 *cert, STACK_OF(X509) * chain)
{
    if (!recs || !cert)
        return 0;
    /* DANE-EE first: it needs no path building. */
    for (size_t i = 0; i < n; i++)
        if (recs[i].usage == KR_TLSA_USAGE_DANE_EE && tlsa_usable(&recs[i]) &&
            tlsa_matches_cert(&recs[i], cert))
            return KR_TLSA_USAGE_DANE_EE;
    int count = chain ? sk_X509_num(chain) : 0;
    for (int k = 0; k < count; k++) {
        X509 *ca = sk_X509_value(chain, k);
        if (X509_cmp(ca, cert) == 0)
            continue; /* the leaf is no trust anchor; DANE-EE covers it */
        for (size_t i = 0; i < n; i++) {
            if (recs[i].usage != KR_TLSA_USAGE_DANE_TA || !tlsa_usable(&recs[i]))
                continue;
            if (tlsa_matches_cert(&recs[i], ca) && chains_to(cert, chain, ca))
                return KR_TLSA_USAGE_DANE_TA;
        }
    }
    return 0;
}
