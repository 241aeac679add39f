/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Outbound s2s streams (initiating server, RFC 6120 §4-§6; see s2s.h). One
 * stream per (local, remote) pair, owned by the pair's worker through its
 * s2s_out table; the stream object is the connection's protocol state and
 * is freed with the connection (or, before it has one, by this file). Stages:
 *   RESOLVING (DNS, net/resolver.h: SRV _xmpps-server/_xmpp-server, else the
 *   domain on 5269; skipped for domains in s2s.hosts) -> CONNECTING (each
 *   address of each target in turn until one accepts, RFC 6120 §3.2.1; the
 *   stream object moves to the next connection) -> for an _xmpps-server
 *   target, the TLS handshake at once with ALPN "xmpp-server" (XEP-0368);
 *   else PLAIN (header sent, wait for features: <starttls/> is
 *   required, a peer without it is refused) -> STARTTLS -> TLS handshake
 *   (the certificate is checked per RFC 6125, or against the target's TLSA
 *   records when DNSSEC secured them, RFC 7673; with
 *   require_valid_certificates a failure refuses the peer, and a TLSA
 *   mismatch always does) -> TLS (new header, features) -> SASL
 *   EXTERNAL (XEP-0178) when offered, else dialback <db:result/> (XEP-0220
 *   §2.1) -> READY: the queue is flushed and stanzas go out as they come.
 * Stanzas wait in a queue bounded by s2s.queue_max_stanzas while the stream
 * is being set up; when it fails they bounce with remote-server-not-found,
 * or remote-server-timeout once s2s.connect_timeout_s passed since the
 * stream was first asked for (DNS included; RFC 6120
 * §8.3.3.15/.16). The same stream carries the <db:verify/> requests of our
 * inbound streams (receiving-server side of XEP-0220 §2.3) as soon as its
 * TLS features are in, and routes the answers back to the asking worker.
 * A READY stream that carried nothing for s2s.idle_timeout_s is closed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/base64.h"
#include "core/error.h"
#include "core/log.h"
#include "net/resolver.h"
#include "server/hosts.h"
#include "server/s2s.h"
#include "server/s2s_internal.h"
#include "server/stanza.h"
#include "xml/parser.h"
#include "xml/serialize.h"

typedef enum kr_out_state {
    KR_OUT_RESOLVING, /* DNS look-up running; no connection yet */
    KR_OUT_CONNECTING,
    KR_OUT_PLAIN,        /* header sent in the clear; waiting for features */
    KR_OUT_STARTTLS,     /* <starttls/> sent; waiting for <proceed/> */
    KR_OUT_HANDSHAKE,    /* TLS handshake running */
    KR_OUT_TLS,          /* header sent over TLS; waiting for features */
    KR_OUT_SASL,         /* <auth mechanism='EXTERNAL'/> sent */
    KR_OUT_SASL_RESTART, /* SASL done, header sent again; waiting for features */
    KR_OUT_DIALBACK,     /* <db:result/> sent; waiting for its answer */
    KR_OUT_READY,
} kr_out_state;

typedef struct kr_s2s_out {
    kr_server *srv;
    kr_worker *w;
    kr_conn *conn;
    char *key; /* "local remote" in the worker's table */
    char *local;
    char *remote;
    kr_out_state state;
    kr_xml_parser *parser;
    bool in_feed;
    bool restart;
    bool in_table;
    bool dialback_offered;
    char peer_id[130];     /* stream id the peer gave us (dialback key input) */
    const char *fail_cond; /* how waiting stanzas bounce if the stream ends now */
    const char *fail_text;
    kr_rbuf **queue;
    size_t qlen, qcap;
    kr__s2s_verify **verifies; /* to send (pending) then sent (waiting for the answer) */
    size_t vlen;
    uint64_t last_activity;
    uint64_t deadline;      /* loop time by which the stream must be READY */
    kr_s2s_target *targets; /* where to connect, in order (own copies) */
    size_t ntargets;
    size_t ti, ai; /* target and address being tried */
} kr_s2s_out;

static const kr_conn_ops kr_s2s_out_ops;

static uint64_t kr_s2s_out_now(kr_s2s_out *o)
{
    return uv_now(&o->w->loop);
}

static void kr_s2s_out_send(kr_s2s_out *o, const char *data, size_t len)
{
    kr_conn_send(o->conn, data, len);
    o->last_activity = kr_s2s_out_now(o);
}

static void kr_s2s_out_send_buf(kr_s2s_out *o, kr_buf *b)
{
    kr_s2s_out_send(o, b->data, b->len);
    kr_buf_clear(b);
}

