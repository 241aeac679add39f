/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * The embedded storage driver: store.h on one SQLite file (DESIGN.md, storage).
 * A connection (kr_store's conn) owns one sqlite3 handle and a cache of its
 * prepared statements; it is used by one thread at a time, and several
 * connections to one file may work at once from different threads. The
 * connection runs in WAL mode so readers (kurierctl list, other storage
 * threads) never wait for a writer, with synchronous=FULL so a call that
 * returns 0 has reached the disk, and with foreign keys on so every row of a
 * user goes with their account. Contention is waited out for the busy timeout,
 * then reported as KR_ELOCKED.
 * The schema is versioned in the one-row table schema_version; `migrations`
 * below is the ordered list of forward steps (SQL text, or a C function when a
 * step converts data), and open applies the missing ones in a single write
 * transaction. Migrations are only ever appended: entry i takes the schema from
 * version i to i+1, and a released entry never changes, C steps included.
 * Schema 3: accounts hold SCRAM credentials (RFC 5802 §3: salt, iteration
 * count, StoredKey, ServerKey) for SHA-1 and SHA-256 (RFC 7677), never a
 * password. Everything modules keep is in two generic tables whose rows belong
 * to an account (user REFERENCES accounts(jid) ON DELETE CASCADE, so deleting an
 * account is one statement that removes all it owns atomically, and a write for
 * a missing account fails as KR_ENOENT): module_map (user, store, key) -> value,
 * a WITHOUT ROWID table whose primary key starts with user so the cascade and
 * every per-user query are index ranges, and module_archive, entries with an
 * AUTOINCREMENT id (never reused), indexed by (user, store, id), (user, store,
 * with_jid, id) and (user, store, stamp) for the XEP-0313 filters. Migration 3
 * moved the feature tables of schema 2 (rosters, offline messages, XML
 * documents, block lists) into them, where the modules that own them read
 * them: rosters (server/roster_store.h), offline messages (archive
 * "offline"), vCards (map "vcard", key ""), private XML (map "private", key
 * "ns name"), block lists (map "blocking", key = the JID).
 * Keys are TEXT compared with the BINARY collation (memcmp), so key order and
 * prefix ranges are byte order; values and entry data are BLOBs.
 * Multi-statement operations run in one transaction (the caller's when one is
 * open); writers take the write lock at BEGIN IMMEDIATE so checks they make
 * (an archive quota) still hold at commit. All data reaches SQL through bound
 * parameters only.
 */
#include "store/internal.h"

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
#include "core/buf.h"
#include "core/error.h"
#include "core/record.h"

#define KR_STORE_BUSY_DEFAULT_MS 5000
#define KR_STORE_BUSY_MAX_MS 600000

/* One forward step of the schema: SQL text, or a C function for steps that convert data. */
typedef struct migration {
    const char *sql;
    int (*step)(kr_store *s);
} migration;

static int migration_3_generic_stores(kr_store *s);

/* Forward migrations; the schema version is the number of entries applied. */
static const migration migrations[] = {
    /* 1: accounts with SCRAM-SHA-1 and SCRAM-SHA-256 credentials. */
    {.sql = "CREATE TABLE accounts ("
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
            ");"},
    /* 2: rosters with their version counter, offline messages, XML documents and block
     * lists; every row hangs off its user's account and goes with it. Groups live in a
     * child table keyed by position so a name may hold any character. */
    {.sql =
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
         ") WITHOUT ROWID;"},
    /* 3: the generic map and archive stores that modules own their data in; the tables of
     * 2 are moved into them and dropped (see migration_3_generic_stores). */
    {.step = migration_3_generic_stores},
    /* 4: the record version of each module store whose format a module has changed since
     * its first version (kr_store_version_*; a store not listed is at version 1). */
    {.sql = "CREATE TABLE store_versions ("
            "  store TEXT PRIMARY KEY NOT NULL,"
            "  version INTEGER NOT NULL CHECK (version >= 1)"
            ") WITHOUT ROWID;"},
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
    ST_MAP_GET,
    ST_MAP_PUT,
    ST_MAP_DELETE,
    ST_MAP_CLEAR,
    ST_MAP_LIST,       /* every key */
    ST_MAP_LIST_FROM,  /* keys >= ?3: a prefix of only 0xff bytes has no upper bound */
    ST_MAP_LIST_RANGE, /* ?3 <= key < ?4: the keys starting with a prefix */
    ST_MAP_COUNT,
    ST_MAP_SIZE,
    ST_MAP_SIZE_FROM,
    ST_MAP_SIZE_RANGE,
    ST_ARCHIVE_INSERT,
    ST_ARCHIVE_COUNT,
    ST_ARCHIVE_DELETE_UPTO,
    ST_VERSION_GET,
    ST_VERSION_PUT,
    ST_COUNT
} stmt_id;

#define MAP_WHERE " FROM module_map WHERE user = ?1 AND store = ?2"
#define MAP_SIZE "SELECT coalesce(sum(length(CAST(value AS BLOB))), 0)" MAP_WHERE

static const char *const stmt_sql[ST_COUNT] = {
    [ST_VERSION_GET] = "SELECT version FROM store_versions WHERE store = ?1",
    [ST_VERSION_PUT] = "INSERT INTO store_versions (store, version) VALUES (?1, ?2)"
                       " ON CONFLICT (store) DO UPDATE SET version = excluded.version",
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
    [ST_MAP_GET] = "SELECT value" MAP_WHERE " AND key = ?3",
    [ST_MAP_PUT] = "INSERT INTO module_map (user, store, key, value) VALUES (?1, ?2, ?3, ?4)"
                   " ON CONFLICT (user, store, key) DO UPDATE SET value = excluded.value",
    [ST_MAP_DELETE] = "DELETE" MAP_WHERE " AND key = ?3",
    [ST_MAP_CLEAR] = "DELETE" MAP_WHERE,
    [ST_MAP_LIST] = "SELECT key, value" MAP_WHERE " ORDER BY key",
    [ST_MAP_LIST_FROM] = "SELECT key, value" MAP_WHERE " AND key >= ?3 ORDER BY key",
    [ST_MAP_LIST_RANGE] = "SELECT key, value" MAP_WHERE " AND key >= ?3 AND key < ?4 ORDER BY key",
    [ST_MAP_COUNT] = "SELECT count(*)" MAP_WHERE,
    [ST_MAP_SIZE] = MAP_SIZE,
    [ST_MAP_SIZE_FROM] = MAP_SIZE " AND key >= ?3",
    [ST_MAP_SIZE_RANGE] = MAP_SIZE " AND key >= ?3 AND key < ?4",
    [ST_ARCHIVE_INSERT] = "INSERT INTO module_archive (user, store, stamp, with_jid, data)"
                          " VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_ARCHIVE_COUNT] = "SELECT count(*) FROM module_archive WHERE user = ?1 AND store = ?2",
    [ST_ARCHIVE_DELETE_UPTO] = "DELETE FROM module_archive WHERE user = ?1 AND store = ?2"
                               " AND id <= ?3",
};

/* Archive queries: one statement per combination of the filters a query uses, so each is a
 * plain index range; built and prepared on first use. */
enum {
    AQ_AFTER = 1,
    AQ_BEFORE = 2,
    AQ_START = 4,
    AQ_END = 8,
    AQ_WITH = 16,
    AQ_NEWEST = 32,
    AQ_SHAPES = 64,
};

typedef struct kr_sqlite {
    sqlite3 *db;
    sqlite3_stmt *stmts[ST_COUNT];          /* prepared on first use, finalized at close */
    sqlite3_stmt *archive_query[AQ_SHAPES]; /* likewise */
} kr_sqlite;

static sqlite3 *db_of(kr_store *s)
{
    return ((kr_sqlite *)s->conn)->db;
}

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
    kr__store_set_err(s, "%s", sqlite3_errmsg(db_of(s)));
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return KR_ELOCKED;
    default:
        return KR_ESTORE;
    }
}

