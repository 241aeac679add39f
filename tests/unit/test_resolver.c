/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Tests of net/resolver.c. Hermetic: every resolver runs with
 * KR_RESOLVER_UPSTREAM_NONE and answers come from libunbound local-data (or,
 * for DNSSEC, a signed auth-zone file read by libunbound itself, see
 * tests/unit/data/dnssec/make-zone.sh), so no packet leaves the process. The
 * one test that needs a server that never answers binds a UDP socket on
 * 127.0.0.1 and points libunbound at it.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/resolver.h"

#ifndef KR_TEST_DNSSEC_DIR
#error "KR_TEST_DNSSEC_DIR must name tests/unit/data/dnssec"
#endif

typedef struct got_target {
    char host[256];
    uint16_t port;
    bool direct_tls, secure;
    char addrs[KR_RESOLVER_MAX_ADDRS][INET6_ADDRSTRLEN + 8];
    size_t addr_count;
    kr_tlsa tlsa0;
    uint8_t tlsa0_data[64];
    size_t tlsa_count;
} got_target;

typedef struct got {
    int calls;
    int err;
    size_t count;
    got_target t[KR_RESOLVER_MAX_TARGETS];
    kr_resolver *free_me; /* when set, the callback frees this resolver */
} got;

static void addr_text(const struct sockaddr_storage *ss, char *out, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        snprintf(out, len, "[%s]:%u", ip, ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        snprintf(out, len, "%s:%u", ip, ntohs(a->sin_port));
    }
}

static void on_result(void *ud, int err, kr_s2s_target *targets, size_t count)
{
    got *g = ud;
    g->calls++;
    g->err = err;
    g->count = count;
    for (size_t i = 0; i < count && i < KR_RESOLVER_MAX_TARGETS; i++) {
        got_target *t = &g->t[i];
        memcpy(t->host, targets[i].host, sizeof t->host);
        t->port = targets[i].port;
        t->direct_tls = targets[i].direct_tls;
        t->secure = targets[i].secure;
        t->addr_count = targets[i].addr_count;
        for (size_t k = 0; k < targets[i].addr_count; k++)
            addr_text(&targets[i].addrs[k], t->addrs[k], sizeof t->addrs[k]);
        t->tlsa_count = targets[i].tlsa_count;
        if (targets[i].tlsa_count > 0) {
            t->tlsa0 = targets[i].tlsa[0];
            size_t n = t->tlsa0.len < sizeof t->tlsa0_data ? t->tlsa0.len : 0;
            memcpy(t->tlsa0_data, targets[i].tlsa[0].data, n);
            t->tlsa0.data = NULL;
        }
    }
    if (g->free_me)
        kr_resolver_free(g->free_me);
}

