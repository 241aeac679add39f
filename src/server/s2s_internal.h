/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * What s2s.c, s2s_out.c and s2s_in.c share (kr__ names, see s2s.h). The
 * messages between workers (kr__s2s_msg, kr__s2s_verify) are heap objects
 * whose ownership moves with kr_worker_post(); the function they are posted
 * to frees them.
 */
#ifndef KR_SERVER_S2S_INTERNAL_H
#define KR_SERVER_S2S_INTERNAL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "net/dane.h"
#include "net/tls.h"
#include "server/conn.h"
#include "server/dialback.h"
#include "server/server.h"
#include "xml/tree.h"

#define KR_NS_SERVER "jabber:server"

struct kr_s2s {
    kr_tls_ctx *client; /* outbound streams: presents our certificate, verifies the peer */
    kr_tls_ctx *server; /* inbound streams: asks for the peer's certificate */
    char secret[KR_DIALBACK_HEX]; /* prepared dialback secret (XEP-0185) */
};

/** A stanza for the outbound stream (local -> remote) on the pair's worker. */
typedef struct kr__s2s_msg {
    char *local;
    char *remote;
    kr_rbuf *buf; /* one reference */
} kr__s2s_msg;

/** Outcome of a dialback verification (XEP-0220 §2.3). */
typedef enum kr__db_result {
    KR_DB_VALID,
    KR_DB_INVALID,
    KR_DB_UNREACHABLE, /* the authoritative server could not be reached */
} kr__db_result;

/** A <db:verify/> to send over the outbound stream local -> remote, and its answer, posted
 * back to the inbound stream (reply_worker, reply_conn) that received the <db:result/>. */
typedef struct kr__s2s_verify {
    char *local;  /* our domain: the receiving server */
    char *remote; /* the claimed originating domain */
    char *id;     /* stream id of the inbound stream */
    char *key;
    unsigned reply_worker;
    uint64_t reply_conn;
    kr__db_result result;
} kr__s2s_verify;

void kr__s2s_verify_free(kr__s2s_verify *v);

/** Index of the worker that owns the outbound stream local -> remote. */
unsigned kr__s2s_owner(const kr_server *srv, const char *local, const char *remote);
/** A fresh random stream id (32 hex digits). */
void kr__s2s_stream_id(char out[33]);
/** Append the stream header of an s2s stream (jabber:server, dialback namespace declared).
 * id and to may be NULL. */
void kr__s2s_header(kr_buf *b, const char *from, const char *to, const char *id);
/** Queue a serialized stanza (its 'from' on our domain `local`, 'to' on `remote`) for the
 * outbound stream of that pair, on the pair's worker; bounces it when federation is off.
 * Borrows buf. */
void kr__s2s_send_bytes(kr_server *srv, kr_worker *w, const char *local, const char *remote,
                        kr_rbuf *buf);
/** Bounce a serialized stanza back to its local sender with a stanza error. */
void kr__s2s_bounce(kr_server *srv, kr_worker *w, const kr_rbuf *buf, const char *condition,
                    const char *text);
/** Rename jabber:server to jabber:client in a received stanza, so that modules and c2s see
 * what local stanzas look like. */
void kr__s2s_to_client_ns(kr_xml_node *e);
/** True when the peer's certificate chain verifies and names domain (RFC 6125). */
bool kr__s2s_cert_ok(kr_conn *c, const char *domain, char *why, size_t whylen);
/** Authenticate the server we connected to: with usable DANE TLSA records (DNSSEC-secure
 * target) they decide, else kr__s2s_cert_ok. 1 authenticated, 0 not (why says it), -1 the
 * TLSA records exist and none match: the peer must be refused (RFC 7673). */
int kr__s2s_peer_auth(kr_conn *c, const char *domain, const kr_tlsa *tlsa, size_t ntlsa,
                      char *why, size_t whylen);

/** The s2s.hosts address of domain in out: true, or false when the map has no entry (then
 * DNS is asked). */
bool kr__s2s_static_host(kr_server *srv, const char *domain, struct sockaddr_storage *out);
/** A resolver on loop set up from the config (s2s.dnssec_trust_anchor, s2s.resolver_config,
 * lookups capped at s2s.connect_timeout_s), or NULL with one sentence in err. */
struct kr_resolver *kr__s2s_resolver_new(kr_server *srv, uv_loop_t *loop, char *err,
                                         size_t errlen);

/* s2s_out.c: kr_worker_fn's, run on the pair's owner worker; they take their argument. */
void kr__s2s_out_submit(kr_worker *w, void *msg, uint64_t unused);
void kr__s2s_out_verify(kr_worker *w, void *verify, uint64_t unused);
void kr__s2s_out_shutdown(kr_worker *w);

/* s2s_in.c */
void kr__s2s_in_accept(kr_worker *w, uv_stream_t *listener, bool direct_tls);
/** kr_worker_fn: the answer to a verification, for inbound connection conn_id. */
void kr__s2s_in_verified(kr_worker *w, void *verify, uint64_t conn_id);
void kr__s2s_in_shutdown(kr_worker *w);

#endif
