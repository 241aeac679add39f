# SPDX-License-Identifier: AGPL-3.0-or-later
"""Harness of the kurierd integration tests (pytest + slixmpp + a raw XMPP client).

By default the session starts its own kurierd on loopback: a temporary directory
with a self-signed ECDSA P-256 certificate for 'localhost', a config file,
accounts created with kurierctl, and the server run under the sanitizers.  At the
end the server gets SIGTERM and must exit 0 with no sanitizer report in its log.

Against an already running server (how we check our expectations with Prosody):

    /usr/bin/python3 -m pytest tests/integration --kurier-host 127.0.0.1 \
        --kurier-port 5222 --kurier-direct-port 5223 --kurier-domain localhost \
        --kurier-ca /path/to/cert.pem

Then nothing is started, tests marked kurier_only are skipped, and these accounts
must exist with these passwords (see password_for):

    alice, bob, carol, load0 .. load49     password "<localpart>-Kurier-test-pw"
                                           e.g. alice -> "alice-Kurier-test-pw"

Binaries: $KURIERD and $KURIERCTL, defaulting to build-test/kurierd and
build-test/kurierctl of this repository.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from attack_helpers import bystanders  # noqa: F401  (a fixture for every test)
from kurier_server import (ACCOUNTS, REPO_ROOT, Server, _stop, password_for,  # noqa: F401
                           start_server, stop_server)


def pytest_addoption(parser):
    group = parser.getgroup("kurier", "server under test")
    group.addoption("--kurier-host", default=None,
                    help="use an already running server at this address (starts nothing)")
    group.addoption("--kurier-port", type=int, default=None, help="its STARTTLS c2s port")
    group.addoption("--kurier-direct-port", type=int, default=None,
                    help="its direct-TLS c2s port (XEP-0368)")
    group.addoption("--kurier-domain", default="localhost", help="the XMPP domain it serves")
    group.addoption("--kurier-ca", default=None,
                    help="PEM certificate to verify the external server against")


def _external(config) -> bool:
    return config.getoption("--kurier-host") is not None \
        or config.getoption("--kurier-port") is not None


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "kurier_only: checks a Kurier-specific limit or feature; "
        "skipped against an external server")


def pytest_collection_modifyitems(config, items):
    if not _external(config):
        return
    skip = pytest.mark.skip(reason="Kurier-specific; skipped against an external server")
    for item in items:
        if "kurier_only" in item.keywords:
            item.add_marker(skip)



@pytest.fixture(scope="session")
def server(request, tmp_path_factory):
    config = request.config
    if _external(config):
        port = config.getoption("--kurier-port") or 5222
        direct = config.getoption("--kurier-direct-port") or 5223
        ca = config.getoption("--kurier-ca")
        if not ca:
            pytest.fail("--kurier-ca is required with an external server", pytrace=False)
        yield Server(host=config.getoption("--kurier-host") or "127.0.0.1", port=port,
                     direct_port=direct, domain=config.getoption("--kurier-domain"),
                     ca=str(Path(ca).resolve()), external=True)
        return

    srv = start_server(tmp_path_factory.mktemp("kurier"))
    yield srv
    _stop(srv)


@pytest.fixture(autouse=True)
def server_survives(server):
    """Every test also checks that the server process is still alive after it."""
    yield
    if server.proc is not None and server.proc.poll() is not None:
        pytest.fail("kurierd died during this test (exit status %d); log tail:\n%s"
                    % (server.proc.returncode, server.log_tail()), pytrace=False)
