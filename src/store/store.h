/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Storage interface: the one header modules and tools include. It knows accounts
 * and a few generic stores, not server features: each feature module owns its data
 * by declaring store names and keeping its values in them (as records,
 * core/record.h, where a value has fields). A map store holds (store, user, key) ->
 * bytes, an archive store an append-only sequence of entries per (store, user).
 * A kr_store dispatches through a driver table (store/internal.h) so a PostgreSQL
 * driver can be added without touching modules; kr_store_open opens SQLite today.
 * Accounts keep SCRAM credentials only (salt, iterations, StoredKey, ServerKey for
 * SHA-1 and SHA-256), never a password (DESIGN.md, storage).
 * Every row of a generic store belongs to an existing account (user): a write for a
 * missing account fails with KR_ENOENT, and deleting an account deletes all its rows
 * of every store in the same transaction.
 * These calls block: kurierd runs them only on its storage threads
 * (server/storage_thread.c), kurierctl calls them directly. A kr_store is used by one
 * thread at a time; several kr_store connections to one file may be used at once from
 * different threads, one connection per thread (WAL mode: readers do not wait for the
 * writer; writers take turns).
 * Contention with another connection is waited out for the busy timeout (5 s;
 * the environment variable KURIER_STORE_BUSY_MS, read at open, overrides it
 * with 0..600000 ms, for tests) and then reported as KR_ELOCKED.
 * The store knows no server feature: each module declares the generic stores it owns
 * (kr_module_def.stores) and encodes its own values (core/record.h).
 */
#ifndef KR_STORE_STORE_H
#define KR_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sasl/scram.h"

typedef struct kr_store kr_store;

typedef struct kr_account {
    kr_scram_creds sha1;
    kr_scram_creds sha256;
} kr_account;

/** Open (creating and migrating the schema when needed) the SQLite file at path.
 * A missing file is created with mode 0600; its directory must exist.
 * Returns 0, KR_ELOCKED when another process holds it locked past the busy timeout,
 * or KR_ESTORE (err gets one sentence). */
int kr_store_open(const char *path, kr_store **out, char *err, size_t errlen);
/** Close the connection; an open transaction is rolled back. */
void kr_store_close(kr_store *s);
/** What the last failed call on s was (the driver's message); "" before any failure.
 * Borrowed, valid until the next call on s. */
const char *kr_store_errmsg(const kr_store *s);

/** jid: prepared bare JID "local@domain". 0, KR_EEXIST, KR_ELOCKED or KR_ESTORE.
 * Writes (create, update, delete) are durable when they return 0. Create and update
 * return KR_EINVAL for malformed credentials (wrong hash, no salt, zero iterations). */
int kr_store_account_create(kr_store *s, const char *jid, const kr_account *acct);
/** Replace the credentials. 0, KR_ENOENT, KR_ELOCKED or KR_ESTORE. */
int kr_store_account_update(kr_store *s, const char *jid, const kr_account *acct);
/** Delete the account and every row it owns in every map and archive store in one
 * transaction. 0, KR_ENOENT, KR_ELOCKED, KR_ESTORE. */
int kr_store_account_delete(kr_store *s, const char *jid);
/** 0 (out filled), KR_ENOENT, KR_ELOCKED or KR_ESTORE. */
int kr_store_account_get(kr_store *s, const char *jid, kr_account *out);

typedef void (*kr_store_account_list_cb)(void *ud, const char *jid);
/** Calls cb for each account in JID order. 0, KR_ELOCKED or KR_ESTORE. */
int kr_store_account_list(kr_store *s, kr_store_account_list_cb cb, void *ud);

/** Build both credential sets from a prepared password (PBKDF2: expensive). */
void kr_account_from_password(kr_account *out, const char *password, size_t len,
                              unsigned iterations);

/* ---- generic stores ------------------------------------------------------------------------
 * Common to every call below: 0 or a negative code. `store` is a name the module declares,
 * 1..32 characters of a-z 0-9 _ (anything else, or a NULL argument the call needs:
 * KR_EINVAL). `user` is the prepared bare JID of an existing account; a write for a missing
 * account fails with KR_ENOENT. KR_ELOCKED after the busy timeout, KR_ESTORE for any other
 * failure of the database (kr_store_errmsg says which). Outside a transaction each write is
 * its own transaction, durable on disk when it returns 0. */

/** Open a write transaction: the write lock is taken now (so checks made inside still hold
 * at commit) and held until commit or rollback. Generic calls inside it neither begin nor
 * commit on their own; nothing is durable before kr_store_commit returns 0. A failed call
 * inside leaves the transaction open: the caller decides to roll back (usual) or go on.
 * KR_EINVAL when a transaction is already open (they do not nest), KR_ELOCKED, KR_ESTORE. */
int kr_store_begin(kr_store *s);
/** Open a read transaction: the calls inside see one snapshot of the store (a version
 * counter and the items it counts agree) without taking the write lock; writes inside it
 * fail with KR_EINVAL. End it with kr_store_commit or kr_store_rollback. */
