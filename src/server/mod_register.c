/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * XEP-0077 In-Band Registration. Before authentication (KR_PHASE_PREAUTH),
 * when registration.enabled: the form (§3.1, <instructions/>, <username/>,
 * <password/>) and account creation, limited to registration.per_ip_per_hour
 * new accounts per peer address; disabled, both get <service-unavailable/>.
 * The stream feature <register xmlns='http://jabber.org/features/iq-register'/>
 * is offered before authentication only when enabled. After authentication,
 * always: password change (§3.3) and account removal (§3.2): the user's
 * contacts are unsubscribed first (RFC 6121 §2.5.2, §3.3: unsubscribe where
 * the user was subscribed, unsubscribed where the contact was), the account
 * and everything it owns is deleted, the iq is answered, then every session of
 * the account ends with a <not-authorized/> stream error. Owns the rate-limit
 * table (peer IP -> times of the accounts it created in the last hour), shared
 * by all workers under one mutex and pruned as it is used. The handlers wait
 * (modules.h): PBKDF2 on the CPU pool, then the store on the account's lane;
 * passwords are wiped from memory once used.
 */
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/hmap.h"
#include "core/log.h"
#include "server/modules.h"
#include "server/roster_store.h"
#include "server/router.h"
#include "server/sessions.h"

#define KR_NS_REGISTER "jabber:iq:register"
#define KR_NS_REGISTER_FEATURE "http://jabber.org/features/iq-register"
#define KR_REGISTER_WINDOW_MS (3600u * 1000u)
#define KR_REGISTER_PRUNE_EVERY_MS (60u * 1000u)

/* The "registration" section of the configuration. */
typedef struct kr_register_config {
    bool enabled;             /* in-band registration of new accounts */
    unsigned per_ip_per_hour; /* new accounts per peer address per hour */
} kr_register_config;

static const kr_config_key kr_register_keys[] = {
    KR_CONFIG_FLAG(kr_register_config, "enabled", enabled, "false"),
    KR_CONFIG_NUM(kr_register_config, "per_ip_per_hour", per_ip_per_hour, 1, 10000, "5"),
};

static const kr_config_section kr_register_section =
    KR_CONFIG_SECTION("registration", kr_register_config, kr_register_keys);

static const kr_register_config *kr_register_cfg; /* set at init, read-only afterwards */

/* ---- rate limit: new accounts per peer address per hour ------------------------------------- */

typedef struct kr_reg_ip {
    uint64_t *stamps; /* oldest first */
    size_t n;
} kr_reg_ip;

static struct {
    pthread_mutex_t lock;
    kr_strmap ips; /* peer IP -> kr_reg_ip */
    uint64_t last_prune;
} kr_register;

static uint64_t kr_register_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void kr_reg_ip_prune(kr_reg_ip *r, uint64_t now)
{
    size_t old = 0;
    while (old < r->n && now - r->stamps[old] >= KR_REGISTER_WINDOW_MS)
        old++;
    memmove(r->stamps, r->stamps + old, (r->n - old) * sizeof(*r->stamps));
    r->n -= old;
}

static void kr_reg_ip_free(kr_reg_ip *r)
{
    free(r->stamps);
    free(r);
}

/* Drop the addresses with nothing in the window (at most once a minute). */
static void kr_register_prune_all(uint64_t now)
{
    if (now - kr_register.last_prune < KR_REGISTER_PRUNE_EVERY_MS)
        return;
    kr_register.last_prune = now;
    kr_strmap *m = &kr_register.ips;
    char **gone = kr_xcalloc(m->count ? m->count : 1, sizeof(*gone));
    size_t n = 0;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].key)
            continue;
        kr_reg_ip *r = m->slots[i].value;
        kr_reg_ip_prune(r, now);
        if (r->n == 0)
            gone[n++] = kr_xstrdup(m->slots[i].key);
    }
    for (size_t i = 0; i < n; i++) {
        kr_reg_ip_free(kr_strmap_del(m, gone[i]));
        free(gone[i]);
    }
    free(gone);
}

