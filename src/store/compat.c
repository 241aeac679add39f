/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Transitional feature functions (see compat.h) written on the generic stores of
 * store.h only: no SQL and no driver here, so they behave alike on every driver
 * and each part can move into its module as it is. They keep the behaviour and
 * error codes the SQLite-specific versions had: a roster change and its version
 * bump (XEP-0237) are one write transaction; a roster listing and its version
 * are one snapshot; roster lists and block lists come sorted by JID (the map
 * stores' key order); the offline quota is checked and the message appended in
 * one transaction (kr_store_archive_append); a missing account is KR_ENOENT on
 * every write. Stored records are checked as they are read: a malformed one is
 * KR_ESTORE, never a half-filled item. The only thing taken from inside the
 * subsystem is kr__store_set_err, so kr_store_errmsg says why a check failed.
 */
#include "store/compat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/record.h"
#include "store/internal.h"
#include "store/store.h"

#define ROSTER_STORE "roster"
#define ROSTER_META_STORE "roster_meta"
#define ROSTER_VERSION_KEY "version"
#define OFFLINE_STORE "offline"
#define VCARD_STORE "vcard"
#define PRIVATE_STORE "private"
#define XML_STORE "xml"
#define BLOCKING_STORE "blocking"

#define XML_VCARD_KEY "vcard"
#define XML_PRIVATE_PREFIX "private "
#define XML_PRIVATE_PREFIX_LEN 8

/* Commit when rc is 0, roll back otherwise; rc or the commit's failure. */
static int finish(kr_store *s, int rc)
{
    if (rc == 0)
        return kr_store_commit(s);
    kr_store_rollback(s);
    return rc;
}

/* Grow *arr (elements of size elem) so that index n fits. */
static void *grow(void *arr, size_t n, size_t *cap, size_t elem)
{
    if (n < *cap)
        return arr;
    *cap = *cap ? *cap * 2 : 8;
    return kr_xrealloc(arr, *cap * elem);
}

/* ---- rosters ------------------------------------------------------------------------------ */

void kr_roster_item_clear(kr_roster_item *it)
{
    if (!it)
        return;
    free(it->contact);
    free(it->name);
    free(it->pending_in_xml);
    for (size_t i = 0; i < it->group_count; i++)
        free(it->groups[i]);
    free(it->groups);
    memset(it, 0, sizeof *it);
}

void kr_roster_items_free(kr_roster_item *items, size_t n)
{
    if (!items)
        return;
    for (size_t i = 0; i < n; i++)
        kr_roster_item_clear(&items[i]);
    free(items);
}

static bool item_valid(const kr_roster_item *it)
{
    if (!it->contact || ((unsigned)it->sub & ~3u) != 0 || (it->group_count && !it->groups))
        return false;
    for (size_t i = 0; i < it->group_count; i++)
        if (!it->groups[i])
            return false;
    return true;
}

/* The record of one item (field list in compat.h; migration 3 writes the same). */
static void roster_encode(kr_buf *b, const kr_roster_item *it)
{
    kr_record_begin(b);
    if (it->name)
        kr_record_add_str(b, "name", it->name);
    kr_record_add_int(b, "sub", (int64_t)it->sub);
    if (it->ask)
        kr_record_add_str(b, "ask", "1");
    if (it->pending_in)
        kr_record_add_str(b, "pending_in", "1");
    if (it->approved)
        kr_record_add_str(b, "approved", "1");
    if (it->pending_in_xml)
        kr_record_add_str(b, "pending_in_xml", it->pending_in_xml);
    for (size_t i = 0; i < it->group_count; i++)
        kr_record_add_str(b, "group", it->groups[i]);
    kr_record_end(b);
}

/* One of the flags: "0" or "1". */
static bool decode_flag(const kr_record_field *f, bool *out)
{
    int64_t v;
    if (kr_record_field_int(f, &v) < 0 || (v != 0 && v != 1))
        return false;
    *out = v == 1;
    return true;
}

/* A string field that appears at most once. */
static bool decode_once(const kr_record_field *f, char **out)
{
    return !*out && kr_record_field_strdup(f, out) == 0;
}

/* Fill it from the record stored for contact; false (it cleared) if the record is malformed.
 * Fields this version does not know are skipped, so a later module may add some. */
static bool roster_decode(const char *contact, const char *value, size_t len, kr_roster_item *it)
{
    memset(it, 0, sizeof *it);
    kr_record_reader r;
    if (kr_record_reader_init(&r, value, len) < 0)
        return false;
    kr_record_field f;
    bool ok = true, have_sub = false;
    size_t cap = 0;
    while (ok && kr_record_next(&r, &f)) {
        int64_t sub;
        if (kr_record_field_is(&f, "name")) {
            ok = decode_once(&f, &it->name);
        } else if (kr_record_field_is(&f, "sub")) {
            ok = !have_sub && kr_record_field_int(&f, &sub) == 0 && sub >= KR_SUB_NONE &&
                 sub <= KR_SUB_BOTH;
            it->sub = ok ? (kr_subscription)sub : KR_SUB_NONE;
            have_sub = true;
        } else if (kr_record_field_is(&f, "ask")) {
            ok = decode_flag(&f, &it->ask);
        } else if (kr_record_field_is(&f, "pending_in")) {
            ok = decode_flag(&f, &it->pending_in);
        } else if (kr_record_field_is(&f, "approved")) {
            ok = decode_flag(&f, &it->approved);
        } else if (kr_record_field_is(&f, "pending_in_xml")) {
            ok = decode_once(&f, &it->pending_in_xml);
        } else if (kr_record_field_is(&f, "group")) {
            char *g;
            ok = kr_record_field_strdup(&f, &g) == 0;
            if (ok) {
                it->groups = grow(it->groups, it->group_count, &cap, sizeof *it->groups);
                it->groups[it->group_count++] = g;
            }
        }
    }
    if (!ok || !have_sub) {
        kr_roster_item_clear(it);
        return false;
    }
    it->contact = kr_xstrdup(contact);
    return true;
}

static int roster_malformed(kr_store *s, const char *user)
{
    kr__store_set_err(s, "malformed roster item stored for %s", user);
    return KR_ESTORE;
}

/* The version counter: absent (0) until the first change. */
static int roster_version_read(kr_store *s, const char *user, uint64_t *version)
{
    char *text;
    size_t len;
    *version = 0;
    int rc = kr_store_map_get(s, ROSTER_META_STORE, user, ROSTER_VERSION_KEY, &text, &len);
    if (rc == KR_ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    /* Decimal, no leading zero, 1..INT64_MAX (what the SQL counter of schema 2 held). */
    uint64_t v = 0;
    bool ok = len > 0 && len <= 19 && text[0] != '0';
    for (size_t i = 0; ok && i < len; i++) {
        ok = text[i] >= '0' && text[i] <= '9';
        v = v * 10 + (uint64_t)(text[i] - '0');
    }
    free(text);
    if (!ok || v > INT64_MAX) {
        kr__store_set_err(s, "malformed roster version stored for %s", user);
        return KR_ESTORE;
    }
    *version = v;
    return 0;
}

/* Inside a write transaction: count one more change of user's roster. The first version is
 * derived from the clock (seconds since the epoch * 1000), so an account deleted and created
 * again never repeats a version a client may have cached (XEP-0237). */
static int roster_version_bump(kr_store *s, const char *user, uint64_t *version)
{
    uint64_t v;
    int rc = roster_version_read(s, user, &v);
    if (rc < 0)
        return rc;
    v = v ? v + 1 : (uint64_t)time(NULL) * 1000;
    char text[24];
    int n = snprintf(text, sizeof text, "%llu", (unsigned long long)v);
    rc = kr_store_map_put(s, ROSTER_META_STORE, user, ROSTER_VERSION_KEY, text, (size_t)n);
    if (rc == 0)
        *version = v;
    return rc;
}

typedef struct roster_list_ctx {
    kr_store *s;
    const char *user;
    kr_roster_item *items;
    size_t n, cap;
} roster_list_ctx;

static int roster_list_row(void *ud, const char *key, const char *value, size_t len)
{
    roster_list_ctx *c = ud;
    c->items = grow(c->items, c->n, &c->cap, sizeof *c->items);
    if (!roster_decode(key, value, len, &c->items[c->n]))
        return roster_malformed(c->s, c->user);
    c->n++;
    return 0;
}

int kr_store_roster_list(kr_store *s, const char *user, kr_roster_item **items, size_t *n,
                         uint64_t *version)
{
    *items = NULL;
    *n = 0;
    *version = 0;
    roster_list_ctx c = {.s = s, .user = user};
    int rc = kr_store_begin_read(s); /* one snapshot: the version matches the items */
    if (rc < 0)
        return rc;
    rc = roster_version_read(s, user, version);
    if (rc == 0)
        rc = kr_store_map_list(s, ROSTER_STORE, user, NULL, roster_list_row, &c);
    rc = finish(s, rc);
    if (rc < 0) {
        kr_roster_items_free(c.items, c.n);
        *version = 0;
        return rc;
    }
    *items = c.items;
    *n = c.n;
    return 0;
}

int kr_store_roster_get(kr_store *s, const char *user, const char *contact, kr_roster_item *out)
{
    memset(out, 0, sizeof *out);
    char *value;
    size_t len;
    int rc = kr_store_map_get(s, ROSTER_STORE, user, contact, &value, &len);
    if (rc < 0)
        return rc;
    if (!roster_decode(contact, value, len, out))
        rc = roster_malformed(s, user);
    free(value);
    return rc;
}

int kr_store_roster_put(kr_store *s, const char *user, const kr_roster_item *it, uint64_t *version)
{
    if (!item_valid(it)) {
        kr__store_set_err(s, "malformed roster item");
        return KR_EINVAL;
    }
    kr_buf b = KR_BUF_INIT;
    roster_encode(&b, it);
    uint64_t v = 0;
    int rc = kr_store_begin(s);
    if (rc == 0) {
        rc = kr_store_map_put(s, ROSTER_STORE, user, it->contact, b.data, b.len);
        if (rc == 0)
            rc = roster_version_bump(s, user, &v);
        rc = finish(s, rc);
    }
    kr_buf_clear(&b);
    if (rc == 0 && version)
        *version = v;
    return rc;
}

int kr_store_roster_remove(kr_store *s, const char *user, const char *contact, uint64_t *version)
{
    uint64_t v = 0;
    int rc = kr_store_begin(s);
    if (rc < 0)
        return rc;
    char *old;
    rc = kr_store_map_get(s, ROSTER_STORE, user, contact, &old, NULL);
    free(old);
    if (rc == 0)
        rc = kr_store_map_delete(s, ROSTER_STORE, user, contact);
    if (rc == 0)
        rc = roster_version_bump(s, user, &v);
    rc = finish(s, rc);
    if (rc == 0 && version)
        *version = v;
    return rc;
}

int kr_store_roster_count(kr_store *s, const char *user, size_t *n)
{
    return kr_store_map_count(s, ROSTER_STORE, user, n);
}

/* ---- offline messages --------------------------------------------------------------------- */

int kr_store_offline_push(kr_store *s, const char *user, const char *xml, size_t len, int64_t stamp,
                          size_t quota)
{
    /* For the archive store quota 0 means none; here it always meant "full". */
    int rc = quota == 0 ? KR_ELIMIT
                        : kr_store_archive_append(s, OFFLINE_STORE, user, stamp, NULL, xml, len,
                                                  quota, NULL);
    if (rc == KR_ELIMIT)
        kr__store_set_err(s, "offline quota of %zu messages reached", quota);
    return rc;
}

int kr_store_offline_list(kr_store *s, const char *user, size_t max, kr_offline_msg **msgs,
                          size_t *n)
{
    *msgs = NULL;
    *n = 0;
    if (max == 0)
        return 0;
    kr_store_archive_filter q = {.max = max};
    kr_store_archive_entry *e;
    size_t count;
    int rc = kr_store_archive_query(s, OFFLINE_STORE, user, &q, &e, &count);
    if (rc < 0 || count == 0)
        return rc;
    kr_offline_msg *list = kr_xcalloc(count, sizeof *list);
    for (size_t i = 0; i < count; i++) {
        list[i].id = e[i].id;
        list[i].stamp = e[i].stamp;
        list[i].xml = e[i].data; /* moves */
        list[i].len = e[i].len;
        e[i].data = NULL;
    }
    kr_store_archive_entries_free(e, count);
    *msgs = list;
    *n = count;
    return 0;
}

void kr_offline_msgs_free(kr_offline_msg *msgs, size_t n)
{
    if (!msgs)
        return;
    for (size_t i = 0; i < n; i++)
        free(msgs[i].xml);
    free(msgs);
}

int kr_store_offline_delete_upto(kr_store *s, const char *user, int64_t max_id)
{
    return kr_store_archive_delete_upto(s, OFFLINE_STORE, user, max_id);
}

int kr_store_offline_count(kr_store *s, const char *user, size_t *n)
{
    return kr_store_archive_count(s, OFFLINE_STORE, user, n);
}

/* ---- XML documents ------------------------------------------------------------------------ */

/* Where a document key of schema 2 lives now. */
static void xml_place(const char *key, const char **store, const char **map_key)
{
    if (strcmp(key, XML_VCARD_KEY) == 0) {
        *store = VCARD_STORE;
        *map_key = "";
    } else if (strncmp(key, XML_PRIVATE_PREFIX, XML_PRIVATE_PREFIX_LEN) == 0) {
        *store = PRIVATE_STORE;
        *map_key = key + XML_PRIVATE_PREFIX_LEN;
    } else {
        *store = XML_STORE;
        *map_key = key;
    }
}

int kr_store_xml_get(kr_store *s, const char *user, const char *key, char **xml, size_t *len)
{
    const char *store, *map_key;
    xml_place(key, &store, &map_key);
    return kr_store_map_get(s, store, user, map_key, xml, len);
}

int kr_store_xml_put(kr_store *s, const char *user, const char *key, const char *xml, size_t len)
{
    const char *store, *map_key;
    xml_place(key, &store, &map_key);
    return kr_store_map_put(s, store, user, map_key, xml, len);
}

static int add_size(kr_store *s, const char *store, const char *user, const char *prefix,
                    size_t *total)
{
    size_t part = 0;
    int rc = kr_store_map_size(s, store, user, prefix, &part);
    *total += part;
    return rc;
}

/* The documents whose key (as schema 2 wrote it) starts with prefix are spread over three
 * stores; each store's share is found by its own prefix, in one snapshot. */
int kr_store_xml_size(kr_store *s, const char *user, const char *prefix, size_t *bytes)
{
    *bytes = 0;
    size_t plen = strlen(prefix), total = 0;
    int rc = kr_store_begin_read(s);
    if (rc < 0)
        return rc;
    if (strncmp(XML_VCARD_KEY, prefix, plen) == 0 && plen <= strlen(XML_VCARD_KEY))
        rc = add_size(s, VCARD_STORE, user, "", &total);
    if (rc == 0 && plen <= XML_PRIVATE_PREFIX_LEN) {
        if (strncmp(XML_PRIVATE_PREFIX, prefix, plen) == 0)
            rc = add_size(s, PRIVATE_STORE, user, "", &total);
    } else if (rc == 0 && strncmp(prefix, XML_PRIVATE_PREFIX, XML_PRIVATE_PREFIX_LEN) == 0) {
        rc = add_size(s, PRIVATE_STORE, user, prefix + XML_PRIVATE_PREFIX_LEN, &total);
    }
    /* Keys in "xml" are neither "vcard" nor "private ...": the prefix applies as it is. */
    if (rc == 0)
        rc = add_size(s, XML_STORE, user, prefix, &total);
    rc = finish(s, rc);
    if (rc == 0)
        *bytes = total;
    return rc;
}

/* ---- block lists -------------------------------------------------------------------------- */

typedef struct block_list_ctx {
    char **jids;
    size_t n, cap;
} block_list_ctx;

static int block_list_row(void *ud, const char *key, const char *value, size_t len)
{
    block_list_ctx *c = ud;
    c->jids = grow(c->jids, c->n, &c->cap, sizeof *c->jids);
    c->jids[c->n++] = kr_xstrdup(key);
    return 0;
}

int kr_store_block_list(kr_store *s, const char *user, char ***jids, size_t *n)
{
    *jids = NULL;
    *n = 0;
    block_list_ctx c = {0};
    int rc = kr_store_map_list(s, BLOCKING_STORE, user, NULL, block_list_row, &c);
    if (rc < 0) {
        for (size_t i = 0; i < c.n; i++)
            free(c.jids[i]);
        free(c.jids);
        return rc;
    }
    *jids = c.jids;
    *n = c.n;
    return 0;
}

int kr_store_block_add(kr_store *s, const char *user, const char *jid)
{
    return kr_store_map_put(s, BLOCKING_STORE, user, jid, NULL, 0);
}

int kr_store_block_remove(kr_store *s, const char *user, const char *jid)
{
    return kr_store_map_delete(s, BLOCKING_STORE, user, jid);
}
