# SPDX-License-Identifier: AGPL-3.0-or-later
"""Finding remote servers in DNS (RFC 6120 §3.2, XEP-0368, DNSSEC and DANE per RFC 7673).

kurier.test (127.0.0.2) has no s2s.hosts entry for its peer: it asks DNS, through
s2s.resolver_config, which gives libunbound local data (or a DNSSEC-signed zone as an
auth-zone) for the peer's domain, so no packet leaves the machine. The peer is a second
kurierd on 127.0.0.3 that knows kurier.test through its static map. Covered:
  - _xmpp-server SRV to a target host and port (STARTTLS);
  - _xmpps-server SRV: direct TLS from the first byte (XEP-0368);
  - a first target that refuses connections: the next one is used (RFC 6120 §3.2.1);
  - no SRV records: the domain's own A record on port 5269;
  - a domain whose SRV target is "." (no service) bounces <remote-server-not-found/>;
  - DNSSEC-signed zone with a DANE-EE TLSA record: a self-signed peer is accepted although
    require_valid_certificates is true; with a TLSA record that does not match, refused;
  - a broken resolver file or trust anchor stops kurierd at start with one clear line.
The signed zone is made per test with ldns-keygen and ldns-signzone (Debian: ldnsutils).
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kurier_server import _free_port, prepare_server, start_server, stop_server
from test_s2s import (ACCOUNTS, KURIER, OTHER, _bounce, make_ca, make_leaf, s2s_config,
                      wait_log)
from xmpp_slix import Client, run

pytestmark = pytest.mark.kurier_only


def resolver_file(tmp: Path, lines) -> Path:
    path = tmp / "resolver.conf"
    path.write_text("server:\n" + "".join("  %s\n" % line for line in lines))
    return path


def start_peer(tmp: Path, domain: str, s2s_port: int, kurier_s2s_port: int,
               direct_port: int = 0, tls=None, require_valid: bool = False, ca_file: str = ""):
    """The remote server: serves `domain` on 127.0.0.3, reaches kurier.test by its map."""
    d = tmp / domain
    d.mkdir()
    cfg = s2s_config(s2s_port, {KURIER[0]: "%s:%d" % (KURIER[1], kurier_s2s_port)},
                     require_valid=require_valid, ca_file=ca_file) % (
        "%s:%d" % (OTHER[1], s2s_port))
    if direct_port:
        cfg = cfg.replace("direct_tls: []", "direct_tls: [\"%s:%d\"]" % (OTHER[1], direct_port))
    return start_server(d, cfg, accounts=ACCOUNTS, domain=domain, host=OTHER[1],
                        tls=tls or make_leaf(tmp, domain))


def start_kurier(tmp: Path, s2s_port: int, resolver_conf: Path, require_valid: bool = False,
                 trust_anchor: str = "", tls=None, connect_timeout: int = 10):
    """kurier.test with no static map: every remote domain goes through DNS."""
    d = tmp / KURIER[0]
    d.mkdir()
    cfg = s2s_config(s2s_port, {}, require_valid=require_valid,
                     connect_timeout=connect_timeout) % ("%s:%d" % (KURIER[1], s2s_port))
    cfg += "  resolver_config: \"%s\"\n" % resolver_conf
    cfg += "  dnssec_trust_anchor: \"%s\"\n" % trust_anchor
    return start_server(d, cfg, accounts=ACCOUNTS, domain=KURIER[0], host=KURIER[1],
                        tls=tls or make_leaf(tmp, KURIER[0]))


def send_across(k, domain: str, body: str, peer) -> None:
    """alice@kurier.test -> bob@domain, received by bob on the peer."""
    async def go():
        a = Client(k, "alice", "dns")
        b = Client(peer, "bob", "dns")
        assert await a.start() and await b.start()
        try:
            a.send_message(mto="bob@%s" % domain, mbody=body, mtype="chat")
            msg = await b.message_with_body(body, timeout=20)
            assert msg["from"].bare == "alice@kurier.test"
        finally:
            await a.stop()
            await b.stop()
    run(go(), timeout=45)


def ports(n: int, host: str = OTHER[1]):
    out = []
    while len(out) < n:
        p = _free_port(host)
        if p not in out:
            out.append(p)
    return out


def srv(service: str, prio: int, port: int, target: str) -> str:
    return "local-data: \"_%s._tcp.other.test. 60 IN SRV %d 0 %d %s.\"" % (service, prio, port,
                                                                         target)


def a_record(name: str) -> str:
    return "local-data: \"%s. 60 IN A %s\"" % (name, OTHER[1])


def delivered_through_dns(tmp: Path, records, o_port: int, body: str, log_patterns,
                          direct_port: int = 0) -> None:
    """other.test published by `records` (local data for libunbound); its server listens
    on o_port (STARTTLS) and direct_port (direct TLS, when not 0). A message from kurier.test
    must arrive, and kurier.test's log must show each of log_patterns."""
    k_port = _free_port(KURIER[1])
    conf = resolver_file(tmp, ["local-zone: \"other.test.\" static"] + list(records))
    peer = start_peer(tmp, OTHER[0], o_port, k_port, direct_port=direct_port)
    k = start_kurier(tmp, k_port, conf)
    try:
        send_across(k, OTHER[0], body, peer)
        for pattern in log_patterns:
            wait_log(k, pattern)
    finally:
        stop_server(k)
        stop_server(peer)


