/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * RFC 6125 identity checks of server certificates (see certid.h). Names in
 * certificates are compared case-insensitively as ASCII (IDNs are carried as
 * A-labels, RFC 6125 §6.4.2); a name with an embedded NUL or a wildcard
 * anywhere but as the whole left-most label matches nothing.
 */
#include "net/certid.h"

#include <openssl/asn1.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#define KR_OID_XMPPADDR "1.3.6.1.5.5.7.8.5"
#define KR_OID_SRVNAME "1.3.6.1.5.5.7.8.7"
#define KR_SRV_PREFIX "_xmpp-server."

/* The string's bytes when it holds no NUL, else NULL. */
static const char *kr_certid_text(const ASN1_STRING *s, size_t *len)
{
    const unsigned char *d = ASN1_STRING_get0_data(s);
    int n = ASN1_STRING_length(s);
    if (!d || n <= 0 || memchr(d, '\0', (size_t)n))
        return NULL;
    *len = (size_t)n;
    return (const char *)d;
}

static bool kr_certid_equal(const char *name, size_t len, const char *domain)
{
    size_t dlen = strlen(domain);
    if (len > 0 && name[len - 1] == '.') /* a fully qualified name's root dot */
        len--;
    return len == dlen && strncasecmp(name, domain, len) == 0;
}

/* DNS-ID (or CN) matching with the wildcard rule of RFC 6125 §6.4.3. */
static bool kr_certid_dns_match(const char *name, size_t len, const char *domain)
{
    if (len >= 2 && name[0] == '*' && name[1] == '.') {
        const char *dot = strchr(domain, '.');
        if (!dot || dot == domain)
            return false;
        /* The rest must be at least two labels: "*.com" matches nothing. */
        if (!memchr(name + 2, '.', len - 2))
            return false;
        if (memchr(name + 2, '*', len - 2))
            return false;
        return kr_certid_equal(name + 2, len - 2, dot + 1);
    }
    if (memchr(name, '*', len))
        return false;
    return kr_certid_equal(name, len, domain);
}

static bool kr_certid_other_is(const OTHERNAME *on, const char *oid)
{
    char buf[64];
    if (OBJ_obj2txt(buf, sizeof(buf), on->type_id, 1) <= 0)
        return false;
    return strcmp(buf, oid) == 0;
}

/* One otherName: XmppAddr (UTF8String) or SRVName (IA5String). *relevant is set when it is
 * one of the two types. */
static kr_certid_match kr_certid_other(const OTHERNAME *on, const char *domain, bool *relevant)
{
    size_t len;
    const char *s;
    if (kr_certid_other_is(on, KR_OID_XMPPADDR)) {
        *relevant = true;
        if (on->value->type != V_ASN1_UTF8STRING)
            return KR_CERTID_NONE;
        s = kr_certid_text(on->value->value.utf8string, &len);
        return s && kr_certid_equal(s, len, domain) ? KR_CERTID_XMPPADDR : KR_CERTID_NONE;
    }
    if (kr_certid_other_is(on, KR_OID_SRVNAME)) {
        *relevant = true;
        if (on->value->type != V_ASN1_IA5STRING)
            return KR_CERTID_NONE;
        s = kr_certid_text(on->value->value.ia5string, &len);
        size_t plen = strlen(KR_SRV_PREFIX);
        if (!s || len <= plen || strncasecmp(s, KR_SRV_PREFIX, plen) != 0)
            return KR_CERTID_NONE;
        /* No wildcards in SRV-IDs. */
        return kr_certid_equal(s + plen, len - plen, domain) ? KR_CERTID_SRV : KR_CERTID_NONE;
    }
    return KR_CERTID_NONE;
}

static kr_certid_match kr_certid_sans(X509 *cert, const char *domain, bool *relevant)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    if (!names)
        return KR_CERTID_NONE;
    kr_certid_match found = KR_CERTID_NONE;
    for (int i = 0; i < sk_GENERAL_NAME_num(names) && !found; i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type == GEN_DNS) {
            *relevant = true;
            size_t len;
            const char *s = kr_certid_text(gn->d.dNSName, &len);
            if (s && kr_certid_dns_match(s, len, domain))
                found = KR_CERTID_DNS;
        } else if (gn->type == GEN_OTHERNAME) {
            found = kr_certid_other(gn->d.otherName, domain, relevant);
        }
    }
    GENERAL_NAMES_free(names);
    return found;
}

static kr_certid_match kr_certid_cn(X509 *cert, const char *domain)
{
    const X509_NAME *subject = X509_get_subject_name(cert);
    for (int i = -1; (i = X509_NAME_get_index_by_NID(subject, NID_commonName, i)) >= 0;) {
        const ASN1_STRING *d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i));
        unsigned char *utf8 = NULL;
        int n = ASN1_STRING_to_UTF8(&utf8, d);
        bool ok = n > 0 && !memchr(utf8, '\0', (size_t)n) &&
                  kr_certid_dns_match((const char *)utf8, (size_t)n, domain);
        OPENSSL_free(utf8);
        if (ok)
            return KR_CERTID_CN;
    }
    return KR_CERTID_NONE;
}

kr_certid_match kr_certid_check(X509 *cert, const char *domain)
{
    if (!cert || !domain || !*domain)
        return KR_CERTID_NONE;
    bool relevant = false;
    kr_certid_match m = kr_certid_sans(cert, domain, &relevant);
    if (m != KR_CERTID_NONE || relevant)
        return m;
    return kr_certid_cn(cert, domain);
}

const char *kr_certid_match_name(kr_certid_match m)
{
    switch (m) {
    case KR_CERTID_DNS:
        return "DNS-ID";
    case KR_CERTID_SRV:
        return "SRV-ID";
    case KR_CERTID_XMPPADDR:
        return "XmppAddr";
    case KR_CERTID_CN:
        return "CN";
    case KR_CERTID_NONE:
        break;
    }
    return "none";
}
