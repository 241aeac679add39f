/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Statistics of kurier-bench, free of any network code so a unit test links
 * only this file and kr_core. It owns three things:
 *  - kr_bench_hist: a log-linear latency histogram of fixed size (values in
 *    microseconds, relative error of a percentile at most 1/64 above 128 and
 *    exact below), so memory is bounded however many samples arrive; count,
 *    sum, min and max are exact.
 *  - kr_bench_seq: the delivery check of one message stream (one msg-mode
 *    pair): which sequence numbers are in flight, what arrived twice, what
 *    arrived out of order, what never arrived. It holds at most `window`
 *    outstanding numbers, the most a pair ever has in flight.
 *  - kr_bench_pace: the open-loop schedule of one msg-mode pair under
 *    --msg-rate (message k is due at start + (k + phase) / rate, whatever
 *    the server answers), so a slow server cannot slow the offered load.
 *  - readers of /proc/PID/stat (utime+stime) and /proc/PID/status (VmRSS) for
 *    the server's CPU and memory.
 * Nothing here is thread-safe: each bench worker owns its own histograms and
 * trackers, and the main thread merges them after the workers are joined.
 */
#ifndef KR_BENCH_STATS_H
#define KR_BENCH_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Values below 2^(KR_BENCH_HIST_SUB_BITS+1) have a bucket each; above, each power of two is split
 * into 2^KR_BENCH_HIST_SUB_BITS buckets. */
#define KR_BENCH_HIST_SUB_BITS 6
#define KR_BENCH_HIST_SUB (1u << KR_BENCH_HIST_SUB_BITS)
#define KR_BENCH_HIST_BUCKETS ((64 - KR_BENCH_HIST_SUB_BITS + 1) * KR_BENCH_HIST_SUB)

typedef struct kr_bench_hist {
    uint64_t count;
    uint64_t sum;
    uint64_t min; /* UINT64_MAX while empty */
    uint64_t max;
    uint64_t buckets[KR_BENCH_HIST_BUCKETS];
} kr_bench_hist;

void kr_bench_hist_init(kr_bench_hist *h);
/** Record one value (e.g. a latency in µs). */
void kr_bench_hist_add(kr_bench_hist *h, uint64_t v);
/** Add every sample of src to dst. */
void kr_bench_hist_merge(kr_bench_hist *dst, const kr_bench_hist *src);
/** The value at quantile q in [0, 1] (q=0.5: median; nearest-rank): the highest value of the
 * bucket holding that rank, clamped to [min, max], so q=1 gives exactly max. 0 when empty. */
uint64_t kr_bench_hist_quantile(const kr_bench_hist *h, double q);
/** Mean of the samples, 0 when empty. */
double kr_bench_hist_mean(const kr_bench_hist *h);
/** Index of the bucket holding v, and the highest value that bucket holds (for tests). */
unsigned kr_bench_hist_bucket(uint64_t v);
uint64_t kr_bench_hist_bucket_high(unsigned bucket);

/** What kr_bench_seq_recv() made of one received sequence number. */
typedef enum kr_bench_seq_verdict {
    KR_BENCH_SEQ_OK = 0,    /* first arrival, in order */
    KR_BENCH_SEQ_REORDERED, /* first arrival, but a higher number had arrived before it */
    KR_BENCH_SEQ_DUPLICATE, /* was sent, already arrived */
    KR_BENCH_SEQ_UNKNOWN,   /* never sent (corrupt or foreign body) */
} kr_bench_seq_verdict;

typedef struct kr_bench_seq {
    uint64_t next;      /* next number to send; all below were sent */
    uint64_t *inflight; /* numbers sent and not yet received, unordered, n_inflight of them */
    unsigned n_inflight;
    unsigned window; /* capacity of inflight */
    bool any_received;
    uint64_t highest_received;
    uint64_t received, duplicates, reordered, unknown;
} kr_bench_seq;

/** window: the most numbers ever in flight at once (> 0). */
void kr_bench_seq_init(kr_bench_seq *s, unsigned window);
void kr_bench_seq_free(kr_bench_seq *s);
/** Whether another number may be sent now (fewer than window in flight). */
bool kr_bench_seq_can_send(const kr_bench_seq *s);
/** Take the next number to send and mark it in flight; the caller checked can_send. */
uint64_t kr_bench_seq_send(kr_bench_seq *s);
/** Account for one arrival and update the counters. */
kr_bench_seq_verdict kr_bench_seq_recv(kr_bench_seq *s, uint64_t seq);
/** Numbers sent and never received (the lost ones, once the grace period is over). */
unsigned kr_bench_seq_outstanding(const kr_bench_seq *s);

/** Open-loop send schedule of one stream: message k (from 0) is due at
 * start_ns + (k + phase) * 1e9 / rate. `phase` in [0, 1) staggers the streams of
 * several pairs so they do not all send in the same instant. */
typedef struct kr_bench_pace {
    uint64_t start_ns;
    double interval_ns; /* 1e9 / rate */
    double phase;
    uint64_t taken; /* messages handed out so far */
} kr_bench_pace;

/** rate: messages per second (> 0); phase in [0, 1). */
void kr_bench_pace_init(kr_bench_pace *p, double rate, double phase, uint64_t start_ns);
/** How many messages are due at now_ns and not yet taken (0 before the first is due). */
uint64_t kr_bench_pace_due(const kr_bench_pace *p, uint64_t now_ns);
/** When the next message not yet taken is (or was) due. */
uint64_t kr_bench_pace_next_ns(const kr_bench_pace *p);
/** Mark one due message as sent. */
void kr_bench_pace_take(kr_bench_pace *p);

/** The process's CPU time (utime + stime from /proc/PID/stat) in seconds; 0 or KR_EIO. */
int kr_bench_proc_cpu(pid_t pid, double *seconds);
/** The process's resident set (VmRSS from /proc/PID/status) in KiB; 0 or KR_EIO. */
int kr_bench_proc_rss_kib(pid_t pid, uint64_t *kib);
/** Parse the contents of a /proc/PID/stat line (the comm field may hold spaces and ')');
 * ticks = utime + stime in clock ticks. 0 or KR_EPARSE. */
int kr_bench_parse_stat(const char *text, uint64_t *ticks);
/** Parse the contents of /proc/PID/status for VmRSS. 0 or KR_EPARSE. */
int kr_bench_parse_status_rss(const char *text, uint64_t *kib);

#endif
