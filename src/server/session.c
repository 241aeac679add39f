/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Client sessions apart from their transports (see session.h). Sessions are
 * kept in their worker's table (kr_worker_state.sessions) by id.
 */
#include "server/session.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/error.h"
#include "core/log.h"
#include "server/modules.h"
#include "server/router.h"
#include "server/server.h"
#include "server/sessions.h"
#include "server/stanza.h"
#include "xml/serialize.h"

kr_session *kr_session_new(kr_server *srv, kr_worker *w, const char *domain,
                           const char *peer_ip)
{
    unsigned slots = kr_modules_slot_count(srv);
    kr_assert(slots <= USHRT_MAX);
    kr_session *s = kr_xcalloc(1, sizeof(*s) + slots * sizeof(void *));
    s->id = atomic_fetch_add(&srv->next_conn_id, 1);
    s->srv = srv;
    s->worker = w;
    s->domain = domain;
    s->slot_count = slots;
    s->peer_ip = peer_ip;
    kr_u64map_put(&kr_worker_state_get(w)->sessions, s->id, s);
    return s;
}

kr_session *kr_session_find(kr_worker *w, uint64_t id)
{
    if (kr_worker_current() != w)
        return NULL; /* the shutdown drain on the main thread: sessions are gone */
    return kr_u64map_get(&kr_worker_state_get(w)->sessions, id);
}

void kr_session_attach(kr_session *s, const kr_transport *t, void *ud, const char *peer_ip)
{
    s->transport = t;
    s->transport_ud = ud;
    s->peer_ip = peer_ip;
}

void kr_session_detach(kr_session *s)
{
    s->transport = NULL;
    s->transport_ud = NULL;
    s->peer_ip = NULL;
}

void kr_session_authenticated(kr_session *s, const char *local)
{
    kr_assert(!s->bound);
    free((char *)s->bare);
    s->bare = kr_xasprintf("%s@%s", local, s->domain);
}

/* One block for the names a bound session keeps: "bare\0local\0domain\0resource\0full\0",
 * the jid's parts pointing into it. It starts with bare, as the block of an authenticated
 * session does, so `bare` is what is freed. Prepared parts make the full JID as they are. */
static void kr_session_names(kr_session *s, const kr_jid *j)
{
    size_t nl = strlen(j->local) + 1, nd = strlen(j->domain) + 1, nr = strlen(j->resource) + 1;
    char *bare = kr_xmalloc(3 * (nl + nd) + 2 * nr); /* bare, parts, full */
    int n = sprintf(bare, "%s@%s", j->local, j->domain);
    char *p = bare + n + 1;
    memcpy(p, j->local, nl);
    memcpy(p + nl, j->domain, nd);
    memcpy(p + nl + nd, j->resource, nr);
    s->jid = (kr_jid){.local = p, .domain = p + nl, .resource = p + nl + nd};
    char *full = p + nl + nd + nr;
    memcpy(full, bare, (size_t)n);
    full[n] = '/';
    memcpy(full + n + 1, j->resource, nr);
    free((char *)s->bare);
    s->bare = bare;
    s->full = full;
    s->resource = s->jid.resource;
}

/* The older session with the same full JID ends (RFC 6120 §7.7.2.2). */
static void kr_session_kick_cb(kr_worker *w, void *unused, uint64_t id)
{
    kr_session *s = kr_session_find(w, id);
    if (s)
        kr_session_close(s, "conflict", "Replaced by a new session with the same resource");
}

int kr_session_bind(kr_session *s, const char *resource)
{
    kr_assert(s->bare && !s->bound);
    char *full = kr_xasprintf("%s/%s", s->bare, resource);
    kr_jid j;
    char *mem;
    int rc = kr_jid_parse_keep(full, &j, &mem);
    free(full);
    if (rc != 0 || !j.local || !j.resource) {
        free(mem);
        return KR_EINVAL;
    }
    kr_session_names(s, &j);
    free(mem);
    kr_server *srv = s->srv;
    kr_session_ref old;
    if (kr_sessions_bind(srv->sessions, s->bare, s->resource, s->worker->index, s->id, &old)) {
        KR_LOG(KR_LOG_INFO, s->full, "resource in use; replacing the older session");
        kr_worker_post(&srv->workers[old.worker], kr_session_kick_cb, NULL, old.id);
    }
    s->bound = true;
    kr_session_event_fire(s, KR_SESSION_BOUND);
    return 0;
}

/* RFC 6121 §4.7.2.3: an integer from -128 to 127; anything else counts as 0. */
static int kr_session_priority_of(kr_arena *a, const kr_xml_node *presence)
{
    kr_xml_node *p = kr_xml_child_get(presence, KR_NS_CLIENT, "priority");
    if (!p)
        return 0;
    const char *t = kr_xml_text_get(a, p);
    char *end;
    long v = strtol(t, &end, 10);
    if (end == t || *end || v < -128 || v > 127)
        return 0;
    return (int)v;
}

