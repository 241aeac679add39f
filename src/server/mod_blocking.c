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
 * (§3.3); stanzas the server sends on a user's behalf (presence broadcasts,
 * probe answers: no origin session) to an address that user blocked are
 * dropped, so no presence crosses a block either way. Matching follows the
 * JID forms of XEP-0191 §2 / XEP-0016 (full, bare, domain/resource, domain
 * and its subdomains).
 * The store holds the lists. While an account is online its list is also
 * kept, sorted and immutable, as this module's state in the session
 * directory (kr_sessions_state_*), so every worker decides from memory; it is
 * loaded at bind and replaced after every change, with the version of the
 * storage lane's read so that an older list never replaces a newer one. When
 * a list is not in memory (the account is offline, or its list is still
 * loading right after bind) the filter waits for it on the account's storage
 * lane: nothing passes unchecked, and the stream's later stanzas wait behind
 * it, so their order is kept. A store failure lets the stanza through
 * (logged): losing mail to a database hiccup is worse.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
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
#define KR_BLOCKING_STORE "blocking"   /* map: key = a blocked JID, value empty */

static unsigned kr_blocking_slot;  /* the account's list in the session directory */
static unsigned kr_blocking_watch; /* directory flag: the resource requested the list */

/* An account's list: sorted by strcmp, unique, immutable once shared. */
typedef struct kr_blocklist {
    kr_shared base; /* first */
    char **jids;
    size_t n;
} kr_blocklist;

static void kr_blocklist_free_jids(char **jids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(jids[i]);
    free(jids);
}

static void kr_blocklist_free(kr_shared *v)
{
    kr_blocklist *l = (kr_blocklist *)v;
    kr_blocklist_free_jids(l->jids, l->n);
    free(l);
}

static int kr_block_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int kr_blocklist_row(void *ud, const char *key, const char *value, size_t len)
{
    kr_blocklist *l = ud;
    l->jids = kr_xrealloc(l->jids, (l->n + 1) * sizeof(*l->jids));
    l->jids[l->n++] = kr_xstrdup(key);
    return 0;
}

/* Read user's list from the store, on its lane, into a new shared list (keys come in byte
 * order: strcmp order). 0 or a store error. */
static int kr_blocklist_read(kr_store *store, const char *user, kr_blocklist **out)
{
    kr_blocklist *l = kr_xcalloc(1, sizeof(*l));
    int rc = kr_store_map_list(store, KR_BLOCKING_STORE, user, NULL, kr_blocklist_row, l);
    if (rc != 0) {
        KR_LOG(KR_LOG_ERROR, NULL, "block list of %s: %s", user, kr_strerror(rc));
        kr_blocklist_free_jids(l->jids, l->n);
        free(l);
        *out = NULL;
        return rc;
    }
    kr_shared_init(&l->base, kr_shared_version_next(), kr_blocklist_free);
    *out = l;
    return 0;
}

static bool kr_blocklist_has(const kr_blocklist *l, const char *jid)
{
    return l->n && bsearch(&jid, l->jids, l->n, sizeof(*l->jids), kr_block_cmp) != NULL;
}

/*
 * XEP-0191 §2 (the order of XEP-0016): an item matches the address when it is the full JID,
 * the bare JID, domain/resource, or the domain or a parent domain of it (a blocked domain
 * covers its users and subdomains). Prepared JIDs are canonical, so equality is strcmp.
 */
static bool kr_blocklist_match(const kr_blocklist *l, const kr_jid *a)
{
    if (!l || l->n == 0 || !a->domain)
        return false;
    char buf[3 * KR_JID_PART_MAX + 8];
    int len;
    if (a->local && a->resource) {
        len = snprintf(buf, sizeof(buf), "%s@%s/%s", a->local, a->domain, a->resource);
        if (len > 0 && (size_t)len < sizeof(buf) && kr_blocklist_has(l, buf))
            return true;
    }
    if (a->local) {
        len = snprintf(buf, sizeof(buf), "%s@%s", a->local, a->domain);
        if (len > 0 && (size_t)len < sizeof(buf) && kr_blocklist_has(l, buf))
            return true;
    }
    if (a->resource) {
        len = snprintf(buf, sizeof(buf), "%s/%s", a->domain, a->resource);
        if (len > 0 && (size_t)len < sizeof(buf) && kr_blocklist_has(l, buf))
            return true;
    }
    for (const char *d = a->domain; d && *d; d = strchr(d, '.') ? strchr(d, '.') + 1 : NULL)
        if (kr_blocklist_has(l, d))
            return true;
    return false;
}

