/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * The module registry and the event and filter tables (see modules.h). At
 * start every handler spec is indexed by the namespace it names (or kept in
 * the catch-all list), each list sorted by descending priority; session slots
 * and directory flag bits are handed out; service modules' domains join the
 * address table. Matching a stanza looks up the namespace of each child
 * element (a run of siblings sharing one namespace string, as the parser
 * makes them, is looked up once), filters by phase, kind, type, addressing
 * and host, and merges the hits by priority, each spec once; no string is
 * built and nothing is allocated.
 */
#include "server/modules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/error.h"
#include "core/hmap.h"
#include "core/log.h"
#include "server/router.h"

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
extern const kr_module_def kr_mod_echo;

/* The built-in modules, in no particular order (priorities decide). */
static const kr_module_def *const kr_module_list[] = {
    &kr_mod_ping,    &kr_mod_iq_fallback, &kr_mod_roster,   &kr_mod_presence,
    &kr_mod_offline, &kr_mod_disco,       &kr_mod_version,  &kr_mod_time,
    &kr_mod_vcard,   &kr_mod_private,     &kr_mod_blocking, &kr_mod_register,
    &kr_mod_echo,
};

#define KR_MODULE_COUNT (sizeof(kr_module_list) / sizeof(kr_module_list[0]))
#define KR_MODULES_MAX_FLAGS 32

typedef struct kr_spec_entry {
    const kr_handler_spec *spec;
    const kr_module_def *module;
} kr_spec_entry;

typedef struct kr_spec_list {
    kr_spec_entry *items;
    size_t count;
} kr_spec_list;

typedef struct kr_filter_entry {
    const kr_filter_spec *spec;
} kr_filter_entry;

struct kr_modules {
    const kr_module_def *const *list; /* the modules, in their list's order */
    size_t count;
    kr_strmap by_ns;      /* child namespace -> kr_spec_list */
    kr_spec_list catch_all;
    kr_filter_entry *filters; /* by descending priority */
    size_t filter_count;
    unsigned slots;
    unsigned flags;
    unsigned account_slots;
};

static void kr_spec_list_add(kr_spec_list *l, const kr_handler_spec *s, const kr_module_def *m)
{
    l->items = kr_xrealloc(l->items, (l->count + 1) * sizeof(*l->items));
    size_t i = l->count++;
    /* Keep sorted by descending priority; equal priorities keep their order. */
    while (i > 0 && l->items[i - 1].spec->priority < s->priority) {
        l->items[i] = l->items[i - 1];
        i--;
    }
    l->items[i] = (kr_spec_entry){s, m};
}

static void kr_modules_index(kr_modules *m, const kr_handler_spec *s, const kr_module_def *d)
{
    if (!s->ns) {
        kr_spec_list_add(&m->catch_all, s, d);
        return;
    }
    kr_spec_list *l = kr_strmap_get(&m->by_ns, s->ns);
    if (!l) {
        l = kr_xcalloc(1, sizeof(*l));
        kr_strmap_put(&m->by_ns, s->ns, l);
    }
    kr_spec_list_add(l, s, d);
}

static void kr_modules_add_filter(kr_modules *m, const kr_filter_spec *f)
{
    m->filters = kr_xrealloc(m->filters, (m->filter_count + 1) * sizeof(*m->filters));
    size_t i = m->filter_count++;
    while (i > 0 && m->filters[i - 1].spec->priority < f->priority) {
        m->filters[i] = m->filters[i - 1];
        i--;
    }
    m->filters[i].spec = f;
}

/* Per-session slots and directory flags are numbered in module order. */
static int kr_modules_assign(kr_modules *m, const kr_module_def *d)
{
    if (d->session_slot)
        *d->session_slot = m->slots++;
    if (d->session_flag) {
        if (m->flags >= KR_MODULES_MAX_FLAGS) {
            KR_LOG(KR_LOG_ERROR, NULL, "module %s: no directory flag left", d->name);
            return -1;
        }
        *d->session_flag = 1u << m->flags++;
    }
    if (d->account_slot) {
        if (m->account_slots >= KR_SESSIONS_STATE_SLOTS) {
            KR_LOG(KR_LOG_ERROR, NULL, "module %s: no account state slot left", d->name);
            return -1;
        }
        *d->account_slot = m->account_slots++;
    }
    return 0;
}

/* A service module's domains join the address table. */
static int kr_modules_add_services(kr_server *srv, const kr_module_def *d)
{
    if (!d->service)
        return 0;
    char *const *domains = NULL;
    size_t n = d->service->domains(srv, &domains);
    for (size_t i = 0; i < n; i++) {
        if (!kr_hosts_add(srv->hosts, domains[i], KR_HOST_SERVICE, kr_router_deliver_service,
                          d, d->service->identity.name)) {
            KR_LOG(KR_LOG_ERROR, NULL, "module %s: the domain %s is already served", d->name,
                   domains[i]);
            return -1;
        }
        KR_LOG(KR_LOG_INFO, NULL, "serving %s (%s)", domains[i], d->name);
    }
    return 0;
}

