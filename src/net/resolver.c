/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * libunbound on a libuv loop (see resolver.h). libunbound runs its queries on
 * a background thread (ub_ctx_async(ctx, 1): a thread, never a fork, in a
 * threaded server); finished answers wait in a pipe whose end ub_fd() gives
 * us, and the uv_poll_t watching it calls ub_process(), which runs our
 * per-query callbacks on the loop's thread.
 *
 * A lookup (struct req) moves through two phases: the two SRV queries, then
 * A, AAAA (and TLSA when the SRV part was validated) for every target, all in
 * flight at once. Every query slot remembers its libunbound id while active,
 * so cancelling a lookup is ub_cancel() on each active slot. Finished lookups
 * are only marked while libunbound is calling us; their user callbacks run
 * after ub_process() returns (deliver()), so a callback may free the
 * resolver without pulling libunbound's state from under it: `busy` defers
 * the teardown to the end of the handler that is running.
 */
#include "net/resolver.h"

#include <arpa/inet.h>
#include <errno.h>
#include <idn2.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unbound.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"

#define RR_A 1
#define RR_AAAA 28
#define RR_SRV 33
#define RR_TLSA 52
#define RCODE_NOERROR 0
#define RCODE_NXDOMAIN 3
#define XMPP_SERVER_PORT 5269
/* SRV records considered per lookup before ordering; the first MAX_TARGETS are kept. */
#define MAX_SRV 64
/* A full certificate (usage x, selector 0, matching type 0) larger than this is ignored. */
#define MAX_TLSA_DATA 16384

enum qkind { Q_SRV_TLS, Q_SRV_TCP, Q_A, Q_AAAA, Q_TLSA };

typedef struct req req;

typedef struct query {
    req *req;
    int id; /* libunbound's async id while active */
    bool active;
    enum qkind kind;
    size_t target;
} query;

typedef struct srv_rec {
    uint16_t prio, weight, port;
    bool tls;
    char host[256];
} srv_rec;

/* Per-target answers while they arrive. */
typedef struct tstate {
    struct sockaddr_storage v6[KR_RESOLVER_MAX_ADDRS], v4[KR_RESOLVER_MAX_ADDRS];
    size_t n6, n4;
    bool sec6, sec4, bogus, tlsa_sec, tlsa_failed;
    kr_tlsa tlsa[KR_RESOLVER_MAX_TLSA];
    size_t ntlsa;
} tstate;

struct req {
    kr_resolver *r;
    req *prev, *next;
    kr_resolve_cb cb;
    void *ud;
    uint64_t deadline;
    char domain[256];
    int pending;
    bool finished;
    int err;
    /* SRV phase */
    srv_rec srv[MAX_SRV];
    size_t nsrv;
    bool dot_tls, dot_tcp, srv_bogus, srv_secure;
    int srv_done;
    /* address phase */
    kr_s2s_target t[KR_RESOLVER_MAX_TARGETS];
    tstate ts[KR_RESOLVER_MAX_TARGETS];
    size_t nt;
    bool any_bogus, any_servfail;
    /* result */
    kr_s2s_target out[KR_RESOLVER_MAX_TARGETS];
    size_t nout;
    query qs[2 + 3 * KR_RESOLVER_MAX_TARGETS];
    size_t nq;
};

struct kr_resolver {
    uv_loop_t *loop;
    struct ub_ctx *ctx;
    uv_poll_t poll;
    uv_timer_t timer;
    req *reqs, *tail; /* in start order: callbacks run first come, first served */
    bool validating, started, closing;
    int busy;   /* handlers running: teardown waits for them */
    int closed; /* handles closed so far (2 to go) */
    unsigned timeout_ms;
    kr_resolver_upstream upstream;
};

static const char *const res_err_text[] = {
#define KR__RES_TEXT(name, text) text,
    KR_RESOLVER_ERR_MAP(KR__RES_TEXT)
#undef KR__RES_TEXT
};

