/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * kurierd: start-up and shutdown. Loads the configuration (a bad file stops
 * start-up with FILE:LINE), creates the data directory, the TLS context and
 * the store, starts the storage thread, the modules, the component domains
 * and one worker per configured thread, each listening on every c2s address
 * (and, with s2s.enabled, every s2s address) and every component address
 * with SO_REUSEPORT.
 * SIGTERM or SIGINT ends every stream with <system-shutdown/> and exits 0
 * once all memory is released. Exit codes: 0 clean, 1 usage, 2 configuration,
 * 3 start-up failure (TLS files, store, listeners).
 */
#include <errno.h>
#include <getopt.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/config.h"
#include "core/log.h"
#include "net/listener.h"
#include "server/c2s.h"
#include "server/component.h"
#include "server/conn.h"
#include "server/hosts.h"
#include "server/modules.h"
#include "server/router.h"
#include "server/s2s.h"
#include "server/server.h"
#include "server/sessions.h"
#include "server/storage_thread.h"
#include "store/store.h"

#ifdef KR_JEMALLOC
/* Read by jemalloc at start-up. Freed pages go back to the kernel after ~1 s instead of 10,
 * without the intermediate "muzzy" stage, so RSS follows what connections hold: idle ones
 * give back their TLS engine and parser (docs/design-notes.md, bench/profile.md). */
const char *malloc_conf = "dirty_decay_ms:1000,muzzy_decay_ms:0";
#endif

#define KR_EXIT_USAGE 1
#define KR_EXIT_CONFIG 2
#define KR_EXIT_START 3
#define KR_READ_BUF_SIZE 65536

static void kr_main_usage(FILE *out)
{
    fprintf(out, "usage: kurierd -c CONFIG\n"
                 "  -c, --config FILE   configuration file (YAML; see examples/kurierd.yml)\n"
                 "  -h, --help          this text\n"
                 "  -V, --version       version\n");
}

static int kr_main_mkdir(const char *path)
{
    if (mkdir(path, 0700) == 0 || errno == EEXIST)
        return 0;
    KR_LOG(KR_LOG_ERROR, NULL, "cannot create data directory %s: %s", path, strerror(errno));
    return -1;
}

static void kr_worker_on_check(kr_worker *w)
{
    kr_conn_flush_dirty(w);
}

static void kr_worker_on_stop(kr_worker *w)
{
    kr_worker_state *ws = kr_worker_state_get(w);
    for (size_t i = 0; i < ws->listener_count; i++)
        uv_close((uv_handle_t *)&ws->listeners[i].tcp, NULL);
    kr_s2s_shutdown_worker(w);
    kr_component_shutdown_worker(w);
    kr_c2s_shutdown_worker(w);
    kr_conn_flush_dirty(w);
}

static int kr_main_listen(kr_server *srv, kr_worker *w)
{
    kr_worker_state *ws = kr_worker_state_get(w);
    const kr_config *cfg = srv->cfg;
    const kr_listen_list none = {NULL, 0};
    /* Kinds in order: TLS at once or not, what accepts, for whom, how (for the log). */
    const struct {
        const kr_listen_list *list;
        bool direct_tls;
        uv_connection_cb cb;
        const char *who, *how;
    } kinds[] = {
        {&cfg->c2s.starttls, false, kr_c2s_on_connection, "clients", "STARTTLS"},
        {&cfg->c2s.direct_tls, true, kr_c2s_on_connection, "clients", "direct TLS"},
        {cfg->s2s.enabled ? &cfg->s2s.starttls : &none, false, kr_s2s_on_connection, "servers",
         "STARTTLS"},
        {cfg->s2s.enabled ? &cfg->s2s.direct_tls : &none, true, kr_s2s_on_connection, "servers",
         "direct TLS"},
        {&cfg->component.direct_tls, true, kr_component_on_connection, "components",
         "direct TLS"},
        {&cfg->component.plain, false, kr_component_on_connection, "components",
         "plaintext, loopback only"},
    };
    const size_t nkinds = sizeof(kinds) / sizeof(kinds[0]);
    size_t total = 1;
    for (size_t k = 0; k < nkinds; k++)
        total += kinds[k].list->count;
    ws->listeners = kr_xcalloc(total, sizeof(kr_listen_handle));
    for (size_t k = 0; k < nkinds; k++) {
        for (size_t i = 0; i < kinds[k].list->count; i++) {
            const kr_listen_addr *a = &kinds[k].list->items[i];
            kr_listen_handle *lh = &ws->listeners[ws->listener_count];
            char err[256];
            lh->worker = w;
            lh->direct_tls = kinds[k].direct_tls;
            int r = kr_listener_open(&w->loop, &lh->tcp, a->host, a->port, kinds[k].cb, err,
                                     sizeof(err));
            if (r != 0) {
                KR_LOG(KR_LOG_ERROR, NULL, "%s", err);
                if (uv_is_active((uv_handle_t *)&lh->tcp) || lh->tcp.loop)
                    uv_close((uv_handle_t *)&lh->tcp, NULL);
                return -1;
            }
            lh->tcp.data = lh;
            ws->listener_count++;
            if (w->index == 0)
                KR_LOG(KR_LOG_INFO, NULL, "listening for %s on %s port %u (%s)", kinds[k].who,
                       a->host, a->port, kinds[k].how);
        }
    }
    return 0;
}

