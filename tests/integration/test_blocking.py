# SPDX-License-Identifier: AGPL-3.0-or-later
"""XEP-0191 Blocking Command: the block list (§3.2-§3.5: get, block one or many, unblock one
or all, pushes to the resources that requested the list), and its enforcement: stanzas from a
blocked address are not delivered (iq get/set get <service-unavailable/>, messages and
presence vanish), stanzas to a blocked address are refused with <not-acceptable/> and
<blocked xmlns='urn:xmpp:blocking:errors'/>, JID forms match per the XEP (domain, bare,
full), and the list lives in the store across sessions. Each test uses fresh accounts."""

import uuid

from xmpp_raw import NS_CLIENT, NS_STANZA_ERRORS, q, stanza_error_condition

NS_BLOCKING = "urn:xmpp:blocking"
NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
SILENCE_S = 1.0


def _accounts(server, *names):
    tag = uuid.uuid4().hex[:8]
    return [server.create_account("blk_%s_%s" % (n, tag)).split("@")[0] for n in names]


def _login(server, user, resource=None, presence=True):
    c = server.raw()
    c.login(user, server.password(user), resource=resource, presence=presence)
    _sync(c)
    return c


def _sync(c):
    """A round trip: everything sent before has been processed by the server."""
    assert c.iq(c.domain, "get", "<ping xmlns='urn:xmpp:ping'/>").get("type") == "result"


def _blocklist(c):
    res = c.iq(None, "get", "<blocklist xmlns='%s'/>" % NS_BLOCKING)
    assert res.get("type") == "result", res
    bl = res.find(q(NS_BLOCKING, "blocklist"))
    assert bl is not None
    return sorted(i.get("jid") for i in bl.findall(q(NS_BLOCKING, "item")))


def _items(jids):
    return "".join("<item jid='%s'/>" % j for j in jids)


def _block(c, *jids):
    return c.iq(None, "set", "<block xmlns='%s'>%s</block>" % (NS_BLOCKING, _items(jids)))


def _unblock(c, *jids):
    return c.iq(None, "set", "<unblock xmlns='%s'>%s</unblock>" % (NS_BLOCKING, _items(jids)))


def _is_message(body):
    def pred(e):
        if e.tag != q(NS_CLIENT, "message"):
            return False
        b = e.find(q(NS_CLIENT, "body"))
        return b is not None and b.text == body
    return pred


def _is_push(name):
    def pred(e):
        return (e.tag == q(NS_CLIENT, "iq") and e.get("type") == "set"
                and e.find(q(NS_BLOCKING, name)) is not None)
    return pred


def test_server_advertises_blocking(server):
    a, = _accounts(server, "a")
    with _login(server, a) as c:
        res = c.iq(server.domain, "get", "<query xmlns='%s'/>" % NS_DISCO_INFO)
        feats = [f.get("var") for f in res.iter(q(NS_DISCO_INFO, "feature"))]
        assert NS_BLOCKING in feats


def test_block_many_unblock_one_then_all(server):
    a, = _accounts(server, "a")
    x, y, z = "x@example.org", "y@example.org", "example.net"
    with _login(server, a) as c:
        assert _blocklist(c) == []
        assert _block(c, x, y, z).get("type") == "result"
        assert _blocklist(c) == sorted([x, y, z])
        assert _block(c, x).get("type") == "result"  # already there: no duplicate
        assert _blocklist(c) == sorted([x, y, z])
        assert _unblock(c, x).get("type") == "result"
        assert _blocklist(c) == sorted([y, z])
        assert _unblock(c).get("type") == "result"  # §3.5: no items = everything
        assert _blocklist(c) == []


def test_block_items_are_prepared_jids(server):
    a, = _accounts(server, "a")
    with _login(server, a) as c:
        assert _block(c, "Romeo@Example.ORG").get("type") == "result"
        assert _blocklist(c) == ["romeo@example.org"]
        _unblock(c)


def test_block_without_items_or_with_a_bad_jid_is_refused(server):
    a, = _accounts(server, "a")
    with _login(server, a) as c:
        assert stanza_error_condition(_block(c)) == "bad-request"
        assert stanza_error_condition(_block(c, "@bad")) == "jid-malformed"
        res = c.iq(None, "set", "<block xmlns='%s'><item/></block>" % NS_BLOCKING)
        assert stanza_error_condition(res) == "bad-request"
        assert _blocklist(c) == []


def test_blocked_contacts_messages_are_not_delivered_and_others_are(server):
    a, b, c_ = _accounts(server, "a", "b", "c")
    with _login(server, a) as ca, _login(server, b) as cb, _login(server, c_) as cc:
        assert _block(ca, server.jid(b)).get("type") == "result"
        for target in (ca.jid, server.jid(a)):
            cb.send_message(target, "from blocked b")
            cc.send_message(target, "from c")
            ca.wait_for(_is_message("from c"))
        ca.expect_nothing(_is_message("from blocked b"), SILENCE_S)
        # silently: the blocked sender gets no error either (the user looks offline)
        cb.expect_nothing(lambda e: e.get("type") == "error", 0.2)
        assert _unblock(ca, server.jid(b)).get("type") == "result"
        cb.send_message(ca.jid, "b unblocked")
        ca.wait_for(_is_message("b unblocked"))


