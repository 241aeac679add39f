# SPDX-License-Identifier: AGPL-3.0-or-later
"""Server-to-server federation (RFC 6120, RFC 6121 across servers, XEP-0178, XEP-0220).

Two kurierd instances, kurier.test on 127.0.0.2 and other.test on 127.0.0.3, each with
s2s.hosts pointing at the other's free-picked s2s port:
  - certificates from a test CA both trust: SASL EXTERNAL (asserted from the logs);
  - self-signed certificates and require_valid_certificates false: Server Dialback;
  - a third server requiring valid certificates refuses the self-signed peer;
  - fake peers (raw sockets): one that offers no STARTTLS, one that forges a dialback key;
  - an unmapped domain and unreachable/silent servers bounce within connect_timeout_s.
Certificates are generated with python3-cryptography.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
import socket
import ssl
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kurier_server import _free_port, start_server, stop_server
from im_helpers import is_presence, login, wait_presence, wait_push
from xmpp_raw import NS_CLIENT, q, stanza_error_condition
from xmpp_slix import Client, run

pytestmark = pytest.mark.kurier_only

KURIER = ("kurier.test", "127.0.0.2")
OTHER = ("other.test", "127.0.0.3")
STRICT = ("strict.test", "127.0.0.4")
ACCOUNTS = ["alice", "bob", "carol", "dave"]
OTHER_SECRET = "other-test-dialback-secret"  # lets a raw peer make valid keys for other.test


def dialback_key(secret: str, receiving: str, originating: str, stream_id: str) -> str:
    """XEP-0185: HMAC-SHA256 keyed with hex(SHA-256(secret))."""
    prepared = hashlib.sha256(secret.encode()).hexdigest().encode()
    return hmac.new(prepared, ("%s %s %s" % (receiving, originating, stream_id)).encode(),
                    hashlib.sha256).hexdigest()


# ---- certificates ------------------------------------------------------------------------

def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def _cert(subject_cn, san_dns, issuer_name, issuer_key, key, ca=False):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(_name(subject_cn)).issuer_name(issuer_name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=2))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san_dns:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(san_dns)]), critical=False)
    if ca:
        b = b.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False,
                                          False), critical=True)
    return b.sign(issuer_key, hashes.SHA256())


def make_ca(tmp: Path):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert("Kurier test CA", None, _name("Kurier test CA"), key, key, ca=True)
    (tmp / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def make_leaf(tmp: Path, domain: str, ca=None):
    """(cert, key, PEM clients trust): signed by ca (cert, key), or self-signed."""
    key = ec.generate_private_key(ec.SECP256R1())
    if ca:
        cert = _cert(domain, domain, ca[0].subject, ca[1], key)
    else:
        cert = _cert(domain, domain, _name(domain), key, key)
    cpath, kpath = tmp / ("%s.crt" % domain), tmp / ("%s.key" % domain)
    cpath.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, kpath)
    return str(cpath), str(kpath), str(tmp / "ca.pem") if ca else str(cpath)


# ---- servers ---------------------------------------------------------------------------------

def s2s_config(s2s_port: int, hosts: dict, require_valid: bool, ca_file: str = "",
               connect_timeout: int = 10, secret: str = "") -> str:
    host_map = ", ".join("%s: \"%s\"" % kv for kv in hosts.items())
    return ("s2s:\n"
            "  enabled: true\n"
            "  starttls: [\"%s\"]\n"
            "  direct_tls: []\n"
            "  hosts: {%s}\n"
            "  require_valid_certificates: %s\n"
            "  ca_file: \"%s\"\n"
            "  connect_timeout_s: %d\n"
            "  queue_max_stanzas: 100\n"
            "  dialback_secret: \"%s\"\n"
            % ("%s", host_map, "true" if require_valid else "false", ca_file, connect_timeout,
               secret))


def start_pair(tmp: Path, with_ca: bool, extra_hosts=None, idle_timeout: int = 600):
    """kurier.test and other.test, each knowing the other through s2s.hosts."""
    ca = make_ca(tmp) if with_ca else None
    ports = {KURIER[0]: _free_port(KURIER[1]), OTHER[0]: _free_port(OTHER[1])}
    servers = {}
    for (domain, host), (peer, peer_host) in ((KURIER, OTHER), (OTHER, KURIER)):
        d = tmp / domain
        d.mkdir()
        hosts = {peer: "%s:%d" % (peer_host, ports[peer])}
        hosts.update(extra_hosts or {})
        cfg = s2s_config(ports[domain], hosts, require_valid=with_ca,
                         ca_file=str(tmp / "ca.pem") if with_ca else "",
                         secret=OTHER_SECRET if domain == OTHER[0] else "")
        cfg = cfg % ("%s:%d" % (host, ports[domain]))
        cfg += "  idle_timeout_s: %d\n" % idle_timeout
        servers[domain] = start_server(d, cfg, accounts=ACCOUNTS, domain=domain, host=host,
                                       tls=make_leaf(tmp, domain, ca))
        servers[domain].s2s_port = ports[domain]
    return servers[KURIER[0]], servers[OTHER[0]]


@pytest.fixture(scope="module")
def ca_pair(tmp_path_factory):
    k, o = start_pair(tmp_path_factory.mktemp("s2s-ca"), with_ca=True)
    yield k, o
    stop_server(k)
    stop_server(o)


class SilentPeer:
    """A TCP listener that accepts and never says a word (an s2s peer that hangs)."""

    def __init__(self, host: str):
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.thread.join()
        for c in self.conns:
            c.close()
        self.sock.close()


class NoTlsPeer(SilentPeer):
    """Answers a stream header with features that do not offer STARTTLS."""

    def _run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(c)
            c.settimeout(5)
            try:
                data = b""
                while b">" not in data.split(b"stream:stream", 1)[-1]:
                    data += c.recv(4096)
                c.sendall(b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                          b"xmlns:stream='http://etherx.jabber.org/streams' "
                          b"xmlns:db='jabber:server:dialback' id='notls1' from='notls.test' "
                          b"version='1.0'><stream:features><dialback "
                          b"xmlns='urn:xmpp:features:dialback'/></stream:features>")
                self.received = c.recv(4096)
            except OSError:
                pass


@pytest.fixture(scope="module")
def db_pair(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("s2s-db")
    silent = SilentPeer(KURIER[1])
    notls = NoTlsPeer(KURIER[1])
    closed_port = _free_port(KURIER[1])  # nothing listens there
    k, o = start_pair(tmp, with_ca=False, extra_hosts={
        "silent.test": "%s:%d" % (KURIER[1], silent.port),
        "notls.test": "%s:%d" % (KURIER[1], notls.port),
        "closed.test": "%s:%d" % (KURIER[1], closed_port)})
    k.notls = notls
    yield k, o
    stop_server(k)
    stop_server(o)
    silent.close()
    notls.close()


def log_text(srv) -> str:
    return srv.log_path.read_text(errors="replace")


def wait_log(srv, pattern: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(pattern, log_text(srv))
        if m:
            return m.group(0)
        time.sleep(0.1)
    pytest.fail("no log line matching %r in %s; tail:\n%s" % (pattern, srv.domain,
                                                              srv.log_tail()), pytrace=False)


# ---- what must work across servers ----------------------------------------------------------

def _messages_both_ways(k, o):
    async def go():
        a = Client(k, "alice", "s2s")
        b = Client(o, "bob", "s2s")
        assert await a.start() and await b.start()
        try:
            a.send_message(mto="bob@other.test", mbody="hello other", mtype="chat")
            msg = await b.message_with_body("hello other", timeout=15)
            assert msg["from"].bare == "alice@kurier.test"
            b.send_message(mto="alice@kurier.test/s2s", mbody="hello kurier", mtype="chat")
            msg = await a.message_with_body("hello kurier", timeout=15)
            assert str(msg["from"]) == "bob@other.test/s2s"
        finally:
            await a.stop()
            await b.stop()
    run(go(), timeout=40)


def _subscription_and_presence(k, o, a_local, b_local):
    a_jid, b_jid = "%s@kurier.test" % a_local, "%s@other.test" % b_local
    a, b = login(k, a_local, timeout=15), login(o, b_local, timeout=15)
    try:
        # RFC 6121 §3.1: a asks, b approves, across the two servers.
        a.send("<presence to=%s type='subscribe'/>" % quoteattr(b_jid))
        wait_push(a, b_jid, timeout=15, subscription="none", ask="subscribe")
        wait_presence(b, "subscribe", a_jid, timeout=15)
        b.send("<presence to=%s type='subscribed'/>" % quoteattr(a_jid))
        wait_push(a, b_jid, timeout=15, subscription="to")
        # §3.1.5: b's server sends b's presence after the approval.
        wait_presence(a, None, b_jid, bare=True, timeout=15)
        # Presence changes travel too (§4.4), and going offline (§4.5).
        b.send("<presence><show>away</show></presence>")
        p = a.wait_for(lambda e: is_presence(e, None, b_jid, bare=True) and
                       e.find(q(NS_CLIENT, "show")) is not None, 15)
        assert p.find(q(NS_CLIENT, "show")).text == "away"
        b.close_stream()
        wait_presence(a, "unavailable", b_jid, bare=True, timeout=15)
    finally:
        a.close()
        b.close()


def test_ca_certificates_use_sasl_external(ca_pair):
    k, o = ca_pair
    _messages_both_ways(k, o)
    # Each side authenticated the other with its certificate (XEP-0178).
    wait_log(k, r"inbound s2s stream authenticated other\.test -> kurier\.test \(SASL EXTERNAL\)")
    wait_log(o, r"inbound s2s stream authenticated kurier\.test -> other\.test \(SASL EXTERNAL\)")
    wait_log(k, r"s2s stream kurier\.test -> other\.test ready \(SASL EXTERNAL\)")
    assert "(dialback)" not in log_text(k) + log_text(o)


def test_ca_subscription_and_presence_across(ca_pair):
    _subscription_and_presence(*ca_pair, "carol", "carol")


def test_self_signed_uses_dialback(db_pair):
    k, o = db_pair
    _messages_both_ways(k, o)
    wait_log(k, r"s2s stream kurier\.test -> other\.test ready \(dialback\)")
    wait_log(o, r"inbound s2s stream authenticated kurier\.test -> other\.test \(dialback\)")
    wait_log(k, r"inbound s2s stream authenticated other\.test -> kurier\.test \(dialback\)")
    assert "(SASL EXTERNAL)" not in log_text(k) + log_text(o)


def test_dialback_subscription_and_presence_across(db_pair):
    _subscription_and_presence(*db_pair, "carol", "carol")


def test_inbound_subscription_request_is_kept_for_an_offline_user(db_pair):
    k, o = db_pair
    a = login(k, "dave", timeout=15)
    try:
        a.send("<presence to='dave@other.test' type='subscribe'/>")
        wait_push(a, "dave@other.test", timeout=15, ask="subscribe")
    finally:
        a.close()
    time.sleep(1.0)  # the request crosses to other.test while dave there is offline
    b = login(o, "dave", timeout=15)
    try:
        wait_presence(b, "subscribe", "dave@kurier.test", timeout=15)
    finally:
        b.close()


def test_idle_streams_close_and_reopen(tmp_path):
    k, o = start_pair(tmp_path, with_ca=False, idle_timeout=10)
    try:
        _messages_both_ways(k, o)
        # Both sides time out together; whichever closes first ends the stream for both.
        wait_log(k, r"s2s stream to other\.test closed", timeout=25)
        wait_log(o, r"s2s stream to kurier\.test closed", timeout=25)
        assert re.search(r"idle: closing", log_text(k) + log_text(o))
        # The next stanza opens a new stream.
        _messages_both_ways(k, o)
        assert len(re.findall(r"opening s2s stream kurier\.test -> other\.test",
                              log_text(k))) == 2
    finally:
        stop_server(k)
        stop_server(o)


def test_iq_across_servers(db_pair):
    """A ping to the other server and a vCard request to a user there get their results."""
    k, _ = db_pair
    c = login(k, "alice", timeout=15)
    try:
        res = c.iq("other.test", "get", "<ping xmlns='urn:xmpp:ping'/>", timeout=15)
        assert res.get("type") == "result" and res.get("from") == "other.test"
        res = c.iq("bob@other.test", "get", "<vCard xmlns='vcard-temp'/>", timeout=15)
        assert res.get("type") == "result", ET.tostring(res, encoding="unicode")
        assert res.get("from") == "bob@other.test"
    finally:
        c.close()


# ---- refusals and bounces ------------------------------------------------------------------

def _bounce(srv, to: str, timeout: float = 20.0):
    c = login(srv, "alice", timeout=timeout)
    try:
        start = time.monotonic()
        c.send_message(to, "are you there?")
        err = c.wait_for(lambda e: e.tag == q(NS_CLIENT, "message") and
                         e.get("type") == "error", timeout)
        return stanza_error_condition(err), err, time.monotonic() - start
    finally:
        c.close()


def test_unmapped_domain_bounces_remote_server_not_found(db_pair):
    k, _ = db_pair
    cond, err, _ = _bounce(k, "someone@nowhere.test")
    assert cond == "remote-server-not-found"
    assert err.get("from") == "someone@nowhere.test"
    # Not in s2s.hosts: DNS is asked, and .test is a reserved name no resolver serves.
    wait_log(k, r"cannot find the server of nowhere\.test: ")


def test_refused_connection_bounces_at_once(db_pair):
    k, _ = db_pair
    cond, _, took = _bounce(k, "someone@closed.test")
    assert cond == "remote-server-not-found"
    assert took < 5


def test_silent_server_bounces_remote_server_timeout(tmp_path):
    silent = SilentPeer(KURIER[1])
    port = _free_port(KURIER[1])
    cfg = s2s_config(port, {"silent.test": "%s:%d" % (KURIER[1], silent.port)},
                     require_valid=False, connect_timeout=2) % ("%s:%d" % (KURIER[1], port))
    srv = start_server(tmp_path, cfg, accounts=ACCOUNTS, domain=KURIER[0], host=KURIER[1])
    try:
        cond, err, took = _bounce(srv, "someone@silent.test")
        assert cond == "remote-server-timeout"
        assert err.find("{%s}error" % NS_CLIENT).get("type") == "wait"
        assert 1.5 <= took < 6, took
    finally:
        stop_server(srv)
        silent.close()


def test_queue_is_bounded_while_connecting(tmp_path):
    """Stanzas beyond s2s.queue_max_stanzas bounce resource-constraint; the queued ones
    bounce remote-server-timeout when the stream never comes up."""
    silent = SilentPeer(KURIER[1])
    port = _free_port(KURIER[1])
    cfg = s2s_config(port, {"silent.test": "%s:%d" % (KURIER[1], silent.port)},
                     require_valid=False, connect_timeout=3) % ("%s:%d" % (KURIER[1], port))
    cfg = cfg.replace("queue_max_stanzas: 100", "queue_max_stanzas: 3")
    srv = start_server(tmp_path, cfg, accounts=ACCOUNTS, domain=KURIER[0], host=KURIER[1])
    c = login(srv, "alice", timeout=15)
    try:
        for i in range(5):
            c.send_message("someone@silent.test", "queued %d" % i, msg_id="q%d" % i)
        conds = {}
        while len(conds) < 5:
            e = c.wait_for(lambda e: e.tag == q(NS_CLIENT, "message") and
                           e.get("type") == "error", 10)
            conds[e.get("id")] = stanza_error_condition(e)
        assert sorted(conds.values()) == ["remote-server-timeout"] * 3 + \
            ["resource-constraint"] * 2, conds
        assert conds["q3"] == conds["q4"] == "resource-constraint"
    finally:
        c.close()
        stop_server(srv)
        silent.close()


def test_peer_without_starttls_is_refused(db_pair):
    k, _ = db_pair
    cond, _, _ = _bounce(k, "someone@notls.test")
    assert cond == "remote-server-not-found"
    wait_log(k, r"notls\.test does not offer STARTTLS: refused")


def test_require_valid_certificates_refuses_self_signed_peer(db_pair, tmp_path):
    _, o = db_pair
    port = _free_port(STRICT[1])
    cfg = s2s_config(port, {"other.test": "%s:%d" % (OTHER[1], o.s2s_port)},
                     require_valid=True) % ("%s:%d" % (STRICT[1], port))
    srv = start_server(tmp_path, cfg, accounts=ACCOUNTS, domain=STRICT[0], host=STRICT[1])
    try:
        cond, _, _ = _bounce(srv, "bob@other.test")
        assert cond == "remote-server-not-found"
        wait_log(srv, r"certificate of other\.test is not valid \(.*\): refused")
    finally:
        stop_server(srv)


# ---- a raw peer on our inbound side --------------------------------------------------------

class RawPeer:
    """A hand-driven initiating server: plain socket, then TLS without a client certificate."""

    def __init__(self, host: str, port: int, tls: bool = False):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.conn = self.sock
        self.buf = b""
        if tls:
            self._wrap()

    def send(self, data: str):
        self.conn.sendall(data.encode())

    def read_until(self, pattern: bytes, timeout: float = 10.0) -> bytes:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.buf, re.S):
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for %r; got %r" % (pattern, self.buf))
            try:
                data = self.conn.recv(4096)
            except socket.timeout:
                continue
            if not data:
                raise AssertionError("closed while waiting for %r; got %r" % (pattern, self.buf))
            self.buf += data
        m = re.search(pattern, self.buf, re.S)
        out, self.buf = self.buf[:m.end()], self.buf[m.end():]
        return out

    def header(self, frm: str, to: str):
        self.send("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                  "xmlns:stream='http://etherx.jabber.org/streams' "
                  "xmlns:db='jabber:server:dialback' from='%s' to='%s' version='1.0'>"
                  % (frm, to))
        head = self.read_until(rb"<stream:stream[^>]*>")
        feats = self.read_until(rb"</stream:features>|<stream:features/>")
        return re.search(rb"id='([^']+)'", head).group(1).decode(), feats

    def starttls(self):
        self.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        self.read_until(rb"<proceed[^>]*/>")
        self._wrap()

    def _wrap(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.conn = ctx.wrap_socket(self.sock, server_hostname="kurier.test")

    def close(self):
        self.conn.close()


def test_forged_dialback_key_is_refused(db_pair):
    k, o = db_pair
    p = RawPeer(KURIER[1], k.s2s_port)
    try:
        _, feats = p.header("other.test", "kurier.test")
        assert b"starttls" in feats
        p.starttls()
        sid, feats = p.header("other.test", "kurier.test")
        assert b"urn:xmpp:features:dialback" in feats
        assert b"EXTERNAL" not in feats  # no client certificate at all
        # A key other.test never issued: kurier.test asks other.test (db:verify), which
        # answers invalid, so the claim is refused.
        p.send("<db:result from='other.test' to='kurier.test'>%s</db:result>" % ("ab" * 32))
        res = p.read_until(rb"<db:result[^>]*type='[a-z]+'[^>]*/>", timeout=15)
        assert b"type='invalid'" in res
        p.read_until(rb"<not-authorized")
        wait_log(k, r"dialback key for other\.test is invalid \(forged\?\): refused")
        # Nothing from this stream reached anyone: the stream is closed.
        with pytest.raises(AssertionError):
            p.send("<message from='evil@other.test' to='alice@kurier.test'><body>x</body>"
                   "</message>")
            p.read_until(rb"never", timeout=2)
    finally:
        p.close()


def test_inbound_direct_tls_listener(tmp_path):
    """XEP-0368: s2s.direct_tls starts with TLS; the features then offer dialback."""
    port, direct = _free_port(KURIER[1]), _free_port(KURIER[1])
    cfg = s2s_config(port, {}, require_valid=False) % ("%s:%d" % (KURIER[1], port))
    cfg = cfg.replace("direct_tls: []", "direct_tls: [\"%s:%d\"]" % (KURIER[1], direct))
    srv = start_server(tmp_path, cfg, accounts=ACCOUNTS, domain=KURIER[0], host=KURIER[1])
    try:
        p = RawPeer(KURIER[1], direct, tls=True)
        try:
            _, feats = p.header("other.test", "kurier.test")
            assert b"starttls" not in feats
            assert b"urn:xmpp:features:dialback" in feats
            # other.test is not in s2s.hosts: its key cannot be checked (XEP-0220 errors).
            p.send("<db:result from='other.test' to='kurier.test'>%s</db:result>" % ("ab" * 32))
            res = p.read_until(rb"</db:result>", timeout=15)
            assert b"type='error'" in res and b"remote-connection-failed" in res, res
        finally:
            p.close()
    finally:
        stop_server(srv)


def test_inbound_peer_must_start_tls(db_pair):
    k, _ = db_pair
    p = RawPeer(KURIER[1], k.s2s_port)
    try:
        _, feats = p.header("other.test", "kurier.test")
        assert b"<required/>" in feats
        p.send("<db:result from='other.test' to='kurier.test'>%s</db:result>" % ("ab" * 32))
        p.read_until(rb"<policy-violation")
    finally:
        p.close()


def test_spoofed_from_domain_is_refused(db_pair):
    """A peer authenticated (by dialback) for other.test may not send from another domain."""
    k, _ = db_pair
    p = RawPeer(KURIER[1], k.s2s_port)
    try:
        p.header("other.test", "kurier.test")
        p.starttls()
        sid, _ = p.header("other.test", "kurier.test")
        # Before authenticating, no stanza is accepted at all... (checked in its own test);
        # with a key made from other.test's secret, kurier.test's db:verify comes back valid.
        key = dialback_key(OTHER_SECRET, "kurier.test", "other.test", sid)
        p.send("<db:result from='other.test' to='kurier.test'>%s</db:result>" % key)
        res = p.read_until(rb"<db:result[^>]*type='[a-z]+'[^>]*/>", timeout=15)
        assert b"type='valid'" in res, res
        p.send("<message from='mallory@evil.test' to='alice@kurier.test'><body>x</body>"
               "</message>")
        p.read_until(rb"<invalid-from")
        wait_log(k, r"stanza from evil\.test to kurier\.test on a stream not authenticated")
    finally:
        p.close()


def test_inbound_stream_carries_several_domains(tmp_path):
    """Piggy-backing (XEP-0220 §4.3): one inbound stream authenticates other.test and then
    third.test with a second <db:result/>, and carries stanzas from both; a domain it did not
    authenticate is still refused."""
    k_port, o_port = _free_port(KURIER[1]), _free_port(OTHER[1])
    o_dir = tmp_path / "other"
    o_dir.mkdir()
    # One authoritative server for both domains, with the secret the raw peer knows.
    o_cfg = s2s_config(o_port, {KURIER[0]: "%s:%d" % (KURIER[1], k_port)}, require_valid=False,
                       secret=OTHER_SECRET) % ("%s:%d" % (OTHER[1], o_port))
    o = start_server(o_dir, o_cfg, accounts=[], domain="other.test, third.test", host=OTHER[1],
                     tls=make_leaf(tmp_path, OTHER[0]))
    k_dir = tmp_path / "kurier"
    k_dir.mkdir()
    hosts = {d: "%s:%d" % (OTHER[1], o_port) for d in ("other.test", "third.test")}
    k_cfg = s2s_config(k_port, hosts, require_valid=False) % ("%s:%d" % (KURIER[1], k_port))
    k = start_server(k_dir, k_cfg, accounts=ACCOUNTS, domain=KURIER[0], host=KURIER[1],
                     tls=make_leaf(tmp_path, KURIER[0]))
    alice = login(k, "alice")
    p = RawPeer(KURIER[1], k_port)
    try:
        p.header("other.test", "kurier.test")
        p.starttls()
        sid, _ = p.header("other.test", "kurier.test")
        for domain in ("other.test", "third.test"):
            key = dialback_key(OTHER_SECRET, "kurier.test", domain, sid)
            p.send("<db:result from='%s' to='kurier.test'>%s</db:result>" % (domain, key))
            res = p.read_until(rb"<db:result[^>]*type='[a-z]+'[^>]*/>", timeout=15)
            assert b"type='valid'" in res and domain.encode() in res, res
        for frm in ("bob@other.test/x", "carol@third.test/y"):
            p.send("<message from='%s' to='%s' type='chat'><body>from %s</body></message>"
                   % (frm, alice.jid, frm))
            assert alice.wait_message("from %s" % frm, timeout=10).get("from") == frm
        p.send("<message from='eve@fourth.test' to='%s'><body>x</body></message>" % alice.jid)
        p.read_until(rb"<invalid-from")
    finally:
        p.close()
        alice.close()
        stop_server(k)
        stop_server(o)


def test_stanza_before_authentication_is_refused(db_pair):
    k, _ = db_pair
    p = RawPeer(KURIER[1], k.s2s_port)
    try:
        p.header("other.test", "kurier.test")
        p.starttls()
        p.header("other.test", "kurier.test")
        p.send("<message from='bob@other.test' to='alice@kurier.test'><body>x</body></message>")
        p.read_until(rb"<not-authorized")
    finally:
        p.close()


HOSTILE_INPUTS = [
    # (what is sent after connecting, the stream error condition expected)
    (b"<a><</a>", b"invalid-namespace"),  # <a> is taken for the stream header
    (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
     b"xmlns:stream='http://etherx.jabber.org/streams' to='kurier.test' version='1.0'>",
     b"invalid-namespace"),
    (b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
     b"to='elsewhere.test' version='1.0'>", b"host-unknown"),
    (b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
     b"version='1.0'>", b"host-unknown"),
    (b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
     b"from='bad..domain' to='kurier.test' version='1.0'>", b"invalid-from"),
    (b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
     b"xmlns:db='jabber:server:dialback' to='kurier.test' version='1.0'>"
     b"<db:verify from='other.test' to='kurier.test'>x</db:verify>", b"policy-violation"),
    (b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
     b"to='kurier.test' version='1.0'><auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
     b"mechanism='EXTERNAL'>=</auth>", b"policy-violation"),
    (b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
     b"to='kurier.test' version='1.0'><!DOCTYPE x>", None),
]


@pytest.mark.parametrize("data,condition", HOSTILE_INPUTS)
def test_inbound_hostile_input_gets_a_stream_error(db_pair, data, condition):
    k, _ = db_pair
    s = socket.create_connection((KURIER[1], k.s2s_port), timeout=10)
    got = b""
    try:
        s.sendall(data)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(4096)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            got += chunk
    finally:
        s.close()
    assert b"<stream:error>" in got, got
    if condition:
        assert condition in got, got
    assert k.proc.poll() is None


def test_inbound_hostile_after_tls(db_pair):
    """After TLS: dialback elements without addresses, unknown elements, a stanza with a
    malformed 'from'. Each ends the stream with an error; the server keeps running."""
    k, _ = db_pair
    cases = [("<db:result>%s</db:result>" % ("ab" * 32), rb"improper-addressing"),
             ("<db:verify from='other.test' to='kurier.test'>x</db:verify>",
              rb"improper-addressing"),
             ("<db:result from='other.test' to='nobody.test'>k</db:result>",
              rb"item-not-found"),
             ("<db:verify from='other.test' to='kurier.test' id='x'>bad</db:verify>",
              rb"type='invalid'"),
             ("<foo xmlns='urn:example'/>", rb"unsupported-stanza-type")]
    for payload, expect in cases:
        p = RawPeer(KURIER[1], k.s2s_port)
        try:
            p.header("other.test", "kurier.test")
            p.starttls()
            p.header("other.test", "kurier.test")
            p.send(payload)
            p.read_until(expect)
        finally:
            p.close()
    assert k.proc.poll() is None
