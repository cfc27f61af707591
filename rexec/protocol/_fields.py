"""The value types of message fields: what a valid id, count, name or time is.

Each is an ``Annotated`` type that pydantic checks while it validates a
header, so that a model states its contract by its annotations alone: a
``CommandId`` is never negative, a ``Text`` never holds NUL (subprocess would
refuse it deep in the spawn path), a ``Hex32`` is 64 lowercase hex digits. The
message models (_message_base.py and the modules it serves) use nothing else.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, Field

from ._handshake import MAC_SIZE
from ._limits import MAX_COMMAND_ID, MAX_SAFE_INTEGER, MAX_SECONDS


def _no_nul(value: str) -> str:
    # subprocess refuses NUL with "embedded null byte" deep in the spawn path;
    # refusing it here turns that into a clear header error instead.
    if "\x00" in value:
        raise ValueError("NUL character not allowed")
    return value


def _env_name(value: str) -> str:
    if not value or "=" in value:
        raise ValueError("environment names are non-empty and contain no '='")
    return value


def _unique(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError("a feature is named twice")
    return values


def empty_list() -> list[str]:
    """A fresh ``[]``, as a field's ``default_factory``.

    pydantic reads a factory's signature (does it take the validated data?):
    for a builtin such as ``list`` that means tokenizing its text signature,
    about 2 ms of every program's first model; for a function of ours, nothing
    to parse.
    """
    return []


def empty_dict() -> dict[str, str]:
    """A fresh ``{}``, as a field's ``default_factory`` (see ``empty_list``)."""
    return {}


def _matching(pattern: str, complaint: str) -> AfterValidator:
    """A validator that accepts a string ``pattern`` matches whole, and
    otherwise fails with ``complaint``."""
    whole = re.compile(pattern + r"\Z")

    def check(value: str) -> str:
        if not whole.match(value):
            raise ValueError(complaint)
        return value

    return AfterValidator(check)


Text = Annotated[str, AfterValidator(_no_nul)]
Hex32 = Annotated[str, _matching("[0-9a-f]{64}", "must be 64 lowercase hex digits")]
EnvName = Annotated[str, AfterValidator(_no_nul), AfterValidator(_env_name)]
#: The name an ``exit`` gives the signal that ended a command: a peer's text
#: that a client prints, so letters and digits only, never a space or an escape.
ExitSignalName = Annotated[
    str, _matching("SIG[A-Z0-9]{1,29}", "must be SIG and 1 to 29 capital letters or digits")
]
#: A terminal type as terminfo names one (``xterm-256color``, ``screen.xterm``):
#: it becomes the command's TERM, so nothing a program could read as a path or code.
TermName = Annotated[
    str, _matching("[A-Za-z0-9._+-]{1,64}", "a terminal type is 1 to 64 of A-Z a-z 0-9 . _ + -")
]
ErrorCodeText = Annotated[
    Text,
    _matching(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*", "error codes are dotted lowercase words"),
    Field(max_length=64),
]
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
    list[
        Annotated[
            str,
            _matching(
                "[a-z][a-z0-9_.-]{0,63}",
                "feature names are 1 to 64 of a-z 0-9 _ . -, starting with a letter",
            ),
        ]
    ],
    Field(max_length=32),
    AfterValidator(_unique),
]
#: A client's name for one version of a source file, to resume a put with.
ResumeKey = Annotated[
    str, _matching("[A-Za-z0-9_-]{1,64}", "must be 1 to 64 letters, digits, '_' or '-'")
]

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
#: Signals a client may send to a command, by name. Numbers differ between
#: systems; these names mean the same everywhere.
SIGNAL_NAMES: tuple[str, ...] = get_args(SignalName)

__all__ = ["SIGNAL_NAMES"]
