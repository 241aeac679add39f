# SPDX-License-Identifier: AGPL-3.0-or-later
"""Presence subscriptions (RFC 6121 §3, Appendix A) and presence (§4): every subscription
transition with the contact online and offline, pre-approval (§3.4), which stanzas are
delivered and which are dropped, broadcast to subscribers and own resources, unavailable
presence on disconnect, directed presence (§4.6), and probes at login (§4.3). Every test
uses fresh accounts."""

import asyncio
from xml.sax.saxutils import quoteattr

from im_helpers import (drain, fresh, login, no_presence, roster_get, roster_items, roster_set,
                        subscribe_both, sync, wait_presence, wait_push)
from xmpp_raw import stanza_error_condition
from xmpp_slix import Client, run


def _send(c, type_, to):
    c.send("<presence type='%s' to=%s/>" % (type_, quoteattr(to)))


def _pair(server):
    a, b = fresh(server, "pres"), fresh(server, "pres")
    return a, server.jid(a), b, server.jid(b)


def _sub(server, jid_items, jid):
    return jid_items[jid].get("subscription"), jid_items[jid].get("ask")


# ---- subscriptions, both online -------------------------------------------------------------

def test_subscribe_and_approve_with_both_online(server):
    a, aj, b, bj = _pair(server)
    with login(server, a) as alice, login(server, b) as bob:
        wait_presence(bob, "available", bj, bare=True)
        _send(alice, "subscribe", bj + "/ignored")  # a full JID: handled as the bare JID
        # §3.1.2: pending out for the user, shown as ask='subscribe'.
        item = wait_push(alice, bj, subscription="none", ask="subscribe")
        req = wait_presence(bob, "subscribe", aj)
        assert req.get("to") == bj  # stamped with bare JIDs both ends
        # §3.1.3: pending in is not part of the contact's roster.
        assert aj not in roster_items(roster_get(bob))
        _send(bob, "subscribed", aj)
        wait_push(bob, aj, subscription="from")
        wait_push(alice, bj, subscription="to", ask=None)
        wait_presence(alice, "subscribed", bj)
        # §3.1.5: the contact's current presence follows the approval.
        pres = wait_presence(alice, "available", bj, bare=True)
        assert pres.get("to") == aj
        assert item.get("jid") == bj
        assert _sub(server, roster_items(roster_get(alice)), bj) == ("to", None)
        assert _sub(server, roster_items(roster_get(bob)), aj) == ("from", None)


def test_mutual_subscription_ends_in_both(server):
    a, aj, b, bj = _pair(server)
    with login(server, a) as alice, login(server, b) as bob:
        subscribe_both(server, alice, aj, bob, bj)
        assert _sub(server, roster_items(roster_get(alice)), bj) == ("both", None)
        assert _sub(server, roster_items(roster_get(bob)), aj) == ("both", None)


def test_duplicate_request_is_not_delivered_again(server):
    # A.3.1: "None + Pending In" -> no delivery.
    a, aj, b, bj = _pair(server)
    with login(server, a) as alice, login(server, b) as bob:
        _send(alice, "subscribe", bj)
        wait_presence(bob, "subscribe", aj)
        _send(alice, "subscribe", bj)
        sync(alice)
        no_presence(bob, "subscribe", aj)


def test_request_from_a_subscriber_is_not_delivered(server):
    # A.3.1: the contact already has 'from': not delivered; the server answers 'subscribed'
    # for the contact, which the user's server drops as the user already has 'to' (A.3.3).
    a, aj, b, bj = _pair(server)
    with login(server, a) as alice, login(server, b) as bob:
        subscribe_both(server, alice, aj, bob, bj)
        drain(alice)
        drain(bob)
        _send(alice, "subscribe", bj)
        sync(alice)
        no_presence(bob, "subscribe", aj)
        no_presence(alice, "subscribed", bj, seconds=0.3)
        assert _sub(server, roster_items(roster_get(alice)), bj) == ("both", None)
        assert _sub(server, roster_items(roster_get(bob)), aj) == ("both", None)


def test_denied_request_clears_pending_out(server):
    a, aj, b, bj = _pair(server)
    with login(server, a) as alice, login(server, b) as bob:
        _send(alice, "subscribe", bj)
        wait_push(alice, bj, ask="subscribe")
        wait_presence(bob, "subscribe", aj)
        _send(bob, "unsubscribed", aj)  # §3.2.1: deny
        wait_presence(alice, "unsubscribed", bj)
        wait_push(alice, bj, subscription="none", ask=None)
        assert _sub(server, roster_items(roster_get(alice)), bj) == ("none", None)
        # The request is gone: not delivered again at the next login.
    with login(server, b) as bob2:
        sync(bob2)
        no_presence(bob2, "subscribe", aj)
        assert aj not in roster_items(roster_get(bob2))


