/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Leveled logging to standard error with timestamps. KR_LOG checks the level
 * before any argument is formatted. Rules (DESIGN.md, security defaults):
 * message bodies are never logged, and IP addresses only at KR_LOG_DEBUG.
 * Thread-safe: each line is written with one write(2).
 */
#ifndef KR_CORE_LOG_H
#define KR_CORE_LOG_H

#include <stdbool.h>

typedef enum kr_log_level {
    KR_LOG_ERROR = 0,
    KR_LOG_WARN = 1,
    KR_LOG_INFO = 2,
    KR_LOG_DEBUG = 3,
} kr_log_level;

extern kr_log_level kr_log_current;

void kr_log_set_level(kr_log_level level);
/** Parse "error" | "warn" | "info" | "debug"; returns 0 or KR_EINVAL. */
int kr_log_level_parse(const char *s, kr_log_level *out);
void kr_log_write(kr_log_level level, const char *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** ctx: a short context string ("c2s#12 w1 alice@example.org") or NULL. */
#define KR_LOG(level, ctx, ...)                                                                    \
    do {                                                                                           \
        if ((level) <= kr_log_current)                                                             \
            kr_log_write((level), (ctx), __VA_ARGS__);                                             \
    } while (0)

#define KR_LOG_ENABLED(level) ((level) <= kr_log_current)

#endif
