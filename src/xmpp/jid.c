/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * XMPP addresses (RFC 7622): splitting a JID into its parts (§3.1), preparing
 * each part into its canonical form, formatting and comparing. The local part
 * follows the PRECIS UsernameCaseMapped profile (RFC 8265 §3.3: width mapping,
 * toLowerCase, NFC, Bidi Rule of RFC 5893, IdentifierClass of RFC 8264 §4.2)
 * plus the characters RFC 7622 §3.3.1 forbids; the resource and passwords the
 * OpaqueString profile (RFC 8265 §4.2: non-ASCII spaces to U+0020, NFC,
 * FreeformClass of RFC 8264 §4.3); the domain IDNA2008 via libidn2 (RFC 7622
 * §3.2), or an IP literal. The PRECIS derived property (RFC 8264 §8-§9) is
 * computed from ICU's Unicode properties, with the exceptions of RFC 5892 §2.6
 * and the contextual rules of RFC 5892 Appendix A. Pure-ASCII parts take a
 * fast path without ICU or libidn2 that gives exactly the result of the full
 * path (kr_jid_prep_full() exists to check that). Owns nothing: prepared
 * strings live in the caller's arena, scratch buffers are freed before
 * return, no global state (safe on every worker thread).
 */
#include "xmpp/jid.h"

#include <arpa/inet.h>
#include <idn2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/uscript.h>
#include <unicode/ustring.h>
#include <unicode/utf16.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/error.h"

/* Longest input accepted for one part before preparation. Preparation shrinks
 * a string at most threefold (fullwidth ASCII, Hangul L+V+T composing into one
 * syllable), so nothing longer can prepare to KR_JID_PART_MAX bytes; the bound
 * stops peer-driven work and allocation early. Passwords share it. */
#define KR_JID_RAW_MAX (4 * KR_JID_PART_MAX)

/* A label in A-label (ASCII) form, RFC 5890 §2.3.2.1 / RFC 1035 §2.3.4. */
#define KR_DNS_LABEL_MAX 63

#define KR_IDN2_FLAGS (IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT)

/* ---- UTF-16 scratch strings ------------------------------------------- */

typedef struct kr_ustr {
    UChar *p;
    int32_t len;
    int32_t cap;
} kr_ustr;

static void ustr_reserve(kr_ustr *u, int32_t cap)
{
    if (cap < 16)
        cap = 16;
    if (cap > u->cap) {
        u->p = kr_xrealloc(u->p, (size_t)cap * sizeof(UChar));
        u->cap = cap;
    }
}

static void ustr_free(kr_ustr *u)
{
    free(u->p);
    u->p = NULL;
    u->len = u->cap = 0;
}

static void ustr_swap(kr_ustr *x, kr_ustr *y)
{
    kr_ustr t = *x;
    *x = *y;
    *y = t;
}

static bool ustr_equal(const kr_ustr *x, const kr_ustr *y)
{
    return x->len == y->len && memcmp(x->p, y->p, (size_t)x->len * sizeof(UChar)) == 0;
}

static void ustr_append_cp(kr_ustr *u, UChar32 c)
{
    ustr_reserve(u, u->len + 2);
    U16_APPEND_UNSAFE(u->p, u->len, c);
}

static int ustr_from_utf8(kr_ustr *u, const char *in, size_t len)
{
    UErrorCode err = U_ZERO_ERROR;
    ustr_reserve(u, (int32_t)len + 1);
    u_strFromUTF8(u->p, u->cap, &u->len, in, (int32_t)len, &err);
    return U_FAILURE(err) ? KR_EINVAL : 0; /* ill-formed UTF-8 */
}

/* ---- PRECIS mappings (RFC 8264 §5.2, RFC 8265 §3.3.2 and §4.2.2) --------- */

/* Width mapping: fullwidth and halfwidth code points to their decomposition
 * mapping, i.e. those whose decomposition type is <wide> or <narrow>. */
static void map_width(const kr_ustr *in, kr_ustr *out)
{
    UErrorCode err = U_ZERO_ERROR;
    const UNormalizer2 *nfkc = unorm2_getNFKCInstance(&err);
    out->len = 0;
    for (int32_t i = 0; i < in->len;) {
        UChar32 c;
        U16_NEXT(in->p, i, in->len, c);
        int32_t dt = u_getIntPropertyValue(c, UCHAR_DECOMPOSITION_TYPE);
        UChar d[8];
        int32_t n = -1;
        if (U_SUCCESS(err) && (dt == U_DT_WIDE || dt == U_DT_NARROW)) {
            UErrorCode e2 = U_ZERO_ERROR;
            n = unorm2_getRawDecomposition(nfkc, c, d, 8, &e2);
            if (U_FAILURE(e2))
                n = -1;
        }
        if (n < 0) {
            ustr_append_cp(out, c);
            continue;
        }
        ustr_reserve(out, out->len + n);
        memcpy(out->p + out->len, d, (size_t)n * sizeof(UChar));
        out->len += n;
    }
}