/* Map a failed write: a missing parent account shows up as a foreign key violation. */
static int write_fail(kr_store *s, int rc)
{
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
        kr__store_set_err(s, "no such account");
        return KR_ENOENT;
    }
    return fail(s, rc);
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

static int prepare_cached(kr_store *s, sqlite3_stmt **slot, const char *sql, sqlite3_stmt **out)
{
    if (!*slot) {
        int rc = sqlite3_prepare_v3(db_of(s), sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL);
        if (rc != SQLITE_OK)
            return fail(s, rc);
    }
    *out = *slot;
    return 0;
}

static int stmt_get(kr_store *s, stmt_id id, sqlite3_stmt **out)
{
    kr_sqlite *c = s->conn;
    return prepare_cached(s, &c->stmts[id], stmt_sql[id], out);
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
    int rc = sqlite3_exec(db_of(s), sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : fail(s, rc);
}

/* Run one statement returning a single integer (or `none` when it returns no row). */
static int query_int(kr_store *s, const char *sql, long long none, long long *out)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db_of(s), sql, -1, &st, NULL);
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

/* ---- schema ------------------------------------------------------------------------------- */

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
        rc = migrations[i].sql ? exec(s, migrations[i].sql) : migrations[i].step(s);
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
        kr__store_set_err(s, "schema version %lld is newer than this program's %d", v,
                          MIGRATION_COUNT);
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
            sqlite3_exec(db_of(s), "ROLLBACK", NULL, NULL, NULL);
    }
    if (rc < 0)
        set_err(err, errlen, "%s: schema migration failed: %s", path, s->errmsg);
    return rc;
}

