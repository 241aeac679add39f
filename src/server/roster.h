/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * What the roster module (mod_roster.c) and the presence module
 * (mod_presence.c) share, as static inline helpers so that each module file
 * still exports only its descriptor: roster item serialization (RFC 6121
 * §2.1.2) and presence built from the last broadcast presence the session
 * directory keeps for each available resource (probe answers, RFC 6121
 * §4.3.2; presence after an approval, §3.1.5; unavailable presence after a
 * cancellation, §3.2.2 / §3.3.3), sent through the router like any other
 * stanza so the destination's handlers (blocking) see each copy.
 * A roster record whose item has no name and no groups (name NULL) exists
 * only to remember an inbound subscription request (RFC 6121 §3.1.3,
 * "None + Pending In" for a user not in the roster): it is not part of the
 * roster the client sees. Every item the user sees carries a name, "" when
 * the user gave none. Nothing here blocks.
 */
#ifndef KR_SERVER_ROSTER_H
#define KR_SERVER_ROSTER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/arena.h"
#include "core/buf.h"
#include "server/hosts.h"
#include "server/modules.h"
#include "server/router.h"
#include "server/server.h"
#include "server/session.h"
#include "server/sessions.h"
#include "server/stanza.h"
#include "server/roster_store.h"
#include "store/store.h"
#include "xml/serialize.h"
#include "xml/tree.h"

#define KR_NS_ROSTER "jabber:iq:roster"
#define KR_NS_ROSTERVER "urn:xmpp:features:rosterver"
#define KR_NS_PREAPPROVAL "urn:xmpp:features:pre-approval"
#define KR_ROSTER_MAX_RESOURCES 64

/** True when the item is part of the roster the user sees (see the file comment). */
static inline bool kr_roster_item_in_roster(const kr_roster_item *it)
{
    return it->name != NULL || it->group_count > 0;
}

static inline const char *kr_roster_sub_name(kr_subscription sub)
{
    static const char *const names[] = {"none", "to", "from", "both"};
    return names[sub & 3];
}

/** True when the bare JID ("local@domain" or "domain") is on one of our domains. */
static inline bool kr_roster_is_local(kr_server *srv, const char *bare)
{
    const char *at = strchr(bare, '@');
    const kr_host *h = kr_hosts_find(srv->hosts, at ? at + 1 : bare);
    return h && h->kind == KR_HOST_USER;
}

/** Append <item/> of jabber:iq:roster (RFC 6121 §2.1.2); removed: subscription='remove'. */
static inline void kr_roster_item_write(kr_buf *b, const kr_roster_item *it, bool removed)
{
    kr_buf_puts(b, "<item jid='");
    kr_xml_escape_attr(b, it->contact, strlen(it->contact));
    kr_buf_puts(b, "'");
    if (it->name && *it->name) {
        kr_buf_puts(b, " name='");
        kr_xml_escape_attr(b, it->name, strlen(it->name));
        kr_buf_puts(b, "'");
    }
    kr_buf_printf(b, " subscription='%s'", removed ? "remove" : kr_roster_sub_name(it->sub));
    if (!removed && it->ask)
        kr_buf_puts(b, " ask='subscribe'");
    if (!removed && it->approved)
        kr_buf_puts(b, " approved='true'");
    if (removed || it->group_count == 0) {
        kr_buf_puts(b, "/>");
        return;
    }
    kr_buf_puts(b, ">");
    for (size_t i = 0; i < it->group_count; i++) {
        kr_buf_puts(b, "<group>");
        kr_xml_escape_text(b, it->groups[i], strlen(it->groups[i]));
        kr_buf_puts(b, "</group>");
    }
    kr_buf_puts(b, "</item>");
}

/** Send the presence of each available resource of local account `owner` to `to` (a bare or
 * full JID, ours or another server's): its last broadcast presence addressed to `to`, or with
 * unavailable, an unavailable presence from that resource. */
static inline void kr_roster_send_presences(kr_server *srv, kr_worker *w, const char *owner,
                                            const char *to, bool unavailable)
{
    kr_frozen *pres[KR_ROSTER_MAX_RESOURCES];
    size_t n = kr_sessions_presences(srv->sessions, owner, pres, KR_ROSTER_MAX_RESOURCES);
    for (size_t i = 0; i < n; i++) {
        kr_arena *a = kr_arena_new(512);
        kr_xml_node *p;
        if (unavailable) {
            p = kr_xml_elem_new(a, KR_NS_CLIENT, "presence");
            kr_xml_attr_set(a, p, "type", "unavailable");
            kr_xml_attr_set(a, p, "from", kr_xml_attr_get(pres[i]->elem, "from"));
        } else {
            p = kr_frozen_thaw(pres[i], a);
        }
        kr_xml_attr_set(a, p, "to", to);
        kr_send_elem(srv, w, p, a);
        kr_frozen_unref(pres[i]);
    }
}

#endif
