/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Process-wide abuse limits (see limits.h): token buckets, connections per IP,
 * failed logins with decay and cool-down, and the once-per-period summary of
 * how often each limit acted. Two tables keyed by strings ("1.2.3.4",
 * "ip:1.2.3.4", "acct:alice@example.org"), each behind its own mutex; the
 * critical sections do no I/O and no allocation beyond the table's own.
 * Invariant: an entry exists only while it holds something (a count above
 * zero, a score above zero or a cool-down not yet over); entries are pruned
 * when the login table reaches KR_LOGIN_PRUNE_AT, and new ones are refused
 * past KR_LOGIN_MAX_ENTRIES (counted, then the login is simply not tracked).
 */
#include "server/limits.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include "core/alloc.h"
#include "core/hmap.h"
#include "core/log.h"

#define KR_LOGIN_PRUNE_AT 4096
#define KR_LOGIN_MAX_ENTRIES 65536

/* ---- token bucket ----------------------------------------------------------------------- */

void kr_limits_bucket_init(kr_bucket *b, uint64_t burst, uint64_t now_ms)
{
    b->tokens = (int64_t)burst;
    b->last_ms = now_ms;
}

uint64_t kr_limits_bucket_charge(kr_bucket *b, uint64_t rate, uint64_t burst, size_t n,
                                 uint64_t now_ms)
{
    if (now_ms > b->last_ms) {
        uint64_t refill = (now_ms - b->last_ms) * rate / 1000;
        b->tokens = b->tokens + (int64_t)refill > (int64_t)burst ? (int64_t)burst
                                                                 : b->tokens + (int64_t)refill;
        b->last_ms = now_ms;
    }
    b->tokens -= (int64_t)n;
    if (b->tokens >= 0)
        return 0;
    uint64_t wait = ((uint64_t)-b->tokens * 1000 + rate - 1) / rate;
    return wait ? wait : 1;
}

/* ---- connections per IP ----------------------------------------------------------------- */

static pthread_mutex_t kr_conn_lock = PTHREAD_MUTEX_INITIALIZER;
static kr_strmap kr_conn_ips; /* ip -> (uintptr_t) open connections */

bool kr_limits_conn_acquire(const char *ip, unsigned max)
{
    pthread_mutex_lock(&kr_conn_lock);
    uintptr_t n = (uintptr_t)kr_strmap_get(&kr_conn_ips, ip);
    bool ok = n < max;
    if (ok)
        kr_strmap_put(&kr_conn_ips, ip, (void *)(n + 1));
    pthread_mutex_unlock(&kr_conn_lock);
    return ok;
}

void kr_limits_conn_release(const char *ip)
{
    pthread_mutex_lock(&kr_conn_lock);
    uintptr_t n = (uintptr_t)kr_strmap_get(&kr_conn_ips, ip);
    if (n <= 1)
        kr_strmap_del(&kr_conn_ips, ip);
    else
        kr_strmap_put(&kr_conn_ips, ip, (void *)(n - 1));
    if (kr_conn_ips.count == 0)
        kr_strmap_clear(&kr_conn_ips); /* idle server: no table memory held */
    pthread_mutex_unlock(&kr_conn_lock);
}

unsigned kr_limits_conn_count(const char *ip)
{
    pthread_mutex_lock(&kr_conn_lock);
    uintptr_t n = (uintptr_t)kr_strmap_get(&kr_conn_ips, ip);
    pthread_mutex_unlock(&kr_conn_lock);
    return (unsigned)n;
}

/* ---- failed logins ---------------------------------------------------------------------- */

typedef struct kr_login_entry {
    double score;        /* failures, decaying linearly */
    uint64_t last_ms;    /* when score was last brought up to date */
    uint64_t locked_until;
    unsigned threshold;  /* failures that start a cool-down; also the decay per window */
} kr_login_entry;

static pthread_mutex_t kr_login_lock = PTHREAD_MUTEX_INITIALIZER;
static kr_strmap kr_logins;

/* Bring the score up to date: `threshold` failures decay over one window. */
static void kr_login_decay(kr_login_entry *e, unsigned window_s, uint64_t now_ms)
{
    if (now_ms <= e->last_ms)
        return;
    double decay = (double)(now_ms - e->last_ms) * e->threshold / ((double)window_s * 1000.0);
    e->score = e->score > decay ? e->score - decay : 0.0;
    e->last_ms = now_ms;
}

static bool kr_login_entry_idle(const kr_login_entry *e, uint64_t now_ms)
{
    return e->score <= 0.0 && e->locked_until <= now_ms;
}

