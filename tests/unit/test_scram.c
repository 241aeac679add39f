/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Unit tests of src/sasl/scram.c: the RFC 5802 §5 (SHA-1) and RFC 7677 §3 (SHA-256) example
 * exchanges byte for byte on both sides, strict parsing of every message (RFC 5802 §7),
 * channel binding negotiation and verification (RFC 5802 §6, RFC 9266, RFC 5929), robustness
 * against calls out of order, fake credentials for unknown users, PLAIN checking against
 * stored credentials, the client's SaltedPassword cache, and random round trips.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/base64.h"
#include "core/buf.h"
#include "core/error.h"
#include "sasl/scram.h"

/* RFC 5802 §5 */
#define V1_CFIRST "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"
#define V1_SNONCE "3rfcNHYJY1ZVvWVs7j"
#define V1_CNONCE "fyko+d2lbbFgONRv9qkxdawL"
#define V1_SALT "QSXCR+Q6sek8bf92"
#define V1_SFIRST "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
#define V1_CFINAL                                                                                  \
    "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
#define V1_SFINAL "v=rmF9pqV8S7suAoZWja4dJRkFsKQ="

/* RFC 7677 §3 */
#define V256_CFIRST "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
#define V256_SNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define V256_CNONCE "rOprNGfwEbeRWgbNEkqO"
#define V256_SALT "W22ZaJ0SNY7soEsUEjb6gQ=="
#define V256_SFIRST                                                                                \
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define V256_CFINAL                                                                                \
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"                                 \
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define V256_SFINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

static const unsigned char test_secret[] = "server secret for fake credentials";

static void creds_from_b64_salt(kr_scram_hash h, const char *password, const char *salt_b64,
                                unsigned iterations, kr_scram_creds *out)
{
    kr_buf salt = KR_BUF_INIT;
    assert_int_equal(kr_base64_decode(&salt, salt_b64, strlen(salt_b64)), 0);
    kr_scram_creds_derive(h, password, strlen(password), (unsigned char *)salt.data, salt.len,
                          iterations, out);
    kr_buf_clear(&salt);
}

/* Fill cb with distinct, recognisable data for every binding type. */
static void cb_fill(kr_scram_cb_data *cb, unsigned char seed)
{
    memset(cb, 0, sizeof *cb);
    for (size_t i = 0; i < sizeof cb->tls_exporter; i++)
        cb->tls_exporter[i] = (unsigned char)(seed + i);
    cb->tls_exporter_len = 32;
    for (size_t i = 0; i < sizeof cb->tls_server_end_point; i++)
        cb->tls_server_end_point[i] = (unsigned char)(seed * 3 + i);
    cb->tls_server_end_point_len = 32;
    for (size_t i = 0; i < sizeof cb->tls_unique; i++)
        cb->tls_unique[i] = (unsigned char)(seed * 7 + i);
    cb->tls_unique_len = 12;
}

static kr_scram_status server_first_step(kr_scram_server *s, const char *msg)
{
    return kr_scram_server_client_first(s, msg, strlen(msg));
}

/* A SHA-256 server exchange that has sent server-first for user "user" / "pencil". */
static kr_scram_server *challenged_server(kr_scram_creds *creds)
{
    creds_from_b64_salt(KR_SCRAM_SHA256, "pencil", V256_SALT, 4096, creds);
    kr_scram_server *s = kr_scram_server_new(KR_SCRAM_SHA256, false, false, NULL, V256_SNONCE);
    assert_int_equal(server_first_step(s, V256_CFIRST), KR_SCRAM_CONTINUE);
    kr_buf out = KR_BUF_INIT;
    assert_int_equal(kr_scram_server_server_first(s, creds, &out), KR_SCRAM_CONTINUE);
    assert_string_equal(out.data, V256_SFIRST);
    kr_buf_clear(&out);
    return s;
}

/* Runs a whole exchange between our client and our server; returns the server's verdict on
 * client-final and (through client_rc) the client's verdict on server-final. */
static kr_scram_status run_exchange(kr_scram_server *s, kr_scram_client *c, const char *password,
                                    const kr_scram_creds *creds, int *client_rc)
{
    kr_buf m = KR_BUF_INIT, reply = KR_BUF_INIT;
    *client_rc = KR_EAUTH;
    kr_scram_client_first(c, &m);
    kr_scram_status st = kr_scram_server_client_first(s, m.data, m.len);
    if (st != KR_SCRAM_CONTINUE)
        goto out;
    st = kr_scram_server_server_first(s, creds, &reply);
    assert_int_equal(st, KR_SCRAM_CONTINUE);
    m.len = 0;
    assert_int_equal(kr_scram_client_final(c, reply.data, reply.len, password, NULL, &m), 0);
    reply.len = 0;
    st = kr_scram_server_client_final(s, m.data, m.len, &reply);
    if (st == KR_SCRAM_SUCCESS)
        *client_rc = kr_scram_client_verify(c, reply.data, reply.len);
out:
    kr_buf_clear(&m);
    kr_buf_clear(&reply);
    return st;
}

/* ---- RFC vectors -------------------------------------------------------------------------- */

static void rfc5802_sha1_vector_server_side(void **state)
{
    kr_scram_creds creds;
    creds_from_b64_salt(KR_SCRAM_SHA1, "pencil", V1_SALT, 4096, &creds);
    kr_scram_server *s = kr_scram_server_new(KR_SCRAM_SHA1, false, false, NULL, V1_SNONCE);
    assert_int_equal(server_first_step(s, V1_CFIRST), KR_SCRAM_CONTINUE);
    assert_string_equal(kr_scram_server_username(s), "user");
    assert_null(kr_scram_server_authzid(s));
    assert_null(kr_scram_server_cb_type(s));

    kr_buf out = KR_BUF_INIT;
    assert_int_equal(kr_scram_server_server_first(s, &creds, &out), KR_SCRAM_CONTINUE);
    assert_string_equal(out.data, V1_SFIRST);
    out.len = 0;
    assert_int_equal(kr_scram_server_client_final(s, V1_CFINAL, strlen(V1_CFINAL), &out),
                     KR_SCRAM_SUCCESS);
    assert_string_equal(out.data, V1_SFINAL);
    assert_null(kr_scram_server_error(s));
    kr_buf_clear(&out);
    kr_scram_server_free(s);
}

