/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Sharded session directory (see sessions.h). Each shard maps a bare JID to
 * a small array of resources; accounts rarely have more than a few.
 */
#include "server/sessions.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/hmap.h"

#define KR_SESSIONS_SHARDS 64

typedef struct kr_resource {
    char *name;
    kr_session_ref ref;
    kr_frozen *presence; /* last broadcast presence, or NULL */
} kr_resource;

typedef struct kr_account_sessions {
    kr_resource *items;
    size_t count, cap;
    kr_shared *state[KR_SESSIONS_STATE_SLOTS]; /* modules' values for the online account */
} kr_account_sessions;

typedef struct kr_sessions_shard {
    pthread_mutex_t lock;
    kr_strmap accounts; /* bare JID -> kr_account_sessions */
    size_t resources;
} kr_sessions_shard;

struct kr_sessions {
    kr_sessions_shard shards[KR_SESSIONS_SHARDS];
};

kr_sessions *kr_sessions_new(void)
{
    kr_sessions *s = kr_xcalloc(1, sizeof(*s));
    for (size_t i = 0; i < KR_SESSIONS_SHARDS; i++) {
        pthread_mutex_init(&s->shards[i].lock, NULL);
        kr_strmap_init(&s->shards[i].accounts);
    }
    return s;
}

static void kr_account_sessions_free(kr_account_sessions *a)
{
    for (size_t i = 0; i < KR_SESSIONS_STATE_SLOTS; i++)
        kr_shared_unref(a->state[i]);
    for (size_t i = 0; i < a->count; i++) {
        free(a->items[i].name);
        kr_frozen_unref(a->items[i].presence);
    }
    free(a->items);
    free(a);
}

void kr_sessions_free(kr_sessions *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < KR_SESSIONS_SHARDS; i++) {
        kr_strmap *m = &s->shards[i].accounts;
        for (size_t k = 0; k < m->cap; k++)
            if (m->slots[k].key)
                kr_account_sessions_free(m->slots[k].value);
        kr_strmap_clear(m);
        pthread_mutex_destroy(&s->shards[i].lock);
    }
    free(s);
}

static kr_sessions_shard *kr_sessions_shard_lock(kr_sessions *s, const char *bare)
{
    kr_sessions_shard *sh = &s->shards[kr_hash_str(bare) % KR_SESSIONS_SHARDS];
    pthread_mutex_lock(&sh->lock);
    return sh;
}

static kr_resource *kr_account_find(kr_account_sessions *a, const char *resource)
{
    for (size_t i = 0; a && i < a->count; i++)
        if (strcmp(a->items[i].name, resource) == 0)
            return &a->items[i];
    return NULL;
}

bool kr_sessions_bind(kr_sessions *s, const char *bare, const char *resource, unsigned worker,
                      uint64_t id, kr_session_ref *replaced)
{
    kr_sessions_shard *sh = kr_sessions_shard_lock(s, bare);
    kr_account_sessions *a = kr_strmap_get(&sh->accounts, bare);
    if (!a) {
        a = kr_xcalloc(1, sizeof(*a));
        kr_strmap_put(&sh->accounts, bare, a);
    }
    bool was = false;
    kr_resource *r = kr_account_find(a, resource);
    if (r) {
        if (replaced)
            *replaced = r->ref;
        was = r->ref.id != id;
    } else {
        if (a->count == a->cap) {
            a->cap = a->cap ? a->cap * 2 : 2;
            a->items = kr_xrealloc(a->items, a->cap * sizeof(*a->items));
        }
        r = &a->items[a->count++];
        r->name = kr_xstrdup(resource);
        r->presence = NULL;
        sh->resources++;
    }
    r->ref = (kr_session_ref){.node = 0, .worker = (uint16_t)worker, .id = id};
    kr_frozen_unref(r->presence);
    r->presence = NULL;
    pthread_mutex_unlock(&sh->lock);
    return was;
}

void kr_sessions_unbind(kr_sessions *s, const char *bare, const char *resource, uint64_t id)
{
    kr_account_sessions *gone = NULL;
    kr_sessions_shard *sh = kr_sessions_shard_lock(s, bare);
    kr_account_sessions *a = kr_strmap_get(&sh->accounts, bare);
    kr_resource *r = kr_account_find(a, resource);
    if (r && r->ref.id == id) {
        free(r->name);
        kr_frozen_unref(r->presence);
        *r = a->items[--a->count];
        sh->resources--;
        if (a->count == 0) {
            kr_strmap_del(&sh->accounts, bare);
            gone = a;
        }
    }
    pthread_mutex_unlock(&sh->lock);
    if (gone) /* outside the lock: freeing module state may take time */
        kr_account_sessions_free(gone);
}