const char *kr_resolver_strerror(int err)
{
    if (err == 0)
        return "success";
    int i = err - KR__RESOLVER_ERR_FIRST - 1;
    if (i >= 0 && (size_t)i < sizeof res_err_text / sizeof res_err_text[0])
        return res_err_text[i];
    return "unknown resolver error";
}

/* ---- lifetime ------------------------------------------------------------------------- */

static void poll_cb(uv_poll_t *h, int status, int events);
static void timer_cb(uv_timer_t *h);

kr_resolver *kr_resolver_new(uv_loop_t *loop, const char *trust_anchor, char *err, size_t errlen)
{
    if (trust_anchor && *trust_anchor && access(trust_anchor, R_OK) != 0) {
        snprintf(err, errlen, "cannot read DNSSEC trust anchor %s: %s", trust_anchor,
                 strerror(errno));
        return NULL;
    }
    struct ub_ctx *ctx = ub_ctx_create();
    if (!ctx) {
        snprintf(err, errlen, "cannot create the libunbound context");
        return NULL;
    }
    int rc = ub_ctx_async(ctx, 1);
    if (rc == 0 && trust_anchor && *trust_anchor)
        rc = ub_ctx_add_ta_file(ctx, trust_anchor);
    if (rc != 0) {
        snprintf(err, errlen, "libunbound: %s", ub_strerror(rc));
        ub_ctx_delete(ctx);
        return NULL;
    }
    kr_resolver *r = kr_xcalloc(1, sizeof *r);
    r->loop = loop;
    r->ctx = ctx;
    r->validating = trust_anchor && *trust_anchor;
    r->timeout_ms = KR_RESOLVER_DEFAULT_TIMEOUT_MS;
    r->upstream = KR_RESOLVER_UPSTREAM_SYSTEM;
    if (uv_poll_init(loop, &r->poll, ub_fd(ctx)) != 0) {
        snprintf(err, errlen, "cannot watch the libunbound pipe");
        ub_ctx_delete(ctx);
        free(r);
        return NULL;
    }
    r->poll.data = r;
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    uv_poll_start(&r->poll, UV_READABLE, poll_cb);
    uv_unref((uv_handle_t *)&r->poll); /* only lookups in flight keep the loop alive */
    return r;
}

static void req_free(req *q)
{
    for (size_t i = 0; i < q->nt; i++)
        for (size_t k = 0; k < q->ts[i].ntlsa; k++)
            free(q->ts[i].tlsa[k].data);
    for (size_t i = 0; i < q->nout; i++) {
        free(q->out[i].addrs);
        for (size_t k = 0; k < q->out[i].tlsa_count; k++)
            free(q->out[i].tlsa[k].data);
        free(q->out[i].tlsa);
    }
    free(q);
}

static void req_unlink(req *q)
{
    kr_resolver *r = q->r;
    if (q->prev)
        q->prev->next = q->next;
    else
        r->reqs = q->next;
    if (q->next)
        q->next->prev = q->prev;
    else
        r->tail = q->prev;
    q->prev = q->next = NULL;
    if (!r->reqs && !r->closing)
        uv_unref((uv_handle_t *)&r->poll);
}

static void req_cancel_queries(req *q)
{
    for (size_t i = 0; i < q->nq; i++) {
        if (q->qs[i].active) {
            /* Fails only when the answer was already taken, which cannot be the case while
             * the slot is active: ub_process() runs on this thread. */
            (void)ub_cancel(q->r->ctx, q->qs[i].id);
            q->qs[i].active = false;
        }
    }
    q->pending = 0;
}

static void handle_closed(uv_handle_t *h)
{
    kr_resolver *r = h->data;
    if (++r->closed == 2)
        free(r);
}

static void teardown(kr_resolver *r)
{
    while (r->reqs) {
        req *q = r->reqs;
        req_cancel_queries(q);
        req_unlink(q);
        req_free(q);
    }
    uv_close((uv_handle_t *)&r->poll, handle_closed); /* off epoll before the fd closes */
    uv_close((uv_handle_t *)&r->timer, handle_closed);
    ub_ctx_delete(r->ctx); /* stops the background thread; no callback runs after this */
    r->ctx = NULL;
}

