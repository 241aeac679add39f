/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Growable and refcounted byte buffers (see buf.h).
 */
#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

void kr_buf_init(kr_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void kr_buf_clear(kr_buf *b)
{
    free(b->data);
    kr_buf_init(b);
}

void kr_buf_reserve(kr_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->data = kr_xrealloc(b->data, cap);
    b->cap = cap;
}

void kr_buf_append(kr_buf *b, const void *data, size_t len)
{
    kr_buf_reserve(b, len);
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void kr_buf_puts(kr_buf *b, const char *s)
{
    kr_buf_append(b, s, strlen(s));
}

void kr_buf_vprintf(kr_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n <= 0)
        return;
    kr_buf_reserve(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void kr_buf_printf(kr_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kr_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void kr_buf_consume(kr_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        if (b->data)
            b->data[0] = '\0';
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

char *kr_buf_detach(kr_buf *b, size_t *len)
{
    char *d = b->data;
    if (len)
        *len = b->len;
    kr_buf_init(b);
    return d;
}

kr_rbuf *kr_rbuf_new(const void *data, size_t len)
{
    kr_rbuf *r = kr_xmalloc(sizeof(*r) + len + 1);
    atomic_init(&r->refs, 1);
    r->meta = 0;
    r->len = len;
    if (len)
        memcpy(r->data, data, len);
    r->data[len] = '\0';
    return r;
}

kr_rbuf *kr_rbuf_from_buf(kr_buf *b)
{
    kr_rbuf *r = kr_rbuf_new(b->data, b->len);
    kr_buf_clear(b);
    return r;
}

kr_rbuf *kr_rbuf_ref(kr_rbuf *r)
{
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    return r;
}

void kr_rbuf_unref(kr_rbuf *r)
{
    if (r && atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1)
        free(r);
}
