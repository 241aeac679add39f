/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Unit tests of the reshaped core (src/server/router.c, modules.c, hosts.c,
 * intake.c, session.c, stanza.c) with a module list of the test's own: event
 * matching on any child's namespace, by host kind, phase and priority, each
 * spec once; handlers that wait for a storage lane and resume with the same
 * stanza, seeing whether their origin session is still there; a stream's later
 * stanzas held behind a waiting one and processed in order; the outgoing
 * filters on every delivery to a session; the address table's kinds and
 * parents; stanza reference counts. The server is built by hand with one
 * worker whose loop this thread runs (kr_worker_enter) and one storage lane
 * on a temporary SQLite file; sessions are attached to a fake transport that
 * records what it is given.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/arena.h"
#include "core/config.h"
#include "core/log.h"
#include "server/hosts.h"
#include "server/conn.h"
#include "server/intake.h"
#include "server/modules.h"
#include "server/router.h"
#include "server/server.h"
#include "server/session.h"
#include "server/sessions.h"
#include "server/storage_thread.h"
#include "xml/parser.h"
#include "xml/serialize.h"

#define NS_ONE "urn:test:one"
#define NS_TWO "urn:test:two"

/* ---- what the test module saw --------------------------------------------------------------- */

typedef struct seen {
    char calls[1024];   /* handler names in call order, ';'-separated */
    int waits;          /* storage jobs run */
    int resumed;        /* resume calls */
    int released;       /* release calls */
    bool origin_gone;   /* the last resume's ctx->origin_gone */
    bool origin_there;  /* the last resume's ctx->origin != NULL */
    const char *resume_verdict; /* "pass" or "handled" */
    int filtered;       /* outgoing filter calls */
    bool drop_out;      /* the filter drops what it sees */
    char child[64];     /* name of ctx->child of the last NS_TWO handler call */
} seen;

static seen S;

static void note(const char *name)
{
    strncat(S.calls, name, sizeof(S.calls) - strlen(S.calls) - 2);
    strcat(S.calls, ";");
}

static kr_verdict h_two(kr_handler_ctx *ctx)
{
    note("two");
    snprintf(S.child, sizeof(S.child), "%s", ctx->child ? ctx->child->name : "");
    return KR_PASS;
}

static kr_verdict h_two_body(kr_handler_ctx *ctx)
{
    note("two-b");
    return KR_PASS;
}

static kr_verdict h_one(kr_handler_ctx *ctx)
{
    note("one");
    return KR_PASS;
}

static kr_verdict h_catch_all(kr_handler_ctx *ctx)
{
    note("all");
    return KR_PASS;
}

static kr_verdict h_service(kr_handler_ctx *ctx)
{
    note("service");
    return KR_PASS;
}

static kr_verdict h_any_service(kr_handler_ctx *ctx)
{
    note("any-service");
    return KR_PASS;
}

static kr_verdict h_out(kr_handler_ctx *ctx)
{
    note(ctx->origin ? "out" : "out-without-origin");
    return KR_PASS;
}

/* ---- a handler that waits -------------------------------------------------------------------- */

typedef struct job {
    int value;
} job;

static void job_run(kr_store *store, void *arg)
{
    ((job *)arg)->value = 42; /* runs on the lane */
    __atomic_add_fetch(&S.waits, 1, __ATOMIC_SEQ_CST);
}

static kr_verdict job_resume(kr_handler_ctx *ctx, void *arg)
{
    S.resumed++;
    S.origin_gone = ctx->origin_gone;
    S.origin_there = ctx->origin != NULL;
    note(((job *)arg)->value == 42 ? "resumed" : "resumed-without-job");
    /* the stanza is the one the handler saw: its body is still there */
    kr_xml_node *body = kr_xml_child_get(ctx->st->elem, KR_NS_CLIENT, "body");
    if (!body || strcmp(kr_xml_text_get(ctx->st->arena, body), "wait for me") != 0)
        note("stanza-changed");
    return strcmp(S.resume_verdict, "handled") == 0 ? KR_HANDLED : KR_PASS;
}