/* OpaqueString additional mapping: non-ASCII spaces (Zs) to U+0020. */
static void map_spaces(const kr_ustr *in, kr_ustr *out)
{
    out->len = 0;
    ustr_reserve(out, in->len);
    for (int32_t i = 0; i < in->len;) {
        UChar32 c;
        U16_NEXT(in->p, i, in->len, c);
        if (c != 0x20 && u_charType(c) == U_SPACE_SEPARATOR)
            c = 0x20;
        ustr_append_cp(out, c);
    }
}

/* Case mapping: Unicode toLowerCase() with no locale tailoring (root). */
static int map_lower(const kr_ustr *in, kr_ustr *out)
{
    UErrorCode err = U_ZERO_ERROR;
    ustr_reserve(out, in->len + 8);
    int32_t n = u_strToLower(out->p, out->cap, in->p, in->len, "", &err);
    if (err == U_BUFFER_OVERFLOW_ERROR) {
        err = U_ZERO_ERROR;
        ustr_reserve(out, n);
        n = u_strToLower(out->p, out->cap, in->p, in->len, "", &err);
    }
    out->len = n;
    return U_FAILURE(err) ? KR_EINVAL : 0;
}

static int map_nfc(const kr_ustr *in, kr_ustr *out)
{
    UErrorCode err = U_ZERO_ERROR;
    const UNormalizer2 *nfc = unorm2_getNFCInstance(&err);
    if (U_FAILURE(err))
        return KR_EINVAL;
    ustr_reserve(out, in->len + 8);
    int32_t n = unorm2_normalize(nfc, in->p, in->len, out->p, out->cap, &err);
    if (err == U_BUFFER_OVERFLOW_ERROR) {
        err = U_ZERO_ERROR;
        ustr_reserve(out, n);
        n = unorm2_normalize(nfc, in->p, in->len, out->p, out->cap, &err);
    }
    out->len = n;
    return U_FAILURE(err) ? KR_EINVAL : 0;
}

typedef enum kr_precis_profile {
    KR_PRECIS_USERNAME_CASE_MAPPED,
    KR_PRECIS_OPAQUE_STRING,
} kr_precis_profile;

/* Rules 1-4 of RFC 8264 §7 (width, additional, case, normalization) for the
 * profile, from in to out; tmp is scratch. */
static int precis_map(kr_precis_profile prof, const kr_ustr *in, kr_ustr *out, kr_ustr *tmp)
{
    if (prof == KR_PRECIS_OPAQUE_STRING) {
        map_spaces(in, tmp);
        return map_nfc(tmp, out);
    }
    map_width(in, tmp);
    int rc = map_lower(tmp, out);
    if (rc)
        return rc;
    rc = map_nfc(out, tmp);
    ustr_swap(out, tmp);
    return rc;
}

/* Applies the mappings, then again until the result is stable: RFC 8264 §7
 * rejects a string that has not stabilized after three more applications. */
static int precis_map_stable(kr_precis_profile prof, kr_ustr *cur, kr_ustr *nxt, kr_ustr *tmp)
{
    int rc = precis_map(prof, cur, nxt, tmp);
    if (rc)
        return rc;
    ustr_swap(cur, nxt);
    for (int again = 0; again < 3; again++) {
        rc = precis_map(prof, cur, nxt, tmp);
        if (rc)
            return rc;
        if (ustr_equal(cur, nxt))
            return 0;
        ustr_swap(cur, nxt);
    }
    return KR_EINVAL;
}

/* ---- PRECIS derived property (RFC 8264 §8 and §9) ---------------------- */

typedef enum kr_precis_prop {
    KR_PROP_PVALID,
    KR_PROP_FREE_PVAL, /* ID_DIS or FREE_PVAL */
    KR_PROP_CONTEXTJ,
    KR_PROP_CONTEXTO,
    KR_PROP_DISALLOWED,
    KR_PROP_UNASSIGNED,
} kr_precis_prop;

typedef struct kr_precis_exception {
    UChar32 cp;
    kr_precis_prop prop;
} kr_precis_exception;

