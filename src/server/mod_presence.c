/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Presence (RFC 6121 §4). Broadcast presence from a local session (no 'to')
 * goes at once to the user's own available resources (§4.2.2, §4.4.2,
 * §4.5.2), then, once the roster has been loaded on the storage thread, to
 * the available resources of every contact with a 'from' or 'both'
 * subscription. Initial presence also gets the user the presence of the
 * contacts it is subscribed to: contacts of ours are answered from the
 * session directory's last presences, after checking on the storage thread
 * that the contact's roster grants the user a 'from' subscription (§4.3.2);
 * contacts elsewhere get a probe (§4.3.1). Inbound subscription requests
 * still waiting for an answer are redelivered at the same time (§3.1.3).
 * Directed presence (§4.6) is delivered by the router and remembered per
 * session (KR_SLOT_PRESENCE) so that unavailable presence reaches those
 * entities too. Inbound probes for an account (§4.3.2) are answered here.
 * A broadcast is serialized once for the user's own resources and once per
 * contact ('to' = the contact's bare JID, shared by its resources). The
 * module owns its session slots (freed on KR_SESSION_CLOSED) and its job
 * structures; the roster is reloaded for every broadcast.
 */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/hmap.h"
#include "core/log.h"
#include "server/modules.h"
#include "server/roster.h"
#include "server/storage_thread.h"

#define KR_PRESENCE_DIRECTED_MAX 1024 /* entities remembered per session (§4.6) */

/* Per-session state in slots[KR_SLOT_PRESENCE]. */
typedef struct kr_presence_slot {
    bool available;     /* this module has seen the session's initial presence */
    kr_strmap directed; /* JIDs that got directed available presence (values unused) */
} kr_presence_slot;

static kr_presence_slot *kr_presence_slot_get(kr_session *s)
{
    kr_presence_slot *p = s->slots[KR_SLOT_PRESENCE];
    if (!p) {
        p = kr_xcalloc(1, sizeof(*p));
        kr_strmap_init(&p->directed);
        s->slots[KR_SLOT_PRESENCE] = p;
    }
    return p;
}

/* Move the remembered JIDs out of the slot into a new array. */
static char **kr_presence_directed_take(kr_presence_slot *p, size_t *n)
{
    *n = 0;
    if (p->directed.count == 0)
        return NULL;
    char **out = kr_xmalloc(p->directed.count * sizeof(*out));
    for (size_t i = 0; i < p->directed.cap; i++)
        if (p->directed.slots[i].key)
            out[(*n)++] = kr_xstrdup(p->directed.slots[i].key);
    kr_strmap_clear(&p->directed);
    kr_strmap_init(&p->directed);
    return out;
}

/* ---- broadcast --------------------------------------------------------------------------- */

enum { KR_PROBE_NONE = 0, KR_PROBE_LOCAL, KR_PROBE_REMOTE };

typedef struct kr_bcast_job {
    kr_server *srv;
    char *owner;          /* the user's bare JID */
    char *full;           /* the sending resource */
    bool initial;
    bool unavailable;
    kr_rbuf *bytes;       /* the presence as sent: from = full, no 'to' */
    kr_arena *arena;      /* a copy of it, for contacts on other domains */
    kr_xml_node *elem;
    char **directed;      /* unavailable: entities that had directed presence */
    size_t directed_n;
    /* filled on the storage thread */
    kr_roster_item *items;
    size_t n;
    unsigned char *probe; /* initial: KR_PROBE_* per item */
    int err;
} kr_bcast_job;

static void kr_bcast_job_free(kr_bcast_job *j)
{
    kr_roster_items_free(j->items, j->n);
    for (size_t i = 0; i < j->directed_n; i++)
        free(j->directed[i]);
    free(j->directed);
    free(j->probe);
    kr_rbuf_unref(j->bytes);
    kr_arena_free(j->arena);
    free(j->owner);
    free(j->full);
    free(j);
}

/* §4.3.2 for contacts of ours, decided where the rosters are: the contact must be online and
 * its roster must give the user a 'from' subscription. */
static unsigned char kr_bcast_probe_kind(kr_store *store, kr_bcast_job *j,
                                         const kr_roster_item *it)
{
    if (!(it->sub & KR_SUB_TO))
        return KR_PROBE_NONE;
    if (!kr_roster_is_local(j->srv, it->contact))
        return KR_PROBE_REMOTE;
    if (!kr_roster_has_available(j->srv, it->contact))
        return KR_PROBE_NONE;
    kr_roster_item back = {0};
    if (kr_store_roster_get(store, it->contact, j->owner, &back) != 0)
        return KR_PROBE_NONE;
    bool from = (back.sub & KR_SUB_FROM) != 0;
    kr_roster_item_clear(&back);
    return from ? KR_PROBE_LOCAL : KR_PROBE_NONE;
}

static void kr_bcast_run(kr_store *store, void *arg)
{
    kr_bcast_job *j = arg;
    uint64_t version;
    j->err = kr_store_roster_list(store, j->owner, &j->items, &j->n, &version);
    if (j->err != 0) {
        j->items = NULL;
        j->n = 0;
        return;
    }
    if (!j->initial || j->n == 0)
        return;
    j->probe = kr_xcalloc(j->n, 1);
    for (size_t i = 0; i < j->n; i++)
        j->probe[i] = kr_bcast_probe_kind(store, j, &j->items[i]);
}

/* Route a copy of the presence to an entity on another domain (s2s takes it from there). */
static void kr_bcast_route_copy(kr_bcast_job *j, kr_worker *w, const char *to, const char *type)
{
    kr_arena *a = kr_arena_new(1024);
    kr_xml_node *e = kr_xml_node_copy(a, j->elem);
    kr_xml_attr_set(a, e, "to", to);
    if (type)
        kr_xml_attr_set(a, e, "type", type);
    kr_roster_route_elem(j->srv, w, e, a);
    kr_arena_free(a);
}

/* §4.2.2 / §4.4.2 / §4.5.2: to a subscriber's available resources, 'to' = its bare JID. */
static void kr_bcast_to_contact(kr_bcast_job *j, kr_worker *w, const char *contact)
{
    if (!kr_modules_allow_delivery(j->srv, j->owner, contact))
        return; /* XEP-0191: no presence across a block, either way */
    if (!kr_roster_is_local(j->srv, contact)) {
        kr_bcast_route_copy(j, w, contact, NULL);
        return;
    }
    kr_session_ref refs[KR_ROSTER_MAX_RESOURCES];
    size_t n = kr_sessions_list(j->srv->sessions, contact, refs, KR_ROSTER_MAX_RESOURCES);
    if (n > KR_ROSTER_MAX_RESOURCES)
        n = KR_ROSTER_MAX_RESOURCES;
    kr_rbuf *b = NULL; /* serialized only when someone is there to get it */
    for (size_t i = 0; i < n; i++) {
        if (!refs[i].available)
            continue;
        if (!b)
            b = kr_presence_bytes_with_to(j->bytes, contact);
        kr_router_deliver(j->srv, w, &refs[i], b);
    }
    if (b)
        kr_rbuf_unref(b);
}

/* §4.6.2: unavailable presence to the entities that had directed presence and are not
 * subscribers (those have just had the broadcast). */
static void kr_bcast_directed(kr_bcast_job *j, kr_worker *w, const kr_strmap *sent)
{
    for (size_t i = 0; i < j->directed_n; i++) {
        kr_arena *a = kr_arena_new(256);
        kr_jid jid;
        bool covered = kr_jid_parse(a, j->directed[i], &jid) == 0 &&
                       kr_strmap_get(sent, kr_jid_format_bare(a, &jid)) != NULL;
        kr_arena_free(a);
        if (!covered)
            kr_bcast_route_copy(j, w, j->directed[i], "unavailable");
    }
}

/* Initial presence: the presence of contacts that let the user see them, and the inbound
 * subscription requests still waiting for an answer (§3.1.3). */
static void kr_bcast_initial(kr_bcast_job *j, kr_worker *w, uint64_t conn_id)
{
    kr_session *s = kr_session_find(w, conn_id);
    kr_session_ref self = {.worker = w->index, .conn_id = conn_id};
    for (size_t i = 0; s && i < j->n; i++) {
        const kr_roster_item *it = &j->items[i];
        if (j->probe && j->probe[i] == KR_PROBE_LOCAL)
            kr_roster_send_presences(j->srv, w, it->contact, j->full, &self, false, NULL);
        else if (j->probe && j->probe[i] == KR_PROBE_REMOTE)
            kr_roster_route_presence(j->srv, w, j->owner, it->contact, "probe");
        if (it->pending_in && it->pending_in_xml && !(it->sub & KR_SUB_FROM))
            kr_session_send(s, it->pending_in_xml, strlen(it->pending_in_xml));
    }
}

static void kr_bcast_done(kr_worker *w, void *arg, uint64_t conn_id)
{
    kr_bcast_job *j = arg;
    if (j->err != 0) {
        KR_LOG(KR_LOG_ERROR, j->full, "roster load for presence failed: %s",
               kr_strerror(j->err));
        kr_bcast_job_free(j);
        return;
    }
    kr_strmap sent;
    kr_strmap_init(&sent);
    for (size_t i = 0; i < j->n; i++) {
        const kr_roster_item *it = &j->items[i];
        if (!(it->sub & KR_SUB_FROM))
            continue;
        kr_bcast_to_contact(j, w, it->contact);
        if (j->directed_n)
            kr_strmap_put(&sent, it->contact, (void *)it);
    }
    if (j->unavailable)
        kr_bcast_directed(j, w, &sent);
    kr_strmap_clear(&sent);
    if (j->initial)
        kr_bcast_initial(j, w, conn_id);
    kr_bcast_job_free(j);
}

static kr_verdict kr_presence_directed(kr_handler_ctx *ctx)
{
    kr_stanza *st = ctx->st;
    if (st->addressing == KR_ADDR_SELF)
        return KR_PASS;
    kr_presence_slot *p = kr_presence_slot_get(ctx->origin);
    const char *to = kr_jid_format(st->arena, &st->to);
    if (st->type == KR_TYPE_UNAVAILABLE)
        kr_strmap_del(&p->directed, to);
    else if (p->directed.count < KR_PRESENCE_DIRECTED_MAX)
        kr_strmap_put(&p->directed, to, p);
    return KR_PASS; /* the router delivers it */
}

/* Own resources first, at once (§4.2.2: the sender included); for an initial presence, the
 * new resource also learns of the user's other available resources. */
static void kr_presence_self(kr_handler_ctx *ctx, kr_rbuf *bytes, bool initial)
{
    kr_session *s = ctx->origin;
    kr_roster_deliver_bare(ctx->srv, ctx->worker, s->bare, bytes, KR_ROSTER_TO_AVAILABLE);
    if (!initial)
        return;
    kr_rbuf *pres[KR_ROSTER_MAX_RESOURCES];
    size_t n = kr_sessions_presences(ctx->srv->sessions, s->bare, pres, KR_ROSTER_MAX_RESOURCES);
    for (size_t i = 0; i < n; i++) {
        bool mine = pres[i]->len == bytes->len &&
                    memcmp(pres[i]->data, bytes->data, bytes->len) == 0;
        if (!mine)
            kr_session_send(s, pres[i]->data, pres[i]->len);
        kr_rbuf_unref(pres[i]);
    }
}

static kr_verdict kr_presence_out_handle(kr_handler_ctx *ctx)
{
    kr_stanza *st = ctx->st;
    kr_session *s = ctx->origin;
    if (!s || !s->full)
        return KR_PASS;
    if (!st->to_absent)
        return kr_presence_directed(ctx);
    kr_presence_slot *p = kr_presence_slot_get(s);
    bool unavailable = st->type == KR_TYPE_UNAVAILABLE;
    bool initial = !unavailable && !p->available;
    p->available = !unavailable;
    kr_buf b = KR_BUF_INIT;
    kr_xml_serialize(&b, st->elem, KR_NS_CLIENT);
    kr_rbuf *bytes = kr_rbuf_from_buf(&b);
    kr_presence_self(ctx, bytes, initial);

    kr_bcast_job *j = kr_xcalloc(1, sizeof(*j));
    j->srv = ctx->srv;
    j->owner = kr_xstrdup(s->bare);
    j->full = kr_xstrdup(s->full);
    j->initial = initial;
    j->unavailable = unavailable;
    j->bytes = bytes;
    j->arena = kr_arena_new(1024);
    j->elem = kr_xml_node_copy(j->arena, st->elem);
    if (unavailable)
        j->directed = kr_presence_directed_take(p, &j->directed_n);
    kr_storage_submit(ctx->srv->storage, kr_bcast_run, ctx->worker, kr_bcast_done, j,
                      s->conn_id);
    return KR_HANDLED;
}

/* ---- inbound probes (§4.3.2) ------------------------------------------------------------- */

typedef struct kr_probe_job {
    char *owner;  /* the probed account */
    char *prober; /* the probe's 'from' as sent (bare, or full for a client's own probe) */
    char *prober_bare;
    bool allowed; /* filled on the storage thread */
} kr_probe_job;

static void kr_probe_run(kr_store *store, void *arg)
{
    kr_probe_job *j = arg;
    if (strcmp(j->owner, j->prober_bare) == 0) {
        j->allowed = true; /* one's own presence */
        return;
    }
    kr_roster_item it = {0};
    if (kr_store_roster_get(store, j->owner, j->prober_bare, &it) != 0)
        return;
    j->allowed = (it.sub & KR_SUB_FROM) != 0;
    kr_roster_item_clear(&it);
}

static void kr_probe_done(kr_worker *w, void *arg, uint64_t unused)
{
    kr_probe_job *j = arg;
    kr_server *srv = kr_worker_state_get(w)->srv;
    if (!j->allowed) {
        /* No such account, or no 'from' subscription: say so (this never touches a
         * pre-approval, §4.3.2). */
        kr_roster_route_presence(srv, w, j->owner, j->prober_bare, "unsubscribed");
    } else if (kr_roster_is_local(srv, j->prober_bare)) {
        const char *slash = strchr(j->prober, '/');
        kr_session_ref ref;
        if (!slash) {
            kr_roster_send_presences(srv, w, j->owner, j->prober, NULL, false, NULL);
        } else if (kr_sessions_find(srv->sessions, j->prober_bare, slash + 1, &ref)) {
            kr_roster_send_presences(srv, w, j->owner, j->prober, &ref, false, NULL);
        }
        /* No available resource: no answer (§4.3.2 allows not replying). */
    } else {
        /* A contact on another server: the presence of each available resource goes back
         * over s2s to the prober's bare JID (§4.3.2); none available: no answer. */
        kr_roster_send_presences(srv, w, j->owner, j->prober_bare, NULL, false, NULL);
    }
    free(j->owner);
    free(j->prober);
    free(j->prober_bare);
    free(j);
}

static kr_verdict kr_presence_probe_handle(kr_handler_ctx *ctx)
{
    kr_stanza *st = ctx->st;
    if (!st->from.domain)
        return KR_HANDLED;
    kr_probe_job *j = kr_xcalloc(1, sizeof(*j));
    j->owner = kr_xstrdup(kr_jid_format_bare(st->arena, &st->to));
    j->prober = kr_xstrdup(kr_jid_format(st->arena, &st->from));
    j->prober_bare = kr_xstrdup(kr_jid_format_bare(st->arena, &st->from));
    kr_storage_submit(ctx->srv->storage, kr_probe_run, ctx->worker, kr_probe_done, j, 0);
    return KR_HANDLED;
}

/* ---- session lifecycle ------------------------------------------------------------------- */

/* A session that ends without having been available still owes unavailable presence to the
 * entities it sent directed presence to (§4.6). */
static void kr_presence_closed(kr_server *srv, kr_session *s, kr_presence_slot *p)
{
    size_t n;
    char **to = kr_presence_directed_take(p, &n);
    for (size_t i = 0; i < n; i++) {
        if (s->full)
            kr_roster_route_presence(srv, s->worker, s->full, to[i], "unavailable");
        free(to[i]);
    }
    free(to);
    kr_strmap_clear(&p->directed);
    free(p);
    s->slots[KR_SLOT_PRESENCE] = NULL;
}

static void kr_presence_session_event(kr_server *srv, kr_session *s, kr_session_event ev)
{
    kr_presence_slot *p = s->slots[KR_SLOT_PRESENCE];
    if (ev == KR_SESSION_CLOSED && p)
        kr_presence_closed(srv, s, p);
}

static const kr_handler_spec kr_presence_handlers[] = {
    {KR_PHASE_OUT, KR_STANZA_PRESENCE, KR_TYPE_NONE | KR_TYPE_UNAVAILABLE,
     KR_ADDR_HOST | KR_ADDR_BARE | KR_ADDR_FULL | KR_ADDR_REMOTE | KR_ADDR_SELF, NULL, NULL, 0,
     kr_presence_out_handle},
    {KR_PHASE_IN, KR_STANZA_PRESENCE, KR_TYPE_PROBE, KR_ADDR_BARE | KR_ADDR_FULL | KR_ADDR_SELF,
     NULL, NULL, 0, kr_presence_probe_handle},
};

const kr_module_def kr_mod_presence = {
    .name = "presence",
    .handlers = kr_presence_handlers,
    .handler_count = sizeof(kr_presence_handlers) / sizeof(kr_presence_handlers[0]),
    .session_event = kr_presence_session_event,
};
