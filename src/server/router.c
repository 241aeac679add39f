/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * The send path (see router.h): routes through the phases, handlers that
 * wait, the deliveries of user domains (RFC 6121 §8.5, functions named after
 * its sections) and services, and deliveries to sessions. A route runs on
 * the stack until a handler waits; then it moves to the heap (kr_route.heap)
 * and continues from kr__route_wake on the same worker.
 */
#include "server/router.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/log.h"
#include "server/hosts.h"
#include "server/intake.h"
#include "server/s2s.h"
#include "server/session.h"
#include "server/storage_thread.h"
#include "xml/serialize.h"

#define KR_ROUTER_MAX_RESOURCES 64
#define KR_ROUTE_MAX_MATCH 64

typedef enum kr_route_stage { KR_STAGE_OUT, KR_STAGE_IN, KR_STAGE_DELIVER } kr_route_stage;

typedef struct kr_routing {
    kr_handler_ctx ctx;       /* first: handlers get &ctx */
    kr_stanza *st;            /* one reference */
    uint64_t origin_id;       /* session id, 0: none */
    kr_intake *intake;        /* while on the stack */
    uint64_t intake_id;       /* once waiting */
    kr_route_stage stage;
    bool one_phase;           /* kr_route_phase: no other phase, no delivery */
    struct kr_routing *heap;    /* the copy that waits, once a handler waited */
    const kr_wait_ops *ops;   /* what it waits for */
    void *arg;
    uv_work_t work;           /* CPU-pool waits */
    size_t pos, n;
    kr_match match[KR_ROUTE_MAX_MATCH];
} kr_routing;

static void kr_route_run(kr_routing *r);
static void kr_route_start(kr_server *srv, kr_worker *w, kr_stanza *st, kr_session *origin,
                           kr_intake *intake, kr_route_stage stage, int one_phase);

/* ---- deliveries to sessions ---------------------------------------------------------------- */

static void kr_deliver_cb(kr_worker *w, void *arg, uint64_t id)
{
    kr_session *s = kr_session_find(w, id);
    if (s)
        kr_session_deliver(s, arg);
    kr_rbuf_unref(arg);
}

void kr_deliver(kr_server *srv, kr_worker *w, const kr_session_ref *to, kr_rbuf *bytes)
{
    kr_assert(to->node == 0); /* one node: the directory names no other */
    if (w && w->index == to->worker) {
        kr_session *s = kr_session_find(w, to->id);
        if (s)
            kr_session_deliver(s, bytes);
        return;
    }
    kr_worker_post(&srv->workers[to->worker], kr_deliver_cb, kr_rbuf_ref(bytes), to->id);
}

static bool kr_pick_ok(const kr_session_ref *r, unsigned pick, unsigned flag)
{
    if ((pick & KR_PICK_AVAILABLE) && !r->available)
        return false;
    if ((pick & KR_PICK_NONNEGATIVE) && r->priority < 0)
        return false;
    return !flag || (r->flags & flag);
}

/* The account's resources (at most KR_ROUTER_MAX_RESOURCES) into refs; how many. */
static size_t kr_router_resources(kr_server *srv, const char *bare,
                                  kr_session_ref refs[KR_ROUTER_MAX_RESOURCES])
{
    size_t n = kr_sessions_list(srv->sessions, bare, refs, KR_ROUTER_MAX_RESOURCES);
    return n > KR_ROUTER_MAX_RESOURCES ? KR_ROUTER_MAX_RESOURCES : n;
}

size_t kr_deliver_account(kr_server *srv, kr_worker *w, const char *bare, kr_rbuf *bytes,
                          unsigned pick, unsigned flag)
{
    kr_session_ref refs[KR_ROUTER_MAX_RESOURCES];
    size_t n = kr_router_resources(srv, bare, refs);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!kr_pick_ok(&refs[i], pick, flag))
            continue;
        kr_deliver(srv, w, &refs[i], bytes);
        k++;
    }
    return k;
}

/* ---- building and answering ---------------------------------------------------------------- */

void kr_send_error(kr_server *srv, kr_worker *w, kr_stanza *st, const char *condition,
                   const char *text)
{
    if (st->type == KR_TYPE_ERROR || st->type == KR_TYPE_RESULT)
        return; /* RFC 6120 §8.3.1: never answer an error (or a result) with an error */
    if (!kr_xml_attr_get(st->elem, "from"))
        return;
    kr_stanza_make_error(st, condition, text, NULL);
    kr_send_reply(srv, w, st, st->elem);
}

void kr_send_derived(kr_server *srv, kr_worker *w, kr_stanza *st, kr_xml_node *elem)
{
    const char *bad;
    kr_stanza *d = kr_stanza_new_in(st, elem, srv->hosts, &bad);
    if (bad || d->to_absent) {
        kr_stanza_unref(d);
        return;
    }
    kr_send(srv, w, d);
}

