/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * libFuzzer harness of XMPP address preparation (src/xmpp/jid.c, RFC 7622 with
 * the PRECIS profiles of RFC 8265 and IDNA2008 domains). The whole input is
 * given to kr_jid_parse() (as a C string) and to each part's preparation and
 * kr_precis_opaque() (with its length, so embedded NULs reach them). Besides
 * not crashing, it checks the properties the rest of the server relies on:
 *  - a prepared part prepares to itself (RFC 8264 §7: preparation is
 *    idempotent; JID equality is string equality only if it is);
 *  - the ASCII fast path and kr_jid_prep_full() agree on success and result;
 *  - a prepared part is a C string of at most KR_JID_PART_MAX bytes
 *    (RFC 7622 §3.1; not checked for passwords, which have no such bound);
 *  - a parsed JID formats to a string that parses to the same JID.
 * A violated property aborts with the input and both results on stderr.
 * Each input uses one arena, freed before returning.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "xmpp/jid.h"

typedef int (*fuzz_prep_fn)(kr_arena *a, const char *in, size_t len, const char **out);

typedef struct fuzz_part {
    const char *name;
    kr_jid_part part;
    fuzz_prep_fn prep;
} fuzz_part;

static const fuzz_part fuzz_parts[] = {
    {"local", KR_JID_LOCAL, kr_jid_prep_local},
    {"domain", KR_JID_DOMAIN, kr_jid_prep_domain},
    {"resource", KR_JID_RESOURCE, kr_jid_prep_resource},
    {"password", KR_JID_PASSWORD, kr_precis_opaque},
};

static void fuzz_dump(const char *label, const char *s, size_t len)
{
    fprintf(stderr, "  %s (%zu bytes):", label, len);
    for (size_t i = 0; i < len; i++)
        fprintf(stderr, " %02x", (unsigned char)s[i]);
    fprintf(stderr, "\n");
}

static void fuzz_fail(const fuzz_part *p, const char *what, const char *in, size_t len,
                      const char *x, const char *y)
{
    fprintf(stderr, "fuzz_jid: %s: %s\n", p ? p->name : "jid", what);
    fuzz_dump("input", in, len);
    if (x)
        fuzz_dump("first", x, strlen(x));
    if (y)
        fuzz_dump("second", y, strlen(y));
    abort();
}

static void fuzz_check_part(kr_arena *a, const fuzz_part *p, const char *in, size_t len)
{
    const char *fast = NULL, *full = NULL;
    int rc_fast = p->prep(a, in, len, &fast);
    int rc_full = kr_jid_prep_full(a, p->part, in, len, &full);
    if ((rc_fast == 0) != (rc_full == 0))
        fuzz_fail(p, rc_fast == 0 ? "only the fast path accepts" : "only the full path accepts",
                  in, len, fast, full);
    if (rc_fast != 0)
        return;
    if (!fast || !full)
        fuzz_fail(p, "success without a result", in, len, fast, full);
    if (strcmp(fast, full) != 0)
        fuzz_fail(p, "fast path and full preparation differ", in, len, fast, full);
    size_t n = strlen(fast);
    if (p->part != KR_JID_PASSWORD && (n == 0 || n > KR_JID_PART_MAX))
        fuzz_fail(p, "prepared part is empty or longer than 1023 bytes", in, len, fast, NULL);

    const char *again = NULL;
    if (p->prep(a, fast, n, &again) != 0)
        fuzz_fail(p, "a prepared part is refused when prepared again", in, len, fast, NULL);
    if (strcmp(again, fast) != 0)
        fuzz_fail(p, "preparation is not idempotent", in, len, fast, again);
    const char *again_full = NULL;
    if (kr_jid_prep_full(a, p->part, fast, n, &again_full) != 0 ||
        strcmp(again_full, fast) != 0)
        fuzz_fail(p, "full preparation is not idempotent", in, len, fast, again_full);
}

static bool fuzz_part_equal(const char *x, const char *y)
{
    if (!x || !y)
        return x == y;
    return strcmp(x, y) == 0;
}

static void fuzz_check_jid(kr_arena *a, const char *s, size_t len)
{
    kr_jid j;
    if (kr_jid_parse(a, s, &j) != 0)
        return;
    if (!j.domain)
        fuzz_fail(NULL, "parsed JID without a domain", s, len, NULL, NULL);
    const char *text = kr_jid_format(a, &j);
    kr_jid k;
    if (kr_jid_parse(a, text, &k) != 0)
        fuzz_fail(NULL, "formatted JID does not parse", s, len, text, NULL);
    if (!kr_jid_equal(&j, &k) || !fuzz_part_equal(j.local, k.local) ||
        strcmp(j.domain, k.domain) != 0 || !fuzz_part_equal(j.resource, k.resource))
        fuzz_fail(NULL, "formatted JID parses to another JID", s, len, text,
                  kr_jid_format(a, &k));
    if (strcmp(kr_jid_format(a, &k), text) != 0)
        fuzz_fail(NULL, "format is not stable", s, len, text, kr_jid_format(a, &k));
    if (!kr_jid_bare_equal(&j, &k))
        fuzz_fail(NULL, "bare comparison disagrees with full comparison", s, len, text, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kr_arena *a = kr_arena_new(4096);
    char *s = kr_arena_strndup(a, (const char *)data, size);
    fuzz_check_jid(a, s, size);
    for (size_t i = 0; i < sizeof(fuzz_parts) / sizeof(fuzz_parts[0]); i++)
        fuzz_check_part(a, &fuzz_parts[i], (const char *)data, size);
    kr_arena_free(a);
    return 0;
}
