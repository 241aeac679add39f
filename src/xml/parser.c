/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Streaming XMPP parser on expat (see parser.h). It owns one expat parser
 * created with namespace processing and UTF-8 forced, a scratch arena for the
 * stream header, the arena of the stanza being built (handed to the `stanza`
 * callback when the stanza is complete, freed on error, reset and free) and a
 * buffer that merges adjacent character data into one text node.
 * Invariants: depth 0 is before the stream header, 1 inside <stream:stream>,
 * 2 the stanza element; `arena` is non-NULL exactly while depth >= 2; once
 * `error` is set or `stopped` is true no handler touches the tree again.
 * Size accounting uses absolute stream byte offsets: `boundary` is where the
 * current top-level element began, or where the last thing consumed at stream
 * level ended, so the bytes of one stanza (or of stream-level padding) are
 * counted exactly wherever the input was split, and expat's buffer of an
 * unfinished token never exceeds max_stanza_bytes plus one feed chunk.
 * Expat's reparse deferral is switched per chunk (kr_xml_feed_chunk) so that
 * a stanza is delivered by the feed that completes it.
 * Idle streams (kr_xml_parser_trim) give expat back: between stanzas the only
 * state expat holds is the open stream element and its namespace
 * declarations, so the parser keeps the header's raw bytes and, when bytes
 * arrive again, replays them into a new expat parser with callbacks muted;
 * `idx_base` maps the new parser's byte indexes back to stream offsets.
 * Implements RFC 6120 §4.2-§4.4 (stream open/close, restart), §4.9.3 (the
 * stream error conditions of kr_xml_error) and §11 (restricted XML: no DTD,
 * entity declaration, processing instruction or comment; UTF-8 only).
 */
#include "xml/parser.h"

#include <assert.h>
#include <expat.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/error.h"

/* Between namespace URI and local name in the names expat reports. U+0001 is not an
 * XML 1.0 character, so it cannot occur in a URI or name (not even as &#1;). */
#define KR_XML_NS_SEP '\x01'
/* Largest piece handed to expat at once: bounds what it can buffer past the limit. */
#define KR_XML_FEED_CHUNK 65536
/* First block of a stanza arena: a typical message tree fits without a second malloc. */
#define KR_XML_STANZA_ARENA 2048
/* The text buffer is released after a stanza that made it grow beyond this. */
#define KR_XML_TEXT_KEEP 65536

/* States of the pre-lexer. It follows just enough of XML's lexical structure, in one pass
 * over each byte, to see where a markup token (tag, comment, PI, CDATA section end, DTD
 * declaration, entity reference) can end. Character data is not a token for expat: it is
 * reported as it arrives. */
enum kr_xml_lex {
    KR_LEX_TEXT,    /* character data, or between tokens */
    KR_LEX_LT,      /* just after '<' */
    KR_LEX_TAG,     /* in a start or end tag, outside quotes */
    KR_LEX_TAG_Q,   /* in a quoted attribute value */
    KR_LEX_BANG,    /* just after "<!" */
    KR_LEX_COMMENT, /* "<!-" ... until "-->" */
    KR_LEX_CDATA,   /* "<![" ... until "]]>" */
    KR_LEX_DECL,    /* "<!DOCTYPE" and the like, until '>' or '[' */
    KR_LEX_DECL_Q,  /* a quoted literal in a declaration */
    KR_LEX_PI,      /* "<?" ... until "?>" */
    KR_LEX_REF,     /* '&' ... until ';' */
};

struct kr_xml_parser {
    XML_Parser xp;
    kr_xml_limits limits;
    kr_xml_parser_cbs cbs;
    void *ud;

    kr_arena *hdr_arena;    /* stream header node and default_ns; reset after stream_open */
    const char *default_ns; /* declared on the stream header, in hdr_arena, or NULL */

    kr_arena *arena;  /* stanza being built, or NULL */
    kr_xml_node *cur; /* innermost open element of that stanza */
    kr_buf text;      /* character data of cur not yet made a node */

    /* Pre-lexer: where in the markup the bytes fed so far end (see kr_xml_scan). */
    unsigned char lex;       /* a kr_xml_lex value */
    unsigned char lex_quote; /* closing quote while in a quoted literal */
    unsigned char lex_run;   /* '-', ']' or '?' just before, for "-->", "]]>", "?>" */

