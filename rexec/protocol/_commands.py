"""The rules of one command's frames, from its opening frame to its terminal one.

Three kinds of command share the id space, the stdin credit and the terminal
rule (protocol.md [command.terminal.one], [transfer.terminal.one]):

- ``run``: ``started``, output, then ``exit``; or an ``error`` if it never started.
- ``put``: the client's bytes as ``stdin`` under credit and ``stdin_eof``
  (which gives the size and digest the ``put`` left null); the server answers
  ``done`` (only after the ``stdin_eof``) or an ``error``. A resumable put
  starts without credit: the server first says in ``file`` how many bytes it
  already holds.
- ``get``: ``file``, exactly ``file.size`` minus ``offset`` bytes of
  ``stdout``, ``done``; or an ``error`` at any point.

Each function checks one frame against the command it names and updates the
command. ``fault`` is the error class to raise: local when this side sent the
frame, remote when the peer did.

Two kinds of client frame are never errors from the peer, only dropped: a
``signal`` or ``resize`` for a transfer, and ``stdin`` or ``stdin_eof`` for a
command whose stdin is not open (never opened, or closed by an earlier
``stdin_eof``). The same frames reach a server after the command has ended,
when it can no longer tell them from frames that merely crossed the end;
dropping them while it runs too makes the outcome the same whatever the
timing (protocol.md [command.frames.dropped]). This side never sends them.
"""

from __future__ import annotations

import dataclasses
import enum

from ._command_messages import (
    SERVER_SENDS,
    Exit,
    Resize,
    Run,
    Signal,
    Started,
    Stdin,
    StdinCredit,
    StdinEof,
    Stdout,
)
from ._errors import ErrorCode, LocalProtocolError, ProtocolError
from ._message_base import MessageBase
from ._session_messages import Error
from ._transfer_messages import Done, File, Get, Put


class CommandKind(enum.Enum):
    RUN = "run"
    PUT = "put"
    GET = "get"


@dataclasses.dataclass
class Command:
    """What both sides track of one command between its opening frame and its
    terminal frame."""

    kind: CommandKind
    stdin_open: bool
    credit: int  # stdin bytes the client may still send
    #: run: ``started`` was sent; get and resumable put: ``file`` was sent.
    started: bool = False
    #: put: the declared size (None until ``stdin_eof`` when the put left it
    #: null); get: the size announced in ``file`` (None: not known, a file
    #: read to its end).
    size: int | None = 0
    #: get: the ``stdout`` bytes still due before ``done``; put: the offset
    #: it asked from.
    remaining: int = 0
    #: get: the ``stdout`` bytes so far.
    streamed: int = 0
    offset: int = 0
    #: put: which of size and sha256 its ``stdin_eof`` must give.
    size_at_end: bool = False
    digest_at_end: bool = False
    #: put: resumable (``file`` comes first, then credit).
    resume: bool = False
    #: The server frames legal for this kind (looked up once, not per frame).
    server_frames: tuple[type[MessageBase], ...] = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.server_frames = _SERVER_FRAMES[self.kind]


def open_command(message: Run | Put | Get, stdin_window: int) -> Command:
    """The state of the command a ``run``, ``put`` or ``get`` opens."""
    if isinstance(message, Run):
        return Command(CommandKind.RUN, stdin_open=message.stdin, credit=stdin_window)
    if isinstance(message, Put):
        resume = message.resume is not None
        return Command(
            CommandKind.PUT,
            stdin_open=True,
            credit=0 if resume else stdin_window,
            size=message.size,
            size_at_end=message.size is None,
            digest_at_end=message.sha256 is None,
            resume=resume,
        )
    return Command(CommandKind.GET, stdin_open=False, credit=0, offset=message.offset)


#: Server frames each kind accepts.
_SERVER_FRAMES: dict[CommandKind, tuple[type[MessageBase], ...]] = {
    CommandKind.RUN: (*SERVER_SENDS, Error),  # started, output, credit, exit
    CommandKind.PUT: (StdinCredit, File, Done, Error),  # file: only when resumable
    CommandKind.GET: (File, Stdout, Done, Error),
}


def apply_client_frame(message: MessageBase, command: Command, fault: type[ProtocolError]) -> bool:
    """Check a client frame for an active command (never terminal).

    Returns False when the peer's frame is to be dropped (see above).
    """
    if isinstance(message, (Signal, Resize)):
        # A transfer has no process: nothing to signal or resize.
        return command.kind is CommandKind.RUN or _dropped(fault, message, command)
    if not isinstance(message, (Stdin, StdinEof)):
        return True  # cancel
    if not command.stdin_open:
        return _dropped(fault, message, command)
    if isinstance(message, StdinEof):
        _apply_eof(message, command, fault)
        command.stdin_open = False
    elif message.data_size > command.credit:
        raise fault(ErrorCode.FLOW_WINDOW_EXCEEDED, "stdin exceeds its credit")
    else:
        command.credit -= message.data_size
    return True


def _dropped(fault: type[ProtocolError], message: MessageBase, command: Command) -> bool:
    if fault is LocalProtocolError:
        what = "stdin is not open" if isinstance(message, (Stdin, StdinEof)) else "no process"
        raise fault(
            ErrorCode.PROTOCOL_UNEXPECTED,
            f"{message.type} for this {command.kind.value}: {what}",
        )
    return False


