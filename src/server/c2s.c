/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Client-to-server streams (see c2s.h). A stream moves through four stages,
 * each accepting only its own top-level elements:
 *   1. before TLS: <starttls/> only (RFC 6120 §5.3.1; SASL gets
 *      <encryption-required/>, anything else a <policy-violation/> stream error);
 *   2. TLS, not authenticated: SASL <auth>/<response>/<abort> (§6.4);
 *   3. authenticated, not bound: the bind iq (§7) and the legacy session iq;
 *   4. bound: stanzas, 'from' stamped (§8.1.2.1), then the router.
 * Stages 1→2 and 2→3 restart the stream (§4.3.3). Account look-ups and PLAIN's
 * PBKDF2 run on the storage thread; their completions find the connection
 * again by id, so a client that left meanwhile costs nothing.
 * Failed logins are slowed down: each failure is answered after a delay that
 * doubles per failure on the stream (reads are paused meanwhile), and after
 * sasl.max_failures the stream is closed. Failures are also counted per IP
 * address and per account (limits.c); during a cool-down every login from
 * that address or to that account is answered <temporary-auth-failure/>
 * (RFC 6120 §6.5.13) with the same delay, whatever the password.
 * Intake policy beyond 'from' stamping: a roster get/set addressed to another
 * user is refused with <forbidden/> (RFC 6121 §2.1.5-§2.1.6: only the user's
 * own server may push roster changes), and a stream that does not read its
 * output is ended with <policy-violation/> (limits.max_send_queue_bytes).
 * Memory of idle streams: a bound stream silent for KR_C2S_TRIM_MS gives back
 * its XML parser's expat state and its connection's idle buffers
 * (kr_xml_parser_trim, kr_conn_trim); the next read rebuilds them.
 */
#include "server/c2s.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/base64.h"
#include "core/error.h"
#include "core/log.h"
#include "sasl/scram.h"
#include "server/conn.h"
#include "server/limits.h"
#include "server/modules.h"
#include "server/random.h"
#include "server/router.h"
#include "server/session.h"
#include "server/sessions.h"
#include "server/stanza.h"
#include "server/storage_thread.h"
#include "xml/parser.h"
#include "xml/serialize.h"

#define KR_SASL_DELAY_BASE_MS 250
#define KR_SASL_DELAY_MAX_MS 4000
/* Silence after which a bound stream's idle memory is given back (see the file comment). */
#define KR_C2S_TRIM_MS 3000

typedef enum kr_sasl_mech { KR_MECH_NONE, KR_MECH_SCRAM, KR_MECH_PLAIN } kr_sasl_mech;

typedef struct kr_c2s {
    kr_session sess; /* first: kr_session_send() finds the stream from it */
    kr_conn *conn;
    kr_server *srv;
    kr_xml_parser *parser;
    char *domain; /* prepared domain of the stream */
    char stream_id[33];
    bool header_sent;
    bool tls;
    bool authed;
    bool bound;
    bool in_feed;      /* inside kr_xml_parser_feed(): restarts must be deferred */
    bool restart;      /* reset the parser when the current feed returns */
    bool trimmed;      /* idle memory given back; the timer need not look again */
    kr_scram_cb_data *cb; /* from TLS until bound, then freed; tls-exporter filled in only
                           * when a -PLUS exchange starts */
    bool cb_exporter;    /* tls-exporter can be derived on this connection */
    /* SASL exchange */
    kr_sasl_mech mech;
    bool sasl_waiting; /* a storage job for this exchange is out */
    kr_scram_server *scram;
    kr_scram_hash scram_hash;
    char *mech_name;
    char *sasl_local; /* prepared local part of the account being authenticated */
    unsigned failures;
    const char *pending_failure; /* SASL condition sent when the delay ends */
    /* session */
    char *bare;
    char *full;
    char *resource;
    kr_jid jid;      /* `full` prepared once at bind (parts in jid_mem), for stamped 'from' */
    char *jid_mem;
    bool available;
    int priority;
    uint64_t auth_deadline;
    uint64_t last_read;
    uint64_t ping_at; /* when the outstanding XEP-0199 ping was sent; 0 = none */
} kr_c2s;

static const kr_conn_ops kr_c2s_ops;
static void kr_c2s_iq_error(kr_c2s *c, const char *id, const char *condition);
static bool kr_c2s_served(void *ud, const char *domain);

static uint64_t kr_c2s_now(kr_c2s *c)
{
    return uv_now(&c->conn->worker->loop);
}

static void kr_c2s_send(kr_c2s *c, const char *s)
{
    kr_conn_send(c->conn, s, strlen(s));
}

static void kr_c2s_send_buf(kr_c2s *c, kr_buf *b)
{
    kr_conn_send(c->conn, b->data, b->len);
    kr_buf_clear(b);
}

/* ---- stream header, features, errors ---------------------------------------------------- */

static void kr_c2s_write_header(kr_c2s *c, kr_buf *b, const char *peer_from)
{
    unsigned char rnd[16];
    kr_random_public(rnd, sizeof(rnd));
    kr_hex_encode(c->stream_id, rnd, sizeof(rnd));
    const char *from = c->domain ? c->domain : c->srv->cfg->domains[0];
    kr_buf_puts(b, "<?xml version='1.0'?><stream:stream xmlns='" KR_NS_CLIENT
                   "' xmlns:stream='" KR_NS_STREAM "' id='");
    kr_buf_puts(b, c->stream_id);
    kr_buf_puts(b, "' from='");
    kr_xml_escape_attr(b, from, strlen(from));
    if (peer_from) {
        kr_buf_puts(b, "' to='");
        kr_xml_escape_attr(b, peer_from, strlen(peer_from));
    }
    kr_buf_puts(b, "' version='1.0' xml:lang='en'>");
    c->header_sent = true;
}

