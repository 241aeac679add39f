/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Strict base64 encoder/decoder and a hex encoder (see base64.h).
 */
#include "core/base64.h"

#include "core/error.h"

static const char kr_b64_alpha[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void kr_base64_encode(kr_buf *out, const void *data, size_t len)
{
    const unsigned char *p = data;
    kr_buf_reserve(out, (len + 2) / 3 * 4);
    char *o = out->data + out->len;
    size_t i = 0;
    for (; i + 2 < len; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        *o++ = kr_b64_alpha[v >> 18];
        *o++ = kr_b64_alpha[(v >> 12) & 63];
        *o++ = kr_b64_alpha[(v >> 6) & 63];
        *o++ = kr_b64_alpha[v & 63];
    }
    if (i < len) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < len ? (unsigned)p[i + 1] << 8 : 0);
        *o++ = kr_b64_alpha[v >> 18];
        *o++ = kr_b64_alpha[(v >> 12) & 63];
        *o++ = i + 1 < len ? kr_b64_alpha[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    out->len = (size_t)(o - out->data);
    out->data[out->len] = '\0';
}

static int kr_b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int kr_base64_decode(kr_buf *out, const char *in, size_t len)
{
    if (len % 4 != 0)
        return KR_EINVAL;
    size_t start = out->len;
    kr_buf_reserve(out, len / 4 * 3);
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            char c = in[i + k];
            if (c == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            if (pad) /* data after padding */
                goto bad;
            v[k] = kr_b64_value(c);
            if (v[k] < 0)
                goto bad;
        }
        /* Canonical encodings only: the bits a padded group drops must be zero. */
        if ((pad == 2 && (v[1] & 0x0f)) || (pad == 1 && (v[2] & 0x03)))
            goto bad;
        unsigned w = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 | (unsigned)v[3];
        out->data[out->len++] = (char)(w >> 16);
        if (pad < 2)
            out->data[out->len++] = (char)((w >> 8) & 0xff);
        if (pad < 1)
            out->data[out->len++] = (char)(w & 0xff);
    }
    out->data[out->len] = '\0';
    return 0;
bad:
    out->len = start;
    out->data[out->len] = '\0';
    return KR_EINVAL;
}

static int kr_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long kr_hex_decode(unsigned char *out, size_t cap, const char *hex, size_t len)
{
    if (len % 2 || len / 2 > cap)
        return -1;
    for (size_t i = 0; i < len / 2; i++) {
        int hi = kr_hex_value(hex[2 * i]), lo = kr_hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return (long)(len / 2);
}

void kr_hex_encode(char *out, const void *data, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        *out++ = digits[p[i] >> 4];
        *out++ = digits[p[i] & 15];
    }
    *out = '\0';
}
