/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Client side of one XMPP c2s connection for kurier-bench (see xconn.h): a
 * state machine from TCP connect through TLS (RFC 6120 §5 STARTTLS or XEP-0368
 * direct TLS, through the engine of tls.h: OpenSSL or wolfSSL), SASL (RFC 6120
 * §6 with SCRAM of RFC 5802/7677 or PLAIN of RFC 4616), stream restarts (§4.3.3), resource
 * binding (§7), the legacy session (RFC 3921 §3) and initial presence
 * (RFC 6121 §4.2), then a pipe of stanzas to the owner. It owns its libuv
 * handles (a TCP handle and a timer), its TLS connection, its XML parser and its
 * buffers; the memory is freed once both handles are closed, right after the
 * owner's `closed` callback. Invariants: after fail()/finish() nothing is sent
 * and no callback but `closed` runs; queued output never exceeds
 * KR_BENCH_MAX_QUEUED; the timer is armed during every wait for the server.
 */
#include "bench/xconn.h"

#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/base64.h"
#include "core/buf.h"
#include "core/error.h"
#include "xml/parser.h"
#include "xml/serialize.h"

#define NS_STREAM "http://etherx.jabber.org/streams"
#define NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_BIND "urn:ietf:params:xml:ns:xmpp-bind"
#define NS_SESSION "urn:ietf:params:xml:ns:xmpp-session"
#define NS_ROSTER "jabber:iq:roster"

typedef enum conn_state {
    ST_CONNECTING,
    ST_FEATURES_TLS,  /* before STARTTLS: waiting for features */
    ST_STARTTLS_WAIT, /* sent <starttls/>, waiting for <proceed/> */
    ST_HANDSHAKE,     /* TLS handshake */
    ST_FEATURES_AUTH, /* waiting for features with mechanisms */
    ST_SASL,          /* sent <auth/>, waiting for challenge/success/failure */
    ST_FEATURES_BIND, /* after SASL restart */
    ST_BIND,
    ST_SESSION,
    ST_READY,
    ST_CLOSING, /* sent </stream:stream>, waiting for the server's */
    ST_DEAD,
} conn_state;

struct kr_bench_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t connect_req;
    int handles_open;
    bool tcp_open;
    uv_loop_t *loop;
    const kr_bench_conn_cfg *cfg;
    const kr_bench_account *acct;
    kr_bench_conn_cbs cbs;
    void *ud;
    conn_state state;
    bool presence;
    bool session_required;
    bool restart_pending; /* reset the parser when the current feed returns */
    bool header_after_restart;
    void *tls; /* the engine's connection (cfg->tls_lib), NULL before TLS */
    kr_xml_parser *parser;
    kr_buf plain;
    kr_buf out;
    size_t queued;
    kr_scram_client *scram;
    bool scram_verified;
    bool plain_mech;
    char *jid;
    kr_bench_err err;
    char why[160];
    uint64_t started_ns;
};

typedef struct write_req {
    uv_write_t req;
    kr_bench_conn *c;
    size_t len;
    char data[];
} write_req;

static const char *const err_names[KR_BENCH_ERR_COUNT] = {
    "none", "connect", "tls", "auth", "bind", "stream", "proto", "timeout", "closed", "io",
};

const char *kr_bench_err_name(kr_bench_err e)
{
    return (unsigned)e < KR_BENCH_ERR_COUNT ? err_names[e] : "?";
}

uint64_t kr_bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- salted-password cache shared across threads ---- */

#define CACHE_LOCKS 64
static pthread_mutex_t cache_locks[CACHE_LOCKS];
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_locks_init(void)
{
    for (unsigned i = 0; i < CACHE_LOCKS; i++)
        pthread_mutex_init(&cache_locks[i], NULL);
}

static void cache_copy(const kr_bench_account *a, kr_scram_salted_password *dst, bool store)
{
    pthread_once(&cache_once, cache_locks_init);
    pthread_mutex_t *m = &cache_locks[a->index % CACHE_LOCKS];
    pthread_mutex_lock(m);
    if (store)
        *a->cache = *dst;
    else
        *dst = *a->cache;
    pthread_mutex_unlock(m);
}

