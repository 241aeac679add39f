/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * The client stream protocol (see c2s_stream.h): stream headers and
 * features, STARTTLS, SASL with SCRAM-SHA-1/-256(-PLUS) and PLAIN, resource
 * binding, and the intake of a bound session's stanzas.
 */
#include "server/c2s_stream.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/base64.h"
#include "core/error.h"
#include "core/log.h"
#include "server/hosts.h"
#include "server/limits.h"
#include "server/random.h"
#include "xml/serialize.h"

#define KR_SASL_DELAY_BASE_MS 250
#define KR_SASL_DELAY_MAX_MS 4000

typedef enum kr_sasl_mech { KR_MECH_NONE, KR_MECH_SCRAM, KR_MECH_PLAIN } kr_sasl_mech;

/* What a stream needs only until its resource is bound: TLS channel bindings and the SASL
 * exchange. Freed at bind, so an idle bound stream does not carry it. */
typedef struct kr_c2s_login {
    kr_scram_cb_data *cb; /* from TLS on; tls-exporter filled in only when a -PLUS exchange
                           * starts */
    bool cb_exporter;     /* tls-exporter can be derived on this connection */
    bool tls12;           /* tls-unique is offered on TLS 1.2 only */
    bool sasl_waiting;    /* an account look-up for this exchange is out */
    kr_sasl_mech mech;
    kr_scram_hash scram_hash;
    unsigned failures;
    kr_scram_server *scram;
    char *mech_name;
    char *sasl_local; /* prepared local part of the account being authenticated */
    const char *pending_failure; /* SASL condition sent when the delay ends */
    char *local;                 /* authenticated local part, until bound */
    uint64_t auth_deadline;
} kr_c2s_login;

struct kr_c2s_stream {
    kr_c2s_opts o;
    kr_xml_parser *parser;
    const char *domain; /* prepared domain of the stream: the address table's */
    bool header_sent;
    bool tls;
    bool authed;
    bool bound;
    bool in_feed;  /* inside kr_xml_parser_feed(): restarts must be deferred */
    bool restart;  /* reset the parser when the current feed returns */
    bool trimmed;  /* idle memory given back; the timer need not look again */
    kr_c2s_login *lg;  /* until bound */
    const char *full;  /* the bound full JID (the session's) */
    const kr_jid *jid; /* `full` prepared once at bind, for the stamped 'from' */
    uint64_t last_read;
    uint64_t ping_at; /* when the outstanding XEP-0199 ping was sent; 0 = none */
};

static void kr_c2s_stream_iq_error(kr_c2s_stream *s, const char *id, const char *condition);

static uint64_t kr_c2s_now(kr_c2s_stream *s)
{
    return s->o.io->now(s->o.ud);
}

static bool kr_c2s_closing(kr_c2s_stream *s)
{
    return s->o.io->closing(s->o.ud);
}

static void kr_c2s_send(kr_c2s_stream *s, const char *str)
{
    s->o.io->send(s->o.ud, str, strlen(str));
}

static void kr_c2s_send_buf(kr_c2s_stream *s, kr_buf *b)
{
    s->o.io->send(s->o.ud, b->data, b->len);
    kr_buf_clear(b);
}

/* ---- stream header, features, errors ---------------------------------------------------- */

static void kr_c2s_write_header(kr_c2s_stream *s, kr_buf *b, const char *peer_from)
{
    unsigned char rnd[16];
    char stream_id[33];
    kr_random_public(rnd, sizeof(rnd));
    kr_hex_encode(stream_id, rnd, sizeof(rnd));
    const char *from = s->domain ? s->domain : kr_hosts_default(s->o.hosts)->domain;
    kr_buf_puts(b, "<?xml version='1.0'?><stream:stream xmlns='" KR_NS_CLIENT
                   "' xmlns:stream='" KR_NS_STREAM "' id='");
    kr_buf_puts(b, stream_id);
    kr_buf_puts(b, "' from='");
    kr_xml_escape_attr(b, from, strlen(from));
    if (peer_from) {
        kr_buf_puts(b, "' to='");
        kr_xml_escape_attr(b, peer_from, strlen(peer_from));
    }
    kr_buf_puts(b, "' version='1.0' xml:lang='en'>");
    s->header_sent = true;
}

/* RFC 6120 §4.9: the error, then the closing tag, then close (after our output is written). */
void kr_c2s_stream_error(kr_c2s_stream *s, const char *condition, const char *text)
{
    if (kr_c2s_closing(s))
        return;
    kr_buf b = KR_BUF_INIT;
    if (!s->header_sent)
        kr_c2s_write_header(s, &b, NULL);
    kr_stream_error_write(&b, condition, text);
    kr_c2s_send_buf(s, &b);
    KR_LOG(KR_LOG_INFO, s->o.log_ctx, "stream error <%s/>%s%s", condition, text ? ": " : "",
           text ? text : "");
    if (s->in_feed)
        kr_xml_parser_stop(s->parser);
    s->o.io->close(s->o.ud);
}

