"""rexecd with one rule broken: the mutation self-test's servers built from the
project's own server, beside the independent fake of ``broken_server.py``.

Each mutation patches one method of the real server, the smallest change that
breaks one rule of protocol.md the way a slip in rexecd itself would; the
tests assert that the suite fails the case named for that rule.

Run: ``python mutant_rexecd.py MUTATION [rexecd arguments]``.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from rexec import daemon
from rexec.server.deadlines import Deadlines
from rexec.server.runner import CommandRunner
from rexec.server.writer import Writer


def _no_kill_grace() -> None:
    kill_tree = CommandRunner._kill_tree

    def kill_at_once(self: CommandRunner) -> None:
        kill_tree(self)
        self._signal_group(signal.SIGKILL)

    CommandRunner._kill_tree = kill_at_once  # type: ignore[method-assign]


def _kill_leader_only() -> None:
    def signal_leader(self: CommandRunner, signum: int) -> None:
        if self._spawned is not None and not self._finished:
            try:
                os.kill(self._spawned.process.pid, signum)
            except ProcessLookupError:
                pass

    CommandRunner._signal_group = signal_leader  # type: ignore[method-assign]


def _no_pong() -> None:
    Writer.pong = lambda self, seq: None  # type: ignore[method-assign]


def _ignore_output_limit() -> None:
    init = CommandRunner.__init__

    def unlimited(self: CommandRunner, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self._output_left = None

    CommandRunner.__init__ = unlimited  # type: ignore[method-assign]


def _no_frame_deadline() -> None:
    Deadlines.watch_frame = lambda self, mid_frame: None  # type: ignore[method-assign]


def _no_idle_timeout() -> None:
    Deadlines.rearm_idle = lambda self, idle: None  # type: ignore[method-assign]


#: mutation -> (what it breaks, how).
MUTATIONS: dict[str, tuple[str, Callable[[], None]]] = {
    "no_kill_grace": ("SIGKILL right behind SIGTERM, no kill grace", _no_kill_grace),
    "kill_leader_only": ("signals, timeouts and cancels reach the leader only", _kill_leader_only),
    "no_pong": ("never answers ping", _no_pong),
    "ignore_output_limit": ("sends all output whatever output_limit says", _ignore_output_limit),
    "no_frame_deadline": ("never arms the frame deadline", _no_frame_deadline),
    "no_idle_timeout": ("never arms the idle timeout", _no_idle_timeout),
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in MUTATIONS:
        print(
            f"usage: mutant_rexecd.py {{{','.join(MUTATIONS)}}} [rexecd arguments]", file=sys.stderr
        )
        return 2
    MUTATIONS[argv[0]][1]()
    return daemon.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
