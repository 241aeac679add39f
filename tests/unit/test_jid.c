/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Unit tests of src/xmpp/jid.c: JID parsing and preparation (RFC 7622), the
 * PRECIS profiles UsernameCaseMapped and OpaqueString (RFC 8264, RFC 8265),
 * IDNA2008 domains and IP literals, formatting and comparison, and that the
 * ASCII fast path agrees with the full ICU / libidn2 path. Non-ASCII input is
 * written as UTF-8 escapes. Each test gets a fresh arena.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unicode/uclean.h>

#include "core/arena.h"
#include "core/error.h"
#include "xmpp/jid.h"

static int arena_setup(void **state)
{
    *state = kr_arena_new(4096);
    return 0;
}

static int arena_teardown(void **state)
{
    kr_arena_free(*state);
    return 0;
}

static void check_part(const char *in, const char *what, const char *got, const char *want)
{
    if (!want && !got)
        return;
    if (!want || !got || strcmp(got, want) != 0)
        fail_msg("%s: %s is [%s], expected [%s]", in, what, got ? got : "(null)",
                 want ? want : "(null)");
}

/* in parses, and its prepared parts are local, domain, resource (NULL: absent). */
static void expect_jid(kr_arena *a, const char *in, const char *local, const char *domain,
                       const char *resource)
{
    kr_jid j;
    int rc = kr_jid_parse(a, in, &j);
    if (rc != 0)
        fail_msg("[%s] rejected, expected valid", in);
    check_part(in, "local", j.local, local);
    check_part(in, "domain", j.domain, domain);
    check_part(in, "resource", j.resource, resource);
}

static void expect_invalid(kr_arena *a, const char *in)
{
    kr_jid j;
    if (kr_jid_parse(a, in, &j) != KR_EINVAL)
        fail_msg("[%s] accepted, expected KR_EINVAL", in);
}

typedef int (*prep_fn)(kr_arena *, const char *, size_t, const char **);

/* AUTO: the length of in is strlen(in). */
#define AUTO SIZE_MAX

static void expect_prep(kr_arena *a, prep_fn fn, const char *in, size_t len, const char *want)
{
    const char *out = NULL;
    if (len == AUTO)
        len = strlen(in);
    int rc = fn(a, in, len, &out);
    if (want == NULL) {
        if (rc != KR_EINVAL)
            fail_msg("[%.*s] prepared to [%s], expected KR_EINVAL", (int)len, in, out);
        return;
    }
    if (rc != 0)
        fail_msg("[%.*s] rejected, expected [%s]", (int)len, in, want);
    check_part(in, "prepared", out, want);
}

static char *repeat(const char *unit, size_t times, const char *suffix)
{
    size_t u = strlen(unit), s = strlen(suffix);
    char *r = malloc(u * times + s + 1);
    for (size_t i = 0; i < times; i++)
        memcpy(r + i * u, unit, u);
    memcpy(r + u * times, suffix, s + 1);
    return r;
}

/* An n-byte domain of 62-byte labels ("aaa...a.aaa...a..."). */
static char *long_domain(size_t n)
{
    char *d = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        d[i] = i % 63 == 62 ? '.' : 'a';
    d[n] = '\0';
    return d;
}

/* ---- RFC 7622 §3.5 ------------------------------------------------------ */

static void rfc7622_table1_examples_are_valid(void **state)
{
    kr_arena *a = *state;
    expect_jid(a, "juliet@example.com", "juliet", "example.com", NULL);
    expect_jid(a, "juliet@example.com/foo", "juliet", "example.com", "foo");
    expect_jid(a, "juliet@example.com/foo bar", "juliet", "example.com", "foo bar");
    expect_jid(a, "juliet@example.com/foo@bar", "juliet", "example.com", "foo@bar");
    expect_jid(a, "foo\\20bar@example.com", "foo\\20bar", "example.com", NULL);
    expect_jid(a, "fussball@example.com", "fussball", "example.com", NULL);
    expect_jid(a,
               "fu\xc3\x9f"
               "ball@example.com",
               "fu\xc3\x9f"
               "ball",
               "example.com", NULL);
    expect_jid(a, "\xcf\x80@example.com", "\xcf\x80", "example.com", NULL);
    /* GREEK CAPITAL SIGMA lower-cases to small sigma; final sigma stays itself. */
    expect_jid(a, "\xce\xa3@example.com/foo", "\xcf\x83", "example.com", "foo");
    expect_jid(a, "\xcf\x83@example.com/foo", "\xcf\x83", "example.com", "foo");
    expect_jid(a, "\xcf\x82@example.com/foo", "\xcf\x82", "example.com", "foo");
    expect_jid(a, "king@example.com/\xe2\x99\x9a", "king", "example.com", "\xe2\x99\x9a");
    expect_jid(a, "example.com", NULL, "example.com", NULL);
    expect_jid(a, "example.com/foobar", NULL, "example.com", "foobar");
    expect_jid(a, "a.example.com/b@example.net", NULL, "a.example.com", "b@example.net");
}