static int kr_main_start_workers(kr_server *srv)
{
    srv->worker_count = srv->cfg->workers;
    srv->workers = kr_xcalloc(srv->worker_count, sizeof(kr_worker));
    for (unsigned i = 0; i < srv->worker_count; i++) {
        kr_worker *w = &srv->workers[i];
        kr_worker_init(w, i);
        kr_worker_state *ws = kr_xcalloc(1, sizeof(*ws));
        ws->srv = srv;
        kr_u64map_init(&ws->conns);
        kr_u64map_init(&ws->sessions);
        kr_strmap_init(&ws->s2s_out);
        ws->read_buf_size = KR_READ_BUF_SIZE;
        ws->read_buf = kr_xmalloc(ws->read_buf_size);
        w->data = ws;
        w->on_check = kr_worker_on_check;
        w->on_stop = kr_worker_on_stop;
        if (kr_main_listen(srv, w) != 0)
            return -1;
    }
    for (unsigned i = 0; i < srv->worker_count; i++)
        kr_worker_start(&srv->workers[i]);
    return 0;
}

static void kr_main_free_workers(kr_server *srv)
{
    for (unsigned i = 0; i < srv->worker_count; i++) {
        kr_worker_state *ws = srv->workers[i].data;
        if (!ws)
            continue;
        kr_u64map_clear(&ws->conns);
        kr_u64map_clear(&ws->sessions);
        kr_strmap_clear(&ws->s2s_out);
        free(ws->listeners);
        free(ws->read_buf);
        free(ws->dirty_ids);
        kr_buf_clear(&ws->plain);
        kr_buf_clear(&ws->cipher);
        free(ws);
    }
    free(srv->workers);
}

/* Listeners are opened before the threads start; if one fails, close what was opened. */
static void kr_main_abort_workers(kr_server *srv)
{
    for (unsigned i = 0; i < srv->worker_count; i++) {
        kr_worker *w = &srv->workers[i];
        if (!w->data)
            continue;
        kr_worker_state *ws = w->data;
        for (size_t k = 0; k < ws->listener_count; k++)
            uv_close((uv_handle_t *)&ws->listeners[k].tcp, NULL);
        uv_close((uv_handle_t *)&w->async, NULL);
        uv_close((uv_handle_t *)&w->check, NULL);
        uv_close((uv_handle_t *)&w->prepare, NULL);
        uv_run(&w->loop, UV_RUN_NOWAIT);
        uv_loop_close(&w->loop);
        pthread_mutex_destroy(&w->lock);
    }
}

/* One connection of the store per storage lane (storage_thread.h). */
static int kr_main_open_store(void *path, kr_store **out, char *err, size_t errlen)
{
    return kr_store_open(path, out, err, errlen);
}

/* Open the store once (creating or migrating its schema) and bring the modules' stores to
 * their record versions, before the lanes and anything that uses them start. */
static int kr_main_upgrade_stores(const char *path)
{
    char err[512];
    kr_store *store;
    if (kr_store_open(path, &store, err, sizeof(err)) != 0) {
        KR_LOG(KR_LOG_ERROR, NULL, "cannot open the store: %s", err);
        return -1;
    }
    int rc = kr_modules_upgrade_stores(store);
    kr_store_close(store);
    return rc;
}

/* The address table starts with the user domains; modules add their services. */
static int kr_main_hosts(kr_server *srv)
{
    srv->hosts = kr_hosts_new();
    for (size_t i = 0; i < srv->cfg->domain_count; i++)
        if (!kr_hosts_add(srv->hosts, srv->cfg->domains[i], KR_HOST_USER, kr_router_deliver_user,
                          NULL, NULL))
            return -1; /* the configuration refuses duplicates: cannot happen */
    return 0;
}

static uv_signal_t kr_sig_term, kr_sig_int;