/* Every module's configuration is loaded, and no store name is taken twice. */
static int kr_modules_check(kr_server *srv, const kr_module_def *const *list, size_t n)
{
    kr_strmap names;
    kr_strmap_init(&names);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const kr_module_def *d = list[i];
        if (d->config && !kr_config_section_get(srv->cfg, d->config)) {
            KR_LOG(KR_LOG_ERROR, NULL, "module %s: its configuration was not loaded", d->name);
            rc = -1;
        }
        for (size_t k = 0; k < d->store_count && rc == 0; k++) {
            if (kr_strmap_get(&names, d->stores[k].name)) {
                KR_LOG(KR_LOG_ERROR, NULL, "module %s: store %s is taken", d->name,
                       d->stores[k].name);
                rc = -1;
            }
            kr_strmap_put(&names, d->stores[k].name, (void *)d);
        }
    }
    kr_strmap_clear(&names);
    return rc;
}

int kr_modules_start(kr_server *srv)
{
    return kr_modules_start_list(srv, kr_module_list, KR_MODULE_COUNT);
}

int kr_modules_start_list(kr_server *srv, const kr_module_def *const *list, size_t n)
{
    kr_modules *m = kr_xcalloc(1, sizeof(*m));
    m->list = list;
    m->count = n;
    kr_strmap_init(&m->by_ns);
    srv->modules = m;
    if (kr_modules_check(srv, list, n) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const kr_module_def *d = list[i];
        for (size_t k = 0; k < d->handler_count; k++)
            kr_modules_index(m, &d->handlers[k], d);
        for (size_t k = 0; k < d->filter_count; k++)
            kr_modules_add_filter(m, &d->filters[k]);
        if (kr_modules_assign(m, d) != 0 || kr_modules_add_services(srv, d) != 0)
            return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const kr_module_def *d = list[i];
        if (d->init && d->init(srv) != 0) {
            KR_LOG(KR_LOG_ERROR, NULL, "module %s failed to start", d->name);
            return -1;
        }
    }
    return 0;
}

void kr_modules_stop(kr_server *srv)
{
    kr_modules *m = srv->modules;
    if (!m)
        return;
    for (size_t i = m->count; i-- > 0;)
        if (m->list[i]->fini)
            m->list[i]->fini(srv);
    for (size_t i = 0; i < m->by_ns.cap; i++) {
        kr_spec_list *l = m->by_ns.slots[i].value;
        if (m->by_ns.slots[i].key) {
            free(l->items);
            free(l);
        }
    }
    kr_strmap_clear(&m->by_ns);
    free(m->catch_all.items);
    free(m->filters);
    free(m);
    srv->modules = NULL;
}

unsigned kr_modules_slot_count(const kr_server *srv)
{
    return srv->modules ? srv->modules->slots : 0;
}

/* ---- matching ----------------------------------------------------------------------------- */

/* Does the destination host let this spec see the stanza (KR_PHASE_IN only)? */
static bool kr_spec_host_ok(const kr_spec_entry *e, const kr_stanza *st)
{
    if (!st->host)
        return true; /* another domain: the addressing bits decide */
    unsigned hosts = e->spec->hosts ? e->spec->hosts : KR_HOSTS_DEFAULT;
    switch (st->host->kind) {
    case KR_HOST_USER:
        return (hosts & KR_HOST_USER) != 0;
    case KR_HOST_SERVICE:
        return (hosts & KR_HOST_ANY_SERVICE) ||
               ((hosts & KR_HOST_SERVICE) && e->module == st->host->module);
    case KR_HOST_COMPONENT:
        return (hosts & KR_HOST_COMPONENT) != 0;
    }
    return false;
}

static bool kr_spec_matches(const kr_spec_entry *e, const kr_stanza *st, kr_phase phase)
{
    const kr_handler_spec *s = e->spec;
    return (s->phases & phase) && (s->kinds & st->kind) && (s->types & st->type) &&
           (s->addressing & st->addressing) && (phase != KR_PHASE_IN || kr_spec_host_ok(e, st));
}

/* Insert a match keeping descending priority; a spec already in the list is not added twice
 * (it matched an earlier child). Equal priorities keep the order they came in. */
static size_t kr_match_add(kr_match *out, size_t n, size_t max, const kr_handler_spec *s,
                           kr_xml_node *child)
{
    for (size_t i = 0; i < n; i++)
        if (out[i].spec == s)
            return n;
    kr_assert(n < max); /* more matching handlers than a route can hold */
    size_t i = n;
    while (i > 0 && out[i - 1].spec->priority < s->priority) {
        out[i] = out[i - 1];
        i--;
    }
    out[i] = (kr_match){s, child};
    return n + 1;
}

