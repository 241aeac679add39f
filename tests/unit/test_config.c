/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Unit tests of the configuration loader (src/core/config.c): defaults, the
 * shipped examples/kurierd.yml and docs/configuration.md against the key table,
 * every class of error with its exact "NAME:LINE: sentence." message, listen
 * address forms (RFC 6120 §5 STARTTLS, XEP-0368 direct TLS), domain
 * preparation (RFC 7622 §3.2), and the path and domain helpers.
 * The source tree is found from __FILE__: absolute as is, or relative to the
 * directory the compiler ran in, which is the directory holding this test's
 * executable (meson's build directory); KURIER_SOURCE_ROOT overrides both.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "core/config.h"
#include "core/error.h"

#define THIS_FILE_IN_TREE "tests/unit/test_config.c"

static char err[512];

static int load(const char *yaml, kr_config *c)
{
    err[0] = '\0';
    return kr_config_load_string(yaml, strlen(yaml), "t.yml", c, err, sizeof(err));
}

static bool all_zero(const kr_config *c)
{
    static const kr_config zero;
    return memcmp(c, &zero, sizeof(zero)) == 0;
}

static void expect_error(const char *yaml, const char *message)
{
    kr_config c;
    memset(&c, 0xa5, sizeof(c));
    assert_int_equal(load(yaml, &c), KR_ECONFIG);
    assert_string_equal(err, message);
    assert_true(all_zero(&c));
    kr_config_free(&c);
}

static void expect_ok(const char *yaml, kr_config *c)
{
    int rc = load(yaml, c);
    if (rc != 0)
        fail_msg("unexpected error: %s", err);
}

/* The CPUs this test may run on: what `workers: 0` must become. */
static unsigned cpu_count(void)
{
    cpu_set_t set;
    assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
    long n = CPU_COUNT(&set);
    return n > 256 ? 256 : (unsigned)n;
}

static void assert_listen_equal(const kr_listen_list *a, const kr_listen_list *b)
{
    assert_int_equal(a->count, b->count);
    for (size_t i = 0; i < a->count; i++) {
        assert_string_equal(a->items[i].host, b->items[i].host);
        assert_int_equal(a->items[i].port, b->items[i].port);
    }
}

/* Every field but path. */
static void assert_config_equal(const kr_config *a, const kr_config *b)
{
    assert_int_equal(a->domain_count, b->domain_count);
    for (size_t i = 0; i < a->domain_count; i++)
        assert_string_equal(a->domains[i], b->domains[i]);
    assert_int_equal(a->workers, b->workers);
    assert_int_equal(a->log_level, b->log_level);
    assert_string_equal(a->data_dir, b->data_dir);
    assert_string_equal(a->tls.certificate, b->tls.certificate);
    assert_string_equal(a->tls.key, b->tls.key);
    assert_listen_equal(&a->c2s.starttls, &b->c2s.starttls);
    assert_listen_equal(&a->c2s.direct_tls, &b->c2s.direct_tls);
    assert_int_equal(a->sasl.plain, b->sasl.plain);
    assert_int_equal(a->sasl.scram_iterations, b->sasl.scram_iterations);
    assert_int_equal(a->sasl.max_failures, b->sasl.max_failures);
    assert_string_equal(a->storage.driver, b->storage.driver);
    assert_string_equal(a->storage.sqlite_path, b->storage.sqlite_path);
    assert_int_equal(a->limits.max_stanza_bytes, b->limits.max_stanza_bytes);
    assert_int_equal(a->limits.max_depth, b->limits.max_depth);
    assert_int_equal(a->limits.max_attributes, b->limits.max_attributes);
    assert_int_equal(a->limits.auth_timeout_s, b->limits.auth_timeout_s);
    assert_int_equal(a->limits.idle_timeout_s, b->limits.idle_timeout_s);
    assert_int_equal(a->limits.max_send_queue_bytes, b->limits.max_send_queue_bytes);
}

/* The values the specification gives, written out independently of the key table. */
static void assert_documented_defaults(const kr_config *c)
{
    assert_int_equal(c->domain_count, 1);
    assert_string_equal(c->domains[0], "localhost");
    assert_int_equal(c->workers, cpu_count());
    assert_int_equal(c->log_level, KR_LOG_INFO);
    assert_string_equal(c->data_dir, "./data");
    assert_string_equal(c->tls.certificate, "cert.pem");
    assert_string_equal(c->tls.key, "key.pem");
    assert_int_equal(c->c2s.starttls.count, 1);
    assert_string_equal(c->c2s.starttls.items[0].host, "127.0.0.1");
    assert_int_equal(c->c2s.starttls.items[0].port, 5222);
    assert_int_equal(c->c2s.direct_tls.count, 1);
    assert_string_equal(c->c2s.direct_tls.items[0].host, "127.0.0.1");
    assert_int_equal(c->c2s.direct_tls.items[0].port, 5223);
    assert_true(c->sasl.plain);
    assert_int_equal(c->sasl.scram_iterations, 10000);
    assert_int_equal(c->sasl.max_failures, 3);
    assert_string_equal(c->storage.driver, "sqlite");
    assert_string_equal(c->storage.sqlite_path, "kurier.db");
    assert_int_equal(c->limits.max_stanza_bytes, 262144);
    assert_int_equal(c->limits.max_depth, 64);
    assert_int_equal(c->limits.max_attributes, 64);
    assert_int_equal(c->limits.auth_timeout_s, 30);
    assert_int_equal(c->limits.idle_timeout_s, 600);
    assert_int_equal(c->limits.max_send_queue_bytes, 1048576);
}

/* ---- finding the source tree ---- */

static bool readable(const char *root, const char *rel)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s%s", root, rel);
    return access(p, R_OK) == 0;
}

