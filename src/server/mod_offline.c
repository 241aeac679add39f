/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Offline messages (XEP-0160). In the IN phase it takes message stanzas of
 * type normal (or none) and chat for a local account that has no available
 * resource with non-negative priority (RFC 6121 §8.5.2.2.1), or for a full
 * JID whose session has gone (§8.5.3.2.1), stamps them with a XEP-0203
 * <delay/>, serializes them once and appends them to the account's queue in
 * the store, waiting (modules.h) until the store has made the message
 * durable: only then is it accepted, and only then does the sender's stream
 * go on to its next stanza, so any later reply on that stream (a pong, an iq
 * result) leaves after the message is on disk. A full queue bounces it with
 * <resource-constraint/>, an account that does not exist with
 * <service-unavailable/> (RFC 6121 §8.5.1), both checked in the same storage
 * job. When a session becomes available with non-negative priority, the queue
 * is read in batches on the account's storage lane, handed to that session in
 * order, and only then deleted up to the last id handed over (the delete is
 * submitted after the worker has flushed its output), so a crash at any point
 * may deliver a message twice but never loses one. Per-session state (a flush
 * in progress) lives in this module's session slot, on the session's worker
 * only. Messages carrying nothing but chat state notifications are dropped,
 * not stored (XEP-0085: they are meaningless later).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"
#include "core/time.h"
#include "server/modules.h"
#include "server/router.h"
#include "server/sessions.h"
#include "server/storage_thread.h"
#include "xml/serialize.h"

#define KR_NS_DELAY "urn:xmpp:delay"
#define KR_NS_CHATSTATES "http://jabber.org/protocol/chatstates"
#define KR_OFFLINE_BATCH 50
#define KR_OFFLINE_STORE "offline" /* archive: stamp, data = the message as delivered */
#define KR_OFFLINE_MAX_REFS 64

/* ---- storing ------------------------------------------------------------------------------ */

static unsigned kr_offline_slot;

/* The "offline" section of the configuration. */
typedef struct kr_offline_config {
    bool enabled;          /* store messages for offline accounts */
    unsigned max_messages; /* per account; more bounce with resource-constraint */
} kr_offline_config;

static const kr_config_key kr_offline_keys[] = {
    KR_CONFIG_FLAG(kr_offline_config, "enabled", enabled, "true"),
    KR_CONFIG_NUM(kr_offline_config, "max_messages", max_messages, 1, 100000, "500"),
};

static const kr_config_section kr_offline_section =
    KR_CONFIG_SECTION("offline", kr_offline_config, kr_offline_keys);

static const kr_offline_config *kr_offline_cfg; /* set at init, read-only afterwards */

typedef struct kr_offline_push {
    char *user;        /* recipient's bare JID */
    kr_buf xml;        /* the message as it will be delivered, <delay/> included */
    int64_t stamp;     /* ms since the epoch */
    size_t quota;
    kr_xml_node *delay; /* the <delay/> added to the stanza, taken out again to bounce it */
    int result;
} kr_offline_push;

static void kr_offline_push_free(void *arg)
{
    kr_offline_push *p = arg;
    free(p->user);
    kr_buf_clear(&p->xml);
    free(p);
}

/* True when every child element is a chat state notification (and there is at least one). */
static bool kr_offline_only_chat_state(const kr_xml_node *msg)
{
    bool any = false;
    for (const kr_xml_node *c = kr_xml_first_elem(msg); c; c = kr_xml_next_elem(c)) {
        if (strcmp(c->ns, KR_NS_CHATSTATES) != 0)
            return false;
        any = true;
    }
    return any;
}

/* Storage lane: queued only for an account that exists (RFC 6121 §8.5.1: KR_ENOENT) and has
 * room (KR_ELIMIT), both decided in the store's one transaction. */
