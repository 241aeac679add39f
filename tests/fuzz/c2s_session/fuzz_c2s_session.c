/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * libFuzzer harness of kurierd's client stream protocol, the real code of
 * src/server/c2s_stream.c, with fakes for what it asks of the transport and
 * the server (kr_c2s_io): no sockets, TLS, router or modules. By default the
 * harness logs the fake client in first (direct TLS, PLAIN for
 * alice@example.com with the one password the fake store accepts, resource
 * "fuzz") and the input is what the bound session then sends; with byte 0
 * bit 0 the preamble stops after SASL and the input brings the header of the
 * restarted stream (and may bind, or not); with bit 1 the input drives the
 * stream from its first header (TLS already up), SASL and binding included. Each routed stanza is answered the way a module
 * or the router would (kr_stanza_iq_result for an iq get/set, a
 * service-unavailable error with text for the rest), as before.
 * Checks: everything the stream writes (stream level and stanzas delivered
 * to the session), concatenated with the routed stanzas and replies, parses
 * as one stream within the default limits (input is read with
 * kr_stanza_intake_limits, which leaves room for what the server adds); a
 * routed stanza carries the stamped sender alice@example.com/fuzz and exactly
 * one addressing and type bit; error replies the stream builds go back to
 * the sender with type='error'; a PREAUTH iq has no 'from' and the stream's
 * domain as 'to'; nothing is routed before the session is bound.
 * What this does not reach (tests/fuzz/README.md): conn.c and c2s.c (TLS,
 * rate limits, the real timers), the router, sessions and modules.
 * Served domains: example.com and localhost. Input: byte 0 bits 0 and 1 as
 * above; bytes 1-2 = seed of how the rest is split into feeds (0: one feed).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/error.h"
#include "core/log.h"
#include "server/c2s_stream.h"
#include "server/hosts.h"
#include "server/stanza.h"
#include "xml/parser.h"
#include "xml/serialize.h"

#define FUZZ_DOMAIN "example.com"
#define FUZZ_FULL "alice@example.com/fuzz"
#define FUZZ_PASSWORD "fuzz-password"
#define FUZZ_HEADER                                                                                \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "                                   \
    "xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0' "             \
    "xml:lang='en'>"
#define FUZZ_PREFIX 3
#define FUZZ_OWN_HEADER 1
#define FUZZ_FROM_START 2

typedef struct fuzz_client {
    kr_c2s_stream *s;
    kr_buf out;   /* what the server would write on this stream and to others, in order */
    bool closing;
    bool bound;
    bool authed;
    uint64_t now;
    uint64_t timer; /* when the armed timer fires, 0: none */
    char log_ctx[96];
    char full[3200]; /* the bound JID, as a session would keep it */
    kr_jid jid;
    char *jid_mem;
} fuzz_client;

static void fuzz_die(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_c2s_session: %s\n", what);
    if (detail)
        fprintf(stderr, "  %s\n", detail);
    abort();
}

static const kr_hosts *fuzz_hosts(void)
{
    static kr_hosts *hosts;
    if (!hosts) {
        hosts = kr_hosts_new();
        kr_hosts_add(hosts, FUZZ_DOMAIN, KR_HOST_USER, NULL, NULL, NULL);
        kr_hosts_add(hosts, "localhost", KR_HOST_USER, NULL, NULL, NULL);
    }
    return hosts;
}

static const kr_config *fuzz_config(void)
{
    static kr_config cfg;
    static bool made;
    if (!made) {
        kr_config_defaults(&cfg);
        made = true;
    }
    return &cfg;
}

static bool fuzz_one_bit(unsigned v)
{
    return v != 0 && (v & (v - 1)) == 0;
}

static void fuzz_emit(fuzz_client *c, const kr_xml_node *e)
{
    kr_xml_serialize(&c->out, e, KR_NS_CLIENT);
}

/* ---- the fakes ------------------------------------------------------------------------------ */

static void fuzz_io_send(void *ud, const char *data, size_t len)
{
    fuzz_client *c = ud;
    if (c->closing)
        fuzz_die("output after close", NULL);
    kr_buf_append(&c->out, data, len);
}

