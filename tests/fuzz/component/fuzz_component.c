/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * libFuzzer harness of an external component stream (XEP-0114) as the
 * component's bytes reach it: the protocol of src/server/component_stream.c
 * (the code kurierd runs on every component connection, component.c being
 * only its glue to kr_conn) with fakes for what lies around it. Reached: the
 * stream header checks (namespace, 'to', unknown domains), the handshake
 * (right and wrong digests, upper-case hex, children, a domain another
 * stream serves), stanzas with their from/to checks, the namespace rename,
 * decode and error replies, deliveries to the component, the
 * authentication timeout, pings and the idle close.
 * The fake world: our user domain is kurier.test; the components are
 * gw.kurier.test (secret "fuzz secret"), other.kurier.test ("other
 * secret"), busy.kurier.test ("busy secret", but another stream serves it:
 * claiming it fails) and locked.kurier.test, whose secret is 32 bytes the
 * input cannot know. Stream ids are counters ("%032x" of 1, 2, ...), so
 * seeds can carry right digests (tests/fuzz/seeds.py computes them). A fake
 * clock starts at 1000 s; auth_timeout_s is 30 and idle_timeout_s 60.
 * Checks beyond no crash, leak or UB: (1) everything written to the
 * component parses as one stream within the default limits, opened by a
 * header in jabber:component:accept carrying the id handed out and 'from'
 * the component's domain (or ours before one was accepted), and it ends
 * closed; (2) the domain is claimed at most once, only after a <handshake/>
 * whose text (as a second parser over the same input reads it) is the right
 * digest for the current id, and never for locked.kurier.test; <handshake/>
 * is written only after a claim that succeeded; (3) a stanza is routed only
 * from an authenticated, open stream, in jabber:client, with 'from' on the
 * claimed domain and a 'to'; (4) error replies are type='error' and go back
 * to a JID on the claimed domain; (5) nothing but the header, a stream error
 * and the end tag is written before the handshake succeeds; (6) at most one
 * ping is unanswered, and an authenticated stream silent for
 * idle_timeout_s is closed by its timer; an unauthenticated one is closed
 * when auth_timeout_s passes; (7) a delivery is written exactly when the
 * stream is authenticated and open, and routed stanzas and replies parse.
 * Input: byte 0 = flags: bit 0 the input brings its own stream header (else
 * to='gw.kurier.test' is put in front), bit 1 first authenticate as
 * gw.kurier.test with the right digest (implies the standard header), bit 2
 * deliver a message to the component after every feed, bits 3-4 how far the
 * clock moves after each feed (0: not, 1: 1 s, 2: 25 s, 3: 31 s; due timers
 * then fire); bytes 1-2 = seed of how the rest is split into feeds (0: one
 * feed; 1: one feed per line, the newline ending it; else random pieces).
 * KR_FUZZ_VERBOSE=1 prints what the server wrote and routed.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/error.h"
#include "core/log.h"
#include "server/component_stream.h"
#include "server/hosts.h"
#include "server/stanza.h"
#include "xml/parser.h"
#include "xml/serialize.h"

#define FUZZ_PREFIX 3
#define FUZZ_AUTH_S 30
#define FUZZ_IDLE_S 60
#define FUZZ_HANDSHAKES_MAX 64
#define FUZZ_HEADER                                                                                \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "                         \
    "xmlns:stream='http://etherx.jabber.org/streams' to='gw.kurier.test'>"
#define FUZZ_DELIVERY                                                                              \
    "<message from='alice@kurier.test/fuzz' to='bot@gw.kurier.test' type='chat'>"                  \
    "<body>hi</body></message>"

enum {
    FUZZ_OWN_HEADER = 1,
    FUZZ_PREAUTH = 2,
    FUZZ_DELIVER = 4,
};

static const uint64_t fuzz_clock_steps[4] = {0, 1000, 25000, 31000};

typedef struct fuzz_comp {
    kr_component_stream *s;
    unsigned flags;
    uint64_t step;
    bool closing;
    uint64_t now; /* fake clock, ms */
    uint64_t due; /* timer, 0: not armed */
    unsigned ids;
    char cur_id[33];
    char *claimed;      /* the domain this stream claimed */
    bool handshake_out; /* <handshake/> written */
    unsigned pings_out; /* pings written and not yet followed by input */
    uint64_t last_input;
    /* what the component sent, as a second parser reads it */
    kr_xml_parser *shadow;
    char *handshakes[FUZZ_HANDSHAKES_MAX]; /* texts of its <handshake/>s, lower-cased */
    size_t nhandshakes;
    /* output to the component, checked as it is written */
    kr_buf out;
    kr_xml_parser *check;
    bool check_closed;
    kr_buf routed; /* routed stanzas and error replies, serialized */
} fuzz_comp;