static void rfc5802_sha1_vector_client_side(void **state)
{
    kr_scram_client *c = kr_scram_client_new(KR_SCRAM_SHA1, "user", NULL, NULL, NULL, 0, V1_CNONCE);
    kr_buf out = KR_BUF_INIT;
    kr_scram_client_first(c, &out);
    assert_string_equal(out.data, V1_CFIRST);
    out.len = 0;
    assert_int_equal(kr_scram_client_final(c, V1_SFIRST, strlen(V1_SFIRST), "pencil", NULL, &out),
                     0);
    assert_string_equal(out.data, V1_CFINAL);
    assert_int_equal(kr_scram_client_verify(c, V1_SFINAL, strlen(V1_SFINAL)), 0);
    kr_buf_clear(&out);
    kr_scram_client_free(c);
}

static void rfc7677_sha256_vector_server_side(void **state)
{
    kr_scram_creds creds;
    kr_scram_server *s = challenged_server(&creds);
    kr_buf out = KR_BUF_INIT;
    assert_int_equal(kr_scram_server_client_final(s, V256_CFINAL, strlen(V256_CFINAL), &out),
                     KR_SCRAM_SUCCESS);
    assert_string_equal(out.data, V256_SFINAL);
    kr_buf_clear(&out);
    kr_scram_server_free(s);
}

static void rfc7677_sha256_vector_client_side(void **state)
{
    kr_scram_client *c =
        kr_scram_client_new(KR_SCRAM_SHA256, "user", NULL, NULL, NULL, 0, V256_CNONCE);
    kr_buf out = KR_BUF_INIT;
    kr_scram_client_first(c, &out);
    assert_string_equal(out.data, V256_CFIRST);
    out.len = 0;
    assert_int_equal(
        kr_scram_client_final(c, V256_SFIRST, strlen(V256_SFIRST), "pencil", NULL, &out), 0);
    assert_string_equal(out.data, V256_CFINAL);
    assert_int_equal(kr_scram_client_verify(c, V256_SFINAL, strlen(V256_SFINAL)), 0);
    kr_buf_clear(&out);
    kr_scram_client_free(c);
}

/* ---- authentication failures -------------------------------------------------------------- */

static void wrong_password_is_not_authorized(void **state)
{
    kr_scram_creds creds;
    kr_scram_creds_new(KR_SCRAM_SHA256, "pencil", 6, 4096, &creds);
    kr_scram_server *s = kr_scram_server_new(KR_SCRAM_SHA256, false, false, NULL, NULL);
    kr_scram_client *c = kr_scram_client_new(KR_SCRAM_SHA256, "user", NULL, NULL, NULL, 0, NULL);
    int crc;
    assert_int_equal(run_exchange(s, c, "crayon", &creds, &crc), KR_SCRAM_NOT_AUTHORIZED);
    assert_string_equal(kr_scram_server_error(s), "invalid-proof");
    kr_scram_client_free(c);
    kr_scram_server_free(s);
}

static void tampered_nonce_is_not_authorized(void **state)
{
    /* The RFC 7677 client-final with one character of the server's nonce part changed. */
    static const char msg[] = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k1,"
                              "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    kr_scram_creds creds;
    kr_scram_server *s = challenged_server(&creds);
    kr_buf out = KR_BUF_INIT;
    assert_int_equal(kr_scram_server_client_final(s, msg, strlen(msg), &out),
                     KR_SCRAM_NOT_AUTHORIZED);
    assert_int_equal(out.len, 0);
    /* refused for the nonce itself, before the proof is looked at */
    assert_string_equal(kr_scram_server_error(s), "other-error");
    kr_buf_clear(&out);
    kr_scram_server_free(s);
}

static void tampered_proof_is_not_authorized(void **state)
{
    static const char msg[] = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                              "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVU=";
    kr_scram_creds creds;
    kr_scram_server *s = challenged_server(&creds);
    kr_buf out = KR_BUF_INIT;
    assert_int_equal(kr_scram_server_client_final(s, msg, strlen(msg), &out),
                     KR_SCRAM_NOT_AUTHORIZED);
    kr_buf_clear(&out);
    kr_scram_server_free(s);
}

static void client_first_with_tampered_gs2_in_final_is_not_authorized(void **state)
{
    /* c= must be base64("n,,"); "eSws" is base64("y,,"). */
    static const char msg[] = "c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                              "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    kr_scram_creds creds;
    kr_scram_server *s = challenged_server(&creds);
    kr_buf out = KR_BUF_INIT;
    assert_int_equal(kr_scram_server_client_final(s, msg, strlen(msg), &out),
                     KR_SCRAM_NOT_AUTHORIZED);
    assert_string_equal(kr_scram_server_error(s), "channel-bindings-dont-match");
    kr_buf_clear(&out);
    kr_scram_server_free(s);
}

/* ---- strict parsing ----------------------------------------------------------------------- */

static void malformed_client_first_messages_are_rejected(void **state)
{
    static const char *const bad[] = {
        "",                           /* empty */
        "n",                          /* no header end */
        "n,,",                        /* no bare message */
        "n,,n=user",                  /* no nonce */
        "n,,r=abc",                   /* no username */
        "n,,r=abc,n=user",            /* wrong order */
        "x,,n=user,r=abc",            /* unknown flag */
        "nn,,n=user,r=abc",           /* flag too long */
        "p=,,n=user,r=abc",           /* empty cb-name */
        "p=tls_unique,,n=user,r=abc", /* '_' is not a cb-name character */
        "n,b=x,n=user,r=abc",         /* not an authzid */
        "n,a=,n=user,r=abc",          /* empty authzid */
        "n,a=x=41,n=user,r=abc",      /* bad escape in authzid */
        "n,,n=,r=abc",                /* empty username */
        "n,,n=us=2Xer,r=abc",         /* bad escape */
        "n,,n=user=,r=abc",           /* truncated escape */
        "n,,n=user=3,r=abc",          /* truncated escape */
        "n,,n=\xff\xfe,r=abc",        /* not UTF-8 */
        "n,,n=\xc0\xaf,r=abc",        /* overlong UTF-8 */
        "n,,n=\xed\xa0\x80,r=abc",    /* surrogate */
        "n,,m=ext,n=user,r=abc",      /* reserved mandatory extension */
        "n,,n=user,r=",               /* empty nonce */
        "n,,n=user,r=ab\x7f",         /* nonce not printable */
        "n,,n=user,r=ab c",           /* nonce with a space */
        "n,,n=user,r=abc,",           /* empty extension */
        "n,,n=user,r=abc,x",          /* extension without value */
        "n,,n=user,r=abc,x=",         /* extension with empty value */
        "n,,n=user,r=abc,1=y",        /* extension name not ALPHA */
        "n,,N=user,r=abc",            /* attribute names are case-sensitive */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kr_scram_server *s = kr_scram_server_new(KR_SCRAM_SHA1, false, false, NULL, NULL);
        kr_scram_status st = server_first_step(s, bad[i]);
        if (st != KR_SCRAM_MALFORMED)
            fail_msg("accepted malformed client-first #%zu: %s", i, bad[i]);
        assert_non_null(kr_scram_server_error(s));
        kr_scram_server_free(s);
    }
}

