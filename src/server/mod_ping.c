/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * XEP-0199 XMPP Ping, server side: an <iq type='get'><ping/></iq> to one of
 * our domains is answered with an empty result. (Pinging silent clients is
 * the IM issue's job.)
 */
#include "server/modules.h"
#include "server/router.h"

#define KR_NS_PING "urn:xmpp:ping"

static kr_verdict kr_ping_handle(kr_handler_ctx *ctx)
{
    kr_router_send(ctx->srv, ctx->worker, kr_stanza_iq_result(ctx->st), ctx->st->arena);
    return KR_HANDLED;
}

static const kr_handler_spec kr_ping_handlers[] = {
    {KR_PHASE_IN, KR_STANZA_IQ, KR_TYPE_GET, KR_ADDR_HOST, KR_NS_PING, "ping", 0, kr_ping_handle},
};

static const char *const kr_ping_features[] = {KR_NS_PING, NULL};

const kr_module_def kr_mod_ping = {
    .name = "ping",
    .handlers = kr_ping_handlers,
    .handler_count = sizeof(kr_ping_handlers) / sizeof(kr_ping_handlers[0]),
    .disco_features = kr_ping_features,
};
