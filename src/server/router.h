/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * The router: decides where a stanza goes and delivers it. Local accounts
 * follow RFC 6121 §8.5 (bare JID: by availability and priority; full JID:
 * that session, or the bare-JID rules when it is gone); stanzas for one of
 * our domains go to the modules; other domains go to s2s (s2s.h), which
 * bounces them with remote-server-not-found when federation is off. A stanza is serialized once
 * into a refcounted buffer shared by every recipient; a recipient on another
 * worker gets it through that worker's queue.
 */
#ifndef KR_SERVER_ROUTER_H
#define KR_SERVER_ROUTER_H

#include <stdbool.h>

#include "core/buf.h"
#include "server/server.h"
#include "server/sessions.h"
#include "server/stanza.h"

typedef struct kr_session kr_session;

/**
 * Route a decoded stanza (its 'from' stamped and trusted). Borrows st. Runs on worker w.
 * origin: the local session that sent it (its modules' KR_PHASE_OUT handlers run first), or
 * NULL for stanzas the server or a module makes on someone's behalf (only KR_PHASE_IN runs).
 */
void kr_router_route(kr_server *srv, kr_worker *w, kr_stanza *st, kr_session *origin);

/** True when the account has a resource that is available with non-negative priority. */
bool kr_router_has_available(kr_server *srv, const char *bare);

/** Send a stanza the server built (an iq result, an error) to its 'to' address. Borrows
 * elem and arena. */
void kr_router_send(kr_server *srv, kr_worker *w, kr_xml_node *elem, kr_arena *arena);

/** Answer st with a stanza error (RFC 6120 §8.3) unless st is itself an error. Rewrites st. */
void kr_router_bounce(kr_server *srv, kr_worker *w, kr_stanza *st, const char *condition,
                      const char *text);

/** Hand one reference of buf to the session ref (same worker: at once; other: queued). */
void kr_router_deliver(kr_server *srv, kr_worker *w, const kr_session_ref *to, kr_rbuf *buf);

#endif
