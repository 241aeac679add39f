/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Serializer of element trees to wire XML (see serialize.h). It owns nothing:
 * it only appends to the caller's kr_buf. Invariants of its output: element
 * names are never prefixed; an element carries xmlns='...' exactly when its
 * namespace differs from its parent's (the top element's parent namespace is
 * the caller's `parent_ns`); attributes in KR_NS_XML use the predefined xml:
 * prefix; other namespaced attributes get prefixes ns1, ns2, ... declared on
 * their own element; attribute values are single-quoted. Escaping follows
 * RFC 6120 §11 and XML 1.0 §2.4/§3.3.3: & < > in text, & < > ' " in
 * attributes, and CR in text and TAB/LF/CR in attributes as character
 * references so that a parse of the output gives back exactly the same
 * strings. Nothing but elements, attributes and character data is produced.
 */
#include "xml/serialize.h"

#include <stdio.h>
#include <string.h>

/* Replacement for byte c, or NULL when it is copied as is. */
static const char *kr_xml_text_entity(unsigned char c)
{
    switch (c) {
    case '&': return "&amp;";
    case '<': return "&lt;";
    case '>': return "&gt;";
    case '\r': return "&#xD;";
    default: return NULL;
    }
}

static const char *kr_xml_attr_entity(unsigned char c)
{
    switch (c) {
    case '\'': return "&apos;";
    case '"': return "&quot;";
    case '\t': return "&#x9;";
    case '\n': return "&#xA;";
    default: return kr_xml_text_entity(c);
    }
}

/* Bytes that need a replacement: bit 0 in text, bit 1 in attribute values. */
#define KR_XML_ESC_TEXT 1
#define KR_XML_ESC_ATTR 2
static const unsigned char kr_xml_esc_class[256] = {
    ['&'] = KR_XML_ESC_TEXT | KR_XML_ESC_ATTR,  ['<'] = KR_XML_ESC_TEXT | KR_XML_ESC_ATTR,
    ['>'] = KR_XML_ESC_TEXT | KR_XML_ESC_ATTR,  ['\r'] = KR_XML_ESC_TEXT | KR_XML_ESC_ATTR,
    ['\''] = KR_XML_ESC_ATTR, ['"'] = KR_XML_ESC_ATTR, ['\t'] = KR_XML_ESC_ATTR,
    ['\n'] = KR_XML_ESC_ATTR,
};

/* Append s, copying runs of plain bytes in one go (found with a table, not a call per
 * byte: this runs for every attribute and text node of every routed stanza) and replacing
 * the others. */
static void kr_xml_escape(kr_buf *out, const char *s, size_t len, unsigned char cls,
                          const char *(*entity)(unsigned char))
{
    if (len == 0)
        return;
    kr_buf_reserve(out, len);
    const unsigned char *u = (const unsigned char *)s;
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        if (!(kr_xml_esc_class[u[i]] & cls))
            continue;
        kr_buf_append(out, s + run, i - run);
        kr_buf_puts(out, entity(u[i]));
        run = i + 1;
    }
    kr_buf_append(out, s + run, len - run);
}

void kr_xml_escape_text(kr_buf *out, const char *s, size_t len)
{
    kr_xml_escape(out, s, len, KR_XML_ESC_TEXT, kr_xml_text_entity);
}

void kr_xml_escape_attr(kr_buf *out, const char *s, size_t len)
{
    kr_xml_escape(out, s, len, KR_XML_ESC_ATTR, kr_xml_attr_entity);
}

static void kr_xml_put_attr(kr_buf *out, const char *prefix, const char *name, const char *value)
{
    kr_buf_append(out, " ", 1);
    if (prefix) {
        kr_buf_puts(out, prefix);
        kr_buf_append(out, ":", 1);
    }
    kr_buf_puts(out, name);
    kr_buf_append(out, "='", 2);
    kr_xml_escape_attr(out, value, strlen(value));
    kr_buf_append(out, "'", 1);
}

/* First attribute of e in namespace ns, and its 1-based position, which names the
 * generated prefix: attributes sharing a namespace share a prefix, and distinct
 * namespaces get distinct prefixes. */
static const kr_xml_attr *kr_xml_first_in_ns(const kr_xml_node *e, const char *ns,
                                             unsigned *pos)
{
    unsigned i = 1;
    const kr_xml_attr *a = e->attrs;
    while (strcmp(a->ns, ns) != 0) {
        a = a->next;
        i++;
    }
    *pos = i;
    return a;
}

static void kr_xml_put_attrs(kr_buf *out, const kr_xml_node *e)
{
    char prefix[24];
    for (const kr_xml_attr *at = e->attrs; at; at = at->next) {
        if (!at->ns[0]) {
            kr_xml_put_attr(out, NULL, at->name, at->value);
            continue;
        }
        if (strcmp(at->ns, KR_NS_XML) == 0) {
            kr_xml_put_attr(out, "xml", at->name, at->value);
            continue;
        }
        unsigned pos;
        const kr_xml_attr *first = kr_xml_first_in_ns(e, at->ns, &pos);
        snprintf(prefix, sizeof(prefix), "ns%u", pos);
        if (first == at) { /* declare the prefix with its first use */
            kr_buf_printf(out, " xmlns:%s='", prefix);
            kr_xml_escape_attr(out, at->ns, strlen(at->ns));
            kr_buf_append(out, "'", 1);
        }
        kr_xml_put_attr(out, prefix, at->name, at->value);
    }
}

static void kr_xml_open_tag(kr_buf *out, const kr_xml_node *e, const char *parent_ns)
{
    kr_buf_append(out, "<", 1);
    kr_buf_puts(out, e->name);
    if (strcmp(e->ns, parent_ns) != 0) {
        kr_buf_append(out, " xmlns='", 8);
        kr_xml_escape_attr(out, e->ns, strlen(e->ns));
        kr_buf_append(out, "'", 1);
    }
    kr_xml_put_attrs(out, e);
    if (e->children)
        kr_buf_append(out, ">", 1);
    else
        kr_buf_append(out, "/>", 2);
}

static void kr_xml_close_tag(kr_buf *out, const kr_xml_node *e)
{
    if (!e->children)
        return; /* written as <x/> */
    kr_buf_append(out, "</", 2);
    kr_buf_puts(out, e->name);
    kr_buf_append(out, ">", 1);
}

/* Everything of node n up to its children: text, or the start tag. */
static void kr_xml_put_node(kr_buf *out, const kr_xml_node *n, const char *parent_ns)
{
    if (n->type == KR_XML_TEXT)
        kr_xml_escape_text(out, n->text, n->text_len);
    else if (n->type == KR_XML_RAW)
        kr_buf_append(out, n->text, n->text_len);
    else
        kr_xml_open_tag(out, n, parent_ns);
}

void kr_xml_serialize(kr_buf *out, const kr_xml_node *node, const char *parent_ns)
{
    /* Iterative walk with the parent links, so depth costs no C stack. */
    const kr_xml_node *n = node;
    kr_xml_put_node(out, n, parent_ns ? parent_ns : "");
    for (;;) {
        if (n->type == KR_XML_ELEMENT && n->children) {
            const kr_xml_node *parent = n;
            n = n->children;
            kr_xml_put_node(out, n, parent->ns);
            continue;
        }
        while (n != node && !n->next) {
            n = n->parent;
            kr_xml_close_tag(out, n);
        }
        if (n == node)
            return;
        n = n->next;
        kr_xml_put_node(out, n, n->parent->ns);
    }
}