static void client_first_with_nul_byte_is_malformed(void **state)
{
    static const char msg[] = "n,,n=us\0er,r=abc";
    kr_scram_server *s = kr_scram_server_new(KR_SCRAM_SHA1, false, false, NULL, NULL);
    assert_int_equal(kr_scram_server_client_first(s, msg, sizeof msg - 1), KR_SCRAM_MALFORMED);
    kr_scram_server_free(s);
}

static void reserved_mext_reports_extensions_not_supported(void **state)
{
    kr_scram_server *s = kr_scram_server_new(KR_SCRAM_SHA1, false, false, NULL, NULL);
    assert_int_equal(server_first_step(s, "n,,m=ext,n=user,r=abc"), KR_SCRAM_MALFORMED);
    assert_string_equal(kr_scram_server_error(s), "extensions-not-supported");
    kr_scram_server_free(s);
}

static void overlong_messages_are_malformed(void **state)
{
    /* A nonce that makes the message one byte longer than the limit. */
    kr_buf msg = KR_BUF_INIT;
    kr_buf_puts(&msg, "n,,n=user,r=");
    while (msg.len < KR_SCRAM_MAX_MESSAGE + 1)
        kr_buf_puts(&msg, "a");
    kr_scram_server *s = kr_scram_server_new(KR_SCRAM_SHA1, false, false, NULL, NULL);
    assert_int_equal(kr_scram_server_client_first(s, msg.data, msg.len), KR_SCRAM_MALFORMED);
    kr_scram_server_free(s);

    /* Exactly at the limit is accepted. */
    s = kr_scram_server_new(KR_SCRAM_SHA1, false, false, NULL, NULL);
    assert_int_equal(kr_scram_server_client_first(s, msg.data, KR_SCRAM_MAX_MESSAGE),
                     KR_SCRAM_CONTINUE);
    kr_scram_server_free(s);

    /* Overlong client-final. */
    kr_scram_creds creds;
    s = challenged_server(&creds);
    msg.len = 0;
    kr_buf_puts(&msg, "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,x=");
    while (msg.len < KR_SCRAM_MAX_MESSAGE)
        kr_buf_puts(&msg, "y");
    kr_buf_puts(&msg, ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
    kr_buf out = KR_BUF_INIT;
    assert_int_equal(kr_scram_server_client_final(s, msg.data, msg.len, &out), KR_SCRAM_MALFORMED);
    kr_buf_clear(&out);
    kr_scram_server_free(s);
    kr_buf_clear(&msg);
}

static void username_length_is_bounded(void **state)
{
    kr_buf msg = KR_BUF_INIT;
    kr_buf_puts(&msg, "n,,n=");
    for (int i = 0; i < KR_SCRAM_MAX_USERNAME; i++)
        kr_buf_puts(&msg, "u");
    kr_buf_puts(&msg, ",r=abc");
    kr_scram_server *s = kr_scram_server_new(KR_SCRAM_SHA1, false, false, NULL, NULL);
    assert_int_equal(kr_scram_server_client_first(s, msg.data, msg.len), KR_SCRAM_CONTINUE);
    assert_int_equal(strlen(kr_scram_server_username(s)), KR_SCRAM_MAX_USERNAME);
    kr_scram_server_free(s);

    msg.len = 0;
    kr_buf_puts(&msg, "n,,n=");
    for (int i = 0; i < KR_SCRAM_MAX_USERNAME + 1; i++)
        kr_buf_puts(&msg, "u");
    kr_buf_puts(&msg, ",r=abc");
    s = kr_scram_server_new(KR_SCRAM_SHA1, false, false, NULL, NULL);
    assert_int_equal(kr_scram_server_client_first(s, msg.data, msg.len), KR_SCRAM_MALFORMED);
    kr_scram_server_free(s);
    kr_buf_clear(&msg);
}

static void saslname_escapes_are_decoded(void **state)
{
    kr_scram_server *s = kr_scram_server_new(KR_SCRAM_SHA1, false, false, NULL, NULL);
    assert_int_equal(server_first_step(s, "n,a=adm=2Cin=3D1,n=a=2Cb=3Dc=2cd=3de\xc3\xa9,r=abc,"
                                          "x=ext=ok"),
                     KR_SCRAM_CONTINUE);
    assert_string_equal(kr_scram_server_username(s), "a,b=c,d=e\xc3\xa9");
    assert_string_equal(kr_scram_server_authzid(s), "adm,in=1");
    kr_scram_server_free(s);
}

static void client_escapes_username_and_authzid(void **state)
{
    kr_scram_client *c =
        kr_scram_client_new(KR_SCRAM_SHA1, "a,b=c", "x=y,z", NULL, NULL, 0, "nonce");
    kr_buf out = KR_BUF_INIT;
    kr_scram_client_first(c, &out);
    assert_string_equal(out.data, "n,a=x=3Dy=2Cz,n=a=2Cb=3Dc,r=nonce");
    kr_buf_clear(&out);
    kr_scram_client_free(c);
}

static void malformed_client_final_messages_are_rejected(void **state)
{
#define R "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define P "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    static const char *const bad[] = {
        "",
        "c=biws",
        "c=biws," R,                                                   /* no proof */
        R ",c=biws," P,                                                /* wrong order */
        "c=biws," P,                                                   /* no nonce */
        "c=biws," R "," P ",x=1",                                      /* proof not last */
        "c=biw," R "," P,                                              /* bad base64 in c= */
        "c=biws," R ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ",  /* unpadded proof */
        "c=biws," R ",p=dHzbZapWIk4jUhN+Ute9yt g9zjfMHgsqmmiz7AndVQ=", /* space in proof */
        "c=biws," R ",," P,                                            /* empty extension */
        "c=biws,r=," P,                                                /* empty nonce */
    };
#undef R
#undef P
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kr_scram_creds creds;
        kr_scram_server *s = challenged_server(&creds);
        kr_buf out = KR_BUF_INIT;
        kr_scram_status st = kr_scram_server_client_final(s, bad[i], strlen(bad[i]), &out);
        if (st != KR_SCRAM_MALFORMED)
            fail_msg("accepted malformed client-final #%zu: %s", i, bad[i]);
        assert_int_equal(out.len, 0);
        kr_buf_clear(&out);
        kr_scram_server_free(s);
    }
}

