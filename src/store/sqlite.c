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
 * Every other row (roster items and groups, the roster version counter of
 * XEP-0237, offline messages of XEP-0160, vCard/private XML documents, XEP-0191
 * block lists) is keyed by its user's bare JID and references accounts(jid)
 * ON DELETE CASCADE, so deleting an account is one statement that removes all
 * it owns atomically, and a write for a missing account fails as KR_ENOENT.
 * Multi-statement operations run in one transaction; writers take the write
 * lock at BEGIN IMMEDIATE so checks they make (the offline quota) still hold
 * at commit. All data reaches SQL through bound parameters only.
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
    /* 2: rosters with their version counter, offline messages, XML documents and block
     * lists; every row hangs off its user's account and goes with it. Groups live in a
     * child table keyed by position so a name may hold any character. */
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
    ") WITHOUT ROWID;",
};

#define MIGRATION_COUNT ((int)(sizeof migrations / sizeof migrations[0]))

typedef enum stmt_id {
    ST_ACCOUNT_INSERT,
    ST_ACCOUNT_UPDATE,
    ST_ACCOUNT_DELETE,
    ST_ACCOUNT_GET,
    ST_ACCOUNT_LIST,
    ST_BEGIN_READ,
    ST_BEGIN_WRITE,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_ROSTER_VERSION_GET,
    ST_ROSTER_VERSION_BUMP,
    ST_ROSTER_ITEMS,
    ST_ROSTER_GROUPS,
    ST_ROSTER_ITEM_GET,
    ST_ROSTER_ITEM_GROUPS,
    ST_ROSTER_ITEM_PUT,
    ST_ROSTER_ITEM_GROUPS_CLEAR,
    ST_ROSTER_GROUP_ADD,
    ST_ROSTER_ITEM_DELETE,
    ST_ROSTER_COUNT,
    ST_OFFLINE_COUNT,
    ST_OFFLINE_INSERT,
    ST_OFFLINE_LIST,
    ST_OFFLINE_DELETE_UPTO,
    ST_XML_GET,
    ST_XML_PUT,
    ST_XML_SIZE,
    ST_BLOCK_LIST,
    ST_BLOCK_ADD,
    ST_BLOCK_REMOVE,
    ST_BLOCK_CLEAR,
    ST_COUNT
} stmt_id;

