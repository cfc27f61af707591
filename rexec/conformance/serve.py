"""Client mode: a scripted server that puts a client implementation through
edge cases (``rexec-conformance --serve PORT``).

Point the client under test at it with the same key file. Every connection
gets a ``hello`` announcing ``stdin_window`` **1** (a client must send stdin
one byte per credit) and ``max_commands`` 4. The command the client runs picks
the scenario: ``argv[0]`` (or the whole ``shell`` string) is its name.

The scenarios, and what a conforming client shows for each, are listed in
serve_scenarios.py.

``--serve-handshake bad-mac`` sends a wrong ``auth_ok`` mac (the client must
close without sending any command: **[auth.mutual]**); ``altered-hello``
computes its ``auth_ok`` mac over a hello other than the one it sent, as the
server behind a man in the middle who rewrote the hello would (the client must
close likewise: **[auth.transcript]**); ``version-1`` offers only version 1
(the client must close and report the mismatch).

Each finished connection is reported on stdout as one JSON line: the scenarios
run and what the client did that the protocol forbids (``violations``, each
naming the requirement id it breaks).

``CLIENT_CHECKS`` lists the client-side requirements of protocol.md this mode
checks and the scenarios that check them. Some, such as
**[error.unknown.accept]**, have no server case at all: a server can't be made
to receive an error code from the suite without the connection ending. The
suite's own coverage test counts a requirement listed here as covered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sys
import time
from collections.abc import Callable
from typing import Any

from rexec import protocol
from rexec.binding import connection_binding

from .serve_scenarios import LIMITS, SCENARIOS, Scenarios
from .serve_wire import ClientGone

SERVER_NAME = "rexec-conformance"
HANDSHAKES = ("ok", "split", "coalesced", "bad-mac", "altered-hello", "version-1")
#: Seq of the ping that ``--serve-handshake coalesced`` sends with ``auth_ok``,
#: and the seconds within which its pong must come.
HANDSHAKE_PING, PROMPT_PONG = 1, 5.0

#: Requirement id -> what checks it in client mode: scenario names (the
#: command's argv[0]) or ``handshake:MODE`` (``--serve-handshake MODE``).
CLIENT_CHECKS: dict[str, tuple[str, ...]] = {
    "error.unknown.accept": ("unknown-error",),
    "auth.mutual": ("handshake:bad-mac",),
    "auth.transcript": ("handshake:altered-hello",),
    "message.extensible": ("extended",),
    "handshake.version": ("handshake:version-1",),
    "stdin.credit": ("cat",),
    "message.ping.answer": ("ping", "interleave-a", "handshake:coalesced"),
    "frame.stream.chunking": ("chunks", "many-frames", "every-byte", "handshake:split"),
    "command.concurrent": ("interleave-a",),
    "frame.length.negative": ("malformed",),
    "limits.announced": ("max-size",),
    "command.id.unknown": ("unknown-id",),
}


class ScriptedSession(Scenarios):
    """One client connection, played from hello to close."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: bytes, handshake: str
    ) -> None:
        super().__init__(reader, writer)
        self.key = key
        self.handshake = handshake
        self.pid = 1000
        self.held: list[protocol.MessageBase] = []  # read while waiting for a pong, not yet played

    # --- the script ---------------------------------------------------------------------

    async def play(self) -> None:
        versions = [1] if self.handshake == "version-1" else [protocol.PROTOCOL_VERSION]
        hello = protocol.Hello(
            versions=versions, nonce=secrets.token_hex(32), server=SERVER_NAME, limits=LIMITS
        )
        hello_frame = protocol.encode_frame(hello)
        # "split": each handshake frame a byte per TCP segment.
        sizes = (1,) if self.handshake == "split" else ()
        await self.write(hello_frame, sizes)
        try:
            auth = await self.receive(10.0)
        except (ClientGone, TimeoutError):
            self.report["handshake"] = "client closed before auth"
            return
        if not isinstance(auth, protocol.Auth):
            await self.fatal("protocol.unexpected", "expected auth")
            return
        if auth.version not in versions:
            await self.fatal("version.unsupported", "protocol version not supported")
            self.report["violations"].append(f"sent auth version {auth.version}, not offered")
            return
        binding = connection_binding(self.writer, server=True)
        transcript = protocol.Transcript(hello_frame, self.decoder.raw_header, binding)
        if not protocol.macs_match(transcript.client_mac(self.key), auth.mac):
            await self.fatal("auth.failed", "authentication failed")
            return
        if self.handshake == "altered-hello":
            altered = hello.model_copy(update={"limits": LIMITS.model_copy(update={"max_body": 1})})
            transcript = protocol.Transcript(
                protocol.encode_frame(altered), transcript.auth, binding
            )
        mac = transcript.server_mac(self.key, auth.mac)
        auth_ok = protocol.AuthOk.with_mac(bytes(32) if self.handshake == "bad-mac" else mac)
        if self.handshake == "coalesced":
            # auth_ok and, in the same segment, frames a client must take
            # right after it: a ping and a non-fatal error of an unknown code.
            unknown = protocol.Error(
                code="future.session_note", message="a later version's note", fatal=False
            )
            await self.send(auth_ok, self.ping(HANDSHAKE_PING), unknown)
            await self.await_pong(HANDSHAKE_PING, PROMPT_PONG)
        else:
            await self.send(auth_ok, sizes=sizes)
        if self.handshake in ("ok", "split", "coalesced"):
            self.report["handshake"] = self.handshake
            await self.commands()
            return
        # A wrong auth_ok mac: the client must close without a command.
        try:
            await self.commands()
        finally:
            self.report["handshake"] = (
                f"{self.handshake}: accepted by the client"
                if self.report["violations"]
                else f"{self.handshake}: refused by the client"
            )

    async def await_pong(self, seq: int, timeout: float) -> None:
        """Read until the pong for ``seq``, holding what else comes (a run the
        client sent at once) for ``commands``: the ping came with nothing
        after it, so only a client that reads what it has already received
        answers it [message.ping.answer]."""
        deadline = time.monotonic() + timeout
        with contextlib.suppress(TimeoutError):
            while seq not in self.pongs:
                message = await self.receive(max(0.01, deadline - time.monotonic()))
                if not isinstance(message, protocol.Pong):
                    self.held.append(message)
        if seq not in self.pongs:
            self.report["violations"].append(
                f"no pong within {timeout:g} s for the ping that came with auth_ok "
                "(frames behind auth_ok left unread?) [message.ping.answer]"
            )

    async def commands(self) -> None:
        last_id = -1
        while True:
            message = self.held.pop(0) if self.held else await self.receive()
            if self.handshake in ("bad-mac", "altered-hello") and not isinstance(
                message, protocol.Error
            ):
                rule = "auth.mutual" if self.handshake == "bad-mac" else "auth.transcript"
                self.report["violations"].append(
                    f"sent {message.type} after a wrong auth_ok mac [{rule}]"
                )
            if isinstance(message, protocol.Ping):
                await self.send(protocol.Pong(seq=message.seq))
            elif isinstance(message, protocol.Run):
                if message.id <= last_id:
                    self.report["violations"].append("run id not increasing")
                    await self.fatal("command.bad_id", "command ids must increase")
                    return
                last_id = message.id
                name = message.argv[0] if message.argv else (message.shell or "")
                self.report["scenarios"].append(name)
                await self.scenario(message, name)
            elif isinstance(message, (protocol.Stdin, protocol.StdinEof)):
                self.report["violations"].append(f"{message.type} for a command without stdin")
                await self.fatal("protocol.unexpected", "stdin is not open")
                return


