/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Service discovery (XEP-0030) and the server's entity capabilities
 * (XEP-0115). disco#info to one of our user domains answers the identity
 * server/im "Kurier" and every module's disco features; disco#items there
 * lists the service and component domains under it (conference., pubsub.,
 * ...: the address table, hosts.h). disco#info to a service domain answers
 * the identity and features its module declares (kr_service_def); its
 * disco#items is the module's to answer (an empty list when it does not).
 * disco#info to a local account's bare JID answers, on the account's behalf,
 * the identity account/registered when the account exists (checked on the
 * account's storage lane while the handler waits) and <service-unavailable/>
 * when it does not (RFC 6121 §8.5.1). At init the module gathers the features once
 * (sorted, without duplicates: the order XEP-0115 §5.1 hashes them in),
 * computes the verification string of §5 (SHA-1, base64) and answers
 * queries for the node 'https://kurier.invalid#<ver>' like the plain query
 * (§6.2). After authentication, the stream features carry the server's
 * <c/> element (§6.3). Everything computed at init is read-only afterwards,
 * so workers share it without locks.
 */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/base64.h"
#include "core/error.h"
#include "core/log.h"
#include "server/modules.h"
#include "server/router.h"
#include "xml/serialize.h"

#define KR_NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define KR_NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"
#define KR_NS_CAPS "http://jabber.org/protocol/caps"
#define KR_DISCO_NODE "https://kurier.invalid"
#define KR_DISCO_NAME "Kurier"

typedef struct kr_disco_info {
    char **features; /* sorted, unique */
    size_t count, cap;
    char *ver;      /* XEP-0115 verification string */
    char *node_ver; /* KR_DISCO_NODE "#" ver */
    char *caps_xml; /* the <c/> stream feature */
} kr_disco_info;

static kr_disco_info kr_disco;

/* ---- computed at init --------------------------------------------------------------------- */

static void kr_disco_collect(void *ud, const char *feature)
{
    kr_disco_info *d = ud;
    if (d->count == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 32;
        d->features = kr_xrealloc(d->features, d->cap * sizeof(*d->features));
    }
    d->features[d->count++] = kr_xstrdup(feature);
}

static int kr_disco_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b); /* i;octet collation */
}

static void kr_disco_sort_unique(kr_disco_info *d)
{
    qsort(d->features, d->count, sizeof(*d->features), kr_disco_cmp);
    size_t k = 0;
    for (size_t i = 0; i < d->count; i++) {
        if (k > 0 && strcmp(d->features[k - 1], d->features[i]) == 0)
            free(d->features[i]);
        else
            d->features[k++] = d->features[i];
    }
    d->count = k;
}