/* RFC 6120 §4.9: the error, then the closing tag, then close (after our output is written). */
static void kr_c2s_stream_error(kr_c2s *c, const char *condition, const char *text)
{
    if (c->conn->closing)
        return;
    kr_buf b = KR_BUF_INIT;
    if (!c->header_sent)
        kr_c2s_write_header(c, &b, NULL);
    kr_stream_error_write(&b, condition, text);
    kr_c2s_send_buf(c, &b);
    KR_LOG(KR_LOG_INFO, c->conn->log_ctx, "stream error <%s/>%s%s", condition, text ? ": " : "",
           text ? text : "");
    if (c->in_feed)
        kr_xml_parser_stop(c->parser);
    kr_conn_close(c->conn);
}

static void kr_c2s_features_sasl(kr_c2s *c, kr_buf *b)
{
    bool plus = c->cb && (c->cb_exporter || c->cb->tls_server_end_point_len ||
                          c->cb->tls_unique_len);
    kr_buf_puts(b, "<mechanisms xmlns='" KR_NS_SASL "'>");
    if (plus)
        kr_buf_puts(b, "<mechanism>SCRAM-SHA-256-PLUS</mechanism>"
                       "<mechanism>SCRAM-SHA-1-PLUS</mechanism>");
    kr_buf_puts(b, "<mechanism>SCRAM-SHA-256</mechanism><mechanism>SCRAM-SHA-1</mechanism>");
    if (c->srv->cfg->sasl.plain)
        kr_buf_puts(b, "<mechanism>PLAIN</mechanism>");
    kr_buf_puts(b, "</mechanisms>");
    if (!plus)
        return;
    /* XEP-0440: tell the client which channel bindings we support on this connection. */
    kr_buf_puts(b, "<sasl-channel-binding xmlns='" KR_NS_SASL_CB "'>");
    if (c->cb_exporter)
        kr_buf_puts(b, "<channel-binding type='tls-exporter'/>");
    if (c->cb->tls_server_end_point_len)
        kr_buf_puts(b, "<channel-binding type='tls-server-end-point'/>");
    if (c->cb->tls_unique_len && strcmp(kr_tls_version(c->conn->tls), "TLSv1.2") == 0)
        kr_buf_puts(b, "<channel-binding type='tls-unique'/>");
    kr_buf_puts(b, "</sasl-channel-binding>");
}

static void kr_c2s_write_features(kr_c2s *c, kr_buf *b)
{
    kr_buf_puts(b, "<stream:features>");
    if (!c->tls) {
        kr_buf_puts(b, "<starttls xmlns='" KR_NS_TLS "'><required/></starttls>");
    } else if (!c->authed) {
        kr_c2s_features_sasl(c, b);
        kr_modules_stream_features(c->srv, false, b);
    } else {
        kr_buf_puts(b, "<bind xmlns='" KR_NS_BIND "'/>"
                       "<session xmlns='" KR_NS_SESSION "'><optional/></session>");
        kr_modules_stream_features(c->srv, true, b);
    }
    kr_buf_puts(b, "</stream:features>");
}

