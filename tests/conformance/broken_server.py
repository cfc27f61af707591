"""A small rexec server whose breakages are flags, to prove the suite can fail.

With no flag it is a plain, conforming server (no pty support: it answers
``pty.failed``), written independently of rexecd: asyncio streams, its own
framing loop on ``rexec.protocol.decode_header``, real subprocesses. Each flag
in ``FLAGS`` breaks one rule the way real implementations do; the tests assert
that the suite catches each by the right case ids.

Run: ``python broken_server.py --key-file F --port 0 [--break a,b] [...]``;
it prints ``listening on HOST:PORT`` once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import errno
import functools
import hashlib
import json
import os
import secrets
import signal
import stat
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

from rexec import protocol
from rexec.binding import connection_binding
from rexec.conformance.cases.handshake import version_1_client_mac


def _header_frame(header: dict[str, Any], *, drop: str) -> bytes:
    """A body-less frame of ``header`` without its member ``drop``."""
    data = json.dumps({k: v for k, v in header.items() if k != drop}).encode()
    return struct.pack("<i", len(data)) + data


FLAGS: dict[str, str] = {
    # framing
    "accept_negative_length": "reads the length as unsigned: -1 is 'too large', 0 waits",
    "no_header_limit": "never checks the header length against the limit",
    "off_by_one_limit": "refuses a header exactly at the limit",
    "no_body_limit": "never checks data_size against the body limit",
    "fragile_reader": "assumes each read() holds whole frames: drops partial ones and the rest",
    "exit_without_signal": "leaves out exit's signal member when it is null",
    "repeated_member": "writes started's pid member twice (the same value)",
    "unknown_code_fatal": "fails the connection on a client's error of a code it does not know",
    "lenient_utf8": "decodes headers with errors='replace' before parsing",
    "lax_schema": "ignores frames that fail the schema (pings get a coerced pong)",
    "generic_header_error": "reports every header fault as header.invalid",
    "echo_input": "quotes the offending header in error messages",
    "first_member_wins": "keeps the first of repeated members",
    "require_data_size": "refuses a header without data_size",
    "nan_is_invalid": "answers NaN and Infinity with header.invalid, not header.bad_json",
    "unbounded_integers": "answers a ping whose seq is 2**53 or more",
    "big_endian": "sends hello with a big-endian length",
    # handshake
    "no_hello": "never sends hello",
    "ignore_version": "accepts any auth version",
    "v1_auth_invalid": "answers a version 1 auth with header.invalid, not version.unsupported",
    "ignore_features": "accepts features hello did not offer",
    "weak_mac": "also accepts version 1's mac, over the nonces and the name only",
    "unbound_ok": "also accepts a mac without the connection's binding, as version 2 did",
    "no_auth_required": "acts on frames before authentication",
    "accept_any_mac": "does not check the client's mac",
    "fixed_nonce": "uses the same nonce for every connection",
    "bad_server_mac": "sends a wrong auth_ok mac",
    "no_auth_deadline": "waits for auth forever",
    "leak_key": "announces the key as its server name",
    # commands
    "argv_via_shell": "runs argv joined with spaces through sh -c",
    "shell_split": "runs a shell string split on spaces, without a shell",
    "drop_env": "silently drops the env of a run (forbidden names included)",
    "stdin_pipe_always": "gives every command a stdin pipe that stays open",
    "exit_code_off_by_one": "reports (exit_code + 1) % 256",
    "ignore_cwd": "runs every command in its own cwd",
    "allow_forbidden_env": "passes LD_PRELOAD and friends through",
    "spawn_errors_as_exit": "runs argv through sh, so a missing program is exit 127",
    "no_process_group": "leaves commands in the server's process group",
    "signal_leader_only": "delivers signal frames to the leader only",
    "no_id_check": "accepts repeated ids and ignores unknown ones",
    "strict_ended": "treats a frame for an ended command as fatal",
    "double_terminal": "sends exit twice",
    "output_before_started": "sends started just before exit",
    "exit_before_output": "sends exit as the process ends, then its remaining output",
    "buffer_output": "holds output until the process ends",
    "merge_stderr": "sends stderr as stdout",
    "text_mode_output": "decodes output as UTF-8 (with replacement) and re-encodes it",
    "truncate_exit_code": "reports exit_code & 0x7f",
    "signal_as_exit_code": "reports death by signal N as exit_code 128+N",
    "bad_counts": "reports zero byte counts",
    "close_on_command_error": "makes command-scoped errors fatal",
    # output
    "drop_when_paused": "drops output while the socket buffer is full",
    "unbounded_buffer": "never waits for the socket: buffers all output",
    "huge_frames": "sends output in frames of up to 2 MiB",
    "ignore_output_limit": "never caps output",
    "capped_at_limit": "ends a command whose output reaches output_limit exactly: output_capped",
    "cap_closes_pipes": "at output_limit closes the pipes, and sends TERM only 0.5 s later",
    "inherit_ignored_signals": "starts commands with SIGINT and SIGQUIT ignored, SIGUSR1 blocked",
    # stdin
    "no_credit_grant": "never sends stdin_credit",
    "no_flow_control": "does not enforce the stdin credit",
    "blocking_stdin_write": "waits for each stdin write in the frame reader",
    "strict_stdin": "fails the connection on stdin for a running command without stdin, or "
    "after stdin_eof (and drops it once the command has ended)",
    "ignore_stdin_eof": "never closes a command's stdin",
    # ending commands
    "kill_leader_only": "timeouts, cancels and disconnects kill the leader only",
    "leave_running_on_timeout": "reports a timeout without killing anything",
    "no_kill_grace": "sends SIGKILL together with SIGTERM, with no kill grace between",
    "timeout_in_ms": "reads a run's timeout as milliseconds",
    "duration_in_ms": "reports an exit's duration in milliseconds",
    "no_cancelled_flag": "reports cancelled false",
    "wait_for_pipes": "ends a command when its pipes close, not when it exits",
    "no_reap": "reports the pid of a child it never reaps",
    "no_kill_on_disconnect": "leaves commands running when the client goes",
    "ignore_truncated_eof": "treats an end of stream inside a frame as a half-close",
    "eof_is_disconnect": "kills commands on a half-close",
    "serialize_commands": "starts a command only when the previous one has ended",
    "no_busy_limit": "never answers busy",
    "slot_freed_late": "counts a command against max_commands for 1 s after its exit",
    # session
    "no_pong": "never answers ping",
    "no_close_after_fatal": "sends a fatal error but keeps the connection open",
    "continue_after_fatal": "sends a fatal error, then goes on reading and acting",
    "no_abort": "after a fatal error, waits for the peer to read everything",
    # file transfer
    "put_in_place": "writes a put straight into the target file (no temporary file, no rename)",
    "keep_temp": "leaves a failed put's temporary file behind",
    "put_umask": "creates a put's file with mode & ~0o022 (applies a umask)",
    "no_digest_check": "never compares a put's sha256",
    "no_size_check": "never compares a put's byte count with its size",
    "early_done": "sends a put's done as soon as size bytes arrived, before stdin_eof",
    "put_no_credit_grant": "never grants stdin credit back for a put",
    "put_no_flow_control": "does not enforce the stdin credit of a put",
    "put_ignores_half_close": "leaves a put open when the client half-closes",
    "get_short": "sends one byte less than a get's file size, and a done that says so",
    "done_bad_sha256": "sends done with the sha256 of something else",
    "get_any_file": "sends devices and FIFOs as if they were empty regular files",
    "generic_file_errors": "reports every transfer failure as file.failed",
    "double_done": "sends a transfer's terminal frame (done or error) twice",
    "no_replace": "refuses a put whose target exists (a no-clobber link: file.failed EEXIST)",
    "strict_transfer_frames": "fails the connection on signal or resize for a running transfer",
    "ignore_transfer_cancel": "ignores cancel for a transfer",
    "transfer_ids_apart": "checks transfer ids apart from run ids",
    "transfers_not_counted": "does not count transfers against max_commands",
    "expand_tilde": "expands ~ in transfer paths",
    "relative_to_cwd": "resolves relative transfer paths against its own cwd, not the home",
    "latin1_paths": "encodes transfer paths as Latin-1 (unencodable characters as ?)",
    "ignore_end_digest": "never checks the sha256 a put gives in its stdin_eof",
    "resume_from_zero": "drops what an interrupted resumable put received: file always says 0",
    "get_offset_ignored": "sends a get's whole file, whatever its offset",
}

FORBIDDEN_ENV = ("LD_", "DYLD_")
FORBIDDEN_ENV_NAMES = {
    "GLIBC_TUNABLES",
    "BASH_ENV",
    "ENV",
    "PYTHONSTARTUP",
    "PERL5OPT",
    "NODE_OPTIONS",
    "IFS",
}
LENGTH = struct.Struct("<i")
HIGH_WATER = 256 * 1024


class Fatal(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


#: What a daemon started as a background job of a script passes on when it
#: resets nothing: SIGINT and SIGQUIT ignored; and a blocked SIGUSR1.
_INHERITED_SIGNALS = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "signal.signal(signal.SIGQUIT, signal.SIG_IGN); "
    "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1}); "
    "os.execvp(sys.argv[1], sys.argv[1:])"
)


def _version_1_mac(key: bytes, session: Session, auth: protocol.Auth) -> bytes:
    """Protocol version 1's client mac: over the nonces and the server name only."""
    return version_1_client_mac(key, session.nonce, auth.nonce, session.config.name)


