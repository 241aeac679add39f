/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * External component streams on their connections, and deliveries to the
 * component domains (see component.h). Each configured domain's host holds
 * a kr_comp_slot whose one atomic word says which worker and connection
 * serve the domain now (0: none): a stream claims it with a compare-and-swap
 * once its handshake verified, gives it back in on_close, and the router's
 * delivery on any worker reads it. A delivery on the serving worker writes
 * the stanza at once; from another worker a copy of the tree goes through
 * the worker queue, and if the connection has gone by the time it arrives
 * the copy is bounced there, so an iq never waits for an answer that cannot
 * come. Stanzas the component sends go to the router through the stream's
 * intake, in order, with origin NULL (as from s2s). The read rate is
 * limits.bytes_per_second_unauthenticated until the handshake, then
 * limits.bytes_per_second; the connections-per-IP limit is kr_conn_accept's.
 */
#include "server/component.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/base64.h"
#include "core/log.h"
#include "server/component_stream.h"
#include "server/conn.h"
#include "server/hosts.h"
#include "server/intake.h"
#include "server/random.h"
#include "server/router.h"
#include "xml/serialize.h"

/* A slot's word: the serving worker's index in the top 8 bits (at most 256 workers), the
 * connection id below (ids count up from 1 and never reach 2^56). */
#define KR_COMP_WORKER_SHIFT 56
#define KR_COMP_ID_MASK ((UINT64_C(1) << KR_COMP_WORKER_SHIFT) - 1)

/* One configured component domain (kr_host.data). */
typedef struct kr_comp_slot {
    const char *domain; /* the host's */
    const char *secret; /* the configuration's */
    atomic_uint_fast64_t serving;
} kr_comp_slot;

/* One component connection (kr_conn.proto). */
typedef struct kr_comp {
    kr_server *srv;
    kr_conn *conn;
    kr_component_stream *stream;
    kr_intake intake;
    kr_comp_slot *slot; /* claimed by this connection, or NULL */
    uint64_t word;      /* the value it put in slot->serving */
} kr_comp;

/* A stanza for a component connection on another worker: a copy of its tree. */
typedef struct kr_comp_msg {
    kr_arena *arena;
    kr_xml_node *elem;
    kr_comp_slot *slot; /* the domain it is for */
    bool moved;         /* already sent on once after its connection had gone */
} kr_comp_msg;

static const kr_conn_ops kr_comp_ops;

static kr_comp_slot *kr_comp_slot_of(const kr_server *srv, const char *domain)
{
    const kr_host *h = kr_hosts_find(srv->hosts, domain);
    return h && h->kind == KR_HOST_COMPONENT ? h->data : NULL;
}

/* ---- deliveries to the component domains ----------------------------------------------------- */

/* Write elem to component connection id of w; false when it is gone or not authenticated. */
static bool kr_comp_write(kr_worker *w, uint64_t id, const kr_xml_node *elem)
{
    kr_conn *c = kr_conn_find(w, id);
    kr_comp *p = c && c->ops == &kr_comp_ops ? c->proto : NULL;
    if (!p)
        return false;
    kr_buf b = KR_BUF_INIT;
    kr_xml_serialize(&b, elem, KR_NS_CLIENT); /* no xmlns: the stream's default namespace */
    bool ok = kr_component_stream_deliver(p->stream, b.data, b.len);
    kr_buf_clear(&b);
    return ok;
}

/* No component serves the domain: what kr_router_deliver_service does for a service. */
static void kr_comp_bounce(kr_server *srv, kr_worker *w, kr_stanza *st)
{
    if ((st->kind == KR_STANZA_IQ && (st->type & (KR_TYPE_GET | KR_TYPE_SET))) ||
        (st->kind == KR_STANZA_MESSAGE && st->type != KR_TYPE_ERROR))
        kr_send_error(srv, w, st, "service-unavailable", "The component is not connected");
}

static void kr_comp_deliver_cb(kr_worker *w, void *arg, uint64_t id);

/* Send m to the connection serving its domain on another worker (word != 0). */
static void kr_comp_post(kr_server *srv, kr_comp_msg *m, uint64_t word)
{
    unsigned owner = (unsigned)(word >> KR_COMP_WORKER_SHIFT);
    kr_worker_post(&srv->workers[owner], kr_comp_deliver_cb, m, word & KR_COMP_ID_MASK);
}

