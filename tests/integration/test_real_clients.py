# SPDX-License-Identifier: AGPL-3.0-or-later
"""Real XMPP clients that we did not write, talking to kurierd: go-sendxmpp (Go, go-xmpp
library) sends a message over STARTTLS (RFC 6120 §5) and over direct TLS (XEP-0368), and
profanity (C, libstrophe; an interactive curses client driven through tmux) logs in,
sends a message and shows one it receives.  Both verify the server's certificate against
the test certificate, nothing is switched off.  Each test uses fresh accounts, a private
HOME for the client in its pytest tmp dir, and cleans up every process it started.

Debian packages: go-sendxmpp, profanity, tmux (scripts/deps.sh test).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from realclients_tmux import Terminal, TerminalError
from xmpp_slix import Client, run

GO_SENDXMPP_TIMEOUT_S = 30
SCREEN_TIMEOUT_S = 20


def _tag() -> str:
    return uuid.uuid4().hex[:8]


def _require(program: str, package: str) -> str:
    path = shutil.which(program)
    if path is None:
        pytest.fail("%s not found: install the Debian package %s (scripts/deps.sh test)"
                    % (program, package), pytrace=False)
    return path


def _private_home(tmp_path: Path) -> dict:
    """A minimal environment whose HOME, XDG and GnuPG directories are all inside
    tmp_path, so a client reads no configuration of the machine and writes nothing
    outside the test's directory."""
    home = tmp_path / "home"
    for sub in (".config", ".local/share", ".cache", ".gnupg"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    (home / ".gnupg").chmod(0o700)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "GNUPGHOME": str(home / ".gnupg"),
        "LANG": "C.UTF-8",
        "TERM": "xterm-256color",
    }


async def _start_available(client: Client, timeout: float = 5.0) -> None:
    """Start the session and wait until the server has taken the initial presence, which
    it echoes to the sending resource (RFC 6121 §4.2.2), so that messages to the bare JID
    are delivered to this resource.  Without an echo it goes on after the timeout: that
    rule is not what these tests check."""
    echoed = asyncio.get_running_loop().create_future()

    def on_presence(pres):
        if pres["from"] == client.boundjid and not echoed.done():
            echoed.set_result(True)

    client.add_event_handler("presence", on_presence)
    try:
        assert await client.start(), "slixmpp client %s could not log in" % client.boundjid
        try:
            await asyncio.wait_for(echoed, timeout)
        except asyncio.TimeoutError:
            pass
    finally:
        client.del_event_handler("presence", on_presence)


# ---------------------------------------------------------------- go-sendxmpp

@pytest.mark.parametrize("direct_tls", [False, True], ids=["starttls", "direct_tls"])
def test_go_sendxmpp_message_reaches_slixmpp_client(server, tmp_path, direct_tls):
    go_sendxmpp = _require("go-sendxmpp", "go-sendxmpp")
    tag = _tag()
    sender = "gsx_" + tag
    receiver = "gsxr_" + tag
    server.create_account(sender)
    server.create_account(receiver)
    body = "hello-from-go-sendxmpp-" + tag
    port = server.direct_port if direct_tls else server.port

    env = _private_home(tmp_path)
    # Go's crypto/x509 trusts exactly these on Linux: the test certificate and an empty
    # directory (instead of the system's CA directories).
    (tmp_path / "no-cas").mkdir()
    env["SSL_CERT_FILE"] = server.ca
    env["SSL_CERT_DIR"] = str(tmp_path / "no-cas")
    argv = [go_sendxmpp, "--debug", "--timeout", "10",
            "--jserver", "%s:%d" % (server.host, port),
            "--username", server.jid(sender), "--password", server.password(sender)]
    if direct_tls:
        argv.append("--tls")
    argv.append(server.jid(receiver))

    async def scenario():
        rx = Client(server, receiver, "rx-" + tag)
        try:
            await _start_available(rx)
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, env=env, cwd=str(tmp_path))
            try:
                out, _ = await asyncio.wait_for(proc.communicate((body + "\n").encode()),
                                                GO_SENDXMPP_TIMEOUT_S)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
                raise AssertionError("go-sendxmpp did not finish within %d s"
                                     % GO_SENDXMPP_TIMEOUT_S)
            log = out.decode(errors="replace")
            assert proc.returncode == 0, "go-sendxmpp exited %d:\n%s" % (proc.returncode, log)
            bound = re.search(r"<jid>([^<]+)</jid>", log)
            assert bound, "no resource binding in go-sendxmpp's debug output:\n" + log
            sender_full = bound.group(1)
            assert sender_full.startswith(server.jid(sender) + "/"), sender_full

            msg = await rx.next_message(timeout=10)
            assert msg["body"] == body
            assert msg["from"].full == sender_full
            assert msg["to"].bare == server.jid(receiver)
        finally:
            await rx.stop()
    run(scenario(), timeout=60)