/* Take one of ip's registrations for this hour; false when none is left. */
static bool kr_register_reserve(const char *ip, unsigned limit, uint64_t now)
{
    pthread_mutex_lock(&kr_register.lock);
    kr_register_prune_all(now);
    kr_reg_ip *r = kr_strmap_get(&kr_register.ips, ip);
    if (r)
        kr_reg_ip_prune(r, now);
    bool ok = (r ? r->n : 0) < limit;
    if (ok) {
        if (!r) {
            r = kr_xcalloc(1, sizeof(*r));
            kr_strmap_put(&kr_register.ips, ip, r);
        }
        r->stamps = kr_xrealloc(r->stamps, (r->n + 1) * sizeof(*r->stamps));
        r->stamps[r->n++] = now;
    }
    pthread_mutex_unlock(&kr_register.lock);
    return ok;
}

/* Give back a reservation whose registration failed. */
static void kr_register_release(const char *ip, uint64_t stamp)
{
    pthread_mutex_lock(&kr_register.lock);
    kr_reg_ip *r = kr_strmap_get(&kr_register.ips, ip);
    for (size_t i = r ? r->n : 0; i-- > 0;) {
        if (r->stamps[i] != stamp)
            continue;
        memmove(r->stamps + i, r->stamps + i + 1, (r->n - i - 1) * sizeof(*r->stamps));
        r->n--;
        break;
    }
    pthread_mutex_unlock(&kr_register.lock);
}

/* ---- replies ------------------------------------------------------------------------------ */

/* Before authentication the client has no address: answer on its stream, without 'to'. */
static void kr_register_preauth_reply(kr_handler_ctx *ctx, const char *cond, const char *text,
                                      kr_xml_node *payload)
{
    kr_session *s = ctx->origin;
    if (!s)
        return;
    kr_arena *a = ctx->st->arena;
    kr_xml_node *iq = kr_xml_elem_new(a, KR_NS_CLIENT, "iq");
    kr_xml_attr_set(a, iq, "type", cond ? "error" : "result");
    kr_xml_attr_set(a, iq, "id", ctx->st->id);
    if (cond) {
        kr_xml_node *err = kr_xml_elem_add(a, iq, KR_NS_CLIENT, "error");
        kr_xml_attr_set(a, err, "type", kr_stanza_error_type(cond));
        kr_xml_elem_add(a, err, KR_NS_STANZAS_ERR, cond);
        if (text) {
            kr_xml_node *t = kr_xml_elem_add(a, err, KR_NS_STANZAS_ERR, "text");
            kr_xml_attr_set_ns(a, t, KR_NS_XML, "lang", "en");
            kr_xml_text_add(a, t, text, strlen(text));
        }
    } else if (payload) {
        kr_xml_child_append(iq, payload);
    }
    kr_session_deliver_elem(s, iq);
}

/* §3.1 the form; for a logged-in user, §3.2's <registered/> with the username. */
static kr_xml_node *kr_register_form(kr_arena *a, const char *username)
{
    kr_xml_node *q = kr_xml_elem_new(a, KR_NS_REGISTER, "query");
    if (username)
        kr_xml_elem_add(a, q, KR_NS_REGISTER, "registered");
    static const char instr[] = "Choose a username and password to register with this server.";
    kr_xml_text_add(a, kr_xml_elem_add(a, q, KR_NS_REGISTER, "instructions"), instr,
                    sizeof(instr) - 1);
    kr_xml_node *u = kr_xml_elem_add(a, q, KR_NS_REGISTER, "username");
    if (username)
        kr_xml_text_add(a, u, username, strlen(username));
    kr_xml_elem_add(a, q, KR_NS_REGISTER, "password");
    return q;
}

/* ---- jobs ----------------------------------------------------------------------------------- */

typedef struct kr_reg_job {
    kr_server *srv;
    char *jid;          /* the account's bare JID */
    char *password;     /* prepared; wiped */
    size_t password_len;
    kr_account acct;    /* credentials made from it (CPU pool) */
    const kr_wait_ops *then; /* what stores them once made */
    char *ip;           /* creation: the reservation to give back on failure */
    uint64_t stamp;
    int rc;
    kr_roster_item *items; /* removal: the roster */
    size_t n;
} kr_reg_job;

