/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Inbound s2s streams on their connections (see s2s.h): accepted on
 * s2s.starttls / direct_tls, each runs the protocol of s2s_in_stream.c with
 * kr_conn underneath (bytes, TLS, the peer's certificate), the router for
 * the stanzas it accepts, and dialback verification over our outbound
 * stream to the claimed domain (s2s_out.c, possibly on another worker),
 * whose answer comes back here by connection id. Received stanzas go to the
 * router through the stream's intake, so they stay in order when a handler
 * waits. Streams that do not
 * authenticate within limits.auth_timeout_s, or stay silent for
 * s2s.idle_timeout_s, are closed.
 */
#include <stddef.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "core/log.h"
#include "server/hosts.h"
#include "server/intake.h"
#include "server/router.h"
#include "server/s2s.h"
#include "server/s2s_in_stream.h"
#include "server/s2s_internal.h"

typedef struct kr_s2s_in {
    kr_server *srv;
    kr_conn *conn;
    kr__s2s_in_stream *stream;
    kr_intake intake;
    uint64_t last_read;
} kr_s2s_in;

static const kr_conn_ops kr_s2s_in_ops;

/* ---- what the stream asks of the connection ----------------------------------------------- */

static void kr_s2s_in_io_send(void *ud, const char *data, size_t len)
{
    kr_conn_send(((kr_s2s_in *)ud)->conn, data, len);
}

static void kr_s2s_in_io_close(void *ud)
{
    kr_conn_close(((kr_s2s_in *)ud)->conn);
}

static bool kr_s2s_in_io_closing(void *ud)
{
    return ((kr_s2s_in *)ud)->conn->closing;
}

static void kr_s2s_in_io_start_tls(void *ud)
{
    kr_conn_start_tls(((kr_s2s_in *)ud)->conn);
}

static bool kr_s2s_in_io_served(void *ud, const char *domain)
{
    return kr_hosts_find(((kr_s2s_in *)ud)->srv->hosts, domain) != NULL;
}

static bool kr_s2s_in_io_cert_ok(void *ud, const char *domain, char *why, size_t whylen)
{
    return kr__s2s_cert_ok(((kr_s2s_in *)ud)->conn, domain, why, whylen);
}

static void kr_s2s_in_io_stream_id(void *ud, char out[33])
{
    kr__s2s_stream_id(out);
}

static void kr_s2s_in_io_verify(void *ud, kr__s2s_verify *v)
{
    kr_s2s_in *s = ud;
    v->reply_worker = s->conn->worker->index;
    v->reply_conn = s->conn->id;
    unsigned owner = kr__s2s_owner(s->srv, v->local, v->remote);
    if (owner == s->conn->worker->index)
        kr__s2s_out_verify(s->conn->worker, v, 0);
    else
        kr_worker_post(&s->srv->workers[owner], kr__s2s_out_verify, v, 0);
}

static void kr_s2s_in_io_authenticated(void *ud)
{
    kr_s2s_in *s = ud;
    kr_conn_rate_set(s->conn, s->srv->cfg->limits.bytes_per_second);
    kr_conn_timer_set(s->conn, (uint64_t)s->srv->cfg->s2s.idle_timeout_s * 1000);
}

static void kr_s2s_in_io_route(void *ud, kr_stanza *st)
{
    kr_intake_push_stanza(&((kr_s2s_in *)ud)->intake, st);
}

static void kr_s2s_in_io_reply(void *ud, kr_stanza *st)
{
    kr_s2s_in *s = ud;
    if (st->to_absent)
        kr_stanza_unref(st);
    else
        kr_send(s->srv, s->conn->worker, st);
}

/* ---- the intake ---------------------------------------------------------------------------- */

static kr_s2s_in *kr_s2s_in_of(kr_intake *in)
{
    return (kr_s2s_in *)((char *)in - offsetof(kr_s2s_in, intake));
}

static void kr_s2s_in_intake_route(kr_intake *in, kr_stanza *st)
{
    kr_s2s_in *s = kr_s2s_in_of(in);
    kr_route(s->srv, s->conn->worker, st, NULL, in);
}

static void kr_s2s_in_intake_process(kr_intake *in, kr_xml_node *elem, kr_arena *arena)
{
    kr_arena_free(arena); /* only decoded stanzas are queued here */
}

static void kr_s2s_in_intake_pause(kr_intake *in, bool pause)
{
    kr_conn_read_pause(kr_s2s_in_of(in)->conn, pause);
}

static const kr__s2s_in_io kr_s2s_in_io = {
    .send = kr_s2s_in_io_send,
    .close = kr_s2s_in_io_close,
    .closing = kr_s2s_in_io_closing,
    .start_tls = kr_s2s_in_io_start_tls,
    .served = kr_s2s_in_io_served,
    .cert_ok = kr_s2s_in_io_cert_ok,
    .stream_id = kr_s2s_in_io_stream_id,
    .verify = kr_s2s_in_io_verify,
    .authenticated = kr_s2s_in_io_authenticated,
    .route = kr_s2s_in_io_route,
    .reply = kr_s2s_in_io_reply,
};

void kr__s2s_in_verified(kr_worker *w, void *arg, uint64_t conn_id)
{
    kr__s2s_verify *v = arg;
    kr_conn *conn = kr_worker_current() == w ? kr_conn_find(w, conn_id) : NULL;
    kr_s2s_in *s = conn && conn->ops == &kr_s2s_in_ops ? conn->proto : NULL;
    if (!s) {
        kr__s2s_verify_free(v); /* gone */
        return;
    }
    kr__s2s_in_stream_verified(s->stream, v);
}

/* ---- connection callbacks ----------------------------------------------------------------- */

static void kr_s2s_in_on_data(kr_conn *c, const char *data, size_t len)
{
    kr_s2s_in *s = c->proto;
    s->last_read = uv_now(&c->worker->loop);
    kr__s2s_in_stream_feed(s->stream, data, len);
}

static void kr_s2s_in_on_tls_ready(kr_conn *c)
{
    kr_s2s_in *s = c->proto;
    kr__s2s_in_stream_tls_ready(s->stream);
}

static void kr_s2s_in_on_timer(kr_conn *c)
{
    kr_s2s_in *s = c->proto;
    if (!kr__s2s_in_stream_authed(s->stream)) {
        kr__s2s_in_stream_error(s->stream, "connection-timeout", "Authentication took too long");
        return;
    }
    uint64_t idle = (uint64_t)s->srv->cfg->s2s.idle_timeout_s * 1000;
    uint64_t silent = uv_now(&c->worker->loop) - s->last_read;
    if (silent >= idle) {
        KR_LOG(KR_LOG_INFO, c->log_ctx, "inbound s2s stream idle: closing");
        kr__s2s_in_stream_close(s->stream);
        return;
    }
    kr_conn_timer_set(c, idle - silent);
}

static void kr_s2s_in_on_overflow(kr_conn *c)
{
    kr_s2s_in *s = c->proto;
    kr__s2s_in_stream_error(s->stream, "policy-violation", "Too much output queued");
}

static void kr_s2s_in_on_close(kr_conn *c)
{
    kr_intake_close(&((kr_s2s_in *)c->proto)->intake);
}

static void kr_s2s_in_on_free(kr_conn *c)
{
    kr_s2s_in *s = c->proto;
    if (!s)
        return;
    kr__s2s_in_stream_free(s->stream);
    free(s);
}

static const kr_conn_ops kr_s2s_in_ops = {
    .on_data = kr_s2s_in_on_data,
    .on_tls_ready = kr_s2s_in_on_tls_ready,
    .on_timer = kr_s2s_in_on_timer,
    .on_overflow = kr_s2s_in_on_overflow,
    .on_close = kr_s2s_in_on_close,
    .on_free = kr_s2s_in_on_free,
};

void kr__s2s_in_accept(kr_worker *w, uv_stream_t *listener, bool direct_tls)
{
    kr_server *srv = kr_worker_state_get(w)->srv;
    kr_conn *conn =
        kr_conn_accept_ctx(w, listener, direct_tls, srv->s2s->server, &kr_s2s_in_ops, "s2s-in");
    if (!conn)
        return;
    kr_s2s_in *s = kr_xcalloc(1, sizeof(*s));
    s->srv = srv;
    s->conn = conn;
    kr__s2s_in_opts o = {
        .io = &kr_s2s_in_io,
        .ud = s,
        .log_ctx = conn->log_ctx,
        .default_domain = kr_hosts_default(srv->hosts)->domain,
        .hosts = srv->hosts,
        .secret = srv->s2s->secret,
        .require_valid_certificates = srv->cfg->s2s.require_valid_certificates,
        .limits =
            kr_stanza_intake_limits(srv->cfg->limits.max_stanza_bytes, srv->cfg->limits.max_depth,
                                    srv->cfg->limits.max_attributes),
    };
    s->stream = kr__s2s_in_stream_new(&o);
    conn->proto = s;
    kr_intake_open(&s->intake, conn, kr_s2s_in_intake_process, kr_s2s_in_intake_pause);
    s->intake.route = kr_s2s_in_intake_route;
    s->last_read = uv_now(&w->loop);
    kr_conn_timer_set(conn, (uint64_t)srv->cfg->limits.auth_timeout_s * 1000);
}

static void kr_s2s_in_shutdown_conn(kr_conn *c)
{
    kr_s2s_in *s = c->ops == &kr_s2s_in_ops ? c->proto : NULL;
    if (s)
        kr__s2s_in_stream_error(s->stream, "system-shutdown", "The server is shutting down");
}

void kr__s2s_in_shutdown(kr_worker *w)
{
    kr_worker_state *ws = kr_worker_state_get(w);
    size_t n = 0;
    kr_conn **all = kr_xcalloc(ws->conns.count + 1, sizeof(*all));
    for (size_t i = 0; i < ws->conns.cap; i++)
        if (ws->conns.slots[i].key && ((kr_conn *)ws->conns.slots[i].value)->ops == &kr_s2s_in_ops)
            all[n++] = ws->conns.slots[i].value;
    for (size_t i = 0; i < n; i++)
        kr_s2s_in_shutdown_conn(all[i]);
    free(all);
}
