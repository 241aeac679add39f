/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * The embedded storage driver: store.h on one SQLite file (DESIGN.md, storage).
 * A kr_store owns one connection and a cache of its prepared statements; it is
 * used by one thread at a time. The connection runs in WAL mode so readers
 * (kurierctl list) never wait for the server's writer, with synchronous=FULL so
 * a call that returns 0 has reached the disk, and with foreign keys on so rows
 * that later issues hang off an account go with it. Contention is waited out
 * for the busy timeout, then reported as KR_ELOCKED.
 * The schema is versioned in the one-row table schema_version; `migrations`
 * below is the ordered list of forward steps, and open applies the missing ones
 * in a single write transaction. Migrations are only ever appended: entry i
 * takes the schema from version i to i+1, and a released entry never changes.
 * Accounts hold SCRAM credentials (RFC 5802 §3: salt, iteration count,
 * StoredKey, ServerKey) for SHA-1 and SHA-256 (RFC 7677), never a password.
 */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/alloc.h"
#include "core/error.h"

#define KR_STORE_BUSY_DEFAULT_MS 5000
#define KR_STORE_BUSY_MAX_MS 600000

/* Forward migrations; the schema version is the number of entries applied. */
static const char *const migrations[] = {
    /* 1: accounts with SCRAM-SHA-1 and SCRAM-SHA-256 credentials. */
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
    ");",
};

#define MIGRATION_COUNT ((int)(sizeof migrations / sizeof migrations[0]))

typedef enum stmt_id {
    ST_ACCOUNT_INSERT,
    ST_ACCOUNT_UPDATE,
    ST_ACCOUNT_DELETE,
    ST_ACCOUNT_GET,
    ST_ACCOUNT_LIST,
    ST_COUNT
} stmt_id;

static const char *const stmt_sql[ST_COUNT] = {
    [ST_ACCOUNT_INSERT] = "INSERT INTO accounts (jid,"
                          " sha1_salt, sha1_iterations, sha1_stored_key, sha1_server_key,"
                          " sha256_salt, sha256_iterations, sha256_stored_key, sha256_server_key)"
                          " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [ST_ACCOUNT_UPDATE] = "UPDATE accounts SET"
                          " sha1_salt = ?2, sha1_iterations = ?3, sha1_stored_key = ?4,"
                          " sha1_server_key = ?5, sha256_salt = ?6, sha256_iterations = ?7,"
                          " sha256_stored_key = ?8, sha256_server_key = ?9"
                          " WHERE jid = ?1",
    [ST_ACCOUNT_DELETE] = "DELETE FROM accounts WHERE jid = ?1",
    [ST_ACCOUNT_GET] = "SELECT sha1_salt, sha1_iterations, sha1_stored_key, sha1_server_key,"
                       " sha256_salt, sha256_iterations, sha256_stored_key, sha256_server_key"
                       " FROM accounts WHERE jid = ?1",
    [ST_ACCOUNT_LIST] = "SELECT jid FROM accounts ORDER BY jid",
};

struct kr_store {
    sqlite3 *db;
    sqlite3_stmt *stmts[ST_COUNT]; /* prepared on first use, finalized at close */
    char errmsg[256];              /* what the last failure was */
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Map an SQLite result code to ours and remember SQLite's message. */
static int fail(kr_store *s, int rc)
{
    snprintf(s->errmsg, sizeof s->errmsg, "%s", sqlite3_errmsg(s->db));
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return KR_ELOCKED;
    default:
        return KR_ESTORE;
    }
}

static int busy_timeout_ms(void)
{
    const char *v = getenv("KURIER_STORE_BUSY_MS");
    if (!v || !*v)
        return KR_STORE_BUSY_DEFAULT_MS;
    char *end;
    errno = 0;
    long ms = strtol(v, &end, 10);
    if (errno || *end || ms < 0 || ms > KR_STORE_BUSY_MAX_MS)
        return KR_STORE_BUSY_DEFAULT_MS;
    return (int)ms;
}

static int stmt_get(kr_store *s, stmt_id id, sqlite3_stmt **out)
{
    if (!s->stmts[id]) {
        int rc = sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                    &s->stmts[id], NULL);
        if (rc != SQLITE_OK)
            return fail(s, rc);
    }
    *out = s->stmts[id];
    return 0;
}

/* Leave a cached statement ready for its next use. */
static void stmt_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Run one SQL text that returns no rows we need. */
static int exec(kr_store *s, const char *sql)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : fail(s, rc);
}

/* Run one statement returning a single integer (or `none` when it returns no row). */
static int query_int(kr_store *s, const char *sql, long long none, long long *out)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return fail(s, rc);
    rc = sqlite3_step(st);
    int ret = 0;
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else if (rc == SQLITE_DONE)
        *out = none;
    else
        ret = fail(s, rc);
    sqlite3_finalize(st);
    return ret;
}

