"""``Connection``: the protocol state of one connection, for either role.

It never touches a socket. Feed it the bytes received with ``receive_data`` and
take messages out with ``next_event``; pass every message to be sent through
``send`` and write the bytes it returns. Both directions are checked against the
same rules: a violation by the peer raises ``RemoteProtocolError`` (answer with
an ``error`` frame carrying its code, then close), one by this side raises
``LocalProtocolError`` (a bug here; nothing is sent).
"""

from __future__ import annotations

from ._commands import Command, apply_client_frame, apply_server_frame, open_command
from ._errors import ErrorCode, LocalProtocolError, ProtocolError, RemoteProtocolError
from ._framing import FrameDecoder, encode_frame
from ._limits import Limits
from ._messages import Auth, Error, Get, Hello, Put, Run, ServerLimits, _Message
from ._state import (
    HANDSHAKE_STEPS,
    OPEN_SENDS,
    ConnectionState,
    HandshakeStep,
    Role,
    other,
)

#: Protocol versions this implementation speaks.
SUPPORTED_VERSIONS = (1,)

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
    """

    def __init__(self, role: Role, *, limits: Limits | None = None) -> None:
        self.role = role
        self.limits = limits or Limits()
        self.state = ConnectionState.HANDSHAKE
        self._step = HandshakeStep.HELLO
        self._commands: dict[int, Command] = {}
        self._last_id = -1
        self._versions: tuple[int, ...] = ()  # from hello, sent or received
        self._stdin_window = self.limits.stdin_window
        receive_limits = self.limits if role is Role.SERVER else Limits()
        self._post_auth_max_header = receive_limits.max_header
        self._decoder = FrameDecoder(
            max_header=receive_limits.pre_auth_max_header,
            max_body=receive_limits.max_body,
        )
        #: For a client, the limits the server announced in ``hello``.
        self.server_limits: ServerLimits | None = None

    # --- public API ----------------------------------------------------------

    def announced_limits(self) -> ServerLimits:
        """The ``limits`` object a server puts in its ``hello``."""
        return ServerLimits(
            max_header=self.limits.max_header,
            max_body=self.limits.max_body,
            stdin_window=self.limits.stdin_window,
            max_commands=self.limits.max_commands,
        )

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes received from the peer; ``b""`` means the peer closed.

        Raises:
            RemoteProtocolError: ``frame.truncated`` when the stream ends inside
                a frame.
        """
        if data:
            self._decoder.feed(data)
            return
        if self.role is Role.SERVER and not self._decoder.mid_frame:
            # A client's end of stream between frames is a half-close, not a
            # disconnect (protocol.md [close.client.eof]): its running commands
            # go on, and their frames must still be sendable.
            return
        self.state = ConnectionState.CLOSED
        self._commands.clear()
        if self._decoder.mid_frame:
            raise RemoteProtocolError(
                ErrorCode.FRAME_TRUNCATED, "connection closed inside a frame"
            )

    def next_event(self) -> _Message | None:
        """The next message from the peer, or None until more data arrives.

        Frames for a command that has already ended (a race the peer can't
        avoid, such as a signal crossing the exit frame) are dropped here.

        Raises:
            RemoteProtocolError: the peer broke the protocol; send an ``error``
                frame with the exception's code, then close.
        """
        while True:
            message = self._decoder.next_message()
            if message is None:
                return None
            if self._apply(message, sender=other(self.role)):
                return message

    def send(self, message: _Message) -> bytes:
        """Check that sending ``message`` is legal now, record it, and return
        the bytes to write.

        Raises:
            LocalProtocolError: the message is illegal in the current state,
                or larger than the peer accepts.
        """
        # Encode and size-check first: a message that can't be sent must
        # leave the state (stdin credit, command table) untouched.
        frame = encode_frame(message)
        self._check_size(frame, message.data_size)
        if not self._apply(message, sender=self.role):
            raise LocalProtocolError(
                ErrorCode.PROTOCOL_UNEXPECTED,
                f"{message.type} for a command that has ended",
            )
        return frame

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

    def _check_size(self, frame: bytes, data_size: int) -> None:
        """Refuse to send what the peer would reject as too large
        (protocol.md [limits.announced])."""
        if self.role is Role.CLIENT and self.server_limits is not None:
            max_header = self.server_limits.max_header
            max_body = self.server_limits.max_body
        else:
            max_header, max_body = PROTOCOL_MAX_HEADER, PROTOCOL_MAX_BODY
        if len(frame) - 4 - data_size > max_header:
            raise LocalProtocolError(
                ErrorCode.FRAME_TOO_LARGE, f"header above the peer's limit of {max_header}"
            )
        if data_size > max_body:
            raise LocalProtocolError(
                ErrorCode.FRAME_BODY_TOO_LARGE, f"body above the peer's limit of {max_body}"
            )

    def _apply(self, message: _Message, sender: Role) -> bool:
        """Check ``message`` against the rules and update the state.

        Returns False for a stale frame from the peer that must be dropped.
        """
        fault: type[ProtocolError] = (
            LocalProtocolError if sender is self.role else RemoteProtocolError
        )
        if self.state is ConnectionState.CLOSED:
            raise fault(ErrorCode.PROTOCOL_UNEXPECTED, "the connection is closed")
        if isinstance(message, Error) and message.fatal:
            self.state = ConnectionState.CLOSED
            return True
        if self.state is ConnectionState.HANDSHAKE:
            self._apply_handshake(message, sender, fault)
            return True
        if not isinstance(message, OPEN_SENDS[sender]):
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
            apply_client_frame(message, command, fault)
        elif apply_server_frame(message, command, fault):
            del self._commands[command_id]  # its terminal frame
        return True

    def _apply_handshake(
        self, message: _Message, sender: Role, fault: type[ProtocolError]
    ) -> None:
        expected, expected_sender, next_step = HANDSHAKE_STEPS[self._step]
        if sender is not expected_sender or not isinstance(message, expected):
            raise fault(
                ErrorCode.PROTOCOL_UNEXPECTED,
                f"expected {expected_sender.value} {expected.model_fields['type'].default}",
            )
        if isinstance(message, Hello):
            self._versions = tuple(message.versions)
            if self.role is Role.CLIENT:
                self.server_limits = message.limits
                self._stdin_window = message.limits.stdin_window
        if isinstance(message, Auth) and message.version not in self._versions:
            # protocol.md [handshake.version]: the version must be one hello offered.
            raise fault(ErrorCode.VERSION_UNSUPPORTED, "protocol version not offered")
        self._step = next_step
        if next_step is HandshakeStep.DONE:
            self.state = ConnectionState.OPEN
            self._decoder.max_header = self._post_auth_max_header

    def _register(self, message: Run | Put | Get, fault: type[ProtocolError]) -> None:
        # protocol.md [command.id.increasing]: run, put and get share one id space.
        if message.id <= self._last_id:
            raise fault(ErrorCode.COMMAND_BAD_ID, "command ids must increase")
        self._last_id = message.id
        self._commands[message.id] = open_command(message, self._stdin_window)
