# SPDX-License-Identifier: AGPL-3.0-or-later
"""Crash safety of the offline store (issue 5): kurierd is killed with SIGKILL while 20
clients send to offline users. A message counts as acknowledged when the server has
answered a vCard request the sender made after it to the same recipient: the server holds a
stream's later stanzas while an earlier one waits for the store (server/intake.h), so that
answer leaves only after every earlier message of the stream is committed (any later request
would do; test_offline.py shows it with a ping). After the restart every acknowledged
message is delivered exactly once, nothing is delivered twice, and the SQLite store passes
PRAGMA integrity_check."""

import sqlite3
import threading
import time

import pytest

from conftest import start_server, stop_server
from xmpp_raw import NS_CLIENT, q

pytestmark = pytest.mark.kurier_only  # accounts are created with kurierctl

SENDERS = 20
RECIPIENTS = 5
BATCH = 10
NS_VCARD = "vcard-temp"


def _is_chat(e):
    return (e.tag == q(NS_CLIENT, "message") and e.get("type") != "error"
            and e.find(q(NS_CLIENT, "body")) is not None)


class _Sender(threading.Thread):
    """Sends batches to its recipient until stopped or the server dies; remembers which
    bodies the server acknowledged (stored before the answer to a later storage job)."""

    def __init__(self, srv, index, stop):
        super().__init__(daemon=True)
        self.srv, self.index, self.stop = srv, index, stop
        self.to = srv.jid("r%d" % (index % RECIPIENTS))
        self.sent, self.acked = [], []
        self.ready = threading.Event()
        self.error = None

    def run(self):
        client = self.srv.raw(timeout=10)
        try:
            client.login("s%d" % self.index, self.srv.password("s%d" % self.index))
            self.ready.set()
            n = 0
            while not self.stop.is_set():
                batch = []
                for _ in range(BATCH):
                    body = "s%d-%05d" % (self.index, n)
                    n += 1
                    client.send_message(self.to, body)
                    batch.append(body)
                self.sent.extend(batch)
                reply = client.iq(self.to, "get", "<vCard xmlns='%s'/>" % NS_VCARD, timeout=10)
                if reply.get("type") == "result":
                    self.acked.extend(batch)
                time.sleep(0.02)  # about 500 messages/s per sender
        except Exception as e:  # the server was killed under us: expected
            self.error = e
        finally:
            self.ready.set()
            client.close()


def _drain(srv, localpart, quiet=3.0):
    bodies = []
    with srv.raw(timeout=30) as c:
        c.login(localpart, srv.password(localpart), presence=True)
        while True:
            try:
                e = c.wait_for(_is_chat, timeout=quiet)
            except (AssertionError, TimeoutError):
                return bodies
            bodies.append(e.find(q(NS_CLIENT, "body")).text)


def _integrity(db):
    con = sqlite3.connect(str(db), timeout=30)
    try:
        return [r[0] for r in con.execute("PRAGMA integrity_check")]
    finally:
        con.close()


def test_kill_9_while_twenty_clients_send_to_offline_users(tmp_path):
    accounts = ["s%d" % i for i in range(SENDERS)] + ["r%d" % i for i in range(RECIPIENTS)]
    # Room for everything sent: a quota bounce would make an acknowledged message unstored.
    srv = start_server(tmp_path, "offline: {enabled: true, max_messages: 100000}",
                       accounts=accounts[:1])
    try:
        for localpart in accounts[1:]:
            srv.create_account(localpart)
        stop = threading.Event()
        senders = [_Sender(srv, i, stop) for i in range(SENDERS)]
        for s in senders:
            s.start()
        for s in senders:
            assert s.ready.wait(30), "sender did not log in"
        assert all(s.error is None for s in senders), [s.error for s in senders if s.error]
        time.sleep(2.0)  # all 20 are sending now
        srv.restart(kill=True)
        stop.set()
        for s in senders:
            s.join(30)
        acked = [b for s in senders for b in s.acked]
        sent = {b for s in senders for b in s.sent}
        assert len(acked) >= SENDERS * BATCH, "too few acknowledged messages to judge"

        got = []
        for i in range(RECIPIENTS):
            got.extend(_drain(srv, "r%d" % i))
        counts = {}
        for b in got:
            counts[b] = counts.get(b, 0) + 1
        missing = [b for b in acked if b not in counts]
        twice = sorted(b for b, n in counts.items() if n > 1)
        unknown = sorted(b for b in counts if b not in sent)
        print("\nsent %d, acknowledged %d, delivered %d after the kill"
              % (len(sent), len(acked), len(got)))
        assert not missing, "lost %d acknowledged messages, e.g. %s" % (len(missing), missing[:5])
        assert not twice, "delivered twice: %s" % twice[:5]
        assert not unknown, "delivered messages nobody sent: %s" % unknown[:5]
        assert _integrity(tmp_path / "data" / "kurier.db") == ["ok"]
    finally:
        stop_server(srv)
    assert _integrity(tmp_path / "data" / "kurier.db") == ["ok"]
