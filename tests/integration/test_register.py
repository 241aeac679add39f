# SPDX-License-Identifier: AGPL-3.0-or-later
"""XEP-0077 In-Band Registration: off by default (<service-unavailable/>, no stream feature);
when enabled, the form, account creation (then a login with it), <conflict/> for a taken
username and the per-address hourly limit; after login, always: password change (§3.3: the
old password stops working, the new one works) and account removal (§3.2: the account cannot
log in, its sessions end with <not-authorized/>, its contacts are unsubscribed, and a new
account with the same name starts empty)."""

import uuid

import pytest

from conftest import start_server, stop_server
from xmpp_raw import NS_CLIENT, NS_STREAM, q, stanza_error_condition

NS_REGISTER = "jabber:iq:register"
NS_REGISTER_FEATURE = "http://jabber.org/features/iq-register"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_ROSTER = "jabber:iq:roster"
NS_BLOCKING = "urn:xmpp:blocking"

kurier_only = pytest.mark.kurier_only


def _unique(prefix):
    return "%s_%s" % (prefix, uuid.uuid4().hex[:8])


def _preauth(srv):
    """A stream secured with TLS, not authenticated; returns (client, features)."""
    c = srv.raw()
    c.connect()
    c.open_stream()
    features = c.starttls()
    return c, features


def _register(srv, user, password):
    c, _ = _preauth(srv)
    with c:
        return c.iq(None, "set", "<query xmlns='%s'><username>%s</username>"
                    "<password>%s</password></query>" % (NS_REGISTER, user, password))


def _can_login(srv, user, password):
    with srv.raw() as c:
        c.connect()
        c.open_stream()
        c.starttls()
        return c.sasl_scram(user, password).success


@pytest.fixture(scope="module")
def reg_server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("register"),
                       "registration:\n  enabled: true\n  per_ip_per_hour: 2\n",
                       accounts=["alice"])
    try:
        yield srv
    finally:
        stop_server(srv)


# ---------------------------------------------------------------- before authentication

@kurier_only
def test_registration_is_off_by_default(server):
    c, features = _preauth(server)
    with c:
        assert features.find(q(NS_REGISTER_FEATURE, "register")) is None
        res = c.iq(None, "get", "<query xmlns='%s'/>" % NS_REGISTER)
        assert stanza_error_condition(res) == "service-unavailable"
        user = _unique("nope")
        res = c.iq(None, "set", "<query xmlns='%s'><username>%s</username>"
                   "<password>secret-pw</password></query>" % (NS_REGISTER, user))
        assert stanza_error_condition(res) == "service-unavailable"
    assert not _can_login(server, user, "secret-pw")


@kurier_only
def test_registration_form_new_account_conflict_and_hourly_limit(reg_server):
    # One test, in order: the per-address limit (2 an hour) is shared by the whole server.
    c, features = _preauth(reg_server)
    with c:
        assert features.find(q(NS_REGISTER_FEATURE, "register")) is not None
        res = c.iq(None, "get", "<query xmlns='%s'/>" % NS_REGISTER)
        assert res.get("type") == "result"
        form = res.find(q(NS_REGISTER, "query"))
        for field in ("instructions", "username", "password"):
            assert form.find(q(NS_REGISTER, field)) is not None, field
        assert stanza_error_condition(c.iq(None, "set", "<query xmlns='%s'><username>x"
                                           "</username></query>" % NS_REGISTER)) \
            == "not-acceptable"

    first, second, third = _unique("Reg1"), _unique("reg2"), _unique("reg3")
    assert _register(reg_server, first, "first-pw").get("type") == "result"
    # the username was prepared (lower-cased); log in and use the account
    with reg_server.raw() as c:
        jid = c.login(first.lower(), "first-pw")
        assert jid.startswith("%s@%s/" % (first.lower(), reg_server.domain))
        c.send_message(jid, "hello me")
        c.wait_message("hello me")
    # a taken name: <conflict/>, and it does not use up the hourly allowance
    assert stanza_error_condition(_register(reg_server, first.lower(), "x-pw")) == "conflict"
    assert stanza_error_condition(_register(reg_server, "alice", "x-pw")) == "conflict"
    assert _can_login(reg_server, first.lower(), "first-pw")
    assert _register(reg_server, second, "second-pw").get("type") == "result"
    res = _register(reg_server, third, "third-pw")
    assert stanza_error_condition(res) in ("resource-constraint", "policy-violation")
    assert not _can_login(reg_server, third, "third-pw")
    assert _can_login(reg_server, second, "second-pw")


