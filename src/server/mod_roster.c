/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Rosters and presence subscriptions (RFC 6121 §2, §3, Appendix A; roster
 * versioning as folded into RFC 6121 §2.6 from XEP-0237). It handles roster
 * get/set/remove from the account's own resources, and the four
 * subscription stanza types twice: outbound (KR_PHASE_OUT, from a local
 * session: stamped with the user's bare JID, the user's roster updated, then
 * routed) and inbound (KR_PHASE_IN, at the contact's server: the contact's
 * roster updated and the stanza delivered or dropped per Appendix A.3).
 * Every read-modify-write of a roster record runs as one job on the storage
 * thread, so changes to one roster are serialized; completions push the
 * changed item to the owner's interested resources (KR_SESSION_ROSTER_
 * INTERESTED, set on roster get) and route what follows. It owns only its
 * job structures; sessions are found again by connection id. Pending
 * inbound requests are stored with the roster record (pending_in_xml) and
 * redelivered by the presence module at the next initial presence. Values
 * of 'subscription' other than "remove" in a roster set are ignored, as
 * RFC 6121 §2.1.2.5 requires.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"
#include "server/modules.h"
#include "server/roster.h"
#include "server/storage_thread.h"

#define KR_ROSTER_TEXT_MAX 1023 /* bytes of an item name or group name */
#define KR_ROSTER_GROUPS_MAX 64 /* groups per item */

#define KR_SUB_TYPES (KR_TYPE_SUBSCRIBE | KR_TYPE_SUBSCRIBED | KR_TYPE_UNSUBSCRIBE | \
                      KR_TYPE_UNSUBSCRIBED)

/* ---- iq replies from completions -------------------------------------------------------- */

/* Start an <iq/> to the session that asked; from = the request's 'to', when it had one. */
static void kr_roster_iq_head(kr_buf *b, const char *type, const char *id, const char *to,
                              const char *from)
{
    kr_buf_printf(b, "<iq type='%s' id='", type);
    kr_xml_escape_attr(b, id, strlen(id));
    kr_buf_puts(b, "' to='");
    kr_xml_escape_attr(b, to, strlen(to));
    kr_buf_puts(b, "'");
    if (from) {
        kr_buf_puts(b, " from='");
        kr_xml_escape_attr(b, from, strlen(from));
        kr_buf_puts(b, "'");
    }
}

static void kr_roster_iq_error(kr_session *s, const char *id, const char *from,
                               const char *condition, const char *text)
{
    kr_buf b = KR_BUF_INIT;
    kr_roster_iq_head(&b, "error", id, s->full, from);
    kr_buf_printf(&b, "><error type='%s'><%s xmlns='" KR_NS_STANZAS_ERR "'/>",
                  kr_stanza_error_type(condition), condition);
    if (text) {
        kr_buf_puts(&b, "<text xmlns='" KR_NS_STANZAS_ERR "' xml:lang='en'>");
        kr_xml_escape_text(&b, text, strlen(text));
        kr_buf_puts(&b, "</text>");
    }
    kr_buf_puts(&b, "</error></iq>");
    kr_session_send(s, b.data, b.len);
    kr_buf_clear(&b);
}

static void kr_roster_iq_result(kr_session *s, const char *id, const char *from)
{
    kr_buf b = KR_BUF_INIT;
    kr_roster_iq_head(&b, "result", id, s->full, from);
    kr_buf_puts(&b, "/>");
    kr_session_send(s, b.data, b.len);
    kr_buf_clear(&b);
}

static char *kr_roster_dup(const char *s)
{
    return s ? kr_xstrdup(s) : NULL;
}

/* Roster get/set must come from the account's own resource (RFC 6121 §2.1.5, §2.3.3). */
static bool kr_roster_own(kr_handler_ctx *ctx)
{
    if (ctx->origin && ctx->origin->full && ctx->st->addressing == KR_ADDR_SELF)
        return true;
    kr_router_bounce(ctx->srv, ctx->worker, ctx->st, "forbidden", NULL);
    return false;
}

