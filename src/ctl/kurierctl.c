/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * kurierctl, the operator's tool: account administration straight on the
 * store named by kurierd's configuration (adduser, passwd, deluser, list).
 * It owns the loaded configuration, the open store and the password buffers
 * of one run; every password buffer, the prepared copy included, is wiped
 * before it is released, and a password is never taken from argv (it would
 * show in ps and shell history). JIDs are prepared per RFC 7622 and must be
 * bare, with a local part and a domain the configuration serves; passwords
 * are prepared with PRECIS OpaqueString (RFC 8265 §4.2) exactly as SASL
 * prepares them at login, then turned into SCRAM credentials (RFC 5802,
 * RFC 7677) for SHA-1 and SHA-256. Every failure is one line on stderr
 * starting with "kurierctl: " and a distinct exit status (docs/kurierctl.md).
 * To add a command, add a function and a line to `commands`, then document
 * it in usage() and docs/kurierctl.md.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "core/alloc.h"
#include "core/arena.h"
#include "core/config.h"
#include "core/error.h"
#include "server/modules.h"
#include "store/store.h"
#include "xmpp/jid.h"

enum {
    KR_CTL_EXIT_OK = 0,
    KR_CTL_EXIT_USAGE = 1,
    KR_CTL_EXIT_CONFIG = 2,
    KR_CTL_EXIT_EXISTS = 3,
    KR_CTL_EXIT_NOENT = 4,
    KR_CTL_EXIT_JID = 5,
    KR_CTL_EXIT_LOCKED = 6,
    KR_CTL_EXIT_STORE = 7,
    KR_CTL_EXIT_PASSWORD = 8,
};

/* Longest password accepted, in bytes before preparation. */
#define KR_CTL_PASSWORD_MAX 1024

typedef struct ctl {
    kr_config cfg;
    bool cfg_loaded;
    char *store_path;
    kr_store *store;
    kr_arena *arena;
    const char *jid; /* prepared bare JID argument, when the command takes one */
} ctl;

typedef struct command {
    const char *name;
    bool takes_jid;
    int (*run)(ctl *c);
} command;

static void usage(FILE *out)
{
    fputs("Usage: kurierctl -c CONFIG COMMAND [ARGS]\n"
          "\n"
          "Manage the accounts of a Kurier server directly in its store.\n"
          "\n"
          "Commands:\n"
          "  adduser JID   create an account; asks for its password\n"
          "  passwd JID    give an account a new password\n"
          "  deluser JID   delete an account and everything stored for it\n"
          "  list          print every account, one bare JID per line\n"
          "\n"
          "Options:\n"
          "  -c, --config CONFIG  kurierd's configuration file (required)\n"
          "  -h, --help           show this help and exit\n"
          "\n"
          "A JID must be bare (local@domain) and its domain one the configuration serves.\n"
          "Passwords are never taken as arguments: on a terminal they are asked twice\n"
          "without echo; otherwise the first line of standard input is the password.\n"
          "\n"
          "Exit status:\n"
          "  0  success\n"
          "  1  usage error\n"
          "  2  configuration error\n"
          "  3  the account already exists\n"
          "  4  no such account\n"
          "  5  invalid JID, or a domain the configuration does not serve\n"
          "  6  the store is locked by another process\n"
          "  7  other storage or output error\n"
          "  8  bad password input (empty, too long, mismatched, or not allowed)\n",
          out);
}

