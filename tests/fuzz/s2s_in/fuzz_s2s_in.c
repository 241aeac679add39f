/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * libFuzzer harness of an inbound s2s stream as a remote server's bytes
 * reach it after TLS: the protocol of src/server/s2s_in_stream.c (the code
 * kurierd runs on every inbound s2s connection, s2s_in.c being only its
 * glue to kr_conn) with fakes for what lies around it. Reached: the stream
 * header checks (namespaces, to/from, restarts), the features, STARTTLS,
 * SASL EXTERNAL, <db:result/> and <db:verify/>, the answers of dialback
 * verifications (in time, late, after a restart, never, unreachable), and
 * stanzas with their from/to checks, decode and error replies.
 * The fake world: we serve kurier.test and second.test, with the prepared
 * dialback secret of "fuzz secret"; every remote domain's authoritative
 * server shares the secret "other secret" and answers a verification
 * valid exactly when the key is kr_dialback_key(other, local, remote, id)
 * for the stream id this harness handed out (ids are counters, so seeds can
 * carry right keys: tests/fuzz/seeds.py); a peer certificate, when valid,
 * names other.test and peer.test.
 * Checks beyond no crash, leak or UB: (1) everything written to the peer,
 * restarted after <proceed/>/<success/>, parses as streams within the
 * default limits and ends closed; (2) every routed stanza and every error
 * reply parses within the default limits; (3) a stanza is routed only after
 * TLS, in jabber:client, with from/to domains that are a pair the stream
 * authenticated and the fake world vouched for; (4) every pair the stream
 * holds was vouched for (a right dialback key for the current stream id, or
 * a valid certificate naming the remote domain), so a forged key never
 * authenticates; (5) dialback answers have from, to and type, and
 * valid/invalid ones come from one of our domains; (6) no more than 16
 * verifications are out at once, and none before TLS or when valid
 * certificates are required; (7) the stream header
 * we send carries the id we handed out. At the end the silent peer meets
 * the timer: a stream error (not authenticated) or a clean close.
 * Input: byte 0 = flags: bit 0 the input brings its own stream header (else
 * from='other.test' to='kurier.test' is put in front), bit 1 TLS from the
 * start (direct TLS), bit 2 the peer's certificate verifies, bit 3
 * s2s.require_valid_certificates, bit 4 first authenticate other.test ->
 * kurier.test by dialback with the right key (implies TLS and the standard
 * header; then the input continues inside that stream), bits 5-6 when
 * verifications are answered (0 after each feed, 1 at the end, 2 never, 3
 * after each feed but unreachable); bytes 1-2 = seed of how the rest is split
 * into feeds (0: one feed; 1: one feed per line, the newline ending it).
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
#include "core/hmap.h"
#include "core/log.h"
#include "server/dialback.h"
#include "server/hosts.h"
#include "server/s2s_in_stream.h"
#include "server/stanza.h"
#include "xml/parser.h"
#include "xml/serialize.h"

#define FUZZ_PREFIX 3
#define FUZZ_PENDING_MAX 16 /* KR_S2S_IN_PENDING_MAX */
#define FUZZ_HEADER                                                                                \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "                                   \
    "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "           \
    "from='other.test' to='kurier.test' version='1.0'>"

enum {
    FUZZ_OWN_HEADER = 1,
    FUZZ_DIRECT_TLS = 2,
    FUZZ_CERT_VALID = 4,
    FUZZ_REQUIRE_VALID = 8,
    FUZZ_PREAUTH = 16,
};
enum { FUZZ_ANSWER_EACH, FUZZ_ANSWER_END, FUZZ_ANSWER_NEVER, FUZZ_ANSWER_UNREACHABLE };

typedef struct fuzz_pending {
    kr__s2s_verify *v;
    char id[33]; /* the stream id current when it was asked */
} fuzz_pending;