#define ROSTER_COLUMNS "contact, name, subscription, ask, pending_in, approved, pending_in_xml"

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
    [ST_BEGIN_READ] = "BEGIN",
    [ST_BEGIN_WRITE] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_ROSTER_VERSION_GET] = "SELECT version FROM roster_versions WHERE user = ?1",
    /* The first version is derived from the clock, so an account deleted and created again
     * never repeats a version a client may have cached (XEP-0237). */
    [ST_ROSTER_VERSION_BUMP] = "INSERT INTO roster_versions (user, version)"
                               " VALUES (?1, CAST(strftime('%s', 'now') AS INTEGER) * 1000)"
                               " ON CONFLICT (user) DO UPDATE SET version = version + 1"
                               " RETURNING version",
    [ST_ROSTER_ITEMS] = "SELECT " ROSTER_COLUMNS " FROM roster_items WHERE user = ?1"
                        " ORDER BY contact",
    [ST_ROSTER_GROUPS] = "SELECT contact, name FROM roster_groups WHERE user = ?1"
                         " ORDER BY contact, position",
    [ST_ROSTER_ITEM_GET] = "SELECT " ROSTER_COLUMNS " FROM roster_items"
                           " WHERE user = ?1 AND contact = ?2",
    [ST_ROSTER_ITEM_GROUPS] = "SELECT name FROM roster_groups WHERE user = ?1 AND contact = ?2"
                              " ORDER BY position",
    [ST_ROSTER_ITEM_PUT] =
        "INSERT INTO roster_items (user, " ROSTER_COLUMNS ")"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        " ON CONFLICT (user, contact) DO UPDATE SET"
        " name = excluded.name, subscription = excluded.subscription,"
        " ask = excluded.ask, pending_in = excluded.pending_in,"
        " approved = excluded.approved, pending_in_xml = excluded.pending_in_xml",
    [ST_ROSTER_ITEM_GROUPS_CLEAR] = "DELETE FROM roster_groups WHERE user = ?1 AND contact = ?2",
    [ST_ROSTER_GROUP_ADD] = "INSERT INTO roster_groups (user, contact, position, name)"
                            " VALUES (?1, ?2, ?3, ?4)",
    [ST_ROSTER_ITEM_DELETE] = "DELETE FROM roster_items WHERE user = ?1 AND contact = ?2",
    [ST_ROSTER_COUNT] = "SELECT count(*) FROM roster_items WHERE user = ?1",
    [ST_OFFLINE_COUNT] = "SELECT count(*) FROM offline_messages WHERE user = ?1",
    [ST_OFFLINE_INSERT] = "INSERT INTO offline_messages (user, stamp, xml) VALUES (?1, ?2, ?3)",
    [ST_OFFLINE_LIST] = "SELECT id, stamp, xml FROM offline_messages WHERE user = ?1"
                        " ORDER BY id LIMIT ?2",
    [ST_OFFLINE_DELETE_UPTO] = "DELETE FROM offline_messages WHERE user = ?1 AND id <= ?2",
    [ST_XML_GET] = "SELECT xml FROM xml_documents WHERE user = ?1 AND key = ?2",
    [ST_XML_PUT] = "INSERT INTO xml_documents (user, key, xml) VALUES (?1, ?2, ?3)"
                   " ON CONFLICT (user, key) DO UPDATE SET xml = excluded.xml",
    /* Prefix compared as bytes: LIKE/GLOB would treat characters of the prefix as patterns. */
    [ST_XML_SIZE] = "SELECT coalesce(sum(length(CAST(xml AS BLOB))), 0) FROM xml_documents"
                    " WHERE user = ?1 AND substr(CAST(key AS BLOB), 1, ?3) = ?2",
    [ST_BLOCK_LIST] = "SELECT jid FROM block_list WHERE user = ?1 ORDER BY jid",
    [ST_BLOCK_ADD] = "INSERT INTO block_list (user, jid) VALUES (?1, ?2)"
                     " ON CONFLICT (user, jid) DO NOTHING",
    [ST_BLOCK_REMOVE] = "DELETE FROM block_list WHERE user = ?1 AND jid = ?2",
    [ST_BLOCK_CLEAR] = "DELETE FROM block_list WHERE user = ?1",
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
    /* Switching a new file to WAL needs an exclusive lock and SQLite does not call the busy
     * handler for it: several processes opening a new store at once (kurierctl in scripts)
     * would fail at once. Retry for as long as the busy timeout allows. */
    for (int waited = 0; (rc = sqlite3_step(st)) != SQLITE_ROW && (rc & 0xff) == SQLITE_BUSY &&
                         waited < busy_timeout_ms();
         waited += 10) {
        sqlite3_reset(st);
        usleep(10000);
    }
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
    /* Create it ourselves so it never exists with wider permissions; SQLite gives the -wal and
     * -shm files the database file's mode. Only when it does not exist yet: closing a
     * descriptor of a file drops every POSIX lock this process holds on it, including those
     * of other connections of ours (one per storage lane), and a process that then sees the
     * file unlocked may checkpoint and remove the WAL under them. */
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        close(fd);
    } else if (errno != EEXIST) {
        set_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return KR_ESTORE;
    }

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

/* One statement, so one transaction: ON DELETE CASCADE removes the roster, its groups and
 * version, offline messages, XML documents and block list together with the account. */
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

/* ---- shared helpers for the per-user tables ------------------------------------------------ */

/* Map a failed write: a missing parent account shows up as a foreign key violation. */
static int write_fail(kr_store *s, int rc)
{
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
        snprintf(s->errmsg, sizeof s->errmsg, "no such account");
        return KR_ENOENT;
    }
    return fail(s, rc);
}

/* Step a statement that returns no row, then make it ready for reuse. */
static int run(kr_store *s, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    int ret = rc == SQLITE_DONE ? 0 : write_fail(s, rc);
    stmt_done(st);
    return ret;
}

static int stmt_simple(kr_store *s, stmt_id id)
{
    sqlite3_stmt *st;
    int rc = stmt_get(s, id, &st);
    return rc < 0 ? rc : run(s, st);
}

