/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * XEP-0191 Blocking Command: the block list protocol (blocklist get, block,
 * unblock one, several or all, pushes to every resource that requested the
 * list; §3.2-§3.5) and its enforcement. Inbound (KR_PHASE_IN, before any
 * other module): stanzas from a blocked address are not delivered; iq
 * get/set get <service-unavailable/>, everything else is dropped silently,
 * so the user looks offline (an offline user with offline storage gives no
 * error either). Outbound (KR_PHASE_OUT): a stanza to a blocked address is
 * refused with <not-acceptable/> plus <blocked xmlns='urn:xmpp:blocking:errors'/>
 * (§3.3); stanzas the server routes on a user's behalf (origin NULL) to an
 * address that user blocked are dropped. Matching follows the JID forms of
 * XEP-0191 §2 / XEP-0016 (full, bare, domain/resource, domain and its
 * subdomains). The store holds the lists; this module owns an in-memory
 * cache shared by all workers: bare JID -> sorted list, the resources that
 * asked for the list (push targets), and counters. Invariants:
 *   - the cache is touched only under kr_blocking.lock;
 *   - a list is written into the cache only on the storage thread (after the
 *     store write, or from a store read), so cache and store change in the
 *     storage thread's FIFO order and a list read later is never stale;
 *   - an entry lives while the account has a bound session or a check in
 *     flight; it is loaded on KR_SESSION_BOUND;
 *   - a check is done on the worker only when every list it needs is loaded
 *     and no asynchronous check for those accounts is in flight. Otherwise
 *     (list still loading right after bind, account offline) the stanza is
 *     copied and checked on the storage thread, and routing continues from
 *     the completion: nothing passes unchecked (fail closed), and a sender's
 *     stanzas to one recipient keep their order (they all take the FIFO
 *     while one is in flight).
 */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/hmap.h"
#include "core/log.h"
#include "server/modules.h"
#include "server/router.h"
#include "server/sessions.h"
#include "server/storage_thread.h"
#include "xml/serialize.h"

#define KR_NS_BLOCKING "urn:xmpp:blocking"
#define KR_NS_BLOCKING_ERRORS "urn:xmpp:blocking:errors"
#define KR_BLOCKING_MAX_ITEMS 1000     /* blocked addresses per account */
#define KR_BLOCKING_PRIORITY 1000000   /* before every other module */

/* A resource that requested the block list: it gets the pushes (§3.3). */
typedef struct kr_block_watcher {
    unsigned worker;
    uint64_t conn_id;
    char *full;
} kr_block_watcher;

typedef struct kr_block_entry {
    char **jids; /* sorted by strcmp, unique; valid when loaded */
    size_t n;
    bool loaded;
    bool loading;       /* a load job is queued */
    unsigned sessions;  /* bound sessions of the account */
    unsigned inflight;  /* asynchronous checks involving this account */
    kr_block_watcher *watchers;
    size_t watcher_count;
} kr_block_entry;

static struct {
    pthread_mutex_t lock;
    kr_strmap users; /* bare JID -> kr_block_entry */
} kr_blocking;

/* A stanza being re-routed after its asynchronous check skips this module in those phases. */
typedef struct kr_block_skip {
    const kr_stanza *st;
    unsigned phases;
} kr_block_skip;

static _Thread_local kr_block_skip kr_blocking_skip;

/* Non-NULL in a session's KR_SLOT_BLOCKING: it requested the block list. */
static char kr_blocking_interested;

/* ---- sorted lists ------------------------------------------------------------------------- */

static int kr_block_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void kr_block_list_free(char **jids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(jids[i]);
    free(jids);
}

static bool kr_block_list_has(char *const *jids, size_t n, const char *jid)
{
    return n && bsearch(&jid, jids, n, sizeof(*jids), kr_block_cmp) != NULL;
}

/* Index where jid is or would be inserted. */
static size_t kr_block_list_pos(char *const *jids, size_t n, const char *jid)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(jids[mid], jid) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void kr_block_entry_add(kr_block_entry *e, const char *jid)
{
    size_t i = kr_block_list_pos(e->jids, e->n, jid);
    if (i < e->n && strcmp(e->jids[i], jid) == 0)
        return;
    e->jids = kr_xrealloc(e->jids, (e->n + 1) * sizeof(*e->jids));
    memmove(e->jids + i + 1, e->jids + i, (e->n - i) * sizeof(*e->jids));
    e->jids[i] = kr_xstrdup(jid);
    e->n++;
}