void kr_resolver_free(kr_resolver *r)
{
    if (!r || r->closing)
        return;
    r->closing = true;
    if (r->busy == 0)
        teardown(r);
}

size_t kr_resolver_cancel(kr_resolver *r, void *ud)
{
    size_t n = 0;
    req *q = r->reqs;
    while (q) {
        req *next = q->next;
        if (q->ud == ud) {
            req_cancel_queries(q);
            req_unlink(q);
            req_free(q);
            n++;
        }
        q = next;
    }
    return n;
}

/* ---- configuration -------------------------------------------------------------------- */

int kr_resolver_set_option(kr_resolver *r, const char *opt, const char *val)
{
    if (r->started || !opt || !val)
        return KR_RESOLVER_ESETUP;
    return ub_ctx_set_option(r->ctx, opt, val) == 0 ? 0 : KR_RESOLVER_ESETUP;
}

int kr_resolver_load_config(kr_resolver *r, const char *path)
{
    if (r->started || !path)
        return KR_RESOLVER_ESETUP;
    return ub_ctx_config(r->ctx, path) == 0 ? 0 : KR_RESOLVER_ESETUP;
}

int kr_resolver_set_upstream(kr_resolver *r, kr_resolver_upstream mode)
{
    if (r->started || mode > KR_RESOLVER_UPSTREAM_NONE)
        return KR_RESOLVER_ESETUP;
    r->upstream = mode;
    return 0;
}

void kr_resolver_set_timeout(kr_resolver *r, unsigned ms)
{
    if (ms > 0)
        r->timeout_ms = ms;
}

bool kr_resolver_validating(const kr_resolver *r)
{
    return r->validating;
}

/* Apply the upstream choice once, just before the first query finalizes libunbound. */
static int resolver_start(kr_resolver *r)
{
    if (r->started)
        return 0;
    int rc = 0;
    switch (r->upstream) {
    case KR_RESOLVER_UPSTREAM_SYSTEM:
        /* The system's resolver is often on loopback (127.0.0.53, a local unbound), which
         * libunbound refuses to query by default. */
        rc = ub_ctx_set_option(r->ctx, "do-not-query-localhost:", "no");
        if (rc == 0 && ub_ctx_resolvconf(r->ctx, NULL) != 0)
            KR_LOG(KR_LOG_WARN, "resolver",
                   "cannot read /etc/resolv.conf: resolving from the root servers");
        (void)ub_ctx_hosts(r->ctx, NULL);
        break;
    case KR_RESOLVER_UPSTREAM_RECURSIVE:
        break;
    case KR_RESOLVER_UPSTREAM_NONE:
        /* The root's only server is loopback, which do-not-query-localhost forbids: every
         * query that local or auth-zone data does not answer fails without a packet sent. */
        rc = ub_ctx_set_option(r->ctx, "do-not-query-localhost:", "yes");
        if (rc == 0)
            rc = ub_ctx_set_stub(r->ctx, ".", "127.0.0.1", 0);
        break;
    }
    r->started = true;
    return rc == 0 ? 0 : KR_RESOLVER_ESETUP;
}

/* ---- names and records ---------------------------------------------------------------- */

static bool host_char_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* Check a dotted ASCII name (no trailing dot) and copy it; false when unusable. */
static bool name_ok(const char *s, char out[256])
{
    size_t n = strlen(s);
    if (n == 0 || n > 253)
        return false;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if (!host_char_ok((unsigned char)s[i]) || ++label > 63) {
            return false;
        }
    }
    if (label == 0)
        return false;
    memcpy(out, s, n + 1);
    return true;
}

