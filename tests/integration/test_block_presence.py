# SPDX-License-Identifier: AGPL-3.0-or-later
"""XEP-0191 §3.2 across presence: broadcasts and probe answers are fanned out by the presence
module without going through the router, so they must honour block lists too. A blocked
contact with a mutual subscription sees none of the user's presence changes, and the user
none of theirs; after unblocking, presence flows again."""

from xml.sax.saxutils import quoteattr

from im_helpers import drain, fresh, login, no_presence, subscribe_both, wait_presence

NS_BLOCKING = "urn:xmpp:blocking"


def _block(c, jid, op="block"):
    res = c.iq(None, "set", "<%s xmlns='%s'><item jid=%s/></%s>"
               % (op, NS_BLOCKING, quoteattr(jid), op))
    assert res.get("type") == "result"


def test_blocked_contact_sees_no_presence_and_unblocked_sees_it_again(server):
    a_local, b_local = fresh(server, "bp"), fresh(server, "bp")
    a_jid, b_jid = server.jid(a_local), server.jid(b_local)
    a, b = login(server, a_local), login(server, b_local)
    try:
        subscribe_both(server, a, a_jid, b, b_jid)
        _block(a, b_jid)
        drain(a)
        drain(b)
        # a's broadcast must not reach b, and b's must not reach a
        a.send("<presence><show>away</show></presence>")
        b.send("<presence><show>dnd</show></presence>")
        no_presence(b, from_=a_jid, bare=True, seconds=1.0)
        no_presence(a, from_=b_jid, bare=True, seconds=0.2)
        # a new session of b gets no probe answer from a either
        b2 = login(server, b_local)
        try:
            no_presence(b2, from_=a_jid, bare=True, seconds=1.0)
        finally:
            b2.close()
        _block(a, b_jid, "unblock")
        a.send("<presence><show>chat</show></presence>")
        wait_presence(b, from_=a_jid, bare=True)
    finally:
        a.close()
        b.close()