/* Migration 3, part 1: the generic tables. */
static const char migration_3_create[] =
    "CREATE TABLE module_map ("
    "  user TEXT NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,"
    "  store TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  value BLOB NOT NULL,"
    "  PRIMARY KEY (user, store, key)"
    ") WITHOUT ROWID;"
    "CREATE TABLE module_archive ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  user TEXT NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,"
    "  store TEXT NOT NULL,"
    "  stamp INTEGER NOT NULL,"
    "  with_jid TEXT,"
    "  data BLOB NOT NULL"
    ");"
    "CREATE INDEX module_archive_user_store_id ON module_archive (user, store, id);"
    "CREATE INDEX module_archive_user_store_with ON module_archive (user, store, with_jid, id);"
    "CREATE INDEX module_archive_user_store_stamp ON module_archive (user, store, stamp);";

/* Migration 3, part 3: what SQL can move by itself, then the tables of schema 2 go.
 * Offline messages keep their ids, and the id sequence continues after the highest id
 * offline_messages ever handed out (sqlite_sequence), so no id is handed out twice.
 * XML document keys are split as bytes, not characters. */
static const char migration_3_move[] =
    "INSERT INTO module_map (user, store, key, value)"
    " SELECT user, 'roster_meta', 'version', CAST(CAST(version AS TEXT) AS BLOB)"
    " FROM roster_versions;"
    "INSERT INTO module_archive (id, user, store, stamp, with_jid, data)"
    " SELECT id, user, 'offline', stamp, NULL, CAST(xml AS BLOB) FROM offline_messages"
    " ORDER BY id;"
    "UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence"
    "   WHERE name = 'offline_messages'), 0))"
    " WHERE name = 'module_archive';"
    "INSERT INTO sqlite_sequence (name, seq)"
    " SELECT 'module_archive', seq FROM sqlite_sequence WHERE name = 'offline_messages'"
    " AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'module_archive');"
    "INSERT INTO module_map (user, store, key, value)"
    " SELECT user,"
    "  CASE WHEN key = 'vcard' THEN 'vcard'"
    "   WHEN substr(CAST(key AS BLOB), 1, 8) = CAST('private ' AS BLOB) THEN 'private'"
    "   ELSE 'xml' END,"
    "  CASE WHEN key = 'vcard' THEN ''"
    "   WHEN substr(CAST(key AS BLOB), 1, 8) = CAST('private ' AS BLOB)"
    "    THEN CAST(substr(CAST(key AS BLOB), 9) AS TEXT)"
    "   ELSE key END,"
    "  CAST(xml AS BLOB)"
    " FROM xml_documents;"
    "INSERT INTO module_map (user, store, key, value)"
    " SELECT user, 'blocking', jid, X'' FROM block_list;"
    "DROP TABLE roster_groups;"
    "DROP TABLE roster_items;"
    "DROP TABLE roster_versions;"
    "DROP TABLE offline_messages;"
    "DROP TABLE xml_documents;"
    "DROP TABLE block_list;";