def print_report(report: dict[str, Any]) -> None:
    print(json.dumps(report), flush=True)


async def _serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    key: bytes,
    handshake: str,
    on_report: Callable[[dict[str, Any]], None],
) -> None:
    session = ScriptedSession(reader, writer, key, handshake)
    peer = writer.get_extra_info("peername")
    session.report["peer"] = f"{peer[0]}:{peer[1]}" if peer else "?"
    try:
        await session.play()
    except (ClientGone, TimeoutError, ConnectionError):
        pass
    finally:
        if session.unanswered():
            session.report["violations"].append(
                f"pings never answered: seq {session.unanswered()} [message.ping.answer]"
            )
        writer.close()
        on_report(session.report)


async def serve(
    host: str,
    port: int,
    key: bytes,
    handshake: str = "ok",
    ready: asyncio.Future[int] | None = None,
    on_report: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Listen until cancelled; resolve ``ready`` with the bound port. Each
    finished connection's report goes to ``on_report`` (default: printed as a
    JSON line, after a line saying where it listens)."""
    server = await asyncio.start_server(
        lambda r, w: _serve_connection(r, w, key, handshake, on_report or print_report),
        host,
        port,
    )
    bound = server.sockets[0].getsockname()[1]
    if on_report is None:
        print(
            f"rexec-conformance serving on {host}:{bound} (scenarios: {', '.join(SCENARIOS)})",
            flush=True,
        )
    if ready is not None:
        ready.set_result(bound)
    async with server:
        await server.serve_forever()


def serve_forever(host: str, port: int, key: bytes, handshake: str = "ok") -> int:
    """The ``--serve`` entry point: runs until interrupted; 3 when it can't listen."""
    try:
        asyncio.run(serve(host, port, key, handshake))
    except OSError as exc:
        print(
            f"rexec-conformance: cannot listen on {host}:{port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 3
    except KeyboardInterrupt:
        pass
    return 0
