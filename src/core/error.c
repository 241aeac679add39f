/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Text for the error codes of error.h.
 */
#include "core/error.h"

const char *kr_strerror(int err)
{
    switch (err) {
    case KR_OK:
        return "success";
#define KR__ERR_CASE(name, text) \
    case KR_E##name:             \
        return text;
        KR_ERRNO_MAP(KR__ERR_CASE)
#undef KR__ERR_CASE
    default:
        return "unknown error";
    }
}
