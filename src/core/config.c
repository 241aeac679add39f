/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * kurierd's configuration loader (see config.h). One table, kr_cfg_keys, names
 * every core key: its dotted path, its type and bounds, where it lives in
 * kr_config and its default written as it would be in the file. Each module
 * section passed at load is a table of the same kind whose offsets are into a
 * block of its own; the loader binds every key to its storage (kr_cfg_slot:
 * entry, full dotted path, base struct), core keys first, so defaults, loading,
 * freeing, suggestions and error messages treat both alike. To add a core
 * option: its field in config.h, one line in the table, its entry in
 * examples/kurierd.yml and docs/configuration.md (test_config checks both); a
 * module adds a section: its own struct and key table, KR_CONFIG_SECTION(), and
 * the same two documentation entries under the section's name.
 * The tables are checked at every load, before the file: no dotted path twice,
 * no key inside another, fields inside their struct, defaults within their own
 * bounds; a mistake there is kurierd's bug and fails the load with "FILE: bug
 * in kurierd's configuration tables: ...".
 * The file is composed into a libyaml document and walked one mapping at a
 * time; every key must be in a table, and the first problem stops loading
 * with one line "FILE:LINE: sentence." (LINE from the offending node).
 * Invariant: a kr_config is either all zeros or owns every string, list and
 * section block it points to. Listeners are STARTTLS (RFC 6120 §5) or direct
 * TLS (XEP-0368) addresses, and XEP-0114 component listeners, whose plaintext
 * ones must be loopback addresses; served domains are DNS names or IP literals
 * (RFC 7622 §3.2). The component secrets (domain -> secret) are checked
 * against "domains" once the whole file is read, and no message quotes a
 * secret.
 */
#include "core/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/error.h"

#define KR_CFG_FILE_MAX (1024 * 1024) /* a config file larger than this is a mistake */
#define KR_CFG_LIST_MAX 10000         /* entries per list; keeps duplicate checks cheap */
#define KR_CFG_WORKERS_MAX 256
#define KR_CFG_DNS_NAME_MAX 253 /* RFC 1035 §2.3.4, in text form without the root dot */
#define KR_CFG_DNS_LABEL_MAX 63
#define KR_CFG_SUGGEST_MAX 2 /* edit distance up to which an unknown key gets a suggestion */
#define KR_CFG_SHOW_INPUT 64 /* bytes of a value quoted in a message before it is cut */
#define KR_CFG_SHOW_MAX (KR_CFG_SHOW_INPUT * 4 + 8)

/* The core table's entries all point into kr_config. */
#define KR_CFG_STR(p, f, d) KR_CONFIG_STR(kr_config, p, f, d)
#define KR_CFG_OPT(p, f, d) KR_CONFIG_OPT(kr_config, p, f, d)
#define KR_CFG_WORD(p, f, ch, d) KR_CONFIG_WORD(kr_config, p, f, ch, d)
#define KR_CFG_FLAG(p, f, d) KR_CONFIG_FLAG(kr_config, p, f, d)
#define KR_CFG_NUM(p, f, lo, hi, d) KR_CONFIG_NUM(kr_config, p, f, lo, hi, d)
#define KR_CFG_PICK(p, f, ch, d) KR_CONFIG_PICK(kr_config, p, f, ch, d)
#define KR_CFG_NAMES(p, f, n, least, chk, d) KR_CONFIG_NAMES(kr_config, p, f, n, least, chk, d)
#define KR_CFG_ADDRS(p, f, d) KR_CONFIG_ADDRS(kr_config, p, f, d)
#define KR_CFG_HOSTS(p, f) KR_CONFIG_HOSTS(kr_config, p, f)
#define KR_CFG_ADDRS_CHECKED(p, f, chk, d) KR_CONFIG_ADDRS_CHECKED(kr_config, p, f, chk, d)
#define KR_CFG_SECRETS(p, f) KR_CONFIG_SECRETS(kr_config, p, f)

/* Index order must match kr_log_level. */
static const char *const kr_cfg_log_levels[] = {"error", "warn", "info", "debug", NULL};
_Static_assert(KR_LOG_ERROR == 0 && KR_LOG_WARN == 1 && KR_LOG_INFO == 2 && KR_LOG_DEBUG == 3,
               "kr_cfg_log_levels follows kr_log_level");
static const char *const kr_cfg_drivers[] = {"sqlite", NULL};

static const char *kr_cfg_loopback_check(char *host);

static const kr_config_key kr_cfg_keys[] = {
    KR_CFG_NAMES("domains", domains, domain_count, 1, kr_config_domain_check, "localhost"),
    KR_CFG_NUM("workers", workers, 0, KR_CFG_WORKERS_MAX, "0"),
    KR_CFG_PICK("log_level", log_level, kr_cfg_log_levels, "info"),
    KR_CFG_STR("data_dir", data_dir, "./data"),
    KR_CFG_STR("tls.certificate", tls.certificate, "cert.pem"),
    KR_CFG_STR("tls.key", tls.key, "key.pem"),
    KR_CFG_ADDRS("c2s.starttls", c2s.starttls, "127.0.0.1:5222"),
    KR_CFG_ADDRS("c2s.direct_tls", c2s.direct_tls, "127.0.0.1:5223"),
    KR_CFG_FLAG("sasl.plain", sasl.plain, "true"),
    KR_CFG_NUM("sasl.scram_iterations", sasl.scram_iterations, 4096, 1000000, "10000"),
    KR_CFG_NUM("sasl.max_failures", sasl.max_failures, 1, 100, "3"),
    KR_CFG_WORD("storage.driver", storage.driver, kr_cfg_drivers, "sqlite"),
    KR_CFG_STR("storage.sqlite_path", storage.sqlite_path, "kurier.db"),
    KR_CFG_NUM("storage.threads", storage.threads, 1, 64, "4"),
    KR_CFG_NUM("limits.max_stanza_bytes", limits.max_stanza_bytes, 16384, 16777216, "262144"),
    KR_CFG_NUM("limits.max_depth", limits.max_depth, 4, 1024, "64"),
    KR_CFG_NUM("limits.max_attributes", limits.max_attributes, 8, 1024, "64"),
    KR_CFG_NUM("limits.auth_timeout_s", limits.auth_timeout_s, 1, 3600, "30"),
    KR_CFG_NUM("limits.idle_timeout_s", limits.idle_timeout_s, 10, 86400, "600"),
    KR_CFG_NUM("limits.max_send_queue_bytes", limits.max_send_queue_bytes, 65536, 268435456,
               "1048576"),
    KR_CFG_NUM("limits.bytes_per_second", limits.bytes_per_second, 1024, 1073741824, "1048576"),
    KR_CFG_NUM("limits.bytes_per_second_unauthenticated", limits.bytes_per_second_unauthenticated,
               1024, 1073741824, "65536"),
    KR_CFG_NUM("limits.burst_bytes", limits.burst_bytes, 1024, 1073741824, "262144"),
    KR_CFG_NUM("limits.connections_per_ip", limits.connections_per_ip, 1, 1000000, "256"),
    KR_CFG_NUM("limits.login_failures_per_ip", limits.login_failures_per_ip, 1, 100000, "30"),
    KR_CFG_NUM("limits.login_failures_per_account", limits.login_failures_per_account, 1, 100000,
               "10"),
    KR_CFG_NUM("limits.login_failure_window_s", limits.login_failure_window_s, 1, 86400, "600"),
    KR_CFG_NUM("limits.login_cooldown_s", limits.login_cooldown_s, 1, 86400, "300"),
    KR_CFG_FLAG("s2s.enabled", s2s.enabled, "false"),
    KR_CFG_ADDRS("s2s.starttls", s2s.starttls, "127.0.0.1:5269"),
    KR_CFG_ADDRS("s2s.direct_tls", s2s.direct_tls, "127.0.0.1:5270"),
    KR_CFG_HOSTS("s2s.hosts", s2s.hosts),
    KR_CFG_FLAG("s2s.require_valid_certificates", s2s.require_valid_certificates, "true"),
    KR_CFG_OPT("s2s.ca_file", s2s.ca_file, ""),
    KR_CFG_OPT("s2s.dialback_secret", s2s.dialback_secret, ""),
    KR_CFG_NUM("s2s.connect_timeout_s", s2s.connect_timeout_s, 1, 3600, "10"),
    KR_CFG_NUM("s2s.idle_timeout_s", s2s.idle_timeout_s, 10, 86400, "600"),
    KR_CFG_NUM("s2s.queue_max_stanzas", s2s.queue_max_stanzas, 1, 1000000, "1000"),
    KR_CFG_OPT("s2s.dnssec_trust_anchor", s2s.dnssec_trust_anchor, ""),
    KR_CFG_OPT("s2s.resolver_config", s2s.resolver_config, ""),
    KR_CFG_ADDRS("component.direct_tls", component.direct_tls, ""),
    KR_CFG_ADDRS_CHECKED("component.plain", component.plain, kr_cfg_loopback_check, ""),
    KR_CFG_SECRETS("component.secrets", component.secrets),
};

