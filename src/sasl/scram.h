/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * SCRAM (RFC 5802) with SHA-1 and SHA-256 (RFC 7677), and the -PLUS variants
 * with channel binding (RFC 5929 tls-server-end-point and tls-unique, RFC 9266
 * tls-exporter). Server and client side. Credentials are kept only as
 * salt, iteration count, StoredKey and ServerKey; verifying a login costs two
 * HMACs and one hash, never PBKDF2. kr_scram_creds_derive() runs PBKDF2 and so
 * must never run on a worker loop.
 * The server state machine takes the raw (base64-decoded) SASL messages.
 */
#ifndef KR_SASL_SCRAM_H
#define KR_SASL_SCRAM_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

typedef enum kr_scram_hash { KR_SCRAM_SHA1 = 0, KR_SCRAM_SHA256 = 1 } kr_scram_hash;

#define KR_SCRAM_MAX_KEY 32
#define KR_SCRAM_MAX_SALT 64

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
 * name, keys random, so an attacker cannot tell unknown users from wrong passwords. */
void kr_scram_creds_fake(kr_scram_hash h, const char *username, const unsigned char *secret,
                         size_t secret_len, unsigned iterations, kr_scram_creds *out);
/** Verify a password (PLAIN) against stored credentials: PBKDF2, so expensive. */
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
 * SASL failure condition of RFC 6120 §6.5 to report. */
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
 * named by kr_scram_server_username() / _authzid() and calls step 2. */
kr_scram_status kr_scram_server_client_first(kr_scram_server *s, const char *msg, size_t len);
/** Decoded username (saslname unescaped, not yet prepared); borrowed. */
const char *kr_scram_server_username(const kr_scram_server *s);
/** Decoded authzid or NULL; borrowed. */
const char *kr_scram_server_authzid(const kr_scram_server *s);
/** Channel binding type the client requested ("tls-exporter", ...) or NULL. */
const char *kr_scram_server_cb_type(const kr_scram_server *s);
/** Step 2: produce server-first-message from the user's credentials (appended to out). */
void kr_scram_server_server_first(kr_scram_server *s, const kr_scram_creds *creds, kr_buf *out);
/** Step 3: check client-final-message; on success appends server-final-message (v=...). */
kr_scram_status kr_scram_server_client_final(kr_scram_server *s, const char *msg, size_t len,
                                             kr_buf *out);

typedef struct kr_scram_client kr_scram_client;

/** Client side. cb_type NULL (no binding; flag 'n', or 'y' if server_supports_plus is false
 * but we could bind) or a binding name with its data. nonce NULL = random. */
kr_scram_client *kr_scram_client_new(kr_scram_hash h, const char *username, const char *authzid,
                                     const char *cb_type, const unsigned char *cb_data,
                                     size_t cb_len, const char *nonce);
void kr_scram_client_free(kr_scram_client *c);
void kr_scram_client_first(kr_scram_client *c, kr_buf *out);
/** Given server-first, produce client-final. salted_password may be NULL (then computed from
 * password with PBKDF2) or cached from an earlier login of the same account. */
int kr_scram_client_final(kr_scram_client *c, const char *server_first, size_t len,
                          const char *password, kr_buf *out);
/** Verify server-final (v=...); 0 or KR_EAUTH. */
int kr_scram_client_verify(kr_scram_client *c, const char *server_final, size_t len);

#endif