typedef struct fuzz_peer {
    kr__s2s_in_stream *s;
    unsigned flags;
    unsigned answer;
    bool closing;
    bool tls_pending; /* start_tls was called: the handshake completes after this feed */
    bool authenticated_cb;
    unsigned ids;
    char cur_id[33];
    char our_secret[KR_DIALBACK_HEX];
    char other_secret[KR_DIALBACK_HEX];
    kr_strmap vouched; /* "local remote" the fake world stands behind */
    fuzz_pending pend[FUZZ_PENDING_MAX];
    size_t npend;
    /* output to the peer, checked as it is written */
    kr_buf out;
    kr_xml_parser *check;
    bool check_restart; /* <proceed/> or <success/> seen: the next bytes open a new stream */
    bool check_closed;  /* </stream:stream> seen */
    kr_buf routed;      /* routed stanzas and error replies, serialized */
} fuzz_peer;

static void fuzz_die(fuzz_peer *p, const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_s2s_in: %s\n", what);
    if (detail)
        fprintf(stderr, "  %s\n", detail);
    if (p && p->out.len)
        fprintf(stderr, "  output: %.*s\n", (int)p->out.len, p->out.data);
    abort();
}

static bool fuzz_served_name(const char *domain)
{
    return strcmp(domain, "kurier.test") == 0 || strcmp(domain, "second.test") == 0;
}

/* Our two domains as the address table the stream decodes stanzas with (made once). */
static const kr_hosts *fuzz_hosts(void)
{
    static kr_hosts *hosts;
    if (!hosts) {
        hosts = kr_hosts_new();
        kr_hosts_add(hosts, "kurier.test", KR_HOST_USER, NULL, NULL, NULL);
        kr_hosts_add(hosts, "second.test", KR_HOST_USER, NULL, NULL, NULL);
    }
    return hosts;
}

static bool fuzz_cert_names(const char *domain)
{
    return strcmp(domain, "other.test") == 0 || strcmp(domain, "peer.test") == 0;
}

static void fuzz_vouch(fuzz_peer *p, const char *local, const char *remote)
{
    kr_buf key = KR_BUF_INIT;
    kr_buf_printf(&key, "%s %s", local, remote);
    kr_strmap_put(&p->vouched, key.data, p);
    kr_buf_clear(&key);
}

/* ---- the checker of what the server writes ------------------------------------------------ */

static void fuzz_check_header(void *ud, const kr_xml_stream_header *hdr)
{
    fuzz_peer *p = ud;
    const char *from = kr_xml_attr_get(hdr->elem, "from");
    const char *id = kr_xml_attr_get(hdr->elem, "id");
    if (strcmp(hdr->default_ns, "jabber:server") != 0)
        fuzz_die(p, "our stream header is not jabber:server", hdr->default_ns);
    if (!from || !fuzz_served_name(from))
        fuzz_die(p, "our stream header's 'from' is not one of our domains", from);
    if (!id || strcmp(id, p->cur_id) != 0)
        fuzz_die(p, "our stream header's id is not the one handed out", id);
}

static void fuzz_check_elem(void *ud, kr_xml_node *e, kr_arena *a)
{
    fuzz_peer *p = ud;
    if (strcmp(e->ns, KR_NS_DIALBACK) == 0) {
        const char *from = kr_xml_attr_get(e, "from");
        const char *type = kr_xml_attr_get(e, "type");
        if (!from || !kr_xml_attr_get(e, "to") || !type)
            fuzz_die(p, "a dialback answer without from, to or type", NULL);
        if (strcmp(type, "error") != 0 && !fuzz_served_name(from))
            fuzz_die(p, "a dialback answer not from one of our domains", from);
        if (strcmp(e->name, "verify") == 0 && !kr_xml_attr_get(e, "id"))
            fuzz_die(p, "a <db:verify/> answer without id", NULL);
    }
    if ((strcmp(e->name, "proceed") == 0 && strcmp(e->ns, KR_NS_TLS) == 0) ||
        (strcmp(e->name, "success") == 0 && strcmp(e->ns, KR_NS_SASL) == 0)) {
        p->check_restart = true;
        kr_xml_parser_stop(p->check);
    }
    kr_arena_free(a);
}

static void fuzz_check_close(void *ud)
{
    fuzz_peer *p = ud;
    p->check_closed = true;
}

