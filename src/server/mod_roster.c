/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Rosters and presence subscriptions (RFC 6121 §2, §3, Appendix A; roster
 * versioning as folded into RFC 6121 §2.6 from XEP-0237). It handles roster
 * get/set/remove from the account's own resources, and the four
 * subscription stanza types twice: outbound (KR_PHASE_OUT, from a local
 * session: stamped with the user's bare JID, the user's roster updated, then
 * routed) and inbound (KR_PHASE_IN, at the contact's server: the contact's
 * roster updated and the stanza delivered or dropped per Appendix A.3).
 * Every read-modify-write of a roster record runs as one job on the owner's
 * storage lane while the handler waits (modules.h), so changes to one roster
 * are serialized and the stanza needs no copy; the resume function pushes the
 * changed item to the owner's interested resources (those that asked for the
 * roster: a directory flag of this module) and routes what follows. A roster
 * get or set addressed to another user (a forged roster push) is refused with
 * <forbidden/> before it is routed (RFC 6121 §2.1.5-§2.1.6: only the user's
 * own server may push roster changes). Pending inbound requests are stored
 * with the roster record (pending_in_xml) and redelivered by the presence
 * module at the next initial presence. Values of 'subscription' other than
 * "remove" in a roster set are ignored, as RFC 6121 §2.1.2.5 requires.
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

/* Resources that asked for the roster (RFC 6121 §2.2): they get pushes. */
static unsigned kr_roster_interested;

/* The "roster" section of the configuration. */
typedef struct kr_roster_config {
    unsigned max_items; /* roster items per account (RFC 6121 §2) */
} kr_roster_config;

static const kr_config_key kr_roster_keys[] = {
    KR_CONFIG_NUM(kr_roster_config, "max_items", max_items, 1, 100000, "1000"),
};

static const kr_config_section kr_roster_section =
    KR_CONFIG_SECTION("roster", kr_roster_config, kr_roster_keys);

static const kr_roster_config *kr_roster_cfg; /* set at init, read-only afterwards */

/* Roster push of one item to every interested resource of user (RFC 6121 §2.1.6): one
 * serialization without 'to' (it goes to the user's own resources), shared by all. */
static void kr_roster_push(kr_server *srv, kr_worker *w, const char *user,
                           const kr_roster_item *it, bool removed, uint64_t version)
{
    static atomic_uint_fast64_t seq;
    unsigned long long n = (unsigned long long)atomic_fetch_add(&seq, 1);
    kr_buf b = KR_BUF_INIT;
    kr_buf_printf(&b, "<iq type='set' id='push-%llu-%llu'><query xmlns='" KR_NS_ROSTER
                      "' ver='%llu'>",
                  (unsigned long long)version, n, (unsigned long long)version);
    kr_roster_item_write(&b, it, removed);
    kr_buf_puts(&b, "</query></iq>");
    kr_rbuf *r = kr_rbuf_from_buf(&b);
    r->meta = kr_stanza_meta(KR_STANZA_IQ, KR_TYPE_SET);
    kr_deliver_account(srv, w, user, r, 0, kr_roster_interested);
    kr_rbuf_unref(r);
}

/* An error reply carrying a text (RFC 6120 §8.3.2). */
static kr_verdict kr_roster_refuse(kr_handler_ctx *ctx, const char *condition, const char *text)
{
    kr_bounce(ctx, condition, text);
    return KR_HANDLED;
}

/* Roster get/set must come from the account's own resource (RFC 6121 §2.1.5, §2.3.3). */
static bool kr_roster_own(kr_handler_ctx *ctx)
{
    if (ctx->origin && ctx->origin->full && ctx->st->addressing == KR_ADDR_SELF)
        return true;
    kr_bounce(ctx, "forbidden", NULL);
    return false;
}

/* RFC 6121 §2.1.5-§2.1.6: roster gets and sets go to the user's own account; one addressed to
 * another user must not reach that user's client or roster. The error comes from the server. */
