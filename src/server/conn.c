/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Connection I/O on a worker loop (see conn.h). Reads are processed
 * synchronously out of the worker's shared read buffer, so an idle
 * connection holds no read buffer; OpenSSL releases its record buffers when
 * idle (SSL_MODE_RELEASE_BUFFERS). Writes first try uv_try_write and copy
 * only what the kernel did not take. Reading stops while the protocol asks
 * (kr_conn_read_pause) or the token bucket is in debt, and resumes when
 * neither holds; the bucket's own timer does the resuming. kr_conn_trim
 * gives back the output buffer and TLS's idle buffers of a quiet connection.
 */
#include "server/conn.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"

#define KR_CONN_LINGER_MS 3000
#define KR_CONN_MIN_READ 512

typedef struct kr_write_req {
    uv_write_t req;
    kr_conn *conn;
    size_t len;
    char data[];
} kr_write_req;

static void kr_conn_closed_cb(uv_handle_t *h)
{
    kr_conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    if (c->ops->on_free)
        c->ops->on_free(c);
    if (c->tls)
        kr_tls_free(c->tls);
    kr_buf_clear(&c->out);
    if (c->ip_counted)
        kr_limits_conn_release(c->peer_ip);
    free(c);
}

/* Close the handles now; the memory goes in the close callbacks. */
static void kr_conn_destroy(kr_conn *c)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    uv_close((uv_handle_t *)&c->timer, kr_conn_closed_cb);
    uv_close((uv_handle_t *)&c->throttle, kr_conn_closed_cb);
    uv_close((uv_handle_t *)&c->tcp, kr_conn_closed_cb);
}

/* Start closing: leave the table, tell the protocol once. */
static void kr_conn_begin_close(kr_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    kr_u64map_del(&kr_worker_state_get(c->worker)->conns, c->id);
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
    uv_timer_stop(&c->throttle);
    if (c->ops->on_close)
        c->ops->on_close(c);
}

static void kr_conn_abort(kr_conn *c)
{
    kr_conn_begin_close(c);
    kr_conn_destroy(c);
}

static void kr_conn_mark_dirty(kr_conn *c)
{
    if (c->dirty)
        return;
    c->dirty = true;
    kr_worker_state *ws = kr_worker_state_get(c->worker);
    if (ws->dirty_len == ws->dirty_cap) {
        ws->dirty_cap = ws->dirty_cap ? ws->dirty_cap * 2 : 64;
        ws->dirty_ids = kr_xrealloc(ws->dirty_ids, ws->dirty_cap * sizeof(uint64_t));
    }
    ws->dirty_ids[ws->dirty_len++] = c->id;
}

static void kr_conn_write_cb(uv_write_t *req, int status)
{
    kr_write_req *wr = (kr_write_req *)req;
    kr_conn *c = wr->conn;
    c->queued_bytes -= wr->len;
    free(wr);
    if (status < 0) {
        if (!c->closing)
            KR_LOG(KR_LOG_DEBUG, c->log_ctx, "write failed: %s", uv_strerror(status));
        kr_conn_abort(c);
        return;
    }
    if (c->closing && c->queued_bytes == 0)
        kr_conn_destroy(c);
}

/* Put bytes on the socket: as much as the kernel takes now, the rest queued. */
static void kr_conn_write_raw(kr_conn *c, const char *data, size_t len)
{
    if (len == 0 || uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    if (c->queued_bytes == 0) {
        uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        } else if (n < 0 && n != UV_EAGAIN) {
            KR_LOG(KR_LOG_DEBUG, c->log_ctx, "write failed: %s", uv_strerror(n));
            kr_conn_abort(c);
            return;
        }
        if (len == 0)
            return;
    }
    /* Over the bound the bytes are still queued (a TLS record cannot be left out of the
     * stream); kr_conn_flush then has the connection closed, which frees the queue. */
    size_t limit = c->srv->cfg->limits.max_send_queue_bytes;
    if (c->queued_bytes + len > limit && !c->closing && !c->overflowed) {
        c->overflowed = true;
        KR_LOG(KR_LOG_INFO, c->log_ctx, "peer does not read: %zu bytes queued, closing",
               c->queued_bytes + len);
        kr_limits_note(KR_LIMIT_SEND_QUEUE, kr_limits_now());
    }
    kr_write_req *wr = kr_xmalloc(sizeof(*wr) + len);
    wr->conn = c;
    wr->len = len;
    memcpy(wr->data, data, len);
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)len);
    int r = uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, kr_conn_write_cb);
    if (r < 0) {
        free(wr);
        kr_conn_abort(c);
        return;
    }
    c->queued_bytes += len;
}