/* ---- roster get (RFC 6121 §2.2, §2.6) ---------------------------------------------------- */

typedef struct kr_roster_get_job {
    char *user;
    char *id;
    char *from; /* the request's 'to', echoed as 'from' */
    char *ver;  /* the client's cached version, or NULL */
    kr_roster_item *items;
    size_t n;
    uint64_t version;
    int err;
} kr_roster_get_job;

static void kr_roster_get_job_free(kr_roster_get_job *j)
{
    kr_roster_items_free(j->items, j->n);
    free(j->user);
    free(j->id);
    free(j->from);
    free(j->ver);
    free(j);
}

static void kr_roster_get_run(kr_store *store, void *arg)
{
    kr_roster_get_job *j = arg;
    j->err = kr_store_roster_list(store, j->user, &j->items, &j->n, &j->version);
    if (j->err != 0) {
        j->items = NULL;
        j->n = 0;
    }
}

static void kr_roster_get_done(kr_worker *w, void *arg, uint64_t conn_id)
{
    kr_roster_get_job *j = arg;
    kr_session *s = kr_session_find(w, conn_id);
    if (!s || !s->full) {
        kr_roster_get_job_free(j);
        return;
    }
    if (j->err != 0) {
        KR_LOG(KR_LOG_ERROR, s->full, "roster load failed: %s", kr_strerror(j->err));
        kr_roster_iq_error(s, j->id, j->from, "internal-server-error", NULL);
        kr_roster_get_job_free(j);
        return;
    }
    char ver[24];
    snprintf(ver, sizeof(ver), "%llu", (unsigned long long)j->version);
    kr_buf b = KR_BUF_INIT;
    kr_roster_iq_head(&b, "result", j->id, s->full, j->from);
    if (j->ver && strcmp(j->ver, ver) == 0) {
        /* RFC 6121 §2.6.3: the client's copy is current; pushes will follow changes. */
        kr_buf_puts(&b, "/>");
    } else {
        kr_buf_printf(&b, "><query xmlns='" KR_NS_ROSTER "' ver='%s'>", ver);
        for (size_t i = 0; i < j->n; i++)
            if (kr_roster_item_in_roster(&j->items[i]))
                kr_roster_item_write(&b, &j->items[i], false);
        kr_buf_puts(&b, "</query></iq>");
    }
    kr_session_send(s, b.data, b.len);
    kr_buf_clear(&b);
    kr_roster_get_job_free(j);
}

static kr_verdict kr_roster_get_handle(kr_handler_ctx *ctx)
{
    if (!kr_roster_own(ctx))
        return KR_HANDLED;
    kr_session *s = ctx->origin;
    /* RFC 6121 §2.2: a resource that asked for the roster is "interested": it gets pushes. */
    kr_sessions_set_flags(ctx->srv->sessions, s->bare, s->resource, s->conn_id,
                          KR_SESSION_ROSTER_INTERESTED, 0);
    kr_roster_get_job *j = kr_xcalloc(1, sizeof(*j));
    j->user = kr_xstrdup(s->bare);
    j->id = kr_xstrdup(ctx->st->id);
    j->from = kr_roster_dup(kr_xml_attr_get(ctx->st->elem, "to"));
    j->ver = kr_roster_dup(kr_xml_attr_get(ctx->st->payload, "ver"));
    kr_storage_submit(ctx->srv->storage, kr_roster_get_run, ctx->worker, kr_roster_get_done, j,
                      s->conn_id);
    return KR_HANDLED;
}

/* ---- roster set and remove (RFC 6121 §2.3, §2.4, §2.5) ----------------------------------- */

typedef struct kr_roster_set_job {
    char *user;
    char *id;
    char *from;
    unsigned max_items;
    bool remove;
    kr_roster_item req; /* contact, name, groups as asked (owned) */
    /* results, filled on the storage thread */
    const char *condition; /* stanza error to answer with, or NULL */
    const char *text;
    kr_roster_item old; /* the record before the change (owned when had_old) */
    bool had_old;
    kr_roster_item now; /* the stored item (borrows from req and old) */
    uint64_t version;
} kr_roster_set_job;

