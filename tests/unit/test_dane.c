/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Tests of net/dane.c with certificates made here: a CA, a leaf it signed, an
 * unrelated self-signed leaf, and TLSA records computed from them, so each
 * usage/selector/matching type is checked both to match and to refuse.
 */
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "net/dane.h"

typedef struct pki {
    EVP_PKEY *ca_key, *leaf_key, *other_key;
    X509 *ca, *leaf, *other;
} pki;

static void add_ext(X509 *c, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, c, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(c, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, bool ca,
                       long serial)
{
    X509 *c = X509_new();
    assert_non_null(c);
    X509_set_version(c, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(c), serial);
    X509_gmtime_adj(X509_getm_notBefore(c), -3600);
    X509_gmtime_adj(X509_getm_notAfter(c), 86400);
    X509_NAME *name = X509_get_subject_name(c);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : name);
    X509_set_pubkey(c, key);
    add_ext(c, issuer ? issuer : c, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
    if (ca)
        add_ext(c, c, NID_key_usage, "critical,keyCertSign,cRLSign");
    assert_true(X509_sign(c, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
    return c;
}

static int setup(void **state)
{
    pki *p = calloc(1, sizeof *p);
    p->ca_key = EVP_EC_gen("P-256");
    p->leaf_key = EVP_EC_gen("P-256");
    p->other_key = EVP_EC_gen("P-256");
    p->ca = make_cert("Test DANE CA", p->ca_key, NULL, NULL, true, 1);
    p->leaf = make_cert("xmpp.example.test", p->leaf_key, p->ca, p->ca_key, false, 2);
    p->other = make_cert("xmpp.example.test", p->other_key, NULL, NULL, false, 3);
    *state = p;
    return 0;
}

static int teardown(void **state)
{
    pki *p = *state;
    X509_free(p->ca);
    X509_free(p->leaf);
    X509_free(p->other);
    EVP_PKEY_free(p->ca_key);
    EVP_PKEY_free(p->leaf_key);
    EVP_PKEY_free(p->other_key);
    free(p);
    return 0;
}

/* A TLSA record for cert c; data is in buf (caller's storage). */
static kr_tlsa record(X509 *c, uint8_t usage, uint8_t selector, uint8_t mtype, uint8_t *buf,
                      size_t buflen)
{
    unsigned char *der = NULL;
    int len = selector == 0 ? i2d_X509(c, &der) : i2d_X509_PUBKEY(X509_get_X509_PUBKEY(c), &der);
    assert_true(len > 0);
    kr_tlsa t = {.usage = usage, .selector = selector, .mtype = mtype, .data = buf};
    if (mtype == 0) {
        assert_true((size_t)len <= buflen);
        memcpy(buf, der, (size_t)len);
        t.len = (size_t)len;
    } else {
        unsigned dlen = 0;
        assert_int_equal(EVP_Digest(der, (size_t)len, buf, &dlen,
                                    mtype == 1 ? EVP_sha256() : EVP_sha512(), NULL),
                         1);
        t.len = dlen;
    }
    OPENSSL_free(der);
    return t;
}

static STACK_OF(X509) * chain_of(X509 *a, X509 *b)
{
    STACK_OF(X509) *sk = sk_X509_new_null();
    if (a)
        sk_X509_push(sk, a);
    if (b)
        sk_X509_push(sk, b);
    return sk;
}

static void test_dane_ee_all_selectors_and_types(void **state)
{
    pki *p = *state;
    uint8_t buf[4096];
    for (uint8_t sel = 0; sel <= 1; sel++) {
        for (uint8_t mt = 0; mt <= 2; mt++) {
            kr_tlsa t = record(p->leaf, 3, sel, mt, buf, sizeof buf);
            assert_true(kr_tlsa_has_usable(&t, 1));
            assert_int_equal(kr_tlsa_match(&t, 1, p->leaf, NULL), KR_TLSA_USAGE_DANE_EE);
            /* another certificate (even with the same name) does not match */
            assert_int_equal(kr_tlsa_match(&t, 1, p->other, NULL), 0);
        }
    }
}

static void test_dane_ee_mismatched_digest_refused(void **state)
{
    pki *p = *state;
    uint8_t buf[64];
    kr_tlsa t = record(p->leaf, 3, 1, 1, buf, sizeof buf);
    buf[5] ^= 0x40;
    assert_int_equal(kr_tlsa_match(&t, 1, p->leaf, NULL), 0);
    /* the SHA-256 of the certificate given as a SHA-256 of the key does not match */
    kr_tlsa c = record(p->leaf, 3, 0, 1, buf, sizeof buf);
    c.selector = 1;
    assert_int_equal(kr_tlsa_match(&c, 1, p->leaf, NULL), 0);
    /* a digest of the wrong length is unusable */
    kr_tlsa s = record(p->leaf, 3, 1, 1, buf, sizeof buf);
    s.mtype = 2;
    assert_false(kr_tlsa_has_usable(&s, 1));
    assert_int_equal(kr_tlsa_match(&s, 1, p->leaf, NULL), 0);
}

static void test_dane_ta_needs_anchor_in_chain_and_signature(void **state)
{
    pki *p = *state;
    uint8_t buf[64];
    kr_tlsa t = record(p->ca, 2, 1, 1, buf, sizeof buf);
    STACK_OF(X509) *full = chain_of(p->leaf, p->ca);
    STACK_OF(X509) *no_ca = chain_of(p->leaf, NULL);
    STACK_OF(X509) *wrong = chain_of(p->other, p->ca);
    assert_int_equal(kr_tlsa_match(&t, 1, p->leaf, full), KR_TLSA_USAGE_DANE_TA);
    assert_int_equal(kr_tlsa_match(&t, 1, p->leaf, no_ca), 0);
    /* the anchor was sent, but this certificate was not issued by it */
    assert_int_equal(kr_tlsa_match(&t, 1, p->other, wrong), 0);
    /* a DANE-TA record naming the leaf itself is no anchor */
    kr_tlsa leaf_ta = record(p->leaf, 2, 1, 1, buf, sizeof buf);
    assert_int_equal(kr_tlsa_match(&leaf_ta, 1, p->leaf, full), 0);
    /* a DANE-EE record naming the CA does not pin the leaf */
    kr_tlsa ca_ee = record(p->ca, 3, 0, 2, buf, sizeof buf);
    assert_int_equal(kr_tlsa_match(&ca_ee, 1, p->leaf, full), 0);
    sk_X509_free(full);
    sk_X509_free(no_ca);
    sk_X509_free(wrong);
}

static void test_pkix_usages_are_unusable(void **state)
{
    pki *p = *state;
    uint8_t b0[64], b1[64];
    kr_tlsa recs[2] = {record(p->ca, 0, 1, 1, b0, sizeof b0),
                       record(p->leaf, 1, 1, 1, b1, sizeof b1)};
    STACK_OF(X509) *full = chain_of(p->leaf, p->ca);
    assert_false(kr_tlsa_has_usable(recs, 2));
    assert_int_equal(kr_tlsa_match(recs, 2, p->leaf, full), 0);
    sk_X509_free(full);
}

static void test_one_matching_record_among_many(void **state)
{
    pki *p = *state;
    uint8_t b0[64], b1[64], b2[64];
    kr_tlsa recs[3] = {record(p->other, 3, 1, 1, b0, sizeof b0),
                       {.usage = 3, .selector = 7, .mtype = 1, .data = b1, .len = 32},
                       record(p->leaf, 3, 1, 2, b2, sizeof b2)};
    assert_true(kr_tlsa_has_usable(recs, 3));
    assert_int_equal(kr_tlsa_match(recs, 3, p->leaf, NULL), KR_TLSA_USAGE_DANE_EE);
    assert_int_equal(kr_tlsa_match(recs, 2, p->leaf, NULL), 0);
    assert_int_equal(kr_tlsa_match(NULL, 0, p->leaf, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dane_ee_all_selectors_and_types),
        cmocka_unit_test(test_dane_ee_mismatched_digest_refused),
        cmocka_unit_test(test_dane_ta_needs_anchor_in_chain_and_signature),
        cmocka_unit_test(test_pkix_usages_are_unusable),
        cmocka_unit_test(test_one_matching_record_among_many),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