void kr_conn_flush(kr_conn *c)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    if (!c->tls) {
        kr_conn_write_raw(c, c->out.data, c->out.len);
        c->out.len = 0;
        return;
    }
    if (c->out.len && kr_tls_handshake_done(c->tls)) {
        if (kr_tls_write(c->tls, c->out.data, c->out.len) != 0) {
            kr_conn_abort(c);
            return;
        }
        c->out.len = 0;
    }
    kr_buf *cipher = &kr_worker_state_get(c->worker)->cipher;
    cipher->len = 0;
    if (kr_tls_pending_out(c->tls, cipher))
        kr_conn_write_raw(c, cipher->data, cipher->len);
    /* Release a large buffer after a burst so idle memory stays small. */
    if (c->out.cap > 65536 && c->out.len == 0)
        kr_buf_clear(&c->out);
    if (c->overflowed && !c->overflow_reported && !c->closing) {
        c->overflow_reported = true;
        if (c->ops->on_overflow)
            c->ops->on_overflow(c); /* its last words; usually closes */
        if (!c->closing)
            kr_conn_close(c);
    }
}

void kr_conn_flush_dirty(kr_worker *w)
{
    kr_worker_state *ws = kr_worker_state_get(w);
    /* Flushing can mark other connections dirty (errors close streams): loop by index. */
    for (size_t i = 0; i < ws->dirty_len; i++) {
        kr_conn *c = kr_u64map_get(&ws->conns, ws->dirty_ids[i]);
        if (!c)
            continue;
        c->dirty = false;
        kr_conn_flush(c);
    }
    ws->dirty_len = 0;
    if (ws->cipher.cap > 262144)
        kr_buf_clear(&ws->cipher);
}

void kr_conn_send(kr_conn *c, const char *data, size_t len)
{
    if (c->closing)
        return;
    kr_buf_append(&c->out, data, len);
    kr_conn_mark_dirty(c);
}

#ifdef KR_JEMALLOC
/* jemalloc (the default, main.c) gives freed pages back by itself. */
static void kr_conn_give_back_pages(kr_conn *c)
{
    (void)c;
}
#else
/* What an SSL object and its cipher contexts take (bench/profile.md), and how much of that
 * a worker frees by hand-overs before it asks glibc's malloc to give free pages back to the
 * kernel; freed memory otherwise stays in the thread's arena and in RSS. */
#define KR_CONN_HANDOVER_BYTES (13u * 1024)
#define KR_CONN_MALLOC_TRIM_BYTES (1u << 20)
#define KR_CONN_MALLOC_TRIM_MS 1000

static _Thread_local size_t kr_conn_freed_bytes;
static _Thread_local uint64_t kr_conn_malloc_trim_at;

static void kr_conn_give_back_pages(kr_conn *c)
{
    kr_conn_freed_bytes += KR_CONN_HANDOVER_BYTES;
    uint64_t now = uv_now(c->tcp.loop);
    if (kr_conn_freed_bytes >= KR_CONN_MALLOC_TRIM_BYTES &&
        now - kr_conn_malloc_trim_at >= KR_CONN_MALLOC_TRIM_MS) {
        malloc_trim(0);
        kr_conn_freed_bytes = 0;
        kr_conn_malloc_trim_at = now;
    }
}
#endif

