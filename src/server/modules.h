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
 * To add a feature: write src/server/mod_<name>.c and add it to
 * kr_module_list in modules.c.
 */
#ifndef KR_SERVER_MODULES_H
#define KR_SERVER_MODULES_H

#include <stddef.h>

#include "core/buf.h"
#include "server/server.h"
#include "server/stanza.h"

typedef enum kr_verdict { KR_PASS = 0, KR_HANDLED = 1 } kr_verdict;

/** What a handler gets: the server, the worker it runs on, and the decoded stanza. */
typedef struct kr_handler_ctx {
    kr_server *srv;
    kr_worker *worker;
    kr_stanza *st;
} kr_handler_ctx;

typedef kr_verdict (*kr_handler_fn)(kr_handler_ctx *ctx);

typedef struct kr_handler_spec {
    unsigned kinds;      /* kr_stanza_kind bits */
    unsigned types;      /* kr_stanza_type bits */
    unsigned addressing; /* kr_addressing bits */
    const char *ns;      /* payload namespace, NULL = any (a catch-all) */
    const char *name;    /* payload element, NULL = any in ns */
    int priority;        /* higher runs first */
    kr_handler_fn fn;
} kr_handler_spec;

/** Stream features a module adds after authentication (appended inside <stream:features>). */
typedef void (*kr_stream_features_fn)(kr_server *srv, kr_buf *out);

typedef struct kr_module_def {
    const char *name;
    const kr_handler_spec *handlers;
    size_t handler_count;
    const char *const *disco_features; /* NULL-terminated, may be NULL */
    kr_stream_features_fn stream_features;
    int (*init)(kr_server *srv);
    void (*fini)(kr_server *srv);
} kr_module_def;

/** Compile the table from the built-in module list and run each init. 0 or an error. */
int kr_modules_start(kr_server *srv);
void kr_modules_stop(kr_server *srv);

/** Run the handlers matching st in priority order until one returns KR_HANDLED. */
kr_verdict kr_modules_dispatch(kr_server *srv, kr_worker *w, kr_stanza *st);
/** Append every module's post-authentication stream features. */
void kr_modules_stream_features(kr_server *srv, kr_buf *out);
/** Call fn for each disco feature of each module (for the disco module, later). */
void kr_modules_disco_features(kr_server *srv, void (*fn)(void *ud, const char *feature),
                               void *ud);

#endif