static void kr_roster_set_job_free(kr_roster_set_job *j)
{
    kr_roster_item_clear(&j->req);
    if (j->had_old)
        kr_roster_item_clear(&j->old);
    free(j->user);
    free(j->id);
    free(j->from);
    free(j);
}

static void kr_roster_set_fail(kr_roster_set_job *j, int err)
{
    KR_LOG(KR_LOG_ERROR, j->user, "roster update failed: %s", kr_strerror(err));
    j->condition = "internal-server-error";
}

static void kr_roster_set_run(kr_store *store, void *arg)
{
    kr_roster_set_job *j = arg;
    int r = kr_store_roster_get(store, j->user, j->req.contact, &j->old);
    if (r != 0 && r != KR_ENOENT) {
        kr_roster_set_fail(j, r);
        return;
    }
    j->had_old = r == 0;
    bool listed = j->had_old && kr_roster_item_in_roster(&j->old);
    if (j->remove) {
        /* §2.5.3: removing an item that is not in the roster is an error. */
        if (!listed) {
            j->condition = "item-not-found";
            return;
        }
        r = kr_store_roster_remove(store, j->user, j->req.contact, &j->version);
        if (r != 0)
            kr_roster_set_fail(j, r);
        return;
    }
    if (!j->had_old) {
        size_t n = 0;
        r = kr_store_roster_count(store, j->user, &n);
        if (r != 0) {
            kr_roster_set_fail(j, r);
            return;
        }
        if (n >= j->max_items) {
            j->condition = "not-allowed";
            j->text = "The roster has reached its maximum number of items";
            return;
        }
    }
    /* Only the name and the groups are the client's to set (§2.1.2); the subscription state
     * stays what the server knows. */
    kr_roster_item now = j->had_old ? j->old : (kr_roster_item){0};
    now.contact = j->req.contact;
    now.name = j->req.name ? j->req.name : (char *)"";
    now.groups = j->req.groups;
    now.group_count = j->req.group_count;
    j->now = now;
    r = kr_store_roster_put(store, j->user, &j->now, &j->version);
    if (r != 0)
        kr_roster_set_fail(j, r);
}

/* §2.5.2: removing an item cancels the subscriptions both ways, as if the user had sent
 * unsubscribe and unsubscribed. */
static void kr_roster_removed(kr_server *srv, kr_worker *w, kr_roster_set_job *j)
{
    if ((j->old.sub & KR_SUB_TO) || j->old.ask)
        kr_roster_route_presence(srv, w, j->user, j->old.contact, "unsubscribe");
    if ((j->old.sub & KR_SUB_FROM) || j->old.pending_in)
        kr_roster_route_presence(srv, w, j->user, j->old.contact, "unsubscribed");
}

static void kr_roster_set_done(kr_worker *w, void *arg, uint64_t conn_id)
{
    kr_roster_set_job *j = arg;
    kr_server *srv = kr_worker_state_get(w)->srv;
    kr_session *s = kr_session_find(w, conn_id);
    if (s && !s->full)
        s = NULL;
    if (j->condition) {
        if (s)
            kr_roster_iq_error(s, j->id, j->from, j->condition, j->text);
        kr_roster_set_job_free(j);
        return;
    }
    if (j->remove)
        kr_roster_push(srv, w, j->user, &j->old, true, j->version);
    else
        kr_roster_push(srv, w, j->user, &j->now, false, j->version);
    if (s)
        kr_roster_iq_result(s, j->id, j->from);
    if (j->remove)
        kr_roster_removed(srv, w, j);
    kr_roster_set_job_free(j);
}

