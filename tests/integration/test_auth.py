# SPDX-License-Identifier: AGPL-3.0-or-later
"""Authentication: SASL PLAIN and SCRAM-SHA-1/-256 (RFC 6120 §6, RFC 4616, RFC 5802,
RFC 7677), SCRAM-*-PLUS with tls-exporter (RFC 9266), tls-server-end-point (RFC 5929
§4.1) and tls-unique (RFC 5929 §3), advertised per XEP-0440; failures map to
<not-authorized/> (RFC 6120 §6.5.10)."""

import ssl

import pytest
from OpenSSL import SSL

from xmpp_raw import NS_SASL, q
from xmpp_slix import Client, run

kurier_only = pytest.mark.kurier_only


def _login(server, client_kwargs, direct_tls=False):
    async def scenario():
        c = Client(server, **client_kwargs)
        try:
            ok = await c.start(direct_tls=direct_tls)
            info = {
                "ok": ok,
                "mech": c.mechanism_used,
                "failures": list(c.auth_failures),
                "jid": c.boundjid.full,
                "tls": c.socket.version() if isinstance(c.socket, ssl.SSLObject) else None,
            }
        finally:
            await c.stop()
        return info
    return run(scenario(), timeout=30)


def _raw_secured(server, direct_tls=False, **tls):
    c = server.raw(direct_tls=direct_tls)
    c.connect(direct_tls=direct_tls, **tls)
    c.open_stream()
    if not direct_tls:
        c.starttls(**tls)
    return c


def _raw_bind_works(c):
    c.open_stream()
    jid = c.bind("bound")
    assert jid.endswith("/bound")


# ---------------------------------------------------------------- slixmpp logins

@pytest.mark.parametrize("mech", ["SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"])
def test_slixmpp_logs_in_over_starttls_with_mechanism(server, mech):
    info = _login(server, dict(user="alice", resource="slix-" + mech, sasl_mech=mech))
    assert info["ok"], "login failed: %r" % info["failures"]
    assert info["mech"] == mech
    assert info["jid"] == "alice@%s/slix-%s" % (server.domain, mech)


def test_slixmpp_logs_in_over_direct_tls(server):
    info = _login(server, dict(user="bob", resource="direct"), direct_tls=True)
    assert info["ok"], "login failed: %r" % info["failures"]
    assert info["jid"] == "bob@%s/direct" % server.domain
    assert info["tls"] in ("TLSv1.2", "TLSv1.3")


