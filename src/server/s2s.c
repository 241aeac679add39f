/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Federation: start-up, the way into the outbound queues, bounces and the
 * address look-up seam (see s2s.h). A stanza for another domain is
 * serialized once (as a jabber:client stanza without an xmlns, which reads
 * as jabber:server on an s2s stream, RFC 6120 §4.8.3) and handed to the
 * worker that owns the (local, remote) pair, chosen by hashing the pair so
 * no lock or shared table is needed. Bounces re-parse the serialized bytes:
 * they are rare, and the queues then hold only one copy of each stanza.
 */
#include "server/s2s.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/base64.h"
#include "core/error.h"
#include "core/log.h"
#include "net/certid.h"
#include "net/resolver.h"
#include "server/random.h"
#include "server/router.h"
#include "server/s2s_internal.h"
#include "xml/parser.h"
#include "xml/serialize.h"

static int kr_s2s_check_resolver(kr_server *srv);

int kr_s2s_start(kr_server *srv)
{
    const kr_config *cfg = srv->cfg;
    if (!cfg->s2s.enabled)
        return 0;
    char err[512];
    char *cert = kr_config_data_path(cfg, cfg->tls.certificate);
    char *key = kr_config_data_path(cfg, cfg->tls.key);
    char *ca = cfg->s2s.ca_file[0] ? kr_config_data_path(cfg, cfg->s2s.ca_file) : NULL;
    kr_s2s *s = kr_xcalloc(1, sizeof(*s));
    srv->s2s = s;
    int rc = 0;
    s->client = kr_tls_ctx_new_client(cert, key, ca, err, sizeof(err));
    if (!s->client) {
        KR_LOG(KR_LOG_ERROR, NULL, "s2s: %s", err);
        rc = -1;
    }
    s->server = rc ? NULL : kr_tls_ctx_new_server(cert, key, err, sizeof(err));
    if (!rc && (!s->server || kr_tls_ctx_verify_peers(s->server, ca, err, sizeof(err)) != 0)) {
        KR_LOG(KR_LOG_ERROR, NULL, "s2s: %s", err);
        rc = -1;
    }
    free(cert);
    free(key);
    free(ca);
    if (!rc && kr_s2s_check_resolver(srv) != 0)
        rc = -1;
    if (cfg->s2s.dialback_secret[0]) {
        kr_dialback_secret_prepare(cfg->s2s.dialback_secret, strlen(cfg->s2s.dialback_secret),
                                   s->secret);
    } else {
        unsigned char rnd[32];
        RAND_bytes(rnd, sizeof(rnd));
        kr_dialback_secret_prepare(rnd, sizeof(rnd), s->secret);
    }
    return rc;
}

void kr_s2s_stop(kr_server *srv)
{
    kr_s2s *s = srv->s2s;
    if (!s)
        return;
    kr_tls_ctx_free(s->client);
    kr_tls_ctx_free(s->server);
    memset(s, 0, sizeof(*s));
    free(s);
    srv->s2s = NULL;
}

void kr_s2s_on_connection(uv_stream_t *listener, int status)
{
    kr_listen_handle *lh = listener->data;
    if (status < 0) {
        KR_LOG(KR_LOG_WARN, NULL, "s2s listener error: %s", uv_strerror(status));
        return;
    }
    kr__s2s_in_accept(lh->worker, listener, lh->direct_tls);
}

void kr_s2s_shutdown_worker(kr_worker *w)
{
    kr_worker_state *ws = kr_worker_state_get(w);
    ws->s2s_stopped = true;
    if (!ws->srv->s2s)
        return;
    kr__s2s_out_shutdown(w);
    kr__s2s_in_shutdown(w);
}

/* ---- shared helpers ---------------------------------------------------------------------- */