/* Collect and check the <group/> children (§2.3.3): none empty or too long, no duplicates. */
static const char *kr_roster_groups(kr_arena *a, const kr_xml_node *item, kr_roster_item *out,
                                    const char **text)
{
    const char *names[KR_ROSTER_GROUPS_MAX];
    size_t n = 0;
    for (kr_xml_node *g = kr_xml_first_elem(item); g; g = kr_xml_next_elem(g)) {
        if (strcmp(g->ns, KR_NS_ROSTER) != 0 || strcmp(g->name, "group") != 0)
            continue;
        const char *t = kr_xml_text_get(a, g);
        if (!*t) {
            *text = "A group name is empty";
            return "not-acceptable";
        }
        if (strlen(t) > KR_ROSTER_TEXT_MAX) {
            *text = "A group name is too long";
            return "not-acceptable";
        }
        if (n == KR_ROSTER_GROUPS_MAX) {
            *text = "Too many groups";
            return "not-acceptable";
        }
        for (size_t i = 0; i < n; i++) {
            if (strcmp(names[i], t) == 0) {
                *text = "A group is listed twice";
                return "bad-request";
            }
        }
        names[n++] = t;
    }
    out->group_count = n;
    out->groups = n ? kr_xmalloc(n * sizeof(*out->groups)) : NULL;
    for (size_t i = 0; i < n; i++)
        out->groups[i] = kr_xstrdup(names[i]);
    return NULL;
}

/* The single <item/> of a roster set (§2.3.3: more than one is a bad request). */
static kr_xml_node *kr_roster_set_item(const kr_xml_node *query, const char **condition)
{
    kr_xml_node *item = NULL;
    for (kr_xml_node *c = kr_xml_first_elem(query); c; c = kr_xml_next_elem(c)) {
        if (strcmp(c->ns, KR_NS_ROSTER) != 0 || strcmp(c->name, "item") != 0)
            continue;
        if (item) {
            *condition = "bad-request";
            return NULL;
        }
        item = c;
    }
    if (!item)
        *condition = "bad-request";
    return item;
}

/* Check the request on the worker; fills j->req. Returns a stanza error condition or NULL. */
static const char *kr_roster_set_parse(kr_handler_ctx *ctx, kr_roster_set_job *j,
                                       const char **text)
{
    kr_stanza *st = ctx->st;
    const char *cond = NULL;
    kr_xml_node *item = kr_roster_set_item(st->payload, &cond);
    if (!item) {
        *text = "A roster set carries exactly one item";
        return cond;
    }
    const char *jid = kr_xml_attr_get(item, "jid");
    kr_jid contact;
    if (!jid) {
        *text = "The item has no 'jid'";
        return "bad-request";
    }
    if (kr_jid_parse(st->arena, jid, &contact) != 0)
        return "jid-malformed";
    if (contact.resource) {
        *text = "Roster items are bare JIDs";
        return "bad-request";
    }
    const char *sub = kr_xml_attr_get(item, "subscription");
    j->remove = sub && strcmp(sub, "remove") == 0;
    j->req.contact = kr_xstrdup(kr_jid_format_bare(st->arena, &contact));
    if (j->remove)
        return NULL;
    if (strcmp(j->req.contact, ctx->origin->bare) == 0) {
        *text = "An account cannot be in its own roster";
        return "not-allowed";
    }
    const char *name = kr_xml_attr_get(item, "name");
    if (name && strlen(name) > KR_ROSTER_TEXT_MAX) {
        *text = "The name is too long";
        return "not-acceptable";
    }
    j->req.name = name && *name ? kr_xstrdup(name) : NULL;
    return kr_roster_groups(st->arena, item, &j->req, text);
}

static kr_verdict kr_roster_set_handle(kr_handler_ctx *ctx)
{
    if (!kr_roster_own(ctx))
        return KR_HANDLED;
    kr_session *s = ctx->origin;
    kr_roster_set_job *j = kr_xcalloc(1, sizeof(*j));
    const char *text = NULL;
    const char *cond = kr_roster_set_parse(ctx, j, &text);
    if (cond) {
        kr_roster_set_job_free(j);
        kr_router_bounce(ctx->srv, ctx->worker, ctx->st, cond, text);
        return KR_HANDLED;
    }
    j->user = kr_xstrdup(s->bare);
    j->id = kr_xstrdup(ctx->st->id);
    j->from = kr_roster_dup(kr_xml_attr_get(ctx->st->elem, "to"));
    j->max_items = ctx->srv->cfg->roster.max_items;
    kr_storage_submit(ctx->srv->storage, kr_roster_set_run, ctx->worker, kr_roster_set_done, j,
                      s->conn_id);
    return KR_HANDLED;
}

