"""The handshake of one connection, step by step: the server's ``hello``, the
client's ``auth``, the server's ``auth_ok`` (protocol.md 3).

``Handshake`` checks that each handshake frame comes from the right side in
the right order and offers only what ``hello`` offered, and records the
``hello`` and ``auth`` frames byte for byte as they travelled, so that both
sides compute their macs over the same transcript (_handshake.py).
``sign_auth`` builds a client's signed ``auth`` over a ``hello`` frame.
_connection.py drives it; the rest of a connection's life is its business.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from pydantic_core import from_json

from ._errors import ErrorCode, LocalProtocolError, ProtocolError, RemoteProtocolError
from ._framing import encode_header
from ._handshake import PROTOCOL_VERSION, SUPPORTED_VERSIONS, Transcript
from ._message_base import MessageBase
from ._session_messages import Auth, AuthOk, Hello
from ._state import Role


class HandshakeStep(enum.Enum):
    """Where the handshake stands; each step names the frame awaited next."""

    HELLO = "hello"  # the server has yet to send (client: receive) hello
    AUTH = "auth"  # the client has yet to send (server: receive) auth
    AUTH_OK = "auth_ok"  # the server has yet to send (client: receive) auth_ok
    DONE = "done"


#: The frame each handshake step expects, who sends it, and the step that follows.
_STEPS: dict[HandshakeStep, tuple[type[MessageBase], Role, HandshakeStep]] = {
    HandshakeStep.HELLO: (Hello, Role.SERVER, HandshakeStep.AUTH),
    HandshakeStep.AUTH: (Auth, Role.CLIENT, HandshakeStep.AUTH_OK),
    HandshakeStep.AUTH_OK: (AuthOk, Role.SERVER, HandshakeStep.DONE),
}


def sign_auth(
    hello_frame: bytes,
    key: bytes,
    *,
    nonce: str,
    version: int = PROTOCOL_VERSION,
    features: Sequence[str] = (),
    binding: bytes = b"",
) -> Auth:
    """The client's ``auth`` answering the ``hello`` frame ``hello_frame`` (as
    received, byte for byte), its mac computed over the header exactly as
    ``encode_frame`` writes it (protocol.md 3.1).

    Raises:
        ValueError: a key, nonce, feature or binding of the wrong form.
    """
    unsigned = Auth.unsigned(version=version, nonce=nonce, features=features)
    transcript = Transcript(hello_frame, encode_header(unsigned), binding)
    return unsigned.signed(transcript.client_mac(key))


class Handshake:
    """The handshake as the side ``role`` sees it.

    Attributes:
        step: the frame awaited next (``HandshakeStep.DONE`` once open).
        hello: the ``hello``, once sent or received.
        hello_frame: the ``hello`` frame as it travelled (b"" before it did).
        version: the protocol version agreed in ``auth``.
        features: the features the client chose in ``auth`` (protocol.md 3.2).
    """

    def __init__(self, role: Role) -> None:
        self.role = role
        self.step = HandshakeStep.HELLO
        self.hello: Hello | None = None
        self.hello_frame = b""
        self.version: int | None = None
        self.features: frozenset[str] = frozenset()
        self._auth_frame = b""  # without its body, the client's mac

    def apply(
        self, message: MessageBase, sender: Role, raw: bytes, fault: type[ProtocolError]
    ) -> None:
        """Take the next handshake frame, sent by this side or, as the raw
        header ``raw``, received from the peer; ``fault`` is the error to
        raise when it is out of order or offers what ``hello`` did not."""
        expected, expected_sender, next_step = _STEPS[self.step]
        if sender is not expected_sender or not isinstance(message, expected):
            raise fault(
                ErrorCode.PROTOCOL_UNEXPECTED,
                f"expected {expected_sender.value} {expected.model_fields['type'].default}",
            )
        if isinstance(message, Hello):
            self.hello = message
            self.hello_frame = raw
        elif isinstance(message, Auth):
            self._accept_auth(message, fault)
            self._auth_frame = raw
        self.step = next_step

    def _accept_auth(self, auth: Auth, fault: type[ProtocolError]) -> None:
        assert self.hello is not None  # the handshake's order
        if auth.version not in self.hello.versions:
            # protocol.md [handshake.version]: the version must be one hello offered.
            raise fault(ErrorCode.VERSION_UNSUPPORTED, "protocol version not offered")
        if not set(auth.features) <= set(self.hello.features):
            # protocol.md [handshake.features]: only features hello offered.
            raise fault(ErrorCode.FEATURE_UNSUPPORTED, "feature not offered")
        self.version = auth.version
        self.features = frozenset(auth.features)

    def transcript(self, binding: bytes = b"") -> Transcript:
        """The handshake as it travelled (protocol.md 3.1), once ``auth`` has
        been sent or received; ``binding`` is the TLS channel binding (b""
        without TLS).

        Raises:
            LocalProtocolError: no ``auth`` yet.
        """
        if not self._auth_frame:
            raise LocalProtocolError(ErrorCode.PROTOCOL_UNEXPECTED, "no auth yet")
        return Transcript(self.hello_frame, self._auth_frame, binding)

    def version_refusal(self, raw: bytes) -> RemoteProtocolError | None:
        """protocol.md [handshake.version]: for a server awaiting ``auth``, the
        error for the raw header ``raw`` when it is an ``auth`` of a version we
        do not speak, even when its shape is another version's (which our
        schema rejects first); None otherwise."""
        if self.role is not Role.SERVER or self.step is not HandshakeStep.AUTH:
            return None
        try:
            header = from_json(raw[4:], allow_inf_nan=False)
        except ValueError:
            return None
        if not isinstance(header, dict) or header.get("type") != "auth":
            return None
        version = header.get("version")
        if type(version) is int and version not in SUPPORTED_VERSIONS:
            return RemoteProtocolError(
                ErrorCode.VERSION_UNSUPPORTED, "protocol version not offered"
            )
        return None


__all__ = ["sign_auth"]
