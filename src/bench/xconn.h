/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * One client-to-server XMPP connection of kurier-bench, on a libuv loop:
 * TCP (bound to a chosen local source address), STARTTLS (RFC 6120 §5) or
 * direct TLS (XEP-0368) through the engine of tls.h (OpenSSL or wolfSSL), the certificate
 * checked against a CA file and the domain (RFC 6125) unless insecure, SASL
 * SCRAM-SHA-1/-256 (RFC 5802, RFC 7677) or PLAIN (RFC 4616) with the stream
 * restarts of RFC 6120 §4.3.3, resource binding (§7), the legacy session
 * (RFC 3921 §3) when a server requires it, and optional initial presence.
 * After that it hands each top-level element to its owner, answering by
 * itself an iq get addressed to it (XEP-0199 ping and the like) with an empty
 * result and a roster push (RFC 6121 §2.1.6) with a result, so servers that
 * probe idle clients keep them.
 * Ownership: the caller owns the kr_bench_conn until its `closed` callback,
 * after which the memory is gone. Every wait (connect, each negotiation step,
 * the closing handshake) is bounded by a timer; a connection that fails
 * reports why through `closed` and never crashes the program. Output that the
 * peer does not read is bounded (KR_BENCH_MAX_QUEUED); past it the connection
 * fails. Everything runs on the loop's thread; none of it is thread-safe but
 * the shared, read-only kr_bench_conn_cfg and the TLS context.
 */
#ifndef KR_BENCH_XCONN_H
#define KR_BENCH_XCONN_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "bench/tls.h"
#include "core/arena.h"
#include "sasl/scram.h"
#include "xml/tree.h"

#define KR_BENCH_MAX_QUEUED (4u << 20)

typedef enum kr_bench_tls_mode {
    KR_BENCH_TLS_STARTTLS = 0,
    KR_BENCH_TLS_DIRECT,
    KR_BENCH_TLS_NONE, /* plain TCP: only for servers that allow it, never the default */
} kr_bench_tls_mode;

typedef enum kr_bench_mech {
    KR_BENCH_MECH_AUTO = 0, /* SCRAM-SHA-256, else SCRAM-SHA-1, else PLAIN */
    KR_BENCH_MECH_SCRAM_SHA256,
    KR_BENCH_MECH_SCRAM_SHA1,
    KR_BENCH_MECH_PLAIN,
} kr_bench_mech;

/** Why a connection ended. Each has a counter in the JSON output, named as in
 * kr_bench_err_name(). */
typedef enum kr_bench_err {
    KR_BENCH_ERR_NONE = 0, /* closed by us, cleanly */
    KR_BENCH_ERR_CONNECT,  /* TCP connect or bind failed */
    KR_BENCH_ERR_TLS,      /* handshake or certificate verification failed */
    KR_BENCH_ERR_AUTH,     /* SASL failure or bad server signature */
    KR_BENCH_ERR_BIND,     /* resource binding or session refused */
    KR_BENCH_ERR_STREAM,   /* <stream:error/> or XML the parser rejected */
    KR_BENCH_ERR_PROTO,    /* unexpected element or missing feature */
    KR_BENCH_ERR_TIMEOUT,  /* a wait ran out */
    KR_BENCH_ERR_CLOSED,   /* the server closed the TCP connection or the stream */
    KR_BENCH_ERR_IO,       /* read/write error, or output not read by the server */
    KR_BENCH_ERR_COUNT
} kr_bench_err;

const char *kr_bench_err_name(kr_bench_err e);

/** Everything connections share; read-only once the workers run. */
typedef struct kr_bench_conn_cfg {
    struct sockaddr_storage server;
    struct sockaddr_storage *sources; /* local addresses to bind (port 0); n_sources may be 0 */
    unsigned n_sources;
    kr_bench_tls_mode tls;
    const kr_bench_tls_ops *tls_lib; /* the TLS engine (tls.h) */
    void *tls_ctx;                   /* its client context, from tls_lib->ctx_new */
    const char *domain;              /* stream 'to', SNI and the name the certificate must hold */
    kr_bench_mech mech;
    const char *resource; /* NULL: let the server choose (RFC 6120 §7.6) */
    unsigned timeout_ms;  /* bound on every wait */
    bool trace;           /* print every element sent and received to stderr (debugging) */
} kr_bench_conn_cfg;

/** One account: localpart, domain and password (borrowed; they outlive every connection),
 * plus the SCRAM SaltedPassword cache shared by all logins of that account. */
typedef struct kr_bench_account {
    const char *localpart;
    const char *password;
    unsigned index;
    /* May be NULL. Logins of one account on several threads share it: xconn copies it under a
     * lock before a login and stores it back after, never holding the lock through PBKDF2. */
    kr_scram_salted_password *cache;
} kr_bench_account;

typedef struct kr_bench_conn kr_bench_conn;

typedef struct kr_bench_conn_cbs {
    /** Bound (and initial presence sent when asked). */
    void (*ready)(kr_bench_conn *c);
    /** A top-level element after ready that the connection did not answer itself (roster
     * pushes are answered and passed on as well). elem is borrowed: it lives until the
     * callback returns. */
    void (*stanza)(kr_bench_conn *c, kr_xml_node *elem, kr_arena *a);
    /** The connection is gone (sockets closed, memory about to be freed): err says why,
     * KR_BENCH_ERR_NONE after kr_bench_conn_close(). Called exactly once. */
    void (*closed)(kr_bench_conn *c, kr_bench_err err);
} kr_bench_conn_cbs;

/** Start connecting. Never fails synchronously: problems arrive through cbs->closed (from a
 * later loop iteration). presence: send initial presence (RFC 6121 §4.2) before ready. */
kr_bench_conn *kr_bench_conn_start(uv_loop_t *loop, const kr_bench_conn_cfg *cfg,
                                   const kr_bench_account *acct, unsigned source_index,
                                   bool presence, const kr_bench_conn_cbs *cbs, void *ud);
/** Send raw XML (a whole stanza) on a ready connection; ignored once closing. */
void kr_bench_conn_send(kr_bench_conn *c, const char *xml, size_t len);
/** End the stream (</stream:stream>), wait (bounded) for the server's end, then close. */
void kr_bench_conn_close(kr_bench_conn *c);
/** Send one space (RFC 6120 §4.6.1 whitespace keepalive) on a ready connection. */
void kr_bench_conn_keepalive(kr_bench_conn *c);
void *kr_bench_conn_ud(const kr_bench_conn *c);
bool kr_bench_conn_is_ready(const kr_bench_conn *c);
/** Full JID the server bound (borrowed), NULL before ready. */
const char *kr_bench_conn_jid(const kr_bench_conn *c);
const kr_bench_account *kr_bench_conn_account(const kr_bench_conn *c);
/** Monotonic time (ns) the connection started. */
uint64_t kr_bench_conn_started_ns(const kr_bench_conn *c);
/** Short English reason of the failure (static or in the connection), "" if none; for the
 * `closed` callback, which may copy it. */
const char *kr_bench_conn_why(const kr_bench_conn *c);

/** Monotonic clock in nanoseconds. */
uint64_t kr_bench_now_ns(void);

#endif