static void kr_block_entry_remove(kr_block_entry *e, const char *jid)
{
    size_t i = kr_block_list_pos(e->jids, e->n, jid);
    if (i >= e->n || strcmp(e->jids[i], jid) != 0)
        return;
    free(e->jids[i]);
    memmove(e->jids + i, e->jids + i + 1, (e->n - i - 1) * sizeof(*e->jids));
    e->n--;
}

static void kr_block_entry_unload(kr_block_entry *e)
{
    kr_block_list_free(e->jids, e->n);
    e->jids = NULL;
    e->n = 0;
    e->loaded = false;
}

/* Take ownership of a list read from the store (sorted here). */
static void kr_block_entry_install(kr_block_entry *e, char **jids, size_t n)
{
    if (n > 1)
        qsort(jids, n, sizeof(*jids), kr_block_cmp);
    e->jids = jids;
    e->n = n;
    e->loaded = true;
}

/*
 * XEP-0191 §2 (the order of XEP-0016): an item matches the address when it is the full JID,
 * the bare JID, domain/resource, or the domain or a parent domain of it (a blocked domain
 * covers its users and subdomains). Prepared JIDs are canonical, so equality is strcmp.
 */
static bool kr_block_match(char *const *jids, size_t n, const kr_jid *a)
{
    if (n == 0 || !a->domain)
        return false;
    char buf[3 * KR_JID_PART_MAX + 8];
    int len;
    if (a->local && a->resource) {
        len = snprintf(buf, sizeof(buf), "%s@%s/%s", a->local, a->domain, a->resource);
        if (len > 0 && (size_t)len < sizeof(buf) && kr_block_list_has(jids, n, buf))
            return true;
    }
    if (a->local) {
        len = snprintf(buf, sizeof(buf), "%s@%s", a->local, a->domain);
        if (len > 0 && (size_t)len < sizeof(buf) && kr_block_list_has(jids, n, buf))
            return true;
    }
    if (a->resource) {
        len = snprintf(buf, sizeof(buf), "%s/%s", a->domain, a->resource);
        if (len > 0 && (size_t)len < sizeof(buf) && kr_block_list_has(jids, n, buf))
            return true;
    }
    for (const char *d = a->domain; d && *d; d = strchr(d, '.') ? strchr(d, '.') + 1 : NULL)
        if (kr_block_list_has(jids, n, d))
            return true;
    return false;
}

/* ---- the shared cache (callers hold kr_blocking.lock) --------------------------------------- */

static kr_block_entry *kr_block_entry_get(const char *bare, bool create)
{
    kr_block_entry *e = kr_strmap_get(&kr_blocking.users, bare);
    if (!e && create) {
        e = kr_xcalloc(1, sizeof(*e));
        kr_strmap_put(&kr_blocking.users, bare, e);
    }
    return e;
}

static void kr_block_entry_free(kr_block_entry *e)
{
    kr_block_list_free(e->jids, e->n);
    for (size_t i = 0; i < e->watcher_count; i++)
        free(e->watchers[i].full);
    free(e->watchers);
    free(e);
}

/* Drop the entry when nothing needs it any more. */
static void kr_block_entry_release(const char *bare, kr_block_entry *e)
{
    if (e->sessions == 0 && e->inflight == 0) {
        kr_strmap_del(&kr_blocking.users, bare);
        kr_block_entry_free(e);
    }
}

static bool kr_block_entry_ready(const kr_block_entry *e)
{
    return e && e->loaded && e->inflight == 0;
}

static void kr_block_watcher_remove(kr_block_entry *e, uint64_t conn_id)
{
    for (size_t i = 0; i < e->watcher_count; i++) {
        if (e->watchers[i].conn_id != conn_id)
            continue;
        free(e->watchers[i].full);
        e->watchers[i] = e->watchers[--e->watcher_count];
        return;
    }
}

/* ---- storage-thread side ---------------------------------------------------------------- */

static char **kr_block_list_dup(char *const *jids, size_t n)
{
    char **copy = kr_xcalloc(n ? n : 1, sizeof(*copy));
    for (size_t i = 0; i < n; i++)
        copy[i] = kr_xstrdup(jids[i]);
    return copy;
}

/* Read user's list from the store (sorted; the caller owns it) and give the cache a copy when
 * it has an entry for user without a list. 0 or a store error. */
