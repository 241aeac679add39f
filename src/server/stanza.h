/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Stanzas as the router and modules see them: the element tree in its arena
 * plus what every handler needs decoded once (kind, type, prepared from/to,
 * addressing), and the builders for stanza errors (RFC 6120 §8.3) and stream
 * errors (RFC 6120 §4.9). A kr_stanza owns the arena its tree lives in and is
 * reference counted (CONVENTIONS.md rule 1): the router drops its reference
 * after dispatch, a handler that waits for storage keeps one.
 */
#ifndef KR_SERVER_STANZA_H
#define KR_SERVER_STANZA_H

#include <stdatomic.h>
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

/** Where a stanza is addressed, relative to the host its 'to' names (hosts.h). */
typedef enum kr_addressing {
    KR_ADDR_HOST = 1 << 0,   /* to one of our hosts itself (or absent for iq) */
    KR_ADDR_BARE = 1 << 1,   /* to local@host */
    KR_ADDR_FULL = 1 << 2,   /* to local@host/resource */
    KR_ADDR_REMOTE = 1 << 3, /* to a domain we do not serve */
    KR_ADDR_SELF = 1 << 4,   /* no 'to', or 'to' the sender's own bare JID (RFC 6120 §10.3) */
} kr_addressing;

struct kr_host;
typedef struct kr_hosts kr_hosts;

/*
 * A stanza as the router and modules see it. It lives in its own arena together with its
 * tree, and is reference counted: whoever created it holds one reference, a handler that
 * waits (modules.h) takes another, and the last kr_stanza_unref frees the arena. A stanza
 * built in another's arena (kr_stanza_new_in: a reply) holds a reference to that one.
 * References are not atomic: a stanza is used on one worker at a time, and handing it to
 * another thread moves the reference with it.
 */
typedef struct kr_stanza {
    kr_xml_node *elem;
    kr_arena *arena;
    struct kr_stanza *base; /* whose arena this one lives in, or NULL: its own */
    unsigned refs;          /* 0 for a stanza on the stack (kr_stanza_decode) */
    kr_stanza_kind kind;
    kr_stanza_type type;
    const char *id;  /* may be NULL */
    kr_jid from;     /* prepared; domain NULL when unknown */
    kr_jid to;       /* prepared; after decoding, absent 'to' is filled per RFC 6120 §10.3 */
    bool to_absent;  /* the stanza had no 'to' */
    kr_addressing addressing;
    const struct kr_host *host;      /* the host of 'to'; NULL: remote */
    const struct kr_host *from_host; /* the host of 'from'; NULL: remote or none */
    kr_xml_node *payload; /* first child element (iq payload), or NULL */
} kr_stanza;

/**
 * Fill st from elem. `from` must already be stamped and valid. Returns NULL, or an RFC 6120
 * stanza error condition name ("jid-malformed", "bad-request") for the caller to answer.
 * from_known: the stamped 'from' already prepared (c2s intake: the session's full JID,
 * parsed once at bind instead of once per stanza; its parts are copied into arena; it must
 * be what kr_jid_parse gives for the stamped attribute), or NULL to parse the attribute.
 */
const char *kr_stanza_decode(kr_stanza *st, kr_xml_node *elem, kr_arena *arena,
                             const kr_hosts *hosts, const kr_jid *from_known);
/**
 * A new stanza for elem (in arena) with one reference; it takes the arena, which the last
 * reference frees. *err gets NULL or what kr_stanza_decode said (the stanza is returned
 * either way, so the caller can answer it).
 */
kr_stanza *kr_stanza_new(kr_arena *arena, kr_xml_node *elem, const kr_hosts *hosts,
                         const kr_jid *from_known, const char **err);
/** kr_stanza_new for an element built in base's arena (a reply to base): the new stanza
 * holds a reference to base. */
kr_stanza *kr_stanza_new_in(kr_stanza *base, kr_xml_node *elem, const kr_hosts *hosts,
                            const char **err);
/** Take another reference (a handler that keeps the stanza past its return). */
kr_stanza *kr_stanza_ref(kr_stanza *st);
/** Drop a reference; the last one frees the arena (and drops the base's). NULL is ignored. */
void kr_stanza_unref(kr_stanza *st);

/**
 * An immutable copy of a stanza that any thread may read (the session directory keeps each
 * resource's last broadcast presence as one, to answer probes): its tree in its own arena
 * and its serialization, with an atomic reference count. Nobody changes it after
 * kr_frozen_new; kr_frozen_thaw gives a private copy of the tree to change and route.
 */
typedef struct kr_frozen {
    atomic_uint refs;
    kr_arena *arena;
    kr_xml_node *elem;
    kr_rbuf *bytes; /* serialized in jabber:client, kr_stanza_meta set */
} kr_frozen;

/** Freeze a copy of elem (one reference). kind/type go into bytes->meta. */
kr_frozen *kr_frozen_new(const kr_xml_node *elem, kr_stanza_kind kind, kr_stanza_type type);
kr_frozen *kr_frozen_ref(kr_frozen *f);
void kr_frozen_unref(kr_frozen *f);
/** A deep copy of the frozen tree in arena. */
kr_xml_node *kr_frozen_thaw(const kr_frozen *f, kr_arena *arena);

/** The meta value kurierd puts on a stanza's serialization (kr_rbuf.meta): kind and type,
 * so filters and transports know what they carry without parsing it. */
static inline unsigned kr_stanza_meta(kr_stanza_kind kind, kr_stanza_type type)
{
    return (unsigned)kind << 16 | (unsigned)type;
}
static inline kr_stanza_kind kr_stanza_meta_kind(unsigned meta)
{
    return (kr_stanza_kind)(meta >> 16);
}
static inline kr_stanza_type kr_stanza_meta_type(unsigned meta)
{
    return (kr_stanza_type)(meta & 0xffffu);
}
/** The meta value of a stanza element (kind from its name, type from its attribute). */
unsigned kr_stanza_meta_of(const kr_xml_node *elem);
/** The meta value of a stanza our serializer wrote earlier (a stored message): kind and
 * type read from its start tag. */
unsigned kr_stanza_meta_of_bytes(const char *data, size_t len);
/** Serialize st->elem (jabber:client) into a new buffer with its meta set. */
kr_rbuf *kr_stanza_serialize(const kr_stanza *st);

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
