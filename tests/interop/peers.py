# SPDX-License-Identifier: AGPL-3.0-or-later
"""Real XMPP peers for the interop tests: Prosody 0.12 and ejabberd 23.01 from Debian.

Each peer runs from its own directory under the test's temporary directory (config, data,
logs, certificates), serves one domain on its own loopback address (Net) with s2s on port
5269 and c2s on a free port, and runs as root (Prosody with run_as_root, ejabberd through
ejabberdctl told to stay the current user) so that pytest's private temporary directory
needs no permission changes.

Name resolution: the peers find kurier.test and each other through /etc/hosts, but never
the machine's real one. Each peer runs in a mount namespace of its own (`unshare -m`, private
propagation) where a test hosts file is bind-mounted over /etc/hosts and a test resolv.conf
over /etc/resolv.conf. That resolv.conf names a loopback address where nothing listens, so
the SRV queries both servers try first fail at once (port unreachable) instead of waiting
for a DNS server that this network does not have, and both fall back to the domain's
address on port 5269 (RFC 6120 §3.2.2). Prosody resolves through libunbound (lua-unbound,
hoststxt on); ejabberd through Erlang's resolver, which reads the same files.

Every process is started in a session of its own and stopped by its process group id.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

S2S_PORT = 5269
KURIER_CONNECT_TIMEOUT_S = 10   # s2s.connect_timeout_s of the kurierd under test
START_TIMEOUT_S = 60.0

# Users every peer has (password: password_for(localpart)), enough for each test to use
# fresh ones so rosters of one test never leak into another.
PEER_USERS = ["user%d" % i for i in range(12)]


def password_for(localpart: str) -> str:
    return "%s-interop-pw" % localpart


class PeerError(Exception):
    """A peer could not be set up; the message says why, with its log's tail."""


# ------------------------------------------------------------------ addresses and names

@dataclass
class Net:
    """The loopback addresses of one test run: 127.A.B.1 (the dead DNS server), .2 Prosody,
    .3 ejabberd, .4 Kurier, .5 a second Kurier, .6 a server without TLS, .9 nothing. A and B are random and checked free, so
    concurrent runs do not clash."""
    prefix: str

    @property
    def dns(self) -> str:
        return self.prefix + ".1"

    @property
    def prosody(self) -> str:
        return self.prefix + ".2"

    @property
    def ejabberd(self) -> str:
        return self.prefix + ".3"

    @property
    def kurier(self) -> str:
        return self.prefix + ".4"

    @property
    def kurier2(self) -> str:
        return self.prefix + ".5"

    @property
    def notls(self) -> str:
        """A fake s2s server that offers no TLS (test_kurier_s2s_refusals.py)."""
        return self.prefix + ".6"

    @property
    def unreachable(self) -> str:
        """Where nothing ever listens: connections are refused."""
        return self.prefix + ".9"

    def hosts(self) -> Dict[str, str]:
        return {"prosody.test": self.prosody, "ejabberd.test": self.ejabberd,
                "kurier.test": self.kurier, "other.test": self.kurier2}


