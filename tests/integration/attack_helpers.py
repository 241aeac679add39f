# SPDX-License-Identifier: AGPL-3.0-or-later
"""What the attack tests (test_attacks.py, test_hostile.py, test_limits.py) share: two
bystander sessions that must not notice an attack, a message exchange that proves a pair of
sessions still works, and the stream error conditions a server may use for restricted XML.
The `bystanders` fixture is made available to every test by conftest.py."""

import uuid

import pytest


def exchange(a, b, text: str) -> None:
    """a and b (logged-in raw clients) send each other a message and each receives it."""
    tag = "%s %s" % (text, uuid.uuid4().hex[:8])
    a.send_message(b.jid, tag + " a->b")
    assert b.wait_message(tag + " a->b").get("from") == a.jid
    b.send_message(a.jid, tag + " b->a")
    assert a.wait_message(tag + " b->a").get("from") == b.jid


def restricted_conditions(server) -> set:
    """RFC 6120 §11.1 asks for <restricted-xml/>; Prosody 0.12 reports <not-well-formed/>."""
    return {"restricted-xml"} if not server.external else {"restricted-xml", "not-well-formed"}


# Memory the server may keep after an attack (ASan quarantines freed memory, so the bound is
# loose; leaks are LeakSanitizer's job when the server stops).
RSS_GROWTH_BOUND_KB = 64 * 1024


@pytest.fixture
def bystanders(server):
    """bob and carol, logged in before the attack. Afterwards: they still talk both ways, a
    fresh login works and talks, and our server's memory grew by less than the bound."""
    bob, carol = server.raw(), server.raw()
    try:
        bob.login("bob", server.password("bob"))
        carol.login("carol", server.password("carol"))
        base = server.rss_kb()
        yield bob, carol
        exchange(bob, carol, "bystanders still talk")
        with server.raw() as fresh:
            fresh.login("alice", server.password("alice"))
            exchange(fresh, bob, "fresh client talks")
        grown = server.rss_kb() - base
        print("\nRSS growth during the attack: %d kB" % grown)
        if server.proc is not None:
            assert grown < RSS_GROWTH_BOUND_KB, "server RSS grew by %d kB" % grown
    finally:
        bob.close()
        carol.close()
