"""Start ``rexecd`` and ``rexec`` without paying Python's start-up and
imports each time.

Half a second of CPU per start (interpreter start-up and importing rexec,
pydantic, asyncio) was a third of the whole suite's CPU: ~600 tests start
their own rexecd, and hundreds run the ``rexec`` program. A fork server, one
per pytest worker and program, imports the program once and forks a child
per start; the child takes the test's argv, environment, working directory,
umask and standard streams and runs the program as ``python -m MODULE``
would, to its end (atexit handlers, threads joined). Every test still gets
a fresh process of its own, port and directories. What a forked child
cannot show: what the program imports, its memory, the first build of its
message validators (done once, in the fork server), a standard stream closed
before it starts (tests of those start it with ``subprocess``).

The fork server is tied to the worker (it ends on EOF on its control socket
and with ``setpriv --pdeathsig``) and its children to it (``PR_SET_PDEATHSIG``),
so a killed test run leaves no rexecd behind.

Protocol on the control socket (a SOCK_SEQPACKET socketpair): the worker
sends each request as one JSON message with four descriptors (stdin, stdout,
stderr, and the child's end of a status socketpair); the fork server writes
``PID\\n`` on the status socket once forked and ``STATUS\\n`` (the raw wait
status) when the child has ended, then closes it.

Run by ``ForkServer`` (below) as ``python forkserver.py FD MODULE...``.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import json
import os
import runpy
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import IO, Any

from launch import ended_with_this_process

PR_SET_PDEATHSIG = 1
#: Descriptors per request: stdin, stdout, stderr, status socket.
FDS_PER_REQUEST = 4
#: Bytes of one request at most (argv and environment as JSON).
MAX_REQUEST = 1 << 20


class ForkedProcess:
    """A child of the fork server with the part of ``subprocess.Popen``'s
    interface the tests use: ``pid``, ``args``, ``stdout``, ``stderr``,
    ``returncode``, ``poll``, ``wait``, ``send_signal``, ``terminate``,
    ``kill``."""

    def __init__(
        self,
        args: list[str],
        status: socket.socket,
        stdin: IO[bytes] | None,
        stdout: IO[bytes] | None,
        stderr: IO[bytes] | None,
    ) -> None:
        self.args = args
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.returncode: int | None = None
        self._status = status
        # A test that never waits for its process still closes the socket
        # (no ResourceWarning failing whichever test runs the collector).
        weakref.finalize(self, status.close)
        self._received = b""
        self.pid = int(self._read_line(timeout=15.0))

    def _read_line(self, timeout: float | None) -> bytes:
        """The next line from the fork server; TimeoutExpired when none came."""
        while b"\n" not in self._received:
            if not select.select([self._status], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            chunk = self._status.recv(64)
            if not chunk:
                raise RuntimeError("the fork server went away")
            self._received += chunk
        line, self._received = self._received.split(b"\n", 1)
        return line

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.returncode = os.waitstatus_to_exitcode(int(self._read_line(timeout)))
            self._status.close()
        return self.returncode

    def poll(self) -> int | None:
        try:
            return self.wait(timeout=0)
        except subprocess.TimeoutExpired:
            return None

    def send_signal(self, sig: int) -> None:
        # The fork server reaps the child a moment before it says so: no such
        # process then means it has ended (its status is on the way). The PID
        # is free for that moment only, too short for the kernel to reuse it.
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkServer:
    """The worker's side: starts the fork server on first use; it imports
    ``preload`` before it forks anything."""

    def __init__(self, preload: tuple[str, ...]) -> None:
        self._preload = preload
        self._control: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the fork server now, from this thread (``popen`` starts it on
        first use). Call it from the main thread before starting servers from
        others: the fork server ends with the thread that started it
        (``ended_with_this_process``), and with it every server it forked."""
        with self._lock:
            self._ensure_started()

    def _ensure_started(self) -> socket.socket:
        if self._control is None or self._process is None or self._process.poll() is not None:
            if self._control is not None:
                self._control.close()  # the fork server that read it has ended
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            self._process = subprocess.Popen(
                ended_with_this_process(
                    [sys.executable, __file__, str(theirs.fileno()), *self._preload]
                ),
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
            )
            theirs.close()
            self._control = ours
        return self._control

    def popen(
        self,
        args: list[str],
        *,
        stdin: int | None = None,
        stdout: int | None = None,
        stderr: int | IO[Any] | None = None,
        cwd: str | Path | None = None,
        env: dict[str, str] | None = None,
        start_new_session: bool = False,
    ) -> ForkedProcess:
        """As ``subprocess.Popen(args, ...)`` for ``args`` of the form
        ``[sys.executable, "-m", MODULE, ...]`` or ``[sys.executable,
        SCRIPT.py, ...]`` (ValueError for any other program). ``stdout`` and
        ``stderr``: None (inherited), ``subprocess.PIPE``, a descriptor or a
        file; ``stdin``: None (inherited) or ``subprocess.PIPE``."""
        if len(args) < 2 or args[0] != sys.executable:
            raise ValueError(f"not a Python program of ours: {args[:2]}")
        program = args[1:3] if args[1] == "-m" else args[1:2]
        if program[0] != "-m" and not program[0].endswith(".py"):
            raise ValueError(f"not a module or a script: {program[0]}")
        request = {
            "program": program,
            "argv": args[1 + len(program) :],
            "env": dict(os.environ if env is None else env),
            "cwd": str(cwd or os.getcwd()),
            "umask": current_umask(),
            "new_session": start_new_session,
        }
        if stdin not in (None, subprocess.PIPE):
            raise ValueError("stdin: inherited or a pipe")
        streams, theirs = [], []
        for target, given in ((0, stdin), (1, stdout), (2, stderr)):
            if given == subprocess.PIPE:
                read_end, write_end = os.pipe()
                ours, child_end = (write_end, read_end) if target == 0 else (read_end, write_end)
                streams.append(os.fdopen(ours, "wb" if target == 0 else "rb"))
                theirs.append(child_end)
            else:
                streams.append(None)
                theirs.append(target if given is None else _descriptor(given))
        status_ours, status_theirs = socket.socketpair()
        try:
            with self._lock:
                control = self._ensure_started()
                socket.send_fds(
                    control, [json.dumps(request).encode()], [*theirs, status_theirs.fileno()]
                )
        finally:
            for given, fd in zip((stdin, stdout, stderr), theirs, strict=True):
                if given == subprocess.PIPE:
                    os.close(fd)
            status_theirs.close()
        return ForkedProcess(args, status_ours, *streams)

    def close(self) -> None:
        if self._control is not None:
            self._control.close()  # EOF: the fork server exits
        if self._process is not None:
            self._process.wait(timeout=15)