static void kr_reg_job_free(void *arg)
{
    kr_reg_job *j = arg;
    if (j->password) {
        OPENSSL_cleanse(j->password, j->password_len);
        free(j->password);
    }
    OPENSSL_cleanse(&j->acct, sizeof(j->acct));
    free(j->jid);
    free(j->ip);
    kr_roster_items_free(j->items, j->n);
    free(j);
}

static kr_reg_job *kr_reg_job_new(kr_handler_ctx *ctx, const char *jid)
{
    kr_reg_job *j = kr_xcalloc(1, sizeof(*j));
    j->srv = ctx->srv;
    j->jid = kr_xstrdup(jid);
    return j;
}

/* CPU pool: PBKDF2 (expensive, so never on a storage lane or a worker). */
static void kr_reg_hash_job(kr_store *unused, void *arg)
{
    kr_reg_job *j = arg;
    kr_account_from_password(&j->acct, j->password, j->password_len,
                             j->srv->cfg->sasl.scram_iterations);
    OPENSSL_cleanse(j->password, j->password_len);
}

static void kr_reg_create_job(kr_store *store, void *arg)
{
    kr_reg_job *j = arg;
    j->rc = kr_store_account_create(store, j->jid, &j->acct);
}

static void kr_reg_update_job(kr_store *store, void *arg)
{
    kr_reg_job *j = arg;
    j->rc = kr_store_account_update(store, j->jid, &j->acct);
}

static void kr_reg_roster_job(kr_store *store, void *arg)
{
    kr_reg_job *j = arg;
    uint64_t version;
    j->rc = kr_roster_list(store, j->jid, &j->items, &j->n, &version);
}

static void kr_reg_delete_job(kr_store *store, void *arg)
{
    kr_reg_job *j = arg;
    j->rc = kr_store_account_delete(store, j->jid);
    if (j->rc == 0)
        kr_modules_user_deleted(j->srv->cfg, j->jid);
}

static const char *kr_reg_store_condition(int rc)
{
    return rc == KR_ELOCKED ? "resource-constraint" : "internal-server-error";
}

/* ---- creation (before authentication) ------------------------------------------------------ */

static kr_verdict kr_register_created(kr_handler_ctx *ctx, void *arg)
{
    kr_reg_job *j = arg;
    if (j->rc == 0) {
        KR_LOG(KR_LOG_INFO, NULL, "registered account %s", j->jid);
        kr_register_preauth_reply(ctx, NULL, NULL, NULL);
        return KR_HANDLED;
    }
    kr_register_release(j->ip, j->stamp);
    if (j->rc == KR_EEXIST) {
        kr_register_preauth_reply(ctx, "conflict", "That username is already taken", NULL);
    } else {
        KR_LOG(KR_LOG_ERROR, NULL, "registering %s: %s", j->jid, kr_strerror(j->rc));
        kr_register_preauth_reply(ctx, kr_reg_store_condition(j->rc), NULL, NULL);
    }
    return KR_HANDLED;
}

static const kr_wait_ops kr_reg_create_ops = {kr_reg_create_job, kr_register_created,
                                              kr_reg_job_free};

/* The credentials are made: store them (create or update, j->then) on the account's lane. */
static kr_verdict kr_register_hashed(kr_handler_ctx *ctx, void *arg)
{
    kr_reg_job *j = arg;
    return kr_handler_wait(ctx, j->jid, j->then, j);
}

static const kr_wait_ops kr_reg_hash_ops = {kr_reg_hash_job, kr_register_hashed,
                                            kr_reg_job_free};

/* Wipe the text of an element (a password) in the stanza's arena and take it out of the tree,
 * so an error reply that carries the payload back does not carry it. */
