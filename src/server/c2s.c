/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * The TCP+TLS transport of client streams (see c2s.h): each accepted
 * connection runs the stream protocol of c2s_stream.c on a kr_conn, feeds the
 * elements it accepts through its kr_intake, and carries a kr_session
 * (session.h) from the stream header on: the session is attached to this
 * connection as its transport, and ends when the connection closes. Account
 * look-ups run on the account's storage lane and PLAIN's PBKDF2 on the CPU
 * pool; their completions find the connection again by id, so a client that
 * left meanwhile costs nothing. Reading pauses for two reasons that are kept
 * apart: a failed login's delay, and stanzas waiting in the intake.
 */
#include "server/c2s.h"

#include <openssl/crypto.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"
#include "server/c2s_stream.h"
#include "server/conn.h"
#include "server/intake.h"
#include "server/modules.h"
#include "server/router.h"
#include "server/session.h"
#include "server/storage_thread.h"

typedef struct kr_c2s {
    kr_conn *conn;
    kr_server *srv;
    kr_c2s_stream *stream;
    kr_session *session; /* from the first stream header on */
    kr_intake intake;
    bool login_paused;   /* a failed login's delay */
    bool intake_paused;  /* stanzas wait behind a suspended route */
} kr_c2s;

static const kr_conn_ops kr_c2s_ops;

static kr_c2s *kr_c2s_find(kr_worker *w, uint64_t conn_id)
{
    kr_conn *conn = kr_worker_current() == w ? kr_conn_find(w, conn_id) : NULL;
    return conn && conn->ops == &kr_c2s_ops ? conn->proto : NULL;
}

static void kr_c2s_pause_update(kr_c2s *c)
{
    kr_conn_read_pause(c->conn, c->login_paused || c->intake_paused);
}

/* ---- the session's transport ------------------------------------------------------------- */

static void kr_c2s_transport_send(void *ud, const char *data, size_t len)
{
    kr_conn_send(((kr_c2s *)ud)->conn, data, len);
}

static void kr_c2s_transport_close(void *ud, const char *condition, const char *text)
{
    kr_c2s *c = ud;
    if (condition) {
        kr_c2s_stream_error(c->stream, condition, text);
        return;
    }
    kr_conn_send(c->conn, "</stream:stream>", 16);
    kr_conn_close(c->conn);
}

static const kr_transport kr_c2s_transport = {
    .name = "tcp",
    .send = kr_c2s_transport_send,
    .close = kr_c2s_transport_close,
};

/* ---- the intake -------------------------------------------------------------------------- */

static void kr_c2s_intake_process(kr_intake *in, kr_xml_node *elem, kr_arena *arena)
{
    kr_c2s *c = (kr_c2s *)((char *)in - offsetof(kr_c2s, intake));
    kr_c2s_stream_process(c->stream, elem, arena);
}

static void kr_c2s_intake_pause(kr_intake *in, bool pause)
{
    kr_c2s *c = (kr_c2s *)((char *)in - offsetof(kr_c2s, intake));
    c->intake_paused = pause;
    kr_c2s_pause_update(c);
}

/* ---- account look-ups -------------------------------------------------------------------- */

typedef struct kr_c2s_auth_req {
    uv_work_t work; /* PBKDF2 for PLAIN on the CPU pool */
    kr_c2s_auth *job;
    kr_worker *worker;
    uint64_t conn_id;
} kr_c2s_auth_req;

static void kr_c2s_auth_answer(kr_c2s_auth_req *r)
{
    kr_c2s *c = kr_c2s_find(r->worker, r->conn_id);
    if (c)
        kr_c2s_stream_auth_done(c->stream, r->job);
    else
        kr_c2s_auth_free(r->job);
    free(r);
}

static void kr_c2s_plain_work(uv_work_t *req)
{
    kr_c2s_auth *j = ((kr_c2s_auth_req *)req->data)->job;
    j->plain_ok = kr_scram_creds_check(&j->creds, j->password, j->password_len);
}

static void kr_c2s_plain_done(uv_work_t *req, int status)
{
    kr_c2s_auth_answer(req->data);
}

/* On the account's storage lane. */
static void kr_c2s_auth_job(kr_store *store, void *arg)
{
    kr_c2s_auth *j = ((kr_c2s_auth_req *)arg)->job;
    kr_account acct;
    j->result = kr_store_account_get(store, j->jid, &acct);
    if (j->result == 0)
        j->creds = j->password || j->hash != KR_SCRAM_SHA1 ? acct.sha256 : acct.sha1;
    OPENSSL_cleanse(&acct, sizeof(acct));
}

/* Back on the worker: PLAIN still has the password to check, off the loop. */
static void kr_c2s_auth_looked_up(kr_worker *w, void *arg, uint64_t unused)
{
    kr_c2s_auth_req *r = arg;
    if (r->job->password && r->job->result == 0 && kr_worker_current() == w &&
        kr_c2s_find(w, r->conn_id)) {
        r->work.data = r;
        if (uv_queue_work(&w->loop, &r->work, kr_c2s_plain_work, kr_c2s_plain_done) == 0)
            return;
    }
    kr_c2s_auth_answer(r);
}