/* Writers take the write lock up front (IMMEDIATE), so a read-then-write sequence such as
 * the offline quota check never has to upgrade a lock and never sees a stale count. */
static int tx_begin(kr_store *s, bool write)
{
    return stmt_simple(s, write ? ST_BEGIN_WRITE : ST_BEGIN_READ);
}

/* Commit when ret is 0, roll back otherwise; returns ret or the commit's failure. */
static int tx_end(kr_store *s, int ret)
{
    if (ret == 0)
        ret = stmt_simple(s, ST_COMMIT);
    if (ret < 0 && !sqlite3_get_autocommit(s->db)) {
        sqlite3_stmt *st;
        if (stmt_get(s, ST_ROLLBACK, &st) == 0) {
            sqlite3_step(st);
            stmt_done(st);
        }
    }
    return ret;
}

/* Fetch a cached statement and bind the user to ?1 and, when given, text to ?2. */
static int prepare(kr_store *s, stmt_id id, const char *user, const char *second,
                   sqlite3_stmt **out)
{
    sqlite3_stmt *st;
    int rc = stmt_get(s, id, &st);
    if (rc < 0)
        return rc;
    rc = sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && second)
        rc = sqlite3_bind_text(st, 2, second, -1, SQLITE_STATIC);
    if (rc != SQLITE_OK) {
        rc = fail(s, rc);
        stmt_done(st);
        return rc;
    }
    *out = st;
    return 0;
}

/* Run a statement returning one non-negative integer. */
static int query_count(kr_store *s, sqlite3_stmt *st, long long *out)
{
    int rc = sqlite3_step(st);
    int ret = 0;
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_INTEGER &&
        sqlite3_column_int64(st, 0) >= 0) {
        *out = sqlite3_column_int64(st, 0);
    } else if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
        snprintf(s->errmsg, sizeof s->errmsg, "unexpected result of a count");
        ret = KR_ESTORE;
    } else {
        ret = fail(s, rc);
    }
    stmt_done(st);
    return ret;
}

static int malformed(kr_store *s, const char *what, const char *user)
{
    snprintf(s->errmsg, sizeof s->errmsg, "malformed %s stored for %s", what, user);
    return KR_ESTORE;
}

/* Copy a TEXT or BLOB column as a NUL-terminated string; NULL for SQL NULL. */
static char *column_dup(sqlite3_stmt *st, int col, size_t *len)
{
    int type = sqlite3_column_type(st, col);
    if (type != SQLITE_TEXT && type != SQLITE_BLOB)
        return NULL;
    const void *p = type == SQLITE_TEXT ? (const void *)sqlite3_column_text(st, col)
                                        : sqlite3_column_blob(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    char *out = kr_xmalloc(n + 1);
    if (n)
        memcpy(out, p, n);
    out[n] = '\0';
    if (len)
        *len = n;
    return out;
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

static bool flag_ok(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_INTEGER &&
           (sqlite3_column_int64(st, col) & ~1LL) == 0;
}

/* Read the ROSTER_COLUMNS of the current row; false if the row is malformed. */
static bool column_item(sqlite3_stmt *st, kr_roster_item *it)
{
    memset(it, 0, sizeof *it);
    int ntype = sqlite3_column_type(st, 1), xtype = sqlite3_column_type(st, 6);
    if (sqlite3_column_type(st, 0) != SQLITE_TEXT ||
        (ntype != SQLITE_NULL && ntype != SQLITE_TEXT) ||
        sqlite3_column_type(st, 2) != SQLITE_INTEGER || sqlite3_column_int64(st, 2) < 0 ||
        sqlite3_column_int64(st, 2) > KR_SUB_BOTH || !flag_ok(st, 3) || !flag_ok(st, 4) ||
        !flag_ok(st, 5) || (xtype != SQLITE_NULL && xtype != SQLITE_TEXT))
        return false;
    it->contact = column_dup(st, 0, NULL);
    it->name = column_dup(st, 1, NULL);
    it->sub = (kr_subscription)sqlite3_column_int64(st, 2);
    it->ask = sqlite3_column_int64(st, 3) != 0;
    it->pending_in = sqlite3_column_int64(st, 4) != 0;
    it->approved = sqlite3_column_int64(st, 5) != 0;
    it->pending_in_xml = column_dup(st, 6, NULL);
    return true;
}

static void item_add_group(kr_roster_item *it, size_t *cap, char *name)
{
    it->groups = grow(it->groups, it->group_count, cap, sizeof *it->groups);
    it->groups[it->group_count++] = name;
}

static int roster_version_get(kr_store *s, const char *user, uint64_t *version)
{
    sqlite3_stmt *st;
    int rc = prepare(s, ST_ROSTER_VERSION_GET, user, NULL, &st);
    if (rc < 0)
        return rc;
    rc = sqlite3_step(st);
    int ret = 0;
    if (rc == SQLITE_DONE)
        *version = 0;
    else if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_INTEGER &&
             sqlite3_column_int64(st, 0) > 0)
        *version = (uint64_t)sqlite3_column_int64(st, 0);
    else if (rc == SQLITE_ROW)
        ret = malformed(s, "roster version", user);
    else
        ret = fail(s, rc);
    stmt_done(st);
    return ret;
}

/* Inside a write transaction: count one more change of user's roster. */
static int roster_version_bump(kr_store *s, const char *user, uint64_t *version)
{
    sqlite3_stmt *st;
    int rc = prepare(s, ST_ROSTER_VERSION_BUMP, user, NULL, &st);
    if (rc < 0)
        return rc;
    rc = sqlite3_step(st);
    int ret = 0;
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_INTEGER &&
        sqlite3_column_int64(st, 0) > 0)
        *version = (uint64_t)sqlite3_column_int64(st, 0);
    else if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        ret = malformed(s, "roster version", user);
    else
        ret = write_fail(s, rc);
    stmt_done(st);
    return ret;
}

