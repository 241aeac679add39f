/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * The kurierd process: configuration, TLS context, workers, the address
 * table, the shared session directory, the module table and the storage
 * lanes, created by main.c at start and released at shutdown. Everything
 * reachable from kr_server is either immutable after start or has its own
 * locking (sessions, storage lanes, worker queues); what a worker keeps for
 * itself (connections, sessions) lives in its kr_worker_state.
 */
#ifndef KR_SERVER_SERVER_H
#define KR_SERVER_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "core/buf.h"
#include "core/hmap.h"
#include "net/tls.h"
#include "net/worker.h"

typedef struct kr_sessions kr_sessions;
typedef struct kr_storage kr_storage;
typedef struct kr_modules kr_modules;
typedef struct kr_conn kr_conn;
typedef struct kr_s2s kr_s2s;
typedef struct kr_hosts kr_hosts;

typedef struct kr_server {
    kr_config *cfg;
    kr_tls_ctx *tls;
    unsigned worker_count;
    kr_worker *workers;
    kr_hosts *hosts;          /* the address table (hosts.h) */
    kr_sessions *sessions;
    kr_storage *storage;
    kr_modules *modules;
    kr_s2s *s2s;              /* federation (s2s.c); NULL when s2s.enabled is false */
    unsigned char secret[32]; /* per-process secret: fake SCRAM salts for unknown users */
    atomic_uint_fast64_t next_conn_id; /* ids of connections and sessions */
} kr_server;

/** One listening socket of one worker. */
typedef struct kr_listen_handle {
    uv_tcp_t tcp;
    kr_worker *worker;
    bool direct_tls;
} kr_listen_handle;

/** Per-worker server state, hung on kr_worker.data. */
typedef struct kr_worker_state {
    kr_server *srv;
    kr_u64map conns;         /* connection id -> kr_conn, connections of this worker */
    kr_u64map sessions;      /* session id -> kr_session (session.h) */
    kr_listen_handle *listeners; /* one per configured listen address */
    size_t listener_count;
    uint64_t *dirty_ids;     /* connections with output to flush this iteration */
    size_t dirty_len, dirty_cap;
    kr_buf plain;            /* decrypted input of the read being processed */
    kr_buf cipher;           /* output being encrypted by the flush in progress */
    char *read_buf;          /* shared read buffer: reads are processed synchronously */
    size_t read_buf_size;
    kr_strmap s2s_out;       /* "local remote" -> outbound s2s stream owned by this worker */
    bool s2s_stopped;        /* shutdown began: no new outbound streams */
    struct kr_resolver *resolver; /* s2s DNS of this worker's loop, made at first use */
} kr_worker_state;

static inline kr_worker_state *kr_worker_state_get(kr_worker *w)
{
    return (kr_worker_state *)w->data;
}

#endif
