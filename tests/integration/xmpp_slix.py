# SPDX-License-Identifier: AGPL-3.0-or-later
"""slixmpp clients for the integration tests, and an asyncio runner with a deadline.

A test builds its clients inside a coroutine run by `run(coro, timeout)`, so each
test gets a fresh event loop and a hung server fails the test with
asyncio.TimeoutError instead of blocking the suite.

Client connects to the server under test at (server.host, port) while using
server.domain for the stream 'to', SNI and certificate checking: the DNS lookup
of slixmpp is replaced by that fixed address.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Optional

import slixmpp


def run(coro, timeout: float = 30.0):
    """Run a coroutine on a new event loop; fail if it takes longer than timeout."""
    async def bounded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


class Client(slixmpp.ClientXMPP):
    """A slixmpp client that records what happens to it."""

    def __init__(self, server, user: str, resource: str, password: Optional[str] = None,
                 sasl_mech: Optional[str] = "SCRAM-SHA-256",
                 tls_max: Optional[ssl.TLSVersion] = None, presence: bool = True):
        jid = "%s@%s/%s" % (user, server.domain, resource)
        super().__init__(jid, server.password(user) if password is None else password,
                         sasl_mech=sasl_mech)
        self.kr_server = server
        self.ca_certs = Path(server.ca)
        self.ssl_context = ssl.create_default_context(cafile=server.ca)
        if tls_max is not None:
            self.ssl_context.maximum_version = tls_max
        self.send_initial_presence = presence
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.started = asyncio.get_running_loop().create_future()
        self.auth_failures = []
        mechanisms = self["feature_mechanisms"]
        mechanisms.sasl_callback = self._credentials(mechanisms._default_credentials)
        self.add_event_handler("session_start", self._on_start)
        self.add_event_handler("failed_auth", self._on_failed_auth)
        self.add_event_handler("failed_all_auth", self._on_failed_all_auth)
        self.add_event_handler("message", self._on_message)

    def _credentials(self, default):
        # CPython returns "tls-unique" data even on TLS 1.3, where it is undefined
        # (RFC 9266 §3, CPython issue #95341), so slixmpp would send the gs2 flag 'y'
        # ("I could bind, you cannot") to a server that offers -PLUS, which the server
        # must then refuse (RFC 5802 §6).  A client that cannot bind says 'n'.
        def credentials(required, optional):
            creds = default(required, optional)
            sock = self.socket
            if creds.get("channel_binding") is not None and isinstance(sock, ssl.SSLObject) \
                    and sock.version() == "TLSv1.3":
                creds["channel_binding"] = None
            return creds
        return credentials

    async def get_dns_records(self, domain, port=None):
        # (service host name, address to connect to, port)
        return [(domain, self.kr_server.host, self.address[1])]

    def _on_start(self, _event) -> None:
        if self.send_initial_presence:
            self.send_presence()
        if not self.started.done():
            self.started.set_result(True)

    def _on_failed_auth(self, stanza) -> None:
        self.auth_failures.append(stanza["condition"])

    def _on_failed_all_auth(self, _event) -> None:
        if not self.started.done():
            self.started.set_result(False)

    def _on_message(self, msg) -> None:
        self.inbox.put_nowait(msg)

    @property
    def mechanism_used(self) -> Optional[str]:
        mech = self["feature_mechanisms"].mech
        return None if mech is None else mech.name

    async def start(self, direct_tls: bool = False, timeout: float = 10.0) -> bool:
        """Connect and wait for the session (True) or a final auth failure (False)."""
        srv = self.kr_server
        port = srv.direct_port if direct_tls else srv.port
        self.connect(address=(srv.domain, port), use_ssl=direct_tls,
                     force_starttls=not direct_tls)
        return await asyncio.wait_for(self.started, timeout)

    async def stop(self, timeout: float = 5.0) -> None:
        if self.transport is None:
            return
        try:
            await asyncio.wait_for(self.disconnect(), timeout)
        except asyncio.TimeoutError:
            self.abort()

    async def next_message(self, timeout: float = 10.0):
        return await asyncio.wait_for(self.inbox.get(), timeout)

    async def message_with_body(self, body: str, timeout: float = 10.0):
        """The next received message with this body; others are dropped."""
        async def find():
            while True:
                msg = await self.inbox.get()
                if msg["body"] == body:
                    return msg
        return await asyncio.wait_for(find(), timeout)
