"""One command, from spawn to reap: pipes pumped, stdin fed, timeouts, kills.

A ``CommandRunner`` lives on the event loop and is driven by readiness
callbacks, never by blocking calls: the pipes are non-blocking, the process's
exit is seen through a pidfd. Completion is judged by the process's exit, not by
its pipes closing (a background grandchild may hold them open forever); after
the exit the pipes are drained for a bounded grace. The process is reaped only
once the command is finished, so its pid, which is also its process group id,
can't be reused while we may still signal the group.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import os
import signal
import time
from collections.abc import Callable

from rexec.protocol import Exit, Run
from rexec.server.outcome import Outcome, Stream
from rexec.server.process_setup import ProcessPolicy
from rexec.server.spawn import Spawned, enlarge_pipe, set_window_size, spawn

#: Bytes read from a pipe at once: the protocol's body limit, so that bulk
#: output travels in as few frames as the producer allows.
READ_SIZE = 1024 * 1024
#: A read this large means the pipe was full at its default size: the command
#: produces bulk output, and its pipes are grown (spawn.enlarge_pipe).
_DEFAULT_PIPE_SIZE = 64 * 1024


@dataclasses.dataclass(frozen=True)
class Graces:
    """How long to wait before escalating."""

    kill: float = 2.0  # SIGTERM → SIGKILL
    drain: float = 2.0  # process exit → stop reading pipes held by descendants


OutputCallback = Callable[[Stream, bytes], None]
CreditCallback = Callable[[int], None]
FinishCallback = Callable[[Exit], None]


class CommandRunner:
    """Runs one command and reports through callbacks, on the running loop.

    Args:
        run: the request.
        stdin_window: the stdin credit the client started with; grants are
            batched to a quarter of it.
        on_output: called with each chunk read, in order per stream.
        on_stdin_credit: called with bytes of stdin credit to grant back.
        on_finish: called exactly once, after the last ``on_output``, with the
            command's ``exit`` record.
        graces: escalation delays.
        policy: the account and resource limits to start it with.

    Raises (from ``start``):
        SpawnError: nothing was started.
    """

    def __init__(
        self,
        run: Run,
        *,
        stdin_window: int,
        on_output: OutputCallback,
        on_stdin_credit: CreditCallback,
        on_finish: FinishCallback,
        graces: Graces = Graces(),
        policy: ProcessPolicy | None = None,
    ) -> None:
        self._run = run
        self._policy = policy or ProcessPolicy.current()
        self._loop = asyncio.get_running_loop()
        self._credit_batch = max(1, stdin_window // 4)
        self._on_output = on_output
        self._on_stdin_credit = on_stdin_credit
        self._on_finish = on_finish
        self._graces = graces
        self.outcome = Outcome()
        self._spawned: Spawned | None = None
        self._pidfd = -1
        self._open_outputs: dict[int, Stream] = {}
        self._enlarged: set[int] = set()
        self._paused = False
        self._output_left = run.output_limit  # None: unlimited
        self._stdin_buffer = bytearray()
        self._stdin_eof = False
        self._stdin_broken = False
        self._credit_owed = 0
        self._exited = False
        self._finished = False
        self._killing = False
        self._started_at = 0.0
        self._timers: list[asyncio.TimerHandle] = []
        # The drain grace only runs while output is being read: a client that
        # reads slowly must not be mistaken for a descendant holding the pipes.
        self._drain_left: float | None = None  # None: the process has not exited
        self._drain_timer: asyncio.TimerHandle | None = None
        self._drain_armed_at = 0.0

    # --- lifecycle -------------------------------------------------------------

    def start(self) -> int:
        """Spawn the process and start watching it; returns its pid."""
        spawned = spawn(self._run, self._policy)
        self._spawned = spawned
        self._started_at = time.monotonic()
        self._open_outputs[spawned.stdout_fd] = Stream.STDOUT
        if spawned.stderr_fd is not None:
            self._open_outputs[spawned.stderr_fd] = Stream.STDERR
        for fd in self._open_outputs:
            self._loop.add_reader(fd, self._read_output, fd)
        self._pidfd = os.pidfd_open(spawned.process.pid)
        self._loop.add_reader(self._pidfd, self._process_exited)
        if self._run.timeout is not None:
            self._timers.append(self._loop.call_later(self._run.timeout, self._time_out))
        return spawned.process.pid

    @property
    def pid(self) -> int | None:
        """The command's pid, which is also its process group id."""
        return self._spawned.process.pid if self._spawned is not None else None

    # --- requests from the client ------------------------------------------------

    def write_stdin(self, data: bytes) -> None:
        """Queue stdin bytes; they are written as the pipe accepts them."""
        self.outcome.stdin_bytes += len(data)
        spawned = self._spawned
        if self._stdin_broken or spawned is None or spawned.stdin_fd is None or self._finished:
            self._grant(len(data), discarded=True)
            return
        had_backlog = bool(self._stdin_buffer)
        self._stdin_buffer += data
        if not had_backlog:
            self._flush_stdin()

    def close_stdin(self) -> None:
        """End stdin once the queued bytes are written (^D on a pty)."""
        self._stdin_eof = True
        if not self._stdin_buffer:
            self._finish_stdin()

    def send_signal(self, signum: int) -> None:
        """Deliver ``signum`` to the command's process group."""
        self._signal_group(signum)

    def resize(self, rows: int, cols: int) -> None:
        """Change the pty's window size; ignored for a command without a pty."""
        if self._spawned is not None and self._spawned.pty_fd is not None and not self._finished:
            try:
                set_window_size(self._spawned.pty_fd, rows, cols)
            except OSError:
                pass  # the pty is already gone: the command is ending

    def cancel(self) -> None:
        """End the command: TERM, kill grace, KILL; reported as cancelled."""
        if not self._finished and not self._killing:
            self.outcome.cancelled = True
            self._kill_tree()

    def pause_output(self) -> None:
        """Stop reading output (the client's side is full); the command blocks,
        and the drain grace, if running, stops counting."""
        if not self._paused:
            self._paused = True
            for fd in self._open_outputs:
                self._loop.remove_reader(fd)
            self._stop_drain_clock()

    def resume_output(self) -> None:
        if self._paused:
            self._paused = False
            for fd in self._open_outputs:
                self._loop.add_reader(fd, self._read_output, fd)
            self._start_drain_clock()

    # --- output ------------------------------------------------------------------

    def _read_output(self, fd: int) -> None:
        try:
            # Small reads until the command shows it produces bulk output: a
            # 1 MiB buffer per read would cost an mmap for every short command.
            data = os.read(fd, READ_SIZE if fd in self._enlarged else _DEFAULT_PIPE_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:  # EIO: a pty whose slave side is all closed
                raise
            data = b""
        if not data:
            self._close_output(fd)
            self._maybe_finish()
            return
        if len(data) == _DEFAULT_PIPE_SIZE and fd not in self._enlarged:
            self._enlarged.add(fd)
            enlarge_pipe(fd)
        withheld = False
        if self._output_left is not None:
            # protocol.md [output.limit]: exactly min(limit, produced) bytes
            # across both streams, in the order read; capped only when a byte
            # is actually withheld.
            if len(data) > self._output_left:
                data = data[: self._output_left]
                withheld = True
            self._output_left -= len(data)
        if data:
            if self._open_outputs[fd] is Stream.STDOUT:
                self.outcome.stdout_bytes += len(data)
                self._on_output(Stream.STDOUT, data)
            else:
                self.outcome.stderr_bytes += len(data)
                self._on_output(Stream.STDERR, data)
        if withheld and not self.outcome.output_capped:
            self.outcome.output_capped = True
            # The pipes stay open, read and discarded, until the command has
            # gone: closing them first would kill it with SIGPIPE, or not,
            # depending on timing. It ends by the TERM (KILL after the grace).
            self._kill_tree()

    def _close_output(self, fd: int) -> None:
        if self._open_outputs.pop(fd, None) is None:
            return
        if not self._paused:
            self._loop.remove_reader(fd)
        spawned = self._spawned
        assert spawned is not None
        if fd == spawned.pty_fd:
            return  # the master is closed last, in _release, as resize uses it
        os.close(fd)

    # --- stdin -------------------------------------------------------------------

    def _flush_stdin(self) -> None:
        spawned = self._spawned
        assert spawned is not None and spawned.stdin_fd is not None
        fd = spawned.stdin_fd
        written = 0
        try:
            while self._stdin_buffer:
                n = os.write(fd, self._stdin_buffer[:READ_SIZE])
                del self._stdin_buffer[:n]
                written += n
        except BlockingIOError:
            pass
        except OSError:  # EPIPE: the command closed its stdin; what's left is moot
            self._stdin_broken = True
            self._grant(written, discarded=False)
            self._grant(len(self._stdin_buffer), discarded=True)
            self._stdin_buffer.clear()
            self._finish_stdin()
            return
        self._grant(written, discarded=False)
        if self._stdin_buffer:
            self._loop.add_writer(fd, self._on_stdin_writable)
        elif self._stdin_eof:
            self._finish_stdin()

    def _on_stdin_writable(self) -> None:
        spawned = self._spawned
        assert spawned is not None and spawned.stdin_fd is not None
        self._loop.remove_writer(spawned.stdin_fd)
        self._flush_stdin()

    def _grant(self, nbytes: int, *, discarded: bool) -> None:
        # Grants are batched so a trickle of small writes doesn't cost a frame
        # each; an empty buffer always settles the debt so the client never
        # waits on credit the command has already consumed.
        self._credit_owed += nbytes
        if self._finished or self._credit_owed == 0:
            return
        if discarded or self._credit_owed >= self._credit_batch or not self._stdin_buffer:
            owed, self._credit_owed = self._credit_owed, 0
            self._on_stdin_credit(owed)

    def _finish_stdin(self) -> None:
        spawned = self._spawned
        if spawned is None or spawned.stdin_fd is None:
            return
        fd, spawned.stdin_fd = spawned.stdin_fd, None
        self._loop.remove_writer(fd)
        if spawned.pty_fd is not None and not self._stdin_broken:
            try:
                os.write(fd, b"\x04")  # a terminal's end of input is ^D, not a close
            except OSError:
                pass
        os.close(fd)

    # --- exit and escalation -------------------------------------------------------

    def _process_exited(self) -> None:
        spawned = self._spawned
        assert spawned is not None
        # WNOWAIT: learn the status but leave the zombie, so the pid (our process
        # group id) stays ours until we are done signalling the group.
        info = os.waitid(os.P_PID, spawned.process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is None:
            return
        self._loop.remove_reader(self._pidfd)
        self._exited = True
        self.outcome.duration = time.monotonic() - self._started_at
        if info.si_code == os.CLD_EXITED:
            self.outcome.exit_code = info.si_status
        else:
            self.outcome.signal = info.si_status
        if self._killing:
            # The leader got its TERM and is gone: whatever it left behind in
            # the group goes now, rather than after the grace.
            self._signal_group(signal.SIGKILL)
        if not self._maybe_finish():
            self._drain_left = self._graces.drain
            self._start_drain_clock()

    def _start_drain_clock(self) -> None:
        if self._drain_left is not None and self._drain_timer is None and not self._paused:
            self._drain_armed_at = time.monotonic()
            self._drain_timer = self._loop.call_later(self._drain_left, self._drain_expired)

    def _stop_drain_clock(self) -> None:
        if self._drain_timer is not None and self._drain_left is not None:
            self._drain_timer.cancel()
            self._drain_timer = None
            elapsed = time.monotonic() - self._drain_armed_at
            self._drain_left = max(0.0, self._drain_left - elapsed)

    def _drain_expired(self) -> None:
        self._drain_timer = None
        if self._finished:
            return
        self.outcome.pipes_held = True
        self._signal_group(signal.SIGKILL)
        for fd in list(self._open_outputs):
            self._close_output(fd)
        self._maybe_finish()

    def _time_out(self) -> None:
        if not self._exited:  # seen at once with an exit (a stopped server): the exit wins
            self._process_exited()
        if not self._exited and not self._killing:
            self.outcome.timed_out = True
            self._kill_tree()

    def _kill_tree(self) -> None:
        """TERM to the group now, KILL after the kill grace."""
        if self._killing:
            return
        self._killing = True
        self._signal_group(signal.SIGTERM)
        self._signal_group(signal.SIGCONT)  # a stopped process can't act on TERM
        if self._exited:
            self._signal_group(signal.SIGKILL)
        else:
            self._timers.append(
                self._loop.call_later(self._graces.kill, self._signal_group, signal.SIGKILL)
            )

    def _signal_group(self, signum: int) -> None:
        if self._spawned is None or self._finished:
            return
        try:
            os.killpg(self._spawned.process.pid, signum)
        except ProcessLookupError:
            pass  # the whole group is gone already

    def _maybe_finish(self) -> bool:
        if self._finished or not self._exited or self._open_outputs:
            return self._finished
        self._finished = True
        for timer in self._timers:
            timer.cancel()
        if self._drain_timer is not None:
            self._drain_timer.cancel()
        self._release()
        self._on_finish(self.outcome.exit_record(self._run.id))
        return True

    def _release(self) -> None:
        spawned = self._spawned
        assert spawned is not None
        self._finish_stdin_quietly()
        if spawned.pty_fd is not None:
            os.close(spawned.pty_fd)
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        # Reap now: the zombie kept the group id ours until this point.
        _, status = os.waitpid(spawned.process.pid, 0)
        spawned.process.returncode = os.waitstatus_to_exitcode(status)

    def _finish_stdin_quietly(self) -> None:
        self._stdin_buffer.clear()
        self._stdin_broken = True  # no ^D into a pty that is closing
        self._finish_stdin()
