/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Unit tests of the RFC 6125 identity checks (src/net/certid.c). Each test
 * builds its certificate in-process with OpenSSL (an EC P-256 key, a subject
 * CN and the subjectAltNames it names), so the cases read as the certificate
 * they check: DNS-IDs with and without the left-most-label wildcard, SRV-IDs
 * (_xmpp-server), XmppAddr (id-on-xmppAddr), and the CN fallback that applies
 * only when no SAN of those types is present.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "net/certid.h"

static EVP_PKEY *key;

static int setup(void **state)
{
    key = EVP_EC_gen("P-256");
    return key ? 0 : -1;
}

static int teardown(void **state)
{
    EVP_PKEY_free(key);
    return 0;
}

/* A self-signed certificate with subject CN=cn (NULL: none) and, when san is given, a
 * subjectAltName in OpenSSL's config syntax ("DNS:a.example, otherName:OID;UTF8:x"). */
static X509 *make_cert(const char *cn, const char *san)
{
    X509 *x = X509_new();
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"Kurier test", -1,
                               -1, 0);
    if (cn)
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                   0);
    X509_set_issuer_name(x, name);
    if (san) {
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
        assert_non_null(ext);
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    return x;
}

static void check(const char *cn, const char *san, const char *domain, kr_certid_match want)
{
    X509 *x = make_cert(cn, san);
    assert_int_equal(kr_certid_check(x, domain), want);
    X509_free(x);
}

static void dns_id_matches_exactly_and_ignores_case(void **state)
{
    check(NULL, "DNS:other.test", "other.test", KR_CERTID_DNS);
    check(NULL, "DNS:Other.TEST", "other.test", KR_CERTID_DNS);
    check(NULL, "DNS:other.test.", "other.test", KR_CERTID_DNS);
    check(NULL, "DNS:other.test", "another.test", KR_CERTID_NONE);
    check(NULL, "DNS:other.test", "x.other.test", KR_CERTID_NONE);
    check(NULL, "DNS:a.test, DNS:b.test", "b.test", KR_CERTID_DNS);
}

static void wildcard_covers_exactly_one_left_most_label(void **state)
{
    check(NULL, "DNS:*.example.org", "chat.example.org", KR_CERTID_DNS);
    check(NULL, "DNS:*.example.org", "example.org", KR_CERTID_NONE);
    check(NULL, "DNS:*.example.org", "a.chat.example.org", KR_CERTID_NONE);
    check(NULL, "DNS:*.org", "example.org", KR_CERTID_NONE);
    check(NULL, "DNS:c*.example.org", "chat.example.org", KR_CERTID_NONE);
    check(NULL, "DNS:chat.*.org", "chat.example.org", KR_CERTID_NONE);
}

static void srv_id_for_xmpp_server_matches(void **state)
{
    check(NULL, "otherName:1.3.6.1.5.5.7.8.7;IA5:_xmpp-server.other.test", "other.test",
          KR_CERTID_SRV);
    check(NULL, "otherName:1.3.6.1.5.5.7.8.7;IA5:_xmpp-client.other.test", "other.test",
          KR_CERTID_NONE);
    check(NULL, "otherName:1.3.6.1.5.5.7.8.7;IA5:_xmpp-server.*.test", "other.test",
          KR_CERTID_NONE);
}

static void xmpp_addr_matches_the_domain(void **state)
{
    check(NULL, "otherName:1.3.6.1.5.5.7.8.5;UTF8:other.test", "other.test",
          KR_CERTID_XMPPADDR);
    check(NULL, "otherName:1.3.6.1.5.5.7.8.5;UTF8:user@other.test", "other.test",
          KR_CERTID_NONE);
    /* The right type inside the wrong OID is not an XmppAddr. */
    check(NULL, "otherName:1.3.6.1.4.1.99999.1;UTF8:other.test", "other.test", KR_CERTID_NONE);
}

static void cn_is_used_only_without_relevant_sans(void **state)
{
    check("other.test", NULL, "other.test", KR_CERTID_CN);
    check("*.example.org", NULL, "a.example.org", KR_CERTID_CN);
    check("other.test", "DNS:else.test", "other.test", KR_CERTID_NONE);
    check("other.test", "otherName:1.3.6.1.5.5.7.8.5;UTF8:else.test", "other.test",
          KR_CERTID_NONE);
    /* An e-mail SAN is not one of the three types: the CN still counts. */
    check("other.test", "email:admin@other.test", "other.test", KR_CERTID_CN);
    check("else.test", NULL, "other.test", KR_CERTID_NONE);
    check(NULL, NULL, "other.test", KR_CERTID_NONE);
}

static void embedded_nul_matches_nothing(void **state)
{
    X509 *x = make_cert(NULL, NULL);
    GENERAL_NAMES *names = GENERAL_NAMES_new();
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *s = ASN1_IA5STRING_new();
    ASN1_STRING_set(s, "other.test\0.evil", 16);
    GENERAL_NAME_set0_value(gn, GEN_DNS, s);
    sk_GENERAL_NAME_push(names, gn);
    X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT);
    GENERAL_NAMES_free(names);
    assert_int_equal(kr_certid_check(x, "other.test"), KR_CERTID_NONE);
    X509_free(x);
}

static void bad_arguments_match_nothing(void **state)
{
    X509 *x = make_cert("other.test", NULL);
    assert_int_equal(kr_certid_check(NULL, "other.test"), KR_CERTID_NONE);
    assert_int_equal(kr_certid_check(x, ""), KR_CERTID_NONE);
    assert_int_equal(kr_certid_check(x, NULL), KR_CERTID_NONE);
    assert_string_equal(kr_certid_match_name(KR_CERTID_SRV), "SRV-ID");
    assert_string_equal(kr_certid_match_name(KR_CERTID_NONE), "none");
    X509_free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dns_id_matches_exactly_and_ignores_case),
        cmocka_unit_test(wildcard_covers_exactly_one_left_most_label),
        cmocka_unit_test(srv_id_for_xmpp_server_matches),
        cmocka_unit_test(xmpp_addr_matches_the_domain),
        cmocka_unit_test(cn_is_used_only_without_relevant_sans),
        cmocka_unit_test(embedded_nul_matches_nothing),
        cmocka_unit_test(bad_arguments_match_nothing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
