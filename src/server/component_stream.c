/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * The protocol of an external component stream (XEP-0114 §3, see
 * component_stream.h): the header exchange, the handshake, the checks on
 * every stanza the component sends and the timers. Three states: waiting
 * for the header (domain NULL), waiting for the handshake (domain set,
 * authed false), authenticated. A stream error or the end of the stream
 * closes through io->close; from then on io->closing() is true and every
 * callback returns at once. The handshake digest is computed with OpenSSL's
 * EVP SHA-1 and compared with CRYPTO_memcmp, so the time it takes says
 * nothing about how much of a guess was right.
 */
#include "server/component_stream.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/base64.h"
#include "core/error.h"
#include "core/log.h"
#include "xml/serialize.h"

/* ---- helpers --------------------------------------------------------------------------------- */

static bool kr_comp_closing(const kr_component_stream *s)
{
    return s->o.io->closing(s->o.ud);
}

static void kr_comp_send(kr_component_stream *s, kr_buf *b)
{
    s->o.io->send(s->o.ud, b->data, b->len);
    kr_buf_clear(b);
}

/* Our stream header (XEP-0114 §3, example 2): 'from' the component's domain once the
 * component named one we serve, ours before. No version: these streams have no features. */
static void kr_comp_header(kr_component_stream *s, kr_buf *b)
{
    s->o.io->stream_id(s->o.ud, s->stream_id);
    s->stream_id[32] = '\0';
    const char *from = s->domain ? s->domain : s->o.server_domain;
    kr_buf_puts(b, "<?xml version='1.0'?><stream:stream xmlns:stream='" KR_NS_STREAM
                   "' xmlns='" KR_NS_COMPONENT "' from='");
    kr_xml_escape_attr(b, from, strlen(from));
    kr_buf_printf(b, "' id='%s'>", s->stream_id);
    s->header_sent = true;
}

/* §3 also asks that characters with predefined XML entities be escaped in the concatenation
 * before hashing; the components and servers in use (slixmpp, Prosody) hash the raw bytes,
 * and so do we. Our stream ids are hex, so only a secret holding &<>'" could differ. */
void kr_component_digest(const char *stream_id, const char *secret, char out[41])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    kr_assert(ctx);
    int ok = EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, stream_id, strlen(stream_id)) == 1 &&
             EVP_DigestUpdate(ctx, secret, strlen(secret)) == 1 &&
             EVP_DigestFinal_ex(ctx, md, &mdlen) == 1;
    EVP_MD_CTX_free(ctx);
    kr_assert(ok && mdlen == KR_COMPONENT_DIGEST_HEX / 2);
    kr_hex_encode(out, md, mdlen);
    OPENSSL_cleanse(md, sizeof(md));
}

bool kr_component_stream_authed(const kr_component_stream *s)
{
    return s->authed;
}

void kr_component_stream_error(kr_component_stream *s, const char *condition, const char *text)
{
    if (kr_comp_closing(s))
        return;
    kr_buf b = KR_BUF_INIT;
    if (!s->header_sent) /* RFC 6120 §4.9.1.1: open our stream before the error */
        kr_comp_header(s, &b);
    kr_stream_error_write(&b, condition, text);
    kr_comp_send(s, &b);
    KR_LOG(KR_LOG_INFO, s->o.log_ctx, "stream error <%s/>%s%s", condition, text ? ": " : "",
           text ? text : "");
    if (s->in_feed)
        kr_xml_parser_stop(s->parser);
    s->o.io->close(s->o.ud);
}

void kr_component_stream_close(kr_component_stream *s)
{
    if (kr_comp_closing(s))
        return;
    kr_buf b = KR_BUF_INIT;
    if (!s->header_sent)
        kr_comp_header(s, &b);
    kr_buf_puts(&b, "</stream:stream>");
    kr_comp_send(s, &b);
    if (s->in_feed)
        kr_xml_parser_stop(s->parser);
    s->o.io->close(s->o.ud);
}

/* ---- the stream header ----------------------------------------------------------------------- */

static void kr_comp_stream_open(void *ud, const kr_xml_stream_header *hdr)
{
    kr_component_stream *s = ud;
    const kr_xml_node *e = hdr->elem;
    if (strcmp(e->ns, KR_NS_STREAM) != 0 || strcmp(e->name, "stream") != 0 ||
        strcmp(hdr->default_ns, KR_NS_COMPONENT) != 0) {
        kr_component_stream_error(s, "invalid-namespace",
                                  "Expected a jabber:component:accept stream");
        return;
    }
    /* In jabber:component:accept the header's 'to' is the component's own name (§3). */
    const char *to = kr_xml_attr_get(e, "to");
    if (!to) {
        kr_component_stream_error(s, "improper-addressing",
                                  "The stream header must name the component in 'to'");
        return;
    }
    kr_arena *a = kr_arena_new(256);
    const char *domain = NULL;
    if (kr_jid_prep_domain(a, to, strlen(to), &domain) != 0 || !s->o.io->secret(s->o.ud, domain)) {
        if (domain)
            KR_LOG(KR_LOG_INFO, s->o.log_ctx, "component stream for %s: not configured", domain);
        kr_arena_free(a);
        kr_component_stream_error(s, "host-unknown", "No component of that name is configured");
        return;
    }
    s->domain = kr_xstrdup(domain);
    kr_arena_free(a);
    kr_buf b = KR_BUF_INIT;
    kr_comp_header(s, &b);
    kr_comp_send(s, &b);
}

