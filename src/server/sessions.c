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
#include "core/hmap.h"

#define KR_SESSIONS_SHARDS 64

typedef struct kr_resource {
    char *name;
    kr_session_ref ref;
    kr_rbuf *presence; /* last broadcast presence, or NULL */
} kr_resource;

typedef struct kr_account_sessions {
    kr_resource *items;
    size_t count, cap;
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
    for (size_t i = 0; i < a->count; i++) {
        free(a->items[i].name);
        kr_rbuf_unref(a->items[i].presence);
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
                      uint64_t conn_id, kr_session_ref *replaced)
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
        was = r->ref.conn_id != conn_id;
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
    r->ref = (kr_session_ref){worker, conn_id, 0, false, 0};
    kr_rbuf_unref(r->presence);
    r->presence = NULL;
    pthread_mutex_unlock(&sh->lock);
    return was;
}

void kr_sessions_unbind(kr_sessions *s, const char *bare, const char *resource, uint64_t conn_id)
{
    kr_sessions_shard *sh = kr_sessions_shard_lock(s, bare);
    kr_account_sessions *a = kr_strmap_get(&sh->accounts, bare);
    kr_resource *r = kr_account_find(a, resource);
    if (r && r->ref.conn_id == conn_id) {
        free(r->name);
        kr_rbuf_unref(r->presence);
        *r = a->items[--a->count];
        sh->resources--;
        if (a->count == 0) {
            kr_strmap_del(&sh->accounts, bare);
            free(a->items);
            free(a);
        }
    }
    pthread_mutex_unlock(&sh->lock);
}

void kr_sessions_set_presence(kr_sessions *s, const char *bare, const char *resource,
                              uint64_t conn_id, bool available, int priority, kr_rbuf *presence)
{
    kr_rbuf *old = presence; /* dropped if the resource is gone */
    kr_sessions_shard *sh = kr_sessions_shard_lock(s, bare);
    kr_resource *r = kr_account_find(kr_strmap_get(&sh->accounts, bare), resource);
    if (r && r->ref.conn_id == conn_id) {
        r->ref.available = available;
        r->ref.priority = priority;
        old = r->presence;
        r->presence = presence; /* the caller's reference moves in */
    }
    pthread_mutex_unlock(&sh->lock);
    if (old)
        kr_rbuf_unref(old); /* outside the lock: freeing may take time */
}

void kr_sessions_set_flags(kr_sessions *s, const char *bare, const char *resource,
                           uint64_t conn_id, unsigned set, unsigned clear)
{
    kr_sessions_shard *sh = kr_sessions_shard_lock(s, bare);
    kr_resource *r = kr_account_find(kr_strmap_get(&sh->accounts, bare), resource);
    if (r && r->ref.conn_id == conn_id)
        r->ref.flags = (r->ref.flags | set) & ~clear;
    pthread_mutex_unlock(&sh->lock);
}

size_t kr_sessions_presences(kr_sessions *s, const char *bare, kr_rbuf **out, size_t max)
{
    size_t n = 0;
    kr_sessions_shard *sh = kr_sessions_shard_lock(s, bare);
    kr_account_sessions *a = kr_strmap_get(&sh->accounts, bare);
    for (size_t i = 0; a && i < a->count && n < max; i++)
        if (a->items[i].ref.available && a->items[i].presence)
            out[n++] = kr_rbuf_ref(a->items[i].presence);
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
