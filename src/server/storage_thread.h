/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * The storage lanes: the only threads that call the store (DESIGN.md,
 * threads: nothing blocks a worker loop). There are storage.threads lanes,
 * each a thread with its own store connection and a FIFO of jobs. A job names
 * a key (the bare JID of the account it works on): jobs with the same key run
 * on the same lane in submission order, so work for one account stays in
 * order, and different accounts spread over the lanes and do not wait for
 * each other. A job runs on its lane with that lane's store; its completion
 * runs back on the submitting worker through kr_worker_post(). Work that
 * needs no store (PBKDF2) does not belong here: it goes to the CPU pool
 * (kr_handler_wait with no account, or uv_queue_work), so hashing never holds
 * up an account look-up.
 * The job owns `arg` until it hands it to the completion; a completion that
 * finds its session gone must free `arg` itself.
 */
#ifndef KR_SERVER_STORAGE_THREAD_H
#define KR_SERVER_STORAGE_THREAD_H

#include "net/worker.h"
#include "store/store.h"

typedef struct kr_storage kr_storage;

/** Runs on a storage lane. */
typedef void (*kr_storage_job_fn)(kr_store *store, void *arg);

/** Open one store connection per lane with open_store (called lanes times on this thread;
 * the first creates or migrates the schema) and start the lanes. NULL when a connection
 * cannot be opened (err says why); nothing is left running then. */
kr_storage *kr_storage_start(unsigned lanes,
                             int (*open_store)(void *ud, kr_store **out, char *err,
                                               size_t errlen),
                             void *ud, char *err, size_t errlen);
/** Finish queued jobs, stop the lanes, close the stores. Completions still get posted. */
void kr_storage_stop(kr_storage *s);
/** Block until every queued job has run and posted its completion (shutdown). */
void kr_storage_wait_idle(kr_storage *s);
/** Queue job(store, arg) on key's lane (NULL: lane 0), then done(w, arg, u) on worker w. */
void kr_storage_submit(kr_storage *s, const char *key, kr_storage_job_fn job, kr_worker *w,
                       kr_worker_fn done, void *arg, uint64_t u);
/** Number of lanes. */
unsigned kr_storage_lanes(const kr_storage *s);

#endif