/* RFC 5892 §2.6, sorted by code point. */
static const kr_precis_exception kr_exceptions[] = {
    {0x00B7, KR_PROP_CONTEXTO},   {0x00DF, KR_PROP_PVALID},     {0x0375, KR_PROP_CONTEXTO},
    {0x03C2, KR_PROP_PVALID},     {0x05F3, KR_PROP_CONTEXTO},   {0x05F4, KR_PROP_CONTEXTO},
    {0x0640, KR_PROP_DISALLOWED}, {0x0660, KR_PROP_CONTEXTO},   {0x0661, KR_PROP_CONTEXTO},
    {0x0662, KR_PROP_CONTEXTO},   {0x0663, KR_PROP_CONTEXTO},   {0x0664, KR_PROP_CONTEXTO},
    {0x0665, KR_PROP_CONTEXTO},   {0x0666, KR_PROP_CONTEXTO},   {0x0667, KR_PROP_CONTEXTO},
    {0x0668, KR_PROP_CONTEXTO},   {0x0669, KR_PROP_CONTEXTO},   {0x06F0, KR_PROP_CONTEXTO},
    {0x06F1, KR_PROP_CONTEXTO},   {0x06F2, KR_PROP_CONTEXTO},   {0x06F3, KR_PROP_CONTEXTO},
    {0x06F4, KR_PROP_CONTEXTO},   {0x06F5, KR_PROP_CONTEXTO},   {0x06F6, KR_PROP_CONTEXTO},
    {0x06F7, KR_PROP_CONTEXTO},   {0x06F8, KR_PROP_CONTEXTO},   {0x06F9, KR_PROP_CONTEXTO},
    {0x06FD, KR_PROP_PVALID},     {0x06FE, KR_PROP_PVALID},     {0x07FA, KR_PROP_DISALLOWED},
    {0x0F0B, KR_PROP_PVALID},     {0x3007, KR_PROP_PVALID},     {0x302E, KR_PROP_DISALLOWED},
    {0x302F, KR_PROP_DISALLOWED}, {0x3031, KR_PROP_DISALLOWED}, {0x3032, KR_PROP_DISALLOWED},
    {0x3033, KR_PROP_DISALLOWED}, {0x3034, KR_PROP_DISALLOWED}, {0x3035, KR_PROP_DISALLOWED},
    {0x303B, KR_PROP_DISALLOWED}, {0x30FB, KR_PROP_CONTEXTO},
};

