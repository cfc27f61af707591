"""``Keepalive``: a ping every ``interval`` seconds on an idle-looking
connection, and the verdict when the server has gone silent.

A ping unanswered for ``timeout`` seconds ends the connection, unless the
connection's reader is paused for backpressure at that moment: the pong may
then be waiting, unread, behind output the user has not read yet, so only
silence while reading counts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from rexec.protocol import Message, Ping

from .errors import RexecConnectionError


class Keepalive:
    """Pings sent through ``send``; ``answered`` is told of each pong;
    ``dead`` is called once, with the reason, when the server is silent.

    Args:
        interval: seconds between pings.
        timeout: seconds a ping may go unanswered.
        send: queues a frame on the connection (raises
            ``RexecConnectionError`` once it is lost: the pings then stop).
        reading_paused: whether the connection's reader is paused now.
        dead: ends the connection with the reason given.
    """

    def __init__(
        self,
        interval: float,
        timeout: float,
        *,
        send: Callable[[Message], None],
        reading_paused: Callable[[], bool],
        dead: Callable[[str], object],
    ) -> None:
        self._interval = interval
        self._timeout = timeout
        self._send = send
        self._reading_paused = reading_paused
        self._dead = dead
        self._pong = asyncio.Event()
        self._answered = -1
        self.task = asyncio.create_task(self._run(), name="rexec-keepalive")

    def answered(self, seq: int) -> None:
        """A ``pong`` with ``seq`` arrived."""
        self._answered = seq
        self._pong.set()

    async def _run(self) -> None:
        seq = 0
        try:
            while True:
                await asyncio.sleep(self._interval)
                self._pong.clear()
                self._send(Ping(seq=seq))
                while self._answered != seq:
                    try:
                        async with asyncio.timeout(self._timeout):
                            await self._pong.wait()
                    except TimeoutError:
                        if not self._reading_paused():
                            self._dead(f"no answer to keepalive within {self._timeout:g} s")
                            return
                    self._pong.clear()
                seq += 1
        except RexecConnectionError:
            return