static void client_final_with_extension_before_proof_is_checked_normally(void **state)
{
    /* An extension changes AuthMessage, so the RFC proof no longer verifies: NOT_AUTHORIZED
     * (not MALFORMED) shows the extension was parsed and included. */
    static const char msg[] = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,x=1,"
                              "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    kr_scram_creds creds;
    kr_scram_server *s = challenged_server(&creds);
    kr_buf out = KR_BUF_INIT;
    assert_int_equal(kr_scram_server_client_final(s, msg, strlen(msg), &out),
                     KR_SCRAM_NOT_AUTHORIZED);
    kr_buf_clear(&out);
    kr_scram_server_free(s);
}

static void proof_of_wrong_length_is_not_authorized(void **state)
{
    /* Well-formed base64, but a SHA-1 sized and an empty proof in a SHA-256 exchange. */
    static const char *const msgs[] = {
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=",
    };
    for (size_t i = 0; i < 2; i++) {
        kr_scram_creds creds;
        kr_scram_server *s = challenged_server(&creds);
        kr_buf out = KR_BUF_INIT;
        assert_int_equal(kr_scram_server_client_final(s, msgs[i], strlen(msgs[i]), &out),
                         KR_SCRAM_NOT_AUTHORIZED);
        assert_string_equal(kr_scram_server_error(s), "invalid-proof");
        kr_buf_clear(&out);
        kr_scram_server_free(s);
    }
}

/* ---- state machine ------------------------------------------------------------------------ */

static void server_steps_out_of_order_are_malformed(void **state)
{
    kr_scram_creds creds;
    creds_from_b64_salt(KR_SCRAM_SHA1, "pencil", V1_SALT, 4096, &creds);
    kr_buf out = KR_BUF_INIT;

    /* client-final first */
    kr_scram_server *s = kr_scram_server_new(KR_SCRAM_SHA1, false, false, NULL, V1_SNONCE);
    assert_null(kr_scram_server_username(s));
    assert_null(kr_scram_server_error(s));
    assert_int_equal(kr_scram_server_client_final(s, V1_CFINAL, strlen(V1_CFINAL), &out),
                     KR_SCRAM_MALFORMED);
    /* ... and the exchange stays failed even when the right messages follow */
    assert_int_equal(server_first_step(s, V1_CFIRST), KR_SCRAM_MALFORMED);
    assert_int_equal(kr_scram_server_server_first(s, &creds, &out), KR_SCRAM_MALFORMED);
    assert_int_equal(out.len, 0);
    kr_scram_server_free(s);

    /* server-first before client-first */
    s = kr_scram_server_new(KR_SCRAM_SHA1, false, false, NULL, V1_SNONCE);
    assert_int_equal(kr_scram_server_server_first(s, &creds, &out), KR_SCRAM_MALFORMED);
    assert_int_equal(out.len, 0);
    kr_scram_server_free(s);

    /* client-first twice */
    s = kr_scram_server_new(KR_SCRAM_SHA1, false, false, NULL, V1_SNONCE);
    assert_int_equal(server_first_step(s, V1_CFIRST), KR_SCRAM_CONTINUE);
    assert_int_equal(server_first_step(s, V1_CFIRST), KR_SCRAM_MALFORMED);
    kr_scram_server_free(s);

    /* client-final before server-first */
    s = kr_scram_server_new(KR_SCRAM_SHA1, false, false, NULL, V1_SNONCE);
    assert_int_equal(server_first_step(s, V1_CFIRST), KR_SCRAM_CONTINUE);
    assert_int_equal(kr_scram_server_client_final(s, V1_CFINAL, strlen(V1_CFINAL), &out),
                     KR_SCRAM_MALFORMED);
    kr_scram_server_free(s);

    /* server-first twice; anything after success */
    s = kr_scram_server_new(KR_SCRAM_SHA1, false, false, NULL, V1_SNONCE);
    assert_int_equal(server_first_step(s, V1_CFIRST), KR_SCRAM_CONTINUE);
    assert_int_equal(kr_scram_server_server_first(s, &creds, &out), KR_SCRAM_CONTINUE);
    out.len = 0;
    assert_int_equal(kr_scram_server_server_first(s, &creds, &out), KR_SCRAM_MALFORMED);
    assert_int_equal(out.len, 0);
    kr_scram_server_free(s);

    s = kr_scram_server_new(KR_SCRAM_SHA1, false, false, NULL, V1_SNONCE);
    assert_int_equal(server_first_step(s, V1_CFIRST), KR_SCRAM_CONTINUE);
    assert_int_equal(kr_scram_server_server_first(s, &creds, &out), KR_SCRAM_CONTINUE);
    out.len = 0;
    assert_int_equal(kr_scram_server_client_final(s, V1_CFINAL, strlen(V1_CFINAL), &out),
                     KR_SCRAM_SUCCESS);
    assert_int_equal(kr_scram_server_client_final(s, V1_CFINAL, strlen(V1_CFINAL), &out),
                     KR_SCRAM_MALFORMED);
    kr_scram_server_free(s);

    /* after a failure, the correct client-final is refused */
    s = kr_scram_server_new(KR_SCRAM_SHA1, false, false, NULL, V1_SNONCE);
    assert_int_equal(server_first_step(s, V1_CFIRST), KR_SCRAM_CONTINUE);
    assert_int_equal(kr_scram_server_server_first(s, &creds, &out), KR_SCRAM_CONTINUE);
    assert_int_equal(kr_scram_server_client_final(s, "c=biws", 6, &out), KR_SCRAM_MALFORMED);
    out.len = 0;
    assert_int_equal(kr_scram_server_client_final(s, V1_CFINAL, strlen(V1_CFINAL), &out),
                     KR_SCRAM_MALFORMED);
    assert_int_equal(out.len, 0);
    kr_scram_server_free(s);

    kr_scram_server_free(NULL);
    kr_buf_clear(&out);
}

