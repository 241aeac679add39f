# SPDX-License-Identifier: AGPL-3.0-or-later
"""Step 1, the harness proving itself: Prosody <-> ejabberd federate on loopback.

Independent of Kurier. If these fail, the peers or their set-up (addresses, hosts file,
certificates, configs) are broken, and the Kurier interop results mean nothing. Each runs
in both worlds (conftest.py): test-CA certificates -> SASL EXTERNAL, self-signed ->
Server Dialback, and checks in both peers' logs that this is what authenticated the
streams in both directions.
"""

from __future__ import annotations

from federation import assert_s2s_auth, federate
from xmpp_slix import run

EXPECTED_AUTH = {"ca": "EXTERNAL", "dialback": "dialback"}


def test_prosody_to_ejabberd(world):
    """A Prosody user starts: message both ways, subscription handshake, presence across."""
    prosody, ejabberd = world.peer("prosody"), world.peer("ejabberd")
    run(federate(prosody, ejabberd), timeout=150)
    assert_s2s_auth(ejabberd, "prosody.test", EXPECTED_AUTH[world.mode])
    assert_s2s_auth(prosody, "ejabberd.test", EXPECTED_AUTH[world.mode])


def test_ejabberd_to_prosody(world):
    """The same with an ejabberd user starting (over the streams already up)."""
    prosody, ejabberd = world.peer("prosody"), world.peer("ejabberd")
    run(federate(ejabberd, prosody), timeout=150)
