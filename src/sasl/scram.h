/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * SCRAM (RFC 5802) with SHA-1 and SHA-256 (RFC 7677), and the -PLUS variants
 * with channel binding (RFC 5929 tls-server-end-point and tls-unique, RFC 9266
 * tls-exporter). Server and client side. Credentials are kept only as
 * salt, iteration count, StoredKey and ServerKey; verifying a login costs two
 * HMACs and one hash, never PBKDF2. kr_scram_creds_derive() runs PBKDF2 and so
 * must never run on a worker loop.
 * The server state machine takes the raw (base64-decoded) SASL messages.
 * Peer input is parsed strictly per RFC 5802 §7 and bounded (KR_SCRAM_MAX_MESSAGE,
 * KR_SCRAM_MAX_USERNAME); calls in the wrong order fail instead of crashing.
 */
#ifndef KR_SASL_SCRAM_H
#define KR_SASL_SCRAM_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

typedef enum kr_scram_hash { KR_SCRAM_SHA1 = 0, KR_SCRAM_SHA256 = 1 } kr_scram_hash;

#define KR_SCRAM_MAX_KEY 32
#define KR_SCRAM_MAX_SALT 64
/** Longest SCRAM message accepted from a peer (after base64 decoding of the SASL payload). */
#define KR_SCRAM_MAX_MESSAGE 4096
/** Longest username (after saslname unescaping) the server accepts. */
#define KR_SCRAM_MAX_USERNAME 1023
/** Highest iteration count the client accepts from a server (bounds the PBKDF2 cost a
 * server can impose). */
#define KR_SCRAM_CLIENT_MAX_ITERATIONS 1000000

typedef struct kr_scram_creds {
    kr_scram_hash hash;
    unsigned iterations;
    unsigned char salt[KR_SCRAM_MAX_SALT];
    size_t salt_len;
    unsigned char stored_key[KR_SCRAM_MAX_KEY];
    unsigned char server_key[KR_SCRAM_MAX_KEY];
} kr_scram_creds;

/** Digest length of the hash (20 or 32). */
size_t kr_scram_hash_len(kr_scram_hash h);
/** "SCRAM-SHA-1" / "SCRAM-SHA-256" (plus "-PLUS" when plus). */
const char *kr_scram_mech_name(kr_scram_hash h, bool plus);
/** Parse a mechanism name; 0 or KR_EINVAL. */
int kr_scram_mech_parse(const char *name, kr_scram_hash *h, bool *plus);

/** PBKDF2 from a prepared password (caller applies PRECIS OpaqueString). Expensive. */
void kr_scram_creds_derive(kr_scram_hash h, const char *password, size_t len,
                           const unsigned char *salt, size_t salt_len, unsigned iterations,
                           kr_scram_creds *out);
/** New random 16-byte salt, then derive. */
void kr_scram_creds_new(kr_scram_hash h, const char *password, size_t len, unsigned iterations,
                        kr_scram_creds *out);
/** Credentials for a user that does not exist: salt derived from a server secret and the
 * name (16 bytes of HMAC-SHA-256(secret, mechanism name NUL username), so the same probe sees
 * the same salt every time, and SHA-1 and SHA-256 salts differ as they do for real accounts),
 * keys random, so an attacker cannot tell unknown users from wrong passwords. */
void kr_scram_creds_fake(kr_scram_hash h, const char *username, const unsigned char *secret,
                         size_t secret_len, unsigned iterations, kr_scram_creds *out);
/** Verify a password (PLAIN) against stored credentials: PBKDF2, so expensive. The StoredKey
 * comparison is constant-time. Unusable credentials (no iterations, bad hash) give false. */
bool kr_scram_creds_check(const kr_scram_creds *c, const char *password, size_t len);

/** Channel binding data the TLS layer offers for this connection; len 0 = unavailable. */
typedef struct kr_scram_cb_data {
    unsigned char tls_exporter[32];
    size_t tls_exporter_len;
    unsigned char tls_server_end_point[64];
    size_t tls_server_end_point_len;
    unsigned char tls_unique[64];
    size_t tls_unique_len;
} kr_scram_cb_data;

/** Result of a server step: KR_SCRAM_CONTINUE with a message to send, success, or the
 * SASL failure condition of RFC 6120 §6.5 to report. RFC 6120 gives <failure/> no room for
 * the RFC 5802 server-error (e=...) message, so a failure is reported as a condition, with
 * kr_scram_server_error() for an optional <text/> or the log. */
typedef enum kr_scram_status {
    KR_SCRAM_CONTINUE = 0,
    KR_SCRAM_SUCCESS,
    KR_SCRAM_MALFORMED,      /* <malformed-request/> */
    KR_SCRAM_NOT_AUTHORIZED, /* <not-authorized/>: wrong proof, bad channel binding */
    KR_SCRAM_INVALID_AUTHZID /* <invalid-authzid/> is reported by the caller; never returned */
} kr_scram_status;

typedef struct kr_scram_server kr_scram_server;

/**
 * New server exchange. plus: the client chose a -PLUS mechanism. cb: what the connection can
 * bind to (copied; NULL outside TLS). server_advertised_plus: whether we offered -PLUS on this
 * stream (a client sending the 'y' flag then indicates a downgrade, RFC 5802 §6).
 * nonce: NULL for a random server nonce part (tests pass the RFC vector's).
 */
