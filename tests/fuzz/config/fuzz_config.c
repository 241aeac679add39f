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
 * Loading the same bytes twice gives the same verdict and message. The loader
 * touches no file: kr_config_load_string() reads memory only.
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
    int rc = kr_config_load_string(yaml, size, FUZZ_NAME, &c, err, sizeof(err));
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
    int rc2 = kr_config_load_string(yaml, size, FUZZ_NAME, &c2, small, FUZZ_SMALL_ERR);
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
