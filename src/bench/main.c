/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * kurier-bench: a load generator that speaks only standard XMPP (RFC 6120,
 * RFC 6121, XEP-0199, XEP-0368), so it measures kurierd, Prosody or ejabberd
 * alike. Modes: login (connect+TLS+SASL+bind+close at a concurrency), idle
 * (hold N authenticated connections), msg (sender/receiver pairs with a window
 * of messages in flight; latency, loss, duplicates, reordering), presence
 * (time for a user's initial presence to reach R online contacts) and
 * setup-roster (creates the mutual subscriptions presence mode needs).
 * This file owns option parsing, the accounts, the worker threads (one libuv
 * loop each, see bench.h for what each thread owns), the phase schedule run by
 * the main thread, and the output: one JSON line on stdout and one summary line
 * on stderr. Exit codes: 0 valid run, 1 usage or set-up error, 2 run failed.
 * Invariants: every wait of the main thread is bounded (by a deadline or by
 * stalled progress), every connection is closed before the workers exit, and
 * memory is bounded by the number of connections and pairs asked for.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "xml/serialize.h"

#define TICK_MS 10
/* --msg-rate: a run whose sends were later than this (p99) against their schedule did not
 * offer the asked-for load, so it is not valid */
#define KR_BENCH_MAX_LAG_US 5000
#define EXIT_USAGE 1
#define EXIT_FAILED 2

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* ------------------------------------------------------------------ helpers */

static double secs_since(uint64_t t0)
{
    return (double)(kr_bench_now_ns() - t0) / 1e9;
}

static void sleep_s(double s)
{
    while (s > 0 && !interrupted) {
        double step = s < 0.05 ? s : 0.05;
        struct timespec ts = {(time_t)step, (long)((step - (double)(time_t)step) * 1e9)};
        nanosleep(&ts, NULL);
        s -= step;
    }
}

/* Replace the first "%d" of pat by n (the only conversion a pattern may hold). */
static char *pattern_format(const char *pat, unsigned n)
{
    const char *p = strstr(pat, "%d");
    if (!p)
        return kr_xstrdup(pat);
    return kr_xasprintf("%.*s%u%s", (int)(p - pat), pat, n, p + 2);
}

static bool pattern_ok(const char *pat)
{
    const char *p = strchr(pat, '%');
    if (!p)
        return true;
    return p[1] == 'd' && !strchr(p + 2, '%');
}

static void record_error(kr_bench_worker *w, kr_bench_err err, const char *why)
{
    w->errs[err]++;
    if (!w->first_error[0])
        snprintf(w->first_error, sizeof(w->first_error), "%s: %s", kr_bench_err_name(err),
                 why && why[0] ? why : "-");
}

static kr_bench_phase phase_get(const kr_bench_run *r)
{
    return (kr_bench_phase)atomic_load(&((kr_bench_run *)r)->phase);
}

static bool bare_matches(const char *from, const char *bare)
{
    if (!from)
        return false;
    size_t n = strlen(bare);
    return strncasecmp(from, bare, n) == 0 && (from[n] == '\0' || from[n] == '/');
}

/* ------------------------------------------------------------------ callbacks */

static void slot_start(kr_bench_slot *s, bool presence);

static bool mode_presence(const kr_bench_opts *o)
{
    if (o->presence >= 0)
        return o->presence;
    return o->mode == KR_BENCH_MODE_MSG || o->mode == KR_BENCH_MODE_PRESENCE ||
           o->mode == KR_BENCH_MODE_SETUP_ROSTER;
}

static bool in_window(const kr_bench_run *r, uint64_t now)
{
    uint64_t ws = atomic_load(&((kr_bench_run *)r)->window_start_ns);
    uint64_t we = atomic_load(&((kr_bench_run *)r)->window_end_ns);
    return ws && now >= ws && (we == 0 || now < we);
}

static void send_message(kr_bench_pair *p)
{
    kr_bench_worker *w = p->snd.w;
    const kr_bench_opts *o = w->run->o;
    const char *to = o->to_bare ? NULL : kr_bench_conn_jid(p->rcv.conn);
    char bare[512];
    if (!to) {
        snprintf(bare, sizeof(bare), "%s@%s", p->rcv.acct->localpart, w->run->user_domain);
        to = bare;
    }
    uint64_t seq = kr_bench_seq_send(&p->seq);
    kr_buf b = KR_BUF_INIT;
    kr_buf_puts(&b, "<message type='chat' to='");
    kr_xml_escape_attr(&b, to, strlen(to));
    kr_buf_printf(&b, "' id='kb%u-%llu'><body>kb %u %llu %llu ", p->rcv.idx,
                  (unsigned long long)seq, p->rcv.idx, (unsigned long long)seq,
                  (unsigned long long)kr_bench_now_ns());
    kr_buf_reserve(&b, o->body_size + 32);
    memset(b.data + b.len, 'x', o->body_size);
    b.len += o->body_size;
    b.data[b.len] = '\0';
    kr_buf_puts(&b, "</body></message>");
    kr_bench_conn_send(p->snd.conn, b.data, b.len);
    kr_buf_clear(&b);
    w->sent++;
    atomic_fetch_add(&w->a_outstanding, 1);
}

/* --msg-rate: send every message of this pair that the schedule says is due. The window (-w)
 * still bounds what is in flight; a send it holds back is counted and goes out late. */
static void pair_pace(kr_bench_pair *p, uint64_t now)
{
    kr_bench_worker *w = p->snd.w;
    if (!p->snd.ready || !p->rcv.ready || !p->rcv.conn || !p->snd.conn ||
        !kr_bench_conn_is_ready(p->snd.conn))
        return;
    uint64_t due = kr_bench_pace_due(&p->pace, now);
    for (; due > 0; due--) {
        if (!kr_bench_seq_can_send(&p->seq)) {
            w->window_full++;
            return;
        }
        uint64_t at = kr_bench_pace_next_ns(&p->pace);
        kr_bench_pace_take(&p->pace);
        send_message(p);
        if (in_window(w->run, now)) {
            w->sent_window++;
            kr_bench_hist_add(&w->lag, now > at ? (now - at) / 1000 : 0);
        }
    }
}

static void on_pace(uv_timer_t *t)
{
    kr_bench_worker *w = t->data;
    /* the main thread may have left the run before this worker's tick saw it: a send now
     * could arrive after the drain counted everything as delivered */
    if (phase_get(w->run) != KR_BENCH_PH_RUN)
        return;
    uint64_t now = kr_bench_now_ns();
    for (unsigned i = 0; i < w->n_pairs; i++)
        pair_pace(&w->pairs[i], now);
}

static void pace_start(kr_bench_worker *w)
{
    const kr_bench_opts *o = w->run->o;
    uint64_t now = kr_bench_now_ns();
    double per_pair = o->msg_rate / o->pairs;
    for (unsigned i = 0; i < w->n_pairs; i++) {
        /* stagger the pairs over one interval by their global index */
        kr_bench_pace_init(&w->pairs[i].pace, per_pair, (double)w->pairs[i].snd.idx / o->pairs,
                           now);
    }
    uv_timer_init(&w->loop, &w->pace);
    w->pace.data = w;
    uv_timer_start(&w->pace, on_pace, 1, 1);
    w->pacing = true;
}

static void pace_stop(kr_bench_worker *w)
{
    if (!w->pacing)
        return;
    w->pacing = false;
    uv_close((uv_handle_t *)&w->pace, NULL);
}

static void pair_fill(kr_bench_pair *p)
{
    if (!p->snd.ready || !p->rcv.ready || !p->rcv.conn)
        return;
    while (kr_bench_seq_can_send(&p->seq) && p->snd.conn && kr_bench_conn_is_ready(p->snd.conn))
        send_message(p);
}

static void on_message(kr_bench_slot *s, kr_xml_node *e, kr_arena *a)
{
    kr_bench_worker *w = s->w;
    const char *type = kr_xml_attr_get(e, "type");
    if (type && strcmp(type, "error") == 0) {
        w->msg_errors++;
        return;
    }
    if (s->role != KR_BENCH_ROLE_RECEIVER)
        return;
    kr_xml_node *body = kr_xml_child_get(e, NULL, "body");
    if (!body)
        return;
    const char *text = kr_xml_text_get(a, body);
    unsigned pair = 0;
    unsigned long long seq = 0, ts = 0;
    if (sscanf(text, "kb %u %llu %llu", &pair, &seq, &ts) != 3 || pair != s->idx) {
        w->msg_errors++;
        return;
    }
    kr_bench_pair *p = (kr_bench_pair *)((char *)s - offsetof(kr_bench_pair, rcv));
    if (atomic_load(&w->run->final_ns)) {
        w->late++; /* after the grace period: stays counted as lost */
        return;
    }
    kr_bench_seq_verdict v = kr_bench_seq_recv(&p->seq, seq);
    if (v != KR_BENCH_SEQ_OK && v != KR_BENCH_SEQ_REORDERED)
        return;
    atomic_fetch_sub(&w->a_outstanding, 1);
    uint64_t now = kr_bench_now_ns();
    w->delivered_total++;
    if (in_window(w->run, now)) {
        w->delivered_window++;
        kr_bench_hist_add(&w->lat, now > ts ? (now - ts) / 1000 : 0);
    }
    if (w->run->o->msg_rate <= 0) {
        /* Count the send as outstanding before looking at the phase: the main thread sets
         * KR_BENCH_PH_DRAIN and then waits for nothing to be outstanding, so either it sees
         * this count or this worker sees the new phase; a send cannot slip in between and
         * arrive after the drain ended (it would be "late" and the run invalid). */
        atomic_fetch_add(&w->a_outstanding, 1);
        if (phase_get(w->run) == KR_BENCH_PH_RUN)
            pair_fill(p);
        atomic_fetch_sub(&w->a_outstanding, 1);
    }
}

static void send_presence_to(kr_bench_conn *c, const char *to, const char *type)
{
    kr_buf b = KR_BUF_INIT;
    kr_buf_puts(&b, "<presence to='");
    kr_xml_escape_attr(&b, to, strlen(to));
    kr_buf_printf(&b, "' type='%s'/>", type);
    kr_bench_conn_send(c, b.data, b.len);
    kr_buf_clear(&b);
}

static void on_presence(kr_bench_slot *s, kr_xml_node *e)
{
    kr_bench_worker *w = s->w;
    kr_bench_run *r = w->run;
    const char *type = kr_xml_attr_get(e, "type");
    const char *from = kr_xml_attr_get(e, "from");
    if (r->o->mode == KR_BENCH_MODE_SETUP_ROSTER) {
        /* approve every request; completion is read from the roster (on_roster) */
        if (type && from && strcmp(type, "subscribe") == 0) {
            char bare[512];
            snprintf(bare, sizeof(bare), "%.*s", (int)strcspn(from, "/"), from);
            send_presence_to(s->conn, bare, "subscribed");
        }
        return;
    }
    if (r->o->mode != KR_BENCH_MODE_PRESENCE || s->role != KR_BENCH_ROLE_CONTACT || s->got)
        return;
    if (type && strcmp(type, "available") != 0)
        return;
    if (!bare_matches(from, r->user_bare))
        return;
    uint64_t sent = atomic_load(&r->presence_sent_ns);
    if (!sent)
        return;
    s->got = true;
    uint64_t now = kr_bench_now_ns();
    kr_bench_hist_add(&w->lat, now > sent ? (now - sent) / 1000 : 0);
    atomic_fetch_add(&w->a_got, 1);
}

/* setup-roster: a roster result or push (RFC 6121 §2.1.4, §2.1.6); an item with
 * subscription 'both' means that direction pair is done. */
static void on_roster(kr_bench_slot *s, kr_xml_node *iq)
{
    kr_bench_worker *w = s->w;
    kr_bench_run *r = w->run;
    kr_xml_node *q = kr_xml_child_get(iq, "jabber:iq:roster", "query");
    if (!q)
        return;
    for (kr_xml_node *it = kr_xml_first_elem(q); it; it = kr_xml_next_elem(it)) {
        const char *jid = kr_xml_attr_get(it, "jid");
        const char *sub = kr_xml_attr_get(it, "subscription");
        if (!jid || !sub || strcmp(sub, "both") != 0)
            continue;
        if (s->role == KR_BENCH_ROLE_CONTACT) {
            if (!s->got && strcasecmp(jid, r->user_bare) == 0) {
                s->got = true;
                atomic_fetch_add(&w->a_got, 1);
            }
            continue;
        }
        if (s->role != KR_BENCH_ROLE_USER)
            continue;
        const char *at = strchr(jid, '@');
        if (!at || strcasecmp(at + 1, r->user_domain) != 0)
            continue;
        for (unsigned c = 0; c < r->o->contacts; c++) {
            const char *lp = r->accounts[1 + c].localpart;
            if (strlen(lp) == (size_t)(at - jid) && strncasecmp(lp, jid, (size_t)(at - jid)) == 0) {
                if (!r->user_seen[c]) {
                    r->user_seen[c] = 1;
                    atomic_fetch_add(&w->a_user_got, 1);
                }
                break;
            }
        }
    }
}

static void cb_stanza(kr_bench_conn *c, kr_xml_node *e, kr_arena *a)
{
    kr_bench_slot *s = kr_bench_conn_ud(c);
    if (strcmp(e->name, "message") == 0)
        on_message(s, e, a);
    else if (strcmp(e->name, "presence") == 0)
        on_presence(s, e);
    else if (strcmp(e->name, "iq") == 0 && s->w->run->o->mode == KR_BENCH_MODE_SETUP_ROSTER)
        on_roster(s, e);
}

static void login_refill(kr_bench_worker *w);
static void ramp(kr_bench_worker *w);

static void cb_ready(kr_bench_conn *c)
{
    kr_bench_slot *s = kr_bench_conn_ud(c);
    kr_bench_worker *w = s->w;
    kr_bench_run *r = w->run;
    uint64_t us = (kr_bench_now_ns() - kr_bench_conn_started_ns(c)) / 1000;
    s->ready = true;
    w->negotiating--;
    switch (s->role) {
    case KR_BENCH_ROLE_LOGIN:
        if (s->measured)
            kr_bench_hist_add(&w->lat, us);
        w->login_done++;
        atomic_fetch_add(&w->a_done, 1);
        kr_bench_conn_close(c);
        login_refill(w);
        return;
    case KR_BENCH_ROLE_USER:
        w->user_login_us = us;
        if (r->o->mode == KR_BENCH_MODE_PRESENCE) {
            atomic_store(&r->presence_sent_ns, kr_bench_now_ns());
            kr_bench_conn_send(c, "<presence/>", 11);
        }
        break;
    default:
        kr_bench_hist_add(&w->conn_lat, us);
        break;
    }
    atomic_fetch_add(&w->a_up, 1);
    ramp(w);
}

static void cb_closed(kr_bench_conn *c, kr_bench_err err)
{
    kr_bench_slot *s = kr_bench_conn_ud(c);
    kr_bench_worker *w = s->w;
    kr_bench_phase ph = phase_get(w->run);
    w->live--;
    atomic_store(&w->a_live, w->live);
    s->conn = NULL;
    if (!s->ready) {
        w->negotiating--;
        if (s->role == KR_BENCH_ROLE_LOGIN) {
            w->login_failed++;
            atomic_fetch_add(&w->a_done, 1);
            if (s->measured)
                record_error(w, err ? err : KR_BENCH_ERR_CLOSED, kr_bench_conn_why(c));
            else
                w->warm_failed++;
        } else {
            atomic_fetch_add(&w->a_failed, 1);
            record_error(w, err ? err : KR_BENCH_ERR_CLOSED, kr_bench_conn_why(c));
        }
    } else if (s->role != KR_BENCH_ROLE_LOGIN && ph < KR_BENCH_PH_CLOSE) {
        /* an established connection dropped before we closed it */
        atomic_fetch_add(&w->a_dropped, 1);
        record_error(w, err ? err : KR_BENCH_ERR_CLOSED, kr_bench_conn_why(c));
    }
    if (s->heap) {
        free(s);
        login_refill(w);
    } else {
        ramp(w);
    }
}

static const kr_bench_conn_cbs conn_cbs = {cb_ready, cb_stanza, cb_closed};

static void slot_start(kr_bench_slot *s, bool presence)
{
    kr_bench_worker *w = s->w;
    kr_bench_run *r = w->run;
    w->negotiating++;
    w->live++;
    atomic_store(&w->a_live, w->live);
    s->ready = false;
    s->conn = kr_bench_conn_start(&w->loop, &r->cfg, s->acct, w->n_started + w->id, presence,
                                  &conn_cbs, s);
}

/* ------------------------------------------------------------------ per-mode work */

static void login_refill(kr_bench_worker *w)
{
    kr_bench_run *r = w->run;
    kr_bench_phase ph = phase_get(r);
    if (ph != KR_BENCH_PH_WARM && ph != KR_BENCH_PH_RUN)
        return;
    while (w->negotiating < w->conc && w->login_started < w->login_assigned) {
        unsigned long k = w->id + w->login_started * r->n_workers; /* global login number */
        w->login_started++;
        kr_bench_slot *s = kr_xcalloc(1, sizeof(*s));
        s->w = w;
        s->role = KR_BENCH_ROLE_LOGIN;
        s->heap = true;
        s->measured = ph == KR_BENCH_PH_RUN;
        s->idx = (unsigned)k;
        s->acct = &r->accounts[k % r->n_accounts];
        w->n_started++;
        slot_start(s, mode_presence(r->o));
    }
}

static unsigned long share(unsigned long total, unsigned id, unsigned n)
{
    return total / n + (id < total % n ? 1 : 0);
}

static void login_pass(kr_bench_worker *w, unsigned long total)
{
    w->login_assigned = share(total, w->id, w->run->n_workers);
    w->login_started = w->login_done = w->login_failed = 0;
    login_refill(w);
}

/* Start connections of the connect phase, within the concurrency and the rate. */
static void ramp(kr_bench_worker *w)
{
    kr_bench_run *r = w->run;
    kr_bench_phase ph = phase_get(r);
    if (ph != KR_BENCH_PH_CONNECT)
        return;
    unsigned total = r->o->mode == KR_BENCH_MODE_MSG ? 2 * w->n_pairs : w->n_slots;
    while (w->n_started < total && w->negotiating < w->conc) {
        if (w->rate > 0 && (double)w->n_started >= w->rate * secs_since(w->phase_start_ns) + 1)
            break;
        kr_bench_slot *s;
        if (r->o->mode == KR_BENCH_MODE_MSG) {
            kr_bench_pair *p = &w->pairs[w->n_started / 2];
            s = w->n_started % 2 == 0 ? &p->rcv : &p->snd;
        } else {
            s = &w->slots[w->n_started];
        }
        slot_start(s, mode_presence(r->o));
        w->n_started++;
    }
}

static void keepalive(kr_bench_worker *w)
{
    const kr_bench_opts *o = w->run->o;
    if (o->keepalive_s <= 0 || w->n_slots == 0)
        return;
    /* spread the keepalives of all slots over one interval */
    uint64_t now = kr_bench_now_ns();
    double elapsed = (double)(now - w->last_keepalive_ns) / 1e9;
    w->last_keepalive_ns = now;
    w->keepalive_credit += (double)w->n_slots * elapsed / o->keepalive_s;
    if (w->keepalive_credit < 1)
        return;
    unsigned n = (unsigned)w->keepalive_credit;
    w->keepalive_credit -= n;
    if (n > w->n_slots)
        n = w->n_slots;
    for (unsigned i = 0; i < n; i++) {
        kr_bench_slot *s = &w->slots[w->keepalive_cursor];
        w->keepalive_cursor = (w->keepalive_cursor + 1) % w->n_slots;
        if (s->conn && s->ready)
            kr_bench_conn_keepalive(s->conn);
    }
}

static void close_all(kr_bench_worker *w)
{
    for (unsigned i = 0; i < w->n_slots; i++)
        if (w->slots[i].conn)
            kr_bench_conn_close(w->slots[i].conn);
    for (unsigned i = 0; i < w->n_pairs; i++) {
        if (w->pairs[i].rcv.conn)
            kr_bench_conn_close(w->pairs[i].rcv.conn);
        if (w->pairs[i].snd.conn)
            kr_bench_conn_close(w->pairs[i].snd.conn);
    }
    if (w->has_user && w->user.conn)
        kr_bench_conn_close(w->user.conn);
}

#define ROSTER_GET "<iq type='get' id='kb-roster'><query xmlns='jabber:iq:roster'/></iq>"

/* Each side asks for its roster (to see subscriptions that already exist) and asks the
 * other side for a subscription; on_presence approves every request. */
static void setup_roster_run(kr_bench_worker *w)
{
    kr_bench_run *r = w->run;
    char jid[512];
    for (unsigned i = 0; i < w->n_slots; i++) {
        if (w->slots[i].conn && w->slots[i].ready) {
            kr_bench_conn_send(w->slots[i].conn, ROSTER_GET, strlen(ROSTER_GET));
            send_presence_to(w->slots[i].conn, r->user_bare, "subscribe");
        }
    }
    if (w->has_user && w->user.conn && w->user.ready) {
        kr_bench_conn_send(w->user.conn, ROSTER_GET, strlen(ROSTER_GET));
        for (unsigned i = 1; i <= r->o->contacts; i++) {
            snprintf(jid, sizeof(jid), "%s@%s", r->accounts[i].localpart, r->user_domain);
            send_presence_to(w->user.conn, jid, "subscribe");
        }
    }
}

static void on_phase(kr_bench_worker *w, kr_bench_phase ph)
{
    kr_bench_run *r = w->run;
    const kr_bench_opts *o = r->o;
    w->phase_start_ns = kr_bench_now_ns();
    w->last_keepalive_ns = w->phase_start_ns;
    switch (ph) {
    case KR_BENCH_PH_WARM:
        login_pass(w, o->accounts < o->count ? o->accounts : o->count);
        break;
    case KR_BENCH_PH_CONNECT:
        w->n_started = 0;
        if (w->has_user && o->mode == KR_BENCH_MODE_SETUP_ROSTER) {
            w->n_started = 0;
            slot_start(&w->user, true);
        }
        ramp(w);
        break;
    case KR_BENCH_PH_RUN:
        if (o->mode == KR_BENCH_MODE_LOGIN) {
            login_pass(w, o->count);
        } else if (o->mode == KR_BENCH_MODE_MSG && o->msg_rate > 0) {
            pace_start(w);
        } else if (o->mode == KR_BENCH_MODE_MSG) {
            for (unsigned i = 0; i < w->n_pairs; i++)
                pair_fill(&w->pairs[i]);
        } else if (o->mode == KR_BENCH_MODE_PRESENCE && w->has_user) {
            slot_start(&w->user, false);
        } else if (o->mode == KR_BENCH_MODE_SETUP_ROSTER) {
            setup_roster_run(w);
        }
        break;
    case KR_BENCH_PH_DRAIN:
        pace_stop(w);
        break;
    case KR_BENCH_PH_CLOSE:
        pace_stop(w);
        close_all(w);
        break;
    default:
        break;
    }
}

static void on_tick(uv_timer_t *t)
{
    kr_bench_worker *w = t->data;
    kr_bench_phase ph = phase_get(w->run);
    if (ph != w->seen_phase) {
        w->seen_phase = ph;
        on_phase(w, ph);
    }
    if (ph == KR_BENCH_PH_CONNECT)
        ramp(w);
    else if (ph == KR_BENCH_PH_RUN || ph == KR_BENCH_PH_DRAIN)
        keepalive(w);
    if (ph == KR_BENCH_PH_CLOSE && w->live == 0)
        uv_close((uv_handle_t *)&w->tick, NULL);
}

static void *worker_main(void *arg)
{
    kr_bench_worker *w = arg;
    uv_timer_init(&w->loop, &w->tick);
    w->tick.data = w;
    uv_timer_start(&w->tick, on_tick, 0, TICK_MS);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    w->run->cfg.tls_lib->thread_end();
    return NULL;
}

/* ------------------------------------------------------------------ main thread */

typedef enum sum_field {
    F_UP,
    F_FAILED,
    F_DONE,
    F_DROPPED,
    F_GOT,
    F_USER_GOT,
    F_OUTSTANDING,
    F_LIVE
} sum_field;

static unsigned long sum(kr_bench_run *r, sum_field f)
{
    unsigned long t = 0;
    for (unsigned i = 0; i < r->n_workers; i++) {
        kr_bench_worker *w = &r->workers[i];
        switch (f) {
        case F_UP:
            t += atomic_load(&w->a_up);
            break;
        case F_FAILED:
            t += atomic_load(&w->a_failed);
            break;
        case F_DONE:
            t += atomic_load(&w->a_done);
            break;
        case F_DROPPED:
            t += atomic_load(&w->a_dropped);
            break;
        case F_GOT:
            t += atomic_load(&w->a_got);
            break;
        case F_USER_GOT:
            t += atomic_load(&w->a_user_got);
            break;
        case F_OUTSTANDING:
            t += atomic_load(&w->a_outstanding);
            break;
        case F_LIVE:
            t += atomic_load(&w->a_live);
            break;
        }
    }
    return t;
}

/* Wait until the sum of fields reaches target; give up when it has not moved for `stall`
 * seconds or `deadline` seconds passed (0 = none). Returns whether the target was reached. */
static bool wait_for(kr_bench_run *r, sum_field f1, int f2, unsigned long target, double stall,
                     double deadline)
{
    uint64_t t0 = kr_bench_now_ns(), last_move = t0;
    unsigned long last = ~0ul;
    while (!interrupted) {
        unsigned long v = sum(r, f1) + (f2 >= 0 ? sum(r, (sum_field)f2) : 0);
        if (v >= target)
            return true;
        if (v != last) {
            last = v;
            last_move = kr_bench_now_ns();
        }
        if (secs_since(last_move) > stall || (deadline > 0 && secs_since(t0) > deadline))
            return false;
        sleep_s(TICK_MS / 1000.0);
    }
    return false;
}

static void set_phase(kr_bench_run *r, kr_bench_phase ph)
{
    atomic_store(&r->phase, (int)ph);
}

typedef struct server_probe {
    bool on;
    double cpu0, cpu1;
    uint64_t rss0, rss1;
} server_probe;

static void probe_cpu(const kr_bench_opts *o, double *v)
{
    if (o->server_pid > 0 && kr_bench_proc_cpu(o->server_pid, v) != 0)
        *v = NAN;
}

static void probe_rss(const kr_bench_opts *o, uint64_t *v)
{
    if (o->server_pid > 0 && kr_bench_proc_rss_kib(o->server_pid, v) != 0)
        *v = 0;
}

/* ---- JSON ---- */

static void json_str(kr_buf *b, const char *s)
{
    kr_buf_puts(b, "\"");
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            kr_buf_printf(b, "\\%c", ch);
        else if (ch < 0x20)
            kr_buf_printf(b, "\\u%04x", ch);
        else
            kr_buf_append(b, s, 1);
    }
    kr_buf_puts(b, "\"");
}