def run(
    args: list[str],
    *,
    timeout: float,
    input: bytes | str | None = None,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    text: bool = False,
    server: ForkServer | None = None,
) -> subprocess.CompletedProcess[Any]:
    """As ``subprocess.run(args, capture_output=True, timeout=..., ...)``
    (``text``: ``input`` encoded and output decoded as UTF-8), forked from
    this worker's ``server`` (``FORK_SERVER`` unless given): a program that
    runs to its end without paying its imports each time. With ``input``
    its stdin is a pipe that gets it, else stdin is inherited.
    TimeoutExpired, the child killed, after ``timeout`` seconds."""
    process = (server or FORK_SERVER).popen(
        args,
        stdin=None if input is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
    )
    if process.stdin is not None:
        data = input.encode() if isinstance(input, str) else input
        threading.Thread(target=_feed, args=(process.stdin, data), daemon=True).start()
    output = {process.stdout: bytearray(), process.stderr: bytearray()}
    deadline = time.monotonic() + timeout
    try:
        while streams := [stream for stream in output if not stream.closed]:
            ready = select.select(streams, [], [], max(0.0, deadline - time.monotonic()))[0]
            if not ready:
                raise subprocess.TimeoutExpired(args, timeout)
            for stream in ready:
                chunk = os.read(stream.fileno(), 65536)
                output[stream] += chunk
                if not chunk:
                    stream.close()
        returncode = process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise subprocess.TimeoutExpired(args, timeout) from None
    finally:
        for stream in output:
            stream.close()
    stdout, stderr = (bytes(data) for data in output.values())
    if text:
        return subprocess.CompletedProcess(args, returncode, stdout.decode(), stderr.decode())
    return subprocess.CompletedProcess(args, returncode, stdout, stderr)