void kr_send_reply(kr_server *srv, kr_worker *w, kr_stanza *st, kr_xml_node *reply)
{
    const char *bad;
    kr_stanza *r = kr_stanza_new_in(st, reply, srv->hosts, &bad);
    if (bad || r->to_absent) {
        kr_stanza_unref(r); /* our own stanza without a valid 'to': nobody to tell */
        return;
    }
    kr_route_start(srv, w, r, NULL, NULL, KR_STAGE_DELIVER, 0);
}

void kr_send_elem(kr_server *srv, kr_worker *w, kr_xml_node *elem, kr_arena *arena)
{
    const char *bad;
    kr_stanza *st = kr_stanza_new(arena, elem, srv->hosts, NULL, &bad);
    if (bad || st->to_absent) {
        kr_stanza_unref(st);
        return;
    }
    kr_send(srv, w, st);
}

void kr_send_presence(kr_server *srv, kr_worker *w, const char *from, const char *to,
                      const char *type)
{
    kr_arena *a = kr_arena_new(512);
    kr_xml_node *p = kr_xml_elem_new(a, KR_NS_CLIENT, "presence");
    kr_xml_attr_set(a, p, "type", type);
    kr_xml_attr_set(a, p, "from", from);
    kr_xml_attr_set(a, p, "to", to);
    kr_send_elem(srv, w, p, a);
}

/* ---- user domains: RFC 6121 §8.5 ------------------------------------------------------------ */

static void kr_router_deliver_one(kr_server *srv, kr_worker *w, const kr_session_ref *to,
                                  const kr_stanza *st)
{
    kr_rbuf *buf = kr_stanza_serialize(st);
    kr_deliver(srv, w, to, buf);
    kr_rbuf_unref(buf);
}

/* Collect the account's resources that are available with non-negative priority; returns how
 * many, and *best gets the highest priority among them. */
static size_t kr_router_available(kr_server *srv, const char *bare, kr_session_ref *out,
                                  int *best)
{
    kr_session_ref all[KR_ROUTER_MAX_RESOURCES];
    size_t n = kr_router_resources(srv, bare, all);
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

bool kr_router_has_available(kr_server *srv, const char *bare)
{
    kr_session_ref avail[KR_ROUTER_MAX_RESOURCES];
    int best;
    return kr_router_available(srv, bare, avail, &best) > 0;
}

/* §8.5.2.1.1 / §8.5.2.2.1: message to a bare JID. */
static void kr_router_message_bare(kr_server *srv, kr_worker *w, kr_stanza *st,
                                   const char *bare)
{
    if (st->type == KR_TYPE_GROUPCHAT) {
        kr_send_error(srv, w, st, "service-unavailable", NULL);
        return;
    }
    kr_session_ref avail[KR_ROUTER_MAX_RESOURCES];
    int best;
    size_t n = kr_router_available(srv, bare, avail, &best);
    if (n == 0) {
        if (st->type & (KR_TYPE_NONE | KR_TYPE_NORMAL | KR_TYPE_CHAT))
            kr_send_error(srv, w, st, "service-unavailable",
                          "The recipient is not online and offline storage is not enabled");
        return; /* headline and error: silently dropped */
    }
    kr_rbuf *buf = kr_stanza_serialize(st);
    for (size_t i = 0; i < n; i++) {
        /* Headlines go to every non-negative resource, the rest to the most available. */
        if (st->type == KR_TYPE_HEADLINE || avail[i].priority == best)
            kr_deliver(srv, w, &avail[i], buf);
    }
    kr_rbuf_unref(buf);
}

/* §8.5.2.1.2 (directed presence to a bare JID): every available resource. */
static void kr_router_presence_bare(kr_server *srv, kr_worker *w, kr_stanza *st,
                                    const char *bare)
{
    if (st->type == KR_TYPE_PROBE)
        return; /* answered by the presence module */
    kr_rbuf *buf = kr_stanza_serialize(st);
    kr_deliver_account(srv, w, bare, buf, KR_PICK_AVAILABLE, 0);
    kr_rbuf_unref(buf);
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
        /* §8.5.2.1.3: the server answers iqs to a bare JID on the account's behalf; the
         * modules had their turn, so nobody handles this one. */
        if (st->type & (KR_TYPE_GET | KR_TYPE_SET))
            kr_send_error(srv, w, st, "service-unavailable", NULL);
        break;
    }
}

