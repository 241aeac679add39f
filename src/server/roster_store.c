/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Rosters in the roster module's stores (see roster_store.h), on the generic
 * map store of store.h: no SQL and no driver here. A roster change and its
 * version bump (XEP-0237) are one write transaction; a listing and its version
 * are one snapshot; lists come sorted by contact (the map store's key order);
 * a missing account is KR_ENOENT on every write. Stored records are checked
 * as they are read: a malformed one is KR_ESTORE (logged), never a half-filled
 * item. Runs on storage lanes (and in kurierctl).
 */
#include "server/roster_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/log.h"
#include "core/record.h"

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
    KR_LOG(KR_LOG_ERROR, NULL, "malformed roster item stored for %s", user);
    return KR_ESTORE;
}

/* The version counter: absent (0) until the first change. */
static int roster_version_read(kr_store *s, const char *user, uint64_t *version)
{
    char *text;
    size_t len;
    *version = 0;
    int rc = kr_store_map_get(s, KR_ROSTER_META_STORE, user, KR_ROSTER_VERSION_KEY, &text, &len);
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
        KR_LOG(KR_LOG_ERROR, NULL, "malformed roster version stored for %s", user);
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
    rc = kr_store_map_put(s, KR_ROSTER_META_STORE, user, KR_ROSTER_VERSION_KEY, text, (size_t)n);
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

int kr_roster_list(kr_store *s, const char *user, kr_roster_item **items, size_t *n,
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
        rc = kr_store_map_list(s, KR_ROSTER_STORE, user, NULL, roster_list_row, &c);
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

int kr_roster_get(kr_store *s, const char *user, const char *contact, kr_roster_item *out)
{
    memset(out, 0, sizeof *out);
    char *value;
    size_t len;
    int rc = kr_store_map_get(s, KR_ROSTER_STORE, user, contact, &value, &len);
    if (rc < 0)
        return rc;
    if (!roster_decode(contact, value, len, out))
        rc = roster_malformed(s, user);
    free(value);
    return rc;
}

int kr_roster_put(kr_store *s, const char *user, const kr_roster_item *it, uint64_t *version)
{
    if (!item_valid(it))
        return KR_EINVAL;
    kr_buf b = KR_BUF_INIT;
    roster_encode(&b, it);
    uint64_t v = 0;
    int rc = kr_store_begin(s);
    if (rc == 0) {
        rc = kr_store_map_put(s, KR_ROSTER_STORE, user, it->contact, b.data, b.len);
        if (rc == 0)
            rc = roster_version_bump(s, user, &v);
        rc = finish(s, rc);
    }
    kr_buf_clear(&b);
    if (rc == 0 && version)
        *version = v;
    return rc;
}

int kr_roster_remove(kr_store *s, const char *user, const char *contact, uint64_t *version)
{
    uint64_t v = 0;
    int rc = kr_store_begin(s);
    if (rc < 0)
        return rc;
    char *old;
    rc = kr_store_map_get(s, KR_ROSTER_STORE, user, contact, &old, NULL);
    free(old);
    if (rc == 0)
        rc = kr_store_map_delete(s, KR_ROSTER_STORE, user, contact);
    if (rc == 0)
        rc = roster_version_bump(s, user, &v);
    rc = finish(s, rc);
    if (rc == 0 && version)
        *version = v;
    return rc;
}

int kr_roster_count(kr_store *s, const char *user, size_t *n)
{
    return kr_store_map_count(s, KR_ROSTER_STORE, user, n);
}
