/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * The module registry and the events modules handle (CONVENTIONS.md,
 * modules; docs/architecture.md). A server feature is one mod_<name>.c that
 * exports one `const kr_module_def kr_mod_<name>` and is listed once in
 * modules.c. The descriptor says everything the core needs: which stanzas
 * the module handles and at what priority, its filters of stanzas going out
 * to sessions, the disco features and stream features it adds, the service
 * domains it owns, whether it keeps per-session state or a flag in the
 * session directory, and its init/fini and session hooks. The core calls a
 * module only through its descriptor.
 *
 * Events. Each stanza is matched once per phase against every handler spec
 * by kind, type (bit masks), addressing (host / bare / full / self / remote,
 * relative to the host the 'to' names), the kind of that host (user domain,
 * a service, a component) and the namespace (and optionally the name) of ANY
 * child element of the stanza, or of none (catch-all). The matching specs
 * run in descending priority until one returns KR_HANDLED. Phases, as
 * Prosody's pre-/post- events:
 *   KR_PHASE_OUT      a stanza from a local session (ctx->origin), before it
 *                     is routed anywhere: presence broadcast, outbound
 *                     subscriptions, blocking of outgoing stanzas;
 *   KR_PHASE_IN       a stanza arriving at one of our hosts, before the
 *                     host kind's default delivery (RFC 6121 §8.5 for user
 *                     domains): roster queries, inbound subscriptions,
 *                     offline storage, a service's protocol;
 *   KR_PHASE_PREAUTH  an iq on a TLS stream before SASL (XEP-0077): no
 *                     'from', 'to' = the stream's domain (KR_ADDR_HOST),
 *                     origin->bare NULL.
 * A service host's stanzas reach only the handlers of the module that owns
 * it, and the handlers of other modules that name KR_HOST_ANY_SERVICE.
 *
 * Handlers that wait. A handler may return KR_WAIT after kr_handler_wait():
 * the core keeps a reference to the stanza (no copy), runs the job on the
 * storage lane of the account it names (or on the CPU pool), and calls the
 * resume function back on the same worker with the same stanza, where the
 * handler answers and returns KR_HANDLED, or KR_PASS to let the next
 * handlers and the default delivery continue, or waits again. ctx->origin is
 * looked up again: NULL, with ctx->origin_gone set, when the session that
 * sent the stanza ended meanwhile. While a stanza from a stream waits, that
 * stream's later stanzas wait behind it (intake.h), so each stream's
 * stanzas are processed in order.
 *
 * Outgoing filters see every stanza delivered to a local session (fan-out
 * included) on the session's worker, just before its transport gets it.
 *
 * To add a feature: write src/server/mod_<name>.c with its descriptor and add
 * one line to kr_module_list in modules.c.
 */
#ifndef KR_SERVER_MODULES_H
#define KR_SERVER_MODULES_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "server/hosts.h"
#include "server/server.h"
#include "server/session.h"
#include "server/stanza.h"
#include "store/store.h"

typedef enum kr_verdict {
    KR_PASS = 0,    /* not mine, or let the others run too */
    KR_HANDLED = 1, /* done: nothing else runs, the default delivery does not happen */
    KR_WAIT = 2,    /* returned after kr_handler_wait(): the resume function decides */
} kr_verdict;

typedef enum kr_phase {
    KR_PHASE_IN = 1 << 0,
    KR_PHASE_OUT = 1 << 1,
    KR_PHASE_PREAUTH = 1 << 2,
} kr_phase;

/** Host kinds of handler specs: the kr_host_kind bits, plus every service host. */
#define KR_HOST_ANY_SERVICE (1u << 8)
/** Specs that leave `hosts` 0 match stanzas to user domains and to other domains. */
#define KR_HOSTS_DEFAULT (KR_HOST_USER)

/** What a handler gets. Valid only during the call: do not keep the pointer. */
typedef struct kr_handler_ctx {
    kr_server *srv;
    kr_worker *worker;
    kr_stanza *st;
    kr_session *origin;   /* the local session that sent it, or NULL */
    bool origin_gone;     /* it had an origin session that ended while the stanza waited */
    bool cancelled;       /* the server is stopping: release and return KR_HANDLED */
    kr_phase phase;
    kr_xml_node *child;   /* the child element whose namespace matched, or NULL */
} kr_handler_ctx;

