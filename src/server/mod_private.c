/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Private XML storage (XEP-0049, jabber:iq:private). A user stores and reads
 * XML fragments on its own account only (no 'to', or its bare JID); an iq to
 * another account gets <forbidden/> (XEP-0049 §2.3 prefers it to
 * service-unavailable). Each fragment is keyed by the namespace and name of
 * its root element (key "ns name" in this module's map store "private"); a
 * set may carry several fragments (stored in one transaction, all or none), a
 * get asks for exactly one.
 * Reserved namespaces (jabber:..., http://jabber.org/..., vcard-temp) and a
 * missing or unqualified child get <not-acceptable/> (§2.3). The total of an
 * account's fragments is bounded by services.private_max_bytes
 * (<not-acceptable/> beyond it). Store calls run on the account's storage
 * lane while the handler waits with the request (modules.h); the answer is
 * routed back to the requester, stored fragments spliced in as they are (our
 * serializer made them, each declaring its own namespace).
 */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"
#include "server/modules.h"
#include "server/router.h"
#include "xml/serialize.h"

#define KR_NS_PRIVATE "jabber:iq:private"
#define KR_PRIVATE_STORE "private" /* map: key = "namespace element" */
#define KR_PRIVATE_MAX_ITEMS 16

/* The private-storage key of the "services" section of the configuration. */
typedef struct kr_private_config {
    size_t max_bytes; /* all of an account's fragments together */
} kr_private_config;

static const kr_config_key kr_private_keys[] = {
    KR_CONFIG_NUM(kr_private_config, "private_max_bytes", max_bytes, 1024, 16777216, "65536"),
};

static const kr_config_section kr_private_section =
    KR_CONFIG_SECTION("services", kr_private_config, kr_private_keys);

static const kr_private_config *kr_private_cfg; /* set at init, read-only afterwards */

typedef struct kr_private_item {
    char *key;
    kr_buf xml; /* set: the fragment to store; get: the stored one */
} kr_private_item;

typedef struct kr_private_req {
    char *user;
    bool is_set;
    size_t max_bytes;
    kr_private_item items[KR_PRIVATE_MAX_ITEMS];
    size_t count;
    int result;
} kr_private_req;

static void kr_private_req_free(void *arg)
{
    kr_private_req *r = arg;
    for (size_t i = 0; i < r->count; i++) {
        free(r->items[i].key);
        kr_buf_clear(&r->items[i].xml);
    }
    free(r->user);
    free(r);
}

/* XEP-0049 §2.3: namespaces the protocols of the Jabber/XMPP core own. */
static bool kr_private_reserved(const char *ns)
{
    return ns[0] == '\0' || strncmp(ns, "jabber:", 7) == 0 ||
           strncmp(ns, "http://jabber.org/", 18) == 0 || strcmp(ns, "vcard-temp") == 0;
}

/* Size of the stored fragment at key, 0 when there is none; negative on a store error. */
static long long kr_private_stored_len(kr_store *store, const char *user, const char *key)
{
    char *xml = NULL;
    size_t len = 0;
    int r = kr_store_map_get(store, KR_PRIVATE_STORE, user, key, &xml, &len);
    free(xml);
    if (r == KR_ENOENT)
        return 0;
    return r < 0 ? r : (long long)len;
}

/* The account's total after this set, each key counted once with its last value. */
static int kr_private_check_quota(kr_store *store, kr_private_req *r)
{
    size_t total;
    int rc = kr_store_map_size(store, KR_PRIVATE_STORE, r->user, "", &total);
    if (rc != 0)
        return rc;
    long long sum = (long long)total;
    for (size_t i = 0; i < r->count; i++) {
        bool later = false;
        for (size_t k = i + 1; k < r->count; k++)
            later = later || strcmp(r->items[i].key, r->items[k].key) == 0;
        if (later)
            continue; /* replaced by a later fragment of the same set */
        long long old = kr_private_stored_len(store, r->user, r->items[i].key);
        if (old < 0)
            return (int)old;
        sum += (long long)r->items[i].xml.len - old;
    }
    return sum > (long long)r->max_bytes ? KR_ELIMIT : 0;
}

static void kr_private_job(kr_store *store, void *arg)
{
    kr_private_req *r = arg;
    if (r->is_set) {
        /* One transaction: the quota holds at commit and a set stores all or nothing. */
        r->result = kr_store_begin(store);
        if (r->result == 0)
            r->result = kr_private_check_quota(store, r);
        for (size_t i = 0; i < r->count && r->result == 0; i++)
            r->result = kr_store_map_put(store, KR_PRIVATE_STORE, r->user, r->items[i].key,
                                         r->items[i].xml.data, r->items[i].xml.len);
        if (r->result == 0)
            r->result = kr_store_commit(store);
        else
            kr_store_rollback(store);
    } else {
        char *xml = NULL;
        size_t len = 0;
        r->result = kr_store_map_get(store, KR_PRIVATE_STORE, r->user, r->items[0].key, &xml,
                                     &len);
        if (r->result == 0)
            kr_buf_append(&r->items[0].xml, xml, len);
        free(xml);
    }
    if (r->result != 0 && r->result != KR_ENOENT && r->result != KR_ELIMIT)
        KR_LOG(KR_LOG_ERROR, NULL, "private: store failed: %s (%s)", kr_strerror(r->result),
               kr_store_errmsg(store));
}

/* The get result: the stored fragment, or the (empty) element asked for when none. */
static void kr_private_reply_get(kr_handler_ctx *ctx, const kr_private_req *r)
{
    kr_stanza *st = ctx->st;
    kr_xml_node *iq = kr_stanza_iq_result(st);
    kr_xml_node *q = kr_xml_elem_add(st->arena, iq, KR_NS_PRIVATE, "query");
    if (r->result == 0)
        kr_xml_raw_add(st->arena, q, r->items[0].xml.data, r->items[0].xml.len);
    else
        kr_xml_child_append(q, kr_xml_node_copy(st->arena, kr_xml_first_elem(st->payload)));
    kr_reply(ctx, iq);
}

static kr_verdict kr_private_done(kr_handler_ctx *ctx, void *arg)
{
    kr_private_req *r = arg;
    if (r->result == KR_ELIMIT)
        kr_bounce(ctx, "not-acceptable", "Private storage of this account is full");
    else if (r->result != 0 && !(r->result == KR_ENOENT && !r->is_set))
        kr_bounce(ctx, "internal-server-error", NULL);
    else if (r->is_set)
        kr_reply(ctx, kr_stanza_iq_result(ctx->st));
    else
        kr_private_reply_get(ctx, r);
    return KR_HANDLED;
}

static const kr_wait_ops kr_private_ops = {kr_private_job, kr_private_done, kr_private_req_free};

/* Check the children of <query/> and fill r's items; returns an error condition or NULL. */
static const char *kr_private_collect(kr_handler_ctx *ctx, kr_private_req *r)
{
    const kr_xml_node *q = ctx->st->payload;
    for (const kr_xml_node *c = kr_xml_first_elem(q); c; c = kr_xml_next_elem(c)) {
        if (kr_private_reserved(c->ns))
            return "not-acceptable";
        if (r->count == (r->is_set ? KR_PRIVATE_MAX_ITEMS : 1))
            return r->is_set ? "policy-violation" : "bad-request";
        kr_private_item *it = &r->items[r->count++];
        it->key = kr_xasprintf("%s %s", c->ns, c->name);
        if (r->is_set) {
            kr_xml_serialize(&it->xml, c, KR_NS_CLIENT);
            if (it->xml.len > r->max_bytes)
                return "not-acceptable";
        }
    }
    return r->count == 0 ? "not-acceptable" : NULL;
}

static kr_verdict kr_private_handle(kr_handler_ctx *ctx)
{
    kr_stanza *st = ctx->st;
    if (!st->from.local)
        return KR_PASS; /* only accounts have private storage */
    if (st->addressing != KR_ADDR_SELF) {
        kr_bounce(ctx, "forbidden", "Private storage belongs to the account itself");
        return KR_HANDLED;
    }
    kr_private_req *r = kr_xcalloc(1, sizeof(*r));
    r->is_set = st->type == KR_TYPE_SET;
    r->max_bytes = kr_private_cfg->max_bytes;
    const char *bad = kr_private_collect(ctx, r);
    if (bad) {
        kr_private_req_free(r);
        kr_bounce(ctx, bad, NULL);
        return KR_HANDLED;
    }
    r->user = kr_xstrdup(kr_jid_format_bare(st->arena, &st->from));
    return kr_handler_wait(ctx, r->user, &kr_private_ops, r);
}

static int kr_private_init(kr_server *srv)
{
    kr_private_cfg = kr_config_section_get(srv->cfg, &kr_private_section);
    return 0;
}

static const kr_store_decl kr_private_stores[] = {{KR_PRIVATE_STORE, KR_STORE_MAP, 1, NULL}};

static const kr_handler_spec kr_private_handlers[] = {
    {KR_PHASE_IN, KR_STANZA_IQ, KR_TYPE_GET | KR_TYPE_SET, KR_ADDR_SELF | KR_ADDR_BARE,
     KR_NS_PRIVATE, "query", 0, kr_private_handle, 0},
};

static const char *const kr_private_features[] = {KR_NS_PRIVATE, NULL};

const kr_module_def kr_mod_private = {
    .name = "private",
    .config = &kr_private_section,
    .stores = kr_private_stores,
    .store_count = 1,
    .init = kr_private_init,
    .handlers = kr_private_handlers,
    .handler_count = sizeof(kr_private_handlers) / sizeof(kr_private_handlers[0]),
    .disco_features = kr_private_features,
};