def run_rexecd(
    *args: str,
    timeout: float = 30.0,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``rexecd args`` run to its end (``--check-config``, ``--version``, a
    refused start), output captured as text; forked as ``run``."""
    return run(
        [sys.executable, "-m", "rexec.daemon", *args], timeout=timeout, env=env, cwd=cwd, text=True
    )


def _feed(stdin: IO[bytes], data: bytes | None) -> None:
    """Write ``data`` to a child's stdin and close it; a child that stopped
    reading is no error (as ``subprocess.run``)."""
    with contextlib.suppress(BrokenPipeError), stdin:
        stdin.write(data or b"")


def _descriptor(stream: int | IO[Any]) -> int:
    return stream if isinstance(stream, int) else stream.fileno()


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# The fork server itself.


def _serve(control: socket.socket) -> dict[str, Any]:
    """Fork a child per request until EOF; returns (in the child only) its
    request, with its descriptors already in place."""
    children: dict[int, socket.socket] = {}
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    while True:
        ready = select.select([control, wake_read], [], [])[0]
        if wake_read in ready:
            os.read(wake_read, 4096)
            _reap(children)
        if control not in ready:
            continue
        message, fds, _flags, _address = socket.recv_fds(control, MAX_REQUEST, FDS_PER_REQUEST)
        if not message:
            for pid in children:  # the worker is gone: so are its servers
                os.kill(pid, signal.SIGTERM)
            os._exit(0)
        request = json.loads(message)
        status = socket.socket(fileno=fds[3])
        fork_server = os.getpid()
        pid = os.fork()
        if pid == 0:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.close(wake_read)
            os.close(wake_write)
            control.close()
            status.close()
            for child_status in children.values():
                child_status.close()
            _become_child(request, fds[:3], fork_server)
            return request
        for fd in fds[:3]:
            os.close(fd)
        status.sendall(f"{pid}\n".encode())
        children[pid] = status


def _reap(children: dict[int, socket.socket]) -> None:
    while children:
        pid, wait_status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            return
        status = children.pop(pid, None)
        if status is not None:
            try:
                status.sendall(f"{wait_status}\n".encode())
            except OSError:
                pass  # the test has gone; nothing to tell
            status.close()


def _become_child(request: dict[str, Any], fds: list[int], fork_server: int) -> None:
    """Take the test's streams, directory, environment and umask; end with
    the fork server."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != fork_server:  # it died before the line above
        os._exit(1)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.umask(request["umask"])
    if request["new_session"]:
        os.setsid()


def _build_message_validators() -> None:
    """Build every message model's validator once, before any fork: each child
    would otherwise build those it meets on first use (``defer_build``),
    about 10 ms of CPU per child."""
    from rexec.protocol import MODEL_BY_TYPE

    for model in MODEL_BY_TYPE.values():
        model.model_rebuild()


def _run_as_main(request: dict[str, Any]) -> None:
    """Run the request's program as ``python -m MODULE`` or ``python
    SCRIPT`` would: as ``__main__``, with its sys.argv and sys.path[0]."""
    program, argv = request["program"], request["argv"]
    if program[0] == "-m":
        sys.argv = [program[1], *argv]
        sys.path[0] = os.getcwd()
        # As after 'python -m': the module is __main__ only (the fork server
        # imported it for what it imports, which stays imported).
        sys.modules.pop(program[1], None)
        runpy.run_module(program[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = [program[0], *argv]
        sys.path[0] = os.path.dirname(os.path.abspath(program[0]))
        runpy.run_path(program[0], run_name="__main__")


def main() -> None:
    # The point: imported once, before any fork.
    for module in sys.argv[2:]:
        importlib.import_module(module)
    _build_message_validators()
    # Out of every child's garbage collections: a collection writes to each
    # object it visits, and so makes the child copy every page of them.
    gc.freeze()
    control = socket.socket(fileno=int(sys.argv[1]))
    _run_as_main(_serve(control))
    sys.exit(0)


if __name__ == "__main__":
    main()


#: This worker's fork servers (each started on first use, ends with the
#: worker): of rexecd (concurrent.futures.thread is what it imports when it
#: starts serving), and of ``python -m rexec_client.cli``, its subcommands in.
FORK_SERVER = ForkServer(("concurrent.futures.thread", "rexec.daemon"))
CLI_FORK_SERVER = ForkServer(
    tuple(f"rexec_client.cli.{name}" for name in ("run", "put", "get", "batch", "keygen"))
)