/* RFC 6120 §4.3.3: after TLS and after SASL both sides start a new stream. */
static void kr_c2s_restart(kr_c2s *c)
{
    c->header_sent = false;
    if (c->in_feed) {
        c->restart = true;
        kr_xml_parser_stop(c->parser);
    } else {
        kr_xml_parser_reset(c->parser);
    }
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

static void kr_c2s_stream_open(void *ud, const kr_xml_stream_header *hdr)
{
    kr_c2s *c = ud;
    const kr_xml_node *e = hdr->elem;
    if (strcmp(e->ns, KR_NS_STREAM) != 0 || strcmp(e->name, "stream") != 0 ||
        strcmp(hdr->default_ns, KR_NS_CLIENT) != 0) {
        kr_c2s_stream_error(c, "invalid-namespace", "Expected a jabber:client stream");
        return;
    }
    const char *to = kr_xml_attr_get(e, "to");
    const char *domain = c->srv->cfg->domains[0];
    kr_arena *a = kr_arena_new(256);
    if (to && (kr_jid_prep_domain(a, to, strlen(to), &domain) != 0 ||
               !kr_config_serves(c->srv->cfg, domain))) {
        kr_arena_free(a);
        kr_c2s_stream_error(c, "host-unknown", "This server does not serve that domain");
        return;
    }
    if (c->domain && strcmp(c->domain, domain) != 0) {
        kr_arena_free(a);
        kr_c2s_stream_error(c, "host-unknown", "The domain changed on stream restart");
        return;
    }
    if (!c->domain) {
        c->domain = kr_xstrdup(domain);
        c->sess.domain = c->domain;
    }
    kr_arena_free(a);
    if (!kr_c2s_version_ok(kr_xml_attr_get(e, "version"))) {
        kr_c2s_stream_error(c, "unsupported-version", "XMPP 1.0 streams are required");
        return;
    }
    const char *from = kr_xml_attr_get(e, "from");
    kr_buf b = KR_BUF_INIT;
    kr_c2s_write_header(c, &b, from && strlen(from) < 3072 ? from : NULL);
    kr_c2s_write_features(c, &b);
    kr_c2s_send_buf(c, &b);
}

static void kr_c2s_stream_close(void *ud)
{
    kr_c2s *c = ud;
    KR_LOG(KR_LOG_DEBUG, c->conn->log_ctx, "client closed the stream");
    kr_c2s_send(c, "</stream:stream>");
    if (c->in_feed)
        kr_xml_parser_stop(c->parser);
    kr_conn_close(c->conn);
}

/* ---- SASL ----------------------------------------------------------------------------- */

static void kr_c2s_sasl_reset(kr_c2s *c)
{
    kr_scram_server_free(c->scram);
    c->scram = NULL;
    c->mech = KR_MECH_NONE;
    free(c->sasl_local);
    c->sasl_local = NULL;
    free(c->mech_name);
    c->mech_name = NULL;
}

static void kr_c2s_send_sasl(kr_c2s *c, const char *element, const void *data, size_t len)
{
    kr_buf b = KR_BUF_INIT;
    kr_buf_printf(&b, "<%s xmlns='" KR_NS_SASL "'>", element);
    if (data && len)
        kr_base64_encode(&b, data, len);
    else if (data)
        kr_buf_puts(&b, "="); /* RFC 6120 §6.4.2: empty data is sent as '=' */
    kr_buf_printf(&b, "</%s>", element);
    kr_c2s_send_buf(c, &b);
}

static void kr_c2s_send_failure(kr_c2s *c, const char *condition)
{
    kr_buf b = KR_BUF_INIT;
    kr_buf_printf(&b, "<failure xmlns='" KR_NS_SASL "'><%s/></failure>", condition);
    kr_c2s_send_buf(c, &b);
}

/* Count a failure for the client's address and for the account it named, if any. */
static void kr_c2s_login_failed(kr_c2s *c)
{
    char *acct = c->sasl_local ? kr_xasprintf("%s@%s", c->sasl_local, c->domain) : NULL;
    if (kr_limits_login_failed(c->srv->cfg, c->conn->peer_ip, acct, kr_limits_now())) {
        kr_limits_note(KR_LIMIT_LOGIN_LOCKED, kr_limits_now());
        KR_LOG(KR_LOG_INFO, c->conn->log_ctx, "too many failed logins: cool-down started");
        KR_LOG(KR_LOG_DEBUG, c->conn->log_ctx, "cool-down for %s / %s", c->conn->peer_ip,
               acct ? acct : "(no account)");
    }
    free(acct);
}

/* Answer a failed attempt after a delay that doubles with each failure on this stream. */
static void kr_c2s_sasl_delay(kr_c2s *c, const char *condition)
{
    kr_c2s_sasl_reset(c);
    c->failures++;
    c->pending_failure = condition;
    uint64_t delay = (uint64_t)KR_SASL_DELAY_BASE_MS << (c->failures - 1 < 5 ? c->failures - 1 : 5);
    if (delay > KR_SASL_DELAY_MAX_MS)
        delay = KR_SASL_DELAY_MAX_MS;
    kr_conn_read_pause(c->conn, true);
    kr_conn_timer_set(c->conn, delay);
}

static void kr_c2s_sasl_fail(kr_c2s *c, const char *condition)
{
    kr_c2s_login_failed(c);
    kr_c2s_sasl_delay(c, condition);
}

static void kr_c2s_sasl_fail_now_due(kr_c2s *c)
{
    kr_c2s_send_failure(c, c->pending_failure);
    c->pending_failure = NULL;
    if (c->failures >= c->srv->cfg->sasl.max_failures) {
        kr_c2s_stream_error(c, "policy-violation", "Too many failed authentication attempts");
        return;
    }
    kr_conn_read_pause(c->conn, false);
}

static void kr_c2s_sasl_success(kr_c2s *c, const void *data, size_t len)
{
    kr_c2s_send_sasl(c, "success", data, len);
    c->authed = true;
    kr_conn_rate_set(c->conn, c->srv->cfg->limits.bytes_per_second);
    KR_LOG(KR_LOG_INFO, c->conn->log_ctx, "authenticated %s@%s with %s", c->sasl_local,
           c->domain, c->mech_name);
    c->bare = kr_xasprintf("%s@%s", c->sasl_local, c->domain);
    kr_c2s_sasl_reset(c);
    kr_c2s_restart(c);
}

/* The storage-thread side of a login. */
typedef struct kr_auth_job {
    char *jid;            /* bare JID looked up */
    kr_scram_hash hash;   /* SCRAM: which credentials are wanted */
    char *password;       /* PLAIN: prepared password, wiped after use */
    size_t password_len;
    int result;           /* 0, KR_ENOENT, or a store error */
    bool plain_ok;
    kr_scram_creds creds;
} kr_auth_job;

static void kr_auth_job_free(kr_auth_job *j)
{
    if (j->password) {
        OPENSSL_cleanse(j->password, j->password_len);
        free(j->password);
    }
    free(j->jid);
    OPENSSL_cleanse(&j->creds, sizeof(j->creds));
    free(j);
}

static void kr_auth_job_run(kr_store *store, void *arg)
{
    kr_auth_job *j = arg;
    kr_account acct;
    j->result = kr_store_account_get(store, j->jid, &acct);
    if (j->result != 0)
        return;
    j->creds = j->hash == KR_SCRAM_SHA1 ? acct.sha1 : acct.sha256;
    if (j->password)
        j->plain_ok = kr_scram_creds_check(&acct.sha256, j->password, j->password_len);
    OPENSSL_cleanse(&acct, sizeof(acct));
}

/* Back on the worker after the account look-up. */
static void kr_c2s_auth_done(kr_worker *w, void *arg, uint64_t conn_id)
{
    kr_auth_job *j = arg;
    kr_conn *conn = kr_conn_find(w, conn_id);
    kr_c2s *c = conn ? conn->proto : NULL;
    if (!c || !c->sasl_waiting) {
        kr_auth_job_free(j);
        return;
    }
    c->sasl_waiting = false;
    if (j->result != 0 && j->result != KR_ENOENT) {
        KR_LOG(KR_LOG_ERROR, conn->log_ctx, "account look-up failed: %s", kr_strerror(j->result));
        kr_c2s_sasl_reset(c);
        kr_c2s_send_failure(c, "temporary-auth-failure");
    } else if (c->mech == KR_MECH_PLAIN) {
        if (j->result == 0 && j->plain_ok)
            kr_c2s_sasl_success(c, NULL, 0);
        else
            kr_c2s_sasl_fail(c, "not-authorized");
    } else {
        /* Unknown users get a stable fake salt, so they look like wrong passwords. */
        if (j->result == KR_ENOENT)
            kr_scram_creds_fake(c->scram_hash, j->jid, c->srv->secret, sizeof(c->srv->secret),
                                c->srv->cfg->sasl.scram_iterations, &j->creds);
        kr_buf out = KR_BUF_INIT;
        kr_scram_server_server_first(c->scram, &j->creds, &out);
        kr_c2s_send_sasl(c, "challenge", out.data, out.len);
        kr_buf_clear(&out);
    }
    kr_auth_job_free(j);
}

static void kr_c2s_auth_lookup(kr_c2s *c, char *password, size_t password_len)
{
    kr_auth_job *j = kr_xcalloc(1, sizeof(*j));
    j->jid = kr_xasprintf("%s@%s", c->sasl_local, c->domain);
    j->password = password;
    j->password_len = password_len;
    if (kr_limits_login_blocked(c->srv->cfg, c->conn->peer_ip, j->jid, kr_limits_now())) {
        /* In a cool-down: refuse without looking at the password (not counted again). */
        kr_limits_note(KR_LIMIT_LOGIN_REFUSED, kr_limits_now());
        kr_auth_job_free(j);
        kr_c2s_sasl_delay(c, "temporary-auth-failure");
        return;
    }
    j->hash = c->scram_hash;
    c->sasl_waiting = true;
    kr_storage_submit(c->srv->storage, kr_auth_job_run, c->conn->worker, kr_c2s_auth_done, j,
                      c->conn->id);
}

/* RFC 6120 §6.4.6: an authzid, when given, must name the account itself. */
static bool kr_c2s_authzid_ok(kr_c2s *c, kr_arena *a, const char *authzid)
{
    if (!authzid || !*authzid)
        return true;
    kr_jid j;
    return kr_jid_parse(a, authzid, &j) == 0 && j.local && !j.resource &&
           strcmp(j.local, c->sasl_local) == 0 && strcmp(j.domain, c->domain) == 0;
}

static bool kr_c2s_set_user(kr_c2s *c, kr_arena *a, const char *name, size_t len)
{
    const char *local;
    if (kr_jid_prep_local(a, name, len, &local) != 0)
        return false;
    c->sasl_local = kr_xstrdup(local);
    return true;
}

static void kr_c2s_scram_step(kr_c2s *c, kr_arena *a, const char *data, size_t len)
{
    if (!c->scram) {
        bool plus = strstr(c->mech_name, "-PLUS") != NULL;
        /* Derived here rather than after every handshake: most logins never bind to it. If
         * it fails, len stays 0 and a client asking for it is refused like any binding
         * this connection cannot provide. */
        static const kr_scram_cb_data none;
        if (plus && c->cb && c->cb_exporter && !c->cb->tls_exporter_len)
            kr_tls_cb_exporter(c->conn->tls, c->cb);
        c->scram = kr_scram_server_new(c->scram_hash, plus, true, c->cb ? c->cb : &none, NULL);
        kr_scram_status st = kr_scram_server_client_first(c->scram, data, len);
        if (st != KR_SCRAM_CONTINUE) {
            kr_c2s_sasl_fail(c, st == KR_SCRAM_MALFORMED ? "malformed-request" : "not-authorized");
            return;
        }
        const char *user = kr_scram_server_username(c->scram);
        if (!kr_c2s_set_user(c, a, user, strlen(user))) {
            kr_c2s_sasl_fail(c, "not-authorized");
            return;
        }
        if (!kr_c2s_authzid_ok(c, a, kr_scram_server_authzid(c->scram))) {
            kr_c2s_sasl_fail(c, "invalid-authzid");
            return;
        }
        kr_c2s_auth_lookup(c, NULL, 0);
        return;
    }
    kr_buf out = KR_BUF_INIT;
    kr_scram_status st = kr_scram_server_client_final(c->scram, data, len, &out);
    if (st == KR_SCRAM_SUCCESS)
        kr_c2s_sasl_success(c, out.data, out.len);
    else
        kr_c2s_sasl_fail(c, st == KR_SCRAM_MALFORMED ? "malformed-request" : "not-authorized");
    kr_buf_clear(&out);
}

/* RFC 4616: [authzid] NUL authcid NUL passwd. */
static void kr_c2s_plain_step(kr_c2s *c, kr_arena *a, const char *data, size_t len)
{
    const char *nul1 = memchr(data, '\0', len);
    const char *nul2 = nul1 ? memchr(nul1 + 1, '\0', len - (size_t)(nul1 + 1 - data)) : NULL;
    if (!nul2 || memchr(nul2 + 1, '\0', len - (size_t)(nul2 + 1 - data))) {
        kr_c2s_sasl_fail(c, "malformed-request");
        return;
    }
    const char *authcid = nul1 + 1;
    size_t authcid_len = (size_t)(nul2 - authcid);
    const char *pw = nul2 + 1;
    size_t pw_len = len - (size_t)(pw - data);
    const char *prepared;
    if (authcid_len == 0 || pw_len == 0 || !kr_c2s_set_user(c, a, authcid, authcid_len) ||
        kr_precis_opaque(a, pw, pw_len, &prepared) != 0) {
        kr_c2s_sasl_fail(c, "not-authorized");
        return;
    }
    char *authzid = kr_arena_strndup(a, data, (size_t)(nul1 - data));
    if (!kr_c2s_authzid_ok(c, a, authzid)) {
        kr_c2s_sasl_fail(c, "invalid-authzid");
        return;
    }
    kr_c2s_auth_lookup(c, kr_xstrdup(prepared), strlen(prepared));
}

static void kr_c2s_sasl_data(kr_c2s *c, kr_arena *a, const kr_xml_node *e)
{
    const char *text = kr_xml_text_get(a, e);
    kr_buf data = KR_BUF_INIT;
    size_t tlen = strlen(text);
    if (!(tlen == 1 && text[0] == '=') && kr_base64_decode(&data, text, tlen) != 0) {
        kr_buf_clear(&data);
        kr_c2s_sasl_fail(c, "incorrect-encoding");
        return;
    }
    if (c->mech == KR_MECH_SCRAM)
        kr_c2s_scram_step(c, a, data.data ? data.data : "", data.len);
    else
        kr_c2s_plain_step(c, a, data.data ? data.data : "", data.len);
    if (data.data)
        OPENSSL_cleanse(data.data, data.len);
    kr_buf_clear(&data);
}

static void kr_c2s_sasl_auth(kr_c2s *c, kr_arena *a, const kr_xml_node *e)
{
    kr_c2s_sasl_reset(c);
    const char *mech = kr_xml_attr_get(e, "mechanism");
    bool plus = false;
    if (mech && strcmp(mech, "PLAIN") == 0 && c->srv->cfg->sasl.plain) {
        c->mech = KR_MECH_PLAIN;
    } else if (mech && kr_scram_mech_parse(mech, &c->scram_hash, &plus) == 0) {
        c->mech = KR_MECH_SCRAM;
    } else {
        kr_c2s_send_failure(c, "invalid-mechanism");
        return;
    }
    c->mech_name = kr_xstrdup(mech);
    const char *text = kr_xml_text_get(a, e);
    if (!*text) { /* no initial response: ask for it with an empty challenge */
        kr_c2s_send(c, "<challenge xmlns='" KR_NS_SASL "'/>");
        return;
    }
    kr_c2s_sasl_data(c, a, e);
}

/* An iq before authentication goes to the modules' KR_PHASE_PREAUTH handlers (in-band
 * registration); anything they do not take is refused, and the stream stays usable. */
static void kr_c2s_preauth_iq(kr_c2s *c, kr_xml_node *e, kr_arena *a)
{
    kr_stanza st;
    kr_xml_attr_set(a, e, "from", NULL);
    kr_xml_attr_set(a, e, "to", c->domain); /* addressed to the server: KR_ADDR_HOST */
    const char *bad = kr_stanza_decode(&st, e, a, kr_c2s_served, c->srv);
    if (!bad && kr_modules_dispatch(c->srv, c->conn->worker, &st, &c->sess, KR_PHASE_PREAUTH) ==
                    KR_HANDLED)
        return;
    const char *id = kr_xml_attr_get(e, "id");
    if (id && (st.type & (KR_TYPE_GET | KR_TYPE_SET)))
        kr_c2s_iq_error(c, id, "not-authorized");
}

static void kr_c2s_stage_sasl(kr_c2s *c, kr_arena *a, kr_xml_node *e)
{
    if (strcmp(e->ns, KR_NS_CLIENT) == 0 && strcmp(e->name, "iq") == 0) {
        kr_c2s_preauth_iq(c, e, a);
        return;
    }
    if (strcmp(e->ns, KR_NS_SASL) != 0) {
        kr_c2s_stream_error(c, "not-authorized", "Authenticate before sending stanzas");
        return;
    }
    if (c->sasl_waiting || c->pending_failure) {
        kr_c2s_stream_error(c, "policy-violation", "SASL message sent before the previous answer");
        return;
    }
    if (strcmp(e->name, "auth") == 0) {
        kr_c2s_sasl_auth(c, a, e);
    } else if (strcmp(e->name, "response") == 0) {
        if (c->mech == KR_MECH_NONE)
            kr_c2s_sasl_fail(c, "malformed-request");
        else
            kr_c2s_sasl_data(c, a, e);
    } else if (strcmp(e->name, "abort") == 0) {
        kr_c2s_sasl_reset(c);
        kr_c2s_send_failure(c, "aborted");
    } else {
        kr_c2s_stream_error(c, "policy-violation", "Unexpected SASL element");
    }
}

/* ---- before TLS ------------------------------------------------------------------------- */

static void kr_c2s_stage_plain(kr_c2s *c, const kr_xml_node *e)
{
    if (strcmp(e->ns, KR_NS_TLS) == 0 && strcmp(e->name, "starttls") == 0) {
        kr_c2s_send(c, "<proceed xmlns='" KR_NS_TLS "'/>");
        kr_conn_start_tls(c->conn);
        kr_c2s_restart(c);
        return;
    }
    if (strcmp(e->ns, KR_NS_SASL) == 0 && strcmp(e->name, "auth") == 0) {
        /* RFC 6120 §6.5.3: no authentication without TLS, ever. */
        kr_c2s_send_failure(c, "encryption-required");
        return;
    }
    kr_c2s_stream_error(c, "policy-violation", "TLS is required: send <starttls/> first");
}

/* ---- resource binding ------------------------------------------------------------------- */

static void kr_c2s_iq_reply(kr_c2s *c, const char *id, const char *inner)
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
    kr_c2s_send_buf(c, &b);
}