static void kr_c2s_features_sasl(kr_c2s_stream *s, kr_buf *b)
{
    bool plus = s->lg->cb && (s->lg->cb_exporter || s->lg->cb->tls_server_end_point_len ||
                          s->lg->cb->tls_unique_len);
    kr_buf_puts(b, "<mechanisms xmlns='" KR_NS_SASL "'>");
    if (plus)
        kr_buf_puts(b, "<mechanism>SCRAM-SHA-256-PLUS</mechanism>"
                       "<mechanism>SCRAM-SHA-1-PLUS</mechanism>");
    kr_buf_puts(b, "<mechanism>SCRAM-SHA-256</mechanism><mechanism>SCRAM-SHA-1</mechanism>");
    if (s->o.cfg->sasl.plain)
        kr_buf_puts(b, "<mechanism>PLAIN</mechanism>");
    kr_buf_puts(b, "</mechanisms>");
    if (!plus)
        return;
    /* XEP-0440: tell the client which channel bindings we support on this connection. */
    kr_buf_puts(b, "<sasl-channel-binding xmlns='" KR_NS_SASL_CB "'>");
    if (s->lg->cb_exporter)
        kr_buf_puts(b, "<channel-binding type='tls-exporter'/>");
    if (s->lg->cb->tls_server_end_point_len)
        kr_buf_puts(b, "<channel-binding type='tls-server-end-point'/>");
    if (s->lg->cb->tls_unique_len && s->lg->tls12)
        kr_buf_puts(b, "<channel-binding type='tls-unique'/>");
    kr_buf_puts(b, "</sasl-channel-binding>");
}

static void kr_c2s_write_features(kr_c2s_stream *s, kr_buf *b)
{
    kr_buf_puts(b, "<stream:features>");
    if (!s->tls) {
        kr_buf_puts(b, "<starttls xmlns='" KR_NS_TLS "'><required/></starttls>");
    } else if (!s->authed) {
        kr_c2s_features_sasl(s, b);
        s->o.io->features(s->o.ud, false, b);
    } else {
        kr_buf_puts(b, "<bind xmlns='" KR_NS_BIND "'/>"
                       "<session xmlns='" KR_NS_SESSION "'><optional/></session>");
        s->o.io->features(s->o.ud, true, b);
    }
    kr_buf_puts(b, "</stream:features>");
}

/* RFC 6120 §4.3.3: after TLS and after SASL both sides start a new stream. */
static void kr_c2s_restart(kr_c2s_stream *s)
{
    s->header_sent = false;
    if (s->in_feed) {
        s->restart = true;
        kr_xml_parser_stop(s->parser);
    } else {
        kr_xml_parser_reset(s->parser);
    }
    if (s->tls)
        s->o.io->restarted(s->o.ud);
}

static bool kr_c2s_version_ok(const char *v)
{
    /* RFC 6120 §4.7.5: major version 1 or higher; a missing version means 0.9. */
    if (!v)
        return false;
    char *end;
    long major = strtol(v, &end, 10);
    return end != v && *end == '.' && major >= 1;
}

/* The domain the header's 'to' names, when it is a user domain of ours: the address table's
 * copy, which lives as long as the server. */
static const char *kr_c2s_header_domain(kr_c2s_stream *s, kr_arena *a, const char *to)
{
    if (!to)
        return kr_hosts_default(s->o.hosts)->domain;
    const char *domain;
    if (kr_jid_prep_domain(a, to, strlen(to), &domain) != 0)
        return NULL;
    const kr_host *h = kr_hosts_find(s->o.hosts, domain);
    return h && h->kind == KR_HOST_USER ? h->domain : NULL;
}

static void kr_c2s_stream_open(void *ud, const kr_xml_stream_header *hdr)
{
    kr_c2s_stream *s = ud;
    const kr_xml_node *e = hdr->elem;
    if (strcmp(e->ns, KR_NS_STREAM) != 0 || strcmp(e->name, "stream") != 0 ||
        strcmp(hdr->default_ns, KR_NS_CLIENT) != 0) {
        kr_c2s_stream_error(s, "invalid-namespace", "Expected a jabber:client stream");
        return;
    }
    kr_arena *a = kr_arena_new(256);
    const char *domain = kr_c2s_header_domain(s, a, kr_xml_attr_get(e, "to"));
    if (!domain) {
        kr_arena_free(a);
        kr_c2s_stream_error(s, "host-unknown", "This server does not serve that domain");
        return;
    }
    if (s->domain && strcmp(s->domain, domain) != 0) {
        kr_arena_free(a);
        kr_c2s_stream_error(s, "host-unknown", "The domain changed on stream restart");
        return;
    }
    bool first = !s->domain;
    if (first)
        s->domain = domain;
    kr_arena_free(a);
    if (!kr_c2s_version_ok(kr_xml_attr_get(e, "version"))) {
        kr_c2s_stream_error(s, "unsupported-version", "XMPP 1.0 streams are required");
        return;
    }
    if (first)
        s->o.io->opened(s->o.ud, s->domain);
    const char *from = kr_xml_attr_get(e, "from");
    kr_buf b = KR_BUF_INIT;
    kr_c2s_write_header(s, &b, from && strlen(from) < 3072 ? from : NULL);
    kr_c2s_write_features(s, &b);
    kr_c2s_send_buf(s, &b);
}

