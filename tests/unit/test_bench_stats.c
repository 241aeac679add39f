/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Unit tests of kurier-bench's statistics (src/bench/stats.c): histogram
 * buckets and quantiles against exact answers, merging, the msg-mode delivery
 * tracker (lost, duplicated, reordered, unknown numbers), and the /proc
 * parsers on crafted text and on this process itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/stats.h"

static kr_bench_hist *hist_new(void)
{
    kr_bench_hist *h = malloc(sizeof(*h));
    assert_non_null(h);
    kr_bench_hist_init(h);
    return h;
}

static void test_empty_histogram_reports_zero(void **state)
{
    kr_bench_hist *h = hist_new();
    assert_int_equal(h->count, 0);
    assert_int_equal(kr_bench_hist_quantile(h, 0.5), 0);
    assert_int_equal(kr_bench_hist_quantile(h, 0.99), 0);
    assert_true(kr_bench_hist_mean(h) == 0.0);
    free(h);
}

static void test_small_values_are_exact(void **state)
{
    kr_bench_hist *h = hist_new();
    for (uint64_t v = 1; v <= 100; v++)
        kr_bench_hist_add(h, v);
    assert_int_equal(kr_bench_hist_quantile(h, 0.50), 50);
    assert_int_equal(kr_bench_hist_quantile(h, 0.90), 90);
    assert_int_equal(kr_bench_hist_quantile(h, 0.99), 99);
    assert_int_equal(kr_bench_hist_quantile(h, 1.0), 100);
    assert_int_equal(kr_bench_hist_quantile(h, 0.0), 1);
    assert_int_equal(h->min, 1);
    assert_int_equal(h->max, 100);
    assert_true(kr_bench_hist_mean(h) == 50.5);
    free(h);
}

static void test_quantile_uses_nearest_rank(void **state)
{
    kr_bench_hist *h = hist_new();
    /* 10 samples: p50 is the 5th smallest, p90 the 9th, p91 rounds up to the 10th */
    for (uint64_t v = 10; v <= 100; v += 10)
        kr_bench_hist_add(h, v);
    assert_int_equal(kr_bench_hist_quantile(h, 0.50), 50);
    assert_int_equal(kr_bench_hist_quantile(h, 0.90), 90);
    assert_int_equal(kr_bench_hist_quantile(h, 0.91), 100);
    assert_int_equal(kr_bench_hist_quantile(h, 0.05), 10);
    free(h);
}

static void test_large_values_within_relative_error(void **state)
{
    kr_bench_hist *h = hist_new();
    /* 1000 samples from 1000 to 1000000 µs in steps of 1000 */
    for (uint64_t i = 1; i <= 1000; i++)
        kr_bench_hist_add(h, i * 1000);
    uint64_t p50 = kr_bench_hist_quantile(h, 0.50), p99 = kr_bench_hist_quantile(h, 0.99);
    /* exact answers 500000 and 990000; buckets are at most 1/64 wide */
    assert_true(p50 >= 500000 && p50 <= 500000 + 500000 / 64);
    assert_true(p99 >= 990000 && p99 <= 990000 + 990000 / 64);
    assert_int_equal(kr_bench_hist_quantile(h, 1.0), 1000000);
    free(h);
}

static void test_bucket_bounds_hold_their_values(void **state)
{
    static const uint64_t probes[] = {0,
                                      1,
                                      127,
                                      128,
                                      129,
                                      255,
                                      256,
                                      1000,
                                      65535,
                                      1u << 20,
                                      12345678,
                                      1ull << 40,
                                      UINT64_MAX / 3,
                                      UINT64_MAX};
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
        uint64_t v = probes[i];
        unsigned b = kr_bench_hist_bucket(v);
        assert_true(b < KR_BENCH_HIST_BUCKETS);
        assert_true(kr_bench_hist_bucket_high(b) >= v);
        if (b > 0)
            assert_true(kr_bench_hist_bucket_high(b - 1) < v);
    }
    assert_int_equal(kr_bench_hist_bucket(UINT64_MAX), KR_BENCH_HIST_BUCKETS - 1);
}

static void test_huge_value_is_recorded_as_max(void **state)
{
    kr_bench_hist *h = hist_new();
    kr_bench_hist_add(h, 5);
    kr_bench_hist_add(h, UINT64_MAX);
    assert_int_equal(kr_bench_hist_quantile(h, 1.0), UINT64_MAX);
    assert_int_equal(kr_bench_hist_quantile(h, 0.5), 5);
    free(h);
}