static void fuzz_die(fuzz_comp *p, const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_component: %s\n", what);
    if (detail)
        fprintf(stderr, "  %s\n", detail);
    if (p && p->out.len)
        fprintf(stderr, "  output: %.*s\n", (int)p->out.len, p->out.data);
    abort();
}

/* 32 bytes nobody can type: the secret of locked.kurier.test. */
static const char fuzz_locked_secret[] = "\x01\x9c\xe2\x7f\xb3\x10\x5a\xd4\x88\x2e\xf1\x63"
                                         "\xc7\x04\x9b\x3d\xe5\x71\x0f\xaa\x56\x92\x18\xcd"
                                         "\x6b\x37\xf9\x40\x8e\x25\xb1\x7c";

static const char *fuzz_secret_of(const char *domain)
{
    if (strcmp(domain, "gw.kurier.test") == 0)
        return "fuzz secret";
    if (strcmp(domain, "other.kurier.test") == 0)
        return "other secret";
    if (strcmp(domain, "busy.kurier.test") == 0)
        return "busy secret";
    if (strcmp(domain, "locked.kurier.test") == 0)
        return fuzz_locked_secret;
    return NULL;
}

/* The address table the stream decodes stanzas with (made once). */
static const kr_hosts *fuzz_hosts(void)
{
    static kr_hosts *hosts;
    if (!hosts) {
        hosts = kr_hosts_new();
        kr_hosts_add(hosts, "kurier.test", KR_HOST_USER, NULL, NULL, NULL);
        kr_hosts_add(hosts, "gw.kurier.test", KR_HOST_COMPONENT, NULL, NULL, NULL);
        kr_hosts_add(hosts, "other.kurier.test", KR_HOST_COMPONENT, NULL, NULL, NULL);
        kr_hosts_add(hosts, "busy.kurier.test", KR_HOST_COMPONENT, NULL, NULL, NULL);
        kr_hosts_add(hosts, "locked.kurier.test", KR_HOST_COMPONENT, NULL, NULL, NULL);
    }
    return hosts;
}

/* ---- the second reader of the component's input ---------------------------------------------- */

static void fuzz_shadow_elem(void *ud, kr_xml_node *e, kr_arena *a)
{
    fuzz_comp *p = ud;
    if (strcmp(e->name, "handshake") == 0 && p->nhandshakes < FUZZ_HANDSHAKES_MAX) {
        char *t = strdup(kr_xml_text_get(a, e));
        for (char *c = t; *c; c++)
            if (*c >= 'A' && *c <= 'F')
                *c = (char)(*c - 'A' + 'a');
        p->handshakes[p->nhandshakes++] = t;
    }
    kr_arena_free(a);
}

static bool fuzz_handshake_seen(fuzz_comp *p, const char *digest)
{
    for (size_t i = 0; i < p->nhandshakes; i++)
        if (strcmp(p->handshakes[i], digest) == 0)
            return true;
    return false;
}

/* ---- the checker of what the server writes --------------------------------------------------- */

static void fuzz_check_header(void *ud, const kr_xml_stream_header *hdr)
{
    fuzz_comp *p = ud;
    const char *from = kr_xml_attr_get(hdr->elem, "from");
    const char *id = kr_xml_attr_get(hdr->elem, "id");
    if (strcmp(hdr->default_ns, KR_NS_COMPONENT) != 0)
        fuzz_die(p, "our stream header is not jabber:component:accept", hdr->default_ns);
    if (!from || (strcmp(from, "kurier.test") != 0 && !fuzz_secret_of(from)))
        fuzz_die(p, "our stream header's 'from' is neither ours nor a component's", from);
    if (!id || strcmp(id, p->cur_id) != 0)
        fuzz_die(p, "our stream header's id is not the one handed out", id);
}