static void fuzz_io_deliver(void *ud, const char *data, size_t len, unsigned meta)
{
    fuzz_client *c = ud;
    if (!c->bound)
        fuzz_die("stanza delivered to a session that is not bound", NULL);
    if (!fuzz_one_bit(kr_stanza_meta_kind(meta)) || !fuzz_one_bit(kr_stanza_meta_type(meta)))
        fuzz_die("delivery without exactly one kind and type", NULL);
    fuzz_io_send(ud, data, len);
}

static void fuzz_io_close(void *ud)
{
    ((fuzz_client *)ud)->closing = true;
}

static bool fuzz_io_closing(void *ud)
{
    return ((fuzz_client *)ud)->closing;
}

static void fuzz_io_start_tls(void *ud)
{
    fuzz_die("STARTTLS on a stream that has TLS", NULL);
}

static void fuzz_io_cb_exporter(void *ud, kr_scram_cb_data *cb)
{
    memset(cb->tls_exporter, 0x5a, 32);
    cb->tls_exporter_len = 32;
}

static void fuzz_io_read_pause(void *ud, bool pause)
{
}

static void fuzz_io_timer_set(void *ud, uint64_t ms)
{
    fuzz_client *c = ud;
    c->timer = c->now + ms;
}

static uint64_t fuzz_io_now(void *ud)
{
    return ((fuzz_client *)ud)->now;
}

static void fuzz_io_trim(void *ud)
{
}

static void fuzz_io_opened(void *ud, const char *domain)
{
    if (!kr_hosts_find(fuzz_hosts(), domain))
        fuzz_die("stream opened for a domain we do not serve", domain);
}

static void fuzz_io_authenticated(void *ud, const char *local)
{
    fuzz_client *c = ud;
    if (c->authed)
        fuzz_die("authenticated twice", local);
    c->authed = true;
}

/* The fake store: alice exists with FUZZ_PASSWORD; everyone else does not. */
static void fuzz_io_auth(void *ud, kr_c2s_auth *j)
{
    fuzz_client *c = ud;
    bool alice = strcmp(j->jid, "alice@" FUZZ_DOMAIN) == 0;
    j->result = alice ? 0 : KR_ENOENT;
    if (j->password)
        j->plain_ok = alice && j->password_len == strlen(FUZZ_PASSWORD) &&
                      memcmp(j->password, FUZZ_PASSWORD, j->password_len) == 0;
    else if (alice)
        kr_scram_creds_fake(j->hash, j->jid, (const unsigned char *)"k", 1, 4096, &j->creds);
    kr_c2s_stream_auth_done(c->s, j);
}

static int fuzz_io_bind(void *ud, const char *resource, const char **full, const kr_jid **jid)
{
    fuzz_client *c = ud;
    if (!c->authed || c->bound)
        fuzz_die("bind out of order", resource);
    c->bound = true;
    snprintf(c->full, sizeof(c->full), "alice@" FUZZ_DOMAIN "/%s", resource);
    free(c->jid_mem);
    if (kr_jid_parse_keep(c->full, &c->jid, &c->jid_mem) != 0)
        fuzz_die("the bound JID does not parse", c->full);
    *full = c->full;
    *jid = &c->jid;
    return 0;
}

static void fuzz_io_intake(void *ud, kr_xml_node *elem, kr_arena *arena)
{
    kr_c2s_stream_process(((fuzz_client *)ud)->s, elem, arena);
}

static void fuzz_io_restarted(void *ud)
{
}

static void fuzz_check_error_reply(const kr_stanza *st)
{
    const char *type = kr_xml_attr_get(st->elem, "type");
    const char *to = kr_xml_attr_get(st->elem, "to");
    if (!type || strcmp(type, "error") != 0)
        fuzz_die("error reply without type='error'", type);
    if (!to || strcmp(to, FUZZ_FULL) != 0)
        fuzz_die("error reply not addressed to the sender", to);
    if (!kr_xml_child_get(st->elem, KR_NS_CLIENT, "error"))
        fuzz_die("error reply without <error/>", NULL);
}

