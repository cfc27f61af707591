"""The server's side of the handshake of one connection: its ``hello``, and
the check of the client's ``auth`` against every authorised key.

The session calls ``hello`` once on connect and ``answer`` once with the
client's ``auth``; the macs themselves are computed by the protocol core, over
the transcript its ``Connection`` recorded (protocol.md 3.1).
"""

from __future__ import annotations

import secrets

from rexec.protocol import (
    NONCE_SIZE,
    SUPPORTED_FEATURES,
    SUPPORTED_VERSIONS,
    Auth,
    AuthOk,
    ErrorCode,
    Hello,
    ServerLimits,
    Transcript,
    macs_match,
)
from rexec.server.policy import KeyRules


class HandshakeFailed(Exception):
    """The client proved no authorised key (a failure that counts against its
    address); ``code`` is the fatal error for the wire."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Handshake:
    """One connection's handshake, from the server's side.

    Args:
        server_name: announced in ``hello``, and so covered by the macs.
    """

    def __init__(self, server_name: str) -> None:
        self._server_name = server_name
        self._nonce = secrets.token_hex(NONCE_SIZE)

    def hello(self, limits: ServerLimits) -> Hello:
        """The server's first message."""
        return Hello(
            versions=list(SUPPORTED_VERSIONS), features=sorted(SUPPORTED_FEATURES),
            nonce=self._nonce, server=self._server_name, limits=limits,
        )  # fmt: skip

    def answer(
        self, auth: Auth, transcript: Transcript, keys: tuple[KeyRules, ...]
    ) -> tuple[KeyRules, AuthOk]:
        """The key of ``keys`` the client proved it holds over ``transcript``
        (the keys in force now: a reload may have changed them since
        ``hello``), and the server's proof in return. The protocol core has
        already refused a version or feature hello did not offer.

        Raises:
            HandshakeFailed: no key matched: the client holds none of them, or
                the handshake was altered on its way (another binding, a
                changed hello).
        """
        # Every key is tried, so the time taken says nothing about which matched.
        matched: KeyRules | None = None
        for rules in keys:
            if macs_match(transcript.client_mac(rules.key), auth.mac) and matched is None:
                matched = rules
        if matched is None:
            raise HandshakeFailed(ErrorCode.AUTH_FAILED, "authentication failed")
        return matched, AuthOk.with_mac(transcript.server_mac(matched.key, auth.mac))
