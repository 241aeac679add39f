/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Element tree of one stanza (see tree.h): construction, lookup, editing and
 * deep copy. It owns nothing itself: every node, attribute and string is
 * allocated from the arena the caller passes in, and nothing is ever freed
 * here. Invariants: an element's children form a singly linked list through
 * `next` whose tail is `last_child`; every child points back to its parent;
 * `ns` is never NULL ("" means no namespace); text nodes hold NUL-terminated
 * unescaped character data. The tree is the in-memory form of the restricted
 * XML of RFC 6120 §11 (elements, attributes, character data, nothing else).
 */
#include "xml/tree.h"

#include <string.h>

static const char kr_xml_empty[] = "";

static kr_xml_node *kr_xml_node_alloc(kr_arena *a, kr_xml_node_type type)
{
    kr_xml_node *n = kr_arena_zalloc(a, sizeof(*n));
    n->type = type;
    return n;
}

static bool kr_xml_str_eq(const char *a, const char *b)
{
    return a == b || strcmp(a, b) == 0;
}

kr_xml_node *kr_xml_elem_add_take(kr_arena *a, kr_xml_node *parent, const char *ns,
                                  const char *name)
{
    kr_xml_node *e = kr_xml_node_alloc(a, KR_XML_ELEMENT);
    e->ns = ns ? ns : kr_xml_empty;
    e->name = name;
    if (parent)
        kr_xml_child_append(parent, e);
    return e;
}

kr_xml_node *kr_xml_elem_new(kr_arena *a, const char *ns, const char *name)
{
    const char *ns_copy = (ns && ns[0]) ? kr_arena_strdup(a, ns) : kr_xml_empty;
    return kr_xml_elem_add_take(a, NULL, ns_copy, kr_arena_strdup(a, name));
}

kr_xml_node *kr_xml_elem_add(kr_arena *a, kr_xml_node *parent, const char *ns, const char *name)
{
    kr_xml_node *e = kr_xml_elem_new(a, ns, name);
    if (parent)
        kr_xml_child_append(parent, e);
    return e;
}

void kr_xml_text_add(kr_arena *a, kr_xml_node *parent, const char *text, size_t len)
{
    kr_xml_node *t = kr_xml_node_alloc(a, KR_XML_TEXT);
    t->text = kr_arena_strndup(a, text, len);
    t->text_len = len;
    kr_xml_child_append(parent, t);
}

void kr_xml_raw_add(kr_arena *a, kr_xml_node *parent, const char *xml, size_t len)
{
    kr_xml_node *t = kr_xml_node_alloc(a, KR_XML_RAW);
    t->text = kr_arena_strndup(a, xml, len);
    t->text_len = len;
    kr_xml_child_append(parent, t);
}

void kr_xml_child_append(kr_xml_node *parent, kr_xml_node *child)
{
    if (child->parent)
        kr_xml_node_unlink(child);
    child->parent = parent;
    child->next = NULL;
    if (parent->last_child)
        parent->last_child->next = child;
    else
        parent->children = child;
    parent->last_child = child;
}

void kr_xml_node_unlink(kr_xml_node *node)
{
    kr_xml_node *parent = node->parent;
    if (!parent)
        return;
    kr_xml_node *prev = NULL;
    for (kr_xml_node *c = parent->children; c && c != node; c = c->next)
        prev = c;
    if (prev)
        prev->next = node->next;
    else if (parent->children == node)
        parent->children = node->next;
    if (parent->last_child == node)
        parent->last_child = prev;
    node->parent = NULL;
    node->next = NULL;
}

static kr_xml_attr *kr_xml_attr_find(const kr_xml_node *e, const char *ns, const char *name,
                                     kr_xml_attr **prev_out)
{
    kr_xml_attr *prev = NULL;
    for (kr_xml_attr *at = e->attrs; at; prev = at, at = at->next) {
        if (kr_xml_str_eq(at->name, name) && kr_xml_str_eq(at->ns, ns)) {
            if (prev_out)
                *prev_out = prev;
            return at;
        }
    }
    return NULL;
}

const char *kr_xml_attr_get(const kr_xml_node *e, const char *name)
{
    return kr_xml_attr_get_ns(e, kr_xml_empty, name);
}

const char *kr_xml_attr_get_ns(const kr_xml_node *e, const char *ns, const char *name)
{
    kr_xml_attr *at = kr_xml_attr_find(e, ns ? ns : kr_xml_empty, name, NULL);
    return at ? at->value : NULL;
}

void kr_xml_attr_set(kr_arena *a, kr_xml_node *e, const char *name, const char *value)
{
    kr_xml_attr_set_ns(a, e, kr_xml_empty, name, value);
}

static void kr_xml_attr_remove(kr_xml_node *e, kr_xml_attr *at, kr_xml_attr *prev)
{
    if (prev)
        prev->next = at->next;
    else
        e->attrs = at->next;
}

