/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Log line formatting and output (see log.h).
 */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"

kr_log_level kr_log_current = KR_LOG_INFO;

static const char *const kr_log_names[] = {"error", "warn", "info", "debug"};

void kr_log_set_level(kr_log_level level)
{
    kr_log_current = level;
}

int kr_log_level_parse(const char *s, kr_log_level *out)
{
    for (unsigned i = 0; i < sizeof(kr_log_names) / sizeof(kr_log_names[0]); i++) {
        if (strcmp(s, kr_log_names[i]) == 0) {
            *out = (kr_log_level)i;
            return 0;
        }
    }
    return KR_EINVAL;
}

void kr_log_write(kr_log_level level, const char *ctx, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, kr_log_names[level], ctx ? ctx : "",
                     ctx ? ": " : "");
    if (n < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
