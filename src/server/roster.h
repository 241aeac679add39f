/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * What the roster module (mod_roster.c) and the presence module
 * (mod_presence.c) share, as static inline helpers so that each module file
 * still exports only its descriptor: roster item serialization and roster
 * pushes to interested resources (RFC 6121 §2.1.6, XEP-0237 'ver'),
 * delivery to an account's available or interested resources through the
 * session directory, and presence built from the last broadcast presence the
 * directory keeps for each available resource (probe answers, RFC 6121
 * §4.3.2; presence after an approval, §3.1.5; unavailable presence after a
 * cancellation, §3.2.2 / §3.3.3). Those stored presences are our own
 * serializer's output (kr_xml_serialize: single-quoted attributes, no 'to'
 * on broadcast presence), which is what the byte-level helpers rely on.
 * A roster record whose item has no name and no groups (name NULL) exists
 * only to remember an inbound subscription request (RFC 6121 §3.1.3,
 * "None + Pending In" for a user not in the roster): it is not part of the
 * roster the client sees. Every item the user sees carries a name, "" when
 * the user gave none. Nothing here allocates beyond the call except the
 * returned buffers, and nothing blocks.
 */
#ifndef KR_SERVER_ROSTER_H
#define KR_SERVER_ROSTER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/arena.h"
#include "core/buf.h"
#include "server/modules.h"
#include "server/router.h"
#include "server/s2s.h"
#include "server/server.h"
#include "server/session.h"
#include "server/sessions.h"
#include "server/stanza.h"
#include "store/store.h"
#include "xml/serialize.h"
#include "xml/tree.h"

#define KR_NS_ROSTER "jabber:iq:roster"
#define KR_NS_ROSTERVER "urn:xmpp:features:rosterver"
#define KR_NS_PREAPPROVAL "urn:xmpp:features:pre-approval"
#define KR_ROSTER_MAX_RESOURCES 64

/** Which resources of an account a delivery goes to. */
enum { KR_ROSTER_TO_AVAILABLE = 1u << 0, KR_ROSTER_TO_INTERESTED = 1u << 1 };

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

/** The server's domain test for kr_stanza_decode. */
static inline bool kr_roster_served(void *ud, const char *domain)
{
    return kr_config_serves(((kr_server *)ud)->cfg, domain);
}

/** True when the bare JID ("local@domain" or "domain") is on one of our domains. */
static inline bool kr_roster_is_local(kr_server *srv, const char *bare)
{
    const char *at = strchr(bare, '@');
    return kr_config_serves(srv->cfg, at ? at + 1 : bare);
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

/** Give buf to every resource of bare matching `want` (KR_ROSTER_TO_* bits); returns how many
 * got it. The caller keeps its reference. */
static inline size_t kr_roster_deliver_bare(kr_server *srv, kr_worker *w, const char *bare,
                                            kr_rbuf *buf, unsigned want)
{
    kr_session_ref refs[KR_ROSTER_MAX_RESOURCES];
    size_t n = kr_sessions_list(srv->sessions, bare, refs, KR_ROSTER_MAX_RESOURCES);
    if (n > KR_ROSTER_MAX_RESOURCES)
        n = KR_ROSTER_MAX_RESOURCES;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        bool avail = (want & KR_ROSTER_TO_AVAILABLE) && refs[i].available;
        bool interested = (want & KR_ROSTER_TO_INTERESTED) &&
                          (refs[i].flags & KR_SESSION_ROSTER_INTERESTED);
        if (avail || interested) {
            kr_router_deliver(srv, w, &refs[i], buf);
            k++;
        }
    }
    return k;
}

/** True when the account has at least one available resource. */
static inline bool kr_roster_has_available(kr_server *srv, const char *bare)
{
    kr_session_ref refs[KR_ROSTER_MAX_RESOURCES];
    size_t n = kr_sessions_list(srv->sessions, bare, refs, KR_ROSTER_MAX_RESOURCES);
    for (size_t i = 0; i < n && i < KR_ROSTER_MAX_RESOURCES; i++)
        if (refs[i].available)
            return true;
    return false;
}

/** Roster push of one item to every interested resource of user (RFC 6121 §2.1.6): one
 * serialization without 'to' (it goes to the user's own resources), shared by all. */
static inline void kr_roster_push(kr_server *srv, kr_worker *w, const char *user,
                                  const kr_roster_item *it, bool removed, uint64_t version)
{
    static atomic_uint_fast64_t seq;
    unsigned long long n = (unsigned long long)atomic_fetch_add(&seq, 1);
    kr_buf b = KR_BUF_INIT;
    kr_buf_printf(&b, "<iq type='set' id='push-%llu-%llu'><query xmlns='" KR_NS_ROSTER
                      "' ver='%llu'>",
                  (unsigned long long)version, n, (unsigned long long)version);
    kr_roster_item_write(&b, it, removed);
    kr_buf_puts(&b, "</query></iq>");
    kr_rbuf *r = kr_rbuf_from_buf(&b);
    kr_roster_deliver_bare(srv, w, user, r, KR_ROSTER_TO_INTERESTED);
    kr_rbuf_unref(r);
}

/** The domain of a JID string ("local@domain/resource", "domain", ...), copied into out. */
static inline void kr_roster_jid_domain(const char *jid, char *out, size_t outlen)
{
    const char *at = strchr(jid, '@');
    const char *slash = strchr(jid, '/');
    const char *d = at && (!slash || at < slash) ? at + 1 : jid;
    size_t n = slash && slash > d ? (size_t)(slash - d) : strlen(d);
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, d, n);
    out[n] = '\0';
}