/* Append column col of st (TEXT or BLOB) to a record as field key. */
static void migration_3_field(kr_buf *b, const char *key, sqlite3_stmt *st, int col)
{
    const void *p = sqlite3_column_blob(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    kr_record_add(b, key, n ? p : NULL, n);
}

/* Migration 3, part 2: each roster item with its groups becomes one record in the map store
 * "roster" (the field list is in server/roster_store.h). Frozen with the migration: it reads schema 2
 * and writes record version 1, whatever the roster module does later. */
static int migration_3_rosters(kr_store *s)
{
    static const char *const sql[3] = {
        "SELECT user, contact, name, subscription, ask, pending_in, approved, pending_in_xml"
        " FROM roster_items ORDER BY user, contact",
        "SELECT name FROM roster_groups WHERE user = ?1 AND contact = ?2 ORDER BY position",
        "INSERT INTO module_map (user, store, key, value) VALUES (?1, 'roster', ?2, ?3)",
    };
    sqlite3_stmt *st[3] = {NULL, NULL, NULL};
    int rc = SQLITE_OK;
    for (int i = 0; i < 3 && rc == SQLITE_OK; i++)
        rc = sqlite3_prepare_v2(db_of(s), sql[i], -1, &st[i], NULL);
    sqlite3_stmt *items = st[0], *groups = st[1], *insert = st[2];
    kr_buf b = KR_BUF_INIT;
    while (rc == SQLITE_OK && (rc = sqlite3_step(items)) == SQLITE_ROW) {
        kr_buf_consume(&b, b.len);
        kr_record_begin(&b);
        if (sqlite3_column_type(items, 2) != SQLITE_NULL)
            migration_3_field(&b, "name", items, 2);
        kr_record_add_int(&b, "sub", sqlite3_column_int64(items, 3));
        if (sqlite3_column_int64(items, 4))
            kr_record_add_str(&b, "ask", "1");
        if (sqlite3_column_int64(items, 5))
            kr_record_add_str(&b, "pending_in", "1");
        if (sqlite3_column_int64(items, 6))
            kr_record_add_str(&b, "approved", "1");
        if (sqlite3_column_type(items, 7) != SQLITE_NULL)
            migration_3_field(&b, "pending_in_xml", items, 7);
        rc = sqlite3_bind_value(groups, 1, sqlite3_column_value(items, 0));
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_value(groups, 2, sqlite3_column_value(items, 1));
        while (rc == SQLITE_OK && (rc = sqlite3_step(groups)) == SQLITE_ROW) {
            migration_3_field(&b, "group", groups, 0);
            rc = SQLITE_OK;
        }
        sqlite3_reset(groups);
        if (rc != SQLITE_DONE)
            break;
        kr_record_end(&b);
        rc = sqlite3_bind_value(insert, 1, sqlite3_column_value(items, 0));
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_value(insert, 2, sqlite3_column_value(items, 1));
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_blob64(insert, 3, b.data, b.len, SQLITE_STATIC);
        if (rc == SQLITE_OK && (rc = sqlite3_step(insert)) == SQLITE_DONE)
            rc = SQLITE_OK;
        sqlite3_reset(insert);
    }
    int ret = rc == SQLITE_DONE ? 0 : fail(s, rc);
    kr_buf_clear(&b);
    for (int i = 0; i < 3; i++)
        sqlite3_finalize(st[i]);
    return ret;
}

/* Schema 2 -> 3: per-feature tables -> generic stores, nothing lost (the mapping is in this
 * file's opening comment; tests/unit/test_store.c builds a schema-2 file and checks every
 * row). */
static int migration_3_generic_stores(kr_store *s)
{
    int rc = exec(s, migration_3_create);
    if (rc == 0)
        rc = migration_3_rosters(s);
    if (rc == 0)
        rc = exec(s, migration_3_move);
    return rc;
}

/* ---- open and close ----------------------------------------------------------------------- */

static int set_wal(kr_store *s)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db_of(s), "PRAGMA journal_mode = WAL", -1, &st, NULL);
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
            kr__store_set_err(s, "cannot use WAL mode (journal mode is %s)",
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

static void sq_close(kr_store *s)
{
    kr_sqlite *c = s->conn;
    if (!c)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(c->stmts[i]);
    for (int i = 0; i < AQ_SHAPES; i++)
        sqlite3_finalize(c->archive_query[i]);
    sqlite3_close_v2(c->db);
    free(c);
    s->conn = NULL;
}

static int sq_open(kr_store *s, const char *path, char *err, size_t errlen)
{
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

    kr_sqlite *c = kr_xcalloc(1, sizeof *c);
    s->conn = c;
    /* NOMUTEX: a connection is used by one thread at a time (store.h); SQLite's own locks
     * still keep connections of different threads apart. */
    int rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        if (!c->db) {
            set_err(err, errlen, "cannot open %s: %s", path, sqlite3_errstr(rc));
            free(c);
            s->conn = NULL;
            return KR_ESTORE;
        }
        rc = fail(s, rc);
        set_err(err, errlen, "cannot open %s: %s", path, s->errmsg);
        sq_close(s);
        return rc;
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, busy_timeout_ms());

    rc = configure(s, path, err, errlen);
    if (rc == 0)
        rc = migrate(s, path, err, errlen);
    if (rc < 0) {
        if (rc == KR_ELOCKED)
            set_err(err, errlen, "%s is locked by another process", path);
        sq_close(s);
        return rc;
    }
    return 0;
}

/* ---- transactions ------------------------------------------------------------------------- */

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

/* At the start of every call: SQLite rolls a transaction back by itself after some failures
 * (a full disk, an interrupted statement). Then calls of the caller's transaction must not run
 * one by one in autocommit mode as if they were still inside it. */
static int txn_check(kr_store *s)
{
    if (s->txn != KR__STORE_TXN_NONE && sqlite3_get_autocommit(db_of(s))) {
        kr__store_set_err(s, "the transaction was rolled back after a failure");
        return KR_ESTORE;
    }
    return 0;
}

static void rollback_now(kr_store *s)
{
    if (sqlite3_get_autocommit(db_of(s)))
        return;
    sqlite3_stmt *st;
    if (stmt_get(s, ST_ROLLBACK, &st) == 0) {
        sqlite3_step(st);
        stmt_done(st);
    }
}

