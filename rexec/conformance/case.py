"""What a case is, what it observes, and the context it runs in.

A case has a stable id (a protocol.md requirement id, optionally with a
``/variant`` suffix), the level and quote of its requirement, a description,
and the *set* of outcomes that conform. Running it yields one observed outcome,
a short string such as ``fatal:frame.bad_length``; the verdict follows from
whether that string is in the set (see runner.py).

Outcome vocabulary shared by the cases (anything else is case-specific and
described in the case):

``fatal:CODE``
    The implementation sent an ``error`` frame with ``fatal`` true and code
    CODE, then **closed**.
``fatal:CODE,not-closed``
    The same, but it did not close in time.
``closed``
    It closed without sending a (readable) fatal error frame.
``no-reaction``
    Nothing conclusive arrived within the case's wait.
``answered:TYPES``
    It answered with these frames (comma-separated types) and neither sent a
    fatal error nor closed: it accepted what it should have refused.

**Closed**, precisely: after the fatal ``error`` frame (or without one), the
suite reads an orderly end of stream (FIN, ``read`` returns b"") or a reset
(RST / ECONNRESET, or a TLS abort) within ``CLOSE_WAIT`` seconds × the
timeout multiplier of the moment the frame arrived (or the violating bytes were
sent). Bytes that arrive in that interval are decoded and logged; they don't
change the verdict unless the case says so.
"""

from __future__ import annotations

import dataclasses
import secrets
import shlex
from collections.abc import Awaitable, Callable
from typing import Any

from rexec.protocol import Error

from .client import Client, CommandRecord, SetupError, Unsupported
from .requirements import Level, requirement
from .wire import Closed, PeerFrameError, Target, Wire, WireLog

#: Seconds (× multiplier) within which a peer must close after a fatal error.
CLOSE_WAIT = 2.0
#: Seconds (× multiplier) to wait for a reaction that should be immediate.
REACTION_WAIT = 2.0

UNSUPPORTED = "unsupported"


@dataclasses.dataclass(frozen=True)
class Observation:
    """What a case saw: an outcome from its vocabulary and details for people."""

    outcome: str
    detail: str = ""
    data: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Options:
    """Settings of the run that cases may depend on."""

    key: bytes
    multiplier: float = 1.0
    auth_deadline: float = 10.0
    kill_grace: float = 2.0
    drain_grace: float = 2.0
    #: The server's frame, idle and stall timeouts when the suite was told
    #: them (None: unknown, and the cases that wait for one are unsupported).
    frame_timeout: float | None = None
    idle_timeout: float | None = None
    stall_timeout: float | None = None


CaseFunction = Callable[["Context"], Awaitable[Observation]]


@dataclasses.dataclass(frozen=True)
class Case:
    """One conformance case. ``timeout`` is in seconds before the multiplier."""

    id: str
    description: str
    expected: frozenset[str]
    function: CaseFunction
    timeout: float = 5.0
    level_override: Level | None = None
    area: str = ""

    @property
    def requirement_id(self) -> str:
        return self.id.split("/", 1)[0]

    @property
    def level(self) -> Level:
        return self.level_override or requirement(self.id).level

    @property
    def quote(self) -> str:
        return requirement(self.id).quote


