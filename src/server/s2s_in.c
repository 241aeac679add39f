/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Inbound s2s streams (receiving server, RFC 6120 §4-§6, §8; see s2s.h).
 * Before TLS only <starttls/> is accepted (features offer it <required/>).
 * After TLS the features offer SASL EXTERNAL (XEP-0178) when the peer named
 * itself in the stream header and its certificate verifies for that domain
 * (RFC 6125), and Server Dialback (XEP-0220, with dialback errors) unless
 * s2s.require_valid_certificates is set. A <db:result/> key is checked by
 * asking the claimed domain's authoritative server with <db:verify/> over
 * our outbound stream to it (s2s_out.c, possibly on another worker); the
 * answer comes back here by connection id. <db:verify/> requests for keys
 * we issued are answered at once from the dialback secret. The stream keeps
 * the set of (local, remote) domain pairs it authenticated; each stanza's
 * 'from' domain and 'to' domain must be such a pair (<invalid-from/>,
 * <host-unknown/>, <improper-addressing/> stream errors otherwise), and goes
 * to the router after jabber:server is renamed jabber:client. Streams that
 * do not authenticate within limits.auth_timeout_s, or stay silent for
 * s2s.idle_timeout_s, are closed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/base64.h"
#include "core/error.h"
#include "core/log.h"
#include "server/router.h"
#include "server/s2s.h"
#include "server/s2s_internal.h"
#include "server/stanza.h"
#include "xml/parser.h"
#include "xml/serialize.h"

#define KR_S2S_IN_PAIRS_MAX 64   /* domain pairs one stream may authenticate */
#define KR_S2S_IN_PENDING_MAX 16 /* dialback verifications waiting at once */

typedef struct kr_s2s_in {
    kr_server *srv;
    kr_conn *conn;
    kr_xml_parser *parser;
    bool in_feed;
    bool restart;
    bool tls;
    bool sasl_done;
    bool header_sent;
    char stream_id[33];
    char *local;      /* the stream's 'to': one of our domains */
    char *peer;       /* the stream's 'from', when given */
    kr_strmap pairs;  /* "local remote" authenticated (values unused) */
    unsigned pending; /* dialback verifications out */
    uint64_t last_read;
} kr_s2s_in;

static const kr_conn_ops kr_s2s_in_ops;

static bool kr_s2s_in_served(void *ud, const char *domain)
{
    return kr_config_serves(((kr_server *)ud)->cfg, domain);
}

static void kr_s2s_in_send(kr_s2s_in *s, kr_buf *b)
{
    kr_conn_send(s->conn, b->data, b->len);
    kr_buf_clear(b);
}

static void kr_s2s_in_header(kr_s2s_in *s, kr_buf *b)
{
    kr__s2s_stream_id(s->stream_id);
    kr__s2s_header(b, s->local ? s->local : s->srv->cfg->domains[0], s->peer, s->stream_id);
    s->header_sent = true;
}

static void kr_s2s_in_stream_error(kr_s2s_in *s, const char *condition, const char *text)
{
    if (s->conn->closing)
        return;
    kr_buf b = KR_BUF_INIT;
    if (!s->header_sent)
        kr_s2s_in_header(s, &b);
    kr_stream_error_write(&b, condition, text);
    kr_s2s_in_send(s, &b);
    KR_LOG(KR_LOG_INFO, s->conn->log_ctx, "stream error <%s/>%s%s", condition, text ? ": " : "",
           text ? text : "");
    if (s->in_feed)
        kr_xml_parser_stop(s->parser);
    kr_conn_close(s->conn);
}

static void kr_s2s_in_restart(kr_s2s_in *s)
{
    s->header_sent = false;
    if (s->in_feed) {
        s->restart = true;
        kr_xml_parser_stop(s->parser);
    } else {
        kr_xml_parser_reset(s->parser);
    }
}

static bool kr_s2s_in_authed(const kr_s2s_in *s)
{
    return s->pairs.count > 0;
}