static void fuzz_check_elem(void *ud, kr_xml_node *e, kr_arena *a)
{
    fuzz_comp *p = ud;
    if (strcmp(e->ns, KR_NS_STREAM) == 0 && strcmp(e->name, "error") == 0) {
        /* a stream error may come at any time */
    } else if (strcmp(e->name, "handshake") == 0) {
        if (!p->claimed || p->handshake_out || kr_xml_first_elem(e) || e->children)
            fuzz_die(p, "<handshake/> written without a claim, twice, or not empty", NULL);
        p->handshake_out = true;
    } else if (!p->handshake_out) {
        fuzz_die(p, "a stanza written before the handshake succeeded", e->name);
    } else if (strcmp(e->name, "iq") == 0 && kr_xml_child_get(e, "urn:xmpp:ping", "ping")) {
        const char *from = kr_xml_attr_get(e, "from"), *to = kr_xml_attr_get(e, "to");
        if (!from || strcmp(from, "kurier.test") != 0 || !to || strcmp(to, p->claimed) != 0)
            fuzz_die(p, "a ping not from us to the component", NULL);
        if (p->pings_out)
            fuzz_die(p, "a second ping while one is unanswered", NULL);
        p->pings_out++;
    }
    kr_arena_free(a);
}

static void fuzz_check_close(void *ud)
{
    ((fuzz_comp *)ud)->check_closed = true;
}

/* ---- the connection and the server, as the stream sees them ---------------------------------- */

static void fuzz_io_send(void *ud, const char *data, size_t len)
{
    fuzz_comp *p = ud;
    if (p->closing)
        return; /* kr_conn_send ignores output once closing */
    if (p->check_closed && len)
        fuzz_die(p, "output after </stream:stream>", NULL);
    kr_buf_append(&p->out, data, len);
    if (kr_xml_parser_feed(p->check, data, len) != 0)
        fuzz_die(p, "output to the component is not a well-formed stream",
                 kr_xml_parser_error_text(p->check));
}

static void fuzz_io_close(void *ud)
{
    ((fuzz_comp *)ud)->closing = true;
}

static bool fuzz_io_closing(void *ud)
{
    return ((fuzz_comp *)ud)->closing;
}

static void fuzz_io_timer_set(void *ud, uint64_t ms)
{
    fuzz_comp *p = ud;
    if (ms == 0)
        fuzz_die(p, "a timer of 0 ms (the stream would spin)", NULL);
    p->due = p->now + ms;
}

static uint64_t fuzz_io_now(void *ud)
{
    return ((fuzz_comp *)ud)->now;
}

static void fuzz_io_stream_id(void *ud, char out[33])
{
    fuzz_comp *p = ud;
    snprintf(p->cur_id, sizeof(p->cur_id), "%032x", ++p->ids);
    memcpy(out, p->cur_id, 33);
}

static const char *fuzz_io_secret(void *ud, const char *domain)
{
    return fuzz_secret_of(domain);
}

static bool fuzz_io_claim(void *ud, const char *domain)
{
    fuzz_comp *p = ud;
    const char *secret = fuzz_secret_of(domain);
    if (!secret || !p->s->domain || strcmp(domain, p->s->domain) != 0)
        fuzz_die(p, "claim of a domain the stream was not opened for", domain);
    if (strcmp(domain, "locked.kurier.test") == 0)
        fuzz_die(p, "authenticated without knowing the secret", domain);
    char want[KR_COMPONENT_DIGEST_HEX + 1];
    kr_component_digest(p->cur_id, secret, want);
    if (!fuzz_handshake_seen(p, want))
        fuzz_die(p, "claim without the right digest for the current stream id", want);
    if (p->claimed)
        fuzz_die(p, "a second claim", domain);
    if (strcmp(domain, "busy.kurier.test") == 0)
        return false; /* another stream serves it */
    p->claimed = strdup(domain);
    return true;
}

static void fuzz_io_route(void *ud, kr_stanza *st)
{
    fuzz_comp *p = ud;
    if (!p->claimed || !kr_component_stream_authed(p->s))
        fuzz_die(p, "stanza routed before authentication", NULL);
    if (p->closing)
        fuzz_die(p, "stanza routed from a closing stream", NULL);
    if (strcmp(st->elem->ns, KR_NS_CLIENT) != 0)
        fuzz_die(p, "stanza routed outside jabber:client", st->elem->ns);
    for (const kr_xml_node *c = kr_xml_first_elem(st->elem); c; c = kr_xml_next_elem(c))
        if (strcmp(c->ns, KR_NS_COMPONENT) == 0)
            fuzz_die(p, "a child left in jabber:component:accept", c->name);
    if (!kr_xml_attr_get(st->elem, "from") || !kr_xml_attr_get(st->elem, "to"))
        fuzz_die(p, "stanza routed without from or to attributes", NULL);
    if (!st->from.domain || strcmp(st->from.domain, p->claimed) != 0)
        fuzz_die(p, "stanza routed with a 'from' off the component's domain", st->from.domain);
    if (st->to_absent || !st->to.domain)
        fuzz_die(p, "stanza routed without a 'to'", NULL);
    kr_xml_serialize(&p->routed, st->elem, KR_NS_CLIENT);
    kr_stanza_unref(st);
}

