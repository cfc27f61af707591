"""The messages of the rexec protocol: one frozen pydantic model per ``type``.

Every model is strict (no coercion: ``"5"`` is not an int, ``1`` is not a
bool), refuses NUL in every string, non-finite numbers and integers out of
range, and is immutable. Most are closed (an unknown member is an error); the
server's reports (``hello`` and its ``limits``, ``started``, ``exit``,
``error``) are extensible: a receiver ignores members it does not know
(protocol.md [message.extensible]). ``MESSAGE_ADAPTER`` validates a raw JSON
header into the right model in one pass, dispatching on ``type``.

Five messages carry a body: ``stdin``, ``stdout`` and ``stderr`` their bytes,
``auth`` and ``auth_ok`` their 32-byte mac. The header declares ``data_size``
and the bytes follow it on the wire; they are available as ``message.data``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    model_serializer,
    model_validator,
)

from ._handshake import MAC_SIZE
from ._limits import MAX_COMMAND_ID, MAX_INT32, MAX_SAFE_INTEGER, MAX_SECONDS

_HEX_32_BYTES = re.compile(r"^[0-9a-f]{64}\Z")
_RESUME_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")
#: A terminal type as terminfo names one (``xterm-256color``, ``screen.xterm``):
#: it becomes the command's TERM, so nothing a program could read as a path or code.
_TERM_NAME = re.compile(r"[A-Za-z0-9._+-]{1,64}\Z")
_ERROR_CODE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*\Z")
_FEATURE_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}\Z")


def _no_nul(value: str) -> str:
    # subprocess refuses NUL with "embedded null byte" deep in the spawn path;
    # refusing it here turns that into a clear header error instead.
    if "\x00" in value:
        raise ValueError("NUL character not allowed")
    return value


def _hex_32_bytes(value: str) -> str:
    if not _HEX_32_BYTES.match(value):
        raise ValueError("must be 64 lowercase hex digits")
    return value


def _env_name(value: str) -> str:
    if not value or "=" in value:
        raise ValueError("environment names are non-empty and contain no '='")
    return value


def _resume_key(value: str) -> str:
    if not _RESUME_KEY.match(value):
        raise ValueError("must be 1 to 64 letters, digits, '_' or '-'")
    return value


def _error_code(value: str) -> str:
    if not _ERROR_CODE.match(value):
        raise ValueError("error codes are dotted lowercase words")
    return value


def _term_name(value: str) -> str:
    if not _TERM_NAME.match(value):
        raise ValueError("a terminal type is 1 to 64 of A-Z a-z 0-9 . _ + -")
    return value


def _feature_name(value: str) -> str:
    if not _FEATURE_NAME.match(value):
        raise ValueError("feature names are 1 to 64 of a-z 0-9 _ . -, starting with a letter")
    return value


def _unique(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError("a feature is named twice")
    return values


Text = Annotated[str, AfterValidator(_no_nul)]
Hex32 = Annotated[str, AfterValidator(_hex_32_bytes)]
EnvName = Annotated[str, AfterValidator(_no_nul), AfterValidator(_env_name)]
CommandId = Annotated[int, Field(ge=0, le=MAX_COMMAND_ID)]
#: Byte counts, sizes and sequence numbers.
Count = Annotated[int, Field(ge=0, le=MAX_SAFE_INTEGER)]
#: No upper bound here: a data_size above the receiver's body limit, however
#: large, must be reported as frame.body_too_large (by the decoder), not as a
#: schema error.
DataSize = Annotated[int, Field(ge=0)]
#: The data_size of a message that carries no body.
NoBody = Annotated[int, Field(ge=0, le=0)]
#: The data_size of a message whose body is a mac.
MacBody = Annotated[int, Field(ge=MAC_SIZE, le=MAC_SIZE)]
TermSize = Annotated[int, Field(ge=1, le=65535)]
#: Permission bits of a file, as ``chmod`` takes them (setuid, setgid, sticky included).
FileMode = Annotated[int, Field(ge=0, le=0o7777)]
#: A modification time, seconds since the epoch: years 1 to 9999, as
#: ``datetime`` (any file system's range fits; ``utime`` can't overflow).
FileTime = Annotated[float, Field(ge=-62135596800, le=253402300799, allow_inf_nan=False)]
Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS)]
Features = Annotated[
    list[Annotated[str, AfterValidator(_feature_name)]],
    Field(max_length=32),
    AfterValidator(_unique),
]
#: A client's name for one version of a source file, to resume a put with.
ResumeKey = Annotated[str, AfterValidator(_resume_key)]

#: Signals a client may send to a command, by name. Numbers differ between
#: systems; these names mean the same everywhere.
SIGNAL_NAMES = (
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGKILL",
    "SIGUSR1",
    "SIGUSR2",
    "SIGTERM",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGWINCH",
    "SIGALRM",
)
SignalName = Literal[
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGKILL",
    "SIGUSR1",
    "SIGUSR2",
    "SIGTERM",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGWINCH",
    "SIGALRM",
]


_CLOSED = ConfigDict(frozen=True, strict=True, extra="forbid", allow_inf_nan=False)
#: Objects a receiver must accept with members it does not know (protocol.md
#: [message.extensible]): they are dropped, never stored, never echoed.
_EXTENSIBLE = ConfigDict(frozen=True, strict=True, extra="ignore", allow_inf_nan=False)


class _Message(BaseModel):
    """What every message has: a ``type``, and the ``data_size`` of its body
    (0 for the messages that carry none)."""

    model_config = _CLOSED

    #: Whether frames of this type carry a body of ``data_size`` bytes.
    has_body: ClassVar[bool] = False

    # Declared here so that every header serialises with its type first.
    type: str
    data_size: NoBody = 0


#: The public name of the base of every message (for annotations and
#: ``isinstance``).
MessageBase = _Message


class _BodyMessage(_Message):
    """A message whose payload bytes travel in the frame's body.

    The body is kept in the instance's ``__dict__`` beside the fields (which
    validation and serialisation never look at), not as a pydantic private
    attribute: a model with private attributes runs a post-init hook for
    every instance, which costs more than the rest of decoding a frame.
    """

    has_body: ClassVar[bool] = True
    _body: ClassVar[bytes] = b""  # the class default; each message sets its own

    @property
    def data(self) -> bytes:
        """The body bytes; ``len(data) == data_size``."""
        return self._body

    def _attach_body(self, body: bytes) -> None:
        # Called once, by the decoder or by a constructor here, before the
        # message is handed out. Frozen models refuse setattr.
        object.__setattr__(self, "_body", body)

    def __eq__(self, other: object) -> bool:
        # pydantic compares fields only; two frames are equal bodies included.
        return (
            super().__eq__(other) is True
            and isinstance(other, _BodyMessage)
            and self._body == other._body
        )

    def __hash__(self) -> int:
        return hash((super().__hash__(), self._body))


class _DataMessage(_BodyMessage):
    """Command bytes: a body of any size, for the command ``id``."""

    id: CommandId
    data_size: DataSize = 0

    @classmethod
    def with_data(cls, id: int, data: bytes) -> Self:
        """Build the message for ``data``, with ``data_size`` set to match."""
        # ``type`` has a default in every concrete subclass; mypy only sees
        # this abstract base, where it has none.
        message = cls(id=id, data_size=len(data))  # type: ignore[call-arg]
        message._attach_body(data)
        return message


# --- Handshake -------------------------------------------------------------


class ServerLimits(BaseModel):
    """The limits a server enforces, announced in ``hello``."""

    model_config = _EXTENSIBLE
    max_header: Annotated[int, Field(ge=1, le=MAX_INT32)]
    max_body: Annotated[int, Field(ge=1, le=MAX_INT32)]
    stdin_window: Annotated[int, Field(ge=1, le=MAX_INT32)]
    max_commands: Annotated[int, Field(ge=1, le=MAX_INT32)]


class Hello(_Message):
    """Server → client, first frame: versions spoken, features offered,
    challenge nonce, limits."""

    model_config = _EXTENSIBLE
    type: Literal["hello"] = "hello"
    versions: Annotated[
        list[Annotated[int, Field(ge=1, le=65535)]], Field(min_length=1, max_length=16)
    ]
    features: Features = Field(default_factory=list)
    nonce: Hex32
    server: Annotated[Text, Field(max_length=255)]
    limits: ServerLimits


class Auth(_BodyMessage):
    """Client → server: the chosen version and features, the client nonce;
    the body is the client's mac over the transcript (protocol.md 3.1)."""

    type: Literal["auth"] = "auth"
    data_size: MacBody
    version: Annotated[int, Field(ge=1, le=65535)]
    features: Features = Field(default_factory=list)
    nonce: Hex32

    @property
    def mac(self) -> bytes:
        return self._body

    @classmethod
    def unsigned(cls, *, version: int, nonce: str, features: Sequence[str] = ()) -> Auth:
        """The ``auth`` header to sign; its mac is attached by ``signed``."""
        return cls(data_size=MAC_SIZE, version=version, nonce=nonce, features=list(features))

    def signed(self, mac: bytes) -> Auth:
        """This ``auth`` with ``mac`` as its body."""
        if len(mac) != MAC_SIZE:
            raise ValueError(f"a mac is {MAC_SIZE} bytes")
        message = self.model_copy()
        message._attach_body(mac)
        return message


