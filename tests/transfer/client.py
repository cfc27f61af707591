"""A small synchronous transfer client for a real ``rexecd``, on
``rexec.protocol.Connection`` only (never the client package).

It streams: a put reads its source in chunks as credit allows, a get writes
each chunk to its sink as it arrives, so no transfer is ever held in memory.
Every wait is bounded: a server that goes quiet fails the test with
``TimeoutError`` instead of hanging it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import secrets
import select
import socket
from collections.abc import Callable
from typing import Any, BinaryIO, Self

from rexec.protocol import (
    AuthOk,
    Cancel,
    Connection,
    Done,
    Error,
    File,
    Get,
    Hello,
    Ping,
    Pong,
    Put,
    Role,
    Stdin,
    StdinEof,
    Stdout,
    endpoint_binding,
    macs_match,
)

#: Bound on any one wait for the server.
EVENT_TIMEOUT = 30.0
#: Largest stdin frame the client sends (the credit usually limits it first).
FRAME_SIZE = 128 * 1024
READ_SIZE = 1024 * 1024


class ServerClosed(Exception):
    """The server closed the connection."""


@dataclasses.dataclass
class Result:
    """What the server answered for one transfer."""

    id: int
    file: File | None = None  # get only
    done: Done | None = None
    error: Error | None = None
    received: int = 0  # get: bytes of stdout received
    sha256: str = ""  # get: of the bytes received

    @property
    def code(self) -> str | None:
        return self.error.code if self.error is not None else None


def file_digest(path: str | os.PathLike[str] | bytes) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(READ_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


class TransferClient:
    """One authenticated connection to a server."""

    def __init__(self, host: str, port: int, key: bytes) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.settimeout(None)
        self.conn = Connection(Role.CLIENT)
        self._events: list[Any] = []
        self._next_id = 1
        self._handshake(key)

    @classmethod
    def to(cls, server: Any) -> TransferClient:
        """Connect to a ``RunningServer`` (tests/conftest.py)."""
        return cls(server.host, server.port, server.key)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- wire -------------------------------------------------------------------------

    def send(self, message: Any) -> None:
        self.sock.sendall(self.conn.send(message))

    def _read(self, timeout: float) -> None:
        """Read what the socket has (waiting up to ``timeout``) into events."""
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            if timeout:
                raise TimeoutError("no frame from the server in time")
            return
        data = self.sock.recv(READ_SIZE)
        if not data:
            raise ServerClosed()
        self.conn.receive_data(data)
        while (event := self.conn.next_event()) is not None:
            if isinstance(event, Ping):
                # rexecd probes a half-closed client with pings; answer when we can.
                try:
                    self.send(Pong(seq=event.seq))
                except OSError:
                    pass  # our side is shut
                continue
            self._events.append(event)

    def next_event(self, timeout: float = EVENT_TIMEOUT) -> Any:
        while not self._events:
            self._read(timeout)
        return self._events.pop(0)

    def poll(self) -> None:
        """Take in whatever has arrived, without waiting."""
        self._read(0)

    def _handshake(self, key: bytes) -> None:
        hello = self.next_event()
        assert isinstance(hello, Hello), hello
        binding = endpoint_binding(self.sock.getsockname(), self.sock.getpeername())
        auth = self.conn.sign_auth(key, nonce=secrets.token_hex(32), binding=binding)
        self.send(auth)
        auth_ok = self.next_event()
        assert isinstance(auth_ok, AuthOk), auth_ok
        assert macs_match(self.conn.transcript(binding).server_mac(key, auth.mac), auth_ok.mac)

    def new_id(self) -> int:
        command_id, self._next_id = self._next_id, self._next_id + 1
        return command_id

    # --- transfers ----------------------------------------------------------------------

    def _settle(self, result: Result, event: Any, sink: BinaryIO | None, digest: Any) -> None:
        """Record one event of ``result``'s transfer."""
        assert getattr(event, "id", None) == result.id, event
        if isinstance(event, File):
            result.file = event
        elif isinstance(event, Stdout):
            if sink is not None:
                sink.write(event.data)
            digest.update(event.data)
            result.received += len(event.data)
        elif isinstance(event, Done):
            result.done = event
        elif isinstance(event, Error):
            result.error = event
        # stdin_credit: the Connection has counted it

    @staticmethod
    def _ended(result: Result) -> bool:
        return result.done is not None or result.error is not None

    def start_put(self, path: str, *, size: int, sha256: str, mode: int = 0o644) -> Result:
        result = Result(self.new_id())
        self.send(Put(id=result.id, path=path, size=size, sha256=sha256, mode=mode))
        return result

    def send_data(
        self,
        result: Result,
        source: BinaryIO,
        *,
        limit: int | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> int:
        """Send ``source`` (at most ``limit`` bytes) as stdin under the
        server's credit; stops early if the transfer ends. Returns bytes sent."""
        sent = 0
        while limit is None or sent < limit:
            self.poll_result(result)
            if self._ended(result):
                break
            credit = self.conn.stdin_credit(result.id)
            if credit == 0:
                self.wait_result(result, until=lambda: self.conn.stdin_credit(result.id) > 0
                                 or self._ended(result))  # fmt: skip
                continue
            want = min(credit, FRAME_SIZE)
            if limit is not None:
                want = min(want, limit - sent)
            chunk = source.read(want)
            if not chunk:
                break
            self.send(Stdin.with_data(result.id, chunk))
            sent += len(chunk)
            if on_progress is not None:
                on_progress(sent)
        return sent

    def finish_put(self, result: Result) -> Result:
        if not self._ended(result):
            self.send(StdinEof(id=result.id))
        self.wait_result(result, until=lambda: self._ended(result))
        return result

    def put(
        self,
        path: str,
        source: BinaryIO,
        *,
        size: int,
        sha256: str,
        mode: int = 0o644,
        on_progress: Callable[[int], None] | None = None,
    ) -> Result:
        """Put ``source``'s bytes; ``size`` and ``sha256`` are declared as
        given (a test may lie in them)."""
        result = self.start_put(path, size=size, sha256=sha256, mode=mode)
        self.send_data(result, source, on_progress=on_progress)
        return self.finish_put(result)

    def put_bytes(self, path: str, data: bytes, *, mode: int = 0o644) -> Result:
        import io

        return self.put(
            path, io.BytesIO(data), size=len(data),
            sha256=hashlib.sha256(data).hexdigest(), mode=mode,
        )  # fmt: skip

    def put_file(self, path: str, local: str | os.PathLike[str], **kwargs: Any) -> Result:
        size = os.path.getsize(local)
        mode = kwargs.pop("mode", os.stat(local).st_mode & 0o7777)
        with open(local, "rb") as source:
            return self.put(path, source, size=size, sha256=file_digest(local), mode=mode, **kwargs)

    def get(
        self,
        path: str,
        sink: BinaryIO | None = None,
        *,
        on_progress: Callable[[int], None] | None = None,
    ) -> Result:
        result = Result(self.new_id())
        digest = hashlib.sha256()
        self.send(Get(id=result.id, path=path))
        while not self._ended(result):
            self._settle(result, self.next_event(), sink, digest)
            if on_progress is not None:
                on_progress(result.received)
        result.sha256 = digest.hexdigest()
        return result

    def cancel(self, result: Result) -> None:
        self.send(Cancel(id=result.id))

    def poll_result(self, result: Result) -> None:
        self.poll()
        self._drain(result)

    def wait_result(self, result: Result, until: Callable[[], bool]) -> None:
        self._drain(result)
        while not until():
            self._read(EVENT_TIMEOUT)
            self._drain(result)

    def _drain(self, result: Result) -> None:
        digest = hashlib.sha256()
        while self._events:
            self._settle(result, self._events.pop(0), None, digest)
