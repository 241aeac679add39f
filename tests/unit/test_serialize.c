/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Unit tests of the element tree (src/xml/tree.c) and the serializer
 * (src/xml/serialize.c): namespace declarations only where the namespace
 * changes, xml: and generated prefixes for namespaced attributes, escaping
 * (RFC 6120 §11), and a parse -> serialize -> parse round trip that must give
 * back the same tree. Every test frees its arenas and buffers, so the
 * sanitizers check ownership too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/error.h"
#include "xml/parser.h"
#include "xml/serialize.h"
#include "xml/tree.h"

#define NS_CLIENT "jabber:client"

/* Serialization of node with parent namespace parent_ns, compared with want. */
static void assert_serializes_to(const kr_xml_node *node, const char *parent_ns, const char *want)
{
    kr_buf out = KR_BUF_INIT;
    kr_xml_serialize(&out, node, parent_ns);
    assert_non_null(out.data);
    assert_string_equal(out.data, want);
    kr_buf_clear(&out);
}

static void test_empty_element_in_parent_ns_has_no_xmlns(void **state)
{
    kr_arena *a = kr_arena_new(512);
    kr_xml_node *e = kr_xml_elem_new(a, NS_CLIENT, "presence");
    assert_serializes_to(e, NS_CLIENT, "<presence/>");
    kr_arena_free(a);
}

static void test_top_element_declares_ns_differing_from_parent_ns(void **state)
{
    kr_arena *a = kr_arena_new(512);
    kr_xml_node *e = kr_xml_elem_new(a, NS_CLIENT, "presence");
    assert_serializes_to(e, "jabber:server", "<presence xmlns='jabber:client'/>");
    assert_serializes_to(e, NULL, "<presence xmlns='jabber:client'/>");
    kr_arena_free(a);
}

static void test_children_declare_xmlns_only_where_ns_changes(void **state)
{
    kr_arena *a = kr_arena_new(512);
    kr_xml_node *iq = kr_xml_elem_new(a, NS_CLIENT, "iq");
    kr_xml_attr_set(a, iq, "type", "result");
    kr_xml_node *q = kr_xml_elem_add(a, iq, "jabber:iq:roster", "query");
    kr_xml_node *item = kr_xml_elem_add(a, q, "jabber:iq:roster", "item");
    kr_xml_attr_set(a, item, "jid", "romeo@example.net");
    kr_xml_elem_add(a, item, "jabber:iq:roster", "group");
    kr_xml_elem_add(a, iq, "", "bare");
    kr_xml_elem_add(a, iq, NS_CLIENT, "again");
    assert_serializes_to(iq, NS_CLIENT,
                         "<iq type='result'><query xmlns='jabber:iq:roster'>"
                         "<item jid='romeo@example.net'><group/></item></query>"
                         "<bare xmlns=''/><again/></iq>");
    kr_arena_free(a);
}

static void test_xml_lang_uses_xml_prefix(void **state)
{
    kr_arena *a = kr_arena_new(512);
    kr_xml_node *m = kr_xml_elem_new(a, NS_CLIENT, "message");
    kr_xml_attr_set_ns(a, m, KR_NS_XML, "lang", "de");
    kr_xml_text_add(a, kr_xml_elem_add(a, m, NS_CLIENT, "body"), "Hallo", 5);
    assert_serializes_to(m, NS_CLIENT, "<message xml:lang='de'><body>Hallo</body></message>");
    kr_arena_free(a);
}

static void test_namespaced_attributes_get_declared_prefixes(void **state)
{
    kr_arena *a = kr_arena_new(512);
    kr_xml_node *e = kr_xml_elem_new(a, "urn:e", "e");
    kr_xml_attr_set(a, e, "plain", "1");
    kr_xml_attr_set_ns(a, e, "urn:a", "x", "2");
    kr_xml_attr_set_ns(a, e, "urn:b", "y", "3");
    kr_xml_attr_set_ns(a, e, "urn:a", "z", "4");
    /* One prefix per namespace, declared once, distinct for distinct namespaces. */
    assert_serializes_to(e, "urn:e",
                         "<e plain='1' xmlns:ns2='urn:a' ns2:x='2' xmlns:ns3='urn:b' ns3:y='3'"
                         " ns2:z='4'/>");
    kr_arena_free(a);
}