unsigned kr__s2s_owner(const kr_server *srv, const char *local, const char *remote)
{
    uint32_t h = 2166136261u; /* FNV-1a over "local remote" */
    for (const char *p = local; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    h = (h ^ ' ') * 16777619u;
    for (const char *p = remote; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % srv->worker_count;
}

void kr__s2s_stream_id(char out[33])
{
    unsigned char rnd[16];
    kr_random_public(rnd, sizeof(rnd));
    kr_hex_encode(out, rnd, sizeof(rnd));
}

bool kr__s2s_cert_ok(kr_conn *c, const char *domain, char *why, size_t whylen)
{
    if (!c->tls || !domain)
        return false;
    if (!kr_tls_peer_verified(c->tls, why, whylen))
        return false;
    kr_certid_match m = kr_certid_check(kr_tls_peer_cert(c->tls), domain);
    if (m == KR_CERTID_NONE) {
        snprintf(why, whylen, "the certificate does not name %s", domain);
        return false;
    }
    KR_LOG(KR_LOG_DEBUG, c->log_ctx, "certificate verifies for %s (%s)", domain,
           kr_certid_match_name(m));
    return true;
}

int kr__s2s_peer_auth(kr_conn *c, const char *domain, const kr_tlsa *tlsa, size_t ntlsa, char *why,
                      size_t whylen)
{
    if (!c->tls || !kr_tlsa_has_usable(tlsa, ntlsa))
        return kr__s2s_cert_ok(c, domain, why, whylen) ? 1 : 0;
    /* RFC 7673 §4 / RFC 7671: usable TLSA records decide; PKIX is not consulted. */
    int m = kr_tlsa_match(tlsa, ntlsa, kr_tls_peer_cert(c->tls), kr_tls_peer_chain(c->tls));
    if (m == KR_TLSA_USAGE_DANE_EE) {
        KR_LOG(KR_LOG_DEBUG, c->log_ctx, "certificate of %s matches its DANE-EE record", domain);
        return 1;
    }
    if (m == KR_TLSA_USAGE_DANE_TA && kr_tls_peer_cert(c->tls) &&
        kr_certid_check(kr_tls_peer_cert(c->tls), domain) != KR_CERTID_NONE) {
        KR_LOG(KR_LOG_DEBUG, c->log_ctx, "certificate of %s chains to its DANE-TA record", domain);
        return 1;
    }
    snprintf(why, whylen, "%s",
             m == KR_TLSA_USAGE_DANE_TA ? "the certificate chains to the DANE-TA record but "
                                          "does not name the domain"
                                        : "the certificate matches none of the DANE TLSA records");
    return -1;
}

bool kr__s2s_static_host(kr_server *srv, const char *domain, struct sockaddr_storage *out)
{
    const kr_listen_addr *a = kr_config_host_get(srv->cfg, domain);
    memset(out, 0, sizeof(*out));
    if (!a)
        return false;
    if (strchr(a->host, ':'))
        uv_ip6_addr(a->host, a->port, (struct sockaddr_in6 *)out);
    else
        uv_ip4_addr(a->host, a->port, (struct sockaddr_in *)out);
    return true;
}

kr_resolver *kr__s2s_resolver_new(kr_server *srv, uv_loop_t *loop, char *err, size_t errlen)
{
    const kr_config *cfg = srv->cfg;
    char *ta = cfg->s2s.dnssec_trust_anchor[0]
                   ? kr_config_data_path(cfg, cfg->s2s.dnssec_trust_anchor)
                   : NULL;
    kr_resolver *r = kr_resolver_new(loop, ta, err, errlen);
    free(ta);
    if (!r)
        return NULL;
    kr_resolver_set_timeout(r, cfg->s2s.connect_timeout_s * 1000u);
    if (cfg->s2s.resolver_config[0]) {
        char *path = kr_config_data_path(cfg, cfg->s2s.resolver_config);
        int rc = kr_resolver_load_config(r, path);
        if (rc != 0) {
            snprintf(err, errlen, "s2s.resolver_config %s: %s", path, kr_resolver_strerror(rc));
            free(path);
            kr_resolver_free(r);
            return NULL;
        }
        free(path);
    }
    return r;
}

/* libunbound reads the trust anchor only at its first query; check now that the file holds
 * at least one DS or DNSKEY record (zone file syntax: owner [TTL] [class] type data). */
static bool kr_s2s_trust_anchor_ok(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "s2s.dnssec_trust_anchor %s: %s", path, strerror(errno));
        return false;
    }
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f)) {
        char *semi = strchr(line, ';');
        if (semi)
            *semi = '\0';
        char *save = NULL;
        for (char *tok = strtok_r(line, " \t\r\n", &save); tok && !found;
             tok = strtok_r(NULL, " \t\r\n", &save))
            found = strcmp(tok, "DS") == 0 || strcmp(tok, "DNSKEY") == 0;
    }
    fclose(f);
    if (!found)
        snprintf(err, errlen, "s2s.dnssec_trust_anchor %s: no DS or DNSKEY record in it", path);
    return found;
}