static void kr_s2s_out_header(kr_s2s_out *o)
{
    kr_buf b = KR_BUF_INIT;
    kr__s2s_header(&b, o->local, o->remote, NULL);
    kr_s2s_out_send_buf(o, &b);
}

/* RFC 6120 §4.3.3: a new stream after TLS and after SASL; the parser starts over. */
static void kr_s2s_out_restart(kr_s2s_out *o)
{
    o->peer_id[0] = '\0';
    if (o->in_feed) {
        o->restart = true;
        kr_xml_parser_stop(o->parser);
    } else {
        kr_xml_parser_reset(o->parser);
    }
}

static void kr_s2s_out_abandon(kr_s2s_out *o, const char *condition, const char *text);

/* End the stream; what still waits bounces with condition (see on_close). */
static void kr_s2s_out_fail(kr_s2s_out *o, const char *condition, const char *text,
                            const char *stream_error)
{
    if (!o->conn) { /* resolving, or between two connection attempts */
        kr_s2s_out_abandon(o, condition, text);
        return;
    }
    if (o->conn->closing)
        return;
    o->fail_cond = condition;
    o->fail_text = text;
    kr_buf b = KR_BUF_INIT;
    if (stream_error && o->state != KR_OUT_CONNECTING)
        kr_stream_error_write(&b, stream_error, text);
    else if (o->state != KR_OUT_CONNECTING)
        kr_buf_puts(&b, "</stream:stream>");
    if (b.len)
        kr_s2s_out_send_buf(o, &b);
    kr_buf_clear(&b);
    if (o->in_feed)
        kr_xml_parser_stop(o->parser);
    kr_conn_close(o->conn);
}

/* ---- dialback verifications for our inbound streams ------------------------------------- */

static void kr_s2s_out_verify_answer(kr_s2s_out *o, kr__s2s_verify *v, kr__db_result r)
{
    v->result = r;
    kr_worker_post(&o->srv->workers[v->reply_worker], kr__s2s_in_verified, v, v->reply_conn);
}

static bool kr_s2s_out_can_verify(const kr_s2s_out *o)
{
    return o->state == KR_OUT_DIALBACK || o->state == KR_OUT_READY;
}

/* Send the requests not sent yet (their key is freed once sent: the answer needs only id). */
static void kr_s2s_out_verify_flush(kr_s2s_out *o)
{
    if (!kr_s2s_out_can_verify(o))
        return;
    for (size_t i = 0; i < o->vlen; i++) {
        kr__s2s_verify *v = o->verifies[i];
        if (!v->key)
            continue;
        kr_buf b = KR_BUF_INIT;
        kr_buf_puts(&b, "<db:verify from='");
        kr_xml_escape_attr(&b, o->local, strlen(o->local));
        kr_buf_puts(&b, "' to='");
        kr_xml_escape_attr(&b, o->remote, strlen(o->remote));
        kr_buf_puts(&b, "' id='");
        kr_xml_escape_attr(&b, v->id, strlen(v->id));
        kr_buf_puts(&b, "'>");
        kr_xml_escape_text(&b, v->key, strlen(v->key));
        kr_buf_puts(&b, "</db:verify>");
        kr_s2s_out_send_buf(o, &b);
        free(v->key);
        v->key = NULL;
    }
}

/* XEP-0220 §2.3.2: <db:verify type='valid|invalid' id=.../> from the authoritative server. */
static void kr_s2s_out_verify_result(kr_s2s_out *o, const kr_xml_node *e)
{
    const char *id = kr_xml_attr_get(e, "id");
    const char *type = kr_xml_attr_get(e, "type");
    if (!id || !type)
        return;
    for (size_t i = 0; i < o->vlen; i++) {
        kr__s2s_verify *v = o->verifies[i];
        if (v->key || strcmp(v->id, id) != 0)
            continue;
        memmove(&o->verifies[i], &o->verifies[i + 1], (o->vlen - i - 1) * sizeof(*o->verifies));
        o->vlen--;
        kr_s2s_out_verify_answer(o, v, strcmp(type, "valid") == 0 ? KR_DB_VALID : KR_DB_INVALID);
        return;
    }
    KR_LOG(KR_LOG_DEBUG, o->conn->log_ctx, "dialback verify answer for an unknown id");
}

/* ---- the queue ----------------------------------------------------------------------------- */

static void kr_s2s_out_ready(kr_s2s_out *o, const char *how)
{
    o->state = KR_OUT_READY;
    KR_LOG(KR_LOG_INFO, o->conn->log_ctx, "s2s stream %s -> %s ready (%s), %zu queued", o->local,
           o->remote, how, o->qlen);
    for (size_t i = 0; i < o->qlen; i++) {
        kr_s2s_out_send(o, o->queue[i]->data, o->queue[i]->len);
        kr_rbuf_unref(o->queue[i]);
    }
    o->qlen = 0;
    kr_s2s_out_verify_flush(o);
    kr_conn_timer_set(o->conn, (uint64_t)o->srv->cfg->s2s.idle_timeout_s * 1000);
}