static void test_merge_equals_adding_everything_to_one(void **state)
{
    kr_bench_hist *a = hist_new(), *b = hist_new(), *all = hist_new();
    for (uint64_t v = 1; v <= 5000; v++) {
        kr_bench_hist_add(v % 3 ? a : b, v * 7);
        kr_bench_hist_add(all, v * 7);
    }
    kr_bench_hist_merge(a, b);
    assert_int_equal(a->count, all->count);
    assert_int_equal(a->sum, all->sum);
    assert_int_equal(a->min, all->min);
    assert_int_equal(a->max, all->max);
    for (double q = 0.1; q < 1.0; q += 0.1)
        assert_int_equal(kr_bench_hist_quantile(a, q), kr_bench_hist_quantile(all, q));
    free(a);
    free(b);
    free(all);
}

static void test_merge_of_empty_keeps_min(void **state)
{
    kr_bench_hist *a = hist_new(), *empty = hist_new();
    kr_bench_hist_add(a, 42);
    kr_bench_hist_merge(a, empty);
    assert_int_equal(a->min, 42);
    assert_int_equal(a->count, 1);
    kr_bench_hist_merge(empty, a);
    assert_int_equal(empty->min, 42);
    free(a);
    free(empty);
}

static void test_seq_in_order_delivery_counts_nothing_bad(void **state)
{
    kr_bench_seq s;
    kr_bench_seq_init(&s, 4);
    for (int round = 0; round < 100; round++) {
        uint64_t n = kr_bench_seq_send(&s);
        assert_int_equal(kr_bench_seq_recv(&s, n), KR_BENCH_SEQ_OK);
    }
    assert_int_equal(s.received, 100);
    assert_int_equal(s.duplicates + s.reordered + s.unknown, 0);
    assert_int_equal(kr_bench_seq_outstanding(&s), 0);
    kr_bench_seq_free(&s);
}

static void test_seq_window_limits_sending(void **state)
{
    kr_bench_seq s;
    kr_bench_seq_init(&s, 3);
    for (int i = 0; i < 3; i++) {
        assert_true(kr_bench_seq_can_send(&s));
        kr_bench_seq_send(&s);
    }
    assert_false(kr_bench_seq_can_send(&s));
    kr_bench_seq_recv(&s, 1);
    assert_true(kr_bench_seq_can_send(&s));
    assert_int_equal(kr_bench_seq_outstanding(&s), 2);
    kr_bench_seq_free(&s);
}

static void test_seq_detects_duplicate(void **state)
{
    kr_bench_seq s;
    kr_bench_seq_init(&s, 2);
    uint64_t a = kr_bench_seq_send(&s);
    assert_int_equal(kr_bench_seq_recv(&s, a), KR_BENCH_SEQ_OK);
    assert_int_equal(kr_bench_seq_recv(&s, a), KR_BENCH_SEQ_DUPLICATE);
    assert_int_equal(s.duplicates, 1);
    assert_int_equal(s.received, 1);
    kr_bench_seq_free(&s);
}

static void test_seq_detects_reordering(void **state)
{
    kr_bench_seq s;
    kr_bench_seq_init(&s, 4);
    uint64_t a = kr_bench_seq_send(&s), b = kr_bench_seq_send(&s), c = kr_bench_seq_send(&s);
    assert_int_equal(kr_bench_seq_recv(&s, c), KR_BENCH_SEQ_OK);
    assert_int_equal(kr_bench_seq_recv(&s, a), KR_BENCH_SEQ_REORDERED);
    assert_int_equal(kr_bench_seq_recv(&s, b), KR_BENCH_SEQ_REORDERED);
    assert_int_equal(s.reordered, 2);
    assert_int_equal(s.received, 3);
    kr_bench_seq_free(&s);
}

static void test_seq_counts_never_received_as_outstanding(void **state)
{
    kr_bench_seq s;
    kr_bench_seq_init(&s, 4);
    uint64_t a = kr_bench_seq_send(&s);
    kr_bench_seq_send(&s); /* lost */
    uint64_t c = kr_bench_seq_send(&s);
    kr_bench_seq_recv(&s, a);
    kr_bench_seq_recv(&s, c);
    assert_int_equal(kr_bench_seq_outstanding(&s), 1);
    kr_bench_seq_free(&s);
}

static void test_seq_rejects_number_never_sent(void **state)
{
    kr_bench_seq s;
    kr_bench_seq_init(&s, 2);
    kr_bench_seq_send(&s);
    assert_int_equal(kr_bench_seq_recv(&s, 7), KR_BENCH_SEQ_UNKNOWN);
    assert_int_equal(s.unknown, 1);
    assert_int_equal(kr_bench_seq_outstanding(&s), 1);
    kr_bench_seq_free(&s);
}

static void test_pace_nothing_due_before_start_or_phase(void **state)
{
    (void)state;
    kr_bench_pace p;
    kr_bench_pace_init(&p, 1000.0, 0.5, 1000000); /* 1 ms apart, first due at start + 0.5 ms */
    assert_int_equal(kr_bench_pace_due(&p, 0), 0);
    assert_int_equal(kr_bench_pace_due(&p, 1000000), 0);
    assert_int_equal(kr_bench_pace_due(&p, 1000000 + 499999), 0);
    assert_int_equal(kr_bench_pace_due(&p, 1000000 + 500000), 1);
    assert_int_equal(kr_bench_pace_next_ns(&p), 1500000);
}

