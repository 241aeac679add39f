# SPDX-License-Identifier: AGPL-3.0-or-later
"""kurier-bench, the load generator of `make bench`, against the test server.

The generator's numbers are only worth something if it really logs in (TLS with the
certificate checked, SCRAM, bind) and really delivers what it counts, with either TLS
engine (--tls-lib wolfssl, the default, or openssl). So: both engines log in over
STARTTLS and direct TLS, `msg` delivers with nothing lost or duplicated, and an untrusted
certificate or a certificate for another name fails the run (exit 2, a `tls` error that
says "certificate"), never a silent success. The binary is $KURIER_BENCH, by default
build-test/kurier-bench (built with the sanitizers like the server).
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from kurier_server import LOAD_ACCOUNTS, SANITIZER_MARKERS, _binary

ENGINES = ["wolfssl", "openssl"]


def bench(server, *args: str, port: int = 0, ca: str = "", timeout: float = 60.0):
    """Runs kurier-bench on the load accounts; returns (exit code, JSON result or None,
    stderr). The load accounts' passwords are '<localpart>-Kurier-test-pw'."""
    exe = _binary("KURIER_BENCH", "build-test/kurier-bench")
    cmd = [str(exe), *args, "-t", "1", "--host", server.host,
           "--port", str(port or server.port), "--ca", ca or server.ca,
           "--user", "load%d@" + server.domain, "--password", "load%d-Kurier-test-pw",
           "--accounts", str(LOAD_ACCOUNTS)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    for marker in SANITIZER_MARKERS:
        assert marker not in proc.stderr, proc.stderr
    result = None
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            result = json.loads(line)
    return proc.returncode, result, proc.stderr + proc.stdout


def self_signed(tmp: Path, name: str) -> tuple[Path, Path]:
    """A fresh ECDSA P-256 certificate for name (no CA we trust has signed it)."""
    cert, key = tmp / (name + ".pem"), tmp / (name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-subj", "/CN=" + name, "-addext", "subjectAltName=DNS:" + name,
                    "-days", "2"], check=True, capture_output=True)
    return cert, key


@pytest.mark.parametrize("engine", ENGINES)
def test_login_starttls(server, engine):
    rc, res, out = bench(server, "login", "30", "-c", "6", "--tls-lib", engine, "--presence")
    assert rc == 0, out
    assert res["params"]["tls_lib"] == engine and res["params"]["verify"] is True
    assert res["params"]["tls"] == "starttls"
    assert res["results"]["ok"] == 30 and res["results"]["failed"] == 0, out
    assert res["valid"] is True


@pytest.mark.parametrize("engine", ENGINES)
def test_login_direct_tls(server, engine):
    rc, res, out = bench(server, "login", "12", "-c", "4", "--tls", "direct",
                         "--tls-lib", engine, port=server.direct_port)
    assert rc == 0, out
    assert res["params"]["tls"] == "direct" and res["results"]["ok"] == 12, out


@pytest.mark.parametrize("engine", ENGINES)
def test_msg_nothing_lost(server, engine):
    rc, res, out = bench(server, "msg", "4", "-w", "2", "--warmup", "1", "--duration", "1",
                         "--tls-lib", engine)
    assert rc == 0, out
    r = res["results"]
    assert r["connections_up"] == 8 and r["delivered"] > 0, out
    assert (r["lost"], r["duplicated"], r["unknown"], r["errors"]) == (0, 0, 0, 0), out


@pytest.mark.parametrize("engine", ENGINES)
def test_untrusted_certificate_fails(server, engine, tmp_path):
    other, _ = self_signed(tmp_path, server.domain)
    rc, res, out = bench(server, "login", "4", "-c", "2", "--no-prewarm", "--tls-lib", engine,
                         ca=str(other))
    assert rc == 2, out
    assert res["results"]["ok"] == 0 and res["errors"]["tls"] == 4, out
    assert res["first_error"].startswith("tls: certificate:"), res["first_error"]


def _tls_listener(cert: Path, key: Path):
    """A TLS server on a loopback port that completes handshakes and then closes: enough
    to show the generator checks the name in the certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            try:
                conn.settimeout(2)
                ctx.wrap_socket(conn, server_side=True).close()
            except (OSError, ssl.SSLError):
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return sock, stop, thread


@pytest.mark.parametrize("engine", ENGINES)
def test_certificate_for_another_name_fails(server, engine, tmp_path):
    cert, key = self_signed(tmp_path, "elsewhere.localhost")
    sock, stop, thread = _tls_listener(cert, key)
    try:
        rc, res, out = bench(server, "login", "2", "-c", "1", "--no-prewarm", "--tls", "direct",
                             "--tls-lib", engine, port=sock.getsockname()[1], ca=str(cert))
    finally:
        stop.set()
        thread.join()
        sock.close()
    assert rc == 2, out
    assert res["errors"]["tls"] == 2, out
    assert res["first_error"].startswith("tls: certificate:"), res["first_error"]


def test_unknown_engine_is_a_usage_error(server):
    rc, res, out = bench(server, "login", "1", "--tls-lib", "gnutls")
    assert rc != 0 and res is None
    assert "bad value for option --tls-lib: gnutls" in out


def test_auto_engine_follows_the_mode(server):
    """--tls-lib auto (the default): wolfSSL for login (handshakes), OpenSSL for msg (records)."""
    rc, res, out = bench(server, "login", "2", "-c", "1", "--no-prewarm")
    assert rc == 0 and res["params"]["tls_lib"] == "wolfssl", out
    rc, res, out = bench(server, "msg", "1", "--warmup", "0", "--duration", "1")
    assert rc == 0 and res["params"]["tls_lib"] == "openssl", out
