/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * kurierd's configuration: one YAML file (libyaml), checked against tables
 * of known keys with types and bounds: the core's table (kr_cfg_keys in
 * config.c, filling kr_config) and one kr_config_section per feature module
 * that has options (filling the module's own struct, which the kr_config owns
 * and kr_config_section_get() returns). Unknown keys, wrong types and values
 * out of range stop loading with "FILE:LINE: one clear sentence".
 * Every option and its default is documented in examples/kurierd.yml and
 * docs/configuration.md; keep those in step with the tables.
 * A loaded kr_config owns all its strings, lists and section blocks;
 * kr_config_free() releases them.
 * To add a core option: its field in kr_config, one line in kr_cfg_keys.
 * A module adds a section: a struct of its own, a static table of keys written
 * with KR_CONFIG_*(that struct, path relative to the section, ...), a
 * KR_CONFIG_SECTION(name, struct, table), passed to kr_config_load_sections().
 * Either way, the key with its default and a comment goes into the example file
 * and the reference (test_config checks both).
 */
#ifndef KR_CORE_CONFIG_H
#define KR_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/log.h"

typedef struct kr_listen_addr {
    char host[64]; /* IPv4 or IPv6 literal, without brackets */
    uint16_t port;
} kr_listen_addr;

typedef struct kr_listen_list {
    kr_listen_addr *items;
    size_t count;
} kr_listen_list;

/** One entry of a static domain -> address map (s2s.hosts). */
typedef struct kr_host_entry {
    char *domain;        /* prepared (lower-case) domain */
    kr_listen_addr addr; /* where its server listens (STARTTLS) */
} kr_host_entry;

typedef struct kr_host_map {
    kr_host_entry *items;
    size_t count;
} kr_host_map;

/** One entry of a domain -> shared secret map (component.secrets). */
typedef struct kr_secret_entry {
    char *domain; /* prepared (lower-case) domain */
    char *secret; /* non-empty, no NUL; never logged, wiped when freed */
    size_t line;  /* of its key in the file (0: not from a file), for later checks */
} kr_secret_entry;

typedef struct kr_secret_map {
    kr_secret_entry *items;
    size_t count;
} kr_secret_map;

/* ---- key tables ----
 * A table of kr_config_key describes where each key of the file goes in one C struct: the
 * core's table (kr_cfg_keys in config.c) fills kr_config, a module's section (below) the
 * module's own struct. Entries are written with the KR_CONFIG_* macros below, which take the
 * struct type and refuse to compile when the field does not have the type the key stores.
 * Defaults are written as they would be in the file. */

/** What a key holds, and the C type of the field it fills. */
typedef enum kr_config_type {
    KR_CONFIG_STRING,  /* char *; .min = least length; values limited to .choices if set */
    KR_CONFIG_BOOL,    /* bool: true | false | yes | no */
    KR_CONFIG_UINT,    /* unsigned integer of .size bytes, .min ... .max */
    KR_CONFIG_ENUM,    /* unsigned integer of .size bytes: index of the value in .choices */
    KR_CONFIG_STRLIST, /* char ** at .offset, size_t count at .count_offset; .check each entry */
    KR_CONFIG_LISTEN,  /* kr_listen_list; .check (if set) gets each entry's host as text */
    KR_CONFIG_HOSTMAP, /* kr_host_map: a mapping of domain names to "IP:port" */
    KR_CONFIG_SECRETS, /* kr_secret_map: a mapping of domain names to non-empty strings; no
                        * domain may also be a user domain in "domains" (checked after the
                        * whole file); values never appear in messages */
} kr_config_type;

/** Checks one list entry and prepares it in place (it is the loader's copy); NULL, or why it
 * is invalid: a phrase that follows the quoted entry in the message ("is not a ..."). */
typedef const char *(*kr_config_check_cb)(char *s);

typedef struct kr_config_key {
    const char *path; /* dotted: "limits.max_depth" */
    kr_config_type type;
    size_t offset; /* of the field in the table's struct */
    size_t size;   /* of the field */
    size_t count_offset;
    unsigned long long min; /* UINT: least value; STRING: least length; lists: least count */
    unsigned long long max; /* UINT: greatest value */
    const char *const *choices; /* NULL-terminated */
    kr_config_check_cb check;
    const char *def; /* in file syntax; for lists, entries separated by ',' */
} kr_config_key;

