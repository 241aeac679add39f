/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Dialback key generation and checking (see dialback.h), on OpenSSL's
 * one-shot SHA-256 and HMAC.
 */
#include "server/dialback.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"

static void kr_dialback_hex(const unsigned char *d, size_t n, char out[KR_DIALBACK_HEX])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n && i < 32; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[64] = '\0';
}

void kr_dialback_secret_prepare(const void *secret, size_t len, char out[KR_DIALBACK_HEX])
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256(secret, len, d);
    kr_dialback_hex(d, sizeof(d), out);
    OPENSSL_cleanse(d, sizeof(d));
}

void kr_dialback_key(const char *prepared, const char *receiving, const char *originating,
                     const char *stream_id, char out[KR_DIALBACK_HEX])
{
    kr_buf msg = KR_BUF_INIT;
    kr_buf_printf(&msg, "%s %s %s", receiving, originating, stream_id);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    HMAC(EVP_sha256(), prepared, (int)strlen(prepared), (const unsigned char *)msg.data, msg.len,
         mac, &n);
    kr_buf_clear(&msg);
    kr_dialback_hex(mac, n, out);
}

bool kr_dialback_key_check(const char *prepared, const char *receiving, const char *originating,
                           const char *stream_id, const char *key)
{
    if (!key || strlen(key) != KR_DIALBACK_HEX - 1)
        return false;
    char want[KR_DIALBACK_HEX];
    kr_dialback_key(prepared, receiving, originating, stream_id, want);
    return CRYPTO_memcmp(want, key, KR_DIALBACK_HEX - 1) == 0;
}
