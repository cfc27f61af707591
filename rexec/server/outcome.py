"""What a command gives back: output on two streams, and how it ended (the
tally its runner keeps while it runs, and the ``exit`` record built from it
once, when it has finished: rexec/server/runner.py). That one record goes to
the client, the audit trail and the metrics alike."""

from __future__ import annotations

import dataclasses
import enum
import signal

from rexec.protocol import Exit


class Stream(enum.Enum):
    STDOUT = "stdout"
    STDERR = "stderr"


@dataclasses.dataclass
class Outcome:
    """The tally of a running command, from which its ``exit`` record is
    built once, when it has finished."""

    exit_code: int | None = None
    signal: int | None = None
    timed_out: bool = False
    cancelled: bool = False
    output_capped: bool = False
    pipes_held: bool = False
    duration: float = 0.0
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    stdin_bytes: int = 0

    def exit_record(self, command_id: int) -> Exit:
        """The command's one terminal record, for the client and every observer."""
        return Exit(
            id=command_id, exit_code=self.exit_code, signal=self.signal,
            signal_name=_signal_name(self.signal), timed_out=self.timed_out,
            cancelled=self.cancelled, output_capped=self.output_capped,
            pipes_held=self.pipes_held, duration=self.duration,
            stdout_bytes=self.stdout_bytes, stderr_bytes=self.stderr_bytes,
            stdin_bytes=self.stdin_bytes,
        )  # fmt: skip


def _signal_name(signum: int | None) -> str | None:
    if signum is None:
        return None
    try:
        return signal.Signals(signum).name
    except ValueError:
        return None  # a real-time signal, which has no name of its own