static kr_resolver *resolver_local(uv_loop_t *loop, const char *const *data)
{
    char err[256] = "";
    kr_resolver *r = kr_resolver_new(loop, NULL, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(kr_resolver_set_upstream(r, KR_RESOLVER_UPSTREAM_NONE), 0);
    assert_int_equal(kr_resolver_set_option(r, "local-zone:", "example.test. static"), 0);
    for (size_t i = 0; data && data[i]; i++)
        assert_int_equal(kr_resolver_set_option(r, "local-data:", data[i]), 0);
    return r;
}

static void lookup(kr_resolver *r, uv_loop_t *loop, const char *domain, got *g)
{
    memset(g, 0, sizeof *g);
    assert_int_equal(kr_resolver_xmpp_server(r, domain, on_result, g), 0);
    assert_int_equal(g->calls, 0); /* never from inside the call */
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(g->calls, 1);
}

static void finish(kr_resolver *r, uv_loop_t *loop)
{
    kr_resolver_free(r);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

static void test_srv_ordered_by_priority_across_both_services(void **state)
{
    const char *data[] = {"_xmpp-server._tcp.example.test. 60 IN SRV 20 0 5269 c.example.test.",
                          "_xmpp-server._tcp.example.test. 60 IN SRV 10 0 5271 b.example.test.",
                          "_xmpps-server._tcp.example.test. 60 IN SRV 5 0 5270 a.example.test.",
                          "a.example.test. 60 IN A 127.0.0.2",
                          "b.example.test. 60 IN A 127.0.0.3",
                          "c.example.test. 60 IN A 127.0.0.4",
                          NULL};
    uv_loop_t loop;
    uv_loop_init(&loop);
    kr_resolver *r = resolver_local(&loop, data);
    got g;
    lookup(r, &loop, "example.test", &g);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.count, 3);
    assert_string_equal(g.t[0].host, "a.example.test");
    assert_int_equal(g.t[0].port, 5270);
    assert_true(g.t[0].direct_tls);
    assert_string_equal(g.t[0].addrs[0], "127.0.0.2:5270");
    assert_string_equal(g.t[1].host, "b.example.test");
    assert_false(g.t[1].direct_tls);
    assert_string_equal(g.t[1].addrs[0], "127.0.0.3:5271");
    assert_string_equal(g.t[2].host, "c.example.test");
    assert_false(g.t[2].secure); /* no trust anchor: never secure */
    assert_int_equal(g.t[2].tlsa_count, 0);
    finish(r, &loop);
}

static void test_weights_give_both_orders(void **state)
{
    const char *data[] = {"_xmpp-server._tcp.example.test. 60 IN SRV 10 50 5269 x.example.test.",
                          "_xmpps-server._tcp.example.test. 60 IN SRV 10 50 5270 y.example.test.",
                          "_xmpp-server._tcp.example.test. 60 IN SRV 30 0 5269 z.example.test.",
                          "x.example.test. 60 IN A 127.0.0.2",
                          "y.example.test. 60 IN A 127.0.0.3",
                          "z.example.test. 60 IN A 127.0.0.4",
                          NULL};
    uv_loop_t loop;
    uv_loop_init(&loop);
    kr_resolver *r = resolver_local(&loop, data);
    int x_first = 0, y_first = 0;
    for (int i = 0; i < 100; i++) {
        got g;
        lookup(r, &loop, "example.test", &g);
        assert_int_equal(g.err, 0);
        assert_int_equal(g.count, 3);
        assert_string_equal(g.t[2].host, "z.example.test"); /* lower priority stays last */
        if (strcmp(g.t[0].host, "x.example.test") == 0) {
            x_first++;
            assert_string_equal(g.t[1].host, "y.example.test");
        } else {
            y_first++;
            assert_string_equal(g.t[0].host, "y.example.test");
            assert_true(g.t[0].direct_tls);
        }
    }
    /* Each order has probability 1/2; both missing in 100 runs is a 2^-99 event. */
    assert_true(x_first > 0);
    assert_true(y_first > 0);
    finish(r, &loop);
}

static void test_zero_weight_never_beats_weighted(void **state)
{
    /* RFC 2782: with weights 0 and 100, the weighted record comes first unless the random
     * pick is exactly 0 (probability 1/101): over 60 runs it must lead most of the time. */
    const char *data[] = {
        "_xmpp-server._tcp.example.test. 60 IN SRV 10 0 5269 zero.example.test.",
        "_xmpp-server._tcp.example.test. 60 IN SRV 10 100 5269 heavy.example.test.",
        "zero.example.test. 60 IN A 127.0.0.2", "heavy.example.test. 60 IN A 127.0.0.3", NULL};
    uv_loop_t loop;
    uv_loop_init(&loop);
    kr_resolver *r = resolver_local(&loop, data);
    int heavy_first = 0;
    for (int i = 0; i < 60; i++) {
        got g;
        lookup(r, &loop, "example.test", &g);
        assert_int_equal(g.count, 2);
        heavy_first += strcmp(g.t[0].host, "heavy.example.test") == 0;
    }
    assert_true(heavy_first >= 50);
    finish(r, &loop);
}

static void test_dot_target_means_no_service(void **state)
{
    const char *data[] = {"_xmpp-server._tcp.example.test. 60 IN SRV 0 0 0 .",
                          "example.test. 60 IN A 127.0.0.2", NULL};
    uv_loop_t loop;
    uv_loop_init(&loop);
    kr_resolver *r = resolver_local(&loop, data);
    got g;
    lookup(r, &loop, "example.test", &g);
    assert_int_equal(g.err, KR_RESOLVER_ENOSERVICE);
    assert_int_equal(g.count, 0);
    assert_string_equal(kr_resolver_strerror(g.err),
                        "the domain does not offer XMPP server-to-server service");
    finish(r, &loop);
}

static void test_xmpps_dot_forbids_fallback_but_keeps_starttls(void **state)
{
    /* XEP-0368 §5: "." for xmpps-server = no direct TLS; _xmpp-server still counts, and
     * with none there is no A/AAAA fallback. */
    const char *data[] = {"_xmpps-server._tcp.example.test. 60 IN SRV 0 0 0 .",
                          "example.test. 60 IN A 127.0.0.2",
                          "_xmpps-server._tcp.other.example.test. 60 IN SRV 0 0 0 .",
                          "_xmpp-server._tcp.other.example.test. 60 IN SRV 0 0 5269 "
                          "s.example.test.",
                          "s.example.test. 60 IN A 127.0.0.3",
                          NULL};
    uv_loop_t loop;
    uv_loop_init(&loop);
    kr_resolver *r = resolver_local(&loop, data);
    got g;
    lookup(r, &loop, "example.test", &g);
    assert_int_equal(g.err, KR_RESOLVER_ENOSERVICE);
    lookup(r, &loop, "other.example.test", &g);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.count, 1);
    assert_string_equal(g.t[0].host, "s.example.test");
    assert_false(g.t[0].direct_tls);
    finish(r, &loop);
}