static void jk(kr_buf *b, const char *key)
{
    if (b->len > 0 && b->data[b->len - 1] != '{')
        kr_buf_puts(b, ",");
    json_str(b, key);
    kr_buf_puts(b, ":");
}

static void jstr(kr_buf *b, const char *k, const char *v)
{
    jk(b, k);
    json_str(b, v ? v : "");
}

static void ju(kr_buf *b, const char *k, unsigned long long v)
{
    jk(b, k);
    kr_buf_printf(b, "%llu", v);
}

static void jd(kr_buf *b, const char *k, double v)
{
    jk(b, k);
    if (isfinite(v))
        kr_buf_printf(b, "%.6g", v);
    else
        kr_buf_puts(b, "null");
}

static void jb(kr_buf *b, const char *k, bool v)
{
    jk(b, k);
    kr_buf_puts(b, v ? "true" : "false");
}

static void jopen(kr_buf *b, const char *k)
{
    jk(b, k);
    kr_buf_puts(b, "{");
}

static void jclose(kr_buf *b)
{
    kr_buf_puts(b, "}");
}

static void jhist(kr_buf *b, const char *k, const kr_bench_hist *h)
{
    jopen(b, k);
    ju(b, "count", h->count);
    ju(b, "min", h->count ? h->min : 0);
    ju(b, "p50", kr_bench_hist_quantile(h, 0.50));
    ju(b, "p90", kr_bench_hist_quantile(h, 0.90));
    ju(b, "p99", kr_bench_hist_quantile(h, 0.99));
    ju(b, "max", h->max);
    jd(b, "mean", kr_bench_hist_mean(h));
    jclose(b);
}