static void kr_s2s_out_bounce_all(kr_s2s_out *o)
{
    const char *cond = o->fail_cond ? o->fail_cond : "remote-server-not-found";
    if (o->qlen)
        KR_LOG(KR_LOG_INFO, o->conn ? o->conn->log_ctx : NULL, "bouncing %zu stanzas for %s: %s",
               o->qlen, o->remote, cond);
    kr_worker_state *ws = kr_worker_state_get(o->w);
    for (size_t i = 0; i < o->qlen; i++) {
        if (!ws->s2s_stopped)
            kr__s2s_bounce(o->srv, o->w, o->queue[i], cond, o->fail_text);
        kr_rbuf_unref(o->queue[i]);
    }
    o->qlen = 0;
    for (size_t i = 0; i < o->vlen; i++)
        kr_s2s_out_verify_answer(o, o->verifies[i], KR_DB_UNREACHABLE);
    o->vlen = 0;
}

/* ---- stream elements ------------------------------------------------------------------------ */

static bool kr_s2s_out_has_mech(const kr_xml_node *features, const char *mech)
{
    kr_xml_node *m = kr_xml_child_get(features, KR_NS_SASL, "mechanisms");
    if (!m)
        return false;
    kr_arena *a = kr_arena_new(256);
    bool found = false;
    for (kr_xml_node *c = kr_xml_first_elem(m); c && !found; c = kr_xml_next_elem(c))
        found = strcmp(c->name, "mechanism") == 0 && strcmp(kr_xml_text_get(a, c), mech) == 0;
    kr_arena_free(a);
    return found;
}

static void kr_s2s_out_dialback(kr_s2s_out *o)
{
    char key[KR_DIALBACK_HEX];
    /* XEP-0185: receiving server, originating server, the stream id it gave us. */
    kr_dialback_key(o->srv->s2s->secret, o->remote, o->local, o->peer_id, key);
    kr_buf b = KR_BUF_INIT;
    kr_buf_puts(&b, "<db:result from='");
    kr_xml_escape_attr(&b, o->local, strlen(o->local));
    kr_buf_puts(&b, "' to='");
    kr_xml_escape_attr(&b, o->remote, strlen(o->remote));
    kr_buf_printf(&b, "'>%s</db:result>", key);
    kr_s2s_out_send_buf(o, &b);
    o->state = KR_OUT_DIALBACK;
    kr_s2s_out_verify_flush(o);
}

static void kr_s2s_out_features(kr_s2s_out *o, const kr_xml_node *f)
{
    switch (o->state) {
    case KR_OUT_PLAIN:
        if (!kr_xml_child_get(f, KR_NS_TLS, "starttls")) {
            KR_LOG(KR_LOG_WARN, o->conn->log_ctx,
                   "%s does not offer STARTTLS: refused (TLS is required on s2s)", o->remote);
            kr_s2s_out_fail(o, "remote-server-not-found", "The remote server does not offer TLS",
                            "policy-violation");
            return;
        }
        kr_s2s_out_send(o, "<starttls xmlns='" KR_NS_TLS "'/>",
                        strlen("<starttls xmlns='" KR_NS_TLS "'/>"));
        o->state = KR_OUT_STARTTLS;
        return;
    case KR_OUT_TLS:
        o->dialback_offered = kr_xml_child_get(f, KR_NS_DIALBACK_FEATURE, "dialback") != NULL;
        if (kr_s2s_out_has_mech(f, "EXTERNAL")) {
            kr_buf b = KR_BUF_INIT;
            kr_buf_puts(&b, "<auth xmlns='" KR_NS_SASL "' mechanism='EXTERNAL'>");
            kr_base64_encode(&b, o->local, strlen(o->local));
            kr_buf_puts(&b, "</auth>");
            kr_s2s_out_send_buf(o, &b);
            o->state = KR_OUT_SASL;
        } else if (o->dialback_offered || !kr_xml_child_get(f, KR_NS_SASL, "mechanisms")) {
            kr_s2s_out_dialback(o);
        } else {
            KR_LOG(KR_LOG_WARN, o->conn->log_ctx,
                   "%s offers neither SASL EXTERNAL nor dialback to us: refused", o->remote);
            kr_s2s_out_fail(o, "remote-server-not-found", "No way to authenticate", NULL);
        }
        return;
    case KR_OUT_SASL_RESTART:
        kr_s2s_out_ready(o, "SASL EXTERNAL");
        return;
    default:
        kr_s2s_out_fail(o, "remote-server-not-found", "Unexpected stream features",
                        "unsupported-stanza-type");
    }
}

