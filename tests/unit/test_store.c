/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Unit tests of the SQLite store (src/store/sqlite.c): account create, get,
 * update, delete and list with their error codes, durability across close and
 * reopen, KR_ELOCKED under another connection's write lock, schema creation
 * and migration checks, and kr_account_from_password. Each test works in its
 * own temporary directory, removed afterwards. The busy timeout is shortened
 * with KURIER_STORE_BUSY_MS so lock tests take milliseconds.
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
        cmocka_unit_test(test_account_from_password_derives_both_hashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
