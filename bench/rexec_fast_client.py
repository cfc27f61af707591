"""A minimal, fast asyncio client for rexecd, built directly on
``rexec.protocol.Connection``: the benchmark's own client, so that the figures
measure the server and the protocol rather than any particular client library.

It speaks the real protocol (hello, mutual HMAC auth, run/started/stdout/exit),
multiplexes any number of commands over one connection, and can either keep or
just count the output bytes (the 1 GiB benchmark only counts them).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field

from rexec.protocol import (
    Auth,
    AuthOk,
    Connection,
    Error,
    Exit,
    Hello,
    Ping,
    Pong,
    Role,
    Run,
    Stderr,
    Stdout,
    endpoint_binding,
    macs_match,
)


class RexecError(Exception):
    pass


@dataclass
class _Pending:
    future: asyncio.Future
    keep: bool
    stdout: list = field(default_factory=list)
    stdout_bytes: int = 0
    stderr_bytes: int = 0


class FastClient(asyncio.Protocol):
    """One authenticated connection; ``await FastClient.connect(...)``."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._conn = Connection(Role.CLIENT)
        self._transport: asyncio.Transport | None = None
        self._binding = b""
        self._nonce = secrets.token_hex(32)
        self._hello: Hello | None = None
        self._auth: Auth | None = None
        self._ready: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending: dict[int, _Pending] = {}
        self._closed_exc: Exception | None = None

    @classmethod
    async def connect(cls, host: str, port: int, key: bytes, timeout: float = 10.0) -> FastClient:
        loop = asyncio.get_running_loop()
        _, proto = await asyncio.wait_for(
            loop.create_connection(lambda: cls(key), host, port), timeout
        )
        await asyncio.wait_for(proto._ready, timeout)
        return proto

    # --- asyncio.Protocol ---------------------------------------------------
    def connection_made(self, transport) -> None:  # type: ignore[override]
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        conn = self._conn
        try:
            conn.receive_data(data)
            while (msg := conn.next_event()) is not None:
                self._handle(msg)
        except Exception as exc:  # protocol error: fail everything
            self._fail(exc)
            if self._transport is not None:
                self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or RexecError("connection closed"))

    # --- messages -------------------------------------------------------------
    def _handle(self, msg) -> None:
        if isinstance(msg, Stdout):
            p = self._pending[msg.id]
            p.stdout_bytes += msg.data_size
            if p.keep:
                p.stdout.append(msg.data)
        elif isinstance(msg, Exit):
            p = self._pending.pop(msg.id)
            if not p.future.done():
                p.future.set_result((msg, p))
        elif isinstance(msg, Stderr):
            self._pending[msg.id].stderr_bytes += msg.data_size
        elif isinstance(msg, Hello):
            self._hello = msg
            assert self._transport is not None
            self._binding = endpoint_binding(
                self._transport.get_extra_info("sockname"),
                self._transport.get_extra_info("peername"),
            )
            self._auth = self._conn.sign_auth(self._key, nonce=self._nonce, binding=self._binding)
            self._send(self._auth)
        elif isinstance(msg, AuthOk):
            assert self._auth is not None
            expected = self._conn.transcript(self._binding).server_mac(self._key, self._auth.mac)
            if not macs_match(expected, msg.mac):
                self._fail(RexecError("server failed to prove the key"))
                return
            if not self._ready.done():
                self._ready.set_result(None)
        elif isinstance(msg, Error):
            if msg.id is not None and msg.id in self._pending:
                p = self._pending.pop(msg.id)
                if not p.future.done():
                    p.future.set_exception(RexecError(f"{msg.code}: {msg.message}"))
            else:
                self._fail(RexecError(f"{msg.code}: {msg.message}"))
        elif isinstance(msg, Ping):
            self._send(Pong(seq=msg.seq))
        # started, stdin_credit, pong: nothing to do

    def _send(self, msg) -> None:
        assert self._transport is not None
        self._transport.write(self._conn.send(msg))

    def _fail(self, exc: Exception) -> None:
        self._closed_exc = exc
        if not self._ready.done():
            self._ready.set_exception(exc)
        for p in self._pending.values():
            if not p.future.done():
                p.future.set_exception(exc)
        self._pending.clear()

    # --- public -----------------------------------------------------------------
    async def run(self, argv: list[str], *, keep_output: bool = True) -> tuple[Exit, _Pending]:
        """Run ``argv`` and wait for its exit; returns (exit message, output record)."""
        if self._closed_exc is not None:
            raise self._closed_exc
        command_id = self._conn.last_command_id + 1
        fut = asyncio.get_running_loop().create_future()
        self._pending[command_id] = _Pending(fut, keep_output)
        self._send(Run(id=command_id, argv=argv))
        return await fut

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