static void kr_s2s_out_sasl(kr_s2s_out *o, const kr_xml_node *e)
{
    if (o->state != KR_OUT_SASL) {
        kr_s2s_out_fail(o, "remote-server-not-found", NULL, "unsupported-stanza-type");
        return;
    }
    if (strcmp(e->name, "success") == 0) {
        KR_LOG(KR_LOG_DEBUG, o->conn->log_ctx, "SASL EXTERNAL accepted by %s", o->remote);
        o->state = KR_OUT_SASL_RESTART;
        kr_s2s_out_restart(o);
        kr_s2s_out_header(o);
        return;
    }
    if (o->dialback_offered) {
        KR_LOG(KR_LOG_INFO, o->conn->log_ctx, "SASL EXTERNAL refused by %s: trying dialback",
               o->remote);
        kr_s2s_out_dialback(o);
        return;
    }
    KR_LOG(KR_LOG_WARN, o->conn->log_ctx, "%s refused SASL EXTERNAL and offers no dialback",
           o->remote);
    kr_s2s_out_fail(o, "remote-server-not-found", "Authentication refused", NULL);
}

static void kr_s2s_out_db_result(kr_s2s_out *o, const kr_xml_node *e)
{
    const char *type = kr_xml_attr_get(e, "type");
    if (o->state != KR_OUT_DIALBACK || !type)
        return;
    if (strcmp(type, "valid") == 0) {
        kr_s2s_out_ready(o, "dialback");
        return;
    }
    KR_LOG(KR_LOG_WARN, o->conn->log_ctx, "%s refused our dialback key (%s)", o->remote, type);
    kr_s2s_out_fail(o, "remote-server-not-found", "Dialback refused", NULL);
}

static void kr_s2s_out_element(void *ud, kr_xml_node *e, kr_arena *a)
{
    kr_s2s_out *o = ud;
    o->last_activity = kr_s2s_out_now(o);
    if (o->conn->closing) {
        kr_arena_free(a);
        return;
    }
    if (strcmp(e->ns, KR_NS_STREAM) == 0 && strcmp(e->name, "features") == 0) {
        kr_s2s_out_features(o, e);
    } else if (strcmp(e->ns, KR_NS_STREAM) == 0 && strcmp(e->name, "error") == 0) {
        kr_xml_node *cond = kr_xml_first_elem(e);
        KR_LOG(KR_LOG_WARN, o->conn->log_ctx, "%s ended the stream: <%s/>", o->remote,
               cond ? cond->name : "?");
        kr_s2s_out_fail(o, "remote-server-not-found", NULL, NULL);
    } else if (strcmp(e->ns, KR_NS_TLS) == 0 && strcmp(e->name, "proceed") == 0 &&
               o->state == KR_OUT_STARTTLS) {
        o->state = KR_OUT_HANDSHAKE;
        kr_s2s_out_restart(o);
        kr_conn_start_tls_client(o->conn, o->srv->s2s->client, o->remote, NULL);
    } else if (strcmp(e->ns, KR_NS_TLS) == 0) {
        KR_LOG(KR_LOG_WARN, o->conn->log_ctx, "%s refused STARTTLS", o->remote);
        kr_s2s_out_fail(o, "remote-server-not-found", "TLS negotiation failed", NULL);
    } else if (strcmp(e->ns, KR_NS_SASL) == 0) {
        kr_s2s_out_sasl(o, e);
    } else if (strcmp(e->ns, KR_NS_DIALBACK) == 0 && strcmp(e->name, "result") == 0) {
        kr_s2s_out_db_result(o, e);
    } else if (strcmp(e->ns, KR_NS_DIALBACK) == 0 && strcmp(e->name, "verify") == 0) {
        kr_s2s_out_verify_result(o, e);
    } else {
        KR_LOG(KR_LOG_DEBUG, o->conn->log_ctx, "ignored <%s/> on an outbound stream", e->name);
    }
    kr_arena_free(a);
}

static void kr_s2s_out_stream_open(void *ud, const kr_xml_stream_header *hdr)
{
    kr_s2s_out *o = ud;
    const kr_xml_node *e = hdr->elem;
    if (strcmp(e->ns, KR_NS_STREAM) != 0 || strcmp(e->name, "stream") != 0 ||
        strcmp(hdr->default_ns, KR_NS_SERVER) != 0) {
        kr_s2s_out_fail(o, "remote-server-not-found", NULL, "invalid-namespace");
        return;
    }
    const char *id = kr_xml_attr_get(e, "id");
    snprintf(o->peer_id, sizeof(o->peer_id), "%s", id && strlen(id) < sizeof(o->peer_id) ? id : "");
}