static void test_attribute_values_are_escaped(void **state)
{
    kr_arena *a = kr_arena_new(512);
    kr_xml_node *e = kr_xml_elem_new(a, NS_CLIENT, "x");
    kr_xml_attr_set(a, e, "v", "a&b<c>d'e\"f\tg\nh\ri");
    assert_serializes_to(e, NS_CLIENT,
                         "<x v='a&amp;b&lt;c&gt;d&apos;e&quot;f&#x9;g&#xA;h&#xD;i'/>");
    kr_arena_free(a);
}

static void test_text_is_escaped(void **state)
{
    kr_arena *a = kr_arena_new(512);
    kr_xml_node *e = kr_xml_elem_new(a, NS_CLIENT, "body");
    const char text[] = "1 < 2 && 3 > 2 'q' \"d\"\r\n";
    kr_xml_text_add(a, e, text, sizeof(text) - 1);
    assert_serializes_to(e, NS_CLIENT,
                         "<body>1 &lt; 2 &amp;&amp; 3 &gt; 2 'q' \"d\"&#xD;\n</body>");
    /* A text node alone serializes as its escaped text. */
    assert_serializes_to(e->children, NS_CLIENT, "1 &lt; 2 &amp;&amp; 3 &gt; 2 'q' \"d\"&#xD;\n");
    kr_arena_free(a);
}

static void test_escape_functions_append(void **state)
{
    kr_buf out = KR_BUF_INIT;
    kr_buf_puts(&out, "[");
    kr_xml_escape_text(&out, "a<b", 3);
    kr_xml_escape_attr(&out, "'", 1);
    kr_xml_escape_text(&out, "", 0);
    assert_string_equal(out.data, "[a&lt;b&apos;");
    kr_buf_clear(&out);
}

static void test_subtree_serialization_stops_at_its_root(void **state)
{
    kr_arena *a = kr_arena_new(512);
    kr_xml_node *m = kr_xml_elem_new(a, NS_CLIENT, "message");
    kr_xml_node *x = kr_xml_elem_add(a, m, "urn:x", "x");
    kr_xml_elem_add(a, x, "urn:x", "y");
    kr_xml_elem_add(a, m, NS_CLIENT, "after");
    assert_serializes_to(x, NS_CLIENT, "<x xmlns='urn:x'><y/></x>");
    kr_arena_free(a);
}

static void test_attr_set_replaces_removes_and_keeps_order(void **state)
{
    kr_arena *a = kr_arena_new(512);
    kr_xml_node *e = kr_xml_elem_new(a, NS_CLIENT, "iq");
    kr_xml_attr_set(a, e, "to", "a");
    kr_xml_attr_set(a, e, "from", "b");
    kr_xml_attr_set(a, e, "id", "c");
    kr_xml_attr_set(a, e, "from", "B");
    kr_xml_attr_set_ns(a, e, KR_NS_XML, "lang", "en");
    assert_string_equal(kr_xml_attr_get(e, "from"), "B");
    assert_null(kr_xml_attr_get(e, "lang"));
    assert_string_equal(kr_xml_attr_get_ns(e, KR_NS_XML, "lang"), "en");
    assert_string_equal(kr_xml_attr_get_ns(e, "", "id"), "c");
    kr_xml_attr_set(a, e, "to", NULL);
    kr_xml_attr_set(a, e, "missing", NULL);
    assert_null(kr_xml_attr_get(e, "to"));
    assert_serializes_to(e, NS_CLIENT, "<iq from='B' id='c' xml:lang='en'/>");
    kr_arena_free(a);
}

