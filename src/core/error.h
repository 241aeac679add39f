/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * One table of error codes for all of Kurier. Functions return 0 or a negative
 * KR_E* value; kr_strerror() names it. Protocol failures (stream and stanza
 * error conditions of RFC 6120) are not C errors and do not appear here.
 * To add a code, add one line to KR_ERRNO_MAP.
 */
#ifndef KR_CORE_ERROR_H
#define KR_CORE_ERROR_H

#define KR_ERRNO_MAP(X)                                            \
    X(INVAL, "invalid argument or input")                          \
    X(NOENT, "no such entry")                                      \
    X(EXIST, "entry already exists")                               \
    X(LIMIT, "limit exceeded")                                     \
    X(PARSE, "parse error")                                        \
    X(IO, "input/output error")                                    \
    X(LOCKED, "store is locked by another process")                \
    X(AUTH, "authentication failed")                               \
    X(TLS, "TLS error")                                            \
    X(STORE, "storage error")                                      \
    X(AGAIN, "more data needed")                                   \
    X(STOPPED, "processing stopped by a callback")                 \
    X(PROTO, "protocol error")                                     \
    X(CONFIG, "configuration error")

typedef enum kr_errno {
    KR_OK = 0,
#define KR__ERR_ENUM(name, text) KR_E##name,
    KR__ERR_FIRST = -1000,
    KR_ERRNO_MAP(KR__ERR_ENUM)
#undef KR__ERR_ENUM
} kr_errno;

/** Human-readable text for a KR_E* code (or 0). Never NULL; static storage. */
const char *kr_strerror(int err);

#endif