/* ---- modes ---- */

typedef struct outcome {
    kr_buf results; /* the members of "results", without braces */
    char summary[512];
    bool valid;
    server_probe srv;
    double per_unit_cpu_us; /* msg: µs per delivered message */
    double kib_per_conn;    /* idle */
    const char *cpu_window;
} outcome;

static void merge_hists(kr_bench_run *r, kr_bench_hist *lat, kr_bench_hist *conn)
{
    kr_bench_hist_init(lat);
    kr_bench_hist_init(conn);
    for (unsigned i = 0; i < r->n_workers; i++) {
        kr_bench_hist_merge(lat, &r->workers[i].lat);
        kr_bench_hist_merge(conn, &r->workers[i].conn_lat);
    }
}

static double stall_s(const kr_bench_opts *o)
{
    return 2 * o->timeout_s + 5;
}

static void run_login(kr_bench_run *r, outcome *out)
{
    const kr_bench_opts *o = r->o;
    double warm_s = 0;
    unsigned long warm_n = o->accounts < o->count ? o->accounts : o->count;
    if (o->prewarm) {
        uint64_t t = kr_bench_now_ns();
        set_phase(r, KR_BENCH_PH_WARM);
        wait_for(r, F_DONE, -1, warm_n, stall_s(o), 0);
        warm_s = secs_since(t);
        set_phase(r, KR_BENCH_PH_INIT);
        sleep_s(3 * TICK_MS / 1000.0);
    }
    for (unsigned i = 0; i < r->n_workers; i++)
        atomic_store(&r->workers[i].a_done, 0); /* the workers are idle between passes */
    probe_cpu(o, &out->srv.cpu0);
    uint64_t t0 = kr_bench_now_ns();
    set_phase(r, KR_BENCH_PH_RUN);
    bool all = wait_for(r, F_DONE, -1, o->count, stall_s(o), 0);
    double elapsed = secs_since(t0);
    probe_cpu(o, &out->srv.cpu1);
    probe_rss(o, &out->srv.rss1);
    out->cpu_window = "run";
    set_phase(r, KR_BENCH_PH_CLOSE);
    for (unsigned i = 0; i < r->n_workers; i++)
        pthread_join(r->workers[i].thread, NULL);
    unsigned long ok = 0, failed = 0, warm_failed = 0;
    for (unsigned i = 0; i < r->n_workers; i++) {
        ok += r->workers[i].login_done;
        failed += r->workers[i].login_failed;
        warm_failed += r->workers[i].warm_failed;
    }
    kr_bench_hist lat, conn;
    merge_hists(r, &lat, &conn);
    kr_buf *b = &out->results;
    ju(b, "logins", o->count);
    ju(b, "ok", ok);
    ju(b, "failed", failed);
    jd(b, "elapsed_s", elapsed);
    jd(b, "logins_per_s", elapsed > 0 ? (double)ok / elapsed : 0);
    jhist(b, "latency_us", &lat);
    jopen(b, "prewarm");
    jb(b, "done", o->prewarm);
    ju(b, "logins", o->prewarm ? warm_n : 0);
    ju(b, "failed", warm_failed);
    jd(b, "elapsed_s", warm_s);
    jclose(b);
    out->valid = all && failed == 0 && ok == o->count;
    snprintf(out->summary, sizeof(out->summary),
             "login: %lu/%lu ok in %.2f s = %.0f logins/s, latency p50 %llu us p90 %llu us "
             "p99 %llu us max %llu us, %lu failed",
             ok, o->count, elapsed, elapsed > 0 ? (double)ok / elapsed : 0,
             (unsigned long long)kr_bench_hist_quantile(&lat, 0.5),
             (unsigned long long)kr_bench_hist_quantile(&lat, 0.9),
             (unsigned long long)kr_bench_hist_quantile(&lat, 0.99), (unsigned long long)lat.max,
             failed);
}