    unsigned depth;
    uint64_t fed;          /* bytes given to expat since the stream began */
    int64_t idx_base;      /* stream offset of expat's byte index 0 (nonzero after a replay) */
    char *hdr_raw;         /* the stream header's start tag as received, or NULL */
    size_t hdr_raw_len;
    bool replaying;        /* feeding hdr_raw to a new expat parser: callbacks stay quiet */
    uint64_t boundary;     /* see the file comment */
    bool closed;           /* </stream:stream> seen */
    bool stopped;          /* kr_xml_parser_stop() was called */
    kr_xml_error error;
    char error_text[96];
};

static bool kr_xml_halted(const kr_xml_parser *p)
{
    return p->stopped || p->error != KR_XML_OK;
}

static void kr_xml_drop_stanza(kr_xml_parser *p)
{
    kr_arena_free(p->arena);
    p->arena = NULL;
    p->cur = NULL;
    p->text.len = 0;
}

static void kr_xml_fail(kr_xml_parser *p, kr_xml_error err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Record the first failure and stop expat; later events are ignored by every handler.
 * After kr_xml_parser_stop() nothing is a failure any more: the input is being dropped. */
static void kr_xml_fail(kr_xml_parser *p, kr_xml_error err, const char *fmt, ...)
{
    if (kr_xml_halted(p))
        return;
    p->error = err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->error_text, sizeof(p->error_text), fmt, ap);
    va_end(ap);
    XML_StopParser(p->xp, XML_FALSE);
    kr_xml_drop_stanza(p);
}

/* End offset of the event being reported. */
static uint64_t kr_xml_event_start(const kr_xml_parser *p)
{
    return (uint64_t)((int64_t)XML_GetCurrentByteIndex(p->xp) + p->idx_base);
}

static uint64_t kr_xml_event_end(const kr_xml_parser *p)
{
    return kr_xml_event_start(p) + (uint64_t)XML_GetCurrentByteCount(p->xp);
}

/* Keep the raw bytes of the stream header's start tag for a later replay (see the file
 * comment). Expat shows them only while they are in its buffer: without its context
 * bytes the header is not kept and the stream is never trimmed. */
static void kr_xml_keep_header(kr_xml_parser *p)
{
    free(p->hdr_raw);
    p->hdr_raw = NULL;
    p->hdr_raw_len = 0;
    int offset = 0, size = 0;
    const char *ctx = XML_GetInputContext(p->xp, &offset, &size);
    int count = XML_GetCurrentByteCount(p->xp);
    if (!ctx || count <= 0 || offset < 0 || offset + count > size)
        return;
    p->hdr_raw = kr_xmalloc((size_t)count);
    memcpy(p->hdr_raw, ctx + offset, (size_t)count);
    p->hdr_raw_len = (size_t)count;
}

static bool kr_xml_check_size(kr_xml_parser *p, uint64_t end)
{
    if (end - p->boundary <= p->limits.max_stanza_bytes)
        return true;
    kr_xml_fail(p, KR_XML_POLICY_VIOLATION, "stanza exceeds %zu bytes",
                p->limits.max_stanza_bytes);
    return false;
}

static bool kr_xml_check_attrs(kr_xml_parser *p, const XML_Char **atts, unsigned *count)
{
    unsigned n = 0;
    while (atts[2 * n])
        n++;
    *count = n;
    if (n <= p->limits.max_attrs)
        return true;
    kr_xml_fail(p, KR_XML_POLICY_VIOLATION, "element has more than %u attributes",
                p->limits.max_attrs);
    return false;
}

/* Namespace part of an expat name as an arena string: "" and the XML namespace are
 * literals, and `same` (the parent's namespace) is shared when equal. */
static const char *kr_xml_ns_dup(kr_arena *a, const char *qname, const char *sep,
                                 const char *same)
{
    if (!sep)
        return "";
    size_t len = (size_t)(sep - qname);
    if (same && strncmp(same, qname, len) == 0 && same[len] == '\0')
        return same;
    if (len == sizeof(KR_NS_XML) - 1 && memcmp(qname, KR_NS_XML, len) == 0)
        return KR_NS_XML;
    return kr_arena_strndup(a, qname, len);
}