static void test_attr_value_is_copied(void **state)
{
    kr_arena *a = kr_arena_new(512);
    kr_xml_node *e = kr_xml_elem_new(a, NS_CLIENT, "iq");
    char value[] = "original";
    kr_xml_attr_set(a, e, "id", value);
    value[0] = 'X';
    assert_string_equal(kr_xml_attr_get(e, "id"), "original");
    kr_arena_free(a);
}

static void test_child_lookup_skips_text_and_matches_ns_and_name(void **state)
{
    kr_arena *a = kr_arena_new(512);
    kr_xml_node *m = kr_xml_elem_new(a, NS_CLIENT, "message");
    kr_xml_text_add(a, m, "  ", 2);
    kr_xml_node *body = kr_xml_elem_add(a, m, NS_CLIENT, "body");
    kr_xml_text_add(a, m, "\n", 1);
    kr_xml_node *x = kr_xml_elem_add(a, m, "urn:x", "body");
    assert_ptr_equal(kr_xml_first_elem(m), body);
    assert_ptr_equal(kr_xml_next_elem(body), x);
    assert_null(kr_xml_next_elem(x));
    assert_ptr_equal(kr_xml_child_get(m, "urn:x", "body"), x);
    assert_ptr_equal(kr_xml_child_get(m, NULL, "body"), body);
    assert_ptr_equal(kr_xml_child_get(m, "urn:x", NULL), x);
    assert_null(kr_xml_child_get(m, "urn:y", "body"));
    assert_null(kr_xml_first_elem(body));
    kr_arena_free(a);
}

static void test_text_get_concatenates_direct_text_children(void **state)
{
    kr_arena *a = kr_arena_new(512);
    kr_xml_node *b = kr_xml_elem_new(a, NS_CLIENT, "body");
    assert_string_equal(kr_xml_text_get(a, b), "");
    kr_xml_text_add(a, b, "Hello", 5);
    assert_string_equal(kr_xml_text_get(a, b), "Hello");
    kr_xml_node *i = kr_xml_elem_add(a, b, NS_CLIENT, "i");
    kr_xml_text_add(a, i, "ignored", 7);
    kr_xml_text_add(a, b, ", world", 7);
    assert_string_equal(kr_xml_text_get(a, b), "Hello, world");
    kr_arena_free(a);
}

static void test_unlink_keeps_sibling_list_consistent(void **state)
{
    kr_arena *a = kr_arena_new(512);
    kr_xml_node *p = kr_xml_elem_new(a, "", "p");
    kr_xml_node *c1 = kr_xml_elem_add(a, p, "", "a");
    kr_xml_node *c2 = kr_xml_elem_add(a, p, "", "b");
    kr_xml_node *c3 = kr_xml_elem_add(a, p, "", "c");
    kr_xml_node_unlink(c3);
    assert_ptr_equal(p->last_child, c2);
    assert_null(c2->next);
    assert_null(c3->parent);
    kr_xml_node_unlink(c1);
    assert_ptr_equal(p->children, c2);
    kr_xml_node_unlink(c2);
    assert_null(p->children);
    assert_null(p->last_child);
    kr_xml_child_append(p, c3);
    kr_xml_child_append(p, c1);
    assert_serializes_to(p, "", "<p><c/><a/></p>");
    kr_arena_free(a);
}

static void test_child_append_moves_node_from_old_parent(void **state)
{
    kr_arena *a = kr_arena_new(512);
    kr_xml_node *p1 = kr_xml_elem_new(a, "", "p1");
    kr_xml_node *p2 = kr_xml_elem_new(a, "", "p2");
    kr_xml_node *c = kr_xml_elem_add(a, p1, "", "c");
    kr_xml_elem_add(a, p1, "", "d");
    kr_xml_child_append(p2, c);
    assert_ptr_equal(c->parent, p2);
    assert_serializes_to(p1, "", "<p1><d/></p1>");
    assert_serializes_to(p2, "", "<p2><c/></p2>");
    kr_arena_free(a);
}

