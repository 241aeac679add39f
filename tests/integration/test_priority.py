# SPDX-License-Identifier: AGPL-3.0-or-later
"""RFC 6121 §8.5.2.1.1: a chat or normal message to a bare JID goes to the available
resource(s) with the highest non-negative priority; resources with negative priority never
get bare-JID messages (an account whose only resource is negative is treated as offline and
the message is kept for later); a headline goes to every non-negative resource."""

import uuid

from im_helpers import fresh, login


def _presence(c, priority):
    c.send("<presence><priority>%d</priority></presence>" % priority)
    c.iq(None, "get", "<query xmlns='jabber:iq:roster'/>")  # round trip: presence processed


def _body():
    return "prio-" + uuid.uuid4().hex[:10]


def test_bare_jid_message_goes_to_highest_priority_resource_only(server):
    user = fresh(server, "prio")
    sender = login(server, fresh(server, "prio"), roster=False, presence=True)
    high = login(server, user, resource="high", roster=False, presence=False)
    low = login(server, user, resource="low", roster=False, presence=False)
    try:
        _presence(high, 5)
        _presence(low, 1)
        body = _body()
        sender.send_message(server.jid(user), body)
        assert high.wait_message(body).get("to") == server.jid(user)
        low.expect_nothing(lambda e: e.findtext("{jabber:client}body") == body, 1.0)
        # raise 'low' above 'high': now it gets the next one
        _presence(low, 10)
        body2 = _body()
        sender.send_message(server.jid(user), body2)
        low.wait_message(body2)
        high.expect_nothing(lambda e: e.findtext("{jabber:client}body") == body2, 1.0)
    finally:
        for c in (sender, high, low):
            c.close()


def test_equal_priorities_all_get_the_message_and_headlines_go_to_all(server):
    user = fresh(server, "prio")
    sender = login(server, fresh(server, "prio"), roster=False, presence=True)
    one = login(server, user, resource="one", roster=False, presence=False)
    two = login(server, user, resource="two", roster=False, presence=False)
    try:
        _presence(one, 3)
        _presence(two, 3)
        body = _body()
        sender.send_message(server.jid(user), body)
        one.wait_message(body)
        two.wait_message(body)
        _presence(two, 0)
        head = _body()
        sender.send_message(server.jid(user), head, type_="headline")
        one.wait_message(head)
        two.wait_message(head)
    finally:
        for c in (sender, one, two):
            c.close()


def test_negative_priority_resource_gets_no_bare_jid_messages(server):
    user = fresh(server, "prio")
    sender = login(server, fresh(server, "prio"), roster=False, presence=True)
    neg = login(server, user, resource="neg", roster=False, presence=False)
    try:
        _presence(neg, -1)
        body = _body()
        sender.send_message(server.jid(user), body)
        neg.expect_nothing(lambda e: e.findtext("{jabber:client}body") == body, 1.0)
        # but a message to its full JID reaches it (§8.5.3.1)
        full = _body()
        sender.send_message(neg.jid, full)
        neg.wait_message(full)
    finally:
        sender.close()
        neg.close()
    # the bare-JID message was kept offline and arrives with a non-negative login
    again = login(server, user, resource="later", roster=False, presence=True)
    try:
        again.wait_message(body)
    finally:
        again.close()