static void client_steps_out_of_order_fail(void **state)
{
    kr_buf out = KR_BUF_INIT;
    kr_scram_client *c = kr_scram_client_new(KR_SCRAM_SHA1, "user", NULL, NULL, NULL, 0, V1_CNONCE);
    assert_int_equal(kr_scram_client_verify(c, V1_SFINAL, strlen(V1_SFINAL)), KR_EAUTH);
    assert_int_equal(kr_scram_client_final(c, V1_SFIRST, strlen(V1_SFIRST), "pencil", NULL, &out),
                     KR_EINVAL);
    assert_int_equal(out.len, 0);
    kr_scram_client_first(c, &out);
    out.len = 0;
    assert_int_equal(kr_scram_client_final(c, V1_SFIRST, strlen(V1_SFIRST), "pencil", NULL, &out),
                     0);
    assert_int_equal(kr_scram_client_final(c, V1_SFIRST, strlen(V1_SFIRST), "pencil", NULL, &out),
                     KR_EINVAL);
    assert_int_equal(kr_scram_client_verify(c, V1_SFINAL, strlen(V1_SFINAL)), 0);
    assert_int_equal(kr_scram_client_verify(c, V1_SFINAL, strlen(V1_SFINAL)), KR_EAUTH);
    kr_buf_clear(&out);
    kr_scram_client_free(c);
    kr_scram_client_free(NULL);
}

/* ---- client checks of server messages ----------------------------------------------------- */

static void client_rejects_bad_server_first(void **state)
{
    static const char *const bad[] = {
        "",
        "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92",            /* no i= */
        "r=fyko+d2lbbFgONRv9qkxdawL3rfc,i=4096",                        /* no s= */
        "s=QSXCR+Q6sek8bf92,r=fyko+d2lbbFgONRv9qkxdawL3rfc,i=4096",     /* order */
        "r=XXko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096",     /* not our nonce */
        "r=fyko+d2lbbFgONRv9qkxdaw,s=QSXCR+Q6sek8bf92,i=4096",          /* truncated nonce */
        "m=x,r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096", /* mandatory ext */
        "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf9,i=4096",      /* bad base64 */
        "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=,i=4096",                     /* empty salt */
        "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=0",        /* zero iterations */
        "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=04096",    /* leading zero */
        "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=1000001",  /* too many */
        "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=-1",
        "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=",
        "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096,", /* empty extension */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kr_scram_client *c =
            kr_scram_client_new(KR_SCRAM_SHA1, "user", NULL, NULL, NULL, 0, V1_CNONCE);
        kr_buf out = KR_BUF_INIT;
        kr_scram_client_first(c, &out);
        out.len = 0;
        int rc = kr_scram_client_final(c, bad[i], strlen(bad[i]), "pencil", NULL, &out);
        if (rc != KR_EPROTO)
            fail_msg("client accepted bad server-first #%zu (%d): %s", i, rc, bad[i]);
        assert_int_equal(out.len, 0);
        kr_buf_clear(&out);
        kr_scram_client_free(c);
    }
}

static void client_accepts_iteration_bounds(void **state)
{
    static const char *const good[] = {
        "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=1",
        "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=1,x=ext",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        kr_scram_client *c =
            kr_scram_client_new(KR_SCRAM_SHA1, "user", NULL, NULL, NULL, 0, V1_CNONCE);
        kr_buf out = KR_BUF_INIT;
        kr_scram_client_first(c, &out);
        assert_int_equal(kr_scram_client_final(c, good[i], strlen(good[i]), "pencil", NULL, &out),
                         0);
        kr_buf_clear(&out);
        kr_scram_client_free(c);
    }
}

static kr_scram_client *client_after_vector_final(void)
{
    kr_scram_client *c = kr_scram_client_new(KR_SCRAM_SHA1, "user", NULL, NULL, NULL, 0, V1_CNONCE);
    kr_buf out = KR_BUF_INIT;
    kr_scram_client_first(c, &out);
    assert_int_equal(kr_scram_client_final(c, V1_SFIRST, strlen(V1_SFIRST), "pencil", NULL, &out),
                     0);
    kr_buf_clear(&out);
    return c;
}

static void client_rejects_wrong_server_signature(void **state)
{
    static const char *const bad[] = {
        "v=rmF9pqV8S7suAoZWja4dJRkFsKU=", /* one bit off */
        "v=rmF9pqV8S7suAoZWja4dJRkF",     /* truncated */
        "v=",
        "x=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kr_scram_client *c = client_after_vector_final();
        assert_int_equal(kr_scram_client_verify(c, bad[i], strlen(bad[i])), KR_EAUTH);
        assert_null(kr_scram_client_server_error(c));
        kr_scram_client_free(c);
    }
}

static void client_reports_server_error(void **state)
{
    kr_scram_client *c = client_after_vector_final();
    assert_int_equal(kr_scram_client_verify(c, "e=invalid-proof", 15), KR_EAUTH);
    assert_string_equal(kr_scram_client_server_error(c), "invalid-proof");
    kr_scram_client_free(c);
}

static void client_salted_password_cache_skips_password(void **state)
{
    kr_scram_salted_password cache;
    memset(&cache, 0, sizeof cache);
    kr_buf out = KR_BUF_INIT;

    /* First login fills the cache. */
    kr_scram_client *c = kr_scram_client_new(KR_SCRAM_SHA1, "user", NULL, NULL, NULL, 0, V1_CNONCE);
    kr_scram_client_first(c, &out);
    out.len = 0;
    assert_int_equal(kr_scram_client_final(c, V1_SFIRST, strlen(V1_SFIRST), "pencil", &cache, &out),
                     0);
    assert_true(cache.valid);
    kr_scram_client_free(c);

    /* Second login needs no password and produces the same proof. */
    c = kr_scram_client_new(KR_SCRAM_SHA1, "user", NULL, NULL, NULL, 0, V1_CNONCE);
    kr_scram_client_first(c, &out);
    out.len = 0;
    assert_int_equal(kr_scram_client_final(c, V1_SFIRST, strlen(V1_SFIRST), NULL, &cache, &out), 0);
    assert_string_equal(out.data, V1_CFINAL);
    assert_int_equal(kr_scram_client_verify(c, V1_SFINAL, strlen(V1_SFINAL)), 0);
    kr_scram_client_free(c);

    /* A different iteration count does not match the cache: a password is needed. */
    static const char other[] = "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4097";
    c = kr_scram_client_new(KR_SCRAM_SHA1, "user", NULL, NULL, NULL, 0, V1_CNONCE);
    kr_scram_client_first(c, &out);
    out.len = 0;
    assert_int_equal(kr_scram_client_final(c, other, strlen(other), NULL, &cache, &out), KR_EINVAL);
    kr_scram_client_free(c);

    /* ... nor does another hash. */
    c = kr_scram_client_new(KR_SCRAM_SHA256, "user", NULL, NULL, NULL, 0, V1_CNONCE);
    kr_scram_client_first(c, &out);
    out.len = 0;
    assert_int_equal(kr_scram_client_final(c, V1_SFIRST, strlen(V1_SFIRST), NULL, &cache, &out),
                     KR_EINVAL);
    kr_scram_client_free(c);
    kr_buf_clear(&out);
}