static int schema_version(kr_store *s, long long *version)
{
    long long exists;
    int rc = query_int(s,
                       "SELECT 1 FROM sqlite_master WHERE type = 'table'"
                       " AND name = 'schema_version'",
                       0, &exists);
    if (rc < 0 || !exists) {
        *version = 0;
        return rc;
    }
    return query_int(s, "SELECT version FROM schema_version WHERE id = 1", 0, version);
}

static int migrate_locked(kr_store *s)
{
    int rc = exec(s, "CREATE TABLE IF NOT EXISTS schema_version ("
                     " id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)");
    long long v = 0;
    if (rc == 0)
        rc = schema_version(s, &v); /* again: another process may have migrated meanwhile */
    for (long long i = v; rc == 0 && i < MIGRATION_COUNT; i++)
        rc = exec(s, migrations[i]);
    if (rc == 0 && v < MIGRATION_COUNT) {
        char sql[96];
        snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO schema_version VALUES (1, %d)",
                 MIGRATION_COUNT);
        rc = exec(s, sql);
    }
    return rc;
}

/* Bring the schema to MIGRATION_COUNT. Reads first, so an up-to-date file
 * needs no write lock to open. */
static int migrate(kr_store *s, const char *path, char *err, size_t errlen)
{
    long long v;
    int rc = schema_version(s, &v);
    if (rc < 0) {
        set_err(err, errlen, "%s: %s", path, s->errmsg);
        return rc;
    }
    if (v > MIGRATION_COUNT) {
        snprintf(s->errmsg, sizeof s->errmsg, "schema version %lld is newer than this program's %d",
                 v, MIGRATION_COUNT);
        set_err(err, errlen, "%s: %s", path, s->errmsg);
        return KR_ESTORE;
    }
    if (v == MIGRATION_COUNT)
        return 0;
    rc = exec(s, "BEGIN IMMEDIATE");
    if (rc == 0) {
        rc = migrate_locked(s);
        if (rc == 0)
            rc = exec(s, "COMMIT");
        if (rc < 0)
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    }
    if (rc < 0)
        set_err(err, errlen, "%s: schema migration failed: %s", path, s->errmsg);
    return rc;
}

static int set_wal(kr_store *s)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return fail(s, rc);
    int ret = 0;
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        ret = fail(s, rc);
    } else {
        const char *mode = (const char *)sqlite3_column_text(st, 0);
        if (!mode || strcmp(mode, "wal") != 0) {
            snprintf(s->errmsg, sizeof s->errmsg, "cannot use WAL mode (journal mode is %s)",
                     mode ? mode : "unknown");
            ret = KR_ESTORE;
        }
    }
    sqlite3_finalize(st);
    return ret;
}