static void kr_c2s_stream_close_cb(void *ud)
{
    kr_c2s_stream *s = ud;
    if (s->tls) {
        s->o.io->intake(s->o.ud, NULL, NULL); /* after the stanzas that arrived before it */
        return;
    }
    kr_c2s_stream_process(s, NULL, NULL);
}

/* ---- SASL ----------------------------------------------------------------------------- */

void kr_c2s_auth_free(kr_c2s_auth *j)
{
    if (j->password) {
        OPENSSL_cleanse(j->password, j->password_len);
        free(j->password);
    }
    free(j->jid);
    OPENSSL_cleanse(&j->creds, sizeof(j->creds));
    free(j);
}

static void kr_c2s_sasl_reset(kr_c2s_stream *s)
{
    if (!s->lg)
        return;
    kr_scram_server_free(s->lg->scram);
    s->lg->scram = NULL;
    s->lg->mech = KR_MECH_NONE;
    free(s->lg->sasl_local);
    s->lg->sasl_local = NULL;
    free(s->lg->mech_name);
    s->lg->mech_name = NULL;
}

static void kr_c2s_login_free(kr_c2s_login *lg)
{
    if (!lg)
        return;
    kr_scram_server_free(lg->scram);
    free(lg->mech_name);
    free(lg->sasl_local);
    free(lg->local);
    free(lg->cb);
    free(lg);
}

static void kr_c2s_send_sasl(kr_c2s_stream *s, const char *element, const void *data,
                             size_t len)
{
    kr_buf b = KR_BUF_INIT;
    kr_buf_printf(&b, "<%s xmlns='" KR_NS_SASL "'>", element);
    if (data && len)
        kr_base64_encode(&b, data, len);
    else if (data)
        kr_buf_puts(&b, "="); /* RFC 6120 §6.4.2: empty data is sent as '=' */
    kr_buf_printf(&b, "</%s>", element);
    kr_c2s_send_buf(s, &b);
}

static void kr_c2s_send_failure(kr_c2s_stream *s, const char *condition)
{
    kr_buf b = KR_BUF_INIT;
    kr_buf_printf(&b, "<failure xmlns='" KR_NS_SASL "'><%s/></failure>", condition);
    kr_c2s_send_buf(s, &b);
}

/* Count a failure for the client's address and for the account it named, if any. */
static void kr_c2s_login_failed(kr_c2s_stream *s)
{
    char *acct = s->lg->sasl_local ? kr_xasprintf("%s@%s", s->lg->sasl_local, s->domain) : NULL;
    if (kr_limits_login_failed(s->o.cfg, s->o.peer_ip, acct, kr_limits_now())) {
        kr_limits_note(KR_LIMIT_LOGIN_LOCKED, kr_limits_now());
        KR_LOG(KR_LOG_INFO, s->o.log_ctx, "too many failed logins: cool-down started");
        KR_LOG(KR_LOG_DEBUG, s->o.log_ctx, "cool-down for %s / %s", s->o.peer_ip,
               acct ? acct : "(no account)");
    }
    free(acct);
}

/* Answer a failed attempt after a delay that doubles with each failure on this stream. */
static void kr_c2s_sasl_delay(kr_c2s_stream *s, const char *condition)
{
    kr_c2s_sasl_reset(s);
    s->lg->failures++;
    s->lg->pending_failure = condition;
    uint64_t delay = (uint64_t)KR_SASL_DELAY_BASE_MS
                     << (s->lg->failures - 1 < 5 ? s->lg->failures - 1 : 5);
    if (delay > KR_SASL_DELAY_MAX_MS)
        delay = KR_SASL_DELAY_MAX_MS;
    s->o.io->read_pause(s->o.ud, true);
    s->o.io->timer_set(s->o.ud, delay);
}

static void kr_c2s_sasl_fail(kr_c2s_stream *s, const char *condition)
{
    kr_c2s_login_failed(s);
    kr_c2s_sasl_delay(s, condition);
}

static void kr_c2s_sasl_fail_now_due(kr_c2s_stream *s)
{
    kr_c2s_send_failure(s, s->lg->pending_failure);
    s->lg->pending_failure = NULL;
    if (s->lg->failures >= s->o.cfg->sasl.max_failures) {
        kr_c2s_stream_error(s, "policy-violation", "Too many failed authentication attempts");
        return;
    }
    s->o.io->read_pause(s->o.ud, false);
}

static void kr_c2s_sasl_success(kr_c2s_stream *s, const void *data, size_t len)
{
    kr_c2s_send_sasl(s, "success", data, len);
    s->authed = true;
    KR_LOG(KR_LOG_INFO, s->o.log_ctx, "authenticated %s@%s with %s", s->lg->sasl_local, s->domain,
           s->lg->mech_name);
    s->lg->local = kr_xstrdup(s->lg->sasl_local);
    s->o.io->authenticated(s->o.ud, s->lg->local);
    kr_c2s_sasl_reset(s);
    kr_c2s_restart(s);
}