/* ---- channel binding ---------------------------------------------------------------------- */

static void tls_exporter_binding_agrees(void **state)
{
    kr_scram_cb_data cb;
    cb_fill(&cb, 1);
    kr_scram_creds creds;
    kr_scram_creds_new(KR_SCRAM_SHA256, "pencil", 6, 4096, &creds);
    kr_scram_server *s = kr_scram_server_new(KR_SCRAM_SHA256, true, true, &cb, NULL);
    kr_scram_client *c = kr_scram_client_new(KR_SCRAM_SHA256, "user", NULL, "tls-exporter",
                                             cb.tls_exporter, cb.tls_exporter_len, NULL);
    int crc;
    assert_int_equal(run_exchange(s, c, "pencil", &creds, &crc), KR_SCRAM_SUCCESS);
    assert_int_equal(crc, 0);
    assert_string_equal(kr_scram_server_cb_type(s), "tls-exporter");
    kr_scram_client_free(c);
    kr_scram_server_free(s);
}

static void mismatching_binding_data_is_not_authorized(void **state)
{
    kr_scram_cb_data server_cb, client_cb;
    cb_fill(&server_cb, 1);
    cb_fill(&client_cb, 2); /* as seen through a man in the middle */
    kr_scram_creds creds;
    kr_scram_creds_new(KR_SCRAM_SHA256, "pencil", 6, 4096, &creds);
    kr_scram_server *s = kr_scram_server_new(KR_SCRAM_SHA256, true, true, &server_cb, NULL);
    kr_scram_client *c =
        kr_scram_client_new(KR_SCRAM_SHA256, "user", NULL, "tls-exporter", client_cb.tls_exporter,
                            client_cb.tls_exporter_len, NULL);
    int crc;
    assert_int_equal(run_exchange(s, c, "pencil", &creds, &crc), KR_SCRAM_NOT_AUTHORIZED);
    assert_string_equal(kr_scram_server_error(s), "channel-bindings-dont-match");
    kr_scram_client_free(c);
    kr_scram_server_free(s);
}

static void plus_mechanism_with_n_flag_fails(void **state)
{
    kr_scram_cb_data cb;
    cb_fill(&cb, 1);
    kr_scram_server *s = kr_scram_server_new(KR_SCRAM_SHA256, true, true, &cb, NULL);
    assert_int_equal(server_first_step(s, "n,,n=user,r=abc"), KR_SCRAM_MALFORMED);
    kr_scram_server_free(s);

    s = kr_scram_server_new(KR_SCRAM_SHA256, true, false, &cb, NULL);
    assert_int_equal(server_first_step(s, "y,,n=user,r=abc"), KR_SCRAM_MALFORMED);
    kr_scram_server_free(s);
}

static void plain_mechanism_with_p_flag_fails(void **state)
{
    kr_scram_cb_data cb;
    cb_fill(&cb, 1);
    kr_scram_server *s = kr_scram_server_new(KR_SCRAM_SHA256, false, true, &cb, NULL);
    assert_int_equal(server_first_step(s, "p=tls-exporter,,n=user,r=abc"), KR_SCRAM_MALFORMED);
    kr_scram_server_free(s);
}

static void y_flag_when_plus_advertised_is_downgrade(void **state)
{
    kr_scram_cb_data cb;
    cb_fill(&cb, 1);
    kr_scram_server *s = kr_scram_server_new(KR_SCRAM_SHA256, false, true, &cb, NULL);
    assert_int_equal(server_first_step(s, "y,,n=user,r=abc"), KR_SCRAM_NOT_AUTHORIZED);
    assert_string_equal(kr_scram_server_error(s), "server-does-support-channel-binding");
    kr_scram_server_free(s);
}

static void y_flag_when_plus_not_advertised_succeeds(void **state)
{
    kr_scram_cb_data cb;
    cb_fill(&cb, 1);
    kr_scram_creds creds;
    kr_scram_creds_new(KR_SCRAM_SHA1, "pencil", 6, 4096, &creds);
    kr_scram_server *s = kr_scram_server_new(KR_SCRAM_SHA1, false, false, &cb, NULL);
    /* The client could bind (it has data) but uses no type: flag 'y'. */
    kr_scram_client *c = kr_scram_client_new(KR_SCRAM_SHA1, "user", NULL, NULL, cb.tls_exporter,
                                             cb.tls_exporter_len, NULL);
    kr_buf first = KR_BUF_INIT;
    kr_scram_client_first(c, &first);
    assert_memory_equal(first.data, "y,,", 3);
    kr_buf_clear(&first);
    int crc;
    assert_int_equal(run_exchange(s, c, "pencil", &creds, &crc), KR_SCRAM_SUCCESS);
    assert_int_equal(crc, 0);
    assert_null(kr_scram_server_cb_type(s));
    kr_scram_client_free(c);
    kr_scram_server_free(s);
}

static void unknown_binding_type_fails(void **state)
{
    kr_scram_cb_data cb;
    cb_fill(&cb, 1);
    kr_scram_server *s = kr_scram_server_new(KR_SCRAM_SHA256, true, true, &cb, NULL);
    assert_int_equal(server_first_step(s, "p=tls-unknown,,n=user,r=abc"), KR_SCRAM_NOT_AUTHORIZED);
    assert_string_equal(kr_scram_server_error(s), "unsupported-channel-binding-type");
    kr_scram_server_free(s);
}

static void binding_type_without_data_fails(void **state)
{
    kr_scram_cb_data cb;
    cb_fill(&cb, 1);
    cb.tls_unique_len = 0; /* TLS 1.3: no tls-unique */
    kr_scram_server *s = kr_scram_server_new(KR_SCRAM_SHA256, true, true, &cb, NULL);
    assert_int_equal(server_first_step(s, "p=tls-unique,,n=user,r=abc"), KR_SCRAM_NOT_AUTHORIZED);
    kr_scram_server_free(s);

    /* No TLS at all. */
    s = kr_scram_server_new(KR_SCRAM_SHA256, true, false, NULL, NULL);
    assert_int_equal(server_first_step(s, "p=tls-exporter,,n=user,r=abc"), KR_SCRAM_NOT_AUTHORIZED);
    kr_scram_server_free(s);
}

