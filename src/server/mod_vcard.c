/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * vcard-temp (XEP-0054). A user publishes a vCard with an iq set to its own
 * account (no 'to', or its bare JID) and anyone reads the vCard of a local
 * account with an iq get to that bare JID. The vCard is stored as its
 * serialized <vCard xmlns='vcard-temp'/> element under the key "vcard" of
 * this module's map store "vcard" (key ""), at most services.vcard_max_bytes long
 * (larger: <not-acceptable/>); an account that never published one gets an
 * empty <vCard/> (XEP-0054 §3.1), a nonexistent account
 * <service-unavailable/> (RFC 6121 §8.5.1), and a set to another account
 * <forbidden/>. Store calls run on the account's storage lane while the
 * handler waits with the request (modules.h), and the answer goes back to
 * the requester through the router (a client of ours, or another server's
 * user over s2s), the stored bytes spliced in as they are: they were
 * produced by our serializer.
 */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"
#include "server/modules.h"
#include "server/router.h"
#include "xml/serialize.h"

#define KR_NS_VCARD "vcard-temp"
#define KR_VCARD_STORE "vcard" /* map: key "" = the serialized <vCard/> */

/* The vCard key of the "services" section of the configuration. */
typedef struct kr_vcard_config {
    size_t max_bytes; /* a published vCard's size */
} kr_vcard_config;

static const kr_config_key kr_vcard_keys[] = {
    KR_CONFIG_NUM(kr_vcard_config, "vcard_max_bytes", max_bytes, 1024, 16777216, "65536"),
};

static const kr_config_section kr_vcard_section =
    KR_CONFIG_SECTION("services", kr_vcard_config, kr_vcard_keys);

static const kr_vcard_config *kr_vcard_cfg; /* set at init, read-only afterwards */

typedef struct kr_vcard_req {
    char *user;        /* whose vCard */
    bool check_exists; /* the account is not the requester's own */
    kr_buf xml;        /* set: the vCard to store; get: the stored one */
    bool is_set;
    int result;
} kr_vcard_req;

static void kr_vcard_req_free(void *arg)
{
    kr_vcard_req *r = arg;
    free(r->user);
    kr_buf_clear(&r->xml);
    free(r);
}

static void kr_vcard_job(kr_store *store, void *arg)
{
    kr_vcard_req *r = arg;
    kr_account acct;
    if (r->check_exists && (r->result = kr_store_account_get(store, r->user, &acct)) != 0)
        return;
    if (r->is_set) {
        r->result = kr_store_map_put(store, KR_VCARD_STORE, r->user, "", r->xml.data, r->xml.len);
    } else {
        char *xml = NULL;
        size_t len = 0;
        r->result = kr_store_map_get(store, KR_VCARD_STORE, r->user, "", &xml, &len);
        if (r->result == KR_ENOENT)
            r->result = 1; /* the account exists but has no vCard */
        else if (r->result == 0)
            kr_buf_append(&r->xml, xml, len);
        free(xml);
    }
    if (r->result < 0 && r->result != KR_ENOENT)
        KR_LOG(KR_LOG_ERROR, NULL, "vcard: store failed: %s (%s)", kr_strerror(r->result),
               kr_store_errmsg(store));
}

static kr_verdict kr_vcard_done(kr_handler_ctx *ctx, void *arg)
{
    kr_vcard_req *r = arg;
    kr_stanza *st = ctx->st;
    if (r->result == KR_ENOENT) {
        kr_bounce(ctx, "service-unavailable", NULL);
    } else if (r->result < 0) {
        kr_bounce(ctx, "internal-server-error", NULL);
    } else {
        kr_xml_node *iq = kr_stanza_iq_result(st);
        if (!r->is_set && r->result == 1)
            kr_xml_elem_add(st->arena, iq, KR_NS_VCARD, "vCard");
        else if (!r->is_set)
            kr_xml_raw_add(st->arena, iq, r->xml.data, r->xml.len);
        kr_reply(ctx, iq);
    }
    return KR_HANDLED;
}

static const kr_wait_ops kr_vcard_ops = {kr_vcard_job, kr_vcard_done, kr_vcard_req_free};

static kr_verdict kr_vcard_get(kr_handler_ctx *ctx)
{
    kr_stanza *st = ctx->st;
    if (!st->from.local)
        return KR_PASS; /* only accounts ask */
    kr_vcard_req *r = kr_xcalloc(1, sizeof(*r));
    r->user = kr_xstrdup(kr_jid_format_bare(st->arena, &st->to));
    r->check_exists = st->addressing == KR_ADDR_BARE;
    return kr_handler_wait(ctx, r->user, &kr_vcard_ops, r);
}

static kr_verdict kr_vcard_set(kr_handler_ctx *ctx)
{
    kr_stanza *st = ctx->st;
    if (!st->from.local)
        return KR_PASS; /* only accounts ask */
    if (st->addressing != KR_ADDR_SELF) {
        kr_bounce(ctx, "forbidden", "Only the account itself may change its vCard");
        return KR_HANDLED;
    }
    kr_buf xml = KR_BUF_INIT;
    kr_xml_serialize(&xml, st->payload, KR_NS_CLIENT);
    if (xml.len > kr_vcard_cfg->max_bytes) {
        kr_buf_clear(&xml);
        kr_bounce(ctx, "not-acceptable", "The vCard is larger than this server accepts");
        return KR_HANDLED;
    }
    kr_vcard_req *r = kr_xcalloc(1, sizeof(*r));
    r->user = kr_xstrdup(kr_jid_format_bare(st->arena, &st->from));
    r->is_set = true;
    r->xml = xml;
    return kr_handler_wait(ctx, r->user, &kr_vcard_ops, r);
}

static int kr_vcard_init(kr_server *srv)
{
    kr_vcard_cfg = kr_config_section_get(srv->cfg, &kr_vcard_section);
    return 0;
}

static const kr_store_decl kr_vcard_stores[] = {{KR_VCARD_STORE, KR_STORE_MAP, 1, NULL}};

static const kr_handler_spec kr_vcard_handlers[] = {
    {KR_PHASE_IN, KR_STANZA_IQ, KR_TYPE_GET, KR_ADDR_SELF | KR_ADDR_BARE, KR_NS_VCARD, "vCard", 0,
     kr_vcard_get, 0},
    {KR_PHASE_IN, KR_STANZA_IQ, KR_TYPE_SET, KR_ADDR_SELF | KR_ADDR_BARE, KR_NS_VCARD, "vCard", 0,
     kr_vcard_set, 0},
};

static const char *const kr_vcard_features[] = {KR_NS_VCARD, NULL};

const kr_module_def kr_mod_vcard = {
    .name = "vcard",
    .config = &kr_vcard_section,
    .stores = kr_vcard_stores,
    .store_count = 1,
    .init = kr_vcard_init,
    .handlers = kr_vcard_handlers,
    .handler_count = sizeof(kr_vcard_handlers) / sizeof(kr_vcard_handlers[0]),
    .disco_features = kr_vcard_features,
};
