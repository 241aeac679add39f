#!/usr/bin/env python3
# SPDX-License-Identifier: AGPL-3.0-or-later
"""Writes the hand-made seed inputs of the fuzz harnesses into tests/fuzz/<target>/corpus/.

Each seed is named seed-<what> and carries the small binary prefix its harness reads
(see the comment at the top of each fuzz_<target>.c). The XMPP streams are the ones
tests/integration/xmpp_raw.py and the integration tests send; the JIDs are RFC 7622 §3.5's
examples (valid and invalid) and a few of our own; the SCRAM exchanges are RFC 5802 §5 and
RFC 7677 §3; the configurations are examples/kurierd.yml and variants; the s2s exchanges
are those tests/integration/test_s2s.py sends, with dialback keys computed as dialback.c does;
the component streams are those tests/integration/test_component.py's component sends, with
handshake digests for the harness's counter stream ids. Inputs libFuzzer adds
later have hash names and are left alone. Run from anywhere: python3 tests/fuzz/seeds.py
"""

import base64
import hashlib
import hmac
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

NS_STREAM = "http://etherx.jabber.org/streams"
HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          "xmlns:stream='%s' to='example.com' version='1.0' xml:lang='en'>" % NS_STREAM)
SERVER_HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                 "xmlns:stream='%s' from='example.com' id='c2s-1' version='1.0' "
                 "xml:lang='en'>" % NS_STREAM)
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
TLS = "urn:ietf:params:xml:ns:xmpp-tls"
BIND = "urn:ietf:params:xml:ns:xmpp-bind"


def write(target, name, data):
    d = os.path.join(HERE, target, "corpus")
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def b64(s):
    return base64.b64encode(s.encode()).decode()


# ---- stanzas a logged-in client sends (tests/integration) ----------------------------------
STANZAS = {
    "presence": "<presence/>",
    "presence-show": "<presence><show>dnd</show><status>busy</status><priority>5</priority></presence>",
    "presence-unavailable": "<presence type='unavailable'><status>bye</status></presence>",
    "presence-subscribe": "<presence to='bob@example.com' type='subscribe'/>",
    "presence-directed": "<presence to='bob@example.com/phone'><status>hi</status></presence>",
    "presence-bad-type": "<presence type='bogus'/>",
    "message-chat": "<message to='bob@example.com' type='chat' id='m1'><body>Hello &amp; "
                    "&lt;welcome&gt; &#x263A; &#9731;</body></message>",
    "message-lang": "<message to='bob@example.com' type='chat' xml:lang='de'><body>Grüße</body>"
                    "<body xml:lang='en'>Greetings</body><thread>t1</thread></message>",
    "message-composing": "<message to='bob@example.com' type='chat'><composing "
                         "xmlns='http://jabber.org/protocol/chatstates'/></message>",
    "message-badto": "<message to='not a jid@@' type='chat' id='badto'><body>x</body></message>",
    "message-remote": "<message to='carol@elsewhere.example' id='r1'><body>x</body></message>",
    "message-headline": "<message to='example.com' type='headline'><subject>s</subject></message>",
    "message-cdata": "<message to='bob@example.com'><body><![CDATA[<not markup> & stuff]]></body>"
                     "</message>",
    "message-nsattr": "<message to='bob@example.com' xmlns:x='urn:x' x:a='1' x:b='2'>"
                      "<x:payload xmlns:y='urn:y' y:c=\"'q'\">\t\r\n</x:payload></message>",
    "iq-ping": "<iq type='get' id='p1' to='example.com'><ping xmlns='urn:xmpp:ping'/></iq>",
    "iq-roster-get": "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>",
    "iq-roster-set": "<iq type='set' id='r2'><query xmlns='jabber:iq:roster'><item "
                     "jid='bob@example.com' name='Bob'><group>Friends</group></item></query></iq>",
    "iq-disco": "<iq type='get' id='d1' to='example.com'><query "
                "xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    "iq-vcard": "<iq type='set' id='v1'><vCard xmlns='vcard-temp'><FN>Alice</FN></vCard></iq>",
    "iq-block": "<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item "
                "jid='spam@example.org'/></block></iq>",
    "iq-private": "<iq type='set' id='x1'><query xmlns='jabber:iq:private'><storage "
                  "xmlns='storage:bookmarks'/></query></iq>",
    "iq-version": "<iq type='get' id='ver' to='example.com'><query xmlns='jabber:iq:version'/></iq>",
    "iq-time": "<iq type='get' id='t' to='example.com'><time xmlns='urn:xmpp:time'/></iq>",
    "iq-session": "<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>",
    "iq-result": "<iq type='result' id='push1'/>",
    "iq-two-payloads": "<iq type='get' id='two'><a xmlns='urn:a'/><b xmlns='urn:b'/></iq>",
    "iq-no-id": "<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>",
    "iq-error": "<iq type='error' id='e1' to='bob@example.com/r'><error type='cancel'>"
                "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
    "whitespace": "\n\t \r\n",
    "deep": "<message to='bob@example.com' type='chat'>" + "<a>" * 70 + "</a>" * 70 + "</message>",
    "not-stanza": "<foo xmlns='urn:foo'/>",
    "wrong-ns": "<message xmlns='jabber:server' to='bob@example.com'/>",
    "spoofed-from": "<message from='mallory@example.com/x' to='bob@example.com'><body>x</body>"
                    "</message>",
    "unclosed": "<message to='bob@example.com'><body>x</mess>",
    "close": "</stream:stream>",
}