static void binding_data_of_another_type_is_not_authorized(void **state)
{
    /* The client names tls-exporter but binds the tls-server-end-point data: the server
     * checks c= against the data of the type named, so this must fail. */
    kr_scram_cb_data cb;
    cb_fill(&cb, 1);
    kr_scram_creds creds;
    kr_scram_creds_new(KR_SCRAM_SHA1, "pencil", 6, 4096, &creds);
    kr_scram_server *s = kr_scram_server_new(KR_SCRAM_SHA1, true, true, &cb, NULL);
    kr_scram_client *c = kr_scram_client_new(KR_SCRAM_SHA1, "user", NULL, "tls-exporter",
                                             cb.tls_server_end_point, 32, NULL);
    int crc;
    assert_int_equal(run_exchange(s, c, "pencil", &creds, &crc), KR_SCRAM_NOT_AUTHORIZED);
    kr_scram_client_free(c);
    kr_scram_server_free(s);
}

/* ---- credentials -------------------------------------------------------------------------- */

static void fake_creds_are_stable_per_username(void **state)
{
    kr_scram_creds a1, a2, b, other_secret, a256;
    kr_scram_creds_fake(KR_SCRAM_SHA1, "alice", test_secret, sizeof test_secret, 4096, &a1);
    kr_scram_creds_fake(KR_SCRAM_SHA1, "alice", test_secret, sizeof test_secret, 4096, &a2);
    kr_scram_creds_fake(KR_SCRAM_SHA1, "bob", test_secret, sizeof test_secret, 4096, &b);
    kr_scram_creds_fake(KR_SCRAM_SHA1, "alice", test_secret, sizeof test_secret - 2, 4096,
                        &other_secret);
    kr_scram_creds_fake(KR_SCRAM_SHA256, "alice", test_secret, sizeof test_secret, 4096, &a256);

    assert_int_equal(a1.salt_len, 16);
    assert_int_equal(a1.iterations, 4096);
    assert_int_equal(a1.salt_len, a2.salt_len);
    assert_memory_equal(a1.salt, a2.salt, a1.salt_len);
    assert_memory_not_equal(a1.salt, b.salt, 16);
    assert_memory_not_equal(a1.salt, other_secret.salt, 16);
    assert_memory_not_equal(a1.salt, a256.salt, 16);
    /* keys are random, not derived from anything an attacker could reproduce */
    assert_memory_not_equal(a1.stored_key, a2.stored_key, 20);
    assert_memory_not_equal(a1.server_key, a2.server_key, 20);
}

static void fake_creds_never_authenticate(void **state)
{
    kr_scram_creds creds;
    kr_scram_creds_fake(KR_SCRAM_SHA256, "nobody", test_secret, sizeof test_secret, 4096, &creds);
    kr_scram_server *s = kr_scram_server_new(KR_SCRAM_SHA256, false, false, NULL, NULL);
    kr_scram_client *c = kr_scram_client_new(KR_SCRAM_SHA256, "nobody", NULL, NULL, NULL, 0, NULL);
    int crc;
    assert_int_equal(run_exchange(s, c, "", &creds, &crc), KR_SCRAM_NOT_AUTHORIZED);
    kr_scram_client_free(c);
    kr_scram_server_free(s);
}

static void creds_check_accepts_right_password_only(void **state)
{
    kr_scram_creds creds;
    kr_scram_creds_new(KR_SCRAM_SHA256, "pencil", 6, 4096, &creds);
    assert_int_equal(creds.salt_len, 16);
    assert_true(kr_scram_creds_check(&creds, "pencil", 6));
    assert_false(kr_scram_creds_check(&creds, "pencil2", 7));
    assert_false(kr_scram_creds_check(&creds, "pencil", 5));
    assert_false(kr_scram_creds_check(&creds, "", 0));

    kr_scram_creds v1;
    creds_from_b64_salt(KR_SCRAM_SHA1, "pencil", V1_SALT, 4096, &v1);
    assert_true(kr_scram_creds_check(&v1, "pencil", 6));
    assert_false(kr_scram_creds_check(&v1, "Pencil", 6));

    kr_scram_creds broken = v1;
    broken.iterations = 0;
    assert_false(kr_scram_creds_check(&broken, "pencil", 6));
}

static void creds_new_uses_fresh_salts(void **state)
{
    kr_scram_creds a, b;
    kr_scram_creds_new(KR_SCRAM_SHA1, "pencil", 6, 1, &a);
    kr_scram_creds_new(KR_SCRAM_SHA1, "pencil", 6, 1, &b);
    assert_memory_not_equal(a.salt, b.salt, 16);
    assert_memory_not_equal(a.stored_key, b.stored_key, 20);
}

/* ---- mechanisms --------------------------------------------------------------------------- */

static void mechanism_names_round_trip(void **state)
{
    static const char *const names[] = {"SCRAM-SHA-1", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256",
                                        "SCRAM-SHA-256-PLUS"};
    for (size_t i = 0; i < 4; i++) {
        kr_scram_hash h;
        bool plus;
        assert_int_equal(kr_scram_mech_parse(names[i], &h, &plus), 0);
        assert_int_equal(h, i < 2 ? KR_SCRAM_SHA1 : KR_SCRAM_SHA256);
        assert_int_equal(plus, i % 2 == 1);
        assert_string_equal(kr_scram_mech_name(h, plus), names[i]);
    }
    kr_scram_hash h;
    bool plus;
    assert_int_equal(kr_scram_mech_parse("SCRAM-SHA-512", &h, &plus), KR_EINVAL);
    assert_int_equal(kr_scram_mech_parse("scram-sha-1", &h, &plus), KR_EINVAL);
    assert_int_equal(kr_scram_mech_parse("PLAIN", &h, &plus), KR_EINVAL);
    assert_int_equal(kr_scram_hash_len(KR_SCRAM_SHA1), 20);
    assert_int_equal(kr_scram_hash_len(KR_SCRAM_SHA256), 32);
}

/* ---- round trips -------------------------------------------------------------------------- */

