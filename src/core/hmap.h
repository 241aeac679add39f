/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Two small open-addressing hash maps: kr_u64map (uint64 key -> pointer, e.g.
 * connection ids on a worker) and kr_strmap (NUL-terminated string key ->
 * pointer, e.g. bare JIDs in a session shard). Linear probing with
 * backward-shift deletion, so there are no tombstones and lookups stay short.
 * The maps do not own values; kr_strmap copies its keys. Not thread-safe.
 */
#ifndef KR_CORE_HMAP_H
#define KR_CORE_HMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct kr_u64map_slot {
    uint64_t key; /* 0 marks an empty slot; key 0 is not allowed */
    void *value;
} kr_u64map_slot;

typedef struct kr_u64map {
    kr_u64map_slot *slots;
    size_t cap; /* power of two or 0 */
    size_t count;
} kr_u64map;

void kr_u64map_init(kr_u64map *m);
void kr_u64map_clear(kr_u64map *m);
/** Insert or replace. key must not be 0. */
void kr_u64map_put(kr_u64map *m, uint64_t key, void *value);
void *kr_u64map_get(const kr_u64map *m, uint64_t key);
/** Remove and return the value, or NULL. */
void *kr_u64map_del(kr_u64map *m, uint64_t key);

typedef struct kr_strmap_slot {
    char *key; /* NULL marks an empty slot */
    uint64_t hash;
    void *value;
} kr_strmap_slot;

typedef struct kr_strmap {
    kr_strmap_slot *slots;
    size_t cap;
    size_t count;
} kr_strmap;

uint64_t kr_hash_str(const char *s);
void kr_strmap_init(kr_strmap *m);
/** Frees keys (values are the caller's). */
void kr_strmap_clear(kr_strmap *m);
void kr_strmap_put(kr_strmap *m, const char *key, void *value);
void *kr_strmap_get(const kr_strmap *m, const char *key);
void *kr_strmap_del(kr_strmap *m, const char *key);
/** Iterate: for (size_t i = 0; i < m->cap; i++) if (m->slots[i].key) ... */

#endif
