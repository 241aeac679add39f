# SPDX-License-Identifier: AGPL-3.0-or-later
"""External components (XEP-0114, src/server/component.c and component_stream.c) with a real
component: slixmpp's ComponentXMPP over component.direct_tls (trusting the test server's
certificate) and over the plaintext loopback listener, talking to users logged in with
slixmpp. Messages, presence and iq go both ways with the right from/to, the user domain's
disco#items lists the component, and when the component is gone its domain answers
<service-unavailable/>. The negative cases speak the protocol by hand (RawComponent): a wrong
secret is <not-authorized/>, a second connection for a connected domain <conflict/>, a 'from'
off the component's domain <invalid-from/> (and nothing reaches the user it named), a stanza
without 'to' <improper-addressing/>, an unknown domain <host-unknown/>, anything before the
handshake <not-authorized/>; a silent component is pinged and closed while a live one stays;
shutdown says <system-shutdown/>; and a plaintext listener on a non-loopback address stops
kurierd with exit 2 and FILE:LINE."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from xml.sax.saxutils import quoteattr

import pytest
import slixmpp

from kurier_server import _free_port, prepare_server, start_server, stop_server
from xmpp_raw import NS_CLIENT, NS_STREAM, RawClient, q, stanza_error_condition
from xmpp_slix import Client, run

pytestmark = pytest.mark.kurier_only

NS_COMPONENT = "jabber:component:accept"
NS_ITEMS = "http://jabber.org/protocol/disco#items"
NS_VERSION = "jabber:iq:version"
GATEWAY = "gateway.localhost"   # the slixmpp component, over direct TLS
PLAIN = "plain.localhost"       # the slixmpp component over the plaintext listener
RAW = "raw.localhost"           # hand-made streams
SPARE = "spare.localhost"       # hand-made streams that must not disturb RAW's
SECRETS = {d: "secret-%s-%s" % (d.split(".")[0], uuid.uuid4().hex) for d in
           (GATEWAY, PLAIN, RAW, SPARE)}


def digest(stream_id: str, secret: str) -> str:
    """XEP-0114 §3: lower-case hex SHA-1 of the stream id followed by the secret."""
    return hashlib.sha1((stream_id + secret).encode()).hexdigest()


def component_config(direct: int, plain: int) -> str:
    return ("component:\n"
            "  direct_tls: [\"127.0.0.1:%d\"]\n"
            "  plain: [\"127.0.0.1:%d\"]\n"
            "  secrets:\n%s"
            % (direct, plain, "".join("    %s: \"%s\"\n" % kv for kv in SECRETS.items())))


class Ports:
    def __init__(self):
        self.direct = _free_port()
        self.plain = _free_port()
        while self.plain == self.direct:
            self.plain = _free_port()


@pytest.fixture(scope="module")
def comp_server(tmp_path_factory):
    ports = Ports()
    srv = start_server(tmp_path_factory.mktemp("component"),
                       component_config(ports.direct, ports.plain), accounts=["alice", "bob"])
    srv.comp_ports = ports
    yield srv
    time.sleep(0.3)  # sessions closed before SIGTERM (see test_offline.own_server)
    stop_server(srv)


# ---- a real component: slixmpp's ComponentXMPP -----------------------------------------------

class Gateway(slixmpp.ComponentXMPP):
    """A component that records what reaches it and answers jabber:iq:version (XEP-0092)."""

    def __init__(self, server, domain: str, secret: str, port: int, tls: bool = True):
        # Over TLS the name it connects to is the server's (SNI and certificate check).
        super().__init__(domain, secret, server.domain if tls else server.host, port)
        self.kr_target = (server.host, port)
        self.tls = tls
        self.ssl_context = ssl.create_default_context(cafile=server.ca)
        loop = asyncio.get_running_loop()
        self.started = loop.create_future()
        self.ended = loop.create_future()
        self.messages: asyncio.Queue = asyncio.Queue()
        self.presences: asyncio.Queue = asyncio.Queue()
        self.stream_errors = []
        self.register_plugin("xep_0092", {"software_name": "KurierTestGateway",
                                          "version": "1.0"})
        self.add_event_handler("session_start", self._on_start)
        self.add_event_handler("message", self.messages.put_nowait)
        self.add_event_handler("presence", self.presences.put_nowait)
        self.add_event_handler("stream_error", self._on_stream_error)
        self.add_event_handler("disconnected", self._on_disconnected)

    async def get_dns_records(self, domain, port=None):
        return [(domain, self.kr_target[0], self.kr_target[1])]

    def _on_start(self, _event):
        if not self.started.done():
            self.started.set_result(True)

    def _on_stream_error(self, error):
        self.stream_errors.append(error["condition"])

    def _on_disconnected(self, _event):
        if not self.ended.done():
            self.ended.set_result(True)
        if not self.started.done():
            self.started.set_result(False)

    async def start(self, timeout: float = 10.0) -> bool:
        self.connect(use_ssl=self.tls)
        return await asyncio.wait_for(self.started, timeout)

    async def stop(self, timeout: float = 5.0) -> None:
        if self.transport is None:
            return
        try:
            await asyncio.wait_for(self.disconnect(), timeout)
        except asyncio.TimeoutError:
            self.abort()

    async def next_message(self, timeout: float = 10.0):
        return await asyncio.wait_for(self.messages.get(), timeout)

    async def next_presence(self, timeout: float = 10.0):
        return await asyncio.wait_for(self.presences.get(), timeout)


def gateway(server, domain=GATEWAY, secret=None, tls=True):
    ports = server.comp_ports
    return Gateway(server, domain, SECRETS[domain] if secret is None else secret,
                   ports.direct if tls else ports.plain, tls)


# ---- the protocol by hand -------------------------------------------------------------------

class RawComponent(RawClient):
    """A component stream written by hand, over direct TLS (checking the server's certificate
    for its domain) or in plaintext."""

    def __init__(self, server, component: str, tls: bool = True, timeout: float = 5.0):
        ports = server.comp_ports
        super().__init__(server.host, ports.direct if tls else ports.plain, server.domain,
                         server.ca, timeout=timeout)
        self.component = component
        self.use_tls = tls

    def stream_header_xml(self) -> str:
        return ("<stream:stream xmlns='%s' xmlns:stream='%s' to=%s>"
                % (NS_COMPONENT, NS_STREAM, quoteattr(self.component)))

    def open(self) -> ET.Element:
        """Connect and exchange stream headers; returns the server's header."""
        self.connect(direct_tls=self.use_tls)
        self._reset_parser()
        self.send("<?xml version='1.0'?>" + self.stream_header_xml())
        return self.read_header()

    def handshake(self, secret: str) -> ET.Element:
        """Send the digest for this stream's id; returns the server's answer."""
        self.send("<handshake>%s</handshake>" % digest(self.stream_header.get("id"), secret))
        return self.next_element()

    def login(self, secret=None) -> "RawComponent":
        self.open()
        el = self.handshake(SECRETS[self.component] if secret is None else secret)
        assert el.tag == q(NS_COMPONENT, "handshake") and len(el) == 0 and not el.text, \
            ET.tostring(el, encoding="unicode")
        return self


