/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Stanza routing for local accounts per RFC 6121 §8.5 (see router.h). The
 * function names follow the RFC's sections so the rules can be checked
 * against the text.
 */
#include "server/router.h"

#include <limits.h>
#include <string.h>

#include "core/log.h"
#include "server/c2s.h"
#include "server/modules.h"
#include "server/s2s.h"
#include "server/session.h"
#include "xml/serialize.h"

#define KR_ROUTER_MAX_RESOURCES 64

static void kr_router_deliver_cb(kr_worker *w, void *arg, uint64_t conn_id)
{
    kr_c2s_deliver(w, conn_id, arg);
}

void kr_router_deliver(kr_server *srv, kr_worker *w, const kr_session_ref *to, kr_rbuf *buf)
{
    kr_rbuf_ref(buf);
    if (w && w->index == to->worker)
        kr_c2s_deliver(w, to->conn_id, buf);
    else
        kr_worker_post(&srv->workers[to->worker], kr_router_deliver_cb, buf, to->conn_id);
}

static kr_rbuf *kr_router_serialize(const kr_xml_node *elem)
{
    kr_buf b = KR_BUF_INIT;
    kr_xml_serialize(&b, elem, KR_NS_CLIENT);
    return kr_rbuf_from_buf(&b);
}

static void kr_router_deliver_one(kr_server *srv, kr_worker *w, const kr_session_ref *to,
                                  const kr_xml_node *elem)
{
    kr_rbuf *buf = kr_router_serialize(elem);
    kr_router_deliver(srv, w, to, buf);
    kr_rbuf_unref(buf);
}

void kr_router_bounce(kr_server *srv, kr_worker *w, kr_stanza *st, const char *condition,
                      const char *text)
{
    if (st->type == KR_TYPE_ERROR || st->type == KR_TYPE_RESULT)
        return; /* RFC 6120 §8.3.1: never answer an error (or a result) with an error */
    if (!kr_xml_attr_get(st->elem, "from"))
        return;
    kr_stanza_make_error(st, condition, text, NULL);
    kr_router_send(srv, w, st->elem, st->arena);
}

/* Collect the account's resources that are available with non-negative priority; returns how
 * many, and *best gets the highest priority among them. */
static size_t kr_router_available(kr_server *srv, const char *bare, kr_session_ref *out,
                                  int *best)
{
    kr_session_ref all[KR_ROUTER_MAX_RESOURCES];
    size_t n = kr_sessions_list(srv->sessions, bare, all, KR_ROUTER_MAX_RESOURCES);
    if (n > KR_ROUTER_MAX_RESOURCES)
        n = KR_ROUTER_MAX_RESOURCES;
    size_t k = 0;
    *best = INT_MIN;
    for (size_t i = 0; i < n; i++) {
        if (!all[i].available || all[i].priority < 0)
            continue;
        out[k++] = all[i];
        if (all[i].priority > *best)
            *best = all[i].priority;
    }
    return k;
}

/* RFC 6121 §8.5.2.1.1 / §8.5.2.2.1: message to a bare JID. */
static void kr_router_message_bare(kr_server *srv, kr_worker *w, kr_stanza *st,
                                   const char *bare)
{
    if (st->type == KR_TYPE_GROUPCHAT) {
        kr_router_bounce(srv, w, st, "service-unavailable", NULL);
        return;
    }
    kr_session_ref avail[KR_ROUTER_MAX_RESOURCES];
    int best;
    size_t n = kr_router_available(srv, bare, avail, &best);
    if (n == 0) {
        if (st->type & (KR_TYPE_NONE | KR_TYPE_NORMAL | KR_TYPE_CHAT))
            kr_router_bounce(srv, w, st, "service-unavailable",
                             "The recipient is not online and offline storage is not enabled");
        return; /* headline and error: silently dropped */
    }
    kr_rbuf *buf = kr_router_serialize(st->elem);
    for (size_t i = 0; i < n; i++) {
        /* Headlines go to every non-negative resource, the rest to the most available. */
        if (st->type == KR_TYPE_HEADLINE || avail[i].priority == best)
            kr_router_deliver(srv, w, &avail[i], buf);
    }
    kr_rbuf_unref(buf);
}

/* RFC 6121 §8.5.2.1.2 (directed presence to a bare JID): every available resource. */
static void kr_router_presence_bare(kr_server *srv, kr_worker *w, kr_stanza *st,
                                    const char *bare)
{
    if (st->type == KR_TYPE_PROBE)
        return; /* answered by the presence module of the IM issue */
    kr_session_ref all[KR_ROUTER_MAX_RESOURCES];
    size_t n = kr_sessions_list(srv->sessions, bare, all, KR_ROUTER_MAX_RESOURCES);
    if (n > KR_ROUTER_MAX_RESOURCES)
        n = KR_ROUTER_MAX_RESOURCES;
    kr_rbuf *buf = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!all[i].available)
            continue;
        if (!buf)
            buf = kr_router_serialize(st->elem);
        kr_router_deliver(srv, w, &all[i], buf);
    }
    if (buf)
        kr_rbuf_unref(buf);
}

bool kr_router_has_available(kr_server *srv, const char *bare)
{
    kr_session_ref avail[KR_ROUTER_MAX_RESOURCES];
    int best;
    return kr_router_available(srv, bare, avail, &best) > 0;
}

