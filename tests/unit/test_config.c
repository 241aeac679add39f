/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Unit tests of the configuration loader (src/core/config.c): defaults, the
 * shipped examples/kurierd.yml and docs/configuration.md against the key table
 * and the sections of kurierd's modules (server/modules.h),
 * every class of error with its exact "NAME:LINE: sentence." message, listen
 * address forms (RFC 6120 §5 STARTTLS, XEP-0368 direct TLS), domain
 * preparation (RFC 7622 §3.2), the path and domain helpers, and module
 * sections: a fake module with a key of every type (defaults, values, bounds,
 * suggestions, freeing), sections sharing a name, and the mistakes in section
 * tables that every load reports.
 * The source tree is found from __FILE__: absolute as is, or relative to the
 * directory the compiler ran in, which is the directory holding this test's
 * executable (meson's build directory); KURIER_SOURCE_ROOT overrides both.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml.h>

#include "core/config.h"
#include "core/error.h"
#include "server/modules.h"

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

/* The dotted path of the i-th key of kurierd: the core's, then its modules' sections. */
static const char *all_key_name(size_t i)
{
    static char buf[KR_CONFIG_PATH_MAX];
    const kr_config_section *const *sections;
    size_t n = kr_modules_config_sections(&sections);
    return kr_config_key_name_sections(i, sections, n, buf);
}

/* One key's value in two filled structs is the same (the kinds of key modules use). */
static void assert_key_equal(const kr_config_section *s, const kr_config_key *k, const char *a,
                             const char *b)
{
    switch (k->type) {
    case KR_CONFIG_UINT:
    case KR_CONFIG_BOOL:
    case KR_CONFIG_ENUM:
        if (memcmp(a + k->offset, b + k->offset, k->size) != 0)
            fail_msg("examples/kurierd.yml: %s.%s differs from its default", s->name, k->path);
        break;
    case KR_CONFIG_STRLIST: {
        char **la = *(char ***)(a + k->offset), **lb = *(char ***)(b + k->offset);
        size_t na = *(const size_t *)(a + k->count_offset);
        size_t nb = *(const size_t *)(b + k->count_offset);
        assert_int_equal(na, nb);
        for (size_t i = 0; i < na; i++)
            assert_string_equal(la[i], lb[i]);
        break;
    }
    default:
        fail_msg("section %s: compare key %s by hand", s->name, k->path);
    }
}

/* Every module section's values equal its defaults. */
static void assert_module_sections_default(const kr_config *c, const kr_config *d)
{
    const kr_config_section *const *sections;
    size_t n = kr_modules_config_sections(&sections);
    assert_true(n >= 6);
    for (size_t i = 0; i < n; i++) {
        const kr_config_section *s = sections[i];
        const char *a = kr_config_section_get(c, s), *b = kr_config_section_get(d, s);
        assert_non_null(a);
        assert_non_null(b);
        for (size_t k = 0; k < s->key_count; k++)
            assert_key_equal(s, &s->keys[k], a, b);
    }
}

static void example_file_loads_and_matches_defaults(void **state)
{
    char *path = source_file("examples/kurierd.yml");
    kr_config c, d;
    const kr_config_section *const *sections;
    size_t n = kr_modules_config_sections(&sections);
    int rc = kr_config_load_sections(path, sections, n, &c, err, sizeof(err));
    if (rc)
        fail_msg("examples/kurierd.yml: %s", err);
    kr_config_defaults_sections(&d, sections, n);
    assert_config_equal(&c, &d);
    assert_module_sections_default(&c, &d);
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
    for (size_t i = 0; all_key_name(i); i++)
        if (!strcmp(all_key_name(i), path))
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
    for (const char *name; (name = all_key_name(keys)) != NULL; keys++) {
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
    for (size_t i = 0; all_key_name(i); i++) {
        char want[160];
        snprintf(want, sizeof(want), "`%s`", all_key_name(i));
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

/* ---- component (XEP-0114): loopback-only plaintext listeners, the secret map ---- */

static void component_defaults_are_empty(void **state)
{
    kr_config c;
    expect_ok("", &c);
    assert_int_equal(c.component.direct_tls.count, 0);
    assert_int_equal(c.component.plain.count, 0);
    assert_int_equal(c.component.secrets.count, 0);
    assert_null(c.component.secrets.items);
    kr_config_free(&c);
}

static void component_keys_are_applied(void **state)
{
    kr_config c;
    expect_ok("domains: [example.org]\n"
              "component:\n"
              "  direct_tls: [\"0.0.0.0:5348\", \"[::]:5348\"]\n"
              "  plain: [\"127.0.0.1:5347\", \"127.9.8.7:1\", \"[::1]:5347\", "
              "\"[0:0:0:0:0:0:0:1]:5\"]\n"
              "  secrets:\n"
              "    Gateway.Example.ORG.: \"s3cret with spaces & <xml>\"\n"
              "    bot.example.net: 12345\n",
              &c);
    assert_int_equal(c.component.direct_tls.count, 2);
    assert_string_equal(c.component.direct_tls.items[1].host, "::");
    assert_int_equal(c.component.plain.count, 4);
    assert_string_equal(c.component.plain.items[1].host, "127.9.8.7");
    assert_string_equal(c.component.plain.items[3].host, "::1");
    assert_int_equal(c.component.secrets.count, 2);
    assert_string_equal(c.component.secrets.items[0].domain, "gateway.example.org");
    assert_string_equal(c.component.secrets.items[0].secret, "s3cret with spaces & <xml>");
    assert_int_equal(c.component.secrets.items[0].line, 6);
    assert_string_equal(c.component.secrets.items[1].domain, "bot.example.net");
    assert_string_equal(c.component.secrets.items[1].secret, "12345");
    kr_config_free(&c);
    expect_ok("component:\n  secrets: {}\n  plain: []\n", &c);
    assert_int_equal(c.component.secrets.count, 0);
    kr_config_free(&c);
    expect_ok("component:\n  secrets:\n", &c);
    assert_int_equal(c.component.secrets.count, 0);
    kr_config_free(&c);
}

static void component_plain_refuses_addresses_off_loopback(void **state)
{
    static const char *const bad[] = {"0.0.0.0:5347", "[::]:5347", "192.0.2.1:5347",
                                      "128.0.0.1:5347", "[::ffff:127.0.0.1]:5347",
                                      "[::2]:5347"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char yaml[256], want[512];
        snprintf(yaml, sizeof(yaml), "component:\n  plain:\n    - \"127.0.0.1:1\"\n    - \"%s\"\n",
                 bad[i]);
        snprintf(want, sizeof(want),
                 "t.yml:4: \"component.plain\" entry \"%s\" is not a loopback address "
                 "(127.0.0.0/8 or [::1]): a plaintext listener must stay on this machine; use "
                 "component.direct_tls for other addresses.",
                 bad[i]);
        expect_error(yaml, want);
    }
    /* The same addresses are fine with TLS. */
    kr_config c;
    expect_ok("component:\n  direct_tls: [\"0.0.0.0:5347\", \"192.0.2.1:5347\"]\n", &c);
    kr_config_free(&c);
}

static void component_secret_errors_name_file_and_line_never_the_secret(void **state)
{
    expect_error("component:\n  secrets:\n    a.test: \"ok\"\n    b.test: \"\"\n",
                 "t.yml:4: \"component.secrets\" entry \"b.test\": the secret must not be "
                 "empty.");
    expect_error("component:\n  secrets:\n    a.test:\n",
                 "t.yml:3: \"component.secrets\" entry \"a.test\": the secret must not be "
                 "empty.");
    expect_error("component:\n  secrets:\n    a.test: [hunter2]\n",
                 "t.yml:3: \"component.secrets\" entry \"a.test\": the secret must be a "
                 "string, not a list.");
    expect_error("component:\n  secrets:\n    a.test: {hunter2: 1}\n",
                 "t.yml:3: \"component.secrets\" entry \"a.test\": the secret must be a "
                 "string, not a mapping.");
    expect_error("component:\n  secrets:\n    a.test: \"hunter\\0two\"\n",
                 "t.yml:3: \"component.secrets\" entry \"a.test\": the secret must not "
                 "contain a NUL character.");
    expect_error("component:\n  secrets:\n    \"bad_domain\": hunter2\n",
                 "t.yml:3: \"component.secrets\" entry \"bad_domain\" is not a valid domain "
                 "name: use only letters a-z, digits, '-' and '.'.");
    expect_error("component:\n  secrets:\n    a.test: x\n    A.Test.: hunter2\n",
                 "t.yml:4: \"component.secrets\" lists \"A.Test.\" twice.");
    expect_error("component:\n  secrets:\n    [a.test]: hunter2\n",
                 "t.yml:3: \"component.secrets\" keys must be domain names, not a list.");
    expect_error("component:\n  secrets: [a.test]\n",
                 "t.yml:2: \"component.secrets\" must be a mapping of domain names to secrets, "
                 "not a list.");
    expect_error("component:\n  secrets: hunter2\n",
                 "t.yml:2: \"component.secrets\" must be a mapping of domain names to secrets, "
                 "not a string.");
}

static void component_domain_may_not_be_a_user_domain(void **state)
{
    /* "domains" may come after the map: the check waits for the whole file. */
    expect_error("component:\n  secrets:\n    gw.example.org: hunter2\n"
                 "    Example.ORG: hunter3\ndomains: [example.org, example.com]\n",
                 "t.yml:4: \"component.secrets\" entry \"example.org\" is also a user domain in "
                 "\"domains\"; a component needs a domain of its own.");
    expect_error("component:\n  secrets: {localhost: hunter2}\n",
                 "t.yml:2: \"component.secrets\" entry \"localhost\" is also a user domain in "
                 "\"domains\"; a component needs a domain of its own.");
    kr_config c;
    expect_ok("domains: [example.org]\ncomponent:\n  secrets: {gw.example.org: hunter2}\n", &c);
    assert_int_equal(c.component.secrets.count, 1);
    kr_config_free(&c);
}

static void free_of_zeroed_config_is_harmless(void **state)
{
    kr_config c;
    memset(&c, 0, sizeof(c));
    kr_config_free(&c);
    kr_config_free(NULL);
    assert_true(all_zero(&c));
}

/* ---- module sections ---- */

/* A module's own configuration, with a field of every type a key can fill. */
typedef enum fake_mode { FAKE_OFF, FAKE_ON, FAKE_AUTO } fake_mode;

typedef struct fake_config {
    bool enabled;
    unsigned max_messages;
    uint8_t small;
    uint64_t big;
    fake_mode mode;
    char *greeting;
    char *motd;
    char *store;
    char **domains;
    size_t domain_count;
    char **tags;
    size_t tag_count;
    kr_listen_list listen;
    kr_host_map peers;
    uint16_t depth;
} fake_config;

static const char *const fake_modes[] = {"off", "on", "auto", NULL};
static const char *const fake_stores[] = {"memory", "sqlite", NULL};

static const kr_config_key fake_keys[] = {
    KR_CONFIG_FLAG(fake_config, "enabled", enabled, "true"),
    KR_CONFIG_NUM(fake_config, "max_messages", max_messages, 1, 1000, "500"),
    KR_CONFIG_NUM(fake_config, "small", small, 0, 255, "7"),
    KR_CONFIG_NUM(fake_config, "big", big, 1, UINT64_MAX, "18446744073709551615"),
    KR_CONFIG_PICK(fake_config, "mode", mode, fake_modes, "auto"),
    KR_CONFIG_STR(fake_config, "greeting", greeting, "hello"),
    KR_CONFIG_OPT(fake_config, "motd", motd, ""),
    KR_CONFIG_WORD(fake_config, "store", store, fake_stores, "memory"),
    KR_CONFIG_NAMES(fake_config, "domains", domains, domain_count, 1, kr_config_domain_check,
                    "conference.localhost,upload.localhost"),
    KR_CONFIG_NAMES(fake_config, "tags", tags, tag_count, 0, NULL, ""),
    KR_CONFIG_ADDRS(fake_config, "listen", listen, "127.0.0.1:5347"),
    KR_CONFIG_HOSTS(fake_config, "peers", peers),
    KR_CONFIG_NUM(fake_config, "queue.depth", depth, 1, 64, "8"),
};

static const kr_config_section fake_section = KR_CONFIG_SECTION("fakemod", fake_config, fake_keys);
static const kr_config_section *const fake_only[] = {&fake_section};

/* Two modules with keys under one name. */
typedef struct alpha_config {
    bool alpha;
} alpha_config;
typedef struct beta_config {
    unsigned beta;
    char *gamma;
} beta_config;
static const kr_config_key alpha_keys[] = {
    KR_CONFIG_FLAG(alpha_config, "alpha", alpha, "true"),
};
static const kr_config_key beta_keys[] = {
    KR_CONFIG_NUM(beta_config, "beta", beta, 1, 10, "2"),
    KR_CONFIG_STR(beta_config, "gamma", gamma, "g"),
};
static const kr_config_section alpha_section =
    KR_CONFIG_SECTION("shared", alpha_config, alpha_keys);
static const kr_config_section beta_section =
    KR_CONFIG_SECTION("shared", beta_config, beta_keys);
static const kr_config_section *const shared_pair[] = {&alpha_section, &beta_section};

static int load_with(const char *yaml, const kr_config_section *const *s, size_t n, kr_config *c)
{
    err[0] = '\0';
    return kr_config_load_string_sections(yaml, strlen(yaml), "t.yml", s, n, c, err, sizeof(err));
}

static void expect_ok_with(const char *yaml, const kr_config_section *const *s, size_t n,
                           kr_config *c)
{
    if (load_with(yaml, s, n, c) != 0)
        fail_msg("unexpected error: %s", err);
}

static void expect_error_with(const char *yaml, const kr_config_section *const *s, size_t n,
                              const char *message)
{
    kr_config c;
    memset(&c, 0xa5, sizeof(c));
    assert_int_equal(load_with(yaml, s, n, &c), KR_ECONFIG);
    assert_string_equal(err, message);
    assert_true(all_zero(&c));
    kr_config_free(&c);
}

static void expect_fake_error(const char *yaml, const char *message)
{
    expect_error_with(yaml, fake_only, 1, message);
}

static const fake_config *fake_get(const kr_config *c)
{
    const fake_config *f = kr_config_section_get(c, &fake_section);
    assert_non_null(f);
    return f;
}

/* The values fake_keys gives, written out independently of the table. */
static void assert_fake_defaults(const fake_config *f)
{
    assert_true(f->enabled);
    assert_int_equal(f->max_messages, 500);
    assert_int_equal(f->small, 7);
    assert_true(f->big == UINT64_MAX);
    assert_int_equal(f->mode, FAKE_AUTO);
    assert_string_equal(f->greeting, "hello");
    assert_string_equal(f->motd, "");
    assert_string_equal(f->store, "memory");
    assert_int_equal(f->domain_count, 2);
    assert_string_equal(f->domains[0], "conference.localhost");
    assert_string_equal(f->domains[1], "upload.localhost");
    assert_int_equal(f->tag_count, 0);
    assert_null(f->tags);
    assert_int_equal(f->listen.count, 1);
    assert_string_equal(f->listen.items[0].host, "127.0.0.1");
    assert_int_equal(f->listen.items[0].port, 5347);
    assert_int_equal(f->peers.count, 0);
    assert_int_equal(f->depth, 8);
}

static void section_defaults_apply_when_the_file_omits_it(void **state)
{
    kr_config c;
    expect_ok_with("workers: 2\n", fake_only, 1, &c);
    assert_fake_defaults(fake_get(&c));
    assert_int_equal(c.workers, 2);
    assert_int_equal(c.section_count, 1);
    kr_config_free(&c);
}

static void empty_module_section_gives_its_defaults(void **state)
{
    static const char *const yaml[] = {"fakemod:\n", "fakemod: ~\n", "fakemod: {}\n"};
    for (size_t i = 0; i < sizeof(yaml) / sizeof(yaml[0]); i++) {
        kr_config c;
        expect_ok_with(yaml[i], fake_only, 1, &c);
        assert_fake_defaults(fake_get(&c));
        kr_config_free(&c);
    }
}

static void defaults_with_sections_match_an_empty_file(void **state)
{
    kr_config d, c;
    kr_config_defaults_sections(&d, fake_only, 1);
    assert_documented_defaults(&d);
    assert_null(d.path);
    assert_fake_defaults(fake_get(&d));
    expect_ok_with("", fake_only, 1, &c);
    assert_config_equal(&c, &d);
    kr_config_free(&c);
    kr_config_free(&d);
    assert_true(all_zero(&d));
}

static void every_section_key_is_applied(void **state)
{
    kr_config c;
    expect_ok_with("fakemod:\n"
                   "  enabled: no\n"
                   "  max_messages: 1000\n"
                   "  small: 255\n"
                   "  big: 1\n"
                   "  mode: off\n"
                   "  greeting: \"good day\"\n"
                   "  motd: Welcome\n"
                   "  store: sqlite\n"
                   "  domains: [MUC.Example.ORG., \"[::1]\"]\n"
                   "  tags: [a, b c]\n"
                   "  listen: [\"[::]:15347\", \"10.0.0.1:1\"]\n"
                   "  peers:\n"
                   "    Other.Example: \"192.0.2.7:5269\"\n"
                   "  queue:\n"
                   "    depth: 64\n"
                   "workers: 3\n",
                   fake_only, 1, &c);
    const fake_config *f = fake_get(&c);
    assert_false(f->enabled);
    assert_int_equal(f->max_messages, 1000);
    assert_int_equal(f->small, 255);
    assert_true(f->big == 1);
    assert_int_equal(f->mode, FAKE_OFF);
    assert_string_equal(f->greeting, "good day");
    assert_string_equal(f->motd, "Welcome");
    assert_string_equal(f->store, "sqlite");
    assert_int_equal(f->domain_count, 2);
    assert_string_equal(f->domains[0], "muc.example.org");
    assert_string_equal(f->domains[1], "[::1]");
    assert_int_equal(f->tag_count, 2);
    assert_string_equal(f->tags[0], "a");
    assert_string_equal(f->tags[1], "b c");
    assert_int_equal(f->listen.count, 2);
    assert_string_equal(f->listen.items[0].host, "::");
    assert_int_equal(f->listen.items[0].port, 15347);
    assert_string_equal(f->listen.items[1].host, "10.0.0.1");
    assert_int_equal(f->peers.count, 1);
    assert_string_equal(f->peers.items[0].domain, "other.example");
    assert_int_equal(f->peers.items[0].addr.port, 5269);
    assert_int_equal(f->depth, 64);
    assert_int_equal(c.workers, 3);
    assert_int_equal(c.limits.max_depth, 64);
    kr_config_free(&c);
}

static void section_get_is_null_for_a_section_not_loaded(void **state)
{
    kr_config c;
    expect_ok("", &c);
    assert_null(kr_config_section_get(&c, &fake_section));
    assert_int_equal(c.section_count, 0);
    assert_null(c.sections);
    kr_config_free(&c);
    expect_ok_with("", fake_only, 1, &c);
    assert_null(kr_config_section_get(&c, &alpha_section));
    kr_config_free(&c);
    assert_null(kr_config_section_get(&c, &fake_section)); /* zeroed by kr_config_free */
}

static void section_values_out_of_bounds_name_file_and_line(void **state)
{
    expect_fake_error("fakemod:\n  enabled: yes\n  max_messages: 0\n",
                      "t.yml:3: \"fakemod.max_messages\" must be between 1 and 1000, not \"0\".");
    expect_fake_error("fakemod:\n  max_messages: 1001\n",
                      "t.yml:2: \"fakemod.max_messages\" must be between 1 and 1000, not "
                      "\"1001\".");
    expect_fake_error("fakemod:\n  small: 256\n",
                      "t.yml:2: \"fakemod.small\" must be between 0 and 255, not \"256\".");
    expect_fake_error("fakemod:\n  big: 18446744073709551616\n",
                      "t.yml:2: \"fakemod.big\" must be between 1 and 18446744073709551615, not "
                      "\"18446744073709551616\".");
    expect_fake_error("fakemod:\n  max_messages: ten\n",
                      "t.yml:2: \"fakemod.max_messages\" must be a whole number, not \"ten\".");
    expect_fake_error("fakemod:\n  enabled: on\n",
                      "t.yml:2: \"fakemod.enabled\" must be true, false, yes or no, not \"on\".");
    expect_fake_error("fakemod:\n  mode: maybe\n",
                      "t.yml:2: \"fakemod.mode\" must be off, on or auto, not \"maybe\".");
    expect_fake_error("fakemod:\n  store: disk\n",
                      "t.yml:2: \"fakemod.store\" must be memory or sqlite, not \"disk\".");
    expect_fake_error("fakemod:\n  greeting: ''\n",
                      "t.yml:2: \"fakemod.greeting\" must not be empty.");
    expect_fake_error("fakemod:\n  greeting: [a]\n",
                      "t.yml:2: \"fakemod.greeting\" must be a string, not a list.");
    expect_fake_error("fakemod:\n  domains: []\n",
                      "t.yml:2: \"fakemod.domains\" must not be an empty list.");
    expect_fake_error("fakemod:\n  domains:\n    - a.example\n    - \"bad domain\"\n",
                      "t.yml:4: \"fakemod.domains\" entry \"bad domain\" is not a valid domain "
                      "name: use only letters a-z, digits, '-' and '.'.");
    expect_fake_error("fakemod:\n  domains: [a.example, A.Example]\n",
                      "t.yml:2: \"fakemod.domains\" lists \"a.example\" twice.");
    expect_fake_error("fakemod:\n  tags: [x, [y]]\n",
                      "t.yml:2: \"fakemod.tags\" entries must be strings, not a list.");
    expect_fake_error("fakemod:\n  listen: [\"localhost:1\"]\n",
                      "t.yml:2: \"fakemod.listen\" entry \"localhost:1\" is not a listen address; "
                      "write \"IPv4:port\" or \"[IPv6]:port\" with a port from 1 to 65535.");
    expect_fake_error("fakemod:\n  peers:\n    a.example: 5269\n",
                      "t.yml:3: \"fakemod.peers\" entry \"a.example\": \"5269\" is not an "
                      "address; write \"IPv4:port\" or \"[IPv6]:port\" with a port from 1 to "
                      "65535.");
    expect_fake_error("fakemod:\n  queue:\n    depth: 65\n",
                      "t.yml:3: \"fakemod.queue.depth\" must be between 1 and 64, not \"65\".");
    expect_fake_error("workers: 1\nfakemod: 5\n",
                      "t.yml:2: \"fakemod\" must be a mapping of keys, not \"5\".");
}

static void section_error_in_a_file_names_the_file_and_line(void **state)
{
    char *path = temp_file("workers: 1\nfakemod:\n  small: -1\n");
    kr_config c;
    int rc = kr_config_load_sections(path, fake_only, 1, &c, err, sizeof(err));
    unlink(path);
    assert_int_equal(rc, KR_ECONFIG);
    char want[256];
    snprintf(want, sizeof(want), "%s:3: \"fakemod.small\" must be a whole number, not \"-1\".",
             path);
    assert_string_equal(err, want);
    assert_true(all_zero(&c));
    free(path);
}

static void unknown_key_in_a_section_suggests_closest(void **state)
{
    expect_fake_error("fakemod:\n  enabeld: true\n",
                      "t.yml:2: unknown key \"fakemod.enabeld\" (did you mean \"enabled\"?).");
    expect_fake_error("fakemod:\n  queue:\n    dpeth: 3\n",
                      "t.yml:3: unknown key \"fakemod.queue.dpeth\" (did you mean \"depth\"?).");
    expect_fake_error("fakemod:\n  qeue: {}\n",
                      "t.yml:2: unknown key \"fakemod.qeue\" (did you mean \"queue\"?).");
    expect_fake_error("fakemod:\n  frobnicate: 1\n",
                      "t.yml:2: unknown key \"fakemod.frobnicate\".");
    /* A core key is not a section key. */
    expect_fake_error("fakemod:\n  max_depth: 8\n", "t.yml:2: unknown key \"fakemod.max_depth\".");
}

static void unknown_top_level_key_may_suggest_a_section(void **state)
{
    expect_fake_error("workers: 1\nfakmod:\n  enabled: true\n",
                      "t.yml:2: unknown key \"fakmod\" (did you mean \"fakemod\"?).");
    /* Without the section, the name is unknown and far from every core key. */
    expect_error("fakemod:\n  enabled: true\n", "t.yml:1: unknown key \"fakemod\".");
}

static void duplicate_key_in_a_section_is_rejected(void **state)
{
    expect_fake_error("fakemod:\n  small: 1\n  small: 2\n",
                      "t.yml:3: duplicate key \"fakemod.small\" (first given on line 2).");
    expect_fake_error("fakemod:\n  small: 1\nworkers: 1\nfakemod:\n  big: 2\n",
                      "t.yml:4: duplicate key \"fakemod\" (first given on line 1).");
}

static void sections_may_share_one_name(void **state)
{
    kr_config c;
    expect_ok_with("shared:\n  gamma: x\n  alpha: false\n  beta: 10\n", shared_pair, 2, &c);
    const alpha_config *a = kr_config_section_get(&c, &alpha_section);
    const beta_config *b = kr_config_section_get(&c, &beta_section);
    assert_non_null(a);
    assert_non_null(b);
    assert_false(a->alpha);
    assert_int_equal(b->beta, 10);
    assert_string_equal(b->gamma, "x");
    kr_config_free(&c);
    expect_ok_with("", shared_pair, 2, &c);
    a = kr_config_section_get(&c, &alpha_section);
    b = kr_config_section_get(&c, &beta_section);
    assert_true(a->alpha);
    assert_int_equal(b->beta, 2);
    assert_string_equal(b->gamma, "g");
    kr_config_free(&c);
    /* Suggestions and messages see the keys of both. */
    expect_error_with("shared:\n  alpah: true\n", shared_pair, 2,
                      "t.yml:2: unknown key \"shared.alpah\" (did you mean \"alpha\"?).");
    expect_error_with("shared:\n  alpha: true\n  betta: 1\n", shared_pair, 2,
                      "t.yml:3: unknown key \"shared.betta\" (did you mean \"beta\"?).");
    expect_error_with("shared:\n  beta: 11\n", shared_pair, 2,
                      "t.yml:2: \"shared.beta\" must be between 1 and 10, not \"11\".");
    expect_error_with("shared:\n  alpha: true\n  alpha: false\n", shared_pair, 2,
                      "t.yml:3: duplicate key \"shared.alpha\" (first given on line 2).");
}

typedef struct rooms_config {
    unsigned rooms;
} rooms_config;
static const kr_config_key rooms_keys[] = {
    KR_CONFIG_NUM(rooms_config, "rooms_per_account", rooms, 1, 100, "10"),
};

static void a_section_may_add_keys_to_a_core_section(void **state)
{
    static const kr_config_section limits_rooms =
        KR_CONFIG_SECTION("limits", rooms_config, rooms_keys);
    static const kr_config_section *const s[] = {&limits_rooms};
    kr_config c;
    expect_ok_with("limits:\n  max_depth: 9\n  rooms_per_account: 3\n", s, 1, &c);
    assert_int_equal(c.limits.max_depth, 9);
    const rooms_config *r = kr_config_section_get(&c, &limits_rooms);
    assert_int_equal(r->rooms, 3);
    kr_config_free(&c);
    expect_error_with("limits:\n  rooms_per_acount: 3\n", s, 1,
                      "t.yml:2: unknown key \"limits.rooms_per_acount\" (did you mean "
                      "\"rooms_per_account\"?).");
}

typedef struct one_config {
    bool x;
    uint8_t level;
    char **names;
    size_t name_count;
} one_config;

static void key_declared_twice_across_sections_is_reported(void **state)
{
    static const kr_config_key keys_a[] = {KR_CONFIG_FLAG(one_config, "x", x, "true")};
    static const kr_config_key keys_b[] = {
        KR_CONFIG_NUM(one_config, "level", level, 1, 9, "1"),
        KR_CONFIG_FLAG(one_config, "x", x, "false"),
    };
    static const kr_config_section a = KR_CONFIG_SECTION("twice", one_config, keys_a);
    static const kr_config_section b = KR_CONFIG_SECTION("twice", one_config, keys_b);
    static const kr_config_section *const s[] = {&a, &b};
    static const char *const want = "t.yml: bug in kurierd's configuration tables: key "
                                    "\"twice.x\" is declared twice.";
    expect_error_with("", s, 2, want);
    expect_error_with("twice:\n  level: 3\n", s, 2, want);
    /* The same section passed twice declares all its keys twice. */
    static const kr_config_section *const same[] = {&a, &a};
    expect_error_with("", same, 2, want);
    /* A file that cannot be read says so first; one that can gets the table's error. */
    kr_config c;
    char *path = temp_file("workers: 1\n");
    int rc = kr_config_load_sections(path, s, 2, &c, err, sizeof(err));
    unlink(path);
    assert_int_equal(rc, KR_ECONFIG);
    char full[256];
    snprintf(full, sizeof(full), "%s%s", path, want + strlen("t.yml"));
    assert_string_equal(err, full);
    assert_true(all_zero(&c));
    free(path);
}

static void section_key_clashing_with_a_core_key_is_reported(void **state)
{
    static const kr_config_key keys[] = {KR_CONFIG_FLAG(one_config, "enabled", x, "true")};
    static const kr_config_section s2s = KR_CONFIG_SECTION("s2s", one_config, keys);
    static const kr_config_section *const s[] = {&s2s};
    expect_error_with("", s, 1,
                      "t.yml: bug in kurierd's configuration tables: key \"s2s.enabled\" is "
                      "declared twice.");
}

static void section_named_like_a_core_key_is_reported(void **state)
{
    static const kr_config_key keys[] = {KR_CONFIG_FLAG(one_config, "x", x, "true")};
    static const kr_config_section workers = KR_CONFIG_SECTION("workers", one_config, keys);
    static const kr_config_section *const s[] = {&workers};
    expect_error_with("", s, 1,
                      "t.yml: bug in kurierd's configuration tables: key \"workers.x\" is "
                      "declared under \"workers\", which is itself a key.");
}

static void broken_section_tables_are_reported(void **state)
{
    static const kr_config_key bad_default[] = {
        KR_CONFIG_NUM(one_config, "level", level, 1, 9, "0")};
    static const kr_config_key too_big[] = {
        KR_CONFIG_NUM(one_config, "level", level, 1, 300, "1")};
    static const kr_config_key empty_list[] = {
        KR_CONFIG_NAMES(one_config, "names", names, name_count, 1, NULL, "")};
    static const kr_config_key bad_entry[] = {
        KR_CONFIG_NAMES(one_config, "names", names, name_count, 1, kr_config_domain_check,
                        "a.example,not a domain")};
    static const kr_config_key bad_path[] = {KR_CONFIG_FLAG(one_config, "Big..x", x, "true")};
    static const kr_config_key no_path[] = {
        {.path = NULL, .type = KR_CONFIG_BOOL, .size = sizeof(bool), .def = "true"}};
    static const kr_config_key outside[] = {
        {.path = "x", .type = KR_CONFIG_BOOL, .offset = sizeof(one_config), .size = 1,
         .def = "true"}};
    static const kr_config_key nested[] = {
        KR_CONFIG_FLAG(one_config, "q", x, "true"),
        KR_CONFIG_NUM(one_config, "q.level", level, 1, 9, "1"),
    };
    static const kr_config_key ok[] = {KR_CONFIG_FLAG(one_config, "x", x, "true")};
    static const struct {
        kr_config_section section;
        const char *why;
    } cases[] = {
        {KR_CONFIG_SECTION("broken", one_config, bad_default),
         "the default of \"broken.level\" must be between 1 and 9, not \"0\""},
        {KR_CONFIG_SECTION("broken", one_config, too_big),
         "key \"broken.level\": its maximum does not fit its field"},
        {KR_CONFIG_SECTION("broken", one_config, empty_list),
         "the default of \"broken.names\" must not be an empty list"},
        {KR_CONFIG_SECTION("broken", one_config, bad_entry),
         "the default of \"broken.names\" entry \"not a domain\" is not a valid domain name: "
         "use only letters a-z, digits, '-' and '.'"},
        {KR_CONFIG_SECTION("broken", one_config, bad_path),
         "key \"broken.Big..x\": its path is not lower-case names joined by dots"},
        {KR_CONFIG_SECTION("broken", one_config, no_path),
         "key \"broken.\": its path is not lower-case names joined by dots"},
        {KR_CONFIG_SECTION("broken", one_config, outside),
         "key \"broken.x\": its field lies outside the struct it fills"},
        {KR_CONFIG_SECTION("broken", one_config, nested),
         "key \"broken.q.level\" is declared under \"broken.q\", which is itself a key"},
        {KR_CONFIG_SECTION("Broken", one_config, ok),
         "section name \"Broken\" is not lower-case letters, digits and '_'"},
        {KR_CONFIG_SECTION("", one_config, ok),
         "section name \"\" is not lower-case letters, digits and '_'"},
        {{.name = "broken", .keys = ok, .key_count = 0, .size = sizeof(one_config)},
         "section \"broken\" declares no keys"},
        {{.name = "broken", .keys = ok, .key_count = 1, .size = 0},
         "section \"broken\" has no struct to fill (size 0)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const kr_config_section *s[] = {&fake_section, &cases[i].section};
        char want[400];
        snprintf(want, sizeof(want), "t.yml: bug in kurierd's configuration tables: %s.",
                 cases[i].why);
        expect_error_with("fakemod:\n  small: 1\n", s, 2, want);
    }
    const kr_config_section *null_one[] = {&fake_section, NULL};
    expect_error_with("", null_one, 2,
                      "t.yml: bug in kurierd's configuration tables: section 1 is NULL.");
}

/* kr_config_defaults_sections has nowhere to report a broken table: it stops the program. */
static void defaults_with_a_broken_section_abort(void **state)
{
    static const kr_config_key keys[] = {KR_CONFIG_FLAG(one_config, "enabled", x, "true")};
    static const kr_config_section s2s = KR_CONFIG_SECTION("s2s", one_config, keys);
    static const kr_config_section *const s[] = {&s2s};
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, STDERR_FILENO);
        kr_config c;
        kr_config_defaults_sections(&c, s, 1);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
}

static void free_releases_section_strings_and_lists(void **state)
{
    /* Every allocation a section can hold, defaults replaced and replaced again; LeakSanitizer
     * reports whatever kr_config_free misses when the test program ends. */
    kr_config c;
    expect_ok_with("fakemod:\n"
                   "  greeting: one\n"
                   "  motd: two\n"
                   "  store: sqlite\n"
                   "  domains: [a.example, b.example, c.example]\n"
                   "  tags: [x, y]\n"
                   "  listen: [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n"
                   "  peers: {a.example: \"127.0.0.1:3\", b.example: \"127.0.0.1:4\"}\n"
                   "shared:\n"
                   "  gamma: three\n",
                   (const kr_config_section *const[]){&fake_section, &alpha_section,
                                                      &beta_section},
                   3, &c);
    assert_int_equal(c.section_count, 3);
    assert_int_equal(fake_get(&c)->peers.count, 2);
    kr_config_free(&c);
    assert_true(all_zero(&c));
    assert_null(kr_config_section_get(&c, &fake_section));
    kr_config_free(&c); /* twice is harmless */
    /* A load that fails after the defaults (strings, lists) were written frees them too. */
    expect_fake_error("fakemod:\n  tags: [x]\n  greeting: [y]\n",
                      "t.yml:3: \"fakemod.greeting\" must be a string, not a list.");
}

static void key_names_list_core_keys_then_section_keys(void **state)
{
    char buf[KR_CONFIG_PATH_MAX];
    size_t core = 0;
    while (kr_config_key_name(core))
        core++;
    assert_true(core >= 19);
    for (size_t i = 0; i < core; i++)
        assert_string_equal(kr_config_key_name_sections(i, shared_pair, 2, buf),
                            kr_config_key_name(i));
    assert_null(kr_config_key_name_sections(core, NULL, 0, buf));
    assert_string_equal(kr_config_key_name_sections(core, shared_pair, 2, buf), "shared.alpha");
    assert_string_equal(kr_config_key_name_sections(core + 1, shared_pair, 2, buf), "shared.beta");
    assert_string_equal(kr_config_key_name_sections(core + 2, shared_pair, 2, buf),
                        "shared.gamma");
    assert_null(kr_config_key_name_sections(core + 3, shared_pair, 2, buf));
    size_t n = 0;
    const char *last = NULL;
    for (const char *name; (name = kr_config_key_name_sections(n, fake_only, 1, buf)); n++)
        last = name;
    assert_int_equal(n, core + sizeof(fake_keys) / sizeof(fake_keys[0]));
    assert_string_equal(last, "fakemod.queue.depth");
}

static void example_file_loads_with_module_sections(void **state)
{
    char *path = source_file("examples/kurierd.yml");
    kr_config c, d;
    const kr_config_section *const *mods;
    size_t n = kr_modules_config_sections(&mods);
    const kr_config_section *with_fake[32];
    assert_true(n < 31);
    memcpy(with_fake, mods, n * sizeof(*mods));
    with_fake[n] = &fake_section;
    int rc = kr_config_load_sections(path, with_fake, n + 1, &c, err, sizeof(err));
    if (rc)
        fail_msg("examples/kurierd.yml: %s", err);
    kr_config_defaults(&d);
    assert_config_equal(&c, &d);
    assert_fake_defaults(fake_get(&c));
    kr_config_free(&c);
    kr_config_free(&d);
    free(path);
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
        cmocka_unit_test(component_defaults_are_empty),
        cmocka_unit_test(component_keys_are_applied),
        cmocka_unit_test(component_plain_refuses_addresses_off_loopback),
        cmocka_unit_test(component_secret_errors_name_file_and_line_never_the_secret),
        cmocka_unit_test(component_domain_may_not_be_a_user_domain),
        cmocka_unit_test(free_of_zeroed_config_is_harmless),
        cmocka_unit_test(section_defaults_apply_when_the_file_omits_it),
        cmocka_unit_test(empty_module_section_gives_its_defaults),
        cmocka_unit_test(defaults_with_sections_match_an_empty_file),
        cmocka_unit_test(every_section_key_is_applied),
        cmocka_unit_test(section_get_is_null_for_a_section_not_loaded),
        cmocka_unit_test(section_values_out_of_bounds_name_file_and_line),
        cmocka_unit_test(section_error_in_a_file_names_the_file_and_line),
        cmocka_unit_test(unknown_key_in_a_section_suggests_closest),
        cmocka_unit_test(unknown_top_level_key_may_suggest_a_section),
        cmocka_unit_test(duplicate_key_in_a_section_is_rejected),
        cmocka_unit_test(sections_may_share_one_name),
        cmocka_unit_test(a_section_may_add_keys_to_a_core_section),
        cmocka_unit_test(key_declared_twice_across_sections_is_reported),
        cmocka_unit_test(section_key_clashing_with_a_core_key_is_reported),
        cmocka_unit_test(section_named_like_a_core_key_is_reported),
        cmocka_unit_test(broken_section_tables_are_reported),
        cmocka_unit_test(defaults_with_a_broken_section_abort),
        cmocka_unit_test(free_releases_section_strings_and_lists),
        cmocka_unit_test(key_names_list_core_keys_then_section_keys),
        cmocka_unit_test(example_file_loads_with_module_sections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