static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print one error line and return the exit status to use. */
static int fail(int code, const char *fmt, ...)
{
    va_list ap;
    fputs("kurierctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

static int store_fail(const ctl *c, int rc, const char *what)
{
    if (rc == KR_ELOCKED)
        return fail(KR_CTL_EXIT_LOCKED, "the store %s is locked by another process", c->store_path);
    return fail(KR_CTL_EXIT_STORE, "%s failed in %s: %s", what, c->store_path,
                *kr_store_errmsg(c->store) ? kr_store_errmsg(c->store) : kr_strerror(rc));
}

/* --- password input ------------------------------------------------------------------------ */

static struct termios saved_termios;

static void restore_termios_and_reraise(int sig)
{
    tcsetattr(STDIN_FILENO, TCSANOW, &saved_termios);
    signal(sig, SIG_DFL);
    raise(sig);
}

static const int echo_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
#define ECHO_SIGNAL_COUNT (sizeof echo_signals / sizeof echo_signals[0])

/* Read up to a newline or end of input, byte by byte so no stdio buffer keeps a copy.
 * 0 (buf NUL-terminated, *len set, newline and a preceding CR removed), 1 at end of input
 * with nothing read, 2 when longer than cap-1, -1 on a read error. */
static int read_line(char *buf, size_t cap, size_t *len)
{
    size_t n = 0;
    bool any = false;
    for (;;) {
        char ch;
        ssize_t r = read(STDIN_FILENO, &ch, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        any = true;
        if (ch == '\n')
            break;
        if (n + 1 >= cap) {
            OPENSSL_cleanse(&ch, sizeof ch);
            return 2;
        }
        buf[n++] = ch;
        OPENSSL_cleanse(&ch, sizeof ch);
    }
    if (!any)
        return 1;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    *len = n;
    return 0;
}

/* Prompt on stderr and read one line from the terminal with echo off; the terminal
 * is restored even if a signal ends the program meanwhile. */
static int read_tty_line(const char *prompt, char *buf, size_t cap, size_t *len)
{
    if (tcgetattr(STDIN_FILENO, &saved_termios) != 0)
        return -1;
    struct sigaction sa, old[ECHO_SIGNAL_COUNT];
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = restore_termios_and_reraise;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < ECHO_SIGNAL_COUNT; i++)
        sigaction(echo_signals[i], &sa, &old[i]);

    struct termios quiet = saved_termios;
    quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK);
    fputs(prompt, stderr);
    fflush(stderr);
    int rc = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0 ? read_line(buf, cap, len) : -1;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_termios);
    fputc('\n', stderr);

    for (size_t i = 0; i < ECHO_SIGNAL_COUNT; i++)
        sigaction(echo_signals[i], &old[i], NULL);
    return rc;
}

static int password_read_error(int rc)
{
    if (rc == 1)
        return fail(KR_CTL_EXIT_PASSWORD, "no password given on standard input");
    if (rc == 2)
        return fail(KR_CTL_EXIT_PASSWORD, "password is longer than %d bytes", KR_CTL_PASSWORD_MAX);
    return fail(KR_CTL_EXIT_PASSWORD, "cannot read the password: %s", strerror(errno));
}

/* Read the raw password into pw (twice on a terminal). 0 or an exit status. */
static int read_password(char *pw, size_t *len)
{
    if (!isatty(STDIN_FILENO)) {
        int rc = read_line(pw, KR_CTL_PASSWORD_MAX + 1, len);
        return rc == 0 ? 0 : password_read_error(rc);
    }
    char again[KR_CTL_PASSWORD_MAX + 1];
    size_t again_len = 0;
    int rc = read_tty_line("Password: ", pw, KR_CTL_PASSWORD_MAX + 1, len);
    if (rc == 0 && *len > 0)
        rc = read_tty_line("Password (again): ", again, sizeof again, &again_len);
    int ret = 0;
    if (rc != 0)
        ret = password_read_error(rc);
    else if (*len > 0 && (again_len != *len || memcmp(pw, again, *len) != 0))
        ret = fail(KR_CTL_EXIT_PASSWORD, "the passwords do not match");
    OPENSSL_cleanse(again, sizeof again);
    return ret;
}

/* Read, check and prepare a password, then derive both credential sets into acct. */
static int obtain_account(const ctl *c, kr_account *acct)
{
    char pw[KR_CTL_PASSWORD_MAX + 1];
    size_t len = 0;
    int ret = read_password(pw, &len);
    if (ret == 0 && len == 0)
        ret = fail(KR_CTL_EXIT_PASSWORD, "empty password refused");
    if (ret == 0 && memchr(pw, '\0', len))
        ret = fail(KR_CTL_EXIT_PASSWORD, "password contains a NUL byte");

    kr_arena *a = kr_arena_new(2 * KR_CTL_PASSWORD_MAX);
    const char *prepared = NULL;
    if (ret == 0 && (kr_precis_opaque(a, pw, len, &prepared) != 0 || !*prepared))
        ret = fail(KR_CTL_EXIT_PASSWORD, "password refused: it is not a valid PRECIS "
                                         "OpaqueString (RFC 8265), e.g. it has control characters");
    OPENSSL_cleanse(pw, sizeof pw);
    if (ret == 0)
        kr_account_from_password(acct, prepared, strlen(prepared), c->cfg.sasl.scram_iterations);
    if (prepared)
        OPENSSL_cleanse((char *)prepared, strlen(prepared));
    kr_arena_free(a);
    return ret;
}