static void run_idle(kr_bench_run *r, outcome *out)
{
    const kr_bench_opts *o = r->o;
    probe_rss(o, &out->srv.rss0);
    uint64_t t0 = kr_bench_now_ns();
    set_phase(r, KR_BENCH_PH_CONNECT);
    double limit = o->rate > 0 ? (double)o->count / o->rate + stall_s(o) : 0;
    wait_for(r, F_UP, F_FAILED, o->count, stall_s(o), limit > 0 ? limit * 2 : 0);
    double ramp_s = secs_since(t0);
    unsigned long up = sum(r, F_UP), failed = sum(r, F_FAILED);
    probe_cpu(o, &out->srv.cpu0);
    set_phase(r, KR_BENCH_PH_RUN);
    fprintf(stderr, "idle: %lu/%lu connections up after %.2f s (%lu failed); holding %.1f s\n", up,
            o->count, ramp_s, failed, o->hold_s);
    uint64_t th = kr_bench_now_ns();
    sleep_s(o->hold_s);
    double held = secs_since(th);
    probe_cpu(o, &out->srv.cpu1);
    probe_rss(o, &out->srv.rss1);
    out->cpu_window = "hold";
    unsigned long dropped = sum(r, F_DROPPED);
    set_phase(r, KR_BENCH_PH_CLOSE);
    for (unsigned i = 0; i < r->n_workers; i++)
        pthread_join(r->workers[i].thread, NULL);
    kr_bench_hist lat, conn;
    merge_hists(r, &lat, &conn);
    unsigned long alive = up - dropped;
    out->kib_per_conn = NAN;
    if (o->server_pid > 0 && alive > 0 && out->srv.rss0 > 0 && out->srv.rss1 > 0)
        out->kib_per_conn = ((double)out->srv.rss1 - (double)out->srv.rss0) / (double)alive;
    kr_buf *b = &out->results;
    ju(b, "connections", o->count);
    ju(b, "up", up);
    ju(b, "failed", failed);
    jd(b, "ramp_s", ramp_s);
    jd(b, "rate_per_s", ramp_s > 0 ? (double)up / ramp_s : 0);
    jhist(b, "connect_us", &conn);
    jd(b, "hold_s", held);
    ju(b, "dropped", dropped);
    ju(b, "alive_at_end", alive);
    out->valid = up == o->count && dropped == 0 && !interrupted;
    snprintf(out->summary, sizeof(out->summary),
             "idle: %lu/%lu up in %.2f s (connect p50 %llu us p99 %llu us), held %.1f s, "
             "%lu dropped, %lu failed",
             up, o->count, ramp_s, (unsigned long long)kr_bench_hist_quantile(&conn, 0.5),
             (unsigned long long)kr_bench_hist_quantile(&conn, 0.99), held, dropped, failed);
}