/* Domain from the caller: IDNA2008 to A-labels when needed, trailing dot removed. */
static int domain_prepare(const char *domain, char out[256])
{
    char tmp[256];
    size_t n = strlen(domain);
    if (n == 0 || n > 255)
        return KR_RESOLVER_EINVAL;
    memcpy(tmp, domain, n + 1);
    if (tmp[n - 1] == '.')
        tmp[--n] = '\0';
    bool ascii = true;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)tmp[i] >= 0x80)
            ascii = false;
    if (ascii)
        return name_ok(tmp, out) ? 0 : KR_RESOLVER_EINVAL;
    char *a = NULL;
    if (idn2_to_ascii_8z(tmp, &a, IDN2_NONTRANSITIONAL) != IDN2_OK)
        return KR_RESOLVER_EINVAL;
    bool ok = name_ok(a, out);
    idn2_free(a);
    return ok ? 0 : KR_RESOLVER_EINVAL;
}

/* Uncompressed wire-format name to text without the trailing dot ("" for the root).
 * Returns bytes consumed or -1 when malformed or not a host name. */
static int wire_name(const unsigned char *p, size_t len, char out[256])
{
    size_t i = 0, o = 0;
    for (;;) {
        if (i >= len)
            return -1;
        unsigned l = p[i++];
        if (l == 0)
            break;
        if (l > 63 || i + l > len || o + l + 1 > 254)
            return -1;
        if (o > 0)
            out[o++] = '.';
        for (unsigned k = 0; k < l; k++) {
            if (!host_char_ok(p[i + k]))
                return -1;
            out[o++] = (char)p[i + k];
        }
        i += l;
    }
    out[o] = '\0';
    return (int)i;
}

/* ---- lookups -------------------------------------------------------------------------- */

static void ub_cb(void *mydata, int err, struct ub_result *res);

static void finish(req *q, int err)
{
    req_cancel_queries(q);
    q->finished = true;
    q->err = err;
}

static int query_start(req *q, enum qkind kind, size_t target, const char *name, int rrtype)
{
    if (q->nq >= sizeof q->qs / sizeof q->qs[0])
        return KR_RESOLVER_ESETUP;
    query *s = &q->qs[q->nq++];
    s->req = q;
    s->kind = kind;
    s->target = target;
    int rc = ub_resolve_async(q->r->ctx, name, rrtype, 1, s, ub_cb, &s->id);
    if (rc != 0) {
        KR_LOG(KR_LOG_WARN, "resolver", "cannot query %s: %s", name, ub_strerror(rc));
        q->nq--;
        return KR_RESOLVER_ESETUP;
    }
    s->active = true;
    q->pending++;
    return 0;
}

static void srv_collect(req *q, bool tls, struct ub_result *res)
{
    size_t records = 0, dots = 0;
    for (size_t i = 0; res->data && res->data[i]; i++) {
        const unsigned char *d = (const unsigned char *)res->data[i];
        size_t len = (size_t)res->len[i];
        records++;
        srv_rec s = {.tls = tls};
        if (len < 7 || wire_name(d + 6, len - 6, s.host) < 0)
            continue; /* malformed or not a host name: skip the record, keep the others */
        if (s.host[0] == '\0') {
            dots++;
            continue;
        }
        s.prio = (uint16_t)(d[0] << 8 | d[1]);
        s.weight = (uint16_t)(d[2] << 8 | d[3]);
        s.port = (uint16_t)(d[4] << 8 | d[5]);
        if (s.port == 0 || q->nsrv >= MAX_SRV)
            continue;
        q->srv[q->nsrv++] = s;
    }
    /* RFC 2782: a single record with target "." = decidedly not available. */
    if (records == 1 && dots == 1) {
        if (tls)
            q->dot_tls = true;
        else
            q->dot_tcp = true;
    }
}