/* ---- subscriptions (RFC 6121 §3, Appendix A) --------------------------------------------- */

typedef struct kr_sub_job {
    bool out;            /* sent by owner (outbound) or received for owner (inbound) */
    kr_stanza_type type; /* subscribe, subscribed, unsubscribe or unsubscribed */
    char *owner;         /* bare JID whose roster changes */
    char *peer;          /* bare JID on the other side */
    unsigned max_items;
    /* outbound: the stanza to route on (from = owner, to = peer) */
    kr_arena *arena;
    kr_xml_node *elem;
    /* inbound: the stanza as delivered (from = peer, to = owner), also stored for later */
    char *xml;
    size_t xml_len;
    /* results, filled on the storage thread */
    kr_roster_item old; /* owned when had_old */
    bool had_old;
    kr_roster_item now; /* borrows from old, peer and xml */
    uint64_t version;
    bool push;          /* the item as the client sees it changed */
    bool route;         /* outbound: forward the stanza to the peer */
    bool full;          /* outbound: a new item would exceed the roster limit */
    unsigned deliver;   /* inbound: KR_ROSTER_TO_* of the owner's resources to deliver to */
    const char *reply;  /* inbound: automatic answer to the peer ("subscribed", ...) */
    bool gained;        /* inbound subscribed: the owner now sees the peer */
    bool lost;          /* inbound: the subscription the stanza cancels existed */
} kr_sub_job;

static void kr_sub_job_free(kr_sub_job *j)
{
    if (j->had_old)
        kr_roster_item_clear(&j->old);
    if (j->arena)
        kr_arena_free(j->arena);
    free(j->owner);
    free(j->peer);
    free(j->xml);
    free(j);
}

/* Outbound, at the user's server: §3.1.2 (subscribe: always routed), §3.1.5 and A.2.1
 * (subscribed), §3.2.2 and A.2.2 (unsubscribed), §3.3.2 (unsubscribe: always routed), §3.4
 * (subscribed with nothing to approve is a pre-approval). True when the record changed. */
static bool kr_sub_out_step(kr_sub_job *j, kr_roster_item *it)
{
    switch (j->type) {
    case KR_TYPE_SUBSCRIBE:
        j->route = true;
        if ((it->sub & KR_SUB_TO) || it->ask)
            return false;
        it->ask = true;
        return true;
    case KR_TYPE_UNSUBSCRIBE:
        j->route = true;
        if (!(it->sub & KR_SUB_TO) && !it->ask)
            return false;
        it->sub &= ~KR_SUB_TO;
        it->ask = false;
        return true;
    case KR_TYPE_SUBSCRIBED:
        if (it->sub & KR_SUB_FROM)
            return false;
        if (it->pending_in) {
            j->route = true;
            it->sub |= KR_SUB_FROM;
            it->pending_in = false;
            it->pending_in_xml = NULL;
            it->approved = false;
            return true;
        }
        if (it->approved)
            return false;
        it->approved = true;
        return true;
    case KR_TYPE_UNSUBSCRIBED:
        if ((it->sub & KR_SUB_FROM) || it->pending_in) {
            j->route = true;
            it->sub &= ~KR_SUB_FROM;
            it->pending_in = false;
            it->pending_in_xml = NULL;
            it->approved = false;
            return true;
        }
        if (!it->approved)
            return false;
        it->approved = false; /* A.2.2 note 1: cancels a pre-approval */
        return true;
    default:
        return false;
    }
}

/* Inbound, at the contact's server: §3.1.3 and A.3.1 (subscribe), §3.3.3 and A.3.2
 * (unsubscribe), §3.1.6 and A.3.3 (subscribed), §3.2.3 and A.3.4 (unsubscribed). Stanzas
 * that change nothing are not delivered. True when the record changed. */