HOSTILE = {
    "doctype": "<?xml version='1.0'?><!DOCTYPE stream:stream [<!ENTITY boom 'boom'>]>",
    "pi": HEADER + "<?php echo 1; ?>",
    "comment": HEADER + "<!-- hello -->",
    "encoding": "<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream xmlns='jabber:client' "
                "xmlns:stream='%s'>" % NS_STREAM,
    "bad-utf8": HEADER.encode() + b"<message><body>\xc3\x28\xff</body></message>",
    "nul": HEADER.encode() + b"<message><body>a\x00b</body></message>",
    "stream-text": HEADER + "hello",
    "undefined-entity": HEADER + "<message><body>&nbsp;</body></message>",
    "many-attrs": HEADER + "<message " + " ".join("a%d='%d'" % (i, i) for i in range(80)) + "/>",
    "dup-attr": HEADER + "<message a='1' a='2'/>",
    "unbound-prefix": HEADER + "<x:message/>",
}


def c2s_seeds():
    for name, s in STANZAS.items():
        write("c2s_session", name, b"\x00\x00\x00" + s.encode())
    everything = "".join(STANZAS[k] for k in STANZAS if k not in ("unclosed", "close", "not-stanza",
                                                                   "wrong-ns"))
    write("c2s_session", "session", b"\x00\x00\x00" + everything.encode())
    write("c2s_session", "session-split", b"\x00\x2a\x01" + everything.encode())
    write("c2s_session", "own-header", b"\x01\x00\x00" + (HEADER + STANZAS["presence"] +
                                                          STANZAS["message-chat"] +
                                                          "</stream:stream>").encode())
    for name, s in HOSTILE.items():
        data = s if isinstance(s, bytes) else s.encode()
        write("c2s_session", "hostile-" + name, b"\x01\x00\x00" + data)


# ---- inbound s2s (fuzz_s2s_in.c: flags, then the feed split; 0x01 0x00 = one feed per line) --
S2S_OWN, S2S_TLS, S2S_CERT, S2S_REQUIRE, S2S_PREAUTH = 1, 2, 4, 8, 16
S2S_END, S2S_NEVER, S2S_UNREACHABLE = 1 << 5, 2 << 5, 3 << 5
NS_DB = "jabber:server:dialback"


def s2s_header(frm="other.test", to="kurier.test"):
    """RawPeer.header() of tests/integration/test_s2s.py."""
    return ("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
            "xmlns:stream='%s' xmlns:db='%s' from='%s' to='%s' version='1.0'>"
            % (NS_STREAM, NS_DB, frm, to))


def s2s_id(n):
    """The n-th stream id the harness hands out (1 for the first header we send)."""
    return "%032x" % n


def dialback_key(secret, receiving, originating, stream_id):
    """XEP-0185 as src/server/dialback.c computes it."""
    prepared = hashlib.sha256(secret.encode()).hexdigest().encode()
    msg = ("%s %s %s" % (receiving, originating, stream_id)).encode()
    return hmac.new(prepared, msg, hashlib.sha256).hexdigest()


def other_key(receiving, originating, n):
    """A right key of a remote domain (its secret in the harness is 'other secret')."""
    return dialback_key("other secret", receiving, originating, s2s_id(n))


def db_result(frm, to, key):
    return "<db:result from='%s' to='%s'>%s</db:result>" % (frm, to, key)


S2S_STANZAS = [
    "<message from='bob@other.test/phone' to='alice@kurier.test' type='chat' id='m1'>"
    "<body>Hello &amp; &lt;welcome&gt;</body></message>",
    "<presence from='bob@other.test/phone' to='alice@kurier.test' type='subscribe'/>",
    "<presence from='bob@other.test/phone' to='alice@kurier.test'><show>dnd</show></presence>",
    "<iq from='other.test' to='kurier.test' type='get' id='v1'>"
    "<query xmlns='jabber:iq:version'/></iq>",
    "<iq from='bob@other.test/phone' to='alice@kurier.test/fuzz' type='result' id='r1'/>",
    "<iq from='bob@other.test/phone' to='alice@kurier.test' type='set' id='i2'/>",
    "<message from='bob@other.test' to='alice@kurier.test' type='bogus'><body>x</body></message>",
    "<message from='bob@other.test' to='kurier.test' type='error' id='e1'><error type='cancel'>"
    "<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
]


def s2s_write(name, flags, lines, split=b"\x01\x00"):
    write("s2s_in", name, bytes([flags]) + split + "\n".join(lines).encode())


