/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Shared types of kurier-bench's driver (main.c): the parsed options, the run
 * the main thread steers through its phases, and the per-thread workers with
 * the connection slots they own. Threading: each worker thread owns one libuv
 * loop and everything reachable from its slots; the main thread only writes
 * `run.phase` and the window timestamps (atomics) and reads the workers'
 * atomic progress counters, and it reads everything else only after joining
 * the workers. The protocol itself lives in xconn.h, the numbers in stats.h.
 */
#ifndef KR_BENCH_BENCH_H
#define KR_BENCH_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "bench/stats.h"
#include "bench/xconn.h"

typedef enum kr_bench_mode {
    KR_BENCH_MODE_LOGIN,
    KR_BENCH_MODE_IDLE,
    KR_BENCH_MODE_MSG,
    KR_BENCH_MODE_PRESENCE,
    KR_BENCH_MODE_SETUP_ROSTER,
} kr_bench_mode;

typedef struct kr_bench_opts {
    kr_bench_mode mode;
    const char *mode_name;
    const char *host;
    unsigned port; /* 0: 5222, or 5223 with direct TLS */
    const char *domain;
    const char *tls_name;
    const char *ca_file;
    bool insecure;
    const kr_bench_tls_ops *tls_lib; /* --tls-lib (tls.h); NULL: auto, chosen by mode */
    kr_bench_tls_mode tls;
    kr_bench_mech mech;
    const char *resource;
    const char *user_pat;
    const char *pass_pat;
    unsigned first;    /* first account index */
    unsigned accounts; /* distinct accounts (login, idle); 0: as many as needed */
    const char *sources;
    unsigned threads;
    double timeout_s;
    pid_t server_pid;
    int presence;         /* -1: mode default, 0 or 1 */
    unsigned long count;  /* login: total logins; idle: connections */
    unsigned concurrency; /* connections negotiating at once */
    double rate;          /* new connections per second, 0 = unlimited */
    bool prewarm;
    double hold_s;
    double keepalive_s;
    unsigned pairs;
    unsigned window;
    double warmup_s;
    double duration_s;
    double grace_s;
    double msg_rate; /* msg: messages/s offered in total, open loop; 0 = closed loop (window) */
    bool to_bare;
    unsigned body_size;
    unsigned contacts;
    bool trace;
} kr_bench_opts;

typedef enum kr_bench_phase {
    KR_BENCH_PH_INIT = 0,
    KR_BENCH_PH_WARM,    /* login: one unmeasured login per account (fills the SCRAM cache) */
    KR_BENCH_PH_CONNECT, /* idle/msg/presence/setup: open the connections */
    KR_BENCH_PH_RUN,     /* the measured part */
    KR_BENCH_PH_DRAIN,   /* msg: stop sending, wait for what is in flight */
    KR_BENCH_PH_CLOSE,   /* close everything; the worker loop ends when all is closed */
} kr_bench_phase;

typedef enum kr_bench_role {
    KR_BENCH_ROLE_LOGIN,
    KR_BENCH_ROLE_IDLE,
    KR_BENCH_ROLE_RECEIVER,
    KR_BENCH_ROLE_SENDER,
    KR_BENCH_ROLE_USER,
    KR_BENCH_ROLE_CONTACT,
} kr_bench_role;

struct kr_bench_worker;

/** One connection's place: its role, its account, and what it has seen. */
typedef struct kr_bench_slot {
    struct kr_bench_worker *w;
    kr_bench_role role;
    unsigned idx; /* pair index (msg), contact index (presence), login number */
    const kr_bench_account *acct;
    kr_bench_conn *conn;
    bool ready;
    bool got;  /* presence: the user's presence arrived; setup: the other side's subscribed */
    bool heap; /* login slots are allocated per login and freed when closed */
    bool measured;
} kr_bench_slot;

typedef struct kr_bench_pair {
    kr_bench_slot rcv, snd;
    kr_bench_seq seq;
    kr_bench_pace pace; /* --msg-rate: this pair's share of the schedule */
} kr_bench_pair;

typedef struct kr_bench_run kr_bench_run;

typedef struct kr_bench_worker {
    unsigned id;
    pthread_t thread;
    uv_loop_t loop;
    uv_timer_t tick;
    uv_timer_t pace; /* --msg-rate: sends what the schedule says is due, every millisecond */
    bool pacing;
    kr_bench_run *run;
    kr_bench_phase seen_phase;
    uint64_t phase_start_ns;
    unsigned conc; /* this worker's share of the concurrency */
    double rate;   /* this worker's share of the rate */
    /* slots (idle, presence contacts) or pairs (msg) this worker owns */
    kr_bench_slot *slots;
    unsigned n_slots;
    kr_bench_pair *pairs;
    unsigned n_pairs;
    kr_bench_slot user; /* presence/setup-roster: the user, on worker 0 only */
    bool has_user;
    unsigned n_started;
    unsigned negotiating;
    unsigned live; /* connections not yet closed */
    unsigned keepalive_cursor;
    uint64_t last_keepalive_ns;
    double keepalive_credit; /* keepalives owed since the last tick */
    /* login passes */
    unsigned long login_assigned, login_started, login_done, login_failed;
    /* results, read by main after join */
    kr_bench_hist lat;      /* login / msg / presence latency in µs */
    kr_bench_hist conn_lat; /* idle/msg/presence: time to ready in µs */
    kr_bench_hist lag;      /* --msg-rate: how late a send was against its schedule, µs */
    uint64_t sent_window;   /* messages sent inside the measured window */
    uint64_t window_full;   /* --msg-rate: sends held back because -w were already in flight */
    uint64_t errs[KR_BENCH_ERR_COUNT];
    char first_error[160];
    uint64_t warm_failed;
    uint64_t sent, delivered_window, delivered_total, msg_errors, late;
    uint64_t user_login_us;
    /* progress, read by main while running */
    atomic_ulong a_up, a_failed, a_done, a_dropped, a_got, a_user_got, a_outstanding, a_live;
} kr_bench_worker;

struct kr_bench_run {
    const kr_bench_opts *o;
    kr_bench_conn_cfg cfg;
    kr_bench_account *accounts; /* index i is account o->first + i */
    unsigned n_accounts;
    kr_scram_salted_password *caches;
    char *user_domain;
    kr_bench_worker *workers;
    unsigned n_workers;
    _Atomic int phase;
    atomic_ullong window_start_ns; /* msg: receipts from here ... */
    atomic_ullong window_end_ns;   /* ... to here count; 0 = not yet */
    atomic_ullong presence_sent_ns;
    atomic_ullong final_ns;   /* msg: end of the grace period; later receipts are not counted */
    char *user_bare;          /* presence/setup: the user's bare JID */
    unsigned char *user_seen; /* setup: contacts the user's roster shows at 'both' (worker 0) */
};

#endif