static int kr_block_load(kr_store *store, const char *user, char ***jids, size_t *n)
{
    int rc = kr_store_block_list(store, user, jids, n);
    pthread_mutex_lock(&kr_blocking.lock);
    kr_block_entry *e = kr_block_entry_get(user, false);
    if (e)
        e->loading = false; /* on failure, checks read the store until a later load works */
    if (rc == 0) {
        if (*n > 1)
            qsort(*jids, *n, sizeof(**jids), kr_block_cmp);
        if (e && !e->loaded)
            kr_block_entry_install(e, kr_block_list_dup(*jids, *n), *n);
    }
    pthread_mutex_unlock(&kr_blocking.lock);
    if (rc != 0)
        KR_LOG(KR_LOG_ERROR, NULL, "block list of %s: %s", user, kr_strerror(rc));
    return rc;
}

static void kr_block_load_job(kr_store *store, void *arg)
{
    char **jids;
    size_t n;
    if (kr_block_load(store, arg, &jids, &n) == 0)
        kr_block_list_free(jids, n);
}

static void kr_block_load_done(kr_worker *w, void *arg, uint64_t u)
{
    free(arg);
}

/* Does user's list match addr? The cache when it has the list, else the store. A store failure
 * lets the stanza through (logged): losing mail to a database hiccup is worse. */
static bool kr_block_check_list(kr_store *store, const char *user, const char *addr)
{
    kr_arena *a = kr_arena_new(256);
    kr_jid j;
    bool blocked = false, cached = false;
    if (kr_jid_parse(a, addr, &j) == 0) {
        pthread_mutex_lock(&kr_blocking.lock);
        kr_block_entry *e = kr_block_entry_get(user, false);
        if (e && e->loaded) {
            cached = true;
            blocked = kr_block_match(e->jids, e->n, &j);
        }
        pthread_mutex_unlock(&kr_blocking.lock);
        char **jids;
        size_t n;
        if (!cached && kr_block_load(store, user, &jids, &n) == 0) {
            blocked = kr_block_match(jids, n, &j);
            kr_block_list_free(jids, n);
        }
    }
    kr_arena_free(a);
    return blocked;
}

/* ---- enforcement -------------------------------------------------------------------------- */

static bool kr_blocking_served(void *ud, const char *domain)
{
    return kr_config_serves(((kr_server *)ud)->cfg, domain);
}

/* §3.3: the user's own stanza to a blocked address: <not-acceptable/> + <blocked/>. */
static void kr_blocking_refuse(kr_server *srv, kr_worker *w, kr_stanza *st)
{
    if (st->type & (KR_TYPE_ERROR | KR_TYPE_RESULT))
        return;
    kr_stanza_make_error(st, "not-acceptable", NULL, NULL);
    kr_xml_node *err = st->elem->last_child;
    kr_xml_attr_set(st->arena, err, "type", "cancel"); /* as the XEP's example */
    kr_xml_elem_add(st->arena, err, KR_NS_BLOCKING_ERRORS, "blocked");
    kr_router_send(srv, w, st->elem, st->arena);
}

/*
 * Apply a decision. sender_blocks: the local sender blocked the recipient (refused with an
 * error when the user's own client sent it, dropped when the server routes it on the user's
 * behalf). recipient_blocks: the recipient blocked the sender (§3.3: iq get/set answered
 * <service-unavailable/>, the rest dropped silently).
 */
static kr_verdict kr_blocking_enforce(kr_server *srv, kr_worker *w, kr_stanza *st,
                                      bool from_client, bool sender_blocks,
                                      bool recipient_blocks)
{
    if (sender_blocks) {
        if (from_client)
            kr_blocking_refuse(srv, w, st);
        return KR_HANDLED;
    }
    if (recipient_blocks) {
        if (st->kind == KR_STANZA_IQ && (st->type & (KR_TYPE_GET | KR_TYPE_SET)))
            kr_router_bounce(srv, w, st, "service-unavailable", NULL);
        return KR_HANDLED;
    }
    return KR_PASS;
}

/* A stanza waiting for its check on the storage thread. */
typedef struct kr_block_check {
    kr_server *srv;
    kr_arena *arena;
    kr_xml_node *elem;  /* copy of the stanza */
    kr_phase phase;
    char *sender;       /* bare JID whose list is checked against target, or NULL */
    char *target;
    char *recipient;    /* bare JID whose list is checked against source, or NULL */
    char *source;
    bool sender_blocks, recipient_blocks;
} kr_block_check;

static void kr_block_check_free(kr_block_check *c)
{
    kr_arena_free(c->arena);
    free(c->sender);
    free(c->target);
    free(c->recipient);
    free(c->source);
    free(c);
}