#define KR_CFG_KEY_COUNT (sizeof(kr_cfg_keys) / sizeof(kr_cfg_keys[0]))

/* State of one load: where messages go and what is being filled. */
typedef struct kr_cfg_ctx {
    const char *name;
    yaml_document_t *doc;
    kr_config *cfg;
    char *err;
    size_t errlen;
    const char *blame; /* set while checking kurierd's own tables: messages then carry no line */
} kr_cfg_ctx;

/* One key bound to the storage it fills: its table entry, its full dotted path (a section's
 * name before the key's own path) and the struct its offset is into. */
typedef struct kr_cfg_slot {
    const kr_config_key *key;
    void *base;       /* the kr_config, or a section's block */
    size_t base_size; /* of that struct */
    char path[KR_CONFIG_PATH_MAX];
} kr_cfg_slot;

/* ---- messages ---- */

static int kr_cfg_fail(kr_cfg_ctx *x, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int kr_cfg_fail(kr_cfg_ctx *x, size_t line, const char *fmt, ...)
{
    if (x->err && x->errlen) {
        kr_buf b = KR_BUF_INIT;
        if (x->blame)
            kr_buf_printf(&b, "%s: %s", x->name, x->blame);
        else
            kr_buf_printf(&b, "%s:%zu: ", x->name, line);
        va_list ap;
        va_start(ap, fmt);
        kr_buf_vprintf(&b, fmt, ap);
        va_end(ap);
        kr_buf_puts(&b, ".");
        snprintf(x->err, x->errlen, "%s", b.data);
        kr_buf_clear(&b);
    }
    return KR_ECONFIG;
}

/* A value as messages show it: in double quotes, control bytes escaped, long ones cut. */
static const char *kr_cfg_show(const char *s, size_t len, char out[KR_CFG_SHOW_MAX])
{
    size_t n = 0;
    out[n++] = '"';
    for (size_t i = 0; i < len && i < KR_CFG_SHOW_INPUT; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            out[n++] = '\\';
            out[n++] = (char)ch;
        } else if (ch == '\n') {
            out[n++] = '\\';
            out[n++] = 'n';
        } else if (ch < 0x20 || ch == 0x7f) {
            n += (size_t)snprintf(out + n, 5, "\\x%02x", ch);
        } else {
            out[n++] = (char)ch;
        }
    }
    if (len > KR_CFG_SHOW_INPUT) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n++] = '"';
    out[n] = '\0';
    return out;
}

static size_t kr_cfg_line(const yaml_node_t *n)
{
    return n->start_mark.line + 1;
}

/* YAML's null: an empty or "~"/"null" plain scalar (YAML 1.1 core schema). */
static bool kr_cfg_is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)n->data.scalar.value;
    return !v[0] || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
           !strcmp(v, "NULL");
}

/* "a list", "a mapping", "an empty value" or the quoted scalar. */
static const char *kr_cfg_describe(const yaml_node_t *n, char out[KR_CFG_SHOW_MAX])
{
    if (n->type == YAML_SEQUENCE_NODE)
        return "a list";
    if (n->type == YAML_MAPPING_NODE)
        return "a mapping";
    if (kr_cfg_is_null(n))
        return "an empty value";
    return kr_cfg_show((const char *)n->data.scalar.value, n->data.scalar.length, out);
}

/* "a, b or c" */
static void kr_cfg_join_choices(kr_buf *b, const char *const *choices)
{
    for (size_t i = 0; choices[i]; i++) {
        if (i > 0)
            kr_buf_puts(b, choices[i + 1] ? ", " : " or ");
        kr_buf_puts(b, choices[i]);
    }
}

static int kr_cfg_fail_choices(kr_cfg_ctx *x, size_t line, const kr_cfg_slot *k,
                               const char *const *choices, const char *shown)
{
    kr_buf b = KR_BUF_INIT;
    kr_cfg_join_choices(&b, choices);
    int rc = kr_cfg_fail(x, line, "\"%s\" must be %s, not %s", k->path, b.data, shown);
    kr_buf_clear(&b);
    return rc;
}

static const char *const kr_cfg_bool_words[] = {"true", "false", "yes", "no", NULL};

/* What a value of this key must be, for "must be ..., not ..." messages. */
static void kr_cfg_expectation(kr_buf *b, const kr_cfg_slot *k)
{
    switch (k->key->type) {
    case KR_CONFIG_STRING:
        if (k->key->choices)
            kr_cfg_join_choices(b, k->key->choices);
        else
            kr_buf_puts(b, "a string");
        break;
    case KR_CONFIG_BOOL:
        kr_cfg_join_choices(b, kr_cfg_bool_words);
        break;
    case KR_CONFIG_UINT:
        kr_buf_puts(b, "a whole number");
        break;
    case KR_CONFIG_ENUM:
        kr_cfg_join_choices(b, k->key->choices);
        break;
    case KR_CONFIG_STRLIST:
    case KR_CONFIG_LISTEN:
        kr_buf_puts(b, "a list");
        break;
    case KR_CONFIG_HOSTMAP:
        kr_buf_puts(b, "a mapping of domain names to \"IP:port\" addresses");
        break;
    case KR_CONFIG_SECRETS:
        kr_buf_puts(b, "a mapping of domain names to secrets");
        break;
    }
}

static int kr_cfg_fail_type(kr_cfg_ctx *x, const kr_cfg_slot *k, const yaml_node_t *n)
{
    char shown[KR_CFG_SHOW_MAX];
    kr_buf b = KR_BUF_INIT;
    kr_cfg_expectation(&b, k);
    int rc = kr_cfg_fail(x, kr_cfg_line(n), "\"%s\" must be %s, not %s", k->path, b.data,
                         kr_cfg_describe(n, shown));
    kr_buf_clear(&b);
    return rc;
}

/* ---- scalar values ---- */

static int kr_cfg_choice_index(const char *const *choices, const char *v)
{
    for (int i = 0; choices[i]; i++)
        if (!strcmp(choices[i], v))
            return i;
    return -1;
}

/* Plain decimal digits, no sign, no leading zero; v[len] must end the digits.
 * Returns 0, KR_EINVAL (not a number) or KR_ELIMIT (does not fit). */
static int kr_cfg_decimal(const char *v, size_t len, unsigned long long *out)
{
    if (len == 0 || (v[0] == '0' && len > 1))
        return KR_EINVAL;
    for (size_t i = 0; i < len; i++)
        if (v[i] < '0' || v[i] > '9')
            return KR_EINVAL;
    char *end;
    errno = 0;
    *out = strtoull(v, &end, 10);
    if (errno == ERANGE)
        return KR_ELIMIT;
    if (end != v + len)
        return KR_EINVAL;
    return 0;
}

