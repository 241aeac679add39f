/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Does a certificate identify an XMPP server domain? RFC 6125 §6 as RFC 6120
 * §13.7.1.2 profiles it for server-to-server streams. Reference identifiers
 * are the domain itself (DNS-ID, with a wildcard allowed only as the whole
 * left-most label: "*.example.org" matches "a.example.org", not
 * "example.org" nor "a.b.example.org"), the SRV-ID "_xmpp-server.DOMAIN"
 * (RFC 4985 otherName id-on-dnsSRV) and the XmppAddr "DOMAIN" (otherName
 * id-on-xmppAddr 1.3.6.1.5.5.7.8.5, RFC 6120 §13.7.1.4). The subject CN is
 * consulted only when the certificate has no subjectAltName of those three
 * types (RFC 6125 §6.4.4). Pure: no I/O, no trust decisions (chain
 * verification is OpenSSL's, see tls.h); thread-safe.
 */
#ifndef KR_NET_CERTID_H
#define KR_NET_CERTID_H

#include <openssl/x509.h>

/** Which kind of identifier matched (KR_CERTID_NONE: none did). */
typedef enum kr_certid_match {
    KR_CERTID_NONE = 0,
    KR_CERTID_DNS,      /* subjectAltName dNSName */
    KR_CERTID_SRV,      /* subjectAltName otherName SRVName "_xmpp-server.DOMAIN" */
    KR_CERTID_XMPPADDR, /* subjectAltName otherName XmppAddr */
    KR_CERTID_CN,       /* subject common name, no SAN of the three types present */
} kr_certid_match;

/** Match a prepared (lower-case ASCII or A-label) domain against cert. Borrows both. */
kr_certid_match kr_certid_check(X509 *cert, const char *domain);

/** "DNS-ID", "SRV-ID", "XmppAddr", "CN" or "none", for logs. */
const char *kr_certid_match_name(kr_certid_match m);

#endif
