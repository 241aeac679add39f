# SPDX-License-Identifier: AGPL-3.0-or-later
"""Offline messages (XEP-0160): messages for an account without an available resource are
stored with a XEP-0203 delay stamp and delivered in order when a session of the account
becomes available; the queue is bounded (resource-constraint), survives restarts and
SIGKILL (at-least-once: never lost); messages to accounts that do not exist bounce with
service-unavailable (RFC 6121 §8.5.1)."""

import asyncio
import datetime as dt
import time
import uuid
import xml.etree.ElementTree as ET

import pytest

from conftest import start_server, stop_server
from xmpp_raw import NS_CLIENT, q, stanza_error_condition
from xmpp_slix import Client, run

NS_DELAY = "urn:xmpp:delay"
NS_VCARD = "vcard-temp"

pytestmark = pytest.mark.kurier_only  # accounts are created with kurierctl


def _unique(prefix):
    return "%s_%s" % (prefix, uuid.uuid4().hex[:8])


def _is_message(e):
    return e.tag == q(NS_CLIENT, "message")


def _body(e):
    b = e.find(q(NS_CLIENT, "body"))
    return None if b is None else b.text


def _collect_bodies(client, count, timeout=20.0, prefix=None):
    """Bodies of the next `count` non-error messages (optionally only those starting with
    prefix), in arrival order."""
    deadline = time.monotonic() + timeout
    bodies = []
    while len(bodies) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("got %d of %d messages" % (len(bodies), count))
        e = client.wait_for(lambda el: _is_message(el) and el.get("type") != "error"
                            and _body(el) is not None
                            and (prefix is None or _body(el).startswith(prefix)),
                            timeout=remaining)
        bodies.append(_body(e))
    return bodies


def _barrier(client):
    """Returns once every message this session sent before is durable: the server holds a
    stream's later stanzas while an earlier one waits for the store (server/intake.h), so
    the answer to any later request leaves only after the messages are on disk."""
    reply = client.iq(None, "get", "<vCard xmlns='%s'/>" % NS_VCARD, timeout=30)
    assert reply.get("type") == "result"


def _send_many(client, to, prefix, count):
    for i in range(count):
        client.send_message(to, "%s %03d" % (prefix, i))


# ---------------------------------------------------------------- shared server

def test_offline_message_is_delivered_at_login_with_delay_stamp(server):
    user = _unique("off")
    bare = server.create_account(user)
    body = "while you were out " + uuid.uuid4().hex

    async def scenario():
        sender = Client(server, "alice", _unique("a"))
        recipient = Client(server, user, "r")
        recipient.register_plugin("xep_0203")
        try:
            assert await sender.start()
            before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
            sender.send_message(mto=bare, mbody=body, mtype="chat")
            await asyncio.sleep(0.5)  # stored before the recipient connects
            after = dt.datetime.now(dt.timezone.utc)
            assert await recipient.start()
            msg = await recipient.message_with_body(body)
            assert msg["type"] == "chat"
            assert msg["from"].full == sender.boundjid.full
            stamp = msg["delay"]["stamp"]
            assert stamp is not None, "no XEP-0203 delay on an offline message"
            assert stamp.tzinfo is not None and stamp.utcoffset() == dt.timedelta(0)
            assert before - dt.timedelta(seconds=1) <= stamp <= after + dt.timedelta(seconds=1)
            assert str(msg["delay"]["from"]) == server.domain
        finally:
            await asyncio.gather(sender.stop(), recipient.stop())

    run(scenario())


def test_offline_messages_are_delivered_once_in_order(server):
    user = _unique("off")
    bare = server.create_account(user)
    with server.raw() as alice:
        alice.login("alice", server.password("alice"))
        _send_many(alice, bare, "ordered", 30)
        _barrier(alice)
    with server.raw() as rcpt:
        rcpt.login(user, server.password(user), presence=True)
        assert _collect_bodies(rcpt, 30) == ["ordered %03d" % i for i in range(30)]
        rcpt.expect_nothing(_is_message, 0.5)
    # they were deleted once delivered: the next session gets nothing
    with server.raw() as rcpt:
        rcpt.login(user, server.password(user), presence=True)
        rcpt.expect_nothing(_is_message, 1.0)