class AuthOk(_BodyMessage):
    """Server → client: authentication accepted; the body is the server's mac."""

    type: Literal["auth_ok"] = "auth_ok"
    data_size: MacBody

    @property
    def mac(self) -> bytes:
        return self._body

    @classmethod
    def with_mac(cls, mac: bytes) -> AuthOk:
        if len(mac) != MAC_SIZE:
            raise ValueError(f"a mac is {MAC_SIZE} bytes")
        message = cls(data_size=MAC_SIZE)
        message._attach_body(mac)
        return message


# --- Commands: client → server ---------------------------------------------


class Pty(BaseModel):
    """The pseudo-terminal a command asks for."""

    model_config = _CLOSED
    rows: TermSize = 24
    cols: TermSize = 80
    term: Annotated[str, AfterValidator(_term_name)] = "xterm-256color"


class Run(_Message):
    """Start a command. Exactly one of ``argv`` (exec'd directly) or ``shell``
    (run by ``/bin/sh -c``) is given."""

    type: Literal["run"] = "run"
    id: CommandId
    argv: Annotated[list[Text], Field(min_length=1)] | None = None
    shell: Text | None = None
    cwd: Annotated[Text, Field(min_length=1)] | None = None
    env: dict[EnvName, Text] = Field(default_factory=dict)
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


