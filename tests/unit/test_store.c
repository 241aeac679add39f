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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/buf.h"
#include "core/error.h"
#include "core/record.h"
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
    "('roster_items', 'roster_groups', 'roster_versions', 'offline_messages', 'xml_documents',"    \
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

/* ---- the generic stores, called directly ----------------------------------------------- */

typedef struct map_rows {
    char text[512]; /* "key=value;" per row, values as given (tests use printable ones) */
    int count;
    int stop_after; /* return stop_value after this many rows; 0 = never */
    int stop_value;
} map_rows;

static int collect_row(void *ud, const char *key, const char *value, size_t len)
{
    map_rows *r = ud;
    size_t used = strlen(r->text);
    snprintf(r->text + used, sizeof r->text - used, "%s=%.*s;", key, (int)len, value);
    r->count++;
    return r->stop_after && r->count == r->stop_after ? r->stop_value : 0;
}

static map_rows list_map(kr_store *s, const char *store, const char *user, const char *prefix)
{
    map_rows r = {"", 0, 0, 0};
    assert_int_equal(kr_store_map_list(s, store, user, prefix, collect_row, &r), 0);
    return r;
}

static void test_map_put_get_replace_delete_and_missing(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    const char bin[] = {'a', '\0', '\xff', '\0'};
    char *v = (char *)1;
    size_t len = 99;
    assert_int_equal(kr_store_map_get(s, "kv", "alice@localhost", "", &v, &len), KR_ENOENT);
    assert_null(v);
    assert_int_equal(len, 0);
    assert_int_equal(kr_store_map_put(s, "kv", "alice@localhost", "", bin, sizeof bin), 0);
    assert_int_equal(kr_store_map_get(s, "kv", "alice@localhost", "", &v, &len), 0);
    assert_int_equal(len, sizeof bin);
    assert_memory_equal(v, bin, sizeof bin);
    assert_int_equal(v[len], '\0');
    free(v);
    /* len may be NULL; a replace keeps one row. */
    assert_int_equal(kr_store_map_put(s, "kv", "alice@localhost", "", "new", 3), 0);
    assert_int_equal(kr_store_map_get(s, "kv", "alice@localhost", "", &v, NULL), 0);
    assert_string_equal(v, "new");
    free(v);
    /* An empty value is a value, not an absent key. */
    assert_int_equal(kr_store_map_put(s, "kv", "alice@localhost", "empty", NULL, 0), 0);
    assert_int_equal(kr_store_map_get(s, "kv", "alice@localhost", "empty", &v, &len), 0);
    assert_int_equal(len, 0);
    assert_string_equal(v, "");
    free(v);
    size_t n = 0;
    assert_int_equal(kr_store_map_count(s, "kv", "alice@localhost", &n), 0);
    assert_int_equal(n, 2);
    /* Same key, other store or other user: separate rows. */
    assert_int_equal(kr_store_map_get(s, "kv2", "alice@localhost", "", &v, &len), KR_ENOENT);
    assert_int_equal(kr_store_map_get(s, "kv", "bob@localhost", "", &v, &len), KR_ENOENT);
    assert_int_equal(kr_store_map_delete(s, "kv", "alice@localhost", ""), 0);
    assert_int_equal(kr_store_map_delete(s, "kv", "alice@localhost", ""), 0); /* absent: fine */
    assert_int_equal(kr_store_map_get(s, "kv", "alice@localhost", "", &v, &len), KR_ENOENT);
    assert_int_equal(kr_store_map_count(s, "kv", "alice@localhost", &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(kr_store_map_put(s, "kv", "alice@localhost", "x", NULL, 1), KR_EINVAL);
    assert_int_equal(kr_store_map_put(s, "kv", "alice@localhost", NULL, "v", 1), KR_EINVAL);
    assert_int_equal(kr_store_map_get(s, "kv", "alice@localhost", NULL, &v, &len), KR_EINVAL);
    kr_store_close(s);
}

static void test_map_writes_for_a_missing_account_return_enoent(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    int64_t id = 5;
    assert_int_equal(kr_store_map_put(s, "kv", "ghost@localhost", "k", "v", 1), KR_ENOENT);
    assert_non_null(strstr(kr_store_errmsg(s), "account"));
    assert_int_equal(kr_store_archive_append(s, "log", "ghost@localhost", 1, NULL, "d", 1, 0, &id),
                     KR_ENOENT);
    assert_int_equal(id, 5);
    assert_int_equal(kr_store_archive_append(s, "log", "ghost@localhost", 1, NULL, "d", 1, 3, &id),
                     KR_ENOENT);
    /* Deletes and reads of a missing account find nothing and fail nothing. */
    assert_int_equal(kr_store_map_delete(s, "kv", "ghost@localhost", NULL), 0);
    assert_int_equal(kr_store_archive_delete_upto(s, "log", "ghost@localhost", INT64_MAX), 0);
    map_rows r = list_map(s, "kv", "ghost@localhost", NULL);
    assert_int_equal(r.count, 0);
    kr_store_close(s);
}

static void put_keys(kr_store *s, const char *store, const char *user, const char *const *keys,
                     size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(kr_store_map_put(s, store, user, keys[i], keys[i], strlen(keys[i])), 0);
}

static void test_map_list_is_in_byte_order_and_prefix_is_literal(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    /* '%' 0x25 < '_' 0x5f < 'b' 0x62 < 0xc3 < 0xff */
    const char *const keys[] = {"b",        "ab",   "a_",        "a%", "a", "\xc3\xa9",
                                "\xff\xff", "\xff", "\xff\xffz", "A",  "",  "a_b"};
    put_keys(s, "m", "alice@localhost", keys, sizeof keys / sizeof keys[0]);
    assert_int_equal(kr_store_map_put(s, "m", "bob@localhost", "a", "bob", 3), 0);
    assert_int_equal(kr_store_map_put(s, "other", "alice@localhost", "a", "other", 5), 0);

    map_rows r = list_map(s, "m", "alice@localhost", NULL);
    assert_int_equal(r.count, 12);
    assert_string_equal(r.text, "=;A=A;a=a;a%=a%;a_=a_;a_b=a_b;ab=ab;b=b;\xc3\xa9=\xc3\xa9;"
                                "\xff=\xff;\xff\xff=\xff\xff;\xff\xffz=\xff\xffz;");
    r = list_map(s, "m", "alice@localhost", "");
    assert_int_equal(r.count, 12);
    r = list_map(s, "m", "alice@localhost", "a");
    assert_string_equal(r.text, "a=a;a%=a%;a_=a_;a_b=a_b;ab=ab;");
    /* Pattern characters of LIKE and GLOB match only themselves. */
    r = list_map(s, "m", "alice@localhost", "a_");
    assert_string_equal(r.text, "a_=a_;a_b=a_b;");
    r = list_map(s, "m", "alice@localhost", "a%");
    assert_string_equal(r.text, "a%=a%;");
    r = list_map(s, "m", "alice@localhost", "%");
    assert_int_equal(r.count, 0);
    r = list_map(s, "m", "alice@localhost", "a*");
    assert_int_equal(r.count, 0);
    /* Case matters; a prefix longer than every key finds nothing. */
    r = list_map(s, "m", "alice@localhost", "A");
    assert_string_equal(r.text, "A=A;");
    r = list_map(s, "m", "alice@localhost", "abc");
    assert_int_equal(r.count, 0);
    /* Prefixes ending in 0xff bytes have no simple upper bound. */
    r = list_map(s, "m", "alice@localhost", "\xff");
    assert_string_equal(r.text, "\xff=\xff;\xff\xff=\xff\xff;\xff\xffz=\xff\xffz;");
    r = list_map(s, "m", "alice@localhost", "\xff\xff");
    assert_string_equal(r.text, "\xff\xff=\xff\xff;\xff\xffz=\xff\xffz;");
    r = list_map(s, "m", "alice@localhost", "\xc3");
    assert_string_equal(r.text, "\xc3\xa9=\xc3\xa9;");
    kr_store_close(s);
}

static void test_map_list_stops_with_the_callbacks_value(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    const char *const keys[] = {"k1", "k2", "k3", "k4"};
    put_keys(s, "m", "alice@localhost", keys, 4);
    map_rows r = {"", 0, 2, 7};
    assert_int_equal(kr_store_map_list(s, "m", "alice@localhost", NULL, collect_row, &r), 7);
    assert_int_equal(r.count, 2);
    map_rows e = {"", 0, 3, KR_EPARSE};
    assert_int_equal(kr_store_map_list(s, "m", "alice@localhost", "k", collect_row, &e), KR_EPARSE);
    assert_int_equal(e.count, 3);
    /* The statement was released: the next walk starts from the beginning. */
    r = list_map(s, "m", "alice@localhost", NULL);
    assert_int_equal(r.count, 4);
    assert_int_equal(kr_store_map_list(s, "m", "alice@localhost", NULL, NULL, NULL), KR_EINVAL);
    kr_store_close(s);
}

static void test_map_size_sums_value_bytes_of_a_literal_byte_prefix(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    assert_int_equal(kr_store_map_put(s, "p", "alice@localhost", "ns a", "12345", 5), 0);
    assert_int_equal(kr_store_map_put(s, "p", "alice@localhost", "ns b", "\0\0\0", 3), 0);
    assert_int_equal(kr_store_map_put(s, "p", "alice@localhost", "nsX", "1234567", 7), 0);
    assert_int_equal(kr_store_map_put(s, "p", "alice@localhost", "n%", "12", 2), 0);
    assert_int_equal(kr_store_map_put(s, "p", "alice@localhost", "n_", "1", 1), 0);
    assert_int_equal(kr_store_map_put(s, "p", "alice@localhost", "\xc3\xa9", "\xc3\xa9", 2), 0);
    assert_int_equal(kr_store_map_put(s, "p", "bob@localhost", "ns a", "1234567890", 10), 0);
    assert_int_equal(kr_store_map_put(s, "q", "alice@localhost", "ns a", "1234567890", 10), 0);
    size_t bytes = 99;
    assert_int_equal(kr_store_map_size(s, "p", "alice@localhost", "ns ", &bytes), 0);
    assert_int_equal(bytes, 8);
    assert_int_equal(kr_store_map_size(s, "p", "alice@localhost", "ns", &bytes), 0);
    assert_int_equal(bytes, 15);
    assert_int_equal(kr_store_map_size(s, "p", "alice@localhost", NULL, &bytes), 0);
    assert_int_equal(bytes, 20);
    assert_int_equal(kr_store_map_size(s, "p", "alice@localhost", "", &bytes), 0);
    assert_int_equal(bytes, 20);
    /* '%' and '_' are themselves: "n%" and "n_" each match one key, not "ns ..." */
    assert_int_equal(kr_store_map_size(s, "p", "alice@localhost", "n%", &bytes), 0);
    assert_int_equal(bytes, 2);
    assert_int_equal(kr_store_map_size(s, "p", "alice@localhost", "n_", &bytes), 0);
    assert_int_equal(bytes, 1);
    assert_int_equal(kr_store_map_size(s, "p", "alice@localhost", "%", &bytes), 0);
    assert_int_equal(bytes, 0);
    assert_int_equal(kr_store_map_size(s, "p", "alice@localhost", "_s", &bytes), 0);
    assert_int_equal(bytes, 0);
    /* Bytes, not characters. */
    assert_int_equal(kr_store_map_size(s, "p", "alice@localhost", "\xc3", &bytes), 0);
    assert_int_equal(bytes, 2);
    assert_int_equal(kr_store_map_size(s, "p", "carol@localhost", "", &bytes), 0);
    assert_int_equal(bytes, 0);
    kr_store_close(s);
}

static void test_map_delete_all_is_per_user_and_store(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    const char *const keys[] = {"x", "y", "z"};
    put_keys(s, "m", "alice@localhost", keys, 3);
    put_keys(s, "n", "alice@localhost", keys, 3);
    put_keys(s, "m", "bob@localhost", keys, 3);
    assert_int_equal(kr_store_map_delete(s, "m", "alice@localhost", NULL), 0);
    size_t n = 9;
    assert_int_equal(kr_store_map_count(s, "m", "alice@localhost", &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(kr_store_map_count(s, "n", "alice@localhost", &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(kr_store_map_count(s, "m", "bob@localhost", &n), 0);
    assert_int_equal(n, 3);
    kr_store_close(s);
}

static void test_store_names_and_arguments_are_checked(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    const char *const bad[] = {"",
                               "Roster",
                               "ro-ster",
                               "ro ster",
                               "r\xc3\xa9",
                               "a.b",
                               "a23456789012345678901234567890123",
                               NULL};
    const char *const good[] = {"a", "roster_meta", "a_1", "0", "a2345678901234567890123456789012"};
    char *v;
    size_t n;
    int64_t id;
    kr_store_archive_filter q = {.max = 10};
    kr_store_archive_entry *e;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *st = bad[i];
        assert_int_equal(kr_store_map_get(s, st, "alice@localhost", "k", &v, NULL), KR_EINVAL);
        assert_int_equal(kr_store_map_put(s, st, "alice@localhost", "k", "v", 1), KR_EINVAL);
        assert_int_equal(kr_store_map_delete(s, st, "alice@localhost", "k"), KR_EINVAL);
        assert_int_equal(kr_store_map_delete(s, st, "alice@localhost", NULL), KR_EINVAL);
        assert_int_equal(kr_store_map_list(s, st, "alice@localhost", NULL, collect_row, NULL),
                         KR_EINVAL);
        assert_int_equal(kr_store_map_count(s, st, "alice@localhost", &n), KR_EINVAL);
        assert_int_equal(kr_store_map_size(s, st, "alice@localhost", "", &n), KR_EINVAL);
        assert_int_equal(kr_store_archive_append(s, st, "alice@localhost", 1, NULL, "d", 1, 0, &id),
                         KR_EINVAL);
        assert_int_equal(kr_store_archive_query(s, st, "alice@localhost", &q, &e, &n), KR_EINVAL);
        assert_int_equal(kr_store_archive_delete_upto(s, st, "alice@localhost", 9), KR_EINVAL);
        assert_int_equal(kr_store_archive_count(s, st, "alice@localhost", &n), KR_EINVAL);
    }
    assert_non_null(strstr(kr_store_errmsg(s), "store name"));
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        assert_int_equal(kr_store_map_put(s, good[i], "alice@localhost", "k", "v", 1), 0);
        assert_int_equal(
            kr_store_archive_append(s, good[i], "alice@localhost", 1, NULL, "d", 1, 0, &id), 0);
    }
    /* A NULL user or query, max 0 and negative id bounds. */
    assert_int_equal(kr_store_map_put(s, "m", NULL, "k", "v", 1), KR_EINVAL);
    assert_int_equal(kr_store_archive_count(s, "a", NULL, &n), KR_EINVAL);
    assert_int_equal(kr_store_archive_query(s, "a", "alice@localhost", NULL, &e, &n), KR_EINVAL);
    q.max = 0;
    assert_int_equal(kr_store_archive_query(s, "a", "alice@localhost", &q, &e, &n), KR_EINVAL);
    q.max = 1;
    q.after_id = -1;
    assert_int_equal(kr_store_archive_query(s, "a", "alice@localhost", &q, &e, &n), KR_EINVAL);
    q.after_id = 0;
    q.before_id = -5;
    assert_int_equal(kr_store_archive_query(s, "a", "alice@localhost", &q, &e, &n), KR_EINVAL);
    assert_int_equal(kr_store_archive_append(s, "a", "alice@localhost", 1, NULL, NULL, 1, 0, &id),
                     KR_EINVAL);
    assert_int_equal(kr_store_archive_count(s, "a", "alice@localhost", &n), 0);
    assert_int_equal(n, 1);
    kr_store_close(s);
}

/* Append one entry and return its id. */
static int64_t append(kr_store *s, const char *store, const char *user, int64_t stamp,
                      const char *with, const char *data)
{
    int64_t id = 0;
    assert_int_equal(
        kr_store_archive_append(s, store, user, stamp, with, data, strlen(data), 0, &id), 0);
    assert_true(id > 0);
    return id;
}

/* The data of the entries q returns, as "data,data,". */
static void query_text(kr_store *s, const char *user, const kr_store_archive_filter *q, char *out,
                       size_t outlen)
{
    kr_store_archive_entry *e = (kr_store_archive_entry *)1;
    size_t n = 99;
    assert_int_equal(kr_store_archive_query(s, "mam", user, q, &e, &n), 0);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t used = strlen(out);
        snprintf(out + used, outlen - used, "%s,", e[i].data);
    }
    if (n == 0)
        assert_null(e);
    kr_store_archive_entries_free(e, n);
}

static void test_archive_append_and_query_return_every_field(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    const char bin[] = {'<', 'm', '>', '\0', '\xff', '<', '/', 'm', '>'};
    int64_t id1 = 0, id2 = 0;
    assert_int_equal(kr_store_archive_append(s, "mam", "alice@localhost", 1700000000123,
                                             "bob@localhost", bin, sizeof bin, 0, &id1),
                     0);
    assert_int_equal(
        kr_store_archive_append(s, "mam", "alice@localhost", -5, NULL, NULL, 0, 0, &id2), 0);
    assert_true(id2 > id1);
    assert_int_equal(kr_store_archive_append(s, "mam", "alice@localhost", 1, NULL, "x", 1, 0, NULL),
                     0);
    kr_store_archive_filter q = {.max = 2};
    kr_store_archive_entry *e;
    size_t n;
    assert_int_equal(kr_store_archive_query(s, "mam", "alice@localhost", &q, &e, &n), 0);
    assert_int_equal(n, 2);
    assert_true(e[0].id == id1);
    assert_true(e[0].stamp == 1700000000123);
    assert_string_equal(e[0].with, "bob@localhost");
    assert_int_equal(e[0].len, sizeof bin);
    assert_memory_equal(e[0].data, bin, sizeof bin);
    assert_int_equal(e[0].data[sizeof bin], '\0');
    assert_true(e[1].id == id2);
    assert_true(e[1].stamp == -5);
    assert_null(e[1].with);
    assert_int_equal(e[1].len, 0);
    assert_string_equal(e[1].data, "");
    kr_store_archive_entries_free(e, n);
    kr_store_archive_entries_free(NULL, 0);
    kr_store_close(s);
}

static void test_archive_query_applies_every_filter(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    /* Stamps out of id order on purpose: filters on stamps must not assume id order. */
    int64_t id[7];
    id[0] = append(s, "mam", "alice@localhost", 1000, "bob@localhost", "m0");
    id[1] = append(s, "mam", "alice@localhost", 2000, "carol@localhost", "m1");
    id[2] = append(s, "mam", "bob@localhost", 2500, "alice@localhost", "bob's");
    id[3] = append(s, "mam", "alice@localhost", 3000, "bob@localhost", "m3");
    id[4] = append(s, "other", "alice@localhost", 3500, "bob@localhost", "other store");
    id[5] = append(s, "mam", "alice@localhost", 2500, NULL, "m5");
    id[6] = append(s, "mam", "alice@localhost", 5000, "bob@localhost/phone", "m6");
    for (int i = 1; i < 7; i++)
        assert_true(id[i] > id[i - 1]);
    char t[256];
    kr_store_archive_filter q = {.max = 100};
    query_text(s, "alice@localhost", &q, t, sizeof t);
    assert_string_equal(t, "m0,m1,m3,m5,m6,");
    q.newest_first = true;
    query_text(s, "alice@localhost", &q, t, sizeof t);
    assert_string_equal(t, "m6,m5,m3,m1,m0,");
    /* max: the oldest max, or the newest max newest first. */
    q.max = 2;
    query_text(s, "alice@localhost", &q, t, sizeof t);
    assert_string_equal(t, "m6,m5,");
    q.newest_first = false;
    query_text(s, "alice@localhost", &q, t, sizeof t);
    assert_string_equal(t, "m0,m1,");
    /* Id bounds are exclusive. */
    q = (kr_store_archive_filter){.max = 100, .after_id = id[1]};
    query_text(s, "alice@localhost", &q, t, sizeof t);
    assert_string_equal(t, "m3,m5,m6,");
    q = (kr_store_archive_filter){.max = 100, .before_id = id[3]};
    query_text(s, "alice@localhost", &q, t, sizeof t);
    assert_string_equal(t, "m0,m1,");
    q = (kr_store_archive_filter){.max = 100, .after_id = id[0], .before_id = id[5]};
    query_text(s, "alice@localhost", &q, t, sizeof t);
    assert_string_equal(t, "m1,m3,");
    /* Paging backwards from the end, as XEP-0313 clients do with <before/>. */
    q = (kr_store_archive_filter){.max = 2, .before_id = id[5], .newest_first = true};
    query_text(s, "alice@localhost", &q, t, sizeof t);
    assert_string_equal(t, "m3,m1,");
    /* Stamp bounds are inclusive. */
    q = (kr_store_archive_filter){.max = 100, .start = 2000};
    query_text(s, "alice@localhost", &q, t, sizeof t);
    assert_string_equal(t, "m1,m3,m5,m6,");
    q = (kr_store_archive_filter){.max = 100, .end = 2500};
    query_text(s, "alice@localhost", &q, t, sizeof t);
    assert_string_equal(t, "m0,m1,m5,");
    q = (kr_store_archive_filter){.max = 100, .start = 2001, .end = 3000};
    query_text(s, "alice@localhost", &q, t, sizeof t);
    assert_string_equal(t, "m3,m5,");
    /* with: exact JID (a full JID is not its bare JID), never the NULL ones. */
    q = (kr_store_archive_filter){.max = 100, .with = "bob@localhost"};
    query_text(s, "alice@localhost", &q, t, sizeof t);
    assert_string_equal(t, "m0,m3,");
    q.newest_first = true;
    q.max = 1;
    query_text(s, "alice@localhost", &q, t, sizeof t);
    assert_string_equal(t, "m3,");
    q = (kr_store_archive_filter){.max = 100, .with = "bob@localhost/phone", .start = 4000};
    query_text(s, "alice@localhost", &q, t, sizeof t);
    assert_string_equal(t, "m6,");
    /* Everything at once. */
    q = (kr_store_archive_filter){.max = 1,
                                  .after_id = id[0],
                                  .before_id = id[6],
                                  .start = 1500,
                                  .end = 4000,
                                  .with = "bob@localhost",
                                  .newest_first = true};
    query_text(s, "alice@localhost", &q, t, sizeof t);
    assert_string_equal(t, "m3,");
    q = (kr_store_archive_filter){.max = 100, .with = "nobody@localhost"};
    query_text(s, "alice@localhost", &q, t, sizeof t);
    assert_string_equal(t, "");
    /* Another user's and another store's entries never show. */
    q = (kr_store_archive_filter){.max = 100};
    query_text(s, "bob@localhost", &q, t, sizeof t);
    assert_string_equal(t, "bob's,");
    kr_store_close(s);
}

static void test_archive_quota_refuses_without_writing(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    int64_t id = 0, last = 0;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(
            kr_store_archive_append(s, "q", "alice@localhost", i, NULL, "d", 1, 3, &id), 0);
        last = id;
    }
    id = 77;
    assert_int_equal(kr_store_archive_append(s, "q", "alice@localhost", 9, NULL, "x", 1, 3, &id),
                     KR_ELIMIT);
    assert_int_equal(id, 77);
    assert_non_null(strstr(kr_store_errmsg(s), "quota"));
    size_t n = 0;
    assert_int_equal(kr_store_archive_count(s, "q", "alice@localhost", &n), 0);
    assert_int_equal(n, 3);
    /* A higher quota, no quota, another store and another user are not limited by it. */
    assert_int_equal(kr_store_archive_append(s, "q", "alice@localhost", 9, NULL, "x", 1, 4, &id),
                     0);
    assert_int_equal(kr_store_archive_append(s, "q", "alice@localhost", 9, NULL, "x", 1, 0, &id),
                     0);
    assert_int_equal(kr_store_archive_append(s, "r", "alice@localhost", 9, NULL, "x", 1, 1, &id),
                     0);
    assert_int_equal(kr_store_archive_append(s, "q", "bob@localhost", 9, NULL, "x", 1, 1, &id), 0);
    assert_int_equal(kr_store_archive_count(s, "q", "alice@localhost", &n), 0);
    assert_int_equal(n, 5);
    /* Deleting makes room again; ids keep growing past deleted ones. */
    assert_int_equal(kr_store_archive_delete_upto(s, "q", "alice@localhost", INT64_MAX), 0);
    assert_int_equal(kr_store_archive_count(s, "q", "alice@localhost", &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(kr_store_archive_count(s, "r", "alice@localhost", &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(kr_store_archive_count(s, "q", "bob@localhost", &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(kr_store_archive_append(s, "q", "alice@localhost", 9, NULL, "x", 1, 1, &id),
                     0);
    assert_true(id > last + 4);
    kr_store_close(s);
}

static void test_archive_delete_upto_is_per_user_and_store(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    int64_t a1 = append(s, "mam", "alice@localhost", 1, NULL, "a1");
    append(s, "mam", "bob@localhost", 2, NULL, "b1");
    append(s, "other", "alice@localhost", 3, NULL, "o1");
    int64_t a2 = append(s, "mam", "alice@localhost", 4, NULL, "a2");
    append(s, "mam", "alice@localhost", 5, NULL, "a3");
    /* Bob's and the other store's ids are inside the range: they stay. */
    assert_int_equal(kr_store_archive_delete_upto(s, "mam", "alice@localhost", a2), 0);
    char t[64];
    kr_store_archive_filter q = {.max = 10};
    query_text(s, "alice@localhost", &q, t, sizeof t);
    assert_string_equal(t, "a3,");
    query_text(s, "bob@localhost", &q, t, sizeof t);
    assert_string_equal(t, "b1,");
    size_t n = 0;
    assert_int_equal(kr_store_archive_count(s, "other", "alice@localhost", &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(kr_store_archive_delete_upto(s, "mam", "alice@localhost", a1), 0);
    assert_int_equal(kr_store_archive_count(s, "mam", "alice@localhost", &n), 0);
    assert_int_equal(n, 1);
    kr_store_close(s);
}

static void test_account_delete_removes_generic_rows_and_a_new_account_starts_empty(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    assert_int_equal(kr_store_map_put(s, "m1", "alice@localhost", "k", "v", 1), 0);
    assert_int_equal(kr_store_map_put(s, "m2", "alice@localhost", "", "v", 1), 0);
    append(s, "a1", "alice@localhost", 1, NULL, "d");
    append(s, "a2", "alice@localhost", 1, "x@y", "d");
    assert_int_equal(kr_store_map_put(s, "m1", "bob@localhost", "k", "v", 1), 0);
    append(s, "a1", "bob@localhost", 1, NULL, "d");
    assert_int_equal(kr_store_account_delete(s, "alice@localhost"), 0);
    kr_account a = make_account(5);
    assert_int_equal(kr_store_account_create(s, "alice@localhost", &a), 0);
    size_t n = 9;
    assert_int_equal(kr_store_map_count(s, "m1", "alice@localhost", &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(kr_store_map_count(s, "m2", "alice@localhost", &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(kr_store_archive_count(s, "a1", "alice@localhost", &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(kr_store_archive_count(s, "a2", "alice@localhost", &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(kr_store_map_count(s, "m1", "bob@localhost", &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(kr_store_archive_count(s, "a1", "bob@localhost", &n), 0);
    assert_int_equal(n, 1);
    kr_store_close(s);
}

/* ---- transactions ------------------------------------------------------------------------ */

static void test_commit_publishes_writes_and_rollback_drops_them(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    kr_store *other = open_ok(f);
    char *v;
    size_t n = 0;
    assert_int_equal(kr_store_begin(s), 0);
    assert_int_equal(kr_store_map_put(s, "m", "alice@localhost", "k", "v1", 2), 0);
    /* With a quota the append checks and inserts inside this transaction, not its own. */
    assert_int_equal(kr_store_archive_append(s, "a", "alice@localhost", 1, NULL, "d", 1, 5, NULL),
                     0);
    assert_int_equal(kr_store_map_get(s, "m", "alice@localhost", "k", &v, NULL), 0); /* own write */
    free(v);
    /* Nothing is visible to another connection before the commit. */
    assert_int_equal(kr_store_map_get(other, "m", "alice@localhost", "k", &v, NULL), KR_ENOENT);
    assert_int_equal(kr_store_archive_count(other, "a", "alice@localhost", &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(kr_store_commit(s), 0);
    assert_int_equal(kr_store_map_get(other, "m", "alice@localhost", "k", &v, NULL), 0);
    assert_string_equal(v, "v1");
    free(v);
    assert_int_equal(kr_store_archive_count(other, "a", "alice@localhost", &n), 0);
    assert_int_equal(n, 1);

    assert_int_equal(kr_store_begin(s), 0);
    assert_int_equal(kr_store_map_put(s, "m", "alice@localhost", "k", "v2", 2), 0);
    assert_int_equal(kr_store_map_delete(s, "m", "alice@localhost", NULL), 0);
    assert_int_equal(kr_store_archive_append(s, "a", "alice@localhost", 2, NULL, "e", 1, 0, NULL),
                     0);
    assert_int_equal(kr_store_archive_delete_upto(s, "a", "alice@localhost", INT64_MAX), 0);
    assert_int_equal(kr_store_rollback(s), 0);
    assert_int_equal(kr_store_map_get(s, "m", "alice@localhost", "k", &v, NULL), 0);
    assert_string_equal(v, "v1");
    free(v);
    assert_int_equal(kr_store_archive_count(s, "a", "alice@localhost", &n), 0);
    assert_int_equal(n, 1);
    kr_store_close(other);
    kr_store_close(s);
}

static void test_transaction_rules_are_enforced(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    assert_int_equal(kr_store_commit(s), KR_EINVAL);
    assert_int_equal(kr_store_rollback(s), KR_EINVAL);
    assert_int_equal(kr_store_begin(s), 0);
    assert_int_equal(kr_store_begin(s), KR_EINVAL);
    assert_int_equal(kr_store_begin_read(s), KR_EINVAL);
    /* A failed call inside leaves the transaction open with what came before it. */
    assert_int_equal(kr_store_map_put(s, "m", "alice@localhost", "k", "v", 1), 0);
    assert_int_equal(kr_store_map_put(s, "m", "ghost@localhost", "k", "v", 1), KR_ENOENT);
    assert_int_equal(kr_store_commit(s), 0);
    size_t n = 0;
    assert_int_equal(kr_store_map_count(s, "m", "alice@localhost", &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(kr_store_commit(s), KR_EINVAL);

    /* No write inside a read transaction, accounts included. */
    kr_account a = make_account(9);
    assert_int_equal(kr_store_begin_read(s), 0);
    assert_int_equal(kr_store_map_put(s, "m", "alice@localhost", "k2", "v", 1), KR_EINVAL);
    assert_int_equal(kr_store_map_delete(s, "m", "alice@localhost", NULL), KR_EINVAL);
    assert_int_equal(kr_store_archive_append(s, "a", "alice@localhost", 1, NULL, "d", 1, 0, NULL),
                     KR_EINVAL);
    assert_int_equal(kr_store_archive_delete_upto(s, "a", "alice@localhost", 1), KR_EINVAL);
    assert_int_equal(kr_store_account_create(s, "carol@localhost", &a), KR_EINVAL);
    assert_int_equal(kr_store_account_update(s, "alice@localhost", &a), KR_EINVAL);
    assert_int_equal(kr_store_account_delete(s, "alice@localhost"), KR_EINVAL);
    assert_int_equal(kr_store_map_count(s, "m", "alice@localhost", &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(kr_store_rollback(s), 0);
    /* Accounts may be written inside a write transaction and go with it. */
    assert_int_equal(kr_store_begin(s), 0);
    assert_int_equal(kr_store_account_create(s, "carol@localhost", &a), 0);
    assert_int_equal(kr_store_map_put(s, "m", "carol@localhost", "k", "v", 1), 0);
    assert_int_equal(kr_store_rollback(s), 0);
    kr_account got;
    assert_int_equal(kr_store_account_get(s, "carol@localhost", &got), KR_ENOENT);
    assert_int_equal(kr_store_map_count(s, "m", "carol@localhost", &n), 0);
    assert_int_equal(n, 0);
    kr_store_close(s);
}

static void test_write_transaction_holds_the_write_lock_until_it_ends(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    kr_store *other = open_ok(f);
    assert_int_equal(kr_store_begin(s), 0);
    /* The lock was taken at begin, before any write. */
    assert_int_equal(kr_store_map_put(other, "m", "bob@localhost", "k", "v", 1), KR_ELOCKED);
    assert_int_equal(kr_store_begin(other), KR_ELOCKED);
    assert_int_equal(kr_store_commit(other), KR_EINVAL); /* the failed begin opened nothing */
    /* Readers are not blocked (WAL). */
    size_t n = 9;
    assert_int_equal(kr_store_map_count(other, "m", "bob@localhost", &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(kr_store_commit(s), 0);
    assert_int_equal(kr_store_map_put(other, "m", "bob@localhost", "k", "v", 1), 0);
    kr_store_close(other);
    kr_store_close(s);
}

static void test_read_transaction_sees_one_snapshot(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    kr_store *other = open_ok(f);
    assert_int_equal(kr_store_map_put(s, "m", "alice@localhost", "k", "v1", 2), 0);
    assert_int_equal(kr_store_begin_read(s), 0);
    char *v;
    assert_int_equal(kr_store_map_get(s, "m", "alice@localhost", "k", &v, NULL), 0);
    assert_string_equal(v, "v1");
    free(v);
    /* Another connection writes meanwhile: it is not blocked, and s does not see it. */
    assert_int_equal(kr_store_map_put(other, "m", "alice@localhost", "k", "v2", 2), 0);
    append(other, "a", "alice@localhost", 1, NULL, "d");
    assert_int_equal(kr_store_map_get(s, "m", "alice@localhost", "k", &v, NULL), 0);
    assert_string_equal(v, "v1");
    free(v);
    size_t n = 9;
    assert_int_equal(kr_store_archive_count(s, "a", "alice@localhost", &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(kr_store_commit(s), 0);
    assert_int_equal(kr_store_map_get(s, "m", "alice@localhost", "k", &v, NULL), 0);
    assert_string_equal(v, "v2");
    free(v);
    kr_store_close(other);
    kr_store_close(s);
}

static void test_close_with_an_open_transaction_rolls_it_back(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    assert_int_equal(kr_store_begin(s), 0);
    assert_int_equal(kr_store_map_put(s, "m", "alice@localhost", "k", "v", 1), 0);
    kr_store_close(s);
    s = open_ok(f);
    size_t n = 9;
    assert_int_equal(kr_store_map_count(s, "m", "alice@localhost", &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(kr_store_map_put(s, "m", "alice@localhost", "k", "v", 1), 0);
    kr_store_close(s);
}

/* ---- two connections on two threads ------------------------------------------------------ */

#define THREAD_ROUNDS 60

typedef struct writer {
    kr_store *s;
    char tag;
    int failures;
    int64_t ids[THREAD_ROUNDS * 2];
    size_t nids;
} writer;

static void *writer_main(void *arg)
{
    writer *w = arg;
    for (int i = 0; i < THREAD_ROUNDS; i++) {
        char key[16];
        snprintf(key, sizeof key, "%c%03d", w->tag, i);
        int64_t id = 0;
        if (kr_store_map_put(w->s, "shared", "alice@localhost", key, key, strlen(key)) != 0)
            w->failures++;
        if (kr_store_archive_append(w->s, "shared", "alice@localhost", i, NULL, key, strlen(key), 0,
                                    &id) == 0)
            w->ids[w->nids++] = id;
        else
            w->failures++;
        /* Every third round also a transaction with a quota check inside. */
        if (i % 3 == 0) {
            snprintf(key, sizeof key, "%c%03dtx", w->tag, i);
            int rc = kr_store_begin(w->s);
            if (rc == 0)
                rc = kr_store_map_put(w->s, "shared", "alice@localhost", key, "t", 1);
            if (rc == 0)
                rc = kr_store_archive_append(w->s, "shared", "alice@localhost", i, "t", key,
                                             strlen(key), 1000, &id);
            if (rc == 0)
                rc = kr_store_commit(w->s);
            else
                kr_store_rollback(w->s);
            if (rc == 0)
                w->ids[w->nids++] = id;
            else
                w->failures++;
        }
    }
    return NULL;
}

static int cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void test_two_connections_write_from_two_threads_without_loss(void **state)
{
    fixture *f = *state;
    kr_store_close(open_with_users(f));
    /* Writers take turns: give each the default 5 s wait, not the tests' 100 ms. */
    setenv("KURIER_STORE_BUSY_MS", "5000", 1);
    writer w[2] = {{.s = open_ok(f), .tag = 'a'}, {.s = open_ok(f), .tag = 'b'}};
    char ms[16];
    snprintf(ms, sizeof ms, "%d", BUSY_MS);
    setenv("KURIER_STORE_BUSY_MS", ms, 1);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, writer_main, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    int per_thread = THREAD_ROUNDS + (THREAD_ROUNDS + 2) / 3;
    assert_int_equal(w[0].failures, 0);
    assert_int_equal(w[1].failures, 0);
    assert_int_equal(w[0].nids, per_thread);
    assert_int_equal(w[1].nids, per_thread);

    kr_store *s = open_ok(f);
    size_t n = 0;
    assert_int_equal(kr_store_map_count(s, "shared", "alice@localhost", &n), 0);
    assert_int_equal(n, 2 * per_thread);
    assert_int_equal(kr_store_archive_count(s, "shared", "alice@localhost", &n), 0);
    assert_int_equal(n, 2 * per_thread);
    /* Every id handed out is distinct, and each is the id of what its thread stored. */
    int64_t all[4 * THREAD_ROUNDS];
    size_t total = 0;
    for (int i = 0; i < 2; i++)
        for (size_t j = 0; j < w[i].nids; j++)
            all[total++] = w[i].ids[j];
    qsort(all, total, sizeof all[0], cmp_id);
    for (size_t i = 1; i < total; i++)
        assert_true(all[i] > all[i - 1]);
    kr_store_archive_filter q = {.max = 1000};
    kr_store_archive_entry *e;
    assert_int_equal(kr_store_archive_query(s, "shared", "alice@localhost", &q, &e, &n), 0);
    assert_int_equal(n, total);
    for (size_t i = 0; i < n; i++)
        assert_true(e[i].id == all[i]);
    kr_store_archive_entries_free(e, n);
    kr_store_close(s);
    kr_store_close(w[0].s);
    kr_store_close(w[1].s);
}

/* ---- migration 3: a version-2 file with rows in every feature table ----------------------- */

/* Schema 2 exactly as migrations[0] and [1] of sqlite.c created it, with the schema_version
 * table migrate_locked adds. */
static const char schema_v2[] =
    "CREATE TABLE schema_version (id INTEGER PRIMARY KEY CHECK (id = 1),"
    " version INTEGER NOT NULL);"
    "INSERT INTO schema_version VALUES (1, 2);"
    "CREATE TABLE accounts ("
    "  jid TEXT PRIMARY KEY NOT NULL,"
    "  sha1_salt BLOB NOT NULL,"
    "  sha1_iterations INTEGER NOT NULL,"
    "  sha1_stored_key BLOB NOT NULL,"
    "  sha1_server_key BLOB NOT NULL,"
    "  sha256_salt BLOB NOT NULL,"
    "  sha256_iterations INTEGER NOT NULL,"
    "  sha256_stored_key BLOB NOT NULL,"
    "  sha256_server_key BLOB NOT NULL,"
    "  created_at INTEGER NOT NULL DEFAULT (unixepoch())"
    ");"
    "CREATE TABLE roster_versions ("
    "  user TEXT PRIMARY KEY NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,"
    "  version INTEGER NOT NULL"
    ");"
    "CREATE TABLE roster_items ("
    "  user TEXT NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,"
    "  contact TEXT NOT NULL,"
    "  name TEXT,"
    "  subscription INTEGER NOT NULL CHECK (subscription BETWEEN 0 AND 3),"
    "  ask INTEGER NOT NULL CHECK (ask IN (0, 1)),"
    "  pending_in INTEGER NOT NULL CHECK (pending_in IN (0, 1)),"
    "  approved INTEGER NOT NULL CHECK (approved IN (0, 1)),"
    "  pending_in_xml TEXT,"
    "  PRIMARY KEY (user, contact)"
    ") WITHOUT ROWID;"
    "CREATE TABLE roster_groups ("
    "  user TEXT NOT NULL,"
    "  contact TEXT NOT NULL,"
    "  position INTEGER NOT NULL,"
    "  name TEXT NOT NULL,"
    "  PRIMARY KEY (user, contact, position),"
    "  FOREIGN KEY (user, contact) REFERENCES roster_items (user, contact) ON DELETE CASCADE"
    ") WITHOUT ROWID;"
    "CREATE TABLE offline_messages ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  user TEXT NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,"
    "  stamp INTEGER NOT NULL,"
    "  xml BLOB NOT NULL"
    ");"
    "CREATE INDEX offline_messages_user_id ON offline_messages (user, id);"
    "CREATE TABLE xml_documents ("
    "  user TEXT NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,"
    "  key TEXT NOT NULL,"
    "  xml BLOB NOT NULL,"
    "  PRIMARY KEY (user, key)"
    ") WITHOUT ROWID;"
    "CREATE TABLE block_list ("
    "  user TEXT NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,"
    "  jid TEXT NOT NULL,"
    "  PRIMARY KEY (user, jid)"
    ") WITHOUT ROWID;";

#define V2_ACCOUNT(jid)                                                                            \
    "INSERT INTO accounts (jid, sha1_salt, sha1_iterations, sha1_stored_key, sha1_server_key,"     \
    " sha256_salt, sha256_iterations, sha256_stored_key, sha256_server_key) VALUES ('" jid "',"    \
    " zeroblob(16), 4096, zeroblob(20), zeroblob(20), zeroblob(16), 4096, zeroblob(32),"           \
    " zeroblob(32));"

/* Rows as the schema-2 code wrote them: NULL and empty names, groups inserted out of position
 * order (one empty, one not UTF-8), a pending subscription stanza, offline messages whose
 * highest id was deleted already (the sequence is at 9), binary XML, vCard, private documents
 * (one with a non-ASCII key, one empty), a key of neither kind, block lists. */
static const char accounts_v2[] =
    V2_ACCOUNT("alice@localhost") V2_ACCOUNT("bob@localhost") V2_ACCOUNT("carol@localhost");

static const char rows_v2[] =
    "INSERT INTO roster_versions VALUES ('alice@localhost', 1700000000005),"
    " ('bob@localhost', 1700000000000);"
    "INSERT INTO roster_items VALUES"
    " ('alice@localhost', 'carol@example.org', 'Carol', 3, 1, 1, 1,"
    "  '<presence type=''subscribe''/>'),"
    " ('alice@localhost', 'dave@example.org', NULL, 0, 0, 0, 0, NULL),"
    " ('alice@localhost', 'eve@example.org', '', 1, 0, 0, 1, NULL),"
    " ('bob@localhost', 'alice@localhost', 'Alice', 2, 0, 1, 0,"
    "  '<presence from=''alice@localhost'' type=''subscribe''/>');"
    "INSERT INTO roster_groups VALUES"
    " ('alice@localhost', 'carol@example.org', 1, 'Work'),"
    " ('alice@localhost', 'carol@example.org', 0, 'Friends'),"
    " ('alice@localhost', 'eve@example.org', 7, 'Z'),"
    " ('alice@localhost', 'eve@example.org', 2, 'A'),"
    " ('alice@localhost', 'eve@example.org', 4, CAST(X'ff6f6464' AS TEXT)),"
    " ('alice@localhost', 'eve@example.org', 3, '');"
    "INSERT INTO offline_messages (id, user, stamp, xml) VALUES"
    " (3, 'alice@localhost', 1000, CAST('<m>1</m>' AS BLOB)),"
    " (5, 'bob@localhost', 1500, X'3c6d3e003c2f6d3e'),"
    " (7, 'alice@localhost', 900, CAST('<m>2</m>' AS BLOB)),"
    " (9, 'alice@localhost', 950, CAST('<m>gone</m>' AS BLOB));"
    "DELETE FROM offline_messages WHERE id = 9;"
    "INSERT INTO xml_documents VALUES"
    " ('alice@localhost', 'vcard', CAST('<vCard xmlns=''vcard-temp''/>' AS BLOB)),"
    " ('alice@localhost', 'private storage:bookmarks storage',"
    "  CAST('<storage xmlns=''storage:bookmarks''/>' AS BLOB)),"
    " ('alice@localhost', 'private a b', X''),"
    " ('alice@localhost', CAST(X'7072697661746520c3a92078' AS TEXT), CAST('<x/>' AS BLOB)),"
    " ('alice@localhost', 'other key', CAST('o' AS BLOB)),"
    " ('bob@localhost', 'vcard', CAST('<v/>' AS BLOB));"
    "INSERT INTO block_list VALUES ('alice@localhost', 'spam@evil'),"
    " ('alice@localhost', 'evil.example'), ('alice@localhost', 'a@evil/res'),"
    " ('bob@localhost', 'x@evil');";

static void make_v2_file(const fixture *f, const char *extra)
{
    sqlite3 *db = raw_open(f);
    char *err = NULL;
    int rc = sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, &err);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, schema_v2, NULL, NULL, &err);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, accounts_v2, NULL, NULL, &err);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, rows_v2, NULL, NULL, &err);
    if (rc == SQLITE_OK && extra)
        rc = sqlite3_exec(db, extra, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        fail_msg("building the version-2 file: %s", err);
    assert_int_equal(raw_int(db, "SELECT seq FROM sqlite_sequence WHERE name = 'offline_messages'"),
                     9);
    sqlite3_close(db);
}

/* The value stored under (store, user, key), which must exist. */
static char *map_value(kr_store *s, const char *store, const char *user, const char *key,
                       size_t *len)
{
    char *v = NULL;
    int rc = kr_store_map_get(s, store, user, key, &v, len);
    if (rc != 0)
        fail_msg("%s/%s/%s: %s", store, user, key, kr_strerror(rc));
    return v;
}

/* Assert that the roster record of (user, contact) is exactly the given fields, as a record
 * written by kr_record_* and as read back field by field with the record reader. */
typedef struct field {
    const char *key;
    const char *value; /* a C string: these tests' values hold no NUL */
} field;

static void assert_record(kr_store *s, const char *store, const char *user, const char *key,
                          const field *fields, size_t n)
{
    kr_buf want = KR_BUF_INIT;
    kr_record_begin(&want);
    for (size_t i = 0; i < n; i++)
        kr_record_add_str(&want, fields[i].key, fields[i].value);
    kr_record_end(&want);
    size_t len;
    char *v = map_value(s, store, user, key, &len);
    assert_int_equal(len, want.len);
    assert_memory_equal(v, want.data, len);
    kr_record_reader r;
    kr_record_field fl;
    assert_int_equal(kr_record_reader_init(&r, v, len), 0);
    for (size_t i = 0; i < n; i++) {
        assert_true(kr_record_next(&r, &fl));
        assert_true(kr_record_field_is(&fl, fields[i].key));
        assert_int_equal(fl.len, strlen(fields[i].value));
        assert_memory_equal(fl.value, fields[i].value, fl.len);
    }
    assert_false(kr_record_next(&r, &fl));
    free(v);
    kr_buf_clear(&want);
}

static void test_open_migrates_version_2_file_into_generic_stores(void **state)
{
    fixture *f = *state;
    make_v2_file(f, NULL);
    kr_store *s = open_ok(f);

    sqlite3 *db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT version FROM schema_version WHERE id = 1"), 3);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name IN " LEGACY_TABLES
                                 " OR name = 'offline_messages_user_id'"),
                     0);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM module_map"), 4 + 2 + 6 + 4);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM module_archive"), 3);
    sqlite3_close(db);

    /* Rosters: one record per item, fields as compat.h lists them. */
    const field carol[] = {{"name", "Carol"},    {"sub", "3"},
                           {"ask", "1"},         {"pending_in", "1"},
                           {"approved", "1"},    {"pending_in_xml", "<presence type='subscribe'/>"},
                           {"group", "Friends"}, {"group", "Work"}};
    assert_record(s, "roster", "alice@localhost", "carol@example.org", carol, 8);
    const field dave[] = {{"sub", "0"}};
    assert_record(s, "roster", "alice@localhost", "dave@example.org", dave, 1);
    const field eve[] = {{"name", ""},
                         {"sub", "1"},
                         {"approved", "1"},
                         {"group", "A"},
                         {"group", ""},
                         {"group", "\xff"
                                   "odd"},
                         {"group", "Z"}};
    assert_record(s, "roster", "alice@localhost", "eve@example.org", eve, 7);
    const field alice[] = {
        {"name", "Alice"},
        {"sub", "2"},
        {"pending_in", "1"},
        {"pending_in_xml", "<presence from='alice@localhost' type='subscribe'/>"}};
    assert_record(s, "roster", "bob@localhost", "alice@localhost", alice, 4);
    char *v = map_value(s, "roster_meta", "alice@localhost", "version", NULL);
    assert_string_equal(v, "1700000000005");
    free(v);
    v = map_value(s, "roster_meta", "bob@localhost", "version", NULL);
    assert_string_equal(v, "1700000000000");
    free(v);

    /* The same through compat.c, as the server reads it. */
    kr_roster_item *items;
    size_t n;
    uint64_t version = 0;
    assert_int_equal(kr_store_roster_list(s, "alice@localhost", &items, &n, &version), 0);
    assert_int_equal(n, 3);
    assert_true(version == 1700000000005ULL);
    assert_string_equal(items[0].contact, "carol@example.org");
    assert_string_equal(items[0].name, "Carol");
    assert_int_equal(items[0].sub, KR_SUB_BOTH);
    assert_true(items[0].ask && items[0].pending_in && items[0].approved);
    assert_string_equal(items[0].pending_in_xml, "<presence type='subscribe'/>");
    assert_int_equal(items[0].group_count, 2);
    assert_string_equal(items[0].groups[0], "Friends");
    assert_string_equal(items[0].groups[1], "Work");
    assert_string_equal(items[1].contact, "dave@example.org");
    assert_null(items[1].name);
    assert_int_equal(items[1].sub, KR_SUB_NONE);
    assert_false(items[1].ask || items[1].pending_in || items[1].approved);
    assert_null(items[1].pending_in_xml);
    assert_int_equal(items[1].group_count, 0);
    assert_string_equal(items[2].name, "");
    assert_int_equal(items[2].sub, KR_SUB_TO);
    assert_int_equal(items[2].group_count, 4);
    assert_string_equal(items[2].groups[2], "\xff"
                                            "odd");
    kr_roster_items_free(items, n);
    kr_roster_item it;
    assert_int_equal(kr_store_roster_get(s, "bob@localhost", "alice@localhost", &it), 0);
    assert_string_equal(it.name, "Alice");
    assert_int_equal(it.sub, KR_SUB_FROM);
    assert_true(it.pending_in);
    kr_roster_item_clear(&it);
    /* The counter goes on from the migrated version. */
    put_item(s, "alice@localhost", "frank@example.org", NULL, 0, &version);
    assert_true(version == 1700000000006ULL);

    /* Offline messages: same ids, stamps and bytes, no peer JID. */
    kr_store_archive_filter q = {.max = 10};
    kr_store_archive_entry *e;
    assert_int_equal(kr_store_archive_query(s, "offline", "alice@localhost", &q, &e, &n), 0);
    assert_int_equal(n, 2);
    assert_true(e[0].id == 3 && e[0].stamp == 1000);
    assert_null(e[0].with);
    assert_string_equal(e[0].data, "<m>1</m>");
    assert_true(e[1].id == 7 && e[1].stamp == 900);
    assert_string_equal(e[1].data, "<m>2</m>");
    kr_store_archive_entries_free(e, n);
    kr_offline_msg *m;
    assert_int_equal(kr_store_offline_list(s, "bob@localhost", 10, &m, &n), 0);
    assert_int_equal(n, 1);
    assert_true(m[0].id == 5 && m[0].stamp == 1500);
    assert_int_equal(m[0].len, 8);
    assert_memory_equal(m[0].xml, "<m>\0</m>", 8);
    kr_offline_msgs_free(m, n);
    /* No id is handed out twice: the next is past the highest schema 2 ever used (9). */
    int64_t id = append(s, "offline", "carol@localhost", 1, NULL, "<m/>");
    assert_true(id == 10);

    /* XML documents: vCard as a keyval, private documents by "namespace element" (split
     * as bytes), other keys in "xml". */
    v = map_value(s, "vcard", "alice@localhost", "", NULL);
    assert_string_equal(v, "<vCard xmlns='vcard-temp'/>");
    free(v);
    map_rows r = list_map(s, "private", "alice@localhost", NULL);
    assert_string_equal(r.text,
                        "a b=;storage:bookmarks storage=<storage xmlns='storage:bookmarks'/>;"
                        "\xc3\xa9 x=<x/>;");
    v = map_value(s, "xml", "alice@localhost", "other key", NULL);
    assert_string_equal(v, "o");
    free(v);
    size_t len;
    assert_int_equal(kr_store_xml_get(s, "alice@localhost", "vcard", &v, &len), 0);
    assert_string_equal(v, "<vCard xmlns='vcard-temp'/>");
    free(v);
    assert_int_equal(
        kr_store_xml_get(s, "alice@localhost", "private storage:bookmarks storage", &v, &len), 0);
    assert_string_equal(v, "<storage xmlns='storage:bookmarks'/>");
    free(v);
    assert_int_equal(kr_store_xml_get(s, "alice@localhost", "private \xc3\xa9 x", &v, &len), 0);
    assert_string_equal(v, "<x/>");
    free(v);
    assert_int_equal(kr_store_xml_get(s, "alice@localhost", "other key", &v, &len), 0);
    assert_string_equal(v, "o");
    free(v);
    assert_int_equal(kr_store_xml_get(s, "bob@localhost", "vcard", &v, &len), 0);
    assert_string_equal(v, "<v/>");
    free(v);
    size_t bytes = 0;
    assert_int_equal(kr_store_xml_size(s, "alice@localhost", "private ", &bytes), 0);
    assert_int_equal(bytes, strlen("<storage xmlns='storage:bookmarks'/>") + 4);

    /* Block lists: the blocked JIDs are the keys, sorted. */
    r = list_map(s, "blocking", "alice@localhost", NULL);
    assert_string_equal(r.text, "a@evil/res=;evil.example=;spam@evil=;");
    char **jids;
    assert_int_equal(kr_store_block_list(s, "bob@localhost", &jids, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(jids[0], "x@evil");
    free_jids(jids, n);

    /* The migrated rows belong to their account like new ones. */
    assert_int_equal(kr_store_account_delete(s, "alice@localhost"), 0);
    kr_store_close(s);
    db = raw_open(f);
    assert_int_equal(count_rows(db, "module_map", NULL, "alice@localhost"), 0);
    assert_int_equal(count_rows(db, "module_archive", NULL, "alice@localhost"), 0);
    assert_int_equal(count_rows(db, "module_map", NULL, "bob@localhost"), 4);
    sqlite3_close(db);
}

static void test_migration_continues_offline_ids_after_all_were_delivered(void **state)
{
    fixture *f = *state;
    make_v2_file(f, "DELETE FROM offline_messages;");
    kr_store *s = open_ok(f);
    size_t n = 9;
    assert_int_equal(kr_store_offline_count(s, "alice@localhost", &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(kr_store_offline_push(s, "alice@localhost", "<m/>", 4, 1, 10), 0);
    kr_offline_msg *m;
    assert_int_equal(kr_store_offline_list(s, "alice@localhost", 10, &m, &n), 0);
    assert_int_equal(n, 1);
    assert_true(m[0].id == 10);
    kr_offline_msgs_free(m, n);
    kr_store_close(s);
}

static void test_failed_migration_leaves_the_version_2_file_untouched(void **state)
{
    fixture *f = *state;
    /* A row whose account is gone (written with foreign keys off): it cannot be moved, and
     * the migration must neither drop it nor leave half a schema 3 behind. */
    make_v2_file(f, "PRAGMA foreign_keys = OFF;"
                    "INSERT INTO block_list VALUES ('ghost@localhost', 'x@evil');");
    kr_store *s = NULL;
    char err[256] = "";
    assert_int_equal(kr_store_open(f->path, &s, err, sizeof err), KR_ESTORE);
    assert_null(s);
    assert_non_null(strstr(err, "migration"));
    sqlite3 *db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT version FROM schema_version WHERE id = 1"), 2);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name IN " LEGACY_TABLES),
                     6);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name LIKE 'module%'"),
                     0);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM roster_groups"), 6);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM block_list"), 5);
    /* Repaired, it migrates. */
    assert_int_equal(
        sqlite3_exec(db, "DELETE FROM block_list WHERE user = 'ghost@localhost'", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    s = open_ok(f);
    map_rows r = list_map(s, "blocking", "bob@localhost", NULL);
    assert_string_equal(r.text, "x@evil=;");
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
        T(test_map_put_get_replace_delete_and_missing),
        T(test_map_writes_for_a_missing_account_return_enoent),
        T(test_map_list_is_in_byte_order_and_prefix_is_literal),
        T(test_map_list_stops_with_the_callbacks_value),
        T(test_map_size_sums_value_bytes_of_a_literal_byte_prefix),
        T(test_map_delete_all_is_per_user_and_store),
        T(test_store_names_and_arguments_are_checked),
        T(test_archive_append_and_query_return_every_field),
        T(test_archive_query_applies_every_filter),
        T(test_archive_quota_refuses_without_writing),
        T(test_archive_delete_upto_is_per_user_and_store),
        T(test_account_delete_removes_generic_rows_and_a_new_account_starts_empty),
        T(test_commit_publishes_writes_and_rollback_drops_them),
        T(test_transaction_rules_are_enforced),
        T(test_write_transaction_holds_the_write_lock_until_it_ends),
        T(test_read_transaction_sees_one_snapshot),
        T(test_close_with_an_open_transaction_rolls_it_back),
        T(test_two_connections_write_from_two_threads_without_loss),
        T(test_open_migrates_version_2_file_into_generic_stores),
        T(test_migration_continues_offline_ids_after_all_were_delivered),
        T(test_failed_migration_leaves_the_version_2_file_untouched),
        cmocka_unit_test(test_account_from_password_derives_both_hashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