void kr_c2s_stream_auth_done(kr_c2s_stream *s, kr_c2s_auth *j)
{
    if (!s->lg || !s->lg->sasl_waiting || kr_c2s_closing(s)) {
        kr_c2s_auth_free(j);
        return;
    }
    s->lg->sasl_waiting = false;
    if (j->result != 0 && j->result != KR_ENOENT) {
        KR_LOG(KR_LOG_ERROR, s->o.log_ctx, "account look-up failed: %s", kr_strerror(j->result));
        kr_c2s_sasl_reset(s);
        kr_c2s_send_failure(s, "temporary-auth-failure");
    } else if (s->lg->mech == KR_MECH_PLAIN) {
        if (j->result == 0 && j->plain_ok)
            kr_c2s_sasl_success(s, NULL, 0);
        else
            kr_c2s_sasl_fail(s, "not-authorized");
    } else {
        /* Unknown users get a stable fake salt, so they look like wrong passwords. */
        if (j->result == KR_ENOENT)
            kr_scram_creds_fake(s->lg->scram_hash, j->jid, s->o.secret, s->o.secret_len,
                                s->o.cfg->sasl.scram_iterations, &j->creds);
        kr_buf out = KR_BUF_INIT;
        kr_scram_server_server_first(s->lg->scram, &j->creds, &out);
        kr_c2s_send_sasl(s, "challenge", out.data, out.len);
        kr_buf_clear(&out);
    }
    kr_c2s_auth_free(j);
}

static void kr_c2s_auth_lookup(kr_c2s_stream *s, char *password, size_t password_len)
{
    kr_c2s_auth *j = kr_xcalloc(1, sizeof(*j));
    j->jid = kr_xasprintf("%s@%s", s->lg->sasl_local, s->domain);
    j->password = password;
    j->password_len = password_len;
    if (kr_limits_login_blocked(s->o.cfg, s->o.peer_ip, j->jid, kr_limits_now())) {
        /* In a cool-down: refuse without looking at the password (not counted again). */
        kr_limits_note(KR_LIMIT_LOGIN_REFUSED, kr_limits_now());
        kr_c2s_auth_free(j);
        kr_c2s_sasl_delay(s, "temporary-auth-failure");
        return;
    }
    j->hash = s->lg->scram_hash;
    s->lg->sasl_waiting = true;
    s->o.io->auth(s->o.ud, j);
}

/* RFC 6120 §6.4.6: an authzid, when given, must name the account itself. */
static bool kr_c2s_authzid_ok(kr_c2s_stream *s, kr_arena *a, const char *authzid)
{
    if (!authzid || !*authzid)
        return true;
    kr_jid j;
    return kr_jid_parse(a, authzid, &j) == 0 && j.local && !j.resource &&
           strcmp(j.local, s->lg->sasl_local) == 0 && strcmp(j.domain, s->domain) == 0;
}

static bool kr_c2s_set_user(kr_c2s_stream *s, kr_arena *a, const char *name, size_t len)
{
    const char *local;
    if (kr_jid_prep_local(a, name, len, &local) != 0)
        return false;
    s->lg->sasl_local = kr_xstrdup(local);
    return true;
}

static void kr_c2s_scram_step(kr_c2s_stream *s, kr_arena *a, const char *data, size_t len)
{
    if (!s->lg->scram) {
        bool plus = strstr(s->lg->mech_name, "-PLUS") != NULL;
        /* Derived here rather than after every handshake: most logins never bind to it. If
         * it fails, len stays 0 and a client asking for it is refused like any binding
         * this connection cannot provide. */
        static const kr_scram_cb_data none;
        if (plus && s->lg->cb && s->lg->cb_exporter && !s->lg->cb->tls_exporter_len)
            s->o.io->cb_exporter(s->o.ud, s->lg->cb);
        s->lg->scram = kr_scram_server_new(s->lg->scram_hash, plus, true, s->lg->cb ? s->lg->cb : &none, NULL);
        kr_scram_status st = kr_scram_server_client_first(s->lg->scram, data, len);
        if (st != KR_SCRAM_CONTINUE) {
            kr_c2s_sasl_fail(s, st == KR_SCRAM_MALFORMED ? "malformed-request" : "not-authorized");
            return;
        }
        const char *user = kr_scram_server_username(s->lg->scram);
        if (!kr_c2s_set_user(s, a, user, strlen(user))) {
            kr_c2s_sasl_fail(s, "not-authorized");
            return;
        }
        if (!kr_c2s_authzid_ok(s, a, kr_scram_server_authzid(s->lg->scram))) {
            kr_c2s_sasl_fail(s, "invalid-authzid");
            return;
        }
        kr_c2s_auth_lookup(s, NULL, 0);
        return;
    }
    kr_buf out = KR_BUF_INIT;
    kr_scram_status st = kr_scram_server_client_final(s->lg->scram, data, len, &out);
    if (st == KR_SCRAM_SUCCESS)
        kr_c2s_sasl_success(s, out.data, out.len);
    else
        kr_c2s_sasl_fail(s, st == KR_SCRAM_MALFORMED ? "malformed-request" : "not-authorized");
    kr_buf_clear(&out);
}