@pytest.mark.parametrize("mech", ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"])
def test_slixmpp_on_tls12_logs_in_with_scram_plus_tls_unique(server, mech):
    # slixmpp binds with tls-unique, which exists only up to TLS 1.2.
    info = _login(server, dict(user="carol", resource="tls12-" + mech, sasl_mech=mech,
                               tls_max=ssl.TLSVersion.TLSv1_2))
    assert info["tls"] == "TLSv1.2"
    assert info["ok"], "login failed: %r" % info["failures"]
    assert info["mech"] == mech


def test_slixmpp_wrong_password_fails_with_not_authorized(server):
    info = _login(server, dict(user="carol", resource="wrongpw", password="not-the-password"))
    assert info["ok"] is False
    assert info["failures"] == ["not-authorized"]


# ---------------------------------------------------------------- advertised features

def test_features_after_tls_offer_scram_and_plain(server):
    with _raw_secured(server) as c:
        mechs = c.mechanisms()
    for mech in ("SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"):
        assert mech in mechs


@kurier_only
def test_features_after_tls13_advertise_plus_mechanisms_and_binding_types(server):
    with _raw_secured(server) as c:
        assert c.tls_version == "TLSv1.3"
        mechs, types = c.mechanisms(), c.channel_binding_types()
    assert "SCRAM-SHA-1-PLUS" in mechs and "SCRAM-SHA-256-PLUS" in mechs
    # XEP-0440: <sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'> as a stream feature
    assert "tls-exporter" in types
    assert "tls-server-end-point" in types
    assert "tls-unique" not in types, "tls-unique is undefined for TLS 1.3 (RFC 9266 §3)"


# ---------------------------------------------------------------- raw SCRAM-*-PLUS

PLUS_CASES = [
    pytest.param(h, cb, marks=kurier_only, id="%s-%s" % (h, cb))
    for h in ("SHA-1", "SHA-256") for cb in ("tls-exporter", "tls-server-end-point")
]


@pytest.mark.parametrize("hash_name,cb_type", PLUS_CASES)
def test_scram_plus_logs_in_over_starttls_tls13(server, hash_name, cb_type):
    with _raw_secured(server) as c:
        assert c.tls_version == "TLSv1.3"
        res = c.sasl_scram("alice", server.password("alice"), hash_name, cb_type=cb_type)
        assert res.success, "failure <%s/>" % res.condition
        _raw_bind_works(c)


@pytest.mark.parametrize("hash_name,cb_type", PLUS_CASES)
def test_scram_plus_logs_in_over_direct_tls(server, hash_name, cb_type):
    with _raw_secured(server, direct_tls=True) as c:
        res = c.sasl_scram("bob", server.password("bob"), hash_name, cb_type=cb_type)
        assert res.success, "failure <%s/>" % res.condition
        _raw_bind_works(c)


@pytest.mark.parametrize("hash_name", ["SHA-1", "SHA-256"])
def test_scram_plus_tls_unique_logs_in_over_tls12(server, hash_name):
    with _raw_secured(server, max_version=SSL.TLS1_2_VERSION) as c:
        assert c.tls_version == "TLSv1.2"
        assert "SCRAM-%s-PLUS" % hash_name in c.mechanisms()
        res = c.sasl_scram("alice", server.password("alice"), hash_name, cb_type="tls-unique")
        assert res.success, "failure <%s/>" % res.condition
        _raw_bind_works(c)


WRONG_CB_CASES = [
    pytest.param("tls-exporter", None, marks=kurier_only, id="tls-exporter"),
    pytest.param("tls-server-end-point", None, marks=kurier_only, id="tls-server-end-point"),
    pytest.param("tls-unique", SSL.TLS1_2_VERSION, id="tls-unique"),
]


@pytest.mark.parametrize("cb_type,tls_max", WRONG_CB_CASES)
def test_scram_plus_with_wrong_binding_data_fails_not_authorized(server, cb_type, tls_max):
    tls = {"max_version": tls_max} if tls_max else {}
    with _raw_secured(server, **tls) as c:
        good = c.channel_binding(cb_type)
        bad = bytes([good[0] ^ 0x01]) + good[1:]
        res = c.sasl_scram("alice", server.password("alice"), "SHA-256", cb_type=cb_type,
                           cb_data=bad)
        assert not res.success
        assert res.element.tag == q(NS_SASL, "failure")
        if not server.external:  # Prosody 0.12 answers <malformed-request/> here
            assert res.condition == "not-authorized"


@pytest.mark.parametrize("tls_max", [
    pytest.param(SSL.TLS1_2_VERSION, id="tls12"),
    pytest.param(None, id="tls13", marks=kurier_only),  # Prosody 0.12: no -PLUS on TLS 1.3
])
def test_scram_y_flag_is_refused_when_server_offers_plus(server, tls_max):
    # RFC 5802 §6: 'y' means "I could bind but you do not offer it"; a server that does
    # offer -PLUS must fail the exchange (a downgrade attack).
    tls = {"max_version": tls_max} if tls_max else {}
    with _raw_secured(server, **tls) as c:
        assert "SCRAM-SHA-256-PLUS" in c.mechanisms()
        res = c.sasl_scram("alice", server.password("alice"), "SHA-256", gs2_flag="y")
        assert not res.success
        assert res.element.tag == q(NS_SASL, "failure")


# ---------------------------------------------------------------- raw failures

@pytest.mark.parametrize("mech", ["SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"])
def test_wrong_password_fails_with_not_authorized(server, mech):
    with _raw_secured(server) as c:
        if mech == "PLAIN":
            res = c.sasl_plain("bob", "wrong-password")
        else:
            res = c.sasl_scram("bob", "wrong-password", mech[len("SCRAM-"):])
        assert not res.success
        assert res.condition == "not-authorized"


@pytest.mark.parametrize("mech", ["SCRAM-SHA-256", "PLAIN"])
def test_unknown_user_fails_with_not_authorized(server, mech):
    with _raw_secured(server) as c:
        if mech == "PLAIN":
            res = c.sasl_plain("nobody-here", "whatever-pw")
        else:
            res = c.sasl_scram("nobody-here", "whatever-pw", "SHA-256")
        assert not res.success
        assert res.condition == "not-authorized"


def test_retry_after_failed_attempt_succeeds_on_same_stream(server):
    # RFC 6120 §6.4.5: the server allows a reasonable number of retries.
    with _raw_secured(server) as c:
        res = c.sasl_scram("carol", "wrong-password", "SHA-256")
        assert res.condition == "not-authorized"
        res = c.sasl_scram("carol", server.password("carol"), "SHA-256")
        assert res.success, "failure <%s/>" % res.condition
        _raw_bind_works(c)
