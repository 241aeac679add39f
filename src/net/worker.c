/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Worker threads and their cross-thread queue (see worker.h).
 */
#include "net/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

static _Thread_local kr_worker *kr_worker_self;

kr_worker *kr_worker_current(void)
{
    return kr_worker_self;
}

void kr_worker_enter(kr_worker *w)
{
    kr_worker_self = w;
}

static void kr_worker_stop_cb(kr_worker *w, void *arg, uint64_t u)
{
    pthread_mutex_lock(&w->lock);
    w->stopping = true; /* from now on posts only queue (the async handle is closing) */
    pthread_mutex_unlock(&w->lock);
    if (w->on_stop)
        w->on_stop(w);
    uv_close((uv_handle_t *)&w->check, NULL);
    uv_close((uv_handle_t *)&w->prepare, NULL);
    uv_close((uv_handle_t *)&w->async, NULL);
}

/* Runs the items queued when it starts. Items posted meanwhile (by these items too) found
 * the queue empty and sent the async again, so they run in the next loop iteration, after
 * this iteration's end-of-iteration flush: a worker posting to itself can rely on its output
 * being written first (mod_offline deletes a delivered batch that way). */
static void kr_worker_async_cb(uv_async_t *h)
{
    kr_worker *w = h->data;
    pthread_mutex_lock(&w->lock);
    kr_worker_item *batch = w->queue;
    size_t n = w->queue_len;
    size_t cap = w->queue_cap;
    w->queue = w->spare;
    w->queue_cap = w->spare_cap;
    w->queue_len = 0;
    pthread_mutex_unlock(&w->lock);
    bool stop = false;
    for (size_t i = 0; i < n; i++) {
        if (batch[i].fn == kr_worker_stop_cb)
            stop = true;
        else
            batch[i].fn(w, batch[i].arg, batch[i].u);
    }
    w->spare = batch;
    w->spare_cap = cap;
    if (stop)
        kr_worker_stop_cb(w, NULL, 0);
}

static void kr_worker_check_cb(uv_check_t *h)
{
    kr_worker *w = h->data;
    if (w->on_check)
        w->on_check(w);
}

static void kr_worker_prepare_cb(uv_prepare_t *h)
{
    kr_worker *w = h->data;
    if (w->on_check)
        w->on_check(w);
}

void kr_worker_init(kr_worker *w, unsigned index)
{
    memset(w, 0, sizeof(*w));
    w->index = index;
    if (uv_loop_init(&w->loop) != 0) {
        fprintf(stderr, "kurierd: uv_loop_init failed\n");
        abort();
    }
    pthread_mutex_init(&w->lock, NULL);
    uv_async_init(&w->loop, &w->async, kr_worker_async_cb);
    w->async.data = w;
    uv_check_init(&w->loop, &w->check);
    w->check.data = w;
    uv_check_start(&w->check, kr_worker_check_cb);
    uv_prepare_init(&w->loop, &w->prepare);
    w->prepare.data = w;
    uv_prepare_start(&w->prepare, kr_worker_prepare_cb);
}

static void *kr_worker_main(void *arg)
{
    kr_worker *w = arg;
    kr_worker_self = w;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    return NULL;
}

void kr_worker_start(kr_worker *w)
{
    if (pthread_create(&w->thread, NULL, kr_worker_main, w) != 0) {
        fprintf(stderr, "kurierd: cannot start worker thread\n");
        abort();
    }
}

void kr_worker_post(kr_worker *w, kr_worker_fn fn, void *arg, uint64_t u)
{
    pthread_mutex_lock(&w->lock);
    if (w->queue_len == w->queue_cap) {
        w->queue_cap = w->queue_cap ? w->queue_cap * 2 : 64;
        w->queue = kr_xrealloc(w->queue, w->queue_cap * sizeof(*w->queue));
    }
    w->queue[w->queue_len++] = (kr_worker_item){fn, arg, u};
    bool first = w->queue_len == 1 && !w->stopping;
    pthread_mutex_unlock(&w->lock);
    if (first)
        uv_async_send(&w->async);
}

void kr_worker_stop(kr_worker *w)
{
    kr_worker_post(w, kr_worker_stop_cb, NULL, 0);
}

void kr_worker_join(kr_worker *w)
{
    pthread_join(w->thread, NULL);
}

size_t kr_worker_drain(kr_worker *w)
{
    size_t ran = 0;
    /* Index, not pointer: an item may post more items and move the array. */
    for (size_t i = 0; i < w->queue_len; i++) {
        kr_worker_item it = w->queue[i];
        if (it.fn != kr_worker_stop_cb) {
            it.fn(w, it.arg, it.u);
            ran++;
        }
    }
    w->queue_len = 0;
    return ran;
}

void kr_worker_free(kr_worker *w)
{
    /* Let close callbacks of handles closed late run, then release the loop. */
    uv_run(&w->loop, UV_RUN_NOWAIT);
    if (uv_loop_close(&w->loop) != 0)
        fprintf(stderr, "kurierd: worker %u loop closed with open handles\n", w->index);
    pthread_mutex_destroy(&w->lock);
    free(w->queue);
    free(w->spare);
}
