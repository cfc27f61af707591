"""The exceptions of the rexec client, by whose fault and what it means.

``RexecError`` is the base of all of them. ``RexecConnectionError`` and its
subclasses mean the connection could not be made or was lost: no command result
exists (the CLI exits 255 for them, as ssh does). ``RemoteCommandError`` means
the server refused one command and the connection carries on.
``CalledProcessError`` (in result.py, beside the ``CompletedProcess`` it
carries) is raised by ``run(check=True)`` for a command that ran and failed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pydantic


class RexecError(Exception):
    """Base of every error the rexec client raises."""


class RexecConnectionError(RexecError, ConnectionError):
    """The connection could not be made, or was lost.

    Attributes:
        code: the protocol error code involved (``auth.failed``,
            ``frame.too_large``, ``server.shutting_down`` …), or None for a
            transport failure such as a refused connection or a reset.
    """

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class ConnectTimeout(RexecConnectionError, TimeoutError):
    """The server did not complete the connection and handshake in time: it
    is unreachable, overloaded, or waits for something else (a TLS server
    waits for a TLS hello)."""


class AuthenticationError(RexecConnectionError):
    """The server refused our key, or could not prove it holds the key."""


class VersionMismatch(RexecConnectionError):
    """The server speaks no protocol version this client speaks."""


class ProtocolViolation(RexecConnectionError):
    """The server sent bytes that break the protocol (or is no rexec server)."""


class CannotSend(RexecError):
    """A message can't be sent on this connection: larger than the server's
    announced limits, or not allowed in the connection's state. Nothing was
    sent; the connection carries on.

    Attributes:
        code: the protocol error code (``frame.too_large`` …).
    """

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class RemoteCommandError(RexecError):
    """The server refused to run one command (a command-scoped ``error``).

    Attributes:
        code: the stable error code, e.g. ``spawn.not_found``, ``cwd.invalid``,
            ``env.forbidden``, ``busy``.
        message: the server's short explanation.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{message} ({code})")
        self.code = code
        self.message = message


#: How a field of a ``run`` frame is named to a person.
_FIELD_NAMES = {"argv": "the command", "shell": "the command line", "cwd": "the working directory",
                "env": "the environment", "timeout": "the timeout"}  # fmt: skip


def describe_invalid(exc: pydantic.ValidationError) -> str:
    """One line for a person saying what the first error of ``exc`` found
    wrong, in words rather than pydantic's (``argv.0: must not be empty``,
    never "Value should have at least 1 item after validation")."""
    first = exc.errors(include_url=False, include_input=False)[0]
    loc = [str(part) for part in first["loc"]]
    where = _FIELD_NAMES.get(loc[0], loc[0]) if loc else "the command"
    if loc[1:]:
        where += f" ({'.'.join(loc[1:])})"
    if first["type"] in ("too_short", "string_too_short"):
        what = "must not be empty"
    elif first["type"] == "value_error":
        what = str(first.get("ctx", {}).get("error", first["msg"]))
    else:
        what = first["msg"][:1].lower() + first["msg"][1:]
    return f"{where}: {what}"