static void kr_cfg_store_uint(void *field, size_t size, unsigned long long v)
{
    if (size == 1) {
        uint8_t u = (uint8_t)v;
        memcpy(field, &u, 1);
    } else if (size == 2) {
        uint16_t u = (uint16_t)v;
        memcpy(field, &u, 2);
    } else if (size == 4) {
        uint32_t u = (uint32_t)v;
        memcpy(field, &u, 4);
    } else {
        uint64_t u = v;
        memcpy(field, &u, 8);
    }
}

static int kr_cfg_set_uint(kr_cfg_ctx *x, const kr_cfg_slot *k, const char *v, size_t len,
                           size_t line, const char *shown)
{
    unsigned long long n;
    int rc = kr_cfg_decimal(v, len, &n);
    if (rc == KR_EINVAL)
        return kr_cfg_fail(x, line, "\"%s\" must be a whole number, not %s", k->path, shown);
    if (rc == KR_ELIMIT || n < k->key->min || n > k->key->max)
        return kr_cfg_fail(x, line, "\"%s\" must be between %llu and %llu, not %s", k->path,
                           k->key->min, k->key->max, shown);
    kr_cfg_store_uint((char *)k->base + k->key->offset, k->key->size, n);
    return 0;
}

static int kr_cfg_set_scalar(kr_cfg_ctx *x, const kr_cfg_slot *k, const char *v, size_t len,
                             size_t line)
{
    char shown[KR_CFG_SHOW_MAX];
    kr_cfg_show(v, len, shown);
    if (memchr(v, '\0', len))
        return kr_cfg_fail(x, line, "\"%s\" must not contain a NUL character", k->path);
    void *field = (char *)k->base + k->key->offset;
    int i;
    switch (k->key->type) {
    case KR_CONFIG_STRING:
        if (len < k->key->min)
            return kr_cfg_fail(x, line, "\"%s\" must not be empty", k->path);
        if (k->key->choices && kr_cfg_choice_index(k->key->choices, v) < 0)
            return kr_cfg_fail_choices(x, line, k, k->key->choices, shown);
        free(*(char **)field);
        *(char **)field = kr_xstrndup(v, len);
        return 0;
    case KR_CONFIG_BOOL:
        i = kr_cfg_choice_index(kr_cfg_bool_words, v);
        if (i < 0)
            return kr_cfg_fail_choices(x, line, k, kr_cfg_bool_words, shown);
        *(bool *)field = (i == 0 || i == 2);
        return 0;
    case KR_CONFIG_UINT:
        return kr_cfg_set_uint(x, k, v, len, line, shown);
    case KR_CONFIG_ENUM:
        i = kr_cfg_choice_index(k->key->choices, v);
        if (i < 0)
            return kr_cfg_fail_choices(x, line, k, k->key->choices, shown);
        kr_cfg_store_uint(field, k->key->size, (unsigned long long)i);
        return 0;
    case KR_CONFIG_STRLIST:
    case KR_CONFIG_LISTEN:
    case KR_CONFIG_HOSTMAP:
    case KR_CONFIG_SECRETS:
        break;
    }
    abort(); /* lists and maps never come here */
}

/* ---- domains (RFC 7622 §3.2: a DNS name or an IP literal) ---- */

static const char *kr_cfg_dns_label_check(const char *s, size_t len)
{
    if (len == 0)
        return "is not a valid domain name: it has an empty label";
    if (len > KR_CFG_DNS_LABEL_MAX)
        return "is not a valid domain name: a label is longer than 63 bytes";
    if (len >= 4 && !memcmp(s, "xn--", 4))
        return "is an internationalized (xn--) name, which the configuration does not "
               "support yet";
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-'))
            return "is not a valid domain name: use only letters a-z, digits, '-' and '.'";
    }
    if (s[0] == '-' || s[len - 1] == '-')
        return "is not a valid domain name: a label starts or ends with '-'";
    return NULL;
}

