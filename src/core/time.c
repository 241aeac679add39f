/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Wall-clock helpers (see time.h).
 */
#include "core/time.h"

#include <stdio.h>

int64_t kr_time_now_ms(struct timespec *ts)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (ts)
        *ts = now;
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

void kr_time_format_utc(char *out, size_t len, const struct timespec *ts)
{
    struct tm tm;
    time_t sec = ts->tv_sec;
    gmtime_r(&sec, &tm);
    char base[32];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, len, "%s.%03ldZ", base, ts->tv_nsec / 1000000);
}
