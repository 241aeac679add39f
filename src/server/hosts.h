/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * The address table: every domain kurierd answers for is one kr_host with a
 * kind. A user domain holds accounts and their sessions (RFC 6121 delivery
 * rules); a service domain belongs to one module (conference., pubsub.,
 * echo. ...) whose handlers alone see its stanzas; a component domain is
 * served by an external program over XEP-0114; every other domain is remote
 * and reached over s2s (kr_hosts_find gives NULL for it). The router looks
 * the 'to' domain up once per stanza (kr_stanza_decode) and hands the
 * stanza to the kind's delivery. The table is filled at start-up (main.c:
 * user domains from the configuration, then each module's and component's
 * domains) and read-only afterwards, so workers read it without locks; what
 * changes at run time (which connection serves a component) lives behind
 * kr_host.data, owned by whoever registered the host.
 * To add a kind: a bit here, its delivery in router.c, its disco in mod_disco.c.
 */
#ifndef KR_SERVER_HOSTS_H
#define KR_SERVER_HOSTS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct kr_module_def kr_module_def;
typedef struct kr_server kr_server;
typedef struct kr_worker kr_worker;
typedef struct kr_stanza kr_stanza;
typedef struct kr_host kr_host;

/** A host kind's delivery of a stanza the destination's handlers left (router.c): borrows
 * st, runs on worker w. */
typedef void (*kr_host_deliver_fn)(kr_server *srv, kr_worker *w, const kr_host *host,
                                   kr_stanza *st);

/** Kinds as bits, so handler specs can name several. */
typedef enum kr_host_kind {
    KR_HOST_USER = 1 << 0,      /* accounts and their sessions */
    KR_HOST_SERVICE = 1 << 1,   /* owned by a module (kr_host.module) */
    KR_HOST_COMPONENT = 1 << 2, /* an external component (XEP-0114) */
} kr_host_kind;

struct kr_host {
    char *domain;                 /* prepared */
    kr_host_kind kind;
    kr_host_deliver_fn deliver;   /* what happens to a stanza no handler took */
    const kr_module_def *module;  /* SERVICE: the owner; NULL otherwise */
    const struct kr_host *parent; /* the user domain whose disco#items list it, or NULL */
    char *name;                   /* disco#items name, or NULL */
    void *data;                   /* SERVICE: the module's; COMPONENT: the component's */
};

typedef struct kr_hosts kr_hosts;

kr_hosts *kr_hosts_new(void);
void kr_hosts_free(kr_hosts *h);
/**
 * Add a host (start-up only, before workers run). domain must be prepared. The parent is
 * found by suffix: the longest user domain D such that domain ends in "." D. Returns the
 * new host, or NULL when the domain is already in the table (the caller reports it).
 */
kr_host *kr_hosts_add(kr_hosts *h, const char *domain, kr_host_kind kind,
                      kr_host_deliver_fn deliver, const kr_module_def *module, const char *name);
/** The host of a prepared domain, or NULL: a domain we do not serve (remote). */
const kr_host *kr_hosts_find(const kr_hosts *h, const char *domain);
/** Number of hosts, and the i-th in the order they were added (i < count). */
size_t kr_hosts_count(const kr_hosts *h);
const kr_host *kr_hosts_at(const kr_hosts *h, size_t i);
/** The first user domain (the server's name in stream headers before a 'to' is known). */
const kr_host *kr_hosts_default(const kr_hosts *h);

#endif