/* XEP-0115 §5.1: S = "category/type/lang/name<" per identity, then "feature<" per feature. */
static int kr_disco_compute_ver(kr_disco_info *d)
{
    kr_buf s = KR_BUF_INIT;
    kr_buf_puts(&s, "server/im//" KR_DISCO_NAME "<");
    for (size_t i = 0; i < d->count; i++) {
        kr_buf_puts(&s, d->features[i]);
        kr_buf_puts(&s, "<");
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int ok = EVP_Digest(s.data, s.len, md, &mdlen, EVP_sha1(), NULL);
    kr_buf_clear(&s);
    if (!ok)
        return KR_EINVAL;
    kr_buf b64 = KR_BUF_INIT;
    kr_base64_encode(&b64, md, mdlen);
    d->ver = kr_buf_detach(&b64, NULL);
    d->node_ver = kr_xasprintf("%s#%s", KR_DISCO_NODE, d->ver);
    kr_buf c = KR_BUF_INIT;
    kr_buf_puts(&c, "<c xmlns='" KR_NS_CAPS "' hash='sha-1' node='" KR_DISCO_NODE "' ver='");
    kr_xml_escape_attr(&c, d->ver, strlen(d->ver));
    kr_buf_puts(&c, "'/>");
    d->caps_xml = kr_buf_detach(&c, NULL);
    return 0;
}

static void kr_disco_fini(kr_server *srv)
{
    for (size_t i = 0; i < kr_disco.count; i++)
        free(kr_disco.features[i]);
    free(kr_disco.features);
    free(kr_disco.ver);
    free(kr_disco.node_ver);
    free(kr_disco.caps_xml);
    memset(&kr_disco, 0, sizeof(kr_disco));
}

static int kr_disco_init(kr_server *srv)
{
    kr_disco_fini(srv);
    kr_modules_disco_features(srv, kr_disco_collect, &kr_disco);
    kr_disco_sort_unique(&kr_disco);
    int r = kr_disco_compute_ver(&kr_disco);
    if (r != 0)
        KR_LOG(KR_LOG_ERROR, NULL, "disco: cannot compute the XEP-0115 hash");
    return r;
}

static void kr_disco_stream_features(kr_server *srv, bool authenticated, kr_buf *out)
{
    if (authenticated && kr_disco.caps_xml)
        kr_buf_puts(out, kr_disco.caps_xml);
}

/* ---- answers ------------------------------------------------------------------------------ */

static kr_xml_node *kr_disco_result_query(kr_stanza *st, const char *ns, kr_xml_node **iq)
{
    *iq = kr_stanza_iq_result(st);
    kr_xml_node *q = kr_xml_elem_add(st->arena, *iq, ns, "query");
    const char *node = kr_xml_attr_get(st->payload, "node");
    if (node)
        kr_xml_attr_set(st->arena, q, "node", node);
    return q;
}

static void kr_disco_add_identity(kr_arena *a, kr_xml_node *q, const char *category,
                                  const char *type, const char *name)
{
    kr_xml_node *id = kr_xml_elem_add(a, q, KR_NS_DISCO_INFO, "identity");
    kr_xml_attr_set(a, id, "category", category);
    kr_xml_attr_set(a, id, "type", type);
    if (name)
        kr_xml_attr_set(a, id, "name", name);
}

static void kr_disco_add_feature(kr_arena *a, kr_xml_node *q, const char *var)
{
    kr_xml_node *f = kr_xml_elem_add(a, q, KR_NS_DISCO_INFO, "feature");
    kr_xml_attr_set(a, f, "var", var);
}

/* A node we answer for the server: none, or our caps node#ver (XEP-0115 §6.2). */
static bool kr_disco_server_node_ok(const kr_stanza *st)
{
    const char *node = kr_xml_attr_get(st->payload, "node");
    return !node || (kr_disco.node_ver && strcmp(node, kr_disco.node_ver) == 0);
}

static void kr_disco_server_info(kr_handler_ctx *ctx)
{
    kr_stanza *st = ctx->st;
    kr_xml_node *iq;
    kr_xml_node *q = kr_disco_result_query(st, KR_NS_DISCO_INFO, &iq);
    kr_disco_add_identity(st->arena, q, "server", "im", KR_DISCO_NAME);
    for (size_t i = 0; i < kr_disco.count; i++)
        kr_disco_add_feature(st->arena, q, kr_disco.features[i]);
    kr_reply(ctx, iq);
}

/* XEP-0030 §3.1 for a service host: what its module declares, plus disco itself. */
static void kr_disco_service_info(kr_handler_ctx *ctx)
{
    kr_stanza *st = ctx->st;
    const kr_service_def *svc = st->host->module->service;
    kr_xml_node *iq;
    kr_xml_node *q = kr_disco_result_query(st, KR_NS_DISCO_INFO, &iq);
    kr_disco_add_identity(st->arena, q, svc->identity.category, svc->identity.type,
                          svc->identity.name);
    kr_disco_add_feature(st->arena, q, KR_NS_DISCO_INFO);
    kr_disco_add_feature(st->arena, q, KR_NS_DISCO_ITEMS);
    for (const char *const *f = svc->features; f && *f; f++)
        if (strcmp(*f, KR_NS_DISCO_INFO) != 0 && strcmp(*f, KR_NS_DISCO_ITEMS) != 0)
            kr_disco_add_feature(st->arena, q, *f);
    kr_reply(ctx, iq);
}

/* XEP-0030 §4: the services and components under one of our user domains. */
static void kr_disco_server_items(kr_handler_ctx *ctx)
{
    kr_stanza *st = ctx->st;
    kr_xml_node *iq;
    kr_xml_node *q = kr_disco_result_query(st, KR_NS_DISCO_ITEMS, &iq);
    for (size_t i = 0; i < kr_hosts_count(ctx->srv->hosts); i++) {
        const kr_host *h = kr_hosts_at(ctx->srv->hosts, i);
        if (h->parent != st->host)
            continue;
        kr_xml_node *item = kr_xml_elem_add(st->arena, q, KR_NS_DISCO_ITEMS, "item");
        kr_xml_attr_set(st->arena, item, "jid", h->domain);
        if (h->name)
            kr_xml_attr_set(st->arena, item, "name", h->name);
    }
    kr_reply(ctx, iq);
}

/* What the server says on behalf of an existing account (XEP-0030 §3.1, RFC 6121 §8.5.2.1.3). */
static void kr_disco_account_answer(kr_handler_ctx *ctx)
{
    kr_stanza *st = ctx->st;
    kr_xml_node *iq;
    bool info = strcmp(st->payload->ns, KR_NS_DISCO_INFO) == 0;
    kr_xml_node *q = kr_disco_result_query(st, st->payload->ns, &iq);
    if (info) {
        kr_disco_add_identity(st->arena, q, "account", "registered", NULL);
        kr_disco_add_feature(st->arena, q, KR_NS_DISCO_INFO);
        kr_disco_add_feature(st->arena, q, KR_NS_DISCO_ITEMS);
    }
    kr_reply(ctx, iq);
}

typedef struct kr_disco_req {
    char *user;
    int result;
} kr_disco_req;

static void kr_disco_req_free(void *arg)
{
    kr_disco_req *r = arg;
    free(r->user);
    free(r);
}

static void kr_disco_account_job(kr_store *store, void *arg)
{
    kr_disco_req *r = arg;
    kr_account acct;
    r->result = kr_store_account_get(store, r->user, &acct);
}

static kr_verdict kr_disco_account_done(kr_handler_ctx *ctx, void *arg)
{
    kr_disco_req *r = arg;
    if (r->result == 0)
        kr_disco_account_answer(ctx);
    else
        kr_bounce(ctx, r->result == KR_ENOENT ? "service-unavailable" : "internal-server-error",
                  NULL);
    return KR_HANDLED;
}

static const kr_wait_ops kr_disco_account_ops = {kr_disco_account_job, kr_disco_account_done,
                                                 kr_disco_req_free};

static kr_verdict kr_disco_account(kr_handler_ctx *ctx)
{
    kr_stanza *st = ctx->st;
    if (kr_xml_attr_get(st->payload, "node")) {
        kr_bounce(ctx, "item-not-found", NULL);
        return KR_HANDLED;
    }
    if (st->addressing == KR_ADDR_SELF) { /* the requester's own account exists */
        kr_disco_account_answer(ctx);
        return KR_HANDLED;
    }
    kr_disco_req *r = kr_xcalloc(1, sizeof(*r));
    r->user = kr_xstrdup(kr_jid_format_bare(st->arena, &st->to));
    return kr_handler_wait(ctx, r->user, &kr_disco_account_ops, r);
}

/* disco#info and disco#items: to a service (for the service itself; rooms and nodes are
 * its module's), to an account, or to one of our user domains. */
static kr_verdict kr_disco_handle(kr_handler_ctx *ctx)
{
    kr_stanza *st = ctx->st;
    bool info = strcmp(ctx->child->ns, KR_NS_DISCO_INFO) == 0;
    if (st->host->kind == KR_HOST_SERVICE) {
        if (st->addressing != KR_ADDR_HOST || kr_xml_attr_get(st->payload, "node"))
            return KR_PASS;
        if (info) {
            kr_disco_service_info(ctx);
        } else {
            kr_xml_node *iq;
            kr_disco_result_query(st, KR_NS_DISCO_ITEMS, &iq); /* the module had its turn */
            kr_reply(ctx, iq);
        }
        return KR_HANDLED;
    }
    if (st->addressing != KR_ADDR_HOST)
        return kr_disco_account(ctx);
    if (!kr_disco_server_node_ok(st))
        kr_bounce(ctx, "item-not-found", NULL);
    else if (info)
        kr_disco_server_info(ctx);
    else
        kr_disco_server_items(ctx);
    return KR_HANDLED;
}

static const kr_handler_spec kr_disco_handlers[] = {
    /* Below a service module's own handlers (priority 0), which answer for rooms and nodes
     * and may answer for the service itself. */
    {KR_PHASE_IN, KR_STANZA_IQ, KR_TYPE_GET, KR_ADDR_HOST | KR_ADDR_BARE | KR_ADDR_SELF,
     KR_NS_DISCO_INFO, "query", -100, kr_disco_handle, KR_HOST_USER | KR_HOST_ANY_SERVICE},
    {KR_PHASE_IN, KR_STANZA_IQ, KR_TYPE_GET, KR_ADDR_HOST | KR_ADDR_BARE | KR_ADDR_SELF,
     KR_NS_DISCO_ITEMS, "query", -100, kr_disco_handle,
     KR_HOST_USER | KR_HOST_ANY_SERVICE},
};

static const char *const kr_disco_features[] = {KR_NS_DISCO_INFO, KR_NS_DISCO_ITEMS, NULL};

const kr_module_def kr_mod_disco = {
    .name = "disco",
    .handlers = kr_disco_handlers,
    .handler_count = sizeof(kr_disco_handlers) / sizeof(kr_disco_handlers[0]),
    .disco_features = kr_disco_features,
    .stream_features = kr_disco_stream_features,
    .init = kr_disco_init,
    .fini = kr_disco_fini,
};
