/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * The module registry (CONVENTIONS.md, modules). A server feature is one
 * mod_*.c exporting one `const kr_module_def kr_mod_<name>`: the stanzas it
 * handles (kind, type and addressing bit masks, payload namespace and element,
 * priority), the disco features and stream features it adds, and its
 * init/fini. At start the registry compiles every handler spec into one table
 * keyed by payload (namespace, element), so dispatch builds no strings.
 * Handlers run on the worker that received the stanza; they borrow the
 * stanza (the dispatcher frees its arena) and answer through the router.
 * Two phases, as in Prosody's pre-/post- events:
 *   KR_PHASE_OUT  a stanza from a local client session, before routing
 *                 (ctx->origin is that session): e.g. presence broadcast,
 *                 outbound subscriptions, blocking of outgoing stanzas;
 *   KR_PHASE_IN   a stanza arriving for one of our domains or accounts,
 *                 before the default delivery rules of RFC 6121 §8.5:
 *                 e.g. roster queries, inbound subscriptions, offline storage.
 * Sessions report their lifecycle to every module's session_event hook.
 * To add a feature: write src/server/mod_<name>.c and add it to
 * kr_module_list in modules.c.
 */
#ifndef KR_SERVER_MODULES_H
#define KR_SERVER_MODULES_H

#include <stddef.h>

#include "core/buf.h"
#include "server/server.h"
#include "server/session.h"
#include "server/stanza.h"

typedef enum kr_verdict { KR_PASS = 0, KR_HANDLED = 1 } kr_verdict;

typedef enum kr_phase {
    KR_PHASE_IN = 1 << 0,
    KR_PHASE_OUT = 1 << 1,
    KR_PHASE_PREAUTH = 1 << 2, /* an iq on a TLS stream before SASL (XEP-0077 registration):
                                * no 'from', 'to' = the stream's domain (KR_ADDR_HOST),
                                * origin->bare is NULL; reply with kr_session_send() */
} kr_phase;

/** What a handler gets: the server, the worker it runs on, the decoded stanza, and the local
 * session it came from (NULL for stanzas the server made, or from other servers later). */
typedef struct kr_handler_ctx {
    kr_server *srv;
    kr_worker *worker;
    kr_stanza *st;
    kr_session *origin;
    kr_phase phase;
} kr_handler_ctx;

typedef kr_verdict (*kr_handler_fn)(kr_handler_ctx *ctx);

typedef struct kr_handler_spec {
    unsigned phases;     /* kr_phase bits */
    unsigned kinds;      /* kr_stanza_kind bits */
    unsigned types;      /* kr_stanza_type bits */
    unsigned addressing; /* kr_addressing bits */
    const char *ns;      /* payload namespace, NULL = any (a catch-all) */
    const char *name;    /* payload element, NULL = any in ns */
    int priority;        /* higher runs first */
    kr_handler_fn fn;
} kr_handler_spec;

/** Stream features a module adds (appended inside <stream:features>), before SASL
 * (authenticated false: offered next to the mechanisms) or after it (next to bind). */
typedef void (*kr_stream_features_fn)(kr_server *srv, bool authenticated, kr_buf *out);

typedef struct kr_module_def {
    const char *name;
    const kr_handler_spec *handlers;
    size_t handler_count;
    const char *const *disco_features; /* NULL-terminated, may be NULL */
    kr_stream_features_fn stream_features;
    int (*init)(kr_server *srv);
    void (*fini)(kr_server *srv);
    /* Session lifecycle, on the session's worker. */
    void (*session_event)(kr_server *srv, kr_session *s, kr_session_event ev);
    /* Asked before the server fans out a stanza itself, bypassing the router (presence
     * broadcasts and probe answers): false vetoes delivery from `from` to `to` (any JID
     * forms). Runs on a worker: answer from memory, never block. */
    bool (*allow_delivery)(kr_server *srv, const char *from, const char *to);
} kr_module_def;

/** Compile the table from the built-in module list and run each init. 0 or an error. */
int kr_modules_start(kr_server *srv);
void kr_modules_stop(kr_server *srv);

/** Run the handlers of `phase` matching st in priority order until one returns KR_HANDLED. */
kr_verdict kr_modules_dispatch(kr_server *srv, kr_worker *w, kr_stanza *st, kr_session *origin,
                               kr_phase phase);
/** False when any module vetoes a fan-out delivery from `from` to `to` (see allow_delivery). */
bool kr_modules_allow_delivery(kr_server *srv, const char *from, const char *to);
/** Tell every module about a session event. */
void kr_modules_session_event(kr_server *srv, kr_session *s, kr_session_event ev);
/** Append every module's stream features for the stage the stream is in. */
void kr_modules_stream_features(kr_server *srv, bool authenticated, kr_buf *out);
/** Call fn for each disco feature of each module (for the disco module, later). */
void kr_modules_disco_features(kr_server *srv, void (*fn)(void *ud, const char *feature),
                               void *ud);

#endif
