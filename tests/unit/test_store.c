/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Unit tests of the store (src/store: store.c's contract checks, the SQLite
 * driver sqlite.c, the transitional feature functions of compat.c): account
 * create, get, update, delete and list with their error codes, durability
 * across close and reopen, KR_ELOCKED under another connection's write lock,
 * schema creation and migration (from a version-1 file, and from a version-2
 * file with rows in every feature table into the generic stores, checked row by
 * row), kr_account_from_password; the generic map and archive stores and
 * transactions called directly (byte-order prefixes with pattern characters,
 * quotas, every query filter, store-name checks, cascades on account delete,
 * snapshots, two connections on two threads); and, through compat.c, the
 * behaviour the server relies on: rosters with their version counter, offline
 * messages with their quota, XML documents, block lists, and their removal with
 * the account. Each test works in its own temporary directory, removed
 * afterwards. The busy timeout is shortened with KURIER_STORE_BUSY_MS so lock
 * tests take milliseconds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/error.h"
#include "sasl/scram.h"
#include "store/store.h"

/* Roster versions start from the clock in milliseconds (so a re-created account never repeats
 * one): the first version of any roster is at least this (2020-01-01). */
#define KR_TEST_FIRST_VERSION_MIN 1577836800000ULL

#define BUSY_MS 100

typedef struct fixture {
    char dir[64];
    char path[128];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/kr_test_store.XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
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
    c->iterations = 4096 + seed;
    c->salt_len = 16;
    size_t klen = h == KR_SCRAM_SHA1 ? 20 : 32;
    for (size_t i = 0; i < c->salt_len; i++)
        c->salt[i] = (unsigned char)(seed + i);
    for (size_t i = 0; i < klen; i++) {
        c->stored_key[i] = (unsigned char)(seed * 3 + i);
        c->server_key[i] = (unsigned char)(seed * 7 + i + 1);
    }
}

static kr_account make_account(unsigned char seed)
{
    kr_account a;
    fill_creds(&a.sha1, KR_SCRAM_SHA1, seed);
    fill_creds(&a.sha256, KR_SCRAM_SHA256, (unsigned char)(seed + 100));
    return a;
}

static void assert_creds_equal(const kr_scram_creds *x, const kr_scram_creds *y)
{
    size_t klen = x->hash == KR_SCRAM_SHA1 ? 20 : 32;
    assert_int_equal(x->hash, y->hash);
    assert_int_equal(x->iterations, y->iterations);
    assert_int_equal(x->salt_len, y->salt_len);
    assert_memory_equal(x->salt, y->salt, x->salt_len);
    assert_memory_equal(x->stored_key, y->stored_key, klen);
    assert_memory_equal(x->server_key, y->server_key, klen);
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

static sqlite3 *raw_open(const fixture *f)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    return db;
}

static long long raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

typedef struct jid_list {
    char text[256];
    int count;
} jid_list;

static void collect(void *ud, const char *jid)
{
    jid_list *l = ud;
    if (l->count++)
        strncat(l->text, ",", sizeof l->text - strlen(l->text) - 1);
    strncat(l->text, jid, sizeof l->text - strlen(l->text) - 1);
}

static void test_open_creates_file_with_mode_0600(void **state)
{
    fixture *f = *state;
    mode_t old = umask(0);
    kr_store *s = open_ok(f);
    umask(old);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    kr_store_close(s);
}

static void test_open_migrates_empty_file_to_current_schema(void **state)
{
    fixture *f = *state;
    int fd = open(f->path, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);

    kr_store *s = open_ok(f);
    kr_store_close(s);

    sqlite3 *db = raw_open(f);
    assert_true(raw_int(db, "SELECT version FROM schema_version WHERE id = 1") >= 1);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM pragma_table_info('accounts') WHERE name IN"
                                 " ('jid', 'sha1_salt', 'sha1_iterations', 'sha1_stored_key',"
                                 " 'sha1_server_key', 'sha256_salt', 'sha256_iterations',"
                                 " 'sha256_stored_key', 'sha256_server_key', 'created_at')"),
                     10);
    sqlite3_close(db);
}