/* A routed stanza, and the replies a module or the router would build for it. */
static void fuzz_io_stanza(void *ud, kr_stanza *st)
{
    fuzz_client *c = ud;
    if (!c->bound)
        fuzz_die("stanza routed before binding", NULL);
    if (!st->from.domain || strcmp(kr_jid_format(st->arena, &st->from), FUZZ_FULL) != 0)
        fuzz_die("decode lost the stamped sender", NULL);
    if (!fuzz_one_bit(st->addressing))
        fuzz_die("decode gave not exactly one addressing", NULL);
    if (!fuzz_one_bit(st->type))
        fuzz_die("decode gave not exactly one type", NULL);
    if (st->addressing != KR_ADDR_REMOTE && !st->host)
        fuzz_die("local addressing for a domain we do not serve", st->to.domain);
    if (st->to_absent && kr_xml_attr_get(st->elem, "to"))
        fuzz_die("to_absent with a 'to'", NULL);
    if (st->kind == KR_STANZA_IQ && (st->type & (KR_TYPE_GET | KR_TYPE_SET))) {
        kr_xml_node *r = kr_stanza_iq_result(st);
        const char *to = kr_xml_attr_get(r, "to");
        if (!to || strcmp(to, FUZZ_FULL) != 0)
            fuzz_die("iq result not addressed to the sender", to);
        fuzz_emit(c, r);
    }
    fuzz_emit(c, st->elem); /* as routed to its recipient */
    if (!(st->type & (KR_TYPE_ERROR | KR_TYPE_RESULT))) {
        kr_stanza_make_error(st, "service-unavailable", "No such recipient <here> & \"now\"",
                             NULL);
        fuzz_check_error_reply(st);
        fuzz_emit(c, st->elem);
    }
    kr_stanza_unref(st);
}

static void fuzz_io_preauth(void *ud, kr_stanza *st)
{
    fuzz_client *c = ud;
    if (kr_xml_attr_get(st->elem, "from") || st->addressing != KR_ADDR_HOST)
        fuzz_die("a PREAUTH iq with a 'from' or another addressee", NULL);
    fuzz_emit(c, st->elem);
    kr_stanza_unref(st);
}

static void fuzz_io_reply(void *ud, kr_stanza *st)
{
    fuzz_client *c = ud;
    fuzz_check_error_reply(st);
    fuzz_emit(c, st->elem);
    kr_stanza_unref(st);
}

static void fuzz_io_features(void *ud, bool authenticated, kr_buf *out)
{
    kr_buf_puts(out, authenticated ? "<ver xmlns='urn:xmpp:features:rosterver'/>"
                                   : "<register xmlns='http://jabber.org/features/iq-register'/>");
}

static const kr_c2s_io fuzz_io = {
    .send = fuzz_io_send,
    .deliver = fuzz_io_deliver,
    .close = fuzz_io_close,
    .closing = fuzz_io_closing,
    .start_tls = fuzz_io_start_tls,
    .cb_exporter = fuzz_io_cb_exporter,
    .read_pause = fuzz_io_read_pause,
    .timer_set = fuzz_io_timer_set,
    .now = fuzz_io_now,
    .trim = fuzz_io_trim,
    .opened = fuzz_io_opened,
    .authenticated = fuzz_io_authenticated,
    .auth = fuzz_io_auth,
    .bind = fuzz_io_bind,
    .intake = fuzz_io_intake,
    .restarted = fuzz_io_restarted,
    .stanza = fuzz_io_stanza,
    .preauth = fuzz_io_preauth,
    .reply = fuzz_io_reply,
    .features = fuzz_io_features,
};

/* ---- driving -------------------------------------------------------------------------------- */

