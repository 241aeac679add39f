# SPDX-License-Identifier: AGPL-3.0-or-later
"""Server services: service discovery (XEP-0030) and entity capabilities (XEP-0115),
software version (XEP-0092), entity time (XEP-0202), vcard-temp (XEP-0054) and private
XML storage (XEP-0049)."""

import base64
import datetime as dt
import hashlib
import re
import time
import uuid
import xml.etree.ElementTree as ET

import pytest

from conftest import start_server, stop_server
from xmpp_raw import NS_CLIENT, q, stanza_error_condition

NS_INFO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"
NS_CAPS = "http://jabber.org/protocol/caps"
NS_VERSION = "jabber:iq:version"
NS_TIME = "urn:xmpp:time"
NS_VCARD = "vcard-temp"
NS_PRIVATE = "jabber:iq:private"


def _unique(prefix):
    return "%s_%s" % (prefix, uuid.uuid4().hex[:8])


def _ok(reply):
    assert reply.get("type") == "result", ET.tostring(reply, encoding="unicode")
    return reply


def _error(reply):
    assert reply.get("type") == "error", ET.tostring(reply, encoding="unicode")
    return stanza_error_condition(reply)


def _features(query):
    return [f.get("var") for f in query.findall(q(NS_INFO, "feature"))]


def _identities(query):
    return [(i.get("category"), i.get("type"), i.get("name"))
            for i in query.findall(q(NS_INFO, "identity"))]


def _caps_ver(query):
    """XEP-0115 §5.1 verification string of a disco#info result (no data forms here)."""
    ids = sorted((i.get("category"), i.get("type"), i.get(q("http://www.w3.org/XML/1998/"
                                                              "namespace", "lang")) or "",
                  i.get("name") or "") for i in query.findall(q(NS_INFO, "identity")))
    s = "".join("%s/%s/%s/%s<" % i for i in ids)
    s += "".join("%s<" % f for f in sorted(_features(query)))
    return base64.b64encode(hashlib.sha1(s.encode("utf-8")).digest()).decode("ascii")


@pytest.fixture
def alice(server):
    with server.raw() as c:
        c.login("alice", server.password("alice"))
        yield c


# ---------------------------------------------------------------- disco, caps

def test_disco_info_of_server_lists_identity_and_features(server, alice):
    query = _ok(alice.iq(server.domain, "get", "<query xmlns='%s'/>" % NS_INFO)).find(
        q(NS_INFO, "query"))
    assert ("server", "im", "Kurier") in _identities(query)
    features = _features(query)
    for f in (NS_INFO, NS_ITEMS, "urn:xmpp:ping", NS_VERSION, NS_TIME, NS_VCARD, NS_PRIVATE,
              "msgoffline"):
        assert f in features, "feature %s missing from %r" % (f, features)
    assert len(features) == len(set(features)), "duplicate features"


def test_disco_items_of_server_is_an_empty_list(server, alice):
    reply = _ok(alice.iq(server.domain, "get", "<query xmlns='%s'/>" % NS_ITEMS))
    query = reply.find(q(NS_ITEMS, "query"))
    assert query is not None
    assert query.findall(q(NS_ITEMS, "item")) == []


@pytest.mark.kurier_only
def test_caps_in_stream_features_match_disco_info(server, alice):
    caps = alice.features.find(q(NS_CAPS, "c"))
    assert caps is not None, "no XEP-0115 <c/> in the stream features after authentication"
    assert caps.get("hash") == "sha-1"
    node, ver = caps.get("node"), caps.get("ver")
    plain = _ok(alice.iq(server.domain, "get", "<query xmlns='%s'/>" % NS_INFO)).find(
        q(NS_INFO, "query"))
    assert _caps_ver(plain) == ver
    # XEP-0115 §6.2: the node#ver query is answered with the same information
    reply = _ok(alice.iq(server.domain, "get",
                         "<query xmlns='%s' node='%s#%s'/>" % (NS_INFO, node, ver)))
    query = reply.find(q(NS_INFO, "query"))
    assert query.get("node") == "%s#%s" % (node, ver)
    assert _caps_ver(query) == ver


def test_disco_info_of_unknown_node_is_item_not_found(server, alice):
    reply = alice.iq(server.domain, "get",
                     "<query xmlns='%s' node='no-such-node'/>" % NS_INFO)
    assert _error(reply) == "item-not-found"


