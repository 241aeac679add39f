# SPDX-License-Identifier: AGPL-3.0-or-later
"""Stream-level behaviour of an authenticated session: IQs to the server (XEP-0199 ping,
RFC 6120 §8.4 unknown payloads), malformed addresses (RFC 6120 §8.3.3.8, RFC 7622),
whitespace keepalives (RFC 6120 §4.6.1) and the closing handshake (RFC 6120 §4.4)."""

import time

from xmpp_raw import NS_CLIENT, NS_PING, q, stanza_error_condition


def _session(server, user="alice"):
    c = server.raw()
    c.login(user, server.password(user))
    return c


def test_ping_to_server_gets_empty_result(server):
    with _session(server) as c:
        reply = c.iq(server.domain, "get", "<ping xmlns='%s'/>" % NS_PING)
        assert reply.get("type") == "result"
        assert reply.get("from") == server.domain
        assert len(reply) == 0


def test_unknown_iq_namespace_to_server_gets_service_unavailable(server):
    with _session(server) as c:
        reply = c.iq(server.domain, "get", "<query xmlns='urn:example:kurier:unknown'/>")
        assert reply.get("type") == "error"
        assert stanza_error_condition(reply) == "service-unavailable"


def test_stanza_with_malformed_to_gets_jid_malformed(server):
    with _session(server) as c:
        c.send("<message to='not a jid@@' type='chat' id='badto'><body>x</body></message>")
        reply = c.wait_for(lambda e: e.tag == q(NS_CLIENT, "message")
                           and e.get("id") == "badto")
        assert reply.get("type") == "error"
        assert stanza_error_condition(reply) == "jid-malformed"
        # the stream survives a stanza error
        assert c.iq(server.domain, "get", "<ping xmlns='%s'/>" % NS_PING).get("type") == "result"


def test_iq_with_malformed_to_gets_jid_malformed(server):
    with _session(server) as c:
        reply = c.iq("not a jid@@", "get", "<ping xmlns='%s'/>" % NS_PING)
        assert reply.get("type") == "error"
        assert stanza_error_condition(reply) == "jid-malformed"


def test_whitespace_keepalives_are_accepted(server):
    with _session(server) as c, _session(server, "bob") as bob:
        for _ in range(5):
            c.send(" ")
            time.sleep(0.05)
        c.send("\n\t \r\n")
        # still alive: the server answers, and the session can be reached
        assert c.iq(server.domain, "get", "<ping xmlns='%s'/>" % NS_PING).get("type") == "result"
        c.send(" ")
        bob.send_message(c.jid, "after keepalive")
        assert c.wait_message("after keepalive").get("from") == bob.jid


def test_clean_close_is_answered_with_closing_tag(server):
    with _session(server) as c:
        c.close_stream()
        c.expect_closed()
        assert c.stream_ended, "server dropped the connection without </stream:stream>"
