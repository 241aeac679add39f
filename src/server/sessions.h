/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * The session directory (DESIGN.md, threads): bare JID -> its bound resources,
 * each with the worker and connection id that owns it, its priority and
 * whether it has sent available presence. Shared by all workers, sharded by
 * hash of the bare JID with one mutex per shard; it is the only structure
 * touched across threads on the routing path. It holds no pointers to
 * connections: deliveries name (worker, connection id) and the owning worker
 * looks the connection up, so a connection that has gone is simply not found.
 */
#ifndef KR_SERVER_SESSIONS_H
#define KR_SERVER_SESSIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "xmpp/jid.h"

typedef struct kr_sessions kr_sessions;

typedef struct kr_session_ref {
    unsigned worker;
    uint64_t conn_id;
    int priority;
    bool available;
    unsigned flags; /* KR_SESSION_* of session.h */
} kr_session_ref;

kr_sessions *kr_sessions_new(void);
void kr_sessions_free(kr_sessions *s);

/**
 * Bind bare/resource to (worker, conn_id). If that resource was already bound to another
 * connection, it is replaced (RFC 6120 §7.7.2.2 policy "override") and *replaced gets the old
 * owner; returns true in that case.
 */
bool kr_sessions_bind(kr_sessions *s, const char *bare, const char *resource, unsigned worker,
                      uint64_t conn_id, kr_session_ref *replaced);
/** Remove the binding if it still belongs to conn_id. */
void kr_sessions_unbind(kr_sessions *s, const char *bare, const char *resource, uint64_t conn_id);
/** Record availability, priority (RFC 6121 §4.7.2.3) and the last broadcast presence (for
 * answering probes; reference taken, may be NULL) of a bound resource. */
void kr_sessions_set_presence(kr_sessions *s, const char *bare, const char *resource,
                              uint64_t conn_id, bool available, int priority, kr_rbuf *presence);
/** Set and clear KR_SESSION_* flags of a bound resource. */
void kr_sessions_set_flags(kr_sessions *s, const char *bare, const char *resource,
                           uint64_t conn_id, unsigned set, unsigned clear);
/** The last broadcast presence of each available resource (up to max, each a new reference the
 * caller unrefs); returns how many were stored in out. */
size_t kr_sessions_presences(kr_sessions *s, const char *bare, kr_rbuf **out, size_t max);
/** Look up one full JID. */
bool kr_sessions_find(kr_sessions *s, const char *bare, const char *resource,
                      kr_session_ref *out);
/** Copy up to max of the account's bound resources into out; returns how many there are. */
size_t kr_sessions_list(kr_sessions *s, const char *bare, kr_session_ref *out, size_t max);
/** Total bound resources (for logs and tests). */
size_t kr_sessions_count(kr_sessions *s);

#endif
