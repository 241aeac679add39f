/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Server Dialback keys (XEP-0220 §2.1, generated per XEP-0185 §2):
 *   key = hex(HMAC-SHA256(hex(SHA-256(secret)), receiving ' ' originating ' ' stream-id))
 * The originating server sends the key in <db:result/>; the authoritative
 * server (the same process, or another node with the same secret) recomputes
 * it to answer <db:verify/>. Pure functions; thread-safe.
 */
#ifndef KR_SERVER_DIALBACK_H
#define KR_SERVER_DIALBACK_H

#include <stdbool.h>
#include <stddef.h>

#define KR_NS_DIALBACK "jabber:server:dialback"
#define KR_NS_DIALBACK_FEATURE "urn:xmpp:features:dialback"
#define KR_DIALBACK_HEX 65 /* 64 hex digits and the NUL */

/** The HMAC key of XEP-0185: hex(SHA-256(secret)). */
void kr_dialback_secret_prepare(const void *secret, size_t len, char out[KR_DIALBACK_HEX]);
/** The dialback key for a stream, from the prepared secret. */
void kr_dialback_key(const char *prepared, const char *receiving, const char *originating,
                     const char *stream_id, char out[KR_DIALBACK_HEX]);
/** True when key is the right one (compared in constant time). */
bool kr_dialback_key_check(const char *prepared, const char *receiving, const char *originating,
                           const char *stream_id, const char *key);

#endif