static void test_no_srv_falls_back_to_domain_on_5269(void **state)
{
    const char *data[] = {"example.test. 60 IN A 127.0.0.9", "example.test. 60 IN AAAA ::1", NULL};
    uv_loop_t loop;
    uv_loop_init(&loop);
    kr_resolver *r = resolver_local(&loop, data);
    got g;
    lookup(r, &loop, "example.test.", &g);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.count, 1);
    assert_string_equal(g.t[0].host, "example.test");
    assert_int_equal(g.t[0].port, 5269);
    assert_false(g.t[0].direct_tls);
    assert_int_equal(g.t[0].addr_count, 2);
    assert_string_equal(g.t[0].addrs[0], "[::1]:5269"); /* AAAA first */
    assert_string_equal(g.t[0].addrs[1], "127.0.0.9:5269");
    finish(r, &loop);
}

static void test_a_and_aaaa_collected_and_bounded(void **state)
{
    const char *data[] = {
        "_xmpp-server._tcp.example.test. 60 IN SRV 0 0 5269 h.example.test.",
        "h.example.test. 60 IN A 127.0.0.2", "h.example.test. 60 IN A 127.0.0.3",
        "h.example.test. 60 IN AAAA ::1", "h.example.test. 60 IN AAAA ::2",
        "h.example.test. 60 IN AAAA ::3", "h.example.test. 60 IN AAAA ::4",
        "h.example.test. 60 IN AAAA ::5", "h.example.test. 60 IN AAAA ::6",
        "h.example.test. 60 IN AAAA ::7", "h.example.test. 60 IN AAAA ::8",
        "h.example.test. 60 IN AAAA ::9",
        /* a target without addresses is dropped, not returned empty */
        "_xmpp-server._tcp.two.example.test. 60 IN SRV 0 0 5269 none.example.test.",
        "_xmpp-server._tcp.two.example.test. 60 IN SRV 1 0 5269 v4.example.test.",
        "v4.example.test. 60 IN A 127.0.0.4", NULL};
    uv_loop_t loop;
    uv_loop_init(&loop);
    kr_resolver *r = resolver_local(&loop, data);
    got g;
    lookup(r, &loop, "example.test", &g);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.count, 1);
    assert_int_equal(g.t[0].addr_count, KR_RESOLVER_MAX_ADDRS);
    for (size_t k = 0; k < KR_RESOLVER_MAX_ADDRS; k++)
        assert_int_equal(g.t[0].addrs[k][0], '['); /* the 9 AAAA fill the bound first */
    lookup(r, &loop, "two.example.test", &g);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.count, 1);
    assert_string_equal(g.t[0].host, "v4.example.test");
    assert_string_equal(g.t[0].addrs[0], "127.0.0.4:5269");
    finish(r, &loop);
}

