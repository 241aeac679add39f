# SPDX-License-Identifier: AGPL-3.0-or-later
"""Routing of stanzas between local clients: delivery to full and bare JIDs (RFC 6121
§8.5), 'from' stamped with the sender's full JID (RFC 6120 §8.1.2.1), resource
conflicts (RFC 6120 §7.7.2.2, §4.9.3.3), no loss, duplication or reordering under load,
and what happens to stanzas for absent resources (RFC 6121 §8.5.2.2, §8.5.3.2)."""

import asyncio
import uuid

import pytest

from xmpp_raw import NS_CLIENT, q, stanza_error_condition
from xmpp_slix import Client, run

LOAD_CLIENTS = 50
LOAD_MESSAGES = 100


def _unique(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


# ---------------------------------------------------------------- alice <-> bob

def test_message_alice_bob_both_ways_full_and_bare_jid(server):
    async def scenario():
        alice = Client(server, "alice", _unique("a"))
        bob = Client(server, "bob", _unique("b"))
        try:
            assert all(await asyncio.gather(alice.start(), bob.start()))
            # give the initial presences time to register the resources as available
            await asyncio.sleep(0.3)
            for sender, receiver in ((alice, bob), (bob, alice)):
                for target in (receiver.boundjid.full, receiver.boundjid.bare):
                    body = "hello %s from %s via %s" % (receiver.boundjid.user,
                                                        sender.boundjid.user, target)
                    sender.send_message(mto=target, mbody=body, mtype="chat")
                    msg = await receiver.message_with_body(body)
                    assert msg["type"] == "chat"
                    assert msg["from"].full == sender.boundjid.full
                    assert msg["to"].bare == receiver.boundjid.bare
        finally:
            await asyncio.gather(alice.stop(), bob.stop())
    run(scenario(), timeout=40)


def test_messages_both_ways_after_both_streams_went_idle(server):
    # After 3 s of silence a bound stream gives back its parser and buffers (c2s.c,
    # KR_C2S_TRIM_MS); the next bytes must rebuild them, on the receiving side too.
    async def scenario():
        alice = Client(server, "alice", _unique("a"))
        bob = Client(server, "bob", _unique("b"))
        try:
            assert all(await asyncio.gather(alice.start(), bob.start()))
            for rnd in range(2):
                await asyncio.sleep(4.0)
                for sender, receiver in ((alice, bob), (bob, alice)):
                    body = "after idle %d from %s" % (rnd, sender.boundjid.user)
                    sender.send_message(mto=receiver.boundjid.full, mbody=body, mtype="chat")
                    msg = await receiver.message_with_body(body)
                    assert msg["from"].full == sender.boundjid.full
        finally:
            await asyncio.gather(alice.stop(), bob.stop())
    run(scenario(), timeout=60)


# ---------------------------------------------------------------- load

def test_fifty_clients_each_receive_exactly_their_hundred_messages_in_order(server):
    async def scenario():
        clients = [Client(server, "load%d" % i, _unique("load"), presence=False)
                   for i in range(LOAD_CLIENTS)]
        try:
            started = await asyncio.gather(*(c.start(timeout=40) for c in clients))
            assert all(started), "some load clients failed to log in"
            received = {i: [] for i in range(LOAD_CLIENTS)}
            done = asyncio.get_running_loop().create_future()
            remaining = [LOAD_CLIENTS * LOAD_MESSAGES]

            def collector(i):
                def on_message(msg):
                    received[i].append((msg["from"].full, msg["body"]))
                    remaining[0] -= 1
                    if remaining[0] == 0 and not done.done():
                        done.set_result(True)
                return on_message

            for i, c in enumerate(clients):
                c.del_event_handler("message", c._on_message)
                c.add_event_handler("message", collector(i))
            for i, c in enumerate(clients):
                target = clients[(i + 1) % LOAD_CLIENTS].boundjid.full
                for n in range(LOAD_MESSAGES):
                    c.send_message(mto=target, mbody="%d:%d" % (i, n), mtype="chat")
            try:
                await asyncio.wait_for(done, 60)
            except asyncio.TimeoutError:
                pass
            await asyncio.sleep(0.5)  # catch duplicates arriving late
            for i, c in enumerate(clients):
                sender_index = (i - 1) % LOAD_CLIENTS
                sender = clients[sender_index].boundjid.full
                expected = [(sender, "%d:%d" % (sender_index, n)) for n in range(LOAD_MESSAGES)]
                got = received[i]
                assert got == expected, (
                    "load%d got %d messages (expected %d); first difference at %r"
                    % (i, len(got), LOAD_MESSAGES,
                       next((k for k, (a, b) in enumerate(zip(got, expected)) if a != b),
                            min(len(got), len(expected)))))
        finally:
            await asyncio.gather(*(c.stop() for c in clients), return_exceptions=True)
    run(scenario(), timeout=120)


# ---------------------------------------------------------------- resource conflict

def test_second_login_with_same_resource_kicks_first_with_conflict(server):
    resource = _unique("dup")
    with server.raw() as first, server.raw() as second, server.raw() as bob:
        first_jid = first.login("alice", server.password("alice"), resource)
        assert first_jid == "%s/%s" % (server.jid("alice"), resource)
        bob_jid = bob.login("bob", server.password("bob"))
        second_jid = second.login("alice", server.password("alice"), resource)
        assert second_jid == first_jid
        assert first.expect_stream_error() == "conflict"
        first.expect_closed()
        # the new session is the one that now receives and sends
        bob.send_message(second_jid, "to the new session")
        msg = second.wait_message("to the new session")
        assert msg.get("from") == bob_jid
        second.send_message(bob_jid, "from the new session")
        assert bob.wait_message("from the new session").get("from") == second_jid


# ---------------------------------------------------------------- from stamping

def test_spoofed_from_is_replaced_by_sender_full_jid(server):
    with server.raw() as alice, server.raw() as carol:
        alice_jid = alice.login("alice", server.password("alice"))
        carol_jid = carol.login("carol", server.password("carol"))
        alice.send_message(carol_jid, "spoofed", extra_attrs=" from='%s/x'" % server.jid("bob"))
        msg = carol.wait_message("spoofed")
        assert msg.get("from") == alice_jid


# ---------------------------------------------------------------- absent recipients

def test_iq_to_offline_full_jid_gets_service_unavailable(server):
    with server.raw() as alice:
        alice.login("alice", server.password("alice"))
        target = "%s/%s" % (server.jid("bob"), _unique("gone"))
        reply = alice.iq(target, "get", "<ping xmlns='urn:xmpp:ping'/>")
        assert reply.get("type") == "error"
        assert stanza_error_condition(reply) == "service-unavailable"
        assert reply.get("from") == target


@pytest.mark.kurier_only  # RFC 6121 §8.5.1 also allows silently dropping it
def test_chat_message_to_nonexistent_account_bounces_service_unavailable(server):
    # RFC 6121 §8.5.1: no such user -> we answer <service-unavailable/>. (A chat
    # message to an existing account without a session is stored offline: test_offline.py.)
    with server.raw() as alice:
        alice.login("alice", server.password("alice"))
        msg_id = alice.send_message("no-such-user-%s@%s" % (uuid.uuid4().hex[:8], server.domain),
                                    "nobody home")
        reply = alice.wait_for(lambda e: e.tag == q(NS_CLIENT, "message")
                               and e.get("id") == msg_id)
        assert reply.get("type") == "error"
        assert stanza_error_condition(reply) == "service-unavailable"


def test_iq_to_unknown_local_account_gets_service_unavailable(server):
    # RFC 6121 §8.5.1: no such user -> an IQ MUST get <service-unavailable/>
    with server.raw() as alice:
        alice.login("alice", server.password("alice"))
        reply = alice.iq("no-such-user@%s" % server.domain, "get",
                         "<query xmlns='jabber:iq:version'/>")
        assert reply.get("type") == "error"
        assert stanza_error_condition(reply) == "service-unavailable"
