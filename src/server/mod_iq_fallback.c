/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * The server's own answer to requests nobody handles: an iq get/set to one
 * of our user domains or to an account's bare JID whose payload no module
 * claims gets <service-unavailable/> (RFC 6120 §8.3.3.19, RFC 6121
 * §8.5.2.1.3); an iq before authentication that no PREAUTH handler takes
 * gets <not-authorized/>, and the stream stays usable. It sits at the lowest
 * priority, so any module that handles the payload runs first. (Service
 * hosts answer what their module leaves in the router, router.c.)
 */
#include <limits.h>
#include <string.h>

#include "server/modules.h"
#include "server/router.h"
#include "xml/serialize.h"

static kr_verdict kr_iq_fallback_handle(kr_handler_ctx *ctx)
{
    kr_bounce(ctx, "service-unavailable", NULL);
    return KR_HANDLED;
}

/* Before authentication the client has no address to answer to: the reply goes to the
 * stream itself, without 'to' (RFC 6120 §8.1.1.1 allows it on a client stream). */
static kr_verdict kr_iq_fallback_preauth(kr_handler_ctx *ctx)
{
    kr_stanza *st = ctx->st;
    if (!ctx->origin || !st->id)
        return KR_HANDLED;
    kr_arena *a = st->arena;
    kr_xml_node *iq = kr_xml_elem_new(a, KR_NS_CLIENT, "iq");
    kr_xml_attr_set(a, iq, "type", "error");
    kr_xml_attr_set(a, iq, "id", st->id);
    kr_xml_node *err = kr_xml_elem_add(a, iq, KR_NS_CLIENT, "error");
    kr_xml_attr_set(a, err, "type", "auth");
    kr_xml_elem_add(a, err, KR_NS_STANZAS_ERR, "not-authorized");
    kr_session_deliver_elem(ctx->origin, iq);
    return KR_HANDLED;
}

static const kr_handler_spec kr_iq_fallback_handlers[] = {
    {KR_PHASE_IN, KR_STANZA_IQ, KR_TYPE_GET | KR_TYPE_SET,
     KR_ADDR_HOST | KR_ADDR_BARE | KR_ADDR_SELF, NULL, NULL, INT_MIN, kr_iq_fallback_handle, 0},
    {KR_PHASE_PREAUTH, KR_STANZA_IQ, KR_TYPE_GET | KR_TYPE_SET, KR_ADDR_HOST, NULL, NULL,
     INT_MIN, kr_iq_fallback_preauth, 0},
};

const kr_module_def kr_mod_iq_fallback = {
    .name = "iq_fallback",
    .handlers = kr_iq_fallback_handlers,
    .handler_count = sizeof(kr_iq_fallback_handlers) / sizeof(kr_iq_fallback_handlers[0]),
};