static void test_node_copy_is_deep_and_independent(void **state)
{
    kr_arena *src = kr_arena_new(512);
    kr_xml_node *m = kr_xml_elem_new(src, NS_CLIENT, "message");
    kr_xml_attr_set(src, m, "to", "juliet@example.com");
    kr_xml_node *body = kr_xml_elem_add(src, m, NS_CLIENT, "body");
    kr_xml_text_add(src, body, "hi & bye", 8);
    kr_xml_node *x = kr_xml_elem_add(src, m, "urn:x", "x");
    kr_xml_attr_set_ns(src, x, "urn:a", "k", "v");
    kr_xml_elem_add(src, kr_xml_elem_add(src, x, "urn:x", "deep"), "urn:x", "deeper");
    kr_xml_elem_add(src, m, NS_CLIENT, "last");

    kr_buf want = KR_BUF_INIT;
    kr_xml_serialize(&want, m, NS_CLIENT);
    /* Copy only the <x/> subtree too: parent and next are cleared. */
    kr_arena *dst = kr_arena_new(512);
    kr_xml_node *copy = kr_xml_node_copy(dst, m);
    kr_xml_node *xcopy = kr_xml_node_copy(dst, x);
    kr_arena_free(src); /* ASan reports any pointer the copies still hold into src */
    assert_null(copy->parent);
    assert_null(xcopy->parent);
    assert_null(xcopy->next);
    assert_serializes_to(copy, NS_CLIENT, want.data);
    assert_serializes_to(xcopy, NS_CLIENT,
                         "<x xmlns='urn:x' xmlns:ns1='urn:a' ns1:k='v'><deep><deeper/></deep></x>");
    assert_ptr_equal(copy->last_child->parent, copy);
    kr_buf_clear(&want);
    kr_arena_free(dst);
}

/* --- round trip through the parser --- */

typedef struct captured {
    kr_xml_node *elem;
    kr_arena *arena;
    int count;
} captured;

static void capture_stanza(void *ud, kr_xml_node *elem, kr_arena *arena)
{
    captured *c = ud;
    if (c->arena)
        kr_arena_free(c->arena);
    c->elem = elem;
    c->arena = arena;
    c->count++;
}

#define STREAM_OPEN                                                                             \
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"

/* Parse one stanza inside a jabber:client stream; the caller frees c->arena. */
static void parse_one(const char *stanza, size_t len, captured *c)
{
    static const kr_xml_parser_cbs cbs = {NULL, capture_stanza, NULL};
    memset(c, 0, sizeof(*c));
    kr_xml_parser *p = kr_xml_parser_new(NULL, &cbs, c);
    assert_int_equal(kr_xml_parser_feed(p, STREAM_OPEN, strlen(STREAM_OPEN)), 0);
    assert_int_equal(kr_xml_parser_feed(p, stanza, len), 0);
    kr_xml_parser_free(p);
    assert_int_equal(c->count, 1);
}

static void assert_attrs_equal(const kr_xml_attr *a, const kr_xml_attr *b)
{
    for (; a && b; a = a->next, b = b->next) {
        assert_string_equal(a->ns, b->ns);
        assert_string_equal(a->name, b->name);
        assert_string_equal(a->value, b->value);
    }
    assert_null(a);
    assert_null(b);
}

static void assert_trees_equal(const kr_xml_node *a, const kr_xml_node *b)
{
    assert_int_equal(a->type, b->type);
    if (a->type == KR_XML_TEXT) {
        assert_int_equal(a->text_len, b->text_len);
        assert_memory_equal(a->text, b->text, a->text_len);
        return;
    }
    assert_string_equal(a->ns, b->ns);
    assert_string_equal(a->name, b->name);
    assert_attrs_equal(a->attrs, b->attrs);
    const kr_xml_node *ca = a->children, *cb = b->children;
    for (; ca && cb; ca = ca->next, cb = cb->next)
        assert_trees_equal(ca, cb);
    assert_null(ca);
    assert_null(cb);
}