static bool kr_cfg_all_digits(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

const char *kr_config_domain_check(char *s)
{
    size_t len = strlen(s);
    for (size_t i = 0; i < len; i++)
        if (s[i] >= 'A' && s[i] <= 'Z')
            s[i] = (char)(s[i] - 'A' + 'a');
    if (s[0] == '[') {
        unsigned char bin[16];
        char inner[INET6_ADDRSTRLEN];
        size_t n = len - 1;
        if (len < 3 || s[len - 1] != ']' || n - 1 >= sizeof(inner))
            return "is not a valid IPv6 literal; write it as [address]";
        memcpy(inner, s + 1, n - 1);
        inner[n - 1] = '\0';
        if (inet_pton(AF_INET6, inner, bin) != 1)
            return "is not a valid IPv6 literal; write it as [address]";
        return NULL;
    }
    if (len > 0 && s[len - 1] == '.') /* a fully qualified name's root dot (RFC 7622 §3.2) */
        s[--len] = '\0';
    if (len == 0)
        return "is not a valid domain name: it is empty";
    if (len > KR_CFG_DNS_NAME_MAX)
        return "is not a valid domain name: it is longer than 253 bytes";
    const char *label = s;
    for (;;) {
        const char *dot = strchr(label, '.');
        size_t n = dot ? (size_t)(dot - label) : strlen(label);
        const char *why = kr_cfg_dns_label_check(label, n);
        if (why)
            return why;
        if (!dot) {
            /* A numeric last label only makes sense in an IPv4 address. */
            unsigned char bin[4];
            if (kr_cfg_all_digits(label, n) && inet_pton(AF_INET, s, bin) != 1)
                return "is neither a valid IPv4 address nor a domain name";
            return NULL;
        }
        label = dot + 1;
    }
}

/* ---- listen addresses: "IPv4:port" or "[IPv6]:port" ---- */

/* v[len] must be '\0'. The host is stored in inet_ntop's canonical form. */
static bool kr_cfg_listen_parse(const char *v, size_t len, kr_listen_addr *out)
{
    const char *host, *port;
    size_t hlen;
    int af;
    if (len > 0 && v[0] == '[') {
        const char *close = memchr(v, ']', len);
        if (!close || close[1] != ':')
            return false;
        host = v + 1;
        hlen = (size_t)(close - host);
        port = close + 2;
        af = AF_INET6;
    } else {
        const char *colon = memchr(v, ':', len);
        if (!colon)
            return false;
        host = v;
        hlen = (size_t)(colon - v);
        port = colon + 1;
        af = AF_INET;
    }
    char text[sizeof(out->host)];
    if (hlen == 0 || hlen >= sizeof(text))
        return false;
    memcpy(text, host, hlen);
    text[hlen] = '\0';
    unsigned long long p;
    if (kr_cfg_decimal(port, (size_t)(v + len - port), &p) != 0 || p < 1 || p > 65535)
        return false;
    unsigned char bin[16];
    if (inet_pton(af, text, bin) != 1)
        return false;
    if (!inet_ntop(af, bin, out->host, sizeof(out->host)))
        return false;
    out->port = (uint16_t)p;
    return true;
}

/* A plaintext listener (component.plain) must stay on this machine: Kurier encrypts every
 * hop that leaves it (docs/SECURITY.md). */
static const char *kr_cfg_loopback_check(char *host)
{
    static const unsigned char v6_loopback[16] = {[15] = 1};
    unsigned char bin[16];
    if (inet_pton(AF_INET, host, bin) == 1 && bin[0] == 127)
        return NULL;
    if (inet_pton(AF_INET6, host, bin) == 1 && memcmp(bin, v6_loopback, sizeof(bin)) == 0)
        return NULL;
    return "is not a loopback address (127.0.0.0/8 or [::1]): a plaintext listener must stay "
           "on this machine; use component.direct_tls for other addresses";
}

/* ---- lists ---- */

static void kr_cfg_list_clear(const kr_cfg_slot *k)
{
    void *field = (char *)k->base + k->key->offset;
    if (k->key->type == KR_CONFIG_STRLIST) {
        char ***items = field;
        size_t *count = (size_t *)((char *)k->base + k->key->count_offset);
        for (size_t i = 0; i < *count; i++)
            free((*items)[i]);
        free(*items);
        *items = NULL;
        *count = 0;
    } else {
        kr_listen_list *l = field;
        free(l->items);
        l->items = NULL;
        l->count = 0;
    }
}

static int kr_cfg_add_name(kr_cfg_ctx *x, const kr_cfg_slot *k, const char *v, size_t len,
                           size_t line, const char *shown)
{
    char ***items = (void *)((char *)k->base + k->key->offset);
    size_t *count = (size_t *)((char *)k->base + k->key->count_offset);
    char *s = kr_xstrndup(v, len);
    const char *why = k->key->check ? k->key->check(s) : NULL;
    if (why) {
        free(s);
        return kr_cfg_fail(x, line, "\"%s\" entry %s %s", k->path, shown, why);
    }
    for (size_t i = 0; i < *count; i++) {
        if (!strcmp((*items)[i], s)) {
            char again[KR_CFG_SHOW_MAX];
            kr_cfg_show(s, strlen(s), again);
            free(s);
            return kr_cfg_fail(x, line, "\"%s\" lists %s twice", k->path, again);
        }
    }
    *items = kr_xrealloc(*items, (*count + 1) * sizeof(**items));
    (*items)[(*count)++] = s;
    return 0;
}

static int kr_cfg_add_listen(kr_cfg_ctx *x, const kr_cfg_slot *k, const char *v, size_t len,
                             size_t line, const char *shown)
{
    kr_listen_list *l = (void *)((char *)k->base + k->key->offset);
    kr_listen_addr a;
    memset(&a, 0, sizeof(a));
    if (!kr_cfg_listen_parse(v, len, &a))
        return kr_cfg_fail(x, line,
                           "\"%s\" entry %s is not a listen address; write \"IPv4:port\" or "
                           "\"[IPv6]:port\" with a port from 1 to 65535",
                           k->path, shown);
    const char *why = k->key->check ? k->key->check(a.host) : NULL;
    if (why)
        return kr_cfg_fail(x, line, "\"%s\" entry %s %s", k->path, shown, why);
    for (size_t i = 0; i < l->count; i++)
        if (l->items[i].port == a.port && !strcmp(l->items[i].host, a.host))
            return kr_cfg_fail(x, line, "\"%s\" lists %s twice", k->path, shown);
    l->items = kr_xrealloc(l->items, (l->count + 1) * sizeof(*l->items));
    l->items[l->count++] = a;
    return 0;
}

static size_t kr_cfg_list_count(const kr_cfg_slot *k)
{
    if (k->key->type == KR_CONFIG_STRLIST)
        return *(const size_t *)((const char *)k->base + k->key->count_offset);
    return ((const kr_listen_list *)((const char *)k->base + k->key->offset))->count;
}

/* v[len] must be '\0'. */
static int kr_cfg_list_add(kr_cfg_ctx *x, const kr_cfg_slot *k, const char *v, size_t len,
                           size_t line)
{
    char shown[KR_CFG_SHOW_MAX];
    kr_cfg_show(v, len, shown);
    if (memchr(v, '\0', len))
        return kr_cfg_fail(x, line, "\"%s\" entry %s contains a NUL character", k->path, shown);
    if (kr_cfg_list_count(k) >= KR_CFG_LIST_MAX)
        return kr_cfg_fail(x, line, "\"%s\" may hold at most %d entries", k->path,
                           KR_CFG_LIST_MAX);
    if (k->key->type == KR_CONFIG_STRLIST)
        return kr_cfg_add_name(x, k, v, len, line, shown);
    return kr_cfg_add_listen(x, k, v, len, line, shown);
}

/* ---- domain -> address maps ---- */

static void kr_cfg_hosts_clear(const kr_cfg_slot *k)
{
    kr_host_map *m = (void *)((char *)k->base + k->key->offset);
    for (size_t i = 0; i < m->count; i++)
        free(m->items[i].domain);
    free(m->items);
    m->items = NULL;
    m->count = 0;
}

/*
 * The key of one entry of a map keyed by domain (s2s.hosts, component.secrets): a scalar
 * without NUL that kr_config_domain_check accepts and the map (count entries of stride
 * bytes, each starting with its char *domain) does not hold yet. Returns the new domain
 * in *out (the caller's) and 0, or kr_cfg_fail's result; shown receives the key as shown.
 */
static int kr_cfg_domain_key(kr_cfg_ctx *x, const kr_cfg_slot *k, yaml_node_t *kn,
                             const void *items, size_t count, size_t stride,
                             char shown[KR_CFG_SHOW_MAX], char **out)
{
    size_t line = kr_cfg_line(kn);
    if (kn->type != YAML_SCALAR_NODE || kr_cfg_is_null(kn))
        return kr_cfg_fail(x, line, "\"%s\" keys must be domain names, not %s", k->path,
                           kr_cfg_describe(kn, shown));
    const char *kv = (const char *)kn->data.scalar.value;
    size_t klen = kn->data.scalar.length;
    kr_cfg_show(kv, klen, shown);
    if (memchr(kv, '\0', klen))
        return kr_cfg_fail(x, line, "\"%s\" entry %s contains a NUL character", k->path, shown);
    if (count >= KR_CFG_LIST_MAX)
        return kr_cfg_fail(x, line, "\"%s\" may hold at most %d entries", k->path,
                           KR_CFG_LIST_MAX);
    char *domain = kr_xstrndup(kv, klen);
    const char *why = kr_config_domain_check(domain);
    bool twice = false;
    for (size_t i = 0; !why && !twice && i < count; i++)
        twice = !strcmp(*(char *const *)((const char *)items + i * stride), domain);
    if (!why && !twice) {
        *out = domain;
        return 0;
    }
    free(domain);
    if (why)
        return kr_cfg_fail(x, line, "\"%s\" entry %s %s", k->path, shown, why);
    return kr_cfg_fail(x, line, "\"%s\" lists %s twice", k->path, shown);
}

static int kr_cfg_hosts_add(kr_cfg_ctx *x, const kr_cfg_slot *k, yaml_node_t *kn, yaml_node_t *vn)
{
    kr_host_map *m = (void *)((char *)k->base + k->key->offset);
    char shown[KR_CFG_SHOW_MAX], vshown[KR_CFG_SHOW_MAX];
    char *domain = NULL;
    int rc = kr_cfg_domain_key(x, k, kn, m->items, m->count, sizeof(*m->items), shown, &domain);
    if (rc)
        return rc;
    kr_listen_addr a;
    memset(&a, 0, sizeof(a));
    if (vn->type != YAML_SCALAR_NODE || kr_cfg_is_null(vn) ||
        memchr(vn->data.scalar.value, '\0', vn->data.scalar.length) ||
        !kr_cfg_listen_parse((const char *)vn->data.scalar.value, vn->data.scalar.length, &a)) {
        free(domain);
        return kr_cfg_fail(x, kr_cfg_line(vn),
                           "\"%s\" entry %s: %s is not an address; write \"IPv4:port\" or "
                           "\"[IPv6]:port\" with a port from 1 to 65535",
                           k->path, shown, kr_cfg_describe(vn, vshown));
    }
    m->items = kr_xrealloc(m->items, (m->count + 1) * sizeof(*m->items));
    m->items[m->count].domain = domain;
    m->items[m->count].addr = a;
    m->count++;
    return 0;
}

/* Each pair of a mapping key (hosts, secrets), added in the file's order. */
static int kr_cfg_apply_map(kr_cfg_ctx *x, const kr_cfg_slot *k, yaml_node_t *v,
                            int (*add)(kr_cfg_ctx *x, const kr_cfg_slot *k, yaml_node_t *kn,
                                       yaml_node_t *vn))
{
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        int rc = add(x, k, yaml_document_get_node(x->doc, p->key),
                     yaml_document_get_node(x->doc, p->value));
        if (rc)
            return rc;
    }
    return 0;
}

