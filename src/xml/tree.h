/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Element tree of one stanza. Every node, attribute and string lives in the
 * stanza's arena (CONVENTIONS.md, ownership rule 1): nothing here is freed on
 * its own. Names are split into namespace URI and local name as expat reports
 * them with namespace processing on; `ns` is "" for no namespace, never NULL.
 * Attributes in the XML namespace (xml:lang) have ns KR_NS_XML.
 */
#ifndef KR_XML_TREE_H
#define KR_XML_TREE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/arena.h"

#define KR_NS_XML "http://www.w3.org/XML/1998/namespace"

/* KR_XML_RAW: markup the server produced itself earlier (a stored vCard, say), kept as
 * bytes and written out unchanged by the serializer; not looked into by the tree functions.
 * Only for our own serializer's output: it must be well-formed and namespace-complete. */
typedef enum kr_xml_node_type { KR_XML_ELEMENT, KR_XML_TEXT, KR_XML_RAW } kr_xml_node_type;

typedef struct kr_xml_attr {
    const char *ns;   /* "" when unqualified */
    const char *name; /* local name */
    const char *value;
    struct kr_xml_attr *next;
} kr_xml_attr;

typedef struct kr_xml_node {
    kr_xml_node_type type;
    struct kr_xml_node *parent;
    struct kr_xml_node *next; /* next sibling */
    /* KR_XML_ELEMENT */
    const char *ns;
    const char *name;
    kr_xml_attr *attrs;
    struct kr_xml_node *children;
    struct kr_xml_node *last_child;
    /* KR_XML_TEXT: unescaped character data, NUL-terminated, len bytes; KR_XML_RAW: the
     * markup */
    const char *text;
    size_t text_len;
} kr_xml_node;

/** New element with no parent. ns/name are copied into the arena. */
kr_xml_node *kr_xml_elem_new(kr_arena *a, const char *ns, const char *name);
/** New element appended as last child of parent; returns it. */
kr_xml_node *kr_xml_elem_add(kr_arena *a, kr_xml_node *parent, const char *ns, const char *name);
/** Like kr_xml_elem_add (parent may be NULL for a root) but ns and name are not copied:
 * they must outlive the arena (live in it, or be string literals). For the parser, which
 * shares one namespace string among the elements of a stanza. */
kr_xml_node *kr_xml_elem_add_take(kr_arena *a, kr_xml_node *parent, const char *ns,
                                  const char *name);
/** Append text (copied) as last child of parent. */
void kr_xml_text_add(kr_arena *a, kr_xml_node *parent, const char *text, size_t len);
/** Append markup our serializer made earlier (copied) as last child (KR_XML_RAW). */
void kr_xml_raw_add(kr_arena *a, kr_xml_node *parent, const char *xml, size_t len);
/** Append an existing node (and its subtree) as last child. */
void kr_xml_child_append(kr_xml_node *parent, kr_xml_node *child);
/** Unlink node from its parent (no memory is released). */
void kr_xml_node_unlink(kr_xml_node *node);

/** Value of the unqualified attribute `name`, or NULL. */
const char *kr_xml_attr_get(const kr_xml_node *e, const char *name);
/** Value of the attribute ns:name, or NULL. */
const char *kr_xml_attr_get_ns(const kr_xml_node *e, const char *ns, const char *name);
/** Set (replace or add) an unqualified attribute; value is copied. NULL value removes it. */
void kr_xml_attr_set(kr_arena *a, kr_xml_node *e, const char *name, const char *value);
/** Same for a namespaced attribute (e.g. KR_NS_XML "lang"). */
void kr_xml_attr_set_ns(kr_arena *a, kr_xml_node *e, const char *ns, const char *name,
                        const char *value);

/** Put an attribute first in e's list without copying or looking for a duplicate: the
 * strings must outlive the arena, and the caller guarantees ns:name is not set yet (the
 * parser, whose input expat has already checked for duplicates, adds attributes last to
 * first so the list keeps document order). */
void kr_xml_attr_prepend_take(kr_arena *a, kr_xml_node *e, const char *ns, const char *name,
                              const char *value);

/** First child element matching ns and name (either may be NULL for "any"), or NULL. */
kr_xml_node *kr_xml_child_get(const kr_xml_node *e, const char *ns, const char *name);
/** First child element, or NULL. */
kr_xml_node *kr_xml_first_elem(const kr_xml_node *e);
/** Next sibling element after e, or NULL. */
kr_xml_node *kr_xml_next_elem(const kr_xml_node *e);
/** Concatenated text of the direct text children, in the arena ("" if none). */
const char *kr_xml_text_get(kr_arena *a, const kr_xml_node *e);
/** Deep copy of a subtree into another arena (parent/next cleared). */
kr_xml_node *kr_xml_node_copy(kr_arena *a, const kr_xml_node *e);

#endif