/* §8.5.3: to a full JID. */
static void kr_router_to_full(kr_server *srv, kr_worker *w, kr_stanza *st)
{
    const char *bare = kr_jid_format_bare(st->arena, &st->to);
    kr_session_ref ref;
    if (kr_sessions_find(srv->sessions, bare, st->to.resource, &ref)) {
        kr_router_deliver_one(srv, w, &ref, st);
        return;
    }
    switch (st->kind) {
    case KR_STANZA_MESSAGE:
        /* §8.5.3.2.1: normal and chat fall back to the bare JID; groupchat errors. */
        if (st->type & (KR_TYPE_NONE | KR_TYPE_NORMAL | KR_TYPE_CHAT))
            kr_router_message_bare(srv, w, st, bare);
        else if (st->type == KR_TYPE_GROUPCHAT)
            kr_send_error(srv, w, st, "service-unavailable", NULL);
        break;
    case KR_STANZA_PRESENCE:
        /* §8.5.3.2.2: subscription-related presence is handled as for the bare JID. */
        if (st->type & (KR_TYPE_SUBSCRIBE | KR_TYPE_SUBSCRIBED | KR_TYPE_UNSUBSCRIBE |
                        KR_TYPE_UNSUBSCRIBED))
            kr_router_presence_bare(srv, w, st, bare);
        break;
    case KR_STANZA_IQ:
        kr_send_error(srv, w, st, "service-unavailable", NULL);
        break;
    }
}

/* The delivery of user domains (kr_host.deliver of KR_HOST_USER). */
void kr_router_deliver_user(kr_server *srv, kr_worker *w, const kr_host *host, kr_stanza *st)
{
    if (st->kind == KR_STANZA_PRESENCE && st->to_absent) {
        /* §4.2.2 / §4.5.2: broadcast presence reaches the user's own available resources
         * (the presence module adds the subscribers). */
        kr_router_presence_bare(srv, w, st, kr_jid_format_bare(st->arena, &st->from));
        return;
    }
    switch (st->addressing) {
    case KR_ADDR_HOST:
        if (st->kind == KR_STANZA_IQ && (st->type & (KR_TYPE_GET | KR_TYPE_SET)))
            kr_send_error(srv, w, st, "service-unavailable", NULL);
        break;
    case KR_ADDR_BARE:
    case KR_ADDR_SELF:
        kr_router_to_bare(srv, w, st);
        break;
    case KR_ADDR_FULL:
        kr_router_to_full(srv, w, st);
        break;
    default:
        break;
    }
}

/* The delivery of service hosts (kr_host.deliver of KR_HOST_SERVICE): the owner's handlers
 * had their turn; requests and messages nobody took are refused, the rest dropped. */
void kr_router_deliver_service(kr_server *srv, kr_worker *w, const kr_host *host,
                               kr_stanza *st)
{
    if ((st->kind == KR_STANZA_IQ && (st->type & (KR_TYPE_GET | KR_TYPE_SET))) ||
        (st->kind == KR_STANZA_MESSAGE && st->type != KR_TYPE_ERROR))
        kr_send_error(srv, w, st, "service-unavailable", NULL);
}

/* ---- routes ------------------------------------------------------------------------------- */

static kr_phase kr_route_stage_phase(const kr_routing *r)
{
    if (r->one_phase)
        return r->ctx.phase;
    return r->stage == KR_STAGE_OUT ? KR_PHASE_OUT : KR_PHASE_IN;
}

static void kr_route_select(kr_routing *r)
{
    if (r->stage == KR_STAGE_DELIVER) {
        r->pos = r->n = 0;
        return;
    }
    r->ctx.phase = kr_route_stage_phase(r);
    r->pos = 0;
    r->n = kr_modules_match(r->ctx.srv, r->st, r->ctx.phase, r->match, KR_ROUTE_MAX_MATCH);
}

static void kr_route_finish(kr_routing *r)
{
    kr_worker *w = r->ctx.worker;
    kr_stanza_unref(r->st);
    if (r->heap) {
        uint64_t intake = r->intake_id;
        free(r->heap);
        kr_intake_release(w, intake);
    }
}

/* The stage after the current one; false when the route is complete. */
static bool kr_route_next_stage(kr_routing *r)
{
    if (r->one_phase)
        return false;
    if (r->stage == KR_STAGE_OUT) {
        r->stage = KR_STAGE_IN;
        kr_route_select(r);
        return true;
    }
    r->stage = KR_STAGE_DELIVER;
    return false;
}

static void kr_route_deliver(kr_routing *r)
{
    kr_stanza *st = r->st;
    if (st->host)
        st->host->deliver(r->ctx.srv, r->ctx.worker, st->host, st);
    else
        kr_s2s_route(r->ctx.srv, r->ctx.worker, st); /* bounces itself when federation is off */
}

