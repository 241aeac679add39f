/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * The address table (see hosts.h): a string map from domain to kr_host plus
 * the hosts in insertion order for listing. Hosts are never removed before
 * kr_hosts_free.
 */
#include "server/hosts.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/hmap.h"

struct kr_hosts {
    kr_strmap by_domain; /* domain -> kr_host */
    kr_host **list;      /* in the order added */
    size_t count;
};

kr_hosts *kr_hosts_new(void)
{
    kr_hosts *h = kr_xcalloc(1, sizeof(*h));
    kr_strmap_init(&h->by_domain);
    return h;
}

void kr_hosts_free(kr_hosts *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->count; i++) {
        free(h->list[i]->domain);
        free(h->list[i]->name);
        free(h->list[i]);
    }
    free(h->list);
    kr_strmap_clear(&h->by_domain);
    free(h);
}

/* The longest user domain that domain is a sub-domain of. */
static const kr_host *kr_hosts_parent_of(const kr_hosts *h, const char *domain)
{
    const kr_host *best = NULL;
    size_t dlen = strlen(domain);
    for (size_t i = 0; i < h->count; i++) {
        const kr_host *u = h->list[i];
        size_t ulen = strlen(u->domain);
        if (u->kind != KR_HOST_USER || ulen + 1 >= dlen || domain[dlen - ulen - 1] != '.' ||
            strcmp(domain + dlen - ulen, u->domain) != 0)
            continue;
        if (!best || ulen > strlen(best->domain))
            best = u;
    }
    return best;
}

kr_host *kr_hosts_add(kr_hosts *h, const char *domain, kr_host_kind kind,
                      kr_host_deliver_fn deliver, const kr_module_def *module, const char *name)
{
    if (kr_strmap_get(&h->by_domain, domain))
        return NULL;
    kr_host *host = kr_xcalloc(1, sizeof(*host));
    host->domain = kr_xstrdup(domain);
    host->kind = kind;
    host->deliver = deliver;
    host->module = module;
    host->name = name ? kr_xstrdup(name) : NULL;
    host->parent = kind == KR_HOST_USER ? NULL : kr_hosts_parent_of(h, domain);
    h->list = kr_xrealloc(h->list, (h->count + 1) * sizeof(*h->list));
    h->list[h->count++] = host;
    kr_strmap_put(&h->by_domain, domain, host);
    return host;
}

const kr_host *kr_hosts_find(const kr_hosts *h, const char *domain)
{
    return domain ? kr_strmap_get(&h->by_domain, domain) : NULL;
}

size_t kr_hosts_count(const kr_hosts *h)
{
    return h->count;
}

const kr_host *kr_hosts_at(const kr_hosts *h, size_t i)
{
    return i < h->count ? h->list[i] : NULL;
}

const kr_host *kr_hosts_default(const kr_hosts *h)
{
    for (size_t i = 0; i < h->count; i++)
        if (h->list[i]->kind == KR_HOST_USER)
            return h->list[i];
    return NULL;
}