def s2s_seeds():
    body = S2S_STANZAS + ["</stream:stream>"]
    # The exchanges of tests/integration/test_s2s.py, as a peer sends them.
    s2s_write("starttls-dialback", S2S_OWN, [
        s2s_header(), "<starttls xmlns='%s'/>" % TLS, s2s_header(),
        db_result("other.test", "kurier.test", other_key("kurier.test", "other.test", 2))] + body)
    s2s_write("starttls-dialback-split", S2S_OWN, [
        s2s_header(), "<starttls xmlns='%s'/>" % TLS, s2s_header(),
        db_result("other.test", "kurier.test", other_key("kurier.test", "other.test", 2))] + body,
        split=b"\x2a\x01")
    s2s_write("direct-tls-dialback", S2S_TLS, [
        "", db_result("other.test", "kurier.test", other_key("kurier.test", "other.test", 1))]
        + body)
    s2s_write("sasl-external", S2S_OWN | S2S_TLS | S2S_CERT, [
        s2s_header(), "<auth xmlns='%s' mechanism='EXTERNAL'>=</auth>" % SASL, s2s_header()]
        + body)
    s2s_write("sasl-external-authzid", S2S_OWN | S2S_TLS | S2S_CERT, [
        s2s_header(), "<auth xmlns='%s' mechanism='EXTERNAL'>%s</auth>" % (SASL, b64("other.test")),
        s2s_header()] + body)
    s2s_write("sasl-external-other-name", S2S_OWN | S2S_TLS | S2S_CERT, [
        s2s_header(), "<auth xmlns='%s' mechanism='EXTERNAL'>%s</auth>" % (SASL, b64("peer.test")),
        "<auth xmlns='%s' mechanism='PLAIN'>AGEAYg==</auth>" % SASL,
        "<abort xmlns='%s'/>" % SASL])
    no_from = s2s_header().replace(" from='other.test'", "")
    s2s_write("sasl-external-authzid-no-from", S2S_OWN | S2S_TLS | S2S_CERT, [
        no_from, "<auth xmlns='%s' mechanism='EXTERNAL'>%s</auth>" % (SASL, b64("PEER.test")),
        no_from] + [x.replace("other.test", "peer.test") for x in body])
    for name, authzid in (("nul", "other.test\0evil.test"), ("space", "other.test kurier.test"),
                          ("upper", "OTHER.TEST")):
        s2s_write("sasl-external-authzid-" + name, S2S_OWN | S2S_TLS | S2S_CERT, [
            s2s_header(), "<auth xmlns='%s' mechanism='EXTERNAL'>%s</auth>" % (SASL, b64(authzid)),
            s2s_header()] + body)
    s2s_write("sasl-external-no-cert", S2S_OWN | S2S_TLS, [
        s2s_header(), "<auth xmlns='%s' mechanism='EXTERNAL'>=</auth>" % SASL] + body)
    s2s_write("sasl-then-dialback", S2S_OWN | S2S_TLS | S2S_CERT, [
        s2s_header(), "<auth xmlns='%s' mechanism='EXTERNAL'></auth>" % SASL, s2s_header(),
        db_result("peer.test", "second.test", other_key("second.test", "peer.test", 2)),
        "<message from='a@peer.test' to='b@second.test'><body>x</body></message>"] + body)
    s2s_write("forged-key", S2S_OWN | S2S_TLS, [
        s2s_header(), db_result("other.test", "kurier.test", "ab" * 32)] + body)
    s2s_write("stale-key", S2S_OWN, [
        s2s_header(), "<starttls xmlns='%s'/>" % TLS, s2s_header(),
        db_result("other.test", "kurier.test", other_key("kurier.test", "other.test", 1))] + body)
    s2s_write("multiplex", S2S_OWN | S2S_TLS, [
        s2s_header(),
        db_result("other.test", "kurier.test", other_key("kurier.test", "other.test", 1)),
        db_result("peer.test", "second.test", other_key("second.test", "peer.test", 1)),
        db_result("peer.test", "kurier.test", "00" * 32),
        "<message from='x@peer.test' to='y@second.test'><body>x</body></message>",
        "<message from='x@peer.test' to='y@kurier.test'><body>spoofed</body></message>"])
    s2s_write("late-answer-after-restart", S2S_OWN | S2S_TLS | S2S_CERT | S2S_END, [
        s2s_header(),
        db_result("other.test", "kurier.test", other_key("kurier.test", "other.test", 1)),
        "<auth xmlns='%s' mechanism='EXTERNAL'>=</auth>" % SASL, s2s_header()] + body)
    s2s_write("answer-at-end", S2S_OWN | S2S_TLS | S2S_END, [
        s2s_header(),
        db_result("other.test", "kurier.test", other_key("kurier.test", "other.test", 1))])
    s2s_write("never-answered", S2S_TLS | S2S_NEVER, [
        "", db_result("other.test", "kurier.test", other_key("kurier.test", "other.test", 1))]
        + body)
    s2s_write("unreachable", S2S_TLS | S2S_UNREACHABLE, [
        "", db_result("other.test", "kurier.test", "ab" * 32)] + body)
    s2s_write("require-valid-certificates", S2S_OWN | S2S_TLS | S2S_REQUIRE, [
        s2s_header(), db_result("other.test", "kurier.test", "ab" * 32)] + body)
    s2s_write("pending-limit", S2S_TLS | S2S_NEVER, [""] + [
        db_result("d%d.test" % i, "kurier.test", "%064x" % i) for i in range(20)])
    our_key = dialback_key("fuzz secret", "other.test", "kurier.test", "abc")
    s2s_write("db-verify", S2S_TLS, ["",
        "<db:verify from='other.test' to='kurier.test' id='abc'>%s</db:verify>" % our_key,
        "<db:verify from='other.test' to='kurier.test' id='abd'>%s</db:verify>" % our_key,
        "<db:verify from='other.test' to='nobody.test' id='x'>k</db:verify>",
        "<db:verify from='other.test' to='kurier.test' id='&apos;&lt;'>bad</db:verify>",
        "<db:verify from='other.test' to='kurier.test' id='x' type='valid'/>",
        "<db:result from='other.test' to='nobody.test'>k</db:result>",
        "<db:result from='other.test' to='kurier.test' type='valid'/>"])
    s2s_write("preauth-stanzas", S2S_PREAUTH, [""] + S2S_STANZAS + [
        "<message from='mallory@evil.test' to='alice@kurier.test'><body>x</body></message>"])
    s2s_write("preauth-bad-stanzas", S2S_PREAUTH, ["",
        "<message to='alice@kurier.test'/>",
        "<message from='bob@other.test' to='alice@elsewhere.test'/>",
        "<message from='not a jid@@other.test' to='alice@kurier.test'/>",
        "<message xmlns='jabber:client' from='bob@other.test' to='alice@kurier.test'/>",
        "<iq from='bob@other.test' to='alice@kurier.test' type='get'/>",
        "<foo xmlns='urn:example'/>"], split=b"\x00\x00")
    s2s_write("restart-changes-domains", S2S_OWN | S2S_TLS | S2S_CERT, [
        s2s_header(), "<auth xmlns='%s' mechanism='EXTERNAL'>=</auth>" % SASL,
        s2s_header("peer.test", "kurier.test")])
    # test_inbound_hostile_input_gets_a_stream_error and test_inbound_hostile_after_tls.
    hostile = {
        "a": "<a><</a>",
        "client-ns": "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='%s' "
                     "to='kurier.test' version='1.0'>" % NS_STREAM,
        "host-unknown": "<stream:stream xmlns='jabber:server' xmlns:stream='%s' "
                        "to='elsewhere.test' version='1.0'>" % NS_STREAM,
        "no-to": "<stream:stream xmlns='jabber:server' xmlns:stream='%s' version='1.0'>"
                 % NS_STREAM,
        "bad-from": "<stream:stream xmlns='jabber:server' xmlns:stream='%s' from='bad..domain' "
                    "to='kurier.test' version='1.0'>" % NS_STREAM,
        "verify-before-tls": s2s_header() +
        "<db:verify from='other.test' to='kurier.test'>x</db:verify>",
        "auth-before-tls": s2s_header() +
        "<auth xmlns='%s' mechanism='EXTERNAL'>=</auth>" % SASL,
        "doctype": s2s_header() + "<!DOCTYPE x>",
    }
    for name, data in hostile.items():
        write("s2s_in", "hostile-" + name, bytes([S2S_OWN]) + b"\x00\x00" + data.encode())
    after_tls = {
        "result-no-addresses": "<db:result>%s</db:result>" % ("ab" * 32),
        "verify-no-id": "<db:verify from='other.test' to='kurier.test'>x</db:verify>",
        "result-not-served": "<db:result from='other.test' to='nobody.test'>k</db:result>",
        "verify-bad-key": "<db:verify from='other.test' to='kurier.test' id='x'>bad</db:verify>",
        "unknown": "<foo xmlns='urn:example'/>",
        "stanza-unauthenticated": S2S_STANZAS[0],
        "result-empty-key": "<db:result from='other.test' to='kurier.test'/>",
        "result-bad-from": "<db:result from='a@b/c' to='kurier.test'>k</db:result>",
        "many-attrs": "<message " + " ".join("a%d='%d'" % (i, i) for i in range(80)) + "/>",
    }
    for name, data in after_tls.items():
        write("s2s_in", "hostile-tls-" + name, bytes([S2S_TLS]) + b"\x00\x00" + data.encode())


