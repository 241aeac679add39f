/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Module registry and dispatch table (see modules.h). Specs with a payload
 * namespace are indexed by namespace and element; catch-all specs (ns NULL)
 * are kept in a separate list that is merged in priority order at dispatch.
 */
#include "server/modules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/hmap.h"
#include "core/log.h"

extern const kr_module_def kr_mod_ping;
extern const kr_module_def kr_mod_iq_fallback;
extern const kr_module_def kr_mod_roster;
extern const kr_module_def kr_mod_presence;
extern const kr_module_def kr_mod_offline;
extern const kr_module_def kr_mod_disco;
extern const kr_module_def kr_mod_version;
extern const kr_module_def kr_mod_time;
extern const kr_module_def kr_mod_vcard;
extern const kr_module_def kr_mod_private;
extern const kr_module_def kr_mod_blocking;
extern const kr_module_def kr_mod_register;

/* The built-in modules, in no particular order (priorities decide). */
static const kr_module_def *const kr_module_list[] = {
    &kr_mod_ping,    &kr_mod_iq_fallback, &kr_mod_roster,  &kr_mod_presence,
    &kr_mod_offline, &kr_mod_disco,       &kr_mod_version, &kr_mod_time,
    &kr_mod_vcard,   &kr_mod_private,     &kr_mod_blocking, &kr_mod_register,
};

#define KR_MODULE_COUNT (sizeof(kr_module_list) / sizeof(kr_module_list[0]))

typedef struct kr_spec_list {
    const kr_handler_spec **items;
    size_t count;
} kr_spec_list;

struct kr_modules {
    kr_strmap by_payload; /* "ns element" and "ns" (any element) -> kr_spec_list */
    kr_spec_list catch_all;
};

static void kr_spec_list_add(kr_spec_list *l, const kr_handler_spec *s)
{
    l->items = kr_xrealloc(l->items, (l->count + 1) * sizeof(*l->items));
    size_t i = l->count++;
    /* Keep sorted by descending priority. */
    while (i > 0 && l->items[i - 1]->priority < s->priority) {
        l->items[i] = l->items[i - 1];
        i--;
    }
    l->items[i] = s;
}

static void kr_modules_index(kr_modules *m, const kr_handler_spec *s)
{
    if (!s->ns) {
        kr_spec_list_add(&m->catch_all, s);
        return;
    }
    char key[512];
    snprintf(key, sizeof(key), "%s %s", s->ns, s->name ? s->name : "");
    kr_spec_list *l = kr_strmap_get(&m->by_payload, key);
    if (!l) {
        l = kr_xcalloc(1, sizeof(*l));
        kr_strmap_put(&m->by_payload, key, l);
    }
    kr_spec_list_add(l, s);
}

int kr_modules_start(kr_server *srv)
{
    kr_modules *m = kr_xcalloc(1, sizeof(*m));
    kr_strmap_init(&m->by_payload);
    srv->modules = m;
    for (size_t i = 0; i < KR_MODULE_COUNT; i++) {
        const kr_module_def *d = kr_module_list[i];
        for (size_t k = 0; k < d->handler_count; k++)
            kr_modules_index(m, &d->handlers[k]);
        if (d->init) {
            int r = d->init(srv);
            if (r != 0) {
                KR_LOG(KR_LOG_ERROR, NULL, "module %s failed to start", d->name);
                return r;
            }
        }
    }
    return 0;
}

void kr_modules_stop(kr_server *srv)
{
    kr_modules *m = srv->modules;
    if (!m)
        return;
    for (size_t i = KR_MODULE_COUNT; i-- > 0;)
        if (kr_module_list[i]->fini)
            kr_module_list[i]->fini(srv);
    for (size_t i = 0; i < m->by_payload.cap; i++) {
        kr_spec_list *l = m->by_payload.slots[i].value;
        if (m->by_payload.slots[i].key) {
            free(l->items);
            free(l);
        }
    }
    kr_strmap_clear(&m->by_payload);
    free(m->catch_all.items);
    free(m);
    srv->modules = NULL;
}

static bool kr_spec_matches(const kr_handler_spec *s, const kr_stanza *st, kr_phase phase)
{
    return (s->phases & phase) && (s->kinds & st->kind) && (s->types & st->type) &&
           (s->addressing & st->addressing);
}

/* Look up the specs for the payload: exact element first, then namespace-wide. The key is
 * built in a stack buffer; no allocation happens on dispatch. */
static const kr_spec_list *kr_modules_lookup(kr_modules *m, const kr_xml_node *payload,
                                             bool any_element)
{
    if (!payload || m->by_payload.count == 0)
        return NULL;
    /* "ns name" or "ns " (this runs four times per routed stanza: no snprintf) */
    char key[512];
    size_t ns_len = strlen(payload->ns);
    size_t name_len = any_element ? 0 : strlen(payload->name);
    if (ns_len + 1 + name_len >= sizeof(key))
        return NULL;
    memcpy(key, payload->ns, ns_len);
    key[ns_len] = ' ';
    memcpy(key + ns_len + 1, payload->name, name_len);
    key[ns_len + 1 + name_len] = '\0';
    return kr_strmap_get(&m->by_payload, key);
}

kr_verdict kr_modules_dispatch(kr_server *srv, kr_worker *w, kr_stanza *st, kr_session *origin,
                               kr_phase phase)
{
    kr_modules *m = srv->modules;
    const kr_spec_list *lists[3] = {kr_modules_lookup(m, st->payload, false),
                                    kr_modules_lookup(m, st->payload, true), &m->catch_all};
    size_t pos[3] = {0, 0, 0};
    kr_handler_ctx ctx = {srv, w, st, origin, phase};
    /* Merge the three priority-sorted lists. */
    for (;;) {
        int best = -1;
        for (int i = 0; i < 3; i++) {
            const kr_spec_list *l = lists[i];
            while (l && pos[i] < l->count && !kr_spec_matches(l->items[pos[i]], st, phase))
                pos[i]++;
            if (!l || pos[i] >= l->count)
                continue;
            if (best < 0 || l->items[pos[i]]->priority > lists[best]->items[pos[best]]->priority)
                best = i;
        }
        if (best < 0)
            return KR_PASS;
        const kr_handler_spec *s = lists[best]->items[pos[best]++];
        if (s->fn(&ctx) == KR_HANDLED)
            return KR_HANDLED;
    }
}

bool kr_modules_allow_delivery(kr_server *srv, const char *from, const char *to)
{
    for (size_t i = 0; i < KR_MODULE_COUNT; i++)
        if (kr_module_list[i]->allow_delivery && !kr_module_list[i]->allow_delivery(srv, from, to))
            return false;
    return true;
}

void kr_modules_session_event(kr_server *srv, kr_session *s, kr_session_event ev)
{
    for (size_t i = 0; i < KR_MODULE_COUNT; i++)
        if (kr_module_list[i]->session_event)
            kr_module_list[i]->session_event(srv, s, ev);
}

void kr_modules_stream_features(kr_server *srv, bool authenticated, kr_buf *out)
{
    for (size_t i = 0; i < KR_MODULE_COUNT; i++)
        if (kr_module_list[i]->stream_features)
            kr_module_list[i]->stream_features(srv, authenticated, out);
}

void kr_modules_disco_features(kr_server *srv, void (*fn)(void *ud, const char *feature),
                               void *ud)
{
    for (size_t i = 0; i < KR_MODULE_COUNT; i++) {
        const char *const *f = kr_module_list[i]->disco_features;
        for (; f && *f; f++)
            fn(ud, *f);
    }
}