/* Share a list with every worker while its account is online (takes the reference). */
static void kr_blocklist_publish(kr_server *srv, const char *user, kr_blocklist *l)
{
    kr_sessions_state_put(srv->sessions, user, kr_blocking_slot, &l->base);
}

static kr_blocklist *kr_blocklist_get(kr_server *srv, const char *user)
{
    return (kr_blocklist *)kr_sessions_state_get(srv->sessions, user, kr_blocking_slot);
}

/* ---- enforcement -------------------------------------------------------------------------- */

/* §3.3: the user's own stanza to a blocked address: <not-acceptable/> + <blocked/>. */
static void kr_blocking_refuse(kr_handler_ctx *ctx)
{
    kr_stanza *st = ctx->st;
    if (st->type & (KR_TYPE_ERROR | KR_TYPE_RESULT))
        return;
    kr_stanza_make_error(st, "not-acceptable", NULL, NULL);
    kr_xml_node *err = st->elem->last_child;
    kr_xml_attr_set(st->arena, err, "type", "cancel"); /* as the XEP's example */
    kr_xml_elem_add(st->arena, err, KR_NS_BLOCKING_ERRORS, "blocked");
    kr_send_reply(ctx->srv, ctx->worker, st, st->elem);
}

/*
 * Apply a decision. sender_blocks: the local sender blocked the recipient (refused with an
 * error when the user's own client sent it, dropped when the server sends it on the user's
 * behalf). recipient_blocks: the recipient blocked the sender (§3.3: iq get/set answered
 * <service-unavailable/>, the rest dropped silently).
 */
static kr_verdict kr_blocking_enforce(kr_handler_ctx *ctx, bool sender_blocks,
                                      bool recipient_blocks)
{
    if (sender_blocks) {
        if (ctx->phase == KR_PHASE_OUT)
            kr_blocking_refuse(ctx);
        return KR_HANDLED;
    }
    if (recipient_blocks) {
        kr_stanza *st = ctx->st;
        if (st->kind == KR_STANZA_IQ && (st->type & (KR_TYPE_GET | KR_TYPE_SET)))
            kr_bounce(ctx, "service-unavailable", NULL);
        return KR_HANDLED;
    }
    return KR_PASS;
}

/* The lists a decision needs: [0] the sender's (against 'to'), [1] the recipient's (against
 * 'from'); missing ones are read on their accounts' lanes, one after the other. */
typedef struct kr_block_check {
    kr_server *srv;
    char *user[2];
    kr_blocklist *list[2];
    int next; /* the list being read */
} kr_block_check;

static void kr_block_check_free(void *arg)
{
    kr_block_check *c = arg;
    for (int i = 0; i < 2; i++) {
        free(c->user[i]);
        if (c->list[i])
            kr_shared_unref(&c->list[i]->base);
    }
    free(c);
}

static void kr_block_check_job(kr_store *store, void *arg)
{
    kr_block_check *c = arg;
    kr_blocklist_read(store, c->user[c->next], &c->list[c->next]);
}

static kr_verdict kr_block_check_decide(kr_handler_ctx *ctx, kr_block_check *c);

static kr_verdict kr_block_check_resume(kr_handler_ctx *ctx, void *arg)
{
    kr_block_check *c = arg;
    kr_blocklist *l = c->list[c->next];
    if (l) /* shared for the next stanzas, if the account is online */
        kr_blocklist_publish(ctx->srv, c->user[c->next], (kr_blocklist *)kr_shared_ref(&l->base));
    return kr_block_check_decide(ctx, c);
}

static const kr_wait_ops kr_block_check_ops = {kr_block_check_job, kr_block_check_resume,
                                               kr_block_check_free};

/* Decide when every list is there, or wait for the next one. */
static kr_verdict kr_block_check_decide(kr_handler_ctx *ctx, kr_block_check *c)
{
    for (int i = c->next + 1; i < 2; i++) {
        if (c->user[i] && !c->list[i]) {
            c->next = i;
            return kr_handler_wait(ctx, c->user[i], &kr_block_check_ops, c);
        }
    }
    kr_stanza *st = ctx->st;
    bool sender_blocks = kr_blocklist_match(c->list[0], &st->to);
    bool recipient_blocks = kr_blocklist_match(c->list[1], &st->from);
    return kr_blocking_enforce(ctx, sender_blocks, recipient_blocks);
}

/*
 * The filter, in both phases. OUT: the user's own list against 'to'. IN: the recipient's list
 * against 'from', and, for stanzas the server sends on a local user's behalf, that user's
 * list against 'to'. Stanzas between resources of one account and from our own domains (the
 * server itself) are never blocked.
 */