static void kr_offline_push_job(kr_store *store, void *arg)
{
    kr_offline_push *p = arg;
    int64_t id;
    p->result = kr_store_archive_append(store, KR_OFFLINE_STORE, p->user, p->stamp, NULL,
                                        p->xml.data, p->xml.len, p->quota, &id);
    if (p->result != 0 && p->result != KR_ENOENT && p->result != KR_ELIMIT)
        KR_LOG(KR_LOG_ERROR, NULL, "offline: storing a message failed: %s (%s)",
               kr_strerror(p->result), kr_store_errmsg(store));
}

static void kr_offline_kick(kr_session *s, void *srv);

/* The recipient came online between our availability check and the store's answer: its
 * flush may have read the queue before this message was in it, so start another one on the
 * session that bare-JID routing would pick. */
static void kr_offline_kick_available(kr_server *srv, kr_worker *w, const char *user)
{
    kr_session_ref refs[KR_OFFLINE_MAX_REFS];
    size_t n = kr_sessions_list(srv->sessions, user, refs, KR_OFFLINE_MAX_REFS);
    if (n > KR_OFFLINE_MAX_REFS)
        n = KR_OFFLINE_MAX_REFS;
    const kr_session_ref *best = NULL;
    for (size_t i = 0; i < n; i++)
        if (refs[i].available && refs[i].priority >= 0 &&
            (!best || refs[i].priority > best->priority))
            best = &refs[i];
    if (best)
        kr_session_call(srv, w, best, kr_offline_kick, srv);
}

static kr_verdict kr_offline_push_done(kr_handler_ctx *ctx, void *arg)
{
    kr_offline_push *p = arg;
    if (p->result == 0) {
        if (kr_router_has_available(ctx->srv, p->user))
            kr_offline_kick_available(ctx->srv, ctx->worker, p->user);
        return KR_HANDLED;
    }
    kr_xml_node_unlink(p->delay); /* the bounce carries the message as it was sent */
    switch (p->result) {
    case KR_ENOENT:
        kr_bounce(ctx, "service-unavailable", NULL);
        break;
    case KR_ELIMIT:
        kr_bounce(ctx, "resource-constraint", "The recipient's offline message queue is full");
        break;
    default:
        kr_bounce(ctx, "internal-server-error", NULL);
        break;
    }
    return KR_HANDLED;
}

static const kr_wait_ops kr_offline_push_ops = {kr_offline_push_job, kr_offline_push_done,
                                                kr_offline_push_free};

static kr_xml_node *kr_offline_add_delay(kr_stanza *st)
{
    struct timespec ts;
    kr_time_now_ms(&ts);
    char stamp[48];
    kr_time_format_utc(stamp, sizeof(stamp), &ts);
    kr_xml_node *d = kr_xml_elem_add(st->arena, st->elem, KR_NS_DELAY, "delay");
    kr_xml_attr_set(st->arena, d, "from", st->to.domain);
    kr_xml_attr_set(st->arena, d, "stamp", stamp);
    return d;
}

static kr_verdict kr_offline_handle(kr_handler_ctx *ctx)
{
    kr_server *srv = ctx->srv;
    kr_stanza *st = ctx->st;
    if (!kr_offline_cfg->enabled)
        return KR_PASS; /* the router's default rules bounce it */
    const char *bare = kr_jid_format_bare(st->arena, &st->to);
    kr_session_ref ref;
    if (st->addressing == KR_ADDR_FULL &&
        kr_sessions_find(srv->sessions, bare, st->to.resource, &ref))
        return KR_PASS; /* that session still exists: the router delivers to it */
    if (kr_router_has_available(srv, bare))
        return KR_PASS;
    if (kr_offline_only_chat_state(st->elem))
        return KR_HANDLED;
    kr_offline_push *p = kr_xcalloc(1, sizeof(*p));
    p->user = kr_xstrdup(bare);
    p->quota = kr_offline_cfg->max_messages;
    struct timespec ts;
    p->stamp = kr_time_now_ms(&ts);
    p->delay = kr_offline_add_delay(st);
    kr_xml_serialize(&p->xml, st->elem, KR_NS_CLIENT);
    return kr_handler_wait(ctx, p->user, &kr_offline_push_ops, p);
}

