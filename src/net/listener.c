/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * SO_REUSEPORT listening sockets handed to libuv (see listener.h).
 */
#include "net/listener.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int kr_listener_open(uv_loop_t *loop, uv_tcp_t *tcp, const char *host, uint16_t port,
                     uv_connection_cb cb, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    memset(&ss, 0, sizeof(ss));
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) == 0) {
        sslen = sizeof(struct sockaddr_in);
    } else if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) == 0) {
        sslen = sizeof(struct sockaddr_in6);
    } else {
        snprintf(err, errlen, "%s is not an IP address", host);
        return UV_EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -errno;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        int e = errno;
        snprintf(err, errlen, "SO_REUSEPORT: %s", strerror(e));
        close(fd);
        return -e;
    }
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, sslen) != 0) {
        int e = errno;
        snprintf(err, errlen, "cannot bind %s port %u: %s", host, port, strerror(e));
        close(fd);
        return -e;
    }
    int r = uv_tcp_init(loop, tcp);
    if (r == 0)
        r = uv_tcp_open(tcp, fd);
    if (r != 0) {
        snprintf(err, errlen, "uv_tcp_open: %s", uv_strerror(r));
        close(fd);
        return r;
    }
    r = uv_listen((uv_stream_t *)tcp, 1024, cb);
    if (r != 0) {
        snprintf(err, errlen, "cannot listen on %s port %u: %s", host, port, uv_strerror(r));
        return r;
    }
    return 0;
}