static void kr_block_check_job(kr_store *store, void *arg)
{
    kr_block_check *c = arg;
    if (c->sender)
        c->sender_blocks = kr_block_check_list(store, c->sender, c->target);
    if (c->recipient && !c->sender_blocks)
        c->recipient_blocks = kr_block_check_list(store, c->recipient, c->source);
}

static void kr_block_inflight_end(const char *bare)
{
    kr_block_entry *e = bare ? kr_block_entry_get(bare, false) : NULL;
    if (!e)
        return;
    e->inflight--;
    kr_block_entry_release(bare, e);
}

/* Back on the worker that saw the stanza: apply the decision or continue routing. u: the
 * origin's connection id for KR_PHASE_OUT. */
static void kr_block_check_done(kr_worker *w, void *arg, uint64_t u)
{
    kr_block_check *c = arg;
    pthread_mutex_lock(&kr_blocking.lock);
    kr_block_inflight_end(c->sender);
    kr_block_inflight_end(c->recipient);
    pthread_mutex_unlock(&kr_blocking.lock);
    kr_stanza st;
    if (kr_stanza_decode(&st, c->elem, c->arena, kr_blocking_served, c->srv) != NULL) {
        kr_block_check_free(c);
        return;
    }
    kr_session *origin = NULL;
    if (c->phase == KR_PHASE_OUT) {
        origin = kr_session_find(w, u);
        if (!origin || !origin->full) { /* the client left meanwhile */
            kr_block_check_free(c);
            return;
        }
    }
    if (kr_blocking_enforce(c->srv, w, &st, c->phase == KR_PHASE_OUT, c->sender_blocks,
                            c->recipient_blocks) == KR_PASS) {
        kr_block_skip saved = kr_blocking_skip;
        kr_blocking_skip = (kr_block_skip){&st, c->phase};
        kr_router_route(c->srv, w, &st, origin);
        kr_blocking_skip = saved;
    }
    kr_block_check_free(c);
}

static void kr_blocking_defer(kr_handler_ctx *ctx, const char *sender, const char *recipient)
{
    kr_stanza *st = ctx->st;
    kr_block_check *c = kr_xcalloc(1, sizeof(*c));
    c->srv = ctx->srv;
    c->arena = kr_arena_new(1024);
    c->elem = kr_xml_node_copy(c->arena, st->elem);
    c->phase = ctx->phase;
    if (sender) {
        c->sender = kr_xstrdup(sender);
        c->target = kr_xstrdup(kr_jid_format(st->arena, &st->to));
    }
    if (recipient) {
        c->recipient = kr_xstrdup(recipient);
        c->source = kr_xstrdup(kr_jid_format(st->arena, &st->from));
    }
    uint64_t conn_id = ctx->phase == KR_PHASE_OUT ? ctx->origin->conn_id : 0;
    kr_storage_submit(ctx->srv->storage, kr_block_check_job, ctx->worker, kr_block_check_done, c,
                      conn_id);
}

/*
 * The filter, in both phases. OUT: the user's own list against 'to'. IN: the recipient's list
 * against 'from', and, for stanzas the server routes on a local user's behalf, that user's
 * list against 'to'. Stanzas between resources of one account and from our own domains (the
 * server itself) are never blocked.
 */
static kr_verdict kr_blocking_filter(kr_handler_ctx *ctx)
{
    kr_stanza *st = ctx->st;
    if (kr_blocking_skip.st == st && (kr_blocking_skip.phases & ctx->phase))
        return KR_PASS;
    if (!st->from.domain)
        return KR_PASS;
    bool ours = kr_config_serves(ctx->srv->cfg, st->from.domain);
    if (ours && !st->from.local)
        return KR_PASS;
    const char *sender = ours ? kr_jid_format_bare(st->arena, &st->from) : NULL;
    const char *recipient = NULL;
    if (st->addressing & (KR_ADDR_BARE | KR_ADDR_FULL))
        recipient = kr_jid_format_bare(st->arena, &st->to);
    if (sender && recipient && strcmp(sender, recipient) == 0)
        return KR_PASS;
    if (ctx->phase == KR_PHASE_OUT) {
        recipient = NULL; /* checked at the destination, in the IN phase */
    } else if (ctx->origin) {
        sender = NULL; /* checked in the OUT phase */
    }
    if (!sender && !recipient)
        return KR_PASS;
    bool sender_blocks = false, recipient_blocks = false;
    pthread_mutex_lock(&kr_blocking.lock);
    kr_block_entry *es = sender ? kr_block_entry_get(sender, false) : NULL;
    kr_block_entry *er = recipient ? kr_block_entry_get(recipient, false) : NULL;
    bool ready = (!sender || kr_block_entry_ready(es)) && (!recipient || kr_block_entry_ready(er));
    if (ready) {
        sender_blocks = es && kr_block_match(es->jids, es->n, &st->to);
        recipient_blocks = er && kr_block_match(er->jids, er->n, &st->from);
    } else {
        if (sender)
            kr_block_entry_get(sender, true)->inflight++;
        if (recipient)
            kr_block_entry_get(recipient, true)->inflight++;
    }
    pthread_mutex_unlock(&kr_blocking.lock);
    if (!ready) {
        kr_blocking_defer(ctx, sender, recipient);
        return KR_HANDLED;
    }
    return kr_blocking_enforce(ctx->srv, ctx->worker, st, ctx->phase == KR_PHASE_OUT,
                               sender_blocks, recipient_blocks);
}

