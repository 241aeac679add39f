/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Inside the storage subsystem: the kr_store handle and the driver table that
 * store.c dispatches through. store.c checks every argument the public API
 * documents (store names, NULL pointers, max > 0, no write inside a read
 * transaction, transaction state) before it calls a driver, so a driver only
 * maps its own failures to KR_E* codes and fills s->errmsg. A driver keeps its
 * connection state behind s->conn and reads s->txn to know whether the caller
 * holds an explicit transaction: then it must neither begin nor end one.
 * To add a driver, write one kr_store_driver (every member is required) and
 * let kr_store_open pick it.
 */
#ifndef KR_STORE_INTERNAL_H
#define KR_STORE_INTERNAL_H

#include "store/store.h"

typedef enum kr__store_txn {
    KR__STORE_TXN_NONE,
    KR__STORE_TXN_READ,  /* kr_store_begin_read: one snapshot, no writes */
    KR__STORE_TXN_WRITE, /* kr_store_begin: holds the write lock */
} kr__store_txn;

struct kr_store {
    const struct kr_store_driver *driver;
    void *conn;        /* the driver's connection state */
    kr__store_txn txn; /* the caller's explicit transaction, set by store.c only */
    char errmsg[256];  /* what the last failure was */
};

typedef struct kr_store_driver {
    const char *name;
    /** Connect to path, creating and migrating the schema; sets s->conn. On failure err gets
     * one sentence and s->conn is left NULL or freed. */
    int (*open)(kr_store *s, const char *path, char *err, size_t errlen);
    /** Free s->conn (an open transaction is rolled back). */
    void (*close)(kr_store *s);

    int (*account_create)(kr_store *s, const char *jid, const kr_account *acct);
    int (*account_update)(kr_store *s, const char *jid, const kr_account *acct);
    int (*account_delete)(kr_store *s, const char *jid);
    int (*account_get)(kr_store *s, const char *jid, kr_account *out);
    int (*account_list)(kr_store *s, kr_store_account_list_cb cb, void *ud);

    /** Open the caller's transaction (write: holding the write lock until it ends). */
    int (*begin)(kr_store *s, bool write);
    /** End it; a failed commit leaves nothing written and no transaction open. */
    int (*commit)(kr_store *s);
    int (*rollback)(kr_store *s);

    int (*map_get)(kr_store *s, const char *store, const char *user, const char *key, char **value,
                   size_t *len);
    int (*map_put)(kr_store *s, const char *store, const char *user, const char *key,
                   const void *value, size_t len);
    /** key NULL: every key of user in store. */
    int (*map_delete)(kr_store *s, const char *store, const char *user, const char *key);
    /** prefix is never NULL ("" for all). */
    int (*map_list)(kr_store *s, const char *store, const char *user, const char *prefix,
                    kr_store_map_cb cb, void *ud);
    int (*map_count)(kr_store *s, const char *store, const char *user, size_t *n);
    int (*map_size)(kr_store *s, const char *store, const char *user, const char *prefix,
                    size_t *bytes);

    int (*archive_append)(kr_store *s, const char *store, const char *user, int64_t stamp,
                          const char *with, const void *data, size_t len, size_t quota,
                          int64_t *id);
    int (*archive_query)(kr_store *s, const char *store, const char *user,
                         const kr_store_archive_filter *q, kr_store_archive_entry **entries,
                         size_t *n);
    int (*archive_delete_upto)(kr_store *s, const char *store, const char *user, int64_t max_id);
    int (*archive_count)(kr_store *s, const char *store, const char *user, size_t *n);

    /** KR_ENOENT when never recorded. */
    int (*version_get)(kr_store *s, const char *store, unsigned *version);
    int (*version_put)(kr_store *s, const char *store, unsigned version);
} kr_store_driver;

/** The SQLite driver (sqlite.c). */
extern const kr_store_driver kr__store_sqlite_driver;

/** Record why a call failed (kr_store_errmsg shows it). */
void kr__store_set_err(kr_store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