static uint32_t fuzz_next(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

static void fuzz_feed(fuzz_client *c, const char *data, size_t len)
{
    if (!c->closing)
        kr_c2s_stream_feed(c->s, data, len);
}

/* Log in as alice: the first header, PLAIN, then (unless the input brings its own header
 * for the stream after SASL) that header and the bind. */
static void fuzz_login(fuzz_client *c, bool own_header)
{
    fuzz_feed(c, FUZZ_HEADER, strlen(FUZZ_HEADER));
    static const char creds[] = "\0alice\0" FUZZ_PASSWORD;
    kr_buf auth = KR_BUF_INIT;
    kr_buf_puts(&auth, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>");
    kr_base64_encode(&auth, creds, sizeof(creds) - 1);
    kr_buf_puts(&auth, "</auth>");
    fuzz_feed(c, auth.data, auth.len);
    kr_buf_clear(&auth);
    if (!c->authed)
        fuzz_die("the PLAIN login of the preamble failed", NULL);
    if (own_header)
        return;
    fuzz_feed(c, FUZZ_HEADER, strlen(FUZZ_HEADER));
    static const char bind[] = "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:"
                               "xmpp-bind'><resource>fuzz</resource></bind></iq>";
    fuzz_feed(c, bind, sizeof(bind) - 1);
    if (!c->bound)
        fuzz_die("the bind of the preamble failed", NULL);
}

/* Everything written, as one stream, must be well-formed and fit the default limits, though
 * the server stamped 'from' or built an error reply (crashes/message-64-attributes-plus-from
 * once broke this). Stream headers and restarts are in the output: read it with a parser
 * that accepts the restarts by splitting at each header we wrote. */
static void fuzz_check_output(const fuzz_client *c)
{
    kr_xml_limits lim = KR_XML_LIMITS_DEFAULT;
    const char *marker = "<?xml version='1.0'?>";
    const char *p = c->out.data ? c->out.data : "";
    const char *end = p + c->out.len;
    while (p < end) {
        const char *next = strstr(p + 1, marker);
        size_t n = (size_t)((next ? next : end) - p);
        kr_buf doc = KR_BUF_INIT;
        if (strncmp(p, marker, strlen(marker)) != 0)
            kr_buf_puts(&doc, "<stream:stream xmlns='jabber:client' "
                              "xmlns:stream='http://etherx.jabber.org/streams'>");
        kr_buf_append(&doc, p, n);
        if (!strstr(doc.data, "</stream:stream>"))
            kr_buf_puts(&doc, "</stream:stream>");
        kr_xml_parser *x = kr_xml_parser_new(&lim, NULL, NULL);
        if (kr_xml_parser_feed(x, doc.data, doc.len) != 0) {
            fprintf(stderr, "  output: %s\n", doc.data);
            fuzz_die("server output is not a well-formed stream", kr_xml_parser_error_text(x));
        }
        kr_xml_parser_free(x);
        kr_buf_clear(&doc);
        p += n;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < FUZZ_PREFIX)
        return 0;
    kr_log_set_level(KR_LOG_ERROR);
    fuzz_client c = {.out = KR_BUF_INIT, .now = 1000};
    snprintf(c.log_ctx, sizeof(c.log_ctx), "c2s fuzz");
    kr_c2s_opts o = {
        .io = &fuzz_io,
        .ud = &c,
        .cfg = fuzz_config(),
        .hosts = fuzz_hosts(),
        .secret = (const unsigned char *)"fuzz secret",
        .secret_len = 11,
        .peer_ip = "192.0.2.1",
        .log_ctx = c.log_ctx,
        .log_ctx_len = sizeof(c.log_ctx),
    };
    c.s = kr_c2s_stream_new(&o);
    kr_scram_cb_data cb;
    memset(&cb, 0, sizeof(cb));
    memset(cb.tls_server_end_point, 0xa5, 32);
    cb.tls_server_end_point_len = 32;
    kr_c2s_stream_tls_ready(c.s, &cb, true, "TLSv1.3");
    if (!(data[0] & FUZZ_FROM_START))
        fuzz_login(&c, data[0] & FUZZ_OWN_HEADER);
    uint32_t seed = (uint32_t)data[1] | (uint32_t)data[2] << 8;
    uint32_t x = seed | 1;
    size_t off = FUZZ_PREFIX;
    while (off < size && !c.closing) {
        size_t n = size - off;
        if (seed != 0) {
            size_t want = 1 + fuzz_next(&x) % 64;
            if (want < n)
                n = want;
        }
        fuzz_feed(&c, (const char *)data + off, n);
        off += n;
    }
    if (c.timer && !c.closing) { /* one tick of the stream's timer: trim, ping or time out */
        c.now = c.timer;
        kr_c2s_stream_timer(c.s);
    }
    fuzz_check_output(&c);
    kr_c2s_stream_free(c.s);
    free(c.jid_mem);
    kr_buf_clear(&c.out);
    return 0;
}