static const char *kr_xml_local_name(const char *qname, const char *sep)
{
    return sep ? sep + 1 : qname;
}

/* New element for expat name/atts under parent (NULL: a root) in arena a. */
static kr_xml_node *kr_xml_build_elem(kr_arena *a, kr_xml_node *parent, const XML_Char *name,
                                      const XML_Char **atts, unsigned nattrs)
{
    const char *sep = strchr(name, KR_XML_NS_SEP);
    const char *ns = kr_xml_ns_dup(a, name, sep, parent ? parent->ns : NULL);
    kr_xml_node *e =
        kr_xml_elem_add_take(a, parent, ns, kr_arena_strdup(a, kr_xml_local_name(name, sep)));
    /* Last to first, so that prepending keeps document order. */
    for (unsigned i = nattrs; i-- > 0;) {
        const char *an = atts[2 * i];
        const char *asep = strchr(an, KR_XML_NS_SEP);
        kr_xml_attr_prepend_take(a, e, kr_xml_ns_dup(a, an, asep, NULL),
                                 kr_arena_strdup(a, kr_xml_local_name(an, asep)),
                                 kr_arena_strdup(a, atts[2 * i + 1]));
    }
    return e;
}

static void kr_xml_flush_text(kr_xml_parser *p)
{
    if (p->text.len == 0)
        return;
    kr_xml_text_add(p->arena, p->cur, p->text.data, p->text.len);
    p->text.len = 0;
}

static void kr_xml_stream_start(kr_xml_parser *p, const XML_Char *name, const XML_Char **atts)
{
    unsigned nattrs;
    if (!kr_xml_check_attrs(p, atts, &nattrs))
        return;
    uint64_t end = kr_xml_event_end(p);
    if (!kr_xml_check_size(p, end))
        return;
    p->depth = 1;
    p->boundary = end;
    kr_xml_keep_header(p);
    kr_xml_stream_header hdr = {
        .elem = kr_xml_build_elem(p->hdr_arena, NULL, name, atts, nattrs),
        .default_ns = p->default_ns ? p->default_ns : "",
    };
    if (p->cbs.stream_open)
        p->cbs.stream_open(p->ud, &hdr);
    kr_arena_reset(p->hdr_arena);
    p->default_ns = NULL;
}

/* Whether expat name `name` is an element in the XML namespace (<xml:e/>): well-formed,
 * but no protocol uses one and it cannot be written back without the xml: prefix, which
 * the serializer never puts on element names. */
static bool kr_xml_in_xml_ns(const XML_Char *name)
{
    const char *sep = strchr(name, KR_XML_NS_SEP);
    return sep && (size_t)(sep - name) == sizeof(KR_NS_XML) - 1 &&
           memcmp(name, KR_NS_XML, sizeof(KR_NS_XML) - 1) == 0;
}

static void kr_xml_elem_start(kr_xml_parser *p, const XML_Char *name, const XML_Char **atts)
{
    unsigned nattrs;
    if (!kr_xml_check_attrs(p, atts, &nattrs))
        return;
    if (kr_xml_in_xml_ns(name)) {
        kr_xml_fail(p, KR_XML_BAD_FORMAT, "element in the xml namespace");
        return;
    }
    if (p->depth > p->limits.max_depth) {
        kr_xml_fail(p, KR_XML_POLICY_VIOLATION, "stanza nested deeper than %u",
                    p->limits.max_depth);
        return;
    }
    if (p->depth == 1)
        p->boundary = kr_xml_event_start(p);
    if (!kr_xml_check_size(p, kr_xml_event_end(p)))
        return;
    if (p->depth == 1)
        p->arena = kr_arena_new(KR_XML_STANZA_ARENA);
    else
        kr_xml_flush_text(p);
    p->cur = kr_xml_build_elem(p->arena, p->cur, name, atts, nattrs);
    p->depth++;
}

static void XMLCALL kr_xml_on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    kr_xml_parser *p = ud;
    if (kr_xml_halted(p) || p->replaying)
        return;
    if (p->depth == 0)
        kr_xml_stream_start(p, name, atts);
    else
        kr_xml_elem_start(p, name, atts);
}

