# SPDX-License-Identifier: AGPL-3.0-or-later
"""XEP-0199 both ways: the server answers pings (test_stream.py) and pings clients that fall
silent. With limits.idle_timeout_s = 10 the server pings after 5 s of silence; a client that
answers stays connected, one that stays silent gets <connection-timeout/> at 10 s."""

import time

import pytest

from conftest import password_for, start_server, stop_server
from xmpp_raw import NS_CLIENT, q

kurier_only = pytest.mark.kurier_only
NS_PING = "urn:xmpp:ping"


@pytest.fixture(scope="module")
def idle_server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("ping"), limits={"idle_timeout_s": 10},
                       accounts=["alice", "bob"])
    try:
        yield srv
    finally:
        stop_server(srv)


def _is_ping(e):
    return (e.tag == q(NS_CLIENT, "iq") and e.get("type") == "get"
            and e.find(q(NS_PING, "ping")) is not None)


@kurier_only
def test_silent_client_is_pinged_and_stays_when_it_answers(idle_server):
    with idle_server.raw() as c:
        jid = c.login("alice", password_for("alice"))
        start = time.monotonic()
        ping = c.wait_for(_is_ping, timeout=8)
        waited = time.monotonic() - start
        assert 4.0 <= waited <= 7.5, waited
        assert ping.get("to") == jid and ping.get("from") == "localhost"
        c.send("<iq type='result' id='%s' to='localhost'/>" % ping.get("id"))
        # past the idle timeout counted from the login: still connected, and pinged again
        again = c.wait_for(_is_ping, timeout=8)
        assert again.get("id") != ping.get("id")
        pong = c.iq("localhost", "get", "<ping xmlns='%s'/>" % NS_PING)
        assert pong.get("type") == "result"


@kurier_only
def test_client_that_never_answers_gets_connection_timeout(idle_server):
    with idle_server.raw() as c:
        c.login("bob", password_for("bob"))
        start = time.monotonic()
        c.wait_for(_is_ping, timeout=8)
        assert c.expect_stream_error(timeout=9) == "connection-timeout"
        assert 9.0 <= time.monotonic() - start <= 12.0