static void rfc7622_table2_examples_are_invalid(void **state)
{
    kr_arena *a = *state;
    expect_invalid(a, "\"juliet\"@example.com");
    expect_invalid(a, "foo bar@example.com");
    expect_invalid(a, "@example.com/");
    expect_invalid(a, "henri\xe2\x85\xa3@example.com"); /* ROMAN NUMERAL FOUR */
    expect_invalid(a, "\xe2\x99\x9a@example.com");      /* BLACK CHESS KING */
    expect_invalid(a, "juliet@");
    expect_invalid(a, "/foobar");
}

/* Table 2 lists "juliet@example.com/ foo" as invalid, but no rule rejects it:
 * OpaqueString allows spaces anywhere (see the RFC 7622 errata). Accepted. */
static void resource_leading_space_is_accepted_despite_table2(void **state)
{
    expect_jid(*state, "juliet@example.com/ foo", "juliet", "example.com", " foo");
}

/* ---- Local part ------------------------------------------------------- */

static void local_part_is_case_mapped(void **state)
{
    kr_arena *a = *state;
    kr_jid x, y;
    assert_int_equal(kr_jid_parse(a, "Juliet@Example.COM", &x), 0);
    assert_int_equal(kr_jid_parse(a, "juliet@example.com", &y), 0);
    assert_true(kr_jid_equal(&x, &y));
    assert_string_equal(kr_jid_format(a, &x), "juliet@example.com");
}

static void local_part_uses_tolowercase_not_case_folding(void **state)
{
    kr_arena *a = *state;
    /* toLowerCase keeps sharp s (folding would give "ss"). */
    expect_prep(a, kr_jid_prep_local,
                "FU\xc3\x9f"
                "BALL",
                AUTO,
                "fu\xc3\x9f"
                "ball");
    /* KELVIN SIGN lower-cases to ASCII k. */
    expect_prep(a, kr_jid_prep_local, "\xe2\x84\xaa", AUTO, "k");
    /* LATIN CAPITAL I WITH DOT ABOVE: i + COMBINING DOT ABOVE, no Turkish tailoring. */
    expect_prep(a, kr_jid_prep_local, "\xc4\xb0", AUTO, "i\xcc\x87");
    /* Final sigma context of toLowerCase: SIGMA ALPHA SIGMA -> sigma alpha final-sigma. */
    expect_prep(a, kr_jid_prep_local, "\xce\xa3\xce\x91\xce\xa3", AUTO, "\xcf\x83\xce\xb1\xcf\x82");
}

static void local_part_maps_fullwidth_and_halfwidth(void **state)
{
    kr_arena *a = *state;
    /* FULLWIDTH JULIET */
    expect_jid(a,
               "\xef\xbc\xaa\xef\xbc\xb5\xef\xbc\xac\xef\xbc\xa9\xef\xbc\xa5\xef\xbc\xb4"
               "@example.com",
               "juliet", "example.com", NULL);
    /* HALFWIDTH KATAKANA KA -> KATAKANA KA */
    expect_prep(a, kr_jid_prep_local, "\xef\xbd\xb6", AUTO, "\xe3\x82\xab");
    /* FULLWIDTH COMMERCIAL AT maps to '@', which the local part forbids. */
    expect_prep(a, kr_jid_prep_local,
                "a\xef\xbc\xa0"
                "b",
                AUTO, NULL);
}

static void local_part_rejects_each_forbidden_character(void **state)
{
    kr_arena *a = *state;
    const char *forbidden = "\"&'/:<>@";
    for (const char *f = forbidden; *f; f++) {
        char s[4] = {'a', *f, 'b', '\0'};
        expect_prep(a, kr_jid_prep_local, s, AUTO, NULL);
        expect_prep(a, kr_jid_prep_local, s + 1, AUTO, NULL);
        if (*f != '/' && *f != '@') {
            char jid[32];
            snprintf(jid, sizeof jid, "a%cb@example.com", *f);
            expect_invalid(a, jid);
        }
    }
    expect_prep(a, kr_jid_prep_local, "a b", AUTO, NULL); /* space is ID_DIS */
    expect_prep(a, kr_jid_prep_local, "a!#$%*+,-.;=?[\\]^_`{|}~b", AUTO,
                "a!#$%*+,-.;=?[\\]^_`{|}~b");
}

