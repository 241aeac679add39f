/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * A client session apart from the transport that carries it: the account and
 * resource it authenticated and bound, its presence state, its log context,
 * one slot of private state per module that asked for one, and the stream it
 * is attached to right now (a kr_transport: TCP+TLS today; WebSocket, BOSH and
 * a resumed XEP-0198 stream are further transports). A session lives on one
 * worker, in that worker's session table, and is found by id
 * (kr_session_find); the session directory (sessions.h) names it by
 * (node, worker, id). Everything addressed to the session goes through
 * kr_session_deliver: the modules' outgoing filters, then the transport; a
 * detached session (no transport) drops what it is given until something
 * attaches it again (stream management will queue instead).
 * Lifecycle: kr_session_new when a client stream starts (before
 * authentication, for PREAUTH handlers: domain and peer address only),
 * kr_session_bind after resource binding (directory entry, KR_SESSION_BOUND),
 * kr_session_track_presence for each broadcast presence, kr_session_end when
 * it is over (unavailable presence, KR_SESSION_CLOSED, directory entry gone,
 * memory freed). Modules free their slot on KR_SESSION_CLOSED, the last event.
 * All functions run on the session's worker.
 */
#ifndef KR_SERVER_SESSION_H
#define KR_SERVER_SESSION_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "net/worker.h"
#include "xml/tree.h"
#include "xmpp/jid.h"

typedef struct kr_server kr_server;
typedef struct kr_stanza kr_stanza;

typedef enum kr_session_event {
    KR_SESSION_BOUND,       /* resource bound */
    KR_SESSION_AVAILABLE,   /* initial available presence was routed (RFC 6121 §4.2) */
    KR_SESSION_UNAVAILABLE, /* unavailable presence was routed (explicit, or at close) */
    KR_SESSION_CLOSED,      /* the session is ending: release slots */
} kr_session_event;

/** What a session needs of the stream it is attached to. ud is the transport's own. */
typedef struct kr_transport {
    const char *name; /* "tcp", "websocket", ...: for logs and the admin interface */
    /* Queue one serialized stanza for the client, in order. */
    void (*send)(void *ud, const char *data, size_t len);
    /* End the stream: with the stream error `condition` (RFC 6120 §4.9.3; text may be
     * NULL) or cleanly when condition is NULL. The transport later detaches or ends the
     * session; the session must not be used by the caller afterwards. */
    void (*close)(void *ud, const char *condition, const char *text);
} kr_transport;

typedef struct kr_session {
    uint64_t id;          /* unique in the process; never 0 */
    kr_server *srv;
    kr_worker *worker;
    const char *domain;   /* prepared domain of the stream: a user domain, the address
                           * table's string */
    const char *bare;     /* "local@domain"; NULL before authentication. Owns the block that
                           * full, resource and jid's parts point into (once bound) */
    const char *full;     /* "local@domain/resource"; NULL before binding */
    const char *resource;
    kr_jid jid;           /* `full` prepared once at bind */
    bool bound;
    bool available;       /* has sent available presence and not unavailable since */
    unsigned short slot_count;
    int priority;
    const kr_transport *transport; /* NULL: detached */
    void *transport_ud;
    const char *peer_ip;  /* the transport's, for rate limits (never logged above debug);
                           * NULL while detached */
    void *slots[];        /* one per module with session state (kr_module_def.session_slot) */
} kr_session;

/** A new, unauthenticated session of domain on worker w (in its table). domain is borrowed
 * for the session's life (the address table's); peer_ip too: the transport's, valid while it
 * is attached. */
kr_session *kr_session_new(kr_server *srv, kr_worker *w, const char *domain,
                           const char *peer_ip);
/** The session `id` of worker w, or NULL when it has gone (or w is not running: shutdown). */
kr_session *kr_session_find(kr_worker *w, uint64_t id);
/** The module's slot (kr_module_def.session_slot gives the index). */
static inline void **kr_session_slot(kr_session *s, unsigned slot)
{
    return &s->slots[slot];
}

/** Attach to a transport (replaces any other) / detach from it. peer_ip: the transport's
 * (borrowed while attached). */
void kr_session_attach(kr_session *s, const kr_transport *t, void *ud, const char *peer_ip);
void kr_session_detach(kr_session *s);

/** SASL succeeded for local@domain: the account is known from now on. */
void kr_session_authenticated(kr_session *s, const char *local);
/**
 * Bind the resource (prepared) in the directory (RFC 6120 §7): a session already bound to
 * the same full JID is told to end with <conflict/> (§7.7.2.2, "override"). Reports
 * KR_SESSION_BOUND. 0, or KR_EINVAL when the full JID does not prepare (cannot happen for
 * prepared parts; the caller then answers <bad-request/>).
 */
int kr_session_bind(kr_session *s, const char *resource);
/**
 * A broadcast presence (no 'to', available or unavailable) from the client: note its
 * availability and priority (RFC 6121 §4.7.2.3) and keep a frozen copy in the directory for
 * probes (§4.3.2). Returns the event to report once the stanza has been routed
 * (KR_SESSION_AVAILABLE / _UNAVAILABLE), or -1 when availability did not change.
 */
int kr_session_track_presence(kr_session *s, const kr_stanza *st);
/** Report an event to the modules. */
void kr_session_event_fire(kr_session *s, kr_session_event ev);
/**
 * The session is over (its stream closed and no resumption will come): an available
 * session says unavailable to everyone its presence reached (RFC 6121 §4.5.2) unless a
 * newer session took over its resource, then KR_SESSION_CLOSED, the directory entry goes,
 * and the memory is freed.
 */
void kr_session_end(kr_session *s);

/** Deliver one serialized stanza (meta set, kr_stanza_meta) to the client: outgoing filters,
 * then the transport. Borrows bytes. */
void kr_session_deliver(kr_session *s, kr_rbuf *bytes);
/** Serialize elem (a stanza of the given kind and type) and deliver it. */
void kr_session_deliver_elem(kr_session *s, const kr_xml_node *elem);
/** Ask the transport to end the stream with a stream error (condition NULL: cleanly). */
void kr_session_close(kr_session *s, const char *condition, const char *text);

typedef struct kr_session_ref kr_session_ref;
/** What kr_session_call runs: s is NULL when the session has gone (free arg then). */
typedef void (*kr_session_call_fn)(kr_session *s, void *arg);
/** Run fn(session, arg) on the worker of the session ref names (at once when that is w). */
void kr_session_call(kr_server *srv, kr_worker *w, const kr_session_ref *ref,
                     kr_session_call_fn fn, void *arg);

/** kr_worker_fn: end session u of worker w with the stream error arg (a static string);
 * nothing when it has gone. For other workers (account removal, XEP-0077 §3.2). */
void kr_session_close_cb(kr_worker *w, void *condition, uint64_t id);

#endif