static void kr_c2s_iq_error(kr_c2s *c, const char *id, const char *condition)
{
    kr_buf b = KR_BUF_INIT;
    kr_buf_puts(&b, "<iq type='error' id='");
    kr_xml_escape_attr(&b, id, strlen(id));
    kr_buf_printf(&b, "'><error type='%s'><%s xmlns='" KR_NS_STANZAS_ERR "'/></error></iq>",
                  kr_stanza_error_type(condition), condition);
    kr_c2s_send_buf(c, &b);
}

/* "kurier-" and 16 hex digits: out holds at least 24 bytes. */
static void kr_c2s_random_resource(char out[static 24])
{
    unsigned char rnd[8];
    kr_random_public(rnd, sizeof(rnd));
    memcpy(out, "kurier-", 7);
    kr_hex_encode(out + 7, rnd, sizeof(rnd));
}

/* Parse the full JID once, as kr_stanza_decode would parse the stamped 'from' of every
 * stanza, and keep its parts in one allocation. */
static void kr_c2s_jid_keep(kr_c2s *c, kr_arena *a)
{
    kr_jid j;
    free(c->jid_mem);
    c->jid_mem = NULL;
    if (kr_jid_parse(a, c->full, &j) != 0)
        return; /* cannot happen for a JID we prepared; intake then parses per stanza */
    size_t nl = j.local ? strlen(j.local) + 1 : 0, nd = strlen(j.domain) + 1,
           nr = j.resource ? strlen(j.resource) + 1 : 0;
    char *m = kr_xmalloc(nl + nd + nr);
    if (j.local)
        memcpy(m, j.local, nl);
    memcpy(m + nl, j.domain, nd);
    if (j.resource)
        memcpy(m + nl + nd, j.resource, nr);
    c->jid = (kr_jid){.local = j.local ? m : NULL, .domain = m + nl,
                      .resource = j.resource ? m + nl + nd : NULL};
    c->jid_mem = m;
}