/* ---- delivering --------------------------------------------------------------------------- */

typedef struct kr_offline_state {
    bool busy;  /* a flush is in flight for this session */
    bool again; /* something was queued meanwhile: read the queue once more at the end */
} kr_offline_state;

typedef struct kr_offline_flush {
    kr_server *srv;
    char *user;
    int64_t delete_upto; /* > 0: first delete the messages up to this id */
    bool list;           /* then read the next batch */
    kr_store_archive_entry *msgs;
    size_t n;
    int result;
} kr_offline_flush;

static void kr_offline_flush_free(kr_offline_flush *f)
{
    if (f->msgs)
        kr_store_archive_entries_free(f->msgs, f->n);
    free(f->user);
    free(f);
}

static void kr_offline_flush_job(kr_store *store, void *arg)
{
    kr_offline_flush *f = arg;
    f->result = 0;
    if (f->delete_upto > 0)
        f->result = kr_store_archive_delete_upto(store, KR_OFFLINE_STORE, f->user, f->delete_upto);
    /* A failed delete must not lead to reading (and delivering) the same batch again. */
    if (f->result == 0 && f->list)
        f->result = kr_store_archive_query(store, KR_OFFLINE_STORE, f->user,
                                           &(kr_store_archive_filter){.max = KR_OFFLINE_BATCH},
                                           &f->msgs, &f->n);
    if (f->result != 0)
        KR_LOG(KR_LOG_ERROR, NULL, "offline: reading the queue failed: %s (%s)",
               kr_strerror(f->result), kr_store_errmsg(store));
}

static void kr_offline_flush_done(kr_worker *w, void *arg, uint64_t session_id);

static void kr_offline_flush_submit(kr_offline_flush *f, kr_worker *w, uint64_t session_id)
{
    kr_storage_submit(f->srv->storage, f->user, kr_offline_flush_job, w, kr_offline_flush_done,
                      f, session_id);
}

/* The session when this runs on its worker's loop (not the shutdown drain) and is still
 * flushing. */
static kr_session *kr_offline_session(kr_worker *w, uint64_t session_id)
{
    kr_session *s = kr_session_find(w, session_id);
    return s && s->bare && *kr_session_slot(s, kr_offline_slot) ? s : NULL;
}

/* Posted to the session's own worker after a batch was handed over, so it runs after the
 * worker flushed that output to the socket: only now may the store forget the batch. */
static void kr_offline_after_send(kr_worker *w, void *arg, uint64_t session_id)
{
    kr_offline_flush *f = arg;
    if (!kr_offline_session(w, session_id)) {
        /* Gone before the batch was confirmed written: keep it queued for the next login. */
        kr_offline_flush_free(f);
        return;
    }
    kr_offline_flush_submit(f, w, session_id);
}

static void kr_offline_start(kr_server *srv, kr_session *s);

/* Hand a prefix of the batch to the session, no more than a quarter of the send queue bound
 * at once so a backlog does not trip the slow-reader limit. Returns the last id sent. */
static int64_t kr_offline_send_batch(kr_server *srv, kr_session *s, const kr_offline_flush *f,
                                     size_t *sent)
{
    size_t budget = srv->cfg->limits.max_send_queue_bytes / 4;
    size_t bytes = 0, i = 0;
    int64_t last = 0;
    for (; i < f->n; i++) {
        if (i > 0 && bytes + f->msgs[i].len > budget)
            break;
        kr_rbuf *b = kr_rbuf_new(f->msgs[i].data, f->msgs[i].len);
        b->meta = kr_stanza_meta_of_bytes(b->data, b->len);
        kr_session_deliver(s, b);
        kr_rbuf_unref(b);
        bytes += f->msgs[i].len;
        last = f->msgs[i].id;
    }
    *sent = i;
    return last;
}