static void kr_register_wipe(kr_xml_node *e)
{
    kr_xml_node *t = e ? e->children : NULL;
    while (t) {
        kr_xml_node *next = t->next;
        if (t->type == KR_XML_TEXT) {
            OPENSSL_cleanse((char *)t->text, t->text_len);
            kr_xml_node_unlink(t);
        }
        t = next;
    }
}

/* The <password/> of the query, prepared (RFC 8265 OpaqueString) into a heap copy the caller
 * wipes; every copy in the stanza's arena is wiped here. NULL when missing or invalid. */
static char *kr_register_password(kr_stanza *st, size_t *len)
{
    kr_xml_node *p = kr_xml_child_get(st->payload, KR_NS_REGISTER, "password");
    if (!p)
        return NULL;
    const char *raw = kr_xml_text_get(st->arena, p);
    size_t raw_len = strlen(raw);
    const char *prepared = NULL;
    char *out = NULL;
    if (raw_len && kr_precis_opaque(st->arena, raw, raw_len, &prepared) == 0) {
        *len = strlen(prepared);
        out = kr_xstrdup(prepared);
        OPENSSL_cleanse((char *)prepared, *len);
    }
    OPENSSL_cleanse((char *)raw, raw_len);
    kr_register_wipe(p);
    return out;
}

static void kr_register_pw_free(char *pw, size_t len)
{
    if (pw) {
        OPENSSL_cleanse(pw, len);
        free(pw);
    }
}

static kr_verdict kr_register_create(kr_handler_ctx *ctx)
{
    kr_stanza *st = ctx->st;
    kr_session *s = ctx->origin;
    kr_xml_node *u = kr_xml_child_get(st->payload, KR_NS_REGISTER, "username");
    const char *name = u ? kr_xml_text_get(st->arena, u) : "";
    size_t pw_len = 0;
    char *pw = kr_register_password(st, &pw_len);
    const char *local;
    const char *cond = NULL, *text = NULL;
    uint64_t now = kr_register_now_ms();
    if (!*name || !pw) {
        cond = "not-acceptable"; /* §3.1: empty password or missing data */
        text = "Both a username and a non-empty password are required";
    } else if (kr_jid_prep_local(st->arena, name, strlen(name), &local) != 0) {
        cond = "not-acceptable";
        text = "That username is not allowed";
    } else if (!kr_register_reserve(s->peer_ip, kr_register_cfg->per_ip_per_hour, now)) {
        cond = "resource-constraint";
        text = "Too many accounts were registered from your address; try again later";
    }
    if (cond) {
        kr_register_pw_free(pw, pw_len);
        kr_register_preauth_reply(ctx, cond, text, NULL);
        return KR_HANDLED;
    }
    kr_reg_job *j = kr_reg_job_new(ctx, kr_arena_printf(st->arena, "%s@%s", local, s->domain));
    j->password = pw;
    j->password_len = pw_len;
    j->ip = kr_xstrdup(s->peer_ip);
    j->stamp = now;
    j->then = &kr_reg_create_ops;
    return kr_handler_wait(ctx, NULL, &kr_reg_hash_ops, j);
}

static kr_verdict kr_register_preauth(kr_handler_ctx *ctx)
{
    kr_stanza *st = ctx->st;
    if (!ctx->origin)
        return KR_HANDLED;
    if (!kr_register_cfg->enabled) {
        kr_register_wipe(kr_xml_child_get(st->payload, KR_NS_REGISTER, "password"));
        kr_register_preauth_reply(ctx, "service-unavailable",
                                  "In-band registration is not enabled on this server", NULL);
    } else if (st->type == KR_TYPE_GET) {
        kr_register_preauth_reply(ctx, NULL, NULL, kr_register_form(st->arena, NULL));
    } else if (kr_xml_child_get(st->payload, KR_NS_REGISTER, "remove")) {
        kr_register_preauth_reply(ctx, "not-authorized", "Log in to remove an account", NULL);
    } else {
        return kr_register_create(ctx);
    }
    return KR_HANDLED;
}

/* ---- password change (after authentication) ----------------------------------------------- */

