/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Storage interface. The foundation needs accounts only; rosters, offline
 * messages and the rest are added here by the issues that build them.
 * Accounts keep SCRAM credentials only (salt, iterations, StoredKey,
 * ServerKey for SHA-1 and SHA-256), never a password (DESIGN.md, storage).
 * These calls block: kurierd runs them only on its storage thread
 * (server/storage_thread.c), kurierctl calls them directly.
 * A kr_store is used by one thread at a time.
 * Contention with another connection is waited out for the busy timeout (5 s;
 * the environment variable KURIER_STORE_BUSY_MS, read at open, overrides it
 * with 0..600000 ms, for tests) and then reported as KR_ELOCKED.
 */
#ifndef KR_STORE_STORE_H
#define KR_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>

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
void kr_store_close(kr_store *s);
/** What the last failed call on s was (SQLite's message); "" before any failure.
 * Borrowed, valid until the next call on s. */
const char *kr_store_errmsg(const kr_store *s);

/** jid: prepared bare JID "local@domain". 0, KR_EEXIST, KR_ELOCKED or KR_ESTORE.
 * Writes (create, update, delete) are durable when they return 0. Create and update
 * return KR_EINVAL for malformed credentials (wrong hash, no salt, zero iterations). */
int kr_store_account_create(kr_store *s, const char *jid, const kr_account *acct);
/** Replace the credentials. 0, KR_ENOENT, KR_ELOCKED or KR_ESTORE. */
int kr_store_account_update(kr_store *s, const char *jid, const kr_account *acct);
/** Delete the account and (later issues) every row it owns. 0, KR_ENOENT, KR_ELOCKED, KR_ESTORE. */
int kr_store_account_delete(kr_store *s, const char *jid);
/** 0 (out filled), KR_ENOENT, KR_ELOCKED or KR_ESTORE. */
int kr_store_account_get(kr_store *s, const char *jid, kr_account *out);

typedef void (*kr_store_account_list_cb)(void *ud, const char *jid);
/** Calls cb for each account in JID order. 0, KR_ELOCKED or KR_ESTORE. */
int kr_store_account_list(kr_store *s, kr_store_account_list_cb cb, void *ud);

/** Build both credential sets from a prepared password (PBKDF2: expensive). */
void kr_account_from_password(kr_account *out, const char *password, size_t len,
                              unsigned iterations);

#endif