def test_srv_record_gives_host_and_port(tmp_path):
    (o_port,) = ports(1)
    delivered_through_dns(
        tmp_path, [srv("xmpp-server", 0, o_port, "xmpp.other.test"), a_record("xmpp.other.test")],
        o_port, "found through SRV", [r"connecting to other\.test: xmpp\.other\.test:%d" % o_port])


def test_xmpps_srv_record_means_direct_tls(tmp_path):
    # Both services are published; the direct TLS one has the better priority.
    o_port, o_direct = ports(2)
    delivered_through_dns(
        tmp_path, [srv("xmpps-server", 0, o_direct, "xmpp.other.test"),
                   srv("xmpp-server", 10, o_port, "xmpp.other.test"),
                   a_record("xmpp.other.test")],
        o_port, "over direct TLS",
        [r"connected to other\.test \(xmpp\.other\.test:%d, direct TLS\)" % o_direct],
        direct_port=o_direct)


def test_next_target_after_a_refused_connection(tmp_path):
    # Priority 0 is tried first and refuses (nothing listens on `dead`).
    o_port, dead = ports(2)
    delivered_through_dns(
        tmp_path, [srv("xmpp-server", 0, dead, "dead.other.test"),
                   srv("xmpp-server", 5, o_port, "xmpp.other.test"),
                   a_record("dead.other.test"), a_record("xmpp.other.test")],
        o_port, "second target",
        [r"cannot connect to other\.test \(dead\.other\.test:%d\)" % dead,
         r"connecting to other\.test: xmpp\.other\.test:%d" % o_port])


def test_no_srv_records_fall_back_to_the_domain_on_5269(tmp_path):
    with socket.socket() as s:
        try:
            s.bind((OTHER[1], 5269))
        except OSError:
            pytest.skip("%s:5269 is in use on this machine" % OTHER[1])
    delivered_through_dns(tmp_path, [a_record("other.test")], 5269, "plain A record",
                          [r"connecting to other\.test: other\.test:5269"])


def test_srv_dot_target_means_no_service(tmp_path):
    k_port = _free_port(KURIER[1])
    conf = resolver_file(tmp_path, [
        "local-zone: \"other.test.\" static",
        "local-data: \"_xmpp-server._tcp.other.test. 60 IN SRV 0 0 0 .\"",
        "local-data: \"other.test. 60 IN A %s\"" % OTHER[1],
    ])
    k = start_kurier(tmp_path, k_port, conf)
    try:
        cond, _, took = _bounce(k, "someone@other.test")
        assert cond == "remote-server-not-found"
        assert took < 5
        wait_log(k, r"cannot find the server of other\.test: ")
    finally:
        stop_server(k)


# ---- DNSSEC and DANE ----------------------------------------------------------------------