static void run_msg(kr_bench_run *r, outcome *out)
{
    const kr_bench_opts *o = r->o;
    set_phase(r, KR_BENCH_PH_CONNECT);
    wait_for(r, F_UP, F_FAILED, 2ul * o->pairs, stall_s(o), 0);
    unsigned long up = sum(r, F_UP), failed = sum(r, F_FAILED);
    set_phase(r, KR_BENCH_PH_RUN);
    bool none = up == 0; /* nothing to measure: report at once */
    if (!none)
        sleep_s(o->warmup_s);
    probe_cpu(o, &out->srv.cpu0);
    uint64_t ws = kr_bench_now_ns();
    atomic_store(&r->window_start_ns, ws);
    if (!none)
        sleep_s(o->duration_s);
    uint64_t we = kr_bench_now_ns();
    atomic_store(&r->window_end_ns, we);
    probe_cpu(o, &out->srv.cpu1);
    out->cpu_window = "measured";
    set_phase(r, KR_BENCH_PH_DRAIN);
    uint64_t td = kr_bench_now_ns();
    while (!interrupted && sum(r, F_OUTSTANDING) > 0 && secs_since(td) < o->grace_s)
        sleep_s(TICK_MS / 1000.0);
    atomic_store(&r->final_ns, kr_bench_now_ns());
    double drain_s = secs_since(td);
    probe_rss(o, &out->srv.rss1);
    unsigned long dropped = sum(r, F_DROPPED);
    set_phase(r, KR_BENCH_PH_CLOSE);
    for (unsigned i = 0; i < r->n_workers; i++)
        pthread_join(r->workers[i].thread, NULL);
    uint64_t sent = 0, delivered = 0, total = 0, lost = 0, dup = 0, reord = 0, unknown = 0,
             errors = 0, late = 0, sent_window = 0, window_full = 0;
    kr_bench_hist lag;
    kr_bench_hist_init(&lag);
    unsigned pairs_up = 0;
    for (unsigned i = 0; i < r->n_workers; i++) {
        kr_bench_worker *w = &r->workers[i];
        sent += w->sent;
        delivered += w->delivered_window;
        total += w->delivered_total;
        errors += w->msg_errors;
        late += w->late;
        sent_window += w->sent_window;
        window_full += w->window_full;
        kr_bench_hist_merge(&lag, &w->lag);
        for (unsigned j = 0; j < w->n_pairs; j++) {
            kr_bench_seq *s = &w->pairs[j].seq;
            lost += kr_bench_seq_outstanding(s);
            dup += s->duplicates;
            reord += s->reordered;
            unknown += s->unknown;
            if (s->next > 0)
                pairs_up++;
        }
    }
    kr_bench_hist lat, conn;
    merge_hists(r, &lat, &conn);
    double window = (double)(we - ws) / 1e9;
    double rate = window > 0 ? (double)delivered / window : 0;
    out->per_unit_cpu_us = NAN;
    if (delivered > 0 && isfinite(out->srv.cpu1 - out->srv.cpu0))
        out->per_unit_cpu_us = (out->srv.cpu1 - out->srv.cpu0) * 1e6 / (double)delivered;
    kr_buf *b = &out->results;
    ju(b, "pairs", o->pairs);
    ju(b, "pairs_active", pairs_up);
    ju(b, "connections_up", up);
    ju(b, "connections_failed", failed);
    ju(b, "dropped", dropped);
    ju(b, "window", o->window);
    jstr(b, "to", o->to_bare ? "bare" : "full");
    ju(b, "body_size", o->body_size);
    jd(b, "warmup_s", o->warmup_s);
    jd(b, "measured_s", window);
    jd(b, "drain_s", drain_s);
    ju(b, "sent", sent);
    ju(b, "delivered", delivered);
    ju(b, "delivered_total", total);
    jd(b, "msgs_per_s", rate);
    jhist(b, "latency_us", &lat);
    ju(b, "lost", lost);
    ju(b, "duplicated", dup);
    ju(b, "out_of_order", reord);
    ju(b, "unknown", unknown);
    ju(b, "errors", errors);
    ju(b, "late", late);
    /* open loop: the offered rate was kept if the generator sent on schedule (its own timer
     * and loop delays stay small) and the in-flight bound never held a send back */
    bool kept = true;
    if (o->msg_rate > 0) {
        uint64_t lag99 = kr_bench_hist_quantile(&lag, 0.99);
        kept = window_full == 0 && lag99 <= KR_BENCH_MAX_LAG_US;
        jd(b, "msg_rate", o->msg_rate);
        jd(b, "sent_per_s", window > 0 ? (double)sent_window / window : 0);
        jhist(b, "send_lag_us", &lag);
        ju(b, "window_full", window_full);
        jb(b, "schedule_kept", kept);
    }
    out->valid = lost == 0 && dup == 0 && unknown == 0 && delivered > 0 && pairs_up == o->pairs &&
                 dropped == 0 && !interrupted && kept;
    snprintf(out->summary, sizeof(out->summary),
             "msg: %u pairs x %u, %.0f msg/s over %.1f s, latency p50 %llu us p90 %llu us "
             "p99 %llu us max %llu us, lost %llu dup %llu out-of-order %llu",
             pairs_up, o->window, rate, window,
             (unsigned long long)kr_bench_hist_quantile(&lat, 0.5),
             (unsigned long long)kr_bench_hist_quantile(&lat, 0.9),
             (unsigned long long)kr_bench_hist_quantile(&lat, 0.99), (unsigned long long)lat.max,
             (unsigned long long)lost, (unsigned long long)dup, (unsigned long long)reord);
    if (o->msg_rate > 0) {
        size_t n = strlen(out->summary);
        snprintf(out->summary + n, sizeof(out->summary) - n,
                 "; offered %.0f msg/s open loop, sent %.0f msg/s, send lag p99 %llu us, "
                 "held back by -w %llu%s",
                 o->msg_rate, window > 0 ? (double)sent_window / window : 0,
                 (unsigned long long)kr_bench_hist_quantile(&lag, 0.99),
                 (unsigned long long)window_full, kept ? "" : " (schedule NOT kept)");
    }
}

static void run_presence(kr_bench_run *r, outcome *out)
{
    const kr_bench_opts *o = r->o;
    bool setup = o->mode == KR_BENCH_MODE_SETUP_ROSTER;
    unsigned long need = o->contacts + (setup ? 1 : 0);
    set_phase(r, KR_BENCH_PH_CONNECT);
    wait_for(r, F_UP, F_FAILED, need, stall_s(o), 0);
    unsigned long up = sum(r, F_UP), failed = sum(r, F_FAILED);
    probe_cpu(o, &out->srv.cpu0);
    uint64_t t0 = kr_bench_now_ns();
    set_phase(r, KR_BENCH_PH_RUN);
    unsigned long target = setup ? 2ul * o->contacts : o->contacts;
    /* setup: a_got counts contacts approved by the user, a_user_got the user's approvals;
     * presence: a_got counts contacts that saw the presence */
    bool all = wait_for(r, F_GOT, setup ? F_USER_GOT : -1, target, o->timeout_s, o->timeout_s + 5);
    double elapsed = secs_since(t0);
    probe_cpu(o, &out->srv.cpu1);
    probe_rss(o, &out->srv.rss1);
    out->cpu_window = "run";
    unsigned long got = sum(r, F_GOT);
    unsigned long user_got = sum(r, F_USER_GOT);
    set_phase(r, KR_BENCH_PH_CLOSE);
    for (unsigned i = 0; i < r->n_workers; i++)
        pthread_join(r->workers[i].thread, NULL);
    kr_bench_hist lat, conn;
    merge_hists(r, &lat, &conn);
    kr_buf *b = &out->results;
    ju(b, "contacts", o->contacts);
    ju(b, "up", up);
    ju(b, "failed", failed);
    jd(b, "elapsed_s", elapsed);
    if (setup) {
        ju(b, "contacts_approved_by_user", got);
        ju(b, "user_approved_by_contacts", user_got);
        out->valid = all && got == o->contacts && user_got >= o->contacts;
        snprintf(out->summary, sizeof(out->summary),
                 "setup-roster: %lu/%u contacts approved by the user, user approved by %lu "
                 "in %.2f s",
                 got, o->contacts, user_got, elapsed);
        return;
    }
    ju(b, "received", got);
    ju(b, "user_login_us", r->workers[0].user_login_us);
    jhist(b, "latency_us", &lat);
    out->valid = all && got == o->contacts;
    snprintf(out->summary, sizeof(out->summary),
             "presence: %lu/%u contacts got the user's presence, p50 %llu us max %llu us "
             "(user login %llu us)",
             got, o->contacts, (unsigned long long)kr_bench_hist_quantile(&lat, 0.5),
             (unsigned long long)lat.max, (unsigned long long)r->workers[0].user_login_us);
}

/* ------------------------------------------------------------------ set-up */