static void test_open_sets_wal_mode(void **state)
{
    fixture *f = *state;
    kr_store *s = open_ok(f);
    kr_store_close(s);
    sqlite3 *db = raw_open(f);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_open_refuses_newer_schema(void **state)
{
    fixture *f = *state;
    kr_store_close(open_ok(f));
    sqlite3 *db = raw_open(f);
    assert_int_equal(
        sqlite3_exec(db, "UPDATE schema_version SET version = 999999", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);

    kr_store *s = NULL;
    char err[256] = "";
    assert_int_equal(kr_store_open(f->path, &s, err, sizeof err), KR_ESTORE);
    assert_null(s);
    assert_non_null(strstr(err, "999999"));
}

static void test_open_refuses_file_that_is_not_a_database(void **state)
{
    fixture *f = *state;
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    for (int i = 0; i < 200; i++)
        fputs("this is not an SQLite database\n", fp);
    fclose(fp);

    kr_store *s = NULL;
    char err[256] = "";
    assert_int_equal(kr_store_open(f->path, &s, err, sizeof err), KR_ESTORE);
    assert_null(s);
    assert_true(err[0] != '\0');
}

static void test_open_in_missing_directory_fails(void **state)
{
    fixture *f = *state;
    char path[192];
    snprintf(path, sizeof path, "%s/missing/kurier.db", f->dir);
    kr_store *s = NULL;
    char err[256] = "";
    assert_int_equal(kr_store_open(path, &s, err, sizeof err), KR_ESTORE);
    assert_null(s);
    assert_non_null(strstr(err, "missing"));
}

static void test_create_then_get_returns_same_credentials(void **state)
{
    fixture *f = *state;
    kr_store *s = open_ok(f);
    kr_account a = make_account(1), got;
    assert_int_equal(kr_store_account_create(s, "alice@localhost", &a), 0);
    memset(&got, 0xa5, sizeof got);
    assert_int_equal(kr_store_account_get(s, "alice@localhost", &got), 0);
    assert_creds_equal(&got.sha1, &a.sha1);
    assert_creds_equal(&got.sha256, &a.sha256);
    kr_store_close(s);
}

static void test_create_duplicate_returns_eexist(void **state)
{
    fixture *f = *state;
    kr_store *s = open_ok(f);
    kr_account a = make_account(1), b = make_account(2), got;
    assert_int_equal(kr_store_account_create(s, "alice@localhost", &a), 0);
    assert_int_equal(kr_store_account_create(s, "alice@localhost", &b), KR_EEXIST);
    assert_int_equal(kr_store_account_get(s, "alice@localhost", &got), 0);
    assert_creds_equal(&got.sha256, &a.sha256);
    kr_store_close(s);
}

static void test_get_missing_returns_enoent(void **state)
{
    fixture *f = *state;
    kr_store *s = open_ok(f);
    kr_account a = make_account(1), got;
    assert_int_equal(kr_store_account_create(s, "alice@localhost", &a), 0);
    assert_int_equal(kr_store_account_get(s, "bob@localhost", &got), KR_ENOENT);
    kr_store_close(s);
}

static void test_update_replaces_credentials(void **state)
{
    fixture *f = *state;
    kr_store *s = open_ok(f);
    kr_account a = make_account(1), b = make_account(2), got;
    assert_int_equal(kr_store_account_create(s, "alice@localhost", &a), 0);
    assert_int_equal(kr_store_account_update(s, "alice@localhost", &b), 0);
    assert_int_equal(kr_store_account_get(s, "alice@localhost", &got), 0);
    assert_creds_equal(&got.sha1, &b.sha1);
    assert_creds_equal(&got.sha256, &b.sha256);
    kr_store_close(s);
}

static void test_update_missing_returns_enoent(void **state)
{
    fixture *f = *state;
    kr_store *s = open_ok(f);
    kr_account a = make_account(1), got;
    assert_int_equal(kr_store_account_update(s, "alice@localhost", &a), KR_ENOENT);
    assert_int_equal(kr_store_account_get(s, "alice@localhost", &got), KR_ENOENT);
    kr_store_close(s);
}

static void test_delete_removes_account(void **state)
{
    fixture *f = *state;
    kr_store *s = open_ok(f);
    kr_account a = make_account(1), got;
    assert_int_equal(kr_store_account_create(s, "alice@localhost", &a), 0);
    assert_int_equal(kr_store_account_create(s, "bob@localhost", &a), 0);
    assert_int_equal(kr_store_account_delete(s, "alice@localhost"), 0);
    assert_int_equal(kr_store_account_get(s, "alice@localhost", &got), KR_ENOENT);
    assert_int_equal(kr_store_account_get(s, "bob@localhost", &got), 0);
    kr_store_close(s);
}

static void test_delete_missing_returns_enoent(void **state)
{
    fixture *f = *state;
    kr_store *s = open_ok(f);
    assert_int_equal(kr_store_account_delete(s, "alice@localhost"), KR_ENOENT);
    kr_store_close(s);
}

static void test_list_returns_jids_in_order(void **state)
{
    fixture *f = *state;
    kr_store *s = open_ok(f);
    kr_account a = make_account(1);
    assert_int_equal(kr_store_account_create(s, "carol@localhost", &a), 0);
    assert_int_equal(kr_store_account_create(s, "alice@localhost", &a), 0);
    assert_int_equal(kr_store_account_create(s, "bob@example.org", &a), 0);
    jid_list l = {"", 0};
    assert_int_equal(kr_store_account_list(s, collect, &l), 0);
    assert_int_equal(l.count, 3);
    assert_string_equal(l.text, "alice@localhost,bob@example.org,carol@localhost");
    kr_store_close(s);
}

static void test_list_of_empty_store_calls_nothing(void **state)
{
    fixture *f = *state;
    kr_store *s = open_ok(f);
    jid_list l = {"", 0};
    assert_int_equal(kr_store_account_list(s, collect, &l), 0);
    assert_int_equal(l.count, 0);
    kr_store_close(s);
}

static void test_data_survives_close_and_reopen(void **state)
{
    fixture *f = *state;
    kr_store *s = open_ok(f);
    kr_account a = make_account(1), b = make_account(2), got;
    assert_int_equal(kr_store_account_create(s, "alice@localhost", &a), 0);
    assert_int_equal(kr_store_account_create(s, "bob@localhost", &a), 0);
    assert_int_equal(kr_store_account_update(s, "bob@localhost", &b), 0);
    kr_store_close(s);

    s = open_ok(f);
    assert_int_equal(kr_store_account_get(s, "alice@localhost", &got), 0);
    assert_creds_equal(&got.sha1, &a.sha1);
    assert_int_equal(kr_store_account_get(s, "bob@localhost", &got), 0);
    assert_creds_equal(&got.sha256, &b.sha256);
    kr_store_close(s);
}

static void test_writes_under_other_exclusive_lock_return_elocked(void **state)
{
    fixture *f = *state;
    kr_store *s = open_ok(f);
    kr_account a = make_account(1), got;
    assert_int_equal(kr_store_account_create(s, "alice@localhost", &a), 0);

    sqlite3 *other = raw_open(f);
    assert_int_equal(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);

    double t0 = now_ms();
    assert_int_equal(kr_store_account_create(s, "bob@localhost", &a), KR_ELOCKED);
    double waited = now_ms() - t0;
    assert_int_equal(kr_store_account_update(s, "alice@localhost", &a), KR_ELOCKED);
    assert_int_equal(kr_store_account_delete(s, "alice@localhost"), KR_ELOCKED);
    /* The busy timeout came from KURIER_STORE_BUSY_MS, not the 5 s default. */
    assert_true(waited >= BUSY_MS / 2);
    assert_true(waited < 2000);
    /* WAL: readers are not blocked by the writer. */
    assert_int_equal(kr_store_account_get(s, "alice@localhost", &got), 0);

    assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    assert_int_equal(kr_store_account_create(s, "bob@localhost", &a), 0);
    kr_store_close(s);
}

static void test_open_needing_migration_under_other_lock_returns_elocked(void **state)
{
    fixture *f = *state;
    sqlite3 *other = raw_open(f);
    assert_int_equal(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);

    kr_store *s = NULL;
    char err[256] = "";
    assert_int_equal(kr_store_open(f->path, &s, err, sizeof err), KR_ELOCKED);
    assert_null(s);
    assert_non_null(strstr(err, "locked"));

    assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    kr_store_close(open_ok(f));
}

static void test_open_of_current_schema_under_other_lock_succeeds(void **state)
{
    fixture *f = *state;
    kr_store_close(open_ok(f));
    sqlite3 *other = raw_open(f);
    assert_int_equal(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    kr_store *s = open_ok(f);
    jid_list l = {"", 0};
    assert_int_equal(kr_store_account_list(s, collect, &l), 0);
    kr_store_close(s);
    assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
}

static void test_malformed_credentials_are_refused(void **state)
{
    fixture *f = *state;
    kr_store *s = open_ok(f);
    kr_account a = make_account(1), got;
    a.sha256.hash = KR_SCRAM_SHA1;
    assert_int_equal(kr_store_account_create(s, "alice@localhost", &a), KR_EINVAL);
    a = make_account(1);
    a.sha1.salt_len = 0;
    assert_int_equal(kr_store_account_create(s, "alice@localhost", &a), KR_EINVAL);
    a = make_account(1);
    a.sha1.iterations = 0;
    assert_int_equal(kr_store_account_create(s, "alice@localhost", &a), KR_EINVAL);
    assert_int_equal(kr_store_account_get(s, "alice@localhost", &got), KR_ENOENT);
    kr_store_close(s);
}

static void test_account_from_password_derives_both_hashes(void **state)
{
    kr_account a;
    kr_account_from_password(&a, "pencil", 6, 4096);
    assert_int_equal(a.sha1.hash, KR_SCRAM_SHA1);
    assert_int_equal(a.sha256.hash, KR_SCRAM_SHA256);
    assert_int_equal(a.sha1.iterations, 4096);
    assert_int_equal(a.sha256.iterations, 4096);
    assert_true(a.sha1.salt_len >= 16);
    assert_true(a.sha256.salt_len >= 16);
    assert_true(kr_scram_creds_check(&a.sha1, "pencil", 6));
    assert_true(kr_scram_creds_check(&a.sha256, "pencil", 6));
    assert_false(kr_scram_creds_check(&a.sha256, "pencl", 5));
}

/* ---- rosters, offline messages, XML documents, block lists ------------------------------- */

static kr_store *open_with_users(const fixture *f)
{
    kr_store *s = open_ok(f);
    kr_account a = make_account(1);
    assert_int_equal(kr_store_account_create(s, "alice@localhost", &a), 0);
    assert_int_equal(kr_store_account_create(s, "bob@localhost", &a), 0);
    return s;
}

static void put_item(kr_store *s, const char *user, const char *contact, char **groups,
                     size_t ngroups, uint64_t *version)
{
    kr_roster_item it = {0};
    it.contact = (char *)contact;
    it.sub = KR_SUB_BOTH;
    it.groups = groups;
    it.group_count = ngroups;
    assert_int_equal(kr_store_roster_put(s, user, &it, version), 0);
}

/* Rows of user in a table (and, when store is not NULL, in that store), read with SQL. */
static long long count_rows(sqlite3 *db, const char *table, const char *store, const char *user)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE user = ?1%s", table,
             store ? " AND store = ?2" : "");
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC), SQLITE_OK);
    if (store)
        assert_int_equal(sqlite3_bind_text(st, 2, store, -1, SQLITE_STATIC), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

#define LEGACY_TABLES                                                                              \
    "('roster_items', 'roster_groups', 'roster_versions', 'offline_messages', 'xml_documents',"   \
    " 'block_list')"

static void test_schema_version_is_3_with_generic_tables_only(void **state)
{
    fixture *f = *state;
    kr_store_close(open_ok(f));
    sqlite3 *db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT version FROM schema_version WHERE id = 1"), 3);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND"
                                 " name IN ('module_map', 'module_archive')"),
                     2);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name IN " LEGACY_TABLES),
                     0);
    /* The cascade and the per-user queries are index ranges: each index leads with user. */
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND"
                                 " tbl_name = 'module_archive' AND sql LIKE '%(user, store,%'"),
                     3);
    sqlite3_close(db);
}