def test_disco_info_of_account_answers_registered_identity(server, alice):
    query = _ok(alice.iq(server.jid("bob"), "get", "<query xmlns='%s'/>" % NS_INFO)).find(
        q(NS_INFO, "query"))
    assert [(c, t) for c, t, _ in _identities(query)] == [("account", "registered")]
    own = _ok(alice.iq(None, "get", "<query xmlns='%s'/>" % NS_INFO)).find(q(NS_INFO, "query"))
    assert [(c, t) for c, t, _ in _identities(own)] == [("account", "registered")]
    items = _ok(alice.iq(server.jid("bob"), "get", "<query xmlns='%s'/>" % NS_ITEMS))
    assert items.find(q(NS_ITEMS, "query")).findall(q(NS_ITEMS, "item")) == []


def test_disco_info_of_nonexistent_account_is_service_unavailable(server, alice):
    reply = alice.iq("nobody-%s@%s" % (uuid.uuid4().hex[:8], server.domain), "get",
                     "<query xmlns='%s'/>" % NS_INFO)
    assert _error(reply) == "service-unavailable"


# ---------------------------------------------------------------- version, time

def test_version_of_server_without_os_by_default(server, alice):
    query = _ok(alice.iq(server.domain, "get", "<query xmlns='%s'/>" % NS_VERSION)).find(
        q(NS_VERSION, "query"))
    assert query.findtext(q(NS_VERSION, "name"))
    assert query.findtext(q(NS_VERSION, "version"))
    if not server.external:
        assert query.findtext(q(NS_VERSION, "name")) == "Kurier"
        assert query.findtext(q(NS_VERSION, "version")) == "0.1.0"
        assert query.find(q(NS_VERSION, "os")) is None


@pytest.mark.kurier_only
def test_version_shows_os_when_configured(tmp_path):
    srv = start_server(tmp_path, "services:\n  version_show_os: true\n", accounts=["alice"])
    try:
        with srv.raw() as c:
            c.login("alice", srv.password("alice"))
            query = _ok(c.iq(srv.domain, "get", "<query xmlns='%s'/>" % NS_VERSION)).find(
                q(NS_VERSION, "query"))
            assert query.findtext(q(NS_VERSION, "os"))
        time.sleep(0.3)  # sessions closed before SIGTERM (see test_offline.own_server)
    finally:
        stop_server(srv)


def test_time_of_server(server, alice):
    reply = _ok(alice.iq(server.domain, "get", "<time xmlns='%s'/>" % NS_TIME))
    t = reply.find(q(NS_TIME, "time"))
    tzo = t.findtext(q(NS_TIME, "tzo"))
    utc = t.findtext(q(NS_TIME, "utc"))
    assert re.fullmatch(r"[+-]\d\d:\d\d", tzo), tzo
    assert utc.endswith("Z")
    stamp = dt.datetime.fromisoformat(utc[:-1] + "+00:00")
    assert abs((stamp - dt.datetime.now(dt.timezone.utc)).total_seconds()) < 10


# ---------------------------------------------------------------- vcard-temp

def _vcard_fn(reply):
    return reply.find(q(NS_VCARD, "vCard")).findtext(q(NS_VCARD, "FN"))


def test_vcard_set_then_get_own_and_by_others(server, alice):
    user = _unique("vc")
    bare = server.create_account(user)
    fn = "Ada <Lovelace> & co " + uuid.uuid4().hex[:6]
    with server.raw() as c:
        c.login(user, server.password(user))
        empty = _ok(c.iq(None, "get", "<vCard xmlns='%s'/>" % NS_VCARD))
        assert list(empty.find(q(NS_VCARD, "vCard"))) == []
        card = ET.Element(q(NS_VCARD, "vCard"))
        ET.SubElement(card, q(NS_VCARD, "FN")).text = fn
        xml = ET.tostring(card, encoding="unicode", default_namespace=NS_VCARD)
        _ok(c.iq(None, "set", xml))
        assert _vcard_fn(_ok(c.iq(None, "get", "<vCard xmlns='%s'/>" % NS_VCARD))) == fn
        assert _vcard_fn(_ok(c.iq(bare, "get", "<vCard xmlns='%s'/>" % NS_VCARD))) == fn
    reply = _ok(alice.iq(bare, "get", "<vCard xmlns='%s'/>" % NS_VCARD))
    assert reply.get("from") == bare
    assert _vcard_fn(reply) == fn


def test_vcard_of_account_without_one_is_empty(server, alice):
    user = _unique("vc")
    bare = server.create_account(user)
    reply = _ok(alice.iq(bare, "get", "<vCard xmlns='%s'/>" % NS_VCARD))
    assert list(reply.find(q(NS_VCARD, "vCard"))) == []


def test_vcard_of_nonexistent_account_is_service_unavailable(server, alice):
    reply = alice.iq("nobody-%s@%s" % (uuid.uuid4().hex[:8], server.domain), "get",
                     "<vCard xmlns='%s'/>" % NS_VCARD)
    assert _error(reply) == "service-unavailable"


