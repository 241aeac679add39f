/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Worker threads (DESIGN.md, threads): each runs its own libuv loop, and a
 * connection lives its whole life on one worker, so connection state needs
 * no locks. Other threads reach a worker only through kr_worker_post(): a
 * mutex-protected batch queue drained by one uv_async per loop iteration, so
 * a burst of cross-thread deliveries costs one wake-up, not one per item.
 * Each worker also runs an end-of-iteration hook where connections flush the
 * output they gathered, one write per connection per iteration: after I/O
 * callbacks (uv_check) and before the loop blocks again (uv_prepare), which
 * catches output produced by timer callbacks, as those run before polling.
 */
#ifndef KR_NET_WORKER_H
#define KR_NET_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct kr_worker kr_worker;

/** A posted call: runs on the target worker's thread. */
typedef void (*kr_worker_fn)(kr_worker *w, void *arg, uint64_t u);

typedef struct kr_worker_item {
    kr_worker_fn fn;
    void *arg;
    uint64_t u;
} kr_worker_item;

struct kr_worker {
    unsigned index;
    uv_loop_t loop;
    pthread_t thread;
    uv_async_t async;
    uv_check_t check;
    uv_prepare_t prepare;
    pthread_mutex_t lock;
    kr_worker_item *queue; /* guarded by lock */
    size_t queue_len, queue_cap;
    kr_worker_item *spare; /* drained batch buffer, owned by the worker thread */
    size_t spare_cap;
    bool stopping; /* guarded by lock */
    void (*on_check)(kr_worker *w); /* end-of-iteration hook */
    void (*on_stop)(kr_worker *w);  /* runs on the worker when asked to stop: close handles */
    void *data; /* the server's per-worker state */
};

/** Initialise (loop, async, check); does not start the thread. */
void kr_worker_init(kr_worker *w, unsigned index);
/** Start the thread running the loop until kr_worker_stop() and all handles close. */
void kr_worker_start(kr_worker *w);
/** Run fn(w, arg, u) on w's thread. Thread-safe; never blocks on w's work. */
void kr_worker_post(kr_worker *w, kr_worker_fn fn, void *arg, uint64_t u);
/** Ask the worker to stop: on_stop runs on its thread, then the loop ends when idle. */
void kr_worker_stop(kr_worker *w);
/** Wait for the thread to end (after kr_worker_stop()). */
void kr_worker_join(kr_worker *w);
/** After kr_worker_join(): run the items still queued, on the calling thread, so they can
 * release what they hold (they find no connections). Returns how many ran; items they post
 * run too. */
size_t kr_worker_drain(kr_worker *w);
/** After the last kr_worker_drain(): release the loop and the queue. */
void kr_worker_free(kr_worker *w);
/** The worker running on this thread, or NULL. */
kr_worker *kr_worker_current(void);
/** Make w the worker of the calling thread, which will run w's loop itself (unit tests that
 * drive a worker with uv_run instead of kr_worker_start). */
void kr_worker_enter(kr_worker *w);

#endif
