/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * libFuzzer harness of the streaming XMPP parser (src/xml/parser.c) and the
 * serializer (src/xml/serialize.c). The first five input bytes choose small
 * limits (kr_xml_limits), how the rest is split into kr_xml_parser_feed()
 * calls, and two switches: put a standard c2s stream header in front, and
 * treat <proceed/> and <success/> as a stream restart (kr_xml_parser_stop()
 * from the callback, kr_xml_parser_reset() after the feed, as c2s does for
 * RFC 6120 §5.4.3.3 and §6.4.6). The rest is the stream.
 * Every delivered stanza is serialized with the stream's default namespace as
 * parent namespace and parsed again inside a synthetic stream; that must give
 * exactly one stanza whose serialization is byte for byte the first one
 * (RFC 6120 §11: what we send must be well-formed restricted XML that reads
 * back as what we meant). Anything else is a serializer bug and aborts.
 * Owns nothing across inputs; every arena and parser is freed per input so
 * LeakSanitizer checks the parser's ownership rules.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/error.h"
#include "xml/parser.h"
#include "xml/serialize.h"

#define FUZZ_NS_STREAMS "http://etherx.jabber.org/streams"
#define FUZZ_HEADER                                                                                \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "                                   \
    "xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0' "             \
    "xml:lang='en'>"
#define FUZZ_PREFIX 5

typedef struct fuzz_stream {
    kr_xml_parser *p;
    kr_xml_limits limits;
    char *default_ns; /* of the current stream header, or NULL before one */
    bool restarts;    /* <proceed/> and <success/> restart the stream */
    bool restart;     /* a restart is due after the current feed */
    unsigned stanzas;
} fuzz_stream;

/* What the re-parse of one serialized stanza collects. */
typedef struct fuzz_reparse {
    const char *parent_ns;
    unsigned stanzas;
    kr_buf again; /* serialization of the re-parsed stanza */
} fuzz_reparse;

static void fuzz_fail(const char *what, const kr_buf *first, const kr_buf *second)
{
    fprintf(stderr, "fuzz_xml_parser: %s\n", what);
    if (first && first->data)
        fprintf(stderr, "  serialized: %s\n", first->data);
    if (second && second->data)
        fprintf(stderr, "  re-parsed:  %s\n", second->data);
    abort();
}

static void fuzz_reparse_stanza(void *ud, kr_xml_node *elem, kr_arena *arena)
{
    fuzz_reparse *r = ud;
    r->stanzas++;
    if (r->stanzas == 1)
        kr_xml_serialize(&r->again, elem, r->parent_ns);
    kr_arena_free(arena);
}

/* Serialize, parse back in a stream declaring the same default namespace, compare. */
static void fuzz_roundtrip(const fuzz_stream *s, const kr_xml_node *elem)
{
    const char *parent_ns = s->default_ns ? s->default_ns : "";
    kr_buf ser = KR_BUF_INIT;
    kr_xml_serialize(&ser, elem, parent_ns);
    if (ser.len == 0)
        fuzz_fail("empty serialization", NULL, NULL);

    kr_buf doc = KR_BUF_INIT;
    kr_buf_puts(&doc, "<stream:stream xmlns:stream='" FUZZ_NS_STREAMS "'");
    if (parent_ns[0]) {
        kr_buf_puts(&doc, " xmlns='");
        kr_xml_escape_attr(&doc, parent_ns, strlen(parent_ns));
        kr_buf_puts(&doc, "'");
    }
    kr_buf_puts(&doc, ">");
    size_t header_len = doc.len;
    kr_buf_append(&doc, ser.data, ser.len);
    kr_buf_puts(&doc, "</stream:stream>");

    /* Escaping may make the text longer than the original, so the size limit is the
     * serialization's exact length (or the header's: the stream header counts against it
     * too); depth and attributes must fit the limits the original passed (namespace
     * declarations do not count as attributes). */
    kr_xml_limits lim = s->limits;
    lim.max_stanza_bytes = ser.len > header_len ? ser.len : header_len;
    fuzz_reparse r = {.parent_ns = parent_ns, .stanzas = 0, .again = KR_BUF_INIT};
    kr_xml_parser_cbs cbs = {.stanza = fuzz_reparse_stanza};
    kr_xml_parser *p = kr_xml_parser_new(&lim, &cbs, &r);
    int rc = kr_xml_parser_feed(p, doc.data, doc.len);
    if (rc != 0) {
        fprintf(stderr, "  error: %s\n", kr_xml_parser_error_text(p));
        fuzz_fail("serialization does not parse again", &ser, NULL);
    }
    if (r.stanzas != 1)
        fuzz_fail("serialization does not parse as exactly one stanza", &ser, &r.again);
    if (r.again.len != ser.len || memcmp(r.again.data, ser.data, ser.len) != 0)
        fuzz_fail("re-parsed stanza serializes differently", &ser, &r.again);
    kr_xml_parser_free(p);
    kr_buf_clear(&r.again);
    kr_buf_clear(&doc);
    kr_buf_clear(&ser);
}