static kr_verdict kr_register_password_done(kr_handler_ctx *ctx, void *arg)
{
    kr_reg_job *j = arg;
    if (j->rc == 0) {
        KR_LOG(KR_LOG_INFO, NULL, "password changed for %s", j->jid);
        kr_reply(ctx, kr_stanza_iq_result(ctx->st));
    } else {
        KR_LOG(KR_LOG_ERROR, NULL, "password change for %s: %s", j->jid, kr_strerror(j->rc));
        kr_bounce(ctx, kr_reg_store_condition(j->rc), NULL);
    }
    return KR_HANDLED;
}

static const kr_wait_ops kr_reg_update_ops = {kr_reg_update_job, kr_register_password_done,
                                              kr_reg_job_free};


/* §3.3: <username/> must be the account's own, <password/> the new one. */
static kr_verdict kr_register_change_password(kr_handler_ctx *ctx)
{
    kr_stanza *st = ctx->st;
    kr_session *s = ctx->origin;
    kr_xml_node *u = kr_xml_child_get(st->payload, KR_NS_REGISTER, "username");
    const char *name = u ? kr_xml_text_get(st->arena, u) : "";
    size_t pw_len = 0;
    char *pw = kr_register_password(st, &pw_len);
    const char *local = NULL;
    size_t own_len = strcspn(s->bare, "@");
    const char *cond = NULL, *text = NULL;
    if (!pw) {
        cond = "bad-request";
        text = "A non-empty <password/> is required";
    } else if (!*name || kr_jid_prep_local(st->arena, name, strlen(name), &local) != 0 ||
               strlen(local) != own_len || strncmp(local, s->bare, own_len) != 0) {
        cond = "not-allowed";
        text = "The username must be your own";
    }
    if (cond) {
        kr_register_pw_free(pw, pw_len);
        kr_bounce(ctx, cond, text);
        return KR_HANDLED;
    }
    kr_reg_job *j = kr_reg_job_new(ctx, s->bare);
    j->password = pw;
    j->password_len = pw_len;
    j->then = &kr_reg_update_ops;
    return kr_handler_wait(ctx, NULL, &kr_reg_hash_ops, j);
}

/* ---- account removal (after authentication) ------------------------------------------------- */

/* kr_session_call: the account is gone (XEP-0077 §3.2). */
static void kr_register_end_session(kr_session *s, void *unused)
{
    if (s)
        kr_session_close(s, "not-authorized", NULL);
}

static kr_verdict kr_register_deleted(kr_handler_ctx *ctx, void *arg)
{
    kr_reg_job *j = arg;
    kr_server *srv = ctx->srv;
    if (j->rc != 0 && j->rc != KR_ENOENT) {
        KR_LOG(KR_LOG_ERROR, NULL, "removing %s: %s", j->jid, kr_strerror(j->rc));
        kr_bounce(ctx, kr_reg_store_condition(j->rc), NULL);
        return KR_HANDLED;
    }
    KR_LOG(KR_LOG_INFO, NULL, "removed account %s", j->jid);
    kr_reply(ctx, kr_stanza_iq_result(ctx->st));
    /* §3.2: then end every session of the account; after the reply above. */
    size_t n = kr_sessions_list(srv->sessions, j->jid, NULL, 0);
    kr_session_ref *refs = kr_xcalloc(n ? n : 1, sizeof(*refs));
    n = kr_sessions_list(srv->sessions, j->jid, refs, n);
    for (size_t i = 0; i < n; i++)
        kr_session_call(srv, ctx->worker, &refs[i], kr_register_end_session, NULL);
    free(refs);
    return KR_HANDLED;
}

static const kr_wait_ops kr_reg_delete_ops = {kr_reg_delete_job, kr_register_deleted,
                                              kr_reg_job_free};

/* The roster is read: unsubscribe the contacts (RFC 6121 §3.3.2 and §3.2.2 as for a roster
 * item removal, §2.5.2), then delete the account. The presences are sent as if the user had
 * sent them (only the contact's side runs: its modules update the contact's roster). */