/* ---- the protocol: blocklist, block, unblock ------------------------------------------------ */

typedef enum kr_block_op { KR_BLOCK_GET, KR_BLOCK_ADD, KR_BLOCK_REMOVE } kr_block_op;

typedef struct kr_block_req {
    kr_server *srv;
    kr_block_op op;
    char *user;
    char *id;
    char *to_attr;   /* the request's 'to' (the reply's 'from'), or NULL */
    char **items;    /* prepared JIDs; unblock with none: all */
    size_t n;
    char **list;     /* GET: the list */
    size_t list_n;
    const char *error; /* stanza error condition of the reply, or NULL */
    const char *error_text;
} kr_block_req;

static void kr_block_req_free(kr_block_req *r)
{
    free(r->user);
    free(r->id);
    free(r->to_attr);
    kr_block_list_free(r->items, r->n);
    kr_block_list_free(r->list, r->list_n);
    free(r);
}

static void kr_block_req_get(kr_store *store, kr_block_req *r)
{
    if (kr_block_load(store, r->user, &r->list, &r->list_n) != 0)
        r->error = "internal-server-error";
}

/* The store failed half-way: forget the cached list; checks read the store from now on. */
static void kr_block_req_invalidate(const char *user)
{
    pthread_mutex_lock(&kr_blocking.lock);
    kr_block_entry *e = kr_block_entry_get(user, false);
    if (e)
        kr_block_entry_unload(e);
    pthread_mutex_unlock(&kr_blocking.lock);
}

static void kr_block_req_add(kr_store *store, kr_block_req *r)
{
    char **cur;
    size_t n;
    int rc = kr_store_block_list(store, r->user, &cur, &n);
    if (rc != 0) {
        r->error = "internal-server-error";
        return;
    }
    if (n > 1)
        qsort(cur, n, sizeof(*cur), kr_block_cmp);
    size_t added = 0;
    for (size_t i = 0; i < r->n; i++)
        added += !kr_block_list_has(cur, n, r->items[i]);
    if (n + added > KR_BLOCKING_MAX_ITEMS) {
        r->error = "policy-violation";
        r->error_text = "The block list is full";
        kr_block_list_free(cur, n);
        return;
    }
    for (size_t i = 0; i < r->n && rc == 0; i++)
        if (!kr_block_list_has(cur, n, r->items[i]))
            rc = kr_store_block_add(store, r->user, r->items[i]);
    kr_block_list_free(cur, n);
    if (rc != 0) {
        KR_LOG(KR_LOG_ERROR, NULL, "block for %s: %s", r->user, kr_strerror(rc));
        r->error = "internal-server-error";
        kr_block_req_invalidate(r->user);
        return;
    }
    pthread_mutex_lock(&kr_blocking.lock);
    kr_block_entry *e = kr_block_entry_get(r->user, false);
    for (size_t i = 0; e && e->loaded && i < r->n; i++)
        kr_block_entry_add(e, r->items[i]);
    pthread_mutex_unlock(&kr_blocking.lock);
}

static void kr_block_req_remove(kr_store *store, kr_block_req *r)
{
    int rc = r->n == 0 ? kr_store_block_remove(store, r->user, NULL) : 0;
    for (size_t i = 0; i < r->n && rc == 0; i++)
        rc = kr_store_block_remove(store, r->user, r->items[i]);
    if (rc != 0) {
        KR_LOG(KR_LOG_ERROR, NULL, "unblock for %s: %s", r->user, kr_strerror(rc));
        r->error = "internal-server-error";
        kr_block_req_invalidate(r->user);
        return;
    }
    pthread_mutex_lock(&kr_blocking.lock);
    kr_block_entry *e = kr_block_entry_get(r->user, false);
    if (e && e->loaded && r->n == 0) {
        kr_block_list_free(e->jids, e->n);
        e->jids = NULL;
        e->n = 0;
    }
    for (size_t i = 0; e && e->loaded && i < r->n; i++)
        kr_block_entry_remove(e, r->items[i]);
    pthread_mutex_unlock(&kr_blocking.lock);
}

