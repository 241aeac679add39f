# SPDX-License-Identifier: AGPL-3.0-or-later
"""Certificates for the interop tests (python3-cryptography).

Two kinds, one per authentication path of RFC 6120 / XEP-0220:
  - TestCA(dir) + ca.issue(domain): a throw-away test CA and leaf certificates it signs,
    with the domain as SAN DNS-ID (RFC 6125) - what the peers and Kurier all trust, so s2s
    authenticates with SASL EXTERNAL;
  - self_signed(domain): a certificate nobody trusts, so the servers must fall back to
    Server Dialback.
Every key is ECDSA P-256; files are PEM, written into the given directory.

No XmppAddr (id-on-xmppAddr otherName, RFC 6120 §13.7.1.4) by default: ejabberd 23.01's
xmpp_stream_pkix:get_cert_domains crashes on it (badarg in '++' on a binary) when it
checks a peer certificate for SASL EXTERNAL, closing the stream. xmpp_addr=True adds one.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

# id-on-xmppAddr (RFC 6120 §13.7.1.4): otherName of SubjectAltName, a UTF8String
XMPP_ADDR_OID = ObjectIdentifier("1.3.6.1.5.5.7.8.5")


@dataclass
class CertFiles:
    cert: Path      # leaf certificate (PEM)
    key: Path       # its private key (PEM, PKCS#8, unencrypted)
    chain: Path     # leaf + issuing CA (what a server presents); == cert when self-signed


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _utf8_der(text: str) -> bytes:
    raw = text.encode()
    assert len(raw) < 128
    return bytes([0x0C, len(raw)]) + raw


def _leaf_builder(domain: str, key, issuer_name, now, xmpp_addr: bool = False):
    names = [x509.DNSName(domain)]
    if xmpp_addr:
        names.append(x509.OtherName(XMPP_ADDR_OID, _utf8_der(domain)))
    san = x509.SubjectAlternativeName(names)
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)]))
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=90))
            .add_extension(san, critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH,
                                                  x509.ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False))


class TestCA:
    """A CA whose certificate is `self.cert` (PEM file); issue() signs server certificates."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path):
        self.dir = directory
        self.key = _key()
        now = datetime.datetime.now(datetime.timezone.utc)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Kurier interop test CA")])
        self.name = name
        self.certificate = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=90))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256()))
        self.cert = directory / "ca.pem"
        self.cert.write_bytes(_pem(self.certificate))

    def issue(self, domain: str, xmpp_addr: bool = False) -> CertFiles:
        key = _key()
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (_leaf_builder(domain, key, self.name, now, xmpp_addr)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.key.public_key()), critical=False)
                .sign(self.key, hashes.SHA256()))
        return _write(self.dir, "ca-" + domain, key, cert, extra=_pem(self.certificate))


def _write(directory: Path, stem: str, key, cert, extra: bytes = b"") -> CertFiles:
    files = CertFiles(cert=directory / (stem + ".crt"), key=directory / (stem + ".key"),
                      chain=directory / (stem + ".chain.pem"))
    files.cert.write_bytes(_pem(cert))
    _write_key(key, files.key)
    files.chain.write_bytes(_pem(cert) + extra)
    return files


def self_signed(directory: Path, domain: str) -> CertFiles:
    """A certificate for domain signed by its own key: valid in form, trusted by nobody."""
    key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (_leaf_builder(domain, key, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                                     domain)]), now)
            .sign(key, hashes.SHA256()))
    return _write(directory, "self-" + domain, key, cert)
