/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Storage lanes (see storage_thread.h): per lane a thread, a store
 * connection, a mutex, a condition variable and a FIFO of jobs; a shared
 * count of pending jobs for kr_storage_wait_idle.
 */
#include "server/storage_thread.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "core/hmap.h"

typedef struct kr_storage_job {
    struct kr_storage_job *next;
    kr_storage_job_fn job;
    kr_worker *worker;
    kr_worker_fn done;
    void *arg;
    uint64_t u;
} kr_storage_job;

typedef struct kr_storage_lane {
    struct kr_storage *owner;
    kr_store *store;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    kr_storage_job *head, *tail;
    bool stopping;
} kr_storage_lane;

struct kr_storage {
    unsigned count;
    kr_storage_lane *lanes;
    pthread_mutex_t idle_lock;
    pthread_cond_t idle;
    size_t pending; /* queued or running, all lanes */
};

static void kr_storage_job_finished(kr_storage *s)
{
    pthread_mutex_lock(&s->idle_lock);
    if (--s->pending == 0)
        pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->idle_lock);
}

static void *kr_storage_main(void *arg)
{
    kr_storage_lane *l = arg;
    for (;;) {
        pthread_mutex_lock(&l->lock);
        while (!l->head && !l->stopping)
            pthread_cond_wait(&l->cond, &l->lock);
        kr_storage_job *j = l->head;
        if (j) {
            l->head = j->next;
            if (!l->head)
                l->tail = NULL;
        }
        pthread_mutex_unlock(&l->lock);
        if (!j)
            return NULL; /* stopping and drained */
        j->job(l->store, j->arg);
        kr_worker_post(j->worker, j->done, j->arg, j->u);
        free(j);
        kr_storage_job_finished(l->owner);
    }
}

static void kr_storage_free(kr_storage *s)
{
    for (unsigned i = 0; i < s->count; i++) {
        kr_storage_lane *l = &s->lanes[i];
        if (l->started) {
            pthread_mutex_lock(&l->lock);
            l->stopping = true;
            pthread_cond_signal(&l->cond);
            pthread_mutex_unlock(&l->lock);
            pthread_join(l->thread, NULL);
        }
        kr_store_close(l->store);
        pthread_cond_destroy(&l->cond);
        pthread_mutex_destroy(&l->lock);
    }
    pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->idle_lock);
    free(s->lanes);
    free(s);
}

kr_storage *kr_storage_start(unsigned lanes,
                             int (*open_store)(void *ud, kr_store **out, char *err,
                                               size_t errlen),
                             void *ud, char *err, size_t errlen)
{
    kr_storage *s = kr_xcalloc(1, sizeof(*s));
    s->count = lanes ? lanes : 1;
    s->lanes = kr_xcalloc(s->count, sizeof(*s->lanes));
    pthread_mutex_init(&s->idle_lock, NULL);
    pthread_cond_init(&s->idle, NULL);
    for (unsigned i = 0; i < s->count; i++) {
        kr_storage_lane *l = &s->lanes[i];
        l->owner = s;
        pthread_mutex_init(&l->lock, NULL);
        pthread_cond_init(&l->cond, NULL);
    }
    for (unsigned i = 0; i < s->count; i++) {
        if (open_store(ud, &s->lanes[i].store, err, errlen) != 0) {
            kr_storage_free(s);
            return NULL;
        }
    }
    for (unsigned i = 0; i < s->count; i++) {
        if (pthread_create(&s->lanes[i].thread, NULL, kr_storage_main, &s->lanes[i]) != 0)
            abort();
        s->lanes[i].started = true;
    }
    return s;
}

void kr_storage_stop(kr_storage *s)
{
    if (s)
        kr_storage_free(s);
}

void kr_storage_wait_idle(kr_storage *s)
{
    pthread_mutex_lock(&s->idle_lock);
    while (s->pending > 0)
        pthread_cond_wait(&s->idle, &s->idle_lock);
    pthread_mutex_unlock(&s->idle_lock);
}

unsigned kr_storage_lanes(const kr_storage *s)
{
    return s->count;
}

void kr_storage_submit(kr_storage *s, const char *key, kr_storage_job_fn job, kr_worker *w,
                       kr_worker_fn done, void *arg, uint64_t u)
{
    kr_storage_lane *l = &s->lanes[key ? kr_hash_str(key) % s->count : 0];
    kr_storage_job *j = kr_xmalloc(sizeof(*j));
    *j = (kr_storage_job){NULL, job, w, done, arg, u};
    pthread_mutex_lock(&s->idle_lock);
    s->pending++;
    pthread_mutex_unlock(&s->idle_lock);
    pthread_mutex_lock(&l->lock);
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
    pthread_cond_signal(&l->cond);
    pthread_mutex_unlock(&l->lock);
}