static void kr_comp_stream_close_cb(void *ud)
{
    kr_component_stream_close(ud);
}

/* ---- the handshake (§3) ---------------------------------------------------------------------- */

static void kr_comp_handshake(kr_component_stream *s, kr_arena *a, const kr_xml_node *e)
{
    const char *secret = s->o.io->secret(s->o.ud, s->domain);
    const char *text = kr_xml_first_elem(e) ? NULL : kr_xml_text_get(a, e);
    bool ok = false;
    if (secret && text && strlen(text) == KR_COMPONENT_DIGEST_HEX) {
        char want[KR_COMPONENT_DIGEST_HEX + 1], got[KR_COMPONENT_DIGEST_HEX];
        kr_component_digest(s->stream_id, secret, want);
        for (size_t i = 0; i < KR_COMPONENT_DIGEST_HEX; i++) {
            char ch = text[i];
            got[i] = ch >= 'A' && ch <= 'F' ? (char)(ch - 'A' + 'a') : ch;
        }
        ok = CRYPTO_memcmp(got, want, KR_COMPONENT_DIGEST_HEX) == 0;
        OPENSSL_cleanse(want, sizeof(want));
    }
    if (!ok) {
        KR_LOG(KR_LOG_WARN, s->o.log_ctx, "component %s: handshake failed", s->domain);
        kr_component_stream_error(s, "not-authorized",
                                  "The handshake does not match the shared secret");
        return;
    }
    if (!s->o.io->claim(s->o.ud, s->domain)) {
        KR_LOG(KR_LOG_WARN, s->o.log_ctx, "component %s is already connected: refused", s->domain);
        kr_component_stream_error(s, "conflict", "Another connection serves this component");
        return;
    }
    s->authed = true;
    KR_LOG(KR_LOG_INFO, s->o.log_ctx, "component %s authenticated", s->domain);
    kr_buf b = KR_BUF_INIT;
    kr_buf_puts(&b, "<handshake/>");
    kr_comp_send(s, &b);
    s->last_read = s->o.io->now(s->o.ud);
    s->o.io->timer_set(s->o.ud, (uint64_t)s->o.idle_timeout_s * 500);
}

/* ---- stanzas --------------------------------------------------------------------------------- */

static bool kr_comp_is_stanza(const kr_xml_node *e)
{
    return strcmp(e->name, "message") == 0 || strcmp(e->name, "presence") == 0 ||
           strcmp(e->name, "iq") == 0;
}

/* The component's namespace becomes jabber:client, what every other stream's stanzas look
 * like to the router and modules; payload namespaces stay. */
static void kr_comp_to_client_ns(kr_xml_node *e)
{
    if (e->type != KR_XML_ELEMENT)
        return;
    if (strcmp(e->ns, KR_NS_COMPONENT) == 0)
        e->ns = KR_NS_CLIENT;
    for (kr_xml_node *c = e->children; c; c = c->next)
        kr_comp_to_client_ns(c);
}

/* §3: 'from' on the component's domain and 'to' are required. Takes the arena. */
static void kr_comp_stanza(kr_component_stream *s, kr_arena *a, kr_xml_node *e)
{
    if (strcmp(e->ns, KR_NS_COMPONENT) != 0 && strcmp(e->ns, KR_NS_CLIENT) != 0) {
        kr_component_stream_error(s, "invalid-namespace", NULL);
        kr_arena_free(a);
        return;
    }
    const char *from = kr_xml_attr_get(e, "from");
    const char *to = kr_xml_attr_get(e, "to");
    kr_jid jfrom;
    if (!from || kr_jid_parse(a, from, &jfrom) != 0 || strcmp(jfrom.domain, s->domain) != 0) {
        KR_LOG(KR_LOG_WARN, s->o.log_ctx, "component %s sent a stanza %s: refused", s->domain,
               from ? "from outside its domain" : "without 'from'");
        kr_component_stream_error(s, "invalid-from",
                                  "Stanzas need a 'from' on the component's domain");
        kr_arena_free(a);
        return;
    }
    if (!to) {
        kr_component_stream_error(s, "improper-addressing", "Stanzas need a 'to'");
        kr_arena_free(a);
        return;
    }
    kr_comp_to_client_ns(e);
    const char *bad;
    kr_stanza *st = kr_stanza_new(a, e, s->o.hosts, &jfrom, &bad);
    if (!bad) {
        s->o.io->route(s->o.ud, st);
        return;
    }
    if (!(st->type & (KR_TYPE_ERROR | KR_TYPE_RESULT))) {
        kr_jid jto;
        const char *efrom = kr_jid_parse(a, to, &jto) == 0 ? jto.domain : s->o.server_domain;
        kr_stanza_make_error(st, bad, NULL, efrom);
        kr_stanza *reply = kr_stanza_new_in(st, st->elem, s->o.hosts, &bad);
        if (bad) /* an iq without an id: an answer could not say what it answers */
            kr_stanza_unref(reply);
        else
            s->o.io->reply(s->o.ud, reply);
    }
    kr_stanza_unref(st);
}