static void random_round_trips_for_every_hash_and_binding(void **state)
{
    static const char *const types[] = {NULL, "y", "tls-exporter", "tls-server-end-point",
                                        "tls-unique"};
    static const kr_scram_hash hashes[] = {KR_SCRAM_SHA1, KR_SCRAM_SHA256};
    kr_scram_cb_data cb;
    cb_fill(&cb, 9);
    for (size_t hi = 0; hi < 2; hi++) {
        kr_scram_creds creds;
        kr_scram_creds_new(hashes[hi], "p\xc3\xa4ss,=word", 11, 128, &creds);
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            bool plus = ti >= 2;
            const unsigned char *data = NULL;
            size_t len = 0;
            const char *type = plus ? types[ti] : NULL;
            if (ti == 1)
                data = cb.tls_exporter, len = cb.tls_exporter_len; /* 'y' */
            else if (ti == 2)
                data = cb.tls_exporter, len = cb.tls_exporter_len;
            else if (ti == 3)
                data = cb.tls_server_end_point, len = cb.tls_server_end_point_len;
            else if (ti == 4)
                data = cb.tls_unique, len = cb.tls_unique_len;
            kr_scram_server *s = kr_scram_server_new(hashes[hi], plus, plus, &cb, NULL);
            kr_scram_client *c =
                kr_scram_client_new(hashes[hi], "us,er=", "adm=in,", type, data, len, NULL);
            int crc;
            kr_scram_status st = run_exchange(s, c, "p\xc3\xa4ss,=word", &creds, &crc);
            if (st != KR_SCRAM_SUCCESS || crc != 0)
                fail_msg("round trip failed: hash %zu binding %s: %d/%d", hi,
                         types[ti] ? types[ti] : "none", st, crc);
            assert_string_equal(kr_scram_server_username(s), "us,er=");
            assert_string_equal(kr_scram_server_authzid(s), "adm=in,");
            if (plus)
                assert_string_equal(kr_scram_server_cb_type(s), types[ti]);
            else
                assert_null(kr_scram_server_cb_type(s));
            kr_scram_client_free(c);
            kr_scram_server_free(s);
        }
    }
}

static void random_nonces_differ_between_exchanges(void **state)
{
    kr_scram_client *a = kr_scram_client_new(KR_SCRAM_SHA1, "u", NULL, NULL, NULL, 0, NULL);
    kr_scram_client *b = kr_scram_client_new(KR_SCRAM_SHA1, "u", NULL, NULL, NULL, 0, NULL);
    kr_buf ma = KR_BUF_INIT, mb = KR_BUF_INIT;
    kr_scram_client_first(a, &ma);
    kr_scram_client_first(b, &mb);
    assert_string_not_equal(ma.data, mb.data);
    assert_true(ma.len >= strlen("n,,n=u,r=") + 24);

    /* server nonce part: two servers answer the same client-first differently */
    kr_scram_creds creds;
    kr_scram_creds_new(KR_SCRAM_SHA1, "x", 1, 1, &creds);
    kr_scram_server *s1 = kr_scram_server_new(KR_SCRAM_SHA1, false, false, NULL, NULL);
    kr_scram_server *s2 = kr_scram_server_new(KR_SCRAM_SHA1, false, false, NULL, NULL);
    kr_buf r1 = KR_BUF_INIT, r2 = KR_BUF_INIT;
    assert_int_equal(kr_scram_server_client_first(s1, ma.data, ma.len), KR_SCRAM_CONTINUE);
    assert_int_equal(kr_scram_server_client_first(s2, ma.data, ma.len), KR_SCRAM_CONTINUE);
    kr_scram_server_server_first(s1, &creds, &r1);
    kr_scram_server_server_first(s2, &creds, &r2);
    assert_string_not_equal(r1.data, r2.data);
    kr_buf_clear(&r1);
    kr_buf_clear(&r2);
    kr_scram_server_free(s1);
    kr_scram_server_free(s2);
    kr_buf_clear(&ma);
    kr_buf_clear(&mb);
    kr_scram_client_free(a);
    kr_scram_client_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rfc5802_sha1_vector_server_side),
        cmocka_unit_test(rfc5802_sha1_vector_client_side),
        cmocka_unit_test(rfc7677_sha256_vector_server_side),
        cmocka_unit_test(rfc7677_sha256_vector_client_side),
        cmocka_unit_test(wrong_password_is_not_authorized),
        cmocka_unit_test(tampered_nonce_is_not_authorized),
        cmocka_unit_test(tampered_proof_is_not_authorized),
        cmocka_unit_test(client_first_with_tampered_gs2_in_final_is_not_authorized),
        cmocka_unit_test(malformed_client_first_messages_are_rejected),
        cmocka_unit_test(client_first_with_nul_byte_is_malformed),
        cmocka_unit_test(reserved_mext_reports_extensions_not_supported),
        cmocka_unit_test(overlong_messages_are_malformed),
        cmocka_unit_test(username_length_is_bounded),
        cmocka_unit_test(saslname_escapes_are_decoded),
        cmocka_unit_test(client_escapes_username_and_authzid),
        cmocka_unit_test(malformed_client_final_messages_are_rejected),
        cmocka_unit_test(client_final_with_extension_before_proof_is_checked_normally),
        cmocka_unit_test(proof_of_wrong_length_is_not_authorized),
        cmocka_unit_test(server_steps_out_of_order_are_malformed),
        cmocka_unit_test(client_steps_out_of_order_fail),
        cmocka_unit_test(client_rejects_bad_server_first),
        cmocka_unit_test(client_accepts_iteration_bounds),
        cmocka_unit_test(client_rejects_wrong_server_signature),
        cmocka_unit_test(client_reports_server_error),
        cmocka_unit_test(client_salted_password_cache_skips_password),
        cmocka_unit_test(tls_exporter_binding_agrees),
        cmocka_unit_test(mismatching_binding_data_is_not_authorized),
        cmocka_unit_test(plus_mechanism_with_n_flag_fails),
        cmocka_unit_test(plain_mechanism_with_p_flag_fails),
        cmocka_unit_test(y_flag_when_plus_advertised_is_downgrade),
        cmocka_unit_test(y_flag_when_plus_not_advertised_succeeds),
        cmocka_unit_test(unknown_binding_type_fails),
        cmocka_unit_test(binding_type_without_data_fails),
        cmocka_unit_test(binding_data_of_another_type_is_not_authorized),
        cmocka_unit_test(fake_creds_are_stable_per_username),
        cmocka_unit_test(fake_creds_never_authenticate),
        cmocka_unit_test(creds_check_accepts_right_password_only),
        cmocka_unit_test(creds_new_uses_fresh_salts),
        cmocka_unit_test(mechanism_names_round_trip),
        cmocka_unit_test(random_round_trips_for_every_hash_and_binding),
        cmocka_unit_test(random_nonces_differ_between_exchanges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