/* A transaction of the call's own, unless the caller holds one (*owned says which). Writers
 * take the write lock up front (IMMEDIATE), so a read-then-write sequence such as a quota
 * check never has to upgrade a lock and never sees a stale count. */
static int tx_begin(kr_store *s, bool write, bool *owned)
{
    *owned = false;
    if (s->txn != KR__STORE_TXN_NONE)
        return 0;
    int rc = stmt_simple(s, write ? ST_BEGIN_WRITE : ST_BEGIN_READ);
    *owned = rc == 0;
    return rc;
}

/* End an owned transaction: commit when ret is 0, roll back otherwise; returns ret or the
 * commit's failure. */
static int tx_end(kr_store *s, bool owned, int ret)
{
    if (!owned)
        return ret;
    if (ret == 0)
        ret = stmt_simple(s, ST_COMMIT);
    if (ret < 0)
        rollback_now(s);
    return ret;
}

static int sq_begin(kr_store *s, bool write)
{
    return stmt_simple(s, write ? ST_BEGIN_WRITE : ST_BEGIN_READ);
}

static int sq_commit(kr_store *s)
{
    int rc = txn_check(s);
    if (rc == 0)
        rc = stmt_simple(s, ST_COMMIT);
    if (rc < 0)
        rollback_now(s);
    return rc;
}

static int sq_rollback(kr_store *s)
{
    if (sqlite3_get_autocommit(db_of(s)))
        return 0; /* SQLite rolled it back already */
    int rc = stmt_simple(s, ST_ROLLBACK);
    return rc;
}

/* ---- accounts ----------------------------------------------------------------------------- */

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
        kr__store_set_err(s, "malformed credentials");
        return KR_EINVAL;
    }
    sqlite3_stmt *st;
    int rc = txn_check(s);
    if (rc == 0)
        rc = stmt_get(s, id, &st);
    if (rc < 0)
        return rc;
    rc = acct ? bind_account(st, jid, acct) : sqlite3_bind_text(st, 1, jid, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    int ret;
    if (rc == SQLITE_DONE)
        ret = sqlite3_changes(db_of(s)) > 0 ? 0 : KR_ENOENT;
    else if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
        ret = KR_EEXIST;
    else
        ret = fail(s, rc);
    stmt_done(st);
    return ret;
}

static int sq_account_create(kr_store *s, const char *jid, const kr_account *acct)
{
    return write_account(s, ST_ACCOUNT_INSERT, jid, acct);
}

static int sq_account_update(kr_store *s, const char *jid, const kr_account *acct)
{
    return write_account(s, ST_ACCOUNT_UPDATE, jid, acct);
}

/* One statement, so one transaction: ON DELETE CASCADE removes the user's rows of every map
 * and archive store together with the account. */
static int sq_account_delete(kr_store *s, const char *jid)
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

static int sq_account_get(kr_store *s, const char *jid, kr_account *out)
{
    sqlite3_stmt *st;
    int rc = txn_check(s);
    if (rc == 0)
        rc = stmt_get(s, ST_ACCOUNT_GET, &st);
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
            kr__store_set_err(s, "malformed credentials stored for %s", jid);
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

static int sq_account_list(kr_store *s, kr_store_account_list_cb cb, void *ud)
{
    sqlite3_stmt *st;
    int rc = txn_check(s);
    if (rc == 0)
        rc = stmt_get(s, ST_ACCOUNT_LIST, &st);
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

/* ---- shared helpers of the generic stores ------------------------------------------------- */

/* Check the caller's transaction, fetch a cached statement and bind the user to ?1 and the
 * store to ?2. */
static int prepare(kr_store *s, stmt_id id, const char *store, const char *user, sqlite3_stmt **out)
{
    sqlite3_stmt *st;
    int rc = txn_check(s);
    if (rc == 0)
        rc = stmt_get(s, id, &st);
    if (rc < 0)
        return rc;
    rc = sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 2, store, -1, SQLITE_STATIC);
    if (rc != SQLITE_OK) {
        rc = fail(s, rc);
        stmt_done(st);
        return rc;
    }
    *out = st;
    return 0;
}

/* After binding more parameters: on a failed bind (brc), report it and release st. */
static int bound(kr_store *s, sqlite3_stmt *st, int brc)
{
    if (brc == SQLITE_OK)
        return 0;
    int rc = fail(s, brc);
    stmt_done(st);
    return rc;
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
        kr__store_set_err(s, "unexpected result of a count");
        ret = KR_ESTORE;
    } else {
        ret = fail(s, rc);
    }
    stmt_done(st);
    return ret;
}

