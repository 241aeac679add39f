# SPDX-License-Identifier: AGPL-3.0-or-later
"""Step 2, the refusals of issue 6: a peer without TLS is refused, a forged dialback key
is refused, an unreachable domain bounces remote-server-not-found in the configured time.

kurierd's s2s.hosts (conftest.kurier_s2s_config) maps notls.test to a fake server of this
file that speaks XMPP but offers no STARTTLS, and unreachable.test to an address where
nothing listens. Skipped like test_kurier_s2s.py while kurierd refuses the s2s keys.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from xml.sax.saxutils import quoteattr

from federation import login
from peers import KURIER_CONNECT_TIMEOUT_S
from xmpp_slix import run

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from xmpp_raw import RawClient, ServerStreamError, StreamClosed, q  # noqa: E402

NS_DB = "jabber:server:dialback"
BOUNCE_SLACK_S = 5.0


async def _bounce(kurier, to: str):
    """Log in a Kurier user, send a message to `to`; returns (error message, seconds)."""
    a = await login(kurier, kurier.take_user())
    errors: asyncio.Queue = asyncio.Queue()
    a.add_event_handler("message_error", errors.put_nowait)
    try:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        a.send_message(mto=to, mbody="to nowhere " + uuid.uuid4().hex, mtype="chat")
        limit = KURIER_CONNECT_TIMEOUT_S + BOUNCE_SLACK_S
        try:
            err = await asyncio.wait_for(errors.get(), limit)
        except asyncio.TimeoutError:
            raise AssertionError("no error bounce for a message to %s within %.0f s "
                                 "(s2s.connect_timeout_s %d + %.0f)" % (
                                     to, limit, KURIER_CONNECT_TIMEOUT_S,
                                     BOUNCE_SLACK_S)) from None
        return err, loop.time() - t0
    finally:
        await a.stop()


def test_unreachable_domain_bounces_remote_server_not_found(world, kurier):
    err, took = run(_bounce(kurier, "someone@unreachable.test"), timeout=60)
    assert err["from"].bare == "someone@unreachable.test", "bounce from %s" % err["from"]
    assert err["error"]["condition"] == "remote-server-not-found", \
        "bounce condition %r, type %r" % (err["error"]["condition"], err["error"]["type"])
    assert err["error"]["type"] == "cancel"


class PlainServer:
    """A fake server for notls.test: answers the stream header with features that offer
    dialback but no STARTTLS, and records every byte it is sent."""

    def __init__(self, addr: str):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, 5269))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.connections = 0
        self.received = b""
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            self.connections += 1
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        conn.settimeout(0.5)
        answered = False
        deadline = time.monotonic() + 30
        with conn:
            while not self.stopping and time.monotonic() < deadline:
                try:
                    data = conn.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if not data:
                    return
                self.received += data
                if not answered and b"<stream:stream" in self.received:
                    answered = True
                    conn.sendall(
                        b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                        b"xmlns:stream='http://etherx.jabber.org/streams' "
                        b"xmlns:db='jabber:server:dialback' from='notls.test' "
                        b"id='plain-1' version='1.0'><stream:features>"
                        b"<dialback xmlns='urn:xmpp:features:dialback'/>"
                        b"</stream:features>")

    def stop(self) -> None:
        self.stopping = True
        self.thread.join(5)
        self.sock.close()


def test_peer_without_tls_is_refused(world, kurier):
    """Kurier must not send anything but the stream header to a server that offers no
    TLS; the sender gets remote-server-not-found, and Kurier's log names the reason."""
    fake = PlainServer(world.env.net.notls)
    try:
        err, _ = run(_bounce(kurier, "someone@notls.test"), timeout=60)
    finally:
        fake.stop()
    assert fake.connections >= 1, "kurierd never connected to notls.test's server"
    sent = fake.received.decode(errors="replace")
    for forbidden in ("<message", "db:result", "<result", "<auth"):
        assert forbidden not in sent, "kurierd sent %r without TLS:\n%s" % (forbidden, sent)
    assert err["error"]["condition"] == "remote-server-not-found", \
        "bounce condition %r" % err["error"]["condition"]
    lines = [line for line in kurier.log_text().splitlines()
             if "notls.test" in line and "tls" in line.lower()]
    assert lines, "kurierd's log has no line naming notls.test and TLS:\n" + kurier.log_tail(30)


class RawS2S(RawClient):
    """An initiating server's stream (jabber:server, with the dialback namespace)."""

    def __init__(self, host: str, port: int, from_domain: str, to_domain: str, ca: str):
        super().__init__(host, port, to_domain, ca, timeout=10)
        self.from_domain = from_domain

    def stream_header_xml(self) -> str:
        return ("<stream:stream xmlns='jabber:server' "
                "xmlns:stream='http://etherx.jabber.org/streams' "
                "xmlns:db='jabber:server:dialback' from=%s to=%s version='1.0'>"
                % (quoteattr(self.from_domain), quoteattr(self.domain)))


def test_forged_dialback_key_is_refused(world, kurier):
    """A stream claiming to be ejabberd.test sends a made-up dialback key (XEP-0220 §2.1).
    Kurier must not accept it (ejabberd.test, asked, does not know the key), and a message
    'from' ejabberd.test sent on that stream must never reach the Kurier user."""
    net = world.env.net
    raw = RawS2S(net.kurier, 5269, "ejabberd.test", "kurier.test", kurier.ca).connect()
    target = kurier.take_user()
    body = "forged " + uuid.uuid4().hex
    result = None
    try:
        feats = raw.open_stream()
        assert feats.find(q("urn:ietf:params:xml:ns:xmpp-tls", "starttls")) is not None, \
            "kurierd's s2s offers no STARTTLS: %s" % ET.tostring(feats, encoding="unicode")
        raw.starttls()
        raw.send("<db:result from='ejabberd.test' to='kurier.test'>%s</db:result>"
                 % ("f0" * 32))
        try:
            el = raw.wait_for(lambda e: e.tag == q(NS_DB, "result"), timeout=20)
            result = el.get("type")
        except (ServerStreamError, StreamClosed, TimeoutError):
            result = None   # a stream error, a closed stream or silence: not accepted
        assert result != "valid", "kurierd accepted a forged dialback key"
        stanza = ("<message from='user0@ejabberd.test/forger' to='%s@kurier.test' "
                  "type='chat'><body>%s</body></message>" % (target, body))
        try:
            raw.send(stanza)
        except OSError:
            pass

        async def never_delivered():
            c = await login(kurier, target)
            try:
                try:
                    raw.send(stanza)   # once more, now that the user is online
                except OSError:
                    pass
                try:
                    msg = await c.message_with_body(body, timeout=5)
                except asyncio.TimeoutError:
                    return
                raise AssertionError("a message on the forged stream was delivered: %s"
                                     % msg)
            finally:
                await c.stop()
        run(never_delivered(), timeout=60)
    finally:
        raw.close()