static void local_part_rejects_symbols_and_compat_characters(void **state)
{
    kr_arena *a = *state;
    expect_prep(a, kr_jid_prep_local, "\xe2\x99\x9a", AUTO, NULL); /* symbol: ID_DIS */
    expect_prep(a, kr_jid_prep_local, "\xe2\x85\xa3", AUTO, NULL); /* HasCompat */
    expect_prep(a, kr_jid_prep_local, "\xef\xac\x81", AUTO, NULL); /* LATIN SMALL LIGATURE FI */
    expect_prep(a, kr_jid_prep_local, "\xc3\xa9t\xc3\xa9", AUTO, "\xc3\xa9t\xc3\xa9");
    expect_prep(a, kr_jid_prep_local, "e\xcc\x81", AUTO, "\xc3\xa9"); /* NFC */
}

static void local_part_applies_bidi_rule_to_rtl_strings(void **state)
{
    kr_arena *a = *state;
    const char *shalom = "\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d"; /* Hebrew, bidi R */
    expect_prep(a, kr_jid_prep_local, shalom, AUTO, shalom);
    expect_prep(a, kr_jid_prep_local,
                "\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d"
                "1",
                AUTO,
                "\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d"
                "1");                                           /* RTL ending in EN */
    expect_prep(a, kr_jid_prep_local, "a\xd7\xa9", AUTO, NULL); /* LTR label with R */
    expect_prep(a, kr_jid_prep_local,
                "\xd7\xa9"
                "a",
                AUTO, NULL);                                    /* RTL label with L */
    expect_prep(a, kr_jid_prep_local, "1\xd7\xa9", AUTO, NULL); /* starts with EN */
    expect_prep(a, kr_jid_prep_local, "\xd8\xa8\xd9\xa1", AUTO, "\xd8\xa8\xd9\xa1"); /* AL AN */
    expect_prep(a, kr_jid_prep_local,
                "\xd8\xa8\xd9\xa1"
                "1",
                AUTO, NULL); /* AN with EN */
}

static void local_part_applies_contextual_rules(void **state)
{
    kr_arena *a = *state;
    expect_prep(a, kr_jid_prep_local, "col\xc2\xb7la", AUTO, "col\xc2\xb7la"); /* MIDDLE DOT */
    expect_prep(a, kr_jid_prep_local, "co\xc2\xb7lla", AUTO, NULL);
    expect_prep(a, kr_jid_prep_local,
                "a\xe2\x80\x8d"
                "b",
                AUTO, NULL); /* ZWJ, no virama */
    /* ZWNJ after DEVANAGARI SIGN VIRAMA */
    expect_prep(a, kr_jid_prep_local, "\xe0\xa4\x95\xe0\xa5\x8d\xe2\x80\x8c\xe0\xa4\xb7", AUTO,
                "\xe0\xa4\x95\xe0\xa5\x8d\xe2\x80\x8c\xe0\xa4\xb7");
    /* GREEK LOWER NUMERAL SIGN must precede a Greek letter */
    expect_prep(a, kr_jid_prep_local, "\xcd\xb5\xce\xb1", AUTO, "\xcd\xb5\xce\xb1");
    expect_prep(a, kr_jid_prep_local,
                "\xcd\xb5"
                "a",
                AUTO, NULL);
    /* KATAKANA MIDDLE DOT needs kana or han in the string */
    expect_prep(a, kr_jid_prep_local, "\xe3\x82\xa2\xe3\x83\xbb\xe3\x82\xa4", AUTO,
                "\xe3\x82\xa2\xe3\x83\xbb\xe3\x82\xa4");
    expect_prep(a, kr_jid_prep_local,
                "a\xe3\x83\xbb"
                "b",
                AUTO, NULL);
}

static void local_part_rejects_disallowed_code_points(void **state)
{
    kr_arena *a = *state;
    expect_prep(a, kr_jid_prep_local,
                "a\xe2\x80\x8b"
                "b",
                AUTO, NULL); /* ZERO WIDTH SPACE */
    expect_prep(a, kr_jid_prep_local,
                "a\xc2\xad"
                "b",
                AUTO, NULL);                                        /* SOFT HYPHEN */
    expect_prep(a, kr_jid_prep_local, "a\xcd\xb8", AUTO, NULL);     /* unassigned U+0378 */
    expect_prep(a, kr_jid_prep_local, "a\xee\x80\x80", AUTO, NULL); /* private use */
    expect_prep(a, kr_jid_prep_local, "a\xef\xb7\x90", AUTO, NULL); /* noncharacter */
    expect_prep(a, kr_jid_prep_local, "\xe1\x84\x80", AUTO, NULL);  /* old Hangul jamo */
    expect_prep(a, kr_jid_prep_local, "\xd8\xa8\xd9\x80\xd8\xa8", AUTO, NULL); /* TATWEEL */
    expect_prep(a, kr_jid_prep_local, "a\xe3\x80\xb1", AUTO, NULL); /* VERTICAL KANA REPEAT */
}

