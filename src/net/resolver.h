/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Asynchronous DNS for server-to-server connections, on libunbound inside a
 * libuv loop. One kr_resolver belongs to one loop (one per worker thread) and
 * is used only from that loop's thread; libunbound resolves on its own
 * background thread and hands answers back through a pipe that a uv_poll_t
 * watches, so nothing blocks the loop.
 *
 * kr_resolver_xmpp_server() implements RFC 6120 §3.2 with XEP-0368: SRV
 * _xmpps-server._tcp (direct TLS) and _xmpp-server._tcp (STARTTLS) are looked
 * up together and ordered as one RRset (RFC 2782: priority ascending, weighted
 * random within a priority); a target of "." means that service is not
 * offered; with no SRV records at all the domain itself on 5269 is the one
 * target. The A and AAAA records of every target are then looked up in
 * parallel. With a trust anchor, answers are DNSSEC-validated: bogus ones are
 * errors, `secure` is set only when every answer a target depends on was
 * validated, and then its TLSA records (_PORT._tcp.HOST, RFC 6698, RFC 7673)
 * are returned for kr_tlsa_match() (net/dane.h).
 *
 * Limits: at most KR_RESOLVER_MAX_TARGETS targets, KR_RESOLVER_MAX_ADDRS
 * addresses per target and KR_RESOLVER_MAX_TLSA TLSA records per target; each
 * lookup ends within the timeout (kr_resolver_set_timeout(), default 10 s) on
 * top of libunbound's own retransmission timeouts.
 */
#ifndef KR_NET_RESOLVER_H
#define KR_NET_RESOLVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "net/dane.h"

#define KR_RESOLVER_MAX_TARGETS 16
#define KR_RESOLVER_MAX_ADDRS 8
#define KR_RESOLVER_MAX_TLSA 8
#define KR_RESOLVER_DEFAULT_TIMEOUT_MS 10000

/** Errors of this module: 0 or one of these (negative, apart from the KR_E* table). */
#define KR_RESOLVER_ERR_MAP(X)                                                                     \
    X(INVAL, "invalid domain name or argument")                                                    \
    X(SETUP, "resolver configuration error")                                                       \
    X(NOTFOUND, "domain or host not found")                                                        \
    X(NOSERVICE, "the domain does not offer XMPP server-to-server service")                        \
    X(SERVFAIL, "DNS lookup failed")                                                               \
    X(BOGUS, "DNSSEC validation failed (bogus answer)")                                            \
    X(TIMEOUT, "DNS lookup timed out")                                                             \
    X(MALFORMED, "malformed DNS answer")

typedef enum kr_resolver_err {
    KR_RESOLVER_OK = 0,
#define KR__RES_ENUM(name, text) KR_RESOLVER_E##name,
    KR__RESOLVER_ERR_FIRST = -2000,
    KR_RESOLVER_ERR_MAP(KR__RES_ENUM)
#undef KR__RES_ENUM
} kr_resolver_err;

/** Text for a kr_resolver_err (or 0) for logs. Never NULL; static storage. */
const char *kr_resolver_strerror(int err);

typedef struct kr_resolver kr_resolver;

/** One place to connect to, in the order to try them. */
typedef struct kr_s2s_target {
    char host[256]; /* SRV target or the domain itself (fallback), no trailing dot */
    uint16_t port;
    bool direct_tls; /* from _xmpps-server._tcp: TLS at once, no STARTTLS (XEP-0368) */
    struct sockaddr_storage *addrs; /* AAAA first, then A; port already set */
    size_t addr_count;              /* >= 1 for every target handed to the callback */
    bool secure;   /* SRV (or its absence) and address records all DNSSEC-validated */
    kr_tlsa *tlsa; /* _PORT._tcp.HOST TLSA records when secure, else NULL */
    size_t tlsa_count;
} kr_s2s_target;

/**
 * Called once per successful kr_resolver_xmpp_server() call, on the loop's thread, never from
 * inside that call. err is 0 with count >= 1 targets, or a kr_resolver_err with none. The
 * targets array and everything it points to belong to the resolver and are freed when the
 * callback returns: copy what you keep. The callback may start new lookups, cancel others, or
 * free the resolver.
 */
typedef void (*kr_resolve_cb)(void *ud, int err, kr_s2s_target *targets, size_t count);

/**
 * New resolver on loop. trust_anchor: a file for ub_ctx_add_ta_file() (e.g. /usr/share/dns/
 * root.key, DS or DNSKEY records) to validate with DNSSEC, or NULL/"" for none. Returns NULL
 * and one sentence in err on failure. Upstream defaults to KR_RESOLVER_UPSTREAM_SYSTEM.
 */
kr_resolver *kr_resolver_new(uv_loop_t *loop, const char *trust_anchor, char *err, size_t errlen);

/**
 * Cancel every lookup in flight (their callbacks are never called) and release the resolver.
 * Safe inside a kr_resolve_cb; the memory goes when the loop has closed the resolver's handles,
 * so run the loop after this before uv_loop_close(). NULL is ignored.
 */
void kr_resolver_free(kr_resolver *r);

/**
 * Look up where to connect for domain (RFC 6120 §3.2.1, XEP-0368); see the file comment.
 * domain may be a U-label name (converted with IDNA2008) and may end in a dot.
 * Returns 0 and later calls cb exactly once, or returns an error and never calls cb.
 */
int kr_resolver_xmpp_server(kr_resolver *r, const char *domain, kr_resolve_cb cb, void *ud);

/** Cancel every lookup started with this ud; their callbacks are never called. Returns how many. */
size_t kr_resolver_cancel(kr_resolver *r, void *ud);

/** Where queries go when they are not answered from local data. */
typedef enum kr_resolver_upstream {
    KR_RESOLVER_UPSTREAM_SYSTEM = 0, /* name servers of /etc/resolv.conf, names of /etc/hosts */
    KR_RESOLVER_UPSTREAM_RECURSIVE,  /* libunbound iterates from the root servers itself */
    KR_RESOLVER_UPSTREAM_NONE,       /* nowhere: only local-data, local-zone and auth-zone data
                                        answer; everything else fails (tests) */
} kr_resolver_upstream;

/** Choose the upstream (before the first lookup). Returns 0 or KR_RESOLVER_ESETUP. */
int kr_resolver_set_upstream(kr_resolver *r, kr_resolver_upstream mode);

/**
 * Set a libunbound option, e.g. ("local-zone:", "example. static") or ("local-data:",
 * "_xmpp-server._tcp.example. 60 IN SRV 0 0 5269 xmpp.example."), before the first lookup.
 * Returns 0 or KR_RESOLVER_ESETUP (unknown option, bad value, or lookups already started).
 */
int kr_resolver_set_option(kr_resolver *r, const char *opt, const char *val);

/** Read a libunbound configuration file (unbound.conf syntax: server:, auth-zone:, ...). */
int kr_resolver_load_config(kr_resolver *r, const char *path);

/** Cap on each lookup's total time, in milliseconds (> 0). */
void kr_resolver_set_timeout(kr_resolver *r, unsigned ms);

/** Is the resolver validating with DNSSEC (a trust anchor was given)? */
bool kr_resolver_validating(const kr_resolver *r);

#endif