static int configure(kr_store *s, const char *path, char *err, size_t errlen)
{
    int rc = set_wal(s);
    if (rc == 0)
        rc = exec(s, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON");
    if (rc < 0)
        set_err(err, errlen, "%s: %s", path, s->errmsg);
    return rc;
}

int kr_store_open(const char *path, kr_store **out, char *err, size_t errlen)
{
    *out = NULL;
    if (err && errlen > 0)
        err[0] = '\0';
    /* Create it ourselves so it never exists with wider permissions; SQLite
     * gives the -wal and -shm files the database file's mode. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        set_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return KR_ESTORE;
    }
    close(fd);

    kr_store *s = kr_xcalloc(1, sizeof *s);
    int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        if (!s->db) {
            set_err(err, errlen, "cannot open %s: %s", path, sqlite3_errstr(rc));
            free(s);
            return KR_ESTORE;
        }
        rc = fail(s, rc);
        set_err(err, errlen, "cannot open %s: %s", path, s->errmsg);
        kr_store_close(s);
        return rc;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, busy_timeout_ms());

    rc = configure(s, path, err, errlen);
    if (rc == 0)
        rc = migrate(s, path, err, errlen);
    if (rc < 0) {
        if (rc == KR_ELOCKED)
            set_err(err, errlen, "%s is locked by another process", path);
        kr_store_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

void kr_store_close(kr_store *s)
{
    if (!s)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->stmts[i]);
    sqlite3_close_v2(s->db);
    free(s);
}

const char *kr_store_errmsg(const kr_store *s)
{
    return s->errmsg;
}

static bool creds_valid(const kr_scram_creds *c, kr_scram_hash h)
{
    return c->hash == h && c->iterations > 0 && c->iterations <= INT_MAX && c->salt_len > 0 &&
           c->salt_len <= KR_SCRAM_MAX_SALT;
}

/* Bind one credential set to parameters first..first+3. */
static int bind_creds(sqlite3_stmt *st, int first, const kr_scram_creds *c)
{
    int klen = (int)kr_scram_hash_len(c->hash);
    int rc = sqlite3_bind_blob(st, first, c->salt, (int)c->salt_len, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, first + 1, c->iterations);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob(st, first + 2, c->stored_key, klen, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob(st, first + 3, c->server_key, klen, SQLITE_STATIC);
    return rc;
}

static int bind_account(sqlite3_stmt *st, const char *jid, const kr_account *acct)
{
    int rc = sqlite3_bind_text(st, 1, jid, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = bind_creds(st, 2, &acct->sha1);
    if (rc == SQLITE_OK)
        rc = bind_creds(st, 6, &acct->sha256);
    return rc;
}

/* Run an INSERT/UPDATE/DELETE of one account. */
static int write_account(kr_store *s, stmt_id id, const char *jid, const kr_account *acct)
{
    if (acct && (!creds_valid(&acct->sha1, KR_SCRAM_SHA1) ||
                 !creds_valid(&acct->sha256, KR_SCRAM_SHA256))) {
        snprintf(s->errmsg, sizeof s->errmsg, "malformed credentials");
        return KR_EINVAL;
    }
    sqlite3_stmt *st;
    int rc = stmt_get(s, id, &st);
    if (rc < 0)
        return rc;
    rc = acct ? bind_account(st, jid, acct) : sqlite3_bind_text(st, 1, jid, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    int ret;
    if (rc == SQLITE_DONE)
        ret = sqlite3_changes(s->db) > 0 ? 0 : KR_ENOENT;
    else if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
        ret = KR_EEXIST;
    else
        ret = fail(s, rc);
    stmt_done(st);
    return ret;
}

int kr_store_account_create(kr_store *s, const char *jid, const kr_account *acct)
{
    return write_account(s, ST_ACCOUNT_INSERT, jid, acct);
}

int kr_store_account_update(kr_store *s, const char *jid, const kr_account *acct)
{
    return write_account(s, ST_ACCOUNT_UPDATE, jid, acct);
}

int kr_store_account_delete(kr_store *s, const char *jid)
{
    return write_account(s, ST_ACCOUNT_DELETE, jid, NULL);
}

/* Read one credential set from columns first..first+3; false if the row is malformed. */
static bool column_creds(sqlite3_stmt *st, int first, kr_scram_hash h, kr_scram_creds *c)
{
    memset(c, 0, sizeof *c);
    c->hash = h;
    size_t klen = kr_scram_hash_len(h);
    int salt_len = sqlite3_column_bytes(st, first);
    sqlite3_int64 iter = sqlite3_column_int64(st, first + 1);
    const void *salt = sqlite3_column_blob(st, first);
    const void *stored = sqlite3_column_blob(st, first + 2);
    int stored_len = sqlite3_column_bytes(st, first + 2);
    const void *server = sqlite3_column_blob(st, first + 3);
    int server_len = sqlite3_column_bytes(st, first + 3);
    if (!salt || salt_len <= 0 || salt_len > KR_SCRAM_MAX_SALT || iter <= 0 || iter > INT_MAX ||
        !stored || (size_t)stored_len != klen || !server || (size_t)server_len != klen)
        return false;
    memcpy(c->salt, salt, (size_t)salt_len);
    c->salt_len = (size_t)salt_len;
    c->iterations = (unsigned)iter;
    memcpy(c->stored_key, stored, klen);
    memcpy(c->server_key, server, klen);
    return true;
}

int kr_store_account_get(kr_store *s, const char *jid, kr_account *out)
{
    sqlite3_stmt *st;
    int rc = stmt_get(s, ST_ACCOUNT_GET, &st);
    if (rc < 0)
        return rc;
    rc = sqlite3_bind_text(st, 1, jid, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    int ret;
    if (rc == SQLITE_ROW) {
        ret = 0;
        if (!column_creds(st, 0, KR_SCRAM_SHA1, &out->sha1) ||
            !column_creds(st, 4, KR_SCRAM_SHA256, &out->sha256)) {
            snprintf(s->errmsg, sizeof s->errmsg, "malformed credentials stored for %s", jid);
            ret = KR_ESTORE;
        }
    } else if (rc == SQLITE_DONE) {
        ret = KR_ENOENT;
    } else {
        ret = fail(s, rc);
    }
    stmt_done(st);
    return ret;
}

int kr_store_account_list(kr_store *s, kr_store_account_list_cb cb, void *ud)
{
    sqlite3_stmt *st;
    int rc = stmt_get(s, ST_ACCOUNT_LIST, &st);
    if (rc < 0)
        return rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *jid = (const char *)sqlite3_column_text(st, 0);
        if (jid)
            cb(ud, jid);
    }
    int ret = rc == SQLITE_DONE ? 0 : fail(s, rc);
    stmt_done(st);
    return ret;
}

void kr_account_from_password(kr_account *out, const char *password, size_t len,
                              unsigned iterations)
{
    memset(out, 0, sizeof *out);
    kr_scram_creds_new(KR_SCRAM_SHA1, password, len, iterations, &out->sha1);
    kr_scram_creds_new(KR_SCRAM_SHA256, password, len, iterations, &out->sha256);
}
