/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Per-thread batches of CSPRNG bytes for public values (see random.h). Each thread owns
 * its batch, so no locks; bytes handed out are wiped from it, so a value is never given
 * twice and never stays in memory after use.
 */
#include "server/random.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KR_RANDOM_BATCH 256
#define KR_RANDOM_MAX_DRAW 64

static _Thread_local unsigned char kr_random_batch[KR_RANDOM_BATCH];
static _Thread_local size_t kr_random_used = KR_RANDOM_BATCH; /* empty until first use */

void kr_random_public(void *out, size_t n)
{
    if (n > KR_RANDOM_MAX_DRAW) {
        fprintf(stderr, "kurierd: kr_random_public: %zu bytes asked, at most %d\n", n,
                KR_RANDOM_MAX_DRAW);
        abort();
    }
    if (KR_RANDOM_BATCH - kr_random_used < n) {
        if (RAND_bytes(kr_random_batch, KR_RANDOM_BATCH) != 1) {
            fprintf(stderr, "kurierd: the CSPRNG failed\n");
            abort();
        }
        kr_random_used = 0;
    }
    memcpy(out, kr_random_batch + kr_random_used, n);
    memset(kr_random_batch + kr_random_used, 0, n);
    kr_random_used += n;
}
