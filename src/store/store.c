/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * The storage handle (see store.h): kr_store_open picks a driver and every call
 * goes through its table (store/internal.h). Here, once for every driver, live
 * the checks of the public contract: store names, NULL arguments, bounds of a
 * query, and the caller's transaction state (no nesting, no write inside a read
 * transaction, commit/rollback only of an open one). A driver never sees a call
 * that breaks them. Credentials derivation needs no driver and lives here too.
 */
#include "store/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"

#define KR_STORE_NAME_MAX 32

void kr__store_set_err(kr_store *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    va_end(ap);
}

int kr_store_open(const char *path, kr_store **out, char *err, size_t errlen)
{
    *out = NULL;
    if (err && errlen > 0)
        err[0] = '\0';
    kr_store *s = kr_xcalloc(1, sizeof *s);
    s->driver = &kr__store_sqlite_driver; /* the only driver for now */
    int rc = s->driver->open(s, path, err, errlen);
    if (rc < 0) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void kr_store_close(kr_store *s)
{
    if (!s)
        return;
    s->driver->close(s);
    free(s);
}

const char *kr_store_errmsg(const kr_store *s)
{
    return s->errmsg;
}

/* ---- accounts ----------------------------------------------------------------------------- */

static int invalid(kr_store *s, const char *what);

/* Account writes follow the transaction rules of the generic stores too. */
static int check_account_write(kr_store *s)
{
    return s->txn == KR__STORE_TXN_READ ? invalid(s, "a write inside a read transaction") : 0;
}

int kr_store_account_create(kr_store *s, const char *jid, const kr_account *acct)
{
    int rc = check_account_write(s);
    return rc < 0 ? rc : s->driver->account_create(s, jid, acct);
}

int kr_store_account_update(kr_store *s, const char *jid, const kr_account *acct)
{
    int rc = check_account_write(s);
    return rc < 0 ? rc : s->driver->account_update(s, jid, acct);
}

int kr_store_account_delete(kr_store *s, const char *jid)
{
    int rc = check_account_write(s);
    return rc < 0 ? rc : s->driver->account_delete(s, jid);
}

int kr_store_account_get(kr_store *s, const char *jid, kr_account *out)
{
    return s->driver->account_get(s, jid, out);
}

int kr_store_account_list(kr_store *s, kr_store_account_list_cb cb, void *ud)
{
    return s->driver->account_list(s, cb, ud);
}

void kr_account_from_password(kr_account *out, const char *password, size_t len,
                              unsigned iterations)
{
    memset(out, 0, sizeof *out);
    kr_scram_creds_new(KR_SCRAM_SHA1, password, len, iterations, &out->sha1);
    kr_scram_creds_new(KR_SCRAM_SHA256, password, len, iterations, &out->sha256);
}

/* ---- the contract checks ------------------------------------------------------------------ */

static int invalid(kr_store *s, const char *what)
{
    kr__store_set_err(s, "%s", what);
    return KR_EINVAL;
}

/* A store name and a user, as every generic call takes them. */
static int check_target(kr_store *s, const char *store, const char *user)
{
    if (!store)
        return invalid(s, "no store name");
    size_t n = 0;
    for (; store[n]; n++) {
        char c = store[n];
        if (n == KR_STORE_NAME_MAX ||
            !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return invalid(s, "invalid store name (1..32 characters of a-z 0-9 _)");
    }
    if (n == 0)
        return invalid(s, "invalid store name (1..32 characters of a-z 0-9 _)");
    if (!user)
        return invalid(s, "no user");
    return 0;
}

static int check_write(kr_store *s, const char *store, const char *user)
{
    int rc = check_target(s, store, user);
    if (rc == 0 && s->txn == KR__STORE_TXN_READ)
        rc = invalid(s, "a write inside a read transaction");
    return rc;
}

/* ---- transactions ------------------------------------------------------------------------- */

static int begin(kr_store *s, kr__store_txn kind)
{
    if (s->txn != KR__STORE_TXN_NONE)
        return invalid(s, "a transaction is already open");
    int rc = s->driver->begin(s, kind == KR__STORE_TXN_WRITE);
    if (rc == 0)
        s->txn = kind;
    return rc;
}

int kr_store_begin(kr_store *s)
{
    return begin(s, KR__STORE_TXN_WRITE);
}

int kr_store_begin_read(kr_store *s)
{
    return begin(s, KR__STORE_TXN_READ);
}

int kr_store_commit(kr_store *s)
{
    if (s->txn == KR__STORE_TXN_NONE)
        return invalid(s, "no transaction is open");
    int rc = s->driver->commit(s);
    s->txn = KR__STORE_TXN_NONE;
    return rc;
}

int kr_store_rollback(kr_store *s)
{
    if (s->txn == KR__STORE_TXN_NONE)
        return invalid(s, "no transaction is open");
    int rc = s->driver->rollback(s);
    s->txn = KR__STORE_TXN_NONE;
    return rc;
}

/* ---- map stores --------------------------------------------------------------------------- */

int kr_store_map_get(kr_store *s, const char *store, const char *user, const char *key,
                     char **value, size_t *len)
{
    *value = NULL;
    if (len)
        *len = 0;
    int rc = check_target(s, store, user);
    if (rc == 0 && !key)
        rc = invalid(s, "no key");
    return rc < 0 ? rc : s->driver->map_get(s, store, user, key, value, len);
}

int kr_store_map_put(kr_store *s, const char *store, const char *user, const char *key,
                     const void *value, size_t len)
{
    int rc = check_write(s, store, user);
    if (rc == 0 && !key)
        rc = invalid(s, "no key");
    if (rc == 0 && !value && len)
        rc = invalid(s, "no value");
    return rc < 0 ? rc : s->driver->map_put(s, store, user, key, value ? value : "", len);
}

int kr_store_map_delete(kr_store *s, const char *store, const char *user, const char *key)
{
    int rc = check_write(s, store, user);
    return rc < 0 ? rc : s->driver->map_delete(s, store, user, key);
}

int kr_store_map_list(kr_store *s, const char *store, const char *user, const char *prefix,
                      kr_store_map_cb cb, void *ud)
{
    int rc = check_target(s, store, user);
    if (rc == 0 && !cb)
        rc = invalid(s, "no callback");
    return rc < 0 ? rc : s->driver->map_list(s, store, user, prefix ? prefix : "", cb, ud);
}

int kr_store_map_count(kr_store *s, const char *store, const char *user, size_t *n)
{
    *n = 0;
    int rc = check_target(s, store, user);
    return rc < 0 ? rc : s->driver->map_count(s, store, user, n);
}

int kr_store_map_size(kr_store *s, const char *store, const char *user, const char *prefix,
                      size_t *bytes)
{
    *bytes = 0;
    int rc = check_target(s, store, user);
    return rc < 0 ? rc : s->driver->map_size(s, store, user, prefix ? prefix : "", bytes);
}

/* ---- archive stores ----------------------------------------------------------------------- */

int kr_store_archive_append(kr_store *s, const char *store, const char *user, int64_t stamp,
                            const char *with, const void *data, size_t len, size_t quota,
                            int64_t *id)
{
    int rc = check_write(s, store, user);
    if (rc == 0 && !data && len)
        rc = invalid(s, "no data");
    if (rc < 0)
        return rc;
    int64_t new_id = 0;
    rc = s->driver->archive_append(s, store, user, stamp, with, data ? data : "", len, quota,
                                   &new_id);
    if (rc == 0 && id)
        *id = new_id;
    return rc;
}

int kr_store_archive_query(kr_store *s, const char *store, const char *user,
                           const kr_store_archive_filter *q, kr_store_archive_entry **entries,
                           size_t *n)
{
    *entries = NULL;
    *n = 0;
    int rc = check_target(s, store, user);
    if (rc == 0 && !q)
        rc = invalid(s, "no query");
    if (rc == 0 && q->max == 0)
        rc = invalid(s, "a query needs max > 0");
    if (rc == 0 && (q->after_id < 0 || q->before_id < 0))
        rc = invalid(s, "a negative id bound");
    return rc < 0 ? rc : s->driver->archive_query(s, store, user, q, entries, n);
}

void kr_store_archive_entries_free(kr_store_archive_entry *entries, size_t n)
{
    if (!entries)
        return;
    for (size_t i = 0; i < n; i++) {
        free(entries[i].with);
        free(entries[i].data);
    }
    free(entries);
}

int kr_store_archive_delete_upto(kr_store *s, const char *store, const char *user, int64_t max_id)
{
    int rc = check_write(s, store, user);
    return rc < 0 ? rc : s->driver->archive_delete_upto(s, store, user, max_id);
}

int kr_store_archive_count(kr_store *s, const char *store, const char *user, size_t *n)
{
    *n = 0;
    int rc = check_target(s, store, user);
    return rc < 0 ? rc : s->driver->archive_count(s, store, user, n);
}

/* A store name without a user: the same checks as check_target's first half. */
static int check_store_name(kr_store *s, const char *store)
{
    return check_target(s, store, "-");
}

int kr_store_version_get(kr_store *s, const char *store, unsigned *version)
{
    *version = 1;
    int rc = check_store_name(s, store);
    if (rc < 0)
        return rc;
    rc = s->driver->version_get(s, store, version);
    if (rc == KR_ENOENT) {
        *version = 1;
        return 0;
    }
    return rc;
}

int kr_store_version_put(kr_store *s, const char *store, unsigned version)
{
    int rc = check_write(s, store, "-");
    if (rc == 0 && version == 0)
        rc = invalid(s, "store versions start at 1");
    return rc < 0 ? rc : s->driver->version_put(s, store, version);
}
