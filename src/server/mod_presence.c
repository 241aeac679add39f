/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Presence (RFC 6121 §4). Broadcast presence from a local session (no 'to')
 * goes at once to the user's own available resources (§4.2.2, §4.4.2,
 * §4.5.2); then, while the handler waits for the roster from the user's
 * storage lane, and sent through the router so each contact's server and
 * handlers (blocking) see it, to every contact with a 'from' or 'both'
 * subscription ('to' = the contact's bare JID). Initial presence also gets
 * the user the presence of the contacts it is subscribed to: contacts of ours
 * are answered from the session directory's last presences, after checking on
 * the storage lane that the contact's roster grants the user a 'from'
 * subscription (§4.3.2); contacts elsewhere get a probe (§4.3.1). Inbound
 * subscription requests still waiting for an answer are redelivered at the
 * same time (§3.1.3). Directed presence (§4.6) is delivered by the router and
 * remembered per session (this module's session slot) so that unavailable
 * presence reaches those entities too. Inbound probes for an account (§4.3.2)
 * are answered here. The module owns its session slots (freed on
 * KR_SESSION_CLOSED) and its job structures; the roster is read for every
 * broadcast.
 */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/hmap.h"
#include "core/log.h"
#include "server/modules.h"
#include "server/roster.h"

#define KR_PRESENCE_DIRECTED_MAX 1024 /* entities remembered per session (§4.6) */

static unsigned kr_presence_slot_index;

/* Per-session state in this module's slot. */
typedef struct kr_presence_slot {
    bool available;     /* this module has seen the session's initial presence */
    kr_strmap directed; /* JIDs that got directed available presence (values unused) */
} kr_presence_slot;

static kr_presence_slot *kr_presence_slot_get(kr_session *s)
{
    void **slot = kr_session_slot(s, kr_presence_slot_index);
    if (!*slot) {
        kr_presence_slot *p = kr_xcalloc(1, sizeof(*p));
        kr_strmap_init(&p->directed);
        *slot = p;
    }
    return *slot;
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
    char **directed;      /* unavailable: entities that had directed presence */
    size_t directed_n;
    /* filled on the storage lane */
    kr_roster_item *items;
    size_t n;
    unsigned char *probe; /* initial: KR_PROBE_* per item */
    int err;
} kr_bcast_job;

static void kr_bcast_job_free(void *arg)
{
    kr_bcast_job *j = arg;
    kr_roster_items_free(j->items, j->n);
    for (size_t i = 0; i < j->directed_n; i++)
        free(j->directed[i]);
    free(j->directed);
    free(j->probe);
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
    kr_session_ref refs[KR_ROSTER_MAX_RESOURCES];
    size_t n = kr_sessions_list(j->srv->sessions, it->contact, refs, KR_ROSTER_MAX_RESOURCES);
    bool online = false;
    for (size_t i = 0; i < n && i < KR_ROSTER_MAX_RESOURCES; i++)
        online = online || refs[i].available;
    if (!online)
        return KR_PROBE_NONE;
    kr_roster_item back = {0};
    if (kr_roster_get(store, it->contact, j->owner, &back) != 0)
        return KR_PROBE_NONE;
    bool from = (back.sub & KR_SUB_FROM) != 0;
    kr_roster_item_clear(&back);
    return from ? KR_PROBE_LOCAL : KR_PROBE_NONE;
}

static void kr_bcast_run(kr_store *store, void *arg)
{
    kr_bcast_job *j = arg;
    uint64_t version;
    j->err = kr_roster_list(store, j->owner, &j->items, &j->n, &version);
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

/* A copy of the presence as sent, to another entity (`type` replaces its type when set). */
static void kr_bcast_send_copy(kr_handler_ctx *ctx, const char *to, const char *type)
{
    kr_arena *a = kr_arena_new(1024);
    kr_xml_node *e = kr_xml_node_copy(a, ctx->st->elem);
    kr_xml_attr_set(a, e, "to", to);
    if (type)
        kr_xml_attr_set(a, e, "type", type);
    kr_send_elem(ctx->srv, ctx->worker, e, a);
}

/* §4.6.2: unavailable presence to the entities that had directed presence and are not
 * subscribers (those have just had the broadcast). */
static void kr_bcast_directed(kr_handler_ctx *ctx, kr_bcast_job *j, const kr_strmap *sent)
{
    for (size_t i = 0; i < j->directed_n; i++) {
        kr_arena *a = kr_arena_new(256);
        kr_jid jid;
        bool covered = kr_jid_parse(a, j->directed[i], &jid) == 0 &&
                       kr_strmap_get(sent, kr_jid_format_bare(a, &jid)) != NULL;
        kr_arena_free(a);
        if (!covered)
            kr_bcast_send_copy(ctx, j->directed[i], "unavailable");
    }
}

/* Initial presence: the presence of contacts that let the user see them, and the inbound
 * subscription requests still waiting for an answer (§3.1.3). */
static void kr_bcast_initial(kr_handler_ctx *ctx, kr_bcast_job *j)
{
    kr_session *s = ctx->origin;
    for (size_t i = 0; s && i < j->n; i++) {
        const kr_roster_item *it = &j->items[i];
        if (j->probe && j->probe[i] == KR_PROBE_LOCAL)
            kr_roster_send_presences(ctx->srv, ctx->worker, it->contact, j->full, false);
        else if (j->probe && j->probe[i] == KR_PROBE_REMOTE)
            kr_send_presence(ctx->srv, ctx->worker, j->owner, it->contact, "probe");
        if (it->pending_in && it->pending_in_xml && !(it->sub & KR_SUB_FROM)) {
            kr_rbuf *b = kr_rbuf_new(it->pending_in_xml, strlen(it->pending_in_xml));
            b->meta = kr_stanza_meta(KR_STANZA_PRESENCE, KR_TYPE_SUBSCRIBE);
            kr_session_deliver(s, b);
            kr_rbuf_unref(b);
        }
    }
}

static kr_verdict kr_bcast_done(kr_handler_ctx *ctx, void *arg)
{
    kr_bcast_job *j = arg;
    if (j->err != 0) {
        KR_LOG(KR_LOG_ERROR, j->full, "roster load for presence failed: %s",
               kr_strerror(j->err));
        return KR_HANDLED;
    }
    kr_strmap sent;
    kr_strmap_init(&sent);
    for (size_t i = 0; i < j->n; i++) {
        const kr_roster_item *it = &j->items[i];
        if (!(it->sub & KR_SUB_FROM))
            continue;
        /* §4.2.2 / §4.4.2 / §4.5.2: to a subscriber, 'to' = its bare JID. */
        kr_bcast_send_copy(ctx, it->contact, NULL);
        if (j->directed_n)
            kr_strmap_put(&sent, it->contact, (void *)it);
    }
    if (j->unavailable)
        kr_bcast_directed(ctx, j, &sent);
    kr_strmap_clear(&sent);
    if (j->initial)
        kr_bcast_initial(ctx, j);
    return KR_HANDLED;
}

static const kr_wait_ops kr_bcast_ops = {kr_bcast_run, kr_bcast_done, kr_bcast_job_free};

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
static void kr_presence_self(kr_handler_ctx *ctx, bool initial)
{
    kr_session *s = ctx->origin;
    kr_rbuf *bytes = kr_stanza_serialize(ctx->st);
    kr_deliver_account(ctx->srv, ctx->worker, s->bare, bytes, KR_PICK_AVAILABLE, 0);
    if (initial) {
        kr_frozen *pres[KR_ROSTER_MAX_RESOURCES];
        size_t n =
            kr_sessions_presences(ctx->srv->sessions, s->bare, pres, KR_ROSTER_MAX_RESOURCES);
        for (size_t i = 0; i < n; i++) {
            const char *from = kr_xml_attr_get(pres[i]->elem, "from");
            if (!from || strcmp(from, s->full) != 0)
                kr_session_deliver(s, pres[i]->bytes);
            kr_frozen_unref(pres[i]);
        }
    }
    kr_rbuf_unref(bytes);
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
    kr_presence_self(ctx, initial);

    kr_bcast_job *j = kr_xcalloc(1, sizeof(*j));
    j->srv = ctx->srv;
    j->owner = kr_xstrdup(s->bare);
    j->full = kr_xstrdup(s->full);
    j->initial = initial;
    j->unavailable = unavailable;
    if (unavailable)
        j->directed = kr_presence_directed_take(p, &j->directed_n);
    return kr_handler_wait(ctx, j->owner, &kr_bcast_ops, j);
}

/* ---- inbound probes (§4.3.2) ------------------------------------------------------------- */

typedef struct kr_probe_job {
    char *owner;  /* the probed account */
    char *prober; /* the probe's 'from' as sent (bare, or full for a client's own probe) */
    char *prober_bare;
    bool allowed; /* filled on the storage lane */
} kr_probe_job;

static void kr_probe_job_free(void *arg)
{
    kr_probe_job *j = arg;
    free(j->owner);
    free(j->prober);
    free(j->prober_bare);
    free(j);
}

static void kr_probe_run(kr_store *store, void *arg)
{
    kr_probe_job *j = arg;
    if (strcmp(j->owner, j->prober_bare) == 0) {
        j->allowed = true; /* one's own presence */
        return;
    }
    kr_roster_item it = {0};
    if (kr_roster_get(store, j->owner, j->prober_bare, &it) != 0)
        return;
    j->allowed = (it.sub & KR_SUB_FROM) != 0;
    kr_roster_item_clear(&it);
}

static kr_verdict kr_probe_done(kr_handler_ctx *ctx, void *arg)
{
    kr_probe_job *j = arg;
    kr_server *srv = ctx->srv;
    if (!j->allowed) {
        /* No such account, or no 'from' subscription: say so (this never touches a
         * pre-approval, §4.3.2). */
        kr_send_presence(srv, ctx->worker, j->owner, j->prober_bare, "unsubscribed");
    } else if (kr_roster_is_local(srv, j->prober_bare)) {
        /* A full JID gets the answer only while that session exists: the router sees to
         * that. No available resource: no answer (§4.3.2 allows not replying). */
        kr_roster_send_presences(srv, ctx->worker, j->owner, j->prober, false);
    } else {
        /* A contact on another server: the presence of each available resource goes back
         * over s2s to the prober's bare JID (§4.3.2); none available: no answer. */
        kr_roster_send_presences(srv, ctx->worker, j->owner, j->prober_bare, false);
    }
    return KR_HANDLED;
}

static const kr_wait_ops kr_probe_ops = {kr_probe_run, kr_probe_done, kr_probe_job_free};

static kr_verdict kr_presence_probe_handle(kr_handler_ctx *ctx)
{
    kr_stanza *st = ctx->st;
    if (!st->from.domain)
        return KR_HANDLED;
    kr_probe_job *j = kr_xcalloc(1, sizeof(*j));
    j->owner = kr_xstrdup(kr_jid_format_bare(st->arena, &st->to));
    j->prober = kr_xstrdup(kr_jid_format(st->arena, &st->from));
    j->prober_bare = kr_xstrdup(kr_jid_format_bare(st->arena, &st->from));
    return kr_handler_wait(ctx, j->owner, &kr_probe_ops, j);
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
            kr_send_presence(srv, s->worker, s->full, to[i], "unavailable");
        free(to[i]);
    }
    free(to);
    kr_strmap_clear(&p->directed);
    free(p);
    *kr_session_slot(s, kr_presence_slot_index) = NULL;
}

static void kr_presence_session_event(kr_server *srv, kr_session *s, kr_session_event ev)
{
    kr_presence_slot *p = *kr_session_slot(s, kr_presence_slot_index);
    if (ev == KR_SESSION_CLOSED && p)
        kr_presence_closed(srv, s, p);
}

static const kr_handler_spec kr_presence_handlers[] = {
    {KR_PHASE_OUT, KR_STANZA_PRESENCE, KR_TYPE_NONE | KR_TYPE_UNAVAILABLE,
     KR_ADDR_HOST | KR_ADDR_BARE | KR_ADDR_FULL | KR_ADDR_REMOTE | KR_ADDR_SELF, NULL, NULL, 0,
     kr_presence_out_handle, 0},
    {KR_PHASE_IN, KR_STANZA_PRESENCE, KR_TYPE_PROBE, KR_ADDR_BARE | KR_ADDR_FULL | KR_ADDR_SELF,
     NULL, NULL, 0, kr_presence_probe_handle, 0},
};

const kr_module_def kr_mod_presence = {
    .name = "presence",
    .handlers = kr_presence_handlers,
    .handler_count = sizeof(kr_presence_handlers) / sizeof(kr_presence_handlers[0]),
    .session_slot = &kr_presence_slot_index,
    .session_event = kr_presence_session_event,
};
