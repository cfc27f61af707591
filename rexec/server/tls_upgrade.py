"""The TLS handshake of one admitted connection.

rexecd listens on plain TCP even under TLS: a session is admitted
(rexec/server/admission.py) as soon as its TCP connection is accepted, and
only then runs its TLS handshake, through ``loop.start_tls``. So a connection
still in its handshake holds a slot of the pre-authentication table like any
other, and gives way like any other when a newer one needs the slot: its TCP
connection is dropped (nothing can be said to a client whose TLS is not up).
A flood of half-finished handshakes, which needs neither a certificate nor
the key, then costs the daemon bounded memory and descriptors. The handshake
is also bounded in time (``TLS_HANDSHAKE_TIMEOUT``).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

#: Seconds a client has to complete its TLS handshake (before ``hello``).
TLS_HANDSHAKE_TIMEOUT = 10.0

#: Called once TLS is up: the TLS transport, what it delivered before this
#: call (bytes, and whether the client's end of input came too).
Ready = Callable[[asyncio.Transport, bytes, bool], None]


class TlsUpgrade:
    """Upgrades the TCP transport ``raw`` of ``protocol`` to TLS.

    ``ready`` is called when TLS is up; ``failed`` when the handshake fails,
    times out, or the connection is dropped during it (asyncio then calls no
    ``connection_lost``: the protocol never had a TLS connection). Dropped
    after its handshake but before ``ready``, the connection's
    ``connection_lost`` follows as usual, and neither is called.

    Between the handshake's end and ``ready`` (the task's next turn), TLS may
    already deliver data to the protocol: it passes it to ``hold`` and
    ``hold_eof``, and gets it back with ``ready``.
    """

    def __init__(
        self,
        raw: asyncio.Transport,
        protocol: asyncio.Protocol,
        context: ssl.SSLContext,
        ready: Ready,
        failed: Callable[[], None],
    ) -> None:
        self.raw = raw
        self._ready = ready
        self._failed = failed
        self._early = bytearray()
        self._early_eof = False
        raw.pause_reading()  # the handshake reads it, once it starts
        self._task = asyncio.get_running_loop().create_task(self._run(protocol, context))

    def drop(self) -> None:
        """Drop the connection now (displaced, or the server is shutting down)."""
        self.raw.abort()

    def hold(self, data: bytes) -> None:
        self._early += data

    def hold_eof(self) -> None:
        self._early_eof = True

    async def _run(self, protocol: asyncio.Protocol, context: ssl.SSLContext) -> None:
        raw = self.raw
        if raw.is_closing():
            return  # dropped before its handshake began: connection_lost follows
        try:
            tls = await asyncio.get_running_loop().start_tls(
                raw, protocol, context, server_side=True,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT,
            )  # fmt: skip
        except OSError:  # ssl.SSLError, a reset, the handshake timeout
            tls = None
        if tls is None:  # failed, or dropped during the handshake
            self._failed()
        elif not raw.is_closing():  # else dropped just after it: connection_lost follows
            self._ready(tls, bytes(self._early), self._early_eof)
