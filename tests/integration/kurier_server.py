# SPDX-License-Identifier: AGPL-3.0-or-later
"""Starting and stopping a kurierd of our own for tests (shared by tests/integration and
tests/interop).

start_server() makes a fresh directory into a server: a certificate (self-signed for the
domain unless the caller brings one), a config file, accounts created with kurierctl, and
kurierd run under the sanitizers on the given loopback address; stop_server() sends SIGTERM
and fails the test on a non-zero exit or a sanitizer report in the log.

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


def _write_config(tmp: Path, port: int, direct_port: int, limits=None,
                  domain: str = "localhost", host: str = "127.0.0.1",
                  cert: Optional[Path] = None, key: Optional[Path] = None) -> Path:
    cfg = tmp / "kurierd.yml"
    merged = dict(DEFAULT_LIMITS, **(limits or {}))
    cfg.write_text(
        "domains: [%(domain)s]\n"
        "workers: 2\n"
        "log_level: debug\n"
        "data_dir: %(tmp)s/data\n"
        "tls: {certificate: %(cert)s, key: %(key)s}\n"
        "c2s: {starttls: [\"%(host)s:%(port)d\"], direct_tls: [\"%(host)s:%(direct)d\"]}\n"
        "sasl: {plain: true, scram_iterations: 4096, max_failures: 3}\n"
        "storage: {driver: sqlite, sqlite_path: kurier.db}\n"
        "limits: {%(limits)s}\n"
        % {"tmp": tmp, "port": port, "direct": direct_port, "domain": domain, "host": host,
           "cert": cert or tmp / "cert.pem", "key": key or tmp / "key.pem",
           "limits": ", ".join("%s: %d" % kv for kv in merged.items())})
    return cfg


def _add_users(kurierctl: Path, cfg: Path, accounts=ACCOUNTS, domain: str = "localhost") -> None:
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


def prepare_server(tmp: Path, extra_config: str = "", accounts=None, limits=None,
                   domain: str = "localhost", host: str = "127.0.0.1",
                   tls: Optional[tuple] = None) -> Server:
    """Everything start_server() does except starting kurierd: certificate, config, accounts.
    tls: (certificate chain, key, CA file the clients trust) to use instead of a new
    self-signed certificate for domain. Start the result with launch_server()."""
    kurierd = _binary("KURIERD", "build-test/kurierd")
    kurierctl = _binary("KURIERCTL", "build-test/kurierctl")
    (tmp / "data").mkdir()
    if tls is None:
        _make_certificate(tmp, domain)
        cert, key, ca = tmp / "cert.pem", tmp / "key.pem", tmp / "cert.pem"
    else:
        cert, key, ca = (Path(p) for p in tls)
    port, direct = _free_port(host), _free_port(host)
    while direct == port:
        direct = _free_port(host)
    cfg = _write_config(tmp, port, direct, limits, domain=domain, host=host, cert=cert, key=key)
    if extra_config:
        with open(cfg, "a") as f:
            f.write(extra_config.rstrip("\n") + "\n")
    _add_users(kurierctl, cfg, ACCOUNTS if accounts is None else accounts, domain)
    return Server(host=host, port=port, direct_port=direct, domain=domain,
                  ca=str(ca), external=False, log_path=tmp / "kurierd.log",
                  config_path=cfg, kurierd=kurierd, kurierctl=kurierctl, workdir=tmp)


def launch_server(srv: Server) -> Server:
    """Start kurierd for a prepared server and wait until both c2s ports accept."""
    _launch(srv)
    return srv


def start_server(tmp: Path, extra_config: str = "", accounts=None, limits=None,
                 domain: str = "localhost", host: str = "127.0.0.1",
                 tls: Optional[tuple] = None) -> Server:
    """Start a kurierd of our own in tmp (a fresh directory): certificate, config (plus
    extra_config, YAML appended at top level; `limits` overrides entries of DEFAULT_LIMITS, as
    the base config already has a limits section), accounts (default: ACCOUNTS), sanitizer
    environment. Stop it with stop_server(). Tests that need special settings (small quotas,
    registration on) or restarts use this instead of the shared `server` fixture. domain,
    host and tls as in prepare_server()."""
    return launch_server(prepare_server(tmp, extra_config, accounts, limits, domain, host, tls))


def stop_server(srv: Server) -> None:
    """SIGTERM; fails the test on a non-zero exit or a sanitizer report."""
    _stop(srv)