static bool kr_sub_in_step(kr_sub_job *j, kr_roster_item *it)
{
    switch (j->type) {
    case KR_TYPE_SUBSCRIBE:
        if (it->sub & KR_SUB_FROM) {
            j->reply = "subscribed"; /* already subscribed: answer for the contact */
            return false;
        }
        if (it->approved) { /* §3.4: pre-approved */
            it->sub |= KR_SUB_FROM;
            it->approved = false;
            it->pending_in = false;
            it->pending_in_xml = NULL;
            j->reply = "subscribed";
            return true;
        }
        if (it->pending_in)
            return false;
        it->pending_in = true;
        it->pending_in_xml = j->xml;
        j->deliver = KR_ROSTER_TO_AVAILABLE;
        return true;
    case KR_TYPE_UNSUBSCRIBE:
        if (!(it->sub & KR_SUB_FROM) && !it->pending_in)
            return false;
        j->lost = (it->sub & KR_SUB_FROM) != 0;
        it->sub &= ~KR_SUB_FROM;
        it->pending_in = false;
        it->pending_in_xml = NULL;
        j->deliver = KR_ROSTER_TO_INTERESTED;
        return true;
    case KR_TYPE_SUBSCRIBED:
        if (!it->ask || (it->sub & KR_SUB_TO))
            return false;
        it->sub |= KR_SUB_TO;
        it->ask = false;
        j->gained = true;
        j->deliver = KR_ROSTER_TO_INTERESTED;
        return true;
    case KR_TYPE_UNSUBSCRIBED:
        if (!it->ask && !(it->sub & KR_SUB_TO))
            return false;
        j->lost = (it->sub & KR_SUB_TO) != 0;
        it->sub &= ~KR_SUB_TO;
        it->ask = false;
        j->deliver = KR_ROSTER_TO_INTERESTED;
        return true;
    default:
        return false;
    }
}

/* Whether the client-visible part of the item changed (what a roster push shows). */
static bool kr_sub_visible_change(const kr_sub_job *j, const kr_roster_item *it)
{
    if (!kr_roster_item_in_roster(it))
        return false;
    if (!j->had_old || !kr_roster_item_in_roster(&j->old))
        return true;
    return j->old.sub != it->sub || j->old.ask != it->ask || j->old.approved != it->approved;
}

/* A new record: refuse it when the roster is full. Records that only hold an inbound request
 * get twice the room, so requests cannot crowd out the user's own items. */
static bool kr_sub_room(kr_store *store, kr_sub_job *j, const kr_roster_item *it)
{
    size_t n = 0;
    if (kr_store_roster_count(store, j->owner, &n) != 0)
        return false;
    size_t limit = kr_roster_item_in_roster(it) ? j->max_items : 2 * (size_t)j->max_items;
    return n < limit;
}

static void kr_sub_store(kr_store *store, kr_sub_job *j, kr_roster_item *it)
{
    /* Anything the client is shown puts the item in the roster (see roster.h). */
    if ((it->sub || it->ask || it->approved) && !kr_roster_item_in_roster(it))
        it->name = (char *)"";
    int r;
    if (!kr_roster_item_in_roster(it) && !it->pending_in) {
        /* A request-only record whose request is gone: forget it (§3.3.3). */
        r = j->had_old ? kr_store_roster_remove(store, j->owner, j->peer, &j->version) : 0;
    } else {
        r = kr_store_roster_put(store, j->owner, it, &j->version);
        j->push = r == 0 && kr_sub_visible_change(j, it);
    }
    if (r != 0)
        KR_LOG(KR_LOG_ERROR, j->owner, "roster update failed: %s", kr_strerror(r));
    j->now = *it;
}

