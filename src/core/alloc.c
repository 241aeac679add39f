/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Aborting allocators (see alloc.h).
 */
#include "core/alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void kr_alloc_die(size_t n)
{
    fprintf(stderr, "kurier: out of memory allocating %zu bytes\n", n);
    abort();
}

void *kr_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        kr_alloc_die(n);
    return p;
}

void *kr_xcalloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (!p)
        kr_alloc_die(count * n);
    return p;
}

void *kr_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        kr_alloc_die(n);
    return q;
}

char *kr_xstrndup(const char *s, size_t n)
{
    char *d = kr_xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *kr_xstrdup(const char *s)
{
    return kr_xstrndup(s, strlen(s));
}

char *kr_xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        kr_alloc_die(0);
    char *s = kr_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}
