/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * libFuzzer harness of kurierd's configuration loader (src/core/config.c,
 * YAML through libyaml) on arbitrary bytes. Besides crashes and leaks
 * (LeakSanitizer runs after every input under libFuzzer), it checks the
 * contract of config.h that operators depend on:
 *  - on error the message is "NAME:LINE: sentence." with LINE a positive
 *    number no larger than the input's line count allows, and *out is all
 *    zero (kr_config_free() on it is harmless);
 *  - the message cut to a small buffer is a NUL-terminated prefix of it
 *    (no overflow of the caller's buffer);
 *  - on success the result is usable: at least one served domain, at least
 *    one worker, and every listed domain is served.
 * The load passes module sections as kurierd's modules will (a fake module
 * with a key of every type, a second section under the same name and one that
 * adds a key to the core's "limits"), so inputs reach section defaults, values,
 * suggestions and freeing; on success each section's values are within the
 * bounds its table gives and its domains are prepared.
 * Loading the same bytes twice gives the same verdict and message. The loader
 * touches no file: kr_config_load_string_sections() reads memory only.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

#define FUZZ_NAME "fuzz.yml"
#define FUZZ_SMALL_ERR 12

static void fuzz_die(const char *what, const char *msg)
{
    fprintf(stderr, "fuzz_config: %s\n", what);
    if (msg)
        fprintf(stderr, "  message: %s\n", msg);
    abort();
}

typedef struct fuzz_module {
    bool enabled;
    uint8_t small;
    uint64_t big;
    unsigned mode;
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
} fuzz_module;

typedef struct fuzz_count {
    unsigned n;
} fuzz_count;

static const char *const fuzz_modes[] = {"off", "on", "auto", NULL};
static const char *const fuzz_stores[] = {"memory", "sqlite", NULL};

static const kr_config_key fuzz_module_keys[] = {
    KR_CONFIG_FLAG(fuzz_module, "enabled", enabled, "true"),
    KR_CONFIG_NUM(fuzz_module, "small", small, 0, 255, "7"),
    KR_CONFIG_NUM(fuzz_module, "big", big, 1, UINT64_MAX, "18446744073709551615"),
    KR_CONFIG_PICK(fuzz_module, "mode", mode, fuzz_modes, "auto"),
    KR_CONFIG_STR(fuzz_module, "greeting", greeting, "hello"),
    KR_CONFIG_OPT(fuzz_module, "motd", motd, ""),
    KR_CONFIG_WORD(fuzz_module, "store", store, fuzz_stores, "memory"),
    KR_CONFIG_NAMES(fuzz_module, "domains", domains, domain_count, 1, kr_config_domain_check,
                    "conference.localhost,upload.localhost"),
    KR_CONFIG_NAMES(fuzz_module, "tags", tags, tag_count, 0, NULL, ""),
    KR_CONFIG_ADDRS(fuzz_module, "listen", listen, "127.0.0.1:5347"),
    KR_CONFIG_HOSTS(fuzz_module, "peers", peers),
    KR_CONFIG_NUM(fuzz_module, "queue.depth", depth, 1, 64, "8"),
};
static const kr_config_key fuzz_rooms_keys[] = {
    KR_CONFIG_NUM(fuzz_count, "rooms", n, 1, 100, "10"),
};
static const kr_config_key fuzz_limits_keys[] = {
    KR_CONFIG_NUM(fuzz_count, "fuzz_streams", n, 1, 1000, "5"),
};
static const kr_config_section fuzz_module_section =
    KR_CONFIG_SECTION("fuzzmod", fuzz_module, fuzz_module_keys);
static const kr_config_section fuzz_rooms_section =
    KR_CONFIG_SECTION("fuzzmod", fuzz_count, fuzz_rooms_keys);
static const kr_config_section fuzz_limits_section =
    KR_CONFIG_SECTION("limits", fuzz_count, fuzz_limits_keys);
static const kr_config_section *const fuzz_sections[] = {
    &fuzz_module_section, &fuzz_rooms_section, &fuzz_limits_section};
#define FUZZ_SECTION_COUNT (sizeof(fuzz_sections) / sizeof(fuzz_sections[0]))

/* A domain the loader prepared must come back unchanged from another check. */
static void fuzz_check_prepared(const char *domain)
{
    if (!domain)
        fuzz_die("a section domain is NULL", NULL);
    char *again = strdup(domain);
    if (!again)
        abort();
    if (kr_config_domain_check(again) || strcmp(again, domain) != 0)
        fuzz_die("a section domain is not prepared", domain);
    free(again);
}

static void fuzz_check_sections(const kr_config *c)
{
    const fuzz_module *m = kr_config_section_get(c, &fuzz_module_section);
    const fuzz_count *rooms = kr_config_section_get(c, &fuzz_rooms_section);
    const fuzz_count *streams = kr_config_section_get(c, &fuzz_limits_section);
    if (!m || !rooms || !streams)
        fuzz_die("a section passed at load has no values", NULL);
    if (m->big < 1 || m->mode > 2 || m->depth < 1 || m->depth > 64)
        fuzz_die("a section number is outside its bounds", NULL);
    if (!m->greeting || !m->greeting[0] || !m->motd || !m->store)
        fuzz_die("a section string is missing", NULL);
    if (strcmp(m->store, "memory") != 0 && strcmp(m->store, "sqlite") != 0)
        fuzz_die("a section word is not one of its choices", m->store);
    if (m->domain_count < 1 || !m->domains)
        fuzz_die("a section domain list is empty", NULL);
    for (size_t i = 0; i < m->domain_count; i++)
        fuzz_check_prepared(m->domains[i]);
    for (size_t i = 0; i < m->tag_count; i++)
        if (!m->tags[i])
            fuzz_die("a section list entry is NULL", NULL);
    for (size_t i = 0; i < m->listen.count; i++)
        if (m->listen.items[i].port == 0)
            fuzz_die("a section listen address has port 0", m->listen.items[i].host);
    for (size_t i = 0; i < m->peers.count; i++)
        fuzz_check_prepared(m->peers.items[i].domain);
    if (rooms->n < 1 || rooms->n > 100 || streams->n < 1 || streams->n > 1000)
        fuzz_die("a section number is outside its bounds", NULL);
}

/* Upper bound of the line a mark can be on: every kind of break YAML 1.1 knows counted
 * once (CR LF counts twice, so this only over-estimates), plus the line after the end. */
static size_t fuzz_max_line(const uint8_t *d, size_t n)
{
    size_t lines = 2;
    for (size_t i = 0; i < n; i++) {
        if (d[i] == '\n' || d[i] == '\r')
            lines++;
        else if (d[i] == 0xc2 && i + 1 < n && d[i + 1] == 0x85) /* NEL */
            lines++;
        else if (d[i] == 0xe2 && i + 2 < n && d[i + 1] == 0x80 && (d[i + 2] | 1) == 0xa9)
            lines++; /* LS, PS */
    }
    return lines;
}

static void fuzz_check_error(const char *err, const uint8_t *data, size_t size)
{
    size_t nl = strlen(FUZZ_NAME);
    if (strncmp(err, FUZZ_NAME ":", nl + 1) != 0)
        fuzz_die("error message does not start with the name", err);
    const char *p = err + nl + 1;
    size_t line = 0;
    const char *digits = p;
    while (*p >= '0' && *p <= '9') {
        line = line * 10 + (size_t)(*p - '0');
        p++;
    }
    if (p == digits || p[0] != ':' || p[1] != ' ' || !p[2])
        fuzz_die("error message has no \"LINE: \" after the name", err);
    if (line == 0 || line > fuzz_max_line(data, size))
        fuzz_die("error message names a line outside the input", err);
}

static bool fuzz_all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy even when empty, so a read past the end is caught. */
    char *yaml = malloc(size ? size : 1);
    if (!yaml)
        abort();
    if (size)
        memcpy(yaml, data, size);

    kr_config c;
    char err[512];
    err[0] = '\0';
    int rc = kr_config_load_string_sections(yaml, size, FUZZ_NAME, fuzz_sections,
                                            FUZZ_SECTION_COUNT, &c, err, sizeof(err));
    if (rc != 0) {
        fuzz_check_error(err, data, size);
        if (!fuzz_all_zero(&c, sizeof(c)))
            fuzz_die("failed load left *out non-zero", err);
    } else {
        if (c.domain_count == 0 || !c.domains)
            fuzz_die("loaded configuration serves no domain", NULL);
        if (c.workers == 0)
            fuzz_die("workers not resolved", NULL);
        for (size_t i = 0; i < c.domain_count; i++)
            if (!c.domains[i] || !kr_config_serves(&c, c.domains[i]))
                fuzz_die("a listed domain is not served", c.domains[i]);
        fuzz_check_sections(&c);
        char *path = kr_config_data_path(&c, "x.db");
        if (!path)
            fuzz_die("no data path", NULL);
        free(path);
    }
    kr_config_free(&c);

    /* Same input, a small message buffer exactly as large as it claims to be. */
    char *small = malloc(FUZZ_SMALL_ERR);
    if (!small)
        abort();
    kr_config c2;
    int rc2 = kr_config_load_string_sections(yaml, size, FUZZ_NAME, fuzz_sections,
                                             FUZZ_SECTION_COUNT, &c2, small, FUZZ_SMALL_ERR);
    if ((rc2 == 0) != (rc == 0))
        fuzz_die("two loads of the same input disagree", err);
    if (rc2 != 0 && (strnlen(small, FUZZ_SMALL_ERR) == FUZZ_SMALL_ERR ||
                     strncmp(small, err, strlen(small)) != 0))
        fuzz_die("cut error message is not a terminated prefix of the full one", err);
    kr_config_free(&c2);
    free(small);
    free(yaml);
    return 0;
}