/* ---- what the stream asks of us --------------------------------------------------------- */

static void kr_c2s_io_send(void *ud, const char *data, size_t len)
{
    kr_conn_send(((kr_c2s *)ud)->conn, data, len);
}

static void kr_c2s_io_deliver(void *ud, const char *data, size_t len, unsigned meta)
{
    kr_c2s *c = ud;
    kr_rbuf *r = kr_rbuf_new(data, len);
    r->meta = meta;
    kr_session_deliver(c->session, r);
    kr_rbuf_unref(r);
}

static void kr_c2s_io_close(void *ud)
{
    kr_conn_close(((kr_c2s *)ud)->conn);
}

static bool kr_c2s_io_closing(void *ud)
{
    return ((kr_c2s *)ud)->conn->closing;
}

static void kr_c2s_io_start_tls(void *ud)
{
    kr_conn_start_tls(((kr_c2s *)ud)->conn);
}

static void kr_c2s_io_cb_exporter(void *ud, kr_scram_cb_data *cb)
{
    kr_tls_cb_exporter(((kr_c2s *)ud)->conn->tls, cb);
}

static void kr_c2s_io_read_pause(void *ud, bool pause)
{
    kr_c2s *c = ud;
    c->login_paused = pause;
    kr_c2s_pause_update(c);
}

static void kr_c2s_io_timer_set(void *ud, uint64_t ms)
{
    kr_conn_timer_set(((kr_c2s *)ud)->conn, ms);
}

static uint64_t kr_c2s_io_now(void *ud)
{
    return uv_now(&((kr_c2s *)ud)->conn->worker->loop);
}

static void kr_c2s_io_trim(void *ud)
{
    kr_conn_trim(((kr_c2s *)ud)->conn);
}

static void kr_c2s_io_opened(void *ud, const char *domain)
{
    kr_c2s *c = ud;
    c->session = kr_session_new(c->srv, c->conn->worker, domain, c->conn->peer_ip);
    kr_session_attach(c->session, &kr_c2s_transport, c, c->conn->peer_ip);
}

static void kr_c2s_io_authenticated(void *ud, const char *local)
{
    kr_c2s *c = ud;
    kr_session_authenticated(c->session, local);
    kr_conn_rate_set(c->conn, c->srv->cfg->limits.bytes_per_second);
}

static void kr_c2s_io_auth(void *ud, kr_c2s_auth *j)
{
    kr_c2s *c = ud;
    kr_c2s_auth_req *r = kr_xcalloc(1, sizeof(*r));
    r->job = j;
    r->worker = c->conn->worker;
    r->conn_id = c->conn->id;
    kr_storage_submit(c->srv->storage, j->jid, kr_c2s_auth_job, r->worker,
                      kr_c2s_auth_looked_up, r, 0);
}

static int kr_c2s_io_bind(void *ud, const char *resource, const char **full,
                          const kr_jid **jid)
{
    kr_c2s *c = ud;
    kr_session *s = c->session;
    int rc = kr_session_bind(s, resource);
    if (rc != 0)
        return rc;
    snprintf(c->conn->log_ctx, sizeof(c->conn->log_ctx), "c2s#%llu w%u %s",
             (unsigned long long)c->conn->id, c->conn->worker->index, s->full);
    *full = s->full;
    *jid = &s->jid;
    return 0;
}

static void kr_c2s_io_intake(void *ud, kr_xml_node *elem, kr_arena *arena)
{
    kr_intake_push(&((kr_c2s *)ud)->intake, elem, arena);
}

static void kr_c2s_io_restarted(void *ud)
{
    kr_intake_discard(&((kr_c2s *)ud)->intake);
}

static void kr_c2s_io_stanza(void *ud, kr_stanza *st)
{
    kr_c2s *c = ud;
    int ev = -1;
    if (st->kind == KR_STANZA_PRESENCE && st->to_absent)
        ev = kr_session_track_presence(c->session, st);
    kr_route(c->srv, c->conn->worker, st, c->session, &c->intake);
    if (ev >= 0 && !c->conn->closing)
        kr_session_event_fire(c->session, (kr_session_event)ev);
}

static void kr_c2s_io_preauth(void *ud, kr_stanza *st)
{
    kr_c2s *c = ud;
    kr_route_phase(c->srv, c->conn->worker, st, c->session, &c->intake, KR_PHASE_PREAUTH);
}

static void kr_c2s_io_reply(void *ud, kr_stanza *st)
{
    kr_c2s *c = ud;
    kr_send(c->srv, c->conn->worker, st);
}