static int malformed(kr_store *s, const char *what, const char *store, const char *user)
{
    kr__store_set_err(s, "malformed %s stored in %s for %s", what, store, user);
    return KR_ESTORE;
}

/* Copy a TEXT or BLOB column as a NUL-terminated string; NULL for SQL NULL or another type. */
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

/* ---- map stores --------------------------------------------------------------------------- */

static int sq_map_get(kr_store *s, const char *store, const char *user, const char *key,
                      char **value, size_t *len)
{
    sqlite3_stmt *st;
    int rc = prepare(s, ST_MAP_GET, store, user, &st);
    if (rc == 0)
        rc = bound(s, st, sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC));
    if (rc < 0)
        return rc;
    rc = sqlite3_step(st);
    int ret = 0;
    if (rc == SQLITE_ROW) {
        *value = column_dup(st, 0, len);
        if (!*value)
            ret = malformed(s, "value", store, user);
    } else {
        ret = rc == SQLITE_DONE ? KR_ENOENT : fail(s, rc);
    }
    stmt_done(st);
    return ret;
}

static int sq_map_put(kr_store *s, const char *store, const char *user, const char *key,
                      const void *value, size_t len)
{
    sqlite3_stmt *st;
    int rc = prepare(s, ST_MAP_PUT, store, user, &st);
    if (rc == 0) {
        int brc = sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
        if (brc == SQLITE_OK) /* never a NULL pointer: an empty value is an empty BLOB */
            brc = sqlite3_bind_blob64(st, 4, value, len, SQLITE_STATIC);
        rc = bound(s, st, brc);
    }
    return rc < 0 ? rc : run(s, st);
}

static int sq_map_delete(kr_store *s, const char *store, const char *user, const char *key)
{
    sqlite3_stmt *st;
    int rc = prepare(s, key ? ST_MAP_DELETE : ST_MAP_CLEAR, store, user, &st);
    if (rc == 0 && key)
        rc = bound(s, st, sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC));
    return rc < 0 ? rc : run(s, st);
}

/* The keys that start with prefix are those in [prefix, upper): upper is prefix without its
 * trailing 0xff bytes and with the last remaining byte incremented (byte order, as the BINARY
 * collation compares). A prefix of only 0xff bytes has no upper bound: *upper_len is 0. */
static void prefix_upper(const char *prefix, size_t len, char *upper, size_t *upper_len)
{
    while (len > 0 && (unsigned char)prefix[len - 1] == 0xff)
        len--;
    memcpy(upper, prefix, len);
    if (len > 0)
        upper[len - 1] = (char)((unsigned char)upper[len - 1] + 1);
    *upper_len = len;
}

/* Prepare one of the three forms (all keys, keys >= prefix, the prefix's range) of a map
 * statement and bind the prefix bounds. */
static int prepare_prefix(kr_store *s, stmt_id all, const char *store, const char *user,
                          const char *prefix, char **upper, sqlite3_stmt **out)
{
    size_t plen = strlen(prefix), ulen = 0;
    *upper = NULL;
    if (plen == 0)
        return prepare(s, all, store, user, out);
    *upper = kr_xmalloc(plen);
    prefix_upper(prefix, plen, *upper, &ulen);
    /* all + 1 is the FROM form, all + 2 the RANGE form (stmt_id order). */
    int rc = prepare(s, (stmt_id)(all + (ulen ? 2 : 1)), store, user, out);
    if (rc < 0)
        return rc;
    int brc = sqlite3_bind_text(*out, 3, prefix, (int)plen, SQLITE_STATIC);
    if (brc == SQLITE_OK && ulen)
        brc = sqlite3_bind_text(*out, 4, *upper, (int)ulen, SQLITE_STATIC);
    return bound(s, *out, brc);
}

static int sq_map_list(kr_store *s, const char *store, const char *user, const char *prefix,
                       kr_store_map_cb cb, void *ud)
{
    if (strlen(prefix) > INT_MAX) {
        kr__store_set_err(s, "prefix too long");
        return KR_EINVAL;
    }
    sqlite3_stmt *st;
    char *upper;
    int rc = prepare_prefix(s, ST_MAP_LIST, store, user, prefix, &upper, &st);
    if (rc < 0) {
        free(upper);
        return rc;
    }
    int ret = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *key = (const char *)sqlite3_column_text(st, 0);
        int vtype = sqlite3_column_type(st, 1);
        if (!key || (vtype != SQLITE_BLOB && vtype != SQLITE_TEXT)) {
            ret = malformed(s, "map row", store, user);
            break;
        }
        const char *value = sqlite3_column_blob(st, 1);
        size_t len = (size_t)sqlite3_column_bytes(st, 1);
        ret = cb(ud, key, value ? value : "", len);
        if (ret != 0)
            break;
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = fail(s, rc);
    stmt_done(st);
    free(upper);
    return ret;
}

