/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Stanzas as the router and modules see them: the element tree in its arena
 * plus what every handler needs decoded once (kind, type, prepared from/to,
 * addressing), and the builders for stanza errors (RFC 6120 §8.3) and stream
 * errors (RFC 6120 §4.9). A kr_stanza borrows its tree and arena from the
 * dispatcher, which frees the arena after dispatch (CONVENTIONS.md rule 1).
 */
#ifndef KR_SERVER_STANZA_H
#define KR_SERVER_STANZA_H

#include <stdbool.h>

#include "core/arena.h"
#include "core/buf.h"
#include "xml/parser.h"
#include "xml/tree.h"
#include "xmpp/jid.h"

#define KR_NS_CLIENT "jabber:client"
#define KR_NS_STREAM "http://etherx.jabber.org/streams"
#define KR_NS_STREAMS_ERR "urn:ietf:params:xml:ns:xmpp-streams"
#define KR_NS_STANZAS_ERR "urn:ietf:params:xml:ns:xmpp-stanzas"
#define KR_NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"
#define KR_NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define KR_NS_BIND "urn:ietf:params:xml:ns:xmpp-bind"
#define KR_NS_SESSION "urn:ietf:params:xml:ns:xmpp-session"
#define KR_NS_SASL_CB "urn:xmpp:sasl-cb:0"

typedef enum kr_stanza_kind {
    KR_STANZA_MESSAGE = 1 << 0,
    KR_STANZA_PRESENCE = 1 << 1,
    KR_STANZA_IQ = 1 << 2,
} kr_stanza_kind;

/** Stanza types as bits so handler specs can match several. */
typedef enum kr_stanza_type {
    KR_TYPE_NONE = 1 << 0, /* no type attribute: message "normal", presence "available" */
    KR_TYPE_NORMAL = 1 << 1,
    KR_TYPE_CHAT = 1 << 2,
    KR_TYPE_GROUPCHAT = 1 << 3,
    KR_TYPE_HEADLINE = 1 << 4,
    KR_TYPE_ERROR = 1 << 5,
    KR_TYPE_GET = 1 << 6,
    KR_TYPE_SET = 1 << 7,
    KR_TYPE_RESULT = 1 << 8,
    KR_TYPE_UNAVAILABLE = 1 << 9,
    KR_TYPE_SUBSCRIBE = 1 << 10,
    KR_TYPE_SUBSCRIBED = 1 << 11,
    KR_TYPE_UNSUBSCRIBE = 1 << 12,
    KR_TYPE_UNSUBSCRIBED = 1 << 13,
    KR_TYPE_PROBE = 1 << 14,
    KR_TYPE_INVALID = 1 << 15, /* a type this kind does not define */
} kr_stanza_type;

/** Where a stanza is addressed, relative to our domains. */
typedef enum kr_addressing {
    KR_ADDR_HOST = 1 << 0,   /* to one of our domains (or absent for iq) */
    KR_ADDR_BARE = 1 << 1,   /* to local@ourdomain */
    KR_ADDR_FULL = 1 << 2,   /* to local@ourdomain/resource */
    KR_ADDR_REMOTE = 1 << 3, /* to another domain */
    KR_ADDR_SELF = 1 << 4,   /* no 'to', or 'to' the sender's own bare JID (RFC 6120 §10.3) */
} kr_addressing;

typedef struct kr_stanza {
    kr_xml_node *elem;
    kr_arena *arena;
    kr_stanza_kind kind;
    kr_stanza_type type;
    const char *id;  /* may be NULL */
    kr_jid from;     /* prepared; domain NULL when unknown */
    kr_jid to;       /* prepared; after kr_stanza_decode, absent 'to' is filled per RFC 6120 §10.3 */
    bool to_absent;  /* the stanza had no 'to' */
    kr_addressing addressing;
    kr_xml_node *payload; /* first child element (iq payload), or NULL */
} kr_stanza;

/**
 * Fill st from elem. `from` must already be stamped and valid. Returns 0, or an RFC 6120
 * stanza error condition name ("jid-malformed", "bad-request") for the caller to answer.
 * served: the server's domain test.
 */
const char *kr_stanza_decode(kr_stanza *st, kr_xml_node *elem, kr_arena *arena,
                             bool (*served)(void *ud, const char *domain), void *ud);
/** The same, for a 'from' the caller stamped and has already prepared (c2s intake: the
 * session's full JID, parsed once at bind instead of once per stanza). Its parts are copied
 * into arena; `from` must be what kr_jid_parse gives for the stamped attribute. */
const char *kr_stanza_decode_from(kr_stanza *st, kr_xml_node *elem, kr_arena *arena,
                                  bool (*served)(void *ud, const char *domain), void *ud,
                                  const kr_jid *from);

/** Error type of RFC 6120 §8.3.3 for a condition ("cancel", "modify", "auth", "wait"). */
const char *kr_stanza_error_type(const char *condition);

/**
 * Turn st->elem into its error reply in place (RFC 6120 §8.3.1): swap from/to (to = original
 * sender, from = original recipient or `from_override`), type='error', append <error/>
 * with the condition and optional English text. Children of the original are kept.
 */
void kr_stanza_make_error(kr_stanza *st, const char *condition, const char *text,
                          const char *from_override);

/** A new <iq type='result'/> answering st (from/to swapped), in st's arena. */
kr_xml_node *kr_stanza_iq_result(kr_stanza *st);

/* What the server may add to a stanza it accepted: a stamped 'from' (a JID is at most 3071
 * bytes), on an error reply 'to' and 'type' and the <error/> child. */
#define KR_STANZA_ADDED_ATTRS 3
#define KR_STANZA_ADDED_BYTES 4096

/**
 * The parser limits for stanzas from a client: the configured ones less what the server may
 * add (KR_STANZA_ADDED_*), so everything it forwards or answers still fits the configured
 * limits where it is read next (another Kurier over s2s, or this server's own checks).
 * Configured values must be at least twice the room (config.c's bounds see to it).
 */
kr_xml_limits kr_stanza_intake_limits(size_t max_stanza_bytes, unsigned max_depth,
                                      unsigned max_attributes);

/** Append a stream error and the closing tag to out (RFC 6120 §4.9). */
void kr_stream_error_write(kr_buf *out, const char *condition, const char *text);

#endif