static void kr_sub_run(kr_store *store, void *arg)
{
    kr_sub_job *j = arg;
    int r = kr_store_roster_get(store, j->owner, j->peer, &j->old);
    if (r != 0 && r != KR_ENOENT) {
        KR_LOG(KR_LOG_ERROR, j->owner, "roster load failed: %s", kr_strerror(r));
        return;
    }
    j->had_old = r == 0;
    if (!j->had_old && !j->out) {
        kr_account acct;
        if (kr_store_account_get(store, j->owner, &acct) != 0) {
            /* RFC 6121 §8.5.1: no such account; a request is refused, the rest ignored. */
            if (j->type == KR_TYPE_SUBSCRIBE)
                j->reply = "unsubscribed";
            return;
        }
    }
    kr_roster_item it = j->had_old ? j->old : (kr_roster_item){.contact = j->peer};
    bool changed = j->out ? kr_sub_out_step(j, &it) : kr_sub_in_step(j, &it);
    if (!changed)
        return;
    if (!j->had_old && !kr_sub_room(store, j, &it)) {
        if (j->out && j->type == KR_TYPE_SUBSCRIBE) {
            j->route = false;
            j->full = true;
        }
        return; /* an inbound request is still delivered, just not kept */
    }
    kr_sub_store(store, j, &it);
}

static void kr_sub_out_done(kr_server *srv, kr_worker *w, kr_sub_job *j)
{
    if (j->full) {
        kr_stanza st;
        if (kr_stanza_decode(&st, j->elem, j->arena, kr_roster_served, srv) == NULL)
            kr_router_bounce(srv, w, &st, "not-allowed",
                             "The roster has reached its maximum number of items");
        return;
    }
    if (!j->route)
        return;
    kr_roster_route_elem(srv, w, j->elem, j->arena);
    /* §3.1.5 / §3.2.2: after approving or cancelling the subscription of a contact on another
     * server, our server sends the user's current (or unavailable) presence to it; for local
     * contacts the inbound side does it (kr_sub_in_done). */
    if (!kr_roster_is_local(srv, j->peer) && j->type == KR_TYPE_SUBSCRIBED)
        kr_roster_send_presences(srv, w, j->owner, j->peer, NULL, false, NULL);
    else if (!kr_roster_is_local(srv, j->peer) && j->type == KR_TYPE_UNSUBSCRIBED)
        kr_roster_send_presences(srv, w, j->owner, j->peer, NULL, true, NULL);
}

static void kr_sub_in_done(kr_server *srv, kr_worker *w, kr_sub_job *j)
{
    if (j->reply)
        kr_roster_route_presence(srv, w, j->owner, j->peer, j->reply);
    if (j->deliver) {
        kr_rbuf *b = kr_rbuf_new(j->xml, j->xml_len);
        kr_roster_deliver_bare(srv, w, j->owner, b, j->deliver);
        kr_rbuf_unref(b);
    }
    /* Presence follows the subscription change. The peer's server sends it; when the peer
     * is ours, that is done here, after the owner has seen the change. §3.1.5 (approval:
     * current presence), §3.2.2 (cancellation: unavailable), §3.3.3 (unsubscribe: the
     * owner's resources go unavailable for the peer). */
    if (j->type == KR_TYPE_SUBSCRIBED && j->gained && kr_roster_is_local(srv, j->peer))
        kr_roster_send_presences(srv, w, j->peer, j->owner, NULL, false, NULL);
    else if (j->type == KR_TYPE_UNSUBSCRIBED && j->lost && kr_roster_is_local(srv, j->peer))
        kr_roster_send_presences(srv, w, j->peer, j->owner, NULL, true, NULL);
    else if (j->type == KR_TYPE_UNSUBSCRIBE && j->lost)
        kr_roster_send_presences(srv, w, j->owner, j->peer, NULL, true, NULL);
}

static void kr_sub_done(kr_worker *w, void *arg, uint64_t unused)
{
    kr_sub_job *j = arg;
    kr_server *srv = kr_worker_state_get(w)->srv;
    if (j->push)
        kr_roster_push(srv, w, j->owner, &j->now, false, j->version);
    if (j->out)
        kr_sub_out_done(srv, w, j);
    else
        kr_sub_in_done(srv, w, j);
    kr_sub_job_free(j);
}

