"""A session's clocks: the auth, frame, idle and stall deadlines, and the probe
that checks a half-closed client is still there.

Each deadline is armed and disarmed by the session as its state changes and,
when it passes, reported once through ``on_expired``; what that means for the
connection (an error frame, a close) is the session's to decide. Durations are
read from the settings when a clock is armed, so a reload applies to the next
one.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable

from rexec.server.settings import Settings

#: After a client's FIN, how often to probe with a ping while its commands run:
#: a client that really closed answers the probe with a reset, which ends the
#: session and its commands even when they print nothing.
EOF_PROBE_INTERVAL = 0.5


class Deadline(enum.Enum):
    AUTH = "auth"  # from connect to a valid ``auth``
    FRAME = "frame"  # from a frame's first byte to its last, body included (slowloris)
    IDLE = "idle"  # authenticated, silent, nothing running
    STALL = "stall"  # output left unread by the client


class Deadlines:
    """The timers of one session.

    Args:
        settings: returns the settings in force (they change on reload).
        on_expired: called once when an armed deadline passes.
        on_probe: called every ``EOF_PROBE_INTERVAL`` while probing, until
            it returns False.
    """

    def __init__(
        self,
        settings: Callable[[], Settings],
        on_expired: Callable[[Deadline], None],
        on_probe: Callable[[], bool],
    ) -> None:
        self._settings = settings
        self._on_expired = on_expired
        self._on_probe = on_probe
        self._timers: dict[Deadline, asyncio.TimerHandle] = {}
        self._probe: asyncio.TimerHandle | None = None

    def start_auth(self) -> None:
        self._arm(Deadline.AUTH, self._settings().auth_timeout)

    def stop_auth(self) -> None:
        self._disarm(Deadline.AUTH)

    def watch_frame(self, mid_frame: bool) -> None:
        """Arm the frame deadline when a frame has begun, disarm it when none
        is in progress: a peer dribbling a frame a byte at a time is cut off
        however often it sends, since the clock starts at the frame's first byte."""
        if not mid_frame:
            self._disarm(Deadline.FRAME)
        elif Deadline.FRAME not in self._timers:
            self._arm(Deadline.FRAME, self._settings().frame_timeout)

    def rearm_idle(self, idle: bool) -> None:
        """Restart the idle clock, which runs only while ``idle`` (the session
        is authenticated, open, and has nothing running); 0 turns it off."""
        self._disarm(Deadline.IDLE)
        timeout = self._settings().idle_timeout
        if idle and timeout > 0:
            self._arm(Deadline.IDLE, timeout)

    def start_stall(self) -> None:
        """The client stopped reading; 0 waits for ever."""
        timeout = self._settings().stall_timeout
        if timeout > 0 and Deadline.STALL not in self._timers:
            self._arm(Deadline.STALL, timeout)

    def stop_stall(self) -> None:
        self._disarm(Deadline.STALL)

    def start_probe(self) -> None:
        """Call ``on_probe`` now and every ``EOF_PROBE_INTERVAL`` until it
        returns False or the session stops its clocks."""
        self._probe = None
        if self._on_probe():
            self._probe = asyncio.get_running_loop().call_later(
                EOF_PROBE_INTERVAL, self.start_probe
            )

    def stop_all(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None

    def _arm(self, deadline: Deadline, seconds: float) -> None:
        self._disarm(deadline)
        self._timers[deadline] = asyncio.get_running_loop().call_later(
            seconds, self._expire, deadline
        )

    def _disarm(self, deadline: Deadline) -> None:
        timer = self._timers.pop(deadline, None)
        if timer is not None:
            timer.cancel()

    def _expire(self, deadline: Deadline) -> None:
        del self._timers[deadline]
        self._on_expired(deadline)
