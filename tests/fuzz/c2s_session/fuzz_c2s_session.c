/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * libFuzzer harness of what a logged-in client's bytes go through in kurierd
 * (the "bound" stage of src/server/c2s.c), without sockets, TLS, the router
 * or modules: kr_xml_parser with the server's default limits -> the same
 * checks as kr_c2s_stage_stanza (a non-stanza is a stream error that ends
 * the stream; 'from' stamped with the session's full JID, RFC 6120 §8.1.2.1;
 * the RFC 3921 session iq answered) -> kr_stanza_decode -> on a decode error
 * kr_stanza_make_error from our domain (RFC 6120 §8.3.1), otherwise the
 * replies a module or the router builds for it (kr_stanza_iq_result for an
 * iq get/set, a service-unavailable error with text for anything that is
 * not itself an error or result) and the routed stanza itself -> serialize.
 * Checks: decode keeps the stamped sender and gives exactly one addressing
 * bit; everything the server would write to clients, concatenated and
 * wrapped in a stream, parses within the default limits (input is read with
 * kr_stanza_intake_limits, like c2s.c, which leaves room for what is added); every
 * error reply goes back to the sender with type='error'.
 * What this does not reach (tests/fuzz/README.md): conn.c/c2s.c themselves
 * (TLS, SASL, bind, rate limits, timers), the router, sessions and modules.
 * The fake session is alice@example.com/fuzz; served domains example.com and
 * localhost. Input: byte 0 bit 0 = the input brings its own stream header
 * (else a standard one is put in front); bytes 1-2 = seed of how the rest is
 * split into feeds (0: one feed).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/error.h"
#include "server/stanza.h"
#include "xml/parser.h"
#include "xml/serialize.h"

#define FUZZ_DOMAIN "example.com"
#define FUZZ_FULL "alice@example.com/fuzz"
#define FUZZ_HEADER                                                                                \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "                                   \
    "xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0' "             \
    "xml:lang='en'>"
#define FUZZ_PREFIX 3

typedef struct fuzz_session {
    kr_xml_parser *p;
    kr_buf out;   /* what the server would send on this stream and others, in order */
    bool ended;   /* a stream error was written */
    unsigned stanzas;
} fuzz_session;

static void fuzz_die(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_c2s_session: %s\n", what);
    if (detail)
        fprintf(stderr, "  %s\n", detail);
    abort();
}

static bool fuzz_served(void *ud, const char *domain)
{
    return strcmp(domain, FUZZ_DOMAIN) == 0 || strcmp(domain, "localhost") == 0;
}

static void fuzz_emit(fuzz_session *s, const kr_xml_node *e)
{
    kr_xml_serialize(&s->out, e, KR_NS_CLIENT);
}

/* in_callback: stop the parser too (only allowed from inside a callback). */
static void fuzz_stream_error(fuzz_session *s, const char *condition, const char *text,
                              bool in_callback)
{
    if (s->ended)
        return; /* c2s writes nothing once closing */
    kr_stream_error_write(&s->out, condition, text);
    s->ended = true;
    if (in_callback)
        kr_xml_parser_stop(s->p);
}