def test_offline_messages_wait_for_available_presence(server):
    # XEP-0160 §3: delivered when the client sends presence with non-negative priority
    user = _unique("off")
    bare = server.create_account(user)
    with server.raw() as alice:
        alice.login("alice", server.password("alice"))
        alice.send_message(bare, "after presence")
        _barrier(alice)
    with server.raw() as rcpt:
        rcpt.login(user, server.password(user))
        rcpt.expect_nothing(_is_message, 0.7)
        rcpt.send("<presence/>")
        assert _body(rcpt.wait_message("after presence")) == "after presence"


def test_message_to_full_jid_of_gone_session_is_stored(server):
    user = _unique("off")
    bare = server.create_account(user)
    with server.raw() as alice:
        alice.login("alice", server.password("alice"))
        alice.send_message(bare + "/vanished", "to the old resource", type_="normal")
        _barrier(alice)
    with server.raw() as rcpt:
        rcpt.login(user, server.password(user), presence=True)
        msg = rcpt.wait_message("to the old resource")
        assert msg.find(q(NS_DELAY, "delay")) is not None


def test_message_to_nonexistent_account_bounces_service_unavailable(server):
    with server.raw() as alice:
        alice.login("alice", server.password("alice"))
        msg_id = alice.send_message("ghost-%s@%s" % (uuid.uuid4().hex[:8], server.domain),
                                    "anyone there?")
        reply = alice.wait_for(lambda e: _is_message(e) and e.get("id") == msg_id)
        assert reply.get("type") == "error"
        assert stanza_error_condition(reply) == "service-unavailable"


def test_headline_and_chat_state_only_messages_are_not_stored(server):
    user = _unique("off")
    bare = server.create_account(user)
    with server.raw() as alice:
        alice.login("alice", server.password("alice"))
        alice.send_message(bare, "just news", type_="headline")
        alice.send("<message to='%s' type='chat'><composing "
                   "xmlns='http://jabber.org/protocol/chatstates'/></message>" % bare)
        alice.send_message(bare, "the real one")
        _barrier(alice)
        alice.expect_nothing(lambda e: _is_message(e) and e.get("type") == "error", 0.3)
    with server.raw() as rcpt:
        rcpt.login(user, server.password(user), presence=True)
        assert _body(rcpt.wait_message()) == "the real one"
        rcpt.expect_nothing(_is_message, 0.7)


# ---------------------------------------------------------------- own servers

@pytest.fixture
def own_server(tmp_path):
    servers = []

    def start(extra_config="", accounts=("alice", "bob")):
        workdir = tmp_path / ("srv%d" % len(servers))
        workdir.mkdir()
        # One account at start, the rest one by one: several kurierctl processes creating
        # a fresh store at once can find it locked.
        srv = start_server(workdir, extra_config, accounts=list(accounts[:1]))
        servers.append(srv)
        for localpart in accounts[1:]:
            srv.create_account(localpart)
        return srv

    yield start
    # Let the server finish closing the sessions the test just ended before SIGTERM: a
    # storage job submitted by a session closing during shutdown is a known race of
    # main.c (storage stopped before the workers are done), not what these tests check.
    time.sleep(0.3)
    for srv in servers:
        stop_server(srv)


def test_offline_quota_bounces_resource_constraint(own_server):
    srv = own_server("offline:\n  max_messages: 3\n")
    with srv.raw() as alice:
        alice.login("alice", srv.password("alice"))
        ids = [alice.send_message(srv.jid("bob"), "quota %d" % i) for i in range(5)]
        for msg_id in ids[3:]:
            reply = alice.wait_for(lambda e, i=msg_id: _is_message(e) and e.get("id") == i)
            assert reply.get("type") == "error"
            assert stanza_error_condition(reply) == "resource-constraint"
            assert reply.find(q(NS_CLIENT, "error")).get("type") == "wait"
        for msg_id in ids[:3]:
            alice.expect_nothing(lambda e, i=msg_id: _is_message(e) and e.get("id") == i, 0.1)
    with srv.raw() as bob:
        bob.login("bob", srv.password("bob"), presence=True)
        assert _collect_bodies(bob, 3) == ["quota 0", "quota 1", "quota 2"]
        bob.expect_nothing(_is_message, 0.5)


