/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Abuse limits of kurierd that do not belong to one stream: the token bucket
 * that paces reading from a connection, the count of open connections per IP
 * address, the table of failed logins per IP address and per account (with
 * decay and a cool-down), and the counters that report how often a limit
 * acted. The per-IP and login tables are process-wide and shared by all
 * workers under one mutex each; they hold only entries with something to
 * remember (a live connection, a score above zero, a running cool-down) and
 * are bounded, so a peer cannot grow them without limit. Counters are
 * logged as one summary line at most once per KR_LIMITS_LOG_PERIOD_MS (the first
 * event is logged at once), never once per stanza. Times are milliseconds of
 * a monotonic clock (uv_hrtime). See docs/SECURITY.md for the policy.
 * Implements the "limits with sane defaults" of DESIGN.md; the SASL answer
 * <temporary-auth-failure/> is RFC 6120 §6.5.13.
 */
#ifndef KR_SERVER_LIMITS_H
#define KR_SERVER_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

#define KR_LIMITS_LOG_PERIOD_MS 60000

/** A token bucket in bytes. Tokens may go below zero: bytes already read are
 * never dropped, the debt is paid by waiting. */
typedef struct kr_bucket {
    int64_t tokens;
    uint64_t last_ms;
} kr_bucket;

/** Start full (burst tokens). */
void kr_limits_bucket_init(kr_bucket *b, uint64_t burst, uint64_t now_ms);
/** Refill at `rate` bytes/s up to `burst`, then take n bytes. Returns 0 when tokens remain,
 * otherwise the milliseconds after which the bucket is out of debt (at least 1). */
uint64_t kr_limits_bucket_charge(kr_bucket *b, uint64_t rate, uint64_t burst, size_t n,
                                 uint64_t now_ms);

/** Count a new connection from ip. False (nothing counted) when ip already has `max`. */
bool kr_limits_conn_acquire(const char *ip, unsigned max);
/** Forget one connection counted by kr_limits_conn_acquire. */
void kr_limits_conn_release(const char *ip);
/** Connections currently counted for ip (for tests and diagnostics). */
unsigned kr_limits_conn_count(const char *ip);

/** Whether logins from ip or to account (a bare JID; NULL to check only the IP) are in a
 * cool-down after too many failures (cfg->limits.login_failures_per_ip / _per_account). */
bool kr_limits_login_blocked(const kr_config *cfg, const char *ip, const char *account,
                             uint64_t now_ms);
/** Record a failed login from ip to account (NULL when no account was named). Scores decay
 * linearly to zero over cfg->limits.login_failure_window_s; reaching the threshold starts a
 * cool-down of cfg->limits.login_cooldown_s. Returns true when this failure started one. */
bool kr_limits_login_failed(const kr_config *cfg, const char *ip, const char *account,
                            uint64_t now_ms);

typedef enum kr_limit_event {
    KR_LIMIT_THROTTLED,     /* reading paused by the token bucket */
    KR_LIMIT_CONN_REFUSED,  /* connection refused: too many from its IP */
    KR_LIMIT_LOGIN_LOCKED,  /* a cool-down started (IP or account) */
    KR_LIMIT_LOGIN_REFUSED, /* login answered <temporary-auth-failure/> in a cool-down */
    KR_LIMIT_SEND_QUEUE,    /* connection closed: it did not read its output */
    KR_LIMIT_EVENT_COUNT
} kr_limit_event;

/** Count one event; logs the summary of all counters when the period has passed. */
void kr_limits_note(kr_limit_event ev, uint64_t now_ms);
/** Monotonic milliseconds (the clock of every function here). */
uint64_t kr_limits_now(void);

#endif