/* ---- teardown ---- */

static void conn_free(kr_bench_conn *c)
{
    if (c->tls)
        c->cfg->tls_lib->conn_free(c->tls);
    if (c->parser)
        kr_xml_parser_free(c->parser);
    if (c->scram)
        kr_scram_client_free(c->scram);
    kr_buf_clear(&c->plain);
    kr_buf_clear(&c->out);
    free(c->jid);
    free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    kr_bench_conn *c = h->data;
    if (--c->handles_open > 0)
        return;
    if (c->cbs.closed)
        c->cbs.closed(c, c->err);
    conn_free(c);
}

/* Close the handles; `closed` runs from their close callbacks. */
static void conn_shut(kr_bench_conn *c, kr_bench_err err, const char *why)
{
    if (c->state == ST_DEAD)
        return;
    c->state = ST_DEAD;
    c->err = err;
    if (why && !c->why[0])
        snprintf(c->why, sizeof(c->why), "%s", why);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    if (c->tcp_open)
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void fail(kr_bench_conn *c, kr_bench_err err, const char *why)
{
    conn_shut(c, err, why);
}

static void arm_timer(kr_bench_conn *c, unsigned ms);

/* ---- output ---- */

static void on_write(uv_write_t *req, int status)
{
    write_req *w = (write_req *)req;
    kr_bench_conn *c = w->c;
    c->queued -= w->len;
    free(w);
    if (status < 0 && status != UV_ECANCELED)
        fail(c, KR_BENCH_ERR_IO, uv_strerror(status));
}

static void write_plain(kr_bench_conn *c, const char *data, size_t len)
{
    if (c->state == ST_DEAD || len == 0)
        return;
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n < 0 && n != UV_EAGAIN) {
        fail(c, KR_BENCH_ERR_IO, uv_strerror(n));
        return;
    }
    size_t done = n > 0 ? (size_t)n : 0;
    if (done == len)
        return;
    size_t rest = len - done;
    if (c->queued + rest > KR_BENCH_MAX_QUEUED) {
        fail(c, KR_BENCH_ERR_IO, "server does not read its input");
        return;
    }
    write_req *w = kr_xmalloc(sizeof(*w) + rest);
    w->c = c;
    w->len = rest;
    memcpy(w->data, data + done, rest);
    uv_buf_t wb = uv_buf_init(w->data, (unsigned)rest);
    int r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &wb, 1, on_write);
    if (r < 0) {
        free(w);
        fail(c, KR_BENCH_ERR_IO, uv_strerror(r));
        return;
    }
    c->queued += rest;
}

static void flush_tls(kr_bench_conn *c)
{
    c->out.len = 0;
    if (c->cfg->tls_lib->output(c->tls, &c->out) > 0)
        write_plain(c, c->out.data, c->out.len);
}

static void send_raw(kr_bench_conn *c, const char *data, size_t len)
{
    if (c->state == ST_DEAD)
        return;
    if (c->cfg->trace)
        fprintf(stderr, "[%p] >> %.*s\n", (void *)c, (int)len, data);
    if (!c->tls) {
        write_plain(c, data, len);
        return;
    }
    if (!c->cfg->tls_lib->write(c->tls, data, len)) {
        fail(c, KR_BENCH_ERR_TLS, "TLS write failed");
        return;
    }
    flush_tls(c);
}

static void send_str(kr_bench_conn *c, const char *s)
{
    send_raw(c, s, strlen(s));
}

static void send_header(kr_bench_conn *c)
{
    kr_buf b = KR_BUF_INIT;
    kr_buf_puts(&b, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                    "xmlns:stream='" NS_STREAM "' version='1.0' to='");
    kr_xml_escape_attr(&b, c->cfg->domain, strlen(c->cfg->domain));
    kr_buf_puts(&b, "'>");
    send_raw(c, b.data, b.len);
    kr_buf_clear(&b);
}

/* ---- timer ---- */

