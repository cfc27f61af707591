"""What all sessions of one daemon share: the config, the audit log, admission,
the count of running requests, the observers, and the graceful shutdown."""

from __future__ import annotations

import asyncio
import collections
import itertools
from typing import Protocol

from rexec.eventloop import bulk_over
from rexec.files import TempRecords
from rexec.log import log_bug_limited
from rexec.protocol import ErrorCode
from rexec.server.admission import Admission
from rexec.server.audit import AuditLog, AuditTrail
from rexec.server.config import ServerConfig
from rexec.server.events import Event, Observer
from rexec.server.process_records import ProcessRecords

#: How long a session's fatal error frame may take to leave before its socket
#: is dropped; shutdown waits this long (and a little) for sessions to close.
FATAL_CLOSE_TIMEOUT = 1.0


class LiveSession(Protocol):
    """What the server asks of a session when it shuts down."""

    def cancel_requests(self) -> None: ...

    def send_notice(self, code: ErrorCode, message: str) -> None: ...

    def fatal(self, code: ErrorCode, message: str) -> None: ...


class Server:
    """State shared by all sessions of one daemon.

    Args:
        config: the resolved settings; replaced on reload (rexec.ops.operations).
        audit: the audit log; the server records every event in it.
        records: the state directory's process records, or None.
    """

    def __init__(
        self, config: ServerConfig, audit: AuditLog, records: ProcessRecords | None = None
    ) -> None:
        self.config = config
        self.audit = audit
        self.records = records
        #: Temporary files of puts in flight, for the start-up sweep; set by rexec.daemon.
        self.temp_records: TempRecords | None = None
        self.admission = Admission(config.admission_limits)
        self.sessions: set[LiveSession] = set()
        #: Commands and transfers running now, on every session, and by key.
        self.running_requests = 0
        self._running_by_key: collections.Counter[str] = collections.Counter()
        self.shutting_down = False
        self._observers: list[Observer] = [AuditTrail(audit)]
        self._session_numbers = itertools.count(1)
        self._idle = asyncio.Event()  # no request running
        self._idle.set()
        self._empty = asyncio.Event()  # no session open
        self._empty.set()

    def subscribe(self, observer: Observer) -> None:
        """Tell ``observer`` of every later event (rexec.ops.metrics does)."""
        self._observers.append(observer)

    def emit(self, event: Event) -> None:
        """Tell every observer of ``event``, in the order they subscribed.
        Observers must not raise (``events.Observer``); one that does, a bug,
        is logged (rate-limited) and disturbs neither the observers after it
        nor the session or command whose event it is: events are emitted from
        the output path, and no metric is worth a command's output."""
        for observer in self._observers:
            try:
                observer.notify(event)
            except Exception:  # noqa: BLE001  see the docstring
                name = type(observer).__name__
                log_bug_limited(
                    f"observer:{name}", f"{name} failed on {type(event).__name__} (a bug)"
                )

    def next_session_number(self) -> int:
        return next(self._session_numbers)

    def session_opened(self, session: LiveSession) -> None:
        self.sessions.add(session)
        self._empty.clear()

    def session_closed(self, session: LiveSession) -> None:
        self.sessions.discard(session)
        if not self.sessions:
            self._empty.set()

    def busy_refusal(self, running_here: int, key: str) -> tuple[ErrorCode, str] | None:
        """Why a new request of ``key`` on a session running ``running_here``
        can't start now (shutting down, or a command limit: ``busy``, which a
        client may retry), or None."""
        if self.shutting_down:
            return ErrorCode.SHUTTING_DOWN, "the server is shutting down"
        settings = self.config.settings
        if (
            running_here >= settings.max_commands
            or self.running_requests >= settings.max_total_commands
        ):
            return ErrorCode.BUSY, "too many running commands; retry later"
        # A share matters only with someone to share with: several keys.
        share = settings.max_commands_per_key if len(self.config.keys) > 1 else 0
        if 0 < share <= self._running_by_key[key]:
            return ErrorCode.BUSY, "too many running commands with this key; retry later"
        return None

    def not_accepting(self) -> str | None:
        """Why no new command could start now, whoever asks (shutting down,
        an audit log that can't be written), or None: what ``/healthz``
        answers."""
        if self.shutting_down:
            return "shutting down"
        reason = self.audit.unavailable()
        return f"audit unavailable: {reason}" if reason is not None else None

    def request_started(self, key: str, pgid: int | None = None) -> None:
        """Count a command (or transfer) of ``key`` in; record its process
        group, if any."""
        self.running_requests += 1
        self._running_by_key[key] += 1
        self._idle.clear()
        if pgid is not None and self.records is not None:
            self.records.add(pgid)

    def request_finished(self, key: str, pgid: int | None = None) -> None:
        self.running_requests -= 1
        self._running_by_key[key] -= 1
        if not self._running_by_key[key]:
            del self._running_by_key[key]
        if self.running_requests == 0:
            self._idle.set()
        bulk_over()  # after bulk, the freed heap goes back (rexec/eventloop.py)
        if pgid is not None and self.records is not None:
            self.records.remove(pgid)

    async def shut_down(self) -> None:
        """Tell every session (a non-fatal ``server.shutting_down``), refuse
        new requests, let running ones finish within the shutdown grace,
        cancel the rest, then close every session with a fatal
        ``server.shutting_down``."""
        self.shutting_down = True
        grace = self.config.settings.shutdown_grace
        for session in list(self.sessions):
            session.send_notice(
                ErrorCode.SHUTTING_DOWN,
                f"the server is shutting down; running commands get {grace:g} s to finish",
            )
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
        except TimeoutError:
            for session in list(self.sessions):
                session.cancel_requests()
            graces = self.config.graces
            try:
                await asyncio.wait_for(self._idle.wait(), graces.kill + graces.drain + 1.0)
            except TimeoutError:
                pass  # a command that survived SIGKILL is the kernel's
        for session in list(self.sessions):
            session.fatal(ErrorCode.SHUTTING_DOWN, "the server is shutting down")
        try:
            # Each session drops its socket within FATAL_CLOSE_TIMEOUT at most.
            await asyncio.wait_for(self._empty.wait(), FATAL_CLOSE_TIMEOUT + 0.5)
        except TimeoutError:
            pass