void kr_sessions_set_presence(kr_sessions *s, const char *bare, const char *resource,
                              uint64_t id, bool available, int priority, kr_frozen *presence)
{
    kr_frozen *old = presence; /* dropped if the resource is gone */
    kr_sessions_shard *sh = kr_sessions_shard_lock(s, bare);
    kr_resource *r = kr_account_find(kr_strmap_get(&sh->accounts, bare), resource);
    if (r && r->ref.id == id) {
        r->ref.available = available;
        r->ref.priority = priority;
        old = r->presence;
        r->presence = presence; /* the caller's reference moves in */
    }
    pthread_mutex_unlock(&sh->lock);
    kr_frozen_unref(old); /* outside the lock: freeing may take time */
}

void kr_sessions_set_flags(kr_sessions *s, const char *bare, const char *resource, uint64_t id,
                           unsigned set, unsigned clear)
{
    kr_sessions_shard *sh = kr_sessions_shard_lock(s, bare);
    kr_resource *r = kr_account_find(kr_strmap_get(&sh->accounts, bare), resource);
    if (r && r->ref.id == id)
        r->ref.flags = (r->ref.flags | set) & ~clear;
    pthread_mutex_unlock(&sh->lock);
}

size_t kr_sessions_presences(kr_sessions *s, const char *bare, kr_frozen **out, size_t max)
{
    size_t n = 0;
    kr_sessions_shard *sh = kr_sessions_shard_lock(s, bare);
    kr_account_sessions *a = kr_strmap_get(&sh->accounts, bare);
    for (size_t i = 0; a && i < a->count && n < max; i++)
        if (a->items[i].ref.available && a->items[i].presence)
            out[n++] = kr_frozen_ref(a->items[i].presence);
    pthread_mutex_unlock(&sh->lock);
    return n;
}

bool kr_sessions_find(kr_sessions *s, const char *bare, const char *resource, kr_session_ref *out)
{
    kr_sessions_shard *sh = kr_sessions_shard_lock(s, bare);
    kr_resource *r = kr_account_find(kr_strmap_get(&sh->accounts, bare), resource);
    if (r)
        *out = r->ref;
    pthread_mutex_unlock(&sh->lock);
    return r != NULL;
}

size_t kr_sessions_list(kr_sessions *s, const char *bare, kr_session_ref *out, size_t max)
{
    kr_sessions_shard *sh = kr_sessions_shard_lock(s, bare);
    kr_account_sessions *a = kr_strmap_get(&sh->accounts, bare);
    size_t n = a ? a->count : 0;
    for (size_t i = 0; i < n && i < max; i++)
        out[i] = a->items[i].ref;
    pthread_mutex_unlock(&sh->lock);
    return n;
}

size_t kr_sessions_count(kr_sessions *s)
{
    size_t n = 0;
    for (size_t i = 0; i < KR_SESSIONS_SHARDS; i++) {
        pthread_mutex_lock(&s->shards[i].lock);
        n += s->shards[i].resources;
        pthread_mutex_unlock(&s->shards[i].lock);
    }
    return n;
}

/* ---- modules' shared state per online account ----------------------------------------------- */

static atomic_uint_fast64_t kr_shared_versions = 1;

uint64_t kr_shared_version_next(void)
{
    return atomic_fetch_add(&kr_shared_versions, 1);
}

void kr_shared_init(kr_shared *v, uint64_t version, void (*free_fn)(kr_shared *v))
{
    atomic_init(&v->refs, 1);
    v->version = version;
    v->free = free_fn;
}

kr_shared *kr_shared_ref(kr_shared *v)
{
    atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
    return v;
}

void kr_shared_unref(kr_shared *v)
{
    if (v && atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) == 1)
        v->free(v);
}

bool kr_sessions_state_put(kr_sessions *s, const char *bare, unsigned slot, kr_shared *value)
{
    kr_assert(slot < KR_SESSIONS_STATE_SLOTS);
    kr_shared *drop = value;
    kr_sessions_shard *sh = kr_sessions_shard_lock(s, bare);
    kr_account_sessions *a = kr_strmap_get(&sh->accounts, bare);
    if (a && (!a->state[slot] || a->state[slot]->version < value->version)) {
        drop = a->state[slot];
        a->state[slot] = value;
    }
    pthread_mutex_unlock(&sh->lock);
    kr_shared_unref(drop);
    return drop != value;
}

kr_shared *kr_sessions_state_get(kr_sessions *s, const char *bare, unsigned slot)
{
    kr_assert(slot < KR_SESSIONS_STATE_SLOTS);
    kr_sessions_shard *sh = kr_sessions_shard_lock(s, bare);
    kr_account_sessions *a = kr_strmap_get(&sh->accounts, bare);
    kr_shared *v = a && a->state[slot] ? kr_shared_ref(a->state[slot]) : NULL;
    pthread_mutex_unlock(&sh->lock);
    return v;
}