static kr_verdict kr_register_roster_read(kr_handler_ctx *ctx, void *arg)
{
    kr_reg_job *j = arg;
    if (j->rc != 0) {
        KR_LOG(KR_LOG_ERROR, NULL, "roster of %s: %s", j->jid, kr_strerror(j->rc));
        kr_bounce(ctx, kr_reg_store_condition(j->rc), NULL);
        return KR_HANDLED;
    }
    for (size_t i = 0; i < j->n; i++) {
        const kr_roster_item *it = &j->items[i];
        if ((it->sub & KR_SUB_TO) || it->ask)
            kr_send_presence(ctx->srv, ctx->worker, j->jid, it->contact, "unsubscribe");
        if ((it->sub & KR_SUB_FROM) || it->pending_in)
            kr_send_presence(ctx->srv, ctx->worker, j->jid, it->contact, "unsubscribed");
    }
    return kr_handler_wait(ctx, j->jid, &kr_reg_delete_ops, j);
}

static const kr_wait_ops kr_reg_roster_ops = {kr_reg_roster_job, kr_register_roster_read,
                                              kr_reg_job_free};

static kr_verdict kr_register_account(kr_handler_ctx *ctx)
{
    kr_stanza *st = ctx->st;
    kr_session *s = ctx->origin;
    if (!s || !s->full)
        return KR_PASS;
    if (st->type == KR_TYPE_GET) {
        size_t own_len = strcspn(s->bare, "@");
        kr_xml_node *iq = kr_stanza_iq_result(st);
        kr_xml_child_append(iq, kr_register_form(st->arena,
                                                 kr_arena_strndup(st->arena, s->bare, own_len)));
        kr_reply(ctx, iq);
        return KR_HANDLED;
    }
    if (kr_xml_child_get(st->payload, KR_NS_REGISTER, "remove")) {
        kr_register_wipe(kr_xml_child_get(st->payload, KR_NS_REGISTER, "password"));
        kr_reg_job *j = kr_reg_job_new(ctx, s->bare);
        return kr_handler_wait(ctx, j->jid, &kr_reg_roster_ops, j);
    }
    return kr_register_change_password(ctx);
}

/* ---- module ----------------------------------------------------------------------------- */

static void kr_register_features(kr_server *srv, bool authenticated, kr_buf *out)
{
    if (!authenticated && kr_register_cfg->enabled)
        kr_buf_puts(out, "<register xmlns='" KR_NS_REGISTER_FEATURE "'/>");
}

static int kr_register_init(kr_server *srv)
{
    kr_register_cfg = kr_config_section_get(srv->cfg, &kr_register_section);
    pthread_mutex_init(&kr_register.lock, NULL);
    kr_strmap_init(&kr_register.ips);
    kr_register.last_prune = kr_register_now_ms();
    return 0;
}

static void kr_register_fini(kr_server *srv)
{
    kr_strmap *m = &kr_register.ips;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key)
            kr_reg_ip_free(m->slots[i].value);
    kr_strmap_clear(m);
    pthread_mutex_destroy(&kr_register.lock);
}

static const kr_handler_spec kr_register_handlers[] = {
    {KR_PHASE_PREAUTH, KR_STANZA_IQ, KR_TYPE_GET | KR_TYPE_SET, KR_ADDR_HOST, KR_NS_REGISTER,
     "query", 0, kr_register_preauth, 0},
    {KR_PHASE_IN, KR_STANZA_IQ, KR_TYPE_GET | KR_TYPE_SET, KR_ADDR_HOST | KR_ADDR_SELF,
     KR_NS_REGISTER, "query", 0, kr_register_account, 0},
};

static const char *const kr_register_disco[] = {KR_NS_REGISTER, NULL};

const kr_module_def kr_mod_register = {
    .name = "register",
    .config = &kr_register_section,
    .handlers = kr_register_handlers,
    .handler_count = sizeof(kr_register_handlers) / sizeof(kr_register_handlers[0]),
    .disco_features = kr_register_disco,
    .stream_features = kr_register_features,
    .init = kr_register_init,
    .fini = kr_register_fini,
};
