/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Unit tests of the roster store (src/server/roster_store.c): the kr_roster_*
 * calls the roster, presence and registration modules use, on a real SQLite
 * store opened with kr_store_open in a temporary directory (removed
 * afterwards), with accounts made by kr_store_account_create. They check the
 * behaviour the server relies on: every field of an item round-trips (odd
 * characters included), put replaces, lists come sorted by contact with each
 * item's groups in order, the version counter of XEP-0237 starts from the clock,
 * grows with every change, is per user, survives reopening and goes on from a
 * counter stored as schema migration 3 writes it; removing a missing item is
 * KR_ENOENT and keeps the version; writes for an unknown user are KR_ENOENT,
 * malformed items KR_EINVAL, writes under another connection's write lock
 * KR_ELOCKED (leaving no transaction open); a new account under a deleted one's
 * name starts with an empty roster. Records are built or damaged directly in
 * the map store "roster" (the field list is in roster_store.h) to check that a
 * record of that format is read, and that a garbled or malformed record or
 * version counter is KR_ESTORE, never a half-filled item (the roster store logs
 * each one as an error on standard error). KURIER_STORE_BUSY_MS shortens the
 * busy timeout so lock tests take milliseconds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/error.h"
#include "core/record.h"
#include "server/roster_store.h"
#include "store/store.h"

/* The first version of a roster is the clock in milliseconds: at least this (2020-01-01). */
#define FIRST_VERSION_MIN 1577836800000ULL

#define BUSY_MS 100