void kr_conn_trim(kr_conn *c)
{
    if (c->closing || c->dirty || c->out.len)
        return;
    kr_buf_clear(&c->out);
    if (c->tls && kr_tls_trim(c->tls)) {
        KR_LOG(KR_LOG_DEBUG, c->log_ctx, "idle: TLS records now kurierd's, SSL object freed");
        kr_conn_give_back_pages(c);
    }
}

void kr_conn_start_tls(kr_conn *c)
{
    kr_conn_flush(c);
    c->tls = kr_tls_new(c->tls_ctx);
}

void kr_conn_start_tls_client(kr_conn *c, kr_tls_ctx *ctx, const char *server_name,
                              const char *alpn)
{
    kr_conn_flush(c);
    c->tls = kr_tls_new_client(ctx, server_name);
    if (alpn)
        kr_tls_set_alpn(c->tls, alpn);
    kr_buf *plain = &kr_worker_state_get(c->worker)->plain;
    plain->len = 0;
    kr_tls_feed(c->tls, NULL, 0, plain); /* produces the ClientHello */
    kr_conn_mark_dirty(c);
}

static void kr_conn_timer_cb(uv_timer_t *t)
{
    kr_conn *c = t->data;
    if (c->closing) { /* linger expired: the peer did not take our last bytes */
        kr_conn_destroy(c);
        return;
    }
    if (c->ops->on_timer)
        c->ops->on_timer(c);
}

void kr_conn_timer_set(kr_conn *c, uint64_t ms)
{
    if (!c->closing)
        uv_timer_start(&c->timer, kr_conn_timer_cb, ms, 0);
}

bool kr_conn_closing(void *conn)
{
    return ((kr_conn *)conn)->closing;
}

void kr_conn_close(kr_conn *c)
{
    if (c->closing)
        return;
    kr_conn_flush(c);
    if (c->closing) /* the flush overflowed and the protocol closed already */
        return;
    kr_conn_begin_close(c);
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    if (c->tls && kr_tls_handshake_done(c->tls)) {
        kr_tls_shutdown(c->tls);
        kr_buf *cipher = &kr_worker_state_get(c->worker)->cipher;
        cipher->len = 0;
        if (kr_tls_pending_out(c->tls, cipher))
            kr_conn_write_raw(c, cipher->data, cipher->len);
    }
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    if (c->queued_bytes == 0) {
        kr_conn_destroy(c);
        return;
    }
    uv_timer_start(&c->timer, kr_conn_timer_cb, KR_CONN_LINGER_MS, 0);
}

static void kr_conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    kr_conn *c = h->data;
    kr_worker_state *ws = kr_worker_state_get(c->worker);
    /* Read no more than the token bucket allows (at least a small block), so pacing starts
     * with the read that empties it rather than after a whole buffer. */
    size_t n = ws->read_buf_size;
    if (c->bucket.tokens < (int64_t)n)
        n = c->bucket.tokens > KR_CONN_MIN_READ ? (size_t)c->bucket.tokens : KR_CONN_MIN_READ;
    *buf = uv_buf_init(ws->read_buf, (unsigned)n);
}

static void kr_conn_read_tls(kr_conn *c, const char *data, size_t len)
{
    kr_buf *plain = &kr_worker_state_get(c->worker)->plain;
    plain->len = 0;
    kr_tls_status st = kr_tls_feed(c->tls, data, len, plain);
    kr_conn_mark_dirty(c); /* handshake records or alerts may be waiting */
    if (st == KR_TLS_ERROR) {
        char ebuf[160];
        KR_LOG(KR_LOG_DEBUG, c->log_ctx, "TLS failed: %s",
               kr_tls_failure(c->tls, ebuf, sizeof(ebuf)));
        kr_conn_flush(c); /* send the alert */
        kr_conn_abort(c);
        return;
    }
    if (!c->tls_ready_reported && kr_tls_handshake_done(c->tls)) {
        c->tls_ready_reported = true;
        KR_LOG(KR_LOG_DEBUG, c->log_ctx, "TLS established: %s %s", kr_tls_version(c->tls),
               kr_tls_cipher(c->tls));
        if (c->ops->on_tls_ready)
            c->ops->on_tls_ready(c);
    }
    /* Nothing in on_data reads another socket, so the shared buffer stays ours meanwhile. */
    if (plain->len && !c->closing)
        c->ops->on_data(c, plain->data, plain->len);
    if (st == KR_TLS_CLOSED && !c->closing)
        kr_conn_close(c);
}

