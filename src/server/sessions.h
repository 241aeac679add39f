/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * The session directory (DESIGN.md, threads): bare JID -> its bound resources,
 * each with the worker and connection id that owns it, its priority and
 * whether it has sent available presence. Shared by all workers, sharded by
 * hash of the bare JID with one mutex per shard; it is the only structure
 * touched across threads on the routing path. It holds no pointers to
 * sessions: a kr_session_ref names (node, worker, session id) and the owning
 * worker looks the session up (session.h), so a session that has gone is
 * simply not found. The node is 0 while kurierd runs as one node; a
 * directory shared between nodes (a later issue) fills it in.
 */
#ifndef KR_SERVER_SESSIONS_H
#define KR_SERVER_SESSIONS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "server/stanza.h"
#include "xmpp/jid.h"

typedef struct kr_sessions kr_sessions;

/* Modules may keep one immutable, shared value per online account here (a block list, say):
 * any worker reads it under the shard's lock without waiting for storage. Values carry a
 * version so that a slower writer never replaces newer state with older (versions come from
 * kr_shared_version_next, taken on the storage lane where the value was read or written,
 * which runs one account's work in order). The value goes when the account's last resource
 * unbinds. */
#define KR_SESSIONS_STATE_SLOTS 8

typedef struct kr_shared {
    atomic_uint refs;
    uint64_t version;
    void (*free)(struct kr_shared *v); /* called with the last reference */
} kr_shared;

/** Set refs to 1 and the version (kr_shared_version_next()). */
void kr_shared_init(kr_shared *v, uint64_t version, void (*free_fn)(kr_shared *v));
kr_shared *kr_shared_ref(kr_shared *v);
void kr_shared_unref(kr_shared *v);
/** A process-wide increasing version number. */
uint64_t kr_shared_version_next(void);

typedef struct kr_session_ref {
    uint16_t node;  /* 0: this process */
    uint16_t worker;
    uint64_t id;    /* kr_session.id */
    int priority;
    bool available;
    unsigned flags; /* bits modules asked for (kr_module_def.session_flag) */
} kr_session_ref;

kr_sessions *kr_sessions_new(void);
void kr_sessions_free(kr_sessions *s);

/**
 * Bind bare/resource to (worker, session id). If that resource was already bound to another
 * connection, it is replaced (RFC 6120 §7.7.2.2 policy "override") and *replaced gets the old
 * owner; returns true in that case.
 */
bool kr_sessions_bind(kr_sessions *s, const char *bare, const char *resource, unsigned worker,
                      uint64_t id, kr_session_ref *replaced);
/** Remove the binding if it still belongs to session id. */
void kr_sessions_unbind(kr_sessions *s, const char *bare, const char *resource, uint64_t id);
/** Record availability, priority (RFC 6121 §4.7.2.3) and the last broadcast presence (for
 * answering probes; reference taken, may be NULL) of a bound resource. */
void kr_sessions_set_presence(kr_sessions *s, const char *bare, const char *resource,
                              uint64_t id, bool available, int priority, kr_frozen *presence);
/** Set and clear flag bits of a bound resource. */
void kr_sessions_set_flags(kr_sessions *s, const char *bare, const char *resource, uint64_t id,
                           unsigned set, unsigned clear);
/** The last broadcast presence of each available resource (up to max, each a new reference the
 * caller unrefs); returns how many were stored in out. */
size_t kr_sessions_presences(kr_sessions *s, const char *bare, kr_frozen **out, size_t max);
/** Look up one full JID. */
bool kr_sessions_find(kr_sessions *s, const char *bare, const char *resource,
                      kr_session_ref *out);
/** Copy up to max of the account's bound resources into out; returns how many there are. */
size_t kr_sessions_list(kr_sessions *s, const char *bare, kr_session_ref *out, size_t max);
/** Install value (takes the reference) as the account's state in slot when the account has a
 * bound resource and value is newer than what is there; true when it was installed. */
bool kr_sessions_state_put(kr_sessions *s, const char *bare, unsigned slot, kr_shared *value);
/** The account's state in slot (a new reference), or NULL: not online, or not loaded. */
kr_shared *kr_sessions_state_get(kr_sessions *s, const char *bare, unsigned slot);
/** Total bound resources (for logs and tests). */
size_t kr_sessions_count(kr_sessions *s);

#endif