# ---------------------------------------------------------------- profanity

PROFANITY_FAILURES = ("TLS certificate verification failed", "Login failed",
                      "Connection failed", "Could not connect")


def _screen_shows(pattern: str):
    """A wait_for predicate: the match of pattern, failing at once when profanity
    reports that the connection or login failed."""
    regex = re.compile(pattern, re.MULTILINE)

    def check(screen: str):
        for failure in PROFANITY_FAILURES:
            if failure in screen:
                raise TerminalError("profanity reports %r; screen:\n%s" % (failure, screen))
        return regex.search(screen)
    return check


def test_profanity_sends_and_shows_messages(server, tmp_path):
    profanity = _require("profanity", "profanity")
    _require("tmux", "tmux")
    tag = _tag()
    prof = "prof_" + tag
    other = "profo_" + tag
    server.create_account(prof)
    server.create_account(other)
    prof_bare = server.jid(prof)
    other_bare = server.jid(other)
    outgoing = "hello-from-profanity-" + tag
    incoming = "hello-from-slixmpp-" + tag

    env = _private_home(tmp_path)
    # libstrophe loads trusted certificates from a hashed OpenSSL directory holding
    # only the test certificate.
    certs = tmp_path / "certs"
    certs.mkdir()
    shutil.copy(server.ca, certs / "kurier-test.pem")
    subprocess.run(["openssl", "rehash", str(certs)], check=True, capture_output=True,
                   timeout=30)

    term = Terminal(tmp_path, env, name="prof", width=160, height=48)
    try:
        # the shell reports profanity's exit status on the screen after /quit
        term.start(["sh", "-c", '%s; echo "profanity exited with status $?"' % profanity])
        term.wait_for(r"Type '/help'", SCREEN_TIMEOUT_S, "profanity's welcome text")

        async def scenario():
            rx = Client(server, other, "rx-" + tag)
            try:
                await _start_available(rx)

                def log_in():
                    term.type_line("/tls certpath set %s" % certs)
                    term.wait_for("Certificate path set to", SCREEN_TIMEOUT_S)
                    term.type_line("/connect %s server %s port %d tls force"
                                   % (prof_bare, server.host, server.port))
                    term.wait_for(_screen_shows(r"Enter password:"), SCREEN_TIMEOUT_S,
                                  "the password prompt")
                    term.type_line(server.password(prof))
                    found = term.wait_for(
                        _screen_shows(r"(%s/\S+) logged in successfully" % re.escape(prof_bare)),
                        SCREEN_TIMEOUT_S, "the successful login")
                    return found.group(1)

                prof_full = await asyncio.to_thread(log_in)

                await asyncio.to_thread(term.type_line, "/msg %s %s" % (other_bare, outgoing))
                msg = await rx.message_with_body(outgoing, timeout=SCREEN_TIMEOUT_S)
                assert msg["from"].full == prof_full
                assert msg["to"].bare == other_bare

                rx.send_message(mto=prof_bare, mbody=incoming, mtype="chat")
                await asyncio.to_thread(
                    term.wait_for,
                    _screen_shows(r"%s\S*: %s\s*$" % (re.escape(other_bare), re.escape(incoming))),
                    SCREEN_TIMEOUT_S, "the message from %s" % other_bare)
            finally:
                await rx.stop()
        run(scenario(), timeout=120)

        term.type_line("/quit")
        status = term.wait_for(r"profanity exited with status (\d+)", SCREEN_TIMEOUT_S,
                               "profanity's exit after /quit")
        assert status.group(1) == "0", "profanity exited with status %s" % status.group(1)
    finally:
        term.close()
