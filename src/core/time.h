/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Wall-clock time as XMPP writes it: milliseconds since the epoch for
 * storage, and the XEP-0082 DateTime profile in UTC ("2024-05-01T12:00:00.123Z")
 * for delay stamps (XEP-0203) and entity time (XEP-0202).
 */
#ifndef KR_CORE_TIME_H
#define KR_CORE_TIME_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/** Current wall-clock time; ts (may be NULL) gets it too. */
int64_t kr_time_now_ms(struct timespec *ts);
/** XEP-0082 DateTime in UTC with milliseconds; out needs at least 32 bytes. */
void kr_time_format_utc(char *out, size_t len, const struct timespec *ts);

#endif