static void on_timer(uv_timer_t *t)
{
    kr_bench_conn *c = t->data;
    if (c->state == ST_CLOSING) {
        conn_shut(c, KR_BENCH_ERR_NONE, NULL); /* the server did not end its stream in time */
        return;
    }
    static const char *const what[] = {
        "connect",
        "stream features",
        "STARTTLS proceed",
        "TLS handshake",
        "SASL mechanisms",
        "SASL answer",
        "bind features",
        "bind result",
        "session result",
        "?",
        "?",
        "?",
    };
    char why[96];
    snprintf(why, sizeof(why), "timed out waiting for %s", what[c->state]);
    fail(c, KR_BENCH_ERR_TIMEOUT, why);
}

static void arm_timer(kr_bench_conn *c, unsigned ms)
{
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void set_state(kr_bench_conn *c, conn_state s)
{
    c->state = s;
    arm_timer(c, c->cfg->timeout_ms);
}

/* ---- TLS ---- */

static void tls_failed(kr_bench_conn *c, const char *why)
{
    flush_tls(c); /* an alert, if any */
    fail(c, KR_BENCH_ERR_TLS, why);
}

/* Step the handshake; true once it is complete. */
static bool tls_step(kr_bench_conn *c)
{
    char why[160];
    int r = c->cfg->tls_lib->handshake(c->tls, why, sizeof(why));
    if (r < 0)
        tls_failed(c, why);
    else
        flush_tls(c);
    return r == 1;
}

static void tls_start(kr_bench_conn *c)
{
    c->tls = c->cfg->tls_lib->conn_new(c->cfg->tls_ctx, c->cfg->domain);
    set_state(c, ST_HANDSHAKE);
    tls_step(c);
}

/* ---- SASL ---- */

static void send_sasl(kr_bench_conn *c, const char *elem, const char *mech, const void *data,
                      size_t len)
{
    kr_buf b = KR_BUF_INIT;
    kr_buf_printf(&b, "<%s xmlns='" NS_SASL "'", elem);
    if (mech)
        kr_buf_printf(&b, " mechanism='%s'", mech);
    kr_buf_puts(&b, ">");
    if (len == 0 && mech)
        kr_buf_puts(&b, "="); /* RFC 6120 §6.4.2: empty initial response */
    else
        kr_base64_encode(&b, data, len);
    kr_buf_printf(&b, "</%s>", elem);
    send_raw(c, b.data, b.len);
    kr_buf_clear(&b);
}

static bool mech_offered(const kr_xml_node *mechs, const char *name)
{
    for (kr_xml_node *m = kr_xml_first_elem(mechs); m; m = kr_xml_next_elem(m)) {
        if (strcmp(m->name, "mechanism") != 0)
            continue;
        for (kr_xml_node *t = m->children; t; t = t->next)
            if (t->type == KR_XML_TEXT && strcmp(t->text, name) == 0)
                return true;
    }
    return false;
}

static void start_auth(kr_bench_conn *c, const kr_xml_node *features)
{
    kr_xml_node *mechs = kr_xml_child_get(features, NS_SASL, "mechanisms");
    if (!mechs) {
        fail(c, KR_BENCH_ERR_PROTO, "no SASL mechanisms offered");
        return;
    }
    kr_bench_mech want = c->cfg->mech;
    int choice = -1;
    if ((want == KR_BENCH_MECH_AUTO || want == KR_BENCH_MECH_SCRAM_SHA256) &&
        mech_offered(mechs, "SCRAM-SHA-256"))
        choice = KR_BENCH_MECH_SCRAM_SHA256;
    else if ((want == KR_BENCH_MECH_AUTO || want == KR_BENCH_MECH_SCRAM_SHA1) &&
             mech_offered(mechs, "SCRAM-SHA-1"))
        choice = KR_BENCH_MECH_SCRAM_SHA1;
    else if ((want == KR_BENCH_MECH_AUTO || want == KR_BENCH_MECH_PLAIN) &&
             mech_offered(mechs, "PLAIN"))
        choice = KR_BENCH_MECH_PLAIN;
    if (choice < 0) {
        fail(c, KR_BENCH_ERR_AUTH, "the wanted SASL mechanism is not offered");
        return;
    }
    set_state(c, ST_SASL);
    if (choice == KR_BENCH_MECH_PLAIN) {
        /* RFC 4616: [authzid] NUL authcid NUL passwd */
        kr_buf m = KR_BUF_INIT;
        kr_buf_append(&m, "", 1);
        kr_buf_puts(&m, c->acct->localpart);
        kr_buf_append(&m, "", 1);
        kr_buf_puts(&m, c->acct->password);
        c->plain_mech = true;
        send_sasl(c, "auth", "PLAIN", m.data, m.len);
        kr_buf_clear(&m);
        return;
    }
    kr_scram_hash h = choice == KR_BENCH_MECH_SCRAM_SHA256 ? KR_SCRAM_SHA256 : KR_SCRAM_SHA1;
    c->scram = kr_scram_client_new(h, c->acct->localpart, NULL, NULL, NULL, 0, NULL);
    kr_buf first = KR_BUF_INIT;
    kr_scram_client_first(c->scram, &first);
    send_sasl(c, "auth", kr_scram_mech_name(h, false), first.data, first.len);
    kr_buf_clear(&first);
}

static int decode_payload(const kr_xml_node *e, kr_buf *out)
{
    kr_buf text = KR_BUF_INIT;
    for (kr_xml_node *t = e->children; t; t = t->next)
        if (t->type == KR_XML_TEXT)
            kr_buf_append(&text, t->text, t->text_len);
    int r = 0;
    if (text.len > 0 && !(text.len == 1 && text.data[0] == '='))
        r = kr_base64_decode(out, text.data, text.len);
    kr_buf_clear(&text);
    return r;
}

static void on_challenge(kr_bench_conn *c, const kr_xml_node *e)
{
    if (!c->scram) {
        fail(c, KR_BENCH_ERR_PROTO, "challenge to PLAIN");
        return;
    }
    kr_buf in = KR_BUF_INIT, out = KR_BUF_INIT;
    if (decode_payload(e, &in) != 0 || in.len == 0) {
        kr_buf_clear(&in);
        fail(c, KR_BENCH_ERR_AUTH, "bad SASL challenge");
        return;
    }
    if (in.data[0] == 'v' || in.data[0] == 'e') {
        /* server-final in a challenge (servers that do not use <success/> data) */
        int r = kr_scram_client_verify(c->scram, in.data, in.len);
        kr_buf_clear(&in);
        if (r != 0) {
            fail(c, KR_BENCH_ERR_AUTH, "bad server signature");
            return;
        }
        c->scram_verified = true;
        send_sasl(c, "response", NULL, "", 0);
        return;
    }
    kr_scram_salted_password local = {0};
    if (c->acct->cache)
        cache_copy(c->acct, &local, false);
    int r = kr_scram_client_final(c->scram, in.data, in.len, c->acct->password, &local, &out);
    kr_buf_clear(&in);
    if (r != 0) {
        kr_buf_clear(&out);
        fail(c, KR_BENCH_ERR_AUTH, kr_strerror(r));
        return;
    }
    if (c->acct->cache && local.valid)
        cache_copy(c->acct, &local, true);
    arm_timer(c, c->cfg->timeout_ms);
    send_sasl(c, "response", NULL, out.data, out.len);
    kr_buf_clear(&out);
}

static void restart_stream(kr_bench_conn *c)
{
    c->restart_pending = true;
    c->header_after_restart = true;
    kr_xml_parser_stop(c->parser);
}

static void on_success(kr_bench_conn *c, const kr_xml_node *e)
{
    if (c->scram && !c->scram_verified) {
        kr_buf in = KR_BUF_INIT;
        int r = decode_payload(e, &in);
        if (r == 0)
            r = kr_scram_client_verify(c->scram, in.data ? in.data : "", in.len);
        kr_buf_clear(&in);
        if (r != 0) {
            fail(c, KR_BENCH_ERR_AUTH, "bad server signature in <success/>");
            return;
        }
    }
    set_state(c, ST_FEATURES_BIND);
    restart_stream(c);
}

static void on_sasl_failure(kr_bench_conn *c, const kr_xml_node *e)
{
    char why[128];
    kr_xml_node *cond = kr_xml_first_elem(e);
    while (cond && strcmp(cond->name, "text") == 0)
        cond = kr_xml_next_elem(cond);
    snprintf(why, sizeof(why), "SASL failure <%s/>", cond ? cond->name : "?");
    fail(c, KR_BENCH_ERR_AUTH, why);
}

/* ---- bind, session, ready ---- */

static void start_bind(kr_bench_conn *c, const kr_xml_node *features)
{
    if (!kr_xml_child_get(features, NS_BIND, "bind")) {
        fail(c, KR_BENCH_ERR_PROTO, "no resource binding offered");
        return;
    }
    kr_xml_node *sess = kr_xml_child_get(features, NS_SESSION, "session");
    c->session_required = sess && !kr_xml_child_get(sess, NULL, "optional");
    kr_buf b = KR_BUF_INIT;
    kr_buf_puts(&b, "<iq type='set' id='kb-bind'><bind xmlns='" NS_BIND "'");
    if (c->cfg->resource) {
        kr_buf_puts(&b, "><resource>");
        kr_xml_escape_text(&b, c->cfg->resource, strlen(c->cfg->resource));
        kr_buf_puts(&b, "</resource></bind></iq>");
    } else {
        kr_buf_puts(&b, "/></iq>");
    }
    set_state(c, ST_BIND);
    send_raw(c, b.data, b.len);
    kr_buf_clear(&b);
}

static void go_ready(kr_bench_conn *c)
{
    if (c->presence)
        send_str(c, "<presence/>");
    if (c->state == ST_DEAD)
        return;
    c->state = ST_READY;
    uv_timer_stop(&c->timer);
    if (c->cbs.ready)
        c->cbs.ready(c);
}

static void on_bind_result(kr_bench_conn *c, kr_xml_node *iq, kr_arena *a)
{
    const char *type = kr_xml_attr_get(iq, "type");
    const char *id = kr_xml_attr_get(iq, "id");
    if (!id || strcmp(id, "kb-bind") != 0)
        return; /* not ours; servers may send other things meanwhile */
    if (!type || strcmp(type, "result") != 0) {
        fail(c, KR_BENCH_ERR_BIND, "resource binding refused");
        return;
    }
    kr_xml_node *bind = kr_xml_child_get(iq, NS_BIND, "bind");
    kr_xml_node *jid = bind ? kr_xml_child_get(bind, NS_BIND, "jid") : NULL;
    const char *text = jid ? kr_xml_text_get(a, jid) : "";
    if (!text[0]) {
        fail(c, KR_BENCH_ERR_BIND, "bind result without a JID");
        return;
    }
    c->jid = kr_xstrdup(text);
    if (c->session_required) {
        set_state(c, ST_SESSION);
        send_str(c, "<iq type='set' id='kb-sess'><session xmlns='" NS_SESSION "'/></iq>");
        return;
    }
    go_ready(c);
}

static void on_session_result(kr_bench_conn *c, kr_xml_node *iq)
{
    const char *id = kr_xml_attr_get(iq, "id");
    if (!id || strcmp(id, "kb-sess") != 0)
        return;
    const char *type = kr_xml_attr_get(iq, "type");
    if (!type || strcmp(type, "result") != 0) {
        fail(c, KR_BENCH_ERR_BIND, "session refused");
        return;
    }
    go_ready(c);
}

/* Answer what a server asks a client on its own: iq get (XEP-0199 ping, disco, ...) with an
 * empty result, a roster push (RFC 6121 §2.1.6) with a result, any other iq set with
 * <service-unavailable/> (RFC 6120 §8.4). Returns whether the iq was handled. */
static bool answer_iq(kr_bench_conn *c, const kr_xml_node *iq)
{
    const char *type = kr_xml_attr_get(iq, "type");
    if (!type || (strcmp(type, "get") != 0 && strcmp(type, "set") != 0))
        return false;
    const char *id = kr_xml_attr_get(iq, "id");
    const char *from = kr_xml_attr_get(iq, "from");
    bool ok = strcmp(type, "get") == 0 || kr_xml_child_get(iq, NS_ROSTER, "query") != NULL;
    kr_buf b = KR_BUF_INIT;
    kr_buf_printf(&b, "<iq type='%s'", ok ? "result" : "error");
    if (id) {
        kr_buf_puts(&b, " id='");
        kr_xml_escape_attr(&b, id, strlen(id));
        kr_buf_puts(&b, "'");
    }
    if (from) {
        kr_buf_puts(&b, " to='");
        kr_xml_escape_attr(&b, from, strlen(from));
        kr_buf_puts(&b, "'");
    }
    if (ok)
        kr_buf_puts(&b, "/>");
    else
        kr_buf_puts(&b, "><error type='cancel'><service-unavailable "
                        "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>");
    send_raw(c, b.data, b.len);
    kr_buf_clear(&b);
    return true;
}

/* ---- parser callbacks ---- */

static void on_stanza(void *ud, kr_xml_node *e, kr_arena *a)
{
    kr_bench_conn *c = ud;
    bool is_stream_ns = strcmp(e->ns, NS_STREAM) == 0;
    if (c->cfg->trace) {
        kr_buf t = KR_BUF_INIT;
        kr_xml_serialize(&t, e, "jabber:client");
        fprintf(stderr, "[%p] << %s\n", (void *)c, t.data ? t.data : "");
        kr_buf_clear(&t);
    }
    if (c->state == ST_DEAD || c->state == ST_CLOSING)
        goto done;
    if (is_stream_ns && strcmp(e->name, "error") == 0) {
        kr_xml_node *cond = kr_xml_first_elem(e);
        char why[128];
        snprintf(why, sizeof(why), "stream error <%s/>", cond ? cond->name : "?");
        fail(c, KR_BENCH_ERR_STREAM, why);
        goto done;
    }
    bool features = is_stream_ns && strcmp(e->name, "features") == 0;
    switch (c->state) {
    case ST_FEATURES_TLS:
        if (!features)
            break;
        if (!kr_xml_child_get(e, NS_TLS, "starttls")) {
            fail(c, KR_BENCH_ERR_PROTO, "server does not offer STARTTLS");
            break;
        }
        set_state(c, ST_STARTTLS_WAIT);
        send_str(c, "<starttls xmlns='" NS_TLS "'/>");
        break;
    case ST_STARTTLS_WAIT:
        if (strcmp(e->ns, NS_TLS) != 0)
            break;
        if (strcmp(e->name, "proceed") != 0) {
            fail(c, KR_BENCH_ERR_TLS, "STARTTLS refused");
            break;
        }
        c->restart_pending = true; /* the header follows the handshake */
        kr_xml_parser_stop(c->parser);
        tls_start(c);
        break;
    case ST_FEATURES_AUTH:
        if (features)
            start_auth(c, e);
        break;
    case ST_SASL:
        if (strcmp(e->ns, NS_SASL) != 0)
            break;
        if (strcmp(e->name, "challenge") == 0)
            on_challenge(c, e);
        else if (strcmp(e->name, "success") == 0)
            on_success(c, e);
        else if (strcmp(e->name, "failure") == 0)
            on_sasl_failure(c, e);
        break;
    case ST_FEATURES_BIND:
        if (features)
            start_bind(c, e);
        break;
    case ST_BIND:
        if (strcmp(e->name, "iq") == 0)
            on_bind_result(c, e, a);
        break;
    case ST_SESSION:
        if (strcmp(e->name, "iq") == 0)
            on_session_result(c, e);
        break;
    case ST_READY:
        /* roster pushes are answered and also shown to the owner, who may track them */
        if (strcmp(e->name, "iq") == 0 && answer_iq(c, e) &&
            !kr_xml_child_get(e, NS_ROSTER, "query"))
            break;
        if (c->cbs.stanza)
            c->cbs.stanza(c, e, a);
        break;
    default:
        break;
    }
done:
    kr_arena_free(a);
}

static void on_stream_close(void *ud)
{
    kr_bench_conn *c = ud;
    if (c->state == ST_CLOSING)
        conn_shut(c, KR_BENCH_ERR_NONE, NULL);
    else
        fail(c, KR_BENCH_ERR_CLOSED, "server ended the stream");
}

static void feed_xml(kr_bench_conn *c, const char *data, size_t len)
{
    if (c->state == ST_DEAD || len == 0)
        return;
    int r = kr_xml_parser_feed(c->parser, data, len);
    if (c->state == ST_DEAD)
        return;
    if (r == KR_EPARSE) {
        char why[160];
        snprintf(why, sizeof(why), "bad XML from server: %s", kr_xml_parser_error_text(c->parser));
        fail(c, KR_BENCH_ERR_STREAM, why);
        return;
    }
    if (c->restart_pending) {
        c->restart_pending = false;
        kr_xml_parser_reset(c->parser);
        if (c->header_after_restart) {
            c->header_after_restart = false;
            send_header(c);
        }
    }
}

/* ---- input ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static _Thread_local char rbuf[65536];
    *buf = uv_buf_init(rbuf, sizeof(rbuf));
}

static void tls_input(kr_bench_conn *c, const char *data, size_t len)
{
    const kr_bench_tls_ops *lib = c->cfg->tls_lib;
    if (!lib->input(c->tls, data, len)) {
        fail(c, KR_BENCH_ERR_TLS, "TLS input refused");
        return;
    }
    if (c->state == ST_HANDSHAKE) {
        if (!tls_step(c))
            return;
        if (c->cfg->tls == KR_BENCH_TLS_STARTTLS)
            kr_xml_parser_reset(c->parser);
        set_state(c, ST_FEATURES_AUTH);
        send_header(c);
    }
    for (;;) {
        if (c->state == ST_DEAD)
            return;
        c->plain.len = 0;
        kr_buf_reserve(&c->plain, 16384);
        long got = lib->read(c->tls, c->plain.data, 16384);
        if (got > 0) {
            feed_xml(c, c->plain.data, (size_t)got);
            continue;
        }
        if (got == 0)
            break;
        if (got == KR_BENCH_TLS_CLOSED) {
            if (c->state == ST_CLOSING)
                conn_shut(c, KR_BENCH_ERR_NONE, NULL);
            else
                fail(c, KR_BENCH_ERR_CLOSED, "server closed TLS");
        } else {
            fail(c, KR_BENCH_ERR_TLS, "TLS read error");
        }
        return;
    }
    if (c->state != ST_DEAD)
        flush_tls(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    kr_bench_conn *c = s->data;
    if (nread == 0 || c->state == ST_DEAD)
        return;
    if (nread < 0) {
        if (c->state == ST_CLOSING)
            conn_shut(c, KR_BENCH_ERR_NONE, NULL);
        else if (nread == UV_EOF)
            fail(c, KR_BENCH_ERR_CLOSED, "server closed the connection");
        else
            fail(c, KR_BENCH_ERR_IO, uv_strerror((int)nread));
        return;
    }
    if (c->tls)
        tls_input(c, buf->base, (size_t)nread);
    else
        feed_xml(c, buf->base, (size_t)nread);
}

/* ---- connect ---- */

static void on_connect(uv_connect_t *req, int status)
{
    kr_bench_conn *c = req->data;
    if (c->state == ST_DEAD)
        return;
    if (status < 0) {
        fail(c, KR_BENCH_ERR_CONNECT, uv_strerror(status));
        return;
    }
    int r = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (r < 0) {
        fail(c, KR_BENCH_ERR_CONNECT, uv_strerror(r));
        return;
    }
    switch (c->cfg->tls) {
    case KR_BENCH_TLS_DIRECT:
        tls_start(c);
        break;
    case KR_BENCH_TLS_STARTTLS:
        set_state(c, ST_FEATURES_TLS);
        send_header(c);
        break;
    case KR_BENCH_TLS_NONE:
        set_state(c, ST_FEATURES_AUTH);
        send_header(c);
        break;
    }
}

static int tcp_open(kr_bench_conn *c, unsigned source_index)
{
    const kr_bench_conn_cfg *cfg = c->cfg;
    int r = uv_tcp_init_ex(c->loop, &c->tcp, cfg->server.ss_family);
    if (r < 0)
        return r;
    c->tcp_open = true;
    c->handles_open++;
    c->tcp.data = c;
    uv_tcp_nodelay(&c->tcp, 1);
    if (cfg->n_sources > 0) {
        const struct sockaddr_storage *src = &cfg->sources[source_index % cfg->n_sources];
        uv_os_fd_t fd;
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) {
            int one = 1;
#ifdef IP_BIND_ADDRESS_NO_PORT
            /* choose the port at connect time, per 4-tuple, so each source address gives
             * its own 64k ports toward one server address */
            setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#else
            (void)one;
#endif
        }
        r = uv_tcp_bind(&c->tcp, (const struct sockaddr *)src, 0);
        if (r < 0)
            return r;
    }
    c->connect_req.data = c;
    return uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&cfg->server,
                          on_connect);
}

