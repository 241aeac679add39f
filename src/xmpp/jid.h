/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * XMPP addresses (RFC 7622): parsing, preparation and comparison.
 * Local part: PRECIS UsernameCaseMapped (RFC 8265 §3.3) plus the characters
 * RFC 7622 §3.3.1 forbids ("&'/:<>@). Resource: PRECIS OpaqueString (RFC 8265
 * §4.2). Domain: IDNA2008 (libidn2), lower-cased, trailing dot removed, IP
 * literals allowed (rewritten in inet_ntop's canonical text form); the
 * canonical form keeps U-labels. PRECIS uses ICU. Pure-ASCII parts take a
 * fast path without ICU or libidn2 that gives the same results.
 * Each part is at most 1023 bytes after preparation (RFC 7622 §3.1); input
 * longer than 4 * 1023 bytes is rejected before any work, as no part that
 * long can prepare to 1023 bytes. Thread-safe; no global state.
 * A prepared JID is canonical: two JIDs are equal exactly when their
 * strings are equal.
 */
#ifndef KR_XMPP_JID_H
#define KR_XMPP_JID_H

#include <stdbool.h>
#include <stddef.h>

#include "core/arena.h"

#define KR_JID_PART_MAX 1023

typedef struct kr_jid {
    const char *local;    /* NULL when absent */
    const char *domain;   /* never NULL after a successful parse */
    const char *resource; /* NULL when absent */
} kr_jid;

/**
 * Parse and prepare s (UTF-8, NUL-terminated). Prepared parts are allocated in `a`.
 * Returns 0, or KR_EINVAL when s is not a valid JID (the caller answers jid-malformed).
 */
int kr_jid_parse(kr_arena *a, const char *s, kr_jid *out);

/**
 * kr_jid_parse into memory of the caller's: the prepared parts of out live in one
 * allocation, *mem, that the caller frees (a JID kept for a connection's life). 0 or
 * KR_EINVAL (then *mem is NULL).
 */
int kr_jid_parse_keep(const char *s, kr_jid *out, char **mem);

/** Prepare one part alone; *out allocated in `a`. 0 or KR_EINVAL. */
int kr_jid_prep_local(kr_arena *a, const char *in, size_t len, const char **out);
int kr_jid_prep_domain(kr_arena *a, const char *in, size_t len, const char **out);
int kr_jid_prep_resource(kr_arena *a, const char *in, size_t len, const char **out);

/**
 * PRECIS OpaqueString preparation of a password (RFC 8265 §4.2), for SASL.
 * No 1023-byte limit, but input over 4 * KR_JID_PART_MAX bytes is refused.
 */
int kr_precis_opaque(kr_arena *a, const char *in, size_t len, const char **out);

/** Which preparation kr_jid_prep_full() applies. */
typedef enum kr_jid_part {
    KR_JID_LOCAL,
    KR_JID_DOMAIN,
    KR_JID_RESOURCE,
    KR_JID_PASSWORD, /* kr_precis_opaque() */
} kr_jid_part;

/**
 * Like the kr_jid_prep_* functions and kr_precis_opaque(), but never takes their
 * ASCII fast path: always the full ICU / libidn2 preparation. It gives the same
 * results by contract; it exists so tests and fuzzers can check that the fast
 * path agrees. *out allocated in `a`. 0 or KR_EINVAL.
 */
int kr_jid_prep_full(kr_arena *a, kr_jid_part part, const char *in, size_t len, const char **out);

/** "local@domain/resource" (parts present only) in the arena. */
const char *kr_jid_format(kr_arena *a, const kr_jid *j);
/** "local@domain" or "domain" in the arena. */
const char *kr_jid_format_bare(kr_arena *a, const kr_jid *j);

/** Equality of prepared JIDs (all three parts). */
bool kr_jid_equal(const kr_jid *x, const kr_jid *y);
bool kr_jid_bare_equal(const kr_jid *x, const kr_jid *y);

#endif
