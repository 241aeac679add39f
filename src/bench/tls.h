/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * The client TLS engine of kurier-bench, behind one small table of operations so the load
 * generator can run on either of two libraries: OpenSSL (memory BIOs) or wolfSSL (I/O
 * callbacks into buffers). Neither touches a socket: xconn hands in what it read from the
 * network (input), steps the handshake, reads and writes plaintext, and takes out the
 * encrypted bytes to send (output). Both contexts offer TLS 1.2 and 1.3 only, prefer X25519
 * then P-256 (what OpenSSL clients offer by default, so servers do the same work whichever
 * library drives them), keep no sessions (every login is a full handshake), and verify the
 * server certificate against a CA file or the system store and the domain (RFC 6125 DNS-ID)
 * unless told not to. Why two: OpenSSL 3.0 spends about a third of a client handshake
 * decoding the server certificate's key (its decoder framework, 1.5 M instructions per
 * handshake), which made the generator, not the server, the limit on logins per second;
 * wolfSSL's handshake costs the generator about 40% less CPU (bench/profile.md). Debian's
 * wolfSSL has no AES-NI, though, so OpenSSL is cheaper for records (main.c picks by mode).
 * Ownership: the caller owns contexts and connections (ctx_free after every connection of it
 * is freed); allocation failure aborts. Connections are used from one thread; a context is
 * shared read-only by all threads.
 */
#ifndef KR_BENCH_TLS_H
#define KR_BENCH_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

/** read() results besides a byte count (> 0) and "needs more input" (0). */
#define KR_BENCH_TLS_CLOSED (-1) /* the server sent close_notify */
#define KR_BENCH_TLS_ERROR (-2)

typedef struct kr_bench_tls_ops {
    const char *name; /* "openssl" or "wolfssl": the --tls-lib value and the JSON param */
    /** A client context. insecure: no certificate check at all; else against ca_file (NULL:
     * the system store). NULL with a one-line message in err on failure. */
    void *(*ctx_new)(const char *ca_file, bool insecure, char *err, size_t errlen);
    void (*ctx_free)(void *ctx);
    /** One client connection sending SNI host and, when verifying, requiring host in the
     * certificate. Nothing is sent until handshake(). */
    void *(*conn_new)(void *ctx, const char *host);
    void (*conn_free)(void *conn);
    /** Bytes read from the network. false: the engine refused them (fail the connection). */
    bool (*input)(void *conn, const char *data, size_t len);
    /** Start or continue the handshake: 1 complete, 0 waiting for input, -1 failed with a
     * one-line reason in why (certificate problems say so). */
    int (*handshake)(void *conn, char *why, size_t whylen);
    /** Decrypt up to cap bytes into buf: the count, 0 when more input is needed,
     * KR_BENCH_TLS_CLOSED or KR_BENCH_TLS_ERROR. */
    long (*read)(void *conn, char *buf, size_t cap);
    /** Encrypt all of data (after the handshake). false on failure. */
    bool (*write)(void *conn, const char *data, size_t len);
    /** Append the encrypted bytes waiting for the network to out; returns how many. */
    size_t (*output)(void *conn, kr_buf *out);
    /** Called by every thread that used the engine, last thing before it exits: frees the
     * engine's per-thread state (wolfSSL keeps a per-thread ECC precomputation cache). */
    void (*thread_end)(void);
} kr_bench_tls_ops;

extern const kr_bench_tls_ops kr_bench_tls_openssl;
extern const kr_bench_tls_ops kr_bench_tls_wolfssl;

/** The engine called name ("openssl", "wolfssl"), NULL if none is. */
const kr_bench_tls_ops *kr_bench_tls_find(const char *name);

#endif
