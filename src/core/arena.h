/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Region allocator: one arena per parsed stanza (CONVENTIONS.md, ownership
 * rule 1). Everything allocated from an arena is released together by
 * kr_arena_free(); there is no per-object free. Blocks grow geometrically,
 * so a stanza of many small elements costs a handful of mallocs.
 * An arena is not thread-safe; it may move between threads with its owner.
 */
#ifndef KR_CORE_ARENA_H
#define KR_CORE_ARENA_H

#include <stddef.h>

typedef struct kr_arena kr_arena;

/** New arena whose first block holds about `first_block` bytes. */
kr_arena *kr_arena_new(size_t first_block);
void kr_arena_free(kr_arena *a);
/** Release everything but keep the first block for reuse. */
void kr_arena_reset(kr_arena *a);
/** Memory aligned for any type; never NULL. */
void *kr_arena_alloc(kr_arena *a, size_t n);
void *kr_arena_zalloc(kr_arena *a, size_t n);
char *kr_arena_strdup(kr_arena *a, const char *s);
/** Copy of n bytes plus a terminating NUL. */
char *kr_arena_strndup(kr_arena *a, const char *s, size_t n);
char *kr_arena_printf(kr_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Bytes handed out so far (for limits and tests). */
size_t kr_arena_used(const kr_arena *a);

#endif
