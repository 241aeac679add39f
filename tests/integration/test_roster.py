# SPDX-License-Identifier: AGPL-3.0-or-later
"""Rosters (RFC 6121 §2): get with versioning (§2.6), set with its checks (§2.3.3), the
item limit (roster.max_items), remove with its subscription cancellations (§2.5.2), and
roster pushes to every interested resource (§2.1.6). Every test uses fresh accounts."""

import asyncio

import pytest

from conftest import password_for, start_server, stop_server
from im_helpers import (NS_ROSTER, fresh, is_push, login, roster_get, roster_items, roster_set,
                        subscribe_both, wait_presence, wait_push)
from xmpp_raw import NS_CLIENT, q, stanza_error_condition
from xmpp_slix import Client, run

kurier_only = pytest.mark.kurier_only
NS_ROSTERVER = "urn:xmpp:features:rosterver"
NS_PREAPPROVAL = "urn:xmpp:features:pre-approval"


def _error_text(res):
    t = res.find("%s/%s" % (q(NS_CLIENT, "error"),
                            q("urn:ietf:params:xml:ns:xmpp-stanzas", "text")))
    return None if t is None else t.text


def test_stream_features_after_auth_offer_roster_versioning_and_preapproval(server):
    local = fresh(server)
    with server.raw() as c:
        c.connect()
        c.open_stream()
        c.starttls()
        assert c.features.find(q(NS_ROSTERVER, "ver")) is None  # not before authentication
        assert c.sasl_scram(local, password_for(local)).success
        feats = c.open_stream()
        assert feats.find(q(NS_ROSTERVER, "ver")) is not None
        assert feats.find(q(NS_PREAPPROVAL, "sub")) is not None


def test_new_account_has_empty_roster_with_a_version(server):
    local = fresh(server)
    with login(server, local, roster=False, presence=False) as c:
        res = roster_get(c)
        query = res.find(q(NS_ROSTER, "query"))
        assert query is not None and query.get("ver") is not None
        assert roster_items(res) == {}


def test_set_adds_item_with_name_and_groups_and_get_returns_it(server):
    local, contact = fresh(server), fresh(server)
    cj = server.jid(contact)
    with login(server, local) as c:
        res = roster_set(c, cj, name="Contact 'one'", groups=["Friends", "Work & Play"])
        assert res.get("type") == "result"
        item = wait_push(c, cj)
        assert item.get("subscription") == "none" and item.get("ask") is None
        assert item.get("name") == "Contact 'one'"
        item = roster_items(roster_get(c))[cj]
        assert item.get("name") == "Contact 'one'"
        assert sorted(g.text for g in item.findall(q(NS_ROSTER, "group"))) == \
            ["Friends", "Work & Play"]
        # An update replaces name and groups.
        assert roster_set(c, cj, groups=["Family"]).get("type") == "result"
        item = roster_items(roster_get(c))[cj]
        assert item.get("name") is None
        assert [g.text for g in item.findall(q(NS_ROSTER, "group"))] == ["Family"]


def test_push_reaches_both_interested_resources_but_not_an_uninterested_one(server):
    local, contact = fresh(server), fresh(server)
    cj = server.jid(contact)
    with login(server, local, "one") as a, login(server, local, "two") as b, \
            login(server, local, "quiet", roster=False) as quiet:
        roster_set(a, cj, name="X")
        push_a = wait_push(a, cj, name="X")
        push_b = wait_push(b, cj, name="X")
        assert push_a.get("subscription") == push_b.get("subscription") == "none"
        quiet.expect_nothing(lambda e: is_push(e), 1.0)


def test_roster_versioning_same_version_gets_empty_result(server):
    local, contact = fresh(server), fresh(server)
    cj = server.jid(contact)
    with login(server, local) as c:
        roster_set(c, cj, name="V")
        wait_push(c, cj)
        ver = roster_get(c).find(q(NS_ROSTER, "query")).get("ver")
        same = roster_get(c, ver=ver)
        assert len(same) == 0  # an empty result: the client's copy is current
        c.expect_nothing(lambda e: is_push(e), 0.5)
        # An older version gets the whole roster with the new version.
        roster_set(c, cj, name="V2")
        wait_push(c, cj, name="V2")
        newer = roster_get(c, ver=ver)
        query = newer.find(q(NS_ROSTER, "query"))
        assert query is not None and query.get("ver") != ver
        assert roster_items(newer)[cj].get("name") == "V2"
        # The empty version asks for everything.
        assert cj in roster_items(roster_get(c, ver=""))


def test_push_carries_the_version_a_later_get_reports(server):
    local, contact = fresh(server), fresh(server)
    cj = server.jid(contact)
    with login(server, local) as c:
        roster_set(c, cj)
        push = c.wait_for(lambda e: is_push(e, cj))
        ver = push.find(q(NS_ROSTER, "query")).get("ver")
        assert ver == roster_get(c).find(q(NS_ROSTER, "query")).get("ver")