static kr_verdict kr_blocking_filter(kr_handler_ctx *ctx)
{
    kr_stanza *st = ctx->st;
    if (!st->from.domain)
        return KR_PASS;
    bool ours = st->from_host && st->from_host->kind == KR_HOST_USER;
    if (st->from_host && !st->from.local)
        return KR_PASS; /* the server or one of our services */
    const char *sender = ours ? kr_jid_format_bare(st->arena, &st->from) : NULL;
    const char *recipient = NULL;
    if ((st->addressing & (KR_ADDR_BARE | KR_ADDR_FULL)) && st->host &&
        st->host->kind == KR_HOST_USER)
        recipient = kr_jid_format_bare(st->arena, &st->to);
    if (sender && recipient && strcmp(sender, recipient) == 0)
        return KR_PASS;
    if (ctx->phase == KR_PHASE_OUT)
        recipient = NULL; /* checked at the destination, in the IN phase */
    else if (ctx->origin)
        sender = NULL; /* checked in the OUT phase */
    if (!sender && !recipient)
        return KR_PASS;
    const char *users[2] = {sender, recipient};
    kr_blocklist *lists[2] = {NULL, NULL};
    bool missing = false;
    for (int i = 0; i < 2; i++) {
        if (users[i]) {
            lists[i] = kr_blocklist_get(ctx->srv, users[i]);
            missing = missing || !lists[i];
        }
    }
    if (!missing) { /* the usual case: every list in memory, decided without allocating */
        bool sender_blocks = kr_blocklist_match(lists[0], &st->to);
        bool recipient_blocks = kr_blocklist_match(lists[1], &st->from);
        for (int i = 0; i < 2; i++)
            if (lists[i])
                kr_shared_unref(&lists[i]->base);
        return kr_blocking_enforce(ctx, sender_blocks, recipient_blocks);
    }
    kr_block_check *c = kr_xcalloc(1, sizeof(*c));
    c->srv = ctx->srv;
    c->next = -1;
    for (int i = 0; i < 2; i++) {
        c->user[i] = users[i] ? kr_xstrdup(users[i]) : NULL;
        c->list[i] = lists[i];
    }
    return kr_block_check_decide(ctx, c); /* waits; the core frees c */
}

/* ---- the protocol: blocklist, block, unblock ------------------------------------------------ */

typedef enum kr_block_op { KR_BLOCK_GET, KR_BLOCK_ADD, KR_BLOCK_REMOVE } kr_block_op;

typedef struct kr_block_req {
    kr_block_op op;
    char *user;
    char **items; /* prepared JIDs; unblock with none: all */
    size_t n;
    kr_blocklist *list; /* the list after the operation */
    const char *error;  /* stanza error condition of the reply, or NULL */
    const char *error_text;
} kr_block_req;

static void kr_block_req_free(void *arg)
{
    kr_block_req *r = arg;
    free(r->user);
    kr_blocklist_free_jids(r->items, r->n);
    if (r->list)
        kr_shared_unref(&r->list->base);
    free(r);
}

static int kr_block_req_add(kr_store *store, kr_block_req *r, const kr_blocklist *cur)
{
    size_t added = 0;
    for (size_t i = 0; i < r->n; i++)
        added += !kr_blocklist_has(cur, r->items[i]);
    if (cur->n + added > KR_BLOCKING_MAX_ITEMS) {
        r->error = "policy-violation";
        r->error_text = "The block list is full";
        return 0;
    }
    int rc = 0;
    for (size_t i = 0; i < r->n && rc == 0; i++)
        if (!kr_blocklist_has(cur, r->items[i]))
            rc = kr_store_map_put(store, KR_BLOCKING_STORE, r->user, r->items[i], "", 0);
    return rc;
}

static int kr_block_req_remove(kr_store *store, kr_block_req *r)
{
    int rc = r->n == 0 ? kr_store_map_delete(store, KR_BLOCKING_STORE, r->user, NULL) : 0;
    for (size_t i = 0; i < r->n && rc == 0; i++)
        rc = kr_store_map_delete(store, KR_BLOCKING_STORE, r->user, r->items[i]);
    return rc;
}

/* On the user's lane: change the list (one transaction: the limit holds at commit), then read
 * it back as it now is. */