static void kr_router_to_bare(kr_server *srv, kr_worker *w, kr_stanza *st)
{
    const char *bare = kr_jid_format_bare(st->arena, &st->to);
    switch (st->kind) {
    case KR_STANZA_MESSAGE:
        kr_router_message_bare(srv, w, st, bare);
        break;
    case KR_STANZA_PRESENCE:
        kr_router_presence_bare(srv, w, st, bare);
        break;
    case KR_STANZA_IQ:
        /* RFC 6121 §8.5.2.1.3: the server answers iqs to a bare JID on the account's behalf;
         * the modules had their turn, so nobody handles this one. */
        if (st->type & (KR_TYPE_GET | KR_TYPE_SET))
            kr_router_bounce(srv, w, st, "service-unavailable", NULL);
        break;
    }
}

/* RFC 6121 §8.5.3: to a full JID. */
static void kr_router_to_full(kr_server *srv, kr_worker *w, kr_stanza *st)
{
    const char *bare = kr_jid_format_bare(st->arena, &st->to);
    kr_session_ref ref;
    if (kr_sessions_find(srv->sessions, bare, st->to.resource, &ref)) {
        kr_router_deliver_one(srv, w, &ref, st->elem);
        return;
    }
    switch (st->kind) {
    case KR_STANZA_MESSAGE:
        /* §8.5.3.2.1: normal and chat fall back to the bare JID; groupchat errors. */
        if (st->type & (KR_TYPE_NONE | KR_TYPE_NORMAL | KR_TYPE_CHAT))
            kr_router_message_bare(srv, w, st, bare);
        else if (st->type == KR_TYPE_GROUPCHAT)
            kr_router_bounce(srv, w, st, "service-unavailable", NULL);
        break;
    case KR_STANZA_PRESENCE:
        /* §8.5.3.2.2: subscription-related presence is handled as for the bare JID. */
        if (st->type & (KR_TYPE_SUBSCRIBE | KR_TYPE_SUBSCRIBED | KR_TYPE_UNSUBSCRIBE |
                        KR_TYPE_UNSUBSCRIBED))
            kr_router_presence_bare(srv, w, st, bare);
        break;
    case KR_STANZA_IQ:
        kr_router_bounce(srv, w, st, "service-unavailable", NULL);
        break;
    }
}

/* RFC 6121 §4.2.2 / §4.5.2: broadcast presence goes to the user's own available resources
 * (subscribers are added by the roster module of the IM issue). */
static void kr_router_presence_broadcast(kr_server *srv, kr_worker *w, kr_stanza *st)
{
    kr_router_presence_bare(srv, w, st, kr_jid_format_bare(st->arena, &st->from));
}

/* Where a stanza goes after the modules of the destination had their turn. */
static void kr_router_default(kr_server *srv, kr_worker *w, kr_stanza *st)
{
    if (st->kind == KR_STANZA_PRESENCE && st->to_absent) {
        kr_router_presence_broadcast(srv, w, st);
        return;
    }
    switch (st->addressing) {
    case KR_ADDR_REMOTE:
        kr_s2s_route(srv, w, st); /* bounces itself when federation is off */
        break;
    case KR_ADDR_HOST:
        if (st->kind == KR_STANZA_IQ && (st->type & (KR_TYPE_GET | KR_TYPE_SET)))
            kr_router_bounce(srv, w, st, "service-unavailable", NULL);
        break;
    case KR_ADDR_BARE:
    case KR_ADDR_SELF:
        kr_router_to_bare(srv, w, st);
        break;
    case KR_ADDR_FULL:
        kr_router_to_full(srv, w, st);
        break;
    }
}

void kr_router_route(kr_server *srv, kr_worker *w, kr_stanza *st, kr_session *origin)
{
    if (origin && kr_modules_dispatch(srv, w, st, origin, KR_PHASE_OUT) == KR_HANDLED)
        return;
    if (st->addressing != KR_ADDR_REMOTE &&
        kr_modules_dispatch(srv, w, st, origin, KR_PHASE_IN) == KR_HANDLED)
        return;
    kr_router_default(srv, w, st);
}

static bool kr_router_served(void *ud, const char *domain)
{
    return kr_config_serves(((kr_server *)ud)->cfg, domain);
}

void kr_router_send(kr_server *srv, kr_worker *w, kr_xml_node *elem, kr_arena *arena)
{
    kr_stanza st;
    if (kr_stanza_decode(&st, elem, arena, kr_router_served, srv) != NULL || st.to_absent)
        return; /* our own stanza without a valid 'to': nothing to deliver to */
    if (st.addressing == KR_ADDR_REMOTE) {
        kr_s2s_route(srv, w, &st);
        return;
    }
    if (st.addressing == KR_ADDR_FULL) {
        kr_session_ref ref;
        if (kr_sessions_find(srv->sessions, kr_jid_format_bare(arena, &st.to), st.to.resource,
                             &ref))
            kr_router_deliver_one(srv, w, &ref, elem);
        return;
    }
    if ((st.addressing & (KR_ADDR_BARE | KR_ADDR_SELF)) && st.kind != KR_STANZA_IQ)
        kr_router_to_bare(srv, w, &st);
}