static void kr_comp_element(void *ud, kr_xml_node *e, kr_arena *a)
{
    kr_component_stream *s = ud;
    if (kr_comp_closing(s)) {
        kr_arena_free(a);
        return;
    }
    if (!s->authed) {
        if (strcmp(e->ns, KR_NS_COMPONENT) == 0 && strcmp(e->name, "handshake") == 0)
            kr_comp_handshake(s, a, e);
        else
            kr_component_stream_error(s, "not-authorized", "Send the handshake first");
    } else if (kr_comp_is_stanza(e)) {
        kr_comp_stanza(s, a, e);
        return;
    } else {
        kr_component_stream_error(s, "unsupported-stanza-type", NULL);
    }
    kr_arena_free(a);
}

/* ---- input, output, timers ------------------------------------------------------------------- */

void kr_component_stream_feed(kr_component_stream *s, const char *data, size_t len)
{
    s->last_read = s->o.io->now(s->o.ud);
    if (kr_xml_parser_feed_stream(s->parser, data, len, &s->in_feed, &s->restart, s->o.io->closing,
                                  s->o.ud) == KR_EPARSE)
        kr_component_stream_error(s, kr_xml_error_condition(kr_xml_parser_error(s->parser)),
                                  kr_xml_parser_error_text(s->parser));
}

bool kr_component_stream_deliver(kr_component_stream *s, const char *data, size_t len)
{
    if (!s->authed || kr_comp_closing(s))
        return false;
    s->o.io->send(s->o.ud, data, len);
    return true;
}

/* XEP-0199 §4.2: a ping from our domain; whatever comes back (a result, an error, any
 * bytes) shows the component is alive. */
static void kr_comp_ping(kr_component_stream *s, uint64_t now)
{
    kr_buf b = KR_BUF_INIT;
    kr_buf_printf(&b, "<iq type='get' id='kr-ping-%u' from='", ++s->pings);
    kr_xml_escape_attr(&b, s->o.server_domain, strlen(s->o.server_domain));
    kr_buf_puts(&b, "' to='");
    kr_xml_escape_attr(&b, s->domain, strlen(s->domain));
    kr_buf_puts(&b, "'><ping xmlns='urn:xmpp:ping'/></iq>");
    kr_comp_send(s, &b);
    s->ping_at = now;
}

void kr_component_stream_timer(kr_component_stream *s)
{
    if (kr_comp_closing(s))
        return;
    if (!s->authed) {
        kr_component_stream_error(s, "connection-timeout", "Authentication took too long");
        return;
    }
    uint64_t now = s->o.io->now(s->o.ud);
    uint64_t idle = (uint64_t)s->o.idle_timeout_s * 1000;
    uint64_t silent = now > s->last_read ? now - s->last_read : 0;
    if (silent >= idle) {
        KR_LOG(KR_LOG_WARN, s->o.log_ctx, "component %s silent for %u s: closing", s->domain,
               s->o.idle_timeout_s);
        kr_component_stream_error(s, "connection-timeout", "No answer to pings");
        return;
    }
    if (s->ping_at && s->last_read >= s->ping_at) /* loop time has ms granularity */
        s->ping_at = 0; /* the component spoke since: the ping is answered */
    if (silent >= idle / 2 && !s->ping_at) {
        kr_comp_ping(s, now);
        s->o.io->timer_set(s->o.ud, idle - silent);
        return;
    }
    s->o.io->timer_set(s->o.ud, silent < idle / 2 ? idle / 2 - silent : idle - silent);
}

kr_component_stream *kr_component_stream_new(const kr_component_opts *opts)
{
    kr_component_stream *s = kr_xcalloc(1, sizeof(*s));
    s->o = *opts;
    kr_xml_parser_cbs cbs = {kr_comp_stream_open, kr_comp_element, kr_comp_stream_close_cb};
    s->parser = kr_xml_parser_new(&s->o.limits, &cbs, s);
    s->last_read = s->o.io->now(s->o.ud);
    s->o.io->timer_set(s->o.ud, (uint64_t)s->o.auth_timeout_s * 1000);
    return s;
}

void kr_component_stream_free(kr_component_stream *s)
{
    if (!s)
        return;
    kr_xml_parser_free(s->parser);
    free(s->domain);
    free(s);
}