static void kr_conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* Read when neither the protocol nor the token bucket holds reading back. */
static void kr_conn_reading_update(kr_conn *c)
{
    bool want = !c->closing && !c->read_paused && !c->throttled;
    if (want == c->reading)
        return;
    c->reading = want;
    if (want)
        uv_read_start((uv_stream_t *)&c->tcp, kr_conn_alloc_cb, kr_conn_read_cb);
    else
        uv_read_stop((uv_stream_t *)&c->tcp);
}

static void kr_conn_throttle_cb(uv_timer_t *t)
{
    kr_conn *c = t->data;
    c->throttled = false;
    kr_conn_reading_update(c);
}

/* Charge what was read; in debt, stop reading until it is paid (nothing is dropped). */
static void kr_conn_pace(kr_conn *c, size_t n)
{
    uint64_t now = uv_now(&c->worker->loop);
    uint64_t wait =
        kr_limits_bucket_charge(&c->bucket, c->rate, c->srv->cfg->limits.burst_bytes, n, now);
    if (wait == 0 || c->closing)
        return;
    if (!c->throttled)
        kr_limits_note(KR_LIMIT_THROTTLED, kr_limits_now());
    c->throttled = true;
    kr_conn_reading_update(c);
    uv_timer_start(&c->throttle, kr_conn_throttle_cb, wait, 0);
}

void kr_conn_rate_set(kr_conn *c, uint64_t bytes_per_second)
{
    c->rate = bytes_per_second;
}

static void kr_conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    kr_conn *c = s->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (nread != UV_EOF)
            KR_LOG(KR_LOG_DEBUG, c->log_ctx, "read failed: %s", uv_strerror((int)nread));
        kr_conn_abort(c);
        return;
    }
    if (c->closing)
        return;
    if (c->tls)
        kr_conn_read_tls(c, buf->base, (size_t)nread);
    else
        c->ops->on_data(c, buf->base, (size_t)nread);
    kr_conn_pace(c, (size_t)nread);
}

void kr_conn_read_pause(kr_conn *c, bool pause)
{
    if (c->closing || pause == c->read_paused)
        return;
    c->read_paused = pause;
    kr_conn_reading_update(c);
}

/* A new connection with its three handles initialised, not yet in the table. */
static kr_conn *kr_conn_new(kr_worker *w, const kr_conn_ops *ops, const char *kind)
{
    kr_worker_state *ws = kr_worker_state_get(w);
    kr_conn *c = kr_xcalloc(1, sizeof(*c));
    c->worker = w;
    c->srv = ws->srv;
    c->ops = ops;
    c->tls_ctx = ws->srv->tls;
    c->id = atomic_fetch_add(&ws->srv->next_conn_id, 1);
    uv_tcp_init(&w->loop, &c->tcp);
    uv_timer_init(&w->loop, &c->timer);
    uv_timer_init(&w->loop, &c->throttle);
    c->tcp.data = c;
    c->timer.data = c;
    c->throttle.data = c;
    c->open_handles = 3;
    snprintf(c->log_ctx, sizeof(c->log_ctx), "%s#%llu w%u", kind, (unsigned long long)c->id,
             w->index);
    return c;
}

kr_conn *kr_conn_accept(kr_worker *w, uv_stream_t *listener, bool direct_tls,
                        const kr_conn_ops *ops, const char *kind)
{
    return kr_conn_accept_ctx(w, listener, direct_tls, NULL, ops, kind);
}