/* RFC 6120 §7.6-7.7: bind a resource; a resource already in use is taken over (§7.7.2.2). */
static void kr_c2s_bind(kr_c2s *c, kr_arena *a, const char *id, const kr_xml_node *bind)
{
    kr_xml_node *res = kr_xml_child_get(bind, KR_NS_BIND, "resource");
    const char *text = res ? kr_xml_text_get(a, res) : "";
    const char *resource;
    char generated[32];
    if (*text) {
        if (kr_jid_prep_resource(a, text, strlen(text), &resource) != 0) {
            kr_c2s_iq_error(c, id, "bad-request");
            return;
        }
    } else {
        kr_c2s_random_resource(generated);
        resource = generated;
    }
    c->resource = kr_xstrdup(resource);
    c->full = kr_xasprintf("%s/%s", c->bare, c->resource);
    kr_c2s_jid_keep(c, a);
    kr_session_ref old;
    kr_worker *w = c->conn->worker;
    if (kr_sessions_bind(c->srv->sessions, c->bare, c->resource, w->index, c->conn->id, &old)) {
        KR_LOG(KR_LOG_INFO, c->conn->log_ctx, "resource in use; replacing the older session");
        kr_worker_post(&c->srv->workers[old.worker], kr_c2s_kick, NULL, old.conn_id);
    }
    c->bound = true;
    free(c->cb); /* SASL is over: channel bindings are never asked for again */
    c->cb = NULL;
    c->sess = (kr_session){.bare = c->bare, .full = c->full, .resource = c->resource,
                           .domain = c->domain, .peer_ip = c->conn->peer_ip, .worker = w,
                           .conn_id = c->conn->id};
    snprintf(c->conn->log_ctx, sizeof(c->conn->log_ctx), "c2s#%llu w%u %s",
             (unsigned long long)c->conn->id, w->index, c->full);
    kr_buf inner = KR_BUF_INIT;
    kr_buf_puts(&inner, "<bind xmlns='" KR_NS_BIND "'><jid>");
    kr_xml_escape_text(&inner, c->full, strlen(c->full));
    kr_buf_puts(&inner, "</jid></bind>");
    kr_c2s_iq_reply(c, id, inner.data);
    kr_buf_clear(&inner);
    c->last_read = kr_c2s_now(c);
    uint64_t half_idle = (uint64_t)c->srv->cfg->limits.idle_timeout_s * 500;
    kr_conn_timer_set(c->conn, half_idle < KR_C2S_TRIM_MS ? half_idle : KR_C2S_TRIM_MS);
    kr_modules_session_event(c->srv, &c->sess, KR_SESSION_BOUND);
}