def test_iq_from_a_blocked_contact_gets_service_unavailable(server):
    a, b = _accounts(server, "a", "b")
    with _login(server, a) as ca, _login(server, b) as cb:
        assert _block(ca, server.jid(b)).get("type") == "result"
        res = cb.iq(ca.jid, "get", "<query xmlns='jabber:iq:version'/>")
        assert stanza_error_condition(res) == "service-unavailable"
        ca.expect_nothing(lambda e: e.tag == q(NS_CLIENT, "iq")
                          and e.get("from") == cb.jid, 0.3)


def test_presence_from_a_blocked_contact_is_dropped(server):
    a, b = _accounts(server, "a", "b")
    with _login(server, a) as ca, _login(server, b) as cb:
        assert _block(ca, server.jid(b)).get("type") == "result"
        cb.send("<presence to='%s'><status>hi</status></presence>" % ca.jid)
        ca.expect_nothing(lambda e: e.tag == q(NS_CLIENT, "presence")
                          and e.get("from") == cb.jid, SILENCE_S)


def test_message_to_a_blocked_contact_is_refused_with_blocked_condition(server):
    a, b = _accounts(server, "a", "b")
    with _login(server, a) as ca, _login(server, b) as cb:
        assert _block(ca, server.jid(b)).get("type") == "result"
        msg_id = ca.send_message(cb.jid, "to blocked b")
        err = ca.wait_for(lambda e: e.tag == q(NS_CLIENT, "message") and e.get("id") == msg_id)
        assert err.get("type") == "error"
        assert stanza_error_condition(err) == "not-acceptable"
        error = err.find(q(NS_CLIENT, "error"))
        assert error.find(q(NS_BLOCKING_ERRORS, "blocked")) is not None
        assert error.find(q(NS_STANZA_ERRORS, "not-acceptable")) is not None
        cb.expect_nothing(_is_message("to blocked b"), SILENCE_S)


def test_full_jid_block_matches_only_that_resource(server):
    a, b = _accounts(server, "a", "b")
    with _login(server, a) as ca, _login(server, b, resource="one") as b1, \
            _login(server, b, resource="two") as b2:
        assert _block(ca, b1.jid).get("type") == "result"
        b1.send_message(ca.jid, "from b/one")
        b2.send_message(ca.jid, "from b/two")
        ca.wait_for(_is_message("from b/two"))
        ca.expect_nothing(_is_message("from b/one"), SILENCE_S)


def test_domain_block_matches_every_user_of_the_domain(server):
    a, b = _accounts(server, "a", "b")
    with _login(server, a) as ca, _login(server, b) as cb:
        assert _block(ca, server.domain).get("type") == "result"
        cb.send_message(ca.jid, "from a blocked domain")
        ca.expect_nothing(_is_message("from a blocked domain"), SILENCE_S)
        # the user's own requests to the server still work
        assert _blocklist(ca) == [server.domain]
        assert _unblock(ca).get("type") == "result"


def test_block_and_unblock_are_pushed_to_interested_resources(server):
    a, = _accounts(server, "a")
    x = "pushed@example.org"
    with _login(server, a) as a1, _login(server, a) as a2, _login(server, a) as a3:
        assert _blocklist(a2) == []  # a2 asks for the list: it gets pushes; a3 does not ask
        assert _block(a1, x).get("type") == "result"
        push = a2.wait_for(_is_push("block"))
        assert push.get("to") == a2.jid
        assert [i.get("jid") for i in push.find(q(NS_BLOCKING, "block"))] == [x]
        a2.send("<iq type='result' id='%s'/>" % push.get("id"))
        assert _unblock(a1).get("type") == "result"
        push = a2.wait_for(_is_push("unblock"))
        assert len(push.find(q(NS_BLOCKING, "unblock"))) == 0  # unblock all: no items
        a3.expect_nothing(lambda e: _is_push("block")(e) or _is_push("unblock")(e), 0.3)


def test_block_list_survives_a_new_login(server):
    a, b = _accounts(server, "a", "b")
    with _login(server, a) as ca:
        assert _block(ca, server.jid(b)).get("type") == "result"
    with _login(server, b) as cb:
        # a logs in again; b writes at once, while a's list may still be loading
        ca = server.raw()
        ca.login(a, server.password(a), presence=True)
        with ca:
            cb.send_message(ca.jid, "right after login")
            cb.send_message(server.jid(a), "right after login, bare")
            _sync(cb)
            assert _blocklist(ca) == [server.jid(b)]
            ca.expect_nothing(_is_message("right after login"), SILENCE_S)
            ca.expect_nothing(_is_message("right after login, bare"), 0.1)
            msg_id = ca.send_message(cb.jid, "still blocked")
            err = ca.wait_for(lambda e: e.get("id") == msg_id)
            assert stanza_error_condition(err) == "not-acceptable"


def test_offline_messages_from_a_blocked_contact_are_not_kept(server):
    a, b, c_ = _accounts(server, "a", "b", "c")
    with _login(server, a) as ca:
        assert _block(ca, server.jid(b)).get("type") == "result"
    with _login(server, b) as cb, _login(server, c_) as cc:
        cb.send_message(server.jid(a), "offline from blocked b")
        cc.send_message(server.jid(a), "offline from c")
        _sync(cb)
        _sync(cc)
        cb.expect_nothing(lambda e: e.get("type") == "error", 0.3)
    with _login(server, a) as ca:
        ca.wait_for(_is_message("offline from c"))
        ca.expect_nothing(_is_message("offline from blocked b"), SILENCE_S)
