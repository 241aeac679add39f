# SPDX-License-Identifier: AGPL-3.0-or-later
"""Harness of the kurierd integration tests (pytest + slixmpp + a raw XMPP client).

By default the session starts its own kurierd on loopback: a temporary directory
with a self-signed ECDSA P-256 certificate for 'localhost', a config file,
accounts created with kurierctl, and the server run under the sanitizers.  At the
end the server gets SIGTERM and must exit 0 with no sanitizer report in its log.

Against an already running server (how we check our expectations with Prosody):

    /usr/bin/python3 -m pytest tests/integration --kurier-host 127.0.0.1 \
        --kurier-port 5222 --kurier-direct-port 5223 --kurier-domain localhost \
        --kurier-ca /path/to/cert.pem

Then nothing is started, tests marked kurier_only are skipped, and these accounts
must exist with these passwords (see password_for):

    alice, bob, carol, load0 .. load49     password "<localpart>-Kurier-test-pw"
                                           e.g. alice -> "alice-Kurier-test-pw"

Binaries: $KURIERD and $KURIERCTL, defaulting to build-test/kurierd and
build-test/kurierctl of this repository.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
LOAD_ACCOUNTS = 50
ACCOUNTS = ["alice", "bob", "carol"] + ["load%d" % i for i in range(LOAD_ACCOUNTS)]
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


def password_for(localpart: str) -> str:
    """The password every test account is created with."""
    return "%s-Kurier-test-pw" % localpart


@dataclass
class Server:
    host: str
    port: int           # STARTTLS (RFC 6120 §5)
    direct_port: int    # direct TLS (XEP-0368)
    domain: str
    ca: str             # PEM file the clients trust (the server's self-signed cert)
    external: bool
    proc: Optional[subprocess.Popen] = None
    log_path: Optional[Path] = None
    config_path: Optional[Path] = None
    kurierd: Optional[Path] = None
    kurierctl: Optional[Path] = None
    workdir: Optional[Path] = None

    def create_account(self, localpart: str, password: Optional[str] = None) -> str:
        """Create an account with kurierctl (works while kurierd runs); returns its bare JID.
        The password defaults to password_for(localpart)."""
        if self.external:
            pytest.skip("cannot create accounts on an external server")
        res = subprocess.run(
            [str(self.kurierctl), "-c", str(self.config_path), "adduser",
             "%s@%s" % (localpart, self.domain)],
            input=(password or password_for(localpart)) + "\n", text=True,
            capture_output=True, timeout=60)
        if res.returncode != 0:
            pytest.fail("kurierctl adduser %s failed (exit %d): %s"
                        % (localpart, res.returncode, res.stderr), pytrace=False)
        return self.jid(localpart)

    def restart(self, kill: bool = False) -> None:
        """Stop kurierd (SIGTERM, or SIGKILL when kill) and start it again on the same
        ports, data and log file. A clean stop must exit 0."""
        if kill:
            self.proc.kill()
            self.proc.wait()
        else:
            _stop(self)
        _launch(self)

    def password(self, localpart: str) -> str:
        return password_for(localpart)

    def jid(self, localpart: str) -> str:
        return "%s@%s" % (localpart, self.domain)

    def rss_kb(self) -> int:
        """Resident memory of our kurierd in kB (0 for an external server)."""
        if self.proc is None:
            return 0
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def log_tail(self, lines: int = 60) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def raw(self, direct_tls: bool = False, timeout: float = 5.0):
        from xmpp_raw import RawClient
        return RawClient(self.host, self.direct_port if direct_tls else self.port,
                         self.domain, self.ca, timeout=timeout)


def pytest_addoption(parser):
    group = parser.getgroup("kurier", "server under test")
    group.addoption("--kurier-host", default=None,
                    help="use an already running server at this address (starts nothing)")
    group.addoption("--kurier-port", type=int, default=None, help="its STARTTLS c2s port")
    group.addoption("--kurier-direct-port", type=int, default=None,
                    help="its direct-TLS c2s port (XEP-0368)")
    group.addoption("--kurier-domain", default="localhost", help="the XMPP domain it serves")
    group.addoption("--kurier-ca", default=None,
                    help="PEM certificate to verify the external server against")


def _external(config) -> bool:
    return config.getoption("--kurier-host") is not None \
        or config.getoption("--kurier-port") is not None


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "kurier_only: checks a Kurier-specific limit or feature; "
        "skipped against an external server")


def pytest_collection_modifyitems(config, items):
    if not _external(config):
        return
    skip = pytest.mark.skip(reason="Kurier-specific; skipped against an external server")
    for item in items:
        if "kurier_only" in item.keywords:
            item.add_marker(skip)


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _binary(env: str, default: str) -> Path:
    path = Path(os.environ.get(env) or REPO_ROOT / default)
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail("%s not found at %s: build it (ninja -C build-test) or set $%s"
                    % (default, path, env), pytrace=False)
    return path


def _make_certificate(tmp: Path, domain: str = "localhost") -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "30", "-subj", "/CN=%s" % domain,
         "-addext", "subjectAltName=DNS:%s" % domain,
         "-keyout", str(tmp / "key.pem"), "-out", str(tmp / "cert.pem")],
        check=True, capture_output=True, timeout=30)


DEFAULT_LIMITS = {"max_stanza_bytes": 262144, "max_depth": 64, "max_attributes": 64,
                  "auth_timeout_s": 30, "idle_timeout_s": 600, "max_send_queue_bytes": 1048576}


def _write_config(tmp: Path, port: int, direct_port: int, limits=None, domain="localhost",
                  host="127.0.0.1") -> Path:
    cfg = tmp / "kurierd.yml"
    merged = dict(DEFAULT_LIMITS, **(limits or {}))
    cfg.write_text(
        "domains: [%(domain)s]\n"
        "workers: 2\n"
        "log_level: debug\n"
        "data_dir: %(tmp)s/data\n"
        "tls: {certificate: %(tmp)s/cert.pem, key: %(tmp)s/key.pem}\n"
        "c2s: {starttls: [\"%(host)s:%(port)d\"], direct_tls: [\"%(host)s:%(direct)d\"]}\n"
        "sasl: {plain: true, scram_iterations: 4096, max_failures: 3}\n"
        "storage: {driver: sqlite, sqlite_path: kurier.db}\n"
        "limits: {%(limits)s}\n"
        % {"tmp": tmp, "port": port, "direct": direct_port, "domain": domain, "host": host,
           "limits": ", ".join("%s: %d" % kv for kv in merged.items())})
    return cfg


def _add_users(kurierctl: Path, cfg: Path, accounts=ACCOUNTS, domain="localhost") -> None:
    def add(localpart: str):
        return localpart, subprocess.run(
            [str(kurierctl), "-c", str(cfg), "adduser", "%s@%s" % (localpart, domain)],
            input=password_for(localpart) + "\n", text=True, capture_output=True, timeout=60)

    with ThreadPoolExecutor(max_workers=8) as pool:
        for localpart, res in pool.map(add, accounts):
            if res.returncode != 0:
                pytest.fail("kurierctl adduser %s failed (exit %d):\n%s%s"
                            % (localpart, res.returncode, res.stdout, res.stderr),
                            pytrace=False)


def _wait_listening(server: Server, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if server.proc.poll() is not None:
            pytest.fail("kurierd exited with status %d during start-up; log tail:\n%s"
                        % (server.proc.returncode, server.log_tail()), pytrace=False)
        try:
            socket.create_connection((server.host, port), timeout=0.5).close()
            return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail("kurierd did not accept connections on port %d within %.0f s; "
                        "log tail:\n%s" % (port, START_TIMEOUT_S, server.log_tail()),
                        pytrace=False)
        time.sleep(0.1)


def _sanitizer_report(log: Path) -> Optional[str]:
    if not log.exists():
        return None
    lines = log.read_text(errors="replace").splitlines()
    for i, line in enumerate(lines):
        if any(m in line for m in SANITIZER_MARKERS):
            return "\n".join(lines[max(0, i - 5): i + 60])
    return None


def _stop(server: Server) -> None:
    proc = server.proc
    problems = []
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            problems.append("kurierd did not exit within %.0f s of SIGTERM" % STOP_TIMEOUT_S)
    if proc.returncode != 0 and not problems:
        problems.append("kurierd exited with status %d" % proc.returncode)
    report = _sanitizer_report(server.log_path)
    if report:
        problems.append("sanitizer report in %s:\n%s" % (server.log_path, report))
    if problems:
        pytest.fail("\n".join(problems) + "\n--- log tail ---\n" + server.log_tail(),
                    pytrace=False)


def _launch(srv: Server) -> None:
    env = dict(os.environ,
               ASAN_OPTIONS="abort_on_error=0:detect_leaks=1",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    with open(srv.log_path, "ab") as log:
        srv.proc = subprocess.Popen([str(srv.kurierd), "-c", str(srv.config_path)],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                    cwd=srv.workdir)
    try:
        _wait_listening(srv, srv.port)
        _wait_listening(srv, srv.direct_port)
    except BaseException:
        if srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait()
        raise


def start_server(tmp: Path, extra_config: str = "", accounts=None, limits=None,
                 domain: str = "localhost", host: str = "127.0.0.1",
                 cert: Optional[tuple] = None) -> Server:
    """Start a kurierd of our own in tmp (a fresh directory): certificate, config (plus
    extra_config, YAML appended at top level; `limits` overrides entries of DEFAULT_LIMITS, as
    the base config already has a limits section), accounts (default: ACCOUNTS), sanitizer
    environment. Stop it with stop_server(). Tests that need special settings (small quotas,
    registration on) or restarts use this instead of the shared `server` fixture.
    domain and host: the XMPP domain served and the loopback address its listeners use
    (s2s tests run two servers). cert: (certificate PEM, key PEM, PEM the clients trust)
    file paths to use instead of a fresh self-signed certificate for the domain."""
    kurierd = _binary("KURIERD", "build-test/kurierd")
    kurierctl = _binary("KURIERCTL", "build-test/kurierctl")
    (tmp / "data").mkdir()
    ca = tmp / "cert.pem"
    if cert:
        (tmp / "cert.pem").write_bytes(Path(cert[0]).read_bytes())
        (tmp / "key.pem").write_bytes(Path(cert[1]).read_bytes())
        ca = Path(cert[2])
    else:
        _make_certificate(tmp, domain)
    port, direct = _free_port(host), _free_port(host)
    while direct == port:
        direct = _free_port(host)
    cfg = _write_config(tmp, port, direct, limits, domain, host)
    if extra_config:
        with open(cfg, "a") as f:
            f.write(extra_config.rstrip("\n") + "\n")
    _add_users(kurierctl, cfg, ACCOUNTS if accounts is None else accounts, domain)
    srv = Server(host=host, port=port, direct_port=direct, domain=domain,
                 ca=str(ca), external=False, log_path=tmp / "kurierd.log",
                 config_path=cfg, kurierd=kurierd, kurierctl=kurierctl, workdir=tmp)
    _launch(srv)
    return srv


def stop_server(srv: Server) -> None:
    """SIGTERM; fails the test on a non-zero exit or a sanitizer report."""
    _stop(srv)


@pytest.fixture(scope="session")
def server(request, tmp_path_factory):
    config = request.config
    if _external(config):
        port = config.getoption("--kurier-port") or 5222
        direct = config.getoption("--kurier-direct-port") or 5223
        ca = config.getoption("--kurier-ca")
        if not ca:
            pytest.fail("--kurier-ca is required with an external server", pytrace=False)
        yield Server(host=config.getoption("--kurier-host") or "127.0.0.1", port=port,
                     direct_port=direct, domain=config.getoption("--kurier-domain"),
                     ca=str(Path(ca).resolve()), external=True)
        return

    srv = start_server(tmp_path_factory.mktemp("kurier"))
    yield srv
    _stop(srv)


@pytest.fixture(autouse=True)
def server_survives(server):
    """Every test also checks that the server process is still alive after it."""
    yield
    if server.proc is not None and server.proc.poll() is not None:
        pytest.fail("kurierd died during this test (exit status %d); log tail:\n%s"
                    % (server.proc.returncode, server.log_tail()), pytrace=False)