kr_conn *kr_conn_accept_ctx(kr_worker *w, uv_stream_t *listener, bool direct_tls, kr_tls_ctx *ctx,
                            const kr_conn_ops *ops, const char *kind)
{
    kr_worker_state *ws = kr_worker_state_get(w);
    kr_conn *c = kr_conn_new(w, ops, kind);
    if (ctx)
        c->tls_ctx = ctx;
    int r = uv_accept(listener, (uv_stream_t *)&c->tcp);
    if (r != 0) {
        KR_LOG(KR_LOG_WARN, NULL, "accept failed: %s", uv_strerror(r));
        kr_conn_destroy(c);
        return NULL;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&ss, c->peer_ip, sizeof(c->peer_ip));
        else
            uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer_ip, sizeof(c->peer_ip));
    }
    KR_LOG(KR_LOG_DEBUG, c->log_ctx, "connection from %s%s", c->peer_ip,
           direct_tls ? " (direct TLS)" : "");
    const kr_config *cfg = ws->srv->cfg;
    if (!kr_limits_conn_acquire(c->peer_ip, cfg->limits.connections_per_ip)) {
        KR_LOG(KR_LOG_DEBUG, c->log_ctx, "too many connections from %s: closed", c->peer_ip);
        kr_limits_note(KR_LIMIT_CONN_REFUSED, kr_limits_now());
        kr_conn_destroy(c);
        return NULL;
    }
    c->ip_counted = true;
    c->rate = cfg->limits.bytes_per_second_unauthenticated;
    kr_limits_bucket_init(&c->bucket, cfg->limits.burst_bytes, uv_now(&w->loop));
    kr_u64map_put(&ws->conns, c->id, c);
    if (direct_tls)
        c->tls = kr_tls_new(c->tls_ctx);
    kr_conn_reading_update(c);
    return c;
}

static void kr_conn_connect_cb(uv_connect_t *req, int status)
{
    kr_conn *c = req->data;
    free(req); /* libuv calls this exactly once per request, even when the handle closes */
    c->connect_req = NULL;
    if (c->closing) /* closed while connecting (UV_ECANCELED): on_close already ran */
        return;
    if (c->ops->on_connect)
        c->ops->on_connect(c, status);
    if (status < 0) {
        if (!c->closing)
            kr_conn_abort(c);
        return;
    }
    if (!c->closing)
        kr_conn_reading_update(c);
}

kr_conn *kr_conn_connect(kr_worker *w, const struct sockaddr *addr, const kr_conn_ops *ops,
                         const char *kind, void *proto, char *err, size_t errlen)
{
    kr_worker_state *ws = kr_worker_state_get(w);
    kr_conn *c = kr_conn_new(w, ops, kind);
    c->proto = proto;
    c->rate = ws->srv->cfg->limits.bytes_per_second;
    kr_limits_bucket_init(&c->bucket, ws->srv->cfg->limits.burst_bytes, uv_now(&w->loop));
    c->connect_req = kr_xcalloc(1, sizeof(*c->connect_req));
    c->connect_req->data = c;
    int r = uv_tcp_connect(c->connect_req, &c->tcp, addr, kr_conn_connect_cb);
    if (r != 0) {
        free(c->connect_req);
        c->connect_req = NULL;
        snprintf(err, errlen, "%s", uv_strerror(r));
        c->proto = NULL; /* the caller keeps its state: on_free must not see it */
        c->closing = true;
        kr_conn_destroy(c);
        return NULL;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    kr_u64map_put(&ws->conns, c->id, c);
    return c;
}

kr_conn *kr_conn_find(kr_worker *w, uint64_t id)
{
    return kr_u64map_get(&kr_worker_state_get(w)->conns, id);
}

void kr_conn_close_all(kr_worker *w, void (*before_close)(kr_conn *c))
{
    kr_worker_state *ws = kr_worker_state_get(w);
    /* Collect first: closing edits the table. */
    size_t n = 0;
    kr_conn **all = kr_xcalloc(ws->conns.count + 1, sizeof(*all));
    for (size_t i = 0; i < ws->conns.cap; i++)
        if (ws->conns.slots[i].key)
            all[n++] = ws->conns.slots[i].value;
    for (size_t i = 0; i < n; i++) {
        if (before_close)
            before_close(all[i]);
        kr_conn_close(all[i]);
    }
    free(all);
}