static void kr_route_run(kr_routing *r)
{
    for (;;) {
        while (r->pos < r->n) {
            const kr_match *m = &r->match[r->pos++];
            r->ctx.child = m->child;
            kr_verdict v = m->spec->fn(&r->ctx);
            if (v == KR_WAIT) {
                kr_assert(r->heap); /* the handler called kr_handler_wait */
                return;             /* the heap copy carries on */
            }
            if (v == KR_HANDLED) {
                kr_route_finish(r);
                return;
            }
        }
        if (!kr_route_next_stage(r))
            break;
    }
    if (r->stage == KR_STAGE_DELIVER)
        kr_route_deliver(r);
    kr_route_finish(r);
}

static void kr_route_start(kr_server *srv, kr_worker *w, kr_stanza *st, kr_session *origin,
                           kr_intake *intake, kr_route_stage stage, int one_phase)
{
    kr_routing r;
    r.ctx = (kr_handler_ctx){.srv = srv, .worker = w, .st = st, .origin = origin};
    r.st = st;
    r.origin_id = origin ? origin->id : 0;
    r.intake = intake;
    r.intake_id = intake ? intake->id : 0;
    r.stage = stage;
    r.one_phase = one_phase != 0;
    if (r.one_phase)
        r.ctx.phase = (kr_phase)one_phase;
    r.heap = NULL;
    r.ops = NULL;
    r.arg = NULL;
    kr_route_select(&r);
    kr_route_run(&r);
}

void kr_route(kr_server *srv, kr_worker *w, kr_stanza *st, kr_session *origin,
              kr_intake *intake)
{
    kr_route_start(srv, w, st, origin, intake, origin ? KR_STAGE_OUT : KR_STAGE_IN, 0);
}

void kr_route_phase(kr_server *srv, kr_worker *w, kr_stanza *st, kr_session *origin,
                    kr_intake *intake, kr_phase phase)
{
    kr_route_start(srv, w, st, origin, intake, KR_STAGE_IN, (int)phase);
}

void kr_send(kr_server *srv, kr_worker *w, kr_stanza *st)
{
    kr_route_start(srv, w, st, NULL, NULL, KR_STAGE_IN, 0);
}

/* ---- waiting -------------------------------------------------------------------------------- */

static void kr_route_work(uv_work_t *req)
{
    kr_routing *r = req->data;
    r->ops->job(NULL, r->arg);
}

static void kr_route_work_done(uv_work_t *req, int status)
{
    kr_routing *r = req->data;
    kr__route_wake(r->ctx.worker, r, 0);
}

static void kr_route_store_job(kr_store *store, void *arg)
{
    kr_routing *r = arg;
    r->ops->job(store, r->arg);
}

kr_verdict kr_handler_wait(kr_handler_ctx *ctx, const char *account, const kr_wait_ops *ops,
                           void *arg)
{
    kr_routing *r = (kr_routing *)ctx; /* ctx is the first member */
    if (!r->heap) {
        kr_routing *h = kr_xmalloc(sizeof(*h));
        memcpy(h, r, sizeof(*h));
        h->heap = h;
        h->intake = NULL;
        r->heap = h;
        if (r->intake && r->intake->id)
            kr_intake_hold(r->intake);
        else
            h->intake_id = 0;
        r = h;
    }
    r->ops = ops;
    r->arg = arg;
    if (!account) {
        r->work.data = r;
        if (uv_queue_work(&r->ctx.worker->loop, &r->work, kr_route_work, kr_route_work_done) ==
            0)
            return KR_WAIT;
        kr_route_work(&r->work); /* cannot queue (cannot happen on a running loop): here */
        kr_worker_post(r->ctx.worker, kr__route_wake, r, 0);
        return KR_WAIT;
    }
    kr_storage_submit(r->ctx.srv->storage, account, kr_route_store_job, r->ctx.worker,
                      kr__route_wake, r, 0);
    return KR_WAIT;
}

void kr__route_wake(kr_worker *w, void *arg, uint64_t unused)
{
    kr_routing *r = arg;
    const kr_wait_ops *ops = r->ops;
    void *warg = r->arg;
    r->ops = NULL;
    if (kr_worker_current() != w) {
        /* The shutdown drain on the main thread: release, route nothing. */
        r->ctx.cancelled = true;
        if (ops->release)
            ops->release(warg);
        r->intake_id = 0;
        kr_route_finish(r);
        return;
    }
    r->ctx.origin = r->origin_id ? kr_session_find(w, r->origin_id) : NULL;
    r->ctx.origin_gone = r->origin_id && !r->ctx.origin;
    r->ctx.st = r->st;
    kr_verdict v = ops->resume(&r->ctx, warg);
    if (ops->release && !(v == KR_WAIT && r->arg == warg))
        ops->release(warg);
    if (v == KR_WAIT) {
        kr_assert(r->ops); /* resume called kr_handler_wait again */
        return;
    }
    if (v == KR_HANDLED) {
        kr_route_finish(r);
        return;
    }
    kr_route_run(r);
}
