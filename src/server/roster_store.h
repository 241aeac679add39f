/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * The roster data of RFC 6121 §2-§3 as the roster module stores it, shared
 * with the presence and registration modules that read rosters too. Rosters
 * live in two map stores of the roster module (kr_mod_roster declares them):
 *   "roster"       key = contact (prepared bare JID), value = record
 *                  (core/record.h) with "name" (only when set; may be ""),
 *                  "sub" (0..3), "ask", "pending_in", "approved" ("1", only
 *                  when true), "pending_in_xml" (only when set), then one
 *                  "group" per group in order (version 1 of the record; schema
 *                  migration 3 of sqlite.c wrote the same from older files);
 *   "roster_meta"  key "version" = the version counter (XEP-0237) in decimal.
 * These calls block: run them on a storage lane. Each one that takes several
 * steps opens its own transaction: call them outside kr_store_begin.
 */
#ifndef KR_SERVER_ROSTER_STORE_H
#define KR_SERVER_ROSTER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define KR_ROSTER_STORE "roster"
#define KR_ROSTER_META_STORE "roster_meta"
#define KR_ROSTER_VERSION_KEY "version"

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
/** Free an array from kr_roster_list. */
void kr_roster_items_free(kr_roster_item *items, size_t n);

/** All items of user's roster (sorted by contact) and the roster version (XEP-0237: a counter
 * that grows with every change; 0 for an empty, never-changed roster). */
int kr_roster_list(kr_store *s, const char *user, kr_roster_item **items, size_t *n,
                         uint64_t *version);
/** One item. 0 (out filled, caller clears), KR_ENOENT, KR_ELOCKED or KR_ESTORE. */
int kr_roster_get(kr_store *s, const char *user, const char *contact, kr_roster_item *out);
/** Insert or replace an item; *version gets the new roster version. */
int kr_roster_put(kr_store *s, const char *user, const kr_roster_item *it,
                        uint64_t *version);
/** Remove an item; *version gets the new roster version. 0 or KR_ENOENT, ... */
int kr_roster_remove(kr_store *s, const char *user, const char *contact,
                           uint64_t *version);
/** Number of items. */
int kr_roster_count(kr_store *s, const char *user, size_t *n);

#endif
