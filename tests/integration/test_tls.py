# SPDX-License-Identifier: AGPL-3.0-or-later
"""TLS policy: TLS is mandatory on c2s (RFC 6120 §5.3.1, §13.8), nothing but STARTTLS is
accepted before it, TLS 1.2 is the minimum with forward-secret AEAD suites, TLS 1.3
works on STARTTLS and on direct TLS (XEP-0368).  Protocol checks use `openssl s_client`
so that the client side is not what refuses an old protocol."""

import subprocess

import pytest

from xmpp_raw import NS_CLIENT, NS_SASL, NS_TLS, StreamClosed, q


def s_client(server, *args, starttls=False, timeout=20):
    port = server.port if starttls else server.direct_port
    cmd = ["openssl", "s_client", "-connect", "%s:%d" % (server.host, port),
           "-servername", server.domain, "-CAfile", server.ca]
    if starttls:
        cmd += ["-starttls", "xmpp", "-xmpphost", server.domain]
    cmd += list(args)
    res = subprocess.run(cmd, input=b"", capture_output=True, timeout=timeout)
    return res.returncode, (res.stdout + res.stderr).decode(errors="replace")


def assert_handshake_refused(rc, out):
    # The client offered the protocol (else OpenSSL says "no protocols available" or
    # "no ciphers available"), so a failure here is the server's refusal.
    assert "no protocols available" not in out and "no cipher" not in out, out
    assert rc != 0, "handshake unexpectedly succeeded:\n" + out
    assert "Cipher is (NONE)" in out or "handshake failure" in out or "alert" in out, out


# ---------------------------------------------------------------- before TLS

def test_features_before_tls_offer_only_required_starttls(server):
    with server.raw() as c:
        c.connect()
        features = c.open_stream()
        children = [child.tag for child in features]
        assert children == [q(NS_TLS, "starttls")]
        assert features.find(q(NS_TLS, "starttls")).find(q(NS_TLS, "required")) is not None
        assert features.find(q(NS_SASL, "mechanisms")) is None


def test_plain_auth_before_tls_is_refused(server):
    with server.raw() as c:
        c.connect()
        c.open_stream()
        c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>"
               % "AGFsaWNlAGFsaWNlLUt1cmllci10ZXN0LXB3")  # \0alice\0alice-Kurier-test-pw
        try:
            el = c.next_element()
        except StreamClosed:
            return  # dropped without success: acceptable
        assert el.tag != q(NS_SASL, "success")
        if el.tag == q(NS_SASL, "failure"):
            assert el.find(q(NS_SASL, "encryption-required")) is not None
        else:
            assert el.tag == "{http://etherx.jabber.org/streams}error", el.tag


def test_stanza_before_tls_is_not_delivered(server):
    with server.raw() as carol:
        carol_jid = carol.login("carol", server.password("carol"), presence=True)
        with server.raw() as c:
            c.connect()
            c.open_stream()
            c.send("<message to='%s' type='chat'><body>pre-tls</body></message>" % carol_jid)
            carol.expect_nothing(
                lambda e: e.tag == q(NS_CLIENT, "message")
                and e.findtext(q(NS_CLIENT, "body")) == "pre-tls", 1.5)


@pytest.mark.kurier_only  # Prosody 0.12 answers with a stanza error and keeps the stream
def test_stanza_before_tls_gets_stream_error_and_close(server):
    # RFC 6120 §4.9.3.12 (not-authorized) / §5.3.1 (policy-violation when TLS is required)
    with server.raw() as c:
        c.connect()
        c.open_stream()
        c.send("<message to='%s' type='chat'><body>pre-tls</body></message>"
               % server.jid("carol"))
        assert c.expect_stream_error() in ("not-authorized", "policy-violation")
        c.expect_closed()


# ---------------------------------------------------------------- protocol versions

@pytest.mark.parametrize("starttls", [False, True], ids=["direct-tls", "starttls"])
def test_tls_1_1_is_refused(server, starttls):
    rc, out = s_client(server, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", starttls=starttls)
    assert_handshake_refused(rc, out)


@pytest.mark.parametrize("starttls", [False, True], ids=["direct-tls", "starttls"])
def test_tls_1_3_is_accepted(server, starttls):
    rc, out = s_client(server, "-tls1_3", "-verify_return_error", starttls=starttls)
    assert rc == 0, out
    assert "TLSv1.3" in out, out
    assert "Verify return code: 0 (ok)" in out, out


def test_tls_1_2_with_forward_secret_aead_suite_is_accepted(server):
    rc, out = s_client(server, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")
    assert rc == 0, out
    assert "ECDHE-ECDSA-AES128-GCM-SHA256" in out, out


def test_tls_1_2_without_forward_secrecy_is_refused(server):
    # Static-RSA key exchange. With the ECDSA test certificate the server could not use it
    # anyway, so this also guards against a future RSA certificate re-enabling it.
    rc, out = s_client(server, "-tls1_2", "-cipher", "AES128-GCM-SHA256:AES256-GCM-SHA384")
    assert_handshake_refused(rc, out)


def test_tls_1_2_cbc_suite_is_refused(server):
    # Forward secret but not AEAD: Kurier allows ECDHE + AEAD only.
    rc, out = s_client(server, "-tls1_2", "-cipher",
                       "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA")
    assert_handshake_refused(rc, out)
