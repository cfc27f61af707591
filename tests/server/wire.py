"""A small synchronous test client for a real ``rexecd``, speaking the protocol
through ``rexec.protocol.Connection`` only (never the client package).

Every read is bounded: ``next_event`` raises ``TimeoutError`` when nothing
arrives in time and ``ServerClosed`` when the server closes the connection, so
a misbehaving server fails a test instead of hanging it.

``Wire.send_raw`` writes bytes that bypass the client's ``Connection`` (for
framing and protocol violations); ``raw_frame`` builds such bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
import select
import signal
import socket
import ssl
import struct
import time
from collections.abc import Iterable
from typing import Any, Self

import psutil

from rexec.protocol import (
    PROTOCOL_VERSION,
    Auth,
    AuthOk,
    Connection,
    Error,
    Exit,
    Hello,
    Role,
    Run,
    Started,
    Stderr,
    Stdin,
    StdinCredit,
    StdinEof,
    Stdout,
    encode_frame,
    endpoint_binding,
    macs_match,
)
from rexec.tls_binding import tls_exporter

#: Default bound on one read from the server.
EVENT_TIMEOUT = 10.0


class ServerClosed(Exception):
    """The server closed the connection (EOF or reset)."""


def raw_frame(header: dict[str, Any] | bytes | str, body: bytes = b"") -> bytes:
    """One frame from a header given as a dict (serialised with ``json``), str
    or raw bytes; the header length is computed, nothing is validated."""
    if isinstance(header, dict):
        header = json.dumps(header, separators=(",", ":"))
    if isinstance(header, str):
        header = header.encode()
    return struct.pack("<i", len(header)) + header + body


@dataclasses.dataclass
class CommandResult:
    """Everything the server sent for one command id, in arrival order."""

    id: int
    frames: list[Any] = dataclasses.field(default_factory=list)
    stdout: bytearray = dataclasses.field(default_factory=bytearray)
    stderr: bytearray = dataclasses.field(default_factory=bytearray)
    started: Started | None = None
    exit: Exit | None = None
    error: Error | None = None
    credit_granted: int = 0

    @property
    def done(self) -> bool:
        return self.exit is not None or self.error is not None

    @property
    def kinds(self) -> list[str]:
        return [frame.type for frame in self.frames]

    @property
    def terminal_count(self) -> int:
        return sum(1 for frame in self.frames if frame.type in ("exit", "error"))


class Wire:
    """One connection to a server."""

    def __init__(self, sock: socket.socket, *, server_key: bytes | None = None) -> None:
        self.sock = sock
        self.key = server_key
        self.conn = Connection(Role.CLIENT)
        self.hello: Hello | None = None
        self.auth_ok: AuthOk | None = None
        self.results: dict[int, CommandResult] = {}
        self.other_events: list[Any] = []  # connection-level: pong, fatal error, ...
        self.eof = False
        self._next_id = 1
        self.recv_size = 1 << 20  # bytes per recv; lower it to read slowly
        self._pending: list[Any] = []  # events read but not yet handed out

    # --- opening ----------------------------------------------------------------

    @classmethod
    def open(
        cls,
        host: str,
        port: int,
        *,
        key: bytes | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 5.0,
        rcvbuf: int | None = None,
    ) -> Wire:
        """Connect; ``rcvbuf`` sets SO_RCVBUF before connecting (which also
        stops the kernel from growing it), to bound what the kernel buffers
        for a client that does not read."""
        if rcvbuf is None:
            sock = socket.create_connection((host, port), timeout=timeout)
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
                sock.settimeout(timeout)
                sock.connect((host, port))
            except BaseException:
                sock.close()
                raise
        if ssl_context is not None:
            try:
                sock = ssl_context.wrap_socket(sock, server_hostname=host)
            except BaseException:
                sock.close()
                raise
        sock.settimeout(None)
        return cls(sock, server_key=key)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- handshake ----------------------------------------------------------------

    def read_hello(self, timeout: float = EVENT_TIMEOUT) -> Hello:
        message = self.next_event(timeout)
        assert isinstance(message, Hello), f"expected hello, got {message!r}"
        self.hello = message
        return message

    @property
    def binding(self) -> bytes:
        """The binding of this connection: its TLS channel binding, or
        without TLS its two ends (protocol.md 3.1)."""
        if isinstance(self.sock, ssl.SSLSocket):
            return tls_exporter(self.sock)
        return endpoint_binding(self.sock.getsockname(), self.sock.getpeername())

    def authenticate(
        self,
        key: bytes | None = None,
        *,
        version: int = PROTOCOL_VERSION,
        mac: bytes | None = None,
        binding: bytes | None = None,
        timeout: float = EVENT_TIMEOUT,
        expect_ok: bool = True,
    ) -> AuthOk | None:
        """Send ``auth`` (reading ``hello`` first if needed), signed with
        ``key`` over this connection's transcript and ``binding`` (default: the
        real one), or carrying ``mac`` as is. With ``expect_ok``, read and
        verify ``auth_ok`` (the server's proof)."""
        if self.hello is None:
            self.read_hello(timeout)
        assert self.hello is not None
        key = key if key is not None else self.key
        assert key is not None
        binding = self.binding if binding is None else binding
        auth = self.conn.sign_auth(
            key, nonce=secrets.token_hex(32), binding=binding, version=version
        )
        if mac is not None:
            auth = Auth.unsigned(version=version, nonce=auth.nonce).signed(mac)
        if version in self.hello.versions:
            self.send(auth)
        else:
            # The client core refuses to send a version hello did not offer.
            self.send_raw(encode_frame(auth))
        if not expect_ok:
            return None
        message = self.next_event(timeout)
        assert isinstance(message, AuthOk), f"expected auth_ok, got {message!r}"
        expected = self.conn.transcript(binding).server_mac(key, auth.mac)
        assert macs_match(expected, message.mac), "server proof does not verify"
        self.auth_ok = message
        return message

    # --- sending --------------------------------------------------------------------

    def send(self, message: Any) -> None:
        self.sock.sendall(self.conn.send(message))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def new_id(self) -> int:
        command_id = self._next_id
        self._next_id += 1
        return command_id

    def run(self, argv: list[str] | None = None, *, shell: str | None = None, **fields: Any) -> int:
        """Send ``run``; returns its id."""
        command_id = fields.pop("id", None)
        if command_id is None:
            command_id = self.new_id()
        else:
            self._next_id = max(self._next_id, command_id + 1)
        if argv is not None:
            fields["argv"] = argv
        if shell is not None:
            fields["shell"] = shell
        self.results[command_id] = CommandResult(command_id)
        self.send(Run(id=command_id, **fields))
        return command_id

    def stdin(self, command_id: int, data: bytes) -> None:
        self.send(Stdin.with_data(command_id, data))

    def stdin_eof(self, command_id: int) -> None:
        self.send(StdinEof(id=command_id))

    def credit(self, command_id: int) -> int:
        return self.conn.stdin_credit(command_id)

    # --- receiving ------------------------------------------------------------------

    def _recv(self, timeout: float) -> bytes:
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return self.sock.recv(self.recv_size)
        ready, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if not ready:
            raise TimeoutError(f"nothing from the server within {timeout:.2f} s")
        try:
            return self.sock.recv(self.recv_size)
        except ssl.SSLWantReadError:
            return self._recv(timeout)  # a TLS record only partly arrived
        except ConnectionResetError:
            return b""

    def next_event(self, timeout: float = EVENT_TIMEOUT) -> Any:
        """The next frame from the server, recorded; raises ``ServerClosed`` at EOF."""
        if self._pending:
            return self._pending.pop(0)
        deadline = time.monotonic() + timeout
        while True:
            message = self.conn.next_event()
            if message is not None:
                self._record(message)
                return message
            if self.eof:
                raise ServerClosed("the server closed the connection")
            data = self._recv(deadline - time.monotonic())
            if not data:
                self.eof = True
            self.conn.receive_data(data)

    def _record(self, message: Any) -> None:
        command_id = getattr(message, "id", None)
        if command_id is None or message.type in ("hello", "auth_ok"):
            self.other_events.append(message)
            return
        result = self.results.setdefault(command_id, CommandResult(command_id))
        assert not result.done, f"frame {message.type} for id {command_id} after its terminal frame"
        result.frames.append(message)
        if isinstance(message, Started):
            result.started = message
        elif isinstance(message, Stdout):
            result.stdout += message.data
        elif isinstance(message, Stderr):
            result.stderr += message.data
        elif isinstance(message, StdinCredit):
            result.credit_granted += message.bytes
        elif isinstance(message, Exit):
            result.exit = message
        elif isinstance(message, Error):
            result.error = message

    def pump(self, timeout: float = EVENT_TIMEOUT) -> Any:
        return self.next_event(timeout)

    def wait(self, command_id: int, timeout: float = EVENT_TIMEOUT) -> CommandResult:
        """Read until ``command_id`` has its terminal frame."""
        deadline = time.monotonic() + timeout
        result = self.results.setdefault(command_id, CommandResult(command_id))
        while not result.done:
            self.next_event(deadline - time.monotonic())
        return result

    def wait_all(self, ids: Iterable[int], timeout: float = EVENT_TIMEOUT) -> list[CommandResult]:
        deadline = time.monotonic() + timeout
        return [self.wait(i, deadline - time.monotonic()) for i in ids]

    def wait_for(self, predicate: Any, timeout: float = EVENT_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            self.next_event(deadline - time.monotonic())

    def expect_error_then_eof(
        self, code: str, timeout: float = 2.0, eof_within: float = 1.0
    ) -> Error:
        """Read until a fatal error arrives (skipping hello), check its code, then
        check the server closes within ``eof_within`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.next_event(deadline - time.monotonic())
            if isinstance(message, Error) and message.id is None:
                break
        assert message.code == code, f"expected {code}, got {message.code}: {message.message}"
        assert message.fatal is True
        assert len(message.message) <= 200
        self.expect_eof(eof_within)
        return message

    def expect_eof(self, within: float = 1.0) -> list[Any]:
        """Assert the server closes within ``within`` seconds; returns frames seen."""
        seen: list[Any] = []
        deadline = time.monotonic() + within
        try:
            while True:
                seen.append(self.next_event(deadline - time.monotonic()))
        except ServerClosed:
            return seen
        except TimeoutError:
            raise AssertionError(
                f"the server did not close within {within} s (saw {seen!r})"
            ) from None

    def raw_eof(self, within: float = 1.0) -> bytes:
        """Read raw bytes (no decoding) until EOF; returns them."""
        received = bytearray()
        deadline = time.monotonic() + within
        while True:
            try:
                data = self._recv(deadline - time.monotonic())
            except TimeoutError:
                raise AssertionError(f"the server did not close within {within} s") from None
            if not data:
                return bytes(received)
            received += data


def connect(server: Any, *, auth: bool = True, key: bytes | None = None, **kwargs: Any) -> Wire:
    """A connection to a running server (anything with ``host``, ``port`` and
    ``key``), with ``key`` instead of the server's if given, authenticated
    unless ``auth=False``."""
    wire = Wire.open(server.host, server.port, key=key or server.key, **kwargs)
    try:
        if auth:
            wire.authenticate()
    except BaseException:
        wire.close()
        raise
    return wire


def run_once(
    server: Any,
    argv: list[str] | None = None,
    *,
    shell: str | None = None,
    stdin_data: bytes | None = None,
    wait: float = EVENT_TIMEOUT,
    **fields: Any,
) -> CommandResult:
    """Connect, run one command (feeding ``stdin_data`` then EOF if given) and
    wait at most ``wait`` seconds for its end. Other keywords go into ``run``
    (``timeout=`` is the command's timeout)."""
    with connect(server) as wire:
        if stdin_data is not None:
            fields["stdin"] = True
        command_id = wire.run(argv, shell=shell, **fields)
        if stdin_data is not None:
            feed_stdin(wire, command_id, stdin_data, timeout=wait)
        return wire.wait(command_id, wait)


def feed_stdin(
    wire: Wire,
    command_id: int,
    data: bytes | Iterable[bytes],
    *,
    chunk: int = 64 * 1024,
    timeout: float = 60.0,
    eof: bool = True,
) -> int:
    """Send ``data`` within the credit the server grants (reading events while
    waiting for credit); returns the highest credit seen in use. Never sends
    beyond the credit: the client core would raise if it tried."""
    deadline = time.monotonic() + timeout
    chunks = [data] if isinstance(data, (bytes, bytearray)) else data
    result = wire.results[command_id]
    for piece in chunks:
        view = memoryview(piece)
        while view:
            credit = wire.credit(command_id)
            if result.done:
                raise AssertionError(f"command {command_id} ended while stdin was being sent")
            if credit <= 0:
                wire.next_event(deadline - time.monotonic())
                continue
            n = min(credit, chunk, len(view))
            wire.stdin(command_id, bytes(view[:n]))
            view = view[n:]
            # Take whatever has already arrived, without waiting.
            drain_ready(wire)
    if eof:
        wire.stdin_eof(command_id)
    return 0


def drain_ready(wire: Wire) -> None:
    """Process events that are already available, without blocking."""
    while True:
        try:
            wire.next_event(0)
        except TimeoutError:
            return


# --- processes ---------------------------------------------------------------------------


def unique_marker() -> str:
    """A sleep duration no other process uses: ``1000.<random digits>``."""
    return f"1000.{secrets.randbelow(10**9):09d}{os.getpid() % 1000:03d}"


def processes_with(marker: str) -> list[psutil.Process]:
    """Live processes with ``marker`` as a whole argument (``sleep MARKER``;
    not a shell whose script merely mentions it)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            cmdline = proc.info["cmdline"] or []
            if marker in cmdline[1:] and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return [p for p in found if p.pid != os.getpid()]


def wait_for_processes(marker: str, count: int = 1, timeout: float = 5.0) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while True:
        found = processes_with(marker)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def wait_gone(marker: str, timeout: float) -> list[psutil.Process]:
    """Poll until no process carries ``marker``; returns those left at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        left = processes_with(marker)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.02)


def kill_leftovers(marker: str) -> None:
    """Clean up after a failed test: SIGKILL the processes we started, by PID."""
    for proc in processes_with(marker):
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