/* RFC 4616: [authzid] NUL authcid NUL passwd. */
static void kr_c2s_plain_step(kr_c2s_stream *s, kr_arena *a, const char *data, size_t len)
{
    const char *nul1 = memchr(data, '\0', len);
    const char *nul2 = nul1 ? memchr(nul1 + 1, '\0', len - (size_t)(nul1 + 1 - data)) : NULL;
    if (!nul2 || memchr(nul2 + 1, '\0', len - (size_t)(nul2 + 1 - data))) {
        kr_c2s_sasl_fail(s, "malformed-request");
        return;
    }
    const char *authcid = nul1 + 1;
    size_t authcid_len = (size_t)(nul2 - authcid);
    const char *pw = nul2 + 1;
    size_t pw_len = len - (size_t)(pw - data);
    const char *prepared;
    if (authcid_len == 0 || pw_len == 0 || !kr_c2s_set_user(s, a, authcid, authcid_len) ||
        kr_precis_opaque(a, pw, pw_len, &prepared) != 0) {
        kr_c2s_sasl_fail(s, "not-authorized");
        return;
    }
    char *authzid = kr_arena_strndup(a, data, (size_t)(nul1 - data));
    if (!kr_c2s_authzid_ok(s, a, authzid)) {
        kr_c2s_sasl_fail(s, "invalid-authzid");
        return;
    }
    kr_c2s_auth_lookup(s, kr_xstrdup(prepared), strlen(prepared));
}

static void kr_c2s_sasl_data(kr_c2s_stream *s, kr_arena *a, const kr_xml_node *e)
{
    const char *text = kr_xml_text_get(a, e);
    kr_buf data = KR_BUF_INIT;
    size_t tlen = strlen(text);
    if (!(tlen == 1 && text[0] == '=') && kr_base64_decode(&data, text, tlen) != 0) {
        kr_buf_clear(&data);
        kr_c2s_sasl_fail(s, "incorrect-encoding");
        return;
    }
    if (s->lg->mech == KR_MECH_SCRAM)
        kr_c2s_scram_step(s, a, data.data ? data.data : "", data.len);
    else
        kr_c2s_plain_step(s, a, data.data ? data.data : "", data.len);
    if (data.data)
        OPENSSL_cleanse(data.data, data.len);
    kr_buf_clear(&data);
}

static void kr_c2s_sasl_auth(kr_c2s_stream *s, kr_arena *a, const kr_xml_node *e)
{
    kr_c2s_sasl_reset(s);
    const char *mech = kr_xml_attr_get(e, "mechanism");
    bool plus = false;
    if (mech && strcmp(mech, "PLAIN") == 0 && s->o.cfg->sasl.plain) {
        s->lg->mech = KR_MECH_PLAIN;
    } else if (mech && kr_scram_mech_parse(mech, &s->lg->scram_hash, &plus) == 0) {
        s->lg->mech = KR_MECH_SCRAM;
    } else {
        kr_c2s_send_failure(s, "invalid-mechanism");
        return;
    }
    s->lg->mech_name = kr_xstrdup(mech);
    const char *text = kr_xml_text_get(a, e);
    if (!*text) { /* no initial response: ask for it with an empty challenge */
        kr_c2s_send(s, "<challenge xmlns='" KR_NS_SASL "'/>");
        return;
    }
    kr_c2s_sasl_data(s, a, e);
}

/* An iq before authentication goes to the PREAUTH handlers (in-band registration); what
 * they do not take is refused by the lowest of them, and the stream stays usable. */
static void kr_c2s_preauth_iq(kr_c2s_stream *s, kr_xml_node *e, kr_arena *a)
{
    kr_xml_attr_set(a, e, "from", NULL);
    kr_xml_attr_set(a, e, "to", s->domain); /* addressed to the server: KR_ADDR_HOST */
    const char *bad;
    kr_stanza *st = kr_stanza_new(a, e, s->o.hosts, NULL, &bad);
    if (!bad) {
        s->o.io->preauth(s->o.ud, st);
        return;
    }
    const char *id = kr_xml_attr_get(e, "id");
    if (id && (st->type & (KR_TYPE_GET | KR_TYPE_SET)))
        kr_c2s_stream_iq_error(s, id, "not-authorized");
    kr_stanza_unref(st);
}

static void kr_c2s_stage_sasl(kr_c2s_stream *s, kr_arena *a, kr_xml_node *e)
{
    if (strcmp(e->ns, KR_NS_CLIENT) == 0 && strcmp(e->name, "iq") == 0) {
        kr_c2s_preauth_iq(s, e, a);
        return;
    }
    if (strcmp(e->ns, KR_NS_SASL) != 0) {
        kr_c2s_stream_error(s, "not-authorized", "Authenticate before sending stanzas");
    } else if (s->lg->sasl_waiting || s->lg->pending_failure) {
        kr_c2s_stream_error(s, "policy-violation", "SASL message sent before the previous answer");
    } else if (strcmp(e->name, "auth") == 0) {
        kr_c2s_sasl_auth(s, a, e);
    } else if (strcmp(e->name, "response") == 0) {
        if (s->lg->mech == KR_MECH_NONE)
            kr_c2s_sasl_fail(s, "malformed-request");
        else
            kr_c2s_sasl_data(s, a, e);
    } else if (strcmp(e->name, "abort") == 0) {
        kr_c2s_sasl_reset(s);
        kr_c2s_send_failure(s, "aborted");
    } else {
        kr_c2s_stream_error(s, "policy-violation", "Unexpected SASL element");
    }
    kr_arena_free(a);
}