static bool kr_c2s_is_stanza(const kr_xml_node *e)
{
    return strcmp(e->ns, KR_NS_CLIENT) == 0 &&
           (strcmp(e->name, "message") == 0 || strcmp(e->name, "presence") == 0 ||
            strcmp(e->name, "iq") == 0);
}

/* The session iq of RFC 3921, kept as a no-op for old clients (advertised <optional/>). */
static bool kr_c2s_session_iq(kr_c2s *c, const kr_xml_node *e, const char *id)
{
    kr_xml_node *p = kr_xml_first_elem(e);
    if (strcmp(e->name, "iq") != 0 || !p || strcmp(p->ns, KR_NS_SESSION) != 0 || !id)
        return false;
    kr_c2s_iq_reply(c, id, NULL);
    return true;
}

static void kr_c2s_stage_bind(kr_c2s *c, kr_arena *a, const kr_xml_node *e)
{
    const char *id = kr_xml_attr_get(e, "id");
    const char *type = kr_xml_attr_get(e, "type");
    if (!kr_c2s_is_stanza(e) || strcmp(e->name, "iq") != 0 || !id || !type) {
        kr_c2s_stream_error(c, "not-authorized", "Bind a resource before sending stanzas");
        return;
    }
    if (kr_c2s_session_iq(c, e, id))
        return;
    kr_xml_node *bind = kr_xml_first_elem(e);
    if (strcmp(type, "set") != 0 || !bind || strcmp(bind->ns, KR_NS_BIND) != 0 ||
        strcmp(bind->name, "bind") != 0) {
        kr_c2s_iq_error(c, id, "not-authorized");
        return;
    }
    kr_c2s_bind(c, a, id, bind);
}

/* ---- bound: stanzas ---------------------------------------------------------------------- */

static bool kr_c2s_served(void *ud, const char *domain)
{
    return kr_config_serves(((kr_server *)ud)->cfg, domain);
}

/* RFC 6121 §4.7.2.3: an integer from -128 to 127; anything else counts as 0. */
static int kr_c2s_priority(kr_arena *a, const kr_xml_node *presence)
{
    kr_xml_node *p = kr_xml_child_get(presence, KR_NS_CLIENT, "priority");
    if (!p)
        return 0;
    const char *t = kr_xml_text_get(a, p);
    char *end;
    long v = strtol(t, &end, 10);
    if (end == t || *end || v < -128 || v > 127)
        return 0;
    return (int)v;
}

/* Broadcast presence (no 'to') changes the session's availability (RFC 6121 §4.2, §4.5);
 * the directory keeps the stanza itself for answering probes (§4.3.2). Returns the session
 * event to report once the stanza has been routed, or -1. */
static int kr_c2s_track_presence(kr_c2s *c, kr_stanza *st)
{
    if (!(st->type & (KR_TYPE_NONE | KR_TYPE_UNAVAILABLE)))
        return -1;
    bool was = c->available;
    c->available = st->type == KR_TYPE_NONE;
    c->priority = c->available ? kr_c2s_priority(st->arena, st->elem) : 0;
    c->sess.available = c->available;
    c->sess.priority = c->priority;
    kr_rbuf *last = NULL;
    if (c->available) {
        kr_buf b = KR_BUF_INIT;
        kr_xml_serialize(&b, st->elem, KR_NS_CLIENT);
        last = kr_rbuf_from_buf(&b);
    }
    kr_sessions_set_presence(c->srv->sessions, c->bare, c->resource, c->conn->id, c->available,
                             c->priority, last);
    if (c->available && !was)
        return KR_SESSION_AVAILABLE;
    if (!c->available && was)
        return KR_SESSION_UNAVAILABLE;
    return -1;
}

