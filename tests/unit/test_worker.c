/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Unit tests of the worker's cross-thread queue (src/net/worker.c): a posted item runs on the
 * worker, and an item a worker posts to itself runs only after that loop iteration's
 * end-of-iteration hook (where connections flush their output). mod_offline relies on the
 * second: it deletes a delivered batch from the store in such an item, so the batch must have
 * been written first, or a crash in between would lose it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "net/worker.h"

typedef struct probe {
    atomic_uint checks;    /* end-of-iteration hooks run so far */
    unsigned first_at;     /* checks seen by the first item */
    unsigned second_at;    /* checks seen by the item the first one posted */
    pthread_mutex_t lock;
    pthread_cond_t done;
    bool finished;
} probe;

static probe p;

static void on_check(kr_worker *w)
{
    (void)w;
    atomic_fetch_add(&p.checks, 1);
}

static void second(kr_worker *w, void *arg, uint64_t u)
{
    (void)w;
    (void)arg;
    (void)u;
    p.second_at = atomic_load(&p.checks);
    pthread_mutex_lock(&p.lock);
    p.finished = true;
    pthread_cond_signal(&p.done);
    pthread_mutex_unlock(&p.lock);
}

static void first(kr_worker *w, void *arg, uint64_t u)
{
    (void)arg;
    (void)u;
    assert_ptr_equal(kr_worker_current(), w);
    p.first_at = atomic_load(&p.checks);
    kr_worker_post(w, second, NULL, 0);
}

static void test_self_post_runs_after_the_iteration_hook(void **state)
{
    (void)state;
    static kr_worker w;
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.done, NULL);
    kr_worker_init(&w, 0);
    w.on_check = on_check;
    kr_worker_start(&w);
    kr_worker_post(&w, first, NULL, 0);
    pthread_mutex_lock(&p.lock);
    while (!p.finished)
        pthread_cond_wait(&p.done, &p.lock);
    pthread_mutex_unlock(&p.lock);
    kr_worker_stop(&w);
    kr_worker_join(&w);
    kr_worker_drain(&w);
    kr_worker_free(&w);
    assert_true(p.second_at > p.first_at);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_self_post_runs_after_the_iteration_hook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