static int roster_items_read(kr_store *s, const char *user, kr_roster_item **items, size_t *n)
{
    sqlite3_stmt *st;
    int rc = prepare(s, ST_ROSTER_ITEMS, user, NULL, &st);
    if (rc < 0)
        return rc;
    size_t cap = 0;
    int ret = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *items = grow(*items, *n, &cap, sizeof **items);
        if (!column_item(st, &(*items)[*n])) {
            ret = malformed(s, "roster item", user);
            break;
        }
        (*n)++;
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = fail(s, rc);
    stmt_done(st);
    return ret;
}

/* Attach groups (sorted by contact, then position) to items (sorted by contact). */
static int roster_groups_read(kr_store *s, const char *user, kr_roster_item *items, size_t n)
{
    sqlite3_stmt *st;
    int rc = prepare(s, ST_ROSTER_GROUPS, user, NULL, &st);
    if (rc < 0)
        return rc;
    size_t i = 0, cap = 0;
    int ret = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *contact = (const char *)sqlite3_column_text(st, 0);
        if (!contact || sqlite3_column_type(st, 1) != SQLITE_TEXT) {
            ret = malformed(s, "roster group", user);
            break;
        }
        while (i < n && strcmp(items[i].contact, contact) < 0) {
            i++;
            cap = 0;
        }
        if (i == n || strcmp(items[i].contact, contact) != 0) {
            ret = malformed(s, "roster group", user);
            break;
        }
        item_add_group(&items[i], &cap, column_dup(st, 1, NULL));
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = fail(s, rc);
    stmt_done(st);
    return ret;
}

int kr_store_roster_list(kr_store *s, const char *user, kr_roster_item **items, size_t *n,
                         uint64_t *version)
{
    *items = NULL;
    *n = 0;
    *version = 0;
    kr_roster_item *list = NULL;
    size_t count = 0;
    int rc = tx_begin(s, false); /* one snapshot: the version matches the items */
    if (rc < 0)
        return rc;
    rc = roster_version_get(s, user, version);
    if (rc == 0)
        rc = roster_items_read(s, user, &list, &count);
    if (rc == 0)
        rc = roster_groups_read(s, user, list, count);
    rc = tx_end(s, rc);
    if (rc < 0) {
        kr_roster_items_free(list, count);
        *version = 0;
        return rc;
    }
    *items = list;
    *n = count;
    return 0;
}