# ---- external components (fuzz_component.c: flags, then the feed split) ---------------------
COMP_OWN, COMP_PREAUTH, COMP_DELIVER = 1, 2, 4
COMP_CLOCK_1S, COMP_CLOCK_25S, COMP_CLOCK_31S = 1 << 3, 2 << 3, 3 << 3
NS_COMPONENT = "jabber:component:accept"
COMP_SECRETS = {"gw.kurier.test": "fuzz secret", "other.kurier.test": "other secret",
                "busy.kurier.test": "busy secret"}


def comp_header(to="gw.kurier.test", quote="'"):
    """What slixmpp's ComponentXMPP sends (tests/integration/test_component.py)."""
    return ("<stream:stream xmlns={q}{ns}{q} xmlns:stream={q}{st}{q} to={q}{to}{q}>"
            .format(q=quote, ns=NS_COMPONENT, st=NS_STREAM, to=to))


def comp_digest(n, secret):
    """XEP-0114 §3 for the n-th stream id the harness hands out."""
    return hashlib.sha1((("%032x" % n) + secret).encode()).hexdigest()


def comp_handshake(n=1, domain="gw.kurier.test", upper=False):
    d = comp_digest(n, COMP_SECRETS[domain])
    return "<handshake>%s</handshake>" % (d.upper() if upper else d)


COMP_STANZAS = [
    "<message from='bot@gw.kurier.test' to='alice@kurier.test' type='chat' id='c1'>"
    "<body>Hello &amp; &lt;welcome&gt;</body></message>",
    "<message from='bot@gw.kurier.test/r' to='alice@kurier.test/fuzz' xmlns='jabber:client'>"
    "<body>in jabber:client</body></message>",
    "<presence from='bot@gw.kurier.test' to='alice@kurier.test'><show>chat</show></presence>",
    "<presence from='bot@gw.kurier.test' to='alice@kurier.test' type='subscribed'/>",
    "<iq from='gw.kurier.test' to='alice@kurier.test/fuzz' type='get' id='v1'>"
    "<query xmlns='jabber:iq:version'/></iq>",
    "<iq from='gw.kurier.test' to='alice@kurier.test/fuzz' type='result' id='r1'/>",
    "<iq from='gw.kurier.test' to='kurier.test' type='result' id='kr-ping-1'/>",
    "<message from='bot@gw.kurier.test' to='bot@gw.kurier.test'><body>to itself</body></message>",
]