/* RFC 2782 ordering over both services as one RRset (XEP-0368 §3, rule 1). */
static void srv_order(srv_rec *v, size_t n)
{
    for (size_t i = 1; i < n; i++) { /* stable sort by priority */
        srv_rec x = v[i];
        size_t j = i;
        while (j > 0 && v[j - 1].prio > x.prio) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
    for (size_t start = 0; start < n;) {
        size_t end = start;
        while (end < n && v[end].prio == v[start].prio)
            end++;
        /* zero-weight records first, as RFC 2782 asks, then weighted picks */
        for (size_t i = start + 1; i < end; i++) {
            if (v[i].weight != 0)
                continue;
            srv_rec x = v[i];
            size_t j = i;
            while (j > start && v[j - 1].weight != 0) {
                v[j] = v[j - 1];
                j--;
            }
            v[j] = x;
        }
        for (size_t pos = start; pos + 1 < end; pos++) {
            uint32_t sum = 0;
            for (size_t i = pos; i < end; i++)
                sum += v[i].weight;
            uint32_t pick = arc4random_uniform(sum + 1), run = 0;
            size_t chosen = pos;
            for (size_t i = pos; i < end; i++) {
                run += v[i].weight;
                if (run >= pick) {
                    chosen = i;
                    break;
                }
            }
            srv_rec x = v[chosen]; /* move it to pos, keeping the others in order */
            memmove(&v[pos + 1], &v[pos], (chosen - pos) * sizeof *v);
            v[pos] = x;
        }
        start = end;
    }
}

static void addr_phase(req *q)
{
    kr_resolver *r = q->r;
    if (q->srv_bogus) {
        finish(q, KR_RESOLVER_EBOGUS);
        return;
    }
    if (q->nsrv == 0) {
        if (q->dot_tcp || q->dot_tls) { /* XEP-0368 §5: no A/AAAA fallback then */
            finish(q, KR_RESOLVER_ENOSERVICE);
            return;
        }
        kr_s2s_target *t = &q->t[0];
        memcpy(t->host, q->domain, sizeof t->host);
        t->port = XMPP_SERVER_PORT;
        q->nt = 1;
    } else {
        srv_order(q->srv, q->nsrv);
        for (size_t i = 0; i < q->nsrv && q->nt < KR_RESOLVER_MAX_TARGETS; i++) {
            kr_s2s_target *t = &q->t[q->nt++];
            memcpy(t->host, q->srv[i].host, sizeof t->host);
            t->port = q->srv[i].port;
            t->direct_tls = q->srv[i].tls;
        }
    }
    bool want_tlsa = r->validating && q->srv_secure;
    for (size_t i = 0; i < q->nt; i++) {
        char name[300];
        snprintf(name, sizeof name, "%s.", q->t[i].host);
        int rc = query_start(q, Q_AAAA, i, name, RR_AAAA);
        if (rc == 0)
            rc = query_start(q, Q_A, i, name, RR_A);
        if (rc == 0 && want_tlsa) {
            snprintf(name, sizeof name, "_%u._tcp.%s.", q->t[i].port, q->t[i].host);
            rc = query_start(q, Q_TLSA, i, name, RR_TLSA);
        }
        if (rc != 0) {
            finish(q, rc);
            return;
        }
    }
}

static void addr_collect(req *q, query *s, struct ub_result *res)
{
    tstate *ts = &q->ts[s->target];
    uint16_t port = q->t[s->target].port;
    bool v6 = s->kind == Q_AAAA;
    for (size_t i = 0; res->data && res->data[i]; i++) {
        size_t *n = v6 ? &ts->n6 : &ts->n4;
        if (*n >= KR_RESOLVER_MAX_ADDRS)
            break;
        struct sockaddr_storage *ss = v6 ? &ts->v6[*n] : &ts->v4[*n];
        memset(ss, 0, sizeof *ss);
        if (v6 && res->len[i] == 16) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
            a->sin6_family = AF_INET6;
            a->sin6_port = htons(port);
            memcpy(&a->sin6_addr, res->data[i], 16);
            (*n)++;
        } else if (!v6 && res->len[i] == 4) {
            struct sockaddr_in *a = (struct sockaddr_in *)ss;
            a->sin_family = AF_INET;
            a->sin_port = htons(port);
            memcpy(&a->sin_addr, res->data[i], 4);
            (*n)++;
        }
    }
    if (v6)
        ts->sec6 = res->secure;
    else
        ts->sec4 = res->secure;
}