/* ---- before TLS ------------------------------------------------------------------------- */

static void kr_c2s_stage_plain(kr_c2s_stream *s, const kr_xml_node *e)
{
    if (strcmp(e->ns, KR_NS_TLS) == 0 && strcmp(e->name, "starttls") == 0) {
        kr_c2s_send(s, "<proceed xmlns='" KR_NS_TLS "'/>");
        s->o.io->start_tls(s->o.ud);
        kr_c2s_restart(s);
        return;
    }
    if (strcmp(e->ns, KR_NS_SASL) == 0 && strcmp(e->name, "auth") == 0) {
        /* RFC 6120 §6.5.3: no authentication without TLS, ever. */
        kr_c2s_send_failure(s, "encryption-required");
        return;
    }
    kr_c2s_stream_error(s, "policy-violation", "TLS is required: send <starttls/> first");
}

/* ---- resource binding ------------------------------------------------------------------- */

static void kr_c2s_iq_reply(kr_c2s_stream *s, const char *id, const char *inner)
{
    kr_buf b = KR_BUF_INIT;
    kr_buf_puts(&b, "<iq type='result' id='");
    kr_xml_escape_attr(&b, id, strlen(id));
    kr_buf_puts(&b, "'");
    if (inner) {
        kr_buf_puts(&b, ">");
        kr_buf_puts(&b, inner);
        kr_buf_puts(&b, "</iq>");
    } else {
        kr_buf_puts(&b, "/>");
    }
    if (s->bound)
        s->o.io->deliver(s->o.ud, b.data, b.len, kr_stanza_meta(KR_STANZA_IQ, KR_TYPE_RESULT));
    else
        s->o.io->send(s->o.ud, b.data, b.len);
    kr_buf_clear(&b);
}

static void kr_c2s_stream_iq_error(kr_c2s_stream *s, const char *id, const char *condition)
{
    kr_buf b = KR_BUF_INIT;
    kr_buf_puts(&b, "<iq type='error' id='");
    kr_xml_escape_attr(&b, id, strlen(id));
    kr_buf_printf(&b, "'><error type='%s'><%s xmlns='" KR_NS_STANZAS_ERR "'/></error></iq>",
                  kr_stanza_error_type(condition), condition);
    kr_c2s_send_buf(s, &b);
}

/* "kurier-" and 16 hex digits: out holds at least 24 bytes. */
static void kr_c2s_random_resource(char out[static 24])
{
    unsigned char rnd[8];
    kr_random_public(rnd, sizeof(rnd));
    memcpy(out, "kurier-", 7);
    kr_hex_encode(out + 7, rnd, sizeof(rnd));
}

/* RFC 6120 §7.6-7.7: bind a resource; a resource already in use is taken over (§7.7.2.2). */
static void kr_c2s_bind(kr_c2s_stream *s, kr_arena *a, const char *id, const kr_xml_node *bind)
{
    kr_xml_node *res = kr_xml_child_get(bind, KR_NS_BIND, "resource");
    const char *text = res ? kr_xml_text_get(a, res) : "";
    const char *resource;
    char generated[32];
    if (*text) {
        if (kr_jid_prep_resource(a, text, strlen(text), &resource) != 0) {
            kr_c2s_stream_iq_error(s, id, "bad-request");
            return;
        }
    } else {
        kr_c2s_random_resource(generated);
        resource = generated;
    }
    if (s->o.io->bind(s->o.ud, resource, &s->full, &s->jid) != 0) {
        kr_c2s_stream_iq_error(s, id, "bad-request");
        return;
    }
    s->bound = true;
    kr_c2s_login_free(s->lg); /* the session keeps the names; SASL is over for good */
    s->lg = NULL;
    kr_buf inner = KR_BUF_INIT;
    kr_buf_puts(&inner, "<bind xmlns='" KR_NS_BIND "'><jid>");
    kr_xml_escape_text(&inner, s->full, strlen(s->full));
    kr_buf_puts(&inner, "</jid></bind>");
    kr_buf b = KR_BUF_INIT;
    kr_buf_puts(&b, "<iq type='result' id='");
    kr_xml_escape_attr(&b, id, strlen(id));
    kr_buf_puts(&b, "'>");
    kr_buf_append(&b, inner.data, inner.len);
    kr_buf_puts(&b, "</iq>");
    kr_c2s_send_buf(s, &b);
    kr_buf_clear(&inner);
    s->last_read = kr_c2s_now(s);
    uint64_t half_idle = (uint64_t)s->o.cfg->limits.idle_timeout_s * 500;
    s->o.io->timer_set(s->o.ud, half_idle < KR_C2S_TRIM_MS ? half_idle : KR_C2S_TRIM_MS);
}