static void kr_c2s_io_features(void *ud, bool authenticated, kr_buf *out)
{
    kr_modules_stream_features(((kr_c2s *)ud)->srv, authenticated, out);
}

static const kr_c2s_io kr_c2s_io_tcp = {
    .send = kr_c2s_io_send,
    .deliver = kr_c2s_io_deliver,
    .close = kr_c2s_io_close,
    .closing = kr_c2s_io_closing,
    .start_tls = kr_c2s_io_start_tls,
    .cb_exporter = kr_c2s_io_cb_exporter,
    .read_pause = kr_c2s_io_read_pause,
    .timer_set = kr_c2s_io_timer_set,
    .now = kr_c2s_io_now,
    .trim = kr_c2s_io_trim,
    .opened = kr_c2s_io_opened,
    .authenticated = kr_c2s_io_authenticated,
    .auth = kr_c2s_io_auth,
    .bind = kr_c2s_io_bind,
    .intake = kr_c2s_io_intake,
    .restarted = kr_c2s_io_restarted,
    .stanza = kr_c2s_io_stanza,
    .preauth = kr_c2s_io_preauth,
    .reply = kr_c2s_io_reply,
    .features = kr_c2s_io_features,
};

/* ---- connection callbacks ---------------------------------------------------------------- */

static void kr_c2s_on_data(kr_conn *conn, const char *data, size_t len)
{
    kr_c2s_stream_feed(((kr_c2s *)conn->proto)->stream, data, len);
}

static void kr_c2s_on_tls_ready(kr_conn *conn)
{
    kr_c2s *c = conn->proto;
    kr_scram_cb_data cb;
    memset(&cb, 0, sizeof(cb));
    kr_tls_cb_data(conn->tls, &cb);
    kr_c2s_stream_tls_ready(c->stream, &cb, kr_tls_exporter_available(conn->tls),
                            kr_tls_version(conn->tls));
}

static void kr_c2s_on_timer(kr_conn *conn)
{
    kr_c2s_stream_timer(((kr_c2s *)conn->proto)->stream);
}

/* Closing: the intake stops, the session ends (RFC 6121 §4.5.2 unavailable presence). */
static void kr_c2s_on_close(kr_conn *conn)
{
    kr_c2s *c = conn->proto;
    kr_intake_close(&c->intake);
    if (c->session) {
        kr_session_detach(c->session);
        kr_session_end(c->session);
        c->session = NULL;
    }
}

/* The client does not read: RFC 6120 §4.9.3.14 policy-violation, then close. */
static void kr_c2s_on_overflow(kr_conn *conn)
{
    kr_c2s *c = conn->proto;
    kr_c2s_stream_error(c->stream, "policy-violation",
                        "Too much output queued: the client does not read");
}

static void kr_c2s_on_free(kr_conn *conn)
{
    kr_c2s *c = conn->proto;
    if (!c)
        return;
    kr_c2s_stream_free(c->stream);
    free(c);
}

static const kr_conn_ops kr_c2s_ops = {
    .on_data = kr_c2s_on_data,
    .on_tls_ready = kr_c2s_on_tls_ready,
    .on_timer = kr_c2s_on_timer,
    .on_close = kr_c2s_on_close,
    .on_overflow = kr_c2s_on_overflow,
    .on_free = kr_c2s_on_free,
};

void kr_c2s_on_connection(uv_stream_t *listener, int status)
{
    kr_listen_handle *lh = listener->data;
    if (status < 0) {
        KR_LOG(KR_LOG_WARN, NULL, "listener error: %s", uv_strerror(status));
        return;
    }
    kr_conn *conn = kr_conn_accept(lh->worker, listener, lh->direct_tls, &kr_c2s_ops, "c2s");
    if (!conn)
        return;
    kr_server *srv = conn->srv;
    kr_c2s *c = kr_xcalloc(1, sizeof(*c));
    c->conn = conn;
    c->srv = srv;
    conn->proto = c;
    kr_intake_open(&c->intake, conn, kr_c2s_intake_process,
                   kr_c2s_intake_pause);
    kr_c2s_opts o = {
        .io = &kr_c2s_io_tcp,
        .ud = c,
        .cfg = srv->cfg,
        .hosts = srv->hosts,
        .secret = srv->secret,
        .secret_len = sizeof(srv->secret),
        .peer_ip = conn->peer_ip,
        .log_ctx = conn->log_ctx,
        .log_ctx_len = sizeof(conn->log_ctx),
    };
    c->stream = kr_c2s_stream_new(&o);
}

static void kr_c2s_shutdown_conn(kr_conn *conn)
{
    if (conn->proto && conn->ops == &kr_c2s_ops)
        kr_c2s_stream_error(((kr_c2s *)conn->proto)->stream, "system-shutdown",
                            "The server is shutting down");
}

void kr_c2s_shutdown_worker(kr_worker *w)
{
    kr_conn_close_all(w, kr_c2s_shutdown_conn);
}