static kr_verdict kr_roster_foreign(kr_handler_ctx *ctx)
{
    kr_stanza *st = ctx->st;
    kr_stanza_make_error(st, "forbidden", "Only a user's own server changes its roster",
                         ctx->origin->domain);
    kr_send_reply(ctx->srv, ctx->worker, st, st->elem);
    return KR_HANDLED;
}

/* ---- roster get (RFC 6121 §2.2, §2.6) ---------------------------------------------------- */

typedef struct kr_roster_get_job {
    char *user;
    kr_roster_item *items;
    size_t n;
    uint64_t version;
    int err;
} kr_roster_get_job;

static void kr_roster_get_job_free(void *arg)
{
    kr_roster_get_job *j = arg;
    kr_roster_items_free(j->items, j->n);
    free(j->user);
    free(j);
}

static void kr_roster_get_run(kr_store *store, void *arg)
{
    kr_roster_get_job *j = arg;
    j->err = kr_roster_list(store, j->user, &j->items, &j->n, &j->version);
    if (j->err != 0) {
        j->items = NULL;
        j->n = 0;
    }
}

static kr_verdict kr_roster_get_done(kr_handler_ctx *ctx, void *arg)
{
    kr_roster_get_job *j = arg;
    kr_stanza *st = ctx->st;
    if (j->err != 0) {
        KR_LOG(KR_LOG_ERROR, j->user, "roster load failed: %s", kr_strerror(j->err));
        return kr_roster_refuse(ctx, "internal-server-error", NULL);
    }
    char ver[24];
    snprintf(ver, sizeof(ver), "%llu", (unsigned long long)j->version);
    kr_xml_node *iq = kr_stanza_iq_result(st);
    const char *cached = kr_xml_attr_get(st->payload, "ver");
    if (!cached || strcmp(cached, ver) != 0) {
        /* RFC 6121 §2.6.3: a client whose copy is current gets an empty result. */
        kr_buf b = KR_BUF_INIT;
        kr_buf_printf(&b, "<query xmlns='" KR_NS_ROSTER "' ver='%s'>", ver);
        for (size_t i = 0; i < j->n; i++)
            if (kr_roster_item_in_roster(&j->items[i]))
                kr_roster_item_write(&b, &j->items[i], false);
        kr_buf_puts(&b, "</query>");
        kr_xml_raw_add(st->arena, iq, b.data, b.len);
        kr_buf_clear(&b);
    }
    kr_reply(ctx, iq);
    return KR_HANDLED;
}

static const kr_wait_ops kr_roster_get_ops = {kr_roster_get_run, kr_roster_get_done,
                                              kr_roster_get_job_free};

static kr_verdict kr_roster_get_handle(kr_handler_ctx *ctx)
{
    if (!kr_roster_own(ctx))
        return KR_HANDLED;
    kr_session *s = ctx->origin;
    /* RFC 6121 §2.2: a resource that asked for the roster is "interested": it gets pushes. */
    kr_sessions_set_flags(ctx->srv->sessions, s->bare, s->resource, s->id,
                          kr_roster_interested, 0);
    kr_roster_get_job *j = kr_xcalloc(1, sizeof(*j));
    j->user = kr_xstrdup(s->bare);
    return kr_handler_wait(ctx, j->user, &kr_roster_get_ops, j);
}

/* ---- roster set and remove (RFC 6121 §2.3, §2.4, §2.5) ----------------------------------- */