/* offsetof(T, f), which compiles only when T's field f has the given type. */
#define KR_CONFIG_AT(T, f, type)                                                                  \
    .offset = _Generic(((T *)0)->f, type: offsetof(T, f)), .size = sizeof(((T *)0)->f)
#define KR_CONFIG_AT_UINT(T, f)                                                                   \
    .offset = _Generic(((T *)0)->f, unsigned char: offsetof(T, f),                              \
                       unsigned short: offsetof(T, f), unsigned int: offsetof(T, f),              \
                       unsigned long: offsetof(T, f), unsigned long long: offsetof(T, f)),        \
    .size = sizeof(((T *)0)->f)

/* A non-empty string; one that may be empty ("" = not set); one of the words in ch. */
#define KR_CONFIG_STR(T, p, f, d)                                                                 \
    {.path = p, .type = KR_CONFIG_STRING, KR_CONFIG_AT(T, f, char *), .min = 1, .def = d}
#define KR_CONFIG_OPT(T, p, f, d)                                                                 \
    {.path = p, .type = KR_CONFIG_STRING, KR_CONFIG_AT(T, f, char *), .min = 0, .def = d}
#define KR_CONFIG_WORD(T, p, f, ch, d)                                                            \
    {.path = p, .type = KR_CONFIG_STRING, KR_CONFIG_AT(T, f, char *), .min = 1, .choices = ch,   \
     .def = d}
#define KR_CONFIG_FLAG(T, p, f, d)                                                                \
    {.path = p, .type = KR_CONFIG_BOOL, KR_CONFIG_AT(T, f, bool), .def = d}
/* An unsigned field of any size, lo ... hi (hi must fit the field). */
#define KR_CONFIG_NUM(T, p, f, lo, hi, d)                                                         \
    {.path = p, .type = KR_CONFIG_UINT, KR_CONFIG_AT_UINT(T, f), .min = lo, .max = hi, .def = d}
/* The index of the value in ch (NULL-terminated), into an enum or unsigned field. Not
 * type-checked: C leaves an enum's underlying type to the compiler. */
#define KR_CONFIG_PICK(T, p, f, ch, d)                                                            \
    {.path = p, .type = KR_CONFIG_ENUM, .offset = offsetof(T, f), .size = sizeof(((T *)0)->f), \
     .choices = ch, .def = d}
/* char **f with size_t n entries, at least `least`, each passed to chk (may be NULL). */
#define KR_CONFIG_NAMES(T, p, f, n, least, chk, d)                                                \
    {.path = p, .type = KR_CONFIG_STRLIST, KR_CONFIG_AT(T, f, char **),                          \
     .count_offset = _Generic(((T *)0)->n, size_t: offsetof(T, n)), .min = least, .check = chk,  \
     .def = d}
#define KR_CONFIG_ADDRS(T, p, f, d)                                                               \
    {.path = p, .type = KR_CONFIG_LISTEN, KR_CONFIG_AT(T, f, kr_listen_list), .def = d}
/* Listen addresses whose hosts chk accepts (it gets inet_ntop's text: "127.0.0.1", "::1"). */
#define KR_CONFIG_ADDRS_CHECKED(T, p, f, chk, d)                                                  \
    {.path = p, .type = KR_CONFIG_LISTEN, KR_CONFIG_AT(T, f, kr_listen_list), .check = chk,     \
     .def = d}
/* Always empty by default. */
#define KR_CONFIG_HOSTS(T, p, f)                                                                  \
    {.path = p, .type = KR_CONFIG_HOSTMAP, KR_CONFIG_AT(T, f, kr_host_map), .def = ""}
/* Domain -> secret; always empty by default. */
#define KR_CONFIG_SECRETS(T, p, f)                                                                \
    {.path = p, .type = KR_CONFIG_SECRETS, KR_CONFIG_AT(T, f, kr_secret_map), .def = ""}