static void kr_s2s_in_pair_add(kr_s2s_in *s, const char *local, const char *remote, const char *how)
{
    if (s->pairs.count >= KR_S2S_IN_PAIRS_MAX)
        return;
    bool first = !kr_s2s_in_authed(s);
    kr_buf key = KR_BUF_INIT;
    kr_buf_printf(&key, "%s %s", local, remote);
    kr_strmap_put(&s->pairs, key.data, s);
    kr_buf_clear(&key);
    KR_LOG(KR_LOG_INFO, s->conn->log_ctx, "inbound s2s stream authenticated %s -> %s (%s)", remote,
           local, how);
    if (first) {
        kr_conn_rate_set(s->conn, s->srv->cfg->limits.bytes_per_second);
        kr_conn_timer_set(s->conn, (uint64_t)s->srv->cfg->s2s.idle_timeout_s * 1000);
    }
}

/* ---- stream header and features ----------------------------------------------------------- */

/* SASL EXTERNAL is offered when the peer's certificate verifies for the domain it named. */
static bool kr_s2s_in_external_ok(kr_s2s_in *s, const char *domain)
{
    char why[256] = "";
    if (kr__s2s_cert_ok(s->conn, domain, why, sizeof(why)))
        return true;
    KR_LOG(KR_LOG_DEBUG, s->conn->log_ctx, "certificate of %s not usable: %s",
           domain ? domain : "(unnamed peer)", why);
    return false;
}

static void kr_s2s_in_features(kr_s2s_in *s, kr_buf *b)
{
    kr_buf_puts(b, "<stream:features>");
    if (!s->tls) {
        kr_buf_puts(b, "<starttls xmlns='" KR_NS_TLS "'><required/></starttls>");
    } else if (!s->sasl_done) {
        if (s->peer && kr_s2s_in_external_ok(s, s->peer))
            kr_buf_puts(b, "<mechanisms xmlns='" KR_NS_SASL "'><mechanism>EXTERNAL</mechanism>"
                           "</mechanisms>");
        if (!s->srv->cfg->s2s.require_valid_certificates)
            kr_buf_puts(b, "<dialback xmlns='" KR_NS_DIALBACK_FEATURE "'><errors/></dialback>");
    }
    kr_buf_puts(b, "</stream:features>");
}

static void kr_s2s_in_stream_open(void *ud, const kr_xml_stream_header *hdr)
{
    kr_s2s_in *s = ud;
    const kr_xml_node *e = hdr->elem;
    if (strcmp(e->ns, KR_NS_STREAM) != 0 || strcmp(e->name, "stream") != 0 ||
        strcmp(hdr->default_ns, KR_NS_SERVER) != 0) {
        kr_s2s_in_stream_error(s, "invalid-namespace", "Expected a jabber:server stream");
        return;
    }
    const char *to = kr_xml_attr_get(e, "to");
    const char *from = kr_xml_attr_get(e, "from");
    kr_arena *a = kr_arena_new(256);
    const char *local = NULL, *peer = NULL;
    if (!to || kr_jid_prep_domain(a, to, strlen(to), &local) != 0 ||
        !kr_s2s_in_served(s->srv, local)) {
        kr_arena_free(a);
        kr_s2s_in_stream_error(s, "host-unknown", "This server does not serve that domain");
        return;
    }
    if (from && kr_jid_prep_domain(a, from, strlen(from), &peer) != 0) {
        kr_arena_free(a);
        kr_s2s_in_stream_error(s, "invalid-from", NULL);
        return;
    }
    if ((s->local && strcmp(s->local, local) != 0) ||
        (s->peer && (!peer || strcmp(s->peer, peer) != 0))) {
        kr_arena_free(a);
        kr_s2s_in_stream_error(s, "invalid-from", "The domains changed on stream restart");
        return;
    }
    if (!s->local)
        s->local = kr_xstrdup(local);
    if (!s->peer && peer)
        s->peer = kr_xstrdup(peer);
    kr_arena_free(a);
    kr_buf b = KR_BUF_INIT;
    kr_s2s_in_header(s, &b);
    kr_s2s_in_features(s, &b);
    kr_s2s_in_send(s, &b);
}

static void kr_s2s_in_stream_close(void *ud)
{
    kr_s2s_in *s = ud;
    kr_buf b = KR_BUF_INIT;
    kr_buf_puts(&b, "</stream:stream>");
    kr_s2s_in_send(s, &b);
    if (s->in_feed)
        kr_xml_parser_stop(s->parser);
    kr_conn_close(s->conn);
}

/* ---- SASL EXTERNAL (XEP-0178) ------------------------------------------------------------- */

