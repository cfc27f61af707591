"""``Connection``: the protocol state of one connection, for either role.

It never touches a socket. Feed it the bytes received with ``receive_data`` and
take messages out with ``next_event``; pass every message to be sent through
``send`` and write the bytes it returns. Both directions are checked against the
same rules: a violation by the peer raises ``RemoteProtocolError`` (answer with
an ``error`` frame carrying its code, then close) and leaves the connection in
``ERROR``, where it reads nothing more; one by this side raises
``LocalProtocolError`` (a bug here, or a race the caller handles; nothing is
sent and the state is unchanged).

The handshake's order and transcript are _handshake_steps.py's, each
command's rules _commands.py's; this module holds them together with the
frame decoder, the connection's state and the size limits of what it sends.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._command_messages import Run
from ._commands import Command, apply_client_frame, apply_server_frame, open_command
from ._errors import ErrorCode, LocalProtocolError, ProtocolError, RemoteProtocolError
from ._framing import FrameDecoder, encode_frame, encode_header
from ._handshake import Transcript, choose_version
from ._handshake_steps import Handshake, HandshakeStep, sign_auth
from ._limits import Limits
from ._message_base import MessageBase
from ._messages import Message
from ._session_messages import Auth, Error, Hello, ServerLimits
from ._state import OPEN_SENDS, ConnectionState, Role, other
from ._transfer_messages import Get, Put

#: A peer never sends a header or body larger than these, in either direction;
#: a server may announce lower limits for what it receives.
PROTOCOL_MAX_HEADER = Limits().max_header
PROTOCOL_MAX_BODY = Limits().max_body


class Connection:
    """Protocol state of one connection.

    Args:
        role: which end of the connection this object is.
        limits: for a server, the limits it enforces and announces; for a
            client, ignored except that the defaults bound what it accepts.

    Attributes:
        state: where the connection stands (``ConnectionState``).
        server_limits: for a client, the limits the server announced.
        version: the protocol version agreed in the handshake.
        features: the features the client chose in ``auth`` (protocol.md 3.2).
    """

    def __init__(self, role: Role, *, limits: Limits | None = None) -> None:
        self.role = role
        self.limits = limits or Limits()
        self.state = ConnectionState.HANDSHAKE
        self.server_limits: ServerLimits | None = None
        self._handshake = Handshake(role)
        self._commands: dict[int, Command] = {}
        self._last_id = -1
        self._error: RemoteProtocolError | None = None
        self._eof_sent = False
        self._peer = other(role)
        # What each side may send once open, looked up once (not per frame).
        self._own_sends, self._peer_sends = OPEN_SENDS[role], OPEN_SENDS[other(role)]
        self._stdin_window = self.limits.stdin_window
        receive_limits = self.limits if role is Role.SERVER else Limits()
        self._post_auth_max_header = receive_limits.max_header
        self._decoder = FrameDecoder(
            max_header=receive_limits.pre_auth_max_header,
            max_body=receive_limits.max_body,
        )
        self._decoder.keep_raw = True  # until the handshake is done

    # --- the handshake -------------------------------------------------------

    def announced_limits(self) -> ServerLimits:
        """The ``limits`` object a server puts in its ``hello``."""
        return ServerLimits(
            max_header=self.limits.max_header,
            max_body=self.limits.max_body,
            stdin_window=self.limits.stdin_window,
            max_commands=self.limits.max_commands,
        )

    @property
    def version(self) -> int | None:
        """The protocol version agreed in the handshake."""
        return self._handshake.version

    @property
    def features(self) -> frozenset[str]:
        """The features the client chose in ``auth`` (protocol.md 3.2)."""
        return self._handshake.features

    @property
    def hello(self) -> Hello | None:
        """The ``hello`` of this connection, once sent or received."""
        return self._handshake.hello

    @property
    def hello_frame(self) -> bytes:
        """The ``hello`` frame as it travelled (b"" before it did)."""
        return self._handshake.hello_frame

    def sign_auth(
        self,
        key: bytes,
        *,
        nonce: str,
        binding: bytes = b"",
        features: Sequence[str] = (),
        version: int | None = None,
    ) -> Auth:
        """For a client, the ``auth`` answering the ``hello`` received: the
        highest common version unless ``version`` is given, and the mac over
        the transcript (protocol.md 3.1). Send it with ``send``.

        Raises:
            LocalProtocolError: no hello yet, or no version in common.
        """
        hello = self._handshake.hello
        if hello is None or self.role is not Role.CLIENT:
            raise LocalProtocolError(ErrorCode.PROTOCOL_UNEXPECTED, "no hello received")
        if version is None:
            version = choose_version(hello.versions)
            if version is None:
                raise LocalProtocolError(
                    ErrorCode.VERSION_UNSUPPORTED, "no protocol version in common"
                )
        return sign_auth(
            self._handshake.hello_frame, key, nonce=nonce, version=version, features=features,
            binding=binding,
        )  # fmt: skip

    def transcript(self, binding: bytes = b"") -> Transcript:
        """The handshake as it travelled (protocol.md 3.1), once ``auth`` has
        been sent or received; ``binding`` is the TLS channel binding (b""
        without TLS).

        Raises:
            LocalProtocolError: no ``auth`` yet.
        """
        return self._handshake.transcript(binding)

    # --- bytes in, messages out ---------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes received from the peer; ``b""`` means the peer closed
        (for a server, between frames, a half-close: protocol.md
        [close.client.eof]). Bytes that arrive once the peer has broken the
        protocol are discarded.

        Raises:
            RemoteProtocolError: ``frame.truncated`` when the stream ends inside
                a frame.
        """
        if self.state is ConnectionState.ERROR:
            return
        if data:
            self._decoder.feed(data)
            return
        if self.role is Role.SERVER and not self._decoder.mid_frame:
            # A client's end of stream between frames is a half-close, not a
            # disconnect: its running commands go on, and their frames must
            # still be sendable.
            return
        mid_frame = self._decoder.mid_frame
        self.state = ConnectionState.CLOSED
        self._commands.clear()
        if mid_frame:
            raise RemoteProtocolError(ErrorCode.FRAME_TRUNCATED, "connection closed inside a frame")

    def next_event(self) -> Message | None:
        """The next message from the peer, or None until more data arrives.

        Frames the protocol drops are not returned: those for a command that
        has already ended (a race the peer can't avoid, such as a signal
        crossing the exit frame), and those of [command.frames.dropped].

        Raises:
            RemoteProtocolError: the peer broke the protocol; send an ``error``
                frame with the exception's code, then close. The connection is
                then in ``ERROR``, and every later call raises the same error.
        """
        if self._error is not None:
            raise self._error
        try:
            while True:
                message = self._decoder.next_message()
                if message is None:
                    return None
                if self._apply(message, sender=self._peer, raw=self._decoder.raw_header):
                    return message
        except RemoteProtocolError as exc:
            self._error = self._handshake.version_refusal(self._decoder.raw_header) or exc
            self.state = ConnectionState.ERROR
            raise self._error from exc

    # --- messages in, bytes out ---------------------------------------------------

    def send(self, message: MessageBase) -> bytes:
        """Check that sending ``message`` is legal now, record it, and return
        the bytes to write.

        Raises:
            LocalProtocolError: the message is illegal in the current state,
                or larger than the peer accepts; nothing changes.
        """
        # Encode and size-check first: a message that can't be sent must
        # leave the state (stdin credit, command table) untouched.
        frame = encode_frame(message)
        # The handshake records its frames as they travel, without the body
        # (an auth's mac); no later frame needs the copy.
        handshake = self.state is ConnectionState.HANDSHAKE
        raw = frame[: len(frame) - message.data_size] if handshake else b""
        self._record(message, len(frame) - 4 - message.data_size, raw)
        return frame

    def send_header(self, message: MessageBase) -> bytes:
        """``send`` without the body: check and record ``message`` and return
        its length prefix and header only. The caller writes exactly
        ``data_size`` body bytes right after them, nothing between (the
        message's own ``data``, or bytes the kernel moves from a pipe), so a
        body is never copied into a frame. Not during the handshake, whose
        transcript is made of whole frames.

        Raises:
            LocalProtocolError: as ``send``.
        """
        if self.state is ConnectionState.HANDSHAKE:
            raise LocalProtocolError(ErrorCode.INTERNAL, "the handshake sends whole frames")
        header = encode_header(message)
        self._record(message, len(header) - 4, b"")
        return header

    def _record(self, message: MessageBase, header_length: int, raw: bytes) -> None:
        """Check that ``message`` (its header ``header_length`` bytes) may be
        sent now and record it; raise ``LocalProtocolError`` otherwise."""
        if self._eof_sent:
            raise LocalProtocolError(ErrorCode.PROTOCOL_UNEXPECTED, "this side has half-closed")
        self._check_size(header_length, message.data_size)
        if not self._apply(message, sender=self.role, raw=raw):
            raise LocalProtocolError(
                ErrorCode.PROTOCOL_UNEXPECTED,
                f"{message.type} for a command that has ended",
            )

    def send_eof(self) -> None:
        """Record that this client half-closes (protocol.md [close.client.eof]):
        nothing more may be sent, not even a ``pong``. The caller then shuts
        down its writing side.

        Raises:
            LocalProtocolError: a server can't half-close.
        """
        if self.role is not Role.CLIENT:
            raise LocalProtocolError(ErrorCode.PROTOCOL_UNEXPECTED, "only a client half-closes")
        self._eof_sent = True

    @property
    def can_send(self) -> bool:
        """False once this side has half-closed, failed or closed."""
        return not self._eof_sent and self.state in (
            ConnectionState.HANDSHAKE, ConnectionState.OPEN
        )  # fmt: skip

    # --- what the shells ask ------------------------------------------------------

    @property
    def mid_frame(self) -> bool:
        """True while part of a frame has arrived but not all of it (the
        server's frame deadline runs in this state)."""
        return self._decoder.mid_frame

    def stdin_credit(self, command_id: int) -> int:
        """How many stdin bytes the client may send now for ``command_id``
        (0 when the command is unknown, ended, or its stdin is closed)."""
        command = self._commands.get(command_id)
        if command is None or not command.stdin_open:
            return 0
        return command.credit

    def is_active(self, command_id: int) -> bool:
        """True between a command's opening frame (``run``, ``put`` or ``get``)
        and its terminal frame."""
        return command_id in self._commands

    @property
    def active_commands(self) -> int:
        return len(self._commands)

    @property
    def last_command_id(self) -> int:
        """The highest command id used so far (-1 before the first command)."""
        return self._last_id

    # --- rules -----------------------------------------------------------------

    def _check_size(self, header_length: int, data_size: int) -> None:
        """Refuse to send what the peer would reject as too large
        (protocol.md [limits.announced])."""
        if self.role is Role.CLIENT and self.server_limits is not None:
            max_header = self.server_limits.max_header
            max_body = self.server_limits.max_body
        else:
            max_header, max_body = PROTOCOL_MAX_HEADER, PROTOCOL_MAX_BODY
        if header_length > max_header:
            raise LocalProtocolError(
                ErrorCode.FRAME_TOO_LARGE, f"header above the peer's limit of {max_header}"
            )
        if data_size > max_body:
            raise LocalProtocolError(
                ErrorCode.FRAME_BODY_TOO_LARGE, f"body above the peer's limit of {max_body}"
            )

    def _apply(self, message: MessageBase, sender: Role, raw: bytes) -> bool:
        """Check ``message`` (``raw``: its header as it travelled, during the
        handshake) against the rules and update the state.

        Returns False for a frame from the peer that must be dropped.
        """
        fault: type[ProtocolError] = (
            LocalProtocolError if sender is self.role else RemoteProtocolError
        )
        if self.state is ConnectionState.CLOSED:
            raise fault(ErrorCode.PROTOCOL_UNEXPECTED, "the connection is closed")
        if isinstance(message, Error) and message.fatal:
            self.state = ConnectionState.CLOSED
            return True
        if self.state is ConnectionState.ERROR:
            raise fault(
                ErrorCode.PROTOCOL_UNEXPECTED,
                "the peer broke the protocol: only a fatal error may follow",
            )
        if self.state is ConnectionState.HANDSHAKE:
            self._apply_handshake(message, sender, raw, fault)
            return True
        if not isinstance(message, self._own_sends if sender is self.role else self._peer_sends):
            raise fault(
                ErrorCode.PROTOCOL_UNEXPECTED,
                f"a {sender.value} may not send {message.type} now",
            )
        command_id = getattr(message, "id", None)
        if command_id is None:
            return True  # ping, pong, connection-level error
        if isinstance(message, (Run, Put, Get)):
            self._register(message, fault)
            return True
        command = self._commands.get(command_id)
        if command is None:
            if command_id > self._last_id:
                raise fault(ErrorCode.COMMAND_BAD_ID, "no command has this id")
            if sender is self.role or sender is Role.SERVER:
                # A server never speaks of an ended command; neither do we.
                raise fault(ErrorCode.PROTOCOL_UNEXPECTED, "the command has ended")
            return False  # a client frame that crossed the command's end
        if sender is Role.CLIENT:
            return apply_client_frame(message, command, fault)
        if apply_server_frame(message, command, fault):
            del self._commands[command_id]  # its terminal frame
        return True

    def _apply_handshake(
        self, message: MessageBase, sender: Role, raw: bytes, fault: type[ProtocolError]
    ) -> None:
        self._handshake.apply(message, sender, raw, fault)
        if isinstance(message, Hello) and self.role is Role.CLIENT:
            self.server_limits = message.limits
            self._stdin_window = message.limits.stdin_window
        if self._handshake.step is HandshakeStep.DONE:
            self.state = ConnectionState.OPEN
            self._decoder.max_header = self._post_auth_max_header
            self._decoder.keep_raw = False

    def _register(self, message: Run | Put | Get, fault: type[ProtocolError]) -> None:
        # protocol.md [command.id.increasing]: run, put and get share one id space.
        if message.id <= self._last_id:
            raise fault(ErrorCode.COMMAND_BAD_ID, "command ids must increase")
        self._last_id = message.id
        self._commands[message.id] = open_command(message, self._stdin_window)


__all__ = ["PROTOCOL_MAX_BODY", "PROTOCOL_MAX_HEADER", "Connection"]
