/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * XEP-0199 XMPP Ping, server side: an <iq type='get'><ping/></iq> to one of
 * our user domains or service domains is answered with an empty result.
 * (Silent clients are pinged by the client stream, c2s_stream.c.)
 */
#include "server/modules.h"
#include "server/router.h"

#define KR_NS_PING "urn:xmpp:ping"

static kr_verdict kr_ping_handle(kr_handler_ctx *ctx)
{
    kr_reply(ctx, kr_stanza_iq_result(ctx->st));
    return KR_HANDLED;
}

static const kr_handler_spec kr_ping_handlers[] = {
    {KR_PHASE_IN, KR_STANZA_IQ, KR_TYPE_GET, KR_ADDR_HOST, KR_NS_PING, "ping", 0, kr_ping_handle,
     KR_HOST_USER | KR_HOST_ANY_SERVICE},
};

static const char *const kr_ping_features[] = {KR_NS_PING, NULL};

const kr_module_def kr_mod_ping = {
    .name = "ping",
    .handlers = kr_ping_handlers,
    .handler_count = sizeof(kr_ping_handlers) / sizeof(kr_ping_handlers[0]),
    .disco_features = kr_ping_features,
};
