# SPDX-License-Identifier: AGPL-3.0-or-later
"""What "federation works" means in these tests, as one scenario between two servers.

A user on server A and a user on server B (slixmpp clients, each logged in on its own
server) go through RFC 6121 exactly as two local users would:
  1. a message A -> B and one B -> A (each server's s2s carries it out and in);
  2. the subscription handshake both ways (subscribe / subscribed, §3.1): each request is
     delivered to the contact, each approval shows in the requester's roster (to, then
     both on both sides);
  3. presence across: after the handshake each sees the other's available presence (the
     servers probe, §4.3), then a changed presence (show/status) of B reaches A and one of A
     reaches B.
Clients do not auto-answer subscription requests: the test does each step itself, so a
missing or misrouted stanza fails the step that needed it, with its name.
"""

from __future__ import annotations

import asyncio
import re
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from xmpp_slix import Client  # noqa: E402  (tests/integration's slixmpp client)

STEP_TIMEOUT_S = 20.0   # first stanza to a domain includes connect + TLS + auth


class FedClient(Client):
    """Client that records presence and leaves subscription answers to the test."""

    def __init__(self, server, user: str):
        super().__init__(server, user, "interop-" + uuid.uuid4().hex[:6],
                         sasl_mech=getattr(server, "sasl_mech", "SCRAM-SHA-256"))
        self.auto_authorize = None
        self.auto_subscribe = False
        self.presences: list = []          # every presence received, in order
        self.presence_arrived = asyncio.Event()
        self.add_event_handler("presence", self._on_presence)

    def _on_presence(self, p) -> None:
        self.presences.append(p)
        self.presence_arrived.set()

    @property
    def bare(self) -> str:
        return self.boundjid.bare

    async def presence_from(self, bare: str, ptype: str, what: str,
                            match=lambda p: True, timeout: float = STEP_TIMEOUT_S):
        """The first presence of this type from bare not yet taken, whenever it came (a
        server may send a contact's presence before the test starts waiting for it)."""
        async def find():
            while True:
                for i, p in enumerate(self.presences):
                    if p["from"].bare == bare and p["type"] == ptype and match(p):
                        return self.presences.pop(i)
                self.presence_arrived.clear()
                await self.presence_arrived.wait()
        try:
            return await asyncio.wait_for(find(), timeout)
        except asyncio.TimeoutError:
            got = ["%s from %s" % (p["type"], p["from"]) for p in self.presences]
            raise AssertionError("%s: %s never got presence type=%r from %s within %.0f s "
                                 "(untaken presences: %s)" % (what, self.boundjid, ptype, bare,
                                                              timeout, got)) from None

    async def message_from(self, body: str, what: str, timeout: float = STEP_TIMEOUT_S):
        try:
            return await self.message_with_body(body, timeout)
        except asyncio.TimeoutError:
            raise AssertionError("%s: %s never got the message %r within %.0f s"
                                 % (what, self.boundjid, body, timeout)) from None


async def login(server, user: str) -> FedClient:
    c = FedClient(server, user)
    try:
        ok = await c.start(timeout=15)
    except asyncio.TimeoutError:
        raise AssertionError("%s could not log in on %s (%s:%d) within 15 s"
                             % (user, server.domain, server.host, server.port)) from None
    if not ok:
        raise AssertionError("%s@%s: login refused (%s)" % (user, server.domain,
                                                            c.auth_failures))
    # Available only once the server has handled the initial presence, which it reflects to
    # the sending resource (RFC 6121 §4.2.2); until then a message to the bare JID may be
    # bounced (no available resource), so wait for the reflection before going on.
    await c.presence_from(c.bare, "available", "initial presence of %s reflected" % c.bare,
                          match=lambda p: p["from"].full == c.boundjid.full, timeout=10)
    return c