class Context:
    """Per-case access to the implementation under test; closes all its
    connections in ``cleanup``."""

    def __init__(self, target: Target, options: Options) -> None:
        self.target = target
        self.options = options
        self.log = WireLog()
        self._wires: list[Wire] = []
        self._aux: Client | None = None
        self._cleanups: list[str] = []

    def t(self, seconds: float) -> float:
        """``seconds`` scaled by the timeout multiplier."""
        return seconds * self.options.multiplier

    # --- connections -------------------------------------------------------------

    async def connect(self, *, rcvbuf: int | None = None) -> Wire:
        """A raw, unauthenticated connection. Raises SetupError."""
        try:
            wire = await Wire.open(
                self.target, self.log, len(self._wires) + 1, timeout=self.t(5.0), rcvbuf=rcvbuf
            )
        except (OSError, TimeoutError) as exc:
            raise SetupError(
                f"cannot connect to {self.target.host}:{self.target.port}: {exc}"
            ) from None
        self._wires.append(wire)
        return wire

    async def client(self, *, rcvbuf: int | None = None) -> Client:
        """A connected, authenticated client. Raises SetupError."""
        client = Client(await self.connect(rcvbuf=rcvbuf), self.options.key)
        try:
            await client.handshake(self.t(REACTION_WAIT + 3))
        except (ConnectionError, OSError) as exc:
            raise SetupError(f"handshake failed: {exc}") from None
        return client

    async def hello_only(self) -> Client:
        """A connection that has read ``hello`` and sent nothing."""
        client = Client(await self.connect(), self.options.key)
        await client.read_hello(self.t(REACTION_WAIT + 3))
        return client

    async def cleanup(self) -> None:
        if self._cleanups:
            try:
                await self.sh("rm -f " + " ".join(self._cleanups), wait=2.0)
            except Exception:  # noqa: BLE001, S110 - best effort, the case is over
                pass
        for wire in self._wires:
            wire.close()

    # --- helpers run on a separate, authenticated connection -------------------

    async def aux(self) -> Client:
        if self._aux is None or self._aux.closed is not None:
            self._aux = await self.client()
        return self._aux

    async def sh(self, script: str, *, wait: float = 5.0, **fields: Any) -> CommandRecord:
        """Run ``sh -c script`` on the auxiliary connection and wait for its end.

        Raises:
            Unsupported: the server could not spawn it.
            SetupError: it did not end within ``wait`` seconds (× multiplier).
        """
        aux = await self.aux()
        command_id = await aux.run(shell=script, **fields)
        if not await aux.wait_terminal(command_id, self.t(wait)):
            raise SetupError(f"helper command did not finish: {script!r}")
        record = aux.records[command_id]
        require_started(record)
        return record

    def temp_path(self, label: str) -> str:
        """A fresh path under /tmp on the server, removed at cleanup."""
        return self.temp_name(label, directory="/tmp/")

    def temp_name(self, label: str, *, directory: str = "") -> str:
        """A fresh name, ``rexec-conformance-LABEL-HEX`` after ``directory``,
        removed at cleanup (without a directory: relative to the server's
        default directory, where the helper commands run)."""
        path = f"{directory}rexec-conformance-{label}-{secrets.token_hex(6)}"
        self._cleanups.append(shlex.quote(path))
        return path

    def remove_at_cleanup(self, word: str) -> None:
        """Have cleanup's ``rm -f`` remove ``word``: a shell word, quoted by
        the caller (a glob stays unquoted; a relative path is relative to the
        server's default directory, where the helper commands run)."""
        self._cleanups.append(word)

    async def path_exists(self, path: str) -> bool:
        record = await self.sh(f"test -e {shlex.quote(path)} && echo yes || echo no")
        return bytes(record.stdout).strip() == b"yes"

    async def pid_gone(self, pid: int, within: float, *, zombie_ok: bool = False) -> bool:
        """Whether process ``pid`` is gone at some point within ``within``
        seconds (× multiplier), judged by ``kill -0`` on the server's host.

        ``kill -0`` succeeds on a zombie. For the server's own child that is
        right (a zombie is a process the server failed to reap). For a
        grandchild it is not the server's doing: an orphan is reaped by init,
        and some container inits never do. With ``zombie_ok`` a zombie counts
        as gone, read from ``ps -o stat=`` or, failing that, /proc/PID/stat.
        """
        tries = max(1, int(self.t(within) / 0.1))
        zombie = (
            f'case "$( (ps -o stat= -p {pid} || cut -d" " -f3 /proc/{pid}/stat) 2>/dev/null)" '
            "in *Z*) exit 0;; esac; "
            if zombie_ok
            else ""
        )
        script = (
            f"i=0; while kill -0 {pid} 2>/dev/null; do {zombie}i=$((i+1)); "
            f"[ $i -ge {tries} ] && exit 1; sleep 0.1; done; exit 0"
        )
        record = await self.sh(script, wait=within + 5)
        return record.succeeded

    # --- outcome helpers ---------------------------------------------------------

    async def await_fatal(
        self, wire: Wire, *, wait: float = REACTION_WAIT, canary: bytes | None = None
    ) -> str:
        """Read until a fatal error, the end of the connection, or ``wait``.

        Returns one of the shared outcomes: ``fatal:CODE`` (then closed),
        ``fatal:CODE,not-closed``, ``closed``, ``answered:TYPES`` or
        ``no-reaction``; ``,echoed`` is appended when the error's message
        contains ``canary``.
        """
        answered: list[str] = []
        while True:
            got = await wire.next_frame(self.t(wait))
            if got is None:
                return f"answered:{','.join(answered)}" if answered else "no-reaction"
            if isinstance(got, Closed):
                return "closed"
            if isinstance(got, Error) and got.fatal:
                echoed = canary is not None and canary.decode() in got.message
                closed, _ = await wire.wait_closed(self.t(CLOSE_WAIT))
                label = f"fatal:{got.code}" + ("" if closed else ",not-closed")
                return label + (",echoed" if echoed else "")
            answered.append(got.type if not isinstance(got, Error) else f"error:{got.code}")


def require_started(record: CommandRecord) -> None:
    """Raise Unsupported when the server refused to spawn a suite command."""
    if record.error is not None and (
        record.error.code.startswith("spawn.") or record.error.code == "pty.failed"
    ):
        raise Unsupported(f"the server can't run it: {record.error.code}")


__all__ = [
    "CLOSE_WAIT",
    "REACTION_WAIT",
    "UNSUPPORTED",
    "Case",
    "CaseFunction",
    "Context",
    "Observation",
    "Options",
    "PeerFrameError",
    "SetupError",
    "Unsupported",
    "require_started",
]