static void kr_s2s_in_sasl_failure(kr_s2s_in *s, const char *condition)
{
    kr_buf b = KR_BUF_INIT;
    kr_buf_printf(&b, "<failure xmlns='" KR_NS_SASL "'><%s/></failure>", condition);
    kr_s2s_in_send(s, &b);
}

static void kr_s2s_in_auth(kr_s2s_in *s, kr_arena *a, const kr_xml_node *e)
{
    const char *mech = kr_xml_attr_get(e, "mechanism");
    if (s->sasl_done || strcmp(e->name, "auth") != 0) {
        kr_s2s_in_stream_error(s, "policy-violation", "Unexpected SASL element");
        return;
    }
    if (!mech || strcmp(mech, "EXTERNAL") != 0) {
        kr_s2s_in_sasl_failure(s, "invalid-mechanism");
        return;
    }
    /* The authorization identity: empty ("=") or the domain the stream header named. */
    const char *text = kr_xml_text_get(a, e);
    kr_buf authzid = KR_BUF_INIT;
    bool decoded =
        strcmp(text, "=") == 0 || !*text || kr_base64_decode(&authzid, text, strlen(text)) == 0;
    const char *domain = authzid.len ? authzid.data : s->peer;
    bool ok = decoded && domain && (!s->peer || strcmp(domain, s->peer) == 0) &&
              kr_s2s_in_external_ok(s, domain);
    if (!ok) {
        KR_LOG(KR_LOG_WARN, s->conn->log_ctx, "SASL EXTERNAL refused for %s",
               domain && decoded ? domain : "(no domain)");
        kr_buf_clear(&authzid);
        kr_s2s_in_sasl_failure(s, "not-authorized");
        return;
    }
    kr_s2s_in_pair_add(s, s->local, domain, "SASL EXTERNAL");
    kr_buf_clear(&authzid);
    s->sasl_done = true;
    kr_buf b = KR_BUF_INIT;
    kr_buf_puts(&b, "<success xmlns='" KR_NS_SASL "'/>");
    kr_s2s_in_send(s, &b);
    kr_s2s_in_restart(s);
}

/* ---- dialback (XEP-0220) ------------------------------------------------------------------ */

/* <db:result type='error'/> with a stanza error condition (XEP-0220 §2.4 dialback errors). */
static void kr_s2s_in_db_error(kr_s2s_in *s, const char *elem, const char *from, const char *to,
                               const char *id, const char *condition)
{
    kr_buf b = KR_BUF_INIT;
    kr_buf_printf(&b, "<db:%s from='", elem);
    kr_xml_escape_attr(&b, from, strlen(from));
    kr_buf_puts(&b, "' to='");
    kr_xml_escape_attr(&b, to, strlen(to));
    if (id) {
        kr_buf_puts(&b, "' id='");
        kr_xml_escape_attr(&b, id, strlen(id));
    }
    kr_buf_printf(
        &b, "' type='error'><error type='%s'><%s xmlns='" KR_NS_STANZAS_ERR "'/></error></db:%s>",
        kr_stanza_error_type(condition), condition, elem);
    kr_s2s_in_send(s, &b);
}

