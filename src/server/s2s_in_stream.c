/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * The protocol of an inbound s2s stream (receiving server, RFC 6120 §4-§6,
 * §8; see s2s_in_stream.h), and three helpers s2s_out.c shares
 * (kr__s2s_header, kr__s2s_to_client_ns, kr__s2s_verify_free), kept here
 * so the stream links without the rest of s2s. Before TLS only <starttls/> is
 * accepted (features offer it <required/>). After TLS the features offer
 * SASL EXTERNAL (XEP-0178) when the peer named itself in the stream header
 * and its certificate verifies for that domain (RFC 6125), and Server
 * Dialback (XEP-0220, with dialback errors) unless
 * s2s.require_valid_certificates is set. A <db:result/> key is checked by
 * asking the claimed domain's authoritative server (io->verify); the answer
 * comes back through kr__s2s_in_stream_verified. <db:verify/> requests for
 * keys we issued are answered at once from the dialback secret. The stream
 * keeps the set of (local, remote) domain pairs it authenticated; each
 * stanza's 'from' domain and 'to' domain must be such a pair
 * (<invalid-from/>, <host-unknown/>, <improper-addressing/> stream errors
 * otherwise), and goes to io->route after jabber:server is renamed
 * jabber:client.
 */
#include "server/s2s_in_stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/base64.h"
#include "core/error.h"
#include "core/log.h"
#include "xml/serialize.h"

#define KR_S2S_IN_PAIRS_MAX 64   /* domain pairs one stream may authenticate */
#define KR_S2S_IN_PENDING_MAX 16 /* dialback verifications waiting at once */

/* ---- helpers shared with s2s_out.c --------------------------------------------------------- */

void kr__s2s_header(kr_buf *b, const char *from, const char *to, const char *id)
{
    kr_buf_puts(b, "<?xml version='1.0'?><stream:stream xmlns='" KR_NS_SERVER
                   "' xmlns:stream='" KR_NS_STREAM "' xmlns:db='" KR_NS_DIALBACK "'");
    if (id)
        kr_buf_printf(b, " id='%s'", id);
    kr_buf_puts(b, " from='");
    kr_xml_escape_attr(b, from, strlen(from));
    if (to) {
        kr_buf_puts(b, "' to='");
        kr_xml_escape_attr(b, to, strlen(to));
    }
    kr_buf_puts(b, "' version='1.0'>");
}

void kr__s2s_to_client_ns(kr_xml_node *e)
{
    if (e->type != KR_XML_ELEMENT)
        return;
    if (strcmp(e->ns, KR_NS_SERVER) == 0)
        e->ns = KR_NS_CLIENT;
    for (kr_xml_node *c = e->children; c; c = c->next)
        kr__s2s_to_client_ns(c);
}

void kr__s2s_verify_free(kr__s2s_verify *v)
{
    if (!v)
        return;
    free(v->local);
    free(v->remote);
    free(v->id);
    free(v->key);
    free(v);
}

/* ---- the stream ----------------------------------------------------------------------------- */

static bool kr_s2s_in_closing(const kr__s2s_in_stream *s)
{
    return s->o.io->closing(s->o.ud);
}

static bool kr_s2s_in_served(void *ud, const char *domain)
{
    const kr__s2s_in_stream *s = ud;
    return s->o.io->served(s->o.ud, domain);
}

static void kr_s2s_in_send(kr__s2s_in_stream *s, kr_buf *b)
{
    s->o.io->send(s->o.ud, b->data, b->len);
    kr_buf_clear(b);
}

static void kr_s2s_in_header(kr__s2s_in_stream *s, kr_buf *b)
{
    s->o.io->stream_id(s->o.ud, s->stream_id);
    s->stream_id[32] = '\0';
    kr__s2s_header(b, s->local ? s->local : s->o.default_domain, s->peer, s->stream_id);
    s->header_sent = true;
}

