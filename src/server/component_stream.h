/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * The protocol of one external component stream (XEP-0114, the "accept"
 * method in jabber:component:accept), apart from the connection it runs
 * on: bytes in, bytes out, and a few questions and effects asked through
 * kr_component_io (the configured secrets, claiming the domain, the router,
 * a timer and a clock). component.c runs it on a kr_conn; the harness in
 * tests/fuzz/component drives it with the fuzzer's bytes and fakes.
 * Implemented: XEP-0114 §3 (Protocol Flow): the component's stream header
 * names the component's domain in 'to' (a domain we have no secret for is
 * <host-unknown/>, a missing 'to' <improper-addressing/>, another namespace
 * <invalid-namespace/>, each after our own header as RFC 6120 §4.9.1.1
 * wants); our header carries a fresh stream id and no version (XEP-0114
 * streams have no features); the only element accepted before
 * authentication is <handshake/> whose text is the hex SHA-1 of the stream
 * id followed by the secret (compared in constant time; upper-case hex is
 * taken too, as Prosody does), answered with an empty <handshake/>, and
 * anything else, or a wrong digest, ends the stream with <not-authorized/>;
 * a right digest for a domain another stream already serves ends this one
 * with <conflict/> (kr_component_io.claim says why). After that, stanzas
 * MUST carry 'from' on the component's domain (<invalid-from/> otherwise)
 * and 'to' (<improper-addressing/>), and go to io->route with
 * jabber:component:accept renamed jabber:client; one that does not decode
 * is answered with its stanza error (RFC 6120 §8.3). §4 (Security
 * Considerations): the component may write any 'from' on its own domain and
 * nothing else. Timers: limits.auth_timeout_s to authenticate; once
 * authenticated a silent stream is pinged (XEP-0199) after half of
 * limits.idle_timeout_s and closed with <connection-timeout/> after all of
 * it, as c2s streams are, so a component that hung or vanished without a
 * FIN frees its domain for the next connection instead of holding it for
 * ever, while a quiet but live one (it answers the ping, even with an error)
 * stays. The stream owns its parser and its copy of the domain; it borrows
 * io, ud and the strings in kr_component_opts for its whole life. Nothing
 * here blocks or touches another thread.
 */
#ifndef KR_SERVER_COMPONENT_STREAM_H
#define KR_SERVER_COMPONENT_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/stanza.h"
#include "xml/parser.h"

#define KR_NS_COMPONENT "jabber:component:accept"
#define KR_COMPONENT_DIGEST_HEX 40 /* SHA-1 in hex */

/** What the stream asks of the connection and the server. ud is kr_component_opts.ud. */
typedef struct kr_component_io {
    /** Queue bytes for the component. */
    void (*send)(void *ud, const char *data, size_t len);
    /** Close after what was queued; closing() is true from then on. */
    void (*close)(void *ud);
    bool (*closing)(void *ud);
    /** (Re-)arm the stream's one timer: kr_component_stream_timer after ms. */
    void (*timer_set)(void *ud, uint64_t ms);
    /** Milliseconds, monotonic. */
    uint64_t (*now)(void *ud);
    /** A fresh stream id: 32 characters that need no escaping, and the NUL. */
    void (*stream_id)(void *ud, char out[33]);
    /** The shared secret of a prepared component domain (borrowed, NUL-terminated), or NULL
     * when it is not one of our components. */
    const char *(*secret)(void *ud, const char *domain);
    /** The handshake verified: make this stream the one that serves domain. False when
     * another stream serves it already (the stream then ends with <conflict/>). On true the
     * connection is authenticated (read rate, and it must give the claim back when it
     * closes). */
    bool (*claim)(void *ud, const char *domain);
    /** Route a stanza the component sent (in jabber:client, 'from' checked); takes it. */
    void (*route)(void *ud, kr_stanza *st);
    /** Send the error reply the stream built for a stanza that did not decode (the reply
     * decoded, addressed to the component); takes it. */
    void (*reply)(void *ud, kr_stanza *st);
} kr_component_io;

typedef struct kr_component_opts {
    const kr_component_io *io;
    void *ud;
    const char *log_ctx;       /* for KR_LOG */
    const kr_hosts *hosts;     /* the address table, for decoding stanzas */
    const char *server_domain; /* our name: a header before the domain is known, pings */
    kr_xml_limits limits;      /* for the component's input */
    unsigned auth_timeout_s;   /* limits.auth_timeout_s */
    unsigned idle_timeout_s;   /* limits.idle_timeout_s */
} kr_component_opts;

typedef struct kr_component_stream {
    kr_component_opts o;
    kr_xml_parser *parser;
    bool in_feed;
    bool restart; /* never set: XEP-0114 streams do not restart */
    bool header_sent;
    bool authed;
    char stream_id[33];
    char *domain;       /* prepared, once the header named one of our components */
    uint64_t last_read; /* io->now() of the last bytes */
    uint64_t ping_at;   /* when the unanswered ping went out, 0: none */
    unsigned pings;     /* ids of our pings */
} kr_component_stream;

/** A new stream waiting for the component's stream header; the authentication timeout is
 * armed. Free with kr_component_stream_free. */
kr_component_stream *kr_component_stream_new(const kr_component_opts *opts);
void kr_component_stream_free(kr_component_stream *s);

/** Bytes from the component (plaintext, after TLS). Stops at the end of the stream or a
 * stream error (the rest of data is then dropped). */
void kr_component_stream_feed(kr_component_stream *s, const char *data, size_t len);
/** The timer set by io->timer_set fired. */
void kr_component_stream_timer(kr_component_stream *s);
/** A serialized stanza (jabber:client without an xmlns: it reads as the stream's default
 * namespace) for the component: written when the stream is authenticated and open; false
 * (nothing written) otherwise. */
bool kr_component_stream_deliver(kr_component_stream *s, const char *data, size_t len);
/** Say <condition/> (text optional) and close; nothing when already closing. */
void kr_component_stream_error(kr_component_stream *s, const char *condition, const char *text);
/** End the stream cleanly (</stream:stream>) and close. */
void kr_component_stream_close(kr_component_stream *s);
/** True once the handshake succeeded and the domain was claimed. */
bool kr_component_stream_authed(const kr_component_stream *s);

/** The handshake digest of XEP-0114 §3: lower-case hex SHA-1 of the stream id followed by
 * the secret (their bytes as they are), into out (41 bytes with the NUL). */
void kr_component_digest(const char *stream_id, const char *secret, char out[41]);

#endif