/* The originating server asks us to accept it for 'from' -> 'to' (XEP-0220 §2.1.2). */
static void kr_s2s_in_db_result(kr_s2s_in *s, kr_arena *a, const kr_xml_node *e)
{
    const char *from = kr_xml_attr_get(e, "from");
    const char *to = kr_xml_attr_get(e, "to");
    const char *key = kr_xml_text_get(a, e);
    const char *pfrom = NULL, *pto = NULL;
    if (!from || !to || kr_jid_prep_domain(a, from, strlen(from), &pfrom) != 0 ||
        kr_jid_prep_domain(a, to, strlen(to), &pto) != 0 || !*key) {
        kr_s2s_in_stream_error(s, "improper-addressing",
                               "A dialback request needs from, to and a key");
        return;
    }
    if (!kr_s2s_in_served(s->srv, pto)) {
        kr_s2s_in_db_error(s, "result", pto, pfrom, NULL, "item-not-found");
        return;
    }
    if (s->srv->cfg->s2s.require_valid_certificates) {
        KR_LOG(KR_LOG_WARN, s->conn->log_ctx,
               "dialback from %s refused: require_valid_certificates is set", pfrom);
        kr_s2s_in_db_error(s, "result", pto, pfrom, NULL, "not-authorized");
        return;
    }
    if (s->pending >= KR_S2S_IN_PENDING_MAX) {
        kr_s2s_in_db_error(s, "result", pto, pfrom, NULL, "resource-constraint");
        return;
    }
    KR_LOG(KR_LOG_DEBUG, s->conn->log_ctx, "dialback request from %s: verifying", pfrom);
    kr__s2s_verify *v = kr_xcalloc(1, sizeof(*v));
    v->local = kr_xstrdup(pto);
    v->remote = kr_xstrdup(pfrom);
    v->id = kr_xstrdup(s->stream_id);
    v->key = kr_xstrdup(key);
    v->reply_worker = s->conn->worker->index;
    v->reply_conn = s->conn->id;
    s->pending++;
    unsigned owner = kr__s2s_owner(s->srv, v->local, v->remote);
    if (owner == s->conn->worker->index)
        kr__s2s_out_verify(s->conn->worker, v, 0);
    else
        kr_worker_post(&s->srv->workers[owner], kr__s2s_out_verify, v, 0);
}

/* We are the authoritative server: was this key issued by us? (XEP-0220 §2.3.2) */
static void kr_s2s_in_db_verify(kr_s2s_in *s, kr_arena *a, const kr_xml_node *e)
{
    const char *from = kr_xml_attr_get(e, "from");
    const char *to = kr_xml_attr_get(e, "to");
    const char *id = kr_xml_attr_get(e, "id");
    const char *key = kr_xml_text_get(a, e);
    const char *pfrom = NULL, *pto = NULL;
    if (!from || !to || !id || kr_jid_prep_domain(a, from, strlen(from), &pfrom) != 0 ||
        kr_jid_prep_domain(a, to, strlen(to), &pto) != 0) {
        kr_s2s_in_stream_error(s, "improper-addressing", "A dialback verify needs from, to and id");
        return;
    }
    if (!kr_s2s_in_served(s->srv, pto)) {
        kr_s2s_in_db_error(s, "verify", pto, pfrom, id, "item-not-found");
        return;
    }
    bool valid = kr_dialback_key_check(s->srv->s2s->secret, pfrom, pto, id, key);
    KR_LOG(KR_LOG_DEBUG, s->conn->log_ctx, "dialback verify from %s for %s: %s", pfrom, pto,
           valid ? "valid" : "invalid");
    kr_buf b = KR_BUF_INIT;
    kr_buf_puts(&b, "<db:verify from='");
    kr_xml_escape_attr(&b, pto, strlen(pto));
    kr_buf_puts(&b, "' to='");
    kr_xml_escape_attr(&b, pfrom, strlen(pfrom));
    kr_buf_puts(&b, "' id='");
    kr_xml_escape_attr(&b, id, strlen(id));
    kr_buf_printf(&b, "' type='%s'/>", valid ? "valid" : "invalid");
    kr_s2s_in_send(s, &b);
}

void kr__s2s_in_verified(kr_worker *w, void *arg, uint64_t conn_id)
{
    kr__s2s_verify *v = arg;
    kr_conn *conn = kr_worker_current() == w ? kr_conn_find(w, conn_id) : NULL;
    kr_s2s_in *s = conn && conn->ops == &kr_s2s_in_ops ? conn->proto : NULL;
    if (s && s->pending)
        s->pending--;
    if (!s || conn->closing || strcmp(v->id, s->stream_id) != 0) {
        kr__s2s_verify_free(v); /* gone, or the stream restarted meanwhile */
        return;
    }
    if (v->result == KR_DB_UNREACHABLE) {
        KR_LOG(KR_LOG_WARN, conn->log_ctx, "dialback for %s: its server cannot be reached",
               v->remote);
        kr_s2s_in_db_error(s, "result", v->local, v->remote, NULL, "remote-connection-failed");
        kr__s2s_verify_free(v);
        return;
    }
    bool valid = v->result == KR_DB_VALID;
    kr_buf b = KR_BUF_INIT;
    kr_buf_puts(&b, "<db:result from='");
    kr_xml_escape_attr(&b, v->local, strlen(v->local));
    kr_buf_puts(&b, "' to='");
    kr_xml_escape_attr(&b, v->remote, strlen(v->remote));
    kr_buf_printf(&b, "' type='%s'/>", valid ? "valid" : "invalid");
    kr_s2s_in_send(s, &b);
    if (valid) {
        kr_s2s_in_pair_add(s, v->local, v->remote, "dialback");
    } else {
        KR_LOG(KR_LOG_WARN, conn->log_ctx, "dialback key for %s is invalid (forged?): refused",
               v->remote);
        if (!kr_s2s_in_authed(s))
            kr_s2s_in_stream_error(s, "not-authorized", "Invalid dialback key");
    }
    kr__s2s_verify_free(v);
}

