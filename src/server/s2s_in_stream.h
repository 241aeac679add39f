/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * The protocol of one inbound s2s stream (receiving server, RFC 6120 §4-§6,
 * §8; XEP-0178; XEP-0220), apart from the connection it runs on: bytes in,
 * bytes out, and a few questions and effects (TLS, certificate checks, the
 * router, dialback verification on another stream) asked through
 * kr__s2s_in_io. s2s_in.c runs it on a kr_conn; tests/fuzz/s2s_in drives it
 * with input from the fuzzer and fakes for the effects. The stream owns its
 * parser, its domain names and the set of (local, remote) domain pairs it
 * authenticated; it borrows io, ud and the strings in kr__s2s_in_opts for
 * its whole life. Nothing here blocks or touches another thread.
 */
#ifndef KR_SERVER_S2S_IN_STREAM_H
#define KR_SERVER_S2S_IN_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "core/hmap.h"
#include "server/s2s_internal.h"
#include "server/stanza.h"
#include "xml/parser.h"

/** What the stream asks of the connection it runs on. ud is kr__s2s_in_opts.ud. */
typedef struct kr__s2s_in_io {
    /** Queue bytes for the peer. */
    void (*send)(void *ud, const char *data, size_t len);
    /** Close the connection after what was queued; closing() is true from then on. */
    void (*close)(void *ud);
    /** True once the connection is closing, for whatever reason. */
    bool (*closing)(void *ud);
    /** The peer sent <starttls/> and got <proceed/>: start the TLS handshake. The
     * connection calls kr__s2s_in_stream_tls_ready() once it completes. */
    void (*start_tls)(void *ud);
    /** Is domain (prepared) one of ours? */
    bool (*served)(void *ud, const char *domain);
    /** Does the peer's certificate verify and name domain (RFC 6125)? why: for the log. */
    bool (*cert_ok)(void *ud, const char *domain, char *why, size_t whylen);
    /** A fresh stream id: 32 characters that need no escaping, and the NUL. */
    void (*stream_id)(void *ud, char out[33]);
    /** Ask domain v->remote's authoritative server about v->key (XEP-0220 §2.3); takes v
     * (reply_worker and reply_conn are for the callee to fill). The answer comes back
     * through kr__s2s_in_stream_verified(), possibly never. */
    void (*verify)(void *ud, kr__s2s_verify *v);
    /** The first domain pair was authenticated. */
    void (*authenticated)(void *ud);
    /** Route a received stanza (already in jabber:client); takes the reference. */
    void (*route)(void *ud, kr_stanza *st);
    /** Send an error reply the stream built for a stanza it could not decode (it may not
     * decode either: then drop it); takes the reference. */
    void (*reply)(void *ud, kr_stanza *st);
} kr__s2s_in_io;

typedef struct kr__s2s_in_opts {
    const kr__s2s_in_io *io;
    void *ud;
    const char *log_ctx;             /* for KR_LOG */
    const char *default_domain;      /* our header's 'from' when the peer named none of ours */
    const kr_hosts *hosts;           /* our hosts, for decoding stanzas */
    const char *secret;              /* prepared dialback secret (XEP-0185) */
    bool require_valid_certificates; /* s2s.require_valid_certificates: no dialback */
    kr_xml_limits limits;            /* for the peer's input */
} kr__s2s_in_opts;

typedef struct kr__s2s_in_stream {
    kr__s2s_in_opts o;
    kr_xml_parser *parser;
    bool in_feed;
    bool restart;
    bool tls;
    bool sasl_done;
    bool header_sent;
    char stream_id[33];
    char *local;      /* the stream's 'to': one of our domains */
    char *peer;       /* the stream's 'from', when given */
    kr_strmap pairs;  /* "local remote" authenticated (values unused) */
    unsigned pending; /* dialback verifications out */
} kr__s2s_in_stream;

/** A new stream waiting for the peer's stream header. Free with kr__s2s_in_stream_free. */
kr__s2s_in_stream *kr__s2s_in_stream_new(const kr__s2s_in_opts *opts);
void kr__s2s_in_stream_free(kr__s2s_in_stream *s);

/** Bytes from the peer (plaintext, after TLS). Runs the protocol; stops at a stream
 * restart, the end of the stream or a stream error (the rest of data is then dropped:
 * after <starttls/> or <auth/> the peer must wait for our answer). */
void kr__s2s_in_stream_feed(kr__s2s_in_stream *s, const char *data, size_t len);
/** The TLS handshake completed (after start_tls, or first thing on direct TLS). */
void kr__s2s_in_stream_tls_ready(kr__s2s_in_stream *s);
/** Say <condition/> (with optional text) and close; nothing when already closing. */
void kr__s2s_in_stream_error(kr__s2s_in_stream *s, const char *condition, const char *text);
/** End the stream cleanly (</stream:stream>) and close. */
void kr__s2s_in_stream_close(kr__s2s_in_stream *s);
/** The answer to a verify request; takes v. Ignored when it is for an earlier stream id. */
void kr__s2s_in_stream_verified(kr__s2s_in_stream *s, kr__s2s_verify *v);

/** True once at least one domain pair is authenticated. */
bool kr__s2s_in_stream_authed(const kr__s2s_in_stream *s);
/** True when the peer may send stanzas from domain remote to our domain local. */
bool kr__s2s_in_stream_paired(const kr__s2s_in_stream *s, const char *local, const char *remote);

#endif
