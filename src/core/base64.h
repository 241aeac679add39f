/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Base64 (RFC 4648 §4) as SASL needs it: strict decoding (padding required,
 * no whitespace, no characters outside the alphabet) per RFC 6120 §6.4.2.
 * Also hex (RFC 4648 §8): lowercase out, for random identifiers (stream ids, resources);
 * either case in, for OpenSSL's key log lines (net/tls.c).
 */
#ifndef KR_CORE_BASE64_H
#define KR_CORE_BASE64_H

#include <stddef.h>

#include "core/buf.h"

void kr_base64_encode(kr_buf *out, const void *data, size_t len);
/** Appends the decoded bytes to out; returns 0 or KR_EINVAL (out unchanged). */
int kr_base64_decode(kr_buf *out, const char *in, size_t len);
/** Writes 2 * len lowercase hex digits and a NUL to out (which holds 2 * len + 1 bytes). */
void kr_hex_encode(char *out, const void *data, size_t len);
/** Decodes len hex digits (either case) into out; returns the byte count, or -1 when len is
 * odd, a character is not a hex digit or the result would not fit in cap bytes. */
long kr_hex_decode(unsigned char *out, size_t cap, const char *hex, size_t len);

#endif