/* ---- stanzas -------------------------------------------------------------------------------- */

static bool kr_s2s_in_is_stanza(const kr_xml_node *e)
{
    return strcmp(e->name, "message") == 0 || strcmp(e->name, "presence") == 0 ||
           strcmp(e->name, "iq") == 0;
}

/* RFC 6120 §8.1.1.2, §8.1.2.2, §4.9.3.9: addresses must be an authenticated pair. */
static void kr_s2s_in_stanza(kr_s2s_in *s, kr_arena *a, kr_xml_node *e)
{
    if (!kr_s2s_in_authed(s)) {
        kr_s2s_in_stream_error(s, "not-authorized", "Authenticate before sending stanzas");
        return;
    }
    if (strcmp(e->ns, KR_NS_SERVER) != 0) {
        kr_s2s_in_stream_error(s, "invalid-namespace", NULL);
        return;
    }
    const char *from = kr_xml_attr_get(e, "from");
    const char *to = kr_xml_attr_get(e, "to");
    kr_jid jfrom, jto;
    if (!from || !to) {
        kr_s2s_in_stream_error(s, "improper-addressing", "Stanzas need 'from' and 'to'");
        return;
    }
    if (kr_jid_parse(a, from, &jfrom) != 0) {
        kr_s2s_in_stream_error(s, "invalid-from", NULL);
        return;
    }
    if (kr_jid_parse(a, to, &jto) != 0 || !kr_s2s_in_served(s->srv, jto.domain)) {
        kr_s2s_in_stream_error(s, "host-unknown", "The 'to' domain is not served here");
        return;
    }
    kr_buf key = KR_BUF_INIT;
    kr_buf_printf(&key, "%s %s", jto.domain, jfrom.domain);
    bool paired = kr_strmap_get(&s->pairs, key.data) != NULL;
    kr_buf_clear(&key);
    if (!paired) {
        KR_LOG(KR_LOG_WARN, s->conn->log_ctx,
               "stanza from %s to %s on a stream not authenticated for them: refused", jfrom.domain,
               jto.domain);
        kr_s2s_in_stream_error(s, "invalid-from", "The 'from' domain is not authenticated");
        return;
    }
    kr__s2s_to_client_ns(e);
    kr_stanza st;
    const char *bad = kr_stanza_decode(&st, e, a, kr_s2s_in_served, s->srv);
    kr_worker *w = s->conn->worker;
    if (bad) {
        if (!(st.type & (KR_TYPE_ERROR | KR_TYPE_RESULT))) {
            kr_stanza_make_error(&st, bad, NULL, jto.domain);
            kr_router_send(s->srv, w, st.elem, a);
        }
        return;
    }
    kr_router_route(s->srv, w, &st, NULL);
}

static void kr_s2s_in_element(void *ud, kr_xml_node *e, kr_arena *a)
{
    kr_s2s_in *s = ud;
    if (s->conn->closing) {
        kr_arena_free(a);
        return;
    }
    if (!s->tls) {
        if (strcmp(e->ns, KR_NS_TLS) == 0 && strcmp(e->name, "starttls") == 0) {
            kr_buf b = KR_BUF_INIT;
            kr_buf_puts(&b, "<proceed xmlns='" KR_NS_TLS "'/>");
            kr_s2s_in_send(s, &b);
            kr_s2s_in_restart(s);
            kr_conn_start_tls(s->conn);
        } else {
            KR_LOG(KR_LOG_WARN, s->conn->log_ctx, "peer did not start TLS: refused");
            kr_s2s_in_stream_error(s, "policy-violation", "STARTTLS is required");
        }
    } else if (strcmp(e->ns, KR_NS_SASL) == 0) {
        kr_s2s_in_auth(s, a, e);
    } else if (strcmp(e->ns, KR_NS_DIALBACK) == 0 && strcmp(e->name, "result") == 0 &&
               !kr_xml_attr_get(e, "type")) {
        kr_s2s_in_db_result(s, a, e);
    } else if (strcmp(e->ns, KR_NS_DIALBACK) == 0 && strcmp(e->name, "verify") == 0 &&
               !kr_xml_attr_get(e, "type")) {
        kr_s2s_in_db_verify(s, a, e);
    } else if (kr_s2s_in_is_stanza(e)) {
        kr_s2s_in_stanza(s, a, e);
    } else {
        kr_s2s_in_stream_error(s, "unsupported-stanza-type", NULL);
    }
    kr_arena_free(a);
}

