/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Entity time (XEP-0202) of the server: an <iq type='get'> with
 * <time xmlns='urn:xmpp:time'/> to one of our domains is answered with the
 * server's offset from UTC (<tzo>, "+hh:mm" or "-hh:mm", XEP-0082) and the
 * current time in UTC (<utc>, XEP-0082 DateTime with milliseconds and "Z").
 * It keeps no state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/time.h"
#include "server/modules.h"
#include "server/router.h"

#define KR_NS_TIME "urn:xmpp:time"

static void kr_time_add_text(kr_arena *a, kr_xml_node *q, const char *name, const char *text)
{
    kr_xml_node *e = kr_xml_elem_add(a, q, KR_NS_TIME, name);
    kr_xml_text_add(a, e, text, strlen(text));
}

/* XEP-0082 time zone offset of the local time, e.g. "+02:00"; UTC is "+00:00" (XEP-0202 §3). */
static void kr_time_format_tzo(char *out, size_t len, time_t now)
{
    struct tm local;
    localtime_r(&now, &local);
    long off = local.tm_gmtoff;
    char sign = off < 0 ? '-' : '+';
    off = labs(off) % (24 * 3600); /* real offsets are within ±14 h */
    snprintf(out, len, "%c%02d:%02d", sign, (int)(off / 3600), (int)(off % 3600 / 60));
}

static kr_verdict kr_time_handle(kr_handler_ctx *ctx)
{
    kr_stanza *st = ctx->st;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char tzo[16], utc[48];
    kr_time_format_tzo(tzo, sizeof(tzo), ts.tv_sec);
    kr_time_format_utc(utc, sizeof(utc), &ts);
    kr_xml_node *iq = kr_stanza_iq_result(st);
    kr_xml_node *t = kr_xml_elem_add(st->arena, iq, KR_NS_TIME, "time");
    kr_time_add_text(st->arena, t, "tzo", tzo);
    kr_time_add_text(st->arena, t, "utc", utc);
    kr_reply(ctx, iq);
    return KR_HANDLED;
}

static const kr_handler_spec kr_time_handlers[] = {
    {KR_PHASE_IN, KR_STANZA_IQ, KR_TYPE_GET, KR_ADDR_HOST, KR_NS_TIME, "time", 0, kr_time_handle, 0},
};

static const char *const kr_time_features[] = {KR_NS_TIME, NULL};

const kr_module_def kr_mod_time = {
    .name = "time",
    .handlers = kr_time_handlers,
    .handler_count = sizeof(kr_time_handlers) / sizeof(kr_time_handlers[0]),
    .disco_features = kr_time_features,
};