static void kr_offline_flush_done(kr_worker *w, void *arg, uint64_t session_id)
{
    kr_offline_flush *f = arg;
    kr_session *s = kr_offline_session(w, session_id);
    if (!s) {
        kr_offline_flush_free(f);
        return;
    }
    kr_offline_state *state = *kr_session_slot(s, kr_offline_slot);
    if (f->result != 0 || !s->available || s->priority < 0) {
        state->busy = false; /* what is left stays queued for a later session */
        kr_offline_flush_free(f);
        return;
    }
    if (f->n == 0) {
        kr_server *srv = f->srv;
        kr_offline_flush_free(f);
        state->busy = false;
        if (state->again) {
            state->again = false;
            kr_offline_start(srv, s);
        }
        return;
    }
    size_t sent;
    int64_t last = kr_offline_send_batch(f->srv, s, f, &sent);
    KR_LOG(KR_LOG_DEBUG, s->full, "offline: delivered %zu stored messages", sent);
    bool more = sent < f->n || f->n == KR_OFFLINE_BATCH || state->again;
    state->again = false;
    kr_store_archive_entries_free(f->msgs, f->n);
    f->msgs = NULL;
    f->n = 0;
    f->delete_upto = last;
    f->list = more;
    kr_worker_post(w, kr_offline_after_send, f, session_id);
}

static void kr_offline_start(kr_server *srv, kr_session *s)
{
    void **slot = kr_session_slot(s, kr_offline_slot);
    if (!*slot)
        *slot = kr_xcalloc(1, sizeof(kr_offline_state));
    kr_offline_state *state = *slot;
    if (state->busy) {
        state->again = true;
        return;
    }
    state->busy = true;
    kr_offline_flush *f = kr_xcalloc(1, sizeof(*f));
    f->srv = srv;
    f->user = kr_xstrdup(s->bare);
    f->list = true;
    kr_offline_flush_submit(f, s->worker, s->id);
}

static void kr_offline_kick(kr_session *s, void *srv)
{
    if (s && s->bare && s->available && s->priority >= 0)
        kr_offline_start(srv, s);
}

static void kr_offline_session_event(kr_server *srv, kr_session *s, kr_session_event ev)
{
    switch (ev) {
    case KR_SESSION_AVAILABLE:
        if (kr_offline_cfg->enabled && s->priority >= 0)
            kr_offline_start(srv, s);
        break;
    case KR_SESSION_CLOSED:
        free(*kr_session_slot(s, kr_offline_slot));
        *kr_session_slot(s, kr_offline_slot) = NULL;
        break;
    default:
        break;
    }
}

static const kr_handler_spec kr_offline_handlers[] = {
    /* Low priority: blocking and other filters of incoming messages run first. */
    {KR_PHASE_IN, KR_STANZA_MESSAGE, KR_TYPE_NONE | KR_TYPE_NORMAL | KR_TYPE_CHAT,
     KR_ADDR_BARE | KR_ADDR_SELF | KR_ADDR_FULL, NULL, NULL, -1000, kr_offline_handle, 0},
};

static int kr_offline_init(kr_server *srv)
{
    kr_offline_cfg = kr_config_section_get(srv->cfg, &kr_offline_section);
    return 0;
}

static const kr_store_decl kr_offline_stores[] = {
    {KR_OFFLINE_STORE, KR_STORE_ARCHIVE, 1, NULL},
};

static const char *const kr_offline_features[] = {"msgoffline", NULL};

const kr_module_def kr_mod_offline = {
    .name = "offline",
    .config = &kr_offline_section,
    .stores = kr_offline_stores,
    .store_count = 1,
    .init = kr_offline_init,
    .handlers = kr_offline_handlers,
    .handler_count = sizeof(kr_offline_handlers) / sizeof(kr_offline_handlers[0]),
    .disco_features = kr_offline_features,
    .session_slot = &kr_offline_slot,
    .session_event = kr_offline_session_event,
};
