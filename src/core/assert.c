/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * The failure path of kr_assert (see assert.h).
 */
#include "core/assert.h"

#include <stdio.h>
#include <stdlib.h>

_Noreturn void kr_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "kurier: %s:%d: assertion failed: %s\n", file, line, expr);
    abort();
}
