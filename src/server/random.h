/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Unpredictable but public values (stream ids, generated resource names): bytes from
 * OpenSSL's CSPRNG, drawn in batches kept per thread. Each RAND_bytes() call costs
 * ~6.6k instructions and a getpid() system call (OpenSSL's fork check), and a login
 * wrote four such values one call each; a batch serves several logins. Not for secrets
 * (keys, nonces whose secrecy matters): those call RAND_bytes() directly, as SCRAM does.
 */
#ifndef KR_SERVER_RANDOM_H
#define KR_SERVER_RANDOM_H

#include <stddef.h>

/** Fill out with n random bytes (n <= 64). Aborts if the CSPRNG fails. */
void kr_random_public(void *out, size_t n);

#endif