static void kr_s2s_out_stream_close(void *ud)
{
    kr_s2s_out *o = ud;
    KR_LOG(KR_LOG_DEBUG, o->conn->log_ctx, "%s closed the stream", o->remote);
    kr_s2s_out_fail(o, "remote-server-not-found", NULL, NULL);
}

/* ---- connection callbacks ----------------------------------------------------------------- */

static bool kr_s2s_out_connect_next(kr_s2s_out *o, char *why, size_t whylen);

static const kr_s2s_target *kr_s2s_out_target(const kr_s2s_out *o)
{
    return o->ti < o->ntargets ? &o->targets[o->ti] : NULL;
}

static void kr_s2s_out_on_connect(kr_conn *c, int status)
{
    kr_s2s_out *o = c->proto;
    const kr_s2s_target *t = kr_s2s_out_target(o);
    if (status < 0) {
        KR_LOG(KR_LOG_INFO, c->log_ctx, "cannot connect to %s (%s:%u): %s", o->remote,
               t ? t->host : "?", t ? t->port : 0, uv_strerror(status));
        /* RFC 6120 §3.2.1: the next address, then the next target. The failed connection
         * is closed by conn.c without us. */
        c->proto = NULL;
        o->conn = NULL;
        o->ai++;
        char why[256];
        if (!kr_s2s_out_connect_next(o, why, sizeof(why)))
            kr_s2s_out_abandon(o, "remote-server-not-found", "The remote server cannot be reached");
        return;
    }
    KR_LOG(KR_LOG_DEBUG, c->log_ctx, "connected to %s (%s:%u%s)", o->remote, t ? t->host : "?",
           t ? t->port : 0, t && t->direct_tls ? ", direct TLS" : "");
    if (t && t->direct_tls) { /* XEP-0368: TLS at once, SNI = the domain, ALPN xmpp-server */
        o->state = KR_OUT_HANDSHAKE;
        kr_conn_start_tls_client(c, o->srv->s2s->client, o->remote, "xmpp-server");
        return;
    }
    o->state = KR_OUT_PLAIN;
    kr_s2s_out_header(o);
}

static void kr_s2s_out_on_data(kr_conn *c, const char *data, size_t len)
{
    kr_s2s_out *o = c->proto;
    if (kr_xml_parser_feed_stream(o->parser, data, len, &o->in_feed, &o->restart,
                                  kr_conn_closing, c) == KR_EPARSE) {
        KR_LOG(KR_LOG_WARN, c->log_ctx, "%s sent bad XML: %s", o->remote,
               kr_xml_parser_error_text(o->parser));
        kr_s2s_out_fail(o, "remote-server-not-found", NULL, "not-well-formed");
    }
}

static void kr_s2s_out_on_tls_ready(kr_conn *c)
{
    kr_s2s_out *o = c->proto;
    char why[256] = "";
    const kr_s2s_target *t = kr_s2s_out_target(o);
    int auth = kr__s2s_peer_auth(c, o->remote, t ? t->tlsa : NULL, t ? t->tlsa_count : 0, why,
                                 sizeof(why));
    if (auth < 0) {
        KR_LOG(KR_LOG_WARN, c->log_ctx, "certificate of %s refused by DANE (%s)", o->remote, why);
        kr_s2s_out_fail(o, "remote-server-not-found",
                        "The remote server's certificate does not match its DANE records",
                        "policy-violation");
        return;
    }
    bool ok = auth > 0;
    if (!ok && o->srv->cfg->s2s.require_valid_certificates) {
        KR_LOG(KR_LOG_WARN, c->log_ctx, "certificate of %s is not valid (%s): refused", o->remote,
               why);
        kr_s2s_out_fail(o, "remote-server-not-found",
                        "The remote server's certificate is not valid", "policy-violation");
        return;
    }
    if (!ok)
        KR_LOG(KR_LOG_INFO, c->log_ctx,
               "certificate of %s is not valid (%s): continuing, require_valid_certificates is "
               "false",
               o->remote, why);
    o->state = KR_OUT_TLS;
    kr_s2s_out_header(o);
}