static void job_release(void *arg)
{
    S.released++;
    free(arg);
}

static const kr_wait_ops job_ops = {job_run, job_resume, job_release};

static kr_verdict h_wait(kr_handler_ctx *ctx)
{
    note("wait");
    return kr_handler_wait(ctx, "someone@example.com", &job_ops, kr_xcalloc(1, sizeof(job)));
}

static kr_verdict h_after_wait(kr_handler_ctx *ctx)
{
    note("after");
    return KR_PASS;
}

static kr_verdict filter_out(kr_outgoing *o)
{
    S.filtered++;
    return S.drop_out ? KR_HANDLED : KR_PASS;
}

static const kr_handler_spec test_handlers[] = {
    {KR_PHASE_IN, KR_STANZA_MESSAGE, ~0u, KR_ADDR_BARE | KR_ADDR_FULL | KR_ADDR_HOST, NS_TWO,
     NULL, 5, h_two, 0},
    {KR_PHASE_IN, KR_STANZA_MESSAGE, ~0u, KR_ADDR_BARE | KR_ADDR_FULL, NS_TWO, "b", 7,
     h_two_body, 0},
    {KR_PHASE_IN, KR_STANZA_MESSAGE, ~0u, KR_ADDR_BARE | KR_ADDR_FULL, NS_ONE, "x", 3, h_one, 0},
    {KR_PHASE_IN, KR_STANZA_MESSAGE, ~0u, KR_ADDR_BARE | KR_ADDR_FULL, NULL, NULL, 1,
     h_catch_all, 0},
    {KR_PHASE_IN, KR_STANZA_MESSAGE, ~0u, KR_ADDR_HOST | KR_ADDR_BARE, NULL, NULL, 2, h_service,
     KR_HOST_SERVICE},
    {KR_PHASE_IN, KR_STANZA_IQ, ~0u, KR_ADDR_HOST, "urn:test:svc", NULL, 2, h_any_service,
     KR_HOST_ANY_SERVICE},
    {KR_PHASE_OUT, KR_STANZA_MESSAGE, ~0u, ~0u, NULL, NULL, 0, h_out, 0},
    {KR_PHASE_IN, KR_STANZA_MESSAGE, KR_TYPE_HEADLINE, KR_ADDR_BARE | KR_ADDR_FULL, NULL, NULL,
     100, h_wait, 0},
    {KR_PHASE_IN, KR_STANZA_MESSAGE, KR_TYPE_HEADLINE, KR_ADDR_BARE | KR_ADDR_FULL, NULL, NULL,
     50, h_after_wait, 0},
};

static const kr_filter_spec test_filters[] = {{KR_STANZA_MESSAGE, 0, filter_out}};

static char *svc_domains_list[] = {"svc.example.com"};

static size_t svc_domains(kr_server *srv, char *const **out)
{
    *out = svc_domains_list;
    return 1;
}

static const kr_service_def test_service = {
    .domains = svc_domains,
    .identity = {"component", "generic", "Test"},
};

static const kr_module_def test_module = {
    .name = "test",
    .handlers = test_handlers,
    .handler_count = sizeof(test_handlers) / sizeof(test_handlers[0]),
    .filters = test_filters,
    .filter_count = 1,
    .service = &test_service,
};

/* A second module that owns no service: its KR_HOST_SERVICE spec must not see svc's stanzas. */
static kr_verdict h_foreign_service(kr_handler_ctx *ctx)
{
    note("foreign-service");
    return KR_PASS;
}

static const kr_handler_spec other_handlers[] = {
    {KR_PHASE_IN, KR_STANZA_MESSAGE, ~0u, KR_ADDR_HOST | KR_ADDR_BARE, NULL, NULL, 9,
     h_foreign_service, KR_HOST_SERVICE},
};

static const kr_module_def other_module = {
    .name = "other",
    .handlers = other_handlers,
    .handler_count = 1,
};

static const kr_module_def *const test_modules[] = {&test_module, &other_module};

/* ---- the server ------------------------------------------------------------------------------ */