static void kr_xml_stanza_end(kr_xml_parser *p)
{
    uint64_t end = kr_xml_event_end(p);
    if (!kr_xml_check_size(p, end))
        return;
    p->boundary = end;
    kr_xml_node *elem = p->cur;
    kr_arena *arena = p->arena;
    p->arena = NULL;
    p->cur = NULL;
    if (p->text.cap > KR_XML_TEXT_KEEP)
        kr_buf_clear(&p->text);
    if (p->cbs.stanza)
        p->cbs.stanza(p->ud, elem, arena);
    else
        kr_arena_free(arena);
}

static void XMLCALL kr_xml_on_end(void *ud, const XML_Char *name)
{
    kr_xml_parser *p = ud;
    if (kr_xml_halted(p))
        return;
    if (p->depth == 1) {
        p->depth = 0;
        p->closed = true;
        if (p->cbs.stream_close)
            p->cbs.stream_close(p->ud);
        return;
    }
    kr_xml_flush_text(p);
    p->depth--;
    if (p->depth == 1)
        kr_xml_stanza_end(p);
    else
        p->cur = p->cur->parent;
}

static bool kr_xml_is_space(const char *s, int len)
{
    for (int i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return false;
    return true;
}

static void XMLCALL kr_xml_on_chars(void *ud, const XML_Char *s, int len)
{
    kr_xml_parser *p = ud;
    if (kr_xml_halted(p))
        return;
    if (p->depth >= 2) {
        kr_buf_append(&p->text, s, (size_t)len);
        return;
    }
    /* Stream level: only whitespace keepalives (RFC 6120 §4.6.1) may appear here. */
    if (!kr_xml_is_space(s, len)) {
        kr_xml_fail(p, KR_XML_BAD_FORMAT, "text at stream level");
        return;
    }
    p->boundary = kr_xml_event_end(p);
}

static void XMLCALL kr_xml_on_ns_decl(void *ud, const XML_Char *prefix, const XML_Char *uri)
{
    kr_xml_parser *p = ud;
    if (kr_xml_halted(p) || p->depth != 0 || prefix)
        return;
    p->default_ns = kr_arena_strdup(p->hdr_arena, uri ? uri : "");
}

static void XMLCALL kr_xml_on_xml_decl(void *ud, const XML_Char *version,
                                       const XML_Char *encoding, int standalone)
{
    kr_xml_parser *p = ud;
    if (encoding && strcasecmp(encoding, "UTF-8") != 0)
        kr_xml_fail(p, KR_XML_UNSUPPORTED_ENCODING, "encoding %.40s is not supported",
                    encoding);
}

static void XMLCALL kr_xml_on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                                      const XML_Char *pubid, int has_internal_subset)
{
    kr_xml_fail(ud, KR_XML_RESTRICTED, "DTDs are not allowed");
}

static void XMLCALL kr_xml_on_entity_decl(void *ud, const XML_Char *name, int is_param,
                                          const XML_Char *value, int value_len,
                                          const XML_Char *base, const XML_Char *sysid,
                                          const XML_Char *pubid, const XML_Char *notation)
{
    kr_xml_fail(ud, KR_XML_RESTRICTED, "entity declarations are not allowed");
}

static int XMLCALL kr_xml_on_external_entity(XML_Parser xp, const XML_Char *context,
                                             const XML_Char *base, const XML_Char *sysid,
                                             const XML_Char *pubid)
{
    kr_xml_fail(XML_GetUserData(xp), KR_XML_RESTRICTED, "external entities are not allowed");
    return XML_STATUS_ERROR;
}

static void XMLCALL kr_xml_on_pi(void *ud, const XML_Char *target, const XML_Char *data)
{
    kr_xml_fail(ud, KR_XML_RESTRICTED, "processing instructions are not allowed");
}

static void XMLCALL kr_xml_on_comment(void *ud, const XML_Char *data)
{
    kr_xml_fail(ud, KR_XML_RESTRICTED, "comments are not allowed");
}

