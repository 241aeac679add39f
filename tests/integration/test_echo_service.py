# SPDX-License-Identifier: AGPL-3.0-or-later
"""A service domain owned by a module (src/server/mod_echo.c), through the core's address
table: the user domain's disco#items lists it, its disco#info answers its own identity and
features, messages to it (and to any JID on it) come back, a delivery receipt request that is
not the message's first child is seen (events keyed by any child's namespace) and answered
to slixmpp's XEP-0184 plugin, presence subscriptions to it are approved, pings are answered,
and what it does not handle is refused with <service-unavailable/>. Off by default: without
echo.domains the domain is remote (s2s, off here)."""

import asyncio
import time

import pytest

from conftest import start_server, stop_server
from xmpp_raw import NS_CLIENT, q, stanza_error_condition
from xmpp_slix import Client, run

NS_INFO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"
NS_RECEIPTS = "urn:xmpp:receipts"
ECHO = "echo.localhost"


@pytest.fixture(scope="module")
def echo_server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("echo"), "echo:\n  domains: [%s]\n" % ECHO,
                       accounts=["alice", "bob"])
    yield srv
    time.sleep(0.3)  # sessions closed before SIGTERM (see test_offline.own_server)
    stop_server(srv)


def _login(srv, user="alice", presence=False):
    c = srv.raw()
    c.login(user, srv.password(user), presence=presence)
    return c


def test_server_disco_items_list_the_service(echo_server):
    with _login(echo_server) as c:
        res = c.iq(echo_server.domain, "get", "<query xmlns='%s'/>" % NS_ITEMS)
        assert res.get("type") == "result"
        items = {i.get("jid"): i.get("name") for i in res.iter(q(NS_ITEMS, "item"))}
        assert items == {ECHO: "Echo"}


def test_service_disco_info_has_its_own_identity_and_features(echo_server):
    with _login(echo_server) as c:
        res = c.iq(ECHO, "get", "<query xmlns='%s'/>" % NS_INFO)
        assert res.get("type") == "result" and res.get("from") == ECHO
        ids = [(i.get("category"), i.get("type"), i.get("name"))
               for i in res.iter(q(NS_INFO, "identity"))]
        assert ids == [("component", "generic", "Echo")]
        feats = {f.get("var") for f in res.iter(q(NS_INFO, "feature"))}
        assert {NS_INFO, NS_ITEMS, NS_RECEIPTS, "urn:xmpp:ping"} <= feats
        assert "jabber:iq:roster" not in feats  # the server's own features are not its
        items = c.iq(ECHO, "get", "<query xmlns='%s'/>" % NS_ITEMS)
        assert items.get("type") == "result" and len(list(items.iter(q(NS_ITEMS, "item")))) == 0


def test_ping_and_unknown_iq(echo_server):
    with _login(echo_server) as c:
        assert c.iq(ECHO, "get", "<ping xmlns='urn:xmpp:ping'/>").get("type") == "result"
        res = c.iq(ECHO, "get", "<query xmlns='jabber:iq:version'/>")
        assert stanza_error_condition(res) == "service-unavailable"
        res = c.iq("nobody@" + ECHO, "get", "<query xmlns='jabber:iq:version'/>")
        assert stanza_error_condition(res) == "service-unavailable"


def test_messages_to_the_service_and_its_jids_come_back(echo_server):
    with _login(echo_server) as c:
        for to in (ECHO, "room@" + ECHO, "room@" + ECHO + "/nick"):
            c.send_message(to, "hello " + to)
            m = c.wait_for(lambda e: e.tag == q(NS_CLIENT, "message")
                           and e.findtext(q(NS_CLIENT, "body")) == "hello " + to)
            assert m.get("from") == to
            assert m.get("to") == c.jid
            assert m.get("type") == "chat"


def test_receipt_request_behind_the_body_is_answered_to_slixmpp(echo_server):
    """XEP-0184 through slixmpp's own plugin: the <request/> is the message's second child,
    so the service's handler for it runs only because events match any child."""
    async def scenario():
        cl = Client(echo_server, "bob", "receipts")
        cl.register_plugin("xep_0184")
        cl["xep_0184"].auto_request = True
        got = asyncio.get_running_loop().create_future()
        cl.add_event_handler("receipt_received",
                             lambda m: got.done() or got.set_result(m["receipt"]))
        assert await cl.start()
        try:
            msg = cl.make_message(mto=ECHO, mbody="with a receipt", mtype="chat")
            msg.send()
            receipt = await asyncio.wait_for(got, 10)
            assert receipt == msg["id"]
            echoed = await cl.message_with_body("with a receipt")
            assert echoed["from"].full == ECHO
        finally:
            await cl.stop()
    run(scenario())


def test_subscription_to_the_service_is_approved(echo_server):
    with _login(echo_server, presence=True) as c:
        # RFC 6121 §3.1.6: the approval goes to the resources that asked for the roster.
        assert c.iq(None, "get", "<query xmlns='jabber:iq:roster'/>").get("type") == "result"
        c.send("<presence to='%s' type='subscribe'/>" % ECHO)
        sub = c.wait_for(lambda e: e.tag == q(NS_CLIENT, "presence")
                         and e.get("type") == "subscribed")
        assert sub.get("from") == ECHO
        avail = c.wait_for(lambda e: e.tag == q(NS_CLIENT, "presence")
                           and e.get("type") is None and e.get("from") == ECHO)
        assert avail is not None
        push = c.wait_for(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("type") == "set"
                          and e.find(".//{jabber:iq:roster}item[@subscription='to']")
                          is not None)
        assert push.find(".//{jabber:iq:roster}item").get("jid") == ECHO


def test_without_the_section_the_domain_is_not_ours(tmp_path):
    srv = start_server(tmp_path, accounts=["alice"])
    try:
        with _login(srv) as c:
            res = c.iq(srv.domain, "get", "<query xmlns='%s'/>" % NS_ITEMS)
            assert list(res.iter(q(NS_ITEMS, "item"))) == []
            res = c.iq(ECHO, "get", "<ping xmlns='urn:xmpp:ping'/>")
            assert stanza_error_condition(res) == "remote-server-not-found"
        time.sleep(0.3)
    finally:
        stop_server(srv)


def test_a_service_domain_equal_to_a_user_domain_stops_start_up(tmp_path):
    from kurier_server import prepare_server
    srv = prepare_server(tmp_path, "echo:\n  domains: [localhost]\n", accounts=[])
    import subprocess
    res = subprocess.run([str(srv.kurierd), "-c", str(srv.config_path)], capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 3
    assert "the domain localhost is already served" in res.stderr