def test_subscribed_without_request_is_not_routed_but_preapproves(server):
    # A.2.1 "None": not routed; §3.4 pre-approval; then the request is approved at once.
    a, aj, b, bj = _pair(server)
    with login(server, a) as alice, login(server, b) as bob:
        _send(bob, "subscribed", aj)
        item = wait_push(bob, aj, approved="true")
        assert item.get("subscription") == "none"
        no_presence(alice, "subscribed", bj)
        _send(alice, "subscribe", bj)
        wait_presence(alice, "subscribed", bj)
        wait_push(alice, bj, subscription="to")
        wait_push(bob, aj, subscription="from", approved=None)
        no_presence(bob, "subscribe", aj)


def test_preapproval_can_be_cancelled(server):
    a, aj, b, bj = _pair(server)
    with login(server, a) as alice, login(server, b) as bob:
        _send(bob, "subscribed", aj)
        wait_push(bob, aj, approved="true")
        _send(bob, "unsubscribed", aj)  # A.2.2 note: cancels the pre-approval, not routed
        wait_push(bob, aj, approved=None)
        no_presence(alice, "unsubscribed", bj)
        _send(alice, "subscribe", bj)
        wait_presence(bob, "subscribe", aj)  # a normal request again


def test_contact_cancels_subscription(server):
    # §3.2: the contact sends unsubscribed to a subscriber.
    a, aj, b, bj = _pair(server)
    with login(server, a) as alice, login(server, b) as bob:
        subscribe_both(server, alice, aj, bob, bj)
        _send(bob, "unsubscribed", aj)
        wait_push(bob, aj, subscription="to")
        wait_presence(alice, "unsubscribed", bj)
        wait_push(alice, bj, subscription="from")
        # The user no longer sees the contact.
        wait_presence(alice, "unavailable", bj, bare=True)
        drain(alice)
        bob.send("<presence><show>away</show></presence>")
        wait_presence(bob, "available", bob.jid)
        no_presence(alice, "available", bj, bare=True)


def test_user_unsubscribes(server):
    # §3.3: the user sends unsubscribe.
    a, aj, b, bj = _pair(server)
    with login(server, a) as alice, login(server, b) as bob:
        subscribe_both(server, alice, aj, bob, bj)
        _send(alice, "unsubscribe", bj)
        wait_push(alice, bj, subscription="from")
        wait_presence(bob, "unsubscribe", aj)
        wait_push(bob, aj, subscription="to")
        wait_presence(alice, "unavailable", bj, bare=True)
        # Unsubscribing again changes nothing and is not delivered (A.3.2 "To").
        drain(bob)
        _send(alice, "unsubscribe", bj)
        sync(alice)
        no_presence(bob, "unsubscribe", aj)


def test_unsubscribe_cancels_a_pending_request(server):
    # A.3.2 "None + Pending In" -> "None": the stored request is forgotten.
    a, aj, b, bj = _pair(server)
    with login(server, a) as alice:
        _send(alice, "subscribe", bj)
        wait_push(alice, bj, ask="subscribe")
        _send(alice, "unsubscribe", bj)
        wait_push(alice, bj, ask=None)
        sync(alice)
    with login(server, b) as bob:
        sync(bob)
        no_presence(bob, "subscribe", aj)


def test_request_to_unknown_account_is_refused(server):
    a = fresh(server, "pres")
    aj = server.jid(a)
    ghost = "ghost_nobody_here@" + server.domain
    with login(server, a) as alice:
        _send(alice, "subscribe", ghost)
        wait_presence(alice, "unsubscribed", ghost)
        wait_push(alice, ghost, subscription="none", ask=None)
        assert aj


def test_request_to_another_domain_bounces(server):
    a = fresh(server, "pres")
    with login(server, a) as alice:
        _send(alice, "subscribe", "someone@remote.example")
        err = wait_presence(alice, "error", "someone@remote.example")
        assert stanza_error_condition(err) == "remote-server-not-found"


# ---- subscriptions, contact offline ---------------------------------------------------------

