/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * The one way to send a stanza (docs/architecture.md). Everything that emits
 * a stanza, the c2s, s2s and component streams, modules and services, calls
 * kr_route (a stanza from one of our streams) or kr_send / kr_send_reply /
 * kr_send_error (a stanza the server makes), and every one takes the same
 * path: the sender's KR_PHASE_OUT handlers (local sessions only), the address
 * table (hosts.h) picked once by kr_stanza_decode, the destination host's
 * KR_PHASE_IN handlers, then that kind's delivery:
 *   user domain  RFC 6121 §8.5 (bare JID: by availability and priority; full
 *                JID: that session, or the bare-JID rules when it is gone);
 *   service      the owning module's handlers only; what they leave is
 *                answered <service-unavailable/> (iq get/set, messages);
 *   component    the component's stream (XEP-0114), or <service-unavailable/>
 *                when it is not connected;
 *   remote       s2s (s2s.h), which bounces when federation is off.
 * Deliveries to local sessions go through kr_deliver, with one serialization
 * shared by every recipient, to the session's worker (same worker: at once;
 * other: its queue), where kr_session_deliver runs the outgoing filters.
 * A handler may wait (modules.h): the route then moves to the heap with a
 * reference to the stanza, and the stream it came from (kr_intake) holds its
 * later stanzas until the route is finished.
 */
#ifndef KR_SERVER_ROUTER_H
#define KR_SERVER_ROUTER_H

#include <stdbool.h>

#include "core/buf.h"
#include "server/modules.h"
#include "server/server.h"
#include "server/sessions.h"
#include "server/stanza.h"

typedef struct kr_intake kr_intake;

/**
 * Route a decoded stanza whose 'from' is stamped and trusted, received on one of our
 * streams. Takes one reference to st. origin: the local session that sent it (its
 * KR_PHASE_OUT handlers run first) or NULL (s2s, components). intake: the stream's intake,
 * held while a handler waits, or NULL.
 */
void kr_route(kr_server *srv, kr_worker *w, kr_stanza *st, kr_session *origin,
              kr_intake *intake);
/** Run only the handlers of `phase` (KR_PHASE_PREAUTH: an iq before authentication). Takes
 * one reference to st. */
void kr_route_phase(kr_server *srv, kr_worker *w, kr_stanza *st, kr_session *origin,
                    kr_intake *intake, kr_phase phase);

/** Send a stanza the server or a module made (its 'from' trusted): KR_PHASE_IN handlers at
 * the destination, then its delivery. Takes one reference. A stanza that does not decode,
 * or has no 'to', is dropped. */
void kr_send(kr_server *srv, kr_worker *w, kr_stanza *st);
/** kr_send of a new element; takes the arena it lives in. */
void kr_send_elem(kr_server *srv, kr_worker *w, kr_xml_node *elem, kr_arena *arena);
/** kr_send of <presence from='from' to='to' type='type'/> (type may be NULL). */
void kr_send_presence(kr_server *srv, kr_worker *w, const char *from, const char *to,
                      const char *type);
/** kr_send of an element built in st's arena (st re-addressed and sent on, say). Borrows st. */
void kr_send_derived(kr_server *srv, kr_worker *w, kr_stanza *st, kr_xml_node *elem);
/** Send reply (an element built in st's arena, e.g. kr_stanza_iq_result(st)) straight to its
 * destination's delivery: the handlers there are for what people send, and this answers
 * something the handlers have seen (so a blocked sender still gets its error). Borrows st. */
void kr_send_reply(kr_server *srv, kr_worker *w, kr_stanza *st, kr_xml_node *reply);
/** Answer st with a stanza error (RFC 6120 §8.3) unless st is itself an error or result.
 * Rewrites st->elem in place; borrows st. */
void kr_send_error(kr_server *srv, kr_worker *w, kr_stanza *st, const char *condition,
                   const char *text);

/** The handler-context forms of the last two. */
static inline void kr_reply(kr_handler_ctx *ctx, kr_xml_node *reply)
{
    kr_send_reply(ctx->srv, ctx->worker, ctx->st, reply);
}
static inline void kr_bounce(kr_handler_ctx *ctx, const char *condition, const char *text)
{
    kr_send_error(ctx->srv, ctx->worker, ctx->st, condition, text);
}

/** Hand bytes (meta set) to the session `to` names, on its worker. Borrows bytes. */
void kr_deliver(kr_server *srv, kr_worker *w, const kr_session_ref *to, kr_rbuf *bytes);

/** Which resources of an account kr_deliver_account picks. */
typedef enum kr_pick {
    KR_PICK_AVAILABLE = 1 << 0,      /* sent available presence */
    KR_PICK_NONNEGATIVE = 1 << 1,    /* ... with priority >= 0 */
} kr_pick;
/** Deliver bytes to each resource of bare that has every `pick` bit and, when flag is not
 * 0, has that directory flag. Returns how many got it. Borrows bytes. */
size_t kr_deliver_account(kr_server *srv, kr_worker *w, const char *bare, kr_rbuf *bytes,
                          unsigned pick, unsigned flag);
/** True when the account has a resource that is available with non-negative priority
 * (RFC 6121 §8.5.2: it would get a message to the bare JID). */
bool kr_router_has_available(kr_server *srv, const char *bare);

/** The deliveries of user domains and of service hosts (kr_host.deliver). */
void kr_router_deliver_user(kr_server *srv, kr_worker *w, const kr_host *host, kr_stanza *st);
void kr_router_deliver_service(kr_server *srv, kr_worker *w, const kr_host *host,
                               kr_stanza *st);

/** kr_worker_fn of the storage lanes' and CPU pool's completions (router.c, for
 * storage_thread.c). */
void kr__route_wake(kr_worker *w, void *route, uint64_t unused);

#endif