static void test_open_migrates_version_1_file_keeping_accounts(void **state)
{
    fixture *f = *state;
    sqlite3 *db = raw_open(f);
    const char *v1 =
        "CREATE TABLE schema_version (id INTEGER PRIMARY KEY CHECK (id = 1),"
        " version INTEGER NOT NULL);"
        "INSERT INTO schema_version VALUES (1, 1);"
        "CREATE TABLE accounts (jid TEXT PRIMARY KEY NOT NULL, sha1_salt BLOB NOT NULL,"
        " sha1_iterations INTEGER NOT NULL, sha1_stored_key BLOB NOT NULL,"
        " sha1_server_key BLOB NOT NULL, sha256_salt BLOB NOT NULL,"
        " sha256_iterations INTEGER NOT NULL, sha256_stored_key BLOB NOT NULL,"
        " sha256_server_key BLOB NOT NULL,"
        " created_at INTEGER NOT NULL DEFAULT (unixepoch()));"
        "INSERT INTO accounts (jid, sha1_salt, sha1_iterations, sha1_stored_key,"
        " sha1_server_key, sha256_salt, sha256_iterations, sha256_stored_key, sha256_server_key)"
        " VALUES ('old@localhost', zeroblob(16), 4096, zeroblob(20), zeroblob(20),"
        " zeroblob(16), 4096, zeroblob(32), zeroblob(32));";
    assert_int_equal(sqlite3_exec(db, v1, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    kr_store *s = open_ok(f);
    kr_account got;
    assert_int_equal(kr_store_account_get(s, "old@localhost", &got), 0);
    assert_int_equal(got.sha256.iterations, 4096);
    uint64_t v = 0;
    put_item(s, "old@localhost", "friend@localhost", NULL, 0, &v);
    assert_true(v >= KR_TEST_FIRST_VERSION_MIN);
    assert_int_equal(kr_store_offline_push(s, "old@localhost", "<m/>", 4, 1, 10), 0);
    assert_int_equal(kr_store_block_add(s, "old@localhost", "spam@evil"), 0);
    assert_int_equal(kr_store_xml_put(s, "old@localhost", "vcard", "<v/>", 4), 0);
    kr_store_close(s);

    db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT version FROM schema_version WHERE id = 1"), 3);
    sqlite3_close(db);
}

static void test_roster_of_new_user_is_empty_with_version_0(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    kr_roster_item *items = (kr_roster_item *)1;
    size_t n = 99;
    uint64_t v = 99;
    assert_int_equal(kr_store_roster_list(s, "alice@localhost", &items, &n, &v), 0);
    assert_null(items);
    assert_int_equal(n, 0);
    assert_int_equal(v, 0);
    assert_int_equal(kr_store_roster_count(s, "alice@localhost", &n), 0);
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
    assert_int_equal(kr_store_roster_put(s, "alice@localhost", &it, &v), 0);
    assert_true(v >= KR_TEST_FIRST_VERSION_MIN);

    kr_roster_item got;
    assert_int_equal(kr_store_roster_get(s, "alice@localhost", "carol@example.org", &got), 0);
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
    assert_null(got.contact);

    /* Not in bob's roster. */
    assert_int_equal(kr_store_roster_get(s, "bob@localhost", "carol@example.org", &got), KR_ENOENT);
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
                         .pending_in_xml = "<x/>",
                         .groups = g1,
                         .group_count = 3};
    assert_int_equal(kr_store_roster_put(s, "alice@localhost", &it, NULL), 0);
    char *g2[] = {"Z"};
    kr_roster_item it2 = {
        .contact = "bob@localhost", .sub = KR_SUB_NONE, .groups = g2, .group_count = 1};
    assert_int_equal(kr_store_roster_put(s, "alice@localhost", &it2, NULL), 0);

    kr_roster_item got;
    assert_int_equal(kr_store_roster_get(s, "alice@localhost", "bob@localhost", &got), 0);
    assert_null(got.name);
    assert_null(got.pending_in_xml);
    assert_int_equal(got.sub, KR_SUB_NONE);
    assert_false(got.ask);
    assert_int_equal(got.group_count, 1);
    assert_string_equal(got.groups[0], "Z");
    kr_roster_item_clear(&got);
    size_t n = 0;
    assert_int_equal(kr_store_roster_count(s, "alice@localhost", &n), 0);
    assert_int_equal(n, 1);
    kr_store_close(s);
}

static void test_roster_version_grows_with_every_change(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    uint64_t v1 = 0, v2 = 0, v3 = 0, v4 = 0, listed = 0, bobv = 0;
    put_item(s, "alice@localhost", "x@localhost", NULL, 0, &v1);
    put_item(s, "alice@localhost", "y@localhost", NULL, 0, &v2);
    put_item(s, "alice@localhost", "x@localhost", NULL, 0, &v3);
    assert_int_equal(kr_store_roster_remove(s, "alice@localhost", "y@localhost", &v4), 0);
    assert_true(v1 > 0);
    assert_true(v2 > v1);
    assert_true(v3 > v2);
    assert_true(v4 > v3);
    kr_roster_item *items;
    size_t n;
    assert_int_equal(kr_store_roster_list(s, "alice@localhost", &items, &n, &listed), 0);
    assert_int_equal(listed, v4);
    assert_int_equal(n, 1);
    kr_roster_items_free(items, n);
    /* Counters are per user: bob's first change does not continue alice's count. */
    put_item(s, "bob@localhost", "x@localhost", NULL, 0, &bobv);
    assert_true(bobv >= KR_TEST_FIRST_VERSION_MIN && bobv % 1000 == 0 && v4 % 1000 == 3);
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
    put_item(s, "alice@localhost", "z@localhost", NULL, 0, &after);
    assert_int_equal(after, v + 1);
    kr_store_close(s);
}

static void test_roster_remove_missing_returns_enoent_and_keeps_version(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    uint64_t v = 0, v2 = 12345, listed = 0;
    put_item(s, "alice@localhost", "x@localhost", NULL, 0, &v);
    assert_int_equal(kr_store_roster_remove(s, "alice@localhost", "nobody@localhost", &v2),
                     KR_ENOENT);
    assert_int_equal(v2, 12345);
    kr_roster_item *items;
    size_t n;
    assert_int_equal(kr_store_roster_list(s, "alice@localhost", &items, &n, &listed), 0);
    assert_int_equal(listed, v);
    kr_roster_items_free(items, n);
    kr_store_close(s);
}

static void test_roster_remove_drops_item_and_its_groups(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    char *g[] = {"G1", "G2"};
    put_item(s, "alice@localhost", "x@localhost", g, 2, NULL);
    assert_int_equal(kr_store_roster_remove(s, "alice@localhost", "x@localhost", NULL), 0);
    kr_roster_item got;
    assert_int_equal(kr_store_roster_get(s, "alice@localhost", "x@localhost", &got), KR_ENOENT);
    put_item(s, "alice@localhost", "x@localhost", NULL, 0, NULL);
    assert_int_equal(kr_store_roster_get(s, "alice@localhost", "x@localhost", &got), 0);
    assert_int_equal(got.group_count, 0);
    kr_roster_item_clear(&got);
    kr_store_close(s);
    sqlite3 *db = raw_open(f);
    assert_int_equal(count_rows(db, "module_map", "roster", "alice@localhost"), 1);
    sqlite3_close(db);
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
    assert_int_equal(kr_store_roster_list(s, "alice@localhost", &items, &n, &v), 0);
    assert_int_equal(n, 3);
    assert_int_equal(v, first + 2);
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
    kr_store_close(s);
}

static void test_roster_strings_with_odd_characters_round_trip(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    char *groups[] = {"a,b;c",
                      "it's \"quoted\"",
                      "'); DROP TABLE roster_items; --",
                      "line\nbreak\ttab",
                      "%_*?[",
                      "\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80",
                      "",
                      "\xff\xfe not utf-8"};
    size_t ng = sizeof groups / sizeof groups[0];
    kr_roster_item it = {.contact = "o'brien@localhost",
                         .name = "x'); --",
                         .pending_in_xml = "<p a=\"'\">\x01</p>",
                         .groups = groups,
                         .group_count = ng};
    assert_int_equal(kr_store_roster_put(s, "alice@localhost", &it, NULL), 0);
    kr_roster_item *items;
    size_t n;
    uint64_t v;
    assert_int_equal(kr_store_roster_list(s, "alice@localhost", &items, &n, &v), 0);
    assert_int_equal(n, 1);
    assert_string_equal(items[0].contact, "o'brien@localhost");
    assert_string_equal(items[0].name, "x'); --");
    assert_string_equal(items[0].pending_in_xml, "<p a=\"'\">\x01</p>");
    assert_int_equal(items[0].group_count, ng);
    for (size_t i = 0; i < ng; i++)
        assert_string_equal(items[0].groups[i], groups[i]);
    kr_roster_items_free(items, n);
    kr_store_close(s);
}

static void test_roster_put_for_unknown_user_returns_enoent(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    kr_roster_item it = {.contact = "x@localhost"};
    uint64_t v = 7;
    assert_int_equal(kr_store_roster_put(s, "ghost@localhost", &it, &v), KR_ENOENT);
    assert_int_equal(v, 7);
    size_t n = 1;
    assert_int_equal(kr_store_roster_count(s, "ghost@localhost", &n), 0);
    assert_int_equal(n, 0);
    kr_store_close(s);
}

static void test_roster_put_refuses_malformed_item(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    kr_roster_item it = {.contact = NULL};
    assert_int_equal(kr_store_roster_put(s, "alice@localhost", &it, NULL), KR_EINVAL);
    it.contact = "x@localhost";
    it.sub = (kr_subscription)4;
    assert_int_equal(kr_store_roster_put(s, "alice@localhost", &it, NULL), KR_EINVAL);
    char *groups[] = {"ok", NULL};
    it.sub = KR_SUB_TO;
    it.groups = groups;
    it.group_count = 2;
    assert_int_equal(kr_store_roster_put(s, "alice@localhost", &it, NULL), KR_EINVAL);
    size_t n = 1;
    assert_int_equal(kr_store_roster_count(s, "alice@localhost", &n), 0);
    assert_int_equal(n, 0);
    kr_store_close(s);
}

static void test_offline_list_returns_oldest_first_with_exact_bytes(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    const char bin[] = {'<', 'm', '>', '\0', '\'', '\xff', '<', '/', 'm', '>'};
    assert_int_equal(kr_store_offline_push(s, "alice@localhost", "<m>1</m>", 8, 1000, 10), 0);
    assert_int_equal(kr_store_offline_push(s, "bob@localhost", "<m>b</m>", 8, 1500, 10), 0);
    assert_int_equal(kr_store_offline_push(s, "alice@localhost", bin, sizeof bin, 500, 10), 0);
    assert_int_equal(kr_store_offline_push(s, "alice@localhost", "<m>3</m>", 8, 3000, 10), 0);
    kr_offline_msg *m;
    size_t n;
    assert_int_equal(kr_store_offline_list(s, "alice@localhost", 100, &m, &n), 0);
    assert_int_equal(n, 3);
    assert_true(m[0].id < m[1].id && m[1].id < m[2].id);
    assert_int_equal(m[0].stamp, 1000);
    assert_int_equal(m[0].len, 8);
    assert_string_equal(m[0].xml, "<m>1</m>");
    assert_int_equal(m[1].stamp, 500);
    assert_int_equal(m[1].len, sizeof bin);
    assert_memory_equal(m[1].xml, bin, sizeof bin);
    assert_int_equal(m[1].xml[sizeof bin], '\0');
    assert_string_equal(m[2].xml, "<m>3</m>");
    kr_offline_msgs_free(m, n);

    assert_int_equal(kr_store_offline_list(s, "alice@localhost", 2, &m, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(m[0].xml, "<m>1</m>");
    kr_offline_msgs_free(m, n);
    assert_int_equal(kr_store_offline_list(s, "carol@localhost", 10, &m, &n), 0);
    assert_int_equal(n, 0);
    assert_null(m);
    kr_store_close(s);
}

static void test_offline_quota_refuses_then_accepts_after_delete_upto(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    for (int i = 0; i < 3; i++)
        assert_int_equal(kr_store_offline_push(s, "alice@localhost", "<m/>", 4, i, 3), 0);
    assert_int_equal(kr_store_offline_push(s, "alice@localhost", "<over/>", 7, 9, 3), KR_ELIMIT);
    /* Other users have their own quota. */
    assert_int_equal(kr_store_offline_push(s, "bob@localhost", "<m/>", 4, 1, 3), 0);
    size_t n = 0;
    assert_int_equal(kr_store_offline_count(s, "alice@localhost", &n), 0);
    assert_int_equal(n, 3);

    kr_offline_msg *m;
    assert_int_equal(kr_store_offline_list(s, "alice@localhost", 2, &m, &n), 0);
    assert_int_equal(n, 2);
    int64_t upto = m[1].id;
    kr_offline_msgs_free(m, n);
    assert_int_equal(kr_store_offline_delete_upto(s, "alice@localhost", upto), 0);
    assert_int_equal(kr_store_offline_count(s, "alice@localhost", &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(kr_store_offline_push(s, "alice@localhost", "<late/>", 7, 10, 3), 0);
    assert_int_equal(kr_store_offline_count(s, "alice@localhost", &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(kr_store_offline_count(s, "bob@localhost", &n), 0);
    assert_int_equal(n, 1);
    kr_store_close(s);
}

static void test_offline_delete_upto_leaves_newer_and_other_users(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    assert_int_equal(kr_store_offline_push(s, "alice@localhost", "<a1/>", 5, 1, 10), 0);
    assert_int_equal(kr_store_offline_push(s, "bob@localhost", "<b1/>", 5, 2, 10), 0);
    assert_int_equal(kr_store_offline_push(s, "alice@localhost", "<a2/>", 5, 3, 10), 0);
    kr_offline_msg *m;
    size_t n;
    assert_int_equal(kr_store_offline_list(s, "alice@localhost", 1, &m, &n), 0);
    assert_int_equal(n, 1);
    int64_t first = m[0].id;
    kr_offline_msgs_free(m, n);
    /* Bob's message has a larger id than alice's first: it must stay. */
    assert_int_equal(kr_store_offline_delete_upto(s, "alice@localhost", first + 1), 0);
    assert_int_equal(kr_store_offline_list(s, "alice@localhost", 10, &m, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(m[0].xml, "<a2/>");
    kr_offline_msgs_free(m, n);
    assert_int_equal(kr_store_offline_count(s, "bob@localhost", &n), 0);
    assert_int_equal(n, 1);
    kr_store_close(s);
}

static void test_offline_push_is_on_disk_after_return(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    assert_int_equal(kr_store_offline_push(s, "alice@localhost", "<m/>", 4, 42, 10), 0);
    /* Another connection sees the committed row while s is still open. */
    sqlite3 *db = raw_open(f);
    assert_int_equal(count_rows(db, "module_archive", "offline", "alice@localhost"), 1);
    sqlite3_close(db);
    kr_store_close(s);
}

static void test_offline_push_for_unknown_user_returns_enoent(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    assert_int_equal(kr_store_offline_push(s, "ghost@localhost", "<m/>", 4, 1, 10), KR_ENOENT);
    kr_store_close(s);
}

static void test_xml_put_get_replace_and_missing(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    char *xml = (char *)1;
    size_t len = 99;
    assert_int_equal(kr_store_xml_get(s, "alice@localhost", "vcard", &xml, &len), KR_ENOENT);
    assert_null(xml);
    assert_int_equal(kr_store_xml_put(s, "alice@localhost", "vcard", "<vCard/>", 8), 0);
    assert_int_equal(kr_store_xml_put(s, "alice@localhost", "vcard", "<vCard>2</vCard>", 16), 0);
    assert_int_equal(kr_store_xml_get(s, "alice@localhost", "vcard", &xml, &len), 0);
    assert_int_equal(len, 16);
    assert_string_equal(xml, "<vCard>2</vCard>");
    free(xml);
    assert_int_equal(kr_store_xml_get(s, "bob@localhost", "vcard", &xml, &len), KR_ENOENT);
    const char *key = "private jabber:iq:private' -- x";
    assert_int_equal(kr_store_xml_put(s, "alice@localhost", key, "", 0), 0);
    assert_int_equal(kr_store_xml_get(s, "alice@localhost", key, &xml, &len), 0);
    assert_int_equal(len, 0);
    assert_string_equal(xml, "");
    free(xml);
    assert_int_equal(kr_store_xml_put(s, "ghost@localhost", "vcard", "<v/>", 4), KR_ENOENT);
    kr_store_close(s);
}

static void test_xml_size_sums_bytes_of_keys_with_prefix(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    assert_int_equal(kr_store_xml_put(s, "alice@localhost", "vcard", "0123456789", 10), 0);
    assert_int_equal(kr_store_xml_put(s, "alice@localhost", "private a b", "\xc3\xa9\xc3\xa9", 4),
                     0);
    assert_int_equal(kr_store_xml_put(s, "alice@localhost", "private c d", "xyz", 3), 0);
    assert_int_equal(kr_store_xml_put(s, "alice@localhost", "privateX", "12345", 5), 0);
    assert_int_equal(kr_store_xml_put(s, "bob@localhost", "private a b", "1234567", 7), 0);
    size_t bytes = 99;
    assert_int_equal(kr_store_xml_size(s, "alice@localhost", "private ", &bytes), 0);
    assert_int_equal(bytes, 7);
    assert_int_equal(kr_store_xml_size(s, "alice@localhost", "", &bytes), 0);
    assert_int_equal(bytes, 22);
    /* Pattern characters in the prefix are literal. */
    assert_int_equal(kr_store_xml_size(s, "alice@localhost", "private_", &bytes), 0);
    assert_int_equal(bytes, 0);
    assert_int_equal(kr_store_xml_size(s, "alice@localhost", "%", &bytes), 0);
    assert_int_equal(bytes, 0);
    assert_int_equal(kr_store_xml_size(s, "carol@localhost", "", &bytes), 0);
    assert_int_equal(bytes, 0);
    kr_store_close(s);
}

static void free_jids(char **jids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(jids[i]);
    free(jids);
}

static void test_block_add_is_idempotent_and_list_sorted(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    assert_int_equal(kr_store_block_add(s, "alice@localhost", "z@evil"), 0);
    assert_int_equal(kr_store_block_add(s, "alice@localhost", "evil.example"), 0);
    assert_int_equal(kr_store_block_add(s, "alice@localhost", "z@evil"), 0);
    assert_int_equal(kr_store_block_add(s, "alice@localhost", "a@evil/res'; --"), 0);
    assert_int_equal(kr_store_block_add(s, "bob@localhost", "b@evil"), 0);
    char **jids = (char **)1;
    size_t n = 0;
    assert_int_equal(kr_store_block_list(s, "alice@localhost", &jids, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(jids[0], "a@evil/res'; --");
    assert_string_equal(jids[1], "evil.example");
    assert_string_equal(jids[2], "z@evil");
    free_jids(jids, n);
    assert_int_equal(kr_store_block_add(s, "ghost@localhost", "x@evil"), KR_ENOENT);
    kr_store_close(s);
}

static void test_block_remove_one_then_all(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    assert_int_equal(kr_store_block_add(s, "alice@localhost", "a@evil"), 0);
    assert_int_equal(kr_store_block_add(s, "alice@localhost", "b@evil"), 0);
    assert_int_equal(kr_store_block_add(s, "alice@localhost", "c@evil"), 0);
    assert_int_equal(kr_store_block_add(s, "bob@localhost", "a@evil"), 0);
    assert_int_equal(kr_store_block_remove(s, "alice@localhost", "b@evil"), 0);
    assert_int_equal(kr_store_block_remove(s, "alice@localhost", "not@there"), 0);
    char **jids;
    size_t n;
    assert_int_equal(kr_store_block_list(s, "alice@localhost", &jids, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(jids[0], "a@evil");
    assert_string_equal(jids[1], "c@evil");
    free_jids(jids, n);
    assert_int_equal(kr_store_block_remove(s, "alice@localhost", NULL), 0);
    assert_int_equal(kr_store_block_list(s, "alice@localhost", &jids, &n), 0);
    assert_int_equal(n, 0);
    assert_null(jids);
    assert_int_equal(kr_store_block_remove(s, "alice@localhost", NULL), 0);
    assert_int_equal(kr_store_block_list(s, "bob@localhost", &jids, &n), 0);
    assert_int_equal(n, 1);
    free_jids(jids, n);
    kr_store_close(s);
}

static void fill_user(kr_store *s, const char *user)
{
    char *g[] = {"grp"};
    put_item(s, user, "friend@localhost", g, 1, NULL);
    assert_int_equal(kr_store_offline_push(s, user, "<m/>", 4, 1, 10), 0);
    assert_int_equal(kr_store_xml_put(s, user, "vcard", "<v/>", 4), 0);
    assert_int_equal(kr_store_block_add(s, user, "spam@evil"), 0);
}

static void test_account_delete_removes_every_row_of_that_user_only(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    fill_user(s, "alice@localhost");
    fill_user(s, "bob@localhost");
    assert_int_equal(kr_store_account_delete(s, "alice@localhost"), 0);

    /* Bob keeps his roster item, roster version, vCard and block entry (four map rows) and his
     * offline message. */
    sqlite3 *db = raw_open(f);
    assert_int_equal(count_rows(db, "module_map", NULL, "alice@localhost"), 0);
    assert_int_equal(count_rows(db, "module_archive", NULL, "alice@localhost"), 0);
    assert_int_equal(count_rows(db, "module_map", NULL, "bob@localhost"), 4);
    assert_int_equal(count_rows(db, "module_archive", NULL, "bob@localhost"), 1);
    /* Every table with a user column is covered above. */
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master m,"
                                 " pragma_table_info(m.name) p"
                                 " WHERE m.type = 'table' AND p.name = 'user'"),
                     2);
    sqlite3_close(db);

    /* A new account under the same name starts from nothing. */
    kr_account a = make_account(3);
    assert_int_equal(kr_store_account_create(s, "alice@localhost", &a), 0);
    kr_roster_item *items;
    size_t n;
    uint64_t v = 99;
    assert_int_equal(kr_store_roster_list(s, "alice@localhost", &items, &n, &v), 0);
    assert_int_equal(n, 0);
    assert_int_equal(v, 0);
    kr_store_close(s);
}

static void test_new_writes_under_other_exclusive_lock_return_elocked(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    sqlite3 *other = raw_open(f);
    assert_int_equal(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    kr_roster_item it = {.contact = "x@localhost"};
    assert_int_equal(kr_store_roster_put(s, "alice@localhost", &it, NULL), KR_ELOCKED);
    assert_int_equal(kr_store_offline_push(s, "alice@localhost", "<m/>", 4, 1, 10), KR_ELOCKED);
    assert_int_equal(kr_store_block_add(s, "alice@localhost", "x@evil"), KR_ELOCKED);
    assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    /* No transaction was left open: the same calls now succeed. */
    assert_int_equal(kr_store_roster_put(s, "alice@localhost", &it, NULL), 0);
    assert_int_equal(kr_store_offline_push(s, "alice@localhost", "<m/>", 4, 1, 10), 0);
    kr_store_close(s);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    char ms[16];
    snprintf(ms, sizeof ms, "%d", BUSY_MS);
    setenv("KURIER_STORE_BUSY_MS", ms, 1);
    const struct CMUnitTest tests[] = {
        T(test_open_creates_file_with_mode_0600),
        T(test_open_migrates_empty_file_to_current_schema),
        T(test_open_sets_wal_mode),
        T(test_open_refuses_newer_schema),
        T(test_open_refuses_file_that_is_not_a_database),
        T(test_open_in_missing_directory_fails),
        T(test_create_then_get_returns_same_credentials),
        T(test_create_duplicate_returns_eexist),
        T(test_get_missing_returns_enoent),
        T(test_update_replaces_credentials),
        T(test_update_missing_returns_enoent),
        T(test_delete_removes_account),
        T(test_delete_missing_returns_enoent),
        T(test_list_returns_jids_in_order),
        T(test_list_of_empty_store_calls_nothing),
        T(test_data_survives_close_and_reopen),
        T(test_writes_under_other_exclusive_lock_return_elocked),
        T(test_open_needing_migration_under_other_lock_returns_elocked),
        T(test_open_of_current_schema_under_other_lock_succeeds),
        T(test_malformed_credentials_are_refused),
        T(test_schema_version_is_3_with_generic_tables_only),
        T(test_open_migrates_version_1_file_keeping_accounts),
        T(test_roster_of_new_user_is_empty_with_version_0),
        T(test_roster_put_then_get_returns_every_field),
        T(test_roster_put_replaces_fields_and_groups),
        T(test_roster_version_grows_with_every_change),
        T(test_roster_version_survives_reopen),
        T(test_roster_remove_missing_returns_enoent_and_keeps_version),
        T(test_roster_remove_drops_item_and_its_groups),
        T(test_roster_list_is_sorted_with_groups_on_the_right_items),
        T(test_roster_strings_with_odd_characters_round_trip),
        T(test_roster_put_for_unknown_user_returns_enoent),
        T(test_roster_put_refuses_malformed_item),
        T(test_offline_list_returns_oldest_first_with_exact_bytes),
        T(test_offline_quota_refuses_then_accepts_after_delete_upto),
        T(test_offline_delete_upto_leaves_newer_and_other_users),
        T(test_offline_push_is_on_disk_after_return),
        T(test_offline_push_for_unknown_user_returns_enoent),
        T(test_xml_put_get_replace_and_missing),
        T(test_xml_size_sums_bytes_of_keys_with_prefix),
        T(test_block_add_is_idempotent_and_list_sorted),
        T(test_block_remove_one_then_all),
        T(test_account_delete_removes_every_row_of_that_user_only),
        T(test_new_writes_under_other_exclusive_lock_return_elocked),
        cmocka_unit_test(test_account_from_password_derives_both_hashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