def test_vcard_set_of_other_account_is_forbidden(server, alice):
    reply = alice.iq(server.jid("bob"), "set",
                     "<vCard xmlns='%s'><FN>Mallory</FN></vCard>" % NS_VCARD)
    assert _error(reply) in ("forbidden", "not-allowed")


@pytest.mark.kurier_only
def test_vcard_larger_than_limit_is_not_acceptable(server):
    user = _unique("vc")
    server.create_account(user)
    with server.raw() as c:
        c.login(user, server.password(user))
        big = "x" * 70000  # services.vcard_max_bytes defaults to 65536
        reply = c.iq(None, "set", "<vCard xmlns='%s'><DESC>%s</DESC></vCard>"
                     % (NS_VCARD, big))
        assert _error(reply) == "not-acceptable"
        empty = _ok(c.iq(None, "get", "<vCard xmlns='%s'/>" % NS_VCARD))
        assert list(empty.find(q(NS_VCARD, "vCard"))) == []


# ---------------------------------------------------------------- private XML storage

def _private_get(c, ns, name, to=None):
    return c.iq(to, "get", "<query xmlns='%s'><%s xmlns='%s'/></query>" % (NS_PRIVATE, name, ns))


def test_private_storage_set_and_get(server):
    user = _unique("pv")
    server.create_account(user)
    ns = "urn:example:prefs:" + uuid.uuid4().hex[:6]
    with server.raw() as c:
        c.login(user, server.password(user))
        # nothing stored yet: the empty element comes back
        reply = _ok(_private_get(c, ns, "prefs"))
        stored = reply.find(q(NS_PRIVATE, "query")).find(q(ns, "prefs"))
        assert stored is not None and list(stored) == []
        _ok(c.iq(None, "set", "<query xmlns='%s'><prefs xmlns='%s'><nick>Ha&amp;mlet</nick>"
                              "</prefs></query>" % (NS_PRIVATE, ns)))
        reply = _ok(_private_get(c, ns, "prefs"))
        stored = reply.find(q(NS_PRIVATE, "query")).find(q(ns, "prefs"))
        assert stored.findtext(q(ns, "nick")) == "Ha&mlet"
        # keyed by namespace and element: another element name is separate
        other = _ok(_private_get(c, ns, "other")).find(q(NS_PRIVATE, "query")).find(q(ns, "other"))
        assert other is not None and list(other) == []
        # a second session of the same account sees it (stored, not per session)
    with server.raw() as c:
        c.login(user, server.password(user))
        reply = _ok(_private_get(c, ns, "prefs", to=server.jid(user)))
        assert reply.find(q(NS_PRIVATE, "query")).find(q(ns, "prefs")).findtext(
            q(ns, "nick")) == "Ha&mlet"


@pytest.mark.parametrize("ns", ["jabber:iq:roster", "http://jabber.org/protocol/muc",
                                "vcard-temp"])
def test_private_storage_refuses_reserved_namespaces(server, alice, ns):
    reply = alice.iq(None, "set", "<query xmlns='%s'><x xmlns='%s'/></query>" % (NS_PRIVATE, ns))
    assert _error(reply) == "not-acceptable"
    assert _error(_private_get(alice, ns, "x")) == "not-acceptable"


def test_private_storage_of_other_account_is_forbidden(server, alice):
    reply = _private_get(alice, "urn:example:prefs", "prefs", to=server.jid("bob"))
    assert _error(reply) in ("forbidden", "service-unavailable")
    reply = alice.iq(server.jid("bob"), "set", "<query xmlns='%s'><prefs xmlns='urn:example:"
                     "prefs'/></query>" % NS_PRIVATE)
    assert _error(reply) in ("forbidden", "service-unavailable")


@pytest.mark.kurier_only
def test_private_storage_quota_is_per_account_total(server):
    user = _unique("pv")
    server.create_account(user)
    chunk = "y" * 40000  # services.private_max_bytes defaults to 65536

    def setq(name):
        return c.iq(None, "set", "<query xmlns='%s'><%s xmlns='urn:example:big'>%s</%s></query>"
                    % (NS_PRIVATE, name, chunk, name))

    with server.raw() as c:
        c.login(user, server.password(user))
        _ok(setq("one"))
        assert _error(setq("two")) == "not-acceptable"  # 80 kB in total
        _ok(setq("one"))  # replacing a document counts only its new size
        reply = _ok(_private_get(c, "urn:example:big", "two"))
        assert list(reply.find(q(NS_PRIVATE, "query")).find(q("urn:example:big", "two"))) == []