static void kr_main_on_signal(uv_signal_t *h, int signum)
{
    KR_LOG(KR_LOG_INFO, NULL, "received %s, shutting down", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    uv_close((uv_handle_t *)&kr_sig_term, NULL);
    uv_close((uv_handle_t *)&kr_sig_int, NULL);
}

static int kr_main_run(kr_server *srv)
{
    char err[512];
    if (kr_main_mkdir(srv->cfg->data_dir) != 0)
        return KR_EXIT_START;
    char *cert = kr_config_data_path(srv->cfg, srv->cfg->tls.certificate);
    char *key = kr_config_data_path(srv->cfg, srv->cfg->tls.key);
    srv->tls = kr_tls_ctx_new_server(cert, key, err, sizeof(err));
    free(cert);
    free(key);
    if (!srv->tls) {
        KR_LOG(KR_LOG_ERROR, NULL, "%s", err);
        return KR_EXIT_START;
    }
    char *db = kr_config_data_path(srv->cfg, srv->cfg->storage.sqlite_path);
    if (kr_main_upgrade_stores(db) != 0) {
        free(db);
        return KR_EXIT_START;
    }
    srv->storage = kr_storage_start(srv->cfg->storage.threads, kr_main_open_store, db, err,
                                    sizeof(err));
    free(db);
    if (!srv->storage) {
        KR_LOG(KR_LOG_ERROR, NULL, "cannot open the store: %s", err);
        return KR_EXIT_START;
    }
    if (kr_main_hosts(srv) != 0)
        return KR_EXIT_START;
    srv->sessions = kr_sessions_new();
    RAND_bytes(srv->secret, sizeof(srv->secret));
    atomic_init(&srv->next_conn_id, 1);
    if (kr_modules_start(srv) != 0)
        return KR_EXIT_START;
    if (kr_component_start(srv) != 0)
        return KR_EXIT_START;
    if (kr_s2s_start(srv) != 0)
        return KR_EXIT_START;
    if (kr_main_start_workers(srv) != 0) {
        kr_main_abort_workers(srv);
        return KR_EXIT_START;
    }
    KR_LOG(KR_LOG_INFO, NULL, "kurierd %s serving %s with %u workers", "0.1.0",
           srv->cfg->domains[0], srv->worker_count);

    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_signal_init(&loop, &kr_sig_term);
    uv_signal_init(&loop, &kr_sig_int);
    uv_signal_start(&kr_sig_term, kr_main_on_signal, SIGTERM);
    uv_signal_start(&kr_sig_int, kr_main_on_signal, SIGINT);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);

    for (unsigned i = 0; i < srv->worker_count; i++)
        kr_worker_stop(&srv->workers[i]);
    for (unsigned i = 0; i < srv->worker_count; i++)
        kr_worker_join(&srv->workers[i]);
    /* Sessions that closed during shutdown may still have storage jobs out, and their
     * completions may submit more: let both sides run dry before the store closes. */
    size_t ran;
    do {
        kr_storage_wait_idle(srv->storage);
        ran = 0;
        for (unsigned i = 0; i < srv->worker_count; i++)
            ran += kr_worker_drain(&srv->workers[i]);
    } while (ran > 0);
    kr_storage_stop(srv->storage);
    srv->storage = NULL;
    for (unsigned i = 0; i < srv->worker_count; i++)
        kr_worker_free(&srv->workers[i]);
    KR_LOG(KR_LOG_INFO, NULL, "stopped");
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    const char *config_path = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'h':
            kr_main_usage(stdout);
            return 0;
        case 'V':
            printf("kurierd 0.1.0\n");
            return 0;
        default:
            kr_main_usage(stderr);
            return KR_EXIT_USAGE;
        }
    }
    if (!config_path || optind != argc) {
        fprintf(stderr, "kurierd: %s\n", config_path ? "unexpected argument" : "missing -c CONFIG");
        kr_main_usage(stderr);
        return KR_EXIT_USAGE;
    }
    signal(SIGPIPE, SIG_IGN);
    kr_config cfg;
    char err[512];
    const kr_config_section *const *sections;
    size_t nsections = kr_modules_config_sections(&sections);
    if (kr_config_load_sections(config_path, sections, nsections, &cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "kurierd: %s\n", err);
        return KR_EXIT_CONFIG;
    }
    kr_log_set_level(cfg.log_level);
    kr_server srv;
    memset(&srv, 0, sizeof(srv));
    srv.cfg = &cfg;
    int rc = kr_main_run(&srv);
    kr_storage_stop(srv.storage);
    kr_modules_stop(&srv);
    kr_main_free_workers(&srv);
    kr_s2s_stop(&srv);
    kr_component_stop(&srv);
    kr_sessions_free(srv.sessions);
    kr_hosts_free(srv.hosts);
    kr_tls_ctx_free(srv.tls);
    kr_config_free(&cfg);
    return rc;
}
