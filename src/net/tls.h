/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * TLS for Kurier's connections, on OpenSSL 3 with memory BIOs so the socket
 * I/O stays in libuv. The server context enforces the security defaults of
 * DESIGN.md: TLS 1.2 minimum, ECDHE key exchange with AEAD ciphers only
 * (TLS 1.3 suites are all AEAD and forward-secret), no compression, no
 * renegotiation. After the handshake, kr_tls_cb_data() and kr_tls_cb_exporter()
 * give the channel binding values SCRAM-PLUS needs: tls-exporter (RFC 9266; TLS
 * 1.3, or 1.2 with extended master secret), tls-server-end-point (RFC 5929 §4)
 * and tls-unique (RFC 5929 §3; TLS 1.2 only).
 * Server-to-server streams add the client side (kr_tls_ctx_new_client,
 * kr_tls_new_client with SNI) and peer certificates on both sides: a context
 * with kr_tls_ctx_verify_peers() asks for the peer's certificate and checks
 * its chain against the system store and an optional CA file, but never
 * fails the handshake for it; the protocol reads the outcome afterwards
 * (kr_tls_peer_verified, kr_tls_peer_cert) and decides (RFC 6125 identity in
 * certid.h, then SASL EXTERNAL or Server Dialback).
 * A kr_tls belongs to one connection and so to one worker thread.
 */
#ifndef KR_NET_TLS_H
#define KR_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/x509.h>

#include "core/buf.h"
#include "sasl/scram.h"

typedef struct kr_tls_ctx kr_tls_ctx;
typedef struct kr_tls kr_tls;

/** Server context from PEM files. Returns NULL and writes one sentence to err on failure. */
kr_tls_ctx *kr_tls_ctx_new_server(const char *cert_path, const char *key_path, char *err,
                                  size_t errlen);
/** Client context (outbound s2s): the same protocol and cipher policy as the server side,
 * presenting our certificate (for SASL EXTERNAL, XEP-0178), with peer verification on
 * (kr_tls_ctx_verify_peers with ca_file). NULL and one sentence in err on failure. */
kr_tls_ctx *kr_tls_ctx_new_client(const char *cert_path, const char *key_path,
                                  const char *ca_file, char *err, size_t errlen);
/** Ask for and verify the peer's certificate against the system store plus ca_file (PEM,
 * NULL or "" for none). A failed verification does not fail the handshake; see
 * kr_tls_peer_verified. 0, or -1 with one sentence in err. */
int kr_tls_ctx_verify_peers(kr_tls_ctx *ctx, const char *ca_file, char *err, size_t errlen);
void kr_tls_ctx_free(kr_tls_ctx *ctx);

kr_tls *kr_tls_new(kr_tls_ctx *ctx);
/** A client connection of a client context, sending server_name (SNI, RFC 6066) when it is a
 * DNS name (IP literals are not sent). */
kr_tls *kr_tls_new_client(kr_tls_ctx *ctx, const char *server_name);
/** Offer one ALPN protocol (RFC 7301) in the ClientHello, e.g. "xmpp-server" on direct TLS
 * (XEP-0368). Call before the handshake starts. */
void kr_tls_set_alpn(kr_tls *t, const char *proto);
void kr_tls_free(kr_tls *t);

/** Results of kr_tls_feed(). */
typedef enum kr_tls_status {
    KR_TLS_OK = 0,     /* progress made (maybe nothing to read yet) */
    KR_TLS_CLOSED,     /* peer sent close_notify */
    KR_TLS_ERROR,      /* handshake or record failure: close the connection */
} kr_tls_status;

/**
 * Give the TLS engine bytes from the network and collect decrypted application data
 * into `plain` (appended). Drives the handshake as needed. Afterwards, call
 * kr_tls_pending_out() to send what the engine produced (handshake records, alerts).
 */
kr_tls_status kr_tls_feed(kr_tls *t, const char *data, size_t len, kr_buf *plain);
/** Encrypt application data; the records become available from kr_tls_pending_out(). */
int kr_tls_write(kr_tls *t, const char *data, size_t len);
/** Move the ciphertext waiting to be sent into out (appended). Returns bytes moved. */
size_t kr_tls_pending_out(kr_tls *t, kr_buf *out);
/** Idle connection: give back what it can. A TLS 1.3 server connection trades its OpenSSL
 * SSL object for the record layer of tls13_record.h (~13 KiB down to ~0.3 KiB); it keeps
 * working the same, but channel binding and peer certificates are gone from then on, so
 * only call this once those are no longer needed (c2s: after resource binding). Otherwise
 * the memory BIOs' buffers are given back when both are empty (new ones grow again on use).
 * Does nothing during the handshake or while bytes wait. True when this call handed the
 * connection over. */
bool kr_tls_trim(kr_tls *t);
/** Queue a close_notify alert. */
void kr_tls_shutdown(kr_tls *t);

bool kr_tls_handshake_done(const kr_tls *t);
/** "TLSv1.3" etc. and the cipher name, for debug logs. */
const char *kr_tls_version(const kr_tls *t);
const char *kr_tls_cipher(const kr_tls *t);
/** Channel binding data of this connection that costs nothing to collect (only meaningful
 * after the handshake): tls-server-end-point and tls-unique. tls-exporter is a key
 * derivation, so it is left empty (len 0) here and derived only by kr_tls_cb_exporter(),
 * when a -PLUS exchange actually starts; kr_tls_exporter_available() says whether it can. */
void kr_tls_cb_data(kr_tls *t, kr_scram_cb_data *out);
/** Whether tls-exporter (RFC 9266 §2: TLS 1.3, or TLS 1.2 with the extended master
 * secret of RFC 7627) can be derived on this connection. */
bool kr_tls_exporter_available(const kr_tls *t);
/** Derive tls-exporter into out->tls_exporter. Returns 0, or -1 (out unchanged) when it is
 * unavailable or the derivation fails. */
int kr_tls_cb_exporter(kr_tls *t, kr_scram_cb_data *out);
/** True when the peer presented a certificate whose chain verified; otherwise, when why is
 * given, it gets the reason ("no certificate", OpenSSL's verify error text). Identity is
 * not checked here (certid.h). */
bool kr_tls_peer_verified(const kr_tls *t, char *why, size_t whylen);
/** The peer's certificate (borrowed, valid while t lives), or NULL. */
X509 *kr_tls_peer_cert(const kr_tls *t);
/** The chain the peer sent (may or may not begin with its certificate), or NULL; borrowed. */
STACK_OF(X509) *kr_tls_peer_chain(const kr_tls *t);
/** Last OpenSSL error as text, for logs. */
const char *kr_tls_last_error(char *buf, size_t len);
/** Why t failed (after KR_TLS_ERROR): its record layer's reason, or OpenSSL's queue. */
const char *kr_tls_failure(const kr_tls *t, char *buf, size_t len);

#endif
