# SPDX-License-Identifier: AGPL-3.0-or-later
"""Attacks through the protocol, on the shared server: entity expansion and external
entities (RFC 6120 §11.1 restricted XML: no DTD at all), invalid and overlong UTF-8 and NUL
bytes (§11.6, §4.9.3.13 not-well-formed), roster-push spoofing (RFC 6121 §2.1.6: a roster
set addressed to another user is refused, and nobody's roster changes), forged 'from' on iq
and presence (RFC 6120 §8.1.2.1: the server stamps it), and the TLS policy as seen by
external scanners (sslscan, testssl): TLS 1.2+ only, forward-secret ciphers only, no
compression, no insecure renegotiation.  Bystanders logged in before each attack keep
talking, and a fresh client logs in and exchanges a message afterwards."""

import json
import shutil
import subprocess
import uuid
import xml.etree.ElementTree as ET

import pytest

from attack_helpers import restricted_conditions
from xmpp_raw import NS_CLIENT, q, stanza_error_condition

kurier_only = pytest.mark.kurier_only
NS_ROSTER = "jabber:iq:roster"


def _secured(server):
    """Connected, TLS up, stream restarted: the parser is at the start of a new document."""
    c = server.raw()
    c.connect()
    c.open_stream()
    c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    c.expect()
    c.start_tls_layer()
    c._reset_parser()
    return c


BILLION_LAUGHS = (
    "<?xml version='1.0'?><!DOCTYPE stream:stream ["
    "<!ENTITY lol 'lol'>"
    + "".join("<!ENTITY lol%d '%s'>" % (i, ("&lol%d;" % (i - 1) if i > 1 else "&lol;") * 10)
              for i in range(1, 10))
    + "]>")

EXTERNAL_ENTITY = ("<?xml version='1.0'?><!DOCTYPE stream:stream ["
                   "<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]>")


@pytest.mark.parametrize("dtd", [BILLION_LAUGHS, EXTERNAL_ENTITY],
                         ids=["billion-laughs", "external-entity"])
def test_dtd_attacks_get_restricted_xml(server, bystanders, dtd):
    with _secured(server) as c:
        c.send(dtd + c.stream_header_xml() + "<x>&lol9;&xxe;</x>")
        assert c.expect_stream_error() in restricted_conditions(server)
        c.expect_closed()


def test_billion_laughs_inside_a_stanza_gets_an_error(server, bystanders):
    # After the root element a DOCTYPE is not even well-formed XML.
    bob, _carol = bystanders
    with server.raw() as c:
        c.login("alice", server.password("alice"))
        c.send(BILLION_LAUGHS + "<message to='%s'><body>&lol9;</body></message>" % bob.jid)
        assert c.expect_stream_error() in restricted_conditions(server) | {"not-well-formed"}
        c.expect_closed()
    bob.expect_nothing(lambda e: "lol" in (ET.tostring(e, encoding="unicode")), 0.5)


BAD_BYTES = {
    "invalid-byte": b"\xff\xfe",
    "overlong-slash": b"\xc0\xaf",
    "overlong-nul": b"\xc0\x80",
    "overlong-3byte": b"\xe0\x80\xaf",
    "surrogate": b"\xed\xa0\x80",
    "beyond-unicode": b"\xf4\x90\x80\x80",
    "truncated": b"\xe2\x82",
    "nul": b"\x00",
    "control": b"\x01",
}


@pytest.mark.parametrize("bad", list(BAD_BYTES.values()), ids=list(BAD_BYTES))
def test_invalid_utf8_and_nul_bytes_end_the_stream(server, bystanders, bad):
    bob, _carol = bystanders
    with server.raw() as c:
        c.login("alice", server.password("alice"))
        c.send(b"<message to='" + bob.jid.encode() + b"' type='chat'><body>bad " + bad
               + b" bytes</body></message>")
        assert c.expect_stream_error() in ("not-well-formed", "bad-format",
                                           "unsupported-encoding")
        c.expect_closed()
    bob.expect_nothing(lambda e: e.tag == q(NS_CLIENT, "message")
                       and "bad" in (ET.tostring(e, encoding="unicode")), 0.5)


@pytest.mark.parametrize("bad", [b"\xc0\xaf", b"\x00"], ids=["overlong", "nul"])
def test_invalid_bytes_in_an_attribute_end_the_stream(server, bystanders, bad):
    with server.raw() as c:
        c.login("alice", server.password("alice"))
        c.send(b"<presence><status xml:lang='e" + bad + b"n'>x</status></presence>")
        assert c.expect_stream_error() in ("not-well-formed", "bad-format",
                                           "unsupported-encoding")
        c.expect_closed()


# ---------------------------------------------------------------- roster-push spoofing

def _roster_names(client):
    res = client.iq(None, "get", "<query xmlns='%s'/>" % NS_ROSTER)
    assert res.get("type") == "result"
    return sorted(i.get("jid") for i in res.iter(q(NS_ROSTER, "item")))


def _push(item_jid):
    return ("<query xmlns='%s'><item jid='%s' name='evil' subscription='both'/></query>"
            % (NS_ROSTER, item_jid))


@pytest.mark.parametrize("target", ["full", "bare"])
def test_roster_set_to_another_user_is_refused(server, bystanders, target):
    bob, _carol = bystanders
    before = _roster_names(bob)
    evil = "mallory-%s@evil.example" % uuid.uuid4().hex[:6]
    with server.raw() as alice:
        alice.login("alice", server.password("alice"))
        to = bob.jid if target == "full" else bob.jid.split("/")[0]
        res = alice.iq(to, "set", _push(evil))
        assert res.get("type") == "error"
        assert stanza_error_condition(res) in ("forbidden", "service-unavailable",
                                               "not-allowed")
        # with 'from' forged as bob's own account too
        alice.send("<iq type='set' id='spoof2' from='%s' to='%s'>%s</iq>"
                   % (bob.jid.split("/")[0], bob.jid, _push(evil)))
        err = alice.wait_for(lambda e: e.get("id") == "spoof2")
        assert err.get("type") == "error"
        alice_roster = _roster_names(alice)
    bob.expect_nothing(lambda e: e.tag == q(NS_CLIENT, "iq")
                       and e.find(q(NS_ROSTER, "query")) is not None, 0.5)
    assert _roster_names(bob) == before
    assert evil not in alice_roster


