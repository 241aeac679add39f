/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * The storage thread: the only thread that calls the store (DESIGN.md,
 * threads: nothing blocks a worker loop). Workers submit a job; it runs on
 * the storage thread with the store, and its completion runs back on the
 * submitting worker through kr_worker_post(). Jobs run in submission order.
 * The job owns `arg` until it hands it to the completion; a completion that
 * finds its connection gone must free `arg` itself.
 */
#ifndef KR_SERVER_STORAGE_THREAD_H
#define KR_SERVER_STORAGE_THREAD_H

#include "net/worker.h"
#include "store/store.h"

typedef struct kr_storage kr_storage;

/** Runs on the storage thread. */
typedef void (*kr_storage_job_fn)(kr_store *store, void *arg);

/** Start the thread; it takes ownership of store. */
kr_storage *kr_storage_start(kr_store *store);
/** Finish queued jobs, stop the thread, close the store. Completions still get posted. */
void kr_storage_stop(kr_storage *s);
/** Block until every queued job has run and posted its completion (shutdown). */
void kr_storage_wait_idle(kr_storage *s);
/** Queue job(store, arg) and then done(w, arg, u) on worker w. */
void kr_storage_submit(kr_storage *s, kr_storage_job_fn job, kr_worker *w, kr_worker_fn done,
                       void *arg, uint64_t u);

#endif