static void kr_login_prune(const kr_config *cfg, uint64_t now_ms)
{
    kr_strmap keep;
    kr_strmap_init(&keep);
    for (size_t i = 0; i < kr_logins.cap; i++) {
        kr_login_entry *e = kr_logins.slots[i].value;
        if (!kr_logins.slots[i].key)
            continue;
        kr_login_decay(e, cfg->limits.login_failure_window_s, now_ms);
        if (kr_login_entry_idle(e, now_ms))
            free(e);
        else
            kr_strmap_put(&keep, kr_logins.slots[i].key, e);
    }
    kr_strmap_clear(&kr_logins);
    kr_logins = keep;
}

static bool kr_login_key_blocked(const char *key, uint64_t now_ms)
{
    kr_login_entry *e = kr_strmap_get(&kr_logins, key);
    return e && e->locked_until > now_ms;
}

bool kr_limits_login_blocked(const kr_config *cfg, const char *ip, const char *account,
                             uint64_t now_ms)
{
    char key[320];
    pthread_mutex_lock(&kr_login_lock);
    snprintf(key, sizeof(key), "ip:%s", ip);
    bool blocked = kr_login_key_blocked(key, now_ms);
    if (!blocked && account) {
        snprintf(key, sizeof(key), "acct:%s", account);
        blocked = kr_login_key_blocked(key, now_ms);
    }
    pthread_mutex_unlock(&kr_login_lock);
    return blocked;
}

/* Add one failure to key's score; true when that starts a cool-down. Lock held. */
static bool kr_login_count(const kr_config *cfg, const char *key, unsigned threshold,
                           uint64_t now_ms)
{
    kr_login_entry *e = kr_strmap_get(&kr_logins, key);
    if (!e) {
        if (kr_logins.count >= KR_LOGIN_PRUNE_AT)
            kr_login_prune(cfg, now_ms);
        if (kr_logins.count >= KR_LOGIN_MAX_ENTRIES)
            return false;
        e = kr_xcalloc(1, sizeof(*e));
        e->last_ms = now_ms;
        kr_strmap_put(&kr_logins, key, e);
    }
    e->threshold = threshold;
    kr_login_decay(e, cfg->limits.login_failure_window_s, now_ms);
    e->score += 1.0;
    /* Decay shaves fractions off earlier failures: `threshold` failures in quick succession
     * leave a score just under threshold, and must count as reaching it. */
    if (e->score <= (double)threshold - 1.0 || e->locked_until > now_ms)
        return false;
    e->locked_until = now_ms + (uint64_t)cfg->limits.login_cooldown_s * 1000;
    e->score = 0.0; /* a fresh start once the cool-down is over */
    return true;
}

bool kr_limits_login_failed(const kr_config *cfg, const char *ip, const char *account,
                            uint64_t now_ms)
{
    char key[320];
    pthread_mutex_lock(&kr_login_lock);
    snprintf(key, sizeof(key), "ip:%s", ip);
    bool locked = kr_login_count(cfg, key, cfg->limits.login_failures_per_ip, now_ms);
    if (account) {
        snprintf(key, sizeof(key), "acct:%s", account);
        locked |= kr_login_count(cfg, key, cfg->limits.login_failures_per_account, now_ms);
    }
    pthread_mutex_unlock(&kr_login_lock);
    return locked;
}

/* ---- counters ---------------------------------------------------------------------------- */

static atomic_uint_fast64_t kr_limit_counts[KR_LIMIT_EVENT_COUNT];
static atomic_uint_fast64_t kr_limit_logged_at; /* 0: nothing logged yet */
static const char *const kr_limit_names[KR_LIMIT_EVENT_COUNT] = {
    "reads throttled", "connections refused (per-IP limit)", "login cool-downs started",
    "logins refused in a cool-down", "connections closed for not reading"};

uint64_t kr_limits_now(void)
{
    return uv_hrtime() / 1000000;
}

void kr_limits_note(kr_limit_event ev, uint64_t now_ms)
{
    atomic_fetch_add(&kr_limit_counts[ev], 1);
    uint64_t last = atomic_load(&kr_limit_logged_at);
    if (last && now_ms - last < KR_LIMITS_LOG_PERIOD_MS)
        return;
    uint64_t stamp = now_ms ? now_ms : 1;
    if (!atomic_compare_exchange_strong(&kr_limit_logged_at, &last, stamp))
        return; /* another worker logs this period */
    char line[512];
    size_t n = 0;
    for (int i = 0; i < KR_LIMIT_EVENT_COUNT; i++) {
        uint64_t v = atomic_exchange(&kr_limit_counts[i], 0);
        if (v && n < sizeof(line))
            n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%llu %s", n ? ", " : "",
                                  (unsigned long long)v, kr_limit_names[i]);
    }
    if (n)
        KR_LOG(KR_LOG_WARN, NULL, "limits acted (since the last report, at most every %d s): %s",
               KR_LIMITS_LOG_PERIOD_MS / 1000, line);
}