int kr_store_begin_read(kr_store *s);
/** Make the open transaction's writes durable. Whatever it returns, no transaction is open
 * afterwards; on failure nothing of it was written. KR_EINVAL when none is open. */
int kr_store_commit(kr_store *s);
/** Drop the open transaction's writes. KR_EINVAL when none is open. */
int kr_store_rollback(kr_store *s);

/* Map stores: (store, user, key) -> value bytes. key is a C string compared as bytes; a
 * "keyval" store (one value per user) uses the key "". */

/** 0 with *value malloc'd (caller frees) and NUL-terminated after its *len bytes (len may be
 * NULL), or KR_ENOENT (*value NULL) when the key is absent. */
int kr_store_map_get(kr_store *s, const char *store, const char *user, const char *key,
                     char **value, size_t *len);
/** Insert or replace. value may be NULL when len is 0 (an empty value, not an absent one). */
int kr_store_map_put(kr_store *s, const char *store, const char *user, const char *key,
                     const void *value, size_t len);
/** Delete one key, or every key of user in store when key is NULL; no error when absent. */
int kr_store_map_delete(kr_store *s, const char *store, const char *user, const char *key);

/** One row of kr_store_map_list; key and value are borrowed for the call only (value is not
 * NUL-terminated). Return 0 to go on; any other value stops the walk and is returned by
 * kr_store_map_list (a negative KR_E* code to fail, a positive value to stop early). The
 * callback must not call into the same kr_store. */
typedef int (*kr_store_map_cb)(void *ud, const char *key, const char *value, size_t len);
/** Call cb for each key of user in store in byte order of the key; with a prefix (NULL or ""
 * for all), only keys that start with its bytes. 0, the callback's non-zero value, or an
 * error. */
int kr_store_map_list(kr_store *s, const char *store, const char *user, const char *prefix,
                      kr_store_map_cb cb, void *ud);
/** Number of keys of user in store. */
int kr_store_map_count(kr_store *s, const char *store, const char *user, size_t *n);
/** Total value bytes of user's keys in store that start with prefix (NULL or "" for all),
 * for quota checks. The prefix is compared as bytes: no character in it is a pattern. */
int kr_store_map_size(kr_store *s, const char *store, const char *user, const char *prefix,
                      size_t *bytes);

/* Archive stores: per (store, user) an append-only sequence of entries in id order, for
 * offline messages (XEP-0160) and message archives (XEP-0313). */

typedef struct kr_store_archive_entry {
    int64_t id;    /* increasing per database, never reused */
    int64_t stamp; /* milliseconds since the epoch, as given to append */
    char *with;    /* owned: the JID the entry was exchanged with, or NULL */
    char *data;    /* owned: len bytes, NUL-terminated after them */
    size_t len;
} kr_store_archive_entry;

/** What kr_store_archive_query returns; every bound is exclusive for ids and inclusive for
 * stamps, and 0 leaves it open (XEP-0313 §4.1.4 start/end, XEP-0059 after/before). */
typedef struct kr_store_archive_filter {
    int64_t after_id;  /* entries with id > after_id (>= 0) */
    int64_t before_id; /* entries with id < before_id (>= 0) */
    int64_t start;     /* entries with stamp >= start */
    int64_t end;       /* entries with stamp <= end */
    const char *with;  /* entries with exactly this JID; NULL for any */
    size_t max;        /* at most this many; required, > 0 */
    bool newest_first; /* the newest max matches, newest first; else the oldest, oldest first */
} kr_store_archive_filter;

/** Append an entry and set *id (may be NULL) to its id. With quota > 0, KR_ELIMIT and nothing
 * written when user already has quota entries in store (the count and the insert are one
 * write transaction). data may be NULL when len is 0. */
int kr_store_archive_append(kr_store *s, const char *store, const char *user, int64_t stamp,
                            const char *with, const void *data, size_t len, size_t quota,
                            int64_t *id);
/** The entries matching q in id order (see kr_store_archive_filter). *entries is NULL when
 * there are none; the caller frees it with kr_store_archive_entries_free. KR_EINVAL for
 * max 0 or a negative id bound. */
int kr_store_archive_query(kr_store *s, const char *store, const char *user,
                           const kr_store_archive_filter *q, kr_store_archive_entry **entries,
                           size_t *n);
/** Free an array from kr_store_archive_query (NULL is fine). */
void kr_store_archive_entries_free(kr_store_archive_entry *entries, size_t n);
/** Delete user's entries in store with id <= max_id. */
int kr_store_archive_delete_upto(kr_store *s, const char *store, const char *user, int64_t max_id);
/** Number of user's entries in store. */
int kr_store_archive_count(kr_store *s, const char *store, const char *user, size_t *n);

/* ---- record versions of module stores --------------------------------------------------- */

/** The version of the records a module writes in `store` (kr_store_decl of server/modules.h),
 * as last recorded; a store never recorded is at version 1 (what schema migration 3 and
 * every first module version write). 0 or a store error. */
int kr_store_version_get(kr_store *s, const char *store, unsigned *version);
/** Record the version after an upgrade (durable when it returns 0). */
int kr_store_version_put(kr_store *s, const char *store, unsigned version);

#endif
