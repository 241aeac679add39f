/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * The view of a bound client session that modules get: its addresses, its
 * worker and connection id, its presence state, and one slot of private
 * data per module that needs it (KR_SLOT_*). A session lives on one worker;
 * handlers receive it (kr_handler_ctx.origin) only on that worker, so no
 * locking is needed. A module that fills a slot frees it on
 * KR_SESSION_CLOSED, the last event a session sends.
 */
#ifndef KR_SERVER_SESSION_H
#define KR_SERVER_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/worker.h"
#include "xml/tree.h"

/** Per-module data slots in every session. */
enum {
    KR_SLOT_PRESENCE = 0,
    KR_SLOT_ROSTER,
    KR_SLOT_BLOCKING,
    KR_SLOT_OFFLINE,
    KR_SLOT_SPARE1,
    KR_SLOT_SPARE2,
    KR_SLOT_COUNT
};

/** Flags kept per resource in the session directory (visible from every worker). */
enum {
    KR_SESSION_ROSTER_INTERESTED = 1u << 0, /* requested the roster: gets pushes (RFC 6121 §2.1.6) */
};

typedef struct kr_session {
    const char *bare;     /* "local@domain"; NULL before authentication (KR_PHASE_PREAUTH) */
    const char *full;     /* "local@domain/resource"; NULL before binding */
    const char *resource;
    const char *domain;
    const char *peer_ip;  /* for rate limits; never logged above debug */
    kr_worker *worker;
    uint64_t conn_id;
    bool available;       /* has sent available presence and not unavailable since */
    int priority;
    void *slots[KR_SLOT_COUNT];
} kr_session;

typedef enum kr_session_event {
    KR_SESSION_BOUND,       /* resource bound */
    KR_SESSION_AVAILABLE,   /* initial available presence was routed (RFC 6121 §4.2) */
    KR_SESSION_UNAVAILABLE, /* unavailable presence was routed (explicit, or at close) */
    KR_SESSION_CLOSED,      /* the stream is ending: release slots */
} kr_session_event;

/** The session of connection conn_id on worker w (for storage completions), or NULL when the
 * connection has gone. Before binding only domain, peer_ip, worker and conn_id are set. */
kr_session *kr_session_find(kr_worker *w, uint64_t conn_id);
/** Queue bytes to the session's client (its worker only). */
void kr_session_send(kr_session *s, const char *data, size_t len);
/** Serialize an element in the jabber:client namespace and queue it. */
void kr_session_send_elem(kr_session *s, const kr_xml_node *e);

#endif
