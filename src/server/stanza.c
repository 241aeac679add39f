/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Stanza decoding and error builders (see stanza.h).
 */
#include "server/stanza.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "server/hosts.h"
#include "xml/serialize.h"

typedef struct kr_type_name {
    const char *name;
    kr_stanza_type type;
} kr_type_name;

static const kr_type_name kr_message_types[] = {
    {"normal", KR_TYPE_NORMAL},     {"chat", KR_TYPE_CHAT},   {"groupchat", KR_TYPE_GROUPCHAT},
    {"headline", KR_TYPE_HEADLINE}, {"error", KR_TYPE_ERROR}, {NULL, 0}};
static const kr_type_name kr_presence_types[] = {
    {"unavailable", KR_TYPE_UNAVAILABLE}, {"subscribe", KR_TYPE_SUBSCRIBE},
    {"subscribed", KR_TYPE_SUBSCRIBED},   {"unsubscribe", KR_TYPE_UNSUBSCRIBE},
    {"unsubscribed", KR_TYPE_UNSUBSCRIBED}, {"probe", KR_TYPE_PROBE},
    {"error", KR_TYPE_ERROR},             {NULL, 0}};
static const kr_type_name kr_iq_types[] = {{"get", KR_TYPE_GET},
                                           {"set", KR_TYPE_SET},
                                           {"result", KR_TYPE_RESULT},
                                           {"error", KR_TYPE_ERROR},
                                           {NULL, 0}};

static kr_stanza_type kr_stanza_type_parse(const kr_type_name *table, const char *s)
{
    if (!s)
        return KR_TYPE_NONE;
    for (; table->name; table++)
        if (strcmp(table->name, s) == 0)
            return table->type;
    return KR_TYPE_INVALID;
}

const char *kr_stanza_decode(kr_stanza *st, kr_xml_node *elem, kr_arena *arena,
                             const kr_hosts *hosts, const kr_jid *from_known)
{
    kr_stanza *base = st->base;
    unsigned refs = st->refs;
    memset(st, 0, sizeof(*st));
    st->base = base;
    st->refs = refs;
    st->elem = elem;
    st->arena = arena;
    const char *type = kr_xml_attr_get(elem, "type");
    if (strcmp(elem->name, "message") == 0) {
        st->kind = KR_STANZA_MESSAGE;
        st->type = kr_stanza_type_parse(kr_message_types, type);
    } else if (strcmp(elem->name, "presence") == 0) {
        st->kind = KR_STANZA_PRESENCE;
        st->type = kr_stanza_type_parse(kr_presence_types, type);
    } else {
        st->kind = KR_STANZA_IQ;
        st->type = kr_stanza_type_parse(kr_iq_types, type);
    }
    st->id = kr_xml_attr_get(elem, "id");
    st->payload = kr_xml_first_elem(elem);
    if (from_known) {
        st->from.local = from_known->local ? kr_arena_strdup(arena, from_known->local) : NULL;
        st->from.domain = kr_arena_strdup(arena, from_known->domain);
        st->from.resource =
            from_known->resource ? kr_arena_strdup(arena, from_known->resource) : NULL;
    } else {
        const char *from = kr_xml_attr_get(elem, "from");
        if (from && kr_jid_parse(arena, from, &st->from) != 0)
            return "jid-malformed";
    }
    st->from_host = kr_hosts_find(hosts, st->from.domain);
    if (st->type == KR_TYPE_INVALID)
        return "bad-request";
    /* RFC 6120 §8.2.3: an iq needs an id and exactly one payload for get/set. */
    if (st->kind == KR_STANZA_IQ) {
        if (!st->id || st->type == KR_TYPE_NONE)
            return "bad-request";
        if ((st->type & (KR_TYPE_GET | KR_TYPE_SET)) &&
            (!st->payload || kr_xml_next_elem(st->payload)))
            return "bad-request";
    }
    const char *to = kr_xml_attr_get(elem, "to");
    if (to) {
        if (kr_jid_parse(arena, to, &st->to) != 0)
            return "jid-malformed";
    } else {
        /* RFC 6120 §10.3: no 'to' means the sender's own account (bare JID). */
        st->to_absent = true;
        st->to.local = st->from.local;
        st->to.domain = st->from.domain;
        st->to.resource = NULL;
    }
    st->host = kr_hosts_find(hosts, st->to.domain);
    if (!st->host)
        st->addressing = KR_ADDR_REMOTE;
    else if (!st->to.local)
        st->addressing = KR_ADDR_HOST;
    else if (!st->to.resource && st->from.local && st->from_host == st->host &&
             strcmp(st->to.local, st->from.local) == 0)
        st->addressing = KR_ADDR_SELF;
    else if (!st->to.resource)
        st->addressing = KR_ADDR_BARE;
    else
        st->addressing = KR_ADDR_FULL;
    return NULL;
}