static void kr_block_req_job(kr_store *store, void *arg)
{
    kr_block_req *r = arg;
    kr_blocklist *cur = NULL;
    int rc = 0;
    if (r->op != KR_BLOCK_GET) {
        rc = kr_store_begin(store);
        if (rc == 0)
            rc = kr_blocklist_read(store, r->user, &cur);
        if (rc == 0)
            rc = r->op == KR_BLOCK_ADD ? kr_block_req_add(store, r, cur)
                                       : kr_block_req_remove(store, r);
        if (cur)
            kr_shared_unref(&cur->base);
        cur = NULL;
        if (rc == 0 && !r->error)
            rc = kr_store_commit(store);
        else
            kr_store_rollback(store);
        if (rc != 0)
            KR_LOG(KR_LOG_ERROR, NULL, "block list change for %s: %s", r->user,
                   kr_strerror(rc));
    }
    if (rc == 0 && !r->error)
        rc = kr_blocklist_read(store, r->user, &cur);
    if (rc != 0)
        r->error = "internal-server-error";
    r->list = cur;
}

static void kr_block_add_items(kr_arena *a, kr_xml_node *parent, char *const *jids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kr_xml_attr_set(a, kr_xml_elem_add(a, parent, KR_NS_BLOCKING, "item"), "jid", jids[i]);
}

/* A push's payload (<block/> or <unblock/> with the items), shared by the resources it goes
 * to; each gets it in an iq addressed to its own full JID. */
typedef struct kr_block_push {
    kr_rbuf *payload;
    unsigned long long id;
} kr_block_push;

static void kr_block_push_one(kr_session *s, void *arg)
{
    kr_block_push *p = arg;
    if (s && s->full) {
        kr_buf b = KR_BUF_INIT;
        kr_buf_printf(&b, "<iq type='set' id='kr-block-push-%llu' to='", p->id);
        kr_xml_escape_attr(&b, s->full, strlen(s->full));
        kr_buf_puts(&b, "'>");
        kr_buf_append(&b, p->payload->data, p->payload->len);
        kr_buf_puts(&b, "</iq>");
        kr_rbuf *r = kr_rbuf_from_buf(&b);
        r->meta = kr_stanza_meta(KR_STANZA_IQ, KR_TYPE_SET);
        kr_session_deliver(s, r);
        kr_rbuf_unref(r);
    }
    kr_rbuf_unref(p->payload);
    free(p);
}

/* §3.3-§3.5: tell every resource that requested the list what changed. */
static void kr_block_req_push(kr_handler_ctx *ctx, kr_block_req *r)
{
    static _Atomic unsigned long long push_seq;
    kr_arena *a = kr_arena_new(512);
    kr_xml_node *p = kr_xml_elem_new(a, KR_NS_BLOCKING, r->op == KR_BLOCK_ADD ? "block" : "unblock");
    kr_block_add_items(a, p, r->items, r->n);
    kr_buf b = KR_BUF_INIT;
    kr_xml_serialize(&b, p, KR_NS_CLIENT);
    kr_arena_free(a);
    kr_rbuf *payload = kr_rbuf_from_buf(&b);
    kr_session_ref refs[64];
    size_t n = kr_sessions_list(ctx->srv->sessions, r->user, refs, 64);
    for (size_t i = 0; i < n && i < 64; i++) {
        if (!(refs[i].flags & kr_blocking_watch))
            continue;
        kr_block_push *push = kr_xmalloc(sizeof(*push));
        push->payload = kr_rbuf_ref(payload);
        push->id = ++push_seq;
        kr_session_call(ctx->srv, ctx->worker, &refs[i], kr_block_push_one, push);
    }
    kr_rbuf_unref(payload);
}

static kr_verdict kr_block_req_done(kr_handler_ctx *ctx, void *arg)
{
    kr_block_req *r = arg;
    if (r->list)
        kr_blocklist_publish(ctx->srv, r->user, (kr_blocklist *)kr_shared_ref(&r->list->base));
    if (r->error) {
        kr_bounce(ctx, r->error, r->error_text);
        return KR_HANDLED;
    }
    kr_stanza *st = ctx->st;
    kr_xml_node *iq = kr_stanza_iq_result(st);
    if (r->op == KR_BLOCK_GET)
        kr_block_add_items(st->arena, kr_xml_elem_add(st->arena, iq, KR_NS_BLOCKING, "blocklist"),
                           r->list->jids, r->list->n);
    kr_reply(ctx, iq);
    if (r->op != KR_BLOCK_GET)
        kr_block_req_push(ctx, r);
    return KR_HANDLED;
}

static const kr_wait_ops kr_block_req_ops = {kr_block_req_job, kr_block_req_done,
                                             kr_block_req_free};

