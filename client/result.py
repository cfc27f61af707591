"""How a remote command ended: ``ExitStatus``, and ``CompletedProcess`` for ``run``.

The returncode folds the record into one number, as shells and ssh do:

==========  ==============================================================
returncode  meaning
==========  ==============================================================
0–255       the command exited with this code
124         the server ended it because its timeout expired (as ``timeout``)
128 + N     it was killed by signal N (N is the server's signal number)
255         the connection was lost before its end was known (as ``ssh``)
==========  ==============================================================

255 is also a code a command may exit with; the fields of the record
(``exit_code``, ``signal``, ``timed_out``, ``connection_lost``) always tell the
cases apart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from rexec.protocol import Exit

from .errors import RexecError

RETURNCODE_TIMEOUT = 124
RETURNCODE_SIGNAL_BASE = 128
RETURNCODE_CONNECTION_LOST = 255
#: Return codes for commands the server could not start, as shells use them.
RETURNCODE_BY_REFUSAL = {"spawn.not_found": 127, "spawn.permission_denied": 126}


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExitStatus:
    """The end of one remote command.

    Exactly one of these holds: ``exit_code`` is set, ``signal`` is set, or
    ``connection_lost`` is true (and both others are None). ``timed_out``,
    ``cancelled`` and ``output_capped`` say why the server ended it (it then
    usually died by SIGTERM or SIGKILL). Byte counts are the server's; after a
    lost connection they are what this client saw, and ``duration`` is None.
    """

    exit_code: int | None = None
    signal: int | None = None
    signal_name: str | None = None
    timed_out: bool = False
    cancelled: bool = False
    output_capped: bool = False
    pipes_held: bool = False
    duration: float | None = None
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    stdin_bytes: int = 0
    connection_lost: bool = False
    #: Why the connection was lost (one line for a person), when it was.
    connection_error: str | None = None

    @classmethod
    def from_exit(cls, message: Exit) -> ExitStatus:
        """The status a server's ``exit`` frame reports."""
        return cls(**message.model_dump(exclude={"type", "id", "data_size"}))

    @property
    def capped_note(self) -> str | None:
        """What the server's output limit did, for a person (None: nothing
        was withheld)."""
        if not self.output_capped:
            return None
        delivered = self.stdout_bytes + self.stderr_bytes
        return f"the server's output limit withheld what the command wrote after {delivered} bytes"

    @property
    def returncode(self) -> int:
        """One number for the outcome; see the module docstring."""
        if self.connection_lost:
            return RETURNCODE_CONNECTION_LOST
        if self.timed_out:
            return RETURNCODE_TIMEOUT
        if self.signal is not None:
            return RETURNCODE_SIGNAL_BASE + self.signal
        assert self.exit_code is not None
        return self.exit_code

    def describe(self) -> str:
        """A short phrase for messages: 'returned non-zero exit status 3', …"""
        if self.connection_lost:
            return f"lost its connection ({self.connection_error})"
        if self.timed_out:
            return "was ended because its timeout expired"
        if self.signal is not None:
            return f"died with {self.signal_name or 'signal'} ({self.signal})"
        return f"returned {'non-zero ' if self.exit_code else ''}exit status {self.exit_code}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class CompletedProcess(ExitStatus):
    """What ``run`` returns, shaped like ``subprocess.CompletedProcess``.

    ``stdout`` and ``stderr`` are the bytes captured, or None when output was
    not captured. Every field of ``ExitStatus`` is available too.
    """

    args: str | Sequence[str]
    stdout: bytes | None = None
    stderr: bytes | None = None

    @classmethod
    def from_status(
        cls,
        args: str | Sequence[str],
        status: ExitStatus,
        stdout: bytes | None,
        stderr: bytes | None,
    ) -> CompletedProcess:
        fields = {f.name: getattr(status, f.name) for f in dataclasses.fields(ExitStatus)}
        return cls(args=args, stdout=stdout, stderr=stderr, **fields)

    def check_returncode(self) -> None:
        """Raise ``CalledProcessError`` (``TimeoutExpired`` for a timeout) if
        the returncode is not 0."""
        if self.returncode != 0:
            raise (TimeoutExpired if self.timed_out else CalledProcessError)(self)


class CalledProcessError(RexecError):
    """A command run with ``check=True`` did not succeed (returncode != 0).

    Attributes mirror ``subprocess.CalledProcessError``: ``returncode``,
    ``cmd``, ``output``/``stdout``, ``stderr``; ``result`` is the whole
    ``CompletedProcess`` (signal, timed_out, connection_lost, …).
    """

    def __init__(self, result: CompletedProcess) -> None:
        super().__init__(f"Command {result.args!r} {result.describe()}")
        self.result = result
        self.returncode = result.returncode
        self.cmd = result.args
        self.output = self.stdout = result.stdout
        self.stderr = result.stderr


class TimeoutExpired(CalledProcessError):
    """A command run with ``timeout=`` and ``check=True`` was ended by the
    server when its timeout expired (``result.timed_out`` is true)."""