static int sq_map_count(kr_store *s, const char *store, const char *user, size_t *n)
{
    sqlite3_stmt *st;
    long long c = 0;
    int rc = prepare(s, ST_MAP_COUNT, store, user, &st);
    if (rc == 0)
        rc = query_count(s, st, &c);
    if (rc == 0)
        *n = (size_t)c;
    return rc;
}

static int sq_map_size(kr_store *s, const char *store, const char *user, const char *prefix,
                       size_t *bytes)
{
    if (strlen(prefix) > INT_MAX) {
        kr__store_set_err(s, "prefix too long");
        return KR_EINVAL;
    }
    sqlite3_stmt *st;
    char *upper;
    long long total = 0;
    int rc = prepare_prefix(s, ST_MAP_SIZE, store, user, prefix, &upper, &st);
    if (rc == 0)
        rc = query_count(s, st, &total);
    free(upper);
    if (rc == 0)
        *bytes = (size_t)total;
    return rc;
}

/* ---- archive stores ----------------------------------------------------------------------- */

static int archive_count(kr_store *s, const char *store, const char *user, long long *c)
{
    sqlite3_stmt *st;
    int rc = prepare(s, ST_ARCHIVE_COUNT, store, user, &st);
    return rc < 0 ? rc : query_count(s, st, c);
}

static int archive_insert(kr_store *s, const char *store, const char *user, int64_t stamp,
                          const char *with, const void *data, size_t len, int64_t *id)
{
    sqlite3_stmt *st;
    int rc = prepare(s, ST_ARCHIVE_INSERT, store, user, &st);
    if (rc < 0)
        return rc;
    int brc = sqlite3_bind_int64(st, 3, stamp);
    if (brc == SQLITE_OK) /* NULL binds NULL */
        brc = sqlite3_bind_text(st, 4, with, -1, SQLITE_STATIC);
    if (brc == SQLITE_OK) /* never a NULL pointer: empty data is an empty BLOB */
        brc = sqlite3_bind_blob64(st, 5, data, len, SQLITE_STATIC);
    rc = bound(s, st, brc);
    if (rc == 0)
        rc = run(s, st);
    if (rc == 0)
        *id = sqlite3_last_insert_rowid(db_of(s));
    return rc;
}

static int sq_archive_append(kr_store *s, const char *store, const char *user, int64_t stamp,
                             const char *with, const void *data, size_t len, size_t quota,
                             int64_t *id)
{
    if (quota == 0) /* one statement: its own transaction, or part of the caller's */
        return archive_insert(s, store, user, stamp, with, data, len, id);
    bool owned;
    long long c = 0;
    int rc = txn_check(s);
    if (rc == 0)
        rc = tx_begin(s, true, &owned); /* the count and the insert see the same entries */
    if (rc < 0)
        return rc;
    rc = archive_count(s, store, user, &c);
    if (rc == 0 && (unsigned long long)c >= quota) {
        kr__store_set_err(s, "quota of %zu entries in %s reached", quota, store);
        rc = KR_ELIMIT;
    }
    if (rc == 0)
        rc = archive_insert(s, store, user, stamp, with, data, len, id);
    return tx_end(s, owned, rc);
}

static int archive_query_stmt(kr_store *s, unsigned shape, sqlite3_stmt **out)
{
    kr_sqlite *c = s->conn;
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT id, stamp, with_jid, data FROM module_archive"
             " WHERE user = ?1 AND store = ?2%s%s%s%s%s ORDER BY id %s LIMIT ?8",
             shape & AQ_AFTER ? " AND id > ?3" : "", shape & AQ_BEFORE ? " AND id < ?4" : "",
             shape & AQ_START ? " AND stamp >= ?5" : "", shape & AQ_END ? " AND stamp <= ?6" : "",
             shape & AQ_WITH ? " AND with_jid = ?7" : "", shape & AQ_NEWEST ? "DESC" : "ASC");
    return prepare_cached(s, &c->archive_query[shape], sql, out);
}