static bool kr_c2s_is_stanza(const kr_xml_node *e)
{
    return strcmp(e->ns, KR_NS_CLIENT) == 0 &&
           (strcmp(e->name, "message") == 0 || strcmp(e->name, "presence") == 0 ||
            strcmp(e->name, "iq") == 0);
}

/* The session iq of RFC 3921, kept as a no-op for old clients (advertised <optional/>). */
static bool kr_c2s_session_iq(kr_c2s_stream *s, const kr_xml_node *e, const char *id)
{
    kr_xml_node *p = kr_xml_first_elem(e);
    if (strcmp(e->name, "iq") != 0 || !p || strcmp(p->ns, KR_NS_SESSION) != 0 || !id)
        return false;
    kr_c2s_iq_reply(s, id, NULL);
    return true;
}

static void kr_c2s_stage_bind(kr_c2s_stream *s, kr_arena *a, const kr_xml_node *e)
{
    const char *id = kr_xml_attr_get(e, "id");
    const char *type = kr_xml_attr_get(e, "type");
    if (!kr_c2s_is_stanza(e) || strcmp(e->name, "iq") != 0 || !id || !type) {
        kr_c2s_stream_error(s, "not-authorized", "Bind a resource before sending stanzas");
    } else if (!kr_c2s_session_iq(s, e, id)) {
        kr_xml_node *bind = kr_xml_first_elem(e);
        if (strcmp(type, "set") != 0 || !bind || strcmp(bind->ns, KR_NS_BIND) != 0 ||
            strcmp(bind->name, "bind") != 0)
            kr_c2s_stream_iq_error(s, id, "not-authorized");
        else
            kr_c2s_bind(s, a, id, bind);
    }
    kr_arena_free(a);
}

/* ---- bound: stanzas ---------------------------------------------------------------------- */

static void kr_c2s_stage_stanza(kr_c2s_stream *s, kr_xml_node *e, kr_arena *a)
{
    if (!kr_c2s_is_stanza(e)) {
        bool misplaced = strcmp(e->name, "message") == 0 || strcmp(e->name, "presence") == 0 ||
                         strcmp(e->name, "iq") == 0;
        kr_c2s_stream_error(s, misplaced ? "invalid-namespace" : "unsupported-stanza-type",
                            NULL);
        kr_arena_free(a);
        return;
    }
    /* RFC 6120 §8.1.2.1: the server stamps 'from' with the session's full JID. */
    kr_xml_attr_set(a, e, "from", s->full);
    const char *id = kr_xml_attr_get(e, "id");
    if (!kr_xml_attr_get(e, "to") && kr_c2s_session_iq(s, e, id)) {
        kr_arena_free(a);
        return;
    }
    const char *bad;
    kr_stanza *st = kr_stanza_new(a, e, s->o.hosts, s->jid, &bad);
    if (!bad) {
        s->o.io->stanza(s->o.ud, st);
        return;
    }
    /* The error comes from the server: the original 'to' may not even be a JID. */
    if (!(st->type & (KR_TYPE_ERROR | KR_TYPE_RESULT))) {
        kr_stanza_make_error(st, bad, NULL, s->domain);
        kr_stanza *reply = kr_stanza_new_in(st, st->elem, s->o.hosts, &bad);
        if (!bad)
            s->o.io->reply(s->o.ud, reply);
        else
            kr_stanza_unref(reply);
    }
    kr_stanza_unref(st);
}

void kr_c2s_stream_process(kr_c2s_stream *s, kr_xml_node *e, kr_arena *a)
{
    if (kr_c2s_closing(s)) {
        kr_arena_free(a);
        return;
    }
    if (!e) {
        KR_LOG(KR_LOG_DEBUG, s->o.log_ctx, "client closed the stream");
        kr_c2s_send(s, "</stream:stream>");
        if (s->in_feed)
            kr_xml_parser_stop(s->parser);
        s->o.io->close(s->o.ud);
        return;
    }
    if (!s->tls) {
        kr_c2s_stage_plain(s, e);
        kr_arena_free(a);
    } else if (!s->authed) {
        kr_c2s_stage_sasl(s, a, e);
    } else if (!s->bound) {
        kr_c2s_stage_bind(s, a, e);
    } else {
        kr_c2s_stage_stanza(s, e, a);
    }
}

static void kr_c2s_element_cb(void *ud, kr_xml_node *e, kr_arena *a)
{
    kr_c2s_stream *s = ud;
    if (s->tls && !kr_c2s_closing(s))
        s->o.io->intake(s->o.ud, e, a);
    else
        kr_c2s_stream_process(s, e, a);
}

/* ---- the transport's events -------------------------------------------------------------- */

