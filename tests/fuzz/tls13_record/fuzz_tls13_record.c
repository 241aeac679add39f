/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * libFuzzer harness of kurierd's TLS 1.3 record layer (src/net/tls13_record.c), the code
 * that reads an idle client's records once OpenSSL has handed the connection over. Two
 * record layers face each other: "server" (under test) and "peer", made with the same two
 * secrets in opposite directions, so the peer's records are valid ones. Input layout:
 *   byte 0     suite (mod 3: AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305) and the secrets'
 *              fill byte
 *   then ops   op byte, length byte L, L payload bytes (cut to what is left):
 *              op % 8 == 0  raw bytes onto the wire
 *                        1  the peer sends the payload as application data
 *                        2  the peer sends KeyUpdate (payload byte 0 bit 0: update_requested)
 *                        3  the server sends the payload; the peer must read exactly it
 *                        4  the peer sends a record of content type payload[0] with the rest
 *                        5  the peer sends close_notify
 *                        6  the next op's wire bytes get bit (op >> 3) of their first byte
 *                           flipped
 *                        7  the server trims its buffers
 *              After each op the wire goes to the server in two feeds split at a point the
 *              op byte chooses, and the server's output goes to the peer.
 * Checks: while every op was one an honest peer sends (1, 2, 3, 5, 7), the server reads
 * exactly the application data sent, in order, answers KeyUpdate so that the peer keeps
 * reading it, and reports close_notify; after an error the server stays failed and reads
 * nothing more; after close_notify it reads nothing more; the peer can always read what the
 * server writes (until the server's own fatal alert).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "net/tls13_record.h"

static const unsigned fuzz_suites[3] = {0x1301, 0x1302, 0x1303};

typedef struct fuzz_state {
    kr_tls13 *server, *peer;
    kr_buf wire;        /* peer -> server bytes of the current op */
    kr_buf got;         /* what the server read */
    kr_buf expected;    /* what an honest peer sent as application data */
    kr_buf peer_got;    /* what the peer read from the server */
    kr_buf server_sent; /* what the server wrote */
    bool honest, server_failed, server_closed, peer_failed;
    int flip; /* -1, or the bit to flip in the next op's wire */
} fuzz_state;

static bool fuzz_same(const kr_buf *a, const kr_buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static void fuzz_die(const char *what)
{
    fprintf(stderr, "fuzz_tls13_record: %s\n", what);
    abort();
}

/* Feed the wire to the server in two parts; check what it reports against the model. */
static void fuzz_to_server(fuzz_state *s, uint8_t op)
{
    if (s->flip >= 0 && s->wire.len > 0) {
        s->wire.data[0] ^= (char)(1 << s->flip);
        s->honest = false;
        s->flip = -1;
    }
    const char *wire = s->wire.data ? s->wire.data : "";
    size_t cut = s->wire.len * (size_t)(op >> 4) / 16;
    const size_t parts[2][2] = {{0, cut}, {cut, s->wire.len}};
    for (int i = 0; i < 2; i++) {
        size_t before = s->got.len;
        int r = kr_tls13_feed(s->server, wire + parts[i][0], parts[i][1] - parts[i][0], &s->got);
        if ((s->server_failed || s->server_closed) && s->got.len != before)
            fuzz_die("read data after an error or close_notify");
        if (s->server_failed && r != KR_TLS13_ERROR)
            fuzz_die("recovered from an error");
        if (s->server_closed && !s->server_failed && r != KR_TLS13_CLOSED)
            fuzz_die("forgot close_notify");
        if (r == KR_TLS13_ERROR) {
            if (s->honest)
                fuzz_die(kr_tls13_error(s->server));
            s->server_failed = true;
        } else if (r == KR_TLS13_CLOSED) {
            s->server_closed = true;
        }
    }
    s->wire.len = 0;
    if (s->honest && !fuzz_same(&s->got, &s->expected))
        fuzz_die("the server read other data than the peer sent");
}

/* The server's records to the peer, which must read them while the server is healthy. */
static void fuzz_to_peer(fuzz_state *s)
{
    kr_buf out = KR_BUF_INIT;
    kr_tls13_pending_out(s->server, &out);
    if (out.len && !s->peer_failed) {
        int r = kr_tls13_feed(s->peer, out.data, out.len, &s->peer_got);
        if (r == KR_TLS13_ERROR) {
            if (!s->server_failed)
                fuzz_die("the peer cannot read the server");
            s->peer_failed = true; /* the server's fatal alert */
        }
    }
    kr_buf_clear(&out);
    if (!s->peer_failed && !fuzz_same(&s->peer_got, &s->server_sent))
        fuzz_die("the peer read other data than the server sent");
}

static void fuzz_op(fuzz_state *s, uint8_t op, const uint8_t *p, size_t len)
{
    switch (op % 8) {
    case 0:
        kr_buf_append(&s->wire, p, len);
        s->honest = false;
        break;
    case 1:
        if (kr_tls13_write(s->peer, (const char *)p, len) == 0 && !s->server_closed)
            kr_buf_append(&s->expected, p, len);
        break;
    case 2:
        kr_tls13_key_update(s->peer, len > 0 && (p[0] & 1));
        break;
    case 3:
        if (kr_tls13_write(s->server, (const char *)p, len) == 0)
            kr_buf_append(&s->server_sent, p, len);
        break;
    case 4:
        if (len > 0)
            kr_tls13_write_record(s->peer, p[0], p + 1, len - 1);
        s->honest = false;
        break;
    case 5:
        kr_tls13_close_notify(s->peer);
        break;
    case 6:
        s->flip = op >> 5;
        break;
    default:
        kr_tls13_trim(s->server);
        break;
    }
    kr_tls13_pending_out(s->peer, &s->wire);
    fuzz_to_server(s, op);
    fuzz_to_peer(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t secret_a[48], secret_b[48];
    memset(secret_a, data[0], sizeof(secret_a));
    memset(secret_b, data[0] ^ 0x5a, sizeof(secret_b));
    unsigned suite = fuzz_suites[data[0] % 3];
    fuzz_state s = {.honest = true, .flip = -1};
    s.server = kr_tls13_new(suite, secret_a, 0, secret_b, 0, 16384);
    s.peer = kr_tls13_new(suite, secret_b, 0, secret_a, 0, 16384);
    if (!s.server || !s.peer)
        fuzz_die("cannot make the record layers");
    size_t i = 1;
    while (i + 2 <= size) {
        uint8_t op = data[i], len = data[i + 1];
        i += 2;
        size_t n = len <= size - i ? len : size - i;
        fuzz_op(&s, op, data + i, n);
        i += n;
    }
    kr_tls13_free(s.server);
    kr_tls13_free(s.peer);
    kr_buf_clear(&s.wire);
    kr_buf_clear(&s.got);
    kr_buf_clear(&s.expected);
    kr_buf_clear(&s.peer_got);
    kr_buf_clear(&s.server_sent);
    return 0;
}