def _port_free(addr: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((addr, port))
        except OSError:
            return False
    return True


def pick_net() -> Net:
    rng = random.SystemRandom()
    for _ in range(200):
        net = Net("127.%d.%d" % (rng.randint(16, 250), rng.randint(1, 250)))
        if all(_port_free(a, p) for a in (net.prosody, net.ejabberd, net.kurier, net.kurier2, net.notls,
                         net.unreachable)
               for p in (S2S_PORT, S2S_PORT + 1)):
            return net
    wild = [p for p in (S2S_PORT, S2S_PORT + 1) if not _port_free("0.0.0.0", p)]
    raise PeerError("no free loopback address for port 5269 found%s" % (
        "; something listens on 0.0.0.0:%s (a system Prosody or ejabberd service? stop it: "
        "service prosody stop; service ejabberd stop)" % wild if wild else ""))


def free_port(addr: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


def write_name_files(directory: Path, net: Net) -> (Path, Path):
    """The hosts and resolv.conf files the peers see in their namespaces."""
    hosts = directory / "hosts"
    hosts.write_text("127.0.0.1 localhost\n::1 localhost\n" + "".join(
        "%s %s\n" % (addr, name) for name, addr in net.hosts().items()))
    resolv = directory / "resolv.conf"
    resolv.write_text("nameserver %s\noptions timeout:1 attempts:1\n" % net.dns)
    return hosts, resolv


def in_namespace(hosts: Path, resolv: Path, argv: List[str]) -> List[str]:
    """argv run in a new mount namespace that sees hosts and resolv as /etc/hosts and
    /etc/resolv.conf (needs root; nothing outside the namespace changes)."""
    script = 'mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf ' \
             '&& shift 2 && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script,
            "sh", str(hosts), str(resolv)] + argv


# ------------------------------------------------------------------ processes

def _wait_tcp(addr: str, port: int, alive, deadline: float, what: str, tail) -> None:
    while True:
        if not alive():
            raise PeerError("%s exited during start-up:\n%s" % (what, tail()))
        try:
            socket.create_connection((addr, port), timeout=0.5).close()
            return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise PeerError("%s not listening on %s:%d after %.0f s:\n%s"
                            % (what, addr, port, START_TIMEOUT_S, tail()))
        time.sleep(0.1)


def _stop_group(proc: subprocess.Popen, grace: float) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:  # children left in the group (ejabberdctl's erl, beam.smp, epmd-less helpers)
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if proc.poll() is None:
        proc.wait(5)


def _tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "(no %s)" % path.name
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Peer:
    """One running server: the endpoint a slixmpp Client connects to (host/port/domain/ca,
    the same fields as tests/integration's Server) plus its log."""
    kind: str            # "prosody" | "ejabberd"
    domain: str
    host: str            # its loopback address (c2s and s2s)
    port: int            # c2s STARTTLS
    ca: str              # PEM the clients verify it with
    workdir: Path
    log_path: Path
    sasl_mech: Optional[str]
    proc: Optional[subprocess.Popen] = None
    users: List[str] = field(default_factory=list)

    @property
    def direct_port(self) -> int:  # not offered; Client only reads it for direct TLS
        return self.port

    def password(self, localpart: str) -> str:
        return password_for(localpart)

    def jid(self, localpart: str) -> str:
        return "%s@%s" % (localpart, self.domain)

    def take_user(self) -> str:
        """A user no other test has used in this run."""
        if not self.users:
            raise PeerError("%s: out of test users" % self.domain)
        return self.users.pop(0)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return _tail(self.log_path, lines)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None:
            _stop_group(self.proc, 15)


def _check_tool(name: str, package: str) -> None:
    if shutil.which(name) is None:
        raise PeerError("%s not found: install the Debian package %s (scripts/deps.sh test)"
                        % (name, package))


# ------------------------------------------------------------------ Prosody

PROSODY_CFG = """\
-- Prosody 0.12 peer of Kurier's interop tests (tests/interop/peers.py); generated.
daemonize = false
run_as_root = true
pidfile = "%(dir)s/prosody.pid"
data_path = "%(dir)s/data"
log = { debug = "%(dir)s/prosody.log" }
network_backend = "epoll"
interfaces = { "%(addr)s" }
local_interfaces = { "%(addr)s" }
c2s_ports = { %(c2s)d }
c2s_direct_tls_ports = { }
s2s_ports = { %(s2s)d }
s2s_interfaces = { "%(addr)s" }
s2s_direct_tls_ports = { }
http_ports = { }
https_ports = { }
c2s_require_encryption = true
s2s_require_encryption = true
s2s_secure_auth = %(secure)s
allow_unencrypted_plain_auth = false
authentication = "internal_hashed"
storage = "internal"
allow_registration = false
unbound = { hoststxt = true; resolvconf = true }
certificates = "%(dir)s/certs"
ssl = { certificate = "%(cert)s"; key = "%(key)s"; %(cafile)s }
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping"; %(dialback)s }
modules_disabled = { "offline"; "http"; "limits"; %(nodialback)s }

VirtualHost "%(domain)s"
    ssl = { certificate = "%(cert)s"; key = "%(key)s"; %(cafile)s }
"""


def start_prosody(workdir: Path, net: Net, names, cert, ca_file: Optional[Path],
                  dialback: bool, domain: str = "prosody.test") -> Peer:
    """ca_file: trust anchor for the other servers (None: system store only); dialback:
    load mod_dialback and accept it for peers whose certificate does not verify
    (s2s_secure_auth = false), else only SASL EXTERNAL with a valid certificate."""
    _check_tool("prosody", "prosody")
    workdir.mkdir()
    (workdir / "data").mkdir()
    (workdir / "certs").mkdir()
    c2s = free_port(net.prosody)
    cafile = 'cafile = "%s";' % ca_file if ca_file else ""
    cfg = workdir / "prosody.cfg.lua"
    cfg.write_text(PROSODY_CFG % {
        "dir": workdir, "addr": net.prosody, "c2s": c2s, "s2s": S2S_PORT,
        "secure": "false" if dialback else "true", "cert": cert.chain, "key": cert.key,
        "cafile": cafile, "domain": domain,
        "dialback": '"dialback";' if dialback else "",
        "nodialback": "" if dialback else '"dialback";'})
    peer = Peer(kind="prosody", domain=domain, host=net.prosody, port=c2s,
                ca=str(ca_file or cert.cert), workdir=workdir,
                log_path=workdir / "prosody.log", sasl_mech="SCRAM-SHA-1")
    for user in PEER_USERS:
        res = subprocess.run(["prosodyctl", "--config", str(cfg), "register", user, domain,
                              password_for(user)], capture_output=True, text=True,
                             timeout=60, cwd=workdir)
        if res.returncode != 0:
            raise PeerError("prosodyctl register %s failed (%d): %s%s"
                            % (user, res.returncode, res.stdout, res.stderr))
    peer.users = list(PEER_USERS)
    hosts, resolv = names
    console = open(workdir / "console.log", "wb")
    peer.proc = subprocess.Popen(
        in_namespace(hosts, resolv, ["prosody", "--config", str(cfg), "-F"]),
        stdin=subprocess.DEVNULL, stdout=console, stderr=console, cwd=workdir,
        start_new_session=True)
    console.close()
    tail = lambda: _tail(workdir / "console.log") + "\n" + peer.log_tail()
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        _wait_tcp(net.prosody, c2s, peer.alive, deadline, "prosody", tail)
        _wait_tcp(net.prosody, S2S_PORT, peer.alive, deadline, "prosody s2s", tail)
    except BaseException:
        peer.stop()
        raise
    return peer


# ------------------------------------------------------------------ ejabberd

EJABBERD_YML = """\
# ejabberd 23.01 peer of Kurier's interop tests (tests/interop/peers.py); generated.
loglevel: info
log_rotate_count: 0
hosts:
  - %(domain)s
certfiles:
  - "%(dir)s/server.pem"
%(ca_file)s
s2s_use_starttls: required
s2s_access: s2s
s2s_dns_timeout: 2
outgoing_s2s_families:
  - ipv4
listen:
  -
    port: %(c2s)d
    ip: "%(addr)s"
    module: ejabberd_c2s
    starttls_required: true
  -
    port: %(s2s)d
    ip: "%(addr)s"
    module: ejabberd_s2s_in
auth_method: internal
auth_password_format: scram
auth_scram_hash: sha256
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
  s2s:
    allow: all
api_permissions:
  "console commands":
    from:
      - ejabberd_ctl
    who: all
    what: "*"
modules:
  mod_roster: {}
  mod_disco: {}
  mod_ping: {}
  mod_admin_extra: {}
%(dialback)s
"""


class Ejabberd(Peer):
    pass


def _ejabberdctl(workdir: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ejabberdctl", "--config-dir", str(workdir), "--config", str(workdir / "ejabberd.yml"),
         "--ctl-config", str(workdir / "ejabberdctl.cfg"), "--spool", str(workdir / "spool"),
         "--logs", str(workdir / "logs")] + list(args),
        capture_output=True, text=True, timeout=timeout, cwd=workdir,
        stdin=subprocess.DEVNULL)