/* ---- Resource part ----------------------------------------------------- */

static void resource_case_is_preserved(void **state)
{
    kr_arena *a = *state;
    kr_jid x, y;
    assert_int_equal(kr_jid_parse(a, "juliet@example.com/Balcony", &x), 0);
    assert_int_equal(kr_jid_parse(a, "juliet@example.com/balcony", &y), 0);
    assert_string_equal(x.resource, "Balcony");
    assert_false(kr_jid_equal(&x, &y));
    assert_true(kr_jid_bare_equal(&x, &y));
}

static void resource_keeps_spaces_and_maps_non_ascii_spaces(void **state)
{
    kr_arena *a = *state;
    expect_jid(a, "juliet@example.com/foo  bar ", "juliet", "example.com", "foo  bar ");
    expect_prep(a, kr_jid_prep_resource,
                "foo\xc2\xa0"
                "bar",
                AUTO, "foo bar"); /* NBSP */
    expect_prep(a, kr_jid_prep_resource,
                "foo\xe3\x80\x80"
                "bar",
                AUTO, "foo bar"); /* U+3000 */
    expect_prep(a, kr_jid_prep_resource, " ", AUTO, " ");
}

static void resource_is_freeform_without_width_mapping(void **state)
{
    kr_arena *a = *state;
    expect_prep(a, kr_jid_prep_resource, "\xef\xbc\xaa", AUTO, "\xef\xbc\xaa"); /* fullwidth J */
    expect_prep(a, kr_jid_prep_resource, "\xe2\x85\xa3", AUTO, "\xe2\x85\xa3"); /* HasCompat */
    expect_prep(a, kr_jid_prep_resource, "a/b@c", AUTO, "a/b@c");
    expect_prep(a, kr_jid_prep_resource, "e\xcc\x81", AUTO, "\xc3\xa9"); /* NFC */
    expect_prep(a, kr_jid_prep_resource, "\xd9\xa0\xd9\xa1", AUTO, "\xd9\xa0\xd9\xa1");
    expect_prep(a, kr_jid_prep_resource, "\xd9\xa0\xdb\xb0", AUTO, NULL); /* mixed digit sets */
    expect_prep(a, kr_jid_prep_resource,
                "a\xe2\x80\x8d"
                "b",
                AUTO, NULL); /* ZWJ, CONTEXTJ */
    expect_prep(a, kr_jid_prep_resource,
                "a\xe2\x80\x8b"
                "b",
                AUTO, NULL); /* ignorable */
}

/* ---- Control characters and encoding ------------------------------------ */

static void control_characters_are_rejected(void **state)
{
    kr_arena *a = *state;
    expect_invalid(a, "a\x01"
                      "b@example.com");
    expect_invalid(a, "juliet@example.com/a\x7f");
    expect_invalid(a, "juliet@example.com/a\tb");
    expect_invalid(a, "juliet@exa\tmple.com");
    expect_prep(a, kr_jid_prep_resource, "a\xc2\x85", AUTO, NULL); /* NEL, C1 control */
    expect_prep(a, kr_jid_prep_local, "a\xc2\x9f", AUTO, NULL);
    expect_prep(a, kr_jid_prep_resource, "a\0b", 3, NULL);
    expect_prep(a, kr_jid_prep_local, "a\0b", 3, NULL);
    expect_prep(a, kr_jid_prep_domain, "a\0b", 3, NULL);
}

static void invalid_utf8_is_rejected(void **state)
{
    kr_arena *a = *state;
    const char *bad[] = {"\xc3", "a\xc3(", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xff"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = strlen(bad[i]);
        expect_prep(a, kr_jid_prep_local, bad[i], n, NULL);
        expect_prep(a, kr_jid_prep_resource, bad[i], n, NULL);
        expect_prep(a, kr_jid_prep_domain, bad[i], n, NULL);
        expect_prep(a, kr_precis_opaque, bad[i], n, NULL);
    }
}

