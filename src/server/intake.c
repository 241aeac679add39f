/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Ordered intake of a stream's stanzas (see intake.h): a FIFO of parsed
 * elements and a count of suspended routes.
 */
#include "server/intake.h"

#include <stdlib.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "server/conn.h"
#include "server/server.h"
#include "server/stanza.h"

void kr_intake_open(kr_intake *in, kr_conn *conn,
                    void (*process)(kr_intake *, kr_xml_node *, kr_arena *),
                    void (*pause)(kr_intake *, bool))
{
    kr_assert(conn->id != 0);
    *in = (kr_intake){.id = conn->id, .worker = conn->worker, .process = process, .pause = pause};
    conn->intake = in;
}

void kr_intake_discard(kr_intake *in)
{
    while (in->head) {
        kr_intake_item *it = in->head;
        in->head = it->next;
        if (it->stanza)
            kr_stanza_unref(it->stanza);
        else
            kr_arena_free(it->arena);
        free(it);
    }
    in->tail = NULL;
}

void kr_intake_close(kr_intake *in)
{
    in->id = 0;
    kr_intake_discard(in);
}

bool kr_intake_busy(const kr_intake *in)
{
    return in->waiting > 0 || in->head != NULL;
}

static void kr_intake_enqueue(kr_intake *in, kr_stanza *st, kr_xml_node *elem,
                              kr_arena *arena)
{
    kr_intake_item *it = kr_xmalloc(sizeof(*it));
    *it = (kr_intake_item){NULL, st, elem, arena};
    if (!in->head)
        in->pause(in, true);
    if (in->tail)
        in->tail->next = it;
    else
        in->head = it;
    in->tail = it;
}

/* Process queued items until one waits or the queue is empty. The stream may close while
 * an item is processed (a stream error): then it has called kr_intake_close, which emptied
 * the queue, and id is 0. */
static void kr_intake_drain(kr_intake *in)
{
    if (in->draining)
        return; /* the loop below picks up where a nested call would */
    in->draining = true;
    while (in->id && in->waiting == 0 && in->head) {
        kr_intake_item *it = in->head;
        in->head = it->next;
        if (!in->head)
            in->tail = NULL;
        kr_intake_item item = *it;
        free(it);
        if (item.stanza)
            in->route(in, item.stanza);
        else
            in->process(in, item.elem, item.arena);
    }
    in->draining = false;
    if (in->id && !in->head)
        in->pause(in, false);
}

void kr_intake_push(kr_intake *in, kr_xml_node *elem, kr_arena *arena)
{
    if (kr_intake_busy(in) || in->draining) {
        kr_intake_enqueue(in, NULL, elem, arena);
        return;
    }
    in->process(in, elem, arena);
}

void kr_intake_push_stanza(kr_intake *in, kr_stanza *st)
{
    if (kr_intake_busy(in) || in->draining) {
        kr_intake_enqueue(in, st, NULL, NULL);
        return;
    }
    in->route(in, st);
}

void kr_intake_hold(kr_intake *in)
{
    in->waiting++;
}

void kr_intake_release(kr_worker *w, uint64_t id)
{
    kr_conn *c = id ? kr_conn_find(w, id) : NULL;
    kr_intake *in = c ? c->intake : NULL;
    if (!in || in->id != id)
        return; /* the connection closed meanwhile */
    kr_assert(in->waiting > 0);
    if (--in->waiting == 0)
        kr_intake_drain(in);
}