# ---------------------------------------------------------------- after authentication

def test_server_advertises_register(server):
    with server.raw() as c:
        c.login("alice", server.password("alice"))
        res = c.iq(server.domain, "get", "<query xmlns='%s'/>" % NS_DISCO_INFO)
        assert NS_REGISTER in [f.get("var") for f in res.iter(q(NS_DISCO_INFO, "feature"))]


@kurier_only
def test_password_change(server):
    user = _unique("pwchg")
    server.create_account(user)
    with server.raw() as c:
        c.login(user, server.password(user))
        res = c.iq(None, "get", "<query xmlns='%s'/>" % NS_REGISTER)
        assert res.find(q(NS_REGISTER, "query")).find(q(NS_REGISTER, "registered")) is not None
        wrong = c.iq(None, "set", "<query xmlns='%s'><username>alice</username>"
                     "<password>hijack-pw</password></query>" % NS_REGISTER)
        assert stanza_error_condition(wrong) == "not-allowed"
        res = c.iq(None, "set", "<query xmlns='%s'><username>%s</username>"
                   "<password>brand-new-pw</password></query>" % (NS_REGISTER, user))
        assert res.get("type") == "result"
    assert not _can_login(server, user, server.password(user))
    assert _can_login(server, user, "brand-new-pw")
    assert _can_login(server, "alice", server.password("alice"))


def _subscribe_mutually(x, y):
    """Presence subscription both ways between two logged-in raw clients (RFC 6121 §3).
    Both request the roster first: approvals go to interested resources (§3.1.6)."""
    xb, yb = x.jid.split("/")[0], y.jid.split("/")[0]
    for c in (x, y):
        assert c.iq(None, "get", "<query xmlns='%s'/>" % NS_ROSTER).get("type") == "result"
    for a, b, bb, ab in ((x, y, yb, xb), (y, x, xb, yb)):
        a.send("<presence to='%s' type='subscribe'/>" % bb)
        b.wait_for(lambda e: e.tag == q(NS_CLIENT, "presence") and e.get("type") == "subscribe"
                   and e.get("from", "").split("/")[0] == ab)
        b.send("<presence to='%s' type='subscribed'/>" % ab)
        a.wait_for(lambda e: e.tag == q(NS_CLIENT, "presence")
                   and e.get("type") == "subscribed")


@kurier_only
def test_account_removal(server):
    user, contact = _unique("gone"), _unique("friend")
    server.create_account(user)
    server.create_account(contact)
    ujid = server.jid(user)
    with server.raw() as cu, server.raw() as cu2, server.raw() as cc:
        cu.login(user, server.password(user), presence=True)
        cu2.login(user, server.password(user), presence=True)
        cc.login(contact, server.password(contact), presence=True)
        _subscribe_mutually(cu, cc)
        assert cu.iq(None, "set", "<block xmlns='%s'><item jid='x@example.org'/></block>"
                     % NS_BLOCKING).get("type") == "result"
        res = cu.iq(None, "set", "<query xmlns='%s'><remove/></query>" % NS_REGISTER)
        assert res.get("type") == "result"
        assert cu.expect_stream_error() == "not-authorized"
        assert cu2.expect_stream_error() == "not-authorized"
        # RFC 6121 §3.3 / §3.2: the contact learns both subscriptions are gone
        for kind in ("unsubscribe", "unsubscribed"):
            cc.wait_for(lambda e: e.tag == q(NS_CLIENT, "presence") and e.get("type") == kind
                        and e.get("from", "").split("/")[0] == ujid)
    assert not _can_login(server, user, server.password(user))
    # the same name again: a new, empty account
    server.create_account(user, "second-life-pw")
    with server.raw() as c:
        c.login(user, "second-life-pw")
        roster = c.iq(None, "get", "<query xmlns='%s'/>" % NS_ROSTER)
        assert roster.get("type") == "result"
        assert len(roster.find(q(NS_ROSTER, "query"))) == 0
        bl = c.iq(None, "get", "<blocklist xmlns='%s'/>" % NS_BLOCKING)
        assert len(bl.find(q(NS_BLOCKING, "blocklist"))) == 0