static void kr_s2s_out_on_timer(kr_conn *c)
{
    kr_s2s_out *o = c->proto;
    if (o->state != KR_OUT_READY) {
        if (kr_s2s_out_now(o) < o->deadline) { /* an earlier attempt's timer */
            kr_conn_timer_set(c, o->deadline - kr_s2s_out_now(o));
            return;
        }
        KR_LOG(KR_LOG_WARN, c->log_ctx, "s2s stream to %s not ready after %us: giving up",
               o->remote, o->srv->cfg->s2s.connect_timeout_s);
        kr_s2s_out_fail(o, "remote-server-timeout", "The remote server did not answer in time",
                        "connection-timeout");
        return;
    }
    uint64_t idle = (uint64_t)o->srv->cfg->s2s.idle_timeout_s * 1000;
    uint64_t silent = kr_s2s_out_now(o) - o->last_activity;
    if (silent >= idle) {
        KR_LOG(KR_LOG_INFO, c->log_ctx, "s2s stream to %s idle: closing", o->remote);
        kr_s2s_out_fail(o, NULL, NULL, NULL);
        return;
    }
    kr_conn_timer_set(c, idle - silent);
}

static void kr_s2s_out_unlist(kr_s2s_out *o)
{
    if (!o->in_table)
        return;
    kr_strmap_del(&kr_worker_state_get(o->w)->s2s_out, o->key);
    o->in_table = false;
}

static void kr_s2s_out_on_close(kr_conn *c)
{
    kr_s2s_out *o = c->proto;
    if (!o)
        return;
    kr_s2s_out_unlist(o);
    kr_s2s_out_bounce_all(o);
    KR_LOG(KR_LOG_DEBUG, c->log_ctx, "s2s stream to %s closed", o->remote);
}

static void kr_s2s_targets_free(kr_s2s_target *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(t[i].addrs);
        for (size_t k = 0; k < t[i].tlsa_count; k++)
            free(t[i].tlsa[k].data);
        free(t[i].tlsa);
    }
    free(t);
}

static void kr_s2s_out_free(kr_s2s_out *o)
{
    kr_s2s_targets_free(o->targets, o->ntargets);
    for (size_t i = 0; i < o->qlen; i++)
        kr_rbuf_unref(o->queue[i]);
    for (size_t i = 0; i < o->vlen; i++)
        kr__s2s_verify_free(o->verifies[i]);
    free(o->queue);
    free(o->verifies);
    kr_xml_parser_free(o->parser);
    free(o->key);
    free(o->local);
    free(o->remote);
    free(o);
}

static void kr_s2s_out_on_free(kr_conn *c)
{
    if (c->proto)
        kr_s2s_out_free(c->proto);
}

static void kr_s2s_out_on_overflow(kr_conn *c)
{
    kr_s2s_out *o = c->proto;
    kr_s2s_out_fail(o, "remote-server-timeout", "The remote server does not read",
                    "policy-violation");
}

static const kr_conn_ops kr_s2s_out_ops = {
    .on_data = kr_s2s_out_on_data,
    .on_connect = kr_s2s_out_on_connect,
    .on_tls_ready = kr_s2s_out_on_tls_ready,
    .on_timer = kr_s2s_out_on_timer,
    .on_close = kr_s2s_out_on_close,
    .on_overflow = kr_s2s_out_on_overflow,
    .on_free = kr_s2s_out_on_free,
};

/* ---- finding or opening the stream of a pair --------------------------------------------- */

/* A stream that never got (or no longer has) a connection ends here: what waits bounces. */
static void kr_s2s_out_abandon(kr_s2s_out *o, const char *condition, const char *text)
{
    kr_worker_state *ws = kr_worker_state_get(o->w);
    if (o->state == KR_OUT_RESOLVING && ws->resolver)
        kr_resolver_cancel(ws->resolver, o);
    if (condition) {
        o->fail_cond = condition;
        o->fail_text = text;
    }
    kr_s2s_out_unlist(o);
    kr_s2s_out_bounce_all(o);
    kr_s2s_out_free(o);
}

/* Connect to the current address (o->ti, o->ai) or the next one that can be tried. false
 * when none is left; why then says what failed last. */
static bool kr_s2s_out_connect_next(kr_s2s_out *o, char *why, size_t whylen)
{
    snprintf(why, whylen, "no address of %s accepts connections", o->remote);
    for (; o->ti < o->ntargets; o->ti++, o->ai = 0) {
        kr_s2s_target *t = &o->targets[o->ti];
        for (; o->ai < t->addr_count; o->ai++) {
            char err[128];
            o->state = KR_OUT_CONNECTING;
            o->conn = kr_conn_connect(o->w, (struct sockaddr *)&t->addrs[o->ai], &kr_s2s_out_ops,
                                      "s2s-out", o, err, sizeof(err));
            if (!o->conn) {
                snprintf(why, whylen, "cannot connect to %.80s (%.80s): %.60s", o->remote, t->host,
                         err);
                continue;
            }
            uint64_t now = kr_s2s_out_now(o);
            kr_conn_timer_set(o->conn, o->deadline > now ? o->deadline - now : 1);
            KR_LOG(KR_LOG_DEBUG, o->conn->log_ctx, "connecting to %s: %s:%u%s", o->remote, t->host,
                   t->port, t->direct_tls ? " (direct TLS)" : "");
            return true;
        }
    }
    return false;
}

