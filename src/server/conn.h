/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * One TCP connection on a worker: socket reads, optional TLS (STARTTLS or
 * direct; server side, or client side for outbound s2s), output batching and
 * closing. Connections are accepted from a listener or, for s2s, opened with
 * kr_conn_connect(). Protocol code (c2s, later s2s) plugs
 * in through kr_conn_ops and sees only plaintext. Output given to
 * kr_conn_send() is gathered and written once per loop iteration (one
 * SSL_write and one write(2) per connection per iteration). The connection
 * is owned by its worker's table; it is freed only after libuv's close
 * callbacks ran, and it leaves the table as soon as closing starts, so a
 * delivery that arrives later finds nothing (CONVENTIONS.md rule 4).
 * Limits enforced here (see limits.h, docs/SECURITY.md): connections per IP
 * address (checked at accept), a token bucket that pauses reading when a peer
 * sends faster than its rate (bytes already read are always processed), and
 * the bound on output the peer has not taken (max_send_queue_bytes): past it
 * the protocol gets on_overflow to say goodbye, then the connection closes and
 * its queue is freed after at most the linger time.
 */
#ifndef KR_SERVER_CONN_H
#define KR_SERVER_CONN_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "net/tls.h"
#include "server/limits.h"
#include "server/server.h"

typedef struct kr_conn kr_conn;

typedef struct kr_conn_ops {
    /* Plaintext application bytes arrived. */
    void (*on_data)(kr_conn *c, const char *data, size_t len);
    /* Outbound only: the TCP connection was made (status 0) or failed (a libuv error; the
     * connection closes right after, on_close follows). */
    void (*on_connect)(kr_conn *c, int status);
    /* The TLS handshake completed. */
    void (*on_tls_ready)(kr_conn *c);
    /* The per-connection timer fired (not called once closing). */
    void (*on_timer)(kr_conn *c);
    /* Closing has started (peer gone, error, or kr_conn_close): release protocol state.
     * Called exactly once, possibly from inside on_data; no more callbacks follow but on_free. */
    void (*on_close)(kr_conn *c);
    /* The peer did not take its output: more than limits.max_send_queue_bytes is queued. The
     * protocol may send a last error; the connection is closed right after in any case. */
    void (*on_overflow)(kr_conn *c);
    /* The connection's memory is about to be released (from libuv's close callback, never
     * from inside another callback): free `proto`. */
    void (*on_free)(kr_conn *c);
} kr_conn_ops;

struct kr_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_timer_t throttle;     /* resumes reading when the token bucket is out of debt */
    kr_worker *worker;
    kr_server *srv;
    uint64_t id;
    kr_tls *tls;             /* NULL until TLS starts */
    kr_tls_ctx *tls_ctx;     /* context TLS starts with (server's by default) */
    uv_connect_t *connect_req; /* outbound, while connecting (freed by its callback) */
    kr_buf out;              /* plaintext gathered during this loop iteration */
    size_t queued_bytes;     /* handed to uv_write, not yet written */
    unsigned open_handles;   /* tcp + timer + throttle; freed when all are closed */
    kr_bucket bucket;        /* read pacing (limits.bytes_per_second*) */
    uint64_t rate;           /* bytes/s refilled into bucket */
    bool dirty;              /* listed for the end-of-iteration flush */
    bool closing;
    bool tls_ready_reported;
    bool read_paused;        /* by the protocol (kr_conn_read_pause) */
    bool throttled;          /* by the token bucket */
    bool reading;            /* uv_read_start in effect */
    bool overflowed;         /* send queue bound exceeded; closing follows */
    bool overflow_reported;  /* on_overflow was called */
    bool ip_counted;         /* counted in the per-IP table: release when freed */
    const kr_conn_ops *ops;
    void *proto;             /* protocol state (kr_c2s) */
    struct kr_intake *intake; /* the stream's ordered intake (intake.h), or NULL */
    char log_ctx[96];        /* "c2s#12 w1" then "c2s#12 w1 alice@example.org/res" */
    char peer_ip[INET6_ADDRSTRLEN];
};

/** Accept a pending connection on listener into a new kr_conn on worker w. direct_tls starts
 * TLS at once (XEP-0368). Reads are paced at limits.bytes_per_second_unauthenticated until
 * kr_conn_rate_set. Returns the connection or NULL (accept failed, or its IP address already
 * has limits.connections_per_ip connections: closed at once, counted). */
kr_conn *kr_conn_accept(kr_worker *w, uv_stream_t *listener, bool direct_tls,
                        const kr_conn_ops *ops, const char *kind);
/** kr_conn_accept with another server TLS context (s2s asks for peer certificates). */
kr_conn *kr_conn_accept_ctx(kr_worker *w, uv_stream_t *listener, bool direct_tls,
                            kr_tls_ctx *ctx, const kr_conn_ops *ops, const char *kind);
/** Open an outbound connection to addr on worker w; ops->on_connect reports the outcome.
 * Not counted in the per-IP limit; read at limits.bytes_per_second. NULL when the connect
 * cannot even start (err gets why; nothing is called back). */
kr_conn *kr_conn_connect(kr_worker *w, const struct sockaddr *addr, const kr_conn_ops *ops,
                         const char *kind, void *proto, char *err, size_t errlen);
/** Flush queued plaintext in the clear, then start TLS as the client with ctx (SNI =
 * server_name; ALPN protocol alpn unless NULL); the ClientHello goes out with this
 * iteration's flush. */
void kr_conn_start_tls_client(kr_conn *c, kr_tls_ctx *ctx, const char *server_name,
                              const char *alpn);
/** Whether conn (a kr_conn *) is closing: the closing test kr_xml_parser_feed_stream takes. */
bool kr_conn_closing(void *conn);

/** Find a live (not closing) connection of worker w. */
kr_conn *kr_conn_find(kr_worker *w, uint64_t id);

/** Queue plaintext for this iteration's flush. Ignored once closing. */
void kr_conn_send(kr_conn *c, const char *data, size_t len);
/** Write what is queued now (used before switching to TLS). */
void kr_conn_flush(kr_conn *c);
/** Flush queued plaintext in the clear, then start TLS (STARTTLS, RFC 6120 §5.4.3.3). */
void kr_conn_start_tls(kr_conn *c);
/** Graceful close: flush, TLS close_notify, close once written (bounded by a linger timer). */
void kr_conn_close(kr_conn *c);
/** Arm the connection's timer (replaces any earlier setting). */
void kr_conn_timer_set(kr_conn *c, uint64_t ms);
/** Stop or resume reading (used to slow down failed logins). */
void kr_conn_read_pause(kr_conn *c, bool pause);
/** Set the read rate in bytes/s (e.g. raise it once the stream has authenticated). */
void kr_conn_rate_set(kr_conn *c, uint64_t bytes_per_second);
/** Give back memory an idle connection does not need (its output buffer's capacity, the
 * TLS memory BIOs' buffers, and on TLS 1.3 the whole OpenSSL object: kr_tls_trim); it
 * grows again on use. Does nothing while output waits. Only for streams past the point
 * where channel binding or the peer's certificate could still be asked for. */
void kr_conn_trim(kr_conn *c);
/** End-of-iteration hook of the worker: flush every dirty connection. */
void kr_conn_flush_dirty(kr_worker *w);
/** Close every connection of the worker (shutdown). */
void kr_conn_close_all(kr_worker *w, void (*before_close)(kr_conn *c));

#endif