size_t kr_modules_match(kr_server *srv, const kr_stanza *st, kr_phase phase, kr_match *out,
                        size_t max)
{
    kr_modules *m = srv->modules;
    size_t n = 0;
    const char *last_ns = NULL;
    const kr_spec_list *l = NULL;
    for (kr_xml_node *c = kr_xml_first_elem(st->elem); c && m->by_ns.count;
         c = kr_xml_next_elem(c)) {
        if (c->ns != last_ns) { /* a sibling with the same string reuses the lookup */
            last_ns = c->ns;
            l = kr_strmap_get(&m->by_ns, c->ns);
        }
        for (size_t i = 0; l && i < l->count; i++) {
            const kr_spec_entry *e = &l->items[i];
            if ((!e->spec->name || strcmp(e->spec->name, c->name) == 0) &&
                kr_spec_matches(e, st, phase))
                n = kr_match_add(out, n, max, e->spec, c);
        }
    }
    for (size_t i = 0; i < m->catch_all.count; i++)
        if (kr_spec_matches(&m->catch_all.items[i], st, phase))
            n = kr_match_add(out, n, max, m->catch_all.items[i].spec, NULL);
    return n;
}

kr_verdict kr_modules_filter(kr_server *srv, kr_outgoing *o)
{
    kr_modules *m = srv->modules;
    for (size_t i = 0; i < m->filter_count; i++) {
        const kr_filter_spec *f = m->filters[i].spec;
        if ((f->kinds & o->kind) && f->fn(o) == KR_HANDLED)
            return KR_HANDLED;
    }
    return KR_PASS;
}

void kr_modules_session_event(kr_server *srv, kr_session *s, kr_session_event ev)
{
    kr_modules *m = srv->modules;
    for (size_t i = 0; i < m->count; i++)
        if (m->list[i]->session_event)
            m->list[i]->session_event(srv, s, ev);
}

void kr_modules_stream_features(kr_server *srv, bool authenticated, kr_buf *out)
{
    kr_modules *m = srv->modules;
    for (size_t i = 0; i < m->count; i++)
        if (m->list[i]->stream_features)
            m->list[i]->stream_features(srv, authenticated, out);
}

void kr_modules_disco_features(kr_server *srv, void (*fn)(void *ud, const char *feature),
                               void *ud)
{
    kr_modules *m = srv->modules;
    for (size_t i = 0; i < m->count; i++) {
        const char *const *f = m->list[i]->disco_features;
        for (; f && *f; f++)
            fn(ud, *f);
    }
}

/* ---- what the built-in modules bring to the configuration and the store ---------------- */

size_t kr_modules_config_sections(const kr_config_section *const **out)
{
    static const kr_config_section *sections[KR_MODULE_COUNT];
    static size_t n;
    if (n == 0) /* at start-up, before any thread: the list is fixed */
        for (size_t i = 0; i < KR_MODULE_COUNT; i++)
            if (kr_module_list[i]->config)
                sections[n++] = kr_module_list[i]->config;
    *out = sections;
    return n;
}

/* One store: bring it from its recorded version to the module's, in one transaction. */
static int kr_modules_upgrade_store(kr_store *store, const kr_module_def *d,
                                    const kr_store_decl *decl)
{
    unsigned have;
    int rc = kr_store_version_get(store, decl->name, &have);
    if (rc != 0 || have == decl->version)
        return rc;
    if (have > decl->version || !decl->upgrade) {
        KR_LOG(KR_LOG_ERROR, NULL, "module %s: store %s holds records of version %u; this "
               "kurierd writes version %u and cannot read them", d->name, decl->name, have,
               decl->version);
        return KR_ESTORE;
    }
    KR_LOG(KR_LOG_INFO, NULL, "module %s: upgrading store %s from version %u to %u", d->name,
           decl->name, have, decl->version);
    rc = kr_store_begin(store);
    if (rc == 0)
        rc = decl->upgrade(store, decl->name, have);
    if (rc == 0)
        rc = kr_store_version_put(store, decl->name, decl->version);
    if (rc == 0)
        return kr_store_commit(store);
    kr_store_rollback(store);
    return rc;
}

int kr_modules_upgrade_stores(kr_store *store)
{
    for (size_t i = 0; i < KR_MODULE_COUNT; i++) {
        const kr_module_def *d = kr_module_list[i];
        for (size_t k = 0; k < d->store_count; k++) {
            int rc = kr_modules_upgrade_store(store, d, &d->stores[k]);
            if (rc != 0) {
                KR_LOG(KR_LOG_ERROR, NULL, "module %s: store %s: %s (%s)", d->name,
                       d->stores[k].name, kr_strerror(rc), kr_store_errmsg(store));
                return rc;
            }
        }
    }
    return 0;
}

void kr_modules_user_deleted(const kr_config *cfg, const char *jid)
{
    for (size_t i = 0; i < KR_MODULE_COUNT; i++)
        if (kr_module_list[i]->user_delete)
            kr_module_list[i]->user_delete(cfg, jid);
}