def test_request_to_offline_contact_is_stored_and_delivered_at_login(server):
    a, aj, b, bj = _pair(server)
    with login(server, a) as alice:
        _send(alice, "subscribe", bj)
        wait_push(alice, bj, ask="subscribe")
        sync(alice)
        # Bob logs in without initial presence: not yet delivered (§3.1.3: available).
        with login(server, b, presence=False) as bob:
            sync(bob)
            no_presence(bob, "subscribe", aj, seconds=0.5)
            bob.send("<presence/>")
            wait_presence(bob, "subscribe", aj)
            _send(bob, "subscribed", aj)
            wait_push(alice, bj, subscription="to")
            wait_presence(alice, "subscribed", bj)


def test_unanswered_request_is_delivered_at_every_login(server):
    a, aj, b, bj = _pair(server)
    with login(server, a) as alice:
        _send(alice, "subscribe", bj)
        wait_push(alice, bj, ask="subscribe")
    for _ in range(2):
        with login(server, b) as bob:
            wait_presence(bob, "subscribe", aj)


def test_approval_while_user_offline_is_seen_at_next_login(server):
    a, aj, b, bj = _pair(server)
    with login(server, a) as alice:
        _send(alice, "subscribe", bj)
        wait_push(alice, bj, ask="subscribe")
    with login(server, b) as bob:
        wait_presence(bob, "subscribe", aj)
        _send(bob, "subscribed", aj)
        wait_push(bob, aj, subscription="from")
        with login(server, a, roster=False, presence=False) as alice:
            items = roster_items(roster_get(alice))
            assert _sub(server, items, bj) == ("to", None)
            alice.send("<presence/>")
            wait_presence(alice, "available", bj, bare=True)  # probe answered at login


def test_cancel_and_unsubscribe_with_contact_offline(server):
    a, aj, b, bj = _pair(server)
    with login(server, a) as alice, login(server, b) as bob:
        subscribe_both(server, alice, aj, bob, bj)
    with login(server, a) as alice:
        _send(alice, "unsubscribe", bj)
        wait_push(alice, bj, subscription="from")
        _send(alice, "unsubscribed", bj)
        wait_push(alice, bj, subscription="none")
        sync(alice)
    with login(server, b) as bob:
        assert _sub(server, roster_items(roster_get(bob)), aj) == ("none", None)


# ---- presence -------------------------------------------------------------------------------

def test_broadcast_reaches_subscriber_and_own_resources_not_others(server):
    a, aj, b, bj = _pair(server)
    c = fresh(server, "pres")
    with login(server, a, "one") as alice, login(server, b) as bob, \
            login(server, c) as carol:
        subscribe_both(server, alice, aj, bob, bj)
        with login(server, a, "two") as alice2:
            # §4.2.2: the new resource's initial presence goes to the other resource and
            # to itself, and it learns of the other one.
            wait_presence(alice, "available", aj + "/two")
            wait_presence(alice2, "available", aj + "/two")
            wait_presence(alice2, "available", aj + "/one")
            p = wait_presence(bob, "available", aj + "/two")
            assert p.get("to") == bj
            alice2.send("<presence><show>dnd</show><status>busy</status></presence>")
            p = wait_presence(bob, "available", aj + "/two")
            assert p.findtext("{jabber:client}show") == "dnd"
            wait_presence(alice, "available", aj + "/two")
            no_presence(carol, from_=aj, bare=True)


def test_unavailable_on_disconnect_reaches_subscribers(server):
    a, aj, b, bj = _pair(server)
    with login(server, a) as alice, login(server, b) as bob:
        subscribe_both(server, alice, aj, bob, bj)
        full = alice.jid
        alice.close()  # the socket dies without a closing tag
        p = wait_presence(bob, "unavailable", full)
        assert p.get("to") == bj


def test_explicit_unavailable_reaches_subscribers(server):
    a, aj, b, bj = _pair(server)
    with login(server, a) as alice, login(server, b) as bob:
        subscribe_both(server, alice, aj, bob, bj)
        alice.send("<presence type='unavailable'><status>bye</status></presence>")
        p = wait_presence(bob, "unavailable", alice.jid)
        assert p.findtext("{jabber:client}status") == "bye"


def test_probe_on_login_sees_contacts_already_online(server):
    a, aj, b, bj = _pair(server)
    with login(server, a) as alice, login(server, b) as bob:
        subscribe_both(server, alice, aj, bob, bj)
        bob.send("<presence><show>chat</show></presence>")
        sync(bob)
        alice.close()
        with login(server, a, "again") as alice2:
            p = wait_presence(alice2, "available", bob.jid)
            assert p.findtext("{jabber:client}show") == "chat"
            assert p.get("to") == alice2.jid


