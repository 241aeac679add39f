# SPDX-License-Identifier: AGPL-3.0-or-later
"""Helpers for the roster and presence tests (RFC 6121 §2-§4) on top of the raw client:
fresh accounts, roster get/set, waiting for pushes and presence, and making two accounts
subscribe to each other."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from typing import Iterable, Optional
from xml.sax.saxutils import escape, quoteattr

from xmpp_raw import NS_CLIENT, new_id, q

NS_ROSTER = "jabber:iq:roster"


def fresh(server, prefix: str = "rost") -> str:
    """A new account with a unique local part; returns the local part."""
    local = "%s_%s" % (prefix, uuid.uuid4().hex[:10])
    server.create_account(local)
    return local


def login(server, local: str, resource: Optional[str] = None, roster: bool = True,
          presence: bool = True, timeout: float = 5.0):
    """A raw client logged in as local; with roster it asks for the roster first (so it is an
    "interested resource"), with presence it then sends initial presence and makes a round
    trip (a ping), so that the server counts it as available before another client
    addresses it (nothing orders two clients' stanzas otherwise)."""
    c = server.raw(timeout=timeout)
    c.login(local, server.password(local), resource=resource or "r" + new_id())
    if roster:
        roster_get(c)
    if presence:
        c.send("<presence/>")
        # A ping (XEP-0199) answered after the presence: unlike a roster get, it does not
        # make the resource "interested" (RFC 6121 §2.1.6).
        c.iq(None, "get", "<ping xmlns='urn:xmpp:ping'/>")
    return c


def roster_get(c, ver: Optional[str] = None) -> ET.Element:
    attr = "" if ver is None else " ver=%s" % quoteattr(ver)
    res = c.iq(None, "get", "<query xmlns='%s'%s/>" % (NS_ROSTER, attr))
    assert res.get("type") == "result", ET.tostring(res, encoding="unicode")
    return res


def roster_items(res: ET.Element) -> dict:
    """jid -> item element of a roster result."""
    query = res.find(q(NS_ROSTER, "query"))
    return {} if query is None else {i.get("jid"): i for i in query.findall(q(NS_ROSTER, "item"))}


def roster_set(c, jid: str, name: Optional[str] = None, groups: Iterable[str] = (),
               subscription: Optional[str] = None) -> ET.Element:
    attrs = " jid=%s" % quoteattr(jid)
    if name is not None:
        attrs += " name=%s" % quoteattr(name)
    if subscription is not None:
        attrs += " subscription=%s" % quoteattr(subscription)
    inner = "".join("<group>%s</group>" % escape(g) for g in groups)
    return c.iq(None, "set", "<query xmlns='%s'><item%s>%s</item></query>"
                % (NS_ROSTER, attrs, inner))


def is_push(e: ET.Element, jid: Optional[str] = None) -> bool:
    if e.tag != q(NS_CLIENT, "iq") or e.get("type") != "set":
        return False
    item = e.find("%s/%s" % (q(NS_ROSTER, "query"), q(NS_ROSTER, "item")))
    return item is not None and (jid is None or item.get("jid") == jid)


def wait_push(c, jid: str, timeout: float = 5.0, **expect) -> ET.Element:
    """The next roster push for jid whose item attributes match expect (e.g.
    subscription='to', ask=None); acknowledged as RFC 6121 §2.1.6 asks. Returns the item."""
    def pred(e):
        if not is_push(e, jid):
            return False
        item = e.find("%s/%s" % (q(NS_ROSTER, "query"), q(NS_ROSTER, "item")))
        return all(item.get(k) == v for k, v in expect.items())
    push = c.wait_for(pred, timeout)
    assert push.get("from") in (None, c.jid.split("/")[0]), push.get("from")
    c.send("<iq type='result' id=%s/>" % quoteattr(push.get("id")))
    return push.find("%s/%s" % (q(NS_ROSTER, "query"), q(NS_ROSTER, "item")))


def is_presence(e: ET.Element, type_: Optional[str] = None, from_: Optional[str] = None,
                bare: bool = False) -> bool:
    """A presence of that type ('available' for none), from that JID (compared as bare JIDs
    with bare)."""
    if e.tag != q(NS_CLIENT, "presence"):
        return False
    if type_ is not None and (e.get("type") or "available") != type_:
        return False
    if from_ is not None:
        f = e.get("from") or ""
        if (f.split("/")[0] if bare else f) != from_:
            return False
    return True


def wait_presence(c, type_: Optional[str] = None, from_: Optional[str] = None,
                  bare: bool = False, timeout: float = 5.0) -> ET.Element:
    return c.wait_for(lambda e: is_presence(e, type_, from_, bare), timeout)


def no_presence(c, type_: Optional[str] = None, from_: Optional[str] = None,
                bare: bool = False, seconds: float = 1.0) -> None:
    c.expect_nothing(lambda e: is_presence(e, type_, from_, bare), seconds)


def sync(c) -> None:
    """Round trip through the server and the storage thread (a roster get), so that what the
    server did for earlier stanzas of this client has been done."""
    roster_get(c)


def drain(c) -> None:
    """Forget everything received so far (after a round trip), so that later checks only see
    what the server sends from now on."""
    sync(c)
    c._stash.clear()
    c._ready.clear()


def subscribe_both(server, a, a_jid: str, b, b_jid: str) -> None:
    """Make the logged-in, interested and available clients a and b subscribe to each
    other (RFC 6121 §3.1, both directions) and wait until both rosters say 'both'."""
    for x, x_jid, y, y_jid in ((a, a_jid, b, b_jid), (b, b_jid, a, a_jid)):
        x.send("<presence to=%s type='subscribe'/>" % quoteattr(y_jid))
        wait_presence(y, "subscribe", x_jid)
        y.send("<presence to=%s type='subscribed'/>" % quoteattr(x_jid))
        wait_presence(x, "subscribed", y_jid)
    wait_push(a, b_jid, subscription="both")
    wait_push(b, a_jid, subscription="both")
