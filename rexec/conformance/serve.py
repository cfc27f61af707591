"""Client mode: a scripted server that puts a client implementation through
edge cases (``rexec-conformance --serve PORT``).

Point the client under test at it with the same key file. Every connection
gets a ``hello`` announcing ``stdin_window`` **1** (a client must send stdin
one byte per credit) and ``max_commands`` 4. The command the client runs picks
the scenario: ``argv[0]`` (or the whole ``shell`` string) is its name.

=================  ===========================================================
scenario           what the server does / what a conforming client shows
=================  ===========================================================
``chunks``         stdout ``hello, world\\n`` and stderr ``warn\\n`` in frames
                   of 1-3 bytes, the whole stream written in odd TCP segments
                   (1, 2, 3, 5, 7 bytes); exit 0.  Client: exactly that output.
``many-frames``    100 stdout frames ``line N\\n`` in a single write; exit 0.
``cat``            echoes stdin to stdout, granting 1 byte of credit per byte
                   received; exit 0 after ``stdin_eof``.  Sending beyond the
                   credit is answered with a fatal ``flow.window_exceeded``.
``signal``         output ``dying\\n``, then exit by SIGKILL: ``signal`` 9,
                   ``signal_name`` SIGKILL, ``exit_code`` null.  Client: 137
                   by the shell convention.
``exit-N``         exit with code N (0-255).
``unknown-error``  a non-fatal ``error`` with the unknown code
                   ``future.unknown_code`` and no id, then ``ok\\n``, exit 0.
                   Client: carries on, **[error.unknown.accept]** (a client
                   that answers with a fatal error is reported).
``ping``           ``tick\\n``, then a ``ping`` (seq 4711), and waits up to 2 s
                   for the ``pong`` before ``tock\\n`` and exit 0 (exit 1 and
                   ``no pong`` on stderr if it does not come).
``extended``       ``started`` and ``exit`` carrying members no version defines
                   (``tty``, ``rusage``), and ``ok\\n``.  Client: ignores them,
                   exit 0 **[message.extensible]**.
``malformed``      ``partial\\n``, then a frame with header length -1.  Client:
                   a fatal protocol error (``frame.bad_length``), then close.
``max-size``       one ``stdout`` frame with a body of exactly 1 MiB (bytes
                   ``i % 251``) in 64 KiB + 1 segments, then an ``exit`` whose
                   header is exactly 64 KiB (an unknown member pads it): the
                   largest a server may send **[limits.announced]**.  Client:
                   all of it, exit 0, no error.
``unknown-id``     a ``stdout`` frame for the id after the run's, which the
                   client never opened.  Client: a fatal ``command.bad_id``
                   **[command.id.unknown]**; one that carries on gets ``ok\\n``
                   and exit 0, and is reported.
anything else      a command-scoped ``spawn.not_found``.
=================  ===========================================================

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
import struct
import sys
import time

from rexec.protocol import (
    Auth,
    AuthOk,
    Error,
    Exit,
    Hello,
    MessageBase,
    Ping,
    Pong,
    Run,
    ServerLimits,
    Started,
    Stderr,
    Stdin,
    StdinCredit,
    StdinEof,
    Stdout,
    Transcript,
    encode_frame,
    macs_match,
)

from .serve_wire import ClientGone, ScriptedWire, raw_frame

SERVER_NAME = "rexec-conformance"
LIMITS = ServerLimits(max_header=65536, max_body=1024 * 1024, stdin_window=1, max_commands=4)
PING_SEQ = 4711
SCENARIOS = (
    "chunks",
    "many-frames",
    "cat",
    "signal",
    "exit-N",
    "unknown-error",
    "ping",
    "extended",
    "malformed",
    "max-size",
    "unknown-id",
)
HANDSHAKES = ("ok", "bad-mac", "altered-hello", "version-1")

#: Requirement id -> what checks it in client mode: scenario names (the
#: command's argv[0]) or ``handshake:MODE`` (``--serve-handshake MODE``).
CLIENT_CHECKS: dict[str, tuple[str, ...]] = {
    "error.unknown.accept": ("unknown-error",),
    "auth.mutual": ("handshake:bad-mac",),
    "auth.transcript": ("handshake:altered-hello",),
    "message.extensible": ("extended",),
    "handshake.version": ("handshake:version-1",),
    "stdin.credit": ("cat",),
    "message.ping.answer": ("ping",),
    "frame.stream.chunking": ("chunks", "many-frames"),
    "frame.length.negative": ("malformed",),
    "limits.announced": ("max-size",),
    "command.id.unknown": ("unknown-id",),
}
#: The largest frame a server may send [limits.announced].
MAX_SERVER_HEADER, MAX_SERVER_BODY = 64 * 1024, 1024 * 1024


class ScriptedSession(ScriptedWire):
    """One client connection, played from hello to close."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: bytes, handshake: str
    ) -> None:
        super().__init__(reader, writer)
        self.key = key
        self.handshake = handshake
        self.pid = 1000

    # --- the script ---------------------------------------------------------------------

    async def play(self) -> None:
        versions = [1] if self.handshake == "version-1" else [2]
        hello = Hello(
            versions=versions, nonce=secrets.token_hex(32), server=SERVER_NAME, limits=LIMITS
        )
        hello_frame = encode_frame(hello)
        await self.write(hello_frame)
        self.decoder.keep_raw = True  # the auth's bytes, for the transcript
        try:
            auth = await self.receive(10.0)
        except (ClientGone, TimeoutError):
            self.report["handshake"] = "client closed before auth"
            return
        self.decoder.keep_raw = False
        if not isinstance(auth, Auth):
            await self.fatal("protocol.unexpected", "expected auth")
            return
        if auth.version not in versions:
            await self.fatal("version.unsupported", "protocol version not supported")
            self.report["violations"].append(f"sent auth version {auth.version}, not offered")
            return
        transcript = Transcript(hello_frame, self.decoder.raw_header)
        if not macs_match(transcript.client_mac(self.key), auth.mac):
            await self.fatal("auth.failed", "authentication failed")
            return
        if self.handshake == "altered-hello":
            altered = hello.model_copy(update={"limits": LIMITS.model_copy(update={"max_body": 1})})
            transcript = Transcript(encode_frame(altered), transcript.auth)
        mac = transcript.server_mac(self.key, auth.mac)
        await self.send(AuthOk.with_mac(bytes(32) if self.handshake == "bad-mac" else mac))
        if self.handshake == "ok":
            self.report["handshake"] = "ok"
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

    async def fatal(self, code: str, message: str) -> None:
        await self.send(Error(code=code, message=message, fatal=True))

    async def commands(self) -> None:
        last_id = -1
        while True:
            message = await self.receive()
            if self.handshake in ("bad-mac", "altered-hello") and not isinstance(message, Error):
                rule = "auth.mutual" if self.handshake == "bad-mac" else "auth.transcript"
                self.report["violations"].append(
                    f"sent {message.type} after a wrong auth_ok mac [{rule}]"
                )
            if isinstance(message, Ping):
                await self.send(Pong(seq=message.seq))
            elif isinstance(message, Run):
                if message.id <= last_id:
                    self.report["violations"].append("run id not increasing")
                    await self.fatal("command.bad_id", "command ids must increase")
                    return
                last_id = message.id
                name = message.argv[0] if message.argv else (message.shell or "")
                self.report["scenarios"].append(name)
                await self.scenario(message, name)
            elif isinstance(message, (Stdin, StdinEof)):
                self.report["violations"].append(f"{message.type} for a command without stdin")
                await self.fatal("protocol.unexpected", "stdin is not open")
                return

    async def started(self, run: Run) -> None:
        self.pid += 1
        if run.argv == ["extended"]:
            await self.write(
                raw_frame(
                    {
                        "type": "started",
                        "id": run.id,
                        "pid": self.pid,
                        "tty": None,
                        "cgroup": "/rexec/1",
                    }
                )
            )
            return
        await self.send(Started(id=run.id, pid=self.pid))

    async def exit(
        self,
        run: Run,
        code: int | None = 0,
        signal: int | None = None,
        counts: tuple[int, int, int] = (0, 0, 0),
    ) -> None:
        await self.send(
            Exit(
                id=run.id,
                exit_code=code,
                signal=signal,
                signal_name="SIGKILL" if signal == 9 else None,
                duration=0.01,
                stdout_bytes=counts[0],
                stderr_bytes=counts[1],
                stdin_bytes=counts[2],
            )
        )

    async def scenario(self, run: Run, name: str) -> None:
        if name.startswith("exit-") and name[5:].isdigit() and int(name[5:]) < 256:
            await self.started(run)
            await self.exit(run, int(name[5:]))
            return
        method = getattr(self, "play_" + name.replace("-", "_"), None)
        if method is None or name == "exit-N":
            await self.send(
                Error(
                    code="spawn.not_found",
                    message="no such scenario: ENOENT",
                    fatal=False,
                    id=run.id,
                )
            )
            return
        await self.started(run)
        await method(run)

    async def play_chunks(self, run: Run) -> None:
        out, err = b"hello, world\n", b"warn\n"
        frames: list[MessageBase] = []
        for i in range(0, len(out), 3):
            frames.append(Stdout.with_data(run.id, out[i : i + 1]))
            frames.append(Stdout.with_data(run.id, out[i + 1 : i + 3]))
        frames += [Stderr.with_data(run.id, err[:2]), Stderr.with_data(run.id, err[2:])]
        frames = [f for f in frames if f.data_size]
        await self.send(*frames, sizes=(1, 2, 3, 5, 7))
        await self.exit(run, 0, counts=(len(out), len(err), 0))

    async def play_many_frames(self, run: Run) -> None:
        lines = [b"line %d\n" % i for i in range(100)]
        await self.send(*[Stdout.with_data(run.id, line) for line in lines])
        await self.exit(run, 0, counts=(sum(map(len, lines)), 0, 0))

    async def play_cat(self, run: Run) -> None:
        if not run.stdin:
            await self.exit(run, 0)
            return
        credit, total = LIMITS.stdin_window, 0
        while True:
            message = await self.receive(10.0)
            if isinstance(message, Ping):
                await self.send(Pong(seq=message.seq))
            elif isinstance(message, StdinEof) and message.id == run.id:
                await self.exit(run, 0, counts=(total, 0, total))
                return
            elif isinstance(message, Stdin) and message.id == run.id:
                if message.data_size > credit:
                    self.report["violations"].append("stdin beyond its credit [stdin.credit]")
                    await self.fatal("flow.window_exceeded", "stdin exceeds its credit")
                    raise ClientGone
                credit -= message.data_size
                total += message.data_size
                grant = (
                    [StdinCredit(id=run.id, bytes=message.data_size)] if message.data_size else []
                )
                await self.send(Stdout.with_data(run.id, message.data), *grant)
                credit += message.data_size

    async def play_signal(self, run: Run) -> None:
        await self.send(Stdout.with_data(run.id, b"dying\n"))
        await self.exit(run, None, signal=9, counts=(6, 0, 0))

    async def play_unknown_error(self, run: Run) -> None:
        await self.send(
            Error(code="future.unknown_code", message="a code from a later version", fatal=False),
            Stdout.with_data(run.id, b"ok\n"),
        )
        await self.exit(run, 0, counts=(3, 0, 0))

    async def play_extended(self, run: Run) -> None:
        # The scripted session normally sends ``started`` itself; here the
        # reports carry members of a later version, so they are written raw.
        await self.write(raw_frame({"type": "stdout", "data_size": 3, "id": run.id}, b"ok\n"))
        await self.write(
            raw_frame(
                {
                    "type": "exit",
                    "id": run.id,
                    "exit_code": 0,
                    "signal": None,
                    "duration": 0.01,
                    "stdout_bytes": 3,
                    "rusage": {"utime": 0.002, "maxrss": 1024},
                    "note": None,
                }
            )
        )

    async def play_ping(self, run: Run) -> None:
        await self.send(Stdout.with_data(run.id, b"tick\n"), Ping(seq=PING_SEQ))
        deadline = time.monotonic() + 2.0
        answered = False
        with contextlib.suppress(TimeoutError):
            while not answered:
                message = await self.receive(max(0.01, deadline - time.monotonic()))
                if isinstance(message, Pong):
                    answered = message.seq == PING_SEQ
                    if not answered:
                        self.report["violations"].append("pong with the wrong seq")
                        break
                elif isinstance(message, Ping):
                    await self.send(Pong(seq=message.seq))
        if answered:
            await self.send(Stdout.with_data(run.id, b"tock\n"))
            await self.exit(run, 0, counts=(10, 0, 0))
        else:
            self.report["violations"].append("no pong within 2 s [message.ping.answer]")
            await self.send(Stderr.with_data(run.id, b"no pong\n"))
            await self.exit(run, 1, counts=(5, 8, 0))

    async def play_malformed(self, run: Run) -> None:
        await self.send(Stdout.with_data(run.id, b"partial\n"))
        await self.write(struct.pack("<i", -1))
        try:
            while True:
                await self.receive(3.0)
        except TimeoutError:
            self.report["violations"].append("did not close after a malformed frame")
        raise ClientGone

    async def play_max_size(self, run: Run) -> None:
        body = bytes(i % 251 for i in range(MAX_SERVER_BODY))
        await self.send(Stdout.with_data(run.id, body), sizes=(64 * 1024 + 1,))
        header = {
            "type": "exit",
            "id": run.id,
            "exit_code": 0,
            "signal": None,
            "duration": 0.01,
            "stdout_bytes": len(body),
            "padding": "",
        }
        header["padding"] = "x" * (MAX_SERVER_HEADER + 4 - len(raw_frame(header)))
        await self.write(raw_frame(header), sizes=(64 * 1024 + 1,))

    async def play_unknown_id(self, run: Run) -> None:
        await self.send(Stdout.with_data(run.id + 1, b"ghost\n"))
        try:
            with contextlib.suppress(TimeoutError):
                while True:
                    message = await self.receive(2.0)
                    if isinstance(message, Ping):
                        await self.send(Pong(seq=message.seq))
        except ClientGone:
            if self.report.get("client_fatal_error") != "command.bad_id":
                self.report["violations"].append(
                    "no fatal command.bad_id for a frame of an id never opened [command.id.unknown]"
                )
            raise
        self.report["violations"].append(
            "carried on after a frame of an id never opened [command.id.unknown]"
        )
        await self.send(Stdout.with_data(run.id, b"ok\n"))
        await self.exit(run, 0, counts=(3, 0, 0))


async def _serve_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: bytes, handshake: str
) -> None:
    session = ScriptedSession(reader, writer, key, handshake)
    peer = writer.get_extra_info("peername")
    session.report["peer"] = f"{peer[0]}:{peer[1]}" if peer else "?"
    try:
        await session.play()
    except (ClientGone, TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()
        print(json.dumps(session.report), flush=True)


async def serve(
    host: str,
    port: int,
    key: bytes,
    handshake: str = "ok",
    ready: asyncio.Future[int] | None = None,
) -> None:
    """Listen until cancelled; resolve ``ready`` with the bound port."""
    server = await asyncio.start_server(
        lambda r, w: _serve_connection(r, w, key, handshake), host, port
    )
    bound = server.sockets[0].getsockname()[1]
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
