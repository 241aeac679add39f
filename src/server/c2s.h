/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Client-to-server streams over TCP with TLS (STARTTLS, RFC 6120 §5, or
 * direct TLS, XEP-0368): the first transport of client sessions. The stream
 * protocol itself lives in c2s_stream.c, the session in session.c; this is
 * the connection glue between them. Everything runs on the connection's
 * worker; the only entry points are the listener callback and the shutdown.
 */
#ifndef KR_SERVER_C2S_H
#define KR_SERVER_C2S_H

#include <uv.h>

#include "net/worker.h"

/** Listener callback: accept one client connection; listener->data is its kr_listen_handle. */
void kr_c2s_on_connection(uv_stream_t *listener, int status);
/** Worker shutdown: end every stream with <system-shutdown/>. */
void kr_c2s_shutdown_worker(kr_worker *w);

#endif