typedef struct kr_roster_set_job {
    char *user;
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

static void kr_roster_set_job_free(void *arg)
{
    kr_roster_set_job *j = arg;
    kr_roster_item_clear(&j->req);
    if (j->had_old)
        kr_roster_item_clear(&j->old);
    free(j->user);
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
    int r = kr_roster_get(store, j->user, j->req.contact, &j->old);
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
        r = kr_roster_remove(store, j->user, j->req.contact, &j->version);
        if (r != 0)
            kr_roster_set_fail(j, r);
        return;
    }
    if (!j->had_old) {
        size_t n = 0;
        r = kr_roster_count(store, j->user, &n);
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
    r = kr_roster_put(store, j->user, &j->now, &j->version);
    if (r != 0)
        kr_roster_set_fail(j, r);
}

/* §2.5.2: removing an item cancels the subscriptions both ways, as if the user had sent
 * unsubscribe and unsubscribed. */
static void kr_roster_removed(kr_server *srv, kr_worker *w, kr_roster_set_job *j)
{
    if ((j->old.sub & KR_SUB_TO) || j->old.ask)
        kr_send_presence(srv, w, j->user, j->old.contact, "unsubscribe");
    if ((j->old.sub & KR_SUB_FROM) || j->old.pending_in)
        kr_send_presence(srv, w, j->user, j->old.contact, "unsubscribed");
}

static kr_verdict kr_roster_set_done(kr_handler_ctx *ctx, void *arg)
{
    kr_roster_set_job *j = arg;
    if (j->condition)
        return kr_roster_refuse(ctx, j->condition, j->text);
    if (j->remove)
        kr_roster_push(ctx->srv, ctx->worker, j->user, &j->old, true, j->version);
    else
        kr_roster_push(ctx->srv, ctx->worker, j->user, &j->now, false, j->version);
    kr_reply(ctx, kr_stanza_iq_result(ctx->st));
    if (j->remove)
        kr_roster_removed(ctx->srv, ctx->worker, j);
    return KR_HANDLED;
}

static const kr_wait_ops kr_roster_set_ops = {kr_roster_set_run, kr_roster_set_done,
                                              kr_roster_set_job_free};

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
        return kr_roster_refuse(ctx, cond, text);
    }
    j->user = kr_xstrdup(s->bare);
    j->max_items = kr_roster_cfg->max_items;
    return kr_handler_wait(ctx, j->user, &kr_roster_set_ops, j);
}

/* ---- subscriptions (RFC 6121 §3, Appendix A) --------------------------------------------- */

typedef struct kr_sub_job {
    bool out;            /* sent by owner (outbound) or received for owner (inbound) */
    kr_stanza_type type; /* subscribe, subscribed, unsubscribe or unsubscribed */
    char *owner;         /* bare JID whose roster changes */
    char *peer;          /* bare JID on the other side */
    unsigned max_items;
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
    unsigned deliver;   /* inbound: KR_SUB_DELIVER_* of the owner's resources to deliver to */
    const char *reply;  /* inbound: automatic answer to the peer ("subscribed", ...) */
    bool gained;        /* inbound subscribed: the owner now sees the peer */
    bool lost;          /* inbound: the subscription the stanza cancels existed */
} kr_sub_job;

/* Which of the owner's resources get an inbound subscription stanza. */
enum { KR_SUB_DELIVER_AVAILABLE = 1, KR_SUB_DELIVER_INTERESTED = 2 };

static void kr_sub_job_free(void *arg)
{
    kr_sub_job *j = arg;
    if (j->had_old)
        kr_roster_item_clear(&j->old);
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
        j->deliver = KR_SUB_DELIVER_AVAILABLE;
        return true;
    case KR_TYPE_UNSUBSCRIBE:
        if (!(it->sub & KR_SUB_FROM) && !it->pending_in)
            return false;
        j->lost = (it->sub & KR_SUB_FROM) != 0;
        it->sub &= ~KR_SUB_FROM;
        it->pending_in = false;
        it->pending_in_xml = NULL;
        j->deliver = KR_SUB_DELIVER_INTERESTED;
        return true;
    case KR_TYPE_SUBSCRIBED:
        if (!it->ask || (it->sub & KR_SUB_TO))
            return false;
        it->sub |= KR_SUB_TO;
        it->ask = false;
        j->gained = true;
        j->deliver = KR_SUB_DELIVER_INTERESTED;
        return true;
    case KR_TYPE_UNSUBSCRIBED:
        if (!it->ask && !(it->sub & KR_SUB_TO))
            return false;
        j->lost = (it->sub & KR_SUB_TO) != 0;
        it->sub &= ~KR_SUB_TO;
        it->ask = false;
        j->deliver = KR_SUB_DELIVER_INTERESTED;
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
    if (kr_roster_count(store, j->owner, &n) != 0)
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
        r = j->had_old ? kr_roster_remove(store, j->owner, j->peer, &j->version) : 0;
    } else {
        r = kr_roster_put(store, j->owner, it, &j->version);
        j->push = r == 0 && kr_sub_visible_change(j, it);
    }
    if (r != 0)
        KR_LOG(KR_LOG_ERROR, j->owner, "roster update failed: %s", kr_strerror(r));
    j->now = *it;
}

