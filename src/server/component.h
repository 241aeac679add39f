/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * External components (XEP-0114, jabber:component:accept): each domain in
 * component.secrets is a host of kind KR_HOST_COMPONENT in the address
 * table, and a component program serves it over one stream accepted on
 * component.direct_tls (TLS at once with the server's certificate, as
 * XEP-0368 does for clients) or component.plain (loopback only, checked at
 * load). The protocol is component_stream.c; component.c runs it on a
 * kr_conn, routes what the component sends through the stream's intake, and
 * delivers what the router sends to the domain: on any worker, to the
 * worker and connection that serve the domain now (one atomic slot per
 * domain), or, when no component is connected, answers iq get/set and
 * messages with <service-unavailable/> and drops the rest. One connection
 * per domain: a second one that authenticates is refused with <conflict/>
 * (component_stream.h). Entry points run on workers unless said otherwise.
 */
#ifndef KR_SERVER_COMPONENT_H
#define KR_SERVER_COMPONENT_H

#include <uv.h>

#include "server/server.h"

/** At start, after the modules added their services and before the workers (main thread):
 * every configured component domain goes into the address table. 0, or -1 after logging
 * why (a domain something else serves already). */
int kr_component_start(kr_server *srv);
/** After the workers ended (main thread): frees what kr_component_start made. Harmless when
 * it did not run. */
void kr_component_stop(kr_server *srv);

/** Listener callback of component.direct_tls and component.plain; listener->data is its
 * kr_listen_handle (direct_tls says which). */
void kr_component_on_connection(uv_stream_t *listener, int status);

/** Worker shutdown: end every component stream of w with <system-shutdown/>. */
void kr_component_shutdown_worker(kr_worker *w);

#endif