/* RFC 6121 §2.1.5-§2.1.6: roster gets and sets go to the user's own account; one addressed to
 * another user (a forged roster push) must not reach that user's client or roster. */
static bool kr_c2s_foreign_roster_iq(const kr_stanza *st)
{
    return st->kind == KR_STANZA_IQ && (st->type & (KR_TYPE_GET | KR_TYPE_SET)) && st->payload &&
           strcmp(st->payload->ns, "jabber:iq:roster") == 0 &&
           (st->addressing & (KR_ADDR_BARE | KR_ADDR_FULL | KR_ADDR_REMOTE));
}

static void kr_c2s_stage_stanza(kr_c2s *c, kr_xml_node *e, kr_arena *a)
{
    if (!kr_c2s_is_stanza(e)) {
        bool misplaced = strcmp(e->name, "message") == 0 || strcmp(e->name, "presence") == 0 ||
                         strcmp(e->name, "iq") == 0;
        kr_c2s_stream_error(c, misplaced ? "invalid-namespace" : "unsupported-stanza-type", NULL);
        return;
    }
    /* RFC 6120 §8.1.2.1: the server stamps 'from' with the session's full JID. */
    kr_xml_attr_set(a, e, "from", c->full);
    const char *id = kr_xml_attr_get(e, "id");
    if (!kr_xml_attr_get(e, "to") && kr_c2s_session_iq(c, e, id))
        return;
    kr_stanza st;
    const char *bad = c->jid_mem
                          ? kr_stanza_decode_from(&st, e, a, kr_c2s_served, c->srv, &c->jid)
                          : kr_stanza_decode(&st, e, a, kr_c2s_served, c->srv);
    kr_worker *w = c->conn->worker;
    if (bad) {
        /* The error comes from the server: the original 'to' may not even be a JID. */
        if (!(st.type & (KR_TYPE_ERROR | KR_TYPE_RESULT))) {
            kr_stanza_make_error(&st, bad, NULL, c->domain);
            kr_router_send(c->srv, w, st.elem, a);
        }
        return;
    }
    if (kr_c2s_foreign_roster_iq(&st)) {
        kr_stanza_make_error(&st, "forbidden", "Only a user's own server changes its roster",
                             c->domain);
        kr_router_send(c->srv, w, st.elem, a);
        return;
    }
    int ev = -1;
    if (st.kind == KR_STANZA_PRESENCE && st.to_absent)
        ev = kr_c2s_track_presence(c, &st);
    kr_router_route(c->srv, w, &st, &c->sess);
    if (ev >= 0 && !c->conn->closing)
        kr_modules_session_event(c->srv, &c->sess, (kr_session_event)ev);
}

static void kr_c2s_element(void *ud, kr_xml_node *e, kr_arena *a)
{
    kr_c2s *c = ud;
    if (!c->conn->closing) {
        if (!c->tls)
            kr_c2s_stage_plain(c, e);
        else if (!c->authed)
            kr_c2s_stage_sasl(c, a, e);
        else if (!c->bound)
            kr_c2s_stage_bind(c, a, e);
        else
            kr_c2s_stage_stanza(c, e, a);
    }
    kr_arena_free(a);
}

/* ---- connection callbacks ---------------------------------------------------------------- */

static void kr_c2s_on_data(kr_conn *conn, const char *data, size_t len)
{
    kr_c2s *c = conn->proto;
    c->last_read = kr_c2s_now(c);
    if (c->trimmed) { /* awake again: the timer looks for the next silence */
        c->trimmed = false;
        kr_conn_timer_set(conn, KR_C2S_TRIM_MS);
    }
    if (kr_xml_parser_feed_stream(c->parser, data, len, &c->in_feed, &c->restart,
                                  kr_conn_closing, conn) == KR_EPARSE)
        kr_c2s_stream_error(c, kr_xml_error_condition(kr_xml_parser_error(c->parser)),
                            kr_xml_parser_error_text(c->parser));
}

static void kr_c2s_on_tls_ready(kr_conn *conn)
{
    kr_c2s *c = conn->proto;
    c->tls = true;
    if (!c->cb)
        c->cb = kr_xcalloc(1, sizeof(*c->cb));
    kr_tls_cb_data(conn->tls, c->cb);
    c->cb_exporter = kr_tls_exporter_available(conn->tls);
}

static void kr_c2s_on_timer(kr_conn *conn)
{
    kr_c2s *c = conn->proto;
    uint64_t now = kr_c2s_now(c);
    if (c->pending_failure) {
        kr_c2s_sasl_fail_now_due(c);
        if (!conn->closing)
            kr_conn_timer_set(conn, c->auth_deadline > now ? c->auth_deadline - now : 1);
        return;
    }
    if (!c->bound) {
        kr_c2s_stream_error(c, "connection-timeout", "Authentication took too long");
        return;
    }
    /* XEP-0199 §4.2: after half the idle time of silence, ping the client; any data it sends
     * (its pong included) counts as activity. Silent for the whole idle time: gone. */
    uint64_t idle = (uint64_t)c->srv->cfg->limits.idle_timeout_s * 1000;
    uint64_t silent = now - c->last_read;
    if (silent >= idle) {
        kr_c2s_stream_error(c, "connection-timeout", "No answer to pings");
        return;
    }
    if (c->ping_at && c->last_read >= c->ping_at) /* loop time has ms granularity */
        c->ping_at = 0; /* the client spoke since: the ping is answered */
    if (silent >= idle / 2 && !c->ping_at) {
        kr_buf b = KR_BUF_INIT;
        kr_buf_printf(&b, "<iq type='get' id='kr-ping-%llu' from='", (unsigned long long)now);
        kr_xml_escape_attr(&b, c->domain, strlen(c->domain));
        kr_buf_puts(&b, "' to='");
        kr_xml_escape_attr(&b, c->full, strlen(c->full));
        kr_buf_puts(&b, "'><ping xmlns='urn:xmpp:ping'/></iq>");
        kr_c2s_send_buf(c, &b);
        c->ping_at = now;
        kr_conn_timer_set(conn, idle - silent);
        return;
    }
    uint64_t next = silent < idle / 2 ? idle / 2 - silent : idle - silent;
    if (!c->trimmed && silent >= KR_C2S_TRIM_MS) {
        kr_xml_parser_trim(c->parser); /* false inside a partial stanza: kept as it is */
        kr_conn_trim(conn);
        c->trimmed = true;
    } else if (!c->trimmed && KR_C2S_TRIM_MS - silent < next) {
        next = KR_C2S_TRIM_MS - silent;
    }
    kr_conn_timer_set(conn, next);
}

