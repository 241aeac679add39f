/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Listening sockets. Every worker opens its own socket on each configured
 * address with SO_REUSEPORT, so the kernel spreads new connections across
 * workers and no thread hands connections to another (DESIGN.md, threads).
 * libuv 1.44 cannot set SO_REUSEPORT itself, so the socket is made here and
 * given to libuv with uv_tcp_open().
 */
#ifndef KR_NET_LISTENER_H
#define KR_NET_LISTENER_H

#include <stdint.h>
#include <uv.h>

/** Bind and listen on host:port (IP literal) with SO_REUSEPORT into the caller-embedded tcp
 * handle, initialised on loop. Returns 0 or a negative errno-style libuv code; err gets one
 * sentence. */
int kr_listener_open(uv_loop_t *loop, uv_tcp_t *tcp, const char *host, uint16_t port,
                     uv_connection_cb cb, char *err, size_t errlen);

#endif
