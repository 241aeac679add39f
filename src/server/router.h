/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * The router: decides where a stanza goes and delivers it. Local accounts
 * follow RFC 6121 §8.5 (bare JID: by availability and priority; full JID:
 * that session, or the bare-JID rules when it is gone); stanzas for one of
 * our domains go to the modules; other domains would go to s2s (not built
 * yet: they bounce with remote-server-not-found). A stanza is serialized once
 * into a refcounted buffer shared by every recipient; a recipient on another
 * worker gets it through that worker's queue.
 */
#ifndef KR_SERVER_ROUTER_H
#define KR_SERVER_ROUTER_H

#include "core/buf.h"
#include "server/server.h"
#include "server/sessions.h"
#include "server/stanza.h"

/** Route a decoded stanza (its 'from' stamped and trusted). Borrows st. Runs on worker w. */
void kr_router_route(kr_server *srv, kr_worker *w, kr_stanza *st);

/** Send a stanza the server built (an iq result, an error) to its 'to' address. Borrows
 * elem and arena. */
void kr_router_send(kr_server *srv, kr_worker *w, kr_xml_node *elem, kr_arena *arena);

/** Answer st with a stanza error (RFC 6120 §8.3) unless st is itself an error. Rewrites st. */
void kr_router_bounce(kr_server *srv, kr_worker *w, kr_stanza *st, const char *condition,
                      const char *text);

/** Hand one reference of buf to the session ref (same worker: at once; other: queued). */
void kr_router_deliver(kr_server *srv, kr_worker *w, const kr_session_ref *to, kr_rbuf *buf);

#endif
