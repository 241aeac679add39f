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
/** Delete the account and every row it owns (roster, offline messages, XML documents, block
 * list) in one transaction. 0, KR_ENOENT, KR_ELOCKED, KR_ESTORE. */
int kr_store_account_delete(kr_store *s, const char *jid);
/** 0 (out filled), KR_ENOENT, KR_ELOCKED or KR_ESTORE. */
int kr_store_account_get(kr_store *s, const char *jid, kr_account *out);

typedef void (*kr_store_account_list_cb)(void *ud, const char *jid);
/** Calls cb for each account in JID order. 0, KR_ELOCKED or KR_ESTORE. */
int kr_store_account_list(kr_store *s, kr_store_account_list_cb cb, void *ud);

/* ---- rosters (RFC 6121 §2, §3) ------------------------------------------------------------ */

/** Subscription state: bit 0 = "to" (user sees contact), bit 1 = "from" (contact sees user). */
typedef enum kr_subscription {
    KR_SUB_NONE = 0,
    KR_SUB_TO = 1,
    KR_SUB_FROM = 2,
    KR_SUB_BOTH = 3,
} kr_subscription;

typedef struct kr_roster_item {
    char *contact;        /* prepared bare JID */
    char *name;           /* handle shown by clients, or NULL */
    kr_subscription sub;
    bool ask;             /* pending out: the user asked to subscribe (ask='subscribe') */
    bool pending_in;      /* pending in: the contact asked, the user has not answered */
    bool approved;        /* pre-approved (RFC 6121 §3.4) */
    char *pending_in_xml; /* the contact's subscribe stanza, redelivered at login; or NULL */
    char **groups;
    size_t group_count;
} kr_roster_item;

/** Free the strings of an item (not the item itself). */
void kr_roster_item_clear(kr_roster_item *it);
/** Free an array from kr_store_roster_list. */
void kr_roster_items_free(kr_roster_item *items, size_t n);

/** All items of user's roster (sorted by contact) and the roster version (XEP-0237: a counter
 * that grows with every change; 0 for an empty, never-changed roster). */
int kr_store_roster_list(kr_store *s, const char *user, kr_roster_item **items, size_t *n,
                         uint64_t *version);
/** One item. 0 (out filled, caller clears), KR_ENOENT, KR_ELOCKED or KR_ESTORE. */
int kr_store_roster_get(kr_store *s, const char *user, const char *contact, kr_roster_item *out);
/** Insert or replace an item; *version gets the new roster version. */
int kr_store_roster_put(kr_store *s, const char *user, const kr_roster_item *it,
                        uint64_t *version);
/** Remove an item; *version gets the new roster version. 0 or KR_ENOENT, ... */
int kr_store_roster_remove(kr_store *s, const char *user, const char *contact,
                           uint64_t *version);
/** Number of items. */
int kr_store_roster_count(kr_store *s, const char *user, size_t *n);

/* ---- offline messages (XEP-0160) ---------------------------------------------------------- */

typedef struct kr_offline_msg {
    int64_t id;    /* increasing per store */
    int64_t stamp; /* milliseconds since the epoch when stored */
    char *xml;     /* the message stanza as serialized for delivery */
    size_t len;
} kr_offline_msg;

/** Append a message for user; durable on disk when this returns 0. KR_ELIMIT when the user
 * already has `quota` messages waiting. */
int kr_store_offline_push(kr_store *s, const char *user, const char *xml, size_t len,
                          int64_t stamp, size_t quota);
/** Up to max oldest messages of user, oldest first (caller frees with kr_offline_msgs_free). */
int kr_store_offline_list(kr_store *s, const char *user, size_t max, kr_offline_msg **msgs,
                          size_t *n);
void kr_offline_msgs_free(kr_offline_msg *msgs, size_t n);
/** Delete user's messages with id <= max_id (after they were handed to a session). */
int kr_store_offline_delete_upto(kr_store *s, const char *user, int64_t max_id);
int kr_store_offline_count(kr_store *s, const char *user, size_t *n);

/* ---- per-account XML documents: vCard (XEP-0054), private storage (XEP-0049) ------------- */

/** key: "vcard", or "private " + namespace + " " + element. 0 (*xml malloc'd, NUL-terminated),
 * KR_ENOENT, ... */
int kr_store_xml_get(kr_store *s, const char *user, const char *key, char **xml, size_t *len);
/** Insert or replace. */
int kr_store_xml_put(kr_store *s, const char *user, const char *key, const char *xml,
                     size_t len);
/** Total bytes of the user's documents whose key starts with prefix (quota checks). */
int kr_store_xml_size(kr_store *s, const char *user, const char *prefix, size_t *bytes);

/* ---- block lists (XEP-0191) --------------------------------------------------------------- */

/** Blocked JIDs of user (any JID form, prepared), sorted; caller frees each and the array. */
int kr_store_block_list(kr_store *s, const char *user, char ***jids, size_t *n);
/** Add (no error if present). */
int kr_store_block_add(kr_store *s, const char *user, const char *jid);
/** Remove one, or all when jid is NULL (no error if absent). */
int kr_store_block_remove(kr_store *s, const char *user, const char *jid);

/** Build both credential sets from a prepared password (PBKDF2: expensive). */
void kr_account_from_password(kr_account *out, const char *password, size_t len,
                              unsigned iterations);

#endif
