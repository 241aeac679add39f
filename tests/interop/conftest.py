# SPDX-License-Identifier: AGPL-3.0-or-later
"""Harness of the interop tests: real Prosody and ejabberd peers, and a kurierd with s2s.

One run picks free loopback addresses (peers.Net: 127.A.B.2 Prosody for prosody.test,
.3 ejabberd for ejabberd.test, .4 Kurier for kurier.test), writes the hosts file the peers
resolve with, and makes a test CA. Tests then run in two "worlds", one at a time, each with
its own peers (started once per world, stopped after its last test):

  ca        every server has a certificate from the test CA and trusts that CA; the peers
            load no dialback module (Prosody: s2s_secure_auth = true), so s2s can only
            authenticate with SASL EXTERNAL (RFC 6120 §6.4, XEP-0178);
  dialback  every server has a self-signed certificate nobody trusts; peers accept Server
            Dialback (XEP-0220) over TLS (Prosody: s2s_secure_auth = false + mod_dialback,
            ejabberd: mod_s2s_dialback), Kurier runs with require_valid_certificates false.

Needs root (mount namespaces, see peers.py) and the Debian packages prosody, lua-unbound
and ejabberd (scripts/deps.sh test). Without root the whole directory is skipped with that
reason; a peer that cannot start is an error of the tests that need it, never a skip.

The Kurier tests (test_kurier_s2s.py) use the `kurier` fixture: kurierd from $KURIERD
(default build-test/kurierd) started with tests/integration/kurier_server.py on 127.A.B.4,
with the s2s section of the shared spec. If that kurierd does not know the s2s section (a
build without s2s: kurierctl says unknown key "s2s"), they are skipped saying so; with s2s
support they run and fail on their own.
"""

from __future__ import annotations

import os
import subprocess
import time
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import peers  # noqa: E402
import pki  # noqa: E402
from kurier_server import (_add_users, _launch, _stop,  # noqa: E402
                           prepare_server)

MODES = ["ca", "dialback"]
KURIER_CONNECT_TIMEOUT_S = peers.KURIER_CONNECT_TIMEOUT_S
# kurier.test's users, one fresh per test and peer (password: peers.password_for)
KURIER_USERS = ["user%d" % i for i in range(24)]
DOMAINS = ["prosody.test", "ejabberd.test", "kurier.test"]


@dataclass
class Env:
    net: peers.Net
    dir: Path
    names: tuple     # (hosts file, resolv.conf) seen by the peers
    ca: pki.TestCA


@dataclass
class World:
    mode: str                       # "ca" | "dialback"
    env: Env
    certs: Dict[str, pki.CertFiles]
    ca_file: Optional[Path]         # what every server trusts besides the system (ca mode)
    prosody: Optional[peers.Peer] = None
    ejabberd: Optional[peers.Peer] = None
    errors: Dict[str, str] = field(default_factory=dict)

    def peer(self, kind: str) -> peers.Peer:
        p = getattr(self, kind)
        if p is None:
            pytest.fail("%s peer not running in the %s world: %s"
                        % (kind, self.mode, self.errors.get(kind)), pytrace=False)
        if not p.alive():
            pytest.fail("%s peer died; log tail:\n%s" % (kind, p.log_tail()), pytrace=False)
        return p


@pytest.fixture(scope="session")
def env(tmp_path_factory) -> Env:
    if os.geteuid() != 0:
        pytest.skip("interop tests need root (a mount namespace per peer for its "
                    "/etc/hosts); run them as root, e.g. in CI")
    d = tmp_path_factory.mktemp("interop")
    try:
        net = peers.pick_net()
    except peers.PeerError as e:
        pytest.fail(str(e), pytrace=False)
    return Env(net=net, dir=d, names=peers.write_name_files(d, net), ca=pki.TestCA(d))