def raw_component(server, component=RAW, tls=True, timeout=5.0) -> RawComponent:
    return RawComponent(server, component, tls, timeout)


def _login_user(server, user="alice", presence=True) -> RawClient:
    c = server.raw()
    c.login(user, server.password(user), presence=presence)
    if presence:
        c.iq(None, "get", "<ping xmlns='urn:xmpp:ping'/>")  # the presence is in effect
    return c


# ---- with slixmpp on both sides -------------------------------------------------------------

def test_message_to_the_component_and_its_answer(comp_server):
    async def scenario():
        gw = gateway(comp_server)
        alice = Client(comp_server, "alice", "phone")
        assert await gw.start(), gw.stream_errors
        assert await alice.start(direct_tls=True)
        try:
            alice.send_message(mto="bot@" + GATEWAY, mbody="ping the gateway", mtype="chat")
            got = await gw.next_message()
            assert got["from"].full == "alice@localhost/phone"
            assert got["to"].full == "bot@" + GATEWAY
            assert got["body"] == "ping the gateway"
            assert got["type"] == "chat"
            got.reply("pong from the gateway").send()  # from = the message's 'to'
            answer = await alice.message_with_body("pong from the gateway")
            assert answer["from"].full == "bot@" + GATEWAY
            assert answer["to"].full == "alice@localhost/phone"
        finally:
            await alice.stop()
            await gw.stop()
    run(scenario())