static int kr_cfg_apply_hosts(kr_cfg_ctx *x, const kr_cfg_slot *k, yaml_node_t *v)
{
    kr_cfg_hosts_clear(k);
    if (kr_cfg_is_null(v))
        return 0;
    if (v->type != YAML_MAPPING_NODE)
        return kr_cfg_fail_type(x, k, v);
    return kr_cfg_apply_map(x, k, v, kr_cfg_hosts_add);
}

/* ---- domain -> secret maps ----
 * Secrets never appear in a message: errors name the entry by its domain. */

static void kr_cfg_secrets_clear(const kr_cfg_slot *k)
{
    kr_secret_map *m = (void *)((char *)k->base + k->key->offset);
    for (size_t i = 0; i < m->count; i++) {
        free(m->items[i].domain);
        explicit_bzero(m->items[i].secret, strlen(m->items[i].secret));
        free(m->items[i].secret);
    }
    free(m->items);
    m->items = NULL;
    m->count = 0;
}

static int kr_cfg_secrets_add(kr_cfg_ctx *x, const kr_cfg_slot *k, yaml_node_t *kn,
                              yaml_node_t *vn)
{
    kr_secret_map *m = (void *)((char *)k->base + k->key->offset);
    char shown[KR_CFG_SHOW_MAX];
    char *domain = NULL;
    int rc = kr_cfg_domain_key(x, k, kn, m->items, m->count, sizeof(*m->items), shown, &domain);
    if (rc)
        return rc;
    /* The value is described only by its kind, never quoted. */
    const char *bad = NULL;
    if (vn->type == YAML_SEQUENCE_NODE)
        bad = "must be a string, not a list";
    else if (vn->type == YAML_MAPPING_NODE)
        bad = "must be a string, not a mapping";
    else if (kr_cfg_is_null(vn) || vn->data.scalar.length == 0)
        bad = "must not be empty";
    else if (memchr(vn->data.scalar.value, '\0', vn->data.scalar.length))
        bad = "must not contain a NUL character";
    if (bad) {
        free(domain);
        return kr_cfg_fail(x, kr_cfg_line(vn), "\"%s\" entry %s: the secret %s", k->path,
                           shown, bad);
    }
    m->items = kr_xrealloc(m->items, (m->count + 1) * sizeof(*m->items));
    m->items[m->count].domain = domain;
    m->items[m->count].secret =
        kr_xstrndup((const char *)vn->data.scalar.value, vn->data.scalar.length);
    m->items[m->count].line = kr_cfg_line(kn);
    m->count++;
    return 0;
}

static int kr_cfg_apply_secrets(kr_cfg_ctx *x, const kr_cfg_slot *k, yaml_node_t *v)
{
    kr_cfg_secrets_clear(k);
    if (kr_cfg_is_null(v))
        return 0;
    if (v->type == YAML_SCALAR_NODE) /* perhaps a secret written in the wrong place */
        return kr_cfg_fail(x, kr_cfg_line(v),
                           "\"%s\" must be a mapping of domain names to secrets, not a string",
                           k->path);
    if (v->type != YAML_MAPPING_NODE)
        return kr_cfg_fail_type(x, k, v);
    return kr_cfg_apply_map(x, k, v, kr_cfg_secrets_add);
}

/* ---- the table ---- */

static bool kr_cfg_is_list(const kr_cfg_slot *k)
{
    return k->key->type == KR_CONFIG_STRLIST || k->key->type == KR_CONFIG_LISTEN;
}

/* The i-th key c knows: the core table's, then each section's in the order they were passed.
 * False past the last. Returns the untruncated length of the path in *len when len is set. */
static bool kr_cfg_slot_at(kr_config *c, size_t i, kr_cfg_slot *out, size_t *len)
{
    int n;
    if (i < KR_CFG_KEY_COUNT) {
        out->key = &kr_cfg_keys[i];
        out->base = c;
        out->base_size = sizeof(*c);
        n = snprintf(out->path, sizeof(out->path), "%s", out->key->path);
    } else {
        i -= KR_CFG_KEY_COUNT;
        size_t j = 0;
        while (j < c->section_count && i >= c->sections[j].section->key_count)
            i -= c->sections[j++].section->key_count;
        if (j == c->section_count)
            return false;
        const kr_config_section *s = c->sections[j].section;
        out->key = &s->keys[i];
        out->base = c->sections[j].data;
        out->base_size = s->size;
        n = snprintf(out->path, sizeof(out->path), "%s.%s", s->name,
                     out->key->path ? out->key->path : ""); /* NULL: kr_cfg_key_problem */
    }
    if (len)
        *len = n < 0 ? SIZE_MAX : (size_t)n;
    return true;
}

static bool kr_cfg_find(kr_config *c, const char *path, kr_cfg_slot *out)
{
    for (size_t i = 0; kr_cfg_slot_at(c, i, out, NULL); i++)
        if (!strcmp(out->path, path))
            return true;
    return false;
}

/* True when path names a section: some key continues it with ".". */
static bool kr_cfg_is_section(kr_config *c, const char *path)
{
    size_t n = strlen(path);
    kr_cfg_slot k;
    for (size_t i = 0; kr_cfg_slot_at(c, i, &k, NULL); i++)
        if (!strncmp(k.path, path, n) && k.path[n] == '.')
            return true;
    return false;
}