void kr_c2s_stream_feed(kr_c2s_stream *s, const char *data, size_t len)
{
    s->last_read = kr_c2s_now(s);
    if (s->trimmed) { /* awake again: the timer looks for the next silence */
        s->trimmed = false;
        s->o.io->timer_set(s->o.ud, KR_C2S_TRIM_MS);
    }
    if (kr_xml_parser_feed_stream(s->parser, data, len, &s->in_feed, &s->restart,
                                  (bool (*)(void *))s->o.io->closing, s->o.ud) == KR_EPARSE)
        kr_c2s_stream_error(s, kr_xml_error_condition(kr_xml_parser_error(s->parser)),
                            kr_xml_parser_error_text(s->parser));
}

void kr_c2s_stream_tls_ready(kr_c2s_stream *s, const kr_scram_cb_data *cb, bool exporter,
                             const char *version)
{
    s->tls = true;
    if (!s->lg)
        return; /* cannot happen: TLS starts before authentication */
    if (!s->lg->cb)
        s->lg->cb = kr_xcalloc(1, sizeof(*s->lg->cb));
    *s->lg->cb = *cb;
    s->lg->cb_exporter = exporter;
    s->lg->tls12 = version && strcmp(version, "TLSv1.2") == 0;
}

/* XEP-0199 §4.2: after half the idle time of silence, ping the client; any data it sends
 * (its pong included) counts as activity. Silent for the whole idle time: gone. */
static void kr_c2s_ping(kr_c2s_stream *s, uint64_t now)
{
    kr_buf b = KR_BUF_INIT;
    kr_buf_printf(&b, "<iq type='get' id='kr-ping-%llu' from='", (unsigned long long)now);
    kr_xml_escape_attr(&b, s->domain, strlen(s->domain));
    kr_buf_puts(&b, "' to='");
    kr_xml_escape_attr(&b, s->full, strlen(s->full));
    kr_buf_puts(&b, "'><ping xmlns='urn:xmpp:ping'/></iq>");
    s->o.io->deliver(s->o.ud, b.data, b.len, kr_stanza_meta(KR_STANZA_IQ, KR_TYPE_GET));
    kr_buf_clear(&b);
    s->ping_at = now;
}

void kr_c2s_stream_timer(kr_c2s_stream *s)
{
    uint64_t now = kr_c2s_now(s);
    if (s->lg && s->lg->pending_failure) {
        kr_c2s_sasl_fail_now_due(s);
        if (!kr_c2s_closing(s))
            s->o.io->timer_set(s->o.ud, s->lg->auth_deadline > now ? s->lg->auth_deadline - now : 1);
        return;
    }
    if (!s->bound) {
        kr_c2s_stream_error(s, "connection-timeout", "Authentication took too long");
        return;
    }
    uint64_t idle = (uint64_t)s->o.cfg->limits.idle_timeout_s * 1000;
    uint64_t silent = now - s->last_read;
    if (silent >= idle) {
        kr_c2s_stream_error(s, "connection-timeout", "No answer to pings");
        return;
    }
    if (s->ping_at && s->last_read >= s->ping_at) /* loop time has ms granularity */
        s->ping_at = 0; /* the client spoke since: the ping is answered */
    if (silent >= idle / 2 && !s->ping_at) {
        kr_c2s_ping(s, now);
        s->o.io->timer_set(s->o.ud, idle - silent);
        return;
    }
    uint64_t next = silent < idle / 2 ? idle / 2 - silent : idle - silent;
    if (!s->trimmed && silent >= KR_C2S_TRIM_MS) {
        kr_xml_parser_trim(s->parser); /* false inside a partial stanza: kept as it is */
        s->o.io->trim(s->o.ud);
        s->trimmed = true;
    } else if (!s->trimmed && KR_C2S_TRIM_MS - silent < next) {
        next = KR_C2S_TRIM_MS - silent;
    }
    s->o.io->timer_set(s->o.ud, next);
}

kr_c2s_stream *kr_c2s_stream_new(const kr_c2s_opts *opts)
{
    kr_c2s_stream *s = kr_xcalloc(1, sizeof(*s));
    s->o = *opts;
    s->lg = kr_xcalloc(1, sizeof(*s->lg));
    const kr_config *cfg = opts->cfg;
    kr_xml_limits limits = kr_stanza_intake_limits(
        cfg->limits.max_stanza_bytes, cfg->limits.max_depth, cfg->limits.max_attributes);
    kr_xml_parser_cbs cbs = {kr_c2s_stream_open, kr_c2s_element_cb, kr_c2s_stream_close_cb};
    s->parser = kr_xml_parser_new(&limits, &cbs, s);
    uint64_t timeout = (uint64_t)cfg->limits.auth_timeout_s * 1000;
    s->lg->auth_deadline = kr_c2s_now(s) + timeout;
    s->o.io->timer_set(s->o.ud, timeout);
    return s;
}

void kr_c2s_stream_free(kr_c2s_stream *s)
{
    if (!s)
        return;
    kr_c2s_login_free(s->lg);
    kr_xml_parser_free(s->parser);
    free(s);
}

const char *kr_c2s_stream_domain(const kr_c2s_stream *s)
{
    return s->domain;
}

bool kr_c2s_stream_bound(const kr_c2s_stream *s)
{
    return s->bound;
}
