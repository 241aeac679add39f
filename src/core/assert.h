/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * kr_assert: checks of our own invariants that stay on in release builds
 * (CONVENTIONS.md, errors and logs). A failed check prints the condition and
 * where it failed and aborts: a broken invariant in a server that holds other
 * people's messages is better stopped than continued. Never use it on peer
 * input; that gets a protocol error.
 */
#ifndef KR_CORE_ASSERT_H
#define KR_CORE_ASSERT_H

/** Print "file:line: assertion failed: expr" and abort. */
_Noreturn void kr_assert_fail(const char *expr, const char *file, int line);

#define kr_assert(expr)                                                                            \
    do {                                                                                           \
        if (__builtin_expect(!(expr), 0))                                                          \
            kr_assert_fail(#expr, __FILE__, __LINE__);                                             \
    } while (0)

#endif