@pytest.mark.parametrize("payload,condition", [
    ("<item jid='a@localhost'/><item jid='b@localhost'/>", "bad-request"),
    ("", "bad-request"),
    ("<item name='no jid'/>", "bad-request"),
    ("<item jid='a@b@c'/>", "jid-malformed"),
    ("<item jid='a@localhost/res'/>", "bad-request"),
    ("<item jid='a@localhost'><group>G</group><group>G</group></item>", "bad-request"),
    ("<item jid='a@localhost'><group></group></item>", "not-acceptable"),
    ("<item jid='a@localhost' name='%s'/>" % ("n" * 1100), "not-acceptable"),
])
def test_invalid_roster_set_is_refused(server, payload, condition):
    local = fresh(server)
    with login(server, local, presence=False) as c:
        res = c.iq(None, "set", "<query xmlns='%s'>%s</query>" % (NS_ROSTER, payload))
        assert stanza_error_condition(res) == condition
        assert roster_items(roster_get(c)) == {}


def test_own_jid_cannot_be_added(server):
    local = fresh(server)
    with login(server, local, presence=False) as c:
        res = roster_set(c, server.jid(local))
        assert stanza_error_condition(res) == "not-allowed"


def test_subscription_values_other_than_remove_are_ignored(server):
    # RFC 6121 §2.1.2.5: the client cannot set the subscription state.
    local, contact = fresh(server), fresh(server)
    cj = server.jid(contact)
    with login(server, local, presence=False) as c:
        assert roster_set(c, cj, subscription="both").get("type") == "result"
        assert wait_push(c, cj).get("subscription") == "none"
        assert roster_items(roster_get(c))[cj].get("subscription") == "none"


def test_roster_of_another_account_is_forbidden(server):
    local, other = fresh(server), fresh(server)
    with login(server, local, presence=False) as c:
        res = c.iq(server.jid(other), "get", "<query xmlns='%s'/>" % NS_ROSTER)
        assert stanza_error_condition(res) == "forbidden"
        res = c.iq(server.jid(other), "set",
                   "<query xmlns='%s'><item jid='x@localhost'/></query>" % NS_ROSTER)
        assert stanza_error_condition(res) == "forbidden"


def test_remove_unknown_item_is_item_not_found(server):
    local = fresh(server)
    with login(server, local, presence=False) as c:
        res = roster_set(c, "nobody@localhost", subscription="remove")
        assert stanza_error_condition(res) == "item-not-found"


def test_remove_pushes_removal_to_all_interested_resources(server):
    local, contact = fresh(server), fresh(server)
    cj = server.jid(contact)
    with login(server, local, "one") as a, login(server, local, "two") as b:
        roster_set(a, cj)
        wait_push(a, cj)
        wait_push(b, cj)
        assert roster_set(a, cj, subscription="remove").get("type") == "result"
        wait_push(a, cj, subscription="remove")
        wait_push(b, cj, subscription="remove")
        assert cj not in roster_items(roster_get(a))


def test_remove_cancels_subscriptions_both_ways(server):
    # §2.5.2: the contact gets unsubscribe and unsubscribed; its roster loses both directions.
    local, contact = fresh(server), fresh(server)
    lj, cj = server.jid(local), server.jid(contact)
    with login(server, local) as a, login(server, contact) as b:
        subscribe_both(server, a, lj, b, cj)
        assert roster_set(a, cj, subscription="remove").get("type") == "result"
        wait_presence(b, "unsubscribe", lj)
        wait_presence(b, "unsubscribed", lj)
        wait_push(b, lj, subscription="none")
        # The contact's resources no longer see the user, and the item stays, 'none'.
        wait_presence(b, "unavailable", lj, bare=True)
        assert roster_items(roster_get(b))[lj].get("subscription") == "none"


@kurier_only
def test_item_limit_refuses_the_item_past_max_items(tmp_path):
    srv = start_server(tmp_path, extra_config="roster:\n  max_items: 3\n", accounts=["alice"])
    try:
        with login(srv, "alice", presence=False) as c:
            for i in range(3):
                assert roster_set(c, "c%d@localhost" % i).get("type") == "result"
            res = roster_set(c, "c3@localhost")
            assert stanza_error_condition(res) == "not-allowed"
            assert _error_text(res)
            # Updating an existing item is still fine, and removing makes room.
            assert roster_set(c, "c0@localhost", name="zero").get("type") == "result"
            assert roster_set(c, "c0@localhost", subscription="remove").get("type") == "result"
            assert roster_set(c, "c3@localhost").get("type") == "result"
            assert sorted(roster_items(roster_get(c))) == \
                ["c1@localhost", "c2@localhost", "c3@localhost"]
    finally:
        stop_server(srv)


def test_slixmpp_roster_plugin_sees_updates_and_versioning(server):
    local, contact = fresh(server), fresh(server)
    cj = server.jid(contact)

    async def scenario():
        c = Client(server, local, "slix")
        assert await c.start()
        try:
            assert "rosterver" in c.features
            await c.get_roster()
            await c.update_roster(cj, name="Slix", groups=["G"])
            for _ in range(50):
                if c.client_roster[cj]["name"] == "Slix":
                    break
                await asyncio.sleep(0.1)
            assert c.client_roster[cj]["name"] == "Slix"
            assert c.client_roster[cj]["groups"] == ["G"]
            assert c.client_roster[cj]["subscription"] == "none"
            assert c.client_roster.version  # versioned pushes
            await c.del_roster_item(cj)
            for _ in range(50):
                if cj not in c.client_roster:
                    break
                await asyncio.sleep(0.1)
            assert cj not in c.client_roster
        finally:
            await c.stop()

    run(scenario())