/* ---- Splitting and empty parts ------------------------------------------ */

static void empty_parts_are_rejected(void **state)
{
    kr_arena *a = *state;
    const char *bad[] = {
        "", "@", "/", "@/", "@d", "u@", "d/", "u@d/", "u@/r", "@example.com/r", "juliet@/r"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_invalid(a, bad[i]);
    expect_prep(a, kr_jid_prep_local, "", AUTO, NULL);
    expect_prep(a, kr_jid_prep_domain, "", AUTO, NULL);
    expect_prep(a, kr_jid_prep_resource, "", AUTO, NULL);
}

static void split_uses_first_slash_and_first_at_before_it(void **state)
{
    kr_arena *a = *state;
    expect_jid(a, "a@b/c/d@e", "a", "b", "c/d@e");
    expect_jid(a, "b/@c", NULL, "b", "@c");
    expect_invalid(a, "a@b@c");
}

/* ---- Length limits -------------------------------------------------------- */

static void local_part_length_limit_is_1023_bytes(void **state)
{
    kr_arena *a = *state;
    char *ok = repeat("a", 1023, "@example.com");
    char *bad = repeat("a", 1024, "@example.com");
    char *ok2 = repeat("\xc3\xa9", 511, "a@example.com"); /* 1023 bytes of UTF-8 */
    char *bad2 = repeat("\xc3\xa9", 512, "@example.com");
    /* 1023 FULLWIDTH a (3069 bytes) prepare to 1023 bytes */
    char *ok3 = repeat("\xef\xbd\x81", 1023, "@example.com");
    char *bad3 = repeat("\xef\xbd\x81", 1024, "@example.com");
    kr_jid j;
    assert_int_equal(kr_jid_parse(a, ok, &j), 0);
    assert_int_equal(strlen(j.local), 1023);
    expect_invalid(a, bad);
    assert_int_equal(kr_jid_parse(a, ok2, &j), 0);
    assert_int_equal(strlen(j.local), 1023);
    expect_invalid(a, bad2);
    assert_int_equal(kr_jid_parse(a, ok3, &j), 0);
    assert_int_equal(strlen(j.local), 1023);
    expect_invalid(a, bad3);
    free(ok), free(bad), free(ok2), free(bad2), free(ok3), free(bad3);
}

static void resource_length_limit_is_1023_bytes(void **state)
{
    kr_arena *a = *state;
    char *ok = repeat("r", 1023, "");
    char *bad = repeat("r", 1024, "");
    char *ok2 = repeat("\xc3\xa9", 511, "r");
    char *bad2 = repeat("\xc3\xa9", 512, "");
    char *jid_ok = repeat("r", 1023, "");
    kr_jid j;
    expect_prep(a, kr_jid_prep_resource, ok, AUTO, ok);
    expect_prep(a, kr_jid_prep_resource, bad, AUTO, NULL);
    expect_prep(a, kr_jid_prep_resource, ok2, AUTO, ok2);
    expect_prep(a, kr_jid_prep_resource, bad2, AUTO, NULL);
    char *full = malloc(2000);
    snprintf(full, 2000, "example.com/%s", jid_ok);
    assert_int_equal(kr_jid_parse(a, full, &j), 0);
    assert_int_equal(strlen(j.resource), 1023);
    strcat(full, "r");
    expect_invalid(a, full);
    free(ok), free(bad), free(ok2), free(bad2), free(jid_ok), free(full);
}

static void domain_length_limit_is_1023_bytes(void **state)
{
    kr_arena *a = *state;
    char *ok = long_domain(1023);
    char *bad = long_domain(1024);
    const char *out = NULL;
    assert_int_equal(kr_jid_prep_domain(a, ok, 1023, &out), 0);
    assert_string_equal(out, ok);
    assert_int_equal(kr_jid_prep_full(a, KR_JID_DOMAIN, ok, 1023, &out), 0);
    assert_string_equal(out, ok);
    expect_prep(a, kr_jid_prep_domain, bad, AUTO, NULL);
    assert_int_equal(kr_jid_prep_full(a, KR_JID_DOMAIN, bad, 1024, &out), KR_EINVAL);
    char *dotted = malloc(1025);
    memcpy(dotted, ok, 1023);
    memcpy(dotted + 1023, ".", 2);
    expect_prep(a, kr_jid_prep_domain, dotted, AUTO, ok); /* trailing dot stripped first */
    free(ok), free(bad), free(dotted);
}

static void domain_label_limit_is_63_octets(void **state)
{
    kr_arena *a = *state;
    char *ok = repeat("a", 63, ".example");
    char *bad = repeat("a", 64, ".example");
    expect_prep(a, kr_jid_prep_domain, ok, strlen(ok), ok);
    expect_prep(a, kr_jid_prep_domain, bad, strlen(bad), NULL);
    /* 60 x u-umlaut is short in UTF-8 terms but its A-label exceeds 63 octets */
    char *idn = repeat("\xc3\xbc", 60, ".example");
    expect_prep(a, kr_jid_prep_domain, idn, strlen(idn), NULL);
    free(ok), free(bad), free(idn);
}

/* ---- Domain ------------------------------------------------------------ */

static void domain_is_lower_cased(void **state)
{
    kr_arena *a = *state;
    expect_jid(a, "A.Example.nEt", NULL, "a.example.net", NULL);
    /* FULLWIDTH "example" (UTS #46 mapping in libidn2) */
    expect_prep(a, kr_jid_prep_domain,
                "\xef\xbd\x85\xef\xbd\x98\xef\xbd\x81\xef\xbd\x8d\xef\xbd\x90\xef\xbd\x8c"
                "\xef\xbd\x85.com",
                AUTO, "example.com");
}

static void idn_domain_forms_compare_equal(void **state)
{
    kr_arena *a = *state;
    const char *forms[] = {"b\xc3\xbc"
                           "cher.example",
                           "xn--bcher-kva.example", "XN--BCHER-KVA.EXAMPLE",
                           "B\xc3\x9c"
                           "CHER.Example"};
    kr_jid first;
    assert_int_equal(kr_jid_parse(a, forms[0], &first), 0);
    assert_string_equal(first.domain, "b\xc3\xbc"
                                      "cher.example");
    for (size_t i = 1; i < sizeof forms / sizeof forms[0]; i++) {
        kr_jid j;
        if (kr_jid_parse(a, forms[i], &j) != 0)
            fail_msg("%s rejected", forms[i]);
        assert_true(kr_jid_equal(&first, &j));
    }
    expect_prep(a, kr_jid_prep_domain, "fa\xc3\x9f.de", AUTO,
                "fa\xc3\x9f.de"); /* nontransitional */
    expect_prep(a, kr_jid_prep_domain, "xn--fa-hia.de", AUTO, "fa\xc3\x9f.de");
}

static void domain_rejects_what_is_not_a_host_name(void **state)
{
    kr_arena *a = *state;
    const char *bad[] = {"a b.example",
                         "a@b",
                         "a..b",
                         ".a",
                         "a_b.example",
                         "-a.example",
                         "a-.example",
                         "ab--cd.example",
                         "xn--a.example",
                         "xn--.example",
                         "\xe2\x99\x9a.example",
                         "a:b",
                         "a,b",
                         "a\\b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        expect_prep(a, kr_jid_prep_domain, bad[i], strlen(bad[i]), NULL);
        const char *out;
        if (kr_jid_prep_full(a, KR_JID_DOMAIN, bad[i], strlen(bad[i]), &out) != KR_EINVAL)
            fail_msg("full path accepted domain [%s]", bad[i]);
    }
    expect_prep(a, kr_jid_prep_domain, "localhost", AUTO, "localhost");
    expect_prep(a, kr_jid_prep_domain, "a-b.x-1.example", AUTO, "a-b.x-1.example");
}

static void domain_trailing_dot_is_stripped_once(void **state)
{
    kr_arena *a = *state;
    kr_jid x, y;
    assert_int_equal(kr_jid_parse(a, "juliet@example.com./r", &x), 0);
    assert_int_equal(kr_jid_parse(a, "juliet@example.com/r", &y), 0);
    assert_string_equal(x.domain, "example.com");
    assert_true(kr_jid_equal(&x, &y));
    expect_invalid(a, "example.com..");
    expect_invalid(a, ".");
    expect_invalid(a, "juliet@.");
}

static void ip_literals_are_accepted(void **state)
{
    kr_arena *a = *state;
    expect_jid(a, "[::1]", NULL, "[::1]", NULL);
    expect_jid(a, "juliet@[::1]/r", "juliet", "[::1]", "r");
    expect_jid(a, "127.0.0.1", NULL, "127.0.0.1", NULL);
    expect_jid(a, "juliet@192.0.2.1/r", "juliet", "192.0.2.1", "r");
    expect_jid(a, "[2001:DB8:0:0::1]", NULL, "[2001:db8::1]", NULL); /* canonical text form */
    expect_jid(a, "[::ffff:192.0.2.1]", NULL, "[::ffff:192.0.2.1]", NULL);
    expect_invalid(a, "[::1");
    expect_invalid(a, "::1");
    expect_invalid(a, "[]");
    expect_invalid(a, "[127.0.0.1]");
    expect_invalid(a, "[fe80::1%eth0]");
    expect_invalid(a, "[::g]");
}

/* ---- Passwords --------------------------------------------------------- */

static void opaque_string_prepares_passwords(void **state)
{
    kr_arena *a = *state;
    expect_prep(a, kr_precis_opaque, "correct Horse battery", AUTO, "correct Horse battery");
    expect_prep(a, kr_precis_opaque, "pass\xc2\xa0word", AUTO, "pass word");
    expect_prep(a, kr_precis_opaque, "\xe2\x85\xa3", AUTO, "\xe2\x85\xa3");
    expect_prep(a, kr_precis_opaque, "\xef\xbc\xaa", AUTO, "\xef\xbc\xaa");
    expect_prep(a, kr_precis_opaque,
                "caf"
                "e\xcc\x81",
                AUTO, "caf\xc3\xa9");
    expect_prep(a, kr_precis_opaque, "", AUTO, NULL);
    expect_prep(a, kr_precis_opaque, "a\x01", AUTO, NULL);
    expect_prep(a, kr_precis_opaque, "a\xe2\x80\x8b", AUTO, NULL);
    char *longpw = repeat("p", 2000, "");
    expect_prep(a, kr_precis_opaque, longpw, AUTO, longpw); /* no 1023 limit for passwords */
    free(longpw);
}

/* ---- Formatting and comparison ----------------------------------------- */

static void format_writes_present_parts_only(void **state)
{
    kr_arena *a = *state;
    kr_jid full = {"juliet", "example.com", "balcony"};
    kr_jid bare = {"juliet", "example.com", NULL};
    kr_jid domres = {NULL, "example.com", "r"};
    kr_jid dom = {NULL, "example.com", NULL};
    assert_string_equal(kr_jid_format(a, &full), "juliet@example.com/balcony");
    assert_string_equal(kr_jid_format_bare(a, &full), "juliet@example.com");
    assert_string_equal(kr_jid_format(a, &bare), "juliet@example.com");
    assert_string_equal(kr_jid_format(a, &domres), "example.com/r");
    assert_string_equal(kr_jid_format_bare(a, &domres), "example.com");
    assert_string_equal(kr_jid_format(a, &dom), "example.com");
}

static void equality_distinguishes_absent_parts(void **state)
{
    (void)state;
    kr_jid full = {"juliet", "example.com", "balcony"};
    kr_jid bare = {"juliet", "example.com", NULL};
    kr_jid dom = {NULL, "example.com", NULL};
    kr_jid other = {"romeo", "example.com", "balcony"};
    assert_false(kr_jid_equal(&full, &bare));
    assert_true(kr_jid_bare_equal(&full, &bare));
    assert_false(kr_jid_bare_equal(&bare, &dom));
    assert_false(kr_jid_equal(&full, &other));
    assert_true(kr_jid_equal(&full, &full));
}

static void prepared_jids_are_stable(void **state)
{
    kr_arena *a = *state;
    const char *in[] = {"Juliet@Example.COM/Balcony", "\xce\xa3@example.com/foo",
                        "\xef\xbc\xaa"
                        "uliet@B\xc3\x9c"
                        "CHER.example/\xc2\xa0x",
                        "\xc4\xb0@[::1]", "\xe2\x84\xaa@xn--bcher-kva.example./R"};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        kr_jid j, k;
        assert_int_equal(kr_jid_parse(a, in[i], &j), 0);
        const char *once = kr_jid_format(a, &j);
        assert_int_equal(kr_jid_parse(a, once, &k), 0);
        assert_string_equal(kr_jid_format(a, &k), once);
        assert_true(kr_jid_equal(&j, &k));
    }
}