def test_no_presence_without_subscription(server):
    # 'to' without the contact's 'from' is not enough: a one-way subscription from bob.
    a, aj, b, bj = _pair(server)
    with login(server, a) as alice, login(server, b) as bob:
        _send(bob, "subscribe", aj)
        wait_presence(alice, "subscribe", bj)
        _send(alice, "subscribed", bj)
        wait_push(bob, aj, subscription="to")
        wait_presence(bob, "available", alice.jid)  # bob sees alice
        drain(alice)
        bob.send("<presence><show>xa</show></presence>")
        wait_presence(bob, "available", bob.jid)
        no_presence(alice, from_=bj, bare=True)  # alice does not see bob
    with login(server, a) as alice2, login(server, b, "second") as bob2:
        wait_presence(bob2, "available", alice2.jid)
        no_presence(alice2, "available", bj, bare=True)


def test_client_probe_is_answered_per_subscription(server):
    a, aj, b, bj = _pair(server)
    with login(server, a) as alice, login(server, b) as bob:
        # No subscription: §4.3.2 answers 'unsubscribed', which changes nothing for alice
        # and so is not delivered (A.3.4 "None"); above all, no presence of bob's.
        _send(alice, "probe", bj)
        no_presence(alice, from_=bj, bare=True)
        subscribe_both(server, alice, aj, bob, bj)
        drain(alice)
        _send(alice, "probe", bj)
        p = wait_presence(alice, "available", bob.jid)
        assert p.get("to") == alice.jid


def test_directed_presence_is_delivered_and_cleaned_up_on_unavailable(server):
    a, aj, b, bj = _pair(server)
    with login(server, a) as alice, login(server, b) as bob:
        alice.send("<presence to=%s><status>hi</status></presence>" % quoteattr(bob.jid))
        p = wait_presence(bob, "available", alice.jid)
        assert p.findtext("{jabber:client}status") == "hi"
        alice.send("<presence type='unavailable'/>")
        wait_presence(bob, "unavailable", alice.jid)


def test_directed_presence_cleaned_up_on_disconnect(server):
    a, aj, b, bj = _pair(server)
    with login(server, a) as alice, login(server, b) as bob:
        alice.send("<presence to=%s/>" % quoteattr(bj))
        wait_presence(bob, "available", alice.jid)
        full = alice.jid
        alice.close()
        wait_presence(bob, "unavailable", full)


def test_directed_unavailable_stops_tracking(server):
    a, aj, b, bj = _pair(server)
    with login(server, a) as alice, login(server, b) as bob:
        alice.send("<presence to=%s/>" % quoteattr(bj))
        wait_presence(bob, "available", alice.jid)
        alice.send("<presence to=%s type='unavailable'/>" % quoteattr(bj))
        wait_presence(bob, "unavailable", alice.jid)
        drain(bob)
        alice.send("<presence type='unavailable'/>")
        sync(alice)
        no_presence(bob, "unavailable", alice.jid)


def test_directed_presence_without_initial_presence_cleaned_up_on_disconnect(server):
    a, aj, b, bj = _pair(server)
    with login(server, a, presence=False) as alice, login(server, b) as bob:
        alice.send("<presence to=%s/>" % quoteattr(bob.jid))
        wait_presence(bob, "available", alice.jid)
        full = alice.jid
        alice.close()
        wait_presence(bob, "unavailable", full)


def test_subscription_with_slixmpp_clients(server):
    # slixmpp's roster plugin approves requests (auto_authorize) and asks back
    # (auto_subscribe), so one request ends in 'both' and each sees the other online.
    a, aj, b, bj = _pair(server)

    async def scenario():
        alice, bob = Client(server, a, "slix"), Client(server, b, "slix")
        online = {"alice": asyncio.Event(), "bob": asyncio.Event()}
        alice.add_event_handler("got_online", lambda p: p["from"].bare == bj
                                and online["alice"].set())
        bob.add_event_handler("got_online", lambda p: p["from"].bare == aj
                              and online["bob"].set())
        assert await alice.start() and await bob.start()
        try:
            await alice.get_roster()
            await bob.get_roster()
            alice.send_presence_subscription(pto=bj)
            await asyncio.wait_for(online["alice"].wait(), 10)
            await asyncio.wait_for(online["bob"].wait(), 10)
            for _ in range(50):
                if alice.client_roster[bj]["subscription"] == "both" and \
                        bob.client_roster[aj]["subscription"] == "both":
                    break
                await asyncio.sleep(0.1)
            assert alice.client_roster[bj]["subscription"] == "both"
            assert bob.client_roster[aj]["subscription"] == "both"
        finally:
            await alice.stop()
            await bob.stop()

    run(scenario())
