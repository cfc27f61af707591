"""The messages of a command's life: ``run`` opens it; ``stdin``,
``stdin_eof``, ``signal``, ``cancel`` and ``resize`` steer it (client →
server); ``started``, ``stdout``, ``stderr``, ``stdin_credit`` and ``exit``
report it (server → client). The order they may come in is _commands.py's.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from ._fields import (
    CommandId,
    Count,
    EnvName,
    ExitSignalName,
    Hex32,
    Seconds,
    SignalName,
    TermName,
    TermSize,
    Text,
    empty_dict,
)
from ._limits import MAX_INT32, MAX_SECONDS
from ._message_base import CLOSED, EXTENSIBLE, DataMessage, MessageBase


class Pty(BaseModel):
    """The pseudo-terminal a command asks for."""

    model_config = CLOSED
    rows: TermSize = 24
    cols: TermSize = 80
    term: TermName = "xterm-256color"


class Run(MessageBase):
    """Start a command. Exactly one of ``argv`` (exec'd directly) or ``shell``
    (run by ``/bin/sh -c``) is given."""

    type: Literal["run"] = "run"
    id: CommandId
    argv: Annotated[list[Text], Field(min_length=1)] | None = None
    shell: Text | None = None
    cwd: Annotated[Text, Field(min_length=1)] | None = None
    env: dict[EnvName, Text] = Field(default_factory=empty_dict)
    stdin: bool = False
    timeout: Annotated[float, Field(gt=0, le=MAX_SECONDS)] | None = None
    output_limit: Count | None = None
    pty: Pty | None = None

    @model_validator(mode="after")
    def _exactly_one_of_argv_or_shell(self) -> Self:
        if (self.argv is None) == (self.shell is None):
            raise ValueError("exactly one of argv and shell is required")
        if self.argv is not None and not self.argv[0]:
            raise ValueError("argv[0] must not be empty")
        return self


class Stdin(DataMessage):
    """Client → server: bytes for a command's stdin, within its credit."""

    type: Literal["stdin"] = "stdin"


class StdinEof(MessageBase):
    """Client → server: the end of a command's stdin. For a ``put`` that left
    its ``size`` or ``sha256`` null, the end also gives them (protocol.md
    [transfer.put.end])."""

    type: Literal["stdin_eof"] = "stdin_eof"
    id: CommandId
    size: Count | None = None
    sha256: Hex32 | None = None

    @model_serializer(mode="wrap")
    def _without_put_members_unless_given(self, handler: SerializerFunctionWrapHandler) -> Any:
        # A command's stdin_eof is the frame it always was; only the end of
        # a put that left its size or digest null carries them.
        fields: dict[str, Any] = handler(self)
        for name in ("size", "sha256"):
            if fields.get(name) is None:
                fields.pop(name, None)
        return fields


class Signal(MessageBase):
    """Client → server: deliver a signal to a command's process group."""

    type: Literal["signal"] = "signal"
    id: CommandId
    signal: SignalName


class Cancel(MessageBase):
    """Client → server: end a command (TERM, grace, KILL); its exit says cancelled."""

    type: Literal["cancel"] = "cancel"
    id: CommandId


class Resize(MessageBase):
    """Client → server: new window size for a command's pty."""

    type: Literal["resize"] = "resize"
    id: CommandId
    rows: TermSize
    cols: TermSize


class Started(MessageBase):
    """Server → client: the command's process exists."""

    model_config = EXTENSIBLE
    type: Literal["started"] = "started"
    id: CommandId
    pid: Annotated[int, Field(ge=1, le=MAX_INT32)]


class Stdout(DataMessage):
    """Server → client: bytes the command wrote to stdout (or to its pty)."""

    type: Literal["stdout"] = "stdout"


class Stderr(DataMessage):
    """Server → client: bytes the command wrote to stderr."""

    type: Literal["stderr"] = "stderr"


class StdinCredit(MessageBase):
    """Server → client: the client may send ``bytes`` more bytes of stdin."""

    type: Literal["stdin_credit"] = "stdin_credit"
    id: CommandId
    bytes: Annotated[int, Field(ge=1, le=MAX_INT32)]


class Exit(MessageBase):
    """Server → client: the one terminal record of a started command."""

    model_config = EXTENSIBLE
    type: Literal["exit"] = "exit"
    id: CommandId
    exit_code: Annotated[int, Field(ge=0, le=255)] | None
    signal: Annotated[int, Field(ge=1, le=255)] | None
    signal_name: ExitSignalName | None = None
    timed_out: bool = False
    cancelled: bool = False
    output_capped: bool = False
    pipes_held: bool = False
    duration: Seconds
    stdout_bytes: Count = 0
    stderr_bytes: Count = 0
    stdin_bytes: Count = 0

    @model_validator(mode="after")
    def _exactly_one_of_code_or_signal(self) -> Self:
        if (self.exit_code is None) == (self.signal is None):
            raise ValueError("exactly one of exit_code and signal is set")
        return self


CommandMessage = (
    Run | Stdin | StdinEof | Signal | Cancel | Resize
    | Started | Stdout | Stderr | StdinCredit | Exit
)  # fmt: skip
#: What each side sends of these.
CLIENT_SENDS: tuple[type[MessageBase], ...] = (Run, Stdin, StdinEof, Signal, Cancel, Resize)
SERVER_SENDS: tuple[type[MessageBase], ...] = (Started, Stdout, Stderr, StdinCredit, Exit)

__all__ = [
    "Cancel", "Exit", "Pty", "Resize", "Run", "Signal", "Started", "Stderr", "Stdin",
    "StdinCredit", "StdinEof", "Stdout",
]  # fmt: skip