typedef struct fixture {
    kr_config cfg;
    kr_server srv;
    kr_worker_state *ws;
    char path[64];
} fixture;

static int open_store(void *path, kr_store **out, char *err, size_t errlen)
{
    return kr_store_open(path, out, err, errlen);
}

static int setup(void **state)
{
    memset(&S, 0, sizeof(S));
    S.resume_verdict = "pass";
    fixture *f = kr_xcalloc(1, sizeof(*f));
    kr_log_set_level(KR_LOG_ERROR);
    kr_config_defaults(&f->cfg);
    kr_server *srv = &f->srv;
    srv->cfg = &f->cfg;
    srv->hosts = kr_hosts_new();
    kr_hosts_add(srv->hosts, "example.com", KR_HOST_USER, kr_router_deliver_user, NULL, NULL);
    srv->sessions = kr_sessions_new();
    atomic_init(&srv->next_conn_id, 1);
    srv->worker_count = 1;
    srv->workers = kr_xcalloc(1, sizeof(kr_worker));
    kr_worker_init(&srv->workers[0], 0);
    f->ws = kr_xcalloc(1, sizeof(*f->ws));
    f->ws->srv = srv;
    kr_u64map_init(&f->ws->conns);
    kr_u64map_init(&f->ws->sessions);
    srv->workers[0].data = f->ws;
    kr_worker_enter(&srv->workers[0]);
    snprintf(f->path, sizeof(f->path), "/tmp/kr-test-router-XXXXXX");
    int fd = mkstemp(f->path);
    assert_true(fd >= 0);
    close(fd);
    unlink(f->path);
    char err[256];
    srv->storage = kr_storage_start(1, open_store, f->path, err, sizeof(err));
    assert_non_null(srv->storage);
    assert_int_equal(kr_modules_start_list(srv, test_modules, 2), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    kr_server *srv = &f->srv;
    kr_worker *w = &srv->workers[0];
    kr_storage_wait_idle(srv->storage);
    uv_run(&w->loop, UV_RUN_NOWAIT);
    kr_storage_stop(srv->storage);
    kr_modules_stop(srv);
    uv_close((uv_handle_t *)&w->async, NULL);
    uv_close((uv_handle_t *)&w->check, NULL);
    uv_close((uv_handle_t *)&w->prepare, NULL);
    kr_worker_drain(w);
    kr_worker_free(w);
    kr_worker_enter(NULL);
    kr_u64map_clear(&f->ws->conns);
    kr_u64map_clear(&f->ws->sessions);
    free(f->ws);
    free(srv->workers);
    kr_sessions_free(srv->sessions);
    kr_hosts_free(srv->hosts);
    kr_config_free(&f->cfg);
    char p[80];
    unlink(f->path);
    snprintf(p, sizeof(p), "%s-wal", f->path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", f->path);
    unlink(p);
    free(f);
    return 0;
}

/* Run the worker's loop until cond holds (or give up after a while). */
#define RUN_UNTIL(f, cond)                                                                         \
    do {                                                                                           \
        for (int i_ = 0; i_ < 2000 && !(cond); i_++) {                                             \
            uv_run(&(f)->srv.workers[0].loop, UV_RUN_NOWAIT);                                      \
            usleep(1000);                                                                          \
        }                                                                                          \
        assert_true(cond);                                                                         \
    } while (0)

/* ---- parsing stanzas ------------------------------------------------------------------------- */

typedef struct parsed {
    kr_xml_node *elem;
    kr_arena *arena;
} parsed;

static void parsed_stanza(void *ud, kr_xml_node *e, kr_arena *a)
{
    parsed *p = ud;
    p->elem = e;
    p->arena = a;
}

/* A stanza of ours from XML text (jabber:client). */
static kr_stanza *stanza_from(fixture *f, const char *xml)
{
    parsed p = {0};
    kr_xml_limits lim = KR_XML_LIMITS_DEFAULT;
    kr_xml_parser_cbs cbs = {NULL, parsed_stanza, NULL};
    kr_xml_parser *x = kr_xml_parser_new(&lim, &cbs, &p);
    static const char head[] =
        "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
    assert_int_equal(kr_xml_parser_feed(x, head, sizeof(head) - 1), 0);
    assert_int_equal(kr_xml_parser_feed(x, xml, strlen(xml)), 0);
    kr_xml_parser_free(x);
    assert_non_null(p.elem);
    const char *bad;
    kr_stanza *st = kr_stanza_new(p.arena, p.elem, f->srv.hosts, NULL, &bad);
    assert_null(bad);
    return st;
}

/* ---- a session on a fake transport ------------------------------------------------------------ */

typedef struct fake_transport {
    char got[4096];
    int closed;
} fake_transport;

static void fake_send(void *ud, const char *data, size_t len)
{
    fake_transport *t = ud;
    strncat(t->got, data, len < sizeof(t->got) - strlen(t->got) - 1 ? len
                                                                   : sizeof(t->got) - strlen(t->got) - 1);
}

static void fake_close(void *ud, const char *condition, const char *text)
{
    ((fake_transport *)ud)->closed++;
}

static const kr_transport fake_tcp = {"fake", fake_send, fake_close};

static kr_session *bound_session(fixture *f, const char *local, const char *resource,
                                 fake_transport *t)
{
    kr_session *s = kr_session_new(&f->srv, &f->srv.workers[0], "example.com", "192.0.2.1");
    kr_session_attach(s, &fake_tcp, t, "192.0.2.1");
    kr_session_authenticated(s, local);
    assert_int_equal(kr_session_bind(s, resource), 0);
    return s;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void events_match_any_child_by_priority_each_spec_once(void **state)
{
    fixture *f = *state;
    kr_stanza *st = stanza_from(
        f, "<message from='a@example.com/r' to='b@example.com' type='chat'><body>hi</body>"
           "<a xmlns='urn:test:two'/><b xmlns='urn:test:two'/><x xmlns='urn:test:one'/></message>");
    kr_match m[16];
    size_t n = kr_modules_match(&f->srv, st, KR_PHASE_IN, m, 16);
    assert_int_equal(n, 4); /* two-b (7), two (5), one (3), all (1); not the service's */
    assert_ptr_equal(m[0].spec->fn, h_two_body);
    assert_string_equal(m[0].child->name, "b");
    assert_ptr_equal(m[1].spec->fn, h_two);
    assert_string_equal(m[1].child->name, "a"); /* the first child that matched */
    assert_ptr_equal(m[2].spec->fn, h_one);
    assert_ptr_equal(m[3].spec->fn, h_catch_all);
    assert_null(m[3].child);
    assert_int_equal(kr_modules_match(&f->srv, st, KR_PHASE_OUT, m, 16), 1);
    kr_stanza_unref(st);
}

static void a_child_namespace_nobody_names_matches_only_catch_alls(void **state)
{
    fixture *f = *state;
    kr_stanza *st = stanza_from(f, "<message from='a@example.com/r' to='b@example.com'>"
                                   "<x xmlns='urn:test:nobody'/><y xmlns='urn:test:one'/></message>");
    kr_match m[16];
    size_t n = kr_modules_match(&f->srv, st, KR_PHASE_IN, m, 16);
    assert_int_equal(n, 1); /* "one" names element x, not y */
    assert_ptr_equal(m[0].spec->fn, h_catch_all);
    kr_stanza_unref(st);
}

static void service_hosts_reach_their_owner_and_any_service_specs_only(void **state)
{
    fixture *f = *state;
    const kr_host *h = kr_hosts_find(f->srv.hosts, "svc.example.com");
    assert_non_null(h);
    assert_int_equal(h->kind, KR_HOST_SERVICE);
    assert_ptr_equal(h->module, &test_module);
    assert_ptr_equal(h->parent, kr_hosts_find(f->srv.hosts, "example.com"));
    assert_string_equal(h->name, "Test");
    kr_stanza *st = stanza_from(f, "<message from='a@example.com/r' to='room@svc.example.com'>"
                                   "<body>x</body></message>");
    assert_ptr_equal(st->host, h);
    assert_int_equal(st->addressing, KR_ADDR_BARE);
    kr_match m[16];
    size_t n = kr_modules_match(&f->srv, st, KR_PHASE_IN, m, 16);
    assert_int_equal(n, 1); /* the owner's service spec; not user-domain specs, not "other" */
    assert_ptr_equal(m[0].spec->fn, h_service);
    kr_stanza_unref(st);
    st = stanza_from(f, "<iq type='get' id='1' from='a@example.com/r' to='svc.example.com'>"
                        "<q xmlns='urn:test:svc'/></iq>");
    n = kr_modules_match(&f->srv, st, KR_PHASE_IN, m, 16);
    assert_int_equal(n, 1);
    assert_ptr_equal(m[0].spec->fn, h_any_service);
    kr_stanza_unref(st);
    st = stanza_from(f, "<message from='a@example.com/r' to='x@elsewhere.example'/>");
    assert_null(st->host);
    assert_int_equal(st->addressing, KR_ADDR_REMOTE);
    kr_stanza_unref(st);
}

static void a_handler_waits_and_resumes_with_the_same_stanza(void **state)
{
    fixture *f = *state;
    fake_transport t = {0};
    kr_session *b = bound_session(f, "b", "r", &t);
    kr_sessions_set_presence(f->srv.sessions, "b@example.com", "r", b->id, true, 0, NULL);
    kr_stanza *st = stanza_from(f, "<message from='a@example.com/r' to='b@example.com/r' "
                                   "type='headline'><body>wait for me</body></message>");
    kr_route(&f->srv, &f->srv.workers[0], st, NULL, NULL);
    assert_string_equal(S.calls, "wait;"); /* nothing after it yet */
    assert_string_equal(t.got, "");
    RUN_UNTIL(f, S.resumed == 1);
    assert_string_equal(S.calls, "wait;resumed;after;all;");
    assert_int_equal(S.released, 1);
    assert_false(S.origin_gone);
    assert_non_null(strstr(t.got, "wait for me")); /* then the default delivery */
    assert_int_equal(S.filtered, 1);
    kr_session_end(b);
}

static void a_resume_that_handles_stops_the_route(void **state)
{
    fixture *f = *state;
    fake_transport t = {0};
    kr_session *b = bound_session(f, "b", "r", &t);
    S.resume_verdict = "handled";
    kr_stanza *st = stanza_from(f, "<message from='a@example.com/r' to='b@example.com/r' "
                                   "type='headline'><body>wait for me</body></message>");
    kr_route(&f->srv, &f->srv.workers[0], st, NULL, NULL);
    RUN_UNTIL(f, S.resumed == 1);
    assert_string_equal(S.calls, "wait;resumed;");
    assert_string_equal(t.got, "");
    kr_session_end(b);
}

static void the_resume_learns_that_its_origin_session_ended(void **state)
{
    fixture *f = *state;
    fake_transport ta = {0}, tb = {0};
    kr_session *a = bound_session(f, "a", "r", &ta);
    kr_session *b = bound_session(f, "b", "r", &tb);
    kr_stanza *st = stanza_from(f, "<message from='a@example.com/r' to='b@example.com/r' "
                                   "type='headline'><body>wait for me</body></message>");
    kr_route(&f->srv, &f->srv.workers[0], st, a, NULL);
    assert_string_equal(S.calls, "out;wait;");
    kr_session_end(a); /* gone while the stanza waits */
    RUN_UNTIL(f, S.resumed == 1);
    assert_true(S.origin_gone);
    assert_false(S.origin_there);
    assert_non_null(strstr(tb.got, "wait for me")); /* still delivered: the server took it */
    kr_session_end(b);
}

static void the_outgoing_filter_sees_and_may_drop_every_delivery(void **state)
{
    fixture *f = *state;
    fake_transport t = {0};
    kr_session *b = bound_session(f, "b", "r", &t);
    kr_rbuf *bytes = kr_rbuf_new("<message/>", 10);
    bytes->meta = kr_stanza_meta(KR_STANZA_MESSAGE, KR_TYPE_NONE);
    kr_session_deliver(b, bytes);
    assert_int_equal(S.filtered, 1);
    assert_string_equal(t.got, "<message/>");
    S.drop_out = true;
    kr_session_deliver(b, bytes);
    assert_int_equal(S.filtered, 2);
    assert_string_equal(t.got, "<message/>");
    bytes->meta = kr_stanza_meta(KR_STANZA_IQ, KR_TYPE_RESULT); /* the filter is for messages */
    kr_session_deliver(b, bytes);
    assert_int_equal(S.filtered, 2);
    assert_string_equal(t.got, "<message/><message/>");
    kr_rbuf_unref(bytes);
    kr_session_end(b);
}

static void a_session_moves_from_one_transport_to_another(void **state)
{
    fixture *f = *state;
    fake_transport first = {0}, second = {0};
    kr_session *b = bound_session(f, "b", "r", &first);
    kr_sessions_set_presence(f->srv.sessions, "b@example.com", "r", b->id, true, 0, NULL);
    kr_stanza *st = stanza_from(f, "<message from='a@example.com/r' to='b@example.com/r'>"
                                   "<body>one</body></message>");
    kr_route(&f->srv, &f->srv.workers[0], st, NULL, NULL);
    assert_non_null(strstr(first.got, "one"));
    kr_session_detach(b); /* the connection went; the session stays (directory, presence) */
    st = stanza_from(f, "<message from='a@example.com/r' to='b@example.com/r'>"
                        "<body>two</body></message>");
    kr_route(&f->srv, &f->srv.workers[0], st, NULL, NULL);
    assert_null(strstr(first.got, "two"));
    kr_session_attach(b, &fake_tcp, &second, "192.0.2.2");
    st = stanza_from(f, "<message from='a@example.com/r' to='b@example.com/r'>"
                        "<body>three</body></message>");
    kr_route(&f->srv, &f->srv.workers[0], st, NULL, NULL);
    assert_non_null(strstr(second.got, "three"));
    assert_null(strstr(first.got, "three"));
    kr_session_ref ref;
    assert_true(kr_sessions_find(f->srv.sessions, "b@example.com", "r", &ref));
    assert_int_equal(ref.id, b->id); /* the same session all along */
    kr_session_close(b, "conflict", NULL);
    assert_int_equal(second.closed, 1);
    kr_session_end(b);
}

/* ---- the intake keeps a stream's order while a stanza waits ---------------------------------- */

typedef struct fake_stream {
    kr_intake in;
    fixture *f;
    char order[256];
    int paused;
} fake_stream;

static void stream_process(kr_intake *in, kr_xml_node *elem, kr_arena *arena)
{
    fake_stream *s = (fake_stream *)in;
    if (!elem) {
        strcat(s->order, "end;");
        return;
    }
    const char *id = kr_xml_attr_get(elem, "id");
    strcat(s->order, id ? id : "?");
    strcat(s->order, ";");
    const char *bad;
    kr_stanza *st = kr_stanza_new(arena, elem, s->f->srv.hosts, NULL, &bad);
    kr_route(&s->f->srv, &s->f->srv.workers[0], st, NULL, in);
}

static void stream_pause(kr_intake *in, bool pause)
{
    ((fake_stream *)in)->paused += pause ? 1 : -1;
}

static void later_stanzas_wait_behind_a_waiting_one(void **state)
{
    fixture *f = *state;
    fake_transport t = {0};
    kr_session *b = bound_session(f, "b", "r", &t);
    fake_stream s = {.f = f};
    kr_conn conn = {.id = 9999, .worker = &f->srv.workers[0]}; /* the stream's connection */
    kr_u64map_put(&f->ws->conns, conn.id, &conn);
    kr_intake_open(&s.in, &conn, stream_process, stream_pause);
    kr_stanza *first = stanza_from(f, "<message id='1' from='a@example.com/r' "
                                      "to='b@example.com/r' type='headline'>"
                                      "<body>wait for me</body></message>");
    kr_intake_push(&s.in, first->elem, first->arena); /* the element, as the parser gives it */
    kr_stanza *second = stanza_from(f, "<message id='2' from='a@example.com/r' "
                                       "to='b@example.com/r'><body>second</body></message>");
    kr_intake_push(&s.in, second->elem, second->arena);
    kr_intake_push(&s.in, NULL, NULL);
    assert_string_equal(s.order, "1;"); /* 2 and the end wait behind 1 */
    assert_int_equal(s.paused, 1);
    assert_true(kr_intake_busy(&s.in));
    RUN_UNTIL(f, strcmp(s.order, "1;2;end;") == 0);
    assert_int_equal(s.paused, 0);
    char *one = strstr(t.got, "wait for me"), *two = strstr(t.got, "second");
    assert_non_null(one);
    assert_non_null(two);
    assert_true(one < two); /* delivered in the order they came */
    kr_u64map_del(&f->ws->conns, conn.id); /* as a closing connection leaves the table */
    kr_intake_close(&s.in);
    kr_session_end(b);
}

/* ---- stanzas and hosts --------------------------------------------------------------------- */

static void a_reply_keeps_the_stanza_it_answers_alive(void **state)
{
    fixture *f = *state;
    kr_stanza *st = stanza_from(f, "<iq type='get' id='q' from='a@example.com/r' "
                                   "to='example.com'><ping xmlns='urn:xmpp:ping'/></iq>");
    const char *bad;
    kr_stanza *r = kr_stanza_new_in(st, kr_stanza_iq_result(st), f->srv.hosts, &bad);
    assert_null(bad);
    assert_int_equal(st->refs, 2);
    kr_stanza_unref(st); /* the request's creator lets go: the reply still holds its arena */
    assert_string_equal(kr_xml_attr_get(r->elem, "to"), "a@example.com/r");
    assert_int_equal(r->addressing, KR_ADDR_FULL);
    kr_stanza_unref(r); /* frees both (ASan would see a leak or a double free) */
}

static void hosts_refuse_a_domain_twice_and_find_parents_by_suffix(void **state)
{
    kr_hosts *h = kr_hosts_new();
    assert_non_null(kr_hosts_add(h, "example.org", KR_HOST_USER, NULL, NULL, NULL));
    assert_non_null(kr_hosts_add(h, "chat.example.org", KR_HOST_USER, NULL, NULL, NULL));
    assert_null(kr_hosts_add(h, "example.org", KR_HOST_SERVICE, NULL, NULL, NULL));
    const kr_host *c = kr_hosts_add(h, "muc.chat.example.org", KR_HOST_COMPONENT, NULL, NULL,
                                    NULL);
    assert_string_equal(c->parent->domain, "chat.example.org"); /* the longest suffix */
    const kr_host *o = kr_hosts_add(h, "notexample.org", KR_HOST_SERVICE, NULL, NULL, NULL);
    assert_null(o->parent); /* a suffix, but not a sub-domain */
    assert_string_equal(kr_hosts_default(h)->domain, "example.org");
    assert_int_equal(kr_hosts_count(h), 4);
    assert_null(kr_hosts_find(h, "other.example"));
    assert_null(kr_hosts_find(h, NULL));
    kr_hosts_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(events_match_any_child_by_priority_each_spec_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_child_namespace_nobody_names_matches_only_catch_alls,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            service_hosts_reach_their_owner_and_any_service_specs_only, setup, teardown),
        cmocka_unit_test_setup_teardown(a_handler_waits_and_resumes_with_the_same_stanza, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_resume_that_handles_stops_the_route, setup, teardown),
        cmocka_unit_test_setup_teardown(the_resume_learns_that_its_origin_session_ended, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(the_outgoing_filter_sees_and_may_drop_every_delivery,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(later_stanzas_wait_behind_a_waiting_one, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_session_moves_from_one_transport_to_another, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_reply_keeps_the_stanza_it_answers_alive, setup,
                                        teardown),
        cmocka_unit_test(hosts_refuse_a_domain_twice_and_find_parents_by_suffix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
