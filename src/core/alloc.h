/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Allocation that never returns NULL: on exhaustion the process aborts with a
 * message (CONVENTIONS.md, ownership rule 5). Peer-driven sizes must be bounded
 * by limits before they reach these functions.
 */
#ifndef KR_CORE_ALLOC_H
#define KR_CORE_ALLOC_H

#include <stddef.h>

void *kr_xmalloc(size_t n);
void *kr_xcalloc(size_t count, size_t n);
void *kr_xrealloc(void *p, size_t n);
char *kr_xstrdup(const char *s);
char *kr_xstrndup(const char *s, size_t n);
/** Formatted string on the heap; caller frees. */
char *kr_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