/* Handlers are set again after every XML_ParserReset(), which clears them. */
static void kr_xml_setup(kr_xml_parser *p)
{
    XML_Parser xp = p->xp;
    XML_SetUserData(xp, p);
    XML_SetElementHandler(xp, kr_xml_on_start, kr_xml_on_end);
    XML_SetCharacterDataHandler(xp, kr_xml_on_chars);
    XML_SetStartNamespaceDeclHandler(xp, kr_xml_on_ns_decl);
    XML_SetXmlDeclHandler(xp, kr_xml_on_xml_decl);
    XML_SetStartDoctypeDeclHandler(xp, kr_xml_on_doctype);
    XML_SetEntityDeclHandler(xp, kr_xml_on_entity_decl);
    XML_SetExternalEntityRefHandler(xp, kr_xml_on_external_entity);
    XML_SetProcessingInstructionHandler(xp, kr_xml_on_pi);
    XML_SetCommentHandler(xp, kr_xml_on_comment);
    XML_SetParamEntityParsing(xp, XML_PARAM_ENTITY_PARSING_NEVER);
}

static void kr_xml_state_init(kr_xml_parser *p)
{
    p->default_ns = NULL;
    p->arena = NULL;
    p->cur = NULL;
    p->text.len = 0;
    p->lex = KR_LEX_TEXT;
    p->lex_quote = 0;
    p->lex_run = 0;
    p->depth = 0;
    p->fed = 0;
    p->idx_base = 0;
    free(p->hdr_raw);
    p->hdr_raw = NULL;
    p->hdr_raw_len = 0;
    p->replaying = false;
    p->boundary = 0;
    p->closed = false;
    p->stopped = false;
    p->error = KR_XML_OK;
    p->error_text[0] = '\0';
}

static XML_Parser kr_xml_expat_new(void)
{
    XML_Parser xp = XML_ParserCreateNS("UTF-8", KR_XML_NS_SEP);
    if (!xp) {
        fprintf(stderr, "kurier: out of memory creating XML parser\n");
        abort();
    }
    return xp;
}

kr_xml_parser *kr_xml_parser_new(const kr_xml_limits *limits, const kr_xml_parser_cbs *cbs,
                                 void *ud)
{
    static const kr_xml_limits defaults = KR_XML_LIMITS_DEFAULT;
    kr_xml_parser *p = kr_xcalloc(1, sizeof(*p));
    p->limits = limits ? *limits : defaults;
    if (cbs)
        p->cbs = *cbs;
    p->ud = ud;
    p->xp = kr_xml_expat_new();
    p->hdr_arena = kr_arena_new(1024);
    kr_buf_init(&p->text);
    kr_xml_state_init(p);
    kr_xml_setup(p);
    return p;
}

void kr_xml_parser_free(kr_xml_parser *p)
{
    if (!p)
        return;
    kr_xml_drop_stanza(p);
    if (p->xp)
        XML_ParserFree(p->xp);
    kr_arena_free(p->hdr_arena);
    kr_buf_clear(&p->text);
    free(p->hdr_raw);
    free(p);
}

/* An error expat found itself, as a stream error condition. */
static kr_xml_error kr_xml_map_expat(enum XML_Error code)
{
    switch (code) {
    case XML_ERROR_UNKNOWN_ENCODING:
    case XML_ERROR_INCORRECT_ENCODING:
        return KR_XML_UNSUPPORTED_ENCODING;
    case XML_ERROR_NO_MEMORY:
        return KR_XML_POLICY_VIOLATION;
    case XML_ERROR_EXTERNAL_ENTITY_HANDLING:
    case XML_ERROR_ENTITY_DECLARED_IN_PE:
    case XML_ERROR_NOT_STANDALONE:
    case XML_ERROR_AMPLIFICATION_LIMIT_BREACH:
        return KR_XML_RESTRICTED;
    default:
        return KR_XML_NOT_WELL_FORMED;
    }
}

