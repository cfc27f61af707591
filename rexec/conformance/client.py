"""A minimal, deliberately literal client on top of ``Wire``.

``Client`` performs the handshake and keeps one ``CommandRecord`` per command
id with everything the server sent for it, in order, including what it should
not have sent (output before ``started``, frames after the terminal frame).
It checks nothing itself beyond decoding: judging is the cases' job.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from typing import Any

from rexec import protocol
from rexec.binding import BindingUnavailable, connection_binding

from .wire import Closed, Wire


class SetupError(Exception):
    """The case could not get to the point it tests (connect, handshake, …)."""


class Unsupported(Exception):
    """The implementation declared it can't do what the case needs
    (a ``spawn.*`` or ``pty.failed`` error for a command of protocol.md §10)."""


@dataclasses.dataclass
class CommandRecord:
    """Everything received for one command id (a ``run``, ``put`` or
    ``get``), in arrival order."""

    id: int
    kinds: list[str] = dataclasses.field(default_factory=list)
    pid: int | None = None
    stdout: bytearray = dataclasses.field(default_factory=bytearray)
    stderr: bytearray = dataclasses.field(default_factory=bytearray)
    stdout_chunks: list[tuple[float, int]] = dataclasses.field(default_factory=list)
    exit: protocol.Exit | None = None
    error: protocol.Error | None = None
    file: protocol.File | None = None  # a get's first frame
    done: protocol.Done | None = None  # a transfer's terminal frame on success
    credit_granted: int = 0
    after_terminal: list[str] = dataclasses.field(default_factory=list)
    exit_time: float | None = None

    @property
    def terminal(self) -> bool:
        return self.exit is not None or self.error is not None or self.done is not None

    @property
    def succeeded(self) -> bool:
        """Whether the command exited with code 0."""
        return self.exit is not None and self.exit.exit_code == 0

    def order_faults(self) -> list[str]:
        """Breaches of started-first / exit-last / one-terminal seen so far."""
        faults = []
        kinds = self.kinds
        if "started" in kinds:
            first = kinds.index("started")
            if any(k in ("stdout", "stderr", "exit") for k in kinds[:first]):
                faults.append("frame before started")
            if kinds.count("started") > 1:
                faults.append("started twice")
        elif "exit" in kinds or "stdout" in kinds or "stderr" in kinds:
            faults.append("output or exit without started")
        if self.after_terminal:
            faults.append("frames after the terminal frame: " + ",".join(self.after_terminal))
        return faults

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "frames": self.kinds,
            "pid": self.pid,
            "stdout": bytes(self.stdout[:200]).decode("utf-8", "replace"),
            "stdout_bytes": len(self.stdout),
            "stderr_bytes": len(self.stderr),
            "exit": self.exit.model_dump(mode="json") if self.exit else None,
            "error": self.error.model_dump(mode="json") if self.error else None,
            **({"file": self.file.model_dump(mode="json")} if self.file else {}),
            **({"done": self.done.model_dump(mode="json")} if self.done else {}),
        }


class Client:
    """An authenticated (or authenticating) connection and its commands."""

    def __init__(self, wire: Wire, key: bytes) -> None:
        self.wire = wire
        self.key = key
        self.hello: protocol.Hello | None = None
        self.hello_frame = b""  # the hello as it travelled
        self.records: dict[int, CommandRecord] = {}
        self.other: list[protocol.MessageBase] = []  # frames without a command id (pong, errors)
        self.next_id = 1
        self.closed: Closed | None = None
        self._stdin_count: dict[int, int] = {}

    # --- handshake ---------------------------------------------------------------

    async def read_hello(self, timeout: float) -> protocol.Hello:
        got = await self.wire.next_frame(timeout)
        if not isinstance(got, protocol.Hello):
            raise SetupError(f"expected hello, got {_describe(got)}")
        self.hello = got
        self.hello_frame = self.wire.decoder.raw_header  # as it travelled, for the transcript
        return got

    @property
    def limits(self) -> protocol.ServerLimits:
        """The limits the server's hello announced (read the hello first)."""
        assert self.hello is not None, "no hello read yet"
        return self.hello.limits

    @property
    def binding(self) -> bytes:
        """The binding of this connection: its TLS channel binding, or
        without TLS its two ends (protocol.md 3.1).

        Raises:
            SetupError: a TLS session whose binding can't be computed here.
        """
        try:
            return connection_binding(self.wire.writer, server=False)
        except BindingUnavailable as exc:
            raise SetupError(f"no TLS channel binding: {exc}") from None

    def auth_message(
        self,
        *,
        version: int = protocol.PROTOCOL_VERSION,
        key: bytes | None = None,
        features: tuple[str, ...] = (),
        binding: bytes | None = None,
        hello_frame: bytes | None = None,
    ) -> protocol.Auth:
        """The ``auth`` answering the hello read, with a fresh client nonce and
        the mac of protocol.md 3.1; each argument can make it wrong on purpose
        (another key, binding, or hello than the one that travelled)."""
        assert self.hello is not None
        return protocol.sign_auth(
            self.hello_frame if hello_frame is None else hello_frame,
            key or self.key,
            nonce=secrets.token_hex(32),
            version=version,
            features=features,
            binding=self.binding if binding is None else binding,
        )

    def server_mac(self, auth: protocol.Auth, *, binding: bytes | None = None) -> bytes:
        """The mac a correct ``auth_ok`` answering ``auth`` carries."""
        transcript = protocol.Transcript(
            self.hello_frame,
            protocol.encode_header(auth),
            self.binding if binding is None else binding,
        )
        return transcript.server_mac(self.key, auth.mac)

    async def handshake(self, timeout: float) -> None:
        """hello → auth → auth_ok, verifying the server's proof.

        Raises:
            SetupError: any other course of events.
        """
        await self.read_hello(timeout)
        auth = self.auth_message()
        await self.wire.send(auth)
        got = await self.wire.next_frame(timeout)
        if not isinstance(got, protocol.AuthOk):
            raise SetupError(f"authentication failed: {_describe(got)}")
        if not protocol.macs_match(self.server_mac(auth), got.mac):
            raise SetupError("the server's auth_ok proof is wrong (does it hold the same key?)")

    # --- commands --------------------------------------------------------------

    def new_id(self) -> int:
        command_id = self.next_id
        self.next_id += 1
        self.records[command_id] = CommandRecord(command_id)
        return command_id

    def run_message(self, **fields: Any) -> protocol.Run:
        """A ``run`` with a fresh id; ``fields`` are Run's members."""
        return protocol.Run(id=self.new_id(), **fields)

    async def run(self, **fields: Any) -> int:
        message = self.run_message(**fields)
        await self.wire.send(message)
        return message.id

    def put_message(self, **fields: Any) -> protocol.Put:
        """A ``put`` with a fresh id; ``fields`` are Put's members."""
        return protocol.Put(id=self.new_id(), **fields)

    async def get(self, path: str) -> int:
        message = protocol.Get(id=self.new_id(), path=path)
        await self.wire.send(message)
        return message.id

    async def send_stdin(self, command_id: int, data: bytes, *, timeout: float) -> bool:
        """Send ``data`` within the credit, waiting for ``stdin_credit`` as
        needed. Returns False when credit did not come within ``timeout``."""
        assert self.hello is not None
        record = self.records[command_id]
        limit = self.hello.limits
        sent = 0
        deadline = time.monotonic() + timeout
        while sent < len(data):
            credit = limit.stdin_window + record.credit_granted - self._stdin_sent(command_id)
            if credit <= 0:
                if time.monotonic() > deadline or record.terminal or self.closed:
                    return False
                await self.pump(deadline - time.monotonic(), until=lambda: False, max_frames=1)
                continue
            chunk = data[sent : sent + min(credit, limit.max_body, 256 * 1024)]
            await self.wire.send(protocol.Stdin.with_data(command_id, chunk))
            self._stdin_count[command_id] = self._stdin_sent(command_id) + len(chunk)
            sent += len(chunk)
        return True

    def _stdin_sent(self, command_id: int) -> int:
        return self._stdin_count.get(command_id, 0)

    async def stdin_eof(self, command_id: int) -> None:
        await self.wire.send(protocol.StdinEof(id=command_id))

    # --- receiving ---------------------------------------------------------------

    def _dispatch(self, message: protocol.MessageBase) -> None:
        command_id = getattr(message, "id", None)
        if command_id is None or (isinstance(message, protocol.Error) and message.fatal):
            self.other.append(message)
            return
        record = self.records.get(command_id)
        if record is None:
            record = self.records[command_id] = CommandRecord(command_id)
        if record.terminal:
            record.after_terminal.append(message.type)
        record.kinds.append(message.type)
        if isinstance(message, protocol.Started):
            record.pid = message.pid
        elif isinstance(message, protocol.Stdout):
            record.stdout += message.data
            record.stdout_chunks.append((time.monotonic(), len(message.data)))
        elif isinstance(message, protocol.Stderr):
            record.stderr += message.data
        elif isinstance(message, protocol.StdinCredit):
            record.credit_granted += message.bytes
        elif isinstance(message, protocol.Exit) and record.exit is None:
            record.exit = message
            record.exit_time = time.monotonic()
        elif isinstance(message, protocol.Error) and record.error is None:
            record.error = message
        elif isinstance(message, protocol.File) and record.file is None:
            record.file = message
        elif isinstance(message, protocol.Done) and record.done is None:
            record.done = message

    async def pump(self, timeout: float, *, until: Any, max_frames: int | None = None) -> bool:
        """Read and file frames until ``until()`` is true, the connection
        closes, or ``timeout`` passes. Returns ``until()``."""
        deadline = time.monotonic() + timeout
        count = 0
        while not until():
            if self.closed is not None or (max_frames is not None and count >= max_frames):
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            got = await self.wire.next_frame(remaining)
            if got is None:
                break
            if isinstance(got, Closed):
                self.closed = got
                break
            self._dispatch(got)
            count += 1
        return bool(until())

    async def wait_terminal(self, ids: list[int] | int, timeout: float) -> bool:
        """Pump until every command in ``ids`` has its terminal frame."""
        wanted = [ids] if isinstance(ids, int) else ids
        return await self.pump(timeout, until=lambda: all(self.records[i].terminal for i in wanted))

    async def wait_record(self, command_id: int, timeout: float) -> CommandRecord:
        """Pump until the command has its terminal frame or ``timeout`` passes;
        its record either way (``terminal`` tells which)."""
        await self.wait_terminal(command_id, timeout)
        return self.records[command_id]

    async def ping(self, seq: int, timeout: float) -> bool:
        """Send ``ping`` and pump until the matching ``pong`` arrives."""
        await self.wire.send(protocol.Ping(seq=seq))
        return await self.pump(
            timeout,
            until=lambda: any(isinstance(m, protocol.Pong) and m.seq == seq for m in self.other),
        )

    def fatal_error(self) -> protocol.Error | None:
        for message in self.other:
            if isinstance(message, protocol.Error) and message.fatal:
                return message
        return None


def _describe(got: object) -> str:
    if got is None:
        return "nothing (timeout)"
    if isinstance(got, Closed):
        return f"connection closed ({got.how})"
    if isinstance(got, protocol.Error):
        return f"error {got.code}"
    return getattr(got, "type", repr(got))