static void kr_block_req_job(kr_store *store, void *arg)
{
    kr_block_req *r = arg;
    switch (r->op) {
    case KR_BLOCK_GET:
        kr_block_req_get(store, r);
        break;
    case KR_BLOCK_ADD:
        kr_block_req_add(store, r);
        break;
    case KR_BLOCK_REMOVE:
        kr_block_req_remove(store, r);
        break;
    }
}

static void kr_block_add_items(kr_arena *a, kr_xml_node *parent, char *const *jids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kr_xml_attr_set(a, kr_xml_elem_add(a, parent, KR_NS_BLOCKING, "item"), "jid", jids[i]);
}

static void kr_block_req_reply(kr_session *s, kr_block_req *r)
{
    kr_arena *a = kr_arena_new(1024);
    kr_xml_node *iq = kr_xml_elem_new(a, KR_NS_CLIENT, "iq");
    kr_xml_attr_set(a, iq, "type", r->error ? "error" : "result");
    kr_xml_attr_set(a, iq, "id", r->id);
    kr_xml_attr_set(a, iq, "to", s->full);
    if (r->to_attr)
        kr_xml_attr_set(a, iq, "from", r->to_attr);
    if (r->error) {
        kr_xml_node *err = kr_xml_elem_add(a, iq, KR_NS_CLIENT, "error");
        kr_xml_attr_set(a, err, "type", kr_stanza_error_type(r->error));
        kr_xml_elem_add(a, err, KR_NS_STANZAS_ERR, r->error);
        if (r->error_text) {
            kr_xml_node *t = kr_xml_elem_add(a, err, KR_NS_STANZAS_ERR, "text");
            kr_xml_attr_set_ns(a, t, KR_NS_XML, "lang", "en");
            kr_xml_text_add(a, t, r->error_text, strlen(r->error_text));
        }
    } else if (r->op == KR_BLOCK_GET) {
        kr_block_add_items(a, kr_xml_elem_add(a, iq, KR_NS_BLOCKING, "blocklist"), r->list,
                           r->list_n);
    }
    kr_session_send_elem(s, iq);
    kr_arena_free(a);
}

/* §3.3-§3.5: tell every resource that requested the list what changed. */
static void kr_block_req_push(kr_worker *w, kr_block_req *r)
{
    pthread_mutex_lock(&kr_blocking.lock);
    kr_block_entry *e = kr_block_entry_get(r->user, false);
    size_t n = e ? e->watcher_count : 0;
    kr_block_watcher *to = kr_xcalloc(n ? n : 1, sizeof(*to));
    for (size_t i = 0; i < n; i++) {
        to[i] = e->watchers[i];
        to[i].full = kr_xstrdup(e->watchers[i].full);
    }
    pthread_mutex_unlock(&kr_blocking.lock);
    static _Atomic unsigned long long push_seq;
    for (size_t i = 0; i < n; i++) {
        kr_arena *a = kr_arena_new(512);
        kr_xml_node *iq = kr_xml_elem_new(a, KR_NS_CLIENT, "iq");
        kr_xml_attr_set(a, iq, "type", "set");
        kr_xml_attr_set(a, iq, "id", kr_arena_printf(a, "kr-block-push-%llu", ++push_seq));
        kr_xml_attr_set(a, iq, "to", to[i].full);
        kr_xml_node *p = kr_xml_elem_add(a, iq, KR_NS_BLOCKING,
                                         r->op == KR_BLOCK_ADD ? "block" : "unblock");
        kr_block_add_items(a, p, r->items, r->n);
        kr_buf b = KR_BUF_INIT;
        kr_xml_serialize(&b, iq, KR_NS_CLIENT);
        kr_rbuf *buf = kr_rbuf_from_buf(&b);
        kr_session_ref ref = {.worker = to[i].worker, .conn_id = to[i].conn_id};
        kr_router_deliver(r->srv, w, &ref, buf);
        kr_rbuf_unref(buf);
        kr_arena_free(a);
        free(to[i].full);
    }
    free(to);
}

static void kr_block_req_done(kr_worker *w, void *arg, uint64_t conn_id)
{
    kr_block_req *r = arg;
    kr_session *s = kr_session_find(w, conn_id);
    if (s && s->full)
        kr_block_req_reply(s, r);
    if (!r->error && r->op != KR_BLOCK_GET)
        kr_block_req_push(w, r);
    kr_block_req_free(r);
}