static void kr_comp_deliver_cb(kr_worker *w, void *arg, uint64_t id)
{
    kr_comp_msg *m = arg;
    if (kr_worker_current() != w || kr_comp_write(w, id, m->elem)) {
        kr_arena_free(m->arena); /* written, or the shutdown drain: nothing to route */
        free(m);
        return;
    }
    kr_server *srv = kr_worker_state_get(w)->srv;
    /* The connection went while the copy travelled. If a new one has claimed the domain
     * since (a component reconnecting), the copy follows it, once; else it bounces. */
    uint64_t word = atomic_load_explicit(&m->slot->serving, memory_order_acquire);
    uint64_t here = ((uint64_t)w->index << KR_COMP_WORKER_SHIFT) | id;
    if (word && word != here && !m->moved) {
        m->moved = true;
        if ((unsigned)(word >> KR_COMP_WORKER_SHIFT) != w->index) {
            kr_comp_post(srv, m, word);
            return;
        }
        if (kr_comp_write(w, word & KR_COMP_ID_MASK, m->elem)) {
            kr_arena_free(m->arena);
            free(m);
            return;
        }
    }
    const char *bad;
    kr_stanza *st = kr_stanza_new(m->arena, m->elem, srv->hosts, NULL, &bad);
    if (!bad)
        kr_comp_bounce(srv, w, st);
    kr_stanza_unref(st); /* frees the arena */
    free(m);
}

/* kr_host.deliver of every component domain: runs on whichever worker routed st. */
static void kr_comp_deliver(kr_server *srv, kr_worker *w, const kr_host *host, kr_stanza *st)
{
    kr_comp_slot *slot = host->data;
    uint64_t word = atomic_load_explicit(&slot->serving, memory_order_acquire);
    if (!word) {
        kr_comp_bounce(srv, w, st);
        return;
    }
    unsigned owner = (unsigned)(word >> KR_COMP_WORKER_SHIFT);
    uint64_t id = word & KR_COMP_ID_MASK;
    if (w && w->index == owner) {
        if (!kr_comp_write(w, id, st->elem))
            kr_comp_bounce(srv, w, st);
        return;
    }
    kr_comp_msg *m = kr_xmalloc(sizeof(*m));
    m->arena = kr_arena_new(1024);
    m->elem = kr_xml_node_copy(m->arena, st->elem);
    m->slot = slot;
    m->moved = false;
    kr_comp_post(srv, m, word);
}

/* ---- what the stream asks of the connection -------------------------------------------------- */

static void kr_comp_io_send(void *ud, const char *data, size_t len)
{
    kr_conn_send(((kr_comp *)ud)->conn, data, len);
}

static void kr_comp_io_close(void *ud)
{
    kr_conn_close(((kr_comp *)ud)->conn);
}

static bool kr_comp_io_closing(void *ud)
{
    return ((kr_comp *)ud)->conn->closing;
}

static void kr_comp_io_timer_set(void *ud, uint64_t ms)
{
    kr_conn_timer_set(((kr_comp *)ud)->conn, ms);
}

static uint64_t kr_comp_io_now(void *ud)
{
    return uv_now(&((kr_comp *)ud)->conn->worker->loop);
}

static void kr_comp_io_stream_id(void *ud, char out[33])
{
    unsigned char rnd[16];
    kr_random_public(rnd, sizeof(rnd));
    kr_hex_encode(out, rnd, sizeof(rnd));
}

static const char *kr_comp_io_secret(void *ud, const char *domain)
{
    kr_comp_slot *slot = kr_comp_slot_of(((kr_comp *)ud)->srv, domain);
    return slot ? slot->secret : NULL;
}

/*
 * One connection per domain, and the one already connected stays: a second stream that
 * authenticates is refused with <conflict/>. XEP-0114 §3 allows <conflict/> for a name the
 * server "will not service" and says no more; Prosody's mod_component does the same by
 * default ("kick_new"; "kick_old" replaces the old connection instead). Keeping the old one
 * means two instances of a component started by mistake do not take the domain from each
 * other in a loop, and stanzas already written to the working connection are not lost with
 * it; a component that died without closing its socket frees the domain when the ping after
 * limits.idle_timeout_s goes unanswered (component_stream.h). The check comes after the
 * digest, so nobody without the secret learns whether the component is connected.
 */