void kr__s2s_in_stream_error(kr__s2s_in_stream *s, const char *condition, const char *text)
{
    if (kr_s2s_in_closing(s))
        return;
    kr_buf b = KR_BUF_INIT;
    if (!s->header_sent)
        kr_s2s_in_header(s, &b);
    kr_stream_error_write(&b, condition, text);
    kr_s2s_in_send(s, &b);
    KR_LOG(KR_LOG_INFO, s->o.log_ctx, "stream error <%s/>%s%s", condition, text ? ": " : "",
           text ? text : "");
    if (s->in_feed)
        kr_xml_parser_stop(s->parser);
    s->o.io->close(s->o.ud);
}

static void kr_s2s_in_restart(kr__s2s_in_stream *s)
{
    /* Answers to verifications of the old stream are void from here on, not only once the
     * new header gives a new id: written before it, they would land outside any stream. */
    s->stream_id[0] = '\0';
    s->header_sent = false;
    if (s->in_feed) {
        s->restart = true;
        kr_xml_parser_stop(s->parser);
    } else {
        kr_xml_parser_reset(s->parser);
    }
}

bool kr__s2s_in_stream_authed(const kr__s2s_in_stream *s)
{
    return s->pairs.count > 0;
}

bool kr__s2s_in_stream_paired(const kr__s2s_in_stream *s, const char *local, const char *remote)
{
    kr_buf key = KR_BUF_INIT;
    kr_buf_printf(&key, "%s %s", local, remote);
    bool paired = kr_strmap_get(&s->pairs, key.data) != NULL;
    kr_buf_clear(&key);
    return paired;
}

static void kr_s2s_in_pair_add(kr__s2s_in_stream *s, const char *local, const char *remote,
                               const char *how)
{
    if (s->pairs.count >= KR_S2S_IN_PAIRS_MAX)
        return;
    bool first = !kr__s2s_in_stream_authed(s);
    kr_buf key = KR_BUF_INIT;
    kr_buf_printf(&key, "%s %s", local, remote);
    kr_strmap_put(&s->pairs, key.data, s);
    kr_buf_clear(&key);
    KR_LOG(KR_LOG_INFO, s->o.log_ctx, "inbound s2s stream authenticated %s -> %s (%s)", remote,
           local, how);
    if (first)
        s->o.io->authenticated(s->o.ud);
}

/* ---- stream header and features ----------------------------------------------------------- */

/* SASL EXTERNAL is offered when the peer's certificate verifies for the domain it named. */
static bool kr_s2s_in_external_ok(kr__s2s_in_stream *s, const char *domain)
{
    char why[256] = "";
    if (domain && s->o.io->cert_ok(s->o.ud, domain, why, sizeof(why)))
        return true;
    KR_LOG(KR_LOG_DEBUG, s->o.log_ctx, "certificate of %s not usable: %s",
           domain ? domain : "(unnamed peer)", why);
    return false;
}

static void kr_s2s_in_features(kr__s2s_in_stream *s, kr_buf *b)
{
    kr_buf_puts(b, "<stream:features>");
    if (!s->tls) {
        kr_buf_puts(b, "<starttls xmlns='" KR_NS_TLS "'><required/></starttls>");
    } else if (!s->sasl_done) {
        if (s->peer && kr_s2s_in_external_ok(s, s->peer))
            kr_buf_puts(b, "<mechanisms xmlns='" KR_NS_SASL "'><mechanism>EXTERNAL</mechanism>"
                           "</mechanisms>");
        if (!s->o.require_valid_certificates)
            kr_buf_puts(b, "<dialback xmlns='" KR_NS_DIALBACK_FEATURE "'><errors/></dialback>");
    }
    kr_buf_puts(b, "</stream:features>");
}

/* An address attribute as a prepared domain in a, or NULL when missing or not a domain. */
static const char *kr_s2s_in_domain(kr_arena *a, const char *raw)
{
    const char *out = NULL;
    return raw && kr_jid_prep_domain(a, raw, strlen(raw), &out) == 0 ? out : NULL;
}

