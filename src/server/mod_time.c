/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Placeholder for the time module (being written).
 */
#include "server/modules.h"

const kr_module_def kr_mod_time = {.name = "time"};