void kr_xml_attr_set_ns(kr_arena *a, kr_xml_node *e, const char *ns, const char *name,
                        const char *value)
{
    if (!ns)
        ns = kr_xml_empty;
    kr_xml_attr *prev = NULL;
    kr_xml_attr *at = kr_xml_attr_find(e, ns, name, &prev);
    if (!value) {
        if (at)
            kr_xml_attr_remove(e, at, prev);
        return;
    }
    if (at) {
        at->value = kr_arena_strdup(a, value);
        return;
    }
    at = kr_arena_alloc(a, sizeof(*at));
    at->ns = ns[0] ? kr_arena_strdup(a, ns) : kr_xml_empty;
    at->name = kr_arena_strdup(a, name);
    at->value = kr_arena_strdup(a, value);
    at->next = NULL;
    /* Append, so attributes keep the order they were set in. */
    kr_xml_attr **tail = &e->attrs;
    while (*tail)
        tail = &(*tail)->next;
    *tail = at;
}

void kr_xml_attr_prepend_take(kr_arena *a, kr_xml_node *e, const char *ns, const char *name,
                              const char *value)
{
    kr_xml_attr *at = kr_arena_alloc(a, sizeof(*at));
    at->ns = ns ? ns : kr_xml_empty;
    at->name = name;
    at->value = value;
    at->next = e->attrs;
    e->attrs = at;
}

static bool kr_xml_elem_matches(const kr_xml_node *n, const char *ns, const char *name)
{
    return n->type == KR_XML_ELEMENT && (!ns || kr_xml_str_eq(n->ns, ns)) &&
           (!name || kr_xml_str_eq(n->name, name));
}

kr_xml_node *kr_xml_child_get(const kr_xml_node *e, const char *ns, const char *name)
{
    for (kr_xml_node *c = e->children; c; c = c->next)
        if (kr_xml_elem_matches(c, ns, name))
            return c;
    return NULL;
}

kr_xml_node *kr_xml_first_elem(const kr_xml_node *e)
{
    return kr_xml_child_get(e, NULL, NULL);
}

kr_xml_node *kr_xml_next_elem(const kr_xml_node *e)
{
    for (kr_xml_node *c = e->next; c; c = c->next)
        if (c->type == KR_XML_ELEMENT)
            return c;
    return NULL;
}

const char *kr_xml_text_get(kr_arena *a, const kr_xml_node *e)
{
    size_t total = 0, count = 0;
    const kr_xml_node *only = NULL;
    for (const kr_xml_node *c = e->children; c; c = c->next) {
        if (c->type != KR_XML_TEXT)
            continue;
        total += c->text_len;
        count++;
        only = c;
    }
    if (count == 0)
        return kr_xml_empty;
    if (count == 1)
        return only->text; /* already NUL-terminated and immutable: no copy */
    char *out = kr_arena_alloc(a, total + 1);
    char *w = out;
    for (const kr_xml_node *c = e->children; c; c = c->next) {
        if (c->type != KR_XML_TEXT)
            continue;
        memcpy(w, c->text, c->text_len);
        w += c->text_len;
    }
    *w = '\0';
    return out;
}

static kr_xml_attr *kr_xml_attrs_copy(kr_arena *a, const kr_xml_attr *src)
{
    kr_xml_attr *head = NULL, **tail = &head;
    for (; src; src = src->next) {
        kr_xml_attr *at = kr_arena_alloc(a, sizeof(*at));
        at->ns = src->ns[0] ? kr_arena_strdup(a, src->ns) : kr_xml_empty;
        at->name = kr_arena_strdup(a, src->name);
        at->value = kr_arena_strdup(a, src->value);
        at->next = NULL;
        *tail = at;
        tail = &at->next;
    }
    return head;
}

/* Copy of one node without its children, appended to parent when parent is not NULL. */
static kr_xml_node *kr_xml_node_copy_one(kr_arena *a, const kr_xml_node *src, kr_xml_node *parent)
{
    if (src->type != KR_XML_ELEMENT) {
        kr_xml_node *t = kr_xml_node_alloc(a, src->type);
        t->text = kr_arena_strndup(a, src->text, src->text_len);
        t->text_len = src->text_len;
        if (parent)
            kr_xml_child_append(parent, t);
        return t;
    }
    /* Share the parent's copy of the namespace when it is the same string. */
    const char *ns = (parent && kr_xml_str_eq(parent->ns, src->ns)) ? parent->ns
                     : src->ns[0]                                   ? kr_arena_strdup(a, src->ns)
                                                                    : kr_xml_empty;
    kr_xml_node *e = kr_xml_elem_add_take(a, parent, ns, kr_arena_strdup(a, src->name));
    e->attrs = kr_xml_attrs_copy(a, src->attrs);
    return e;
}

kr_xml_node *kr_xml_node_copy(kr_arena *a, const kr_xml_node *e)
{
    /* Iterative pre-order walk, so a deep tree cannot exhaust the C stack. */
    kr_xml_node *root = kr_xml_node_copy_one(a, e, NULL);
    const kr_xml_node *src = e;
    kr_xml_node *dst = root;
    for (;;) {
        if (src->type == KR_XML_ELEMENT && src->children) {
            src = src->children;
            dst = kr_xml_node_copy_one(a, src, dst);
            continue;
        }
        while (src != e && !src->next) {
            src = src->parent;
            dst = dst->parent;
        }
        if (src == e)
            return root;
        src = src->next;
        dst = kr_xml_node_copy_one(a, src, dst->parent);
    }
}