static void test_nxdomain_is_not_found(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    kr_resolver *r = resolver_local(&loop, NULL);
    got g;
    lookup(r, &loop, "missing.example.test", &g);
    assert_int_equal(g.err, KR_RESOLVER_ENOTFOUND);
    assert_int_equal(g.count, 0);
    /* outside any local zone with no upstream: a lookup failure, not an answer */
    lookup(r, &loop, "elsewhere.invalid-tld-kurier", &g);
    assert_int_equal(g.err, KR_RESOLVER_ESERVFAIL);
    finish(r, &loop);
}

static void test_idna_domain_and_bad_names(void **state)
{
    const char *data[] = {"xn--bcher-kva.example.test. 60 IN A 127.0.0.5", NULL};
    uv_loop_t loop;
    uv_loop_init(&loop);
    kr_resolver *r = resolver_local(&loop, data);
    got g;
    lookup(r, &loop,
           "b\xc3\xbc"
           "cher.example.test",
           &g);
    assert_int_equal(g.err, 0);
    assert_string_equal(g.t[0].host, "xn--bcher-kva.example.test");
    const char *bad[] = {"", ".", "a..b", "a b.test", "x\"y.test", "-\xff.test"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(kr_resolver_xmpp_server(r, bad[i], on_result, &g), KR_RESOLVER_EINVAL);
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(kr_resolver_xmpp_server(r, longname, on_result, &g), KR_RESOLVER_EINVAL);
    /* options are refused once lookups started */
    assert_int_equal(kr_resolver_set_option(r, "local-data:", "a.example.test. A 127.0.0.1"),
                     KR_RESOLVER_ESETUP);
    finish(r, &loop);
}

static void test_free_cancels_without_callbacks(void **state)
{
    const char *data[] = {"example.test. 60 IN A 127.0.0.9", NULL};
    uv_loop_t loop;
    uv_loop_init(&loop);
    kr_resolver *r = resolver_local(&loop, data);
    got g1 = {0}, g2 = {0};
    assert_int_equal(kr_resolver_xmpp_server(r, "example.test", on_result, &g1), 0);
    assert_int_equal(kr_resolver_xmpp_server(r, "example.test", on_result, &g2), 0);
    usleep(50 * 1000); /* let the background thread answer into the pipe */
    kr_resolver_free(r);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(g1.calls, 0);
    assert_int_equal(g2.calls, 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_cancel_by_ud_and_free_inside_callback(void **state)
{
    const char *data[] = {"example.test. 60 IN A 127.0.0.9", NULL};
    uv_loop_t loop;
    uv_loop_init(&loop);
    kr_resolver *r = resolver_local(&loop, data);
    got a = {0}, b = {0}, c = {0};
    assert_int_equal(kr_resolver_xmpp_server(r, "example.test", on_result, &a), 0);
    assert_int_equal(kr_resolver_xmpp_server(r, "example.test", on_result, &b), 0);
    assert_int_equal(kr_resolver_xmpp_server(r, "example.test", on_result, &b), 0);
    assert_int_equal(kr_resolver_cancel(r, &b), 2);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 0);
    /* Whichever callback runs first frees the resolver: the other lookup never reports. */
    memset(&a, 0, sizeof a);
    a.free_me = r;
    c.free_me = r;
    assert_int_equal(kr_resolver_xmpp_server(r, "example.test", on_result, &a), 0);
    assert_int_equal(kr_resolver_xmpp_server(r, "example.test", on_result, &c), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(a.calls + c.calls, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_timeout_cap(void **state)
{
    /* A loopback "server" that never answers: the cap ends the lookup. */
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    socklen_t sl = sizeof sin;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
    char conf[] = "/tmp/kr-resolver-XXXXXX";
    int cfd = mkstemp(conf);
    assert_true(cfd >= 0);
    FILE *f = fdopen(cfd, "w");
    fprintf(f,
            "server:\n  do-not-query-localhost: no\n  local-zone: \"test.\" nodefault\n"
            "stub-zone:\n  name: \".\"\n  stub-addr: 127.0.0.1@%u\n",
            ntohs(sin.sin_port));
    fclose(f);
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256];
    kr_resolver *r = kr_resolver_new(&loop, NULL, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(kr_resolver_set_upstream(r, KR_RESOLVER_UPSTREAM_RECURSIVE), 0);
    assert_int_equal(kr_resolver_load_config(r, conf), 0);
    kr_resolver_set_timeout(r, 300);
    uint64_t t0 = uv_hrtime();
    got g;
    lookup(r, &loop, "slow.test", &g);
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    assert_int_equal(g.err, KR_RESOLVER_ETIMEOUT);
    assert_true(ms >= 250 && ms < 3000);
    finish(r, &loop);
    unlink(conf);
    close(fd);
}

/* DNSSEC: libunbound reads a signed zone as an auth-zone "for-upstream", so its validator
 * checks those answers as if they came from the zone's servers. */
static kr_resolver *resolver_signed(uv_loop_t *loop, const char *zonefile, char *conf)
{
    int cfd = mkstemp(conf);
    assert_true(cfd >= 0);
    FILE *f = fdopen(cfd, "w");
    fprintf(f,
            "server:\n  local-zone: \"test.\" nodefault\n"
            "auth-zone:\n  name: \"signed.test.\"\n  zonefile: \"%s/%s\"\n"
            "  for-upstream: yes\n  for-downstream: no\n  fallback-enabled: no\n",
            KR_TEST_DNSSEC_DIR, zonefile);
    fclose(f);
    char err[256] = "";
    kr_resolver *r = kr_resolver_new(loop, KR_TEST_DNSSEC_DIR "/signed.test.ds", err, sizeof err);
    assert_non_null(r);
    assert_true(kr_resolver_validating(r));
    assert_int_equal(kr_resolver_set_upstream(r, KR_RESOLVER_UPSTREAM_NONE), 0);
    assert_int_equal(kr_resolver_load_config(r, conf), 0);
    return r;
}

static void test_dnssec_secure_with_tlsa(void **state)
{
    char conf[] = "/tmp/kr-resolver-XXXXXX";
    uv_loop_t loop;
    uv_loop_init(&loop);
    kr_resolver *r = resolver_signed(&loop, "signed.test.zone.signed", conf);
    got g;
    lookup(r, &loop, "signed.test", &g);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.count, 1);
    assert_string_equal(g.t[0].host, "xmpp.signed.test");
    assert_true(g.t[0].secure);
    assert_int_equal(g.t[0].addr_count, 2);
    assert_string_equal(g.t[0].addrs[1], "127.0.0.7:5269");
    assert_int_equal(g.t[0].tlsa_count, 1);
    assert_int_equal(g.t[0].tlsa0.usage, 3);
    assert_int_equal(g.t[0].tlsa0.selector, 1);
    assert_int_equal(g.t[0].tlsa0.mtype, 1);
    assert_int_equal(g.t[0].tlsa0.len, 32);
    assert_int_equal(g.t[0].tlsa0_data[0], 0x01);
    assert_int_equal(g.t[0].tlsa0_data[31], 0xef);
    finish(r, &loop);
    unlink(conf);
}

static void test_dnssec_bogus_is_an_error(void **state)
{
    char conf[] = "/tmp/kr-resolver-XXXXXX";
    uv_loop_t loop;
    uv_loop_init(&loop);
    kr_resolver *r = resolver_signed(&loop, "bogus.test.zone.signed", conf);
    got g;
    lookup(r, &loop, "signed.test", &g);
    assert_int_equal(g.err, KR_RESOLVER_EBOGUS);
    assert_int_equal(g.count, 0);
    finish(r, &loop);
    unlink(conf);
}

static void test_dnssec_bogus_tlsa_makes_target_unusable(void **state)
{
    char conf[] = "/tmp/kr-resolver-XXXXXX";
    uv_loop_t loop;
    uv_loop_init(&loop);
    kr_resolver *r = resolver_signed(&loop, "bogus-tlsa.test.zone.signed", conf);
    got g;
    lookup(r, &loop, "signed.test", &g);
    assert_int_equal(g.err, KR_RESOLVER_EBOGUS);
    finish(r, &loop);
    unlink(conf);
}

static void test_unsigned_data_is_not_secure_when_validating(void **state)
{
    /* A trust anchor for signed.test only: local data elsewhere answers, but insecurely,
     * so no target is secure and no TLSA is looked up. */
    char conf[] = "/tmp/kr-resolver-XXXXXX";
    uv_loop_t loop;
    uv_loop_init(&loop);
    kr_resolver *r = resolver_signed(&loop, "signed.test.zone.signed", conf);
    assert_int_equal(kr_resolver_set_option(r, "local-zone:", "example.test. static"), 0);
    assert_int_equal(kr_resolver_set_option(r, "local-data:", "example.test. 60 IN A 127.0.0.9"),
                     0);
    assert_int_equal(kr_resolver_set_option(r, "local-data:",
                                            "_5269._tcp.example.test. 60 IN TLSA 3 1 1 "
                                            "0123456789abcdef0123456789abcdef"
                                            "0123456789abcdef0123456789abcdef"),
                     0);
    got g;
    lookup(r, &loop, "example.test", &g);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.count, 1);
    assert_false(g.t[0].secure);
    assert_int_equal(g.t[0].tlsa_count, 0);
    finish(r, &loop);
    unlink(conf);
}

static void test_bad_trust_anchor_refused(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256] = "";
    assert_null(kr_resolver_new(&loop, "/nonexistent/root.key", err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/root.key"));
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_srv_ordered_by_priority_across_both_services),
        cmocka_unit_test(test_weights_give_both_orders),
        cmocka_unit_test(test_zero_weight_never_beats_weighted),
        cmocka_unit_test(test_dot_target_means_no_service),
        cmocka_unit_test(test_xmpps_dot_forbids_fallback_but_keeps_starttls),
        cmocka_unit_test(test_no_srv_falls_back_to_domain_on_5269),
        cmocka_unit_test(test_a_and_aaaa_collected_and_bounded),
        cmocka_unit_test(test_nxdomain_is_not_found),
        cmocka_unit_test(test_idna_domain_and_bad_names),
        cmocka_unit_test(test_free_cancels_without_callbacks),
        cmocka_unit_test(test_cancel_by_ud_and_free_inside_callback),
        cmocka_unit_test(test_timeout_cap),
        cmocka_unit_test(test_dnssec_secure_with_tlsa),
        cmocka_unit_test(test_dnssec_bogus_is_an_error),
        cmocka_unit_test(test_dnssec_bogus_tlsa_makes_target_unusable),
        cmocka_unit_test(test_unsigned_data_is_not_secure_when_validating),
        cmocka_unit_test(test_bad_trust_anchor_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