/**
 * A module's configuration section: the keys under one top-level name, filling one struct
 * of `size` bytes. Key paths are relative to the name ("max_messages" under "offline"), the
 * offsets are into the module's struct (write the keys with KR_CONFIG_*(that struct, ...)).
 * Several sections may share a name, a core section's name too ("limits"), as long as no
 * dotted path is declared twice and no key's path is the start of another's; a section
 * named like a core key ("workers") is refused. Sections have static storage: a kr_config
 * keeps pointers to the ones it was loaded with.
 */
typedef struct kr_config_section {
    const char *name; /* top-level key: lower-case letters, digits and '_' */
    const kr_config_key *keys;
    size_t key_count;
    size_t size; /* of the struct the keys' offsets are into */
} kr_config_section;

/* A section over a static array of keys filling struct T. */
#define KR_CONFIG_SECTION(n, T, k)                                                                \
    {.name = n, .keys = k, .key_count = sizeof(k) / sizeof((k)[0]), .size = sizeof(T)}

/** Room for any dotted key path ("offline.max_messages") with its NUL; longer ones in a
 * section are refused at load. */
#define KR_CONFIG_PATH_MAX 128

/** The values of one section in the kr_config loaded with it. */
typedef struct kr_config_block {
    const kr_config_section *section; /* borrowed (static) */
    void *data;                       /* section->size bytes, owned, strings and lists too */
} kr_config_block;

typedef struct kr_config {
    char *path;            /* file it was loaded from */
    char **domains;        /* prepared (lower-case) domain names served */
    size_t domain_count;
    unsigned workers;      /* 0 in the file = number of online CPUs, resolved at load */
    kr_log_level log_level;
    char *data_dir;        /* absolute or relative to the process cwd */

    struct {
        char *certificate; /* PEM chain; relative paths are relative to data_dir */
        char *key;
    } tls;

    struct {
        kr_listen_list starttls;   /* default 127.0.0.1:5222 */
        kr_listen_list direct_tls; /* default 127.0.0.1:5223 (XEP-0368) */
    } c2s;

    struct {
        bool plain;               /* PLAIN inside TLS; default true */
        unsigned scram_iterations; /* for new credentials; default 10000, min 4096 */
        unsigned max_failures;     /* failed attempts on one stream before it is closed; default 3 */
    } sasl;

    struct {
        char *driver;      /* "sqlite" */
        char *sqlite_path; /* default "kurier.db", relative to data_dir */
        unsigned threads;  /* storage lanes (threads with their own connection); default 4 */
    } storage;

    struct {
        size_t max_stanza_bytes; /* default 262144 */
        unsigned max_depth;      /* default 64 */
        unsigned max_attributes; /* default 64 */
        unsigned auth_timeout_s; /* seconds to finish TLS+SASL+bind; default 30 */
        unsigned idle_timeout_s; /* close a silent authenticated stream; default 600 */
        size_t max_send_queue_bytes; /* per connection; default 1048576 */
        size_t bytes_per_second;     /* read rate of an authenticated stream; default 1048576 */
        size_t bytes_per_second_unauthenticated; /* before SASL success; default 65536 */
        size_t burst_bytes;          /* token bucket size (both rates); default 262144 */
        unsigned connections_per_ip; /* open connections from one IP address; default 256 */
        unsigned login_failures_per_ip;      /* failures that start an IP cool-down; default 30 */
        unsigned login_failures_per_account; /* failures that start an account cool-down; 10 */
        unsigned login_failure_window_s;     /* a threshold's worth decays over this; 600 */
        unsigned login_cooldown_s;           /* logins refused for this long; default 300 */
    } limits;

    struct {
        bool enabled;              /* federation on; false: remote domains bounce; default false */
        kr_listen_list starttls;   /* inbound, STARTTLS (RFC 6120 §5); default 127.0.0.1:5269 */
        kr_listen_list direct_tls; /* inbound, direct TLS (XEP-0368); default 127.0.0.1:5270 */
        kr_host_map hosts;         /* static domain -> address map, consulted before DNS */
        bool require_valid_certificates; /* false: dialback when the certificate fails; true */
        char *ca_file;             /* extra trust anchors (PEM); "" = system store only */
        char *dialback_secret;     /* XEP-0185 secret; "" = random per process start */
        unsigned connect_timeout_s; /* connect + TLS + authentication; default 10 */
        unsigned idle_timeout_s;   /* close a silent s2s stream; default 600 */
        unsigned queue_max_stanzas; /* per remote domain while connecting; default 1000 */
        char *dnssec_trust_anchor; /* root key file for the resolver; "" = no validation */
        char *resolver_config;     /* unbound.conf-syntax file for the resolver; "" = none */
    } s2s;

    struct {
        kr_listen_list direct_tls; /* XEP-0114 streams over direct TLS; default none */
        kr_listen_list plain;      /* XEP-0114 in plaintext, loopback addresses only; none */
        kr_secret_map secrets;     /* component domain -> shared secret; default empty */
    } component;

    /* One per section passed at load, in that order; read with kr_config_section_get(). */
    kr_config_block *sections;
    size_t section_count;
} kr_config;