static void test_round_trip_parse_serialize_parse_gives_same_tree(void **state)
{
    static const char stanza[] =
        "<message xmlns:e='urn:example:ext' to='juliet@example.com' type='chat' "
        "xml:lang='en' id='a&amp;b&lt;&apos;&quot;&#9;&#10;&#13;'>"
        "<body xml:lang='fr'>5 &lt; 6 &amp;&amp; 7 &gt; 6 'yes' \"no\" &#13; \xC3\xA9\xE2\x82\xAC</body>"
        "<x xmlns='jabber:x:data' type='form' e:hint='h'><field var='a b'>"
        "<value>v</value></field><e:foreign e:attr='1'/></x>"
        "<thread/>"
        "<y xmlns='urn:y'><z xmlns=''>none</z></y>"
        "</message>";
    captured first, second;
    parse_one(stanza, sizeof(stanza) - 1, &first);
    /* The parse itself is as expected. */
    kr_xml_node *x = kr_xml_child_get(first.elem, "jabber:x:data", "x");
    assert_non_null(x);
    assert_string_equal(kr_xml_attr_get_ns(x, "urn:example:ext", "hint"), "h");
    assert_non_null(kr_xml_child_get(x, "urn:example:ext", "foreign"));
    assert_string_equal(kr_xml_attr_get(first.elem, "id"), "a&b<'\"\t\n\r");
    assert_string_equal(kr_xml_attr_get_ns(first.elem, KR_NS_XML, "lang"), "en");

    kr_buf out = KR_BUF_INIT;
    kr_xml_serialize(&out, first.elem, NS_CLIENT);
    assert_non_null(strstr(out.data, "<x xmlns='jabber:x:data' type='form' xmlns:ns2="));
    assert_null(strstr(out.data, "<message xmlns="));
    assert_null(strstr(out.data, "<body xmlns="));
    parse_one(out.data, out.len, &second);
    assert_trees_equal(first.elem, second.elem);

    /* Serializing the second parse gives the same bytes: the form is stable. */
    kr_buf again = KR_BUF_INIT;
    kr_xml_serialize(&again, second.elem, NS_CLIENT);
    assert_string_equal(again.data, out.data);
    kr_buf_clear(&again);
    kr_buf_clear(&out);
    kr_arena_free(first.arena);
    kr_arena_free(second.arena);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_element_in_parent_ns_has_no_xmlns),
        cmocka_unit_test(test_top_element_declares_ns_differing_from_parent_ns),
        cmocka_unit_test(test_children_declare_xmlns_only_where_ns_changes),
        cmocka_unit_test(test_xml_lang_uses_xml_prefix),
        cmocka_unit_test(test_namespaced_attributes_get_declared_prefixes),
        cmocka_unit_test(test_attribute_values_are_escaped),
        cmocka_unit_test(test_text_is_escaped),
        cmocka_unit_test(test_escape_functions_append),
        cmocka_unit_test(test_subtree_serialization_stops_at_its_root),
        cmocka_unit_test(test_attr_set_replaces_removes_and_keeps_order),
        cmocka_unit_test(test_attr_value_is_copied),
        cmocka_unit_test(test_child_lookup_skips_text_and_matches_ns_and_name),
        cmocka_unit_test(test_text_get_concatenates_direct_text_children),
        cmocka_unit_test(test_unlink_keeps_sibling_list_consistent),
        cmocka_unit_test(test_child_append_moves_node_from_old_parent),
        cmocka_unit_test(test_node_copy_is_deep_and_independent),
        cmocka_unit_test(test_round_trip_parse_serialize_parse_gives_same_tree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