def comp_write(name, flags, lines, split=b"\x01\x00"):
    write("component", name, bytes([flags]) + split + "\n".join(lines).encode())


def component_seeds():
    body = COMP_STANZAS + ["</stream:stream>"]
    # tests/integration/test_component.py: slixmpp's header, handshake and traffic.
    comp_write("handshake", COMP_OWN, [comp_header(quote='"'),
               "<handshake xmlns=\"%s\">%s</handshake>" % (NS_COMPONENT, comp_digest(1, "fuzz secret"))]
               + body)
    comp_write("handshake-split", COMP_OWN, [comp_header(), comp_handshake()] + body,
               split=b"\x2a\x01")
    comp_write("handshake-upper", COMP_OWN, [comp_header(), comp_handshake(upper=True)] + body)
    comp_write("handshake-other", COMP_OWN, [comp_header("OTHER.kurier.test."),
               comp_handshake(domain="other.kurier.test")] +
               [x.replace("gw.kurier.test", "other.kurier.test") for x in body])
    comp_write("handshake-wrong", COMP_OWN, [comp_header(), "<handshake>%s</handshake>"
               % comp_digest(1, "not the secret")] + body)
    comp_write("handshake-stale-id", COMP_OWN, [comp_header(), comp_handshake(2)] + body)
    comp_write("handshake-other-domain", COMP_OWN, [comp_header(),
               comp_handshake(domain="other.kurier.test")] + body)
    comp_write("handshake-locked", COMP_OWN, [comp_header("locked.kurier.test"),
               "<handshake>%s</handshake>" % ("ab" * 20)] + body)
    comp_write("handshake-busy", COMP_OWN, [comp_header("busy.kurier.test"),
               comp_handshake(domain="busy.kurier.test")] + body)
    comp_write("handshake-children", COMP_OWN, [comp_header(),
               "<handshake>%s<x/></handshake>" % comp_digest(1, "fuzz secret")])
    comp_write("handshake-empty", COMP_OWN, [comp_header(), "<handshake/>"])
    comp_write("handshake-entities", COMP_OWN, [comp_header(), "<handshake>&#x%x;%s</handshake>"
               % (ord(comp_digest(1, "fuzz secret")[0]), comp_digest(1, "fuzz secret")[1:])]
               + body)
    comp_write("handshake-twice", COMP_OWN, [comp_header(), comp_handshake(), comp_handshake()])
    comp_write("stanza-before-handshake", COMP_OWN, [comp_header()] + body)
    comp_write("header-unknown", COMP_OWN, [comp_header("nobody.kurier.test"), comp_handshake()])
    comp_write("header-user-domain", COMP_OWN, [comp_header("kurier.test"), comp_handshake()])
    comp_write("header-bad-to", COMP_OWN, [comp_header("not a domain")])
    comp_write("header-no-to", COMP_OWN, [comp_header().replace(" to='gw.kurier.test'", "")])
    comp_write("header-client-ns", COMP_OWN, [comp_header().replace(NS_COMPONENT,
               "jabber:client")])
    comp_write("header-stream-ns", COMP_OWN, [comp_header().replace(NS_STREAM, "urn:x")])
    # After authentication: stanzas that get their error back, then each fatal mistake.
    comp_write("stanza-errors", COMP_PREAUTH, [""] + [
        "<message from='bot@gw.kurier.test' to='a@@kurier.test' id='e1'><body>x</body></message>",
        "<iq from='bot@gw.kurier.test' to='alice@kurier.test' type='get'><q xmlns='urn:x'/></iq>",
        "<iq from='bot@gw.kurier.test' to='alice@kurier.test' type='set' id='i2'/>",
        "<message from='bot@gw.kurier.test' to='alice@kurier.test' type='bogus'/>",
        "<message from='bot@gw.kurier.test' to='a@@kurier.test' type='error'/>",
        "<presence from='bot@gw.kurier.test' to='\u00e9@kurier.test' type='probe'/>"] + body)
    fatal = {
        "no-from": "<message to='alice@kurier.test'><body>x</body></message>",
        "from-user": "<message from='alice@kurier.test' to='bob@kurier.test'><body>x</body>"
                     "</message>",
        "from-suffix": "<message from='bot@evilgw.kurier.test' to='alice@kurier.test'/>",
        "from-other-component": "<presence from='other.kurier.test' to='alice@kurier.test'/>",
        "from-malformed": "<message from='bot@@gw.kurier.test' to='alice@kurier.test'/>",
        "no-to": "<message from='bot@gw.kurier.test'><body>x</body></message>",
        "unknown-element": "<foo xmlns='urn:example'/>",
        "second-handshake": comp_handshake(),
        "stanza-other-ns": "<message xmlns='urn:x' from='bot@gw.kurier.test' "
                           "to='alice@kurier.test'/>",
        "stream-end": "</stream:stream>",
    }
    for name, stanza in fatal.items():
        comp_write("after-auth-" + name, COMP_PREAUTH, ["", COMP_STANZAS[0], stanza,
                   COMP_STANZAS[2]])
    # Deliveries, the clock, pings and the idle close.
    comp_write("deliver", COMP_PREAUTH | COMP_DELIVER, [""] + COMP_STANZAS)
    comp_write("clock-25s", COMP_PREAUTH | COMP_DELIVER | COMP_CLOCK_25S, [""] + COMP_STANZAS)
    comp_write("clock-31s", COMP_PREAUTH | COMP_CLOCK_31S, ["", COMP_STANZAS[0], "", " ",
               COMP_STANZAS[6]])
    comp_write("clock-1s", COMP_OWN | COMP_DELIVER | COMP_CLOCK_1S,
               [comp_header(), comp_handshake()] + COMP_STANZAS)
    comp_write("slow-handshake", COMP_OWN | COMP_CLOCK_31S, [comp_header(), comp_handshake()])
    hostile = {
        "doctype": comp_header() + "<!DOCTYPE x>",
        "pi": comp_header() + "<?evil?>",
        "bad-utf8": comp_header() + "<handshake>\udcff</handshake>",
        "text": comp_header() + "hello",
        "many-attrs": comp_header() + "<handshake " + " ".join(
            "a%d='%d'" % (i, i) for i in range(80)) + "/>",
        "deep": comp_header() + "<handshake>" + "<a>" * 70 + "</a>" * 70 + "</handshake>",
    }
    for name, data in hostile.items():
        write("component", "hostile-" + name, bytes([COMP_OWN]) + b"\x00\x00"
              + data.encode("utf-8", "surrogateescape"))
    after_auth = {
        "many-attrs": "<message " + " ".join("a%d='%d'" % (i, i) for i in range(80)) + "/>",
        "deep": "<message from='bot@gw.kurier.test' to='alice@kurier.test'>" + "<a>" * 70
                + "</a>" * 70 + "</message>",
        "big": "<message from='bot@gw.kurier.test' to='alice@kurier.test'><body>"
               + "x" * 300000 + "</body></message>",
    }
    for name, data in after_auth.items():
        write("component", "hostile-auth-" + name, bytes([COMP_PREAUTH]) + b"\x00\x00"
              + data.encode())