static void fuzz_on_open(void *ud, const kr_xml_stream_header *hdr)
{
    fuzz_stream *s = ud;
    if (!hdr->elem || !hdr->default_ns || !hdr->elem->ns || !hdr->elem->name)
        abort();
    free(s->default_ns);
    s->default_ns = strdup(hdr->default_ns);
}

static void fuzz_on_stanza(void *ud, kr_xml_node *elem, kr_arena *arena)
{
    fuzz_stream *s = ud;
    s->stanzas++;
    if (elem->type != KR_XML_ELEMENT || elem->parent)
        abort();
    fuzz_roundtrip(s, elem);
    if (s->restarts && (strcmp(elem->name, "proceed") == 0 || strcmp(elem->name, "success") == 0)) {
        kr_xml_parser_stop(s->p);
        s->restart = true;
    }
    kr_arena_free(arena);
}

static void fuzz_on_close(void *ud)
{
}

/* xorshift32: chunk lengths from the input's seed, so a crash replays identically. */
static uint32_t fuzz_next(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

static void fuzz_feed_all(fuzz_stream *s, const char *data, size_t len, uint32_t seed,
                          size_t max_chunk)
{
    uint32_t x = seed | 1;
    size_t off = 0;
    while (off < len) {
        size_t n = len - off;
        if (seed != 0) {
            size_t want = 1 + fuzz_next(&x) % max_chunk;
            if (want < n)
                n = want;
        }
        int rc = kr_xml_parser_feed(s->p, data + off, n);
        off += n;
        if (rc == KR_ESTOPPED && s->restart) {
            s->restart = false;
            kr_xml_parser_reset(s->p);
            free(s->default_ns);
            s->default_ns = NULL;
            continue;
        }
        if (rc != 0) {
            if (rc != KR_EPARSE && rc != KR_ESTOPPED)
                abort();
            if (rc == KR_EPARSE && kr_xml_parser_error(s->p) == KR_XML_OK)
                abort(); /* broken stream without a reason */
            /* A broken stream stays broken. */
            if (kr_xml_parser_feed(s->p, "<a/>", 4) != rc)
                abort();
            return;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < FUZZ_PREFIX)
        return 0;
    fuzz_stream s = {0};
    s.limits.max_depth = 2 + (data[0] & 0x0f);
    s.limits.max_attrs = 1 + (data[0] >> 4);
    s.limits.max_stanza_bytes = (size_t)128 << (data[1] & 0x07); /* the header counts too */
    uint32_t seed = (uint32_t)data[2] | (uint32_t)data[3] << 8;
    size_t max_chunk = 1 + (data[1] >> 3); /* 1..32 bytes per feed */
    bool header = data[4] & 1;
    s.restarts = data[4] & 2;

    kr_xml_parser_cbs cbs = {
        .stream_open = fuzz_on_open, .stanza = fuzz_on_stanza, .stream_close = fuzz_on_close};
    s.p = kr_xml_parser_new(&s.limits, &cbs, &s);
    kr_buf in = KR_BUF_INIT;
    if (header)
        kr_buf_puts(&in, FUZZ_HEADER);
    kr_buf_append(&in, data + FUZZ_PREFIX, size - FUZZ_PREFIX);
    fuzz_feed_all(&s, in.data, in.len, seed, max_chunk);
    kr_buf_clear(&in);
    kr_xml_parser_free(s.p);
    free(s.default_ns);
    return 0;
}