def _apply_eof(message: StdinEof, command: Command, fault: type[ProtocolError]) -> None:
    """protocol.md [transfer.put.end]: a put's ``stdin_eof`` gives exactly
    the size and digest its ``put`` left null; no other ``stdin_eof`` gives
    either."""
    if (message.size is not None) != command.size_at_end or (
        message.sha256 is not None
    ) != command.digest_at_end:
        raise fault(
            ErrorCode.PROTOCOL_UNEXPECTED,
            "stdin_eof gives size and sha256 exactly when the put left them null",
        )
    if message.size is not None:
        command.size = message.size


def apply_server_frame(message: MessageBase, command: Command, fault: type[ProtocolError]) -> bool:
    """Check a server frame for an active command; True when it is terminal."""
    if not isinstance(message, command.server_frames):
        raise fault(
            ErrorCode.PROTOCOL_UNEXPECTED, f"{message.type} is not legal for a {command.kind.value}"
        )
    if isinstance(message, StdinCredit):
        if command.resume and not command.started:
            raise fault(ErrorCode.PROTOCOL_UNEXPECTED, "stdin_credit before a resumable put's file")
        command.credit += message.bytes
        return False
    if command.kind is CommandKind.RUN:
        return _apply_run_frame(message, command, fault)
    if isinstance(message, Error):
        return True  # a transfer may fail at any point
    if command.kind is CommandKind.PUT:
        return _apply_put_frame(message, command, fault)
    return _apply_get_frame(message, command, fault)


def _apply_put_frame(message: MessageBase, command: Command, fault: type[ProtocolError]) -> bool:
    if isinstance(message, File):
        # protocol.md [transfer.put.resume]: once, first, for a resumable put.
        if not command.resume or command.started:
            raise fault(ErrorCode.PROTOCOL_UNEXPECTED, "file is for a resumable put, once")
        if message.size is None:
            raise fault(ErrorCode.PROTOCOL_UNEXPECTED, "file for a put gives the size held")
        if command.size is not None and message.size > command.size:
            raise fault(ErrorCode.PROTOCOL_UNEXPECTED, "file holds more than the put's size")
        command.started = True
        command.offset = message.size
        return False
    assert isinstance(message, Done)
    if command.stdin_open or (command.resume and not command.started):
        raise fault(ErrorCode.PROTOCOL_UNEXPECTED, "done before the put's stdin_eof")
    if message.size != command.size:
        raise fault(ErrorCode.PROTOCOL_UNEXPECTED, "done does not match the put's size")
    return True


def _not_yet_started(command: Command, fault: type[ProtocolError], twice: str) -> None:
    """The frame that starts a command (a run's ``started``, a get's ``file``)
    comes once; ``twice`` says what a second one is."""
    if command.started:
        raise fault(ErrorCode.PROTOCOL_UNEXPECTED, twice)


def _apply_run_frame(message: MessageBase, command: Command, fault: type[ProtocolError]) -> bool:
    if isinstance(message, Started):
        _not_yet_started(command, fault, "command already started")
        command.started = True
        return False
    if isinstance(message, Exit):
        if not command.started:
            raise fault(ErrorCode.PROTOCOL_UNEXPECTED, "exit before started")
        return True
    if isinstance(message, Error):
        if command.started:
            # protocol.md [command.terminal.one]: a started command ends with
            # exit; an error with an id is only for one that never started.
            raise fault(ErrorCode.PROTOCOL_UNEXPECTED, "error for a started command")
        return True
    if not command.started:  # stdout, stderr
        raise fault(ErrorCode.PROTOCOL_UNEXPECTED, "output before started")
    return False


def _apply_get_frame(message: MessageBase, command: Command, fault: type[ProtocolError]) -> bool:
    # protocol.md [transfer.get.stream]: file, exactly file.size bytes, done.
    if isinstance(message, File):
        _not_yet_started(command, fault, "file sent twice")
        if message.size is not None and message.size < command.offset:
            raise fault(ErrorCode.PROTOCOL_UNEXPECTED, "file is shorter than the get's offset")
        command.started = True
        command.size = message.size
        if message.size is not None:
            command.remaining = message.size - command.offset
        return False
    if not command.started:
        raise fault(ErrorCode.PROTOCOL_UNEXPECTED, f"{message.type} before file")
    if isinstance(message, Stdout):
        if command.size is not None and message.data_size > command.remaining:
            raise fault(ErrorCode.PROTOCOL_UNEXPECTED, "more bytes than file announced")
        command.remaining -= message.data_size
        command.streamed += message.data_size
        return False
    assert isinstance(message, Done)
    if command.size is None:  # [transfer.get.unknown_size]: done gives it
        if message.size != command.offset + command.streamed:
            raise fault(ErrorCode.PROTOCOL_UNEXPECTED, "done does not match the bytes sent")
        return True
    if command.remaining or message.size != command.size:
        raise fault(ErrorCode.PROTOCOL_UNEXPECTED, "done does not match the file's size")
    return True