class Stdin(_DataMessage):
    """Client → server: bytes for a command's stdin, within its credit."""

    type: Literal["stdin"] = "stdin"


class StdinEof(_Message):
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


class Signal(_Message):
    """Client → server: deliver a signal to a command's process group."""

    type: Literal["signal"] = "signal"
    id: CommandId
    signal: SignalName


class Cancel(_Message):
    """Client → server: end a command (TERM, grace, KILL); its exit says cancelled."""

    type: Literal["cancel"] = "cancel"
    id: CommandId


class Resize(_Message):
    """Client → server: new window size for a command's pty."""

    type: Literal["resize"] = "resize"
    id: CommandId
    rows: TermSize
    cols: TermSize


# --- File transfers: client → server --------------------------------------


class Put(_Message):
    """Write a file on the server: its bytes follow as ``stdin`` frames under
    the usual credit, then ``stdin_eof``. ``size`` and ``sha256`` describe the
    exact content; either may be null here and given in ``stdin_eof`` instead
    (a file read from a pipe). The server checks both before the file takes
    its final name. ``mtime`` (seconds since the epoch) sets its modification
    time; with ``resume``, a put interrupted before continues where it
    stopped (protocol.md [transfer.put.resume])."""

    type: Literal["put"] = "put"
    id: CommandId
    path: Annotated[Text, Field(min_length=1)]
    size: Count | None = None
    mode: FileMode = 0o644
    sha256: Hex32 | None = None
    mtime: FileTime | None = None
    resume: ResumeKey | None = None