static int roster_item_groups_read(kr_store *s, const char *user, kr_roster_item *it)
{
    sqlite3_stmt *st;
    int rc = prepare(s, ST_ROSTER_ITEM_GROUPS, user, it->contact, &st);
    if (rc < 0)
        return rc;
    size_t cap = 0;
    int ret = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (sqlite3_column_type(st, 0) != SQLITE_TEXT) {
            ret = malformed(s, "roster group", user);
            break;
        }
        item_add_group(it, &cap, column_dup(st, 0, NULL));
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = fail(s, rc);
    stmt_done(st);
    return ret;
}

static int roster_item_read(kr_store *s, const char *user, const char *contact, kr_roster_item *out)
{
    sqlite3_stmt *st;
    int rc = prepare(s, ST_ROSTER_ITEM_GET, user, contact, &st);
    if (rc < 0)
        return rc;
    rc = sqlite3_step(st);
    int ret = 0;
    if (rc == SQLITE_ROW) {
        if (!column_item(st, out))
            ret = malformed(s, "roster item", user);
    } else {
        ret = rc == SQLITE_DONE ? KR_ENOENT : fail(s, rc);
    }
    stmt_done(st);
    if (ret == 0)
        ret = roster_item_groups_read(s, user, out);
    return ret;
}

int kr_store_roster_get(kr_store *s, const char *user, const char *contact, kr_roster_item *out)
{
    memset(out, 0, sizeof *out);
    int rc = tx_begin(s, false);
    if (rc < 0)
        return rc;
    rc = tx_end(s, roster_item_read(s, user, contact, out));
    if (rc < 0)
        kr_roster_item_clear(out);
    return rc;
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

static int bind_item(sqlite3_stmt *st, const kr_roster_item *it)
{
    int rc = sqlite3_bind_text(st, 3, it->name, -1, SQLITE_STATIC); /* NULL binds NULL */
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 4, (int)it->sub);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 5, it->ask);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 6, it->pending_in);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 7, it->approved);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 8, it->pending_in_xml, -1, SQLITE_STATIC);
    return rc;
}

static int roster_groups_write(kr_store *s, const char *user, const kr_roster_item *it)
{
    sqlite3_stmt *st;
    int rc = prepare(s, ST_ROSTER_ITEM_GROUPS_CLEAR, user, it->contact, &st);
    if (rc == 0)
        rc = run(s, st);
    for (size_t i = 0; rc == 0 && i < it->group_count; i++) {
        rc = prepare(s, ST_ROSTER_GROUP_ADD, user, it->contact, &st);
        if (rc < 0)
            break;
        int brc = sqlite3_bind_int64(st, 3, (sqlite3_int64)i);
        if (brc == SQLITE_OK)
            brc = sqlite3_bind_text(st, 4, it->groups[i], -1, SQLITE_STATIC);
        if (brc != SQLITE_OK) {
            rc = fail(s, brc);
            stmt_done(st);
        } else {
            rc = run(s, st);
        }
    }
    return rc;
}

static int roster_item_write(kr_store *s, const char *user, const kr_roster_item *it)
{
    sqlite3_stmt *st;
    int rc = prepare(s, ST_ROSTER_ITEM_PUT, user, it->contact, &st);
    if (rc < 0)
        return rc;
    int brc = bind_item(st, it);
    if (brc != SQLITE_OK) {
        rc = fail(s, brc);
        stmt_done(st);
        return rc;
    }
    rc = run(s, st);
    if (rc == 0)
        rc = roster_groups_write(s, user, it);
    return rc;
}

int kr_store_roster_put(kr_store *s, const char *user, const kr_roster_item *it, uint64_t *version)
{
    if (!item_valid(it)) {
        snprintf(s->errmsg, sizeof s->errmsg, "malformed roster item");
        return KR_EINVAL;
    }
    uint64_t v = 0;
    int rc = tx_begin(s, true);
    if (rc < 0)
        return rc;
    rc = roster_item_write(s, user, it);
    if (rc == 0)
        rc = roster_version_bump(s, user, &v);
    rc = tx_end(s, rc);
    if (rc == 0 && version)
        *version = v;
    return rc;
}

