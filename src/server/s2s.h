/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Server-to-server federation (RFC 6120; RFC 6121 across servers). Stanzas
 * for other domains come here from the router (kr_s2s_route: the delivery of
 * every domain the address table does not hold, hosts.h) and leave over
 * one outbound stream per (our domain, remote domain) pair, which lives on
 * the worker the pair hashes to; other workers hand it stanzas through the
 * worker queues. Inbound streams are accepted on s2s.starttls / direct_tls
 * on every worker (SO_REUSEPORT) and feed the router like c2s does. TLS is
 * mandatory both ways; peers authenticate with SASL EXTERNAL (XEP-0178) when
 * their certificate verifies for their domain (RFC 6125), else with Server
 * Dialback (XEP-0220) when s2s.require_valid_certificates is false.
 * The pieces: s2s.c (start/stop, routing into the queues, bounces, the
 * address look-up seam), s2s_out.c (outbound streams and their queues),
 * s2s_in.c (inbound streams), dialback.c (keys).
 * Entry points run on workers unless said otherwise.
 */
#ifndef KR_SERVER_S2S_H
#define KR_SERVER_S2S_H

#include <stdbool.h>
#include <uv.h>

#include "core/buf.h"
#include "server/server.h"
#include "server/stanza.h"

/** At start, before the workers (main thread): TLS contexts and the dialback secret. Does
 * nothing when s2s is disabled. 0, or -1 after logging why. */
int kr_s2s_start(kr_server *srv);
/** After the workers ended (main thread). */
void kr_s2s_stop(kr_server *srv);

/** Listener callback of s2s.starttls / s2s.direct_tls; listener->data is its
 * kr_listen_handle. */
void kr_s2s_on_connection(uv_stream_t *listener, int status);

/** Send a stanza addressed to another domain (KR_ADDR_REMOTE) whose 'from' is one of our
 * domains. Borrows st; bounces it (RFC 6120 §8.3.3.15/.16) when federation is off or the
 * domain cannot be reached. */
void kr_s2s_route(kr_server *srv, kr_worker *w, kr_stanza *st);

/** Worker shutdown: close every s2s stream of w; no new outbound streams after it. */
void kr_s2s_shutdown_worker(kr_worker *w);

#endif