def _json_object(raw: bytes) -> dict[str, Any]:
    """``raw`` as a JSON object, or {} if it is none."""
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _first_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        result.setdefault(name, value)
    return result


class Config:
    def __init__(self, args: argparse.Namespace, key: bytes) -> None:
        self.key = key
        self.flags = set(filter(None, args.breaks.split(",")))
        unknown = self.flags - FLAGS.keys()
        if unknown:
            raise SystemExit(f"unknown flags: {sorted(unknown)}")
        self.limits = protocol.ServerLimits(
            max_header=args.max_header,
            max_body=1024 * 1024,
            stdin_window=256 * 1024,
            max_commands=args.max_commands,
        )
        self.auth_timeout = args.auth_timeout
        self.kill_grace = args.kill_grace
        self.drain_grace = args.drain_grace
        self.name = key.hex() if "leak_key" in self.flags else "broken-server"


#: Every command group started, killed at shutdown whatever the flags.
STARTED_GROUPS: set[int] = set()


class Command:
    """One running command and its pumps."""

    def __init__(
        self, session: Session, run: protocol.Run, proc: asyncio.subprocess.Process
    ) -> None:
        self.session = session
        self.run = run
        self.proc = proc
        self.flags = session.flags
        self.pid = proc.pid
        self.counts = {"stdout": 0, "stderr": 0, "stdin": 0}
        self.outcome: dict[str, Any] = {
            "timed_out": False,
            "cancelled": False,
            "output_capped": False,
            "pipes_held": False,
        }
        self.started = time.monotonic()
        self.stdin_open = run.stdin
        self.credit = session.config.limits.stdin_window
        self.stdin_queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.exited = asyncio.Event()
        self.held: list[tuple[str, bytes]] = []  # output held back by a flag
        self.timers: list[asyncio.TimerHandle] = []  # cancelled when the command ends
        self.kill_timers: list[asyncio.TimerHandle] = []  # not: KILL reaches stragglers
        self.killing = False
        self.finished = False
        self.pumps = [asyncio.ensure_future(self.pump(proc.stdout, "stdout"))]
        if proc.stderr is not None:
            self.pumps.append(asyncio.ensure_future(self.pump(proc.stderr, "stderr")))
        self.stdin_task = asyncio.ensure_future(self.feed()) if run.stdin else None
        self.task = asyncio.ensure_future(self.supervise())
        if run.timeout is not None:
            loop = asyncio.get_running_loop()
            delay = run.timeout / 1000 if "timeout_in_ms" in self.flags else run.timeout
            self.timers.append(loop.call_later(delay, self.kill_tree, "timed_out"))

    # --- signals ------------------------------------------------------------------

    def signal(self, signum: int, *, leader_only: bool = False) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if leader_only or "no_process_group" in self.flags:
                if not self.exited.is_set():
                    os.kill(self.pid, signum)
            else:
                os.killpg(self.pid, signum)

    def kill_tree(self, reason: str) -> None:
        if self.finished or self.killing:
            return
        self.killing = True
        self.outcome[reason] = True
        if reason == "timed_out" and "leave_running_on_timeout" in self.flags:
            self.finish_now(signal.SIGTERM)
            return
        leader_only = "kill_leader_only" in self.flags
        self.signal(signal.SIGTERM, leader_only=leader_only)
        loop = asyncio.get_running_loop()
        self.kill_timers.append(
            loop.call_later(
                0 if "no_kill_grace" in self.flags else self.session.config.kill_grace,
                functools.partial(self.signal, signal.SIGKILL, leader_only=leader_only),
            )
        )

    def close_pipes_then_kill(self) -> None:
        if self.outcome["output_capped"]:
            return
        self.outcome["output_capped"] = True
        transport = self.proc._transport  # type: ignore[attr-defined]
        for fd in (1, 2):
            pipe = transport.get_pipe_transport(fd)
            if pipe is not None:
                pipe.close()
        loop = asyncio.get_running_loop()
        self.timers.append(loop.call_later(0.5, self.kill_tree, "output_capped"))

    # --- pumps -----------------------------------------------------------------------

    async def pump(self, stream: asyncio.StreamReader | None, kind: str) -> None:
        assert stream is not None
        flags = self.flags
        size = 2 * 1024 * 1024 if "huge_frames" in flags else 64 * 1024
        while True:
            if "huge_frames" in flags:
                data = b""
                while len(data) < size:
                    more = await stream.read(size - len(data))
                    if not more:
                        break
                    data += more
            else:
                data = await stream.read(size)
            if not data:
                return
            if "merge_stderr" in flags:
                kind = "stdout"
            if "text_mode_output" in flags:
                data = data.decode("utf-8", "replace").encode()
            limit = self.run.output_limit
            if limit is not None and "ignore_output_limit" not in flags:
                room = limit - self.counts["stdout"] - self.counts["stderr"]
                withheld = len(data) >= room if "capped_at_limit" in flags else len(data) > room
                data = data[: max(room, 0)]
                if withheld and "cap_closes_pipes" in flags:
                    self.close_pipes_then_kill()
                elif withheld:
                    self.kill_tree("output_capped")
                if not data:
                    continue
            self.counts[kind] += len(data)
            if (
                "buffer_output" in flags
                or "exit_before_output" in flags
                or "output_before_started" in flags
            ):
                self.held.append((kind, data))
                continue
            await self.session.send_output(self.run.id, kind, data)

    async def feed(self) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        while (data := await self.stdin_queue.get()) is not None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                stdin.write(data)
                await stdin.drain()
            if "no_credit_grant" not in self.flags and not self.finished and data:
                self.credit += len(data)
                self.session.send(protocol.StdinCredit(id=self.run.id, bytes=len(data)))
        if "ignore_stdin_eof" not in self.flags:
            stdin.close()

    # --- the end -------------------------------------------------------------------------

    async def wait_exit(self) -> int:
        """The process's exit status, as soon as it exits, whatever its pipes
        do (asyncio's ``wait()`` also waits for them): ``waitid(WNOWAIT)`` in a
        thread, leaving the reaping to asyncio's child watcher."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()

        def watch() -> None:
            try:
                info: Any = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
            except ChildProcessError:
                info = None
            loop.call_soon_threadsafe(done.set_result, info)

        threading.Thread(target=watch, daemon=True).start()
        info = await done
        if info is None:  # already reaped by the watcher
            while self.proc.returncode is None:
                await asyncio.sleep(0.01)
            return self.proc.returncode
        if info.si_code == os.CLD_EXITED:
            return int(info.si_status)
        return -int(info.si_status)

    async def supervise(self) -> None:
        code = await self.wait_exit()
        self.exited.set()
        pumps = asyncio.gather(*self.pumps, return_exceptions=True)
        if "wait_for_pipes" in self.flags:
            await pumps
        else:
            try:
                await asyncio.wait_for(asyncio.shield(pumps), self.session.config.drain_grace)
            except TimeoutError:
                self.outcome["pipes_held"] = True
                self.signal(signal.SIGKILL)
                for pump in self.pumps:
                    pump.cancel()
        self.finish(code)

    def finish_now(self, sig: int) -> None:
        for pump in self.pumps:
            pump.cancel()
        self.finish(-sig)

    def finish(self, code: int) -> None:
        if self.finished:
            return
        self.finished = True
        for timer in self.timers:
            timer.cancel()
        if self.stdin_task is not None:
            self.stdin_task.cancel()
        flags = self.flags
        exit_code, sig = (code, None) if code >= 0 else (None, -code)
        if "exit_code_off_by_one" in flags and exit_code is not None:
            exit_code = (exit_code + 1) % 256
        if "truncate_exit_code" in flags and exit_code is not None:
            exit_code &= 0x7F
        if "signal_as_exit_code" in flags and sig is not None:
            exit_code, sig = 128 + sig, None
        if "no_cancelled_flag" in flags:
            self.outcome["cancelled"] = False
        counts = {f"{k}_bytes": (0 if "bad_counts" in flags else v) for k, v in self.counts.items()}
        exit_frame = protocol.Exit(
            id=self.run.id,
            exit_code=exit_code,
            signal=sig,
            signal_name=signal.Signals(sig).name if sig else None,
            duration=(time.monotonic() - self.started) * (1000 if "duration_in_ms" in flags else 1),
            **self.outcome,
            **counts,
        )
        session = self.session
        if "output_before_started" in flags:
            session.flush_held(self)
            session.send(protocol.Started(id=self.run.id, pid=self.pid))
        elif "buffer_output" in flags:
            session.flush_held(self)
        session.send(exit_frame)
        if "exit_before_output" in flags:
            session.flush_held(self)
        if "double_terminal" in flags:
            session.send(exit_frame)
        session.command_done(self)


def _file_code(flags: set[str], code: str) -> str:
    return "file.failed" if "generic_file_errors" in flags else code


def _file_error(flags: set[str], exc: OSError) -> tuple[str, str]:
    name = errno.errorcode.get(exc.errno or 0, "EUNKNOWN")
    code = {
        errno.ENOENT: "file.not_found",
        errno.ENOTDIR: "file.not_found",
        errno.EACCES: "file.permission_denied",
        errno.EPERM: "file.permission_denied",
        errno.EISDIR: "file.is_directory",
    }.get(exc.errno or 0, "file.failed")
    return _file_code(flags, code), f"file operation failed ({name})"


class Transfer:
    """A put or a get: no process, one terminal frame (done or an error)."""

    def __init__(self, session: Session, request: protocol.Put | protocol.Get) -> None:
        self.session = session
        self.request = request
        self.id = request.id
        self.flags = session.flags
        self.finished = False
        self.ended = asyncio.Event()
        self.digest = hashlib.sha256()
        path = request.path
        if "expand_tilde" in self.flags:
            path = os.path.expanduser(path)
        if not os.path.isabs(path):
            base = os.getcwd() if "relative_to_cwd" in self.flags else os.environ.get("HOME", "/")
            path = os.path.join(base, path)
        self.path = (
            path.encode("latin-1", "replace") if "latin1_paths" in self.flags else path.encode()
        )

    def start(self) -> None:
        raise NotImplementedError

    def cleanup(self, failed: bool) -> None:
        pass

    def finish(self, error: tuple[str, str] | None, size: int = 0) -> None:
        if self.finished:
            return
        self.finished = True
        self.ended.set()
        self.cleanup(error is not None)
        session = self.session
        if error is None:
            digest = self.digest.hexdigest()
            if "done_bad_sha256" in self.flags:
                digest = hashlib.sha256(b"something else").hexdigest()
            done = protocol.Done(id=self.id, size=size, sha256=digest)
            session.send(done)
            if "double_done" in self.flags:
                session.send(done)
        else:
            refusal = protocol.Error(code=error[0], message=error[1], fatal=False, id=self.id)
            session.send(refusal)
            if "double_done" in self.flags:
                session.send(refusal)
        session.transfer_done(self)

    async def frame(self, message: Any) -> None:
        if isinstance(message, (protocol.Signal, protocol.Resize)):
            if "strict_transfer_frames" in self.flags:
                raise Fatal("protocol.unexpected", f"{message.type} for a transfer")
        elif isinstance(message, protocol.Cancel):
            if "ignore_transfer_cancel" not in self.flags:
                self.cancel()
        else:
            await self.data(message)

    async def data(self, message: Any) -> None:
        if "strict_stdin" in self.flags:
            raise Fatal("protocol.unexpected", "a get takes no stdin")
        # [command.frames.dropped]: a get's stdin is never open.

    def cancel(self) -> None:
        self.finish(("file.cancelled", "transfer cancelled"))

    def input_ended(self) -> None:
        pass


class PutTransfer(Transfer):
    def __init__(self, session: Session, request: protocol.Put) -> None:
        super().__init__(session, request)
        self.put = request
        self.credit = 0 if request.resume else session.config.limits.stdin_window
        self.received = 0
        self.written = 0
        self.fd = -1
        self.temp: bytes | None = None
        self.eof: protocol.StdinEof | None = None

    def start(self) -> None:
        target, flags = self.path, self.flags
        directory, name = os.path.split(target)
        try:
            if name in (b"", b".", b"..") or os.path.isdir(target):
                self.finish((_file_code(flags, "file.is_directory"), "the target is a directory"))
                return
            if self.put.resume:
                self.resume(directory, name)
                return
            if "put_in_place" in flags:
                self.fd = os.open(
                    target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600
                )
            else:
                self.temp = os.path.join(
                    directory, b"." + name + b".rexec-" + secrets.token_hex(4).encode() + b".tmp"
                )
                self.fd = os.open(
                    self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600
                )
        except OSError as exc:
            self.finish(_file_error(flags, exc))

    def resume(self, directory: bytes, name: bytes) -> None:
        """A resumable put: continue the partial file of this path and key."""
        assert self.put.resume is not None
        self.temp = os.path.join(directory, b"." + name + b".rexec-" +
                                 self.put.resume.encode() + b".part")  # fmt: skip
        if "resume_from_zero" in self.flags:
            with contextlib.suppress(OSError):
                os.unlink(self.temp)
        self.fd = os.open(self.temp, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        while chunk := os.read(self.fd, 1 << 20):
            self.digest.update(chunk)
            self.written += len(chunk)
        window = self.session.config.limits.stdin_window
        self.credit = window
        self.session.send(protocol.File(id=self.id, size=self.written, mode=self.put.mode))
        self.session.send(protocol.StdinCredit(id=self.id, bytes=window))

    async def data(self, message: Any) -> None:
        flags = self.flags
        if self.eof:
            if "strict_stdin" in flags:
                raise Fatal("protocol.unexpected", "stdin after stdin_eof")
            return  # [command.frames.dropped]
        if isinstance(message, protocol.StdinEof):
            self.eof = message
            self.complete()
            return
        size = message.data_size
        if size > self.credit and "put_no_flow_control" not in flags:
            raise Fatal("flow.window_exceeded", "stdin beyond its credit")
        self.credit -= size
        self.received += size
        if (
            self.put.size is not None
            and self.written + size > self.put.size
            and ("no_size_check" not in flags)
        ):
            self.finish(("file.size_mismatch", "more bytes than declared"))
            return
        view = memoryview(message.data)
        while view:
            view = view[os.write(self.fd, view) :]
        self.digest.update(message.data)
        self.written += size
        if size and "put_no_credit_grant" not in flags:
            self.credit += size
            self.session.send(protocol.StdinCredit(id=self.id, bytes=size))
        if "early_done" in flags and self.put.size is not None and self.received >= self.put.size:
            self.complete()

    def complete(self) -> None:
        flags = self.flags
        if self.finished:
            return
        eof = self.eof or protocol.StdinEof(id=self.id)
        size = self.put.size if self.put.size is not None else eof.size
        if self.written != size and "no_size_check" not in flags:
            self.finish(("file.size_mismatch", "fewer bytes than declared"))
            return
        sha256 = self.put.sha256
        if sha256 is None and "ignore_end_digest" not in flags:
            sha256 = eof.sha256
        if (
            sha256 is not None
            and self.digest.hexdigest() != sha256
            and ("no_digest_check" not in flags)
        ):
            self.finish(("file.digest_mismatch", "the sha256 is not the declared one"))
            return
        mode = self.put.mode & ~0o022 if "put_umask" in flags else self.put.mode
        try:
            os.fchmod(self.fd, mode)
            os.close(self.fd)
            self.fd = -1
            if self.temp is not None and "no_replace" in flags:
                os.link(self.temp, self.path)  # EEXIST when the target exists
                os.unlink(self.temp)
                self.temp = None
            elif self.temp is not None:
                os.replace(self.temp, self.path)
                self.temp = None
        except OSError as exc:
            self.finish(_file_error(flags, exc))
            return
        self.finish(None, self.written)

    def input_ended(self) -> None:
        if not self.eof and "put_ignores_half_close" not in self.flags:
            self.cancel()

    def cleanup(self, failed: bool) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        interrupted = self.put.resume and not self.eof
        if self.temp is not None and "keep_temp" not in self.flags and not interrupted:
            with contextlib.suppress(OSError):
                os.unlink(self.temp)
        self.temp = None


class GetTransfer(Transfer):
    task: asyncio.Future[None] | None = None

    def start(self) -> None:
        self.task = asyncio.ensure_future(self.stream())

    async def stream(self) -> None:
        flags = self.flags
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
        except OSError as exc:
            self.finish(_file_error(flags, exc))
            return
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                self.finish((_file_code(flags, "file.is_directory"), "the source is a directory"))
                return
            regular = stat.S_ISREG(info.st_mode)
            if not regular and "get_any_file" not in flags:
                self.finish(("file.failed", "the source is not a regular file"))
                return
            size = info.st_size if regular else 0
            assert isinstance(self.request, protocol.Get)
            offset = 0 if "get_offset_ignored" in flags else self.request.offset
            if offset > size:
                self.finish(("file.size_mismatch", "the file is shorter than the offset"))
                return
            self.session.send(protocol.File(id=self.id, size=size, mode=stat.S_IMODE(info.st_mode)))
            if "get_short" in flags and size:
                size -= 1
            sent = 0
            while sent < offset:  # hashed, not sent
                chunk = os.read(fd, min(64 * 1024, offset - sent))
                self.digest.update(chunk)
                sent += len(chunk)
            while sent < size:
                chunk = os.read(fd, min(64 * 1024, size - sent))
                if not chunk:
                    self.finish(("file.size_mismatch", "the file shrank while it was read"))
                    return
                self.digest.update(chunk)
                sent += len(chunk)
                self.session.send(protocol.Stdout.with_data(self.id, chunk))
                try:
                    await self.session.writer.drain()
                except ConnectionError:
                    self.finish(("file.cancelled", "the client has gone"))
                    return
            self.finish(None, sent)
        finally:
            os.close(fd)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
        super().cancel()


class Session:
    """One client connection."""

    def __init__(
        self, config: Config, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.config = config
        self.flags = config.flags
        self.reader = reader
        self.writer = writer
        writer.transport.set_write_buffer_limits(high=HIGH_WATER)
        self.nonce = "00" * 32 if "fixed_nonce" in self.flags else secrets.token_hex(32)
        self.authed = False
        self.closing = False
        self.half_closed = False
        self.buffer = bytearray()
        self.last_id = -1
        self.commands: dict[int, Command] = {}
        self.transfers: dict[int, Transfer] = {}
        self.last_transfer_id = -1
        self.serial: asyncio.Future[None] | None = None
        self.hello_frame = b""
        self.frame_head = b""  # the length and header of the frame being handled

    # --- output -------------------------------------------------------------------------

    def send(self, message: Any) -> None:
        if self.closing and not isinstance(message, protocol.Error):
            return
        if self.writer.is_closing():
            return
        frame = protocol.encode_frame(message)
        if isinstance(message, protocol.Hello) and "big_endian" in self.flags:
            frame = struct.pack(">i", len(frame) - 4) + frame[4:]
        if isinstance(message, protocol.Hello):
            self.hello_frame = frame  # as it travels: the transcript's first piece
        if (
            isinstance(message, protocol.Exit)
            and message.signal is None
            and "exit_without_signal" in self.flags
        ):
            frame = _header_frame(json.loads(frame[4:]) | {"signal": None}, drop="signal")
        if isinstance(message, protocol.Started) and "repeated_member" in self.flags:
            header = frame[4:-1] + b',"pid":%d}' % message.pid
            frame = struct.pack("<i", len(header)) + header
        self.writer.write(frame)

    async def send_output(self, command_id: int, kind: str, data: bytes) -> None:
        cls = protocol.Stdout if kind == "stdout" else protocol.Stderr
        if (
            "drop_when_paused" in self.flags
            and self.writer.transport.get_write_buffer_size() > HIGH_WATER
        ):
            return
        self.send(cls.with_data(command_id, data))
        if "unbounded_buffer" not in self.flags and "drop_when_paused" not in self.flags:
            with contextlib.suppress(ConnectionError):
                await self.writer.drain()

    def flush_held(self, command: Command) -> None:
        for kind, data in command.held:
            cls = protocol.Stdout if kind == "stdout" else protocol.Stderr
            self.send(cls.with_data(command.run.id, data))
        command.held.clear()

    def command_done(self, command: Command) -> None:
        if "slot_freed_late" in self.flags and not self.closing:
            asyncio.get_running_loop().call_later(1.0, self.commands.pop, command.run.id, None)
            return
        self.commands.pop(command.run.id, None)
        if self.half_closed and not self.commands and not self.transfers:
            self.close()

    def transfer_done(self, transfer: Transfer) -> None:
        self.transfers.pop(transfer.id, None)
        if self.half_closed and not self.commands and not self.transfers:
            self.close()

    def running(self) -> int:
        """What counts against max_commands."""
        transfers = 0 if "transfers_not_counted" in self.flags else len(self.transfers)
        return len(self.commands) + transfers

    # --- closing ------------------------------------------------------------------------

    def fatal(self, code: str, message: str) -> None:
        self.send(protocol.Error(code=code, message=message[:200], fatal=True))
        if "no_close_after_fatal" in self.flags or "continue_after_fatal" in self.flags:
            return
        self.close()

    def close(self) -> None:
        if self.closing:
            return
        self.closing = True
        self.writer.close()
        if "no_abort" not in self.flags:
            asyncio.get_running_loop().call_later(1.0, self.writer.transport.abort)

    def disconnect(self) -> None:
        if "no_kill_on_disconnect" not in self.flags:
            for command in list(self.commands.values()):
                command.kill_tree("cancelled")
        for transfer in list(self.transfers.values()):
            transfer.cancel()
        self.close()

    # --- input ----------------------------------------------------------------------------

    async def serve(self) -> None:
        if "no_hello" not in self.flags:
            self.send(
                protocol.Hello(
                    versions=[protocol.PROTOCOL_VERSION],
                    nonce=self.nonce,
                    server=self.config.name,
                    limits=self.config.limits,
                )
            )
        loop = asyncio.get_running_loop()
        deadline = None
        if "no_auth_deadline" not in self.flags:
            deadline = loop.call_later(self.config.auth_timeout, self.auth_expired)
        try:
            while not (self.closing and "continue_after_fatal" not in self.flags):
                try:
                    data = await self.reader.read(256 * 1024)
                except ConnectionError:
                    return  # a reset: the client is gone (finally disconnects)
                if not data:
                    self.end_of_stream()
                    return
                if "fragile_reader" in self.flags:
                    self.buffer.clear()
                self.buffer += data
                try:
                    await self.process()
                except Fatal as exc:
                    self.fatal(exc.code, exc.message)
                if self.authed and deadline is not None:
                    deadline.cancel()
        finally:
            if deadline is not None:
                deadline.cancel()
            if not self.half_closed:
                self.disconnect()

    def auth_expired(self) -> None:
        if not self.authed:
            self.fatal("auth.timeout", "authentication deadline expired")

    def end_of_stream(self) -> None:
        if self.buffer and "ignore_truncated_eof" not in self.flags:
            self.disconnect()  # a truncated frame: the client is gone
            return
        if "eof_is_disconnect" in self.flags:
            self.disconnect()
            return
        self.half_closed = True
        for transfer in list(self.transfers.values()):
            transfer.input_ended()
        if not self.commands and not self.transfers:
            self.close()

    def _header_error(self, exc: protocol.RemoteProtocolError, raw: bytes) -> Fatal:
        code = exc.code.value
        header = _json_object(raw)
        if (
            not self.authed
            and header.get("type") == "auth"
            and header.get("version") != 2
            and "v1_auth_invalid" not in self.flags
        ):
            code = "version.unsupported"  # whatever another version's auth looks like
        if (
            code == "header.bad_json"
            and "nan_is_invalid" in self.flags
            and (b"NaN" in raw or b"Infinity" in raw)
        ):
            code = "header.invalid"
        if "generic_header_error" in self.flags:
            code = "header.invalid"
        message = exc.message
        if "echo_input" in self.flags:
            message = f"bad header {raw[:80].decode('utf-8', 'replace')}"
        return Fatal(code, message)

    async def process(self) -> None:
        """Decode and act on every complete frame in the buffer."""
        flags = self.flags
        while len(self.buffer) >= 4:
            (length,) = LENGTH.unpack_from(self.buffer)
            if "accept_negative_length" in flags:
                (length,) = struct.unpack_from("<I", self.buffer)
            elif length <= 0:
                raise Fatal("frame.bad_length", "header length must be positive")
            limit = self.config.limits.max_header if self.authed else 4096
            too_large = length >= limit if "off_by_one_limit" in flags else length > limit
            if too_large and "no_header_limit" not in flags:
                raise Fatal("frame.too_large", "header too large")
            if len(self.buffer) < 4 + length:
                return
            raw = bytes(self.buffer[4 : 4 + length])
            self.frame_head = bytes(self.buffer[: 4 + length])
            if "lenient_utf8" in flags:
                raw = raw.decode("utf-8", "replace").encode()
            if "first_member_wins" in flags:
                with contextlib.suppress(ValueError):
                    raw = json.dumps(json.loads(raw, object_pairs_hook=_first_wins)).encode()
            if "require_data_size" in flags and b'"data_size"' not in raw:
                raise Fatal("header.invalid", "data_size is required")
            try:
                message = protocol.decode_header(raw)
            except protocol.RemoteProtocolError as exc:
                if "lax_schema" in flags and exc.code.value == "header.invalid":
                    del self.buffer[: 4 + length]
                    self._lax(raw)
                    continue
                big = _json_object(raw)
                if (
                    "unbounded_integers" in flags
                    and big.get("type") == "ping"
                    and type(big.get("seq")) is int
                ):
                    del self.buffer[: 4 + length]
                    pong = json.dumps({"type": "pong", "data_size": 0, "seq": big["seq"]})
                    self.writer.write(LENGTH.pack(len(pong)) + pong.encode())
                    continue
                raise self._header_error(exc, raw) from None
            size = message.data_size
            if size > self.config.limits.max_body and "no_body_limit" not in flags:
                raise Fatal("frame.body_too_large", "body too large")
            if len(self.buffer) < 4 + length + size:
                return
            body = bytes(self.buffer[4 + length : 4 + length + size])
            del self.buffer[: 4 + length + size]
            if size:
                message._attach_body(body)
            await self.handle(message)
            if "fragile_reader" in flags:
                self.buffer.clear()
                return
            if self.closing and "continue_after_fatal" not in flags:
                return

    def _lax(self, raw: bytes) -> None:
        with contextlib.suppress(Exception):
            header = json.loads(raw)
            if header.get("type") == "ping":
                self.send(protocol.Pong(seq=int(float(header["seq"]))))

    # --- messages -------------------------------------------------------------------------

    async def handle(self, message: Any) -> None:
        flags = self.flags
        if isinstance(message, protocol.Error):
            if message.fatal:
                self.close()
            elif "unknown_code_fatal" in flags and "." in message.code:
                raise Fatal("protocol.unexpected", "unknown error code")
            return
        if not self.authed and "no_auth_required" not in flags:
            if not isinstance(message, protocol.Auth):
                raise Fatal("protocol.unexpected", "expected auth")
            self.authenticate(message)
            return
        if isinstance(message, protocol.Auth):
            if "no_auth_required" in flags and not self.authed:
                self.authenticate(message)
                return
            raise Fatal("protocol.unexpected", "already authenticated")
        if isinstance(message, protocol.Ping):
            if "no_pong" not in flags:
                self.send(protocol.Pong(seq=message.seq))
        elif isinstance(message, protocol.Pong):
            pass
        elif isinstance(message, protocol.Run):
            await self.start(message)
        elif isinstance(message, (protocol.Put, protocol.Get)):
            self.start_transfer(message)
        elif isinstance(
            message,
            (protocol.Stdin, protocol.StdinEof, protocol.Signal, protocol.Cancel, protocol.Resize),
        ):
            await self.command_frame(message)
        else:
            raise Fatal("protocol.unexpected", f"a client may not send {message.type}")

    def authenticate(self, auth: protocol.Auth) -> None:
        if auth.version != protocol.PROTOCOL_VERSION and "ignore_version" not in self.flags:
            raise Fatal("version.unsupported", "protocol version not supported")
        if auth.features and "ignore_features" not in self.flags:
            raise Fatal("feature.unsupported", "feature not offered")
        binding = connection_binding(self.writer, server=True)
        transcript = protocol.Transcript(self.hello_frame, self.frame_head, binding)
        key = self.config.key
        if not (
            protocol.macs_match(transcript.client_mac(key), auth.mac)
            or "accept_any_mac" in self.flags
            or (
                "weak_mac" in self.flags
                and protocol.macs_match(_version_1_mac(key, self, auth), auth.mac)
            )
            or (
                "unbound_ok" in self.flags
                and protocol.macs_match(
                    dataclasses.replace(transcript, binding=b"").client_mac(key), auth.mac
                )
            )
        ):
            raise Fatal("auth.failed", "authentication failed")
        mac = transcript.server_mac(key, auth.mac)
        if "bad_server_mac" in self.flags:
            mac = bytes(32)
        self.authed = True
        self.send(protocol.AuthOk.with_mac(mac))

    def refuse(self, run: protocol.Run, code: str, message: str) -> None:
        if "close_on_command_error" in self.flags:
            raise Fatal(code, message)
        self.send(protocol.Error(code=code, message=message, fatal=False, id=run.id))

    async def start(self, run: protocol.Run) -> None:
        flags = self.flags
        if run.id <= self.last_id and "no_id_check" not in flags:
            raise Fatal("command.bad_id", "command ids must increase")
        self.last_id = max(self.last_id, run.id)
        if "serialize_commands" in flags:
            while self.commands or self.transfers:
                if self.commands:
                    await next(iter(self.commands.values())).task
                else:
                    await next(iter(self.transfers.values())).ended.wait()
        if self.running() >= self.config.limits.max_commands and "no_busy_limit" not in flags:
            self.refuse(run, "busy", "too many running commands")
            return
        if run.pty is not None:
            self.refuse(run, "pty.failed", "this server has no pseudo-terminals")
            return
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
        for name, value in ({} if "drop_env" in flags else run.env).items():
            if (
                name.startswith(FORBIDDEN_ENV) or name in FORBIDDEN_ENV_NAMES
            ) and "allow_forbidden_env" not in flags:
                self.refuse(run, "env.forbidden", "environment name not allowed")
                return
            env[name] = value
        cwd = run.cwd or os.environ.get("HOME", "/")
        if "ignore_cwd" in flags:
            cwd = None
        elif not os.path.isdir(cwd):
            self.refuse(run, "cwd.invalid", "cwd is not a directory")
            return
        if run.shell is not None and "shell_split" in flags:
            argv = run.shell.split()
        elif run.shell is not None:
            argv = ["/bin/sh", "-c", run.shell]
        elif "argv_via_shell" in flags:
            argv = ["/bin/sh", "-c", " ".join(run.argv or [])]
        elif "spawn_errors_as_exit" in flags:
            argv = ["/bin/sh", "-c", 'exec "$@"', "sh", *(run.argv or [])]
        else:
            argv = list(run.argv or [])
        if "inherit_ignored_signals" in flags:
            argv = [sys.executable, "-c", _INHERITED_SIGNALS, *argv]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=cwd,
                env=env,
                stdin=asyncio.subprocess.PIPE
                if run.stdin or "stdin_pipe_always" in flags
                else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT
                if "merge_stderr" in flags
                else asyncio.subprocess.PIPE,
                start_new_session="no_process_group" not in flags,
            )
        except FileNotFoundError as exc:
            self.refuse(run, "spawn.not_found", f"ENOENT: {exc.strerror}")
            return
        except PermissionError as exc:
            self.refuse(run, "spawn.permission_denied", f"EACCES: {exc.strerror}")
            return
        except OSError as exc:
            self.refuse(run, "spawn.failed", f"{exc.strerror}")
            return
        STARTED_GROUPS.add(proc.pid)
        command = Command(self, run, proc)
        self.commands[run.id] = command
        if "output_before_started" not in flags:
            pid = proc.pid
            if "no_reap" in flags:
                pid = os.fork()
                if pid == 0:
                    os._exit(0)
            self.send(protocol.Started(id=run.id, pid=pid))

    def start_transfer(self, request: protocol.Put | protocol.Get) -> None:
        apart = "transfer_ids_apart" in self.flags
        last = self.last_transfer_id if apart else self.last_id
        if request.id <= last and "no_id_check" not in self.flags:
            raise Fatal("command.bad_id", "command ids must increase")
        if apart:
            self.last_transfer_id = max(self.last_transfer_id, request.id)
        else:
            self.last_id = max(self.last_id, request.id)
        if self.running() >= self.config.limits.max_commands:
            self.send(
                protocol.Error(
                    code="busy", message="too many running commands", fatal=False, id=request.id
                )
            )
            return
        transfer = (
            PutTransfer(self, request)
            if isinstance(request, protocol.Put)
            else GetTransfer(self, request)
        )
        self.transfers[request.id] = transfer
        transfer.start()

    async def command_frame(self, message: Any) -> None:
        flags = self.flags
        transfer = self.transfers.get(message.id)
        if transfer is not None:
            await transfer.frame(message)
            return
        command = self.commands.get(message.id)
        if command is None:
            if message.id > max(self.last_id, self.last_transfer_id) and "no_id_check" not in flags:
                raise Fatal("command.bad_id", "no command has this id")
            if "strict_ended" in flags:
                raise Fatal("protocol.unexpected", "the command has ended")
            return
        if isinstance(message, (protocol.Stdin, protocol.StdinEof)):
            if not command.stdin_open:
                if "strict_stdin" in flags:
                    raise Fatal("protocol.unexpected", "stdin is not open")
                return  # [command.frames.dropped]
            if isinstance(message, protocol.StdinEof):
                command.stdin_open = False
                command.stdin_queue.put_nowait(None)
                return
            if message.data_size > command.credit and "no_flow_control" not in flags:
                raise Fatal("flow.window_exceeded", "stdin beyond its credit")
            command.credit -= message.data_size
            command.counts["stdin"] += message.data_size
            if "blocking_stdin_write" in flags:
                assert command.proc.stdin is not None
                command.proc.stdin.write(message.data)
                with contextlib.suppress(ConnectionError):
                    await command.proc.stdin.drain()  # the frame reader waits: the breakage
                return
            command.stdin_queue.put_nowait(message.data)
        elif isinstance(message, protocol.Signal):
            command.signal(
                signal.Signals[message.signal], leader_only="signal_leader_only" in flags
            )
        elif isinstance(message, protocol.Cancel):
            command.kill_tree("cancelled")
        # resize: no pty here, ignored


async def _handle_client(
    config: Config, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    session = Session(config, reader, writer)
    try:
        await session.serve()
    except Exception:  # noqa: BLE001 - a fake server: log and drop the client
        import traceback

        traceback.print_exc()
        writer.close()


async def main_async(args: argparse.Namespace) -> None:
    key = bytes.fromhex(Path(args.key_file).read_text().strip())
    config = Config(args, key)
    server = await asyncio.start_server(
        lambda r, w: _handle_client(config, r, w), args.host, args.port
    )
    host, port = server.sockets[0].getsockname()[:2]
    print(f"listening on {host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()
    for pgid in STARTED_GROUPS:
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--key-file", required=True)
    parser.add_argument("--break", dest="breaks", default="", help="comma-separated FLAGS")
    parser.add_argument("--max-commands", type=int, default=8)
    parser.add_argument("--max-header", type=int, default=64 * 1024)
    parser.add_argument("--auth-timeout", type=float, default=1.0)
    parser.add_argument("--kill-grace", type=float, default=1.0)
    parser.add_argument("--drain-grace", type=float, default=1.0)
    args = parser.parse_args()
    try:
        asyncio.run(main_async(args))
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