int kr_store_roster_remove(kr_store *s, const char *user, const char *contact, uint64_t *version)
{
    uint64_t v = 0;
    int rc = tx_begin(s, true);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st;
    rc = prepare(s, ST_ROSTER_ITEM_DELETE, user, contact, &st);
    if (rc == 0)
        rc = run(s, st);
    if (rc == 0 && sqlite3_changes(s->db) == 0) /* groups go by cascade */
        rc = KR_ENOENT;
    if (rc == 0)
        rc = roster_version_bump(s, user, &v);
    rc = tx_end(s, rc);
    if (rc == 0 && version)
        *version = v;
    return rc;
}

int kr_store_roster_count(kr_store *s, const char *user, size_t *n)
{
    *n = 0;
    sqlite3_stmt *st;
    long long c = 0;
    int rc = prepare(s, ST_ROSTER_COUNT, user, NULL, &st);
    if (rc == 0)
        rc = query_count(s, st, &c);
    if (rc == 0)
        *n = (size_t)c;
    return rc;
}

/* ---- offline messages --------------------------------------------------------------------- */

static int offline_count(kr_store *s, const char *user, long long *c)
{
    sqlite3_stmt *st;
    int rc = prepare(s, ST_OFFLINE_COUNT, user, NULL, &st);
    return rc < 0 ? rc : query_count(s, st, c);
}

static int offline_insert(kr_store *s, const char *user, const char *xml, size_t len, int64_t stamp)
{
    sqlite3_stmt *st;
    int rc = prepare(s, ST_OFFLINE_INSERT, user, NULL, &st);
    if (rc < 0)
        return rc;
    int brc = sqlite3_bind_int64(st, 2, stamp);
    if (brc == SQLITE_OK) /* a non-NULL pointer: an empty message is an empty BLOB, not NULL */
        brc = sqlite3_bind_blob64(st, 3, len ? xml : "", len, SQLITE_STATIC);
    if (brc != SQLITE_OK) {
        rc = fail(s, brc);
        stmt_done(st);
        return rc;
    }
    return run(s, st);
}

int kr_store_offline_push(kr_store *s, const char *user, const char *xml, size_t len, int64_t stamp,
                          size_t quota)
{
    long long c = 0;
    int rc = tx_begin(s, true); /* the count and the insert see the same queue */
    if (rc < 0)
        return rc;
    rc = offline_count(s, user, &c);
    if (rc == 0 && (unsigned long long)c >= quota) {
        snprintf(s->errmsg, sizeof s->errmsg, "offline quota of %zu messages reached", quota);
        rc = KR_ELIMIT;
    }
    if (rc == 0)
        rc = offline_insert(s, user, xml, len, stamp);
    return tx_end(s, rc);
}

int kr_store_offline_list(kr_store *s, const char *user, size_t max, kr_offline_msg **msgs,
                          size_t *n)
{
    *msgs = NULL;
    *n = 0;
    if (max == 0)
        return 0;
    sqlite3_stmt *st;
    int rc = prepare(s, ST_OFFLINE_LIST, user, NULL, &st);
    if (rc < 0)
        return rc;
    rc = sqlite3_bind_int64(st, 2, max > (size_t)INT64_MAX ? -1 : (sqlite3_int64)max);
    if (rc != SQLITE_OK) {
        rc = fail(s, rc);
        stmt_done(st);
        return rc;
    }
    kr_offline_msg *list = NULL;
    size_t count = 0, cap = 0;
    int ret = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (sqlite3_column_type(st, 0) != SQLITE_INTEGER ||
            sqlite3_column_type(st, 1) != SQLITE_INTEGER ||
            (sqlite3_column_type(st, 2) != SQLITE_BLOB &&
             sqlite3_column_type(st, 2) != SQLITE_TEXT)) {
            ret = malformed(s, "offline message", user);
            break;
        }
        list = grow(list, count, &cap, sizeof *list);
        kr_offline_msg *m = &list[count++];
        m->id = sqlite3_column_int64(st, 0);
        m->stamp = sqlite3_column_int64(st, 1);
        m->xml = column_dup(st, 2, &m->len);
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = fail(s, rc);
    stmt_done(st);
    if (ret < 0) {
        kr_offline_msgs_free(list, count);
        return ret;
    }
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
    sqlite3_stmt *st;
    int rc = prepare(s, ST_OFFLINE_DELETE_UPTO, user, NULL, &st);
    if (rc < 0)
        return rc;
    rc = sqlite3_bind_int64(st, 2, max_id);
    if (rc != SQLITE_OK) {
        rc = fail(s, rc);
        stmt_done(st);
        return rc;
    }
    return run(s, st);
}