/**
 * Check a served domain and prepare it in place: lower-cased, a final root dot dropped
 * (RFC 7622 §3.2), or an IPv4 address or [IPv6] literal. NULL, or why it is invalid.
 * A kr_config_check_cb, for lists of domains such as a module's service domains.
 */
const char *kr_config_domain_check(char *s);

/**
 * Load and check a file. On error returns KR_ECONFIG, writes one line "PATH:LINE: sentence."
 * (or "PATH: cannot read: reason.") to err, and leaves *out zeroed (kr_config_free is harmless).
 */
int kr_config_load(const char *path, kr_config *out, char *err, size_t errlen);
/** Same from memory; `name` stands for the path in messages. */
int kr_config_load_string(const char *yaml, size_t len, const char *name, kr_config *out,
                          char *err, size_t errlen);
/**
 * kr_config_load() with the modules' sections besides the core keys (n may be 0). Each
 * section's block in *out holds its defaults, overridden by what the file says. A mistake in
 * the sections themselves (a path declared twice, a default out of its own bounds, ...) is
 * a bug in kurierd, not in the file; it fails every load with "PATH: bug in kurierd's
 * configuration tables: ...", which names the key.
 */
int kr_config_load_sections(const char *path, const kr_config_section *const *sections,
                            size_t n, kr_config *out, char *err, size_t errlen);
/** Same from memory; `name` stands for the path in messages. */
int kr_config_load_string_sections(const char *yaml, size_t len, const char *name,
                                   const kr_config_section *const *sections, size_t n,
                                   kr_config *out, char *err, size_t errlen);
/** Fill with the defaults (what an empty file gives, with domain "localhost"). */
void kr_config_defaults(kr_config *out);
/** Same with the given sections' defaults; aborts on a mistake in the sections (see
 * kr_config_load_sections), which have no file to report it against. */
void kr_config_defaults_sections(kr_config *out, const kr_config_section *const *sections,
                                 size_t n);
/** Frees every string, list and section block; leaves *c zeroed. */
void kr_config_free(kr_config *c);
/** The section's filled struct (borrowed from c), or NULL when c was not loaded with it. */
const void *kr_config_section_get(const kr_config *c, const kr_config_section *s);
/** Resolve a path relative to data_dir (absolute paths returned as copies). Caller frees. */
char *kr_config_data_path(const kr_config *c, const char *p);
/** The s2s.hosts entry for a prepared domain, or NULL. */
const kr_listen_addr *kr_config_host_get(const kr_config *c, const char *domain);
/** True when the domain (already prepared) is one we serve. */
bool kr_config_serves(const kr_config *c, const char *domain);
/** Dotted path of the i-th known key ("limits.max_depth"), NULL past the last; static storage.
 *  For tools and tests that check the example file and the documentation cover every key. */
const char *kr_config_key_name(size_t i);
/** Same over the core keys followed by the keys of the given sections ("offline.enabled");
 *  a section key's path is written to buf (cut to fit if its table is wrong), a core key's
 *  is static. */
const char *kr_config_key_name_sections(size_t i, const kr_config_section *const *sections,
                                        size_t n, char buf[KR_CONFIG_PATH_MAX]);

#endif