kr_stanza *kr_stanza_new(kr_arena *arena, kr_xml_node *elem, const kr_hosts *hosts,
                         const kr_jid *from_known, const char **err)
{
    kr_stanza *st = kr_arena_zalloc(arena, sizeof(*st));
    st->refs = 1;
    *err = kr_stanza_decode(st, elem, arena, hosts, from_known);
    return st;
}

kr_stanza *kr_stanza_new_in(kr_stanza *base, kr_xml_node *elem, const kr_hosts *hosts,
                            const char **err)
{
    kr_stanza *st = kr_arena_zalloc(base->arena, sizeof(*st));
    st->refs = 1;
    st->base = kr_stanza_ref(base);
    *err = kr_stanza_decode(st, elem, base->arena, hosts, NULL);
    return st;
}

kr_stanza *kr_stanza_ref(kr_stanza *st)
{
    kr_assert(st->refs > 0);
    st->refs++;
    return st;
}

void kr_stanza_unref(kr_stanza *st)
{
    if (!st)
        return;
    kr_assert(st->refs > 0);
    if (--st->refs > 0)
        return;
    if (st->base)
        kr_stanza_unref(st->base);
    else
        kr_arena_free(st->arena);
}

typedef struct kr_condition_type {
    const char *condition;
    const char *type;
} kr_condition_type;

/* RFC 6120 §8.3.3: the error type each condition usually carries. */
static const kr_condition_type kr_condition_types[] = {
    {"bad-request", "modify"},
    {"conflict", "cancel"},
    {"feature-not-implemented", "cancel"},
    {"forbidden", "auth"},
    {"gone", "cancel"},
    {"internal-server-error", "cancel"},
    {"item-not-found", "cancel"},
    {"jid-malformed", "modify"},
    {"not-acceptable", "modify"},
    {"not-allowed", "cancel"},
    {"not-authorized", "auth"},
    {"policy-violation", "modify"},
    {"recipient-unavailable", "wait"},
    {"redirect", "modify"},
    {"registration-required", "auth"},
    {"remote-server-not-found", "cancel"},
    {"remote-server-timeout", "wait"},
    {"resource-constraint", "wait"},
    {"service-unavailable", "cancel"},
    {"subscription-required", "auth"},
    {"undefined-condition", "cancel"},
    {"unexpected-request", "wait"},
    {NULL, NULL}};

const char *kr_stanza_error_type(const char *condition)
{
    for (const kr_condition_type *c = kr_condition_types; c->condition; c++)
        if (strcmp(c->condition, condition) == 0)
            return c->type;
    return "cancel";
}

void kr_stanza_make_error(kr_stanza *st, const char *condition, const char *text,
                          const char *from_override)
{
    kr_arena *a = st->arena;
    kr_xml_node *e = st->elem;
    const char *orig_from = kr_xml_attr_get(e, "from");
    const char *orig_to = kr_xml_attr_get(e, "to");
    kr_xml_attr_set(a, e, "to", orig_from);
    kr_xml_attr_set(a, e, "from", from_override ? from_override : orig_to);
    kr_xml_attr_set(a, e, "type", "error");
    kr_xml_node *err = kr_xml_elem_add(a, e, KR_NS_CLIENT, "error");
    kr_xml_attr_set(a, err, "type", kr_stanza_error_type(condition));
    kr_xml_elem_add(a, err, KR_NS_STANZAS_ERR, condition);
    if (text) {
        kr_xml_node *t = kr_xml_elem_add(a, err, KR_NS_STANZAS_ERR, "text");
        kr_xml_attr_set_ns(a, t, KR_NS_XML, "lang", "en");
        kr_xml_text_add(a, t, text, strlen(text));
    }
}

kr_xml_node *kr_stanza_iq_result(kr_stanza *st)
{
    kr_xml_node *r = kr_xml_elem_new(st->arena, KR_NS_CLIENT, "iq");
    kr_xml_attr_set(st->arena, r, "type", "result");
    kr_xml_attr_set(st->arena, r, "id", st->id);
    kr_xml_attr_set(st->arena, r, "to", kr_xml_attr_get(st->elem, "from"));
    const char *to = kr_xml_attr_get(st->elem, "to");
    if (to)
        kr_xml_attr_set(st->arena, r, "from", to);
    return r;
}