static kr_sub_job *kr_sub_job_new(kr_handler_ctx *ctx, bool out, const char *owner,
                                  const char *peer)
{
    kr_sub_job *j = kr_xcalloc(1, sizeof(*j));
    j->out = out;
    j->type = ctx->st->type;
    j->owner = kr_xstrdup(owner);
    j->peer = kr_xstrdup(peer);
    j->max_items = ctx->srv->cfg->roster.max_items;
    j->arena = kr_arena_new(1024);
    /* Subscriptions are between bare JIDs (§3.1.2, §3.1.3): stamp both ends. */
    j->elem = kr_xml_node_copy(j->arena, ctx->st->elem);
    kr_xml_attr_set(j->arena, j->elem, "from", out ? owner : peer);
    kr_xml_attr_set(j->arena, j->elem, "to", out ? peer : owner);
    return j;
}

static kr_verdict kr_sub_out_handle(kr_handler_ctx *ctx)
{
    kr_stanza *st = ctx->st;
    if (!ctx->origin || !ctx->origin->bare)
        return KR_PASS;
    if (st->to_absent || st->addressing == KR_ADDR_SELF)
        return KR_HANDLED; /* a subscription to oneself means nothing: dropped */
    const char *peer = kr_jid_format_bare(st->arena, &st->to);
    kr_sub_job *j = kr_sub_job_new(ctx, true, ctx->origin->bare, peer);
    kr_storage_submit(ctx->srv->storage, kr_sub_run, ctx->worker, kr_sub_done, j, 0);
    return KR_HANDLED;
}

static kr_verdict kr_sub_in_handle(kr_handler_ctx *ctx)
{
    kr_stanza *st = ctx->st;
    if (!st->from.domain)
        return KR_HANDLED;
    const char *owner = kr_jid_format_bare(st->arena, &st->to);
    const char *peer = kr_jid_format_bare(st->arena, &st->from);
    if (strcmp(owner, peer) == 0)
        return KR_HANDLED;
    kr_sub_job *j = kr_sub_job_new(ctx, false, owner, peer);
    kr_buf b = KR_BUF_INIT;
    kr_xml_serialize(&b, j->elem, KR_NS_CLIENT);
    j->xml = kr_buf_detach(&b, &j->xml_len);
    kr_arena_free(j->arena);
    j->arena = NULL;
    j->elem = NULL;
    kr_storage_submit(ctx->srv->storage, kr_sub_run, ctx->worker, kr_sub_done, j, 0);
    return KR_HANDLED;
}

/* ---- descriptor -------------------------------------------------------------------------- */

/* RFC 6121 §2.6.1 (roster versioning) and §3.4.1 (pre-approval), after authentication. */
static void kr_roster_stream_features(kr_server *srv, bool authenticated, kr_buf *out)
{
    if (authenticated)
        kr_buf_puts(out, "<ver xmlns='" KR_NS_ROSTERVER "'/><sub xmlns='" KR_NS_PREAPPROVAL
                         "'/>");
}

static const kr_handler_spec kr_roster_handlers[] = {
    {KR_PHASE_IN, KR_STANZA_IQ, KR_TYPE_GET, KR_ADDR_SELF | KR_ADDR_BARE, KR_NS_ROSTER, "query",
     0, kr_roster_get_handle},
    {KR_PHASE_IN, KR_STANZA_IQ, KR_TYPE_SET, KR_ADDR_SELF | KR_ADDR_BARE, KR_NS_ROSTER, "query",
     0, kr_roster_set_handle},
    {KR_PHASE_OUT, KR_STANZA_PRESENCE, KR_SUB_TYPES,
     KR_ADDR_HOST | KR_ADDR_BARE | KR_ADDR_FULL | KR_ADDR_REMOTE | KR_ADDR_SELF, NULL, NULL, 0,
     kr_sub_out_handle},
    {KR_PHASE_IN, KR_STANZA_PRESENCE, KR_SUB_TYPES, KR_ADDR_BARE | KR_ADDR_FULL, NULL, NULL, 0,
     kr_sub_in_handle},
};

const kr_module_def kr_mod_roster = {
    .name = "roster",
    .handlers = kr_roster_handlers,
    .handler_count = sizeof(kr_roster_handlers) / sizeof(kr_roster_handlers[0]),
    .stream_features = kr_roster_stream_features,
};