kr_bench_conn *kr_bench_conn_start(uv_loop_t *loop, const kr_bench_conn_cfg *cfg,
                                   const kr_bench_account *acct, unsigned source_index,
                                   bool presence, const kr_bench_conn_cbs *cbs, void *ud)
{
    kr_bench_conn *c = kr_xcalloc(1, sizeof(*c));
    c->loop = loop;
    c->cfg = cfg;
    c->acct = acct;
    c->cbs = *cbs;
    c->ud = ud;
    c->presence = presence;
    c->started_ns = kr_bench_now_ns();
    kr_xml_parser_cbs pcbs = {
        .stream_open = NULL, .stanza = on_stanza, .stream_close = on_stream_close};
    c->parser = kr_xml_parser_new(NULL, &pcbs, c);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->handles_open = 1;
    set_state(c, ST_CONNECTING);
    int r = tcp_open(c, source_index);
    if (r < 0) {
        /* reported from the close callbacks, i.e. a later loop iteration */
        fail(c, KR_BENCH_ERR_CONNECT, uv_strerror(r));
    }
    return c;
}

void kr_bench_conn_send(kr_bench_conn *c, const char *xml, size_t len)
{
    if (c->state != ST_READY)
        return;
    send_raw(c, xml, len);
}

void kr_bench_conn_keepalive(kr_bench_conn *c)
{
    if (c->state == ST_READY)
        send_raw(c, " ", 1);
}