/* Keep copies of the resolver's targets (its array goes when the callback returns). */
static void kr_s2s_out_take_targets(kr_s2s_out *o, const kr_s2s_target *src, size_t n)
{
    o->targets = kr_xcalloc(n, sizeof(*o->targets));
    o->ntargets = n;
    for (size_t i = 0; i < n; i++) {
        kr_s2s_target *t = &o->targets[i];
        *t = src[i];
        t->addrs = kr_xcalloc(src[i].addr_count, sizeof(*t->addrs));
        memcpy(t->addrs, src[i].addrs, src[i].addr_count * sizeof(*t->addrs));
        t->tlsa = src[i].tlsa_count ? kr_xcalloc(src[i].tlsa_count, sizeof(*t->tlsa)) : NULL;
        for (size_t k = 0; k < src[i].tlsa_count; k++) {
            t->tlsa[k] = src[i].tlsa[k];
            t->tlsa[k].data = kr_xmalloc(src[i].tlsa[k].len ? src[i].tlsa[k].len : 1);
            memcpy(t->tlsa[k].data, src[i].tlsa[k].data, src[i].tlsa[k].len);
        }
    }
}

static void kr_s2s_out_resolved(void *ud, int err, kr_s2s_target *targets, size_t count)
{
    kr_s2s_out *o = ud;
    char why[256];
    if (err != 0) {
        bool timeout = err == KR_RESOLVER_ETIMEOUT;
        KR_LOG(KR_LOG_INFO, NULL, "cannot find the server of %s: %s", o->remote,
               kr_resolver_strerror(err));
        kr_s2s_out_abandon(o, timeout ? "remote-server-timeout" : "remote-server-not-found",
                           timeout ? "The remote server's address was not found in time"
                                   : "The remote server cannot be found");
        return;
    }
    kr_s2s_out_take_targets(o, targets, count);
    if (!kr_s2s_out_connect_next(o, why, sizeof(why))) {
        KR_LOG(KR_LOG_INFO, NULL, "cannot reach %s: %s", o->remote, why);
        kr_s2s_out_abandon(o, "remote-server-not-found", "The remote server cannot be reached");
    }
}

static kr_resolver *kr_s2s_out_resolver(kr_worker_state *ws, kr_worker *w, char *why, size_t whylen)
{
    if (!ws->resolver)
        ws->resolver = kr__s2s_resolver_new(ws->srv, &w->loop, why, whylen);
    return ws->resolver;
}

/* The pair's stream, opened if needed; NULL when it cannot be (why says it, cond is the
 * bounce condition). A new stream starts with a connection (s2s.hosts) or a DNS look-up. */
static kr_s2s_out *kr_s2s_out_get(kr_worker *w, const char *local, const char *remote,
                                  const char **cond, char *why, size_t whylen)
{
    kr_worker_state *ws = kr_worker_state_get(w);
    kr_buf key = KR_BUF_INIT;
    kr_buf_printf(&key, "%s %s", local, remote);
    kr_s2s_out *o = kr_strmap_get(&ws->s2s_out, key.data);
    if (o) {
        kr_buf_clear(&key);
        return o;
    }
    *cond = "remote-server-not-found";
    if (kr_hosts_find(ws->srv->hosts, remote)) {
        snprintf(why, whylen, "%s is one of our own domains", remote);
        kr_buf_clear(&key);
        return NULL;
    }
    struct sockaddr_storage addr;
    bool mapped = kr__s2s_static_host(ws->srv, remote, &addr);
    kr_resolver *r = mapped ? NULL : kr_s2s_out_resolver(ws, w, why, whylen);
    if (!mapped && !r) {
        kr_buf_clear(&key);
        return NULL;
    }
    o = kr_xcalloc(1, sizeof(*o));
    o->srv = ws->srv;
    o->w = w;
    o->key = kr_buf_detach(&key, NULL);
    o->local = kr_xstrdup(local);
    o->remote = kr_xstrdup(remote);
    kr_xml_limits limits = {ws->srv->cfg->limits.max_stanza_bytes, ws->srv->cfg->limits.max_depth,
                            ws->srv->cfg->limits.max_attributes};
    kr_xml_parser_cbs cbs = {kr_s2s_out_stream_open, kr_s2s_out_element, kr_s2s_out_stream_close};
    o->parser = kr_xml_parser_new(&limits, &cbs, o);
    o->last_activity = kr_s2s_out_now(o);
    o->deadline = o->last_activity + (uint64_t)ws->srv->cfg->s2s.connect_timeout_s * 1000;
    KR_LOG(KR_LOG_INFO, NULL, "opening s2s stream %s -> %s%s", local, remote,
           mapped ? " (s2s.hosts)" : "");
    if (mapped) {
        kr_s2s_target t = {.port = kr_config_host_get(ws->srv->cfg, remote)->port,
                           .addrs = &addr,
                           .addr_count = 1};
        snprintf(t.host, sizeof(t.host), "%s", remote);
        kr_s2s_out_take_targets(o, &t, 1);
        if (!kr_s2s_out_connect_next(o, why, whylen)) {
            kr_s2s_out_free(o);
            return NULL;
        }
    } else {
        o->state = KR_OUT_RESOLVING;
        int rc = kr_resolver_xmpp_server(r, remote, kr_s2s_out_resolved, o);
        if (rc != 0) {
            snprintf(why, whylen, "cannot look up %s: %s", remote, kr_resolver_strerror(rc));
            kr_s2s_out_free(o);
            return NULL;
        }
    }
    kr_strmap_put(&ws->s2s_out, o->key, o);
    o->in_table = true;
    return o;
}