def test_presence_to_the_component_arrives(comp_server):
    async def scenario():
        gw = gateway(comp_server)
        alice = Client(comp_server, "alice", "laptop")
        assert await gw.start()
        assert await alice.start()
        try:
            alice.send_presence(pto="bot@" + GATEWAY, pstatus="hello gateway", pshow="chat")
            while True:
                pres = await gw.next_presence()
                if pres["status"] == "hello gateway":
                    break
            assert pres["from"].full == "alice@localhost/laptop"
            assert pres["to"].full == "bot@" + GATEWAY
            assert pres["show"] == "chat"
        finally:
            await alice.stop()
            await gw.stop()
    run(scenario())


def test_iq_to_the_component_gets_its_result(comp_server):
    async def scenario():
        gw = gateway(comp_server)
        alice = Client(comp_server, "alice", "iq")
        assert await gw.start()
        assert await alice.start()
        try:
            iq = alice.make_iq_get(queryxmlns=NS_VERSION, ito=GATEWAY)
            res = await iq.send(timeout=10)
            assert res["type"] == "result"
            assert res["from"].full == GATEWAY
            assert res["to"].full == "alice@localhost/iq"
            assert res.xml.find("{%s}query/{%s}name" % (NS_VERSION, NS_VERSION)).text \
                == "KurierTestGateway"
        finally:
            await alice.stop()
            await gw.stop()
    run(scenario())


def test_component_writes_first_to_a_user(comp_server):
    async def scenario():
        gw = gateway(comp_server)
        bob = Client(comp_server, "bob", "desk")
        assert await bob.start()
        assert await gw.start()
        try:
            # The user is online before the component speaks (bob's presence is in effect
            # once his own round trip is answered).
            ping = bob.make_iq_get(ito="localhost")
            ping.set_payload(ET.Element("{urn:xmpp:ping}ping"))
            await ping.send(timeout=10)
            gw.send_message(mto="bob@localhost", mfrom=GATEWAY, mbody="news from the gateway",
                            mtype="chat")
            got = await bob.message_with_body("news from the gateway")
            assert got["from"].full == GATEWAY
            gw.send_message(mto="bob@localhost/desk", mfrom="weather@%s/station" % GATEWAY,
                            mbody="rain", mtype="chat")
            got = await bob.message_with_body("rain")
            assert got["from"].full == "weather@%s/station" % GATEWAY
        finally:
            await bob.stop()
            await gw.stop()
    run(scenario())