void kr_bench_conn_close(kr_bench_conn *c)
{
    if (c->state == ST_DEAD || c->state == ST_CLOSING)
        return;
    if (c->state == ST_CONNECTING || c->state == ST_HANDSHAKE ||
        (c->tls == NULL && c->cfg->tls != KR_BENCH_TLS_NONE)) {
        conn_shut(c, KR_BENCH_ERR_NONE, NULL); /* no stream to end yet */
        return;
    }
    send_str(c, "</stream:stream>");
    if (c->state == ST_DEAD)
        return;
    c->state = ST_CLOSING;
    arm_timer(c, c->cfg->timeout_ms < 3000 ? c->cfg->timeout_ms : 3000);
}

void *kr_bench_conn_ud(const kr_bench_conn *c)
{
    return c->ud;
}

bool kr_bench_conn_is_ready(const kr_bench_conn *c)
{
    return c->state == ST_READY;
}

const char *kr_bench_conn_jid(const kr_bench_conn *c)
{
    return c->jid;
}

const kr_bench_account *kr_bench_conn_account(const kr_bench_conn *c)
{
    return c->acct;
}

uint64_t kr_bench_conn_started_ns(const kr_bench_conn *c)
{
    return c->started_ns;
}

const char *kr_bench_conn_why(const kr_bench_conn *c)
{
    return c->why;
}