static bool kr_comp_io_claim(void *ud, const char *domain)
{
    kr_comp *p = ud;
    kr_comp_slot *slot = kr_comp_slot_of(p->srv, domain);
    if (!slot || p->slot)
        return false;
    kr_assert(p->conn->id <= KR_COMP_ID_MASK);
    uint64_t word = (uint64_t)p->conn->worker->index << KR_COMP_WORKER_SHIFT | p->conn->id;
    uint64_t expected = 0;
    if (!atomic_compare_exchange_strong_explicit(&slot->serving, &expected, word,
                                                 memory_order_acq_rel, memory_order_acquire))
        return false;
    p->slot = slot;
    p->word = word;
    kr_conn_rate_set(p->conn, p->srv->cfg->limits.bytes_per_second);
    size_t n = strlen(p->conn->log_ctx);
    snprintf(p->conn->log_ctx + n, sizeof(p->conn->log_ctx) - n, " %s", domain);
    return true;
}

static void kr_comp_io_route(void *ud, kr_stanza *st)
{
    kr_intake_push_stanza(&((kr_comp *)ud)->intake, st);
}

static void kr_comp_io_reply(void *ud, kr_stanza *st)
{
    kr_comp *p = ud;
    if (st->to_absent)
        kr_stanza_unref(st);
    else
        kr_send(p->srv, p->conn->worker, st);
}

static const kr_component_io kr_comp_io = {
    .send = kr_comp_io_send,
    .close = kr_comp_io_close,
    .closing = kr_comp_io_closing,
    .timer_set = kr_comp_io_timer_set,
    .now = kr_comp_io_now,
    .stream_id = kr_comp_io_stream_id,
    .secret = kr_comp_io_secret,
    .claim = kr_comp_io_claim,
    .route = kr_comp_io_route,
    .reply = kr_comp_io_reply,
};

/* ---- the intake ------------------------------------------------------------------------------ */

static kr_comp *kr_comp_of(kr_intake *in)
{
    return (kr_comp *)((char *)in - offsetof(kr_comp, intake));
}

static void kr_comp_intake_route(kr_intake *in, kr_stanza *st)
{
    kr_comp *p = kr_comp_of(in);
    kr_route(p->srv, p->conn->worker, st, NULL, in);
}

static void kr_comp_intake_process(kr_intake *in, kr_xml_node *elem, kr_arena *arena)
{
    kr_arena_free(arena); /* only decoded stanzas are queued here */
}

static void kr_comp_intake_pause(kr_intake *in, bool pause)
{
    kr_conn_read_pause(kr_comp_of(in)->conn, pause);
}

/* ---- connection callbacks -------------------------------------------------------------------- */

static void kr_comp_on_data(kr_conn *c, const char *data, size_t len)
{
    kr_component_stream_feed(((kr_comp *)c->proto)->stream, data, len);
}

static void kr_comp_on_timer(kr_conn *c)
{
    kr_component_stream_timer(((kr_comp *)c->proto)->stream);
}

static void kr_comp_on_overflow(kr_conn *c)
{
    kr_component_stream_error(((kr_comp *)c->proto)->stream, "policy-violation",
                              "Too much output queued");
}

/* The domain is free again as soon as closing starts: deliveries that read the old word
 * after this find the connection gone (kr_conn_find) and bounce. */
static void kr_comp_on_close(kr_conn *c)
{
    kr_comp *p = c->proto;
    if (p->slot) {
        uint64_t expected = p->word;
        atomic_compare_exchange_strong_explicit(&p->slot->serving, &expected, 0,
                                                memory_order_acq_rel, memory_order_acquire);
        KR_LOG(KR_LOG_INFO, c->log_ctx, "component %s disconnected", p->slot->domain);
        p->slot = NULL;
    }
    kr_intake_close(&p->intake);
}

static void kr_comp_on_free(kr_conn *c)
{
    kr_comp *p = c->proto;
    if (!p)
        return;
    kr_component_stream_free(p->stream);
    free(p);
}

