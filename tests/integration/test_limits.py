# SPDX-License-Identifier: AGPL-3.0-or-later
"""Abuse limits (docs/SECURITY.md, docs/configuration.md `limits`), each on a kurierd of its
own with the limit set low: the per-connection token bucket (a fast sender is slowed down and
loses nothing), connections per IP address, failed logins per IP address and per account
(cool-down answered <temporary-auth-failure/>, RFC 6120 §6.5.13), the send-queue bound (a
client that never reads is disconnected with <policy-violation/>, RFC 6120 §4.9.3.14, and
its memory is released), the authentication timeout for 1,000 idle unauthenticated
connections and for a slowloris, and 1,000 connections dropped in the middle of the TLS
handshake.  Every test ends with a fresh client logging in and exchanging a message; the
memory ones also bound the server's resident memory (VmRSS) and count its open descriptors.
Peak numbers are printed (run with -s to see them)."""

import os
import select
import socket
import time

import pytest
from OpenSSL import SSL

from attack_helpers import exchange
from conftest import start_server, stop_server
from xmpp_raw import RawClient, StreamClosed

pytestmark = pytest.mark.kurier_only

SMALL_ACCOUNTS = ["alice", "bob", "carol"]
MB = 1024 * 1024
# The server under test runs under ASan, whose quarantine keeps up to 256 MB of freed blocks
# resident before reusing them: RSS after an attack cannot fall back to the baseline, so the
# exact check that connections were freed is the server's descriptor count, and RSS bounds
# leave room for the quarantine. Leaks are caught by LeakSanitizer when the server stops.
ASAN_QUARANTINE_KB = 256 * 1024


# ---------------------------------------------------------------- helpers

def rss_kb(srv) -> int:
    return srv.rss_kb()


def open_fds(srv) -> int:
    return len(os.listdir("/proc/%d/fd" % srv.proc.pid))


