/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Unit tests of the streaming XMPP parser (src/xml/parser.c): stream header,
 * stanza trees, input split anywhere, RFC 6120 §11 restricted XML, UTF-8
 * well-formedness, stream-level text, the limits of kr_xml_limits (exact and
 * independent of how input is split, memory bounded for a hostile unfinished
 * token), stop/reset for stream restarts (and kr_xml_parser_feed_stream, which does them
 * for every stream's reading side), trimming idle streams. Each test owns its parser and
 * collected stanzas and frees them, so LeakSanitizer checks the arena
 * handling on every path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/error.h"
#include "xml/parser.h"
#include "xml/serialize.h"

/* ASan's allocator statistics (GCC ships no header for them; clang's
 * <sanitizer/allocator_interface.h> declares the same function). */
#if defined(__SANITIZE_ADDRESS__)
#define KR_TEST_HAVE_ALLOC_STATS 1
size_t __sanitizer_get_current_allocated_bytes(void);
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KR_TEST_HAVE_ALLOC_STATS 1
size_t __sanitizer_get_current_allocated_bytes(void);
#endif
#endif

#define NS_STREAMS "http://etherx.jabber.org/streams"
#define HEADER                                                                                 \
    "<?xml version='1.0'?>"                                                                    \
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "    \
    "to='example.com' version='1.0' xml:lang='en'>"
#define MAX_KEPT 16

typedef struct collector {
    kr_xml_parser *p;
    int opens;
    int closes;
    int stanzas;
    int stop_at; /* call kr_xml_parser_stop() in the stanza callback number stop_at (1-based) */
    bool restart_at_stop; /* ... and ask for a restart, as after <proceed/> or <success/> */
    bool in_feed, restart, closing; /* kr_xml_parser_feed_stream's state */
    char hdr_ns[128];
    char hdr_name[64];
    char hdr_default_ns[128];
    char hdr_attrs[8][128]; /* "ns|name=value" of the header's attributes */
    int hdr_nattrs;
    kr_buf out; /* every stanza serialized, each followed by '\n' */
    kr_arena *arenas[MAX_KEPT];
    kr_xml_node *elems[MAX_KEPT];
} collector;

static void on_open(void *ud, const kr_xml_stream_header *hdr)
{
    collector *c = ud;
    c->opens++;
    snprintf(c->hdr_ns, sizeof(c->hdr_ns), "%s", hdr->elem->ns);
    snprintf(c->hdr_name, sizeof(c->hdr_name), "%s", hdr->elem->name);
    snprintf(c->hdr_default_ns, sizeof(c->hdr_default_ns), "%s", hdr->default_ns);
    c->hdr_nattrs = 0;
    for (const kr_xml_attr *a = hdr->elem->attrs; a && c->hdr_nattrs < 8; a = a->next) {
        snprintf(c->hdr_attrs[c->hdr_nattrs], sizeof(c->hdr_attrs[0]), "%s|%s=%s", a->ns, a->name,
                 a->value);
        c->hdr_nattrs++;
    }
}

static void on_stanza(void *ud, kr_xml_node *elem, kr_arena *arena)
{
    collector *c = ud;
    kr_xml_serialize(&c->out, elem, "jabber:client");
    kr_buf_append(&c->out, "\n", 1);
    if (c->stanzas < MAX_KEPT) {
        c->arenas[c->stanzas] = arena;
        c->elems[c->stanzas] = elem;
    } else {
        kr_arena_free(arena);
    }
    c->stanzas++;
    if (c->stop_at == c->stanzas) {
        if (c->restart_at_stop) {
            assert_true(c->in_feed); /* so the reset must wait */
            c->restart = true;
        }
        kr_xml_parser_stop(c->p);
    }
}

static bool collector_closing(void *ud)
{
    return ((collector *)ud)->closing;
}

static int feed_stream_str(collector *c, const char *s)
{
    return kr_xml_parser_feed_stream(c->p, s, strlen(s), &c->in_feed, &c->restart,
                                     collector_closing, c);
}

static void on_close(void *ud)
{
    collector *c = ud;
    c->closes++;
}

static void collector_init(collector *c, const kr_xml_limits *limits)
{
    static const kr_xml_parser_cbs cbs = {on_open, on_stanza, on_close};
    memset(c, 0, sizeof(*c));
    kr_buf_init(&c->out);
    c->p = kr_xml_parser_new(limits, &cbs, c);
}

static void collector_fini(collector *c)
{
    for (int i = 0; i < c->stanzas && i < MAX_KEPT; i++)
        kr_arena_free(c->arenas[i]);
    kr_xml_parser_free(c->p);
    kr_buf_clear(&c->out);
}

static int feed_str(collector *c, const char *s)
{
    return kr_xml_parser_feed(c->p, s, strlen(s));
}

/* Feed s one byte at a time; returns the first non-zero result, or 0. */
static int feed_bytewise(collector *c, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        int rc = kr_xml_parser_feed(c->p, s + i, 1);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Parse `doc` (in one piece) with default limits; returns the error it ended with. */
static kr_xml_error parse_error_of(const char *doc, size_t len)
{
    collector c;
    collector_init(&c, NULL);
    int rc = kr_xml_parser_feed(c.p, doc, len);
    kr_xml_error err = kr_xml_parser_error(c.p);
    if (err != KR_XML_OK) {
        assert_int_equal(rc, KR_EPARSE);
        assert_true(kr_xml_parser_error_text(c.p)[0] != '\0');
        /* Sticky: a later feed, even of good data, fails again. */
        assert_int_equal(feed_str(&c, "<presence/>"), KR_EPARSE);
    }
    collector_fini(&c);
    return err;
}

static kr_xml_error parse_error_str(const char *doc)
{
    return parse_error_of(doc, strlen(doc));
}

static const char sample_stream[] =
    HEADER "\n"
    "<message to='juliet@example.com/balcony' type='chat' id='m1'>"
    "<body>Hi &amp; &lt;bye&gt; caf\xC3\xA9 &#x263A;\nsecond line</body>"
    "<x:data xmlns:x='urn:example:x' x:attr='v' plain='p'><x:inner/>tail</x:data>"
    "<active xmlns='http://jabber.org/protocol/chatstates'/>"
    "</message>\n"
    "<iq type='get' id='i1'><query xmlns='jabber:iq:roster'/></iq>"
    "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
    "</stream:features>"
    "<presence/>";

static void test_stream_header_reported_with_attrs_and_default_ns(void **state)
{
    collector c;
    collector_init(&c, NULL);
    assert_int_equal(feed_str(&c, HEADER), 0);
    assert_int_equal(c.opens, 1);
    assert_string_equal(c.hdr_ns, NS_STREAMS);
    assert_string_equal(c.hdr_name, "stream");
    assert_string_equal(c.hdr_default_ns, "jabber:client");
    /* The xmlns declarations are not attributes. */
    assert_int_equal(c.hdr_nattrs, 3);
    assert_string_equal(c.hdr_attrs[0], "|to=example.com");
    assert_string_equal(c.hdr_attrs[1], "|version=1.0");
    assert_string_equal(c.hdr_attrs[2], KR_NS_XML "|lang=en");
    assert_int_equal(c.stanzas, 0);
    collector_fini(&c);
}

static void test_stream_header_without_default_ns_reports_empty(void **state)
{
    collector c;
    collector_init(&c, NULL);
    assert_int_equal(feed_str(&c, "<stream:stream xmlns:stream='" NS_STREAMS "'>"), 0);
    assert_int_equal(c.opens, 1);
    assert_string_equal(c.hdr_default_ns, "");
    collector_fini(&c);
}

static void test_stanzas_build_trees_with_namespaces_and_attrs(void **state)
{
    collector c;
    collector_init(&c, NULL);
    assert_int_equal(feed_str(&c, sample_stream), 0);
    assert_int_equal(c.opens, 1);
    assert_int_equal(c.stanzas, 4);

    kr_xml_node *msg = c.elems[0];
    assert_string_equal(msg->ns, "jabber:client");
    assert_string_equal(msg->name, "message");
    assert_null(msg->parent);
    const kr_xml_attr *a = msg->attrs;
    assert_string_equal(a->name, "to");
    assert_string_equal(a->value, "juliet@example.com/balcony");
    assert_string_equal(a->next->name, "type");
    assert_string_equal(a->next->next->name, "id");
    assert_null(a->next->next->next);

    kr_xml_node *body = kr_xml_child_get(msg, "jabber:client", "body");
    assert_non_null(body);
    /* Adjacent character data (entities, newline, char refs) is one text node. */
    assert_non_null(body->children);
    assert_ptr_equal(body->children, body->last_child);
    assert_int_equal(body->children->type, KR_XML_TEXT);
    const char *want = "Hi & <bye> caf\xC3\xA9 \xE2\x98\xBA\nsecond line";
    assert_string_equal(body->children->text, want);
    assert_int_equal(body->children->text_len, strlen(want));

    kr_xml_node *data = kr_xml_next_elem(body);
    assert_string_equal(data->ns, "urn:example:x");
    assert_string_equal(data->name, "data");
    assert_string_equal(kr_xml_attr_get_ns(data, "urn:example:x", "attr"), "v");
    assert_null(kr_xml_attr_get(data, "attr"));
    assert_string_equal(kr_xml_attr_get(data, "plain"), "p");
    kr_xml_node *inner = kr_xml_first_elem(data);
    assert_string_equal(inner->ns, "urn:example:x");
    assert_string_equal(inner->name, "inner");
    assert_ptr_equal(inner->parent, data);
    assert_int_equal(inner->next->type, KR_XML_TEXT);
    assert_string_equal(inner->next->text, "tail");

    kr_xml_node *active = kr_xml_next_elem(data);
    assert_string_equal(active->ns, "http://jabber.org/protocol/chatstates");
    assert_null(active->children);
    assert_null(kr_xml_next_elem(active));
    assert_ptr_equal(msg->last_child, active);

    kr_xml_node *query = kr_xml_child_get(c.elems[1], "jabber:iq:roster", "query");
    assert_non_null(query);
    assert_string_equal(kr_xml_attr_get(c.elems[1], "type"), "get");

    kr_xml_node *features = c.elems[2];
    assert_string_equal(features->ns, NS_STREAMS);
    assert_string_equal(features->name, "features");
    kr_xml_node *starttls = kr_xml_first_elem(features);
    assert_string_equal(starttls->ns, "urn:ietf:params:xml:ns:xmpp-tls");
    assert_non_null(kr_xml_child_get(starttls, "urn:ietf:params:xml:ns:xmpp-tls", "required"));

    assert_string_equal(c.elems[3]->name, "presence");
    assert_null(c.elems[3]->attrs);
    assert_null(c.elems[3]->children);
    assert_int_equal(c.closes, 0);
    collector_fini(&c);
}

static void test_byte_by_byte_feed_gives_same_result(void **state)
{
    collector whole, bytes, odd;
    collector_init(&whole, NULL);
    collector_init(&bytes, NULL);
    collector_init(&odd, NULL);
    size_t len = strlen(sample_stream);
    assert_int_equal(kr_xml_parser_feed(whole.p, sample_stream, len), 0);
    assert_int_equal(feed_bytewise(&bytes, sample_stream, len), 0);
    for (size_t i = 0, step = 1; i < len; i += step, step = step % 7 + 2)
        assert_int_equal(kr_xml_parser_feed(odd.p, sample_stream + i, i + step > len ? len - i : step), 0);

    assert_int_equal(whole.stanzas, 4);
    assert_int_equal(bytes.stanzas, 4);
    assert_int_equal(odd.stanzas, 4);
    assert_int_equal(bytes.opens, 1);
    assert_string_equal(bytes.hdr_default_ns, "jabber:client");
    assert_true(whole.out.len > 100);
    assert_string_equal(bytes.out.data, whole.out.data);
    assert_string_equal(odd.out.data, whole.out.data);
    /* Merging of text must not depend on the split either. */
    kr_xml_node *body = kr_xml_first_elem(bytes.elems[0]);
    assert_ptr_equal(body->children, body->last_child);
    collector_fini(&whole);
    collector_fini(&bytes);
    collector_fini(&odd);
}

static void test_stanza_delivered_when_its_last_byte_arrives(void **state)
{
    /* Expat's reparse deferral must not hold back a complete stanza until more input
     * comes: a peer that sent a stanza waits for the answer. */
    static const char *pieces[] = {"<message to='a@b'><bo", "dy>hi</bo", "dy></messag", "e",
                                   ">"};
    collector c;
    collector_init(&c, NULL);
    assert_int_equal(feed_str(&c, HEADER), 0);
    for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
        assert_int_equal(c.stanzas, 0);
        assert_int_equal(feed_str(&c, pieces[i]), 0);
    }
    assert_int_equal(c.stanzas, 1);
    assert_int_equal(feed_bytewise(&c, "<iq type='get' id='long-identifier'/>", 37), 0);
    assert_int_equal(c.stanzas, 2);
    assert_int_equal(feed_bytewise(&c, "</stream:stream>", 16), 0);
    assert_int_equal(c.closes, 1);
    collector_fini(&c);
}

/* Feed s byte by byte: no stanza may appear before its last byte, one must with it. */
static void assert_delivered_on_last_byte(collector *c, const char *s)
{
    size_t len = strlen(s);
    int before = c->stanzas;
    assert_int_equal(feed_bytewise(c, s, len - 1), 0);
    assert_int_equal(c->stanzas, before);
    assert_int_equal(kr_xml_parser_feed(c->p, s + len - 1, 1), 0);
    assert_int_equal(c->stanzas, before + 1);
}

static void test_markup_inside_values_and_cdata_does_not_delay_delivery(void **state)
{
    collector c;
    collector_init(&c, NULL);
    assert_int_equal(feed_str(&c, HEADER), 0);
    assert_delivered_on_last_byte(&c, "<message a='x > y; &amp; \"q\"' b=\"it's > \">hi</message>");
    assert_delivered_on_last_byte(&c, "<message><body><![CDATA[a > b ]] ]> <x/> &c;]]></body>"
                                      "</message>");
    assert_delivered_on_last_byte(&c, "<message><body>&lt;&#x263A;&gt;</body></message>");
    assert_delivered_on_last_byte(&c, "<presence/>");
    assert_string_equal(kr_xml_attr_get(c.elems[0], "a"), "x > y; & \"q\"");
    assert_string_equal(kr_xml_first_elem(c.elems[1])->children->text, "a > b ]] ]> <x/> &c;");
    collector_fini(&c);
}

static void test_token_split_into_single_bytes_costs_linear_time(void **state)
{
    /* A 256 KiB attribute value of '>' sent one byte per read: each byte may look like the
     * end of the tag, but expat must not rescan the whole token each time (that took
     * over 30 s of CPU). Refused by the size limit, quickly. */
    collector c;
    collector_init(&c, NULL);
    assert_int_equal(feed_str(&c, HEADER "<message to='"), 0);
    clock_t start = clock();
    int rc = 0;
    for (size_t i = 0; i < 300000 && rc == 0; i++)
        rc = kr_xml_parser_feed(c.p, ">", 1);
    double secs = (double)(clock() - start) / CLOCKS_PER_SEC;
    assert_int_equal(rc, KR_EPARSE);
    assert_int_equal(kr_xml_parser_error(c.p), KR_XML_POLICY_VIOLATION);
    assert_true(secs < 3.0);
    collector_fini(&c);
}

static void test_whitespace_keepalives_are_ignored(void **state)
{
    collector c;
    collector_init(&c, NULL);
    assert_int_equal(feed_str(&c, HEADER), 0);
    assert_int_equal(feed_str(&c, " "), 0);
    assert_int_equal(feed_str(&c, "\n\n"), 0);
    assert_int_equal(feed_str(&c, "<presence/>"), 0);
    assert_int_equal(feed_str(&c, "\t \r\n "), 0);
    assert_int_equal(feed_str(&c, "<presence type='unavailable'/>"), 0);
    assert_int_equal(c.stanzas, 2);
    assert_int_equal(kr_xml_parser_error(c.p), KR_XML_OK);
    collector_fini(&c);
}

static void test_stream_close_reported_after_last_stanza(void **state)
{
    collector c;
    collector_init(&c, NULL);
    assert_int_equal(feed_str(&c, HEADER "<presence/>\n</stream:stream>"), 0);
    assert_int_equal(c.stanzas, 1);
    assert_int_equal(c.closes, 1);
    assert_int_equal(kr_xml_parser_error(c.p), KR_XML_OK);
    collector_fini(&c);
}

static void test_doctype_is_restricted(void **state)
{
    assert_int_equal(parse_error_str("<?xml version='1.0'?><!DOCTYPE stream>" HEADER),
                     KR_XML_RESTRICTED);
    assert_int_equal(parse_error_str("<!DOCTYPE stream:stream [<!ELEMENT x ANY>]>" HEADER),
                     KR_XML_RESTRICTED);
}

static void test_internal_entity_declaration_is_restricted(void **state)
{
    assert_int_equal(parse_error_str("<!DOCTYPE s [<!ENTITY name 'value'>]>"
                                     "<stream:stream xmlns:stream='" NS_STREAMS "'>"
                                     "<message><body>&name;</body></message>"),
                     KR_XML_RESTRICTED);
}

static void test_billion_laughs_is_restricted_before_expansion(void **state)
{
    const char *doc = "<?xml version='1.0'?>"
                      "<!DOCTYPE lolz [<!ENTITY lol 'lol'>"
                      "<!ENTITY lol1 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>"
                      "<!ENTITY lol2 '&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;'>"
                      "<!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>"
                      "<!ENTITY lol4 '&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;'>"
                      "<!ENTITY lol5 '&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;'>"
                      "<!ENTITY lol6 '&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;'>"
                      "<!ENTITY lol7 '&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;'>"
                      "<!ENTITY lol8 '&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;'>"
                      "<!ENTITY lol9 '&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;'>"
                      "]>"
                      "<stream:stream xmlns:stream='" NS_STREAMS "' xmlns='jabber:client'>"
                      "<message><body>&lol9;</body></message>";
    collector c;
    collector_init(&c, NULL);
    assert_int_equal(feed_str(&c, doc), KR_EPARSE);
    assert_int_equal(kr_xml_parser_error(c.p), KR_XML_RESTRICTED);
    assert_string_equal(kr_xml_parser_error_text(c.p), "DTDs are not allowed");
    assert_int_equal(c.opens, 0);
    assert_int_equal(c.stanzas, 0);
    collector_fini(&c);
}

static void test_external_entity_is_restricted(void **state)
{
    assert_int_equal(parse_error_str("<!DOCTYPE s [<!ENTITY ext SYSTEM 'file:///etc/passwd'>]>"
                                     "<stream:stream xmlns:stream='" NS_STREAMS "'>"
                                     "<message><body>&ext;</body></message>"),
                     KR_XML_RESTRICTED);
    assert_int_equal(parse_error_str("<!DOCTYPE s SYSTEM 'http://example.com/evil.dtd'>"
                                     "<stream:stream xmlns:stream='" NS_STREAMS "'>"),
                     KR_XML_RESTRICTED);
}

static void test_processing_instruction_is_restricted(void **state)
{
    assert_int_equal(parse_error_str("<?xml-stylesheet href='a.xsl'?>" HEADER),
                     KR_XML_RESTRICTED);
    assert_int_equal(parse_error_str(HEADER "<message><?php echo 1; ?></message>"),
                     KR_XML_RESTRICTED);
}

static void test_comment_is_restricted(void **state)
{
    assert_int_equal(parse_error_str("<!-- hello -->" HEADER), KR_XML_RESTRICTED);
    assert_int_equal(parse_error_str(HEADER "<!-- at stream level -->"), KR_XML_RESTRICTED);
    assert_int_equal(parse_error_str(HEADER "<message><!-- inside --></message>"),
                     KR_XML_RESTRICTED);
}

static void test_predefined_entities_and_char_refs_are_accepted(void **state)
{
    collector c;
    collector_init(&c, NULL);
    assert_int_equal(feed_str(&c, HEADER "<message a='&quot;&apos;&#65;'>&lt;&gt;&amp;&#x42;"
                                         "&#67;</message>"),
                     0);
    assert_int_equal(c.stanzas, 1);
    assert_string_equal(kr_xml_attr_get(c.elems[0], "a"), "\"'A");
    assert_string_equal(c.elems[0]->children->text, "<>&BC");
    collector_fini(&c);
}

static void test_undefined_entity_is_not_well_formed(void **state)
{
    assert_int_equal(parse_error_str(HEADER "<message>&nbsp;</message>"), KR_XML_NOT_WELL_FORMED);
}

static void test_invalid_utf8_is_not_well_formed(void **state)
{
    assert_int_equal(parse_error_str(HEADER "<message><body>\xC3\x28</body></message>"),
                     KR_XML_NOT_WELL_FORMED);
    assert_int_equal(parse_error_str(HEADER "<message a='\xC3\x28'/>"), KR_XML_NOT_WELL_FORMED);
    /* Lone continuation byte, truncated sequence, and UTF-16 surrogate encoded in UTF-8. */
    assert_int_equal(parse_error_str(HEADER "<message>\x80</message>"), KR_XML_NOT_WELL_FORMED);
    assert_int_equal(parse_error_str(HEADER "<message>\xE2\x98</message>"),
                     KR_XML_NOT_WELL_FORMED);
    assert_int_equal(parse_error_str(HEADER "<message>\xED\xA0\x80</message>"),
                     KR_XML_NOT_WELL_FORMED);
}

static void test_overlong_utf8_is_not_well_formed(void **state)
{
    assert_int_equal(parse_error_str(HEADER "<message>\xC0\xAF</message>"),
                     KR_XML_NOT_WELL_FORMED);
    assert_int_equal(parse_error_str(HEADER "<message>\xE0\x80\xAF</message>"),
                     KR_XML_NOT_WELL_FORMED);
    assert_int_equal(parse_error_str(HEADER "<message>\xF0\x80\x80\xAF</message>"),
                     KR_XML_NOT_WELL_FORMED);
}

static void test_nul_byte_is_not_well_formed(void **state)
{
    static const char doc[] = HEADER "<message>a\0b</message>";
    assert_int_equal(parse_error_of(doc, sizeof(doc) - 1), KR_XML_NOT_WELL_FORMED);
    assert_int_equal(parse_error_str(HEADER "<message>&#0;</message>"), KR_XML_NOT_WELL_FORMED);
}

static void test_bad_syntax_is_not_well_formed(void **state)
{
    assert_int_equal(parse_error_str(HEADER "<message></iq>"), KR_XML_NOT_WELL_FORMED);
    assert_int_equal(parse_error_str(HEADER "<message a='1' a='2'/>"), KR_XML_NOT_WELL_FORMED);
    assert_int_equal(parse_error_str(HEADER "<foo:bar/>"), KR_XML_NOT_WELL_FORMED);
    assert_int_equal(parse_error_str(HEADER "<message a=1/>"), KR_XML_NOT_WELL_FORMED);
}

/* Found by fuzzing: <xml:e/> parsed into an element the serializer wrote back as
 * <e xmlns='http://www.w3.org/XML/1998/namespace'/>, which no parser accepts. */
static void test_element_in_xml_namespace_is_bad_format(void **state)
{
    assert_int_equal(parse_error_str(HEADER "<xml:e/>"), KR_XML_BAD_FORMAT);
    assert_int_equal(parse_error_str(HEADER "<message><xml:body>x</xml:body></message>"),
                     KR_XML_BAD_FORMAT);
    /* The xml: prefix on attributes stays fine. */
    collector c;
    collector_init(&c, NULL);
    assert_int_equal(feed_str(&c, HEADER "<message><body xml:lang='de'>x</body></message>"), 0);
    assert_int_equal(c.stanzas, 1);
    collector_fini(&c);
}

static void test_errors_name_their_stream_conditions(void **state)
{
    assert_string_equal(kr_xml_error_condition(KR_XML_NOT_WELL_FORMED), "not-well-formed");
    assert_string_equal(kr_xml_error_condition(KR_XML_RESTRICTED), "restricted-xml");
    assert_string_equal(kr_xml_error_condition(KR_XML_POLICY_VIOLATION), "policy-violation");
    assert_string_equal(kr_xml_error_condition(KR_XML_BAD_FORMAT), "bad-format");
    assert_string_equal(kr_xml_error_condition(KR_XML_UNSUPPORTED_ENCODING),
                        "unsupported-encoding");
}

static void test_text_at_stream_level_is_bad_format(void **state)
{
    collector c;
    collector_init(&c, NULL);
    assert_int_equal(feed_str(&c, HEADER "<presence/>"), 0);
    assert_int_equal(feed_str(&c, " hello <presence/>"), KR_EPARSE);
    assert_int_equal(kr_xml_parser_error(c.p), KR_XML_BAD_FORMAT);
    assert_int_equal(c.stanzas, 1);
    collector_fini(&c);
    assert_int_equal(parse_error_str(HEADER "&lt;"), KR_XML_BAD_FORMAT);
    assert_int_equal(parse_error_str(HEADER "<![CDATA[x]]>"), KR_XML_BAD_FORMAT);
}

static void test_depth_limit_is_policy_violation(void **state)
{
    const kr_xml_limits limits = {4096, 3, 64};
    collector c;
    collector_init(&c, &limits);
    assert_int_equal(feed_str(&c, HEADER "<a><b><c/></b></a>"), 0);
    assert_int_equal(c.stanzas, 1);
    assert_int_equal(feed_str(&c, "<a><b><c><d/></c></b></a>"), KR_EPARSE);
    assert_int_equal(kr_xml_parser_error(c.p), KR_XML_POLICY_VIOLATION);
    assert_int_equal(c.stanzas, 1);
    collector_fini(&c);
}

static void test_attribute_limit_is_policy_violation(void **state)
{
    const kr_xml_limits limits = {4096, 16, 2};
    collector c;
    collector_init(&c, &limits);
    /* The limit applies to the stream header too: HEADER has three attributes. */
    assert_int_equal(feed_str(&c, HEADER), KR_EPARSE);
    assert_int_equal(kr_xml_parser_error(c.p), KR_XML_POLICY_VIOLATION);
    assert_int_equal(c.opens, 0);
    collector_fini(&c);

    /* Two attributes plus namespace declarations is fine: xmlns does not count. */
    collector_init(&c, &limits);
    assert_int_equal(feed_str(&c, "<stream:stream xmlns='jabber:client' xmlns:stream='" NS_STREAMS
                                  "' to='example.com'>"),
                     0);
    assert_int_equal(feed_str(&c, "<iq xmlns:x='urn:x' type='get' x:id='1'>"
                                  "<q xmlns='urn:q' a='1' b='2'/></iq>"),
                     0);
    assert_int_equal(c.stanzas, 1);
    assert_int_equal(feed_str(&c, "<iq><q a='1' b='2' c='3'/></iq>"), KR_EPARSE);
    assert_int_equal(kr_xml_parser_error(c.p), KR_XML_POLICY_VIOLATION);
    assert_string_equal(kr_xml_parser_error_text(c.p), "element has more than 2 attributes");
    assert_int_equal(c.stanzas, 1);
    collector_fini(&c);
}

/* "<message><body>xxx...</body></message>" of exactly `size` bytes; caller frees. */
static char *make_stanza(size_t size)
{
    static const char head[] = "<message><body>", tail[] = "</body></message>";
    size_t fixed = sizeof(head) - 1 + sizeof(tail) - 1;
    assert_true(size >= fixed);
    char *s = malloc(size + 1);
    memcpy(s, head, sizeof(head) - 1);
    memset(s + sizeof(head) - 1, 'x', size - fixed);
    memcpy(s + size - (sizeof(tail) - 1), tail, sizeof(tail));
    assert_int_equal(strlen(s), size);
    return s;
}

/* Feed HEADER, then `n` copies of a stanza of `size` bytes, whole or byte by byte. */
static int feed_sized_stanzas(collector *c, size_t size, int n, bool bytewise)
{
    char *st = make_stanza(size);
    int rc = feed_str(c, HEADER);
    for (int i = 0; i < n && rc == 0; i++)
        rc = bytewise ? feed_bytewise(c, st, size) : feed_str(c, st);
    free(st);
    return rc;
}

static void test_stanza_of_exactly_the_limit_is_accepted(void **state)
{
    const kr_xml_limits limits = {1000, 16, 16};
    for (int bytewise = 0; bytewise <= 1; bytewise++) {
        collector c;
        collector_init(&c, &limits);
        assert_int_equal(feed_sized_stanzas(&c, 1000, 3, bytewise), 0);
        assert_int_equal(c.stanzas, 3);
        collector_fini(&c);
    }
    /* Several maximal stanzas in one feed are each within the limit. */
    char *st = make_stanza(1000);
    kr_buf many = KR_BUF_INIT;
    kr_buf_puts(&many, HEADER);
    for (int i = 0; i < 5; i++) {
        kr_buf_puts(&many, st);
        kr_buf_puts(&many, " ");
    }
    collector c;
    collector_init(&c, &limits);
    assert_int_equal(kr_xml_parser_feed(c.p, many.data, many.len), 0);
    assert_int_equal(c.stanzas, 5);
    collector_fini(&c);
    kr_buf_clear(&many);
    free(st);
}

static void test_stanza_one_byte_over_the_limit_is_refused(void **state)
{
    const kr_xml_limits limits = {1000, 16, 16};
    for (int bytewise = 0; bytewise <= 1; bytewise++) {
        collector c;
        collector_init(&c, &limits);
        assert_int_equal(feed_sized_stanzas(&c, 1001, 1, bytewise), KR_EPARSE);
        assert_int_equal(kr_xml_parser_error(c.p), KR_XML_POLICY_VIOLATION);
        assert_string_equal(kr_xml_parser_error_text(c.p), "stanza exceeds 1000 bytes");
        assert_int_equal(c.stanzas, 0);
        collector_fini(&c);
    }
}

static void test_whitespace_between_stanzas_is_bounded(void **state)
{
    const kr_xml_limits limits = {1000, 16, 16};
    collector c;
    collector_init(&c, &limits);
    assert_int_equal(feed_str(&c, HEADER), 0);
    char *pad = malloc(3000);
    memset(pad, ' ', 3000);
    /* Whitespace consumed at stream level resets the count, so keepalives never add up. */
    for (int i = 0; i < 10; i++)
        assert_int_equal(kr_xml_parser_feed(c.p, pad, 500), 0);
    assert_int_equal(kr_xml_parser_error(c.p), KR_XML_OK);
    free(pad);
    collector_fini(&c);

    /* An unfinished stream-level token is bounded: "<" followed by a long name. */
    collector_init(&c, &limits);
    assert_int_equal(feed_str(&c, HEADER "<"), 0);
    char *name = malloc(2000);
    memset(name, 'a', 2000);
    assert_int_equal(kr_xml_parser_feed(c.p, name, 2000), KR_EPARSE);
    assert_int_equal(kr_xml_parser_error(c.p), KR_XML_POLICY_VIOLATION);
    free(name);
    collector_fini(&c);
}

#ifdef KR_TEST_HAVE_ALLOC_STATS
static size_t allocated_now(void)
{
    return __sanitizer_get_current_allocated_bytes();
}
#else
static size_t allocated_now(void)
{
    return 0; /* no allocator statistics without ASan: only the fed-bytes bound is checked */
}
#endif

/* Feed `prefix` then 10 MB of 'a' in 64 KiB chunks until the parser refuses. */
static void check_huge_unterminated_token(const char *prefix)
{
    const size_t chunk = 65536, total = 10 * 1024 * 1024;
    char *buf = malloc(chunk);
    memset(buf, 'a', chunk);
    collector c;
    collector_init(&c, NULL); /* default limit: 262144 bytes */
    assert_int_equal(feed_str(&c, HEADER), 0);
    size_t before = allocated_now();
    assert_int_equal(feed_str(&c, prefix), 0);
    size_t fed = 0, peak = 0;
    int rc = 0;
    while (fed < total && rc == 0) {
        rc = kr_xml_parser_feed(c.p, buf, chunk);
        fed += chunk;
        size_t now = allocated_now();
        if (now > peak)
            peak = now;
    }
    assert_int_equal(rc, KR_EPARSE);
    assert_int_equal(kr_xml_parser_error(c.p), KR_XML_POLICY_VIOLATION);
    /* Refused in the chunk that crossed the limit, not after megabytes. */
    assert_true(fed <= 262144 + chunk);
    assert_true(peak <= before || peak - before < 2 * 1024 * 1024);
    free(buf);
    collector_fini(&c);
}

static void test_huge_unterminated_attribute_is_refused_early(void **state)
{
    check_huge_unterminated_token("<message to='");
}

static void test_huge_unterminated_text_is_refused_early(void **state)
{
    check_huge_unterminated_token("<message><body>");
}

static void test_non_utf8_encoding_declaration_is_unsupported(void **state)
{
    const char *stream = "<stream:stream xmlns:stream='" NS_STREAMS "'>";
    char doc[256];
    snprintf(doc, sizeof(doc), "<?xml version='1.0' encoding='ISO-8859-1'?>%s", stream);
    assert_int_equal(parse_error_str(doc), KR_XML_UNSUPPORTED_ENCODING);
    snprintf(doc, sizeof(doc), "<?xml version='1.0' encoding='UTF-16'?>%s", stream);
    assert_int_equal(parse_error_str(doc), KR_XML_UNSUPPORTED_ENCODING);
    snprintf(doc, sizeof(doc), "<?xml version='1.0' encoding='UTF-8'?>%s", stream);
    assert_int_equal(parse_error_str(doc), KR_XML_OK);
    snprintf(doc, sizeof(doc), "<?xml version=\"1.0\" encoding=\"utf-8\"?>%s", stream);
    assert_int_equal(parse_error_str(doc), KR_XML_OK);
    snprintf(doc, sizeof(doc), "<?xml version='1.0'?>%s", stream);
    assert_int_equal(parse_error_str(doc), KR_XML_OK);
}

static void test_stop_drops_rest_of_input_and_reset_restarts_stream(void **state)
{
    collector c;
    collector_init(&c, NULL);
    c.stop_at = 1;
    assert_int_equal(feed_str(&c, HEADER "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
                                         "<message/>"),
                     KR_ESTOPPED);
    assert_int_equal(c.stanzas, 1);
    assert_string_equal(c.elems[0]->name, "starttls");
    assert_int_equal(kr_xml_parser_error(c.p), KR_XML_OK);
    /* Until the reset, the stopped parser takes nothing. */
    assert_int_equal(feed_str(&c, "<presence/>"), KR_ESTOPPED);
    assert_int_equal(c.stanzas, 1);

    kr_xml_parser_reset(c.p);
    c.stop_at = 0;
    assert_int_equal(feed_str(&c, "<stream:stream xmlns='jabber:server' xmlns:stream='" NS_STREAMS
                                  "' to='example.net'><iq type='get'><ping xmlns='urn:xmpp:ping'/>"
                                  "</iq>"),
                     0);
    assert_int_equal(c.opens, 2);
    assert_string_equal(c.hdr_ns, NS_STREAMS);
    assert_string_equal(c.hdr_default_ns, "jabber:server");
    assert_int_equal(c.stanzas, 2);
    assert_string_equal(c.elems[1]->ns, "jabber:server");
    assert_string_equal(c.elems[1]->name, "iq");
    assert_string_equal(kr_xml_first_elem(c.elems[1])->ns, "urn:xmpp:ping");
    collector_fini(&c);
}

static void test_reset_discards_partial_stanza(void **state)
{
    collector c;
    collector_init(&c, NULL);
    assert_int_equal(feed_str(&c, HEADER "<message><body>half"), 0);
    kr_xml_parser_reset(c.p);
    assert_int_equal(feed_str(&c, HEADER "<presence/>"), 0);
    assert_int_equal(c.opens, 2);
    assert_int_equal(c.stanzas, 1);
    assert_string_equal(c.elems[0]->name, "presence");
    collector_fini(&c);
}

static void test_trim_between_stanzas_keeps_the_stream(void **state)
{
    collector c;
    collector_init(&c, NULL);
    /* a prefix other than 'stream' and an extra declaration on the header */
    assert_int_equal(feed_str(&c, "<s:stream xmlns='jabber:client' xmlns:s='" NS_STREAMS
                                  "' xmlns:x='urn:example:x' to='example.com' version='1.0'>"
                                  "<presence/> "),
                     0);
    assert_true(kr_xml_parser_trim(c.p));
    assert_false(kr_xml_parser_trim(c.p)); /* already trimmed */
    assert_int_equal(feed_str(&c, "<message to='a@example.com'><x:y/><body>hi</body></message>"),
                     0);
    assert_int_equal(c.opens, 1); /* the replayed header is not a new stream */
    assert_int_equal(c.stanzas, 2);
    assert_string_equal(c.elems[1]->ns, "jabber:client");
    assert_string_equal(kr_xml_first_elem(c.elems[1])->ns, "urn:example:x");
    /* trimmed again, then split input and the end of the stream */
    assert_true(kr_xml_parser_trim(c.p));
    assert_int_equal(feed_str(&c, "<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/>"), 0);
    assert_false(kr_xml_parser_trim(c.p)); /* inside a stanza */
    assert_int_equal(feed_str(&c, "</iq>"), 0);
    assert_int_equal(c.stanzas, 3);
    assert_true(kr_xml_parser_trim(c.p));
    assert_int_equal(feed_str(&c, "</s:stream>"), 0);
    assert_int_equal(c.closes, 1);
    assert_false(kr_xml_parser_trim(c.p)); /* closed */
    assert_string_equal(c.out.data, "<presence/>\n"
                                    "<message to='a@example.com'><y xmlns='urn:example:x'/>"
                                    "<body>hi</body></message>\n"
                                    "<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>\n");
    collector_fini(&c);
}

static void test_trim_refused_inside_a_token_or_before_the_header(void **state)
{
    collector c;
    collector_init(&c, NULL);
    assert_false(kr_xml_parser_trim(c.p)); /* no stream yet */
    assert_int_equal(feed_str(&c, HEADER "<presence/><mess"), 0);
    assert_false(kr_xml_parser_trim(c.p));
    assert_int_equal(feed_str(&c, "age/>"), 0);
    assert_int_equal(c.stanzas, 2);
    assert_true(kr_xml_parser_trim(c.p));
    /* errors after a trim are still errors, and well-formedness is still checked */
    assert_int_equal(feed_str(&c, "<message>oops</iq>"), KR_EPARSE);
    assert_int_equal(kr_xml_parser_error(c.p), KR_XML_NOT_WELL_FORMED);
    assert_false(kr_xml_parser_trim(c.p));
    collector_fini(&c);
}

static void test_trim_keeps_size_limits_exact(void **state)
{
    const kr_xml_limits limits = {1000, 16, 16};
    char *ok = make_stanza(1000), *big = make_stanza(1001);
    collector c;
    collector_init(&c, &limits);
    assert_int_equal(feed_sized_stanzas(&c, 1000, 2, false), 0);
    assert_true(kr_xml_parser_trim(c.p));
    assert_int_equal(feed_str(&c, ok), 0); /* offsets after the replay still count right */
    assert_true(kr_xml_parser_trim(c.p));
    assert_int_equal(feed_bytewise(&c, ok, 1000), 0);
    assert_int_equal(c.stanzas, 4);
    assert_true(kr_xml_parser_trim(c.p));
    assert_int_equal(feed_str(&c, big), KR_EPARSE);
    assert_int_equal(kr_xml_parser_error(c.p), KR_XML_POLICY_VIOLATION);
    assert_int_equal(c.stanzas, 4);
    collector_fini(&c);
    free(ok);
    free(big);
}

static void test_reset_after_trim_starts_a_new_stream(void **state)
{
    collector c;
    collector_init(&c, NULL);
    assert_int_equal(feed_str(&c, HEADER "<presence/>"), 0);
    assert_true(kr_xml_parser_trim(c.p));
    kr_xml_parser_reset(c.p);
    assert_int_equal(feed_str(&c, "<stream:stream xmlns='jabber:server' xmlns:stream='" NS_STREAMS
                                  "'><presence/>"),
                     0);
    assert_int_equal(c.opens, 2);
    assert_string_equal(c.hdr_default_ns, "jabber:server");
    assert_string_equal(c.elems[1]->ns, "jabber:server");
    collector_fini(&c);
}

/* A restart asked for inside the feed is done when it returns; the rest of that read is
 * dropped, and the next read starts a new stream. */
static void test_feed_stream_restarts_after_the_feed(void **state)
{
    collector c;
    collector_init(&c, NULL);
    c.stop_at = 1;
    c.restart_at_stop = true;
    assert_int_equal(feed_stream_str(&c, HEADER "<proceed/><dropped/>"), KR_ESTOPPED);
    assert_false(c.in_feed);
    assert_false(c.restart);
    assert_int_equal(c.stanzas, 1);
    c.stop_at = 0;
    assert_int_equal(feed_stream_str(&c, HEADER "<presence/>"), 0);
    assert_int_equal(c.opens, 2);
    assert_int_equal(c.stanzas, 2);
    collector_fini(&c);
}

/* A stop without a restart leaves the parser stopped; a closing stream is fed nothing; an
 * error is handed back for the caller to report. */
static void test_feed_stream_stop_closing_and_error(void **state)
{
    collector c;
    collector_init(&c, NULL);
    c.stop_at = 1;
    assert_int_equal(feed_stream_str(&c, HEADER "<a/>"), KR_ESTOPPED);
    assert_int_equal(feed_stream_str(&c, "<b/>"), KR_ESTOPPED);
    assert_int_equal(c.stanzas, 1);
    collector_fini(&c);

    collector_init(&c, NULL);
    c.closing = true;
    assert_int_equal(feed_stream_str(&c, HEADER "<a/>"), 0);
    assert_int_equal(c.opens, 0);
    c.closing = false;
    assert_int_equal(feed_stream_str(&c, HEADER "<a>oops</b>"), KR_EPARSE);
    assert_int_equal(kr_xml_parser_error(c.p), KR_XML_NOT_WELL_FORMED);
    assert_false(c.in_feed);
    collector_fini(&c);
}

static void test_reset_after_error_clears_it(void **state)
{
    collector c;
    collector_init(&c, NULL);
    assert_int_equal(feed_str(&c, HEADER "<message>oops</iq>"), KR_EPARSE);
    kr_xml_parser_reset(c.p);
    assert_int_equal(kr_xml_parser_error(c.p), KR_XML_OK);
    assert_int_equal(feed_str(&c, HEADER "<presence/>"), 0);
    assert_int_equal(c.stanzas, 1);
    collector_fini(&c);
}

static void test_free_with_partial_stanza_releases_it(void **state)
{
    collector c;
    collector_init(&c, NULL);
    assert_int_equal(feed_str(&c, HEADER "<message to='x'><body>half<b><c>"), 0);
    collector_fini(&c); /* LeakSanitizer reports the stanza arena if it leaks */
}

static void test_error_mid_stanza_releases_partial_tree(void **state)
{
    const kr_xml_limits limits = {4096, 2, 64};
    collector c;
    collector_init(&c, &limits);
    assert_int_equal(feed_str(&c, HEADER "<message><body>text</body><x><y><z/></y></x>"),
                     KR_EPARSE);
    assert_int_equal(kr_xml_parser_error(c.p), KR_XML_POLICY_VIOLATION);
    assert_int_equal(c.stanzas, 0);
    collector_fini(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_header_reported_with_attrs_and_default_ns),
        cmocka_unit_test(test_stream_header_without_default_ns_reports_empty),
        cmocka_unit_test(test_stanzas_build_trees_with_namespaces_and_attrs),
        cmocka_unit_test(test_byte_by_byte_feed_gives_same_result),
        cmocka_unit_test(test_stanza_delivered_when_its_last_byte_arrives),
        cmocka_unit_test(test_markup_inside_values_and_cdata_does_not_delay_delivery),
        cmocka_unit_test(test_token_split_into_single_bytes_costs_linear_time),
        cmocka_unit_test(test_whitespace_keepalives_are_ignored),
        cmocka_unit_test(test_stream_close_reported_after_last_stanza),
        cmocka_unit_test(test_doctype_is_restricted),
        cmocka_unit_test(test_internal_entity_declaration_is_restricted),
        cmocka_unit_test(test_billion_laughs_is_restricted_before_expansion),
        cmocka_unit_test(test_external_entity_is_restricted),
        cmocka_unit_test(test_processing_instruction_is_restricted),
        cmocka_unit_test(test_comment_is_restricted),
        cmocka_unit_test(test_predefined_entities_and_char_refs_are_accepted),
        cmocka_unit_test(test_undefined_entity_is_not_well_formed),
        cmocka_unit_test(test_invalid_utf8_is_not_well_formed),
        cmocka_unit_test(test_overlong_utf8_is_not_well_formed),
        cmocka_unit_test(test_nul_byte_is_not_well_formed),
        cmocka_unit_test(test_bad_syntax_is_not_well_formed),
        cmocka_unit_test(test_text_at_stream_level_is_bad_format),
        cmocka_unit_test(test_errors_name_their_stream_conditions),
        cmocka_unit_test(test_element_in_xml_namespace_is_bad_format),
        cmocka_unit_test(test_depth_limit_is_policy_violation),
        cmocka_unit_test(test_attribute_limit_is_policy_violation),
        cmocka_unit_test(test_stanza_of_exactly_the_limit_is_accepted),
        cmocka_unit_test(test_stanza_one_byte_over_the_limit_is_refused),
        cmocka_unit_test(test_whitespace_between_stanzas_is_bounded),
        cmocka_unit_test(test_huge_unterminated_attribute_is_refused_early),
        cmocka_unit_test(test_huge_unterminated_text_is_refused_early),
        cmocka_unit_test(test_non_utf8_encoding_declaration_is_unsupported),
        cmocka_unit_test(test_stop_drops_rest_of_input_and_reset_restarts_stream),
        cmocka_unit_test(test_reset_discards_partial_stanza),
        cmocka_unit_test(test_reset_after_error_clears_it),
        cmocka_unit_test(test_trim_between_stanzas_keeps_the_stream),
        cmocka_unit_test(test_trim_refused_inside_a_token_or_before_the_header),
        cmocka_unit_test(test_trim_keeps_size_limits_exact),
        cmocka_unit_test(test_reset_after_trim_starts_a_new_stream),
        cmocka_unit_test(test_feed_stream_restarts_after_the_feed),
        cmocka_unit_test(test_feed_stream_stop_closing_and_error),
        cmocka_unit_test(test_free_with_partial_stanza_releases_it),
        cmocka_unit_test(test_error_mid_stanza_releases_partial_tree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