/* Closing: leave the session directory and tell the user's other resources (RFC 6121 §4.5.2). */
static void kr_c2s_on_close(kr_conn *conn)
{
    kr_c2s *c = conn->proto;
    if (!c->bound)
        return;
    kr_session_ref ref;
    bool replaced = !kr_sessions_find(c->srv->sessions, c->bare, c->resource, &ref) ||
                    ref.conn_id != conn->id;
    /* A session replaced by a newer one with the same full JID stays silent: an unavailable
     * presence from that JID would now describe the new session. */
    if (c->available && !replaced) {
        kr_arena *a = kr_arena_new(512);
        kr_xml_node *p = kr_xml_elem_new(a, KR_NS_CLIENT, "presence");
        kr_xml_attr_set(a, p, "type", "unavailable");
        kr_xml_attr_set(a, p, "from", c->full);
        kr_sessions_set_presence(c->srv->sessions, c->bare, c->resource, conn->id, false, 0,
                                 NULL);
        c->available = c->sess.available = false;
        kr_stanza st;
        if (!kr_stanza_decode(&st, p, a, kr_c2s_served, c->srv))
            kr_router_route(c->srv, conn->worker, &st, &c->sess);
        kr_arena_free(a);
        kr_modules_session_event(c->srv, &c->sess, KR_SESSION_UNAVAILABLE);
    }
    kr_modules_session_event(c->srv, &c->sess, KR_SESSION_CLOSED);
    kr_sessions_unbind(c->srv->sessions, c->bare, c->resource, conn->id);
    KR_LOG(KR_LOG_INFO, conn->log_ctx, "session ended");
}

/* The client does not read: RFC 6120 §4.9.3.14 policy-violation, then close. */
static void kr_c2s_on_overflow(kr_conn *conn)
{
    if (conn->proto)
        kr_c2s_stream_error(conn->proto, "policy-violation",
                            "Too much output queued: the client does not read");
}

static void kr_c2s_on_free(kr_conn *conn)
{
    kr_c2s *c = conn->proto;
    if (!c)
        return;
    kr_c2s_sasl_reset(c);
    kr_xml_parser_free(c->parser);
    free(c->cb);
    free(c->domain);
    free(c->bare);
    free(c->full);
    free(c->resource);
    free(c->jid_mem);
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
    kr_xml_limits limits = kr_stanza_intake_limits(srv->cfg->limits.max_stanza_bytes,
                                                   srv->cfg->limits.max_depth,
                                                   srv->cfg->limits.max_attributes);
    kr_xml_parser_cbs cbs = {kr_c2s_stream_open, kr_c2s_element, kr_c2s_stream_close};
    c->parser = kr_xml_parser_new(&limits, &cbs, c);
    conn->proto = c;
    c->sess.peer_ip = conn->peer_ip;
    c->sess.worker = conn->worker;
    c->sess.conn_id = conn->id;
    uint64_t timeout = (uint64_t)srv->cfg->limits.auth_timeout_s * 1000;
    c->auth_deadline = kr_c2s_now(c) + timeout;
    kr_conn_timer_set(conn, timeout);
}

/* The worker's connection table also holds s2s streams: only ours are sessions. */
static kr_conn *kr_c2s_find(kr_worker *w, uint64_t conn_id)
{
    kr_conn *conn = kr_conn_find(w, conn_id);
    return conn && conn->ops == &kr_c2s_ops ? conn : NULL;
}

kr_session *kr_session_find(kr_worker *w, uint64_t conn_id)
{
    kr_conn *conn = kr_c2s_find(w, conn_id);
    return conn && conn->proto ? &((kr_c2s *)conn->proto)->sess : NULL;
}

void kr_session_send(kr_session *s, const char *data, size_t len)
{
    kr_c2s *c = (kr_c2s *)s; /* sess is the first member */
    kr_conn_send(c->conn, data, len);
}

void kr_session_send_elem(kr_session *s, const kr_xml_node *e)
{
    kr_buf b = KR_BUF_INIT;
    kr_xml_serialize(&b, e, KR_NS_CLIENT);
    kr_session_send(s, b.data, b.len);
    kr_buf_clear(&b);
}

void kr_c2s_deliver(kr_worker *w, uint64_t conn_id, kr_rbuf *buf)
{
    kr_conn *conn = kr_c2s_find(w, conn_id);
    kr_c2s *c = conn ? conn->proto : NULL;
    if (c && c->bound)
        kr_conn_send(conn, buf->data, buf->len);
    kr_rbuf_unref(buf);
}

void kr_c2s_kick(kr_worker *w, void *unused, uint64_t conn_id)
{
    kr_conn *conn = kr_c2s_find(w, conn_id);
    if (conn && conn->proto)
        kr_c2s_stream_error(conn->proto, "conflict", "Replaced by a new session with the same resource");
}

void kr_c2s_end_session(kr_worker *w, void *cond, uint64_t conn_id)
{
    kr_conn *conn = kr_c2s_find(w, conn_id);
    if (conn && conn->proto)
        kr_c2s_stream_error(conn->proto, cond, NULL);
}

static void kr_c2s_shutdown_conn(kr_conn *conn)
{
    if (conn->proto && conn->ops == &kr_c2s_ops)
        kr_c2s_stream_error(conn->proto, "system-shutdown", "The server is shutting down");
}

void kr_c2s_shutdown_worker(kr_worker *w)
{
    kr_conn_close_all(w, kr_c2s_shutdown_conn);
}