def test_roster_get_of_another_user_is_refused(server, bystanders):
    bob, _carol = bystanders
    with server.raw() as alice:
        alice.login("alice", server.password("alice"))
        res = alice.iq(bob.jid.split("/")[0], "get", "<query xmlns='%s'/>" % NS_ROSTER)
        assert res.get("type") == "error"
        assert res.find(q(NS_ROSTER, "query")) is None or not list(
            res.iter(q(NS_ROSTER, "item")))


# ---------------------------------------------------------------- forged from

def test_forged_from_on_iq_is_replaced(server, bystanders):
    bob, carol = bystanders
    with server.raw() as alice:
        alice.login("alice", server.password("alice"))
        alice.send("<iq type='get' id='forged-iq' from='%s' to='%s'>"
                   "<query xmlns='kurier:test:forged'/></iq>" % (carol.jid, bob.jid))
        got = bob.wait_for(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("id") == "forged-iq")
        assert got.get("from") == alice.jid
        carol.expect_nothing(lambda e: e.get("id") == "forged-iq", 0.3)


def test_forged_from_on_presence_is_replaced(server, bystanders):
    bob, carol = bystanders
    with server.raw() as alice:
        alice.login("alice", server.password("alice"))
        alice.send("<presence from='%s' to='%s'><status>forged</status></presence>"
                   % (carol.jid, bob.jid))
        got = bob.wait_for(lambda e: e.tag == q(NS_CLIENT, "presence")
                           and (e.findtext(q(NS_CLIENT, "status")) == "forged"))
        assert got.get("from") == alice.jid


# ---------------------------------------------------------------- TLS policy, external tools

def _sslscan(args):
    if not shutil.which("sslscan"):
        pytest.skip("sslscan is not installed (apt-get install sslscan)")
    res = subprocess.run(["sslscan", "--no-colour", "--ipv4", "--xml=-"] + args,
                         capture_output=True, text=True, timeout=120)
    start = res.stdout.find("<?xml")
    assert start >= 0, "sslscan gave no XML: %s %s" % (res.stdout[-500:], res.stderr[-500:])
    return ET.fromstring(res.stdout[start:])


@pytest.mark.parametrize("mode", ["direct", "starttls"])
def test_tls_policy_sslscan(server, bystanders, mode):
    args = (["localhost:%d" % server.direct_port] if mode == "direct"
            else ["--starttls-xmpp", "localhost:%d" % server.port])
    root = _sslscan(args)
    test = root.find("ssltest")
    assert test is not None, "sslscan could not connect"
    protocols = {(p.get("type"), p.get("version")): p.get("enabled")
                 for p in test.iter("protocol")}
    for old in [("ssl", "2"), ("ssl", "3"), ("tls", "1.0"), ("tls", "1.1")]:
        assert protocols.get(old) == "0", "%s %s accepted" % old
    assert protocols.get(("tls", "1.2")) == "1"
    assert protocols.get(("tls", "1.3")) == "1"
    ciphers = [(c.get("sslversion"), c.get("cipher")) for c in test.iter("cipher")]
    assert ciphers, "no cipher accepted"
    for version, name in ciphers:
        # TLS 1.3 suites are always (EC)DHE; below it only ECDHE key exchange is allowed
        assert version == "TLSv1.3" or name.startswith("ECDHE-"), \
            "%s %s is not forward-secret" % (version, name)
        assert "CBC" not in name and "SHA1" not in name.replace("SHA1_", "")
    reneg = test.find("renegotiation")
    assert reneg is not None
    assert reneg.get("supported") == "0" or reneg.get("secure") == "1"
    comp = test.find("compression")
    assert comp is None or comp.get("supported") == "0"


@pytest.mark.parametrize("mode", ["direct", "starttls"])
def test_tls_policy_testssl(server, bystanders, tmp_path, mode):
    tool = shutil.which("testssl") or shutil.which("testssl.sh")
    if not tool:
        pytest.skip("testssl is not installed (apt-get install testssl.sh)")
    out = tmp_path / "testssl.json"
    args = [tool, "--quiet", "--color", "0", "--ip", "one", "-p", "-f", "-R", "-C",
            "--jsonfile", str(out)]
    if mode == "starttls":
        args += ["--starttls", "xmpp", "--xmpphost", server.domain,
                 "localhost:%d" % server.port]
    else:
        args += ["localhost:%d" % server.direct_port]
    subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    findings = {e["id"]: e["finding"] for e in json.loads(out.read_text())}
    for old in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"]:
        assert findings.get(old) == "not offered", "%s: %s" % (old, findings.get(old))
    assert findings.get("TLS1_2") == "offered"
    assert findings.get("TLS1_3", "").startswith("offered")
    assert findings.get("CRIME_TLS", "").startswith("not vulnerable"), findings.get("CRIME_TLS")
    assert findings.get("secure_client_renego", "").startswith("not vulnerable")
    assert findings.get("secure_renego") in ("supported", "not supported")  # never insecure
    assert findings.get("FS", findings.get("PFS", "")) .startswith("offered")
    assert not any(k.startswith("cipher-") and "NULL" in v for k, v in findings.items())