/* §3.2: the list; the resource asking is a push target from now on. */
static kr_verdict kr_blocking_get(kr_handler_ctx *ctx)
{
    kr_session *s = ctx->origin;
    if (!s || !s->full)
        return KR_PASS;
    kr_sessions_set_flags(ctx->srv->sessions, s->bare, s->resource, s->id, kr_blocking_watch,
                          0);
    kr_block_req *r = kr_xcalloc(1, sizeof(*r));
    r->op = KR_BLOCK_GET;
    r->user = kr_xstrdup(s->bare);
    return kr_handler_wait(ctx, r->user, &kr_block_req_ops, r);
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
        kr_blocklist_free_jids(items, n);
        kr_bounce(ctx, bad, strcmp(bad, "policy-violation") == 0 ? "Too many items" : NULL);
        return KR_HANDLED;
    }
    kr_block_req *r = kr_xcalloc(1, sizeof(*r));
    r->op = block ? KR_BLOCK_ADD : KR_BLOCK_REMOVE;
    r->user = kr_xstrdup(s->bare);
    r->items = items;
    r->n = n;
    return kr_handler_wait(ctx, r->user, &kr_block_req_ops, r);
}

/* ---- loading at bind ---------------------------------------------------------------------- */

typedef struct kr_block_load {
    kr_server *srv;
    char *user;
    kr_blocklist *list;
} kr_block_load;

static void kr_block_load_job(kr_store *store, void *arg)
{
    kr_block_load *l = arg;
    kr_blocklist_read(store, l->user, &l->list);
}

static void kr_block_load_done(kr_worker *w, void *arg, uint64_t unused)
{
    kr_block_load *l = arg;
    if (l->list)
        kr_blocklist_publish(l->srv, l->user, l->list); /* dropped if the account left */
    free(l->user);
    free(l);
}

static void kr_blocking_session_event(kr_server *srv, kr_session *s, kr_session_event ev)
{
    if (ev != KR_SESSION_BOUND)
        return;
    kr_blocklist *have = kr_blocklist_get(srv, s->bare);
    if (have) {
        kr_shared_unref(&have->base);
        return;
    }
    kr_block_load *l = kr_xcalloc(1, sizeof(*l));
    l->srv = srv;
    l->user = kr_xstrdup(s->bare);
    kr_storage_submit(srv->storage, l->user, kr_block_load_job, s->worker, kr_block_load_done, l,
                      0);
}

static const kr_store_decl kr_blocking_stores[] = {{KR_BLOCKING_STORE, KR_STORE_MAP, 1, NULL}};

static const kr_handler_spec kr_blocking_handlers[] = {
    {KR_PHASE_OUT, KR_STANZA_MESSAGE | KR_STANZA_PRESENCE | KR_STANZA_IQ, ~0u,
     KR_ADDR_BARE | KR_ADDR_FULL | KR_ADDR_REMOTE, NULL, NULL, KR_BLOCKING_PRIORITY,
     kr_blocking_filter, 0},
    {KR_PHASE_IN, KR_STANZA_MESSAGE | KR_STANZA_PRESENCE | KR_STANZA_IQ, ~0u,
     KR_ADDR_BARE | KR_ADDR_FULL | KR_ADDR_REMOTE, NULL, NULL, KR_BLOCKING_PRIORITY,
     kr_blocking_filter, KR_HOST_USER | KR_HOST_ANY_SERVICE | KR_HOST_COMPONENT},
    {KR_PHASE_IN, KR_STANZA_IQ, KR_TYPE_GET, KR_ADDR_SELF, KR_NS_BLOCKING, "blocklist", 0,
     kr_blocking_get, 0},
    {KR_PHASE_IN, KR_STANZA_IQ, KR_TYPE_SET, KR_ADDR_SELF, KR_NS_BLOCKING, "block", 0,
     kr_blocking_set, 0},
    {KR_PHASE_IN, KR_STANZA_IQ, KR_TYPE_SET, KR_ADDR_SELF, KR_NS_BLOCKING, "unblock", 0,
     kr_blocking_set, 0},
};

static const char *const kr_blocking_features[] = {KR_NS_BLOCKING, NULL};

const kr_module_def kr_mod_blocking = {
    .name = "blocking",
    .stores = kr_blocking_stores,
    .store_count = 1,
    .handlers = kr_blocking_handlers,
    .handler_count = sizeof(kr_blocking_handlers) / sizeof(kr_blocking_handlers[0]),
    .disco_features = kr_blocking_features,
    .session_flag = &kr_blocking_watch,
    .account_slot = &kr_blocking_slot,
    .session_event = kr_blocking_session_event,
};