/* Optimal string alignment distance (edits, with adjacent swaps counting one). */
static size_t kr_cfg_distance(const char *a, const char *b, size_t blen)
{
    enum { N = 65 };
    size_t alen = strlen(a);
    if (alen >= N || blen >= N)
        return SIZE_MAX;
    size_t d[N][N];
    for (size_t i = 0; i <= alen; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= blen; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= alen; i++) {
        for (size_t j = 1; j <= blen; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t best = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[alen][blen];
}

/* The known name at this level (keys or sections under prefix, the modules' sections
 * included) closest to name, within KR_CFG_SUGGEST_MAX edits and fewer edits than name has
 * bytes; writes it to out. */
static bool kr_cfg_suggest(kr_config *c, const char *prefix, const char *name, char *out,
                           size_t outlen)
{
    size_t plen = strlen(prefix), best = SIZE_MAX;
    kr_cfg_slot k;
    for (size_t i = 0; kr_cfg_slot_at(c, i, &k, NULL); i++) {
        const char *p = k.path;
        if (strncmp(p, prefix, plen) != 0)
            continue;
        const char *part = p + plen, *dot = strchr(part, '.');
        size_t n = dot ? (size_t)(dot - part) : strlen(part);
        size_t d = kr_cfg_distance(name, part, n);
        if (d <= KR_CFG_SUGGEST_MAX && d < strlen(name) && d < best) {
            best = d;
            snprintf(out, outlen, "%.*s", (int)n, part);
        }
    }
    return best != SIZE_MAX;
}

/* ---- walking the document ---- */

static yaml_node_t *kr_cfg_node(kr_cfg_ctx *x, int index)
{
    return yaml_document_get_node(x->doc, index);
}

static int kr_cfg_apply_list(kr_cfg_ctx *x, const kr_cfg_slot *k, yaml_node_t *v)
{
    kr_cfg_list_clear(k);
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
        yaml_node_t *item = kr_cfg_node(x, *it);
        if (item->type != YAML_SCALAR_NODE || kr_cfg_is_null(item)) {
            char shown[KR_CFG_SHOW_MAX];
            return kr_cfg_fail(x, kr_cfg_line(item), "\"%s\" entries must be strings, not %s",
                               k->path, kr_cfg_describe(item, shown));
        }
        int rc = kr_cfg_list_add(x, k, (const char *)item->data.scalar.value,
                                 item->data.scalar.length, kr_cfg_line(item));
        if (rc)
            return rc;
    }
    if (kr_cfg_list_count(k) < k->key->min)
        return kr_cfg_fail(x, kr_cfg_line(v), "\"%s\" must not be an empty list", k->path);
    return 0;
}

static int kr_cfg_apply(kr_cfg_ctx *x, const kr_cfg_slot *k, yaml_node_t *v)
{
    if (k->key->type == KR_CONFIG_HOSTMAP)
        return kr_cfg_apply_hosts(x, k, v);
    if (k->key->type == KR_CONFIG_SECRETS)
        return kr_cfg_apply_secrets(x, k, v);
    if (k->key->type == KR_CONFIG_STRING && k->key->min == 0 && kr_cfg_is_null(v))
        return kr_cfg_set_scalar(x, k, "", 0, kr_cfg_line(v)); /* optional: unset */
    if (kr_cfg_is_list(k)) {
        if (v->type != YAML_SEQUENCE_NODE)
            return kr_cfg_fail_type(x, k, v);
        return kr_cfg_apply_list(x, k, v);
    }
    if (k->key->type == KR_CONFIG_STRING && kr_cfg_is_null(v))
        return kr_cfg_fail(x, kr_cfg_line(v), "\"%s\" must not be empty", k->path);
    if (v->type != YAML_SCALAR_NODE || kr_cfg_is_null(v))
        return kr_cfg_fail_type(x, k, v);
    return kr_cfg_set_scalar(x, k, (const char *)v->data.scalar.value, v->data.scalar.length,
                             kr_cfg_line(v));
}

static int kr_cfg_walk(kr_cfg_ctx *x, yaml_node_t *map, const char *prefix);

static int kr_cfg_unknown(kr_cfg_ctx *x, yaml_node_t *kn, const char *prefix, const char *full)
{
    char shown[KR_CFG_SHOW_MAX], near[64];
    kr_cfg_show(full, strlen(full), shown);
    if (kr_cfg_suggest(x->cfg, prefix, (const char *)kn->data.scalar.value, near, sizeof(near)))
        return kr_cfg_fail(x, kr_cfg_line(kn), "unknown key %s (did you mean \"%s\"?)", shown,
                           near);
    return kr_cfg_fail(x, kr_cfg_line(kn), "unknown key %s", shown);
}

/* A key that names a section: its value is a mapping, or empty (all defaults). */
static int kr_cfg_section(kr_cfg_ctx *x, yaml_node_t *v, const char *full)
{
    if (v->type == YAML_MAPPING_NODE) {
        char *prefix = kr_xasprintf("%s.", full);
        int rc = kr_cfg_walk(x, v, prefix);
        free(prefix);
        return rc;
    }
    if (kr_cfg_is_null(v))
        return 0;
    char shown[KR_CFG_SHOW_MAX];
    return kr_cfg_fail(x, kr_cfg_line(v), "\"%s\" must be a mapping of keys, not %s", full,
                       kr_cfg_describe(v, shown));
}

static int kr_cfg_pair(kr_cfg_ctx *x, yaml_node_pair_t *first, yaml_node_pair_t *p,
                       const char *prefix)
{
    yaml_node_t *kn = kr_cfg_node(x, p->key), *vn = kr_cfg_node(x, p->value);
    char shown[KR_CFG_SHOW_MAX];
    if (kn->type != YAML_SCALAR_NODE)
        return kr_cfg_fail(x, kr_cfg_line(kn), "keys must be plain names, not %s",
                           kr_cfg_describe(kn, shown));
    if (memchr(kn->data.scalar.value, '\0', kn->data.scalar.length))
        return kr_cfg_fail(x, kr_cfg_line(kn), "keys must not contain a NUL character");
    for (yaml_node_pair_t *q = first; q < p; q++) {
        yaml_node_t *qk = kr_cfg_node(x, q->key);
        if (qk->type == YAML_SCALAR_NODE && qk->data.scalar.length == kn->data.scalar.length &&
            !memcmp(qk->data.scalar.value, kn->data.scalar.value, kn->data.scalar.length)) {
            char *full = kr_xasprintf("%s%s", prefix, (const char *)kn->data.scalar.value);
            int rc = kr_cfg_fail(x, kr_cfg_line(kn),
                                 "duplicate key \"%s\" (first given on line %zu)", full,
                                 kr_cfg_line(qk));
            free(full);
            return rc;
        }
    }
    char *full = kr_xasprintf("%s%s", prefix, (const char *)kn->data.scalar.value);
    kr_cfg_slot k;
    int rc;
    if (kr_cfg_find(x->cfg, full, &k))
        rc = kr_cfg_apply(x, &k, vn);
    else if (kr_cfg_is_section(x->cfg, full))
        rc = kr_cfg_section(x, vn, full);
    else
        rc = kr_cfg_unknown(x, kn, prefix, full);
    free(full);
    return rc;
}

static int kr_cfg_walk(kr_cfg_ctx *x, yaml_node_t *map, const char *prefix)
{
    yaml_node_pair_t *first = map->data.mapping.pairs.start;
    for (yaml_node_pair_t *p = first; p < map->data.mapping.pairs.top; p++) {
        int rc = kr_cfg_pair(x, first, p, prefix);
        if (rc)
            return rc;
    }
    return 0;
}

static int kr_cfg_root(kr_cfg_ctx *x, yaml_node_t *root)
{
    if (root->type == YAML_MAPPING_NODE)
        return kr_cfg_walk(x, root, "");
    if (kr_cfg_is_null(root))
        return 0;
    char shown[KR_CFG_SHOW_MAX];
    return kr_cfg_fail(x, kr_cfg_line(root), "the top level must be a mapping of keys, not %s",
                       kr_cfg_describe(root, shown));
}

/* libyaml's own description of a parse failure, at its line. */
static int kr_cfg_fail_syntax(kr_cfg_ctx *x, const yaml_parser_t *p, const char *yaml, size_t len)
{
    if (p->error == YAML_MEMORY_ERROR)
        return kr_cfg_fail(x, 1, "out of memory while reading YAML");
    size_t line = p->problem_mark.line + 1;
    if (p->error == YAML_READER_ERROR) { /* the reader reports a byte offset, not a mark */
        line = 1;
        for (size_t i = 0; i < p->problem_offset && i < len; i++)
            line += yaml[i] == '\n';
    }
    const char *problem = p->problem ? p->problem : "unknown problem";
    if (p->context)
        return kr_cfg_fail(x, line, "YAML syntax error: %s (%s that started on line %zu)", problem,
                           p->context, p->context_mark.line + 1);
    return kr_cfg_fail(x, line, "YAML syntax error: %s", problem);
}

/* Load the first document and apply it; then make sure no second document follows. */
static int kr_cfg_parse(kr_cfg_ctx *x, yaml_parser_t *p, const char *yaml, size_t len)
{
    yaml_document_t doc;
    if (!yaml_parser_load(p, &doc))
        return kr_cfg_fail_syntax(x, p, yaml, len);
    x->doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    int rc = root ? kr_cfg_root(x, root) : 0;
    yaml_document_delete(&doc);
    x->doc = NULL;
    if (rc)
        return rc;
    if (!yaml_parser_load(p, &doc))
        return kr_cfg_fail_syntax(x, p, yaml, len);
    root = yaml_document_get_root_node(&doc);
    if (root && !kr_cfg_is_null(root))
        rc = kr_cfg_fail(x, doc.start_mark.line + 1,
                         "a second YAML document starts here; the file must hold only one");
    yaml_document_delete(&doc);
    return rc;
}

/* ---- kurierd's own tables ----
 * The core table and the modules' sections are code, not input; a mistake in them is
 * reported (x->blame, no line) by every load, before the file is looked at, so that it
 * shows in the first test run rather than as a wrong value at run time. */

static const char kr_cfg_blame_table[] = "bug in kurierd's configuration tables: ";
static const char kr_cfg_blame_default[] = "bug in kurierd's configuration tables: the default of ";

/* Lower-case letters, digits and '_'; if dotted, several such names joined by single dots. */
static bool kr_cfg_name_ok(const char *s, bool dotted)
{
    if (!s || !*s)
        return false;
    for (const char *p = s; *p; p++) {
        if (*p == '.' && dotted && p > s && p[-1] != '.' && p[1])
            continue;
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return false;
    }
    return true;
}

static int kr_cfg_check_section(kr_cfg_ctx *x, const kr_config_section *s, size_t i)
{
    char shown[KR_CFG_SHOW_MAX];
    if (!s)
        return kr_cfg_fail(x, 0, "section %zu is NULL", i);
    if (!kr_cfg_name_ok(s->name, false))
        return kr_cfg_fail(x, 0, "section name %s is not lower-case letters, digits and '_'",
                           s->name ? kr_cfg_show(s->name, strlen(s->name), shown) : "NULL");
    if (!s->keys || s->key_count == 0)
        return kr_cfg_fail(x, 0, "section \"%s\" declares no keys", s->name);
    if (s->size == 0)
        return kr_cfg_fail(x, 0, "section \"%s\" has no struct to fill (size 0)", s->name);
    return 0;
}

static bool kr_cfg_field_in(size_t offset, size_t size, size_t struct_size)
{
    return offset <= struct_size && size <= struct_size - offset;
}

/* What is wrong with one entry, or NULL. */
static const char *kr_cfg_key_problem(const kr_cfg_slot *k, size_t path_len)
{
    const kr_config_key *e = k->key;
    if (!kr_cfg_name_ok(e->path, true))
        return "its path is not lower-case names joined by dots";
    if (path_len >= KR_CONFIG_PATH_MAX)
        return "its path is too long";
    if (!kr_cfg_field_in(e->offset, e->size, k->base_size))
        return "its field lies outside the struct it fills";
    if (!e->def)
        return "it has no default";
    switch (e->type) {
    case KR_CONFIG_STRING:
        return e->size == sizeof(char *) ? NULL : "its field is not a char *";
    case KR_CONFIG_BOOL:
        return e->size == sizeof(bool) ? NULL : "its field is not a bool";
    case KR_CONFIG_UINT:
    case KR_CONFIG_ENUM:
        if (e->size != 1 && e->size != 2 && e->size != 4 && e->size != 8)
            return "its field is not 1, 2, 4 or 8 bytes";
        if (e->type == KR_CONFIG_ENUM)
            return e->choices && e->choices[0] ? NULL : "it has no choices";
        if (e->min > e->max)
            return "its minimum is above its maximum";
        if (e->size < 8 && e->max >> (e->size * 8) != 0)
            return "its maximum does not fit its field";
        return NULL;
    case KR_CONFIG_STRLIST:
        if (e->size != sizeof(char **))
            return "its field is not a char **";
        if (!kr_cfg_field_in(e->count_offset, sizeof(size_t), k->base_size))
            return "its count lies outside the struct it fills";
        return NULL;
    case KR_CONFIG_LISTEN:
        return e->size == sizeof(kr_listen_list) ? NULL : "its field is not a kr_listen_list";
    case KR_CONFIG_HOSTMAP:
        if (e->size != sizeof(kr_host_map))
            return "its field is not a kr_host_map";
        return e->def[0] ? "a domain map's default must be empty" : NULL;
    case KR_CONFIG_SECRETS:
        if (e->size != sizeof(kr_secret_map))
            return "its field is not a kr_secret_map";
        return e->def[0] ? "a secret map's default must be empty" : NULL;
    }
    return "its type is unknown";
}

/* Every key sound, no path declared twice, no key inside another: the file's "a.b" must
 * name one thing. */
static int kr_cfg_check_keys(kr_cfg_ctx *x)
{
    size_t n = KR_CFG_KEY_COUNT;
    for (size_t j = 0; j < x->cfg->section_count; j++)
        n += x->cfg->sections[j].section->key_count;
    kr_cfg_slot *all = kr_xmalloc(n * sizeof(*all));
    char shown[KR_CFG_SHOW_MAX];
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        size_t len = 0;
        kr_cfg_slot *a = &all[i];
        kr_cfg_slot_at(x->cfg, i, a, &len);
        const char *why = kr_cfg_key_problem(a, len);
        if (why) {
            rc = kr_cfg_fail(x, 0, "key %s: %s", kr_cfg_show(a->path, strlen(a->path), shown),
                             why);
            break;
        }
        for (size_t j = 0; j < i && !rc; j++) {
            const kr_cfg_slot *b = &all[j];
            size_t na = strlen(a->path), nb = strlen(b->path);
            const kr_cfg_slot *in = na > nb ? a : b, *out = na > nb ? b : a;
            size_t nout = na > nb ? nb : na;
            if (na == nb && !strcmp(a->path, b->path))
                rc = kr_cfg_fail(x, 0, "key \"%s\" is declared twice", a->path);
            else if (!strncmp(in->path, out->path, nout) && in->path[nout] == '.')
                rc = kr_cfg_fail(x, 0, "key \"%s\" is declared under \"%s\", which is itself a key",
                                 in->path, out->path);
        }
    }
    free(all);
    return rc;
}

