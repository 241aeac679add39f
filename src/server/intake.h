/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * The intake of a stream that feeds stanzas to the router (c2s, inbound s2s,
 * components): it keeps the stream's stanzas in order when a handler waits.
 * While a route from the stream is suspended (modules.h, KR_WAIT), elements
 * the parser hands over are queued here, in order, and the stream's reading
 * is paused; when the last suspended route of the stream finishes, the queue
 * is processed (each may wait again) and reading resumes. So a reply to a
 * later request never overtakes the work of an earlier one: a store write the
 * server waits for is durable before the stream's next stanza is looked at.
 * The queue is bounded by what one read can hold (reading pauses at once).
 * An intake is found through its connection (kr_conn.intake, by the
 * connection's id in the worker's table), so a route that finishes after the
 * stream ended finds nothing and does nothing; it needs no table of its own,
 * which would cost an entry per idle connection. Owned and embedded by the
 * stream; every call on the stream's worker.
 */
#ifndef KR_SERVER_INTAKE_H
#define KR_SERVER_INTAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "net/worker.h"
#include "xml/tree.h"

typedef struct kr_intake kr_intake;

struct kr_conn;

typedef struct kr_stanza kr_stanza;

typedef struct kr_intake_item {
    struct kr_intake_item *next;
    kr_stanza *stanza; /* a decoded stanza (kr_intake_push_stanza), or NULL: */
    kr_xml_node *elem; /* an element; NULL: the end of the stream */
    kr_arena *arena;
} kr_intake_item;

struct kr_intake {
    uint64_t id;       /* its connection's while open; 0 once closed */
    kr_worker *worker;
    unsigned waiting;  /* suspended routes from this stream */
    kr_intake_item *head, *tail;
    bool draining;
    /* Process one element as if it had just arrived (takes the arena); elem NULL: the
     * stream's end. May route stanzas that wait again. */
    void (*process)(kr_intake *in, kr_xml_node *elem, kr_arena *arena);
    /* Route a decoded stanza queued with kr_intake_push_stanza (takes the reference); NULL
     * when the stream queues only elements. */
    void (*route)(kr_intake *in, kr_stanza *st);
    /* Stop (true) or resume (false) reading from the stream. */
    void (*pause)(kr_intake *in, bool pause);
};

/** Open the intake of conn's stream (conn->intake points to it from now on). */
void kr_intake_open(kr_intake *in, struct kr_conn *conn,
                    void (*process)(kr_intake *, kr_xml_node *, kr_arena *),
                    void (*pause)(kr_intake *, bool));
/** Free whatever is queued; routes that finish later find nothing. Called when the
 * connection closes (it has left the worker's table by then). */
void kr_intake_close(kr_intake *in);
/** An element (or NULL: end of stream) from the parser: processed now, or queued behind a
 * waiting route. Takes the arena. */
void kr_intake_push(kr_intake *in, kr_xml_node *elem, kr_arena *arena);
/** A decoded stanza (takes the reference): routed now through in->route, or queued. */
void kr_intake_push_stanza(kr_intake *in, kr_stanza *st);
/** True while elements wait in the queue or a route is suspended. */
bool kr_intake_busy(const kr_intake *in);
/** A route from this stream suspended (router.c). */
void kr_intake_hold(kr_intake *in);
/** That route finished: on the intake of connection `id` of worker w, if it is still open. */
void kr_intake_release(kr_worker *w, uint64_t id);
/** Drop everything queued (a stream restart invalidates what the old stream sent). */
void kr_intake_discard(kr_intake *in);

#endif