/* --- commands ------------------------------------------------------------------------------ */

static int cmd_adduser(ctl *c)
{
    kr_account acct;
    int rc = kr_store_account_get(c->store, c->jid, &acct);
    if (rc == 0)
        return fail(KR_CTL_EXIT_EXISTS, "account %s already exists", c->jid);
    if (rc != KR_ENOENT)
        return store_fail(c, rc, "looking up the account");
    int ret = obtain_account(c, &acct);
    if (ret != 0)
        return ret;
    rc = kr_store_account_create(c->store, c->jid, &acct);
    OPENSSL_cleanse(&acct, sizeof acct);
    if (rc == KR_EEXIST)
        return fail(KR_CTL_EXIT_EXISTS, "account %s already exists", c->jid);
    if (rc < 0)
        return store_fail(c, rc, "creating the account");
    printf("created account %s\n", c->jid);
    return KR_CTL_EXIT_OK;
}

static int cmd_passwd(ctl *c)
{
    kr_account acct;
    int rc = kr_store_account_get(c->store, c->jid, &acct);
    if (rc == KR_ENOENT)
        return fail(KR_CTL_EXIT_NOENT, "no such account: %s", c->jid);
    if (rc < 0)
        return store_fail(c, rc, "looking up the account");
    int ret = obtain_account(c, &acct);
    if (ret != 0)
        return ret;
    rc = kr_store_account_update(c->store, c->jid, &acct);
    OPENSSL_cleanse(&acct, sizeof acct);
    if (rc == KR_ENOENT)
        return fail(KR_CTL_EXIT_NOENT, "no such account: %s", c->jid);
    if (rc < 0)
        return store_fail(c, rc, "changing the password");
    printf("changed the password of %s\n", c->jid);
    return KR_CTL_EXIT_OK;
}

static int cmd_deluser(ctl *c)
{
    int rc = kr_store_account_delete(c->store, c->jid);
    if (rc == KR_ENOENT)
        return fail(KR_CTL_EXIT_NOENT, "no such account: %s", c->jid);
    if (rc < 0)
        return store_fail(c, rc, "deleting the account");
    kr_modules_user_deleted(&c->cfg, c->jid);
    printf("deleted account %s\n", c->jid);
    return KR_CTL_EXIT_OK;
}

static void print_jid(void *ud, const char *jid)
{
    puts(jid);
}

static int cmd_list(ctl *c)
{
    int rc = kr_store_account_list(c->store, print_jid, NULL);
    if (rc < 0)
        return store_fail(c, rc, "listing the accounts");
    return KR_CTL_EXIT_OK;
}

static const command commands[] = {
    {"adduser", true, cmd_adduser},
    {"passwd", true, cmd_passwd},
    {"deluser", true, cmd_deluser},
    {"list", false, cmd_list},
};

/* --- set-up -------------------------------------------------------------------------------- */

/* Prepare the JID argument into c->jid; 0 or an exit status. */
static int check_jid(ctl *c, const char *arg)
{
    kr_jid j;
    if (kr_jid_parse(c->arena, arg, &j) != 0)
        return fail(KR_CTL_EXIT_JID, "'%s' is not a valid JID", arg);
    if (j.resource)
        return fail(KR_CTL_EXIT_JID, "%s has a resource; give a bare JID (local@domain)", arg);
    if (!j.local)
        return fail(KR_CTL_EXIT_JID, "%s has no local part; give a bare JID (local@domain)", arg);
    if (!kr_config_serves(&c->cfg, j.domain))
        return fail(KR_CTL_EXIT_JID, "domain %s is not served by this server (see 'domains' in %s)",
                    j.domain, c->cfg.path ? c->cfg.path : "the configuration");
    c->jid = kr_jid_format_bare(c->arena, &j);
    return 0;
}