def start_ejabberd(workdir: Path, net: Net, names, cert, ca_file: Optional[Path],
                   dialback: bool, domain: str = "ejabberd.test") -> Peer:
    """As start_prosody: ca_file is ejabberd's ca_file; dialback loads mod_s2s_dialback
    (without it ejabberd authenticates s2s only with SASL EXTERNAL)."""
    _check_tool("ejabberdctl", "ejabberd")
    workdir.mkdir()
    (workdir / "spool").mkdir()
    (workdir / "logs").mkdir()
    c2s = free_port(net.ejabberd)
    dist = free_port("127.0.0.1")
    (workdir / "server.pem").write_bytes(cert.chain.read_bytes() + cert.key.read_bytes())
    (workdir / "server.pem").chmod(0o600)
    (workdir / "ejabberd.yml").write_text(EJABBERD_YML % {
        "dir": workdir, "domain": domain, "addr": net.ejabberd, "c2s": c2s, "s2s": S2S_PORT,
        "ca_file": 'ca_file: "%s"' % ca_file if ca_file else "",
        "dialback": "  mod_s2s_dialback: {}" if dialback else ""})
    # Node name, cookie and distribution port of our own (no epmd), on loopback; stay root
    # (ejabberdctl would otherwise su to the 'ejabberd' user, who cannot enter pytest's
    # private temporary directory).
    (workdir / "ejabberdctl.cfg").write_text(
        "ERLANG_NODE=kinterop%s@localhost\n"
        "ERL_DIST_PORT=%d\n"
        "INET_DIST_INTERFACE=127.0.0.1\n"
        "ERL_OPTIONS=\"-env ERL_CRASH_DUMP_BYTES 0 -setcookie %s\"\n"
        "EJABBERD_BYPASS_WARNINGS=true\n"
        "EXEC_CMD=as_current_user\n" % (secrets.token_hex(4), dist, secrets.token_hex(12)))
    (workdir / "inetrc").write_text('{lookup, ["file", "native"]}.\n')
    peer = Ejabberd(kind="ejabberd", domain=domain, host=net.ejabberd, port=c2s,
                    ca=str(ca_file or cert.cert), workdir=workdir,
                    log_path=workdir / "logs" / "ejabberd.log", sasl_mech="SCRAM-SHA-256")
    hosts, resolv = names
    console = open(workdir / "console.log", "wb")
    argv = ["ejabberdctl", "--config-dir", str(workdir), "--config",
            str(workdir / "ejabberd.yml"), "--ctl-config", str(workdir / "ejabberdctl.cfg"),
            "--spool", str(workdir / "spool"), "--logs", str(workdir / "logs"), "foreground"]
    peer.proc = subprocess.Popen(in_namespace(hosts, resolv, argv), stdin=subprocess.DEVNULL,
                                 stdout=console, stderr=console, cwd=workdir,
                                 start_new_session=True)
    console.close()
    tail = lambda: _tail(workdir / "console.log") + "\n" + peer.log_tail()
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        _wait_tcp(net.ejabberd, c2s, peer.alive, deadline, "ejabberd", tail)
        _wait_tcp(net.ejabberd, S2S_PORT, peer.alive, deadline, "ejabberd s2s", tail)
        res = _ejabberdctl(workdir, "started")
        if res.returncode != 0:
            raise PeerError("ejabberdctl started: %s%s\n%s" % (res.stdout, res.stderr, tail()))
        # All accounts in one call: XEP-0227 import, hashed into SCRAM by ejabberd.
        pie = workdir / "accounts.xml"
        pie.write_text("<?xml version='1.0' encoding='UTF-8'?>\n"
                       "<server-data xmlns='urn:xmpp:pie:0'><host jid='%s'>%s</host>"
                       "</server-data>\n" % (domain, "".join(
                           "<user name='%s' password='%s'/>" % (u, password_for(u))
                           for u in PEER_USERS)))
        res = _ejabberdctl(workdir, "import_piefxis", str(pie))
        if res.returncode != 0:
            raise PeerError("ejabberdctl import_piefxis: %s%s" % (res.stdout, res.stderr))
        res = _ejabberdctl(workdir, "registered_users", domain)
        got = set(res.stdout.split())
        if not set(PEER_USERS) <= got:
            raise PeerError("ejabberd accounts missing after import: have %s" % sorted(got))
    except BaseException:
        peer.stop()
        raise
    peer.users = list(PEER_USERS)
    return peer


def stop_ejabberd(peer: Peer) -> None:
    if peer.alive():
        _ejabberdctl(peer.workdir, "stop", timeout=30)
        try:
            peer.proc.wait(20)
        except subprocess.TimeoutExpired:
            pass
    peer.stop()
