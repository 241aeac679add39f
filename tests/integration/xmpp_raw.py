# SPDX-License-Identifier: AGPL-3.0-or-later
"""A small, deliberately low-level XMPP client for protocol tests.

slixmpp hides the wire: it cannot send malformed XML, spoofed attributes or
channel-binding data of our choosing, and it only knows tls-unique.  This
module speaks RFC 6120 by hand over a plain socket, with TLS done by pyOpenSSL
through memory BIOs (so the socket keeps a timeout and we can compute
tls-exporter, RFC 9266, and tls-server-end-point, RFC 5929 §4.1).

Every blocking operation has a deadline: a server that stops answering makes a
test fail with TimeoutError instead of hanging it.

What it implements: stream open/restart and features (RFC 6120 §4), STARTTLS
(§5) and direct TLS (XEP-0368), SASL PLAIN (RFC 4616) and SCRAM-SHA-1/-256
with and without -PLUS (RFC 5802, RFC 7677; bindings tls-unique, tls-exporter,
tls-server-end-point), resource binding (§7), and helpers to read stanzas,
stanza errors (§8.3) and stream errors (§4.9).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import select
import socket
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Callable, List, Optional
from xml.sax.saxutils import escape, quoteattr

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from OpenSSL import SSL

NS_STREAM = "http://etherx.jabber.org/streams"
NS_CLIENT = "jabber:client"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_STANZA_ERRORS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_SASL_CB = "urn:xmpp:sasl-cb:0"
NS_PING = "urn:xmpp:ping"

DEFAULT_TIMEOUT = 5.0


def q(ns: str, name: str) -> str:
    """ElementTree's qualified name '{ns}name'."""
    return "{%s}%s" % (ns, name)


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def namespace(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


class StreamClosed(Exception):
    """The peer closed the TCP/TLS connection, or ended the stream."""


class StreamEnded(StreamClosed):
    """The peer sent its closing </stream:stream> tag."""


class ServerStreamError(Exception):
    """A <stream:error/> arrived where a normal element was expected."""

    def __init__(self, condition: str, element: ET.Element):
        super().__init__("stream error <%s/>" % condition)
        self.condition = condition
        self.element = element


def stream_error_condition(el: ET.Element) -> Optional[str]:
    for child in el:
        if namespace(child.tag) == NS_STREAM_ERRORS and local(child.tag) != "text":
            return local(child.tag)
    return None


def stanza_error_condition(el: ET.Element) -> Optional[str]:
    """Defined condition of a stanza of type='error' (RFC 6120 §8.3.3), else None."""
    if el.get("type") != "error":
        return None
    err = el.find(q(NS_CLIENT, "error"))
    if err is None:
        return None
    for child in err:
        if namespace(child.tag) == NS_STANZA_ERRORS and local(child.tag) != "text":
            return local(child.tag)
    return None


def sasl_failure_condition(el: ET.Element) -> Optional[str]:
    if el.tag != q(NS_SASL, "failure"):
        return None
    for child in el:
        if namespace(child.tag) == NS_SASL and local(child.tag) != "text":
            return local(child.tag)
    return ""


def new_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass
class SaslResult:
    success: bool
    condition: Optional[str]  # SASL failure condition when not successful
    element: ET.Element


def _saslname(name: str) -> str:
    return name.replace("=", "=3D").replace(",", "=2C")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b))


