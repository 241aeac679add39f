/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * An echo service: a small service domain of its own (echo.example.org, off
 * unless echo.domains lists some), the simplest example of a module that owns
 * an address, and what the tests use to drive the core's service path. A
 * message with a body sent to the service or any JID on it comes back from
 * that JID with the same type, body, subject and thread; a message that asks
 * for a delivery receipt (XEP-0184 <request/>, any child of the message, not
 * only the first) gets <received/> first. Presence subscriptions to it are
 * approved at once and probes answered with available presence, so a client
 * may keep it in its roster. Its disco identity and features come from the
 * descriptor (mod_disco answers them), pings are answered by mod_ping, and
 * what it does not handle the router refuses with <service-unavailable/>.
 * It keeps no state.
 */
#include <string.h>

#include "server/modules.h"
#include "server/router.h"

#define KR_NS_RECEIPTS "urn:xmpp:receipts"

/* The "echo" section of the configuration. */
typedef struct kr_echo_config {
    char **domains; /* service domains, prepared */
    size_t domain_count;
} kr_echo_config;

static const kr_config_key kr_echo_keys[] = {
    KR_CONFIG_NAMES(kr_echo_config, "domains", domains, domain_count, 0, kr_config_domain_check,
                    ""),
};

static const kr_config_section kr_echo_section =
    KR_CONFIG_SECTION("echo", kr_echo_config, kr_echo_keys);

static size_t kr_echo_domains(kr_server *srv, char *const **out)
{
    const kr_echo_config *c = kr_config_section_get(srv->cfg, &kr_echo_section);
    *out = c->domains;
    return c->domain_count;
}

/* A new message from the stanza's recipient back to its sender, in the stanza's arena. */
static kr_xml_node *kr_echo_answer(kr_stanza *st, const char *type)
{
    kr_arena *a = st->arena;
    kr_xml_node *m = kr_xml_elem_new(a, KR_NS_CLIENT, "message");
    kr_xml_attr_set(a, m, "from", kr_xml_attr_get(st->elem, "to"));
    kr_xml_attr_set(a, m, "to", kr_xml_attr_get(st->elem, "from"));
    kr_xml_attr_set(a, m, "type", type);
    return m;
}

/* XEP-0184 §5: a message that asks for a receipt gets <received/> with its id. */
static kr_verdict kr_echo_receipt(kr_handler_ctx *ctx)
{
    kr_stanza *st = ctx->st;
    if (!st->id || !kr_xml_attr_get(st->elem, "from"))
        return KR_PASS;
    kr_xml_node *m = kr_echo_answer(st, NULL);
    kr_xml_node *r = kr_xml_elem_add(st->arena, m, KR_NS_RECEIPTS, "received");
    kr_xml_attr_set(st->arena, r, "id", st->id);
    kr_reply(ctx, m);
    return KR_PASS; /* the echo itself follows */
}

static kr_verdict kr_echo_message(kr_handler_ctx *ctx)
{
    kr_stanza *st = ctx->st;
    kr_xml_node *body = kr_xml_child_get(st->elem, KR_NS_CLIENT, "body");
    if (!body)
        return KR_HANDLED; /* chat states and the like: nothing to echo */
    kr_xml_node *m = kr_echo_answer(st, kr_xml_attr_get(st->elem, "type"));
    static const char *const copied[] = {"subject", "body", "thread"};
    for (size_t i = 0; i < sizeof(copied) / sizeof(copied[0]); i++) {
        kr_xml_node *c = kr_xml_child_get(st->elem, KR_NS_CLIENT, copied[i]);
        if (c)
            kr_xml_child_append(m, kr_xml_node_copy(st->arena, c));
    }
    kr_reply(ctx, m);
    return KR_HANDLED;
}

/* RFC 6121 §3.1.3, §4.3: anyone may subscribe, and sees the service available. */
static kr_verdict kr_echo_presence(kr_handler_ctx *ctx)
{
    kr_stanza *st = ctx->st;
    const char *me = kr_xml_attr_get(st->elem, "to");
    const char *you = kr_jid_format_bare(st->arena, &st->from);
    if (st->type == KR_TYPE_SUBSCRIBE)
        kr_send_presence(ctx->srv, ctx->worker, me, you, "subscribed");
    else if (st->type == KR_TYPE_UNSUBSCRIBE)
        kr_send_presence(ctx->srv, ctx->worker, me, you, "unsubscribed");
    if (st->type & (KR_TYPE_SUBSCRIBE | KR_TYPE_PROBE))
        kr_send_presence(ctx->srv, ctx->worker, me, kr_xml_attr_get(st->elem, "from"), NULL);
    return KR_HANDLED;
}

static const kr_handler_spec kr_echo_handlers[] = {
    {KR_PHASE_IN, KR_STANZA_MESSAGE, KR_TYPE_NONE | KR_TYPE_NORMAL | KR_TYPE_CHAT,
     KR_ADDR_HOST | KR_ADDR_BARE | KR_ADDR_FULL, KR_NS_RECEIPTS, "request", 10, kr_echo_receipt,
     KR_HOST_SERVICE},
    {KR_PHASE_IN, KR_STANZA_MESSAGE, KR_TYPE_NONE | KR_TYPE_NORMAL | KR_TYPE_CHAT,
     KR_ADDR_HOST | KR_ADDR_BARE | KR_ADDR_FULL, NULL, NULL, 0, kr_echo_message,
     KR_HOST_SERVICE},
    {KR_PHASE_IN, KR_STANZA_PRESENCE, KR_TYPE_SUBSCRIBE | KR_TYPE_UNSUBSCRIBE | KR_TYPE_PROBE,
     KR_ADDR_HOST | KR_ADDR_BARE, NULL, NULL, 0, kr_echo_presence, KR_HOST_SERVICE},
};

static const char *const kr_echo_features[] = {KR_NS_RECEIPTS, "urn:xmpp:ping", NULL};

static const kr_service_def kr_echo_service = {
    .domains = kr_echo_domains,
    .identity = {"component", "generic", "Echo"},
    .features = kr_echo_features,
};

const kr_module_def kr_mod_echo = {
    .name = "echo",
    .config = &kr_echo_section,
    .handlers = kr_echo_handlers,
    .handler_count = sizeof(kr_echo_handlers) / sizeof(kr_echo_handlers[0]),
    .service = &kr_echo_service,
};