def wait_until(pred, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def log_text(srv) -> str:
    return srv.log_path.read_text(errors="replace")


def fresh_clients_talk(srv, user_a="alice", user_b="carol"):
    """The closing check of every test: new logins work and messages flow."""
    with srv.raw() as a, srv.raw() as b:
        a.login(user_a, srv.password(user_a))
        b.login(user_b, srv.password(user_b))
        exchange(a, b, "after the attack")


@pytest.fixture
def own_server(tmp_path):
    servers = []

    def start(**limits):
        d = tmp_path / ("s%d" % len(servers))
        d.mkdir()
        srv = start_server(d, accounts=SMALL_ACCOUNTS, limits=limits)
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        stop_server(srv)


# ---------------------------------------------------------------- token bucket

def test_fast_sender_is_throttled_but_loses_nothing(own_server):
    rate = 8192
    srv = own_server(bytes_per_second=rate, burst_bytes=rate)
    count, body = 40, "x" * 500
    with srv.raw() as alice, srv.raw() as bob:
        alice.login("alice", srv.password("alice"))
        bob.login("bob", srv.password("bob"))
        start = time.monotonic()
        for i in range(count):  # ~25 KB: about three times the bucket plus one second's rate
            alice.send_message(bob.jid, "%d %s" % (i, body))
        got = [bob.wait_message(timeout=20).find("{jabber:client}body").text.split()[0]
               for _ in range(count)]
        elapsed = time.monotonic() - start
        print("\ntoken bucket: %d messages at %d B/s took %.2f s" % (count, rate, elapsed))
        assert got == [str(i) for i in range(count)], "messages lost or reordered"
        assert elapsed >= 1.5, "40 x 500 B arrived in %.2f s: not paced at %d B/s" % (
            elapsed, rate)
        exchange(alice, bob, "still works")
    assert "reads throttled" in log_text(srv)
    fresh_clients_talk(srv)


def test_authenticated_stream_gets_the_higher_rate(own_server):
    # Before SASL the slow rate applies; after it the fast one: the same 40 messages that
    # take seconds at 8 KB/s arrive at once.
    srv = own_server(bytes_per_second=16 * MB, bytes_per_second_unauthenticated=2048,
                     burst_bytes=4096)
    with srv.raw() as alice, srv.raw() as bob:
        alice.login("alice", srv.password("alice"))
        bob.login("bob", srv.password("bob"))
        start = time.monotonic()
        for i in range(40):
            alice.send_message(bob.jid, "%d %s" % (i, "y" * 500))
        for _ in range(40):
            bob.wait_message(timeout=10)
        assert time.monotonic() - start < 1.5
    fresh_clients_talk(srv)


# ---------------------------------------------------------------- connections per IP

def _opened(srv) -> RawClient:
    c = srv.raw()
    c.connect()
    c.open_stream()  # answered: accepted and counted
    return c


def test_connections_per_ip_limit_refuses_extra_connections(own_server):
    srv = own_server(connections_per_ip=5)
    held = [_opened(srv) for _ in range(5)]
    try:
        extra = socket.create_connection((srv.host, srv.port), timeout=5)
        extra.settimeout(5)
        try:
            assert extra.recv(4096) == b"", "sixth connection from one IP was served"
        except ConnectionResetError:
            pass
        extra.close()
        assert "connections refused (per-IP limit)" in log_text(srv)
    finally:
        for c in held:
            c.close()
    # The count goes down as connections close: two logins fit again. The server
    # counts a connection until its close callbacks have run, which on a busy
    # machine can be after the client's next connect; so allow a few seconds, but
    # a count that never went down would still be refused at the end.
    deadline = time.monotonic() + 10
    while True:
        try:
            fresh_clients_talk(srv)
            break
        except (StreamClosed, ConnectionResetError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# ---------------------------------------------------------------- login brute force

def _plain_attempt(srv, user: str, password: str) -> str:
    with srv.raw() as c:
        c.connect()
        c.open_stream()
        c.starttls()
        res = c.sasl_plain(user, password)
        return "success" if res.success else res.condition


def test_brute_force_from_one_ip_starts_a_cool_down(own_server):
    srv = own_server(login_failures_per_ip=4, login_failures_per_account=100,
                     login_cooldown_s=3)
    users = ["bob", "carol", "nobody1", "nobody2"]  # spread: no account reaches its limit
    for u in users:
        assert _plain_attempt(srv, u, "guess-" + u) == "not-authorized"
    # the right password from the same address is now refused too
    assert _plain_attempt(srv, "alice", srv.password("alice")) == "temporary-auth-failure"
    assert "too many failed logins: cool-down started" in log_text(srv)
    assert "login cool-downs started" in log_text(srv)
    time.sleep(3.2)
    fresh_clients_talk(srv)


def test_brute_force_on_one_account_locks_that_account_only(own_server):
    srv = own_server(login_failures_per_ip=100, login_failures_per_account=3,
                     login_cooldown_s=3)
    for i in range(3):
        assert _plain_attempt(srv, "bob", "guess-%d" % i) == "not-authorized"
    assert _plain_attempt(srv, "bob", srv.password("bob")) == "temporary-auth-failure"
    # SCRAM is refused before the challenge as well
    with srv.raw() as c:
        c.connect()
        c.open_stream()
        c.starttls()
        res = c.sasl_scram("bob", srv.password("bob"))
        assert not res.success and res.condition == "temporary-auth-failure"
    # other accounts from the same address are not affected
    fresh_clients_talk(srv)
    time.sleep(3.2)
    assert _plain_attempt(srv, "bob", srv.password("bob")) == "success"
    fresh_clients_talk(srv, "bob", "alice")


# ---------------------------------------------------------------- a client that never reads

class NonReader(RawClient):
    """Connects with a tiny receive buffer, so the server's output backs up quickly."""

    def connect(self, direct_tls=False, **tls_options):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(self.timeout)
        s.connect((self.host, self.port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = s
        if direct_tls:
            self.start_tls_layer(alpn=b"xmpp-client", **tls_options)
        return self


def test_client_that_never_reads_is_disconnected_and_freed(own_server):
    srv = own_server(max_send_queue_bytes=65536, bytes_per_second=64 * MB,
                     burst_bytes=64 * MB)
    victim = NonReader(srv.host, srv.port, srv.domain, srv.ca)
    victim.login("bob", srv.password("bob"))
    base = rss_kb(srv)
    peak = base
    big = "z" * 60000
    with srv.raw() as alice, srv.raw() as carol:
        alice.login("alice", srv.password("alice"))
        carol.login("carol", srv.password("carol"))
        sent = 0
        while "peer does not read" not in log_text(srv):
            assert sent < 1000, "60 MB queued for a client that never reads, not cut off"
            for _ in range(20):
                alice.send_message(victim.jid, big)
            sent += 20
            exchange(alice, carol, "bystanders")  # others are unaffected meanwhile
            peak = max(peak, rss_kb(srv))
        exchange(carol, alice, "after the cut")
    log = log_text(srv)
    assert "stream error <policy-violation/>: Too much output queued" in log
    assert "connections closed for not reading" in log
    # the victim's connection goes (after at most the 3 s linger)
    victim.sock.settimeout(10)
    deadline = time.monotonic() + 10
    closed = False
    while time.monotonic() < deadline:
        try:
            if not victim.sock.recv(1 << 20):
                closed = True
                break
        except (ConnectionResetError, socket.timeout):
            closed = True
            break
    victim.close()
    assert closed, "connection of the non-reader still open"
    after = rss_kb(srv)
    print("\nnon-reader: sent %d x 60 KB; RSS base %d kB, peak %d kB, after %d kB"
          % (sent, base, peak, after))
    assert peak - base < 96 * 1024, "RSS grew by %d kB" % (peak - base)
    fresh_clients_talk(srv)


# ---------------------------------------------------------------- unauthenticated floods

def _all_closed(socks, timeout: float) -> int:
    """Read every socket until EOF; returns how many are still open at the deadline."""
    pending = {s.fileno(): s for s in socks}
    for s in socks:
        s.setblocking(False)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        ready, _, _ = select.select(list(pending.values())[:1000], [], [], 0.5)
        for s in ready:
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                data = b""
            if data == b"":
                del pending[s.fileno()]
    return len(pending)


HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")


def test_thousand_idle_unauthenticated_connections_time_out(own_server):
    srv = own_server(auth_timeout_s=5, connections_per_ip=2000)
    fresh_clients_talk(srv)
    base_rss, base_fds = rss_kb(srv), open_fds(srv)
    socks = []
    try:
        start = time.monotonic()
        for i in range(1000):
            s = socket.create_connection((srv.host, srv.port), timeout=5)
            s.sendall(HEADER.encode())
            socks.append(s)
        opened = time.monotonic() - start
        assert wait_until(lambda: open_fds(srv) >= base_fds + 900, 5)
        peak = rss_kb(srv)
        assert opened < 5, "opening took %.1f s: the timeouts overlapped the measurement" % opened
        still_open = _all_closed(socks, 20)
        assert still_open == 0, "%d idle connections were not timed out" % still_open
    finally:
        for s in socks:
            s.close()
    assert wait_until(lambda: open_fds(srv) <= base_fds, 10), \
        "server holds %d descriptors, %d before" % (open_fds(srv), base_fds)
    after = rss_kb(srv)
    print("\n1000 idle: RSS base %d kB, peak %d kB (%.1f kB/conn), after %d kB"
          % (base_rss, peak, (peak - base_rss) / 1000.0, after))
    assert peak - base_rss < 100 * 1024  # all 1000 open at once: < 100 kB each
    assert after - base_rss < ASAN_QUARANTINE_KB + 64 * 1024
    assert log_text(srv).count("Authentication took too long") >= 1000
    fresh_clients_talk(srv)


def _client_hello() -> bytes:
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    conn = SSL.Connection(ctx, None)
    conn.set_tlsext_host_name(b"localhost")
    conn.set_connect_state()
    try:
        conn.do_handshake()
    except SSL.WantReadError:
        pass
    return conn.bio_read(65536)


def test_thousand_connections_dropped_mid_tls_handshake(own_server):
    srv = own_server(connections_per_ip=2000)
    fresh_clients_talk(srv)
    base_rss, base_fds = rss_kb(srv), open_fds(srv)
    hello = _client_hello()
    assert len(hello) > 100
    peak = base_rss
    batch = []
    for i in range(1000):
        port = srv.direct_port if i % 2 == 0 else srv.port
        s = socket.create_connection((srv.host, port), timeout=5)
        if port == srv.port:  # STARTTLS: get as far as <proceed/>, then half a ClientHello
            s.sendall((HEADER + "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>").encode())
            buf = b""
            while b"proceed" not in buf:
                chunk = s.recv(4096)
                assert chunk, "closed before <proceed/>"
                buf += chunk
        s.sendall(hello[: len(hello) // 2])
        batch.append(s)
        if len(batch) == 50:  # hold 50 at a time, then drop them
            peak = max(peak, rss_kb(srv))
            for b in batch:
                b.close()
            batch = []
    for b in batch:
        b.close()
    assert wait_until(lambda: open_fds(srv) <= base_fds, 10), \
        "server holds %d descriptors, %d before" % (open_fds(srv), base_fds)
    after = rss_kb(srv)
    print("\n1000 half handshakes: RSS base %d kB, peak %d kB, after %d kB"
          % (base_rss, peak, after))
    assert after - base_rss < ASAN_QUARANTINE_KB + 64 * 1024
    fresh_clients_talk(srv)


# ---------------------------------------------------------------- slowloris

def test_slowloris_before_authentication_is_cut_off_by_the_auth_timeout(own_server):
    # Bytes that keep arriving do not extend the authentication deadline: it runs from the
    # connection's start (limits.auth_timeout_s), not from the last read.
    srv = own_server(auth_timeout_s=3)
    data = (HEADER + "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>").encode()
    s = socket.create_connection((srv.host, srv.port), timeout=1)
    start = time.monotonic()
    got = b""
    closed_at = None
    try:
        i = 0
        while closed_at is None and i < len(data):
            # Read whatever the server sent before trickling the next byte: a byte sent after
            # the server closed is answered with a reset, which may hide the stream error.
            if select.select([s], [], [], 1.0)[0]:
                try:
                    chunk = s.recv(4096)
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    closed_at = time.monotonic()
                got += chunk
                continue
            try:
                s.sendall(data[i:i + 1])  # one byte per second
            except (BrokenPipeError, ConnectionResetError):
                closed_at = time.monotonic()
            i += 1
    finally:
        s.close()
    assert closed_at is not None, "trickling client never cut off"
    assert closed_at - start < 6, "cut off only after %.1f s" % (closed_at - start)
    assert b"connection-timeout" in got
    fresh_clients_talk(srv)