static void tlsa_collect(req *q, query *s, struct ub_result *res)
{
    tstate *ts = &q->ts[s->target];
    ts->tlsa_sec = res->secure;
    for (size_t i = 0; res->data && res->data[i] && ts->ntlsa < KR_RESOLVER_MAX_TLSA; i++) {
        const unsigned char *d = (const unsigned char *)res->data[i];
        size_t len = (size_t)res->len[i];
        if (len < 4 || len - 3 > MAX_TLSA_DATA)
            continue;
        kr_tlsa *t = &ts->tlsa[ts->ntlsa++];
        t->usage = d[0];
        t->selector = d[1];
        t->mtype = d[2];
        t->len = len - 3;
        t->data = kr_xmalloc(t->len);
        memcpy(t->data, d + 3, t->len);
    }
}

/* All address (and TLSA) answers are in: build what the callback gets. */
static void complete(req *q)
{
    for (size_t i = 0; i < q->nt; i++) {
        tstate *ts = &q->ts[i];
        if (ts->bogus || ts->n6 + ts->n4 == 0)
            continue;
        bool secure = q->r->validating && q->srv_secure && ts->sec6 && ts->sec4;
        if (secure && ts->tlsa_failed) {
            /* RFC 7672 and RFC 7673 (DANE for SRV): a secure server whose TLSA
             * lookup failed is unusable, else a blocked TLSA query would disable DANE. */
            q->any_servfail = true;
            continue;
        }
        kr_s2s_target *o = &q->out[q->nout++];
        *o = q->t[i];
        size_t n = ts->n6 + ts->n4;
        if (n > KR_RESOLVER_MAX_ADDRS)
            n = KR_RESOLVER_MAX_ADDRS;
        o->addrs = kr_xcalloc(n, sizeof *o->addrs);
        for (size_t k = 0; k < ts->n6 && o->addr_count < n; k++)
            o->addrs[o->addr_count++] = ts->v6[k];
        for (size_t k = 0; k < ts->n4 && o->addr_count < n; k++)
            o->addrs[o->addr_count++] = ts->v4[k];
        o->secure = secure;
        if (o->secure && ts->tlsa_sec && ts->ntlsa > 0) {
            o->tlsa = kr_xcalloc(ts->ntlsa, sizeof *o->tlsa);
            memcpy(o->tlsa, ts->tlsa, ts->ntlsa * sizeof *o->tlsa);
            o->tlsa_count = ts->ntlsa;
            ts->ntlsa = 0; /* the data buffers moved to o */
        }
    }
    if (q->nout > 0)
        finish(q, 0);
    else if (q->any_bogus)
        finish(q, KR_RESOLVER_EBOGUS);
    else if (q->any_servfail)
        finish(q, KR_RESOLVER_ESERVFAIL);
    else
        finish(q, KR_RESOLVER_ENOTFOUND);
}

static void ub_cb(void *mydata, int err, struct ub_result *res)
{
    query *s = mydata;
    req *q = s->req;
    s->active = false;
    q->pending--;
    /* NOERROR and NXDOMAIN are answers; SERVFAIL, REFUSED and the like are failures. */
    bool failed = err != 0 || !res || (res->rcode != RCODE_NOERROR && res->rcode != RCODE_NXDOMAIN);
    bool bogus = res && res->bogus;
    if (res && bogus)
        KR_LOG(KR_LOG_WARN, "resolver", "DNSSEC bogus answer for %s: %s", res->qname,
               res->why_bogus ? res->why_bogus : "no reason given");
    switch (s->kind) {
    case Q_SRV_TLS:
    case Q_SRV_TCP:
        if (bogus)
            q->srv_bogus = true;
        else if (!failed)
            srv_collect(q, s->kind == Q_SRV_TLS, res);
        if (++q->srv_done == 1)
            q->srv_secure = res && !failed && !bogus && res->secure;
        else
            q->srv_secure = q->srv_secure && res && !failed && !bogus && res->secure;
        if (q->srv_done == 2)
            addr_phase(q);
        break;
    case Q_A:
    case Q_AAAA:
        if (bogus) {
            q->ts[s->target].bogus = true;
            q->any_bogus = true;
        } else if (failed) {
            q->any_servfail = true;
        } else {
            addr_collect(q, s, res);
        }
        break;
    case Q_TLSA:
        if (bogus) { /* a secure target whose TLSA answer is bogus must not be used */
            q->ts[s->target].bogus = true;
            q->any_bogus = true;
        } else if (failed) {
            q->ts[s->target].tlsa_failed = true;
        } else {
            tlsa_collect(q, s, res);
        }
        break;
    }
    if (res)
        ub_resolve_free(res);
    if (!q->finished && q->pending == 0 && q->srv_done == 2)
        complete(q);
}