typedef kr_verdict (*kr_handler_fn)(kr_handler_ctx *ctx);

typedef struct kr_handler_spec {
    unsigned phases;     /* kr_phase bits */
    unsigned kinds;      /* kr_stanza_kind bits */
    unsigned types;      /* kr_stanza_type bits */
    unsigned addressing; /* kr_addressing bits */
    const char *ns;      /* namespace of a child element, NULL = catch-all */
    const char *name;    /* that child's name, NULL = any in ns */
    int priority;        /* higher runs first */
    kr_handler_fn fn;
    unsigned hosts;      /* kr_host_kind bits and KR_HOST_ANY_SERVICE; 0 = KR_HOSTS_DEFAULT.
                          * Remote destinations (KR_ADDR_REMOTE) match by addressing alone. */
} kr_handler_spec;

/* ---- waiting ------------------------------------------------------------------------------ */

/** Runs on a storage lane with the store (or on the CPU pool with store NULL). */
typedef void (*kr_wait_job_fn)(kr_store *store, void *arg);
/** Runs back on the handler's worker; returns what the handler would have. */
typedef kr_verdict (*kr_resume_fn)(kr_handler_ctx *ctx, void *arg);

typedef struct kr_wait_ops {
    kr_wait_job_fn job;
    kr_resume_fn resume;
    /* Frees arg once resume has returned (not when resume waits again with the same arg), or
     * instead of resume when the server stops first. NULL: arg needs no freeing. */
    void (*release)(void *arg);
} kr_wait_ops;

/**
 * From a handler (or a resume function): run ops->job(store, arg) on the storage lane of
 * `account` (a bare JID or any key: work for one key runs in submission order, different
 * keys do not wait for each other), or on the CPU pool when account is NULL (hashing, no
 * store), then ops->resume(ctx, arg) on this worker. Return its value (KR_WAIT).
 */
kr_verdict kr_handler_wait(kr_handler_ctx *ctx, const char *account, const kr_wait_ops *ops,
                           void *arg);

/* ---- outgoing filters --------------------------------------------------------------------- */

/** A stanza on its way to one local session, on that session's worker. */
typedef struct kr_outgoing {
    kr_server *srv;
    kr_worker *worker;
    kr_session *session;
    kr_rbuf *bytes;        /* serialized; a filter may replace it (unref the old one) */
    kr_stanza_kind kind;   /* from bytes->meta (kr_stanza_meta) */
    kr_stanza_type type;
} kr_outgoing;

/** KR_PASS: deliver it (to the next filter); KR_HANDLED: not delivered (the filter dropped
 * it, or kept a reference to deliver it later through kr_session_deliver). */
typedef kr_verdict (*kr_filter_fn)(kr_outgoing *o);

typedef struct kr_filter_spec {
    unsigned kinds; /* kr_stanza_kind bits */
    int priority;   /* higher runs first */
    kr_filter_fn fn;
} kr_filter_spec;

/* ---- services and disco ------------------------------------------------------------------- */

/** The disco identity (XEP-0030 §3.1) of a service host. */
typedef struct kr_disco_identity {
    const char *category;
    const char *type;
    const char *name;
} kr_disco_identity;

/** A module that serves its own domains (hosts.h, KR_HOST_SERVICE). */
typedef struct kr_service_def {
    /* The prepared domains to serve, from the module's configuration: called once at start;
     * returns how many and points *out at them (the module's memory). */
    size_t (*domains)(kr_server *srv, char *const **out);
    kr_disco_identity identity;
    const char *const *features; /* disco features of the service host, NULL-terminated */
} kr_service_def;

/** Stream features a module adds (appended inside <stream:features>), before SASL
 * (authenticated false: offered next to the mechanisms) or after it (next to bind). */
typedef void (*kr_stream_features_fn)(kr_server *srv, bool authenticated, kr_buf *out);

/** A generic store a module owns (store.h): its name, what it is, and the version of the
 * records the module writes in it. When a module changes its record format it raises the
 * version and gives upgrade, which the core runs once at start on a store written by an
 * older version (from = that version), before anything else touches it. */