static void test_pace_due_grows_with_time_not_with_answers(void **state)
{
    (void)state;
    kr_bench_pace p;
    kr_bench_pace_init(&p, 200.0, 0.0, 0); /* one every 5 ms, first at 0 */
    assert_int_equal(kr_bench_pace_due(&p, 0), 1);
    /* nobody sends for 1 s: 201 are due (0, 5 ms, ..., 1000 ms) */
    assert_int_equal(kr_bench_pace_due(&p, 1000000000), 201);
    for (int i = 0; i < 150; i++)
        kr_bench_pace_take(&p);
    assert_int_equal(kr_bench_pace_due(&p, 1000000000), 51);
    assert_int_equal(kr_bench_pace_next_ns(&p), 750000000);
}

static void test_pace_sends_the_rate_over_a_second(void **state)
{
    (void)state;
    kr_bench_pace p;
    kr_bench_pace_init(&p, 333.0, 0.25, 0);
    uint64_t sent = 0;
    for (uint64_t t = 0; t < 1000000000; t += 1000000) { /* a 1 ms timer */
        uint64_t n = kr_bench_pace_due(&p, t);
        for (uint64_t i = 0; i < n; i++)
            kr_bench_pace_take(&p);
        sent += n;
    }
    assert_true(sent >= 332 && sent <= 334);
    assert_int_equal(kr_bench_pace_due(&p, 999000000), 0);
}

static void test_parse_stat_sums_utime_and_stime(void **state)
{
    /* comm with a space and a ')' inside, as proc(5) allows */
    const char *line = "1234 (kurier d) x) S 1 1234 1234 0 -1 4194560 500 0 0 0 "
                       "250 75 0 0 20 0 3 0 100 1000000 200\n";
    uint64_t ticks = 0;
    assert_int_equal(kr_bench_parse_stat(line, &ticks), 0);
    assert_int_equal(ticks, 325);
}

static void test_parse_stat_rejects_truncated_line(void **state)
{
    uint64_t ticks = 0;
    assert_int_not_equal(kr_bench_parse_stat("1234 (x) S 1 2 3", &ticks), 0);
    assert_int_not_equal(kr_bench_parse_stat("no parenthesis", &ticks), 0);
}

static void test_parse_status_finds_vmrss(void **state)
{
    const char *text = "Name:\tkurierd\nVmPeak:\t  999 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
    uint64_t kib = 0;
    assert_int_equal(kr_bench_parse_status_rss(text, &kib), 0);
    assert_int_equal(kib, 12345);
    assert_int_not_equal(kr_bench_parse_status_rss("Name:\tx\nVmSize:\t1 kB\n", &kib), 0);
}

static void test_proc_readers_work_on_this_process(void **state)
{
    uint64_t kib = 0;
    double cpu = -1;
    volatile uint64_t spin = 0;
    for (uint64_t i = 0; i < 20000000; i++)
        spin += i;
    assert_int_equal(kr_bench_proc_rss_kib(getpid(), &kib), 0);
    assert_true(kib > 0);
    assert_int_equal(kr_bench_proc_cpu(getpid(), &cpu), 0);
    assert_true(cpu >= 0);
    assert_int_not_equal(kr_bench_proc_cpu(0, &cpu), 0); /* /proc/0 does not exist */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_histogram_reports_zero),
        cmocka_unit_test(test_small_values_are_exact),
        cmocka_unit_test(test_quantile_uses_nearest_rank),
        cmocka_unit_test(test_large_values_within_relative_error),
        cmocka_unit_test(test_bucket_bounds_hold_their_values),
        cmocka_unit_test(test_huge_value_is_recorded_as_max),
        cmocka_unit_test(test_merge_equals_adding_everything_to_one),
        cmocka_unit_test(test_merge_of_empty_keeps_min),
        cmocka_unit_test(test_seq_in_order_delivery_counts_nothing_bad),
        cmocka_unit_test(test_seq_window_limits_sending),
        cmocka_unit_test(test_seq_detects_duplicate),
        cmocka_unit_test(test_seq_detects_reordering),
        cmocka_unit_test(test_seq_counts_never_received_as_outstanding),
        cmocka_unit_test(test_seq_rejects_number_never_sent),
        cmocka_unit_test(test_pace_nothing_due_before_start_or_phase),
        cmocka_unit_test(test_pace_due_grows_with_time_not_with_answers),
        cmocka_unit_test(test_pace_sends_the_rate_over_a_second),
        cmocka_unit_test(test_parse_stat_sums_utime_and_stime),
        cmocka_unit_test(test_parse_stat_rejects_truncated_line),
        cmocka_unit_test(test_parse_status_finds_vmrss),
        cmocka_unit_test(test_proc_readers_work_on_this_process),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