def test_messages_from_both_workers_reach_the_component(comp_server):
    """Users on the component's worker (written at once) and on the other one (through the
    worker queue): SO_REUSEPORT spreads connections by their ports, so users connect until the
    log shows both cases."""
    import re

    async def scenario(tag: str, n: int) -> None:
        gw = gateway(comp_server)
        assert await gw.start()
        users = [Client(comp_server, "alice", "%s-%d" % (tag, i)) for i in range(n)]
        try:
            for u in users:
                assert await u.start()
            for i, u in enumerate(users):
                u.send_message(mto="bot@" + GATEWAY, mbody="%s %d" % (tag, i), mtype="chat")
            bodies = set()
            while len(bodies) < n:
                bodies.add((await gw.next_message())["body"])
            assert bodies == {"%s %d" % (tag, i) for i in range(n)}
        finally:
            for u in users:
                await u.stop()
            await gw.stop()

    for attempt in range(4):
        tag = "w%d%s" % (attempt, uuid.uuid4().hex[:6])
        seen = len(comp_server.log_path.read_text(errors="replace"))
        run(scenario(tag, 8))
        time.sleep(0.2)
        log = comp_server.log_path.read_text(errors="replace")[seen:]
        gw_worker = re.search(r"comp#\d+ (w\d) %s: component %s authenticated"
                              % (re.escape(GATEWAY), re.escape(GATEWAY)), log).group(1)
        # A connection's log lines carry its worker and, once bound, its JID.
        placed = dict((i, w) for w, i in re.findall(r"\b(w\d) alice@localhost/%s-(\d+)\b"
                                                    % tag, log))
        assert len(placed) == 8, "the log no longer names each user's worker"
        user_workers = set(placed.values())
        if gw_worker in user_workers and len(user_workers) > 1:
            return
    pytest.fail("the users never landed on both workers (component on %s, users on %s)"
                % (gw_worker, user_workers))


def test_disco_items_of_the_server_list_the_components(comp_server):
    with _login_user(comp_server, presence=False) as c:
        res = c.iq(comp_server.domain, "get", "<query xmlns='%s'/>" % NS_ITEMS)
        assert res.get("type") == "result"
        jids = {i.get("jid") for i in res.iter(q(NS_ITEMS, "item"))}
        assert {GATEWAY, PLAIN, RAW, SPARE} <= jids


def test_plaintext_listener_on_loopback_works(comp_server):
    async def scenario():
        gw = gateway(comp_server, PLAIN, tls=False)
        alice = Client(comp_server, "alice", "plain")
        assert await gw.start(), gw.stream_errors
        assert await alice.start()
        try:
            alice.send_message(mto=PLAIN, mbody="over loopback", mtype="chat")
            got = await gw.next_message()
            assert got["from"].full == "alice@localhost/plain" and got["to"].full == PLAIN
            got.reply("back over loopback").send()
            answer = await alice.message_with_body("back over loopback")
            assert answer["from"].full == PLAIN
        finally:
            await alice.stop()
            await gw.stop()
    run(scenario())


def test_wrong_secret_is_not_authorized(comp_server):
    async def scenario():
        gw = gateway(comp_server, secret="not the secret")
        assert await gw.start() is False
        await asyncio.wait_for(gw.ended, 5)
        assert gw.stream_errors == ["not-authorized"]
    run(scenario())
    with raw_component(comp_server) as c:
        c.open()
        el = c.handshake(SECRETS[RAW] + "x")
        assert el.tag == q(NS_STREAM, "error")
        assert el.find(q("urn:ietf:params:xml:ns:xmpp-streams", "not-authorized")) is not None
        c.expect_closed()


def test_second_connection_for_a_connected_domain_gets_conflict(comp_server):
    async def scenario():
        gw = gateway(comp_server)
        alice = Client(comp_server, "alice", "conflict")
        assert await gw.start()
        assert await alice.start()
        try:
            def second():
                with raw_component(comp_server, GATEWAY) as c:
                    c.open()
                    el = c.handshake(SECRETS[GATEWAY])  # the right secret
                    assert el.tag == q(NS_STREAM, "error"), ET.tostring(el, encoding="unicode")
                    assert el.find(q("urn:ietf:params:xml:ns:xmpp-streams", "conflict")) \
                        is not None
                    c.expect_closed()
            await asyncio.to_thread(second)
            # The first connection still serves the domain.
            alice.send_message(mto="bot@" + GATEWAY, mbody="still there?", mtype="chat")
            got = await gw.next_message()
            assert got["body"] == "still there?"
            assert gw.stream_errors == []
        finally:
            await alice.stop()
            await gw.stop()
    run(scenario())