static kr_block_req *kr_block_req_new(kr_handler_ctx *ctx, kr_block_op op)
{
    kr_block_req *r = kr_xcalloc(1, sizeof(*r));
    r->srv = ctx->srv;
    r->op = op;
    r->user = kr_xstrdup(ctx->origin->bare);
    r->id = kr_xstrdup(ctx->st->id);
    const char *to = kr_xml_attr_get(ctx->st->elem, "to");
    r->to_attr = to ? kr_xstrdup(to) : NULL;
    return r;
}

static void kr_block_req_submit(kr_handler_ctx *ctx, kr_block_req *r)
{
    kr_storage_submit(ctx->srv->storage, kr_block_req_job, ctx->worker, kr_block_req_done, r,
                      ctx->origin->conn_id);
}

/* §3.2: the list; the resource asking is a push target from now on. */
static kr_verdict kr_blocking_get(kr_handler_ctx *ctx)
{
    kr_session *s = ctx->origin;
    if (!s || !s->full)
        return KR_PASS;
    pthread_mutex_lock(&kr_blocking.lock);
    kr_block_entry *e = kr_block_entry_get(s->bare, false);
    if (e && !s->slots[KR_SLOT_BLOCKING]) {
        e->watchers = kr_xrealloc(e->watchers, (e->watcher_count + 1) * sizeof(*e->watchers));
        e->watchers[e->watcher_count++] =
            (kr_block_watcher){s->worker->index, s->conn_id, kr_xstrdup(s->full)};
        s->slots[KR_SLOT_BLOCKING] = &kr_blocking_interested;
    }
    pthread_mutex_unlock(&kr_blocking.lock);
    kr_block_req_submit(ctx, kr_block_req_new(ctx, KR_BLOCK_GET));
    return KR_HANDLED;
}

/* The <item jid=''/> children, prepared and without duplicates, into *items (n of them).
 * Returns NULL, or the stanza error condition of the first bad one. */
static const char *kr_blocking_items(kr_stanza *st, char ***items, size_t *n)
{
    *items = NULL;
    *n = 0;
    for (kr_xml_node *it = kr_xml_first_elem(st->payload); it; it = kr_xml_next_elem(it)) {
        if (strcmp(it->ns, KR_NS_BLOCKING) != 0 || strcmp(it->name, "item") != 0)
            continue;
        const char *jid = kr_xml_attr_get(it, "jid");
        kr_jid j;
        if (!jid)
            return "bad-request";
        if (kr_jid_parse(st->arena, jid, &j) != 0)
            return "jid-malformed";
        const char *p = kr_jid_format(st->arena, &j);
        bool dup = false;
        for (size_t i = 0; i < *n && !dup; i++)
            dup = strcmp((*items)[i], p) == 0;
        if (dup)
            continue;
        if (*n >= KR_BLOCKING_MAX_ITEMS)
            return "policy-violation";
        *items = kr_xrealloc(*items, (*n + 1) * sizeof(**items));
        (*items)[(*n)++] = kr_xstrdup(p);
    }
    return NULL;
}

/* §3.3 block (at least one item, else <bad-request/>) and §3.4-§3.5 unblock (no items:
 * everything). */
static kr_verdict kr_blocking_set(kr_handler_ctx *ctx)
{
    kr_session *s = ctx->origin;
    if (!s || !s->full)
        return KR_PASS;
    bool block = strcmp(ctx->st->payload->name, "block") == 0;
    char **items;
    size_t n;
    const char *bad = kr_blocking_items(ctx->st, &items, &n);
    if (!bad && block && n == 0)
        bad = "bad-request";
    if (bad) {
        kr_block_list_free(items, n);
        kr_router_bounce(ctx->srv, ctx->worker, ctx->st, bad,
                         strcmp(bad, "policy-violation") == 0 ? "Too many items" : NULL);
        return KR_HANDLED;
    }
    kr_block_req *r = kr_block_req_new(ctx, block ? KR_BLOCK_ADD : KR_BLOCK_REMOVE);
    r->items = items;
    r->n = n;
    kr_block_req_submit(ctx, r);
    return KR_HANDLED;
}

/* ---- session lifecycle ------------------------------------------------------------------- */

