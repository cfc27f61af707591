"""The server's side of the handshake of one connection: its ``hello``, and
the check of the client's ``auth`` against every authorised key.

The session calls ``hello`` once on connect and ``answer`` once with the
client's ``auth``; everything else about the handshake (the nonce, the proofs)
stays in here.
"""

from __future__ import annotations

import secrets

from rexec.protocol import (
    SUPPORTED_VERSIONS,
    Auth,
    AuthOk,
    ErrorCode,
    Hello,
    ServerLimits,
    client_proof,
    proofs_match,
    server_proof,
)
from rexec.server.policy import KeyRules


class HandshakeFailed(Exception):
    """The client can't be let in; ``code`` is the fatal error for the wire.

    ``bad_key`` is True when it proved no authorised key (a failure that
    counts against its address), False for a version it can't speak.
    """

    def __init__(self, code: ErrorCode, message: str, *, bad_key: bool) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.bad_key = bad_key


class Handshake:
    """One connection's handshake, from the server's side.

    Args:
        server_name: announced in ``hello`` and bound into the proofs.
    """

    def __init__(self, server_name: str) -> None:
        self._server_name = server_name
        self._nonce = secrets.token_hex(32)

    def hello(self, limits: ServerLimits) -> Hello:
        """The server's first message."""
        return Hello(
            versions=list(SUPPORTED_VERSIONS), nonce=self._nonce, server=self._server_name,
            limits=limits,
        )  # fmt: skip

    def answer(self, auth: Auth, keys: tuple[KeyRules, ...]) -> tuple[KeyRules, AuthOk]:
        """The key of ``keys`` the client proved it holds (the keys in force
        now: a reload may have changed them since ``hello``), and the
        server's proof in return.

        Raises:
            HandshakeFailed: an unsupported version, or no key matched.
        """
        if auth.version not in SUPPORTED_VERSIONS:
            raise HandshakeFailed(
                ErrorCode.VERSION_UNSUPPORTED, "protocol version not supported", bad_key=False
            )
        # Every key is tried, so the time taken says nothing about which matched.
        matched: KeyRules | None = None
        for rules in keys:
            expected = client_proof(rules.key, self._nonce, auth.nonce, self._server_name)
            if proofs_match(expected, auth.mac) and matched is None:
                matched = rules
        if matched is None:
            raise HandshakeFailed(ErrorCode.AUTH_FAILED, "authentication failed", bad_key=True)
        mac = server_proof(matched.key, self._nonce, auth.nonce, self._server_name)
        return matched, AuthOk(mac=mac)
