# SPDX-License-Identifier: AGPL-3.0-or-later
"""Step 2: Kurier federates with Prosody and ejabberd (issue 6, "Tests that must pass").

For each peer and each world (conftest.py: test-CA certificates -> SASL EXTERNAL,
self-signed -> Server Dialback): a message both ways, the subscription handshake across,
presence across, and, from the peer's log, how each of the two streams between it and
kurier.test authenticated. kurierd runs with the s2s section of the shared spec
(s2s.hosts maps the peers' domains to their loopback addresses); the peers find
kurier.test through their test hosts file.

Until kurierd has s2s these are skipped by the `kurier` fixture, saying that kurierd
refuses the s2s keys; a kurierd that accepts the keys runs them and they fail or pass on
their own.
"""

from __future__ import annotations

import pytest

from federation import assert_s2s_auth, federate, login, messages_both_ways, \
    presence_across, subscription_handshake
from xmpp_slix import run

PEERS = ["prosody", "ejabberd"]
EXPECTED_AUTH = {"ca": "EXTERNAL", "dialback": "dialback"}


async def _pair(first, second, steps):
    a = await login(first, first.take_user())
    b = await login(second, second.take_user())
    try:
        for step in steps:
            await step(a, b)
    finally:
        await a.stop()
        await b.stop()


@pytest.mark.parametrize("kind", PEERS)
def test_message_kurier_to_peer_and_back(world, kurier, kind):
    """Kurier's outbound stream first: a Kurier user writes, the peer's user answers."""
    run(_pair(kurier, world.peer(kind), [messages_both_ways]), timeout=90)


@pytest.mark.parametrize("kind", PEERS)
def test_message_peer_to_kurier_and_back(world, kurier, kind):
    run(_pair(world.peer(kind), kurier, [messages_both_ways]), timeout=90)


@pytest.mark.parametrize("kind", PEERS)
def test_subscription_handshake_kurier_first(world, kurier, kind):
    """A Kurier user asks first; both approve; both rosters end with subscription=both."""
    run(_pair(kurier, world.peer(kind), [subscription_handshake]), timeout=120)


@pytest.mark.parametrize("kind", PEERS)
def test_subscription_handshake_peer_first(world, kurier, kind):
    run(_pair(world.peer(kind), kurier, [subscription_handshake]), timeout=120)


@pytest.mark.parametrize("kind", PEERS)
def test_presence_across(world, kurier, kind):
    """After the handshake each sees the other available, then each one's changed presence."""
    run(_pair(kurier, world.peer(kind), [subscription_handshake, presence_across]),
        timeout=150)


@pytest.mark.parametrize("kind", PEERS)
def test_whole_scenario_and_authentication(world, kurier, kind):
    """The whole scenario once more, then the peer's log: both streams between it and
    kurier.test authenticated with SASL EXTERNAL (test-CA world) or dialback (self-signed)."""
    peer = world.peer(kind)
    run(federate(peer, kurier), timeout=150)
    assert_s2s_auth(peer, "kurier.test", EXPECTED_AUTH[world.mode])