int kr_session_track_presence(kr_session *s, const kr_stanza *st)
{
    if (!(st->type & (KR_TYPE_NONE | KR_TYPE_UNAVAILABLE)))
        return -1;
    bool was = s->available;
    s->available = st->type == KR_TYPE_NONE;
    s->priority = s->available ? kr_session_priority_of(st->arena, st->elem) : 0;
    kr_frozen *last = s->available ? kr_frozen_new(st->elem, st->kind, st->type) : NULL;
    kr_sessions_set_presence(s->srv->sessions, s->bare, s->resource, s->id, s->available,
                             s->priority, last);
    if (s->available && !was)
        return KR_SESSION_AVAILABLE;
    if (!s->available && was)
        return KR_SESSION_UNAVAILABLE;
    return -1;
}

void kr_session_event_fire(kr_session *s, kr_session_event ev)
{
    kr_modules_session_event(s->srv, s, ev);
}

/* RFC 6121 §4.5.2: an available session that ends says so. A session replaced by a newer
 * one with the same full JID stays silent: an unavailable presence from that JID would now
 * describe the new session. */
static void kr_session_say_unavailable(kr_session *s)
{
    kr_server *srv = s->srv;
    kr_session_ref ref;
    bool replaced = !kr_sessions_find(srv->sessions, s->bare, s->resource, &ref) ||
                    ref.id != s->id;
    if (!s->available || replaced)
        return;
    kr_arena *a = kr_arena_new(512);
    kr_xml_node *p = kr_xml_elem_new(a, KR_NS_CLIENT, "presence");
    kr_xml_attr_set(a, p, "type", "unavailable");
    kr_xml_attr_set(a, p, "from", s->full);
    kr_sessions_set_presence(srv->sessions, s->bare, s->resource, s->id, false, 0, NULL);
    s->available = false;
    const char *bad;
    kr_stanza *st = kr_stanza_new(a, p, srv->hosts, &s->jid, &bad);
    if (!bad)
        kr_route(srv, s->worker, st, s, NULL);
    else
        kr_stanza_unref(st);
    kr_session_event_fire(s, KR_SESSION_UNAVAILABLE);
}

void kr_session_end(kr_session *s)
{
    if (s->bound) {
        kr_session_say_unavailable(s);
        kr_session_event_fire(s, KR_SESSION_CLOSED);
        kr_sessions_unbind(s->srv->sessions, s->bare, s->resource, s->id);
        KR_LOG(KR_LOG_INFO, s->full, "session ended");
    }
    for (unsigned i = 0; i < s->slot_count; i++)
        kr_assert(s->slots[i] == NULL); /* modules free their state on KR_SESSION_CLOSED */
    kr_u64map_del(&kr_worker_state_get(s->worker)->sessions, s->id);
    free((char *)s->bare); /* the names' block */
    free(s);
}

void kr_session_deliver(kr_session *s, kr_rbuf *bytes)
{
    if (!s->transport)
        return; /* detached: nothing to give it to (stream management will queue) */
    kr_outgoing o = {.srv = s->srv,
                     .worker = s->worker,
                     .session = s,
                     .bytes = kr_rbuf_ref(bytes),
                     .kind = kr_stanza_meta_kind(bytes->meta),
                     .type = kr_stanza_meta_type(bytes->meta)};
    if (kr_modules_filter(s->srv, &o) == KR_PASS && s->transport)
        s->transport->send(s->transport_ud, o.bytes->data, o.bytes->len);
    kr_rbuf_unref(o.bytes);
}

void kr_session_deliver_elem(kr_session *s, const kr_xml_node *elem)
{
    kr_buf b = KR_BUF_INIT;
    kr_xml_serialize(&b, elem, KR_NS_CLIENT);
    kr_rbuf *r = kr_rbuf_from_buf(&b);
    r->meta = kr_stanza_meta_of(elem);
    kr_session_deliver(s, r);
    kr_rbuf_unref(r);
}

void kr_session_close(kr_session *s, const char *condition, const char *text)
{
    if (s->transport)
        s->transport->close(s->transport_ud, condition, text);
}

void kr_session_close_cb(kr_worker *w, void *condition, uint64_t id)
{
    kr_session *s = kr_session_find(w, id);
    if (s)
        kr_session_close(s, condition, NULL);
}

typedef struct kr_session_call_msg {
    kr_session_call_fn fn;
    void *arg;
} kr_session_call_msg;

static void kr_session_call_cb(kr_worker *w, void *arg, uint64_t id)
{
    kr_session_call_msg *m = arg;
    m->fn(kr_session_find(w, id), m->arg);
    free(m);
}

void kr_session_call(kr_server *srv, kr_worker *w, const kr_session_ref *ref,
                     kr_session_call_fn fn, void *arg)
{
    kr_assert(ref->node == 0);
    if (w && w->index == ref->worker) {
        fn(kr_session_find(w, ref->id), arg);
        return;
    }
    kr_session_call_msg *m = kr_xmalloc(sizeof(*m));
    *m = (kr_session_call_msg){fn, arg};
    kr_worker_post(&srv->workers[ref->worker], kr_session_call_cb, m, ref->id);
}
