/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Streaming XML parser for XMPP streams, on expat with namespace processing.
 * It reports the stream header, each complete top-level element (a stanza or
 * a negotiation element such as <starttls/>) as a tree in its own arena, and
 * the stream's end. It enforces RFC 6120 §11: no DTD, no entity declarations,
 * no processing instructions, no comments; only UTF-8; and the limits in
 * kr_xml_limits, so a hostile peer cannot make it allocate without bound.
 * Input may be split anywhere, down to one byte per kr_xml_parser_feed().
 */
#ifndef KR_XML_PARSER_H
#define KR_XML_PARSER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/arena.h"
#include "xml/tree.h"

typedef struct kr_xml_limits {
    size_t max_stanza_bytes; /* bytes of one top-level element, from its '<' to its end */
    unsigned max_depth;      /* nesting inside a stanza; the stanza itself is depth 1 */
    unsigned max_attrs;      /* attributes (not counting xmlns declarations) per element */
} kr_xml_limits;

#define KR_XML_LIMITS_DEFAULT {262144, 64, 64}

/** Why parsing stopped; maps one to one to stream error conditions of RFC 6120 §4.9.3. */
typedef enum kr_xml_error {
    KR_XML_OK = 0,
    KR_XML_NOT_WELL_FORMED,    /* <not-well-formed/>: syntax, invalid UTF-8, NUL, bad token */
    KR_XML_RESTRICTED,         /* <restricted-xml/>: DTD, entity decl, PI, comment */
    KR_XML_POLICY_VIOLATION,   /* <policy-violation/>: a limit was exceeded */
    KR_XML_BAD_FORMAT,         /* <bad-format/>: non-whitespace text at stream level */
    KR_XML_UNSUPPORTED_ENCODING, /* <unsupported-encoding/>: declared non-UTF-8 encoding */
} kr_xml_error;

/** The RFC 6120 §4.9.3 stream error condition for e ("not-well-formed" for KR_XML_OK, which
 * callers do not ask about). Static storage. */
const char *kr_xml_error_condition(kr_xml_error e);

/** The opening <stream:stream> tag: its ns/name/attrs (attrs include none of the xmlns
 * declarations), and the default namespace it declared ("" if none). The node and
 * strings are valid only during the callback. */
typedef struct kr_xml_stream_header {
    const kr_xml_node *elem;
    const char *default_ns;
} kr_xml_stream_header;

typedef struct kr_xml_parser_cbs {
    /* Stream header seen. */
    void (*stream_open)(void *ud, const kr_xml_stream_header *hdr);
    /* One complete top-level element. Ownership of `arena` (which holds `elem`) moves to
     * the callee, who must kr_arena_free() it eventually. */
    void (*stanza)(void *ud, kr_xml_node *elem, kr_arena *arena);
    /* </stream:stream> seen. */
    void (*stream_close)(void *ud);
} kr_xml_parser_cbs;

typedef struct kr_xml_parser kr_xml_parser;

/** New parser for one stream; limits and cbs are copied. limits may be NULL for
 * KR_XML_LIMITS_DEFAULT; cbs may be NULL and any callback may be NULL (a stanza nobody
 * takes is freed). Callbacks must not free the parser. */
kr_xml_parser *kr_xml_parser_new(const kr_xml_limits *limits, const kr_xml_parser_cbs *cbs,
                                 void *ud);
void kr_xml_parser_free(kr_xml_parser *p);

/**
 * Feed bytes. Callbacks run synchronously from inside this call.
 * Returns 0 when all bytes were consumed; KR_EPARSE when the stream is broken (then
 * kr_xml_parser_error() says why and kr_xml_parser_error_text() gives a short English
 * reason; every later feed returns KR_EPARSE again); KR_ESTOPPED when a callback called
 * kr_xml_parser_stop() (the rest of this input is dropped, and later feeds return
 * KR_ESTOPPED until kr_xml_parser_reset()).
 * A stanza is delivered from the feed that brings its last byte, however the input was
 * split; input is handed to expat in pieces of at most 64 KiB, so what expat buffers of
 * an unfinished token stays within max_stanza_bytes plus 64 KiB.
 */
int kr_xml_parser_feed(kr_xml_parser *p, const char *data, size_t len);

/**
 * Feed one read of a stream, as every stream's reading side does: kr_xml_parser_feed() over
 * pieces of at most 64 KiB, no further once closing(arg) says the stream is ending.
 * *in_feed is true while the parser runs, so a callback that restarts the stream (after
 * STARTTLS or SASL, RFC 6120 §5.4.3.3 and §6.4.6) sets *restart and stops the parser instead
 * of resetting it from inside; the reset is done here when the feed returns and the stream
 * is still open. Returns 0, KR_EPARSE (the caller ends the stream with
 * kr_xml_error_condition()) or KR_ESTOPPED (the rest of this read is dropped: a peer must
 * wait for our answer before it sends more).
 */
int kr_xml_parser_feed_stream(kr_xml_parser *p, const char *data, size_t len, bool *in_feed,
                              bool *restart, bool (*closing)(void *arg), void *arg);

/** Called from a callback: stop after it returns and drop the rest of the current input
 * (used on stream restart after STARTTLS/SASL and on fatal errors). */
void kr_xml_parser_stop(kr_xml_parser *p);

/** Start a new stream on the same parser (RFC 6120 §4.3.3 restart): the next bytes must
 * begin with a stream header. Drops any partial stanza and clears a stop or an error.
 * Must not be called from inside a callback. */
void kr_xml_parser_reset(kr_xml_parser *p);

/** Between stanzas of an open stream, give back expat's parser, the text buffer and the
 * header arena (about 12 KiB) until the next feed, which rebuilds them by replaying the
 * stream header's bytes (a few µs). True if trimmed; false (nothing changes) inside a
 * stanza or a token, before the stream header, after the stream closed or an error.
 * Must not be called from inside a callback. */
bool kr_xml_parser_trim(kr_xml_parser *p);

kr_xml_error kr_xml_parser_error(const kr_xml_parser *p);
const char *kr_xml_parser_error_text(const kr_xml_parser *p);

#endif