static void usage(FILE *f)
{
    fprintf(f, "usage: kurier-bench MODE [N] [options]\n"
               "modes: login [N] | idle N | msg [PAIRS] | presence [CONTACTS] | "
               "setup-roster [CONTACTS]\n"
               "server:   --host H (127.0.0.1) --port P (5222; 5223 with --tls direct)\n"
               "          --domain D (from --user, else localhost) --tls starttls|direct|none\n"
               "          --ca FILE | --insecure   --mech auto|scram-sha-256|scram-sha-1|plain\n"
               "          --tls-lib auto|wolfssl|openssl (auto: wolfssl for login, else openssl)\n"
               "accounts: --user PATTERN ('bench%%d@localhost') --password PATTERN ('pw%%d')\n"
               "          --first I (0) --accounts N   --resource R (server-chosen)\n"
               "load:     -t/--threads N (CPUs) -c/--concurrency C (50) --rate R/s (0=no limit)\n"
               "          --source IP[,IP...] --timeout S (10) --presence|--no-presence\n"
               "login:    -n/--count N (1000) --no-prewarm\n"
               "idle:     -n/--count N --hold S (10) --keepalive S (30)\n"
               "msg:      -p/--pairs P (10) -w/--window W (1) --warmup S (2) --duration S (10)\n"
               "          --grace S (3) --to full|bare (full) --body-size BYTES (0)\n"
               "          --msg-rate R (0: closed loop; else R msg/s in total, open loop, paced\n"
               "          per pair; -w then only bounds what each pair has in flight)\n"
               "presence: -r/--contacts R (20)\n"
               "report:   --server-pid PID   debug: --trace (print every element)\n"
               "See docs/kurier-bench.md.\n");
}

static bool parse_ul(const char *s, unsigned long max, unsigned long *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v > max || s[0] == '-')
        return false;
    *out = v;
    return true;
}

static bool parse_u(const char *s, unsigned *out)
{
    unsigned long v;
    if (!parse_ul(s, 100000000ul, &v))
        return false;
    *out = (unsigned)v;
    return true;
}

static bool parse_d(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < 0)
        return false;
    *out = v;
    return true;
}

enum {
    OPT_HOST = 256,
    OPT_PORT,
    OPT_DOMAIN,
    OPT_TLS,
    OPT_CA,
    OPT_INSECURE,
    OPT_TLS_LIB,
    OPT_MECH,
    OPT_RESOURCE,
    OPT_USER,
    OPT_PASSWORD,
    OPT_FIRST,
    OPT_ACCOUNTS,
    OPT_SOURCE,
    OPT_TIMEOUT,
    OPT_SERVER_PID,
    OPT_PRESENCE,
    OPT_NO_PRESENCE,
    OPT_RATE,
    OPT_NO_PREWARM,
    OPT_HOLD,
    OPT_KEEPALIVE,
    OPT_WARMUP,
    OPT_DURATION,
    OPT_GRACE,
    OPT_TO,
    OPT_BODY_SIZE,
    OPT_TRACE,
    OPT_MSG_RATE,
    OPT_HELP,
};

static int parse_args(int argc, char **argv, kr_bench_opts *o)
{
    static const struct option longs[] = {
        {"host", 1, 0, OPT_HOST},
        {"port", 1, 0, OPT_PORT},
        {"domain", 1, 0, OPT_DOMAIN},
        {"tls", 1, 0, OPT_TLS},
        {"ca", 1, 0, OPT_CA},
        {"insecure", 0, 0, OPT_INSECURE},
        {"tls-lib", 1, 0, OPT_TLS_LIB},
        {"mech", 1, 0, OPT_MECH},
        {"resource", 1, 0, OPT_RESOURCE},
        {"user", 1, 0, OPT_USER},
        {"password", 1, 0, OPT_PASSWORD},
        {"first", 1, 0, OPT_FIRST},
        {"accounts", 1, 0, OPT_ACCOUNTS},
        {"source", 1, 0, OPT_SOURCE},
        {"timeout", 1, 0, OPT_TIMEOUT},
        {"server-pid", 1, 0, OPT_SERVER_PID},
        {"presence", 0, 0, OPT_PRESENCE},
        {"no-presence", 0, 0, OPT_NO_PRESENCE},
        {"threads", 1, 0, 't'},
        {"concurrency", 1, 0, 'c'},
        {"count", 1, 0, 'n'},
        {"rate", 1, 0, OPT_RATE},
        {"no-prewarm", 0, 0, OPT_NO_PREWARM},
        {"hold", 1, 0, OPT_HOLD},
        {"keepalive", 1, 0, OPT_KEEPALIVE},
        {"pairs", 1, 0, 'p'},
        {"window", 1, 0, 'w'},
        {"warmup", 1, 0, OPT_WARMUP},
        {"duration", 1, 0, OPT_DURATION},
        {"grace", 1, 0, OPT_GRACE},
        {"to", 1, 0, OPT_TO},
        {"body-size", 1, 0, OPT_BODY_SIZE},
        {"contacts", 1, 0, 'r'},
        {"trace", 0, 0, OPT_TRACE},
        {"msg-rate", 1, 0, OPT_MSG_RATE},
        {"help", 0, 0, OPT_HELP},
        {0, 0, 0, 0},
    };
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    *o = (kr_bench_opts){
        .host = "127.0.0.1",
        .tls = KR_BENCH_TLS_STARTTLS,
        .mech = KR_BENCH_MECH_AUTO,
        .user_pat = "bench%d@localhost",
        .pass_pat = "pw%d",
        .threads = ncpu > 0 ? (unsigned)ncpu : 1,
        .timeout_s = 10,
        .presence = -1,
        .count = 1000,
        .concurrency = 50,
        .prewarm = true,
        .hold_s = 10,
        .keepalive_s = 30,
        .pairs = 10,
        .window = 1,
        .warmup_s = 2,
        .duration_s = 10,
        .grace_s = 3,
        .contacts = 20,
    };
    bool count_set = false, pairs_set = false, contacts_set = false, rate_set = false;
    unsigned long ul;
    int ch, li = -1;
    while ((ch = getopt_long(argc, argv, "t:c:n:p:w:r:h", longs, &li)) != -1) {
        bool ok = true;
        switch (ch) {
        case OPT_HOST:
            o->host = optarg;
            break;
        case OPT_PORT:
            ok = parse_u(optarg, &o->port) && o->port > 0 && o->port < 65536;
            break;
        case OPT_DOMAIN:
            o->domain = optarg;
            break;
        case OPT_TLS:
            if (strcmp(optarg, "starttls") == 0)
                o->tls = KR_BENCH_TLS_STARTTLS;
            else if (strcmp(optarg, "direct") == 0)
                o->tls = KR_BENCH_TLS_DIRECT;
            else if (strcmp(optarg, "none") == 0)
                o->tls = KR_BENCH_TLS_NONE;
            else
                ok = false;
            break;
        case OPT_CA:
            o->ca_file = optarg;
            break;
        case OPT_INSECURE:
            o->insecure = true;
            break;
        case OPT_TLS_LIB:
            o->tls_lib = kr_bench_tls_find(optarg); /* NULL for "auto": see pick_tls_lib */
            ok = o->tls_lib != NULL || strcmp(optarg, "auto") == 0;
            break;
        case OPT_MECH:
            if (strcasecmp(optarg, "auto") == 0)
                o->mech = KR_BENCH_MECH_AUTO;
            else if (strcasecmp(optarg, "scram-sha-256") == 0)
                o->mech = KR_BENCH_MECH_SCRAM_SHA256;
            else if (strcasecmp(optarg, "scram-sha-1") == 0)
                o->mech = KR_BENCH_MECH_SCRAM_SHA1;
            else if (strcasecmp(optarg, "plain") == 0)
                o->mech = KR_BENCH_MECH_PLAIN;
            else
                ok = false;
            break;
        case OPT_RESOURCE:
            o->resource = optarg;
            break;
        case OPT_USER:
            o->user_pat = optarg;
            ok = pattern_ok(optarg);
            break;
        case OPT_PASSWORD:
            o->pass_pat = optarg;
            ok = pattern_ok(optarg);
            break;
        case OPT_FIRST:
            ok = parse_u(optarg, &o->first);
            break;
        case OPT_ACCOUNTS:
            ok = parse_u(optarg, &o->accounts) && o->accounts > 0;
            break;
        case OPT_SOURCE:
            o->sources = optarg;
            break;
        case OPT_TIMEOUT:
            ok = parse_d(optarg, &o->timeout_s) && o->timeout_s > 0;
            break;
        case OPT_SERVER_PID:
            ok = parse_ul(optarg, 1ul << 30, &ul) && ul > 0;
            o->server_pid = (pid_t)ul;
            break;
        case OPT_PRESENCE:
            o->presence = 1;
            break;
        case OPT_NO_PRESENCE:
            o->presence = 0;
            break;
        case 't':
            ok = parse_u(optarg, &o->threads) && o->threads > 0 && o->threads <= 256;
            break;
        case 'c':
            ok = parse_u(optarg, &o->concurrency) && o->concurrency > 0;
            break;
        case 'n':
            ok = parse_ul(optarg, 100000000ul, &o->count) && o->count > 0;
            count_set = true;
            break;
        case OPT_RATE:
            ok = parse_d(optarg, &o->rate);
            rate_set = true;
            break;
        case OPT_NO_PREWARM:
            o->prewarm = false;
            break;
        case OPT_HOLD:
            ok = parse_d(optarg, &o->hold_s);
            break;
        case OPT_KEEPALIVE:
            ok = parse_d(optarg, &o->keepalive_s);
            break;
        case 'p':
            ok = parse_u(optarg, &o->pairs) && o->pairs > 0;
            pairs_set = true;
            break;
        case 'w':
            ok = parse_u(optarg, &o->window) && o->window > 0 && o->window <= 100000;
            break;
        case OPT_WARMUP:
            ok = parse_d(optarg, &o->warmup_s);
            break;
        case OPT_DURATION:
            ok = parse_d(optarg, &o->duration_s) && o->duration_s > 0;
            break;
        case OPT_GRACE:
            ok = parse_d(optarg, &o->grace_s);
            break;
        case OPT_TO:
            if (strcmp(optarg, "full") == 0)
                o->to_bare = false;
            else if (strcmp(optarg, "bare") == 0)
                o->to_bare = true;
            else
                ok = false;
            break;
        case OPT_MSG_RATE:
            ok = parse_d(optarg, &o->msg_rate) && o->msg_rate <= 10e6;
            break;
        case OPT_BODY_SIZE:
            ok = parse_u(optarg, &o->body_size) && o->body_size <= 200000;
            break;
        case 'r':
            ok = parse_u(optarg, &o->contacts) && o->contacts > 0;
            contacts_set = true;
            break;
        case OPT_TRACE:
            o->trace = true;
            break;
        case OPT_HELP:
        case 'h':
            usage(stdout);
            exit(0);
        default:
            return -1;
        }
        if (!ok) {
            /* li names the long option just parsed; a short one (-t, -c, ...) leaves it -1. */
            if (li >= 0)
                fprintf(stderr, "kurier-bench: bad value for option --%s: %s\n", longs[li].name,
                        optarg ? optarg : "");
            else
                fprintf(stderr, "kurier-bench: bad value for option -%c: %s\n", ch,
                        optarg ? optarg : "");
            return -1;
        }
        li = -1;
    }
    if (optind >= argc) {
        fprintf(stderr, "kurier-bench: no mode given\n");
        return -1;
    }
    o->mode_name = argv[optind];
    static const char *const names[] = {"login", "idle", "msg", "presence", "setup-roster"};
    int m = -1;
    for (int i = 0; i < 5; i++)
        if (strcmp(o->mode_name, names[i]) == 0)
            m = i;
    if (m < 0) {
        fprintf(stderr, "kurier-bench: unknown mode %s\n", o->mode_name);
        return -1;
    }
    o->mode = (kr_bench_mode)m;
    if (optind + 1 < argc) {
        unsigned long n;
        if (optind + 2 < argc || !parse_ul(argv[optind + 1], 100000000ul, &n) || n == 0) {
            fprintf(stderr, "kurier-bench: bad argument after the mode: %s\n", argv[optind + 1]);
            return -1;
        }
        if (o->mode == KR_BENCH_MODE_LOGIN || o->mode == KR_BENCH_MODE_IDLE) {
            o->count = n;
            count_set = true;
        } else if (o->mode == KR_BENCH_MODE_MSG) {
            o->pairs = (unsigned)n;
            pairs_set = true;
        } else {
            o->contacts = (unsigned)n;
            contacts_set = true;
        }
    }
    if (o->mode == KR_BENCH_MODE_IDLE && !count_set) {
        fprintf(stderr, "kurier-bench: idle needs the number of connections\n");
        return -1;
    }
    if (o->mode == KR_BENCH_MODE_IDLE && !rate_set)
        o->rate = 1000;
    if (o->msg_rate > 0 && o->mode != KR_BENCH_MODE_MSG) {
        fprintf(stderr, "kurier-bench: --msg-rate is for msg mode only\n");
        return -1;
    }
    (void)pairs_set;
    (void)contacts_set;
    if (o->port == 0)
        o->port = o->tls == KR_BENCH_TLS_DIRECT ? 5223 : 5222;
    if (o->tls != KR_BENCH_TLS_NONE && !o->insecure && !o->ca_file)
        fprintf(stderr, "kurier-bench: no --ca given: verifying against the system store\n");
    /* distinct accounts each mode needs */
    unsigned long need;
    switch (o->mode) {
    case KR_BENCH_MODE_LOGIN:
    case KR_BENCH_MODE_IDLE:
        need = o->accounts ? o->accounts : o->count;
        break;
    case KR_BENCH_MODE_MSG:
        need = 2ul * o->pairs;
        break;
    default:
        need = 1ul + o->contacts;
        break;
    }
    if (need > 10000000ul) {
        fprintf(stderr, "kurier-bench: too many accounts\n");
        return -1;
    }
    o->accounts = (unsigned)need;
    return 0;
}