def xml_seeds():
    # prefix: depth/attrs, size/chunk, split seed (2), flags (1 = we add the header, 2 = restarts)
    big = b"\xff\xff"
    login = (HEADER + "<starttls xmlns='%s'/>" % TLS +
             "<proceed xmlns='%s'/>" % TLS + HEADER +
             "<auth xmlns='%s' mechanism='SCRAM-SHA-1'>%s</auth>" % (SASL, b64("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL")) +
             "<response xmlns='%s'>%s</response>" % (SASL, b64(
                 "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=")) +
             "<success xmlns='%s'/>" % SASL + HEADER +
             "<iq type='set' id='bind1'><bind xmlns='%s'><resource>balcony</resource></bind></iq>" % BIND +
             STANZAS["presence"] + "</stream:stream>")
    write("xml_parser", "login", big + b"\x00\x00\x02" + login.encode())
    write("xml_parser", "login-bytewise", b"\xff\x07\x01\x00\x02" + login.encode())
    write("xml_parser", "login-split", big + b"\x37\x13\x02" + login.encode())
    features = (SERVER_HEADER + "<stream:features><starttls xmlns='%s'><required/></starttls>"
                "<mechanisms xmlns='%s'><mechanism>SCRAM-SHA-256-PLUS</mechanism>"
                "<mechanism>SCRAM-SHA-256</mechanism><mechanism>PLAIN</mechanism></mechanisms>"
                "<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'><channel-binding "
                "type='tls-exporter'/></sasl-channel-binding></stream:features>" % (TLS, SASL) +
                "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text "
                "xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>Replaced</text>"
                "</stream:error></stream:stream>")
    write("xml_parser", "features", big + b"\x00\x00\x00" + features.encode())
    for name, s in STANZAS.items():
        write("xml_parser", "stanza-" + name, big + b"\x00\x00\x01" + s.encode())
    write("xml_parser", "no-default-ns", big + b"\x00\x00\x00" +
          ("<stream:stream xmlns:stream='%s'><message xmlns='jabber:client'/><iq/></stream:stream>"
           % NS_STREAM).encode())
    write("xml_parser", "prefixed", big + b"\x00\x00\x00" +
          ("<s:stream xmlns:s='%s' xmlns='jabber:server' xmlns:db='jabber:server:dialback'>"
           "<db:result from='a.example' to='b.example'>abc</db:result></s:stream>" % NS_STREAM).encode())
    write("xml_parser", "tight-limits", b"\x00\x00\x05\x00\x01" + STANZAS["message-lang"].encode())
    for name, s in HOSTILE.items():
        data = s if isinstance(s, bytes) else s.encode()
        write("xml_parser", "hostile-" + name, big + b"\x00\x00\x00" + data)