def spki_sha256(cert_path: str) -> str:
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def signed_zone(tmp: Path, domain: str, s2s_port: int, tlsa_hex: str):
    """A DNSSEC-signed zone for domain (SRV, A, TLSA 3 1 1 tlsa_hex) and its DS record;
    returns (resolver file, trust anchor file)."""
    if not shutil.which("ldns-signzone"):
        pytest.fail("ldns-signzone is missing: apt-get install ldnsutils", pytrace=False)
    z = tmp / "zone"
    z.mkdir()
    zone = z / ("%s.zone" % domain)
    zone.write_text(
        "$ORIGIN %(d)s.\n$TTL 60\n"
        "@ IN SOA ns.%(d)s. admin.%(d)s. 1 3600 600 86400 60\n"
        "@ IN NS ns.%(d)s.\n"
        "ns IN A %(ip)s\n"
        "_xmpp-server._tcp IN SRV 0 0 %(port)d xmpp.%(d)s.\n"
        "xmpp IN A %(ip)s\n"
        "_%(port)d._tcp.xmpp IN TLSA 3 1 1 %(tlsa)s\n"
        % {"d": domain, "ip": OTHER[1], "port": s2s_port, "tlsa": tlsa_hex})
    key = subprocess.run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k", domain], cwd=z,
                         check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run(["ldns-signzone", "-f", str(zone) + ".signed", str(zone), str(z / key)],
                   check=True, capture_output=True, timeout=30)
    anchor = z / (key + ".ds")
    conf = resolver_file(tmp, [
        "local-zone: \"test.\" nodefault",
        "auth-zone:",
        "  name: \"%s.\"" % domain,
        "  zonefile: \"%s.signed\"" % zone,
        "  for-upstream: yes",
        "  for-downstream: no",
        "  fallback-enabled: no",
    ])
    # auth-zone: is its own clause, not under server: (resolver_file indents all lines).
    # The stub zone keeps the zone away from the system's forwarders, which would otherwise
    # be asked for its DNSKEY: with it, libunbound's iterator answers from the auth-zone.
    text = conf.read_text().replace("  auth-zone:", "auth-zone:")
    text += "stub-zone:\n  name: \"%s.\"\n  stub-addr: 127.0.0.1@9\n" % domain
    conf.write_text(text)
    return conf, anchor


def _dane_setup(tmp: Path, matching: bool):
    """kurier.test (require_valid_certificates: true, CA-signed so that the peer accepts its
    SASL EXTERNAL) and dane.test (self-signed, published in DANE)."""
    domain = "dane.test"
    k_port = _free_port(KURIER[1])
    (o_port,) = ports(1)
    ca = make_ca(tmp)
    k_tls = make_leaf(tmp, KURIER[0], ca)
    peer_tls = make_leaf(tmp, domain)
    digest = spki_sha256(peer_tls[0])
    if not matching:
        digest = digest[:-2] + ("00" if digest[-2:] != "00" else "11")
    conf, anchor = signed_zone(tmp, domain, o_port, digest)
    peer = start_peer(tmp, domain, o_port, k_port, tls=peer_tls, require_valid=True,
                      ca_file=str(tmp / "ca.pem"))
    k = start_kurier(tmp, k_port, conf, require_valid=True, trust_anchor=str(anchor), tls=k_tls)
    return k, peer


def test_dane_ee_record_authenticates_a_self_signed_peer(tmp_path):
    k, peer = _dane_setup(tmp_path, matching=True)
    try:
        send_across(k, "dane.test", "pinned by DANE", peer)
        wait_log(k, r"certificate of dane\.test matches its DANE-EE record")
        wait_log(k, r"dane\.test ready \(SASL EXTERNAL\)")
    finally:
        stop_server(k)
        stop_server(peer)


def test_dane_mismatch_is_refused(tmp_path):
    k, peer = _dane_setup(tmp_path, matching=False)
    try:
        cond, _, took = _bounce(k, "bob@dane.test")
        assert cond == "remote-server-not-found"
        assert took < 10
        wait_log(k, r"certificate of dane\.test refused by DANE")
    finally:
        stop_server(k)
        stop_server(peer)


# ---- configuration errors -------------------------------------------------------------------

@pytest.mark.parametrize("what", ["resolver_config", "dnssec_trust_anchor"])
def test_broken_resolver_settings_stop_start_up(tmp_path, what):
    bad = tmp_path / "broken"
    bad.write_text("this is not: [valid\n")
    k_port = _free_port(KURIER[1])
    cfg = s2s_config(k_port, {}, require_valid=False) % ("%s:%d" % (KURIER[1], k_port))
    cfg += "  %s: \"%s\"\n" % (what, bad)
    srv = prepare_server(tmp_path, cfg, accounts=["alice"], domain=KURIER[0], host=KURIER[1])
    res = subprocess.run([str(srv.kurierd), "-c", str(srv.config_path)], capture_output=True,
                         text=True, timeout=30)
    assert res.returncode != 0
    out = res.stdout + res.stderr + (srv.log_path.read_text() if srv.log_path.exists() else "")
    assert "s2s: DNS resolver: " in out, out