static int resolve(const char *host, unsigned port, struct sockaddr_storage *out)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    char ps[16];
    snprintf(ps, sizeof(ps), "%u", port);
    if (getaddrinfo(host, ps, &hints, &res) != 0 || !res)
        return -1;
    memcpy(out, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

static int parse_sources(const char *list, kr_bench_conn_cfg *cfg)
{
    if (!list)
        return 0;
    char *copy = kr_xstrdup(list), *save = NULL;
    unsigned n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    cfg->sources = kr_xcalloc(n, sizeof(*cfg->sources));
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        struct sockaddr_storage *ss = &cfg->sources[cfg->n_sources];
        if (uv_ip4_addr(t, 0, (struct sockaddr_in *)ss) != 0 &&
            uv_ip6_addr(t, 0, (struct sockaddr_in6 *)ss) != 0) {
            fprintf(stderr, "kurier-bench: bad source address %s\n", t);
            free(copy);
            return -1;
        }
        cfg->n_sources++;
    }
    free(copy);
    return 0;
}

static void setup_accounts(kr_bench_run *r)
{
    const kr_bench_opts *o = r->o;
    r->n_accounts = o->accounts;
    r->accounts = kr_xcalloc(r->n_accounts, sizeof(*r->accounts));
    r->caches = kr_xcalloc(r->n_accounts, sizeof(*r->caches));
    for (unsigned i = 0; i < r->n_accounts; i++) {
        char *jid = pattern_format(o->user_pat, o->first + i);
        char *at = strchr(jid, '@');
        if (at) {
            *at = '\0';
            if (!r->user_domain)
                r->user_domain = kr_xstrdup(at + 1);
        }
        r->accounts[i].localpart = jid; /* owns the allocation */
        r->accounts[i].password = pattern_format(o->pass_pat, o->first + i);
        r->accounts[i].index = i;
        r->accounts[i].cache = &r->caches[i];
    }
    if (!r->user_domain)
        r->user_domain = kr_xstrdup(o->domain ? o->domain : "localhost");
}

static void setup_workers(kr_bench_run *r)
{
    const kr_bench_opts *o = r->o;
    unsigned n = o->threads;
    r->n_workers = n;
    r->workers = kr_xcalloc(n, sizeof(*r->workers));
    for (unsigned i = 0; i < n; i++) {
        kr_bench_worker *w = &r->workers[i];
        w->id = i;
        w->run = r;
        w->conc = (unsigned)share(o->concurrency, i, n);
        if (w->conc == 0)
            w->conc = 1;
        w->rate = o->rate / n;
        kr_bench_hist_init(&w->lat);
        kr_bench_hist_init(&w->conn_lat);
        kr_bench_hist_init(&w->lag);
        uv_loop_init(&w->loop);
    }
    switch (o->mode) {
    case KR_BENCH_MODE_IDLE:
        for (unsigned i = 0; i < n; i++) {
            kr_bench_worker *w = &r->workers[i];
            w->n_slots = (unsigned)share(o->count, i, n);
            w->slots = kr_xcalloc(w->n_slots ? w->n_slots : 1, sizeof(*w->slots));
            for (unsigned j = 0; j < w->n_slots; j++) {
                unsigned long k = i + (unsigned long)j * n;
                w->slots[j] = (kr_bench_slot){.w = w,
                                              .role = KR_BENCH_ROLE_IDLE,
                                              .idx = (unsigned)k,
                                              .acct = &r->accounts[k % r->n_accounts]};
            }
        }
        break;
    case KR_BENCH_MODE_MSG:
        for (unsigned i = 0; i < n; i++) {
            kr_bench_worker *w = &r->workers[i];
            w->n_pairs = (unsigned)share(o->pairs, i, n);
            w->pairs = kr_xcalloc(w->n_pairs ? w->n_pairs : 1, sizeof(*w->pairs));
            for (unsigned j = 0; j < w->n_pairs; j++) {
                unsigned p = i + j * n;
                kr_bench_pair *pp = &w->pairs[j];
                pp->snd = (kr_bench_slot){
                    .w = w, .role = KR_BENCH_ROLE_SENDER, .idx = p, .acct = &r->accounts[p]};
                pp->rcv = (kr_bench_slot){.w = w,
                                          .role = KR_BENCH_ROLE_RECEIVER,
                                          .idx = p,
                                          .acct = &r->accounts[o->pairs + p]};
                kr_bench_seq_init(&pp->seq, o->window);
            }
        }
        break;
    case KR_BENCH_MODE_PRESENCE:
    case KR_BENCH_MODE_SETUP_ROSTER:
        r->user_bare = kr_xasprintf("%s@%s", r->accounts[0].localpart, r->user_domain);
        for (unsigned i = 0; i < n; i++) {
            kr_bench_worker *w = &r->workers[i];
            w->n_slots = (unsigned)share(o->contacts, i, n);
            w->slots = kr_xcalloc(w->n_slots ? w->n_slots : 1, sizeof(*w->slots));
            for (unsigned j = 0; j < w->n_slots; j++) {
                unsigned c = i + j * n; /* contact c is account 1 + c */
                w->slots[j] = (kr_bench_slot){
                    .w = w, .role = KR_BENCH_ROLE_CONTACT, .idx = c, .acct = &r->accounts[1 + c]};
            }
        }
        r->user_seen = kr_xcalloc(o->contacts, 1);
        r->workers[0].has_user = true;
        r->workers[0].user = (kr_bench_slot){
            .w = &r->workers[0], .role = KR_BENCH_ROLE_USER, .acct = &r->accounts[0]};
        break;
    default:
        break;
    }
}

