/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Byte buffers. kr_buf is a growable buffer its owner writes into; kr_rbuf is
 * an immutable, reference-counted byte string that one serialized stanza
 * becomes so every recipient (on any worker thread) shares one copy
 * (CONVENTIONS.md, ownership rule 2). kr_rbuf reference counts are atomic.
 */
#ifndef KR_CORE_BUF_H
#define KR_CORE_BUF_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>

typedef struct kr_buf {
    char *data; /* always NUL-terminated when non-NULL */
    size_t len;
    size_t cap;
} kr_buf;

#define KR_BUF_INIT {NULL, 0, 0}

void kr_buf_init(kr_buf *b);
/** Frees the storage; the struct may be reused after kr_buf_init(). */
void kr_buf_clear(kr_buf *b);
void kr_buf_reserve(kr_buf *b, size_t extra);
void kr_buf_append(kr_buf *b, const void *data, size_t len);
void kr_buf_puts(kr_buf *b, const char *s);
void kr_buf_printf(kr_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kr_buf_vprintf(kr_buf *b, const char *fmt, va_list ap);
/** Drop the first n bytes (n <= len). */
void kr_buf_consume(kr_buf *b, size_t n);
/** Detach the storage: caller owns the returned pointer, the buffer is empty. */
char *kr_buf_detach(kr_buf *b, size_t *len);

typedef struct kr_rbuf {
    atomic_uint refs;
    unsigned meta; /* set by its creator before sharing, read-only afterwards (kurierd: the
                    * stanza's kind and type, server/stanza.h); 0 from the constructors */
    size_t len;
    char data[];
} kr_rbuf;

/** New buffer with one reference holding a copy of data. */
kr_rbuf *kr_rbuf_new(const void *data, size_t len);
/** New buffer from a kr_buf's contents; the kr_buf is left empty. */
kr_rbuf *kr_rbuf_from_buf(kr_buf *b);
kr_rbuf *kr_rbuf_ref(kr_rbuf *r);
void kr_rbuf_unref(kr_rbuf *r);

#endif