def test_offline_disabled_bounces_service_unavailable(own_server):
    srv = own_server("offline:\n  enabled: false\n")
    with srv.raw() as alice:
        alice.login("alice", srv.password("alice"))
        msg_id = alice.send_message(srv.jid("bob"), "no storage here")
        reply = alice.wait_for(lambda e: _is_message(e) and e.get("id") == msg_id)
        assert stanza_error_condition(reply) == "service-unavailable"


def test_offline_messages_survive_restart(own_server):
    srv = own_server()
    with srv.raw() as alice:
        alice.login("alice", srv.password("alice"))
        _send_many(alice, srv.jid("bob"), "restart", 5)
        _barrier(alice)
    srv.restart()
    with srv.raw() as bob:
        bob.login("bob", srv.password("bob"), presence=True)
        assert _collect_bodies(bob, 5) == ["restart %03d" % i for i in range(5)]


def test_offline_messages_survive_kill_9_while_sending(own_server):
    # Every message that was stored before SIGKILL is delivered after the restart. The
    # barrier (a storage job queued after the 200 pushes) tells when all are stored; the
    # kill comes right after, so nothing may be missing, and as none was delivered before,
    # none may come twice either.
    srv = own_server()
    count = 200
    alice = srv.raw(timeout=30)
    try:
        alice.login("alice", srv.password("alice"))
        _send_many(alice, srv.jid("bob"), "crash", count)
        _barrier(alice)
        time.sleep(1.0)
        srv.restart(kill=True)
    finally:
        alice.close()
    with srv.raw(timeout=30) as bob:
        bob.login("bob", srv.password("bob"), presence=True)
        bodies = _collect_bodies(bob, count, timeout=60)
        assert bodies == ["crash %03d" % i for i in range(count)]
        bob.expect_nothing(_is_message, 0.5)


def test_a_pong_means_every_earlier_message_is_on_disk(own_server):
    # The bare barrier: 300 messages to an offline contact, then a ping to the server (no
    # storage of its own); SIGKILL the moment the pong arrives. Every message must be there
    # after the restart: the pong could only leave after the last of them was durable.
    srv = own_server()
    count = 300
    alice = srv.raw(timeout=30)
    try:
        alice.login("alice", srv.password("alice"))
        _send_many(alice, srv.jid("bob"), "pong", count)
        reply = alice.iq(srv.domain, "get", "<ping xmlns='urn:xmpp:ping'/>", timeout=60)
        assert reply.get("type") == "result"
        srv.restart(kill=True)
    finally:
        alice.close()
    with srv.raw(timeout=30) as bob:
        bob.login("bob", srv.password("bob"), presence=True)
        bodies = _collect_bodies(bob, count, timeout=60)
        assert bodies == ["pong %03d" % i for i in range(count)]
        bob.expect_nothing(_is_message, 0.5)


def test_offline_messages_are_not_lost_when_killed_during_delivery(own_server):
    # Killed while the queue is being handed over: whatever the first session did not get
    # must come in the next one (duplicates are allowed, loss is not).
    srv = own_server()
    count = 300
    with srv.raw(timeout=30) as alice:
        alice.login("alice", srv.password("alice"))
        _send_many(alice, srv.jid("bob"), "flush", count)
        _barrier(alice)
    got = set()
    bob = srv.raw(timeout=30)
    try:
        bob.login("bob", srv.password("bob"), presence=True)
        got.update(_collect_bodies(bob, 1))
        srv.restart(kill=True)
        try:
            while True:
                got.update(_collect_bodies(bob, 1, timeout=5))
        except Exception:
            pass  # the connection died with the server
    finally:
        bob.close()
    with srv.raw(timeout=30) as bob:
        bob.login("bob", srv.password("bob"), presence=True)
        try:
            while True:
                got.update(_collect_bodies(bob, 1, timeout=3))
        except (AssertionError, TimeoutError):
            pass
    missing = {"flush %03d" % i for i in range(count)} - got
    assert not missing, "lost %d messages, e.g. %s" % (len(missing), sorted(missing)[:5])