static void fuzz_check_feed(fuzz_peer *p, const char *data, size_t len)
{
    if (p->check_closed && len)
        fuzz_die(p, "output after </stream:stream>", NULL);
    if (p->check_restart) {
        p->check_restart = false;
        kr_xml_parser_reset(p->check);
    }
    int rc = kr_xml_parser_feed(p->check, data, len);
    if (rc != 0 && !(rc == KR_ESTOPPED && p->check_restart))
        fuzz_die(p, "output to the peer is not a well-formed stream",
                 kr_xml_parser_error_text(p->check));
}

/* ---- the connection, as the stream sees it ------------------------------------------------ */

static void fuzz_io_send(void *ud, const char *data, size_t len)
{
    fuzz_peer *p = ud;
    if (p->closing)
        return; /* kr_conn_send ignores output once closing */
    kr_buf_append(&p->out, data, len);
    fuzz_check_feed(p, data, len);
}

static void fuzz_io_close(void *ud)
{
    ((fuzz_peer *)ud)->closing = true;
}

static bool fuzz_io_closing(void *ud)
{
    return ((fuzz_peer *)ud)->closing;
}

static void fuzz_io_start_tls(void *ud)
{
    fuzz_peer *p = ud;
    if (p->s->tls || p->tls_pending)
        fuzz_die(p, "STARTTLS twice", NULL);
    p->tls_pending = true;
}

static bool fuzz_io_served(void *ud, const char *domain)
{
    return fuzz_served_name(domain);
}

static bool fuzz_io_cert_ok(void *ud, const char *domain, char *why, size_t whylen)
{
    fuzz_peer *p = ud;
    if (!p->s->tls)
        fuzz_die(p, "certificate asked for before TLS", domain);
    if (!(p->flags & FUZZ_CERT_VALID) || !fuzz_cert_names(domain)) {
        snprintf(why, whylen, "the fake certificate does not name it");
        return false;
    }
    return true;
}

static void fuzz_io_stream_id(void *ud, char out[33])
{
    fuzz_peer *p = ud;
    snprintf(p->cur_id, sizeof(p->cur_id), "%032x", ++p->ids);
    memcpy(out, p->cur_id, 33);
}

static void fuzz_io_verify(void *ud, kr__s2s_verify *v)
{
    fuzz_peer *p = ud;
    if (!p->s->tls)
        fuzz_die(p, "dialback verification before TLS", v->remote);
    if (p->flags & FUZZ_REQUIRE_VALID)
        fuzz_die(p, "dialback verification though valid certificates are required", v->remote);
    if (!fuzz_served_name(v->local))
        fuzz_die(p, "dialback verification for a domain we do not serve", v->local);
    if (p->npend >= FUZZ_PENDING_MAX)
        fuzz_die(p, "more than 16 dialback verifications out at once", NULL);
    fuzz_pending *f = &p->pend[p->npend++];
    f->v = v;
    memcpy(f->id, p->cur_id, sizeof(f->id));
}

static void fuzz_io_authenticated(void *ud)
{
    fuzz_peer *p = ud;
    if (p->authenticated_cb || !kr__s2s_in_stream_authed(p->s))
        fuzz_die(p, "authenticated() not exactly once, at the first pair", NULL);
    p->authenticated_cb = true;
}

static void fuzz_io_route(void *ud, kr_stanza *st)
{
    fuzz_peer *p = ud;
    if (!p->s->tls)
        fuzz_die(p, "stanza routed before TLS", NULL);
    if (p->closing)
        fuzz_die(p, "stanza routed from a closing stream", NULL);
    if (strcmp(st->elem->ns, KR_NS_CLIENT) != 0)
        fuzz_die(p, "stanza routed outside jabber:client", st->elem->ns);
    if (!st->from.domain || !st->to.domain)
        fuzz_die(p, "stanza routed without from or to", NULL);
    const char *from = kr_xml_attr_get(st->elem, "from");
    const char *to = kr_xml_attr_get(st->elem, "to");
    if (!from || !to)
        fuzz_die(p, "stanza routed without from or to attributes", NULL);
    if (!fuzz_served_name(st->to.domain))
        fuzz_die(p, "stanza routed to a domain we do not serve", st->to.domain);
    kr_buf key = KR_BUF_INIT;
    kr_buf_printf(&key, "%s %s", st->to.domain, st->from.domain);
    bool vouched = kr_strmap_get(&p->vouched, key.data) != NULL;
    if (!vouched || !kr__s2s_in_stream_paired(p->s, st->to.domain, st->from.domain))
        fuzz_die(p, "stanza routed for a domain pair that is not authenticated", key.data);
    kr_buf_clear(&key);
    kr_xml_serialize(&p->routed, st->elem, KR_NS_CLIENT);
    kr_stanza_unref(st);
}