static void kr_blocking_session_event(kr_server *srv, kr_session *s, kr_session_event ev)
{
    if (!s->bare)
        return;
    if (ev == KR_SESSION_BOUND) {
        pthread_mutex_lock(&kr_blocking.lock);
        kr_block_entry *e = kr_block_entry_get(s->bare, true);
        e->sessions++;
        bool load = !e->loaded && !e->loading;
        e->loading |= load;
        pthread_mutex_unlock(&kr_blocking.lock);
        if (load)
            kr_storage_submit(srv->storage, kr_block_load_job, s->worker, kr_block_load_done,
                              kr_xstrdup(s->bare), 0);
    } else if (ev == KR_SESSION_CLOSED) {
        pthread_mutex_lock(&kr_blocking.lock);
        kr_block_entry *e = kr_block_entry_get(s->bare, false);
        if (e) {
            kr_block_watcher_remove(e, s->conn_id);
            e->sessions--;
            kr_block_entry_release(s->bare, e);
        }
        pthread_mutex_unlock(&kr_blocking.lock);
        s->slots[KR_SLOT_BLOCKING] = NULL;
    }
}

/* One side's cached list blocks the other. Only loaded lists are consulted: fan-outs reach
 * accounts with available sessions, whose lists load at bind; in the moment before a list has
 * loaded, presence passes. */
static bool kr_block_side_blocks(const kr_jid *owner, const kr_jid *other, kr_arena *a)
{
    kr_block_entry *e = kr_block_entry_get(kr_jid_format_bare(a, owner), false);
    return e && e->loaded && kr_block_match(e->jids, e->n, other);
}

/* allow_delivery: presence broadcasts and probe answers bypass routing, so the block lists
 * are applied here too (XEP-0191 §3.2: no presence either way across a block). */
static bool kr_blocking_allow(kr_server *srv, const char *from, const char *to)
{
    kr_arena *a = kr_arena_new(512);
    kr_jid f, t;
    bool allow = true;
    if (kr_jid_parse(a, from, &f) == 0 && kr_jid_parse(a, to, &t) == 0 && f.local && t.local &&
        !kr_jid_bare_equal(&f, &t)) {
        pthread_mutex_lock(&kr_blocking.lock);
        allow = !kr_block_side_blocks(&t, &f, a) && !kr_block_side_blocks(&f, &t, a);
        pthread_mutex_unlock(&kr_blocking.lock);
    }
    kr_arena_free(a);
    return allow;
}

static int kr_blocking_init(kr_server *srv)
{
    pthread_mutex_init(&kr_blocking.lock, NULL);
    kr_strmap_init(&kr_blocking.users);
    return 0;
}

static void kr_blocking_fini(kr_server *srv)
{
    kr_strmap *m = &kr_blocking.users;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key)
            kr_block_entry_free(m->slots[i].value);
    kr_strmap_clear(m);
    pthread_mutex_destroy(&kr_blocking.lock);
}

static const kr_handler_spec kr_blocking_handlers[] = {
    {KR_PHASE_OUT, KR_STANZA_MESSAGE | KR_STANZA_PRESENCE | KR_STANZA_IQ, ~0u,
     KR_ADDR_BARE | KR_ADDR_FULL | KR_ADDR_REMOTE, NULL, NULL, KR_BLOCKING_PRIORITY,
     kr_blocking_filter},
    {KR_PHASE_IN, KR_STANZA_MESSAGE | KR_STANZA_PRESENCE | KR_STANZA_IQ, ~0u,
     KR_ADDR_BARE | KR_ADDR_FULL, NULL, NULL, KR_BLOCKING_PRIORITY, kr_blocking_filter},
    {KR_PHASE_IN, KR_STANZA_IQ, KR_TYPE_GET, KR_ADDR_SELF, KR_NS_BLOCKING, "blocklist", 0,
     kr_blocking_get},
    {KR_PHASE_IN, KR_STANZA_IQ, KR_TYPE_SET, KR_ADDR_SELF, KR_NS_BLOCKING, "block", 0,
     kr_blocking_set},
    {KR_PHASE_IN, KR_STANZA_IQ, KR_TYPE_SET, KR_ADDR_SELF, KR_NS_BLOCKING, "unblock", 0,
     kr_blocking_set},
};

static const char *const kr_blocking_features[] = {KR_NS_BLOCKING, NULL};

const kr_module_def kr_mod_blocking = {
    .name = "blocking",
    .handlers = kr_blocking_handlers,
    .handler_count = sizeof(kr_blocking_handlers) / sizeof(kr_blocking_handlers[0]),
    .disco_features = kr_blocking_features,
    .init = kr_blocking_init,
    .fini = kr_blocking_fini,
    .session_event = kr_blocking_session_event,
    .allow_delivery = kr_blocking_allow,
};