def jid_seeds():
    jids = [
        # RFC 7622 §3.5 (valid)
        "juliet@example.com", "juliet@example.com/foo", "juliet@example.com/foo bar",
        "juliet@example.com/foo@bar", "foo\\20bar@example.com", "fussball@example.com",
        "fu\u00dfball@example.com", "\u03c0@example.com", "\u03a3@example.com/foo",
        "\u03c3@example.com/foo", "\u03c2@example.com/foo", "king@example.com/\u265a",
        "example.com", "example.com/foobar", "a.example.com/b@example.net",
        # RFC 7622 §3.5 (invalid)
        "\"juliet\"@example.com", "foo bar@example.com", "juliet@example.com/ foo",
        "@example.com/", "henri\u2163@example.com", "\u265a@example.com", "juliet@",
        "/foobar",
        # ours: IP literals, IDNA, case, limits, odd bytes
        "[::1]", "user@[2001:DB8:0:0:0:0:0:1]/res", "192.0.2.1", "user@192.0.2.1/r",
        "[192.0.2.1]", "EXAMPLE.COM.", "User@Example.COM/Res", "\u00c9l\u00e8ve@\u00c9COLE.example",
        "\u4f8b\u3048@\u4f8b\u3048.\u30c6\u30b9\u30c8/\u30ea\u30bd\u30fc\u30b9",
        "xn--bcher-kva.example", "b\u00fccher.example", "a" * 64 + ".example",
        "x" * 1023 + "@example.com", "x" * 1024 + "@example.com",
        "juliet@example.com/" + "r" * 1023, "a@b@c", "a/b/c", "a@b/c@d/e", "..", "a..b",
        "-a.example", "a_b.example", "\u00a0@example.com", "x@example.com/\u2000",
        "\u0130@example.com", "\ufb01@example.com", "\u212b@example.com", "\u1e9e@example.com",
        "\u0627\u0628@example.com", "a\u200d@example.com",
    ]
    for i, j in enumerate(jids):
        write("jid", "%02d" % i, j)
    write("jid", "nul", b"juliet\x00@example.com")
    write("jid", "bad-utf8", b"jul\xc3\x28iet@example.com")
    write("jid", "overlong", b"\xc0\xafa@example.com")