kr_scram_server *kr_scram_server_new(kr_scram_hash h, bool plus, bool server_advertised_plus,
                                     const kr_scram_cb_data *cb, const char *nonce);
void kr_scram_server_free(kr_scram_server *s);

/** Step 1: parse client-first-message. On KR_SCRAM_CONTINUE the caller looks up the user
 * named by kr_scram_server_username() / _authzid() and calls step 2.
 * KR_SCRAM_MALFORMED: syntax (RFC 5802 §7), limits, a reserved 'm=' extension, a -PLUS
 * mechanism without 'p=' or a plain one with 'p='.
 * KR_SCRAM_NOT_AUTHORIZED: the 'y' flag although we advertised -PLUS (downgrade, RFC 5802
 * §6), or 'p=' naming a binding type this connection cannot provide (unknown name or no
 * data; RFC 5802 §6 says fail, e=unsupported-channel-binding-type / XEP-0440). */
kr_scram_status kr_scram_server_client_first(kr_scram_server *s, const char *msg, size_t len);
/** Decoded username (saslname unescaped, not yet prepared); borrowed. */
const char *kr_scram_server_username(const kr_scram_server *s);
/** Decoded authzid or NULL; borrowed. */
const char *kr_scram_server_authzid(const kr_scram_server *s);
/** Channel binding type the client requested ("tls-exporter", ...) or NULL. */
const char *kr_scram_server_cb_type(const kr_scram_server *s);
/** Step 2: produce server-first-message from the user's credentials (appended to out; for an
 * unknown user pass kr_scram_creds_fake()). creds->hash must be the exchange's hash.
 * KR_SCRAM_CONTINUE, or KR_SCRAM_MALFORMED (nothing appended) when called out of order. */
kr_scram_status kr_scram_server_server_first(kr_scram_server *s, const kr_scram_creds *creds,
                                             kr_buf *out);
/** Step 3: check client-final-message; on success appends server-final-message (v=...).
 * KR_SCRAM_MALFORMED: syntax, limits, out of order. KR_SCRAM_NOT_AUTHORIZED: channel binding
 * (c=) mismatch, nonce mismatch, wrong proof. */
kr_scram_status kr_scram_server_client_final(kr_scram_server *s, const char *msg, size_t len,
                                             kr_buf *out);
/** After a failed step: the RFC 5802 §7 server-error-value naming why ("invalid-proof",
 * "channel-bindings-dont-match", ...), for logs or <text/>; NULL otherwise. Static storage. */
const char *kr_scram_server_error(const kr_scram_server *s);

typedef struct kr_scram_client kr_scram_client;

/** The client's SaltedPassword for one (hash, salt, iterations), cached across logins of one
 * account so a load generator runs PBKDF2 once per account, not per login. Zero-initialise;
 * kr_scram_client_final() fills it and reuses it while hash, salt and iterations match. It is
 * password-equivalent for that salt: keep it like a password, one cache per account. */
typedef struct kr_scram_salted_password {
    bool valid;
    kr_scram_hash hash;
    unsigned iterations;
    size_t salt_len;
    unsigned char salt[KR_SCRAM_MAX_SALT];
    unsigned char key[KR_SCRAM_MAX_KEY];
} kr_scram_salted_password;

/**
 * Client side (RFC 5802 §5, §6). username and authzid (NULL or "" for none) are escaped here.
 * Channel binding: cb_type names the binding ("tls-exporter", ...) with its data (cb_len > 0):
 * gs2 flag 'p=' and a -PLUS mechanism. cb_type NULL: no binding; the flag is 'y' when cb_len > 0
 * (the client could bind but the server did not offer -PLUS) and 'n' when cb_len is 0.
 * nonce NULL = random; a given nonce must be printable without ','. Never NULL (bad arguments
 * are programming errors and abort).
 */
kr_scram_client *kr_scram_client_new(kr_scram_hash h, const char *username, const char *authzid,
                                     const char *cb_type, const unsigned char *cb_data,
                                     size_t cb_len, const char *nonce);
void kr_scram_client_free(kr_scram_client *c);
/** Append client-first-message (gs2 header + client-first-message-bare) to out. */
void kr_scram_client_first(kr_scram_client *c, kr_buf *out);
/** Given server-first, append client-final (with proof) to out. The SaltedPassword comes from
 * cache when it matches (password may then be NULL), else PBKDF2 over password (prepared by
 * the caller), stored into cache when cache is not NULL. Returns 0; KR_EPROTO when
 * server-first is malformed, its nonce does not extend ours, it carries 'm=', or the
 * iteration count is outside 1..KR_SCRAM_CLIENT_MAX_ITERATIONS; KR_EINVAL when called out of
 * order or without a password and no matching cache. */
int kr_scram_client_final(kr_scram_client *c, const char *server_first, size_t len,
                          const char *password, kr_scram_salted_password *cache, kr_buf *out);
/** Verify server-final (v=...); 0 or KR_EAUTH (wrong signature, malformed, out of order, or a
 * server error e=..., then named by kr_scram_client_server_error()). */
int kr_scram_client_verify(kr_scram_client *c, const char *server_final, size_t len);
/** The server-error-value of an e= server-final, or NULL; borrowed. */
const char *kr_scram_client_server_error(const kr_scram_client *c);

#endif
