/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Statistics of kurier-bench (see stats.h): a fixed-size log-linear latency
 * histogram, the per-pair delivery tracker of msg mode (lost, duplicated and
 * reordered messages), the open-loop pacer of --msg-rate, and readers of the server's CPU time and RSS from
 * /proc (proc(5)). Pure code apart from the two file readers; owns no global
 * state. Invariants: a histogram's count equals the sum of its buckets; a
 * tracker never holds more than `window` numbers in flight.
 */
#include "bench/stats.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/error.h"

void kr_bench_hist_init(kr_bench_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

unsigned kr_bench_hist_bucket(uint64_t v)
{
    if (v < 2 * KR_BENCH_HIST_SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - KR_BENCH_HIST_SUB_BITS;
    unsigned sub = (unsigned)((v >> shift) & (KR_BENCH_HIST_SUB - 1));
    return (shift + 1) * KR_BENCH_HIST_SUB + sub;
}

uint64_t kr_bench_hist_bucket_high(unsigned bucket)
{
    if (bucket < 2 * KR_BENCH_HIST_SUB)
        return bucket;
    unsigned shift = bucket / KR_BENCH_HIST_SUB - 1;
    uint64_t sub = bucket % KR_BENCH_HIST_SUB;
    uint64_t low = (KR_BENCH_HIST_SUB + sub) << shift;
    return low + ((uint64_t)1 << shift) - 1;
}

void kr_bench_hist_add(kr_bench_hist *h, uint64_t v)
{
    h->buckets[kr_bench_hist_bucket(v)]++;
    h->count++;
    h->sum += v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void kr_bench_hist_merge(kr_bench_hist *dst, const kr_bench_hist *src)
{
    if (src->count == 0)
        return;
    for (unsigned i = 0; i < KR_BENCH_HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t kr_bench_hist_quantile(const kr_bench_hist *h, double q)
{
    if (h->count == 0)
        return 0;
    if (q <= 0)
        return h->min;
    if (q >= 1)
        return h->max;
    /* Nearest rank: the smallest sample with at least q*count samples at or below it. */
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if ((double)rank < q * (double)h->count)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < KR_BENCH_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t v = kr_bench_hist_bucket_high(i);
            if (v > h->max)
                v = h->max;
            if (v < h->min)
                v = h->min;
            return v;
        }
    }
    return h->max;
}

double kr_bench_hist_mean(const kr_bench_hist *h)
{
    return h->count ? (double)h->sum / (double)h->count : 0.0;
}

void kr_bench_seq_init(kr_bench_seq *s, unsigned window)
{
    memset(s, 0, sizeof(*s));
    s->window = window ? window : 1;
    s->inflight = kr_xcalloc(s->window, sizeof(*s->inflight));
}

void kr_bench_seq_free(kr_bench_seq *s)
{
    free(s->inflight);
    s->inflight = NULL;
    s->n_inflight = 0;
}

bool kr_bench_seq_can_send(const kr_bench_seq *s)
{
    return s->n_inflight < s->window;
}

uint64_t kr_bench_seq_send(kr_bench_seq *s)
{
    if (s->n_inflight >= s->window)
        abort(); /* caller broke the contract: check kr_bench_seq_can_send() first */
    uint64_t seq = s->next++;
    s->inflight[s->n_inflight++] = seq;
    return seq;
}

kr_bench_seq_verdict kr_bench_seq_recv(kr_bench_seq *s, uint64_t seq)
{
    if (seq >= s->next) {
        s->unknown++;
        return KR_BENCH_SEQ_UNKNOWN;
    }
    for (unsigned i = 0; i < s->n_inflight; i++) {
        if (s->inflight[i] != seq)
            continue;
        s->inflight[i] = s->inflight[--s->n_inflight];
        s->received++;
        if (s->any_received && seq < s->highest_received) {
            s->reordered++;
            return KR_BENCH_SEQ_REORDERED;
        }
        s->any_received = true;
        s->highest_received = seq;
        return KR_BENCH_SEQ_OK;
    }
    s->duplicates++;
    return KR_BENCH_SEQ_DUPLICATE;
}

unsigned kr_bench_seq_outstanding(const kr_bench_seq *s)
{
    return s->n_inflight;
}

static int read_small_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return KR_EIO;
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0) {
            close(fd);
            return KR_EIO;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return 0;
}

int kr_bench_parse_stat(const char *text, uint64_t *ticks)
{
    /* proc(5): "pid (comm) state ppid ..."; comm may hold anything, so start after the last
     * ')'. Fields after it, counting state as field 3: utime is 14, stime is 15. */
    const char *p = strrchr(text, ')');
    if (!p)
        return KR_EPARSE;
    p++;
    unsigned long long utime = 0, stime = 0;
    for (int field = 3; field <= 15; field++) {
        while (*p == ' ')
            p++;
        if (!*p)
            return KR_EPARSE;
        char *end = NULL;
        if (field == 14 || field == 15) {
            unsigned long long v = strtoull(p, &end, 10);
            if (end == p)
                return KR_EPARSE;
            if (field == 14)
                utime = v;
            else
                stime = v;
            p = end;
        } else {
            while (*p && *p != ' ')
                p++;
        }
    }
    *ticks = utime + stime;
    return 0;
}

int kr_bench_parse_status_rss(const char *text, uint64_t *kib)
{
    const char *p = strstr(text, "\nVmRSS:");
    if (!p) {
        if (strncmp(text, "VmRSS:", 6) != 0)
            return KR_EPARSE;
        p = text;
    } else {
        p++;
    }
    p += 6;
    char *end = NULL;
    unsigned long long v = strtoull(p, &end, 10);
    if (end == p)
        return KR_EPARSE;
    *kib = v;
    return 0;
}

int kr_bench_proc_cpu(pid_t pid, double *seconds)
{
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    if (read_small_file(path, buf, sizeof(buf)) != 0)
        return KR_EIO;
    uint64_t ticks = 0;
    if (kr_bench_parse_stat(buf, &ticks) != 0)
        return KR_EIO;
    long hz = sysconf(_SC_CLK_TCK);
    *seconds = (double)ticks / (double)(hz > 0 ? hz : 100);
    return 0;
}

int kr_bench_proc_rss_kib(pid_t pid, uint64_t *kib)
{
    char path[64], buf[8192];
    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    if (read_small_file(path, buf, sizeof(buf)) != 0)
        return KR_EIO;
    return kr_bench_parse_status_rss(buf, kib) == 0 ? 0 : KR_EIO;
}

void kr_bench_pace_init(kr_bench_pace *p, double rate, double phase, uint64_t start_ns)
{
    p->start_ns = start_ns;
    p->interval_ns = 1e9 / rate;
    p->phase = phase;
    p->taken = 0;
}

uint64_t kr_bench_pace_next_ns(const kr_bench_pace *p)
{
    return p->start_ns + (uint64_t)(((double)p->taken + p->phase) * p->interval_ns);
}

uint64_t kr_bench_pace_due(const kr_bench_pace *p, uint64_t now_ns)
{
    if (now_ns < p->start_ns)
        return 0;
    /* messages k with (k + phase) * interval <= now - start: k <= elapsed/interval - phase */
    double k = (double)(now_ns - p->start_ns) / p->interval_ns - p->phase;
    if (k < 0)
        return 0;
    uint64_t due = (uint64_t)k + 1;
    return due > p->taken ? due - p->taken : 0;
}

void kr_bench_pace_take(kr_bench_pace *p)
{
    p->taken++;
}
