/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * DANE (RFC 6698, updated by RFC 7671): TLSA records as the resolver returns
 * them, and matching a peer's certificate chain against them. Only the two
 * usages that need no public CA are implemented, as RFC 7672 §3.1 and RFC
 * 7673 recommend for server-to-server protocols: DANE-EE(3), which pins
 * the peer's own certificate or key (names and validity dates are not
 * checked, RFC 7671 §5.1), and DANE-TA(2), which names a trust anchor the
 * peer must chain to (the caller still checks names per RFC 6125). PKIX-TA(0)
 * and PKIX-EE(1) records are "unusable" here and ignored.
 * Everything here is pure: no I/O, no global state, safe on any thread.
 */
#ifndef KR_NET_DANE_H
#define KR_NET_DANE_H

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** One TLSA record (RFC 6698 §2.1). data is owned by whoever owns the array. */
typedef struct kr_tlsa {
    uint8_t usage, selector, mtype;
    uint8_t *data;
    size_t len;
} kr_tlsa;

enum {
    KR_TLSA_USAGE_PKIX_TA = 0,
    KR_TLSA_USAGE_PKIX_EE = 1,
    KR_TLSA_USAGE_DANE_TA = 2,
    KR_TLSA_USAGE_DANE_EE = 3,
    KR_TLSA_SELECTOR_CERT = 0,
    KR_TLSA_SELECTOR_SPKI = 1,
    KR_TLSA_MTYPE_FULL = 0,
    KR_TLSA_MTYPE_SHA256 = 1,
    KR_TLSA_MTYPE_SHA512 = 2,
};

/**
 * True when at least one record is usable by kr_tlsa_match() (usage 2 or 3, selector 0 or 1,
 * matching type 0-2 with the digest's length). RFC 7671/7672: a secure TLSA RRset without
 * usable records means "authenticate as if there were no TLSA records".
 */
bool kr_tlsa_has_usable(const kr_tlsa *recs, size_t n);

/**
 * Match the peer's certificate against TLSA records. chain is the peer's chain as OpenSSL
 * gives it (SSL_get_peer_cert_chain(); it may or may not begin with cert) and may be NULL.
 * Returns KR_TLSA_USAGE_DANE_EE when a DANE-EE record matches cert itself,
 * KR_TLSA_USAGE_DANE_TA when a DANE-TA record matches a certificate of chain that cert
 * verifies up to (signatures and validity dates; the anchor is trusted as is), and 0 when
 * nothing matches: then the peer must not be authenticated by DANE. After a DANE-TA match
 * the caller must still check the reference identifiers (RFC 7671 §5.2); after a DANE-EE
 * match it must not (RFC 7671 §5.1).
 */
int kr_tlsa_match(const kr_tlsa *recs, size_t n, X509 *cert, STACK_OF(X509) * chain);

#endif