def scram_seeds():
    def seed(name, flags, first, second):
        first, second = first.encode(), second.encode()
        write("scram", name, bytes([flags]) + struct.pack("<H", len(first)) + first + second)

    v1 = ("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
          "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
          "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
          "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=")
    v256 = ("n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
            "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
    # server side: RFC exchanges (success), unknown user, -PLUS variants, odd client-firsts
    seed("server-sha1-rfc5802", 0, v1[0], v1[1])
    seed("server-sha256-rfc7677", 1, v256[0], v256[1])
    seed("server-sha256-unknown-user", 1 | 16, v256[0], v256[1])
    cb = bytes(range(0x40, 0x60))
    cbind = base64.b64encode(b"p=tls-exporter,," + cb).decode()
    seed("server-plus-exporter", 1 | 2 | 4 | 8, "p=tls-exporter,,n=user,r=rOprNGfwEbeRWgbNEkqO",
         "c=%s,r=rOprNGfwEbeRWgbNEkqO%%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA" % cbind)
    seed("server-plus-endpoint", 1 | 2 | 4 | 8, "p=tls-server-end-point,a=admin,n=user,r=abc",
         "c=cD10bHMtc2VydmVyLWVuZC1wb2ludCxhPWFkbWluLA==,r=abc,p=AAAA")
    seed("server-y-downgrade", 4 | 8, "y,,n=user,r=abc", "c=eSws,r=abc,p=AAAA")
    seed("server-escaped-name", 0, "n,a=x=3Dy=2Cz,n=a=2Cb=3Dc,r=nonce,ext=1", "c=biws,r=x,p=AAAA")
    seed("server-mext", 0, "n,,m=ext,n=user,r=abc", "")
    seed("server-utf8-name", 1, "n,,n=\u00e9l\u00e8ve\u2163,r=abc", "c=biws,r=abc,p=")
    # client side
    seed("client-sha1-rfc5802", 32, v1[2], v1[3])
    seed("client-sha256-rfc7677", 33, v256[2], v256[3])
    seed("client-server-error", 33, v256[2], "e=invalid-proof")
    seed("client-mext", 32, "m=x," + v1[2], v1[3])
    seed("client-big-iterations", 33, v256[2].replace("i=4096", "i=1000000"), v256[3])
    seed("client-extensions", 32 | 64 | 128, v1[2] + ",x=ext", v1[3] + ",y=z")
    seed("client-salt-long", 33, "r=rOprNGfwEbeRWgbNEkqOabc,s=%s,i=4096" % base64.b64encode(
        bytes(80)).decode(), "v=AAAA")


def config_seeds():
    with open(os.path.join(ROOT, "examples", "kurierd.yml"), "rb") as f:
        example = f.read()
    write("config", "example", example)
    write("config", "example-crlf", example.replace(b"\n", b"\r\n"))
    variants = {
        "empty": "",
        "minimal": "domains: [example.com]\n",
        "domains-block": "domains:\n  - example.com\n  - chat.example.org\nworkers: 2\n",
        "unknown-key": "domains: [example.com]\nwokers: 2\n",
        "wrong-type": "workers: two\n",
        "out-of-range": "sasl:\n  scram_iterations: 12\n",
        "negative": "limits:\n  max_depth: -1\n",
        "huge-number": "limits:\n  max_stanza_bytes: 99999999999999999999999\n",
        "listen": "c2s:\n  starttls: ['127.0.0.1:5222', '[::1]:5222']\n  direct_tls: []\n",
        "listen-bad": "c2s:\n  starttls: ['localhost:99999']\n",
        "bool": "sasl:\n  plain: no\noffline:\n  enabled: off\nregistration:\n  enabled: yes\n",
        "anchors": "a: &x 1\nworkers: *x\n",
        "alias-loop": "x: &a [*a]\n",
        "two-docs": "workers: 1\n---\nworkers: 2\n",
        "flow": "{domains: [a.example, b.example], log_level: debug, tls: {certificate: c.pem, key: k.pem}}",
        "tabs": "limits:\n\tmax_depth: 3\n",
        "not-mapping": "- a\n- b\n",
        "scalar": "hello",
        "null-values": "tls:\n  certificate:\n  key: ~\n",
        "dup-key": "workers: 1\nworkers: 2\n",
        "tag": "workers: !!str 3\n",
        "unicode-domain": "domains: [\"B\u00fccher.Example\", \"\u4f8b\u3048.\u30c6\u30b9\u30c8\"]\n",
        "bad-domain": "domains: ['not a domain', '']\n",
        "nested-wrong": "limits: [1, 2]\n",
        "quoted-escapes": "data_dir: \"/tmp/\\x00\\u2028x\"\n",
        "unterminated": "domains: [example.com\n",
        "bad-indent": "limits:\n    max_depth: 3\n  max_attributes: 4\n",
        # The module sections fuzz_config.c passes ("fuzzmod" twice, one key under "limits").
        "section": "fuzzmod:\n  enabled: no\n  small: 255\n  big: 1\n  mode: off\n"
                   "  greeting: hi\n  motd:\n  store: sqlite\n"
                   "  domains: [MUC.Example.org., \"[::1]\"]\n  tags: [a, b]\n"
                   "  listen: [\"[::]:5347\"]\n  peers: {Other.Example: \"192.0.2.1:5269\"}\n"
                   "  queue:\n    depth: 64\n  rooms: 100\nlimits:\n  fuzz_streams: 1\n"
                   "  max_depth: 8\n",
        "section-empty": "fuzzmod:\nlimits: {}\n",
        "section-typo": "fuzzmod:\n  enabeld: true\n",
        "section-name-typo": "fuzmod:\n  rooms: 3\n",
        "section-bounds": "fuzzmod:\n  big: 18446744073709551616\n  queue: {depth: 0}\n",
        "section-dup": "fuzzmod:\n  rooms: 1\nfuzzmod:\n  small: 1\n",
    }
    for name, s in variants.items():
        write("config", name, s)
    write("config", "bad-utf8", b"domains: [ex\xffample.com]\n")
    write("config", "nul", b"workers: 1\x00\n")
    write("config", "bom", b"\xef\xbb\xbfworkers: 1\n")


def tls13_record_seeds():
    """Op sequences for fuzz_tls13_record.c: byte 0 picks the suite, then (op, len, payload)."""
    def ops(*items):
        out = bytearray()
        for op, payload in items:
            out += bytes([op, len(payload)]) + payload
        return bytes(out)
    msg = b"<message to='bob@example.com'><body>hi</body></message>"
    for suite in range(3):
        write("tls13_record", "talk-%d" % suite, bytes([suite]) + ops(
            (1, msg), (3, msg), (0x81, msg * 2), (7, b""), (3, b"x" * 200),
            (2, b"\x01"), (1, msg), (3, msg), (2, b"\x00"), (1, msg), (5, b""), (3, msg)))
    write("tls13_record", "garbage-header", b"\x00" + ops((0, b"\x17\x03\x03\xff\xff"), (1, msg)))
    write("tls13_record", "plaintext-alert", b"\x01" + ops((0, b"\x15\x03\x03\x00\x02\x01\x00")))
    write("tls13_record", "flipped", b"\x02" + ops((1, msg), (0x26, b""), (1, msg), (1, msg)))
    write("tls13_record", "odd-records", b"\x00" + ops(
        (4, b"\x15\x01\x5a"), (4, b"\x16\x18\x00\x00\x01\x03"), (4, b"\x16\x01\x00"),
        (4, b"\x14\x01"), (4, b"\x17"), (4, b"\x15\x02\x28"), (1, msg)))


def record_seeds():
    """Stored values for fuzz_record.c: records as core/record.c writes them, and broken ones."""
    def varint(n):
        out = bytearray()
        while True:
            b = n & 0x7f
            n >>= 7
            out.append(b | 0x80 if n else b)
            if not n:
                return bytes(out)

    def record(*fields):
        out = bytearray(b"\x01")
        for k, v in fields:
            if isinstance(v, str):
                v = v.encode("utf-8")
            out += bytes([len(k)]) + k.encode("ascii") + varint(len(v)) + v
        return bytes(out + b"\x00")
    item = record(("name", "Carol"), ("sub", "3"), ("ask", "1"), ("pending_in", "1"),
                  ("approved", "1"), ("pending_in_xml", "<presence type='subscribe'/>"),
                  ("group", "Friends"), ("group", "Work"), ("group", ""))
    write("record", "roster-item", item)
    write("record", "empty", record())
    write("record", "binary", record(("data", b"\x00\xff<m/>\x00"), ("n", "-9223372036854775808")))
    write("record", "long-value", record(("v", "x" * 300)))
    write("record", "cut", item[:-1])
    write("record", "trailing", item + b"\x00")
    write("record", "not-minimal", b"\x01\x01a\x81\x00x\x00")


if __name__ == "__main__":
    c2s_seeds()
    xml_seeds()
    jid_seeds()
    scram_seeds()
    config_seeds()
    s2s_seeds()
    component_seeds()
    tls13_record_seeds()
    record_seeds()
