/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Client-to-server streams (RFC 6120): stream headers and features, STARTTLS
 * (§5) or direct TLS (XEP-0368), SASL (§6) with SCRAM-SHA-1/-256(-PLUS) and
 * PLAIN, resource binding (§7), then stanza intake with 'from' stamped from
 * the session (§8.1.2.1) before anything is routed. Nothing but STARTTLS is
 * accepted before TLS. Runs on the connection's worker; the only entry points
 * from elsewhere are kr_c2s_deliver(), kr_c2s_kick() and kr_c2s_end_session(),
 * all on that worker.
 */
#ifndef KR_SERVER_C2S_H
#define KR_SERVER_C2S_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "net/worker.h"

/** Listener callback: accept one client connection; listener->data is its kr_listen_handle. */
void kr_c2s_on_connection(uv_stream_t *listener, int status);

/** Deliver a serialized stanza to connection conn_id of worker w; takes the reference. */
void kr_c2s_deliver(kr_worker *w, uint64_t conn_id, kr_rbuf *buf);
/** Close the session with a <conflict/> stream error (its resource was bound elsewhere). */
void kr_c2s_kick(kr_worker *w, void *unused, uint64_t conn_id);
/** Close the session with a stream error whose condition is `cond` (a static string, e.g.
 * "not-authorized" after the account was removed, XEP-0077 §3.2). A kr_worker_fn: post it
 * to the session's worker; nothing happens when the connection has gone. */
void kr_c2s_end_session(kr_worker *w, void *cond, uint64_t conn_id);
/** Worker shutdown: end every stream with <system-shutdown/>. */
void kr_c2s_shutdown_worker(kr_worker *w);

#endif