static void kr_s2s_in_stream_open(void *ud, const kr_xml_stream_header *hdr)
{
    kr__s2s_in_stream *s = ud;
    const kr_xml_node *e = hdr->elem;
    if (strcmp(e->ns, KR_NS_STREAM) != 0 || strcmp(e->name, "stream") != 0 ||
        strcmp(hdr->default_ns, KR_NS_SERVER) != 0) {
        kr__s2s_in_stream_error(s, "invalid-namespace", "Expected a jabber:server stream");
        return;
    }
    const char *to = kr_xml_attr_get(e, "to");
    const char *from = kr_xml_attr_get(e, "from");
    kr_arena *a = kr_arena_new(256);
    const char *local = kr_s2s_in_domain(a, to);
    const char *peer = kr_s2s_in_domain(a, from);
    if (!local || !kr_s2s_in_served(s, local)) {
        kr_arena_free(a);
        kr__s2s_in_stream_error(s, "host-unknown", "This server does not serve that domain");
        return;
    }
    if (from && !peer) {
        kr_arena_free(a);
        kr__s2s_in_stream_error(s, "invalid-from", NULL);
        return;
    }
    if ((s->local && strcmp(s->local, local) != 0) ||
        (s->peer && (!peer || strcmp(s->peer, peer) != 0))) {
        kr_arena_free(a);
        kr__s2s_in_stream_error(s, "invalid-from", "The domains changed on stream restart");
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

void kr__s2s_in_stream_close(kr__s2s_in_stream *s)
{
    kr_buf b = KR_BUF_INIT;
    /* After <success/> the peer may never open the new stream (the idle timer then ends it):
     * open ours first, or the peer reads a lone end tag (tests/fuzz/s2s_in/crashes/). */
    if (!s->header_sent)
        kr_s2s_in_header(s, &b);
    kr_buf_puts(&b, "</stream:stream>");
    kr_s2s_in_send(s, &b);
    if (s->in_feed)
        kr_xml_parser_stop(s->parser);
    s->o.io->close(s->o.ud);
}

static void kr_s2s_in_on_close(void *ud)
{
    kr__s2s_in_stream_close(ud);
}

/* ---- SASL EXTERNAL (XEP-0178) ------------------------------------------------------------- */

static void kr_s2s_in_sasl_failure(kr__s2s_in_stream *s, const char *condition)
{
    kr_buf b = KR_BUF_INIT;
    kr_buf_printf(&b, "<failure xmlns='" KR_NS_SASL "'><%s/></failure>", condition);
    kr_s2s_in_send(s, &b);
}

static void kr_s2s_in_auth(kr__s2s_in_stream *s, kr_arena *a, const kr_xml_node *e)
{
    const char *mech = kr_xml_attr_get(e, "mechanism");
    if (s->sasl_done || strcmp(e->name, "auth") != 0) {
        kr__s2s_in_stream_error(s, "policy-violation", "Unexpected SASL element");
        return;
    }
    if (!mech || strcmp(mech, "EXTERNAL") != 0) {
        kr_s2s_in_sasl_failure(s, "invalid-mechanism");
        return;
    }
    /* The authorization identity: empty ("=") or the domain the stream header named, compared
     * and kept prepared like every other domain (a NUL or a space in it is refused). */
    const char *text = kr_xml_text_get(a, e);
    kr_buf authzid = KR_BUF_INIT;
    bool decoded =
        strcmp(text, "=") == 0 || !*text || kr_base64_decode(&authzid, text, strlen(text)) == 0;
    const char *domain = s->peer;
    if (decoded && authzid.len && kr_jid_prep_domain(a, authzid.data, authzid.len, &domain) != 0)
        decoded = false;
    bool ok = decoded && domain && (!s->peer || strcmp(domain, s->peer) == 0) &&
              kr_s2s_in_external_ok(s, domain);
    if (!ok) {
        KR_LOG(KR_LOG_WARN, s->o.log_ctx, "SASL EXTERNAL refused for %s",
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
static void kr_s2s_in_db_error(kr__s2s_in_stream *s, const char *elem, const char *from,
                               const char *to, const char *id, const char *condition)
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
static void kr_s2s_in_db_result(kr__s2s_in_stream *s, kr_arena *a, const kr_xml_node *e)
{
    const char *from = kr_xml_attr_get(e, "from");
    const char *to = kr_xml_attr_get(e, "to");
    const char *key = kr_xml_text_get(a, e);
    const char *pfrom = kr_s2s_in_domain(a, from), *pto = kr_s2s_in_domain(a, to);
    if (!pfrom || !pto || !*key) {
        kr__s2s_in_stream_error(s, "improper-addressing",
                                "A dialback request needs from, to and a key");
        return;
    }
    if (!kr_s2s_in_served(s, pto)) {
        kr_s2s_in_db_error(s, "result", pto, pfrom, NULL, "item-not-found");
        return;
    }
    if (s->o.require_valid_certificates) {
        KR_LOG(KR_LOG_WARN, s->o.log_ctx,
               "dialback from %s refused: require_valid_certificates is set", pfrom);
        kr_s2s_in_db_error(s, "result", pto, pfrom, NULL, "not-authorized");
        return;
    }
    if (s->pending >= KR_S2S_IN_PENDING_MAX) {
        kr_s2s_in_db_error(s, "result", pto, pfrom, NULL, "resource-constraint");
        return;
    }
    KR_LOG(KR_LOG_DEBUG, s->o.log_ctx, "dialback request from %s: verifying", pfrom);
    kr__s2s_verify *v = kr_xcalloc(1, sizeof(*v));
    v->local = kr_xstrdup(pto);
    v->remote = kr_xstrdup(pfrom);
    v->id = kr_xstrdup(s->stream_id);
    v->key = kr_xstrdup(key);
    s->pending++;
    s->o.io->verify(s->o.ud, v);
}

/* We are the authoritative server: was this key issued by us? (XEP-0220 §2.3.2) */
static void kr_s2s_in_db_verify(kr__s2s_in_stream *s, kr_arena *a, const kr_xml_node *e)
{
    const char *from = kr_xml_attr_get(e, "from");
    const char *to = kr_xml_attr_get(e, "to");
    const char *id = kr_xml_attr_get(e, "id");
    const char *key = kr_xml_text_get(a, e);
    const char *pfrom = kr_s2s_in_domain(a, from), *pto = kr_s2s_in_domain(a, to);
    if (!pfrom || !pto || !id) {
        kr__s2s_in_stream_error(s, "improper-addressing",
                                "A dialback verify needs from, to and id");
        return;
    }
    if (!kr_s2s_in_served(s, pto)) {
        kr_s2s_in_db_error(s, "verify", pto, pfrom, id, "item-not-found");
        return;
    }
    bool valid = kr_dialback_key_check(s->o.secret, pfrom, pto, id, key);
    KR_LOG(KR_LOG_DEBUG, s->o.log_ctx, "dialback verify from %s for %s: %s", pfrom, pto,
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

void kr__s2s_in_stream_verified(kr__s2s_in_stream *s, kr__s2s_verify *v)
{
    if (s->pending)
        s->pending--;
    if (kr_s2s_in_closing(s) || strcmp(v->id, s->stream_id) != 0) {
        kr__s2s_verify_free(v); /* closing, or the stream restarted meanwhile */
        return;
    }
    if (v->result == KR_DB_UNREACHABLE) {
        KR_LOG(KR_LOG_WARN, s->o.log_ctx, "dialback for %s: its server cannot be reached",
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
        KR_LOG(KR_LOG_WARN, s->o.log_ctx, "dialback key for %s is invalid (forged?): refused",
               v->remote);
        if (!kr__s2s_in_stream_authed(s))
            kr__s2s_in_stream_error(s, "not-authorized", "Invalid dialback key");
    }
    kr__s2s_verify_free(v);
}

/* ---- stanzas -------------------------------------------------------------------------------- */

static bool kr_s2s_in_is_stanza(const kr_xml_node *e)
{
    return strcmp(e->name, "message") == 0 || strcmp(e->name, "presence") == 0 ||
           strcmp(e->name, "iq") == 0;
}

/* RFC 6120 §8.1.1.2, §8.1.2.2, §4.9.3.9: addresses must be an authenticated pair. Takes
 * the arena. */
static void kr_s2s_in_stanza(kr__s2s_in_stream *s, kr_arena *a, kr_xml_node *e)
{
    if (!kr__s2s_in_stream_authed(s)) {
        kr__s2s_in_stream_error(s, "not-authorized", "Authenticate before sending stanzas");
        kr_arena_free(a);
        return;
    }
    if (strcmp(e->ns, KR_NS_SERVER) != 0) {
        kr__s2s_in_stream_error(s, "invalid-namespace", NULL);
        kr_arena_free(a);
        return;
    }
    const char *from = kr_xml_attr_get(e, "from");
    const char *to = kr_xml_attr_get(e, "to");
    kr_jid jfrom, jto;
    const char *cond = NULL, *text = NULL;
    if (!from || !to) {
        cond = "improper-addressing";
        text = "Stanzas need 'from' and 'to'";
    } else if (kr_jid_parse(a, from, &jfrom) != 0) {
        cond = "invalid-from";
    } else if (kr_jid_parse(a, to, &jto) != 0 || !kr_s2s_in_served(s, jto.domain)) {
        cond = "host-unknown";
        text = "The 'to' domain is not served here";
    } else if (!kr__s2s_in_stream_paired(s, jto.domain, jfrom.domain)) {
        KR_LOG(KR_LOG_WARN, s->o.log_ctx,
               "stanza from %s to %s on a stream not authenticated for them: refused", jfrom.domain,
               jto.domain);
        cond = "invalid-from";
        text = "The 'from' domain is not authenticated";
    }
    if (cond) {
        kr__s2s_in_stream_error(s, cond, text);
        kr_arena_free(a);
        return;
    }
    kr__s2s_to_client_ns(e);
    const char *bad;
    kr_stanza *st = kr_stanza_new(a, e, s->o.hosts, NULL, &bad);
    if (!bad) {
        s->o.io->route(s->o.ud, st);
        return;
    }
    if (!(st->type & (KR_TYPE_ERROR | KR_TYPE_RESULT))) {
        kr_stanza_make_error(st, bad, NULL, jto.domain);
        kr_stanza *reply = kr_stanza_new_in(st, st->elem, s->o.hosts, &bad);
        s->o.io->reply(s->o.ud, reply);
    }
    kr_stanza_unref(st);
}

static void kr_s2s_in_element(void *ud, kr_xml_node *e, kr_arena *a)
{
    kr__s2s_in_stream *s = ud;
    if (kr_s2s_in_closing(s)) {
        kr_arena_free(a);
        return;
    }
    if (!s->tls) {
        if (strcmp(e->ns, KR_NS_TLS) == 0 && strcmp(e->name, "starttls") == 0) {
            kr_buf b = KR_BUF_INIT;
            kr_buf_puts(&b, "<proceed xmlns='" KR_NS_TLS "'/>");
            kr_s2s_in_send(s, &b);
            kr_s2s_in_restart(s);
            s->o.io->start_tls(s->o.ud);
        } else {
            KR_LOG(KR_LOG_WARN, s->o.log_ctx, "peer did not start TLS: refused");
            kr__s2s_in_stream_error(s, "policy-violation", "STARTTLS is required");
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
        return;
    } else {
        kr__s2s_in_stream_error(s, "unsupported-stanza-type", NULL);
    }
    kr_arena_free(a);
}

/* ---- input -------------------------------------------------------------------------------- */

void kr__s2s_in_stream_feed(kr__s2s_in_stream *s, const char *data, size_t len)
{
    if (kr_xml_parser_feed_stream(s->parser, data, len, &s->in_feed, &s->restart,
                                  s->o.io->closing, s->o.ud) == KR_EPARSE)
        kr__s2s_in_stream_error(s, kr_xml_error_condition(kr_xml_parser_error(s->parser)),
                                kr_xml_parser_error_text(s->parser));
}

void kr__s2s_in_stream_tls_ready(kr__s2s_in_stream *s)
{
    s->tls = true;
}

kr__s2s_in_stream *kr__s2s_in_stream_new(const kr__s2s_in_opts *opts)
{
    kr__s2s_in_stream *s = kr_xcalloc(1, sizeof(*s));
    s->o = *opts;
    kr_strmap_init(&s->pairs);
    kr_xml_parser_cbs cbs = {kr_s2s_in_stream_open, kr_s2s_in_element, kr_s2s_in_on_close};
    s->parser = kr_xml_parser_new(&s->o.limits, &cbs, s);
    return s;
}

void kr__s2s_in_stream_free(kr__s2s_in_stream *s)
{
    if (!s)
        return;
    kr_xml_parser_free(s->parser);
    kr_strmap_clear(&s->pairs);
    free(s->local);
    free(s->peer);
    free(s);
}