class RawClient:
    """One client connection. Not thread-safe; use one per connection."""

    def __init__(self, host: str, port: int, domain: str, ca_file: str,
                 timeout: float = DEFAULT_TIMEOUT):
        self.host = host
        self.port = port
        self.domain = domain
        self.ca_file = ca_file
        self.timeout = timeout
        self.sock: Optional[socket.socket] = None
        self.tls: Optional[SSL.Connection] = None
        self.jid: Optional[str] = None
        self.stream_header: Optional[ET.Element] = None
        self.features: Optional[ET.Element] = None
        self.stream_ended = False
        self.eof = False
        self._parser: Optional[ET.XMLPullParser] = None
        self._depth = 0
        self._root: Optional[ET.Element] = None
        self._ready: List[ET.Element] = []   # complete top-level elements, oldest first
        self._stash: List[ET.Element] = []   # read but not yet wanted by wait_for

    # ------------------------------------------------------------ transport
    def connect(self, direct_tls: bool = False, **tls_options) -> "RawClient":
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if direct_tls:
            self.start_tls_layer(alpn=b"xmpp-client", **tls_options)
        return self

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _deadline(self, timeout: Optional[float]) -> float:
        return time.monotonic() + (self.timeout if timeout is None else timeout)

    def _sock_recv(self, deadline: float) -> bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no data from the server in time")
        self.sock.settimeout(remaining)
        try:
            return self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no data from the server in time") from None
        except (ConnectionResetError, BrokenPipeError):
            return b""

    def _tls_flush(self) -> None:
        while True:
            try:
                data = self.tls.bio_read(65536)
            except SSL.WantReadError:
                return
            if not data:
                return
            self.sock.settimeout(self.timeout)
            self.sock.sendall(data)

    def start_tls_layer(self, min_version: int = SSL.TLS1_2_VERSION,
                        max_version: Optional[int] = None, ciphers: Optional[bytes] = None,
                        alpn: Optional[bytes] = None) -> None:
        """TLS handshake on the connected socket, verifying the server against ca_file."""
        ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        ctx.set_min_proto_version(min_version)
        if max_version is not None:
            ctx.set_max_proto_version(max_version)
        if ciphers is not None:
            ctx.set_cipher_list(ciphers)
        ctx.load_verify_locations(self.ca_file)
        ctx.set_verify(SSL.VERIFY_PEER, lambda conn, cert, errno, depth, ok: bool(ok))
        if alpn is not None:
            ctx.set_alpn_protos([alpn])
        conn = SSL.Connection(ctx, None)
        conn.set_tlsext_host_name(self.domain.encode("idna"))
        conn.set_connect_state()
        self.tls = conn
        deadline = self._deadline(None)
        while True:
            try:
                conn.do_handshake()
                break
            except SSL.WantReadError:
                self._tls_flush()
                data = self._sock_recv(deadline)
                if not data:
                    raise StreamClosed("connection closed during the TLS handshake")
                conn.bio_write(data)
        self._tls_flush()
        self._check_server_name()

    def _check_server_name(self) -> None:
        cert = self.tls.get_peer_certificate().to_cryptography()
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            names = san.value.get_values_for_type(x509.DNSName)
        except x509.ExtensionNotFound:
            names = []
        if self.domain not in names:
            raise AssertionError("server certificate does not name %r (SAN %r)"
                                 % (self.domain, names))

    @property
    def tls_version(self) -> Optional[str]:
        return self.tls.get_protocol_version_name() if self.tls else None

    def send(self, data) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        if self.tls is None:
            self.sock.settimeout(self.timeout)
            self.sock.sendall(data)
            return
        view = memoryview(data)
        while view:
            n = self.tls.send(view[:16384].tobytes())
            view = view[n:]
            self._tls_flush()

    def data_waiting(self) -> bool:
        """True if the server has sent something we have not read (no blocking)."""
        if self._ready or self._stash:
            return True
        if self.tls is not None and self.tls.pending():
            return True
        r, _, _ = select.select([self.sock], [], [], 0)
        return bool(r)

    def _read_some(self, deadline: float) -> bytes:
        if self.tls is None:
            return self._sock_recv(deadline)
        while True:
            try:
                return self.tls.recv(65536)
            except SSL.WantReadError:
                self._tls_flush()
                data = self._sock_recv(deadline)
                if not data:
                    return b""
                self.tls.bio_write(data)
            except (SSL.ZeroReturnError, SSL.SysCallError):
                return b""

    # ------------------------------------------------------------ XML input
    def _reset_parser(self) -> None:
        self._parser = ET.XMLPullParser(("start", "end"))
        self._depth = 0
        self._root = None
        self.stream_header = None
        self.stream_ended = False

    def _feed(self, data: bytes) -> None:
        self._parser.feed(data)
        for event, el in self._parser.read_events():
            if event == "start":
                self._depth += 1
                if self._depth == 1:
                    self._root = el
                    self.stream_header = el
            else:
                if self._depth == 2:
                    self._ready.append(el)
                    self._root.remove(el)
                elif self._depth == 1:
                    self.stream_ended = True
                self._depth -= 1

    def _pump(self, deadline: float) -> None:
        data = self._read_some(deadline)
        if not data:
            self.eof = True
            raise StreamClosed("server closed the connection")
        self._feed(data)

    def read_header(self, timeout: Optional[float] = None) -> ET.Element:
        deadline = self._deadline(timeout)
        while self.stream_header is None:
            self._pump(deadline)
        return self.stream_header

    def next_element(self, timeout: Optional[float] = None) -> ET.Element:
        """Next top-level element of the stream, stream errors included."""
        if self._stash:
            return self._stash.pop(0)
        deadline = self._deadline(timeout)
        while not self._ready:
            if self.stream_ended:
                raise StreamEnded("server closed the stream")
            self._pump(deadline)
        return self._ready.pop(0)

    def expect(self, timeout: Optional[float] = None) -> ET.Element:
        """Next element; a stream error raises ServerStreamError."""
        el = self.next_element(timeout)
        if el.tag == q(NS_STREAM, "error"):
            raise ServerStreamError(stream_error_condition(el) or "?", el)
        return el

    def wait_for(self, pred: Callable[[ET.Element], bool],
                 timeout: Optional[float] = None) -> ET.Element:
        """First element matching pred; others are kept for later reads."""
        deadline = self._deadline(timeout)
        skipped: List[ET.Element] = []
        try:
            for el in list(self._stash):
                if pred(el):
                    self._stash.remove(el)
                    return el
            skipped, self._stash = self._stash, []
            while True:
                while not self._ready:
                    if self.stream_ended:
                        raise StreamEnded("server closed the stream")
                    self._pump(deadline)
                el = self._ready.pop(0)
                if el.tag == q(NS_STREAM, "error"):
                    raise ServerStreamError(stream_error_condition(el) or "?", el)
                if pred(el):
                    return el
                skipped.append(el)
        finally:
            self._stash = skipped + self._stash

    def expect_stream_error(self, timeout: Optional[float] = None) -> str:
        """Read until a <stream:error/>; returns its condition."""
        deadline = self._deadline(timeout)
        while True:
            if not self._ready and not self._stash and self.stream_ended:
                raise AssertionError("stream ended without a stream error")
            try:
                el = self.next_element(max(0.0, deadline - time.monotonic()))
            except StreamClosed:
                raise AssertionError("connection closed without a stream error") from None
            if el.tag == q(NS_STREAM, "error"):
                return stream_error_condition(el) or "?"

    def expect_closed(self, timeout: Optional[float] = None) -> None:
        """The server must end the stream or drop the connection before the deadline."""
        deadline = self._deadline(timeout)
        while not (self.stream_ended or self.eof):
            try:
                self._pump(deadline)
            except StreamClosed:
                return

    def expect_nothing(self, pred: Callable[[ET.Element], bool], seconds: float) -> None:
        """Assert no element matching pred arrives within `seconds`."""
        try:
            el = self.wait_for(pred, timeout=seconds)
        except TimeoutError:
            return
        raise AssertionError("unexpected element: %s" % ET.tostring(el, encoding="unicode"))

    # ------------------------------------------------------------ stream
    def open_stream(self, prolog: str = "<?xml version='1.0'?>") -> ET.Element:
        """Send a stream header, return the server's features (RFC 6120 §4.2, §4.3.2)."""
        self._reset_parser()
        self.send(prolog + self.stream_header_xml())
        self.read_header()
        if self.stream_header.tag != q(NS_STREAM, "stream"):
            raise AssertionError("bad stream header %r" % self.stream_header.tag)
        el = self.expect()
        if el.tag != q(NS_STREAM, "features"):
            raise AssertionError("expected stream features, got %s"
                                 % ET.tostring(el, encoding="unicode"))
        self.features = el
        return el

    def stream_header_xml(self) -> str:
        return ("<stream:stream xmlns='jabber:client' "
                "xmlns:stream='http://etherx.jabber.org/streams' "
                "to=%s version='1.0' xml:lang='en'>" % quoteattr(self.domain))

    def starttls(self, **tls_options) -> ET.Element:
        """STARTTLS (RFC 6120 §5.4) and the stream restart; returns the new features."""
        self.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        el = self.expect()
        if el.tag != q(NS_TLS, "proceed"):
            raise AssertionError("STARTTLS refused: %s" % ET.tostring(el, encoding="unicode"))
        self.start_tls_layer(**tls_options)
        return self.open_stream()

    def mechanisms(self) -> List[str]:
        mechs = self.features.find(q(NS_SASL, "mechanisms"))
        if mechs is None:
            return []
        return [m.text for m in mechs.findall(q(NS_SASL, "mechanism"))]

    def channel_binding_types(self) -> List[str]:
        """Types advertised per XEP-0440 (a top-level stream feature)."""
        cb = self.features.find(q(NS_SASL_CB, "sasl-channel-binding"))
        if cb is None:
            return []
        return [c.get("type") for c in cb.findall(q(NS_SASL_CB, "channel-binding"))]

    # ------------------------------------------------------------ channel bindings
    def channel_binding(self, cb_type: str) -> bytes:
        if self.tls is None:
            raise AssertionError("channel binding needs TLS")
        if cb_type == "tls-exporter":  # RFC 9266 §2: no context, 32 bytes
            return self.tls.export_keying_material(b"EXPORTER-Channel-Binding", 32)
        if cb_type == "tls-server-end-point":  # RFC 5929 §4.1
            cert = self.tls.get_peer_certificate().to_cryptography()
            algo = cert.signature_hash_algorithm
            if algo is None or isinstance(algo, (hashes.MD5, hashes.SHA1)):
                algo = hashes.SHA256()
            from cryptography.hazmat.primitives.serialization import Encoding
            h = hashes.Hash(algo)
            h.update(cert.public_bytes(Encoding.DER))
            return h.finalize()
        if cb_type == "tls-unique":  # RFC 5929 §3: first Finished of a full handshake
            return self.tls.get_finished()
        raise ValueError(cb_type)

    # ------------------------------------------------------------ SASL
    def _sasl_send(self, name: str, payload: Optional[bytes], mechanism: str = "") -> None:
        mech_attr = " mechanism=%s" % quoteattr(mechanism) if mechanism else ""
        body = "=" if payload == b"" else (_b64(payload) if payload else "")
        self.send("<%s xmlns='%s'%s>%s</%s>" % (name, NS_SASL, mech_attr, body, name))

    def _sasl_read(self) -> ET.Element:
        el = self.expect()
        if namespace(el.tag) != NS_SASL:
            raise AssertionError("unexpected element during SASL: %s"
                                 % ET.tostring(el, encoding="unicode"))
        return el

    @staticmethod
    def _sasl_data(el: ET.Element) -> bytes:
        text = (el.text or "").strip()
        return b"" if text in ("", "=") else base64.b64decode(text)

    def sasl_plain(self, username: str, password: str) -> SaslResult:
        self._sasl_send("auth", b"\0" + username.encode() + b"\0" + password.encode(), "PLAIN")
        el = self._sasl_read()
        ok = el.tag == q(NS_SASL, "success")
        return SaslResult(ok, None if ok else sasl_failure_condition(el), el)

    def sasl_scram(self, username: str, password: str, hash_name: str = "SHA-256",
                   cb_type: Optional[str] = None, cb_data: Optional[bytes] = None,
                   gs2_flag: Optional[str] = None, plus: Optional[bool] = None) -> SaslResult:
        """SCRAM (RFC 5802) as a client.

        cb_type selects SCRAM-*-PLUS with that binding; cb_data overrides the bound
        data (to test that the server checks it); gs2_flag overrides the gs2 flag
        ('n', 'y' or 'p=...'); plus overrides whether -PLUS is in the mechanism name.
        The server signature is verified on success (mutual authentication).
        """
        algo = {"SHA-1": "sha1", "SHA-256": "sha256", "SHA-512": "sha512"}[hash_name]
        use_plus = bool(cb_type) if plus is None else plus
        mechanism = "SCRAM-%s%s" % (hash_name, "-PLUS" if use_plus else "")
        if gs2_flag is None:
            gs2_flag = "p=%s" % cb_type if cb_type else "n"
        gs2_header = (gs2_flag + ",,").encode()
        cnonce = _b64(os.urandom(18))
        first_bare = "n=%s,r=%s" % (_saslname(username), cnonce)
        self._sasl_send("auth", gs2_header + first_bare.encode(), mechanism)
        el = self._sasl_read()
        if el.tag != q(NS_SASL, "challenge"):
            return SaslResult(el.tag == q(NS_SASL, "success"), sasl_failure_condition(el), el)
        server_first = self._sasl_data(el).decode()
        attrs = dict(item.split("=", 1) for item in server_first.split(","))
        nonce, salt, iters = attrs["r"], base64.b64decode(attrs["s"]), int(attrs["i"])
        if not nonce.startswith(cnonce) or len(nonce) <= len(cnonce):
            raise AssertionError("server nonce does not extend ours: %r" % nonce)
        if iters < 4096:
            raise AssertionError("iteration count %d below RFC 5802/7677 minimum" % iters)
        if gs2_flag.startswith("p="):
            bound = cb_data if cb_data is not None else self.channel_binding(cb_type)
        else:
            bound = b""
        without_proof = "c=%s,r=%s" % (_b64(gs2_header + bound), nonce)
        salted = hashlib.pbkdf2_hmac(algo, password.encode("utf-8"), salt, iters)
        client_key = hmac.new(salted, b"Client Key", algo).digest()
        stored_key = hashlib.new(algo, client_key).digest()
        auth_message = ",".join((first_bare, server_first, without_proof)).encode()
        proof = _xor(client_key, hmac.new(stored_key, auth_message, algo).digest())
        server_key = hmac.new(salted, b"Server Key", algo).digest()
        expected_v = _b64(hmac.new(server_key, auth_message, algo).digest())
        self._sasl_send("response", ("%s,p=%s" % (without_proof, _b64(proof))).encode())
        el = self._sasl_read()
        if el.tag == q(NS_SASL, "challenge"):  # additional data sent as a challenge
            final = self._sasl_data(el).decode()
            self._sasl_send("response", None)
            el = self._sasl_read()
        elif el.tag == q(NS_SASL, "success"):
            final = self._sasl_data(el).decode()
        else:
            return SaslResult(False, sasl_failure_condition(el), el)
        if el.tag != q(NS_SASL, "success"):
            return SaslResult(False, sasl_failure_condition(el), el)
        if final != "v=" + expected_v:
            raise AssertionError("server signature mismatch: %r" % final)
        return SaslResult(True, None, el)

    # ------------------------------------------------------------ binding, stanzas
    def bind(self, resource: Optional[str] = None) -> str:
        """Resource binding (RFC 6120 §7); returns the full JID."""
        iq_id = new_id()
        res = "<resource>%s</resource>" % escape(resource) if resource else ""
        self.send("<iq type='set' id='%s'><bind xmlns='%s'>%s</bind></iq>" % (iq_id, NS_BIND, res))
        el = self.wait_for(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("id") == iq_id)
        if el.get("type") != "result":
            raise AssertionError("bind failed: %s" % ET.tostring(el, encoding="unicode"))
        jid = el.find("%s/%s" % (q(NS_BIND, "bind"), q(NS_BIND, "jid")))
        self.jid = jid.text
        return self.jid

    def login(self, user: str, password: str, resource: Optional[str] = None,
              mechanism: str = "SCRAM-SHA-256", direct_tls: bool = False,
              presence: bool = False, **tls_options) -> str:
        """Connect, secure, authenticate and bind. Returns the bound full JID."""
        self.connect(direct_tls=direct_tls, **tls_options)
        if direct_tls:
            self.open_stream()
        else:
            self.open_stream()
            self.starttls(**tls_options)
        if mechanism == "PLAIN":
            res = self.sasl_plain(user, password)
        else:
            res = self.sasl_scram(user, password, hash_name=mechanism[len("SCRAM-"):])
        if not res.success:
            raise AssertionError("login of %s failed: <%s/>" % (user, res.condition))
        self.open_stream()
        self.bind(resource or "raw-" + new_id())
        if presence:
            self.send("<presence/>")
        return self.jid

    def iq(self, to: Optional[str], type_: str, payload: str,
           timeout: Optional[float] = None) -> ET.Element:
        """Send an iq and return its response (result or error)."""
        iq_id = new_id()
        to_attr = " to=%s" % quoteattr(to) if to is not None else ""
        self.send("<iq type='%s' id='%s'%s>%s</iq>" % (type_, iq_id, to_attr, payload))
        return self.wait_for(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("id") == iq_id,
                             timeout)

    def send_message(self, to: str, body: str, type_: str = "chat",
                     extra_attrs: str = "", msg_id: Optional[str] = None) -> str:
        msg_id = msg_id or new_id()
        self.send("<message to=%s type='%s' id='%s'%s><body>%s</body></message>"
                  % (quoteattr(to), type_, msg_id, extra_attrs, escape(body)))
        return msg_id

    def wait_message(self, body: Optional[str] = None,
                     timeout: Optional[float] = None) -> ET.Element:
        """Next <message/> (not an error) whose body equals body (any body if None)."""
        def pred(e: ET.Element) -> bool:
            if e.tag != q(NS_CLIENT, "message") or e.get("type") == "error":
                return False
            b = e.find(q(NS_CLIENT, "body"))
            return b is not None and (body is None or b.text == body)
        return self.wait_for(pred, timeout)

    def close_stream(self) -> None:
        try:
            self.send("</stream:stream>")
        except OSError:
            pass