void kr_stream_error_write(kr_buf *out, const char *condition, const char *text)
{
    kr_buf_printf(out, "<stream:error><%s xmlns='" KR_NS_STREAMS_ERR "'/>", condition);
    if (text) {
        kr_buf_puts(out, "<text xmlns='" KR_NS_STREAMS_ERR "' xml:lang='en'>");
        kr_xml_escape_text(out, text, strlen(text));
        kr_buf_puts(out, "</text>");
    }
    kr_buf_puts(out, "</stream:error></stream:stream>");
}

kr_xml_limits kr_stanza_intake_limits(size_t max_stanza_bytes, unsigned max_depth,
                                      unsigned max_attributes)
{
    kr_xml_limits l = {max_stanza_bytes, max_depth, max_attributes};
    if (l.max_stanza_bytes > 2 * KR_STANZA_ADDED_BYTES)
        l.max_stanza_bytes -= KR_STANZA_ADDED_BYTES;
    if (l.max_attrs > 2 * KR_STANZA_ADDED_ATTRS)
        l.max_attrs -= KR_STANZA_ADDED_ATTRS;
    return l;
}

/* ---- frozen stanzas -------------------------------------------------------------------- */

kr_frozen *kr_frozen_new(const kr_xml_node *elem, kr_stanza_kind kind, kr_stanza_type type)
{
    kr_frozen *f = kr_xmalloc(sizeof(*f));
    atomic_init(&f->refs, 1);
    f->arena = kr_arena_new(512);
    f->elem = kr_xml_node_copy(f->arena, elem);
    kr_buf b = KR_BUF_INIT;
    kr_xml_serialize(&b, f->elem, KR_NS_CLIENT);
    f->bytes = kr_rbuf_from_buf(&b);
    f->bytes->meta = kr_stanza_meta(kind, type);
    return f;
}

kr_frozen *kr_frozen_ref(kr_frozen *f)
{
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

void kr_frozen_unref(kr_frozen *f)
{
    if (!f || atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
        return;
    kr_rbuf_unref(f->bytes);
    kr_arena_free(f->arena);
    free(f);
}

kr_xml_node *kr_frozen_thaw(const kr_frozen *f, kr_arena *arena)
{
    return kr_xml_node_copy(arena, f->elem);
}

unsigned kr_stanza_meta_of(const kr_xml_node *elem)
{
    const char *type = kr_xml_attr_get(elem, "type");
    if (strcmp(elem->name, "message") == 0)
        return kr_stanza_meta(KR_STANZA_MESSAGE, kr_stanza_type_parse(kr_message_types, type));
    if (strcmp(elem->name, "presence") == 0)
        return kr_stanza_meta(KR_STANZA_PRESENCE,
                              kr_stanza_type_parse(kr_presence_types, type));
    return kr_stanza_meta(KR_STANZA_IQ, kr_stanza_type_parse(kr_iq_types, type));
}

unsigned kr_stanza_meta_of_bytes(const char *data, size_t len)
{
    const char *end = memchr(data, '>', len); /* '>' is escaped inside attribute values */
    size_t tag = end ? (size_t)(end - data) : len;
    kr_stanza_kind kind = KR_STANZA_IQ;
    const kr_type_name *types = kr_iq_types;
    if (tag >= 8 && memcmp(data, "<message", 8) == 0) {
        kind = KR_STANZA_MESSAGE;
        types = kr_message_types;
    } else if (tag >= 9 && memcmp(data, "<presence", 9) == 0) {
        kind = KR_STANZA_PRESENCE;
        types = kr_presence_types;
    }
    for (size_t i = 0; i + 7 <= tag; i++) {
        if (memcmp(data + i, " type='", 7) != 0)
            continue;
        const char *v = data + i + 7;
        const char *q = memchr(v, '\'', tag - i - 7);
        if (!q)
            break;
        char value[16];
        size_t n = (size_t)(q - v);
        if (n >= sizeof(value))
            return kr_stanza_meta(kind, KR_TYPE_INVALID);
        memcpy(value, v, n);
        value[n] = '\0';
        return kr_stanza_meta(kind, kr_stanza_type_parse(types, value));
    }
    return kr_stanza_meta(kind, KR_TYPE_NONE);
}

kr_rbuf *kr_stanza_serialize(const kr_stanza *st)
{
    kr_buf b = KR_BUF_INIT;
    kr_xml_serialize(&b, st->elem, KR_NS_CLIENT);
    kr_rbuf *r = kr_rbuf_from_buf(&b);
    r->meta = kr_stanza_meta(st->kind, st->type);
    return r;
}