static void fuzz_io_reply(void *ud, kr_stanza *st)
{
    fuzz_peer *p = ud;
    const kr_xml_node *e = st->elem;
    const char *type = kr_xml_attr_get(e, "type");
    const char *from = kr_xml_attr_get(e, "from");
    if (!type || strcmp(type, "error") != 0)
        fuzz_die(p, "error reply without type='error'", type);
    if (!from || !fuzz_served_name(from))
        fuzz_die(p, "error reply not from one of our domains", from);
    if (!kr_xml_attr_get(e, "to"))
        fuzz_die(p, "error reply without 'to'", NULL);
    kr_xml_serialize(&p->routed, e, KR_NS_CLIENT);
    kr_stanza_unref(st);
}

static const kr__s2s_in_io fuzz_io = {
    .send = fuzz_io_send,
    .close = fuzz_io_close,
    .closing = fuzz_io_closing,
    .start_tls = fuzz_io_start_tls,
    .served = fuzz_io_served,
    .cert_ok = fuzz_io_cert_ok,
    .stream_id = fuzz_io_stream_id,
    .verify = fuzz_io_verify,
    .authenticated = fuzz_io_authenticated,
    .route = fuzz_io_route,
    .reply = fuzz_io_reply,
};

/* ---- the authoritative servers ------------------------------------------------------------ */

static void fuzz_answer(fuzz_peer *p, bool unreachable)
{
    size_t n = p->npend;
    fuzz_pending pend[FUZZ_PENDING_MAX];
    memcpy(pend, p->pend, n * sizeof(*pend));
    p->npend = 0; /* answering may bring new requests */
    for (size_t i = 0; i < n; i++) {
        kr__s2s_verify *v = pend[i].v;
        char want[KR_DIALBACK_HEX];
        kr_dialback_key(p->other_secret, v->local, v->remote, pend[i].id, want);
        bool right = strcmp(v->id, pend[i].id) == 0 && strcmp(v->key, want) == 0;
        v->result = unreachable ? KR_DB_UNREACHABLE : right ? KR_DB_VALID : KR_DB_INVALID;
        if (v->result == KR_DB_VALID && strcmp(pend[i].id, p->cur_id) == 0 && !p->closing)
            fuzz_vouch(p, v->local, v->remote);
        kr__s2s_in_stream_verified(p->s, v);
    }
}

/* Every pair the stream holds is one the fake world vouched for. */
static void fuzz_check_pairs(fuzz_peer *p)
{
    const kr_strmap *m = &p->s->pairs;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key && !kr_strmap_get(&p->vouched, m->slots[i].key))
            fuzz_die(p, "the stream authenticated a pair nobody vouched for", m->slots[i].key);
    if (p->authenticated_cb != kr__s2s_in_stream_authed(p->s))
        fuzz_die(p, "authenticated() and the stream's pairs disagree", NULL);
}

static void fuzz_step(fuzz_peer *p, const char *data, size_t len)
{
    kr__s2s_in_stream_feed(p->s, data, len);
    if (p->tls_pending && !p->closing) {
        p->tls_pending = false;
        kr__s2s_in_stream_tls_ready(p->s);
    }
    if (p->answer == FUZZ_ANSWER_EACH || p->answer == FUZZ_ANSWER_UNREACHABLE)
        fuzz_answer(p, p->answer == FUZZ_ANSWER_UNREACHABLE);
    fuzz_check_pairs(p);
}