int kr_store_offline_count(kr_store *s, const char *user, size_t *n)
{
    long long c = 0;
    *n = 0;
    int rc = offline_count(s, user, &c);
    if (rc == 0)
        *n = (size_t)c;
    return rc;
}

/* ---- XML documents ------------------------------------------------------------------------ */

int kr_store_xml_get(kr_store *s, const char *user, const char *key, char **xml, size_t *len)
{
    *xml = NULL;
    if (len)
        *len = 0;
    sqlite3_stmt *st;
    int rc = prepare(s, ST_XML_GET, user, key, &st);
    if (rc < 0)
        return rc;
    rc = sqlite3_step(st);
    int ret = 0;
    if (rc == SQLITE_ROW) {
        *xml = column_dup(st, 0, len);
        if (!*xml)
            ret = malformed(s, "XML document", user);
    } else {
        ret = rc == SQLITE_DONE ? KR_ENOENT : fail(s, rc);
    }
    stmt_done(st);
    return ret;
}

int kr_store_xml_put(kr_store *s, const char *user, const char *key, const char *xml, size_t len)
{
    sqlite3_stmt *st;
    int rc = prepare(s, ST_XML_PUT, user, key, &st);
    if (rc < 0)
        return rc;
    rc = sqlite3_bind_blob64(st, 3, len ? xml : "", len, SQLITE_STATIC);
    if (rc != SQLITE_OK) {
        rc = fail(s, rc);
        stmt_done(st);
        return rc;
    }
    return run(s, st);
}

int kr_store_xml_size(kr_store *s, const char *user, const char *prefix, size_t *bytes)
{
    *bytes = 0;
    sqlite3_stmt *st;
    int rc = prepare(s, ST_XML_SIZE, user, NULL, &st);
    if (rc < 0)
        return rc;
    size_t plen = strlen(prefix);
    rc = sqlite3_bind_blob64(st, 2, prefix, plen, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 3, (sqlite3_int64)plen);
    if (rc != SQLITE_OK) {
        rc = fail(s, rc);
        stmt_done(st);
        return rc;
    }
    long long total = 0;
    rc = query_count(s, st, &total);
    if (rc == 0)
        *bytes = (size_t)total;
    return rc;
}

/* ---- block lists -------------------------------------------------------------------------- */

int kr_store_block_list(kr_store *s, const char *user, char ***jids, size_t *n)
{
    *jids = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = prepare(s, ST_BLOCK_LIST, user, NULL, &st);
    if (rc < 0)
        return rc;
    char **list = NULL;
    size_t count = 0, cap = 0;
    int ret = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (sqlite3_column_type(st, 0) != SQLITE_TEXT) {
            ret = malformed(s, "block list entry", user);
            break;
        }
        list = grow(list, count, &cap, sizeof *list);
        list[count++] = column_dup(st, 0, NULL);
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = fail(s, rc);
    stmt_done(st);
    if (ret < 0) {
        for (size_t i = 0; i < count; i++)
            free(list[i]);
        free(list);
        return ret;
    }
    *jids = list;
    *n = count;
    return 0;
}

int kr_store_block_add(kr_store *s, const char *user, const char *jid)
{
    sqlite3_stmt *st;
    int rc = prepare(s, ST_BLOCK_ADD, user, jid, &st);
    return rc < 0 ? rc : run(s, st);
}

int kr_store_block_remove(kr_store *s, const char *user, const char *jid)
{
    sqlite3_stmt *st;
    int rc = prepare(s, jid ? ST_BLOCK_REMOVE : ST_BLOCK_CLEAR, user, jid, &st);
    return rc < 0 ? rc : run(s, st);
}