static const kr_precis_exception *find_exception(UChar32 c)
{
    size_t lo = 0, hi = sizeof kr_exceptions / sizeof kr_exceptions[0];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (kr_exceptions[mid].cp == c)
            return &kr_exceptions[mid];
        if (kr_exceptions[mid].cp < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* HasCompat (§9.17): toNFKC(cp) != cp. */
static bool has_compat(UChar32 c)
{
    UErrorCode err = U_ZERO_ERROR;
    const UNormalizer2 *nfkc = unorm2_getNFKCInstance(&err);
    UChar s[2];
    int32_t n = 0;
    U16_APPEND_UNSAFE(s, n, c);
    UBool ok = unorm2_isNormalized(nfkc, s, n, &err);
    return U_SUCCESS(err) && !ok;
}

static bool is_old_hangul_jamo(UChar32 c)
{
    int32_t t = u_getIntPropertyValue(c, UCHAR_HANGUL_SYLLABLE_TYPE);
    return t == U_HST_LEADING_JAMO || t == U_HST_VOWEL_JAMO || t == U_HST_TRAILING_JAMO;
}

static kr_precis_prop category_prop(int8_t gc)
{
    switch (gc) {
    case U_LOWERCASE_LETTER: /* LetterDigits, §9.1 */
    case U_UPPERCASE_LETTER:
    case U_OTHER_LETTER:
    case U_DECIMAL_DIGIT_NUMBER:
    case U_MODIFIER_LETTER:
    case U_NON_SPACING_MARK:
    case U_COMBINING_SPACING_MARK:
        return KR_PROP_PVALID;
    case U_TITLECASE_LETTER: /* OtherLetterDigits, §9.18 */
    case U_LETTER_NUMBER:
    case U_OTHER_NUMBER:
    case U_ENCLOSING_MARK:
    case U_SPACE_SEPARATOR: /* Spaces, §9.14 */
    case U_MATH_SYMBOL:     /* Symbols, §9.15 */
    case U_CURRENCY_SYMBOL:
    case U_MODIFIER_SYMBOL:
    case U_OTHER_SYMBOL:
    case U_CONNECTOR_PUNCTUATION: /* Punctuation, §9.16 */
    case U_DASH_PUNCTUATION:
    case U_START_PUNCTUATION:
    case U_END_PUNCTUATION:
    case U_INITIAL_PUNCTUATION:
    case U_FINAL_PUNCTUATION:
    case U_OTHER_PUNCTUATION:
        return KR_PROP_FREE_PVAL;
    default:
        return KR_PROP_DISALLOWED;
    }
}

/* The algorithm of RFC 8264 §8, in its order. BackwardCompatible is empty. */
static kr_precis_prop derived_property(UChar32 c)
{
    const kr_precis_exception *ex = find_exception(c);
    if (ex)
        return ex->prop;
    int8_t gc = u_charType(c);
    bool nonchar = u_hasBinaryProperty(c, UCHAR_NONCHARACTER_CODE_POINT);
    if (gc == U_UNASSIGNED && !nonchar)
        return KR_PROP_UNASSIGNED;
    if (c >= 0x21 && c <= 0x7E)
        return KR_PROP_PVALID; /* ASCII7 */
    if (u_hasBinaryProperty(c, UCHAR_JOIN_CONTROL))
        return KR_PROP_CONTEXTJ;
    if (is_old_hangul_jamo(c))
        return KR_PROP_DISALLOWED;
    if (nonchar || u_hasBinaryProperty(c, UCHAR_DEFAULT_IGNORABLE_CODE_POINT))
        return KR_PROP_DISALLOWED; /* PrecisIgnorableProperties */
    if (gc == U_CONTROL_CHAR)
        return KR_PROP_DISALLOWED;
    if (has_compat(c))
        return KR_PROP_FREE_PVAL;
    return category_prop(gc);
}

/* ---- Contextual rules (RFC 5892 Appendix A) ----------------------------- */

static bool is_virama(UChar32 c)
{
    return u_getCombiningClass(c) == 9;
}

static int32_t joining_type(UChar32 c)
{
    return u_getIntPropertyValue(c, UCHAR_JOINING_TYPE);
}

static bool script_is(UChar32 c, UScriptCode want)
{
    UErrorCode err = U_ZERO_ERROR;
    return uscript_getScript(c, &err) == want && U_SUCCESS(err);
}

/* A.1: (Joining_Type:{L,D})(Joining_Type:T)* ZWNJ (Joining_Type:T)*(Joining_Type:{R,D}) */
static bool zwnj_joins(const UChar32 *s, int32_t n, int32_t i)
{
    int32_t j = i - 1;
    while (j >= 0 && joining_type(s[j]) == U_JT_TRANSPARENT)
        j--;
    if (j < 0)
        return false;
    int32_t t = joining_type(s[j]);
    if (t != U_JT_LEFT_JOINING && t != U_JT_DUAL_JOINING)
        return false;
    int32_t k = i + 1;
    while (k < n && joining_type(s[k]) == U_JT_TRANSPARENT)
        k++;
    if (k >= n)
        return false;
    t = joining_type(s[k]);
    return t == U_JT_RIGHT_JOINING || t == U_JT_DUAL_JOINING;
}

static bool any_in_range(const UChar32 *s, int32_t n, UChar32 lo, UChar32 hi)
{
    for (int32_t i = 0; i < n; i++)
        if (s[i] >= lo && s[i] <= hi)
            return true;
    return false;
}

static bool any_kana_han(const UChar32 *s, int32_t n)
{
    for (int32_t i = 0; i < n; i++)
        if (script_is(s[i], USCRIPT_HIRAGANA) || script_is(s[i], USCRIPT_KATAKANA) ||
            script_is(s[i], USCRIPT_HAN))
            return true;
    return false;
}

static bool context_ok(const UChar32 *s, int32_t n, int32_t i)
{
    UChar32 c = s[i];
    UChar32 before = i > 0 ? s[i - 1] : -1;
    UChar32 after = i + 1 < n ? s[i + 1] : -1;
    if (c == 0x200C) /* ZERO WIDTH NON-JOINER, A.1 */
        return (before >= 0 && is_virama(before)) || zwnj_joins(s, n, i);
    if (c == 0x200D) /* ZERO WIDTH JOINER, A.2 */
        return before >= 0 && is_virama(before);
    if (c == 0x00B7) /* MIDDLE DOT, A.3 */
        return before == 0x6C && after == 0x6C;
    if (c == 0x0375) /* GREEK LOWER NUMERAL SIGN, A.4 */
        return after >= 0 && script_is(after, USCRIPT_GREEK);
    if (c == 0x05F3 || c == 0x05F4) /* HEBREW GERESH, GERSHAYIM, A.5, A.6 */
        return before >= 0 && script_is(before, USCRIPT_HEBREW);
    if (c == 0x30FB) /* KATAKANA MIDDLE DOT, A.7 */
        return any_kana_han(s, n);
    if (c >= 0x0660 && c <= 0x0669) /* ARABIC-INDIC DIGITS, A.8 */
        return !any_in_range(s, n, 0x06F0, 0x06F9);
    if (c >= 0x06F0 && c <= 0x06F9) /* EXTENDED ARABIC-INDIC DIGITS, A.9 */
        return !any_in_range(s, n, 0x0660, 0x0669);
    return false;
}

/* Behavioral rules of the string class (RFC 8264 §4.2, §4.3). */
static bool string_class_ok(const UChar32 *s, int32_t n, bool freeform)
{
    for (int32_t i = 0; i < n; i++) {
        switch (derived_property(s[i])) {
        case KR_PROP_PVALID:
            break;
        case KR_PROP_FREE_PVAL:
            if (!freeform)
                return false;
            break;
        case KR_PROP_CONTEXTJ:
        case KR_PROP_CONTEXTO:
            if (!context_ok(s, n, i))
                return false;
            break;
        default:
            return false;
        }
    }
    return true;
}

/* ---- Bidi Rule (RFC 5893 §2) -------------------------------------------- */

static bool has_rtl(const UChar32 *s, int32_t n)
{
    for (int32_t i = 0; i < n; i++) {
        UCharDirection d = u_charDirection(s[i]);
        if (d == U_RIGHT_TO_LEFT || d == U_RIGHT_TO_LEFT_ARABIC || d == U_ARABIC_NUMBER)
            return true;
    }
    return false;
}

static bool bidi_allowed(UCharDirection d, bool rtl)
{
    switch (d) {
    case U_EUROPEAN_NUMBER:
    case U_EUROPEAN_NUMBER_SEPARATOR:
    case U_COMMON_NUMBER_SEPARATOR:
    case U_EUROPEAN_NUMBER_TERMINATOR:
    case U_OTHER_NEUTRAL:
    case U_BOUNDARY_NEUTRAL:
    case U_DIR_NON_SPACING_MARK:
        return true; /* conditions 2 and 5 */
    case U_RIGHT_TO_LEFT:
    case U_RIGHT_TO_LEFT_ARABIC:
    case U_ARABIC_NUMBER:
        return rtl;
    case U_LEFT_TO_RIGHT:
        return !rtl;
    default:
        return false;
    }
}

static bool bidi_rule_ok(const UChar32 *s, int32_t n)
{
    UCharDirection first = u_charDirection(s[0]);
    bool rtl = first == U_RIGHT_TO_LEFT || first == U_RIGHT_TO_LEFT_ARABIC;
    if (!rtl && first != U_LEFT_TO_RIGHT)
        return false; /* condition 1 */
    bool en = false, an = false;
    for (int32_t i = 0; i < n; i++) {
        UCharDirection d = u_charDirection(s[i]);
        if (!bidi_allowed(d, rtl))
            return false;
        en = en || d == U_EUROPEAN_NUMBER;
        an = an || d == U_ARABIC_NUMBER;
    }
    if (rtl && en && an)
        return false; /* condition 4 */
    int32_t last = n - 1;
    while (last >= 0 && u_charDirection(s[last]) == U_DIR_NON_SPACING_MARK)
        last--;
    if (last < 0)
        return false;
    UCharDirection d = u_charDirection(s[last]);
    if (rtl) /* condition 3 */
        return d == U_RIGHT_TO_LEFT || d == U_RIGHT_TO_LEFT_ARABIC || d == U_EUROPEAN_NUMBER ||
               d == U_ARABIC_NUMBER;
    return d == U_LEFT_TO_RIGHT || d == U_EUROPEAN_NUMBER; /* condition 6 */
}

/* ---- Profiles, full path ------------------------------------------------ */

/* RFC 7622 §3.3.1: characters a localpart must not contain. */
static bool is_local_forbidden(UChar32 c)
{
    return c == '"' || c == '&' || c == '\'' || c == '/' || c == ':' || c == '<' || c == '>' ||
           c == '@';
}

static bool profile_checks_ok(kr_precis_profile prof, const UChar32 *s, int32_t n)
{
    if (prof == KR_PRECIS_OPAQUE_STRING)
        return string_class_ok(s, n, true);
    if (has_rtl(s, n) && !bidi_rule_ok(s, n))
        return false;
    if (!string_class_ok(s, n, false))
        return false;
    for (int32_t i = 0; i < n; i++)
        if (is_local_forbidden(s[i]))
            return false;
    return true;
}

/* UTF-16 to UTF-8 in the arena, at most max bytes. */
static int ustr_to_arena(kr_arena *a, const kr_ustr *u, size_t max, const char **out)
{
    UErrorCode err = U_ZERO_ERROR;
    int32_t n8 = 0;
    u_strToUTF8(NULL, 0, &n8, u->p, u->len, &err);
    if (err != U_BUFFER_OVERFLOW_ERROR && U_FAILURE(err))
        return KR_EINVAL;
    if ((size_t)n8 > max)
        return KR_EINVAL;
    char *s = kr_arena_alloc(a, (size_t)n8 + 1);
    err = U_ZERO_ERROR;
    u_strToUTF8(s, n8 + 1, NULL, u->p, u->len, &err);
    if (U_FAILURE(err))
        return KR_EINVAL;
    *out = s;
    return 0;
}

static int precis_checks_and_copy(kr_arena *a, kr_precis_profile prof, const kr_ustr *u, size_t max,
                                  const char **out)
{
    UChar32 *cps = kr_xmalloc((size_t)u->len * sizeof(UChar32) + sizeof(UChar32));
    UErrorCode err = U_ZERO_ERROR;
    int32_t n = 0;
    u_strToUTF32(cps, u->len + 1, &n, u->p, u->len, &err);
    int rc = KR_EINVAL;
    if (U_SUCCESS(err) && n > 0 && profile_checks_ok(prof, cps, n))
        rc = ustr_to_arena(a, u, max, out);
    free(cps);
    return rc;
}

static int precis_full(kr_arena *a, kr_precis_profile prof, const char *in, size_t len, size_t max,
                       const char **out)
{
    if (len == 0 || len > KR_JID_RAW_MAX)
        return KR_EINVAL;
    kr_ustr cur = {0}, nxt = {0}, tmp = {0};
    int rc = ustr_from_utf8(&cur, in, len);
    if (!rc)
        rc = precis_map_stable(prof, &cur, &nxt, &tmp);
    if (!rc)
        rc = precis_checks_and_copy(a, prof, &cur, max, out);
    ustr_free(&cur);
    ustr_free(&nxt);
    ustr_free(&tmp);
    return rc;
}

/* ---- Profiles, ASCII fast path ----------------------------------------- */

static bool is_ascii(const char *s, size_t len)
{
    unsigned char acc = 0;
    for (size_t i = 0; i < len; i++)
        acc |= (unsigned char)s[i];
    return acc < 0x80;
}

static char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c;
}

/* UsernameCaseMapped on ASCII: width mapping and NFC change nothing, no RTL,
 * ASCII7 (0x21-0x7E) is PVALID, space is ID_DIS, controls DISALLOWED. */
static int local_ascii(kr_arena *a, const char *in, size_t len, const char **out)
{
    if (len == 0 || len > KR_JID_PART_MAX)
        return KR_EINVAL;
    for (size_t i = 0; i < len; i++)
        if (in[i] < 0x21 || in[i] > 0x7E || is_local_forbidden(in[i]))
            return KR_EINVAL;
    char *s = kr_arena_alloc(a, len + 1);
    for (size_t i = 0; i < len; i++)
        s[i] = ascii_lower(in[i]);
    s[len] = '\0';
    *out = s;
    return 0;
}

/* OpaqueString on ASCII: no mapping applies; space is FREE_PVAL, controls
 * DISALLOWED. */
static int opaque_ascii(kr_arena *a, const char *in, size_t len, size_t max, const char **out)
{
    if (len == 0 || len > max)
        return KR_EINVAL;
    for (size_t i = 0; i < len; i++)
        if (in[i] < 0x20 || in[i] > 0x7E)
            return KR_EINVAL;
    *out = kr_arena_strndup(a, in, len);
    return 0;
}

/* ---- Domain (RFC 7622 §3.2) --------------------------------------------- */

static bool is_ldh(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* One label of a lower-cased A-label-form domain: an NR-LDH label or an
 * XN-label (RFC 5890 §2.3.1), 1 to 63 octets, no hyphen at either end. */
static bool alabel_ok(const char *l, size_t n)
{
    if (n == 0 || n > KR_DNS_LABEL_MAX || l[0] == '-' || l[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_ldh(l[i]))
            return false;
    if (n >= 4 && l[2] == '-' && l[3] == '-' && !(l[0] == 'x' && l[1] == 'n'))
        return false; /* reserved LDH label that is not an XN-label */
    return true;
}

static bool alabels_ok(const char *s, size_t n)
{
    const char *end = s + n;
    for (;;) {
        const char *dot = memchr(s, '.', (size_t)(end - s));
        const char *stop = dot ? dot : end;
        if (!alabel_ok(s, (size_t)(stop - s)))
            return false;
        if (!dot)
            return true;
        s = dot + 1;
    }
}

static bool has_xn_label(const char *s, size_t n)
{
    for (size_t i = 0; i + 4 <= n; i++) {
        if ((i == 0 || s[i - 1] == '.') && ascii_lower(s[i]) == 'x' &&
            ascii_lower(s[i + 1]) == 'n' && s[i + 2] == '-' && s[i + 3] == '-')
            return true;
    }
    return false;
}

/* IP literal (RFC 7622 §3.2.1, RFC 3986 §3.2.2): dotted IPv4 or bracketed
 * IPv6, rewritten in the canonical text form of inet_ntop so equal addresses
 * compare equal. Returns 1 when in is not an IP literal. */
static int domain_ip(kr_arena *a, const char *in, size_t len, const char **out)
{
    char tmp[INET6_ADDRSTRLEN + 2];
    unsigned char bin[sizeof(struct in6_addr)];
    char text[INET6_ADDRSTRLEN];
    if (in[0] == '[') {
        if (len < 3 || in[len - 1] != ']' || len - 2 >= sizeof tmp)
            return KR_EINVAL;
        memcpy(tmp, in + 1, len - 2);
        tmp[len - 2] = '\0';
        if (inet_pton(AF_INET6, tmp, bin) != 1 || !inet_ntop(AF_INET6, bin, text, sizeof text))
            return KR_EINVAL;
        *out = kr_arena_printf(a, "[%s]", text);
        return 0;
    }
    if (len >= sizeof tmp)
        return 1;
    memcpy(tmp, in, len);
    tmp[len] = '\0';
    if (inet_pton(AF_INET, tmp, bin) != 1 || !inet_ntop(AF_INET, bin, text, sizeof text))
        return 1;
    *out = kr_arena_strdup(a, text);
    return 0;
}

/* ASCII domain without XN-labels: IDNA2008 (with UTS #46 mapping) leaves it
 * lower-cased and otherwise unchanged, so only the label rules remain. */
static int domain_ascii(kr_arena *a, const char *in, size_t len, const char **out)
{
    if (len > KR_JID_PART_MAX)
        return KR_EINVAL;
    char low[KR_JID_PART_MAX + 1];
    for (size_t i = 0; i < len; i++)
        low[i] = ascii_lower(in[i]);
    if (!alabels_ok(low, len))
        return KR_EINVAL;
    *out = kr_arena_strndup(a, low, len);
    return 0;
}

/* One dot-separated piece through libidn2: to A-labels (which checks the
 * IDNA2008 rules and UTS #46 mapping), back to U-labels, and to A-labels once
 * more to make sure the U-label form is canonical. Appends the U-label form. */
static int domain_idna_piece(const char *piece, kr_buf *dst)
{
    char *alabel = NULL, *ulabel = NULL, *again = NULL;
    int rc = KR_EINVAL;
    if (idn2_to_ascii_8z(piece, &alabel, KR_IDN2_FLAGS) != IDN2_OK)
        goto out;
    for (char *p = alabel; *p; p++)
        *p = ascii_lower(*p);
    if (!alabels_ok(alabel, strlen(alabel)))
        goto out;
    if (idn2_to_unicode_8z8z(alabel, &ulabel, 0) != IDN2_OK)
        goto out;
    for (char *p = ulabel; *p; p++)
        *p = ascii_lower(*p);
    if (idn2_to_ascii_8z(ulabel, &again, KR_IDN2_FLAGS) != IDN2_OK || strcmp(again, alabel) != 0)
        goto out;
    if (dst->len)
        kr_buf_append(dst, ".", 1);
    kr_buf_puts(dst, ulabel);
    rc = 0;
out:
    idn2_free(alabel);
    idn2_free(ulabel);
    idn2_free(again);
    return rc;
}

/* Label by label, so that the 1023-byte limit of RFC 7622 applies to the whole
 * rather than libidn2's DNS limit of 255. */
static int domain_idna(kr_arena *a, const char *in, size_t len, const char **out)
{
    kr_buf dst = KR_BUF_INIT;
    const char *p = in, *end = in + len;
    int rc = 0;
    while (!rc) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        const char *stop = dot ? dot : end;
        if (stop == p) {
            rc = KR_EINVAL;
            break;
        }
        char *piece = kr_xstrndup(p, (size_t)(stop - p));
        rc = domain_idna_piece(piece, &dst);
        free(piece);
        if (!dot)
            break;
        p = dot + 1;
    }
    if (!rc && dst.len > KR_JID_PART_MAX)
        rc = KR_EINVAL;
    if (!rc)
        *out = kr_arena_strndup(a, dst.data, dst.len);
    kr_buf_clear(&dst);
    return rc;
}

static int domain_prep(kr_arena *a, const char *in, size_t len, bool fast, const char **out)
{
    if (len > 0 && in[len - 1] == '.')
        len--; /* RFC 7622 §3.2: strip one trailing dot before anything else */
    if (len == 0 || len > KR_JID_RAW_MAX || memchr(in, '\0', len))
        return KR_EINVAL;
    int rc = domain_ip(a, in, len, out);
    if (rc <= 0)
        return rc;
    if (fast && is_ascii(in, len) && !has_xn_label(in, len))
        return domain_ascii(a, in, len, out);
    return domain_idna(a, in, len, out);
}

/* ---- Public interface --------------------------------------------------- */

int kr_jid_prep_local(kr_arena *a, const char *in, size_t len, const char **out)
{
    if (is_ascii(in, len))
        return local_ascii(a, in, len, out);
    return precis_full(a, KR_PRECIS_USERNAME_CASE_MAPPED, in, len, KR_JID_PART_MAX, out);
}

int kr_jid_prep_domain(kr_arena *a, const char *in, size_t len, const char **out)
{
    return domain_prep(a, in, len, true, out);
}

int kr_jid_prep_resource(kr_arena *a, const char *in, size_t len, const char **out)
{
    if (is_ascii(in, len))
        return opaque_ascii(a, in, len, KR_JID_PART_MAX, out);
    return precis_full(a, KR_PRECIS_OPAQUE_STRING, in, len, KR_JID_PART_MAX, out);
}

int kr_precis_opaque(kr_arena *a, const char *in, size_t len, const char **out)
{
    if (is_ascii(in, len))
        return opaque_ascii(a, in, len, KR_JID_RAW_MAX, out);
    return precis_full(a, KR_PRECIS_OPAQUE_STRING, in, len, SIZE_MAX, out);
}

int kr_jid_prep_full(kr_arena *a, kr_jid_part part, const char *in, size_t len, const char **out)
{
    switch (part) {
    case KR_JID_LOCAL:
        return precis_full(a, KR_PRECIS_USERNAME_CASE_MAPPED, in, len, KR_JID_PART_MAX, out);
    case KR_JID_DOMAIN:
        return domain_prep(a, in, len, false, out);
    case KR_JID_RESOURCE:
        return precis_full(a, KR_PRECIS_OPAQUE_STRING, in, len, KR_JID_PART_MAX, out);
    case KR_JID_PASSWORD:
        return precis_full(a, KR_PRECIS_OPAQUE_STRING, in, len, SIZE_MAX, out);
    }
    return KR_EINVAL;
}

int kr_jid_parse(kr_arena *a, const char *s, kr_jid *out)
{
    if (!s || !*s)
        return KR_EINVAL;
    size_t n = strlen(s);
    const char *slash = memchr(s, '/', n);
    size_t bare = slash ? (size_t)(slash - s) : n;
    const char *at = memchr(s, '@', bare);
    const char *dom = at ? at + 1 : s;
    kr_jid j = {NULL, NULL, NULL};
    if (kr_jid_prep_domain(a, dom, (size_t)(s + bare - dom), &j.domain))
        return KR_EINVAL;
    if (at && kr_jid_prep_local(a, s, (size_t)(at - s), &j.local))
        return KR_EINVAL;
    if (slash && kr_jid_prep_resource(a, slash + 1, n - bare - 1, &j.resource))
        return KR_EINVAL;
    *out = j;
    return 0;
}

static char *append(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

static const char *format(kr_arena *a, const kr_jid *j, bool full)
{
    size_t ll = j->local ? strlen(j->local) : 0;
    size_t dl = strlen(j->domain);
    size_t rl = full && j->resource ? strlen(j->resource) : 0;
    char *s = kr_arena_alloc(a, ll + dl + rl + 3);
    char *p = s;
    if (j->local) {
        p = append(p, j->local, ll);
        *p++ = '@';
    }
    p = append(p, j->domain, dl);
    if (full && j->resource) {
        *p++ = '/';
        p = append(p, j->resource, rl);
    }
    *p = '\0';
    return s;
}

int kr_jid_parse_keep(const char *s, kr_jid *out, char **mem)
{
    *mem = NULL;
    kr_arena *a = kr_arena_new(256);
    kr_jid j;
    int rc = kr_jid_parse(a, s, &j);
    if (rc == 0) {
        size_t nl = j.local ? strlen(j.local) + 1 : 0, nd = strlen(j.domain) + 1,
               nr = j.resource ? strlen(j.resource) + 1 : 0;
        char *m = kr_xmalloc(nl + nd + nr);
        if (j.local)
            memcpy(m, j.local, nl);
        memcpy(m + nl, j.domain, nd);
        if (j.resource)
            memcpy(m + nl + nd, j.resource, nr);
        *out = (kr_jid){.local = j.local ? m : NULL, .domain = m + nl,
                        .resource = j.resource ? m + nl + nd : NULL};
        *mem = m;
    }
    kr_arena_free(a);
    return rc;
}

const char *kr_jid_format(kr_arena *a, const kr_jid *j)
{
    return format(a, j, true);
}

const char *kr_jid_format_bare(kr_arena *a, const kr_jid *j)
{
    return format(a, j, false);
}

static bool part_equal(const char *x, const char *y)
{
    if (!x || !y)
        return x == y;
    return strcmp(x, y) == 0;
}

bool kr_jid_bare_equal(const kr_jid *x, const kr_jid *y)
{
    return part_equal(x->local, y->local) && part_equal(x->domain, y->domain);
}

bool kr_jid_equal(const kr_jid *x, const kr_jid *y)
{
    return kr_jid_bare_equal(x, y) && part_equal(x->resource, y->resource);
}