/* Path of a file in the source tree; caller frees. Fails the test when not found. */
static char *source_file(const char *rel)
{
    char root[PATH_MAX];
    const char *env = getenv("KURIER_SOURCE_ROOT");
    if (env && *env) {
        snprintf(root, sizeof(root), "%s/", env);
    } else {
        size_t flen = strlen(__FILE__), slen = strlen(THIS_FILE_IN_TREE);
        assert_true(flen >= slen);
        assert_string_equal(__FILE__ + flen - slen, THIS_FILE_IN_TREE);
        int plen = (int)(flen - slen);
        if (__FILE__[0] == '/') {
            snprintf(root, sizeof(root), "%.*s", plen, __FILE__);
        } else {
            char exe[PATH_MAX];
            ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
            assert_true(n > 0);
            exe[n] = '\0';
            *strrchr(exe, '/') = '\0';
            int n2 = snprintf(root, sizeof(root), "%s/%.*s", exe, plen, __FILE__);
            assert_true(n2 > 0 && (size_t)n2 < sizeof(root));
        }
    }
    if (!readable(root, rel))
        fail_msg("cannot find %s under \"%s\" (set KURIER_SOURCE_ROOT)", rel, root);
    char *p = malloc(strlen(root) + strlen(rel) + 1);
    assert_non_null(p);
    strcpy(p, root);
    strcat(p, rel);
    return p;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

static char *temp_file(const char *content)
{
    char *path = strdup("/tmp/kr_test_config_XXXXXX");
    assert_non_null(path);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t n = strlen(content);
    assert_int_equal(write(fd, content, n), (ssize_t)n);
    close(fd);
    return path;
}

/* ---- defaults ---- */

static void defaults_match_the_documented_values(void **state)
{
    kr_config c;
    kr_config_defaults(&c);
    assert_documented_defaults(&c);
    assert_null(c.path);
    kr_config_free(&c);
    assert_true(all_zero(&c));
}

static void empty_string_gives_defaults(void **state)
{
    kr_config c;
    assert_int_equal(kr_config_load_string("", 0, "t.yml", &c, err, sizeof(err)), 0);
    assert_documented_defaults(&c);
    assert_string_equal(c.path, "t.yml");
    kr_config_free(&c);
}

static void empty_file_gives_defaults(void **state)
{
    char *path = temp_file("");
    kr_config c;
    int rc = kr_config_load(path, &c, err, sizeof(err));
    unlink(path);
    assert_int_equal(rc, 0);
    assert_documented_defaults(&c);
    assert_string_equal(c.path, path);
    kr_config_free(&c);
    free(path);
}

static void comments_only_give_defaults(void **state)
{
    kr_config c;
    expect_ok("# nothing here\n\n   # still nothing\n", &c);
    assert_documented_defaults(&c);
    kr_config_free(&c);
}

static void empty_sections_give_defaults(void **state)
{
    kr_config c;
    expect_ok("tls:\nlimits: ~\nsasl: {}\n", &c);
    assert_documented_defaults(&c);
    kr_config_free(&c);
}

/* ---- the shipped example and reference ---- */

static void example_file_loads_and_matches_defaults(void **state)
{
    char *path = source_file("examples/kurierd.yml");
    kr_config c, d;
    int rc = kr_config_load(path, &c, err, sizeof(err));
    if (rc)
        fail_msg("examples/kurierd.yml: %s", err);
    kr_config_defaults(&d);
    assert_config_equal(&c, &d);
    assert_string_equal(c.path, path);
    kr_config_free(&c);
    kr_config_free(&d);
    free(path);
}

typedef struct leaf {
    char path[128];
    size_t line; /* 0-based */
} leaf;

static bool is_key(const char *path)
{
    for (size_t i = 0; kr_config_key_name(i); i++)
        if (!strcmp(kr_config_key_name(i), path))
            return true;
    return false;
}

static void collect_leaves(yaml_document_t *doc, yaml_node_t *map, const char *prefix,
                           leaf *out, size_t *n, size_t max)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        char path[128];
        snprintf(path, sizeof(path), "%s%s", prefix, (const char *)k->data.scalar.value);
        if (v->type == YAML_MAPPING_NODE && !is_key(path)) { /* a section, not a map key */
            char sub[130];
            snprintf(sub, sizeof(sub), "%s.", path);
            collect_leaves(doc, v, sub, out, n, max);
        } else {
            assert_true(*n < max);
            snprintf(out[*n].path, sizeof(out[*n].path), "%s", path);
            out[*n].line = k->start_mark.line;
            (*n)++;
        }
    }
}

/* Start of the given 0-based line. */
static const char *line_start(const char *text, size_t line)
{
    for (; line > 0; line--) {
        text = strchr(text, '\n');
        assert_non_null(text);
        text++;
    }
    return text;
}

static void example_file_sets_and_comments_every_key(void **state)
{
    char *path = source_file("examples/kurierd.yml");
    char *text = slurp(path);
    yaml_parser_t parser;
    yaml_document_t doc;
    assert_true(yaml_parser_initialize(&parser));
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, strlen(text));
    assert_true(yaml_parser_load(&parser, &doc));
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    assert_non_null(root);
    assert_int_equal(root->type, YAML_MAPPING_NODE);
    leaf leaves[128];
    size_t n = 0;
    collect_leaves(&doc, root, "", leaves, &n, 128);
    size_t keys = 0;
    for (const char *name; (name = kr_config_key_name(keys)) != NULL; keys++) {
        size_t i = 0;
        while (i < n && strcmp(leaves[i].path, name) != 0)
            i++;
        if (i == n)
            fail_msg("examples/kurierd.yml does not set \"%s\"", name);
        /* The line above the key is a comment saying what it does. */
        assert_true(leaves[i].line > 0);
        const char *above = line_start(text, leaves[i].line - 1);
        above += strspn(above, " ");
        if (*above != '#')
            fail_msg("\"%s\" in examples/kurierd.yml has no comment above it", name);
    }
    assert_true(keys >= 19);
    assert_int_equal(n, keys);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    free(text);
    free(path);
}