@pytest.fixture(scope="session", params=MODES)
def world(request, env, tmp_path_factory):
    mode = request.param
    d = tmp_path_factory.mktemp("world-" + mode)
    if mode == "ca":
        certs = {dom: env.ca.issue(dom) for dom in DOMAINS}
        ca_file = env.ca.cert
    else:
        certs = {dom: pki.self_signed(d, dom) for dom in DOMAINS}
        ca_file = None
    w = World(mode=mode, env=env, certs=certs, ca_file=ca_file)
    dialback = mode == "dialback"
    try:
        w.prosody = peers.start_prosody(d / "prosody", env.net, env.names,
                                        certs["prosody.test"], ca_file, dialback)
    except peers.PeerError as e:
        w.errors["prosody"] = str(e)
    try:
        w.ejabberd = peers.start_ejabberd(d / "ejabberd", env.net, env.names,
                                          certs["ejabberd.test"], ca_file, dialback)
    except peers.PeerError as e:
        w.errors["ejabberd"] = str(e)
    yield w
    if w.ejabberd is not None:
        peers.stop_ejabberd(w.ejabberd)
    if w.prosody is not None:
        w.prosody.stop()


class KurierPeer:
    """A kurierd of tests/integration's Server plus a pool of fresh users, like a Peer."""

    def __init__(self, srv, users: List[str]):
        self.srv = srv
        self.users = list(users)
        self.sasl_mech = "SCRAM-SHA-256"

    def __getattr__(self, name):
        return getattr(self.srv, name)

    def take_user(self) -> str:
        if not self.users:
            raise peers.PeerError("kurier.test: out of test users (KURIER_USERS)")
        return self.users.pop(0)

    def log_text(self) -> str:
        return self.srv.log_path.read_text(errors="replace") if self.srv.log_path.exists() \
            else ""


def kurier_s2s_config(net: peers.Net, mode: str, ca_file: Optional[Path]) -> str:
    """The s2s section of the shared spec (notes/s2s-spec.md) for this world."""
    return ("s2s:\n"
            "  enabled: true\n"
            "  starttls: [\"%(k)s:5269\"]\n"
            "  direct_tls: [\"%(k)s:5270\"]\n"
            "  hosts:\n"
            "    prosody.test: \"%(p)s:5269\"\n"
            "    ejabberd.test: \"%(e)s:5269\"\n"
            "    notls.test: \"%(n)s:5269\"\n"
            "    unreachable.test: \"%(u)s:5269\"\n"
            "  require_valid_certificates: %(req)s\n"
            "  ca_file: \"%(ca)s\"\n"
            "  connect_timeout_s: %(timeout)d\n"
            % {"k": net.kurier, "p": net.prosody, "e": net.ejabberd, "n": net.notls,
               "u": net.unreachable,
               "req": "true" if mode == "ca" else "false", "ca": ca_file or "",
               "timeout": KURIER_CONNECT_TIMEOUT_S})


@pytest.fixture(scope="session")
def kurier(world, tmp_path_factory):
    d = tmp_path_factory.mktemp("kurier-" + world.mode)
    cert = world.certs["kurier.test"]
    srv = prepare_server(d, kurier_s2s_config(world.env.net, world.mode, world.ca_file),
                         accounts=[], domain="kurier.test", host=world.env.net.kurier,
                         tls=(cert.chain, cert.key, world.ca_file or cert.cert))
    # A kurierd without s2s refuses the section as an unknown key: "not implemented yet", a
    # skip. Any other refusal (a key or value inside the section) is a failure.
    res = subprocess.run([str(srv.kurierctl), "-c", str(srv.config_path), "list"],
                         capture_output=True, text=True, timeout=60)
    if res.returncode == 2 and 'unknown key "s2s"' in (res.stdout + res.stderr):
        pytest.skip("%s has no s2s support yet: kurierctl refuses the s2s config section "
                    "(%s)" % (srv.kurierd, (res.stdout + res.stderr).strip()))
    if res.returncode != 0:
        pytest.fail("kurierctl -c %s list failed (%d): %s%s" % (
            srv.config_path, res.returncode, res.stdout, res.stderr), pytrace=False)
    _add_users(srv.kurierctl, srv.config_path, KURIER_USERS, "kurier.test")
    _launch(srv)
    try:
        peers._wait_tcp(world.env.net.kurier, peers.S2S_PORT, lambda: srv.proc.poll() is None,
                        time.monotonic() + 20, "kurierd s2s listener",
                        srv.log_tail)
    except peers.PeerError as e:
        _stop(srv)
        pytest.fail(str(e), pytrace=False)
    yield KurierPeer(srv, KURIER_USERS)
    _stop(srv)