static void kr_sub_run(kr_store *store, void *arg)
{
    kr_sub_job *j = arg;
    int r = kr_roster_get(store, j->owner, j->peer, &j->old);
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

/* Outbound, back on the worker: the stanza continues to the peer stamped with bare JIDs
 * (§3.1.2), or is refused when the roster is full. */
static void kr_sub_out_done(kr_handler_ctx *ctx, kr_sub_job *j)
{
    kr_server *srv = ctx->srv;
    kr_worker *w = ctx->worker;
    kr_stanza *st = ctx->st;
    if (j->full) {
        kr_bounce(ctx, "not-allowed", "The roster has reached its maximum number of items");
        return;
    }
    if (!j->route)
        return;
    /* Subscriptions are between bare JIDs (§3.1.2, §3.1.3): stamp both ends. */
    kr_xml_attr_set(st->arena, st->elem, "from", j->owner);
    kr_xml_attr_set(st->arena, st->elem, "to", j->peer);
    kr_send_derived(srv, w, st, st->elem);
    /* §3.1.5 / §3.2.2: after approving or cancelling the subscription of a contact on another
     * server, our server sends the user's current (or unavailable) presence to it; for local
     * contacts the inbound side does it (kr_sub_in_done). */
    if (!kr_roster_is_local(srv, j->peer) && j->type == KR_TYPE_SUBSCRIBED)
        kr_roster_send_presences(srv, w, j->owner, j->peer, false);
    else if (!kr_roster_is_local(srv, j->peer) && j->type == KR_TYPE_UNSUBSCRIBED)
        kr_roster_send_presences(srv, w, j->owner, j->peer, true);
}

static void kr_sub_in_done(kr_server *srv, kr_worker *w, kr_sub_job *j)
{
    if (j->reply)
        kr_send_presence(srv, w, j->owner, j->peer, j->reply);
    if (j->deliver) {
        kr_rbuf *b = kr_rbuf_new(j->xml, j->xml_len);
        b->meta = kr_stanza_meta(KR_STANZA_PRESENCE, j->type);
        if (j->deliver == KR_SUB_DELIVER_AVAILABLE)
            kr_deliver_account(srv, w, j->owner, b, KR_PICK_AVAILABLE, 0);
        else
            kr_deliver_account(srv, w, j->owner, b, 0, kr_roster_interested);
        kr_rbuf_unref(b);
    }
    /* Presence follows the subscription change. The peer's server sends it; when the peer
     * is ours, that is done here, after the owner has seen the change. §3.1.5 (approval:
     * current presence), §3.2.2 (cancellation: unavailable), §3.3.3 (unsubscribe: the
     * owner's resources go unavailable for the peer). */
    if (j->type == KR_TYPE_SUBSCRIBED && j->gained && kr_roster_is_local(srv, j->peer))
        kr_roster_send_presences(srv, w, j->peer, j->owner, false);
    else if (j->type == KR_TYPE_UNSUBSCRIBED && j->lost && kr_roster_is_local(srv, j->peer))
        kr_roster_send_presences(srv, w, j->peer, j->owner, true);
    else if (j->type == KR_TYPE_UNSUBSCRIBE && j->lost)
        kr_roster_send_presences(srv, w, j->owner, j->peer, true);
}

static kr_verdict kr_sub_done(kr_handler_ctx *ctx, void *arg)
{
    kr_sub_job *j = arg;
    if (j->push)
        kr_roster_push(ctx->srv, ctx->worker, j->owner, &j->now, false, j->version);
    if (j->out)
        kr_sub_out_done(ctx, j);
    else
        kr_sub_in_done(ctx->srv, ctx->worker, j);
    return KR_HANDLED;
}

static const kr_wait_ops kr_sub_ops = {kr_sub_run, kr_sub_done, kr_sub_job_free};

static kr_sub_job *kr_sub_job_new(kr_handler_ctx *ctx, bool out, const char *owner,
                                  const char *peer)
{
    kr_sub_job *j = kr_xcalloc(1, sizeof(*j));
    j->out = out;
    j->type = ctx->st->type;
    j->owner = kr_xstrdup(owner);
    j->peer = kr_xstrdup(peer);
    j->max_items = kr_roster_cfg->max_items;
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
    return kr_handler_wait(ctx, j->owner, &kr_sub_ops, j);
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
    /* The stanza as the owner's clients get it, now or at the next login (§3.1.3): between
     * bare JIDs. */
    kr_arena *a = kr_arena_new(1024);
    kr_xml_node *e = kr_xml_node_copy(a, st->elem);
    kr_xml_attr_set(a, e, "from", peer);
    kr_xml_attr_set(a, e, "to", owner);
    kr_buf b = KR_BUF_INIT;
    kr_xml_serialize(&b, e, KR_NS_CLIENT);
    kr_arena_free(a);
    j->xml = kr_buf_detach(&b, &j->xml_len);
    return kr_handler_wait(ctx, j->owner, &kr_sub_ops, j);
}

/* ---- descriptor -------------------------------------------------------------------------- */

/* RFC 6121 §2.6.1 (roster versioning) and §3.4.1 (pre-approval), after authentication. */
static void kr_roster_stream_features(kr_server *srv, bool authenticated, kr_buf *out)
{
    if (authenticated)
        kr_buf_puts(out, "<ver xmlns='" KR_NS_ROSTERVER "'/><sub xmlns='" KR_NS_PREAPPROVAL
                         "'/>");
}

static int kr_roster_init(kr_server *srv)
{
    kr_roster_cfg = kr_config_section_get(srv->cfg, &kr_roster_section);
    return 0;
}

static const kr_store_decl kr_roster_stores[] = {
    {KR_ROSTER_STORE, KR_STORE_MAP, 1, NULL},
    {KR_ROSTER_META_STORE, KR_STORE_MAP, 1, NULL},
};

static const kr_handler_spec kr_roster_handlers[] = {
    {KR_PHASE_OUT, KR_STANZA_IQ, KR_TYPE_GET | KR_TYPE_SET,
     KR_ADDR_BARE | KR_ADDR_FULL | KR_ADDR_REMOTE, KR_NS_ROSTER, NULL, 0, kr_roster_foreign, 0},
    {KR_PHASE_IN, KR_STANZA_IQ, KR_TYPE_GET, KR_ADDR_SELF | KR_ADDR_BARE, KR_NS_ROSTER, "query",
     0, kr_roster_get_handle, 0},
    {KR_PHASE_IN, KR_STANZA_IQ, KR_TYPE_SET, KR_ADDR_SELF | KR_ADDR_BARE, KR_NS_ROSTER, "query",
     0, kr_roster_set_handle, 0},
    {KR_PHASE_OUT, KR_STANZA_PRESENCE, KR_SUB_TYPES,
     KR_ADDR_HOST | KR_ADDR_BARE | KR_ADDR_FULL | KR_ADDR_REMOTE | KR_ADDR_SELF, NULL, NULL, 0,
     kr_sub_out_handle, 0},
    {KR_PHASE_IN, KR_STANZA_PRESENCE, KR_SUB_TYPES, KR_ADDR_BARE | KR_ADDR_FULL, NULL, NULL, 0,
     kr_sub_in_handle, 0},
};

const kr_module_def kr_mod_roster = {
    .name = "roster",
    .config = &kr_roster_section,
    .stores = kr_roster_stores,
    .store_count = 2,
    .init = kr_roster_init,
    .handlers = kr_roster_handlers,
    .handler_count = sizeof(kr_roster_handlers) / sizeof(kr_roster_handlers[0]),
    .stream_features = kr_roster_stream_features,
    .session_flag = &kr_roster_interested,
};