/* ---- connection callbacks ----------------------------------------------------------------- */

static void kr_s2s_in_on_data(kr_conn *c, const char *data, size_t len)
{
    kr_s2s_in *s = c->proto;
    s->last_read = uv_now(&c->worker->loop);
    while (len > 0 && !c->closing) {
        size_t chunk = len > 65536 ? 65536 : len;
        s->in_feed = true;
        int r = kr_xml_parser_feed(s->parser, data, chunk);
        s->in_feed = false;
        data += chunk;
        len -= chunk;
        if (r == KR_EPARSE) {
            kr_s2s_in_stream_error(s, kr_xml_error_condition(kr_xml_parser_error(s->parser)),
                                   kr_xml_parser_error_text(s->parser));
            return;
        }
        if (r == KR_ESTOPPED) {
            if (s->restart && !c->closing) {
                s->restart = false;
                kr_xml_parser_reset(s->parser);
            }
            return;
        }
    }
}

static void kr_s2s_in_on_tls_ready(kr_conn *c)
{
    kr_s2s_in *s = c->proto;
    s->tls = true;
}

static void kr_s2s_in_on_timer(kr_conn *c)
{
    kr_s2s_in *s = c->proto;
    if (!kr_s2s_in_authed(s)) {
        kr_s2s_in_stream_error(s, "connection-timeout", "Authentication took too long");
        return;
    }
    uint64_t idle = (uint64_t)s->srv->cfg->s2s.idle_timeout_s * 1000;
    uint64_t silent = uv_now(&c->worker->loop) - s->last_read;
    if (silent >= idle) {
        KR_LOG(KR_LOG_INFO, c->log_ctx, "inbound s2s stream idle: closing");
        kr_s2s_in_stream_close(s);
        return;
    }
    kr_conn_timer_set(c, idle - silent);
}

static void kr_s2s_in_on_overflow(kr_conn *c)
{
    kr_s2s_in_stream_error(c->proto, "policy-violation", "Too much output queued");
}

static void kr_s2s_in_on_free(kr_conn *c)
{
    kr_s2s_in *s = c->proto;
    if (!s)
        return;
    kr_xml_parser_free(s->parser);
    kr_strmap_clear(&s->pairs);
    free(s->local);
    free(s->peer);
    free(s);
}

static const kr_conn_ops kr_s2s_in_ops = {
    .on_data = kr_s2s_in_on_data,
    .on_tls_ready = kr_s2s_in_on_tls_ready,
    .on_timer = kr_s2s_in_on_timer,
    .on_overflow = kr_s2s_in_on_overflow,
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
    kr_strmap_init(&s->pairs);
    kr_xml_limits limits =
        kr_stanza_intake_limits(srv->cfg->limits.max_stanza_bytes, srv->cfg->limits.max_depth,
                                srv->cfg->limits.max_attributes);
    kr_xml_parser_cbs cbs = {kr_s2s_in_stream_open, kr_s2s_in_element, kr_s2s_in_stream_close};
    s->parser = kr_xml_parser_new(&limits, &cbs, s);
    conn->proto = s;
    s->last_read = uv_now(&w->loop);
    kr_conn_timer_set(conn, (uint64_t)srv->cfg->limits.auth_timeout_s * 1000);
}

static void kr_s2s_in_shutdown_conn(kr_conn *c)
{
    if (c->ops == &kr_s2s_in_ops && c->proto)
        kr_s2s_in_stream_error(c->proto, "system-shutdown", "The server is shutting down");
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
