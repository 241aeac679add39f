/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Region allocator (see arena.h): a chain of blocks, bump allocation inside
 * the newest one, large requests get a block of their own.
 */
#include "core/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

#define KR_ARENA_ALIGN 16

typedef struct kr_arena_block {
    struct kr_arena_block *next;
    size_t size;
    size_t used;
    _Alignas(KR_ARENA_ALIGN) unsigned char data[];
} kr_arena_block;

struct kr_arena {
    kr_arena_block *head; /* newest block first; the last one is the first block */
    size_t next_size;
    size_t first_size;
    size_t total_used;
};

static kr_arena_block *kr_arena_block_new(size_t size)
{
    kr_arena_block *b = kr_xmalloc(sizeof(*b) + size);
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

kr_arena *kr_arena_new(size_t first_block)
{
    kr_arena *a = kr_xmalloc(sizeof(*a));
    if (first_block < 256)
        first_block = 256;
    a->first_size = first_block;
    a->next_size = first_block * 2;
    a->head = kr_arena_block_new(first_block);
    a->total_used = 0;
    return a;
}

void kr_arena_free(kr_arena *a)
{
    if (!a)
        return;
    kr_arena_block *b = a->head;
    while (b) {
        kr_arena_block *n = b->next;
        free(b);
        b = n;
    }
    free(a);
}

void kr_arena_reset(kr_arena *a)
{
    kr_arena_block *b = a->head;
    while (b->next) {
        kr_arena_block *n = b->next;
        free(b);
        b = n;
    }
    b->used = 0;
    a->head = b;
    a->next_size = a->first_size * 2;
    a->total_used = 0;
}

void *kr_arena_alloc(kr_arena *a, size_t n)
{
    size_t need = (n + KR_ARENA_ALIGN - 1) & ~(size_t)(KR_ARENA_ALIGN - 1);
    if (need == 0)
        need = KR_ARENA_ALIGN;
    kr_arena_block *b = a->head;
    if (b->size - b->used < need) {
        size_t size = a->next_size;
        if (size < need)
            size = need;
        if (a->next_size < (SIZE_MAX / 4))
            a->next_size *= 2;
        kr_arena_block *nb = kr_arena_block_new(size);
        /* Keep the first block last so kr_arena_reset() finds it. */
        nb->next = a->head;
        a->head = nb;
        b = nb;
    }
    void *p = b->data + b->used;
    b->used += need;
    a->total_used += need;
    return p;
}

void *kr_arena_zalloc(kr_arena *a, size_t n)
{
    void *p = kr_arena_alloc(a, n);
    memset(p, 0, n);
    return p;
}

char *kr_arena_strndup(kr_arena *a, const char *s, size_t n)
{
    char *d = kr_arena_alloc(a, n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *kr_arena_strdup(kr_arena *a, const char *s)
{
    return kr_arena_strndup(a, s, strlen(s));
}

char *kr_arena_printf(kr_arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return kr_arena_strdup(a, "");
    char *s = kr_arena_alloc(a, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

size_t kr_arena_used(const kr_arena *a)
{
    return a->total_used;
}