/* Run the callbacks of finished lookups; stops early when a callback frees the resolver. */
static void deliver(kr_resolver *r)
{
    while (!r->closing) {
        req *q = r->reqs;
        while (q && !q->finished)
            q = q->next;
        if (!q)
            break;
        req_unlink(q);
        q->cb(q->ud, q->err, q->err ? NULL : q->out, q->err ? 0 : q->nout);
        req_free(q);
    }
}

static void timer_arm(kr_resolver *r)
{
    uint64_t next = UINT64_MAX;
    for (req *q = r->reqs; q; q = q->next)
        if (!q->finished && q->deadline < next)
            next = q->deadline;
    if (next == UINT64_MAX) {
        uv_timer_stop(&r->timer);
        return;
    }
    uint64_t now = uv_now(r->loop);
    uv_timer_start(&r->timer, timer_cb, next > now ? next - now : 0, 0);
}

static void handlers_done(kr_resolver *r)
{
    if (--r->busy == 0 && r->closing)
        teardown(r);
    else if (!r->closing)
        timer_arm(r);
}

static void timer_cb(uv_timer_t *h)
{
    kr_resolver *r = h->data;
    r->busy++;
    uint64_t now = uv_now(r->loop);
    for (req *q = r->reqs; q; q = q->next)
        if (!q->finished && q->deadline <= now)
            finish(q, KR_RESOLVER_ETIMEOUT);
    deliver(r);
    handlers_done(r);
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
    kr_resolver *r = h->data;
    r->busy++;
    int rc = ub_process(r->ctx);
    if (rc != 0)
        KR_LOG(KR_LOG_WARN, "resolver", "libunbound: %s", ub_strerror(rc));
    deliver(r);
    handlers_done(r);
}

int kr_resolver_xmpp_server(kr_resolver *r, const char *domain, kr_resolve_cb cb, void *ud)
{
    if (!r || r->closing || !domain || !cb)
        return KR_RESOLVER_EINVAL;
    char name[256];
    int rc = domain_prepare(domain, name);
    if (rc != 0)
        return rc;
    rc = resolver_start(r);
    if (rc != 0)
        return rc;
    req *q = kr_xcalloc(1, sizeof *q);
    q->r = r;
    q->cb = cb;
    q->ud = ud;
    memcpy(q->domain, name, sizeof q->domain);
    q->deadline = uv_now(r->loop) + r->timeout_ms;
    char qname[300];
    snprintf(qname, sizeof qname, "_xmpps-server._tcp.%s.", name);
    rc = query_start(q, Q_SRV_TLS, 0, qname, RR_SRV);
    if (rc == 0) {
        snprintf(qname, sizeof qname, "_xmpp-server._tcp.%s.", name);
        rc = query_start(q, Q_SRV_TCP, 0, qname, RR_SRV);
    }
    if (rc != 0) {
        req_cancel_queries(q);
        free(q);
        return rc;
    }
    q->prev = r->tail;
    if (r->tail)
        r->tail->next = q;
    else
        uv_ref((uv_handle_t *)&r->poll);
    if (!r->reqs)
        r->reqs = q;
    r->tail = q;
    if (r->busy == 0)
        timer_arm(r);
    return 0;
}
