/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Open-addressing hash maps (see hmap.h).
 */
#include "core/hmap.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

static uint64_t kr_hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

uint64_t kr_hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, then mixed */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return kr_hash_u64(h);
}

void kr_u64map_init(kr_u64map *m)
{
    m->slots = NULL;
    m->cap = 0;
    m->count = 0;
}

void kr_u64map_clear(kr_u64map *m)
{
    free(m->slots);
    kr_u64map_init(m);
}

static void kr_u64map_grow(kr_u64map *m)
{
    size_t old_cap = m->cap;
    kr_u64map_slot *old = m->slots;
    m->cap = old_cap ? old_cap * 2 : 16;
    m->slots = kr_xcalloc(m->cap, sizeof(*m->slots));
    m->count = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].key)
            kr_u64map_put(m, old[i].key, old[i].value);
    free(old);
}

void kr_u64map_put(kr_u64map *m, uint64_t key, void *value)
{
    if ((m->count + 1) * 4 > m->cap * 3)
        kr_u64map_grow(m);
    size_t mask = m->cap - 1;
    for (size_t i = kr_hash_u64(key) & mask;; i = (i + 1) & mask) {
        if (m->slots[i].key == key) {
            m->slots[i].value = value;
            return;
        }
        if (!m->slots[i].key) {
            m->slots[i].key = key;
            m->slots[i].value = value;
            m->count++;
            return;
        }
    }
}

void *kr_u64map_get(const kr_u64map *m, uint64_t key)
{
    if (!m->cap)
        return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = kr_hash_u64(key) & mask; m->slots[i].key; i = (i + 1) & mask)
        if (m->slots[i].key == key)
            return m->slots[i].value;
    return NULL;
}

void *kr_u64map_del(kr_u64map *m, uint64_t key)
{
    if (!m->cap)
        return NULL;
    size_t mask = m->cap - 1;
    size_t i = kr_hash_u64(key) & mask;
    while (m->slots[i].key && m->slots[i].key != key)
        i = (i + 1) & mask;
    if (!m->slots[i].key)
        return NULL;
    void *value = m->slots[i].value;
    /* Backward-shift deletion keeps every probe chain unbroken. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!m->slots[j].key)
            break;
        size_t home = kr_hash_u64(m->slots[j].key) & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].key = 0;
    m->slots[i].value = NULL;
    m->count--;
    return value;
}

void kr_strmap_init(kr_strmap *m)
{
    m->slots = NULL;
    m->cap = 0;
    m->count = 0;
}

void kr_strmap_clear(kr_strmap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].key);
    free(m->slots);
    kr_strmap_init(m);
}

static void kr_strmap_insert_slot(kr_strmap *m, char *key, uint64_t hash, void *value)
{
    size_t mask = m->cap - 1;
    size_t i = hash & mask;
    while (m->slots[i].key)
        i = (i + 1) & mask;
    m->slots[i].key = key;
    m->slots[i].hash = hash;
    m->slots[i].value = value;
    m->count++;
}

static void kr_strmap_grow(kr_strmap *m)
{
    size_t old_cap = m->cap;
    kr_strmap_slot *old = m->slots;
    m->cap = old_cap ? old_cap * 2 : 16;
    m->slots = kr_xcalloc(m->cap, sizeof(*m->slots));
    m->count = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].key)
            kr_strmap_insert_slot(m, old[i].key, old[i].hash, old[i].value);
    free(old);
}

static kr_strmap_slot *kr_strmap_find(const kr_strmap *m, const char *key, uint64_t hash)
{
    if (!m->cap)
        return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = hash & mask; m->slots[i].key; i = (i + 1) & mask)
        if (m->slots[i].hash == hash && strcmp(m->slots[i].key, key) == 0)
            return &m->slots[i];
    return NULL;
}

void kr_strmap_put(kr_strmap *m, const char *key, void *value)
{
    uint64_t hash = kr_hash_str(key);
    kr_strmap_slot *s = kr_strmap_find(m, key, hash);
    if (s) {
        s->value = value;
        return;
    }
    if ((m->count + 1) * 4 > m->cap * 3)
        kr_strmap_grow(m);
    kr_strmap_insert_slot(m, kr_xstrdup(key), hash, value);
}

void *kr_strmap_get(const kr_strmap *m, const char *key)
{
    kr_strmap_slot *s = kr_strmap_find(m, key, kr_hash_str(key));
    return s ? s->value : NULL;
}

void *kr_strmap_del(kr_strmap *m, const char *key)
{
    kr_strmap_slot *s = kr_strmap_find(m, key, kr_hash_str(key));
    if (!s)
        return NULL;
    void *value = s->value;
    free(s->key);
    size_t mask = m->cap - 1;
    size_t i = (size_t)(s - m->slots);
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!m->slots[j].key)
            break;
        size_t home = m->slots[j].hash & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].key = NULL;
    m->slots[i].value = NULL;
    m->count--;
    return value;
}