/* Advance the pre-lexer by one byte; true when c may end a markup token. */
static bool kr_xml_lex_step(kr_xml_parser *p, unsigned char c)
{
    switch ((enum kr_xml_lex)p->lex) {
    case KR_LEX_TEXT:
        if (c == '<')
            p->lex = KR_LEX_LT;
        else if (c == '&')
            p->lex = KR_LEX_REF;
        return false;
    case KR_LEX_REF:
        p->lex = c == ';' ? KR_LEX_TEXT : c == '<' ? KR_LEX_LT : KR_LEX_REF;
        return c == ';';
    case KR_LEX_LT:
        p->lex_run = 0;
        if (c == '!') {
            p->lex = KR_LEX_BANG;
            return false;
        }
        if (c == '?') {
            p->lex = KR_LEX_PI;
            return false;
        }
        p->lex = KR_LEX_TAG;
        return kr_xml_lex_step(p, c);
    case KR_LEX_TAG:
    case KR_LEX_DECL:
        if (c == '\'' || c == '"') {
            p->lex_quote = c;
            p->lex = p->lex == KR_LEX_TAG ? KR_LEX_TAG_Q : KR_LEX_DECL_Q;
            return false;
        }
        if (c == '>' || (c == '[' && p->lex == KR_LEX_DECL)) {
            p->lex = KR_LEX_TEXT;
            return true;
        }
        return false;
    case KR_LEX_TAG_Q:
    case KR_LEX_DECL_Q:
        if (c == p->lex_quote)
            p->lex = p->lex == KR_LEX_TAG_Q ? KR_LEX_TAG : KR_LEX_DECL;
        return false;
    case KR_LEX_BANG:
        p->lex = c == '-' ? KR_LEX_COMMENT : c == '[' ? KR_LEX_CDATA : KR_LEX_DECL;
        return p->lex == KR_LEX_DECL ? kr_xml_lex_step(p, c) : false;
    case KR_LEX_COMMENT:
    case KR_LEX_CDATA:
    case KR_LEX_PI: {
        unsigned char mark = p->lex == KR_LEX_COMMENT ? '-' : p->lex == KR_LEX_CDATA ? ']' : '?';
        unsigned char need = p->lex == KR_LEX_PI ? 1 : 2;
        if (c == '>' && p->lex_run >= need) {
            p->lex = KR_LEX_TEXT;
            return true;
        }
        p->lex_run = c == mark ? (unsigned char)(p->lex_run < 2 ? p->lex_run + 1 : 2) : 0;
        return false;
    }
    }
    return true;
}

/* Run the pre-lexer over data; true when some byte of it may end a markup token. Long
 * runs of character data, tag names and quoted values are skipped in tight loops. */
static bool kr_xml_scan(kr_xml_parser *p, const char *data, size_t len)
{
    bool ends = false;
    const char *end = data + len;
    while (data < end) {
        if (p->lex == KR_LEX_TAG_Q || p->lex == KR_LEX_DECL_Q) {
            const char *q = memchr(data, p->lex_quote, (size_t)(end - data));
            if (!q)
                break;
            data = q;
        } else if (p->lex == KR_LEX_TEXT) {
            while (data < end && *data != '<' && *data != '&')
                data++;
            if (data == end)
                break;
        } else if (p->lex == KR_LEX_TAG) {
            while (data < end && *data != '>' && *data != '\'' && *data != '"')
                data++;
            if (data == end)
                break;
        }
        ends |= kr_xml_lex_step(p, (unsigned char)*data++);
    }
    return ends;
}

/* One chunk of at most KR_XML_FEED_CHUNK bytes. */
static int kr_xml_feed_chunk(kr_xml_parser *p, const char *data, size_t len)
{
    p->fed += len;
    /* Expat's reparse deferral (CVE-2023-52425, backported to Debian's 2.5.0) holds a
     * partial token back until its buffer has doubled, which would leave a stanza whose
     * last bytes came in a small read undelivered until the peer sends more. Without it,
     * expat rescans a partial token on every read: a 256 KiB attribute sent a byte at a
     * time costs seconds of CPU. So deferral is off exactly for the chunks in which a
     * token may end, which a real token does once, however the peer splits it. */
    XML_SetReparseDeferralEnabled(p->xp, kr_xml_scan(p, data, len) ? XML_FALSE : XML_TRUE);
    enum XML_Status st = XML_Parse(p->xp, data, (int)len, XML_FALSE);
    if (p->error != KR_XML_OK)
        return KR_EPARSE;
    if (p->stopped)
        return KR_ESTOPPED;
    if (st != XML_STATUS_OK) {
        enum XML_Error code = XML_GetErrorCode(p->xp);
        kr_xml_fail(p, kr_xml_map_expat(code), "%s", XML_ErrorString(code));
        return KR_EPARSE;
    }
    /* What expat holds unfinished (or padding at stream level) counts against the limit
     * now, before the next chunk can make it grow. */
    if (!p->closed && !kr_xml_check_size(p, p->fed))
        return KR_EPARSE;
    return 0;
}