static void reference_documents_every_key(void **state)
{
    char *path = source_file("docs/configuration.md");
    char *text = slurp(path);
    for (size_t i = 0; kr_config_key_name(i); i++) {
        char want[160];
        snprintf(want, sizeof(want), "`%s`", kr_config_key_name(i));
        if (!strstr(text, want))
            fail_msg("docs/configuration.md does not document %s", want);
    }
    free(text);
    free(path);
}

/* ---- values land in their fields ---- */

static void every_key_is_applied(void **state)
{
    kr_config c;
    expect_ok("domains: [a.example, b.example]\n"
              "workers: 7\n"
              "log_level: debug\n"
              "data_dir: /var/lib/kurier\n"
              "tls:\n"
              "  certificate: /etc/kurier/chain.pem\n"
              "  key: priv.pem\n"
              "c2s:\n"
              "  starttls: [\"0.0.0.0:15222\"]\n"
              "  direct_tls: [\"[::]:15223\", \"10.0.0.1:443\"]\n"
              "sasl:\n"
              "  plain: no\n"
              "  scram_iterations: 4096\n"
              "  max_failures: 100\n"
              "storage:\n"
              "  driver: sqlite\n"
              "  sqlite_path: x.db\n"
              "limits:\n"
              "  max_stanza_bytes: 16777216\n"
              "  max_depth: 4\n"
              "  max_attributes: 1024\n"
              "  auth_timeout_s: 1\n"
              "  idle_timeout_s: 86400\n"
              "  max_send_queue_bytes: 268435456\n",
              &c);
    assert_int_equal(c.domain_count, 2);
    assert_string_equal(c.domains[0], "a.example");
    assert_string_equal(c.domains[1], "b.example");
    assert_int_equal(c.workers, 7);
    assert_int_equal(c.log_level, KR_LOG_DEBUG);
    assert_string_equal(c.data_dir, "/var/lib/kurier");
    assert_string_equal(c.tls.certificate, "/etc/kurier/chain.pem");
    assert_string_equal(c.tls.key, "priv.pem");
    assert_int_equal(c.c2s.starttls.count, 1);
    assert_string_equal(c.c2s.starttls.items[0].host, "0.0.0.0");
    assert_int_equal(c.c2s.starttls.items[0].port, 15222);
    assert_int_equal(c.c2s.direct_tls.count, 2);
    assert_string_equal(c.c2s.direct_tls.items[0].host, "::");
    assert_int_equal(c.c2s.direct_tls.items[0].port, 15223);
    assert_string_equal(c.c2s.direct_tls.items[1].host, "10.0.0.1");
    assert_int_equal(c.c2s.direct_tls.items[1].port, 443);
    assert_false(c.sasl.plain);
    assert_int_equal(c.sasl.scram_iterations, 4096);
    assert_int_equal(c.sasl.max_failures, 100);
    assert_string_equal(c.storage.driver, "sqlite");
    assert_string_equal(c.storage.sqlite_path, "x.db");
    assert_int_equal(c.limits.max_stanza_bytes, 16777216);
    assert_int_equal(c.limits.max_depth, 4);
    assert_int_equal(c.limits.max_attributes, 1024);
    assert_int_equal(c.limits.auth_timeout_s, 1);
    assert_int_equal(c.limits.idle_timeout_s, 86400);
    assert_int_equal(c.limits.max_send_queue_bytes, 268435456);
    kr_config_free(&c);
}

static void omitted_keys_keep_defaults_beside_set_ones(void **state)
{
    kr_config c;
    expect_ok("limits:\n  max_depth: 9\n", &c);
    assert_int_equal(c.limits.max_depth, 9);
    assert_int_equal(c.limits.max_attributes, 64);
    assert_int_equal(c.limits.max_stanza_bytes, 262144);
    kr_config_free(&c);
}

static void workers_zero_resolves_to_cpu_count(void **state)
{
    kr_config c;
    expect_ok("workers: 0\n", &c);
    assert_int_equal(c.workers, cpu_count());
    assert_true(c.workers >= 1);
    kr_config_free(&c);
}

/* taskset -c N kurierd: one worker, not one per CPU of the machine. */
static void workers_zero_follows_the_affinity_mask(void **state)
{
    cpu_set_t all, one;
    assert_int_equal(sched_getaffinity(0, sizeof(all), &all), 0);
    int first = 0;
    while (!CPU_ISSET(first, &all))
        first++;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    assert_int_equal(sched_setaffinity(0, sizeof(one), &one), 0);
    kr_config c;
    expect_ok("workers: 0\n", &c);
    assert_int_equal(sched_setaffinity(0, sizeof(all), &all), 0);
    assert_int_equal(c.workers, 1);
    kr_config_free(&c);
}

static void workers_explicit_count_is_kept(void **state)
{
    kr_config c;
    expect_ok("workers: 256\n", &c);
    assert_int_equal(c.workers, 256);
    kr_config_free(&c);
}

