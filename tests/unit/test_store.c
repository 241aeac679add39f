/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Unit tests of the store (src/store: store.c's contract checks and the SQLite
 * driver sqlite.c): account create, get, update, delete and list with their
 * error codes, durability across close and reopen, KR_ELOCKED under another
 * connection's write lock, schema creation and migration (from a version-1
 * file, and from a version-2 file with rows in every feature table into the
 * generic stores, checked row by row through the generic calls and the record
 * reader, core/record.h), the store_versions table of schema 4 with
 * kr_store_version_get/put, kr_account_from_password; the generic map and
 * archive stores and transactions called directly (byte-order prefixes with
 * pattern characters, quotas, every query filter, store-name checks, cascades
 * on account delete, snapshots, two connections on two threads), including
 * what the server's modules rely on in the stores they own: offline messages
 * (archive "offline") with their quota, writes visible to another connection
 * when they return, and the removal of every row with the account. The roster
 * format on top of the map stores is tested in test_roster_store.c. Each test
 * works in its own temporary directory, removed afterwards. The busy timeout is
 * shortened with KURIER_STORE_BUSY_MS so lock tests take milliseconds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
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

/* ---- schema 4, and the stores the server's modules own ------------------------------------ */

static kr_store *open_with_users(const fixture *f)
{
    kr_store *s = open_ok(f);
    kr_account a = make_account(1);
    assert_int_equal(kr_store_account_create(s, "alice@localhost", &a), 0);
    assert_int_equal(kr_store_account_create(s, "bob@localhost", &a), 0);
    return s;
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

/* Append an offline message (archive "offline", no peer JID) within quota; returns its id. */
static int64_t offline_push(kr_store *s, const char *user, const char *xml, int64_t stamp,
                            size_t quota)
{
    int64_t id = 0;
    assert_int_equal(
        kr_store_archive_append(s, "offline", user, stamp, NULL, xml, strlen(xml), quota, &id), 0);
    assert_true(id > 0);
    return id;
}

#define LEGACY_TABLES                                                                              \
    "('roster_items', 'roster_groups', 'roster_versions', 'offline_messages', 'xml_documents',"    \
    " 'block_list')"

#define SCHEMA_VERSION 4

static void assert_schema_version(sqlite3 *db, long long version)
{
    assert_int_equal(raw_int(db, "SELECT version FROM schema_version WHERE id = 1"), version);
}

/* The store_versions table of migration 4, with the columns kr_store_version_* use. */
static void assert_store_versions_table(sqlite3 *db)
{
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND"
                                 " name = 'store_versions'"),
                     1);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM pragma_table_info('store_versions')"
                                 " WHERE name IN ('store', 'version')"),
                     2);
}

static void test_schema_version_is_4_with_generic_tables_only(void **state)
{
    fixture *f = *state;
    kr_store_close(open_ok(f));
    sqlite3 *db = raw_open(f);
    assert_schema_version(db, SCHEMA_VERSION);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND"
                                 " name IN ('module_map', 'module_archive')"),
                     2);
    assert_store_versions_table(db);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM store_versions"), 0);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name IN " LEGACY_TABLES),
                     0);
    /* The cascade and the per-user queries are index ranges: each index leads with user. */
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND"
                                 " tbl_name = 'module_archive' AND sql LIKE '%(user, store,%'"),
                     3);
    sqlite3_close(db);
}