static int sq_archive_query(kr_store *s, const char *store, const char *user,
                            const kr_store_archive_filter *q, kr_store_archive_entry **entries,
                            size_t *n)
{
    unsigned shape = (q->after_id ? AQ_AFTER : 0) | (q->before_id ? AQ_BEFORE : 0) |
                     (q->start ? AQ_START : 0) | (q->end ? AQ_END : 0) | (q->with ? AQ_WITH : 0) |
                     (q->newest_first ? AQ_NEWEST : 0);
    sqlite3_stmt *st;
    int rc = txn_check(s);
    if (rc == 0)
        rc = archive_query_stmt(s, shape, &st);
    if (rc < 0)
        return rc;
    int brc = sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
    if (brc == SQLITE_OK)
        brc = sqlite3_bind_text(st, 2, store, -1, SQLITE_STATIC);
    if (brc == SQLITE_OK && q->after_id)
        brc = sqlite3_bind_int64(st, 3, q->after_id);
    if (brc == SQLITE_OK && q->before_id)
        brc = sqlite3_bind_int64(st, 4, q->before_id);
    if (brc == SQLITE_OK && q->start)
        brc = sqlite3_bind_int64(st, 5, q->start);
    if (brc == SQLITE_OK && q->end)
        brc = sqlite3_bind_int64(st, 6, q->end);
    if (brc == SQLITE_OK && q->with)
        brc = sqlite3_bind_text(st, 7, q->with, -1, SQLITE_STATIC);
    if (brc == SQLITE_OK)
        brc = sqlite3_bind_int64(st, 8, q->max > (size_t)INT64_MAX ? -1 : (sqlite3_int64)q->max);
    rc = bound(s, st, brc);
    if (rc < 0)
        return rc;
    kr_store_archive_entry *list = NULL;
    size_t count = 0, cap = 0;
    int ret = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int wtype = sqlite3_column_type(st, 2), dtype = sqlite3_column_type(st, 3);
        if (sqlite3_column_type(st, 0) != SQLITE_INTEGER ||
            sqlite3_column_type(st, 1) != SQLITE_INTEGER ||
            (wtype != SQLITE_NULL && wtype != SQLITE_TEXT) ||
            (dtype != SQLITE_BLOB && dtype != SQLITE_TEXT)) {
            ret = malformed(s, "archive entry", store, user);
            break;
        }
        list = grow(list, count, &cap, sizeof *list);
        kr_store_archive_entry *e = &list[count++];
        e->id = sqlite3_column_int64(st, 0);
        e->stamp = sqlite3_column_int64(st, 1);
        e->with = column_dup(st, 2, NULL);
        e->data = column_dup(st, 3, &e->len);
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = fail(s, rc);
    stmt_done(st);
    if (ret < 0) {
        kr_store_archive_entries_free(list, count);
        return ret;
    }
    *entries = list;
    *n = count;
    return 0;
}

static int sq_archive_delete_upto(kr_store *s, const char *store, const char *user, int64_t max_id)
{
    sqlite3_stmt *st;
    int rc = prepare(s, ST_ARCHIVE_DELETE_UPTO, store, user, &st);
    if (rc == 0)
        rc = bound(s, st, sqlite3_bind_int64(st, 3, max_id));
    return rc < 0 ? rc : run(s, st);
}

static int sq_archive_count(kr_store *s, const char *store, const char *user, size_t *n)
{
    long long c = 0;
    int rc = archive_count(s, store, user, &c);
    if (rc == 0)
        *n = (size_t)c;
    return rc;
}

static int sq_version_get(kr_store *s, const char *store, unsigned *version)
{
    sqlite3_stmt *st;
    int rc = stmt_get(s, ST_VERSION_GET, &st);
    if (rc < 0)
        return rc;
    rc = sqlite3_bind_text(st, 1, store, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    int ret;
    if (rc == SQLITE_ROW) {
        sqlite3_int64 v = sqlite3_column_int64(st, 0);
        ret = v >= 1 && v <= UINT_MAX ? 0 : KR_ESTORE;
        if (ret == 0)
            *version = (unsigned)v;
        else
            kr__store_set_err(s, "malformed version stored for store %s", store);
    } else {
        ret = rc == SQLITE_DONE ? KR_ENOENT : fail(s, rc);
    }
    stmt_done(st);
    return ret;
}

static int sq_version_put(kr_store *s, const char *store, unsigned version)
{
    sqlite3_stmt *st;
    int rc = stmt_get(s, ST_VERSION_PUT, &st);
    if (rc < 0)
        return rc;
    rc = sqlite3_bind_text(st, 1, store, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, version);
    if (rc != SQLITE_OK) {
        stmt_done(st);
        return fail(s, rc);
    }
    return run(s, st);
}

const kr_store_driver kr__store_sqlite_driver = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .account_create = sq_account_create,
    .account_update = sq_account_update,
    .account_delete = sq_account_delete,
    .account_get = sq_account_get,
    .account_list = sq_account_list,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .map_get = sq_map_get,
    .map_put = sq_map_put,
    .map_delete = sq_map_delete,
    .map_list = sq_map_list,
    .map_count = sq_map_count,
    .map_size = sq_map_size,
    .archive_append = sq_archive_append,
    .archive_query = sq_archive_query,
    .archive_delete_upto = sq_archive_delete_upto,
    .archive_count = sq_archive_count,
    .version_get = sq_version_get,
    .version_put = sq_version_put,
};