static const kr_conn_ops kr_comp_ops = {
    .on_data = kr_comp_on_data,
    .on_timer = kr_comp_on_timer,
    .on_overflow = kr_comp_on_overflow,
    .on_close = kr_comp_on_close,
    .on_free = kr_comp_on_free,
};

void kr_component_on_connection(uv_stream_t *listener, int status)
{
    kr_listen_handle *lh = listener->data;
    if (status < 0) {
        KR_LOG(KR_LOG_WARN, NULL, "component listener error: %s", uv_strerror(status));
        return;
    }
    kr_worker *w = lh->worker;
    kr_server *srv = kr_worker_state_get(w)->srv;
    kr_conn *conn = kr_conn_accept(w, listener, lh->direct_tls, &kr_comp_ops, "comp");
    if (!conn)
        return;
    kr_comp *p = kr_xcalloc(1, sizeof(*p));
    p->srv = srv;
    p->conn = conn;
    conn->proto = p;
    kr_intake_open(&p->intake, conn, kr_comp_intake_process, kr_comp_intake_pause);
    p->intake.route = kr_comp_intake_route;
    const kr_config *cfg = srv->cfg;
    kr_component_opts o = {
        .io = &kr_comp_io,
        .ud = p,
        .log_ctx = conn->log_ctx,
        .hosts = srv->hosts,
        .server_domain = kr_hosts_default(srv->hosts)->domain,
        .limits = kr_stanza_intake_limits(cfg->limits.max_stanza_bytes, cfg->limits.max_depth,
                                          cfg->limits.max_attributes),
        .auth_timeout_s = cfg->limits.auth_timeout_s,
        .idle_timeout_s = cfg->limits.idle_timeout_s,
    };
    p->stream = kr_component_stream_new(&o);
}

void kr_component_shutdown_worker(kr_worker *w)
{
    kr_worker_state *ws = kr_worker_state_get(w);
    size_t n = 0;
    kr_conn **all = kr_xcalloc(ws->conns.count + 1, sizeof(*all));
    for (size_t i = 0; i < ws->conns.cap; i++)
        if (ws->conns.slots[i].key && ((kr_conn *)ws->conns.slots[i].value)->ops == &kr_comp_ops)
            all[n++] = ws->conns.slots[i].value;
    for (size_t i = 0; i < n; i++)
        kr_component_stream_error(((kr_comp *)all[i]->proto)->stream, "system-shutdown",
                                  "The server is shutting down");
    free(all);
}

/* ---- start and stop -------------------------------------------------------------------------- */

int kr_component_start(kr_server *srv)
{
    const kr_secret_map *secrets = &srv->cfg->component.secrets;
    for (size_t i = 0; i < secrets->count; i++) {
        const kr_secret_entry *e = &secrets->items[i];
        kr_host *h =
            kr_hosts_add(srv->hosts, e->domain, KR_HOST_COMPONENT, kr_comp_deliver, NULL, NULL);
        if (!h) {
            KR_LOG(KR_LOG_ERROR, NULL,
                   "component.secrets: %s is already served here (a user domain or a module's "
                   "service); a component needs a domain of its own",
                   e->domain);
            return -1;
        }
        kr_comp_slot *slot = kr_xcalloc(1, sizeof(*slot));
        slot->domain = h->domain;
        slot->secret = e->secret;
        atomic_init(&slot->serving, 0);
        h->data = slot;
        if (!h->parent)
            KR_LOG(KR_LOG_INFO, NULL,
                   "component %s is not under one of our domains: no disco#items lists it",
                   h->domain);
    }
    const kr_config *cfg = srv->cfg;
    if (secrets->count && !cfg->component.direct_tls.count && !cfg->component.plain.count)
        KR_LOG(KR_LOG_WARN, NULL,
               "component.secrets names components but no component "
               "listener is configured: they cannot connect");
    return 0;
}

void kr_component_stop(kr_server *srv)
{
    if (!srv->hosts)
        return;
    for (size_t i = 0; i < kr_hosts_count(srv->hosts); i++) {
        const kr_host *h = kr_hosts_at(srv->hosts, i);
        if (h->kind == KR_HOST_COMPONENT && h->deliver == kr_comp_deliver)
            free(h->data);
    }
}