/* ---- defaults and resolution ---- */

/* The CPUs this process may run on (a cpuset or taskset narrows them), else the online ones. */
static unsigned kr_cfg_cpu_count(void)
{
    cpu_set_t set;
    long n = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 0;
    if (n < 1)
        n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        return 1;
    if (n > KR_CFG_WORKERS_MAX)
        return KR_CFG_WORKERS_MAX;
    return (unsigned)n;
}

/* Values that the file states relative to the machine. */
static void kr_cfg_resolve(kr_config *c)
{
    if (c->workers == 0)
        c->workers = kr_cfg_cpu_count();
}

/* The default as written in the table, checked like a value from the file. */
static int kr_cfg_set_default(kr_cfg_ctx *x, const kr_cfg_slot *k)
{
    if (k->key->type == KR_CONFIG_HOSTMAP) {
        kr_cfg_hosts_clear(k); /* the only default is the empty map */
        return 0;
    }
    if (k->key->type == KR_CONFIG_SECRETS) {
        kr_cfg_secrets_clear(k); /* likewise */
        return 0;
    }
    if (!kr_cfg_is_list(k))
        return kr_cfg_set_scalar(x, k, k->key->def, strlen(k->key->def), 0);
    kr_cfg_list_clear(k);
    for (const char *s = k->key->def; *s;) {
        size_t n = strcspn(s, ",");
        char *item = kr_xstrndup(s, n);
        int rc = kr_cfg_list_add(x, k, item, n, 0);
        free(item);
        if (rc)
            return rc;
        s += n + (s[n] == ',');
    }
    if (kr_cfg_list_count(k) < k->key->min)
        return kr_cfg_fail(x, 0, "\"%s\" must not be an empty list", k->path);
    return 0;
}

/* Frees the section blocks without looking inside: they hold no allocation yet, and the
 * keys may be unsound. */
static void kr_cfg_drop_blocks(kr_config *c)
{
    for (size_t j = 0; j < c->section_count; j++)
        free(c->sections[j].data);
    free(c->sections);
    c->sections = NULL;
    c->section_count = 0;
}

/* x->cfg with a zeroed block per section and every default written, before
 * kr_cfg_resolve(); the tables are checked first. On error x->cfg is left zeroed. */