static void fuzz_io_reply(void *ud, kr_stanza *st)
{
    fuzz_comp *p = ud;
    const kr_xml_node *e = st->elem;
    const char *type = kr_xml_attr_get(e, "type");
    if (!p->claimed)
        fuzz_die(p, "error reply before authentication", NULL);
    if (!type || strcmp(type, "error") != 0)
        fuzz_die(p, "error reply without type='error'", type);
    if (!kr_xml_attr_get(e, "from"))
        fuzz_die(p, "error reply without 'from'", NULL);
    if (!st->to.domain || strcmp(st->to.domain, p->claimed) != 0)
        fuzz_die(p, "error reply not to the component", st->to.domain);
    kr_xml_serialize(&p->routed, e, KR_NS_CLIENT);
    kr_stanza_unref(st);
}

static const kr_component_io fuzz_io = {
    .send = fuzz_io_send,
    .close = fuzz_io_close,
    .closing = fuzz_io_closing,
    .timer_set = fuzz_io_timer_set,
    .now = fuzz_io_now,
    .stream_id = fuzz_io_stream_id,
    .secret = fuzz_io_secret,
    .claim = fuzz_io_claim,
    .route = fuzz_io_route,
    .reply = fuzz_io_reply,
};

/* ---- driving the stream ---------------------------------------------------------------------- */

static void fuzz_deliver(fuzz_comp *p)
{
    bool open = kr_component_stream_authed(p->s) && !p->closing;
    size_t before = p->out.len;
    bool written = kr_component_stream_deliver(p->s, FUZZ_DELIVERY, strlen(FUZZ_DELIVERY));
    if (written != open || (p->out.len > before) != open)
        fuzz_die(p, "a delivery written to a stream that is not open, or not to an open one", NULL);
}

/* Move the clock and fire the timer while it is due. */
static void fuzz_tick(fuzz_comp *p, uint64_t ms)
{
    p->now += ms;
    for (int i = 0; i < 4 && p->due && p->due <= p->now && !p->closing; i++) {
        p->due = 0;
        bool authed = kr_component_stream_authed(p->s);
        kr_component_stream_timer(p->s);
        if (!p->closing && !p->due)
            fuzz_die(p, "the timer fired and armed no next one", NULL);
        if (!authed && !p->closing)
            fuzz_die(p, "the authentication timeout passed and the stream stays open", NULL);
        if (authed && p->now - p->last_input >= (uint64_t)FUZZ_IDLE_S * 1000 && !p->closing)
            fuzz_die(p, "an idle stream outlived idle_timeout_s", NULL);
    }
}

static void fuzz_feed(fuzz_comp *p, const char *data, size_t len)
{
    kr_xml_parser_feed(p->shadow, data, len); /* its errors are the stream's to report */
    p->last_input = p->now;
    p->pings_out = 0; /* any bytes answer a ping */
    kr_component_stream_feed(p->s, data, len);
}

/* One feed of the input: then a delivery and the clock, as the flags say. */
static void fuzz_step(fuzz_comp *p, const char *data, size_t len)
{
    fuzz_feed(p, data, len);
    if (p->flags & FUZZ_DELIVER)
        fuzz_deliver(p);
    fuzz_tick(p, p->step);
}

/* The standard header and the right handshake, with the clock standing still. */
static void fuzz_preauth(fuzz_comp *p)
{
    fuzz_feed(p, FUZZ_HEADER, strlen(FUZZ_HEADER));
    char digest[KR_COMPONENT_DIGEST_HEX + 1];
    kr_component_digest(p->cur_id, "fuzz secret", digest);
    kr_buf b = KR_BUF_INIT;
    kr_buf_printf(&b, "<handshake>%s</handshake>", digest);
    fuzz_feed(p, b.data, b.len);
    kr_buf_clear(&b);
    if (!kr_component_stream_authed(p->s) || !p->handshake_out)
        fuzz_die(p, "the right digest did not authenticate", NULL);
}