static void free_run(kr_bench_run *r)
{
    for (unsigned i = 0; i < r->n_workers; i++) {
        kr_bench_worker *w = &r->workers[i];
        uv_loop_close(&w->loop);
        for (unsigned j = 0; j < w->n_pairs; j++)
            kr_bench_seq_free(&w->pairs[j].seq);
        free(w->pairs);
        free(w->slots);
    }
    free(r->workers);
    for (unsigned i = 0; i < r->n_accounts; i++) {
        free((char *)r->accounts[i].localpart);
        free((char *)r->accounts[i].password);
    }
    free(r->accounts);
    free(r->caches);
    free(r->user_domain);
    free(r->user_bare);
    free(r->user_seen);
    free(r->cfg.sources);
    if (r->cfg.tls_ctx)
        r->cfg.tls_lib->ctx_free(r->cfg.tls_ctx);
}

/* --tls-lib auto (the default): the engine that costs the generator least for the mode.
 * wolfSSL's full handshake is ~40% cheaper than OpenSSL 3.0's, which is what `login` does all
 * the time; Debian's wolfSSL has no AES-NI, so its records cost more, and the other modes
 * are mostly records (msg) or paced (idle, presence). */
static void pick_tls_lib(kr_bench_opts *o)
{
    if (!o->tls_lib)
        o->tls_lib = o->mode == KR_BENCH_MODE_LOGIN ? &kr_bench_tls_wolfssl : &kr_bench_tls_openssl;
}

static const char *const mech_names[] = {"auto", "scram-sha-256", "scram-sha-1", "plain"};
static const char *const tls_names[] = {"starttls", "direct", "none"};

static void print_json(kr_bench_run *r, outcome *out)
{
    const kr_bench_opts *o = r->o;
    kr_buf b = KR_BUF_INIT;
    kr_buf_puts(&b, "{");
    jstr(&b, "tool", "kurier-bench");
    jstr(&b, "mode", o->mode_name);
    jopen(&b, "params");
    jstr(&b, "host", o->host);
    ju(&b, "port", o->port);
    jstr(&b, "domain", r->cfg.domain);
    jstr(&b, "tls", tls_names[o->tls]);
    jb(&b, "verify", !o->insecure && o->tls != KR_BENCH_TLS_NONE);
    jstr(&b, "tls_lib", o->tls_lib->name);
    jstr(&b, "mech", mech_names[o->mech]);
    jstr(&b, "user", o->user_pat);
    ju(&b, "first", o->first);
    ju(&b, "accounts", r->n_accounts);
    ju(&b, "threads", o->threads);
    ju(&b, "concurrency", o->concurrency);
    jd(&b, "rate", o->rate);
    ju(&b, "sources", r->cfg.n_sources);
    jd(&b, "timeout_s", o->timeout_s);
    jb(&b, "presence", mode_presence(o));
    switch (o->mode) {
    case KR_BENCH_MODE_LOGIN:
        ju(&b, "count", o->count);
        jb(&b, "prewarm", o->prewarm);
        break;
    case KR_BENCH_MODE_IDLE:
        ju(&b, "count", o->count);
        jd(&b, "hold_s", o->hold_s);
        jd(&b, "keepalive_s", o->keepalive_s);
        break;
    case KR_BENCH_MODE_MSG:
        ju(&b, "pairs", o->pairs);
        ju(&b, "window", o->window);
        jd(&b, "warmup_s", o->warmup_s);
        jd(&b, "duration_s", o->duration_s);
        jd(&b, "grace_s", o->grace_s);
        jstr(&b, "to", o->to_bare ? "bare" : "full");
        ju(&b, "body_size", o->body_size);
        jd(&b, "msg_rate", o->msg_rate);
        break;
    default:
        ju(&b, "contacts", o->contacts);
        break;
    }
    jclose(&b);
    jk(&b, "results");
    kr_buf_puts(&b, "{");
    kr_buf_append(&b, out->results.data ? out->results.data : "", out->results.len);
    jclose(&b);
    jopen(&b, "errors");
    uint64_t errs[KR_BENCH_ERR_COUNT] = {0};
    const char *first = "";
    for (unsigned i = 0; i < r->n_workers; i++) {
        for (unsigned e = 1; e < KR_BENCH_ERR_COUNT; e++)
            errs[e] += r->workers[i].errs[e];
        if (!first[0])
            first = r->workers[i].first_error;
    }
    for (unsigned e = 1; e < KR_BENCH_ERR_COUNT; e++)
        ju(&b, kr_bench_err_name((kr_bench_err)e), errs[e]);
    jclose(&b);
    jstr(&b, "first_error", first);
    if (o->server_pid > 0) {
        jopen(&b, "server");
        ju(&b, "pid", (unsigned long long)o->server_pid);
        jd(&b, "cpu_s", out->srv.cpu1 - out->srv.cpu0);
        jstr(&b, "cpu_window", out->cpu_window ? out->cpu_window : "");
        ju(&b, "rss_kib", out->srv.rss1);
        if (o->mode == KR_BENCH_MODE_IDLE) {
            ju(&b, "rss_kib_before", out->srv.rss0);
            jd(&b, "kib_per_conn", out->kib_per_conn);
        }
        if (o->mode == KR_BENCH_MODE_MSG)
            jd(&b, "cpu_us_per_msg", out->per_unit_cpu_us);
        jclose(&b);
    }
    jb(&b, "interrupted", interrupted != 0);
    jb(&b, "valid", out->valid);
    kr_buf_puts(&b, "}\n");
    fwrite(b.data, 1, b.len, stdout);
    fflush(stdout);
    kr_buf_clear(&b);
    fprintf(stderr, "%s -- %s\n", out->summary, out->valid ? "OK" : "FAILED");
    if (!out->valid && first[0])
        fprintf(stderr, "first error: %s\n", first);
}

int main(int argc, char **argv)
{
    kr_bench_opts o;
    if (parse_args(argc, argv, &o) != 0) {
        usage(stderr);
        return EXIT_USAGE;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    kr_bench_run run;
    memset(&run, 0, sizeof(run));
    run.o = &o;
    setup_accounts(&run);
    run.cfg.domain = o.domain ? o.domain : run.user_domain;
    run.cfg.tls = o.tls;
    run.cfg.mech = o.mech;
    run.cfg.resource = o.resource;
    run.cfg.timeout_ms = (unsigned)(o.timeout_s * 1000);
    run.cfg.trace = o.trace;
    int rc = EXIT_USAGE;
    if (resolve(o.host, o.port, &run.cfg.server) != 0) {
        fprintf(stderr, "kurier-bench: cannot resolve %s\n", o.host);
        goto out;
    }
    if (parse_sources(o.sources, &run.cfg) != 0)
        goto out;
    char err[256];
    pick_tls_lib(&o);
    run.cfg.tls_lib = o.tls_lib;
    run.cfg.tls_ctx = o.tls_lib->ctx_new(o.ca_file, o.insecure, err, sizeof(err));
    if (!run.cfg.tls_ctx) {
        fprintf(stderr, "kurier-bench: %s\n", err);
        goto out;
    }
    setup_workers(&run);
    for (unsigned i = 0; i < run.n_workers; i++) {
        if (pthread_create(&run.workers[i].thread, NULL, worker_main, &run.workers[i]) != 0) {
            fprintf(stderr, "kurier-bench: cannot start thread\n");
            abort();
        }
    }
    outcome out;
    memset(&out, 0, sizeof(out));
    out.srv.cpu0 = out.srv.cpu1 = 0;
    switch (o.mode) {
    case KR_BENCH_MODE_LOGIN:
        run_login(&run, &out);
        break;
    case KR_BENCH_MODE_IDLE:
        run_idle(&run, &out);
        break;
    case KR_BENCH_MODE_MSG:
        run_msg(&run, &out);
        break;
    default:
        run_presence(&run, &out);
        break;
    }
    print_json(&run, &out);
    kr_buf_clear(&out.results);
    rc = out.valid ? 0 : EXIT_FAILED;
out:
    free_run(&run);
    return rc;
}
