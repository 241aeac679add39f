# SPDX-License-Identifier: AGPL-3.0-or-later
"""Idle TLS 1.3 streams leave OpenSSL for kurierd's own record layer (src/net/tls.c
kr_tls_trim, src/net/tls13_record.c): after 3 s of silence a bound stream trades its SSL
object (~13 KiB) for ~0.3 KiB of keys and sequence numbers. From then on every record it
reads and writes is ours, so these tests idle past that point and check the traffic that
follows with TLS implementations we did not write: Go's crypto/tls (go-sendxmpp, reading our
records in --listen mode and writing its own in --interactive mode) and Python's ssl module
on OpenSSL (slixmpp, with stanzas longer than one record). The record layer's corner cases
(KeyUpdate, tampering, each suite) are unit tests (tests/unit/test_tls13.c).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import uuid

import pytest

from xmpp_slix import Client, run

IDLE_S = 4.5  # past KR_C2S_TRIM_MS (3 s) with room for the timer
HANDOVER_LOG = "idle: TLS records now kurierd's, SSL object freed"


def _handovers(server) -> int:
    """How many streams our server has handed over so far (its debug log says each)."""
    if server.log_path is None:
        return -1
    return server.log_path.read_text(errors="replace").count(HANDOVER_LOG)


def _expect_handovers(server, before: int, at_least: int) -> None:
    if before >= 0:  # not checked against an external server
        assert _handovers(server) - before >= at_least, \
            "expected %d more idle TLS hand-overs in the server log" % at_least


def _tag() -> str:
    return uuid.uuid4().hex[:8]


def _go_sendxmpp() -> str:
    path = shutil.which("go-sendxmpp")
    if path is None:
        pytest.fail("go-sendxmpp not found: install the Debian package go-sendxmpp "
                    "(scripts/deps.sh test)", pytrace=False)
    return path


def _go_env(server, tmp_path) -> dict:
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True, exist_ok=True)
    (tmp_path / "no-cas").mkdir(exist_ok=True)
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
            "LANG": "C.UTF-8", "SSL_CERT_FILE": server.ca,
            "SSL_CERT_DIR": str(tmp_path / "no-cas")}


async def _read_until(stream, pattern: str, timeout: float, seen: list) -> re.Match:
    """Lines from stream until one matches pattern; every line read goes into seen."""
    regex = re.compile(pattern)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        left = deadline - loop.time()
        if left <= 0:
            raise AssertionError("no line matching %r in %.0f s; output:\n%s"
                                 % (pattern, timeout, "".join(seen)))
        line = await asyncio.wait_for(stream.readline(), left)
        if not line:
            raise AssertionError("go-sendxmpp ended before %r; output:\n%s"
                                 % (pattern, "".join(seen)))
        text = line.decode(errors="replace")
        seen.append(text)
        found = regex.search(text)
        if found:
            return found


async def _spawn_go(server, tmp_path, user: str, *mode: str):
    argv = [_go_sendxmpp(), "--debug", "--timeout", "10", "--tls-version", "13",
            "--jserver", "%s:%d" % (server.host, server.port),
            "--username", server.jid(user), "--password", server.password(user), *mode]
    return await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env=_go_env(server, tmp_path), cwd=str(tmp_path))


async def _stop_go(proc) -> None:
    if proc.returncode is None:
        proc.kill()
    await proc.wait()


def test_go_tls_reads_our_records_after_idle(server, tmp_path):
    tag = _tag()
    listener, sender = "gol_" + tag, "gos_" + tag
    server.create_account(listener)
    server.create_account(sender)

    async def scenario():
        proc = await _spawn_go(server, tmp_path, listener, "--listen")
        tx = Client(server, sender, "tx-" + tag)
        seen: list = []
        try:
            await _read_until(proc.stdout, r"<jid>[^<]+</jid>", 20, seen)
            assert await tx.start()
            for rnd in range(2):
                before = _handovers(server)
                await asyncio.sleep(IDLE_S)  # both streams go idle and are handed over
                _expect_handovers(server, before, 2 if rnd == 0 else 0)
                body = "after-idle-%d-%s" % (rnd, tag)
                tx.send_message(mto=server.jid(listener), mbody=body, mtype="chat")
                await _read_until(proc.stdout, re.escape(body), 10, seen)
        finally:
            await tx.stop()
            await _stop_go(proc)
    run(scenario(), timeout=60)


def test_go_tls_writes_records_we_read_after_idle(server, tmp_path):
    tag = _tag()
    writer, receiver = "gow_" + tag, "gor_" + tag
    server.create_account(writer)
    server.create_account(receiver)

    async def scenario():
        rx = Client(server, receiver, "rx-" + tag)
        assert await rx.start()
        proc = await _spawn_go(server, tmp_path, writer, "--interactive", server.jid(receiver))
        seen: list = []
        try:
            await _read_until(proc.stdout, r"<jid>[^<]+</jid>", 20, seen)
            for rnd in range(2):
                before = _handovers(server)
                await asyncio.sleep(IDLE_S)
                _expect_handovers(server, before, 2 if rnd == 0 else 0)
                body = "typed-after-idle-%d-%s" % (rnd, tag)
                proc.stdin.write((body + "\n").encode())
                await proc.stdin.drain()
                try:
                    # go-sendxmpp keeps the line's newline in the body
                    msg = await rx.message_with_body(body + "\n", timeout=10)
                except asyncio.TimeoutError:
                    raise AssertionError("%r did not arrive; go-sendxmpp said:\n%s\nserver:\n%s"
                                         % (body, "".join(seen), server.log_tail()))
                assert msg["from"].bare == server.jid(writer)
        finally:
            await rx.stop()
            await _stop_go(proc)
    run(scenario(), timeout=60)


def test_long_stanzas_span_records_after_idle(server):
    """Bodies of 100 kB: several full records each way, through both record layers."""
    tag = _tag()

    async def scenario():
        alice = Client(server, "alice", "a-" + tag)
        bob = Client(server, "bob", "b-" + tag)
        try:
            assert all(await asyncio.gather(alice.start(), bob.start()))
            before = _handovers(server)
            await asyncio.sleep(IDLE_S)
            _expect_handovers(server, before, 2)
            for sender, receiver in ((alice, bob), (bob, alice)):
                body = ("%s-" % sender.boundjid.user) + "x" * 100000 + tag
                sender.send_message(mto=receiver.boundjid.full, mbody=body, mtype="chat")
                msg = await receiver.message_with_body(body, timeout=10)
                assert msg["from"].full == sender.boundjid.full
        finally:
            await asyncio.gather(alice.stop(), bob.stop())
    run(scenario(), timeout=60)