/* Build one resolver at start so that a bad trust anchor or resolver file stops start-up with
 * a clear line instead of bouncing every remote stanza later. */
static int kr_s2s_check_resolver(kr_server *srv)
{
    uv_loop_t loop;
    char err[512] = "";
    const kr_config *cfg = srv->cfg;
    if (cfg->s2s.dnssec_trust_anchor[0]) {
        char *ta = kr_config_data_path(cfg, cfg->s2s.dnssec_trust_anchor);
        bool ok = kr_s2s_trust_anchor_ok(ta, err, sizeof(err));
        free(ta);
        if (!ok) {
            KR_LOG(KR_LOG_ERROR, NULL, "s2s: DNS resolver: %s", err);
            return -1;
        }
    }
    if (uv_loop_init(&loop) != 0)
        return -1;
    kr_resolver *r = kr__s2s_resolver_new(srv, &loop, err, sizeof(err));
    if (r)
        kr_resolver_free(r);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    if (!r) {
        KR_LOG(KR_LOG_ERROR, NULL, "s2s: DNS resolver: %s", err);
        return -1;
    }
    return 0;
}

/* ---- bounces ----------------------------------------------------------------------------- */

typedef struct kr_s2s_bounce_ctx {
    kr_server *srv;
    kr_worker *w;
    const char *condition;
    const char *text;
} kr_s2s_bounce_ctx;

static void kr_s2s_bounce_stanza(void *ud, kr_xml_node *e, kr_arena *a)
{
    kr_s2s_bounce_ctx *b = ud;
    const char *bad;
    kr_stanza *st = kr_stanza_new(a, e, b->srv->hosts, NULL, &bad);
    if (!bad && st->from_host)
        kr_send_error(b->srv, b->w, st, b->condition, b->text);
    kr_stanza_unref(st);
}

void kr__s2s_bounce(kr_server *srv, kr_worker *w, const kr_rbuf *buf, const char *condition,
                    const char *text)
{
    static const char head[] =
        "<stream:stream xmlns='" KR_NS_CLIENT "' xmlns:stream='" KR_NS_STREAM "'>";
    kr_s2s_bounce_ctx ctx = {srv, w, condition, text};
    kr_xml_limits limits = {buf->len + 64, 1024, 1024}; /* our own output: already bounded */
    kr_xml_parser_cbs cbs = {NULL, kr_s2s_bounce_stanza, NULL};
    kr_xml_parser *p = kr_xml_parser_new(&limits, &cbs, &ctx);
    if (kr_xml_parser_feed(p, head, sizeof(head) - 1) == 0)
        kr_xml_parser_feed(p, buf->data, buf->len);
    kr_xml_parser_free(p);
}

/* ---- routing into the outbound queues ----------------------------------------------------- */

void kr__s2s_send_bytes(kr_server *srv, kr_worker *w, const char *local, const char *remote,
                        kr_rbuf *buf)
{
    if (!srv->s2s) {
        kr__s2s_bounce(srv, w, buf, "remote-server-not-found",
                       "Federation with other servers is not enabled");
        return;
    }
    kr__s2s_msg *m = kr_xmalloc(sizeof(*m));
    m->local = kr_xstrdup(local);
    m->remote = kr_xstrdup(remote);
    m->buf = kr_rbuf_ref(buf);
    unsigned owner = kr__s2s_owner(srv, local, remote);
    if (w && w->index == owner)
        kr__s2s_out_submit(w, m, 0);
    else
        kr_worker_post(&srv->workers[owner], kr__s2s_out_submit, m, 0);
}

void kr_s2s_route(kr_server *srv, kr_worker *w, kr_stanza *st)
{
    if (!srv->s2s) {
        kr_send_error(srv, w, st, "remote-server-not-found",
                      "Federation with other servers is not enabled");
        return;
    }
    if (!st->from.domain || !st->from_host || !st->to.domain)
        return; /* only our own users' and domains' stanzas leave over s2s */
    kr_rbuf *buf = kr_stanza_serialize(st);
    kr__s2s_send_bytes(srv, w, st->from.domain, st->to.domain, buf);
    kr_rbuf_unref(buf);
}