static bool fuzz_one_bit(unsigned v)
{
    return v != 0 && (v & (v - 1)) == 0;
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

/* The replies a module or the router would build for a well-formed stanza. */
static void fuzz_replies(fuzz_session *s, kr_stanza *st)
{
    if (st->kind == KR_STANZA_IQ && (st->type & (KR_TYPE_GET | KR_TYPE_SET))) {
        kr_xml_node *r = kr_stanza_iq_result(st);
        const char *to = kr_xml_attr_get(r, "to");
        if (!to || strcmp(to, FUZZ_FULL) != 0)
            fuzz_die("iq result not addressed to the sender", to);
        fuzz_emit(s, r);
    }
    fuzz_emit(s, st->elem); /* as routed to its recipient */
    if (!(st->type & (KR_TYPE_ERROR | KR_TYPE_RESULT))) {
        kr_stanza_make_error(st, "service-unavailable", "No such recipient <here> & \"now\"",
                             NULL);
        fuzz_check_error_reply(st);
        fuzz_emit(s, st->elem);
    }
}

static void fuzz_stanza(fuzz_session *s, kr_xml_node *e, kr_arena *a)
{
    bool is_stanza = strcmp(e->ns, KR_NS_CLIENT) == 0 &&
                     (strcmp(e->name, "message") == 0 || strcmp(e->name, "presence") == 0 ||
                      strcmp(e->name, "iq") == 0);
    if (!is_stanza) {
        bool misplaced = strcmp(e->name, "message") == 0 || strcmp(e->name, "presence") == 0 ||
                         strcmp(e->name, "iq") == 0;
        fuzz_stream_error(s, misplaced ? "invalid-namespace" : "unsupported-stanza-type", NULL,
                          true);
        return;
    }
    kr_xml_attr_set(a, e, "from", FUZZ_FULL);
    const char *id = kr_xml_attr_get(e, "id");
    kr_xml_node *first = kr_xml_first_elem(e);
    if (!kr_xml_attr_get(e, "to") && strcmp(e->name, "iq") == 0 && first &&
        strcmp(first->ns, KR_NS_SESSION) == 0 && id) {
        kr_buf_puts(&s->out, "<iq type='result' id='");
        kr_xml_escape_attr(&s->out, id, strlen(id));
        kr_buf_puts(&s->out, "'/>");
        return;
    }
    kr_stanza st;
    const char *bad = kr_stanza_decode(&st, e, a, fuzz_served, NULL);
    if (bad) {
        if (!(st.type & (KR_TYPE_ERROR | KR_TYPE_RESULT))) {
            kr_stanza_make_error(&st, bad, NULL, FUZZ_DOMAIN);
            fuzz_check_error_reply(&st);
            fuzz_emit(s, st.elem);
        }
        return;
    }
    if (!st.from.domain || strcmp(kr_jid_format(a, &st.from), FUZZ_FULL) != 0)
        fuzz_die("decode lost the stamped sender", NULL);
    if (!fuzz_one_bit(st.addressing))
        fuzz_die("decode gave not exactly one addressing", NULL);
    if (!fuzz_one_bit(st.type))
        fuzz_die("decode gave not exactly one type", NULL);
    if (st.addressing != KR_ADDR_REMOTE && (!st.to.domain || !fuzz_served(NULL, st.to.domain)))
        fuzz_die("local addressing for a domain we do not serve", st.to.domain);
    if (st.to_absent && kr_xml_attr_get(e, "to"))
        fuzz_die("to_absent with a 'to'", NULL);
    fuzz_replies(s, &st);
}

static void fuzz_on_stanza(void *ud, kr_xml_node *e, kr_arena *a)
{
    fuzz_session *s = ud;
    s->stanzas++;
    if (!s->ended)
        fuzz_stanza(s, e, a);
    kr_arena_free(a);
}

static void fuzz_on_close(void *ud)
{
    fuzz_session *s = ud;
    if (!s->ended)
        kr_buf_puts(&s->out, "</stream:stream>");
    s->ended = true;
    kr_xml_parser_stop(s->p); /* as kr_c2s_stream_close: the connection closes */
}

static uint32_t fuzz_next(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

/* Everything written to clients, as one stream, must be well-formed and fit the server's
 * default limits, though the server stamped 'from' or built an error reply
 * (crashes/message-64-attributes-plus-from once broke this). */
static void fuzz_check_output(const fuzz_session *s)
{
    kr_xml_limits lim = KR_XML_LIMITS_DEFAULT;
    kr_buf doc = KR_BUF_INIT;
    kr_buf_puts(&doc, "<stream:stream xmlns='jabber:client' "
                      "xmlns:stream='http://etherx.jabber.org/streams'>");
    kr_buf_append(&doc, s->out.data, s->out.len);
    if (!s->ended)
        kr_buf_puts(&doc, "</stream:stream>");
    kr_xml_parser *p = kr_xml_parser_new(&lim, NULL, NULL);
    if (kr_xml_parser_feed(p, doc.data, doc.len) != 0) {
        fprintf(stderr, "  output: %s\n", doc.data);
        fuzz_die("server output is not a well-formed stream", kr_xml_parser_error_text(p));
    }
    kr_xml_parser_free(p);
    kr_buf_clear(&doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < FUZZ_PREFIX)
        return 0;
    fuzz_session s = {.out = KR_BUF_INIT};
    kr_xml_limits def = KR_XML_LIMITS_DEFAULT;
    kr_xml_limits lim = kr_stanza_intake_limits(def.max_stanza_bytes, def.max_depth, def.max_attrs);
    kr_xml_parser_cbs cbs = {.stanza = fuzz_on_stanza, .stream_close = fuzz_on_close};
    s.p = kr_xml_parser_new(&lim, &cbs, &s);
    kr_buf in = KR_BUF_INIT;
    if (!(data[0] & 1))
        kr_buf_puts(&in, FUZZ_HEADER);
    kr_buf_append(&in, data + FUZZ_PREFIX, size - FUZZ_PREFIX);

    uint32_t seed = (uint32_t)data[1] | (uint32_t)data[2] << 8;
    uint32_t x = seed | 1;
    size_t off = 0;
    while (off < in.len && !s.ended) {
        size_t n = in.len - off;
        if (seed != 0) {
            size_t want = 1 + fuzz_next(&x) % 64;
            if (want < n)
                n = want;
        }
        int rc = kr_xml_parser_feed(s.p, in.data + off, n);
        off += n;
        if (rc == KR_EPARSE) {
            fuzz_stream_error(&s, kr_xml_error_condition(kr_xml_parser_error(s.p)),
                              kr_xml_parser_error_text(s.p), false);
            break;
        }
        if (rc != 0 && rc != KR_ESTOPPED)
            fuzz_die("unexpected return from kr_xml_parser_feed", NULL);
    }
    fuzz_check_output(&s);
    kr_buf_clear(&in);
    kr_buf_clear(&s.out);
    kr_xml_parser_free(s.p);
    return 0;
}
