/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Transitional: the feature functions the server modules (src/server/mod_*.c) and
 * kurierctl called when store.h knew every feature. They are written in compat.c on
 * the generic stores of store.h only, with the behaviour and error codes they had,
 * and each moves into its module (roster, offline, vCard, private, blocking), after
 * which this header goes away. New code uses the generic stores. Where the data
 * lives (schema migration 3 moved it there, sqlite.c):
 *   rosters      map "roster": key = contact, value = record (core/record.h) with
 *                "name" (only when set; may be ""), "sub" (0..3), "ask", "pending_in",
 *                "approved" ("1", only when true), "pending_in_xml" (only when set),
 *                then one "group" per group in order;
 *                map "roster_meta": key "version" = the version counter in decimal
 *   offline      archive "offline": stamp, with NULL, data = the stanza
 *   XML docs     key "vcard" -> map "vcard" key ""; "private " + rest -> map "private"
 *                key rest; any other key -> map "xml" under the same key
 *   block lists  map "blocking": key = blocked JID, value empty
 * Call them outside kr_store_begin/kr_store_begin_read: those that take several steps
 * open a transaction of their own, and a nested begin fails with KR_EINVAL.
 */
#ifndef KR_STORE_COMPAT_H
#define KR_STORE_COMPAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kr_store kr_store;

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
 * already has `quota` messages waiting (so quota 0 refuses every message). */
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

#endif
