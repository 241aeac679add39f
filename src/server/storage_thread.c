/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Storage job queue and thread (see storage_thread.h): a mutex, a condition
 * variable and a FIFO of jobs.
 */
#include "server/storage_thread.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "core/alloc.h"

typedef struct kr_storage_job {
    struct kr_storage_job *next;
    kr_storage_job_fn job;
    kr_worker *worker;
    kr_worker_fn done;
    void *arg;
    uint64_t u;
} kr_storage_job;

struct kr_storage {
    kr_store *store;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    kr_storage_job *head, *tail;
    size_t pending; /* queued or running */
    pthread_cond_t idle;
    bool stopping;
};

static void *kr_storage_main(void *arg)
{
    kr_storage *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        while (!s->head && !s->stopping)
            pthread_cond_wait(&s->cond, &s->lock);
        kr_storage_job *j = s->head;
        if (j) {
            s->head = j->next;
            if (!s->head)
                s->tail = NULL;
        }
        pthread_mutex_unlock(&s->lock);
        if (!j)
            return NULL; /* stopping and drained */
        j->job(s->store, j->arg);
        kr_worker_post(j->worker, j->done, j->arg, j->u);
        free(j);
        pthread_mutex_lock(&s->lock);
        if (--s->pending == 0)
            pthread_cond_broadcast(&s->idle);
        pthread_mutex_unlock(&s->lock);
    }
}

kr_storage *kr_storage_start(kr_store *store)
{
    kr_storage *s = kr_xcalloc(1, sizeof(*s));
    s->store = store;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    pthread_cond_init(&s->idle, NULL);
    if (pthread_create(&s->thread, NULL, kr_storage_main, s) != 0)
        abort();
    return s;
}

void kr_storage_stop(kr_storage *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    kr_store_close(s->store);
    pthread_cond_destroy(&s->cond);
    pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

void kr_storage_wait_idle(kr_storage *s)
{
    pthread_mutex_lock(&s->lock);
    while (s->pending > 0)
        pthread_cond_wait(&s->idle, &s->lock);
    pthread_mutex_unlock(&s->lock);
}

void kr_storage_submit(kr_storage *s, kr_storage_job_fn job, kr_worker *w, kr_worker_fn done,
                       void *arg, uint64_t u)
{
    kr_storage_job *j = kr_xmalloc(sizeof(*j));
    *j = (kr_storage_job){NULL, job, w, done, arg, u};
    pthread_mutex_lock(&s->lock);
    if (s->tail)
        s->tail->next = j;
    else
        s->head = j;
    s->tail = j;
    s->pending++;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}