async def roster_reaches(c: FedClient, bare: str, wanted, what: str,
                        timeout: float = STEP_TIMEOUT_S) -> None:
    """Wait until c's roster (fetched from its server) has bare with a subscription in
    wanted. Servers tell the user of an approval by a roster push (RFC 6121 §3.1.6);
    delivering the 'subscribed' presence itself is not done by every server (Prosody 0.12
    does not), so the roster is what is checked."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    sub = "(no roster)"
    while loop.time() < deadline:
        await c.get_roster(timeout=10)
        roster = c.client_roster
        sub = roster[bare]["subscription"] if bare in roster else "(not in roster)"
        if sub in wanted:
            return
        await asyncio.sleep(0.3)
    raise AssertionError("%s: %s's roster has %s with subscription %s after %.0f s, "
                         "wanted %s" % (what, c.bare, bare, sub, timeout, "/".join(wanted)))


async def messages_both_ways(a: FedClient, b: FedClient) -> None:
    body = "a->b " + uuid.uuid4().hex
    a.send_message(mto=b.bare, mbody=body, mtype="chat")
    msg = await b.message_from(body, "message %s -> %s" % (a.bare, b.bare))
    assert msg["from"].bare == a.bare, "message arrived from %s" % msg["from"]
    body = "b->a " + uuid.uuid4().hex
    b.send_message(mto=a.boundjid.full, mbody=body, mtype="chat")
    msg = await a.message_from(body, "message %s -> %s" % (b.bare, a.bare))
    assert msg["from"].full == b.boundjid.full, "reply arrived from %s" % msg["from"]


async def subscription_handshake(a: FedClient, b: FedClient) -> None:
    a.send_presence(pto=b.bare, ptype="subscribe")
    await b.presence_from(a.bare, "subscribe", "subscription request A -> B")
    b.send_presence(pto=a.bare, ptype="subscribed")
    await roster_reaches(a, b.bare, ("to",), "approval B -> A")
    b.send_presence(pto=a.bare, ptype="subscribe")
    await a.presence_from(b.bare, "subscribe", "subscription request B -> A")
    a.send_presence(pto=b.bare, ptype="subscribed")
    await roster_reaches(b, a.bare, ("both",), "approval A -> B")
    await roster_reaches(a, b.bare, ("both",), "A's roster after both approvals")


async def presence_across(a: FedClient, b: FedClient) -> None:
    # Both are online and now subscribed both ways: each server must have probed the other
    # (or forwarded the initial presence) so each sees the other available.
    await a.presence_from(b.bare, "available", "B's current presence at A")
    await b.presence_from(a.bare, "available", "A's current presence at B")
    for src, dst, name in ((b, a, "B -> A"), (a, b, "A -> B")):
        status = "interop " + uuid.uuid4().hex[:8]
        src.send_presence(pshow="away", pstatus=status)
        p = await dst.presence_from(src.bare, "away", "changed presence " + name,
                                    match=lambda p, s=status: p["status"] == s)
        assert p["from"].full == src.boundjid.full


async def federate(server_a, server_b) -> None:
    """The whole scenario with fresh users on each server (each server has take_user())."""
    a = await login(server_a, server_a.take_user())
    b = await login(server_b, server_b.take_user())
    try:
        await messages_both_ways(a, b)
        await subscription_handshake(a, b)
        await presence_across(a, b)
    finally:
        await asyncio.gather(a.stop(), b.stop(), return_exceptions=True)


# ------------------------------------------------------------------ which s2s auth was used

def _s2s_auth_in_log(kind: str, log: str, local: str, remote: str, direction: str):
    """"EXTERNAL", "dialback" or None: how the stream between local and remote in this
    direction ("in": remote's stream to local, "out": local's to remote) authenticated,
    read from the log of a peer of this kind (ejabberd at loglevel info, Prosody at debug)."""
    r, l_ = re.escape(remote), re.escape(local)
    if kind == "ejabberd":
        pat = (r"Accepted inbound s2s (EXTERNAL|dialback) authentication %s -> %s" % (r, l_)
               if direction == "in" else
               r"Accepted outbound s2s (EXTERNAL|dialback) authentication %s -> %s" % (l_, r))
        m = re.search(pat, log)
        return m.group(1) if m else None
    if kind == "prosody":
        if direction == "in":
            done = r"connection %s->%s is now authenticated for %s" % (r, l_, r)
            external = r"Accepting SASL EXTERNAL identity from %s" % r
        else:
            done = r"connection %s->%s is now authenticated for %s" % (l_, r, r)
            external = r"SASL EXTERNAL with %s succeeded" % r
        if not re.search(done, log):
            return None
        return "EXTERNAL" if re.search(external, log) else "dialback"
    raise ValueError(kind)


def assert_s2s_auth(peer, remote: str, expected: str) -> None:
    """Both streams between peer and remote authenticated with expected, per peer's log."""
    log = peer.log_text()
    for direction, name in (("in", "%s -> %s" % (remote, peer.domain)),
                            ("out", "%s -> %s" % (peer.domain, remote))):
        got = _s2s_auth_in_log(peer.kind, log, peer.domain, remote, direction)
        if got != expected:
            raise AssertionError(
                "s2s %s: %s's log shows %s, expected %s; log tail:\n%s"
                % (name, peer.kind, "authentication by " + got if got else
                   "no authenticated stream", expected, peer.log_tail(25)))
