/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * The protocol of one client-to-server stream (RFC 6120), apart from the
 * transport it runs on: bytes in, bytes out, and the effects it needs asked
 * through kr_c2s_io (TLS, the account look-up, binding the session, routing
 * stanzas, timers). c2s.c runs it on a TCP connection with TLS;
 * tests/fuzz/c2s_session drives the same code with fuzzer input and fakes.
 * A stream moves through four stages, each accepting only its own top-level
 * elements:
 *   1. before TLS: <starttls/> only (RFC 6120 §5.3.1; SASL gets
 *      <encryption-required/>, anything else a <policy-violation/> error);
 *   2. TLS, not authenticated: SASL <auth>/<response>/<abort> (§6.4) and iqs
 *      for the PREAUTH handlers (XEP-0077);
 *   3. authenticated, not bound: the bind iq (§7) and the legacy session iq;
 *   4. bound: stanzas, 'from' stamped with the bound full JID (§8.1.2.1).
 * Stages 1→2 and 2→3 restart the stream (§4.3.3). From stage 2 on, every
 * element goes through io->intake, which hands it back through
 * kr_c2s_stream_process in order (the server's intake holds it while an
 * earlier stanza waits for storage). Failed logins are slowed down: each
 * failure is answered after a delay that doubles per failure on the stream
 * (reads paused meanwhile), and after sasl.max_failures the stream is closed;
 * failures are also counted per IP address and per account (limits.c), and
 * during a cool-down every login from that address or to that account is
 * answered <temporary-auth-failure/> (§6.5.13) with the same delay. Silent
 * streams are pinged (XEP-0199) after half of limits.idle_timeout_s and closed
 * after all of it; a bound stream silent for KR_C2S_TRIM_MS gives back its
 * parser's memory and asks the transport to do the same (io->trim).
 * The stream owns its parser, its SASL state and its copies of the domain,
 * account and full JID; it borrows io, ud and opts for its whole life.
 * Nothing here blocks or touches another thread.
 */
#ifndef KR_SERVER_C2S_STREAM_H
#define KR_SERVER_C2S_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"
#include "sasl/scram.h"
#include "server/stanza.h"
#include "xml/parser.h"

#define KR_C2S_TRIM_MS 3000 /* silence after which a bound stream's idle memory is given back */

typedef struct kr_c2s_stream kr_c2s_stream;

/** An account look-up for SASL, done by the server on a storage lane (and PBKDF2 for PLAIN on
 * the CPU pool), answered with kr_c2s_stream_auth_done. */
typedef struct kr_c2s_auth {
    char *jid;            /* bare JID looked up */
    kr_scram_hash hash;   /* SCRAM: which credentials are wanted */
    char *password;       /* PLAIN: prepared password, wiped by kr_c2s_auth_free */
    size_t password_len;
    /* results */
    int result;           /* 0, KR_ENOENT, or a store error */
    bool plain_ok;        /* PLAIN: the password matched */
    kr_scram_creds creds; /* SCRAM: the account's credentials for `hash` */
} kr_c2s_auth;

void kr_c2s_auth_free(kr_c2s_auth *j);

