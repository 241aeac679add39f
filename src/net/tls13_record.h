/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * The TLS 1.3 record layer (RFC 8446 §5) on its own, for a connection whose handshake OpenSSL
 * has already done: what an idle c2s connection keeps instead of its OpenSSL SSL object
 * (~13 KiB; this is ~300 bytes), the same job kernel TLS does where the kernel has it. It holds
 * the two application traffic secrets with their keys, IVs and sequence numbers, protects and
 * opens application_data records, answers KeyUpdate (§4.6.3) and reads and sends close_notify.
 * Anything else after the handshake (another handshake message, a fatal alert, a record that
 * does not authenticate, a plaintext record) is an error that ends the connection, after a
 * fatal alert is queued. The cryptography is OpenSSL's (AEAD through EVP, HKDF-Expand-Label
 * through HMAC); only the framing lives here. Suites: the three kurierd offers
 * (TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256).
 * Ownership: the caller owns a kr_tls13 (kr_tls13_free); one thread uses it at a time.
 */
#ifndef KR_NET_TLS13_RECORD_H
#define KR_NET_TLS13_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

typedef struct kr_tls13 kr_tls13;

/** Results of kr_tls13_feed. */
#define KR_TLS13_OK 0     /* everything complete was read (a partial record is kept) */
#define KR_TLS13_CLOSED 1 /* the peer sent close_notify (and is not read any further) */
#define KR_TLS13_ERROR (-1)

/** A record layer for suite (the IANA value, e.g. 0x1301) continuing a connection whose next
 * record read is number read_seq under read_secret and whose next record written is write_seq
 * under write_secret (both secrets of the suite's hash length). max_fragment: the largest
 * plaintext per record we send (16384 unless a smaller one was negotiated). NULL for a suite
 * it does not know. The secrets are copied; the caller cleanses its own. */
kr_tls13 *kr_tls13_new(unsigned suite, const uint8_t *read_secret, uint64_t read_seq,
                       const uint8_t *write_secret, uint64_t write_seq, size_t max_fragment);
/** Cleanses the keys and frees. NULL is fine. */
void kr_tls13_free(kr_tls13 *t);

/** Bytes from the network: opened application data is appended to plain. */
int kr_tls13_feed(kr_tls13 *t, const char *data, size_t len, kr_buf *plain);
/** Protect data (any length; split into records). -1 after close_notify was sent. */
int kr_tls13_write(kr_tls13 *t, const char *data, size_t len);
/** One record of any content type with up to 16384 bytes of content (21 alert, 22 handshake,
 * 23 application data): the building block of the others, public for tests and fuzzing.
 * -1 after an error or close_notify. */
int kr_tls13_write_record(kr_tls13 *t, uint8_t type, const void *data, size_t len);
/** Send KeyUpdate (§4.6.3) and switch to the next write key; request_peer asks the peer to
 * update its keys too. kr_tls13_write does this by itself every 2^24 records (§5.5). */
int kr_tls13_key_update(kr_tls13 *t, bool request_peer);
/** Queue close_notify (once). */
void kr_tls13_close_notify(kr_tls13 *t);
/** Move the records waiting for the network to the end of out; returns how many bytes. */
size_t kr_tls13_pending_out(kr_tls13 *t, kr_buf *out);
/** Give back buffer memory that holds nothing. */
void kr_tls13_trim(kr_tls13 *t);
/** Why the last KR_TLS13_ERROR happened (a static string). */
const char *kr_tls13_error(const kr_tls13 *t);
/** Hash length of the suite (32 or 48), 0 if unknown. */
size_t kr_tls13_secret_len(unsigned suite);

#endif
