# SPDX-License-Identifier: AGPL-3.0-or-later
"""Hostile input: malformed XML (RFC 6120 §4.9.3.13 not-well-formed), restricted XML
(§11.1, §4.9.3.18 restricted-xml), oversized and over-deep stanzas (§13.12,
§4.9.3.14 policy-violation).  Each attack must end only the offending stream: a pair of
sessions logged in beforehand keeps exchanging messages, and a fresh client can log in
and exchange a message afterwards, and the server's memory is back within a bound."""


import pytest

from attack_helpers import restricted_conditions


kurier_only = pytest.mark.kurier_only

HUGE_STANZA_BYTES = 10 * 1024 * 1024
CHUNK = 64 * 1024


def _attacker(server):
    c = server.raw()
    c.login("alice", server.password("alice"))
    return c


def test_malformed_xml_gets_not_well_formed_and_stream_closes(server, bystanders):
    bob, _carol = bystanders
    with _attacker(server) as c:
        c.send("<message to='%s'><body>x</mess>" % bob.jid)
        assert c.expect_stream_error() == "not-well-formed"
        c.expect_closed()


def test_doctype_gets_restricted_xml_and_stream_closes(server, bystanders):
    with server.raw() as c:
        c.connect()
        c.open_stream()
        c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        c.expect()
        c.start_tls_layer()
        c._reset_parser()
        c.send("<?xml version='1.0'?><!DOCTYPE stream:stream [<!ENTITY boom 'boom'>]>"
               + c.stream_header_xml())
        assert c.expect_stream_error() in restricted_conditions(server)
        c.expect_closed()


@pytest.mark.parametrize("payload", ["<!-- a comment -->", "<?kurier evil?>"],
                         ids=["comment", "processing-instruction"])
def test_restricted_xml_inside_stream_gets_restricted_xml(server, bystanders, payload):
    with _attacker(server) as c:
        c.send(payload)
        assert c.expect_stream_error() in restricted_conditions(server)
        c.expect_closed()


def test_ten_megabyte_stanza_gets_policy_violation_and_stream_closes(server, bystanders):
    bob, _carol = bystanders
    with _attacker(server) as c:
        c.send("<message to='%s' type='chat'><body>" % bob.jid)
        chunk = "A" * CHUNK
        sent = 0
        try:
            # stream it; stop as soon as the server says something (its stream error)
            while sent < HUGE_STANZA_BYTES and not c.data_waiting():
                c.send(chunk)
                sent += CHUNK
            if sent >= HUGE_STANZA_BYTES:
                c.send("</body></message>")
        except OSError:
            pass  # the server closed the connection while we were still sending
        assert sent < HUGE_STANZA_BYTES, "server read all 10 MB without stopping us"
        assert c.expect_stream_error() == "policy-violation"
        c.expect_closed()
    bob.expect_nothing(lambda e: e.get("from", "").startswith("alice@"), 0.5)


@kurier_only  # Prosody 0.12 has no nesting-depth limit
@pytest.mark.parametrize("depth", [10000, 100000])
def test_deep_nesting_gets_policy_violation_and_stream_closes(server, bystanders, depth):
    bob, _carol = bystanders
    with _attacker(server) as c:
        try:
            c.send("<message to='%s' type='chat'>" % bob.jid + "<a>" * depth)
        except OSError:
            pass
        assert c.expect_stream_error() == "policy-violation"
        c.expect_closed()