static void test_store_versions_start_at_1_and_round_trip(void **state)
{
    fixture *f = *state;
    kr_store *s = open_ok(f);
    unsigned v = 99;
    /* No row: version 1, what every module's first record format is. */
    assert_int_equal(kr_store_version_get(s, "roster", &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(kr_store_version_put(s, "roster", 2), 0);
    assert_int_equal(kr_store_version_get(s, "roster", &v), 0);
    assert_int_equal(v, 2);
    assert_int_equal(kr_store_version_put(s, "roster", 3), 0); /* replaces */
    assert_int_equal(kr_store_version_put(s, "offline", UINT_MAX), 0);
    assert_int_equal(kr_store_version_get(s, "offline", &v), 0);
    assert_int_equal(v, UINT_MAX);
    /* Per store: another one is still at 1. */
    assert_int_equal(kr_store_version_get(s, "vcard", &v), 0);
    assert_int_equal(v, 1);
    /* Version 0 does not exist, and a refused put changes nothing. */
    assert_int_equal(kr_store_version_put(s, "roster", 0), KR_EINVAL);
    assert_int_equal(kr_store_version_put(s, "blocking", 0), KR_EINVAL);
    /* Store names follow the rules of the generic stores. */
    assert_int_equal(kr_store_version_get(s, "Roster", &v), KR_EINVAL);
    assert_int_equal(kr_store_version_get(s, NULL, &v), KR_EINVAL);
    assert_int_equal(kr_store_version_put(s, "ro-ster", 2), KR_EINVAL);
    assert_int_equal(kr_store_version_put(s, "", 2), KR_EINVAL);
    /* A write, like the generic stores' writes: refused inside a read transaction. */
    assert_int_equal(kr_store_begin_read(s), 0);
    assert_int_equal(kr_store_version_put(s, "roster", 5), KR_EINVAL);
    assert_int_equal(kr_store_commit(s), 0);
    assert_int_equal(kr_store_version_get(s, "roster", &v), 0);
    assert_int_equal(v, 3);
    kr_store_close(s);

    /* Durable: another connection sees the rows, a reopened store reads them. */
    sqlite3 *db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM store_versions"), 2);
    assert_int_equal(raw_int(db, "SELECT version FROM store_versions WHERE store = 'roster'"), 3);
    /* A version no unsigned holds (written behind the store's back) is a store error. */
    assert_int_equal(
        sqlite3_exec(db, "INSERT INTO store_versions VALUES ('big', 4294967296)", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    s = open_ok(f);
    assert_int_equal(kr_store_version_get(s, "roster", &v), 0);
    assert_int_equal(v, 3);
    assert_int_equal(kr_store_version_get(s, "blocking", &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(kr_store_version_get(s, "big", &v), KR_ESTORE);
    kr_store_close(s);
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
    /* The old account owns rows in the stores of the modules like a new one. */
    assert_int_equal(kr_store_map_put(s, "roster", "old@localhost", "friend@localhost", "r", 1), 0);
    offline_push(s, "old@localhost", "<m/>", 1, 10);
    assert_int_equal(kr_store_map_put(s, "blocking", "old@localhost", "spam@evil", NULL, 0), 0);
    assert_int_equal(kr_store_map_put(s, "vcard", "old@localhost", "", "<v/>", 4), 0);
    unsigned version = 0;
    assert_int_equal(kr_store_version_get(s, "roster", &version), 0);
    assert_int_equal(version, 1);
    kr_store_close(s);

    db = raw_open(f);
    assert_schema_version(db, SCHEMA_VERSION);
    assert_store_versions_table(db);
    assert_int_equal(count_rows(db, "module_map", NULL, "old@localhost"), 3);
    assert_int_equal(count_rows(db, "module_archive", "offline", "old@localhost"), 1);
    sqlite3_close(db);
}

static void test_offline_quota_refuses_then_accepts_after_delete_upto(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    int64_t ids[3];
    for (int i = 0; i < 3; i++)
        ids[i] = offline_push(s, "alice@localhost", "<m/>", i, 3);
    int64_t id = 77;
    assert_int_equal(
        kr_store_archive_append(s, "offline", "alice@localhost", 9, NULL, "<over/>", 7, 3, &id),
        KR_ELIMIT);
    assert_true(id == 77);
    /* Other users have their own quota. */
    offline_push(s, "bob@localhost", "<m/>", 1, 3);
    size_t n = 0;
    assert_int_equal(kr_store_archive_count(s, "offline", "alice@localhost", &n), 0);
    assert_int_equal(n, 3);

    /* The two oldest were delivered: deleting them makes room for exactly two more. */
    assert_int_equal(kr_store_archive_delete_upto(s, "offline", "alice@localhost", ids[1]), 0);
    assert_int_equal(kr_store_archive_count(s, "offline", "alice@localhost", &n), 0);
    assert_int_equal(n, 1);
    int64_t late = offline_push(s, "alice@localhost", "<late/>", 10, 3);
    assert_true(late > ids[2]);
    offline_push(s, "alice@localhost", "<later/>", 11, 3);
    assert_int_equal(
        kr_store_archive_append(s, "offline", "alice@localhost", 12, NULL, "<over/>", 7, 3, &id),
        KR_ELIMIT);
    kr_store_archive_filter q = {.max = 10};
    kr_store_archive_entry *e;
    assert_int_equal(kr_store_archive_query(s, "offline", "alice@localhost", &q, &e, &n), 0);
    assert_int_equal(n, 3);
    assert_true(e[0].id == ids[2] && e[1].id == late);
    assert_string_equal(e[1].data, "<late/>");
    assert_string_equal(e[2].data, "<later/>");
    kr_store_archive_entries_free(e, n);
    assert_int_equal(kr_store_archive_count(s, "offline", "bob@localhost", &n), 0);
    assert_int_equal(n, 1);
    kr_store_close(s);
}

static void test_writes_outside_a_transaction_are_on_disk_when_they_return(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    const char bin[] = {'<', 'v', '>', '\0', '\xff', '<', '/', 'v', '>'};
    offline_push(s, "alice@localhost", "<m/>", 42, 10); /* quota: a transaction of its own */
    offline_push(s, "alice@localhost", "<n/>", 43, 0);
    assert_int_equal(kr_store_map_put(s, "vcard", "alice@localhost", "", bin, sizeof bin), 0);
    assert_int_equal(kr_store_map_put(s, "blocking", "alice@localhost", "spam@evil", NULL, 0), 0);
    assert_int_equal(kr_store_version_put(s, "offline", 2), 0);
    /* Another connection sees the committed rows, exact bytes included, while s is still open. */
    sqlite3 *db = raw_open(f);
    assert_int_equal(count_rows(db, "module_archive", "offline", "alice@localhost"), 2);
    assert_int_equal(count_rows(db, "module_map", "blocking", "alice@localhost"), 1);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT value FROM module_map WHERE store = 'vcard'"
                                        " AND user = 'alice@localhost' AND key = ''",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_bytes(st, 0), sizeof bin);
    assert_memory_equal(sqlite3_column_blob(st, 0), bin, sizeof bin);
    sqlite3_finalize(st);
    assert_int_equal(raw_int(db, "SELECT version FROM store_versions WHERE store = 'offline'"), 2);
    sqlite3_close(db);
    kr_store_close(s);
}

static void fill_user(kr_store *s, const char *user)
{
    assert_int_equal(kr_store_map_put(s, "roster", user, "friend@localhost", "r", 1), 0);
    assert_int_equal(kr_store_map_put(s, "roster_meta", user, "version", "1", 1), 0);
    offline_push(s, user, "<m/>", 1, 10);
    assert_int_equal(kr_store_map_put(s, "vcard", user, "", "<v/>", 4), 0);
    assert_int_equal(kr_store_map_put(s, "blocking", user, "spam@evil", NULL, 0), 0);
}

static void test_account_delete_removes_every_row_of_that_user_only(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    fill_user(s, "alice@localhost");
    fill_user(s, "bob@localhost");
    assert_int_equal(kr_store_version_put(s, "roster", 2), 0);
    assert_int_equal(kr_store_account_delete(s, "alice@localhost"), 0);

    /* Bob keeps his roster item, roster version, vCard and block entry (four map rows) and his
     * offline message; the stores' record versions belong to no account and stay. */
    sqlite3 *db = raw_open(f);
    assert_int_equal(count_rows(db, "module_map", NULL, "alice@localhost"), 0);
    assert_int_equal(count_rows(db, "module_archive", NULL, "alice@localhost"), 0);
    assert_int_equal(count_rows(db, "module_map", NULL, "bob@localhost"), 4);
    assert_int_equal(count_rows(db, "module_archive", NULL, "bob@localhost"), 1);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM store_versions"), 1);
    /* Every table with a user column is covered above. */
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master m,"
                                 " pragma_table_info(m.name) p"
                                 " WHERE m.type = 'table' AND p.name = 'user'"),
                     2);
    sqlite3_close(db);
    unsigned v = 0;
    assert_int_equal(kr_store_version_get(s, "roster", &v), 0);
    assert_int_equal(v, 2);
    kr_store_close(s);
}

static void test_generic_writes_under_other_exclusive_lock_return_elocked(void **state)
{
    fixture *f = *state;
    kr_store *s = open_with_users(f);
    offline_push(s, "alice@localhost", "<old/>", 1, 10);
    sqlite3 *other = raw_open(f);
    assert_int_equal(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    int64_t id = 77;
    assert_int_equal(kr_store_map_put(s, "roster", "alice@localhost", "x@localhost", "r", 1),
                     KR_ELOCKED);
    assert_int_equal(kr_store_map_delete(s, "blocking", "alice@localhost", NULL), KR_ELOCKED);
    assert_int_equal(
        kr_store_archive_append(s, "offline", "alice@localhost", 1, NULL, "<m/>", 4, 10, &id),
        KR_ELOCKED);
    assert_int_equal(
        kr_store_archive_append(s, "offline", "alice@localhost", 1, NULL, "<m/>", 4, 0, &id),
        KR_ELOCKED);
    assert_true(id == 77);
    assert_int_equal(kr_store_archive_delete_upto(s, "offline", "alice@localhost", INT64_MAX),
                     KR_ELOCKED);
    assert_int_equal(kr_store_version_put(s, "offline", 2), KR_ELOCKED);
    assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    /* No transaction was left open (the quota check makes one): the same calls now succeed. */
    assert_int_equal(kr_store_map_put(s, "roster", "alice@localhost", "x@localhost", "r", 1), 0);
    offline_push(s, "alice@localhost", "<m/>", 1, 10);
    size_t n = 0;
    assert_int_equal(kr_store_archive_count(s, "offline", "alice@localhost", &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(kr_store_begin(s), 0);
    assert_int_equal(kr_store_rollback(s), 0);
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
    kr_store_archive_filter q = {.max = 10};
    kr_store_archive_entry *e = (kr_store_archive_entry *)1;
    size_t n = 99;
    assert_int_equal(kr_store_archive_query(s, "log", "ghost@localhost", &q, &e, &n), 0);
    assert_null(e);
    assert_int_equal(n, 0);
    n = 99;
    assert_int_equal(kr_store_archive_count(s, "log", "ghost@localhost", &n), 0);
    assert_int_equal(n, 0);
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
    assert_schema_version(db, SCHEMA_VERSION);
    assert_store_versions_table(db);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM store_versions"), 0);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name IN " LEGACY_TABLES
                                 " OR name = 'offline_messages_user_id'"),
                     0);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM module_map"), 4 + 2 + 6 + 4);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM module_archive"), 3);
    sqlite3_close(db);
    /* Every migrated row is in the store it belongs to; the counts add up to the totals. */
    const struct {
        const char *store, *user;
        size_t n;
    } counts[] = {{"roster", "alice@localhost", 3},      {"roster", "bob@localhost", 1},
                  {"roster_meta", "alice@localhost", 1}, {"roster_meta", "bob@localhost", 1},
                  {"vcard", "alice@localhost", 1},       {"vcard", "bob@localhost", 1},
                  {"private", "alice@localhost", 3},     {"xml", "alice@localhost", 1},
                  {"blocking", "alice@localhost", 3},    {"blocking", "bob@localhost", 1}};
    size_t n, total = 0;
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        assert_int_equal(kr_store_map_count(s, counts[i].store, counts[i].user, &n), 0);
        if (n != counts[i].n)
            fail_msg("%s/%s: %zu rows", counts[i].store, counts[i].user, n);
        total += n;
    }
    assert_int_equal(total, 4 + 2 + 6 + 4);
    /* What migration 3 writes is record version 1 of every store. */
    unsigned rv = 0;
    assert_int_equal(kr_store_version_get(s, "roster", &rv), 0);
    assert_int_equal(rv, 1);

    /* Rosters: one record per item, fields as server/roster_store.h lists them: a NULL name
     * is no field, an empty one an empty field; false flags are no field; groups in position
     * order, empty and non-UTF-8 ones included. */
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
    /* The version counters, in decimal; test_roster_store.c checks the roster store goes on
     * from such a counter. */
    size_t len = 0;
    char *v = map_value(s, "roster_meta", "alice@localhost", "version", &len);
    assert_int_equal(len, 13);
    assert_string_equal(v, "1700000000005");
    free(v);
    v = map_value(s, "roster_meta", "bob@localhost", "version", &len);
    assert_int_equal(len, 13);
    assert_string_equal(v, "1700000000000");
    free(v);

    /* Offline messages: same ids, stamps and bytes, no peer JID. */
    kr_store_archive_filter q = {.max = 10};
    kr_store_archive_entry *e;
    assert_int_equal(kr_store_archive_query(s, "offline", "alice@localhost", &q, &e, &n), 0);
    assert_int_equal(n, 2);
    assert_true(e[0].id == 3 && e[0].stamp == 1000);
    assert_null(e[0].with);
    assert_int_equal(e[0].len, 8);
    assert_string_equal(e[0].data, "<m>1</m>");
    assert_true(e[1].id == 7 && e[1].stamp == 900);
    assert_null(e[1].with);
    assert_int_equal(e[1].len, 8);
    assert_string_equal(e[1].data, "<m>2</m>");
    kr_store_archive_entries_free(e, n);
    assert_int_equal(kr_store_archive_query(s, "offline", "bob@localhost", &q, &e, &n), 0);
    assert_int_equal(n, 1);
    assert_true(e[0].id == 5 && e[0].stamp == 1500);
    assert_null(e[0].with);
    assert_int_equal(e[0].len, 8);
    assert_memory_equal(e[0].data, "<m>\0</m>", 8);
    kr_store_archive_entries_free(e, n);
    assert_int_equal(kr_store_archive_count(s, "offline", "carol@localhost", &n), 0);
    assert_int_equal(n, 0);
    /* No id is handed out twice: the next is past the highest schema 2 ever used (9). */
    int64_t id = append(s, "offline", "carol@localhost", 1, NULL, "<m/>");
    assert_true(id == 10);

    /* XML documents: vCard as a keyval (key ""), private documents by "namespace element"
     * (split as bytes), other keys in "xml" under the same key; exact bytes and lengths. */
    v = map_value(s, "vcard", "alice@localhost", "", &len);
    assert_int_equal(len, strlen("<vCard xmlns='vcard-temp'/>"));
    assert_string_equal(v, "<vCard xmlns='vcard-temp'/>");
    free(v);
    v = map_value(s, "vcard", "bob@localhost", "", &len);
    assert_int_equal(len, 4);
    assert_string_equal(v, "<v/>");
    free(v);
    map_rows r = list_map(s, "private", "alice@localhost", NULL);
    assert_string_equal(r.text,
                        "a b=;storage:bookmarks storage=<storage xmlns='storage:bookmarks'/>;"
                        "\xc3\xa9 x=<x/>;");
    v = map_value(s, "private", "alice@localhost", "storage:bookmarks storage", &len);
    assert_int_equal(len, strlen("<storage xmlns='storage:bookmarks'/>"));
    assert_string_equal(v, "<storage xmlns='storage:bookmarks'/>");
    free(v);
    v = map_value(s, "private", "alice@localhost", "\xc3\xa9 x", &len);
    assert_int_equal(len, 4);
    assert_string_equal(v, "<x/>");
    free(v);
    v = map_value(s, "private", "alice@localhost", "a b", &len); /* empty, not absent */
    assert_int_equal(len, 0);
    assert_string_equal(v, "");
    free(v);
    v = map_value(s, "xml", "alice@localhost", "other key", &len);
    assert_int_equal(len, 1);
    assert_string_equal(v, "o");
    free(v);
    size_t bytes = 0;
    assert_int_equal(kr_store_map_size(s, "private", "alice@localhost", NULL, &bytes), 0);
    assert_int_equal(bytes, strlen("<storage xmlns='storage:bookmarks'/>") + 4);

    /* Block lists: the blocked JIDs are the keys, sorted, with empty values. */
    r = list_map(s, "blocking", "alice@localhost", NULL);
    assert_string_equal(r.text, "a@evil/res=;evil.example=;spam@evil=;");
    r = list_map(s, "blocking", "bob@localhost", NULL);
    assert_string_equal(r.text, "x@evil=;");
    assert_int_equal(kr_store_map_size(s, "blocking", "alice@localhost", NULL, &bytes), 0);
    assert_int_equal(bytes, 0);

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
    assert_int_equal(kr_store_archive_count(s, "offline", "alice@localhost", &n), 0);
    assert_int_equal(n, 0);
    int64_t id = offline_push(s, "alice@localhost", "<m/>", 1, 10);
    assert_true(id == 10);
    kr_store_archive_filter q = {.max = 10};
    kr_store_archive_entry *e;
    assert_int_equal(kr_store_archive_query(s, "offline", "alice@localhost", &q, &e, &n), 0);
    assert_int_equal(n, 1);
    assert_true(e[0].id == 10);
    assert_string_equal(e[0].data, "<m/>");
    kr_store_archive_entries_free(e, n);
    kr_store_close(s);
}

static void test_failed_migration_leaves_the_version_2_file_untouched(void **state)
{
    fixture *f = *state;
    /* A row whose account is gone (written with foreign keys off): it cannot be moved, and
     * the migration must neither drop it nor leave half a schema 3 (or 4) behind. */
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
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name LIKE 'module%'"
                                 " OR name = 'store_versions'"),
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
    db = raw_open(f);
    assert_schema_version(db, SCHEMA_VERSION);
    assert_store_versions_table(db);
    sqlite3_close(db);
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
        T(test_schema_version_is_4_with_generic_tables_only),
        T(test_store_versions_start_at_1_and_round_trip),
        T(test_open_migrates_version_1_file_keeping_accounts),
        T(test_offline_quota_refuses_then_accepts_after_delete_upto),
        T(test_writes_outside_a_transaction_are_on_disk_when_they_return),
        T(test_account_delete_removes_every_row_of_that_user_only),
        T(test_generic_writes_under_other_exclusive_lock_return_elocked),
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