typedef enum kr_store_kind { KR_STORE_MAP, KR_STORE_ARCHIVE } kr_store_kind;
typedef struct kr_store_decl {
    const char *name; /* [a-z0-9_]{1,32}, unique among all modules */
    kr_store_kind kind;
    unsigned version; /* 1 for a module's first record format */
    int (*upgrade)(kr_store *store, const char *name, unsigned from);
} kr_store_decl;

typedef struct kr_module_def {
    const char *name;
    /* The module's configuration section (core/config.h): its keys under one top-level name,
     * documented in examples/kurierd.yml and docs/configuration.md; read it with
     * kr_config_section_get(srv->cfg, config). NULL: no options. */
    const kr_config_section *config;
    /* The generic stores it keeps its data in. An account's data in them goes with the
     * account (the store deletes it in the same transaction); user_delete is for anything
     * else the module keeps for the account. */
    const kr_store_decl *stores;
    size_t store_count;
    const kr_handler_spec *handlers;
    size_t handler_count;
    const kr_filter_spec *filters;
    size_t filter_count;
    const char *const *disco_features; /* of the server (user domains), NULL-terminated */
    kr_stream_features_fn stream_features;
    const kr_service_def *service;     /* NULL: no domains of its own */
    /* Per-session state: the core stores the index of this module's slot here at start;
     * kr_session_slot(s, *slot) is then the module's pointer in every session. */
    unsigned *session_slot;
    /* A flag in the session directory, visible from every worker (kr_session_ref.flags):
     * the core stores its bit here at start. */
    unsigned *session_flag;
    /* Shared state per online account in the session directory (kr_sessions_state_get):
     * the core stores the slot's index here at start. */
    unsigned *account_slot;
    int (*init)(kr_server *srv);
    void (*fini)(kr_server *srv);
    /* Session lifecycle, on the session's worker. */
    void (*session_event)(kr_server *srv, kr_session *s, kr_session_event ev);
    /* The account `jid` was deleted (kurierd or kurierctl, on a storage lane or its own
     * thread): drop what the module keeps outside its stores. NULL: nothing. */
    void (*user_delete)(const kr_config *cfg, const char *jid);
} kr_module_def;

/** Compile the tables from the built-in module list, add service hosts, run each init. The
 * configuration must have been loaded with kr_modules_config_sections(). 0 or -1 (logged). */
int kr_modules_start(kr_server *srv);
/** The same with another module list (unit tests). */
int kr_modules_start_list(kr_server *srv, const kr_module_def *const *list, size_t n);
/** The configuration sections of the built-in modules, for kr_config_load_sections (kurierd,
 * kurierctl, tests): returns how many; *out points at static storage. */
size_t kr_modules_config_sections(const kr_config_section *const **out);
/** Bring the built-in modules' stores to their record versions (start-up, before the storage
 * lanes run, on a connection of its own). 0 or a store error (logged). */
int kr_modules_upgrade_stores(kr_store *store);
/** Tell every built-in module that an account was deleted (after the store deleted it). */
void kr_modules_user_deleted(const kr_config *cfg, const char *jid);
void kr_modules_stop(kr_server *srv);

/** Number of per-session slots modules asked for (session.c sizes sessions with it). */
unsigned kr_modules_slot_count(const kr_server *srv);

/* For the router (router.c): the matching specs of a stanza in one phase, by descending
 * priority, into out (at most max); returns how many. */
typedef struct kr_match {
    const kr_handler_spec *spec;
    kr_xml_node *child;
} kr_match;
size_t kr_modules_match(kr_server *srv, const kr_stanza *st, kr_phase phase, kr_match *out,
                        size_t max);
/** Run the outgoing filters for o->kind; KR_PASS when it may be delivered. */
kr_verdict kr_modules_filter(kr_server *srv, kr_outgoing *o);
/** Tell every module about a session event. */
void kr_modules_session_event(kr_server *srv, kr_session *s, kr_session_event ev);
/** Append every module's stream features for the stage the stream is in. */
void kr_modules_stream_features(kr_server *srv, bool authenticated, kr_buf *out);
/** Call fn for each disco feature of each module (the server's disco#info). */
void kr_modules_disco_features(kr_server *srv, void (*fn)(void *ud, const char *feature),
                               void *ud);

#endif