static int open_store(ctl *c)
{
    if (strcmp(c->cfg.storage.driver, "sqlite") != 0)
        return fail(KR_CTL_EXIT_CONFIG, "storage driver '%s' is not supported by kurierctl",
                    c->cfg.storage.driver);
    if (mkdir(c->cfg.data_dir, 0700) != 0) {
        struct stat st;
        if (errno != EEXIST)
            return fail(KR_CTL_EXIT_STORE, "cannot create the data directory %s: %s",
                        c->cfg.data_dir, strerror(errno));
        if (stat(c->cfg.data_dir, &st) != 0 || !S_ISDIR(st.st_mode))
            return fail(KR_CTL_EXIT_STORE, "the data directory %s is not a directory",
                        c->cfg.data_dir);
    }
    c->store_path = kr_config_data_path(&c->cfg, c->cfg.storage.sqlite_path);
    char err[512] = "";
    int rc = kr_store_open(c->store_path, &c->store, err, sizeof err);
    if (rc == KR_ELOCKED)
        return fail(KR_CTL_EXIT_LOCKED, "the store %s is locked by another process", c->store_path);
    if (rc < 0)
        return fail(KR_CTL_EXIT_STORE, "cannot open the store: %s", err);
    return 0;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print one usage error line pointing at --help; returns the usage exit status. */
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("kurierctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see kurierctl --help)\n", stderr);
    return KR_CTL_EXIT_USAGE;
}

/* Parse options; fills *config and *argi (first non-option). 0, -1 after --help, or status. */
static int parse_options(int argc, char **argv, const char **config, int *argi)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":c:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            *config = optarg;
            break;
        case 'h':
            usage(stdout);
            return -1;
        case ':':
            return usage_error("option %s needs a value", argv[optind - 1]);
        default:
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    *argi = optind;
    return 0;
}

static int run(ctl *c, int argc, char **argv)
{
    const char *config = NULL;
    int argi = 0;
    int ret = parse_options(argc, argv, &config, &argi);
    if (ret != 0)
        return ret < 0 ? KR_CTL_EXIT_OK : ret;
    if (argi >= argc)
        return usage_error("no command given");
    const command *cmd = NULL;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[argi], commands[i].name) == 0)
            cmd = &commands[i];
    if (!cmd)
        return usage_error("unknown command '%s'", argv[argi]);
    int nargs = argc - argi - 1;
    if (cmd->takes_jid && nargs != 1)
        return usage_error("%s takes exactly one JID", cmd->name);
    if (!cmd->takes_jid && nargs != 0)
        return usage_error("%s takes no arguments", cmd->name);
    if (!config)
        return usage_error("no configuration file given: use -c CONFIG");

    char err[512] = "";
    const kr_config_section *const *sections;
    size_t nsections = kr_modules_config_sections(&sections);
    if (kr_config_load_sections(config, sections, nsections, &c->cfg, err, sizeof err) != 0)
        return fail(KR_CTL_EXIT_CONFIG, "%s", *err ? err : "cannot load the configuration");
    c->cfg_loaded = true;
    c->arena = kr_arena_new(1024);
    if (cmd->takes_jid && (ret = check_jid(c, argv[argi + 1])) != 0)
        return ret;
    if ((ret = open_store(c)) != 0)
        return ret;
    ret = cmd->run(c);
    if (ret == KR_CTL_EXIT_OK && (fflush(stdout) != 0 || ferror(stdout)))
        ret = fail(KR_CTL_EXIT_STORE, "cannot write the output: %s", strerror(errno));
    return ret;
}

int main(int argc, char **argv)
{
    ctl c;
    memset(&c, 0, sizeof c);
    int ret = run(&c, argc, argv);
    kr_store_close(c.store);
    free(c.store_path);
    if (c.arena)
        kr_arena_free(c.arena);
    if (c.cfg_loaded)
        kr_config_free(&c.cfg);
    return ret;
}