static int kr_cfg_fill_defaults(kr_cfg_ctx *x, const kr_config_section *const *sections,
                                size_t n)
{
    kr_config *c = x->cfg;
    memset(c, 0, sizeof(*c));
    x->blame = kr_cfg_blame_table;
    for (size_t j = 0; j < n; j++) {
        int rc = kr_cfg_check_section(x, sections[j], j);
        if (rc) {
            x->blame = NULL;
            return rc;
        }
    }
    if (n > 0) {
        c->sections = kr_xcalloc(n, sizeof(*c->sections));
        for (size_t j = 0; j < n; j++) {
            c->sections[j].section = sections[j];
            c->sections[j].data = kr_xcalloc(1, sections[j]->size);
        }
        c->section_count = n;
    }
    int rc = kr_cfg_check_keys(x);
    if (rc) {
        x->blame = NULL;
        kr_cfg_drop_blocks(c);
        return rc;
    }
    x->blame = kr_cfg_blame_default;
    kr_cfg_slot k;
    for (size_t i = 0; !rc && kr_cfg_slot_at(c, i, &k, NULL); i++)
        rc = kr_cfg_set_default(x, &k);
    x->blame = NULL;
    if (rc)
        kr_config_free(c);
    return rc;
}

void kr_config_defaults_sections(kr_config *out, const kr_config_section *const *sections,
                                 size_t n)
{
    char msg[512];
    kr_cfg_ctx x = {.name = "kurierd", .cfg = out, .err = msg, .errlen = sizeof(msg)};
    if (kr_cfg_fill_defaults(&x, sections, n)) {
        fprintf(stderr, "%s\n", msg);
        abort();
    }
    kr_cfg_resolve(out);
}

void kr_config_defaults(kr_config *out)
{
    kr_config_defaults_sections(out, NULL, 0);
}

/* ---- checks across keys ----
 * What one key cannot check alone, as the key it depends on may come later in the file. */

/* A secret map names the domains of other programs (component.secrets): none of them may be
 * a user domain, whose stanzas belong to accounts. */
static int kr_cfg_check_across(kr_cfg_ctx *x)
{
    kr_cfg_slot k;
    for (size_t i = 0; kr_cfg_slot_at(x->cfg, i, &k, NULL); i++) {
        if (k.key->type != KR_CONFIG_SECRETS)
            continue;
        const kr_secret_map *m = (const void *)((const char *)k.base + k.key->offset);
        for (size_t j = 0; j < m->count; j++) {
            const char *d = m->items[j].domain;
            if (!kr_config_serves(x->cfg, d))
                continue;
            char shown[KR_CFG_SHOW_MAX];
            return kr_cfg_fail(x, m->items[j].line,
                               "\"%s\" entry %s is also a user domain in \"domains\"; a "
                               "component needs a domain of its own",
                               k.path, kr_cfg_show(d, strlen(d), shown));
        }
    }
    return 0;
}

/* ---- public entry points ---- */

int kr_config_load_string_sections(const char *yaml, size_t len, const char *name,
                                   const kr_config_section *const *sections, size_t n,
                                   kr_config *out, char *err, size_t errlen)
{
    kr_config c;
    if (!name)
        name = "<string>";
    kr_cfg_ctx x = {.name = name, .cfg = &c, .err = err, .errlen = errlen};
    int rc = kr_cfg_fill_defaults(&x, sections, n);
    if (rc) {
        memset(out, 0, sizeof(*out));
        return rc;
    }
    c.path = kr_xstrdup(name);
    if (!yaml)
        yaml = "";
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        rc = kr_cfg_fail(&x, 1, "out of memory while reading YAML");
    } else {
        yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
        rc = kr_cfg_parse(&x, &parser, yaml, len);
        yaml_parser_delete(&parser);
    }
    if (!rc)
        rc = kr_cfg_check_across(&x);
    if (rc) {
        kr_config_free(&c);
        memset(out, 0, sizeof(*out));
        return rc;
    }
    kr_cfg_resolve(&c);
    *out = c;
    return 0;
}

int kr_config_load_string(const char *yaml, size_t len, const char *name, kr_config *out,
                          char *err, size_t errlen)
{
    return kr_config_load_string_sections(yaml, len, name, NULL, 0, out, err, errlen);
}

/* Whole file into memory; 0 or an errno value. */
static int kr_cfg_read_file(const char *path, char **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno;
    size_t cap = 4096, n = 0;
    char *buf = kr_xmalloc(cap + 1);
    int e = 0;
    for (;;) {
        if (n == cap) {
            if (cap >= KR_CFG_FILE_MAX) {
                e = EFBIG;
                break;
            }
            cap *= 2;
            buf = kr_xrealloc(buf, cap + 1);
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f))
                e = errno ? errno : EIO;
            break;
        }
    }
    fclose(f);
    if (e) {
        free(buf);
        return e;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

int kr_config_load_sections(const char *path, const kr_config_section *const *sections,
                            size_t n, kr_config *out, char *err, size_t errlen)
{
    char *data = NULL;
    size_t len = 0;
    errno = 0;
    int e = kr_cfg_read_file(path, &data, &len);
    if (e) {
        if (err && errlen)
            snprintf(err, errlen, "%s: cannot read: %s.", path, strerror(e));
        memset(out, 0, sizeof(*out));
        return KR_ECONFIG;
    }
    int rc = kr_config_load_string_sections(data, len, path, sections, n, out, err, errlen);
    free(data);
    return rc;
}

int kr_config_load(const char *path, kr_config *out, char *err, size_t errlen)
{
    return kr_config_load_sections(path, NULL, 0, out, err, errlen);
}

void kr_config_free(kr_config *c)
{
    if (!c)
        return;
    kr_cfg_slot k;
    for (size_t i = 0; kr_cfg_slot_at(c, i, &k, NULL); i++) {
        if (kr_cfg_is_list(&k))
            kr_cfg_list_clear(&k);
        else if (k.key->type == KR_CONFIG_HOSTMAP)
            kr_cfg_hosts_clear(&k);
        else if (k.key->type == KR_CONFIG_SECRETS)
            kr_cfg_secrets_clear(&k);
        else if (k.key->type == KR_CONFIG_STRING)
            free(*(char **)((char *)k.base + k.key->offset));
    }
    kr_cfg_drop_blocks(c);
    free(c->path);
    memset(c, 0, sizeof(*c));
}

const void *kr_config_section_get(const kr_config *c, const kr_config_section *s)
{
    for (size_t j = 0; c && j < c->section_count; j++)
        if (c->sections[j].section == s)
            return c->sections[j].data;
    return NULL;
}

char *kr_config_data_path(const kr_config *c, const char *p)
{
    if (!p)
        return NULL;
    if (p[0] == '/' || !c->data_dir || !c->data_dir[0])
        return kr_xstrdup(p);
    size_t n = strlen(c->data_dir);
    return kr_xasprintf("%s%s%s", c->data_dir, c->data_dir[n - 1] == '/' ? "" : "/", p);
}

const kr_listen_addr *kr_config_host_get(const kr_config *c, const char *domain)
{
    if (!domain)
        return NULL;
    for (size_t i = 0; i < c->s2s.hosts.count; i++)
        if (!strcmp(c->s2s.hosts.items[i].domain, domain))
            return &c->s2s.hosts.items[i].addr;
    return NULL;
}

bool kr_config_serves(const kr_config *c, const char *domain)
{
    if (!domain)
        return false;
    for (size_t i = 0; i < c->domain_count; i++)
        if (!strcmp(c->domains[i], domain))
            return true;
    return false;
}

const char *kr_config_key_name(size_t i)
{
    return i < KR_CFG_KEY_COUNT ? kr_cfg_keys[i].path : NULL;
}

const char *kr_config_key_name_sections(size_t i, const kr_config_section *const *sections,
                                        size_t n, char buf[KR_CONFIG_PATH_MAX])
{
    if (i < KR_CFG_KEY_COUNT)
        return kr_cfg_keys[i].path;
    i -= KR_CFG_KEY_COUNT;
    for (size_t j = 0; j < n; j++) {
        if (i < sections[j]->key_count) {
            snprintf(buf, KR_CONFIG_PATH_MAX, "%s.%s", sections[j]->name,
                     sections[j]->keys[i].path);
            return buf;
        }
        i -= sections[j]->key_count;
    }
    return NULL;
}
