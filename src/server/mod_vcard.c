/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * vcard-temp (XEP-0054). A user publishes a vCard with an iq set to its own
 * account (no 'to', or its bare JID) and anyone reads the vCard of a local
 * account with an iq get to that bare JID. The vCard is stored as its
 * serialized <vCard xmlns='vcard-temp'/> element under the key "vcard" of
 * the account's XML documents, at most services.vcard_max_bytes long
 * (larger: <not-acceptable/>); an account that never published one gets an
 * empty <vCard/> (XEP-0054 §3.1), a nonexistent account
 * <service-unavailable/> (RFC 6121 §8.5.1), and a set to another account
 * <forbidden/>. Store calls run on the storage thread; the request is copied
 * into the job (the stanza's arena is gone when the job completes) and the
 * result goes back to the requester's full JID through the session
 * directory (the request may have been re-routed by the server, e.g. after
 * a block-list check, so there is not always an origin session), the stored
 * bytes spliced in as they are: they were produced by our serializer.
 */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"
#include "server/modules.h"
#include "server/router.h"
#include "server/s2s.h"
#include "server/storage_thread.h"
#include "xml/serialize.h"

#define KR_NS_VCARD "vcard-temp"
#define KR_VCARD_KEY "vcard"

typedef struct kr_vcard_req {
    kr_server *srv;
    char *user;        /* whose vCard */
    bool check_exists; /* the account is not the requester's own */
    kr_buf xml;        /* set: the vCard to store; get: the stored one */
    bool is_set;
    kr_arena *arena;
    kr_xml_node *elem; /* copy of the request */
    int result;
} kr_vcard_req;

static void kr_vcard_req_free(kr_vcard_req *r)
{
    free(r->user);
    kr_buf_clear(&r->xml);
    kr_arena_free(r->arena);
    free(r);
}

static bool kr_vcard_served(void *ud, const char *domain)
{
    return kr_config_serves(((kr_server *)ud)->cfg, domain);
}

static void kr_vcard_job(kr_store *store, void *arg)
{
    kr_vcard_req *r = arg;
    kr_account acct;
    if (r->check_exists && (r->result = kr_store_account_get(store, r->user, &acct)) != 0)
        return;
    if (r->is_set) {
        r->result = kr_store_xml_put(store, r->user, KR_VCARD_KEY, r->xml.data, r->xml.len);
    } else {
        char *xml = NULL;
        size_t len = 0;
        r->result = kr_store_xml_get(store, r->user, KR_VCARD_KEY, &xml, &len);
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

static void kr_vcard_put_attr(kr_buf *b, const char *name, const char *value)
{
    if (!value)
        return;
    kr_buf_printf(b, " %s='", name);
    kr_xml_escape_attr(b, value, strlen(value));
    kr_buf_puts(b, "'");
}

/* The iq result for st with `payload` (serialized XML, may be empty) as its child, to the
 * requesting session, or over s2s to a requester on another server. */
static void kr_vcard_reply(kr_server *srv, kr_worker *w, kr_stanza *st, const char *payload,
                           size_t len)
{
    kr_session_ref ref;
    bool remote = !kr_config_serves(srv->cfg, st->from.domain);
    if (!remote && (!st->from.resource ||
                    !kr_sessions_find(srv->sessions, kr_jid_format_bare(st->arena, &st->from),
                                      st->from.resource, &ref)))
        return; /* the requester has gone */
    kr_buf b = KR_BUF_INIT;
    kr_buf_puts(&b, "<iq type='result'");
    kr_vcard_put_attr(&b, "id", st->id);
    kr_vcard_put_attr(&b, "to", kr_xml_attr_get(st->elem, "from"));
    kr_vcard_put_attr(&b, "from", kr_xml_attr_get(st->elem, "to"));
    if (len == 0) {
        kr_buf_puts(&b, "/>");
    } else {
        kr_buf_puts(&b, ">");
        kr_buf_append(&b, payload, len);
        kr_buf_puts(&b, "</iq>");
    }
    kr_rbuf *rb = kr_rbuf_from_buf(&b);
    if (remote)
        kr_s2s_send_bytes(srv, w, st->to.domain, st->from.domain, rb);
    else
        kr_router_deliver(srv, w, &ref, rb);
    kr_rbuf_unref(rb);
}

static void kr_vcard_done(kr_worker *w, void *arg, uint64_t u)
{
    kr_vcard_req *r = arg;
    kr_stanza st;
    if (kr_worker_current() != w || /* the shutdown drain on the main thread */
        kr_stanza_decode(&st, r->elem, r->arena, kr_vcard_served, r->srv) != NULL) {
        kr_vcard_req_free(r);
        return;
    }
    if (r->result == KR_ENOENT) {
        kr_router_bounce(r->srv, w, &st, "service-unavailable", NULL);
    } else if (r->result < 0) {
        kr_router_bounce(r->srv, w, &st, "internal-server-error", NULL);
    } else if (r->is_set) {
        kr_vcard_reply(r->srv, w, &st, NULL, 0);
    } else if (r->result == 1) {
        static const char empty[] = "<vCard xmlns='" KR_NS_VCARD "'/>";
        kr_vcard_reply(r->srv, w, &st, empty, sizeof(empty) - 1);
    } else {
        kr_vcard_reply(r->srv, w, &st, r->xml.data, r->xml.len);
    }
    kr_vcard_req_free(r);
}

static kr_vcard_req *kr_vcard_req_new(kr_handler_ctx *ctx, const char *user)
{
    kr_vcard_req *r = kr_xcalloc(1, sizeof(*r));
    r->srv = ctx->srv;
    r->user = kr_xstrdup(user);
    r->arena = kr_arena_new(512);
    r->elem = kr_xml_node_copy(r->arena, ctx->st->elem);
    return r;
}

static void kr_vcard_submit(kr_handler_ctx *ctx, kr_vcard_req *r)
{
    kr_storage_submit(ctx->srv->storage, kr_vcard_job, ctx->worker, kr_vcard_done, r, 0);
}

static kr_verdict kr_vcard_get(kr_handler_ctx *ctx)
{
    kr_stanza *st = ctx->st;
    if (!st->from.local)
        return KR_PASS; /* only accounts ask */
    kr_vcard_req *r = kr_vcard_req_new(ctx, kr_jid_format_bare(st->arena, &st->to));
    r->check_exists = st->addressing == KR_ADDR_BARE;
    kr_vcard_submit(ctx, r);
    return KR_HANDLED;
}

static kr_verdict kr_vcard_set(kr_handler_ctx *ctx)
{
    kr_stanza *st = ctx->st;
    if (!st->from.local)
        return KR_PASS; /* only accounts ask */
    if (st->addressing != KR_ADDR_SELF) {
        kr_router_bounce(ctx->srv, ctx->worker, st, "forbidden",
                         "Only the account itself may change its vCard");
        return KR_HANDLED;
    }
    kr_buf xml = KR_BUF_INIT;
    kr_xml_serialize(&xml, st->payload, KR_NS_CLIENT);
    if (xml.len > ctx->srv->cfg->services.vcard_max_bytes) {
        kr_buf_clear(&xml);
        kr_router_bounce(ctx->srv, ctx->worker, st, "not-acceptable",
                         "The vCard is larger than this server accepts");
        return KR_HANDLED;
    }
    kr_vcard_req *r = kr_vcard_req_new(ctx, kr_jid_format_bare(st->arena, &st->from));
    r->is_set = true;
    r->xml = xml;
    kr_vcard_submit(ctx, r);
    return KR_HANDLED;
}

static const kr_handler_spec kr_vcard_handlers[] = {
    {KR_PHASE_IN, KR_STANZA_IQ, KR_TYPE_GET, KR_ADDR_SELF | KR_ADDR_BARE, KR_NS_VCARD, "vCard", 0,
     kr_vcard_get},
    {KR_PHASE_IN, KR_STANZA_IQ, KR_TYPE_SET, KR_ADDR_SELF | KR_ADDR_BARE, KR_NS_VCARD, "vCard", 0,
     kr_vcard_set},
};

static const char *const kr_vcard_features[] = {KR_NS_VCARD, NULL};

const kr_module_def kr_mod_vcard = {
    .name = "vcard",
    .handlers = kr_vcard_handlers,
    .handler_count = sizeof(kr_vcard_handlers) / sizeof(kr_vcard_handlers[0]),
    .disco_features = kr_vcard_features,
};
