/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * The server's own answer to requests nobody handles: an iq get/set to one
 * of our domains or to an account's bare JID whose payload no module claims
 * gets <service-unavailable/> (RFC 6120 §8.3.3.19, RFC 6121 §8.5.2.1.3).
 * It sits at the lowest priority, so any module that handles the payload
 * runs first.
 */
#include <limits.h>

#include "server/modules.h"
#include "server/router.h"

static kr_verdict kr_iq_fallback_handle(kr_handler_ctx *ctx)
{
    kr_router_bounce(ctx->srv, ctx->worker, ctx->st, "service-unavailable", NULL);
    return KR_HANDLED;
}

static const kr_handler_spec kr_iq_fallback_handlers[] = {
    {KR_PHASE_IN, KR_STANZA_IQ, KR_TYPE_GET | KR_TYPE_SET,
     KR_ADDR_HOST | KR_ADDR_BARE | KR_ADDR_SELF, NULL, NULL, INT_MIN,
     kr_iq_fallback_handle},
};

const kr_module_def kr_mod_iq_fallback = {
    .name = "iq_fallback",
    .handlers = kr_iq_fallback_handlers,
    .handler_count = 1,
};
