/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Records: the self-describing byte encoding a module gives the generic stores
 * (store/store.h) for one value, so the storage layer keeps bytes it does not
 * understand and a module can add a field without a schema migration. A record
 * is an ordered list of (key, value) fields; a key is a short ASCII name and may
 * repeat (several "group" fields), a value is any bytes, NULs included.
 *
 * Encoding (version 1), all lengths in bytes:
 *
 *     record  = version *field end
 *     version = %x01
 *     field   = klen key vlen value
 *     klen    = one byte, 1..KR_RECORD_KEY_MAX
 *     end     = %x00 (a key length no field has), the record's last byte
 *     key     = klen bytes, each of A-Z a-z 0-9 _ - .
 *     vlen    = unsigned LEB128: 7 bits per byte, low group first, high bit set on every
 *               byte but the last; minimal (no final 0x00 group after another byte),
 *               at most 10 bytes, value < 2^64
 *     value   = vlen bytes
 *
 * Integers are stored as values in decimal text ("-12", "0"), so a record stays readable
 * in a database shell. One record has exactly one encoding, so equal records are equal
 * bytes. The end byte makes every strict prefix of a record invalid, so a record cut at a
 * field boundary is refused rather than read as a record with fewer fields.
 * Writers append to a kr_buf between kr_record_begin() and kr_record_end() and cannot fail
 * (a bad key is a bug of the writing module: it aborts). Readers never trust the bytes:
 * kr_record_reader_init() checks the whole record before the first field is handed out and
 * refuses any truncated, overlong or garbled input with KR_EPARSE, and no read goes outside
 * [data, data + len).
 * Fields returned by the reader borrow the record's bytes.
 */
#ifndef KR_CORE_RECORD_H
#define KR_CORE_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define KR_RECORD_VERSION 1
#define KR_RECORD_KEY_MAX 32

/** Start a record in b: appends the version byte (b is normally empty). */
void kr_record_begin(kr_buf *b);
/** Append one field. key: 1..KR_RECORD_KEY_MAX characters of A-Z a-z 0-9 _ - . (anything
 * else aborts: keys are the writing module's constants). value may be NULL when len is 0. */
void kr_record_add(kr_buf *b, const char *key, const void *value, size_t len);
/** Append a field whose value is the C string value (without its NUL). */
void kr_record_add_str(kr_buf *b, const char *key, const char *value);
/** Append a field whose value is v in decimal. */
void kr_record_add_int(kr_buf *b, const char *key, int64_t v);
/** Close the record (appends the end byte); add nothing to it afterwards. */
void kr_record_end(kr_buf *b);

typedef struct kr_record_field {
    const char *key; /* borrowed from the record; not NUL-terminated */
    size_t key_len;
    const char *value; /* borrowed from the record; not NUL-terminated, may hold NULs */
    size_t len;
} kr_record_field;

typedef struct kr_record_reader {
    const unsigned char *pos;
    const unsigned char *end;
} kr_record_reader;

/** Check the whole record at data and make r read its fields. 0, or KR_EPARSE for an empty,
 * truncated or garbled record, bytes after its end, or an unknown version (r then yields no
 * field).
 * The bytes must stay unchanged and alive while r is used. */
int kr_record_reader_init(kr_record_reader *r, const void *data, size_t len);
/** The next field in record order: true with *f filled, false after the last. */
bool kr_record_next(kr_record_reader *r, kr_record_field *f);

/** Whether f's key is the C string key. */
bool kr_record_field_is(const kr_record_field *f, const char *key);
/** f's value as an integer written by kr_record_add_int: optional '-', decimal digits without
 * leading zeros, within int64_t. 0 (*out set) or KR_EPARSE. */
int kr_record_field_int(const kr_record_field *f, int64_t *out);
/** f's value as a new C string (caller frees). 0, or KR_EPARSE when the value holds a NUL
 * (it could not be one C string); *out is NULL then. */
int kr_record_field_strdup(const kr_record_field *f, char **out);

#endif
