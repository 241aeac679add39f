/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Unit tests of the abuse limits (src/server/limits.c) with an explicit clock:
 * the token bucket's refill, cap and debt, the per-IP connection count, and
 * failed logins per IP and per account (threshold, cool-down, decay over the
 * window, and that one address cannot lock another's account count).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "server/limits.h"

static void test_bucket_starts_full_and_pays_debt(void **state)
{
    kr_bucket b;
    kr_limits_bucket_init(&b, 1000, 0);
    assert_int_equal(kr_limits_bucket_charge(&b, 100, 1000, 1000, 0), 0);
    /* 100 bytes over at 100 B/s: one second of waiting. */
    assert_int_equal(kr_limits_bucket_charge(&b, 100, 1000, 100, 0), 1000);
    /* Half a second later half of the debt is paid. */
    assert_int_equal(kr_limits_bucket_charge(&b, 100, 1000, 0, 500), 500);
    assert_int_equal(kr_limits_bucket_charge(&b, 100, 1000, 0, 1000), 0);
}

static void test_bucket_refill_is_capped_at_burst(void **state)
{
    kr_bucket b;
    kr_limits_bucket_init(&b, 500, 0);
    assert_int_equal(kr_limits_bucket_charge(&b, 1000, 500, 500, 0), 0);
    /* An hour idle refills only up to the burst size. */
    assert_int_equal(kr_limits_bucket_charge(&b, 1000, 500, 500, 3600000), 0);
    assert_true(kr_limits_bucket_charge(&b, 1000, 500, 1, 3600000) >= 1);
}

static void test_bucket_wait_is_at_least_one_ms(void **state)
{
    kr_bucket b;
    kr_limits_bucket_init(&b, 0, 0);
    assert_int_equal(kr_limits_bucket_charge(&b, 1000000, 0, 1, 0), 1);
}

static void test_connections_per_ip(void **state)
{
    const char *ip = "192.0.2.7";
    assert_true(kr_limits_conn_acquire(ip, 2));
    assert_true(kr_limits_conn_acquire(ip, 2));
    assert_false(kr_limits_conn_acquire(ip, 2));
    assert_int_equal(kr_limits_conn_count(ip), 2);
    assert_true(kr_limits_conn_acquire("192.0.2.8", 2)); /* another address is unaffected */
    kr_limits_conn_release(ip);
    assert_true(kr_limits_conn_acquire(ip, 2));
    kr_limits_conn_release(ip);
    kr_limits_conn_release(ip);
    kr_limits_conn_release("192.0.2.8");
    assert_int_equal(kr_limits_conn_count(ip), 0);
    assert_int_equal(kr_limits_conn_count("192.0.2.8"), 0);
}

static kr_config login_cfg(void)
{
    kr_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.limits.login_failures_per_ip = 5;
    cfg.limits.login_failures_per_account = 3;
    cfg.limits.login_failure_window_s = 60;
    cfg.limits.login_cooldown_s = 10;
    return cfg;
}

static void test_account_cooldown_after_threshold(void **state)
{
    kr_config cfg = login_cfg();
    const char *acct = "alice@example.org";
    uint64_t t = 1000;
    assert_false(kr_limits_login_failed(&cfg, "198.51.100.1", acct, t));
    assert_false(kr_limits_login_failed(&cfg, "198.51.100.2", acct, t + 1));
    assert_false(kr_limits_login_blocked(&cfg, "198.51.100.3", acct, t + 2));
    /* The third failure, from a third address, locks the account for everyone. */
    assert_true(kr_limits_login_failed(&cfg, "198.51.100.3", acct, t + 2));
    assert_true(kr_limits_login_blocked(&cfg, "198.51.100.9", acct, t + 3));
    assert_false(kr_limits_login_blocked(&cfg, "198.51.100.9", "bob@example.org", t + 3));
    /* The cool-down ends after login_cooldown_s. */
    assert_true(kr_limits_login_blocked(&cfg, "198.51.100.9", acct, t + 2 + 9999));
    assert_false(kr_limits_login_blocked(&cfg, "198.51.100.9", acct, t + 2 + 10000));
}

static void test_ip_cooldown_covers_every_account(void **state)
{
    kr_config cfg = login_cfg();
    const char *ip = "203.0.113.5";
    uint64_t t = 100000;
    char acct[64];
    bool locked = false;
    for (int i = 0; i < 5; i++) {
        snprintf(acct, sizeof(acct), "user%d@example.org", i);
        locked = kr_limits_login_failed(&cfg, ip, acct, t + (uint64_t)i);
    }
    assert_true(locked);
    assert_true(kr_limits_login_blocked(&cfg, ip, "someone-else@example.org", t + 10));
    assert_true(kr_limits_login_blocked(&cfg, ip, NULL, t + 10));
    assert_false(kr_limits_login_blocked(&cfg, "203.0.113.6", NULL, t + 10));
}

static void test_failures_decay_over_the_window(void **state)
{
    kr_config cfg = login_cfg();
    const char *acct = "carol@example.org";
    uint64_t t = 500000;
    /* Two failures, then a whole window later two more: never three within the window. */
    assert_false(kr_limits_login_failed(&cfg, "192.0.2.50", acct, t));
    assert_false(kr_limits_login_failed(&cfg, "192.0.2.50", acct, t + 1));
    assert_false(kr_limits_login_failed(&cfg, "192.0.2.51", acct, t + 60000));
    assert_false(kr_limits_login_failed(&cfg, "192.0.2.52", acct, t + 60001));
    assert_false(kr_limits_login_blocked(&cfg, "192.0.2.53", acct, t + 60002));
    /* A third one at once does reach the threshold. */
    assert_true(kr_limits_login_failed(&cfg, "192.0.2.53", acct, t + 60002));
}

static void test_failure_without_account_counts_only_ip(void **state)
{
    kr_config cfg = login_cfg();
    uint64_t t = 900000;
    for (int i = 0; i < 4; i++)
        assert_false(kr_limits_login_failed(&cfg, "192.0.2.99", NULL, t));
    assert_true(kr_limits_login_failed(&cfg, "192.0.2.99", NULL, t));
    assert_true(kr_limits_login_blocked(&cfg, "192.0.2.99", "dave@example.org", t + 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_starts_full_and_pays_debt),
        cmocka_unit_test(test_bucket_refill_is_capped_at_burst),
        cmocka_unit_test(test_bucket_wait_is_at_least_one_ms),
        cmocka_unit_test(test_connections_per_ip),
        cmocka_unit_test(test_account_cooldown_after_threshold),
        cmocka_unit_test(test_ip_cooldown_covers_every_account),
        cmocka_unit_test(test_failures_decay_over_the_window),
        cmocka_unit_test(test_failure_without_account_counts_only_ip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