/** What the stream asks of the transport and the server. ud is kr_c2s_opts.ud. */
typedef struct kr_c2s_io {
    /* Queue stream-level bytes (headers, features, SASL, stream errors). */
    void (*send)(void *ud, const char *data, size_t len);
    /* Queue one stanza for a bound session (server pings, session iq results): the session's
     * delivery path, so outgoing filters see it. */
    void (*deliver)(void *ud, const char *data, size_t len, unsigned meta);
    /* Close after what was queued; closing() is true from then on. */
    void (*close)(void *ud);
    bool (*closing)(void *ud);
    /* <proceed/> was sent: start TLS; kr_c2s_stream_tls_ready follows. */
    void (*start_tls)(void *ud);
    /* Derive the tls-exporter binding into cb (a -PLUS exchange starts). */
    void (*cb_exporter)(void *ud, kr_scram_cb_data *cb);
    /* Stop (true) or resume reading (failed-login delays). */
    void (*read_pause)(void *ud, bool pause);
    /* (Re-)arm the stream's one timer: kr_c2s_stream_timer after ms. */
    void (*timer_set)(void *ud, uint64_t ms);
    uint64_t (*now)(void *ud); /* milliseconds, monotonic */
    /* The stream's idle memory can go (after KR_C2S_TRIM_MS of silence). */
    void (*trim)(void *ud);
    /* The first stream header named our domain (prepared): the session can exist now. */
    void (*opened)(void *ud, const char *domain);
    /* SASL succeeded: local is the prepared local part of the account. */
    void (*authenticated)(void *ud, const char *local);
    /* Look the account up; takes j; answer with kr_c2s_stream_auth_done(j), maybe never. */
    void (*auth)(void *ud, kr_c2s_auth *j);
    /* Bind the prepared resource: 0 with *full and *jid the bound JID (borrowed from the
     * session, valid while the stream lives), or a negative error (<bad-request/>). */
    int (*bind)(void *ud, const char *resource, const char **full, const kr_jid **jid);
    /* An element after TLS, to be handed back to kr_c2s_stream_process in order, now or
     * later (elem NULL: the end of the stream); takes the arena. */
    void (*intake)(void *ud, kr_xml_node *elem, kr_arena *arena);
    /* The stream restarted: elements queued from the old stream must be dropped. */
    void (*restarted)(void *ud);
    /* A stanza of the bound session, 'from' stamped, decoded: route it; takes st. */
    void (*stanza)(void *ud, kr_stanza *st);
    /* An iq before authentication, 'to' = the stream's domain: the PREAUTH handlers; takes
     * st. */
    void (*preauth)(void *ud, kr_stanza *st);
    /* A stanza the server answers itself (an error for a stanza that did not decode): send it
     * like any server-made stanza; takes st. */
    void (*reply)(void *ud, kr_stanza *st);
    /* The modules' stream features. */
    void (*features)(void *ud, bool authenticated, kr_buf *out);
} kr_c2s_io;

typedef struct kr_c2s_opts {
    const kr_c2s_io *io;
    void *ud;
    const kr_config *cfg;
    const kr_hosts *hosts;       /* served domains (user hosts) and stanza decoding */
    const unsigned char *secret; /* per-process secret for fake SCRAM salts */
    size_t secret_len;
    const char *peer_ip;         /* for the login-failure limits; never logged above debug */
    char *log_ctx;               /* for KR_LOG; rewritten at bind */
    size_t log_ctx_len;
} kr_c2s_opts;

/** A new stream waiting for the client's stream header; the auth timeout is armed. */
kr_c2s_stream *kr_c2s_stream_new(const kr_c2s_opts *opts);
void kr_c2s_stream_free(kr_c2s_stream *s);

/** Bytes from the client (after TLS). */
void kr_c2s_stream_feed(kr_c2s_stream *s, const char *data, size_t len);
/** TLS is up (after start_tls, or at once for direct TLS); cb: the channel bindings this
 * connection offers (tls-exporter empty but possible when exporter is true); version: the
 * negotiated protocol ("TLSv1.3"). */
void kr_c2s_stream_tls_ready(kr_c2s_stream *s, const kr_scram_cb_data *cb, bool exporter,
                             const char *version);
/** An element from io->intake, in order (elem NULL: the client closed the stream). Takes the
 * arena. */
void kr_c2s_stream_process(kr_c2s_stream *s, kr_xml_node *elem, kr_arena *arena);
/** The timer set by io->timer_set fired. */
void kr_c2s_stream_timer(kr_c2s_stream *s);
/** The answer to io->auth; takes j. */
void kr_c2s_stream_auth_done(kr_c2s_stream *s, kr_c2s_auth *j);
/** Say <condition/> (text optional) and close; nothing when already closing. */
void kr_c2s_stream_error(kr_c2s_stream *s, const char *condition, const char *text);

/** The stream's domain (NULL before the header), and whether it is bound. */
const char *kr_c2s_stream_domain(const kr_c2s_stream *s);
bool kr_c2s_stream_bound(const kr_c2s_stream *s);

#endif