static void bool_accepts_true_false_yes_no(void **state)
{
    static const struct {
        const char *yaml;
        bool want;
    } cases[] = {
        {"sasl: {plain: true}", true},
        {"sasl: {plain: yes}", true},
        {"sasl: {plain: false}", false},
        {"sasl: {plain: no}", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        kr_config c;
        expect_ok(cases[i].yaml, &c);
        assert_int_equal(c.sasl.plain, cases[i].want);
        kr_config_free(&c);
    }
}

static void log_level_names_map_to_levels(void **state)
{
    static const struct {
        const char *yaml;
        kr_log_level want;
    } cases[] = {
        {"log_level: error", KR_LOG_ERROR},
        {"log_level: warn", KR_LOG_WARN},
        {"log_level: info", KR_LOG_INFO},
        {"log_level: debug", KR_LOG_DEBUG},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        kr_config c;
        expect_ok(cases[i].yaml, &c);
        assert_int_equal(c.log_level, cases[i].want);
        kr_config_free(&c);
    }
}

static void quoted_number_is_accepted(void **state)
{
    kr_config c;
    expect_ok("workers: \"2\"\n", &c);
    assert_int_equal(c.workers, 2);
    kr_config_free(&c);
}

/* ---- listen addresses ---- */

static void listen_addresses_ipv4_and_ipv6(void **state)
{
    kr_config c;
    expect_ok("c2s:\n"
              "  starttls: [\"[::1]:5222\", \"127.0.0.1:5222\", \"[2001:DB8:0::1]:1\"]\n"
              "  direct_tls: []\n",
              &c);
    assert_int_equal(c.c2s.starttls.count, 3);
    assert_string_equal(c.c2s.starttls.items[0].host, "::1");
    assert_int_equal(c.c2s.starttls.items[0].port, 5222);
    assert_string_equal(c.c2s.starttls.items[1].host, "127.0.0.1");
    assert_int_equal(c.c2s.starttls.items[1].port, 5222);
    assert_string_equal(c.c2s.starttls.items[2].host, "2001:db8::1");
    assert_int_equal(c.c2s.starttls.items[2].port, 1);
    assert_int_equal(c.c2s.direct_tls.count, 0);
    assert_null(c.c2s.direct_tls.items);
    kr_config_free(&c);
}

static void listen_address_bad_forms_are_rejected(void **state)
{
    static const char *const bad[] = {
        "localhost:5222", "1.2.3.4",     "1.2.3.4:99999",   "[::1]5222",   "1.2.3.4:0",
        "1.2.3.4:",       ":5222",       "[::1]:",          "::1:5222",    "[1.2.3.4]:5222",
        "1.2.3.4:05222",  "1.2.3.4:+52", "1.2.3.4:5222:1",  "[::1:5222",   "[]:5222",
        "1.2.3:5222",     " 1.2.3.4:5",  "[fe80::1%lo]:5",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char yaml[128], want[320];
        snprintf(yaml, sizeof(yaml),
                 "c2s:\n  direct_tls:\n    - \"127.0.0.1:5223\"\n    - \"%s\"\n", bad[i]);
        snprintf(want, sizeof(want),
                 "t.yml:4: \"c2s.direct_tls\" entry \"%s\" is not a listen address; write "
                 "\"IPv4:port\" or \"[IPv6]:port\" with a port from 1 to 65535.",
                 bad[i]);
        expect_error(yaml, want);
    }
}

static void listen_address_listed_twice_is_rejected(void **state)
{
    expect_error("c2s:\n  starttls: [\"[::1]:5222\", \"[0::1]:5222\"]\n",
                 "t.yml:2: \"c2s.starttls\" lists \"[0::1]:5222\" twice.");
}

static void listen_list_entry_must_be_a_string(void **state)
{
    expect_error("c2s:\n  starttls:\n    - [\"127.0.0.1:5222\"]\n",
                 "t.yml:3: \"c2s.starttls\" entries must be strings, not a list.");
}

/* ---- domains ---- */

static void domains_are_lower_cased_and_prepared(void **state)
{
    kr_config c;
    expect_ok("domains: [Example.ORG, \"[2001:DB8::1]\", 192.0.2.1, host.example., a-1.b2]\n", &c);
    assert_int_equal(c.domain_count, 5);
    assert_string_equal(c.domains[0], "example.org");
    assert_string_equal(c.domains[1], "[2001:db8::1]");
    assert_string_equal(c.domains[2], "192.0.2.1");
    assert_string_equal(c.domains[3], "host.example");
    assert_string_equal(c.domains[4], "a-1.b2");
    assert_true(kr_config_serves(&c, "example.org"));
    kr_config_free(&c);
}

static void empty_domains_list_is_rejected(void **state)
{
    expect_error("workers: 1\ndomains: []\n", "t.yml:2: \"domains\" must not be an empty list.");
    expect_error("domains:\n", "t.yml:1: \"domains\" must be a list, not an empty value.");
}

static void bad_domain_names_are_rejected(void **state)
{
    static const struct {
        const char *name, *why;
    } bad[] = {
        {"exa mple.org", "is not a valid domain name: use only letters a-z, digits, '-' and '.'"},
        {"-a.org", "is not a valid domain name: a label starts or ends with '-'"},
        {"a..b", "is not a valid domain name: it has an empty label"},
        {".", "is not a valid domain name: it is empty"},
        {"1.2.3.999", "is neither a valid IPv4 address nor a domain name"},
        {"a_b.org", "is not a valid domain name: use only letters a-z, digits, '-' and '.'"},
        {"b\xc3\xbc" "cher.de",
         "is not a valid domain name: use only letters a-z, digits, '-' and '.'"},
        {"xn--bcher-kva.de",
         "is an internationalized (xn--) name, which the configuration does not support yet"},
        {"[::1", "is not a valid IPv6 literal; write it as [address]"},
        {"[1.2.3.4]", "is not a valid IPv6 literal; write it as [address]"},
        {"[]", "is not a valid IPv6 literal; write it as [address]"},
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
         "is not a valid domain name: a label is longer than 63 bytes"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char yaml[160], want[400];
        snprintf(yaml, sizeof(yaml), "domains:\n  - example.org\n  - \"%s\"\n", bad[i].name);
        snprintf(want, sizeof(want), "t.yml:3: \"domains\" entry \"%s\" %s.", bad[i].name,
                 bad[i].why);
        expect_error(yaml, want);
    }
}

static void domain_longer_than_dns_allows_is_rejected(void **state)
{
    /* 4 labels of 63 bytes + 3 dots = 255 bytes > 253. */
    char name[300] = "", yaml[400], want[600], shown[80];
    for (int i = 0; i < 4; i++) {
        if (i)
            strcat(name, ".");
        strcat(name, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    }
    snprintf(yaml, sizeof(yaml), "domains: [\"%s\"]\n", name);
    snprintf(shown, sizeof(shown), "%.64s...", name);
    snprintf(want, sizeof(want),
             "t.yml:1: \"domains\" entry \"%s\" is not a valid domain name: it is longer than 253 "
             "bytes.",
             shown);
    expect_error(yaml, want);
}

static void domain_listed_twice_is_rejected(void **state)
{
    expect_error("domains:\n  - example.org\n  - Example.Org.\n",
                 "t.yml:3: \"domains\" lists \"example.org\" twice.");
}

/* ---- errors: keys ---- */

static void unknown_nested_key_suggests_closest(void **state)
{
    expect_error("workers: 1\nlimits:\n  max_depth: 8\n  max_stanza_byte: 5000\n",
                 "t.yml:4: unknown key \"limits.max_stanza_byte\" (did you mean "
                 "\"max_stanza_bytes\"?).");
}

static void unknown_key_suggests_swapped_letters(void **state)
{
    expect_error("\n\nlog_levle: info\n",
                 "t.yml:3: unknown key \"log_levle\" (did you mean \"log_level\"?).");
}

static void unknown_section_suggests_closest(void **state)
{
    expect_error("limit:\n  max_depth: 8\n",
                 "t.yml:1: unknown key \"limit\" (did you mean \"limits\"?).");
}

static void unknown_key_far_from_all_has_no_suggestion(void **state)
{
    expect_error("sasl:\n  plain: yes\n  frobnicate: 1\n",
                 "t.yml:3: unknown key \"sasl.frobnicate\".");
}

static void key_of_another_section_is_unknown(void **state)
{
    expect_error("tls:\n  max_depth: 8\n", "t.yml:2: unknown key \"tls.max_depth\".");
}

static void duplicate_key_is_rejected(void **state)
{
    expect_error("workers: 1\nlog_level: info\nworkers: 2\n",
                 "t.yml:3: duplicate key \"workers\" (first given on line 1).");
}

static void duplicate_nested_key_is_rejected(void **state)
{
    expect_error("sasl:\n  plain: true\n  plain: false\n",
                 "t.yml:3: duplicate key \"sasl.plain\" (first given on line 2).");
}

static void duplicate_section_is_rejected(void **state)
{
    expect_error("limits:\n  max_depth: 8\nlimits:\n  max_attributes: 8\n",
                 "t.yml:3: duplicate key \"limits\" (first given on line 1).");
}

static void non_scalar_key_is_rejected(void **state)
{
    expect_error("workers: 1\n? [a, b]\n: 1\n", "t.yml:2: keys must be plain names, not a list.");
}

/* ---- errors: types and values ---- */

static void word_for_number_is_rejected(void **state)
{
    expect_error("workers: two\n", "t.yml:1: \"workers\" must be a whole number, not \"two\".");
}

static void non_decimal_numbers_are_rejected(void **state)
{
    static const char *const bad[] = {"-1", "+5", "0x10", "1e3", "010", "1_000", "5.0", " 5 x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char yaml[64], want[160];
        snprintf(yaml, sizeof(yaml), "limits:\n  max_depth: \"%s\"\n", bad[i]);
        snprintf(want, sizeof(want),
                 "t.yml:2: \"limits.max_depth\" must be a whole number, not \"%s\".", bad[i]);
        expect_error(yaml, want);
    }
}

static void list_for_number_is_rejected(void **state)
{
    expect_error("limits:\n  max_depth: [1]\n",
                 "t.yml:2: \"limits.max_depth\" must be a whole number, not a list.");
}

static void empty_value_for_number_is_rejected(void **state)
{
    expect_error("workers:\nlog_level: info\n",
                 "t.yml:1: \"workers\" must be a whole number, not an empty value.");
}

static void scalar_for_list_is_rejected(void **state)
{
    expect_error("domains: example.org\n",
                 "t.yml:1: \"domains\" must be a list, not \"example.org\".");
}

static void mapping_for_string_is_rejected(void **state)
{
    expect_error("data_dir:\n  a: b\n", "t.yml:2: \"data_dir\" must be a string, not a mapping.");
}

static void empty_string_is_rejected(void **state)
{
    expect_error("tls:\n  key: ''\n", "t.yml:2: \"tls.key\" must not be empty.");
    expect_error("tls:\n  key:\n", "t.yml:2: \"tls.key\" must not be empty.");
}

static void nul_in_string_is_rejected(void **state)
{
    expect_error("data_dir: \"a\\0b\"\n",
                 "t.yml:1: \"data_dir\" must not contain a NUL character.");
}

static void number_below_range_is_rejected(void **state)
{
    expect_error("sasl:\n  scram_iterations: 4095\n",
                 "t.yml:2: \"sasl.scram_iterations\" must be between 4096 and 1000000, not "
                 "\"4095\".");
}

static void number_above_range_is_rejected(void **state)
{
    expect_error("workers: 257\n", "t.yml:1: \"workers\" must be between 0 and 256, not \"257\".");
    expect_error("limits:\n  max_send_queue_bytes: 268435457\n",
                 "t.yml:2: \"limits.max_send_queue_bytes\" must be between 65536 and 268435456, "
                 "not \"268435457\".");
}

static void number_overflow_is_out_of_range(void **state)
{
    expect_error("limits:\n  max_stanza_bytes: 99999999999999999999999\n",
                 "t.yml:2: \"limits.max_stanza_bytes\" must be between 16384 and 16777216, not "
                 "\"99999999999999999999999\".");
    /* 2^64 + 1 would wrap to 1 without the check. */
    expect_error("sasl:\n  max_failures: 18446744073709551617\n",
                 "t.yml:2: \"sasl.max_failures\" must be between 1 and 100, not "
                 "\"18446744073709551617\".");
}

static void bad_bool_is_rejected(void **state)
{
    expect_error("sasl:\n  plain: on\n",
                 "t.yml:2: \"sasl.plain\" must be true, false, yes or no, not \"on\".");
    expect_error("sasl:\n  plain: True\n",
                 "t.yml:2: \"sasl.plain\" must be true, false, yes or no, not \"True\".");
    expect_error("sasl:\n  plain: 1\n",
                 "t.yml:2: \"sasl.plain\" must be true, false, yes or no, not \"1\".");
}

static void bad_enum_lists_allowed_values(void **state)
{
    expect_error("log_level: verbose\n",
                 "t.yml:1: \"log_level\" must be error, warn, info or debug, not \"verbose\".");
}

static void only_sqlite_driver_is_accepted(void **state)
{
    expect_error("storage:\n  driver: postgres\n",
                 "t.yml:2: \"storage.driver\" must be sqlite, not \"postgres\".");
}

static void long_value_is_cut_in_message(void **state)
{
    char yaml[256], want[256];
    char word[101];
    memset(word, 'x', 100);
    word[100] = '\0';
    snprintf(yaml, sizeof(yaml), "log_level: %s\n", word);
    snprintf(want, sizeof(want),
             "t.yml:1: \"log_level\" must be error, warn, info or debug, not \"%.64s...\".", word);
    expect_error(yaml, want);
}

/* ---- errors: document shape and syntax ---- */

static void top_level_must_be_a_mapping(void **state)
{
    expect_error("- a\n- b\n", "t.yml:1: the top level must be a mapping of keys, not a list.");
}

static void section_must_be_a_mapping(void **state)
{
    expect_error("workers: 1\nlimits: 5\n",
                 "t.yml:2: \"limits\" must be a mapping of keys, not \"5\".");
}

static void yaml_syntax_error_reports_libyaml_problem_and_line(void **state)
{
    expect_error("workers: 1\nlog_level: info: debug\n",
                 "t.yml:2: YAML syntax error: mapping values are not allowed in this context.");
}

static void yaml_syntax_error_with_context(void **state)
{
    expect_error("workers: 1\nlimits:\n  max_depth: 5\n bad: 1\n",
                 "t.yml:4: YAML syntax error: did not find expected key (while parsing a block "
                 "mapping that started on line 1).");
}

static void invalid_utf8_reports_its_line(void **state)
{
    expect_error("workers: 1\n\nlog_level: \xff\n",
                 "t.yml:3: YAML syntax error: invalid leading UTF-8 octet.");
}

static void second_document_is_rejected(void **state)
{
    expect_error("workers: 1\n---\nworkers: 2\n",
                 "t.yml:2: a second YAML document starts here; the file must hold only one.");
}

static void syntax_error_after_first_document_is_reported(void **state)
{
    expect_error("workers: 1\n---\n[\n",
                 "t.yml:4: YAML syntax error: did not find expected node content (while parsing a "
                 "flow node that started on line 4).");
}

static void message_is_cut_to_buffer(void **state)
{
    kr_config c;
    char small[12];
    assert_int_equal(kr_config_load_string("workers: two\n", 13, "t.yml", &c, small, sizeof(small)),
                     KR_ECONFIG);
    assert_string_equal(small, "t.yml:1: \"w");
    assert_int_equal(kr_config_load_string("workers: two\n", 13, "t.yml", &c, NULL, 0),
                     KR_ECONFIG);
}

/* ---- errors: files ---- */

static void missing_file_says_cannot_read(void **state)
{
    kr_config c;
    assert_int_equal(kr_config_load("/nonexistent/kurierd.yml", &c, err, sizeof(err)), KR_ECONFIG);
    assert_string_equal(err, "/nonexistent/kurierd.yml: cannot read: No such file or directory.");
    assert_true(all_zero(&c));
}

static void directory_says_cannot_read(void **state)
{
    kr_config c;
    assert_int_equal(kr_config_load("/tmp", &c, err, sizeof(err)), KR_ECONFIG);
    assert_string_equal(err, "/tmp: cannot read: Is a directory.");
    assert_true(all_zero(&c));
}

static void file_error_names_the_file_and_line(void **state)
{
    char *path = temp_file("workers: 1\n\nworkers: 2\n");
    kr_config c;
    int rc = kr_config_load(path, &c, err, sizeof(err));
    unlink(path);
    assert_int_equal(rc, KR_ECONFIG);
    char want[256];
    snprintf(want, sizeof(want), "%s:3: duplicate key \"workers\" (first given on line 1).", path);
    assert_string_equal(err, want);
    free(path);
}

/* ---- helpers ---- */

static void data_path_joins_relative_paths(void **state)
{
    kr_config c;
    kr_config_defaults(&c);
    char *p = kr_config_data_path(&c, c.tls.certificate);
    assert_string_equal(p, "./data/cert.pem");
    free(p);
    free(c.data_dir);
    c.data_dir = strdup("/var/lib/kurier/");
    p = kr_config_data_path(&c, "sub/kurier.db");
    assert_string_equal(p, "/var/lib/kurier/sub/kurier.db");
    free(p);
    kr_config_free(&c);
}

static void data_path_keeps_absolute_paths(void **state)
{
    kr_config c;
    kr_config_defaults(&c);
    char *p = kr_config_data_path(&c, "/etc/ssl/chain.pem");
    assert_string_equal(p, "/etc/ssl/chain.pem");
    free(p);
    kr_config_free(&c);
}

static void serves_only_listed_domains(void **state)
{
    kr_config c;
    expect_ok("domains: [example.org, chat.example.org]\n", &c);
    assert_true(kr_config_serves(&c, "example.org"));
    assert_true(kr_config_serves(&c, "chat.example.org"));
    assert_false(kr_config_serves(&c, "localhost"));
    assert_false(kr_config_serves(&c, "example.org."));
    assert_false(kr_config_serves(&c, "org"));
    assert_false(kr_config_serves(&c, NULL));
    kr_config_free(&c);
}

/* ---- s2s (federation) ---- */

static void s2s_defaults_match_the_spec(void **state)
{
    kr_config c;
    expect_ok("", &c);
    assert_false(c.s2s.enabled);
    assert_int_equal(c.s2s.starttls.count, 1);
    assert_string_equal(c.s2s.starttls.items[0].host, "127.0.0.1");
    assert_int_equal(c.s2s.starttls.items[0].port, 5269);
    assert_int_equal(c.s2s.direct_tls.count, 1);
    assert_int_equal(c.s2s.direct_tls.items[0].port, 5270);
    assert_int_equal(c.s2s.hosts.count, 0);
    assert_true(c.s2s.require_valid_certificates);
    assert_string_equal(c.s2s.ca_file, "");
    assert_string_equal(c.s2s.dialback_secret, "");
    assert_int_equal(c.s2s.connect_timeout_s, 10);
    assert_int_equal(c.s2s.idle_timeout_s, 600);
    assert_int_equal(c.s2s.queue_max_stanzas, 1000);
    assert_string_equal(c.s2s.dnssec_trust_anchor, "");
    kr_config_free(&c);
}

static void s2s_keys_are_applied(void **state)
{
    kr_config c;
    expect_ok("s2s:\n"
              "  enabled: true\n"
              "  starttls: [\"127.0.0.2:15269\"]\n"
              "  direct_tls: []\n"
              "  hosts:\n"
              "    Prosody.Test: \"127.0.0.2:5269\"\n"
              "    ejabberd.test: \"[::1]:5299\"\n"
              "  require_valid_certificates: false\n"
              "  ca_file: /etc/ssl/test-ca.pem\n"
              "  dialback_secret: s3cret\n"
              "  connect_timeout_s: 3\n"
              "  idle_timeout_s: 20\n"
              "  queue_max_stanzas: 5\n"
              "  dnssec_trust_anchor: /usr/share/dns/root.key\n",
              &c);
    assert_true(c.s2s.enabled);
    assert_int_equal(c.s2s.starttls.items[0].port, 15269);
    assert_int_equal(c.s2s.direct_tls.count, 0);
    assert_int_equal(c.s2s.hosts.count, 2);
    assert_string_equal(c.s2s.hosts.items[0].domain, "prosody.test");
    assert_string_equal(c.s2s.hosts.items[0].addr.host, "127.0.0.2");
    assert_int_equal(c.s2s.hosts.items[0].addr.port, 5269);
    assert_string_equal(c.s2s.hosts.items[1].addr.host, "::1");
    const kr_listen_addr *a = kr_config_host_get(&c, "ejabberd.test");
    assert_non_null(a);
    assert_int_equal(a->port, 5299);
    assert_null(kr_config_host_get(&c, "other.test"));
    assert_false(c.s2s.require_valid_certificates);
    assert_string_equal(c.s2s.ca_file, "/etc/ssl/test-ca.pem");
    assert_string_equal(c.s2s.dialback_secret, "s3cret");
    assert_int_equal(c.s2s.connect_timeout_s, 3);
    assert_int_equal(c.s2s.idle_timeout_s, 20);
    assert_int_equal(c.s2s.queue_max_stanzas, 5);
    assert_string_equal(c.s2s.dnssec_trust_anchor, "/usr/share/dns/root.key");
    kr_config_free(&c);
}

static void s2s_empty_hosts_and_optional_strings_are_accepted(void **state)
{
    kr_config c;
    expect_ok("s2s:\n  hosts: {}\n  ca_file:\n  dialback_secret: \"\"\n", &c);
    assert_int_equal(c.s2s.hosts.count, 0);
    assert_string_equal(c.s2s.ca_file, "");
    kr_config_free(&c);
    expect_ok("s2s:\n  hosts:\n", &c);
    assert_int_equal(c.s2s.hosts.count, 0);
    kr_config_free(&c);
}

static void s2s_hosts_bad_address_names_file_and_line(void **state)
{
    expect_error("s2s:\n  hosts:\n    a.test: \"127.0.0.1:5269\"\n    b.test: \"localhost:5269\"\n",
                 "t.yml:4: \"s2s.hosts\" entry \"b.test\": \"localhost:5269\" is not an address; "
                 "write \"IPv4:port\" or \"[IPv6]:port\" with a port from 1 to 65535.");
    expect_error("s2s:\n  hosts:\n    a.test: \"127.0.0.1\"\n",
                 "t.yml:3: \"s2s.hosts\" entry \"a.test\": \"127.0.0.1\" is not an address; "
                 "write \"IPv4:port\" or \"[IPv6]:port\" with a port from 1 to 65535.");
    expect_error("s2s:\n  hosts:\n    a.test: \"127.0.0.1:70000\"\n",
                 "t.yml:3: \"s2s.hosts\" entry \"a.test\": \"127.0.0.1:70000\" is not an "
                 "address; write \"IPv4:port\" or \"[IPv6]:port\" with a port from 1 to 65535.");
    expect_error("s2s:\n  hosts:\n    a.test: [\"127.0.0.1:1\"]\n",
                 "t.yml:3: \"s2s.hosts\" entry \"a.test\": a list is not an address; "
                 "write \"IPv4:port\" or \"[IPv6]:port\" with a port from 1 to 65535.");
}

static void s2s_hosts_bad_domain_and_duplicates_are_rejected(void **state)
{
    expect_error("s2s:\n  hosts:\n    \"bad_domain\": \"127.0.0.1:1\"\n",
                 "t.yml:3: \"s2s.hosts\" entry \"bad_domain\" is not a valid domain name: use "
                 "only letters a-z, digits, '-' and '.'.");
    expect_error("s2s:\n  hosts:\n    a.test: \"127.0.0.1:1\"\n    A.TEST: \"127.0.0.1:2\"\n",
                 "t.yml:4: \"s2s.hosts\" lists \"A.TEST\" twice.");
    expect_error("s2s:\n  hosts: [\"a.test\"]\n",
                 "t.yml:2: \"s2s.hosts\" must be a mapping of domain names to \"IP:port\" "
                 "addresses, not a list.");
    expect_error("s2s:\n  connect_timeout_s: 0\n",
                 "t.yml:2: \"s2s.connect_timeout_s\" must be between 1 and 3600, not \"0\".");
}

static void free_of_zeroed_config_is_harmless(void **state)
{
    kr_config c;
    memset(&c, 0, sizeof(c));
    kr_config_free(&c);
    kr_config_free(NULL);
    assert_true(all_zero(&c));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_match_the_documented_values),
        cmocka_unit_test(empty_string_gives_defaults),
        cmocka_unit_test(empty_file_gives_defaults),
        cmocka_unit_test(comments_only_give_defaults),
        cmocka_unit_test(empty_sections_give_defaults),
        cmocka_unit_test(example_file_loads_and_matches_defaults),
        cmocka_unit_test(example_file_sets_and_comments_every_key),
        cmocka_unit_test(reference_documents_every_key),
        cmocka_unit_test(every_key_is_applied),
        cmocka_unit_test(omitted_keys_keep_defaults_beside_set_ones),
        cmocka_unit_test(workers_zero_resolves_to_cpu_count),
        cmocka_unit_test(workers_zero_follows_the_affinity_mask),
        cmocka_unit_test(workers_explicit_count_is_kept),
        cmocka_unit_test(bool_accepts_true_false_yes_no),
        cmocka_unit_test(log_level_names_map_to_levels),
        cmocka_unit_test(quoted_number_is_accepted),
        cmocka_unit_test(listen_addresses_ipv4_and_ipv6),
        cmocka_unit_test(listen_address_bad_forms_are_rejected),
        cmocka_unit_test(listen_address_listed_twice_is_rejected),
        cmocka_unit_test(listen_list_entry_must_be_a_string),
        cmocka_unit_test(domains_are_lower_cased_and_prepared),
        cmocka_unit_test(empty_domains_list_is_rejected),
        cmocka_unit_test(bad_domain_names_are_rejected),
        cmocka_unit_test(domain_longer_than_dns_allows_is_rejected),
        cmocka_unit_test(domain_listed_twice_is_rejected),
        cmocka_unit_test(unknown_nested_key_suggests_closest),
        cmocka_unit_test(unknown_key_suggests_swapped_letters),
        cmocka_unit_test(unknown_section_suggests_closest),
        cmocka_unit_test(unknown_key_far_from_all_has_no_suggestion),
        cmocka_unit_test(key_of_another_section_is_unknown),
        cmocka_unit_test(duplicate_key_is_rejected),
        cmocka_unit_test(duplicate_nested_key_is_rejected),
        cmocka_unit_test(duplicate_section_is_rejected),
        cmocka_unit_test(non_scalar_key_is_rejected),
        cmocka_unit_test(word_for_number_is_rejected),
        cmocka_unit_test(non_decimal_numbers_are_rejected),
        cmocka_unit_test(list_for_number_is_rejected),
        cmocka_unit_test(empty_value_for_number_is_rejected),
        cmocka_unit_test(scalar_for_list_is_rejected),
        cmocka_unit_test(mapping_for_string_is_rejected),
        cmocka_unit_test(empty_string_is_rejected),
        cmocka_unit_test(nul_in_string_is_rejected),
        cmocka_unit_test(number_below_range_is_rejected),
        cmocka_unit_test(number_above_range_is_rejected),
        cmocka_unit_test(number_overflow_is_out_of_range),
        cmocka_unit_test(bad_bool_is_rejected),
        cmocka_unit_test(bad_enum_lists_allowed_values),
        cmocka_unit_test(only_sqlite_driver_is_accepted),
        cmocka_unit_test(long_value_is_cut_in_message),
        cmocka_unit_test(top_level_must_be_a_mapping),
        cmocka_unit_test(section_must_be_a_mapping),
        cmocka_unit_test(yaml_syntax_error_reports_libyaml_problem_and_line),
        cmocka_unit_test(yaml_syntax_error_with_context),
        cmocka_unit_test(invalid_utf8_reports_its_line),
        cmocka_unit_test(second_document_is_rejected),
        cmocka_unit_test(syntax_error_after_first_document_is_reported),
        cmocka_unit_test(message_is_cut_to_buffer),
        cmocka_unit_test(missing_file_says_cannot_read),
        cmocka_unit_test(directory_says_cannot_read),
        cmocka_unit_test(file_error_names_the_file_and_line),
        cmocka_unit_test(data_path_joins_relative_paths),
        cmocka_unit_test(data_path_keeps_absolute_paths),
        cmocka_unit_test(serves_only_listed_domains),
        cmocka_unit_test(s2s_defaults_match_the_spec),
        cmocka_unit_test(s2s_keys_are_applied),
        cmocka_unit_test(s2s_empty_hosts_and_optional_strings_are_accepted),
        cmocka_unit_test(s2s_hosts_bad_address_names_file_and_line),
        cmocka_unit_test(s2s_hosts_bad_domain_and_duplicates_are_rejected),
        cmocka_unit_test(free_of_zeroed_config_is_harmless),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
