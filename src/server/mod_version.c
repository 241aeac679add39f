/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Software version (XEP-0092) of the server: an <iq type='get'> with
 * <query xmlns='jabber:iq:version'/> to one of our domains is answered with
 * the name "Kurier" and its version. The operating system (<os/>, from
 * uname(2)) is told only when services.version_show_os is on, since it helps
 * attackers more than users (XEP-0092 §4); it is read once at init and is
 * read-only afterwards.
 */
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

#include "server/modules.h"
#include "server/router.h"

#define KR_NS_VERSION "jabber:iq:version"
#define KR_VERSION_NAME "Kurier"
#define KR_VERSION_NUMBER "0.1.0"

static char kr_version_os[160];

/* The version key of the "services" section of the configuration. */
typedef struct kr_version_config {
    bool show_os; /* tell the operating system (XEP-0092 <os/>) */
} kr_version_config;

static const kr_config_key kr_version_keys[] = {
    KR_CONFIG_FLAG(kr_version_config, "version_show_os", show_os, "false"),
};

static const kr_config_section kr_version_section =
    KR_CONFIG_SECTION("services", kr_version_config, kr_version_keys);

static const kr_version_config *kr_version_cfg; /* set at init, read-only afterwards */

static int kr_version_init(kr_server *srv)
{
    kr_version_cfg = kr_config_section_get(srv->cfg, &kr_version_section);
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(kr_version_os, sizeof(kr_version_os), "%s %s", u.sysname, u.release);
    else
        snprintf(kr_version_os, sizeof(kr_version_os), "unknown");
    return 0;
}

static void kr_version_add_text(kr_arena *a, kr_xml_node *q, const char *name, const char *text)
{
    kr_xml_node *e = kr_xml_elem_add(a, q, KR_NS_VERSION, name);
    kr_xml_text_add(a, e, text, strlen(text));
}

static kr_verdict kr_version_handle(kr_handler_ctx *ctx)
{
    kr_stanza *st = ctx->st;
    kr_xml_node *iq = kr_stanza_iq_result(st);
    kr_xml_node *q = kr_xml_elem_add(st->arena, iq, KR_NS_VERSION, "query");
    kr_version_add_text(st->arena, q, "name", KR_VERSION_NAME);
    kr_version_add_text(st->arena, q, "version", KR_VERSION_NUMBER);
    if (kr_version_cfg->show_os)
        kr_version_add_text(st->arena, q, "os", kr_version_os);
    kr_reply(ctx, iq);
    return KR_HANDLED;
}

static const kr_handler_spec kr_version_handlers[] = {
    {KR_PHASE_IN, KR_STANZA_IQ, KR_TYPE_GET, KR_ADDR_HOST, KR_NS_VERSION, "query", 0,
     kr_version_handle, 0},
};

static const char *const kr_version_features[] = {KR_NS_VERSION, NULL};

const kr_module_def kr_mod_version = {
    .name = "version",
    .config = &kr_version_section,
    .handlers = kr_version_handlers,
    .handler_count = sizeof(kr_version_handlers) / sizeof(kr_version_handlers[0]),
    .disco_features = kr_version_features,
    .init = kr_version_init,
};