/* Authenticate other.test -> kurier.test the way a real peer does, with the right key. */
static void fuzz_preauth(fuzz_peer *p)
{
    fuzz_step(p, FUZZ_HEADER, strlen(FUZZ_HEADER));
    char key[KR_DIALBACK_HEX];
    kr_dialback_key(p->other_secret, "kurier.test", "other.test", p->cur_id, key);
    kr_buf b = KR_BUF_INIT;
    kr_buf_printf(&b, "<db:result from='other.test' to='kurier.test'>%s</db:result>", key);
    unsigned answer = p->answer;
    p->answer = FUZZ_ANSWER_EACH;
    fuzz_step(p, b.data, b.len);
    p->answer = answer;
    kr_buf_clear(&b);
    if (!kr__s2s_in_stream_paired(p->s, "kurier.test", "other.test"))
        fuzz_die(p, "dialback with the right key did not authenticate", NULL);
}

static uint32_t fuzz_next(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

/* Routed stanzas and replies, as one stream, within the default limits. */
static void fuzz_check_routed(fuzz_peer *p)
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
    fuzz_peer p = {.out = KR_BUF_INIT, .routed = KR_BUF_INIT};
    p.flags = data[0];
    p.answer = (data[0] >> 5) & 3;
    if (p.flags & FUZZ_PREAUTH)
        p.flags = (p.flags | FUZZ_DIRECT_TLS) & ~(unsigned)(FUZZ_REQUIRE_VALID | FUZZ_OWN_HEADER);
    kr_dialback_secret_prepare("fuzz secret", 11, p.our_secret);
    kr_dialback_secret_prepare("other secret", 12, p.other_secret);
    kr_strmap_init(&p.vouched);
    if (p.flags & FUZZ_CERT_VALID) {
        /* SASL EXTERNAL may authenticate a certificate's names for either of our domains. */
        fuzz_vouch(&p, "kurier.test", "other.test");
        fuzz_vouch(&p, "kurier.test", "peer.test");
        fuzz_vouch(&p, "second.test", "other.test");
        fuzz_vouch(&p, "second.test", "peer.test");
    }
    kr_xml_limits lim = KR_XML_LIMITS_DEFAULT;
    kr_xml_parser_cbs ccbs = {fuzz_check_header, fuzz_check_elem, fuzz_check_close};
    p.check = kr_xml_parser_new(&lim, &ccbs, &p);

    kr_xml_limits def = KR_XML_LIMITS_DEFAULT;
    kr__s2s_in_opts o = {
        .io = &fuzz_io,
        .ud = &p,
        .log_ctx = "s2s-in fuzz",
        .default_domain = "kurier.test",
        .hosts = fuzz_hosts(),
        .secret = p.our_secret,
        .require_valid_certificates = (p.flags & FUZZ_REQUIRE_VALID) != 0,
        .limits = kr_stanza_intake_limits(def.max_stanza_bytes, def.max_depth, def.max_attrs),
    };
    p.s = kr__s2s_in_stream_new(&o);
    if (p.flags & FUZZ_DIRECT_TLS)
        kr__s2s_in_stream_tls_ready(p.s);
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
    if (p.answer == FUZZ_ANSWER_END)
        fuzz_answer(&p, false);
    fuzz_check_pairs(&p);

    /* The peer stays silent: the timer ends the stream as s2s_in.c's does (authentication
     * timeout, or idle), and the server's last stream must then be closed cleanly. */
    if (!p.closing && !kr__s2s_in_stream_authed(p.s))
        kr__s2s_in_stream_error(p.s, "connection-timeout", "Authentication took too long");
    else if (!p.closing)
        kr__s2s_in_stream_close(p.s);
    if (!p.check_closed)
        fuzz_die(&p, "the server's stream did not end with </stream:stream>", NULL);
    fuzz_check_routed(&p);
    if (getenv("KR_FUZZ_VERBOSE")) /* to see what a seed reaches */
        fprintf(stderr, "output: %.*s\nrouted: %.*s\n", (int)p.out.len, p.out.data,
                (int)p.routed.len, p.routed.data);

    for (size_t i = 0; i < p.npend; i++)
        kr__s2s_verify_free(p.pend[i].v);
    kr__s2s_in_stream_free(p.s);
    kr_xml_parser_free(p.check);
    kr_strmap_clear(&p.vouched);
    kr_buf_clear(&p.out);
    kr_buf_clear(&p.routed);
    return 0;
}