class Get(_Message):
    """Read a file from the server: ``file``, its bytes from ``offset`` on as
    ``stdout`` frames, ``done`` (with the size and SHA-256 of the whole file)."""

    type: Literal["get"] = "get"
    id: CommandId
    path: Annotated[Text, Field(min_length=1)]
    offset: Count = 0


# --- Commands: server → client ---------------------------------------------


class Started(_Message):
    """Server → client: the command's process exists."""

    model_config = _EXTENSIBLE
    type: Literal["started"] = "started"
    id: CommandId
    pid: Annotated[int, Field(ge=1, le=MAX_INT32)]


class Stdout(_DataMessage):
    """Server → client: bytes the command wrote to stdout (or to its pty)."""

    type: Literal["stdout"] = "stdout"


class Stderr(_DataMessage):
    """Server → client: bytes the command wrote to stderr."""

    type: Literal["stderr"] = "stderr"


class StdinCredit(_Message):
    """Server → client: the client may send ``bytes`` more bytes of stdin."""

    type: Literal["stdin_credit"] = "stdin_credit"
    id: CommandId
    bytes: Annotated[int, Field(ge=1, le=MAX_INT32)]


class Exit(_Message):
    """Server → client: the one terminal record of a started command."""

    model_config = _EXTENSIBLE
    type: Literal["exit"] = "exit"
    id: CommandId
    exit_code: Annotated[int, Field(ge=0, le=255)] | None
    signal: Annotated[int, Field(ge=1, le=255)] | None
    signal_name: Annotated[Text, Field(max_length=32)] | None = None
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


# --- File transfers: server → client --------------------------------------


class File(_Message):
    """Server → client, first frame of a ``get``: the file's size, mode and
    modification time when it was opened; ``size`` minus the get's ``offset``
    bytes of ``stdout`` follow (``size`` null: not known, the bytes run to the
    file's end and ``done`` gives it). For a ``put`` with ``resume``: the bytes the
    server already holds (``size``), before any credit."""

    type: Literal["file"] = "file"
    id: CommandId
    size: Count | None
    mode: FileMode
    mtime: FileTime | None = None


class Done(_Message):
    """Server → client: the terminal frame of a transfer that succeeded, with
    the byte count and SHA-256 of the content written (put) or sent (get)."""

    type: Literal["done"] = "done"
    id: CommandId
    size: Count
    sha256: Hex32


# --- Either direction --------------------------------------------------------


class Error(_Message):
    """An error report. With ``id`` it is the terminal frame of that command;
    with ``fatal`` the sender closes the connection after it."""

    model_config = _EXTENSIBLE
    type: Literal["error"] = "error"
    code: Annotated[Text, AfterValidator(_error_code), Field(max_length=64)]
    message: Annotated[Text, Field(max_length=200)]
    fatal: bool
    id: CommandId | None = None


class Ping(_Message):
    """Keepalive probe; the peer answers with a ``pong`` carrying the same seq."""

    type: Literal["ping"] = "ping"
    seq: Count


class Pong(_Message):
    """Keepalive answer."""

    type: Literal["pong"] = "pong"
    seq: Count


Message = Annotated[
    Hello
    | Auth
    | AuthOk
    | Run
    | Stdin
    | StdinEof
    | Signal
    | Cancel
    | Resize
    | Put
    | Get
    | Started
    | Stdout
    | Stderr
    | StdinCredit
    | Exit
    | File
    | Done
    | Error
    | Ping
    | Pong,
    Field(discriminator="type"),
]

#: The one validator for every header: ``MESSAGE_ADAPTER.validate_json(raw)``.
MESSAGE_ADAPTER: TypeAdapter[Message] = TypeAdapter(Message)

#: Types a client may send, and types a server may send.
CLIENT_MESSAGES: tuple[type[_Message], ...] = (
    Auth,
    Run,
    Stdin,
    StdinEof,
    Signal,
    Cancel,
    Resize,
    Put,
    Get,
    Ping,
    Pong,
)
SERVER_MESSAGES: tuple[type[_Message], ...] = (
    Hello,
    AuthOk,
    Started,
    Stdout,
    Stderr,
    StdinCredit,
    Exit,
    File,
    Done,
    Error,
    Ping,
    Pong,
)