static uint32_t fuzz_next(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

/* Routed stanzas and replies, as one stream, within the default limits. */
static void fuzz_check_routed(fuzz_comp *p)
{
    kr_xml_limits lim = KR_XML_LIMITS_DEFAULT;
    kr_buf doc = KR_BUF_INIT;
    kr_buf_puts(&doc, "<stream:stream xmlns='jabber:client' "
                      "xmlns:stream='http://etherx.jabber.org/streams'>");
    kr_buf_append(&doc, p->routed.data, p->routed.len);
    kr_buf_puts(&doc, "</stream:stream>");
    kr_xml_parser *x = kr_xml_parser_new(&lim, NULL, NULL);
    if (kr_xml_parser_feed(x, doc.data, doc.len) != 0) {
        fprintf(stderr, "  routed: %s\n", doc.data);
        fuzz_die(p, "routed stanzas are not well-formed", kr_xml_parser_error_text(x));
    }
    kr_xml_parser_free(x);
    kr_buf_clear(&doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < FUZZ_PREFIX)
        return 0;
    kr_log_set_level(KR_LOG_ERROR);
    fuzz_comp p = {.out = KR_BUF_INIT, .routed = KR_BUF_INIT, .now = 1000000};
    p.flags = data[0];
    p.step = fuzz_clock_steps[(data[0] >> 3) & 3];
    if (p.flags & FUZZ_PREAUTH)
        p.flags &= ~(unsigned)FUZZ_OWN_HEADER;
    p.last_input = p.now;
    kr_xml_limits lim = KR_XML_LIMITS_DEFAULT;
    kr_xml_parser_cbs ccbs = {fuzz_check_header, fuzz_check_elem, fuzz_check_close};
    p.check = kr_xml_parser_new(&lim, &ccbs, &p);
    kr_xml_limits in_lim =
        kr_stanza_intake_limits(lim.max_stanza_bytes, lim.max_depth, lim.max_attrs);
    kr_xml_parser_cbs scbs = {NULL, fuzz_shadow_elem, NULL};
    p.shadow = kr_xml_parser_new(&in_lim, &scbs, &p);

    kr_component_opts o = {
        .io = &fuzz_io,
        .ud = &p,
        .log_ctx = "comp fuzz",
        .hosts = fuzz_hosts(),
        .server_domain = "kurier.test",
        .limits = in_lim,
        .auth_timeout_s = FUZZ_AUTH_S,
        .idle_timeout_s = FUZZ_IDLE_S,
    };
    p.s = kr_component_stream_new(&o);
    if (p.due != p.now + FUZZ_AUTH_S * 1000)
        fuzz_die(&p, "a new stream did not arm the authentication timeout", NULL);
    if (p.flags & FUZZ_PREAUTH)
        fuzz_preauth(&p);
    else if (!(p.flags & FUZZ_OWN_HEADER))
        fuzz_step(&p, FUZZ_HEADER, strlen(FUZZ_HEADER));

    const char *in = (const char *)data + FUZZ_PREFIX;
    size_t len = size - FUZZ_PREFIX;
    uint32_t seed = (uint32_t)data[1] | (uint32_t)data[2] << 8;
    uint32_t x = seed | 1;
    size_t off = 0;
    while (off < len && !p.closing) {
        size_t n = len - off;
        if (seed == 1) {
            const char *nl = memchr(in + off, '\n', n);
            if (nl)
                n = (size_t)(nl - (in + off)) + 1;
        } else if (seed != 0) {
            size_t want = 1 + fuzz_next(&x) % 64;
            if (want < n)
                n = want;
        }
        fuzz_step(&p, in + off, n);
        off += n;
    }

    /* The component stays silent: the timers end the stream (authentication timeout, or
     * the unanswered ping and the idle close), and the stream must then be closed. */
    for (int i = 0; i < 4 && !p.closing; i++)
        fuzz_tick(&p, (uint64_t)FUZZ_IDLE_S * 1000);
    if (!p.closing)
        fuzz_die(&p, "a silent stream is still open after two idle timeouts", NULL);
    if (!p.check_closed)
        fuzz_die(&p, "the server's stream did not end with </stream:stream>", NULL);
    fuzz_check_routed(&p);
    if (getenv("KR_FUZZ_VERBOSE")) /* to see what a seed reaches */
        fprintf(stderr, "output: %.*s\nrouted: %.*s\n", (int)p.out.len, p.out.data,
                (int)p.routed.len, p.routed.data);

    kr_component_stream_free(p.s);
    kr_xml_parser_free(p.check);
    kr_xml_parser_free(p.shadow);
    for (size_t i = 0; i < p.nhandshakes; i++)
        free(p.handshakes[i]);
    free(p.claimed);
    kr_buf_clear(&p.out);
    kr_buf_clear(&p.routed);
    return 0;
}