def test_from_outside_the_component_domain_is_invalid_from(comp_server):
    with _login_user(comp_server, "bob") as bob:
        with raw_component(comp_server) as c:
            c.login()
            c.send("<message from='alice@localhost/phone' to=%s type='chat'>"
                   "<body>spoofed</body></message>" % quoteattr(bob.jid))
            assert c.expect_stream_error() == "invalid-from"
            c.expect_closed()
        bob.expect_nothing(lambda e: e.tag == q(NS_CLIENT, "message"), 1.0)
        # A domain that merely ends like the component's is not on it either.
        with raw_component(comp_server) as c:
            c.login()
            c.send("<message from='bot@evil%s' to=%s><body>x</body></message>"
                   % (RAW, quoteattr(bob.jid)))
            assert c.expect_stream_error() == "invalid-from"
        with raw_component(comp_server) as c:
            c.login()
            c.send("<presence to=%s/>" % quoteattr(bob.jid))  # no 'from' at all
            assert c.expect_stream_error() == "invalid-from"
        bob.expect_nothing(lambda e: e.tag in (q(NS_CLIENT, "message"), q(NS_CLIENT, "presence"))
                           and e.get("from") != bob.jid, 1.0)  # his own presence may come


def test_raw_component_stanzas_both_ways_and_addressing_errors(comp_server):
    with _login_user(comp_server, "bob") as bob:
        with raw_component(comp_server, tls=False) as c:
            c.login()
            c.send("<message from='echo@%s/x' to=%s type='chat'><body>hand made</body>"
                   "</message>" % (RAW, quoteattr(bob.jid)))
            got = bob.wait_message("hand made")
            assert got.get("from") == "echo@%s/x" % RAW
            # A stanza that does not decode gets its error back on the component's stream.
            c.send("<message from='echo@%s' to='a@@localhost' id='m1'><body>x</body></message>"
                   % RAW)
            err = c.wait_for(lambda e: e.tag == q(NS_COMPONENT, "message")
                             and e.get("id") == "m1")
            assert err.get("type") == "error" and err.get("to") == "echo@" + RAW
            assert err.find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}jid-malformed") is not None
            # What a user sends to the component arrives in the component's namespace.
            bob.send_message("echo@" + RAW, "to the raw component")
            m = c.wait_for(lambda e: e.tag == q(NS_COMPONENT, "message"))
            assert m.get("from") == bob.jid and m.get("to") == "echo@" + RAW
            assert m.findtext(q(NS_COMPONENT, "body")) == "to the raw component"
            c.send("<message from='echo@%s'><body>nowhere</body></message>" % RAW)
            assert c.expect_stream_error() == "improper-addressing"


def test_stream_header_and_handshake_errors(comp_server):
    with raw_component(comp_server, "nobody.localhost") as c:
        c.open()
        assert c.expect_stream_error() == "host-unknown"
    with raw_component(comp_server, comp_server.domain) as c:  # a user domain is no component
        c.open()
        assert c.expect_stream_error() == "host-unknown"
    with raw_component(comp_server, SPARE) as c:
        c.open()
        c.send("<message from='x@%s' to='bob@localhost'><body>early</body></message>" % SPARE)
        assert c.expect_stream_error() == "not-authorized"
    with raw_component(comp_server, SPARE) as c:
        c.connect(direct_tls=True)
        c._reset_parser()
        c.send("<stream:stream xmlns='jabber:client' xmlns:stream='%s' to='%s'>"
               % (NS_STREAM, SPARE))
        assert c.expect_stream_error() == "invalid-namespace"