void kr__s2s_out_submit(kr_worker *w, void *arg, uint64_t unused)
{
    kr__s2s_msg *m = arg;
    kr_worker_state *ws = kr_worker_state_get(w);
    if (!ws->s2s_stopped && kr_worker_current() == w) {
        const char *cond = NULL;
        char why[256];
        kr_s2s_out *o = kr_s2s_out_get(w, m->local, m->remote, &cond, why, sizeof(why));
        if (!o) {
            KR_LOG(KR_LOG_INFO, NULL, "cannot reach %s: %s", m->remote, why);
            kr__s2s_bounce(ws->srv, w, m->buf, cond, "The remote server cannot be reached");
        } else if (o->state == KR_OUT_READY) {
            kr_s2s_out_send(o, m->buf->data, m->buf->len);
        } else if (o->qlen >= ws->srv->cfg->s2s.queue_max_stanzas) {
            kr__s2s_bounce(ws->srv, w, m->buf, "resource-constraint",
                           "Too many stanzas wait for the remote server");
        } else {
            if (o->qlen == o->qcap) {
                o->qcap = o->qcap ? o->qcap * 2 : 16;
                o->queue = kr_xrealloc(o->queue, o->qcap * sizeof(*o->queue));
            }
            o->queue[o->qlen++] = kr_rbuf_ref(m->buf);
        }
    }
    kr_rbuf_unref(m->buf);
    free(m->local);
    free(m->remote);
    free(m);
}

void kr__s2s_out_verify(kr_worker *w, void *arg, uint64_t unused)
{
    kr__s2s_verify *v = arg;
    kr_worker_state *ws = kr_worker_state_get(w);
    if (ws->s2s_stopped || kr_worker_current() != w) {
        kr__s2s_verify_free(v); /* shutting down: the asking stream is gone too */
        return;
    }
    const char *cond = NULL;
    char why[256];
    kr_s2s_out *o = kr_s2s_out_get(w, v->local, v->remote, &cond, why, sizeof(why));
    if (!o) {
        KR_LOG(KR_LOG_INFO, NULL, "cannot verify a dialback key of %s: %s", v->remote, why);
        v->result = KR_DB_UNREACHABLE;
        kr_worker_post(&ws->srv->workers[v->reply_worker], kr__s2s_in_verified, v, v->reply_conn);
        return;
    }
    o->verifies = kr_xrealloc(o->verifies, (o->vlen + 1) * sizeof(*o->verifies));
    o->verifies[o->vlen++] = v;
    kr_s2s_out_verify_flush(o);
}

void kr__s2s_out_shutdown(kr_worker *w)
{
    kr_worker_state *ws = kr_worker_state_get(w);
    size_t n = 0;
    kr_s2s_out **all = kr_xcalloc(ws->s2s_out.count + 1, sizeof(*all));
    for (size_t i = 0; i < ws->s2s_out.cap; i++)
        if (ws->s2s_out.slots[i].key)
            all[n++] = ws->s2s_out.slots[i].value;
    for (size_t i = 0; i < n; i++)
        kr_s2s_out_fail(all[i], NULL, NULL, NULL);
    free(all);
    kr_resolver_free(ws->resolver); /* its handles close while the loop winds down */
    ws->resolver = NULL;
}