typedef struct fixture {
    char dir[64];
    char path[128];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/kr_test_roster_store.XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/kurier.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    const char *suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        char p[160];
        snprintf(p, sizeof p, "%s%s", f->path, suffixes[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static void fill_creds(kr_scram_creds *c, kr_scram_hash h, unsigned char seed)
{
    memset(c, 0, sizeof *c);
    c->hash = h;
    c->iterations = 4096;
    c->salt_len = 16;
    size_t klen = h == KR_SCRAM_SHA1 ? 20 : 32;
    for (size_t i = 0; i < c->salt_len; i++)
        c->salt[i] = (unsigned char)(seed + i);
    for (size_t i = 0; i < klen; i++) {
        c->stored_key[i] = (unsigned char)(seed * 3 + i);
        c->server_key[i] = (unsigned char)(seed * 7 + i + 1);
    }
}

static void create_account(kr_store *s, const char *jid)
{
    kr_account a;
    fill_creds(&a.sha1, KR_SCRAM_SHA1, 1);
    fill_creds(&a.sha256, KR_SCRAM_SHA256, 2);
    assert_int_equal(kr_store_account_create(s, jid, &a), 0);
}

static kr_store *open_ok(const fixture *f)
{
    kr_store *s = NULL;
    char err[256] = "";
    int rc = kr_store_open(f->path, &s, err, sizeof err);
    if (rc != 0)
        print_error("kr_store_open: %s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(s);
    return s;
}

/* A store with the accounts alice@localhost and bob@localhost. */
static kr_store *open_with_users(const fixture *f)
{
    kr_store *s = open_ok(f);
    create_account(s, "alice@localhost");
    create_account(s, "bob@localhost");
    return s;
}

/* Put a "both" item with the given groups; version may be NULL. */
static void put_item(kr_store *s, const char *user, const char *contact, char **groups,
                     size_t ngroups, uint64_t *version)
{
    kr_roster_item it = {0};
    it.contact = (char *)contact;
    it.sub = KR_SUB_BOTH;
    it.groups = groups;
    it.group_count = ngroups;
    assert_int_equal(kr_roster_put(s, user, &it, version), 0);
}

/* The roster's version as kr_roster_list reports it. */
static uint64_t listed_version(kr_store *s, const char *user)
{
    kr_roster_item *items;
    size_t n;
    uint64_t v = 0;
    assert_int_equal(kr_roster_list(s, user, &items, &n, &v), 0);
    kr_roster_items_free(items, n);
    return v;
}

/* An item that every failed read must leave behind: nothing owned, nothing set. */
static void assert_item_empty(const kr_roster_item *it)
{
    assert_null(it->contact);
    assert_null(it->name);
    assert_null(it->pending_in_xml);
    assert_null(it->groups);
    assert_int_equal(it->group_count, 0);
    assert_int_equal(it->sub, KR_SUB_NONE);
    assert_false(it->ask || it->pending_in || it->approved);
}

static void test_roster_of_new_user_is_empty_with_version_0(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    kr_roster_item *items = (kr_roster_item *)1;
    size_t n = 99;
    uint64_t v = 99;
    assert_int_equal(kr_roster_list(s, "alice@localhost", &items, &n, &v), 0);
    assert_null(items);
    assert_int_equal(n, 0);
    assert_int_equal(v, 0);
    n = 99;
    assert_int_equal(kr_roster_count(s, "alice@localhost", &n), 0);
    assert_int_equal(n, 0);
    kr_store_close(s);
}

static void test_roster_put_then_get_returns_every_field(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    char *groups[] = {"Friends", "Work"};
    kr_roster_item it = {
        .contact = "carol@example.org",
        .name = "Carol",
        .sub = KR_SUB_FROM,
        .ask = true,
        .pending_in = true,
        .approved = true,
        .pending_in_xml = "<presence type='subscribe'/>",
        .groups = groups,
        .group_count = 2,
    };
    uint64_t v = 0;
    assert_int_equal(kr_roster_put(s, "alice@localhost", &it, &v), 0);
    assert_true(v >= FIRST_VERSION_MIN);

    kr_roster_item got;
    assert_int_equal(kr_roster_get(s, "alice@localhost", "carol@example.org", &got), 0);
    assert_string_equal(got.contact, "carol@example.org");
    assert_string_equal(got.name, "Carol");
    assert_int_equal(got.sub, KR_SUB_FROM);
    assert_true(got.ask);
    assert_true(got.pending_in);
    assert_true(got.approved);
    assert_string_equal(got.pending_in_xml, "<presence type='subscribe'/>");
    assert_int_equal(got.group_count, 2);
    assert_string_equal(got.groups[0], "Friends");
    assert_string_equal(got.groups[1], "Work");
    kr_roster_item_clear(&got);
    assert_item_empty(&got);

    /* Not in bob's roster, nor under another contact in alice's. */
    assert_int_equal(kr_roster_get(s, "bob@localhost", "carol@example.org", &got), KR_ENOENT);
    assert_item_empty(&got);
    assert_int_equal(kr_roster_get(s, "alice@localhost", "dave@example.org", &got), KR_ENOENT);
    kr_store_close(s);
}

static void test_roster_first_version_comes_from_the_clock(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    uint64_t before = (uint64_t)time(NULL) * 1000;
    uint64_t v = 0;
    put_item(s, "alice@localhost", "x@localhost", NULL, 0, &v);
    uint64_t after = (uint64_t)time(NULL) * 1000;
    assert_true(v >= before && v <= after);
    assert_true(v % 1000 == 0);
    kr_store_close(s);
}

static void test_roster_put_replaces_fields_and_groups(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    char *g1[] = {"A", "B", "C"};
    kr_roster_item it = {.contact = "bob@localhost",
                         .name = "Bobby",
                         .sub = KR_SUB_TO,
                         .ask = true,
                         .approved = true,
                         .pending_in_xml = "<x/>",
                         .groups = g1,
                         .group_count = 3};
    assert_int_equal(kr_roster_put(s, "alice@localhost", &it, NULL), 0);
    char *g2[] = {"Z"};
    kr_roster_item it2 = {
        .contact = "bob@localhost", .sub = KR_SUB_NONE, .groups = g2, .group_count = 1};
    assert_int_equal(kr_roster_put(s, "alice@localhost", &it2, NULL), 0);

    kr_roster_item got;
    assert_int_equal(kr_roster_get(s, "alice@localhost", "bob@localhost", &got), 0);
    assert_null(got.name);
    assert_null(got.pending_in_xml);
    assert_int_equal(got.sub, KR_SUB_NONE);
    assert_false(got.ask);
    assert_false(got.approved);
    assert_int_equal(got.group_count, 1);
    assert_string_equal(got.groups[0], "Z");
    kr_roster_item_clear(&got);
    size_t n = 0;
    assert_int_equal(kr_roster_count(s, "alice@localhost", &n), 0);
    assert_int_equal(n, 1);
    kr_store_close(s);
}

static void test_roster_version_grows_with_every_change(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    uint64_t v1 = 0, v2 = 0, v3 = 0, v4 = 0, bobv = 0;
    put_item(s, "alice@localhost", "x@localhost", NULL, 0, &v1);
    put_item(s, "alice@localhost", "y@localhost", NULL, 0, &v2);
    put_item(s, "alice@localhost", "x@localhost", NULL, 0, &v3); /* a replace is a change */
    assert_int_equal(kr_roster_remove(s, "alice@localhost", "y@localhost", &v4), 0);
    assert_true(v1 > 0);
    assert_true(v2 > v1);
    assert_true(v3 > v2);
    assert_true(v4 > v3);
    kr_roster_item *items;
    size_t n;
    uint64_t listed = 0;
    assert_int_equal(kr_roster_list(s, "alice@localhost", &items, &n, &listed), 0);
    assert_true(listed == v4);
    assert_int_equal(n, 1);
    assert_string_equal(items[0].contact, "x@localhost");
    kr_roster_items_free(items, n);
    /* Counters are per user: bob's first change does not continue alice's count. */
    put_item(s, "bob@localhost", "x@localhost", NULL, 0, &bobv);
    assert_true(bobv >= FIRST_VERSION_MIN && bobv % 1000 == 0 && v4 % 1000 == 3);
    assert_true(listed_version(s, "alice@localhost") == v4);
    kr_store_close(s);
}

static void test_roster_version_survives_reopen(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    uint64_t v = 0, after = 0;
    put_item(s, "alice@localhost", "x@localhost", NULL, 0, &v);
    put_item(s, "alice@localhost", "y@localhost", NULL, 0, &v);
    kr_store_close(s);
    s = open_ok(f);
    assert_true(listed_version(s, "alice@localhost") == v);
    put_item(s, "alice@localhost", "z@localhost", NULL, 0, &after);
    assert_true(after == v + 1);
    kr_store_close(s);
}

static void test_roster_remove_missing_returns_enoent_and_keeps_version(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    uint64_t v = 0, v2 = 12345;
    put_item(s, "alice@localhost", "x@localhost", NULL, 0, &v);
    assert_int_equal(kr_roster_remove(s, "alice@localhost", "nobody@localhost", &v2), KR_ENOENT);
    assert_true(v2 == 12345);
    assert_true(listed_version(s, "alice@localhost") == v);
    /* An empty, never-changed roster stays at version 0. */
    assert_int_equal(kr_roster_remove(s, "bob@localhost", "x@localhost", &v2), KR_ENOENT);
    assert_true(listed_version(s, "bob@localhost") == 0);
    size_t n = 0;
    assert_int_equal(kr_roster_count(s, "alice@localhost", &n), 0);
    assert_int_equal(n, 1);
    kr_store_close(s);
}

static void test_roster_remove_drops_item_and_its_groups(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    char *g[] = {"G1", "G2"};
    put_item(s, "alice@localhost", "x@localhost", g, 2, NULL);
    put_item(s, "alice@localhost", "y@localhost", g, 1, NULL);
    assert_int_equal(kr_roster_remove(s, "alice@localhost", "x@localhost", NULL), 0);
    kr_roster_item got;
    assert_int_equal(kr_roster_get(s, "alice@localhost", "x@localhost", &got), KR_ENOENT);
    size_t n = 0;
    assert_int_equal(kr_store_map_count(s, KR_ROSTER_STORE, "alice@localhost", &n), 0);
    assert_int_equal(n, 1);
    /* Put again, it comes back without the old groups. */
    put_item(s, "alice@localhost", "x@localhost", NULL, 0, NULL);
    assert_int_equal(kr_roster_get(s, "alice@localhost", "x@localhost", &got), 0);
    assert_int_equal(got.group_count, 0);
    assert_null(got.groups);
    kr_roster_item_clear(&got);
    assert_int_equal(kr_store_map_count(s, KR_ROSTER_STORE, "alice@localhost", &n), 0);
    assert_int_equal(n, 2);
    kr_store_close(s);
}

static void test_roster_list_is_sorted_with_groups_on_the_right_items(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    char *gc[] = {"c1", "c2"};
    char *ga[] = {"a1"};
    uint64_t first = 0;
    put_item(s, "alice@localhost", "carol@localhost", gc, 2, &first);
    put_item(s, "alice@localhost", "bob@localhost", NULL, 0, NULL);
    put_item(s, "alice@localhost", "adam@localhost", ga, 1, NULL);
    put_item(s, "bob@localhost", "carol@localhost", ga, 1, NULL);
    kr_roster_item *items;
    size_t n;
    uint64_t v;
    assert_int_equal(kr_roster_list(s, "alice@localhost", &items, &n, &v), 0);
    assert_int_equal(n, 3);
    assert_true(v == first + 2);
    assert_string_equal(items[0].contact, "adam@localhost");
    assert_int_equal(items[0].group_count, 1);
    assert_string_equal(items[0].groups[0], "a1");
    assert_string_equal(items[1].contact, "bob@localhost");
    assert_int_equal(items[1].group_count, 0);
    assert_string_equal(items[2].contact, "carol@localhost");
    assert_int_equal(items[2].group_count, 2);
    assert_string_equal(items[2].groups[0], "c1");
    assert_string_equal(items[2].groups[1], "c2");
    kr_roster_items_free(items, n);
    assert_int_equal(kr_roster_count(s, "alice@localhost", &n), 0);
    assert_int_equal(n, 3);
    kr_store_close(s);
}

static void test_roster_strings_with_odd_characters_round_trip(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    char *groups[] = {"a,b;c",
                      "it's \"quoted\"",
                      "'); DROP TABLE module_map; --",
                      "line\nbreak\ttab",
                      "%_*?[",
                      "\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80",
                      "",
                      "\xff\xfe not utf-8",
                      "Friends" /* the same group twice keeps both, in order */,
                      "Friends"};
    size_t ng = sizeof groups / sizeof groups[0];
    kr_roster_item it = {.contact = "o'brien@localhost",
                         .name = "x'); --",
                         .pending_in_xml = "<p a=\"'\">\x01</p>",
                         .groups = groups,
                         .group_count = ng};
    assert_int_equal(kr_roster_put(s, "alice@localhost", &it, NULL), 0);
    kr_roster_item *items;
    size_t n;
    uint64_t v;
    assert_int_equal(kr_roster_list(s, "alice@localhost", &items, &n, &v), 0);
    assert_int_equal(n, 1);
    assert_string_equal(items[0].contact, "o'brien@localhost");
    assert_string_equal(items[0].name, "x'); --");
    assert_string_equal(items[0].pending_in_xml, "<p a=\"'\">\x01</p>");
    assert_int_equal(items[0].group_count, ng);
    for (size_t i = 0; i < ng; i++)
        assert_string_equal(items[0].groups[i], groups[i]);
    kr_roster_items_free(items, n);
    /* An empty name is a name, not an absent one. */
    it.name = "";
    assert_int_equal(kr_roster_put(s, "alice@localhost", &it, NULL), 0);
    kr_roster_item got;
    assert_int_equal(kr_roster_get(s, "alice@localhost", "o'brien@localhost", &got), 0);
    assert_non_null(got.name);
    assert_string_equal(got.name, "");
    kr_roster_item_clear(&got);
    kr_store_close(s);
}

static void test_roster_put_for_unknown_user_returns_enoent(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    kr_roster_item it = {.contact = "x@localhost"};
    uint64_t v = 7;
    assert_int_equal(kr_roster_put(s, "ghost@localhost", &it, &v), KR_ENOENT);
    assert_true(v == 7);
    assert_int_equal(kr_roster_remove(s, "ghost@localhost", "x@localhost", &v), KR_ENOENT);
    assert_true(v == 7);
    size_t n = 1;
    assert_int_equal(kr_roster_count(s, "ghost@localhost", &n), 0);
    assert_int_equal(n, 0);
    /* Nothing was written for it: no version counter either. */
    assert_int_equal(kr_store_map_count(s, KR_ROSTER_META_STORE, "ghost@localhost", &n), 0);
    assert_int_equal(n, 0);
    assert_true(listed_version(s, "ghost@localhost") == 0);
    kr_store_close(s);
}

static void test_roster_put_refuses_malformed_item(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    uint64_t v = 7;
    kr_roster_item it = {.contact = NULL};
    assert_int_equal(kr_roster_put(s, "alice@localhost", &it, &v), KR_EINVAL);
    it.contact = "x@localhost";
    it.sub = (kr_subscription)4;
    assert_int_equal(kr_roster_put(s, "alice@localhost", &it, &v), KR_EINVAL);
    it.sub = (kr_subscription)-1;
    assert_int_equal(kr_roster_put(s, "alice@localhost", &it, &v), KR_EINVAL);
    char *groups[] = {"ok", NULL};
    it.sub = KR_SUB_TO;
    it.groups = groups;
    it.group_count = 2;
    assert_int_equal(kr_roster_put(s, "alice@localhost", &it, &v), KR_EINVAL);
    it.groups = NULL;
    it.group_count = 1;
    assert_int_equal(kr_roster_put(s, "alice@localhost", &it, &v), KR_EINVAL);
    assert_true(v == 7);
    size_t n = 1;
    assert_int_equal(kr_roster_count(s, "alice@localhost", &n), 0);
    assert_int_equal(n, 0);
    assert_true(listed_version(s, "alice@localhost") == 0);
    kr_store_close(s);
}

static void test_roster_writes_under_another_write_lock_return_elocked(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    uint64_t v = 0;
    put_item(s, "alice@localhost", "y@localhost", NULL, 0, &v);
    kr_store *other = open_ok(f);
    assert_int_equal(kr_store_begin(other), 0); /* takes the write lock */
    kr_roster_item it = {.contact = "x@localhost"};
    uint64_t got = 7;
    assert_int_equal(kr_roster_put(s, "alice@localhost", &it, &got), KR_ELOCKED);
    assert_int_equal(kr_roster_remove(s, "alice@localhost", "y@localhost", &got), KR_ELOCKED);
    assert_true(got == 7);
    /* Readers are not blocked (WAL). */
    assert_true(listed_version(s, "alice@localhost") == v);
    assert_int_equal(kr_store_commit(other), 0);
    kr_store_close(other);
    /* No transaction was left open on s: the same calls now succeed. */
    assert_int_equal(kr_roster_put(s, "alice@localhost", &it, &got), 0);
    assert_true(got == v + 1);
    assert_int_equal(kr_roster_remove(s, "alice@localhost", "y@localhost", &got), 0);
    assert_true(got == v + 2);
    assert_int_equal(kr_store_begin(s), 0);
    assert_int_equal(kr_store_rollback(s), 0);
    kr_store_close(s);
}

static void test_roster_of_an_account_created_again_starts_empty(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    char *g[] = {"grp"};
    put_item(s, "alice@localhost", "friend@localhost", g, 1, NULL);
    put_item(s, "bob@localhost", "friend@localhost", g, 1, NULL);
    assert_int_equal(kr_store_account_delete(s, "alice@localhost"), 0);
    create_account(s, "alice@localhost");
    kr_roster_item *items = (kr_roster_item *)1;
    size_t n = 9;
    uint64_t v = 99;
    assert_int_equal(kr_roster_list(s, "alice@localhost", &items, &n, &v), 0);
    assert_null(items);
    assert_int_equal(n, 0);
    assert_true(v == 0);
    /* Bob's roster is untouched. */
    assert_int_equal(kr_roster_count(s, "bob@localhost", &n), 0);
    assert_int_equal(n, 1);
    kr_store_close(s);
}

/* ---- records written directly into the map stores ---------------------------------------- */

typedef struct field {
    const char *key;
    const char *value;
    size_t len; /* 0: strlen(value) */
} field;

/* Store a record of the given fields as user's roster item for contact. */
static void put_record(kr_store *s, const char *user, const char *contact, const field *fields,
                       size_t n)
{
    kr_buf b = KR_BUF_INIT;
    kr_record_begin(&b);
    for (size_t i = 0; i < n; i++)
        kr_record_add(&b, fields[i].key, fields[i].value,
                      fields[i].len ? fields[i].len : strlen(fields[i].value));
    kr_record_end(&b);
    assert_int_equal(kr_store_map_put(s, KR_ROSTER_STORE, user, contact, b.data, b.len), 0);
    kr_buf_clear(&b);
}

static void put_version_text(kr_store *s, const char *user, const char *text)
{
    assert_int_equal(
        kr_store_map_put(s, KR_ROSTER_META_STORE, user, KR_ROSTER_VERSION_KEY, text, strlen(text)),
        0);
}

static void test_roster_reads_records_as_migration_3_wrote_them(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    /* Field lists of the records test_store.c checks migration 3 writes from a schema-2 file;
     * a field this version does not know is skipped. */
    const field carol[] = {{"name", "Carol", 0},    {"sub", "3", 0},
                           {"ask", "1", 0},         {"pending_in", "1", 0},
                           {"approved", "1", 0},    {"pending_in_xml", "<presence/>", 0},
                           {"group", "Friends", 0}, {"group", "Work", 0}};
    const field dave[] = {{"sub", "0", 0}};
    const field eve[] = {{"name", "", 0},      {"sub", "1", 0},         {"approved", "1", 0},
                         {"group", "A", 0},    {"later_field", "x", 0}, {"group", "", 0},
                         {"group", "\xff", 0}, {"group", "Z", 0}};
    put_record(s, "alice@localhost", "carol@example.org", carol, 8);
    put_record(s, "alice@localhost", "dave@example.org", dave, 1);
    put_record(s, "alice@localhost", "eve@example.org", eve, 8);
    put_version_text(s, "alice@localhost", "1700000000005");

    kr_roster_item *items;
    size_t n;
    uint64_t version = 0;
    assert_int_equal(kr_roster_list(s, "alice@localhost", &items, &n, &version), 0);
    assert_int_equal(n, 3);
    assert_true(version == 1700000000005ULL);
    assert_string_equal(items[0].contact, "carol@example.org");
    assert_string_equal(items[0].name, "Carol");
    assert_int_equal(items[0].sub, KR_SUB_BOTH);
    assert_true(items[0].ask && items[0].pending_in && items[0].approved);
    assert_string_equal(items[0].pending_in_xml, "<presence/>");
    assert_int_equal(items[0].group_count, 2);
    assert_string_equal(items[0].groups[0], "Friends");
    assert_string_equal(items[0].groups[1], "Work");
    assert_string_equal(items[1].contact, "dave@example.org");
    assert_null(items[1].name);
    assert_int_equal(items[1].sub, KR_SUB_NONE);
    assert_false(items[1].ask || items[1].pending_in || items[1].approved);
    assert_null(items[1].pending_in_xml);
    assert_int_equal(items[1].group_count, 0);
    assert_string_equal(items[2].contact, "eve@example.org");
    assert_string_equal(items[2].name, "");
    assert_int_equal(items[2].sub, KR_SUB_TO);
    assert_true(items[2].approved && !items[2].ask && !items[2].pending_in);
    assert_int_equal(items[2].group_count, 4);
    assert_string_equal(items[2].groups[0], "A");
    assert_string_equal(items[2].groups[1], "");
    assert_string_equal(items[2].groups[2], "\xff");
    assert_string_equal(items[2].groups[3], "Z");
    kr_roster_items_free(items, n);
    /* The counter goes on from the stored version. */
    put_item(s, "alice@localhost", "frank@example.org", NULL, 0, &version);
    assert_true(version == 1700000000006ULL);
    kr_store_close(s);
}

static void test_roster_garbage_record_is_estore_not_a_half_filled_item(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    char *g[] = {"grp"};
    uint64_t v = 0;
    put_item(s, "alice@localhost", "good@localhost", g, 1, &v);
    /* Starts like a record with a "name" field, then its value runs past the end. */
    const char garbage[] = {1, 4, 'n', 'a', 'm', 'e', 100, 'X', '\xff', 0};
    assert_int_equal(kr_store_map_put(s, KR_ROSTER_STORE, "alice@localhost", "bad@localhost",
                                      garbage, sizeof garbage),
                     0);
    kr_roster_item got;
    memset(&got, 0xa5, sizeof got);
    assert_int_equal(kr_roster_get(s, "alice@localhost", "bad@localhost", &got), KR_ESTORE);
    assert_item_empty(&got);
    kr_roster_item *items = (kr_roster_item *)1;
    size_t n = 99;
    uint64_t listed = 99;
    assert_int_equal(kr_roster_list(s, "alice@localhost", &items, &n, &listed), KR_ESTORE);
    assert_null(items);
    assert_int_equal(n, 0);
    assert_true(listed == 0);
    /* The good item is still read alone, and the list works again once the bad one is gone. */
    assert_int_equal(kr_roster_get(s, "alice@localhost", "good@localhost", &got), 0);
    assert_string_equal(got.groups[0], "grp");
    kr_roster_item_clear(&got);
    assert_int_equal(kr_roster_remove(s, "alice@localhost", "bad@localhost", NULL), 0);
    assert_int_equal(kr_roster_list(s, "alice@localhost", &items, &n, &listed), 0);
    assert_int_equal(n, 1);
    assert_true(listed == v + 1);
    kr_roster_items_free(items, n);
    /* An empty value is not a record either. */
    assert_int_equal(
        kr_store_map_put(s, KR_ROSTER_STORE, "alice@localhost", "empty@localhost", NULL, 0), 0);
    assert_int_equal(kr_roster_get(s, "alice@localhost", "empty@localhost", &got), KR_ESTORE);
    assert_item_empty(&got);
    kr_store_close(s);
}

static void test_roster_records_with_bad_fields_are_estore(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    /* Well-formed records whose fields break the list of roster_store.h; each but the last
     * has fields before the bad one, which must not reach the caller. */
    const field no_sub[] = {{"name", "A", 0}, {"group", "g", 0}};
    const field sub_4[] = {{"name", "A", 0}, {"sub", "4", 0}};
    const field sub_text[] = {{"name", "A", 0}, {"sub", "both", 0}};
    const field two_subs[] = {{"sub", "1", 0}, {"group", "g", 0}, {"sub", "2", 0}};
    const field two_names[] = {{"name", "A", 0}, {"sub", "1", 0}, {"name", "B", 0}};
    const field flag_2[] = {{"name", "A", 0}, {"sub", "1", 0}, {"ask", "2", 0}};
    const field nul_group[] = {{"name", "A", 0}, {"sub", "1", 0}, {"group", "a\0b", 3}};
    const field nul_name[] = {{"sub", "1", 0}, {"name", "a\0b", 3}};
    const struct {
        const field *fields;
        size_t n;
    } bad[] = {{no_sub, 2},    {sub_4, 2},  {sub_text, 2},  {two_subs, 3},
               {two_names, 3}, {flag_2, 3}, {nul_group, 3}, {nul_name, 2}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        put_record(s, "alice@localhost", "bad@localhost", bad[i].fields, bad[i].n);
        kr_roster_item got;
        memset(&got, 0xa5, sizeof got);
        if (kr_roster_get(s, "alice@localhost", "bad@localhost", &got) != KR_ESTORE)
            fail_msg("record %zu was not refused", i);
        assert_item_empty(&got);
        kr_roster_item *items = (kr_roster_item *)1;
        size_t n = 99;
        uint64_t v = 99;
        assert_int_equal(kr_roster_list(s, "alice@localhost", &items, &n, &v), KR_ESTORE);
        assert_null(items);
        assert_int_equal(n, 0);
    }
    kr_store_close(s);
}

static void test_roster_malformed_version_counter_is_estore_and_put_writes_nothing(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    const char *const bad[] = {
        "", "0", "012", "12a", "-5", "9223372036854775808", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        put_version_text(s, "alice@localhost", bad[i]);
        kr_roster_item *items = (kr_roster_item *)1;
        size_t n = 99;
        uint64_t v = 99;
        if (kr_roster_list(s, "alice@localhost", &items, &n, &v) != KR_ESTORE)
            fail_msg("version \"%s\" was not refused", bad[i]);
        assert_null(items);
        assert_true(v == 0);
        /* The put and its version bump are one transaction: the item is not written. */
        kr_roster_item it = {.contact = "x@localhost"};
        v = 7;
        assert_int_equal(kr_roster_put(s, "alice@localhost", &it, &v), KR_ESTORE);
        assert_true(v == 7);
        assert_int_equal(kr_roster_count(s, "alice@localhost", &n), 0);
        assert_int_equal(n, 0);
    }
    /* The largest counter is read; the next version is one more. */
    put_version_text(s, "alice@localhost", "9223372036854775806");
    assert_true(listed_version(s, "alice@localhost") == 9223372036854775806ULL);
    uint64_t v = 0;
    put_item(s, "alice@localhost", "x@localhost", NULL, 0, &v);
    assert_true(v == 9223372036854775807ULL);
    kr_store_close(s);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    char ms[16];
    snprintf(ms, sizeof ms, "%d", BUSY_MS);
    setenv("KURIER_STORE_BUSY_MS", ms, 1);
    const struct CMUnitTest tests[] = {
        T(test_roster_of_new_user_is_empty_with_version_0),
        T(test_roster_put_then_get_returns_every_field),
        T(test_roster_first_version_comes_from_the_clock),
        T(test_roster_put_replaces_fields_and_groups),
        T(test_roster_version_grows_with_every_change),
        T(test_roster_version_survives_reopen),
        T(test_roster_remove_missing_returns_enoent_and_keeps_version),
        T(test_roster_remove_drops_item_and_its_groups),
        T(test_roster_list_is_sorted_with_groups_on_the_right_items),
        T(test_roster_strings_with_odd_characters_round_trip),
        T(test_roster_put_for_unknown_user_returns_enoent),
        T(test_roster_put_refuses_malformed_item),
        T(test_roster_writes_under_another_write_lock_return_elocked),
        T(test_roster_of_an_account_created_again_starts_empty),
        T(test_roster_reads_records_as_migration_3_wrote_them),
        T(test_roster_garbage_record_is_estore_not_a_half_filled_item),
        T(test_roster_records_with_bad_fields_are_estore),
        T(test_roster_malformed_version_counter_is_estore_and_put_writes_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