bool kr_xml_parser_trim(kr_xml_parser *p)
{
    if (!p->xp || kr_xml_halted(p) || p->closed || p->depth != 1 || p->lex != KR_LEX_TEXT ||
        p->boundary != p->fed || !p->hdr_raw)
        return false;
    XML_ParserFree(p->xp);
    p->xp = NULL;
    kr_buf_clear(&p->text);
    kr_arena_free(p->hdr_arena);
    p->hdr_arena = NULL;
    return true;
}

/* Undo kr_xml_parser_trim: a new expat parser that has seen the stream header again. */
static void kr_xml_untrim(kr_xml_parser *p)
{
    p->xp = kr_xml_expat_new();
    kr_xml_setup(p);
    p->hdr_arena = kr_arena_new(1024);
    p->replaying = true;
    XML_SetReparseDeferralEnabled(p->xp, XML_FALSE);
    enum XML_Status st = XML_Parse(p->xp, p->hdr_raw, (int)p->hdr_raw_len, XML_FALSE);
    p->replaying = false;
    if (st != XML_STATUS_OK || p->error != KR_XML_OK) {
        /* the same bytes parsed the first time, so this is our bug, not the peer's */
        fprintf(stderr, "kurier: replaying a stream header failed\n");
        abort();
    }
    p->idx_base = (int64_t)p->fed - (int64_t)p->hdr_raw_len;
}

int kr_xml_parser_feed(kr_xml_parser *p, const char *data, size_t len)
{
    if (p->error != KR_XML_OK)
        return KR_EPARSE;
    if (p->stopped)
        return KR_ESTOPPED;
    if (!p->xp && len > 0)
        kr_xml_untrim(p);
    while (len > 0) {
        size_t n = len < KR_XML_FEED_CHUNK ? len : KR_XML_FEED_CHUNK;
        int rc = kr_xml_feed_chunk(p, data, n);
        if (rc != 0)
            return rc;
        data += n;
        len -= n;
    }
    return 0;
}

int kr_xml_parser_feed_stream(kr_xml_parser *p, const char *data, size_t len, bool *in_feed,
                              bool *restart, bool (*closing)(void *arg), void *arg)
{
    while (len > 0 && !closing(arg)) {
        size_t n = len < KR_XML_FEED_CHUNK ? len : KR_XML_FEED_CHUNK;
        *in_feed = true;
        int r = kr_xml_parser_feed(p, data, n);
        *in_feed = false;
        data += n;
        len -= n;
        if (r == KR_EPARSE)
            return r;
        if (r == KR_ESTOPPED) {
            if (*restart && !closing(arg)) {
                *restart = false;
                kr_xml_parser_reset(p);
            }
            return r;
        }
    }
    return 0;
}

void kr_xml_parser_stop(kr_xml_parser *p)
{
    if (kr_xml_halted(p))
        return;
    p->stopped = true;
    if (p->xp)
        XML_StopParser(p->xp, XML_FALSE);
}

void kr_xml_parser_reset(kr_xml_parser *p)
{
    kr_xml_drop_stanza(p);
    if (p->xp) {
        XML_Bool ok = XML_ParserReset(p->xp, "UTF-8");
        assert(ok && "kr_xml_parser_reset() called from inside a callback");
        (void)ok;
    } else {
        p->xp = kr_xml_expat_new();
    }
    if (p->hdr_arena)
        kr_arena_reset(p->hdr_arena);
    else
        p->hdr_arena = kr_arena_new(1024);
    if (p->text.cap > KR_XML_TEXT_KEEP)
        kr_buf_clear(&p->text);
    kr_xml_state_init(p);
    kr_xml_setup(p);
}

kr_xml_error kr_xml_parser_error(const kr_xml_parser *p)
{
    return p->error;
}

const char *kr_xml_parser_error_text(const kr_xml_parser *p)
{
    return p->error_text;
}

const char *kr_xml_error_condition(kr_xml_error e)
{
    switch (e) {
    case KR_XML_RESTRICTED:
        return "restricted-xml";
    case KR_XML_POLICY_VIOLATION:
        return "policy-violation";
    case KR_XML_BAD_FORMAT:
        return "bad-format";
    case KR_XML_UNSUPPORTED_ENCODING:
        return "unsupported-encoding";
    default:
        return "not-well-formed";
    }
}