/** Decode a stanza the server built (its 'from' trusted) and route it; only KR_PHASE_IN
 * handlers run for it. Borrows e and a; routing may rewrite e (bounces). */
static inline void kr_roster_route_elem(kr_server *srv, kr_worker *w, kr_xml_node *e,
                                        kr_arena *a)
{
    kr_stanza st;
    if (kr_stanza_decode(&st, e, a, kr_roster_served, srv) == NULL)
        kr_router_route(srv, w, &st, NULL);
}

/** Route <presence type='type' from='from' to='to'/> made by the server. */
static inline void kr_roster_route_presence(kr_server *srv, kr_worker *w, const char *from,
                                            const char *to, const char *type)
{
    kr_arena *a = kr_arena_new(512);
    kr_xml_node *p = kr_xml_elem_new(a, KR_NS_CLIENT, "presence");
    kr_xml_attr_set(a, p, "type", type);
    kr_xml_attr_set(a, p, "from", from);
    kr_xml_attr_set(a, p, "to", to);
    kr_roster_route_elem(srv, w, p, a);
    kr_arena_free(a);
}

/** The raw (still escaped) value of the 'from' attribute in the start tag of a stored
 * presence; false when there is none. */
static inline bool kr_presence_bytes_from(const kr_rbuf *p, const char **value, size_t *len)
{
    const char *s = p->data;
    const char *end = memchr(s, '>', p->len); /* '>' is escaped inside attribute values */
    if (!end)
        return false;
    size_t tag = (size_t)(end - s);
    for (size_t i = 0; i + 7 <= tag; i++) {
        if (memcmp(s + i, " from='", 7) != 0)
            continue;
        const char *v = s + i + 7;
        const char *q = memchr(v, '\'', (size_t)(end - v));
        if (!q)
            return false;
        *value = v;
        *len = (size_t)(q - v);
        return true;
    }
    return false;
}

/** A copy of a stored presence with to='to' added to its start tag (one buffer per
 * recipient address). */
static inline kr_rbuf *kr_presence_bytes_with_to(const kr_rbuf *p, const char *to)
{
    static const char head[] = "<presence";
    size_t h = sizeof(head) - 1;
    if (p->len < h || memcmp(p->data, head, h) != 0)
        return kr_rbuf_ref((kr_rbuf *)p);
    kr_buf b = KR_BUF_INIT;
    kr_buf_reserve(&b, p->len + strlen(to) + 8);
    kr_buf_append(&b, p->data, h);
    kr_buf_puts(&b, " to='");
    kr_xml_escape_attr(&b, to, strlen(to));
    kr_buf_puts(&b, "'");
    kr_buf_append(&b, p->data + h, p->len - h);
    return kr_rbuf_from_buf(&b);
}

/** <presence type='unavailable'/> from the resource that sent stored presence p, to 'to';
 * NULL when p names no sender. */
static inline kr_rbuf *kr_presence_bytes_unavailable(const kr_rbuf *p, const char *to)
{
    const char *from;
    size_t len;
    if (!kr_presence_bytes_from(p, &from, &len))
        return NULL;
    kr_buf b = KR_BUF_INIT;
    kr_buf_puts(&b, "<presence type='unavailable' from='");
    kr_buf_append(&b, from, len); /* already escaped for a single-quoted attribute */
    kr_buf_puts(&b, "' to='");
    kr_xml_escape_attr(&b, to, strlen(to));
    kr_buf_puts(&b, "'/>");
    return kr_rbuf_from_buf(&b);
}

/**
 * Send the presence of each available resource of local account `owner` to `to`: its last
 * broadcast presence (or, with unavailable, an unavailable presence from that resource),
 * addressed to `to`. Delivered to the one session `only` when given, else to the available
 * resources of the local bare JID `to`; a 'to' on another domain goes over s2s.
 * skip: a presence not to send (the caller's own), or NULL.
 */
static inline void kr_roster_send_presences(kr_server *srv, kr_worker *w, const char *owner,
                                            const char *to, const kr_session_ref *only,
                                            bool unavailable, const kr_rbuf *skip)
{
    char remote[1024] = "", local[1024];
    if (!only && !kr_roster_is_local(srv, to)) {
        kr_roster_jid_domain(to, remote, sizeof(remote));
        kr_roster_jid_domain(owner, local, sizeof(local));
    }
    if (!kr_modules_allow_delivery(srv, owner, to))
        return; /* XEP-0191: no presence across a block, either way */
    kr_rbuf *pres[KR_ROSTER_MAX_RESOURCES];
    size_t n = kr_sessions_presences(srv->sessions, owner, pres, KR_ROSTER_MAX_RESOURCES);
    for (size_t i = 0; i < n; i++) {
        bool same = skip && skip->len == pres[i]->len &&
                    memcmp(skip->data, pres[i]->data, skip->len) == 0;
        kr_rbuf *b = same ? NULL
                          : unavailable ? kr_presence_bytes_unavailable(pres[i], to)
                                        : kr_presence_bytes_with_to(pres[i], to);
        if (b) {
            if (only)
                kr_router_deliver(srv, w, only, b);
            else if (remote[0])
                kr_s2s_send_bytes(srv, w, local, remote, b);
            else
                kr_roster_deliver_bare(srv, w, to, b, KR_ROSTER_TO_AVAILABLE);
            kr_rbuf_unref(b);
        }
        kr_rbuf_unref(pres[i]);
    }
}

#endif