/* ---- ASCII fast path agrees with the full path ------------------------- */

static void expect_same(kr_arena *a, prep_fn fast, kr_jid_part part, const char *s, size_t n)
{
    const char *o1 = NULL, *o2 = NULL;
    int r1 = fast(a, s, n, &o1);
    int r2 = kr_jid_prep_full(a, part, s, n, &o2);
    if (r1 != r2)
        fail_msg("part %d [%.*s]: fast path %d, full path %d", (int)part, (int)n, s, r1, r2);
    if (r1 == 0 && strcmp(o1, o2) != 0)
        fail_msg("part %d [%.*s]: fast [%s], full [%s]", (int)part, (int)n, s, o1, o2);
}

static void expect_same_all(kr_arena *a, const char *s, size_t n)
{
    expect_same(a, kr_jid_prep_local, KR_JID_LOCAL, s, n);
    expect_same(a, kr_jid_prep_domain, KR_JID_DOMAIN, s, n);
    expect_same(a, kr_jid_prep_resource, KR_JID_RESOURCE, s, n);
    expect_same(a, kr_precis_opaque, KR_JID_PASSWORD, s, n);
}

static void ascii_fast_path_agrees_with_full_path(void **state)
{
    kr_arena *a = *state;
    for (int c = 0; c < 0x80; c++) {
        char s[3] = {(char)c, 'x', (char)c};
        expect_same_all(a, s, 1);
        expect_same_all(a, s, 3);
    }
    const char *set[] = {"Juliet",
                         "juliet",
                         "JULIET",
                         "foo bar",
                         "foo\\20bar",
                         " lead",
                         "trail ",
                         "a.b",
                         "A.B.",
                         "-a",
                         "a-",
                         "ab--cd",
                         "xn--bcher-kva",
                         "XN--BCHER-KVA.example",
                         "example.com",
                         "Example.COM",
                         "a..b",
                         ".a",
                         "a.",
                         "a_b",
                         "1.2.3",
                         "127.0.0.1",
                         "[::1]",
                         "[::1",
                         "a@b",
                         "a/b",
                         "\"q\"",
                         "a'b",
                         "a&b",
                         "<a>",
                         "a:b",
                         "localhost",
                         "x-1.y-2",
                         "~!#$%^*()_+={}[]|\\;,.?`",
                         "0",
                         "-",
                         "a.-b",
                         "xn--a",
                         "xn--"};
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++)
        expect_same_all(a, set[i], strlen(set[i]));
    /* Random strings over an alphabet rich in separators and special cases. */
    const char alphabet[] = "aZx0n9-._@/ :[]\"'\t";
    uint32_t seed = 12345;
    for (int i = 0; i < 5000; i++) {
        char s[16];
        seed = seed * 1103515245u + 12345u;
        size_t n = 1 + (seed >> 16) % 12;
        for (size_t k = 0; k < n; k++) {
            seed = seed * 1103515245u + 12345u;
            s[k] = alphabet[(seed >> 16) % (sizeof alphabet - 1)];
        }
        if (n >= 4 && (seed & 3) == 0)
            memcpy(s, "xn--", 4);
        expect_same_all(a, s, n);
    }
    size_t lens[] = {62, 63, 64, 1022, 1023, 1024, 1100};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        char *s = repeat("A", lens[i], "");
        char *d = long_domain(lens[i]);
        expect_same_all(a, s, lens[i]);
        expect_same_all(a, d, lens[i]);
        free(s), free(d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, arena_setup, arena_teardown)
        T(rfc7622_table1_examples_are_valid),
        T(rfc7622_table2_examples_are_invalid),
        T(resource_leading_space_is_accepted_despite_table2),
        T(local_part_is_case_mapped),
        T(local_part_uses_tolowercase_not_case_folding),
        T(local_part_maps_fullwidth_and_halfwidth),
        T(local_part_rejects_each_forbidden_character),
        T(local_part_rejects_symbols_and_compat_characters),
        T(local_part_applies_bidi_rule_to_rtl_strings),
        T(local_part_applies_contextual_rules),
        T(local_part_rejects_disallowed_code_points),
        T(resource_case_is_preserved),
        T(resource_keeps_spaces_and_maps_non_ascii_spaces),
        T(resource_is_freeform_without_width_mapping),
        T(control_characters_are_rejected),
        T(invalid_utf8_is_rejected),
        T(empty_parts_are_rejected),
        T(split_uses_first_slash_and_first_at_before_it),
        T(local_part_length_limit_is_1023_bytes),
        T(resource_length_limit_is_1023_bytes),
        T(domain_length_limit_is_1023_bytes),
        T(domain_label_limit_is_63_octets),
        T(domain_is_lower_cased),
        T(idn_domain_forms_compare_equal),
        T(domain_rejects_what_is_not_a_host_name),
        T(domain_trailing_dot_is_stripped_once),
        T(ip_literals_are_accepted),
        T(opaque_string_prepares_passwords),
        T(format_writes_present_parts_only),
        T(equality_distinguishes_absent_parts),
        T(prepared_jids_are_stable),
        T(ascii_fast_path_agrees_with_full_path),
#undef T
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    /* LeakSanitizer is quiet without it (ICU's caches stay reachable), but
     * releasing them keeps stricter checkers such as valgrind quiet too. */
    u_cleanup();
    return failed;
}