def test_after_the_component_leaves_its_domain_is_unavailable(comp_server):
    async def connect_and_leave():
        gw = gateway(comp_server)
        assert await gw.start()
        await gw.stop()
        await asyncio.wait_for(gw.ended, 5)
    run(connect_and_leave())
    with _login_user(comp_server) as c:
        c.send_message("bot@" + GATEWAY, "anyone there?", msg_id="gone1")
        err = c.wait_for(lambda e: e.tag == q(NS_CLIENT, "message") and e.get("id") == "gone1")
        assert stanza_error_condition(err) == "service-unavailable"
        assert err.get("from") == "bot@" + GATEWAY
        res = c.iq(GATEWAY, "get", "<query xmlns='%s'/>" % NS_VERSION)
        assert stanza_error_condition(res) == "service-unavailable"
        c.send("<presence to='bot@%s'/>" % GATEWAY)  # dropped, not bounced
        c.expect_nothing(lambda e: e.get("type") == "error", 1.0)
    # A component that drops its TCP connection frees the domain too.
    with raw_component(comp_server) as raw:
        raw.login()
    time.sleep(0.5)
    with _login_user(comp_server) as c:
        c.send_message("x@" + RAW, "after the drop", msg_id="gone2")
        err = c.wait_for(lambda e: e.tag == q(NS_CLIENT, "message") and e.get("id") == "gone2")
        assert stanza_error_condition(err) == "service-unavailable"


# ---- own servers --------------------------------------------------------------------------------

def test_timeouts_unauthenticated_silent_and_live_components(tmp_path):
    ports = Ports()
    srv = start_server(tmp_path, component_config(ports.direct, ports.plain), accounts=[],
                       limits={"idle_timeout_s": 10, "auth_timeout_s": 2})
    srv.comp_ports = ports
    try:
        with raw_component(srv, SPARE) as c:  # never sends its handshake
            t0 = time.monotonic()
            c.open()
            assert c.expect_stream_error(timeout=6) == "connection-timeout"
            assert 1.5 <= time.monotonic() - t0 <= 4.0
        async def scenario():
            gw = gateway(srv)  # answers pings (with an error: it has no XEP-0199 plugin)
            assert await gw.start()

            def silent():
                with raw_component(srv, timeout=20) as c:
                    c.login()
                    t0 = time.monotonic()
                    ping = c.next_element(timeout=15)
                    assert ping.tag == q(NS_COMPONENT, "iq") and ping.get("type") == "get"
                    assert ping.find("{urn:xmpp:ping}ping") is not None
                    assert ping.get("to") == RAW and ping.get("from") == srv.domain
                    assert 4.0 <= time.monotonic() - t0 <= 8.0
                    assert c.expect_stream_error(timeout=15) == "connection-timeout"
                    assert 9.0 <= time.monotonic() - t0 <= 14.0
            await asyncio.to_thread(silent)
            assert gw.transport is not None and not gw.ended.done() and not gw.stream_errors
            await gw.stop()
        run(scenario(), timeout=60)
        with raw_component(srv) as c:
            c.login()
            stop_server(srv)
            assert c.expect_stream_error() == "system-shutdown"
    finally:
        if srv.proc.poll() is None:
            stop_server(srv)


def test_plaintext_listener_off_loopback_stops_kurierd_with_exit_2(tmp_path):
    addr = "0.0.0.0:%d" % _free_port()
    srv = prepare_server(tmp_path, "component:\n  plain: [\"%s\"]\n" % addr, accounts=[])
    res = subprocess.run([str(srv.kurierd), "-c", str(srv.config_path)], capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 2, res.stderr
    lines = srv.config_path.read_text().splitlines()
    line = next(i + 1 for i, text in enumerate(lines) if addr in text)
    assert res.stderr.strip() == (
        "kurierd: %s:%d: \"component.plain\" entry \"%s\" is not a loopback address "
        "(127.0.0.0/8 or [::1]): a plaintext listener must stay on this machine; use "
        "component.direct_tls for other addresses." % (srv.config_path, line, addr))


def test_component_domain_equal_to_a_user_domain_stops_kurierd_with_exit_2(tmp_path):
    srv = prepare_server(tmp_path, "component:\n  secrets:\n    LocalHost.: \"s\"\n", accounts=[])
    res = subprocess.run([str(srv.kurierd), "-c", str(srv.config_path)], capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 2, res.stderr
    assert "\"component.secrets\" entry \"localhost\" is also a user domain" in res.stderr
    assert "\"s\"" not in res.stderr  # secrets never appear in messages
