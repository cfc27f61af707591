"""Client mode's scenarios: what the scripted server sends for each command
name a client runs, and what a conforming client shows for it.

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
``every-byte``     ``started``, stdout ``split\n``, stderr ``at every byte\n``
                   and exit 0, every byte in a TCP segment of its own (so
                   every split of every length, header and body).
``interleave-a``   waits for the client's next ``run``, ``interleave-b``, on
                   the same connection, then sends both commands' frames in
                   one write, mixed (B's output and exit after A's exit), with
                   a ``ping`` between every two frames.  Client: A stdout
                   ``a1\na2\n``, stderr ``a-err\n``, exit 3; B stdout
                   ``b1\nb2\n``, stderr ``b-err\n``, exit 0; every ping
                   answered **[message.ping.answer]**.
anything else      a command-scoped ``spawn.not_found``.
=================  ===========================================================
"""

from __future__ import annotations

import contextlib
import struct
import time

from rexec import protocol

from .serve_wire import ClientGone, ScriptedWire, raw_frame

LIMITS = protocol.ServerLimits(
    max_header=65536, max_body=1024 * 1024, stdin_window=1, max_commands=4
)
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
    "every-byte",
    "interleave-a",
)
#: Seconds ``interleave-a`` waits for the client's ``interleave-b``.
INTERLEAVE_WAIT = 10.0
#: The largest frame a server may send [limits.announced].
MAX_SERVER_HEADER, MAX_SERVER_BODY = 64 * 1024, 1024 * 1024


class Scenarios(ScriptedWire):
    """The scenarios of one connection, each played for the ``run`` naming it."""

    pid = 1000

    async def fatal(self, code: str, message: str) -> None:
        await self.send(protocol.Error(code=code, message=message, fatal=True))

    async def started(self, run: protocol.Run) -> None:
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
        await self.send(protocol.Started(id=run.id, pid=self.pid))

    @staticmethod
    def exit_message(
        run: protocol.Run,
        code: int | None = 0,
        signal: int | None = None,
        counts: tuple[int, int, int] = (0, 0, 0),
    ) -> protocol.Exit:
        """``run``'s exit; ``counts`` are its stdout, stderr and stdin bytes."""
        return protocol.Exit(
            id=run.id,
            exit_code=code,
            signal=signal,
            signal_name="SIGKILL" if signal == 9 else None,
            duration=0.01,
            stdout_bytes=counts[0],
            stderr_bytes=counts[1],
            stdin_bytes=counts[2],
        )

    async def exit(
        self,
        run: protocol.Run,
        code: int | None = 0,
        signal: int | None = None,
        counts: tuple[int, int, int] = (0, 0, 0),
    ) -> None:
        await self.send(self.exit_message(run, code, signal, counts))

    async def scenario(self, run: protocol.Run, name: str) -> None:
        if name.startswith("exit-") and name[5:].isdigit() and int(name[5:]) < 256:
            await self.started(run)
            await self.exit(run, int(name[5:]))
            return
        method = getattr(self, "play_" + name.replace("-", "_"), None)
        if method is None or name == "exit-N":
            await self.send(
                protocol.Error(
                    code="spawn.not_found",
                    message="no such scenario: ENOENT",
                    fatal=False,
                    id=run.id,
                )
            )
            return
        await self.started(run)
        await method(run)

    async def play_chunks(self, run: protocol.Run) -> None:
        out, err = b"hello, world\n", b"warn\n"
        frames: list[protocol.MessageBase] = []
        for i in range(0, len(out), 3):
            frames.append(protocol.Stdout.with_data(run.id, out[i : i + 1]))
            frames.append(protocol.Stdout.with_data(run.id, out[i + 1 : i + 3]))
        frames += [
            protocol.Stderr.with_data(run.id, err[:2]),
            protocol.Stderr.with_data(run.id, err[2:]),
        ]
        frames = [f for f in frames if f.data_size]
        await self.send(*frames, sizes=(1, 2, 3, 5, 7))
        await self.exit(run, 0, counts=(len(out), len(err), 0))

    async def play_many_frames(self, run: protocol.Run) -> None:
        lines = [b"line %d\n" % i for i in range(100)]
        await self.send(*[protocol.Stdout.with_data(run.id, line) for line in lines])
        await self.exit(run, 0, counts=(sum(map(len, lines)), 0, 0))

    async def play_cat(self, run: protocol.Run) -> None:
        if not run.stdin:
            await self.exit(run, 0)
            return
        credit, total = LIMITS.stdin_window, 0
        while True:
            message = await self.receive(10.0)
            if isinstance(message, protocol.Ping):
                await self.send(protocol.Pong(seq=message.seq))
            elif isinstance(message, protocol.StdinEof) and message.id == run.id:
                await self.exit(run, 0, counts=(total, 0, total))
                return
            elif isinstance(message, protocol.Stdin) and message.id == run.id:
                if message.data_size > credit:
                    self.report["violations"].append("stdin beyond its credit [stdin.credit]")
                    await self.fatal("flow.window_exceeded", "stdin exceeds its credit")
                    raise ClientGone
                credit -= message.data_size
                total += message.data_size
                grant = (
                    [protocol.StdinCredit(id=run.id, bytes=message.data_size)]
                    if message.data_size
                    else []
                )
                await self.send(protocol.Stdout.with_data(run.id, message.data), *grant)
                credit += message.data_size

    async def play_signal(self, run: protocol.Run) -> None:
        await self.send(protocol.Stdout.with_data(run.id, b"dying\n"))
        await self.exit(run, None, signal=9, counts=(6, 0, 0))

    async def play_unknown_error(self, run: protocol.Run) -> None:
        await self.send(
            protocol.Error(
                code="future.unknown_code", message="a code from a later version", fatal=False
            ),
            protocol.Stdout.with_data(run.id, b"ok\n"),
        )
        await self.exit(run, 0, counts=(3, 0, 0))

    async def play_extended(self, run: protocol.Run) -> None:
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

    async def play_ping(self, run: protocol.Run) -> None:
        await self.send(protocol.Stdout.with_data(run.id, b"tick\n"), protocol.Ping(seq=PING_SEQ))
        deadline = time.monotonic() + 2.0
        answered = False
        with contextlib.suppress(TimeoutError):
            while not answered:
                message = await self.receive(max(0.01, deadline - time.monotonic()))
                if isinstance(message, protocol.Pong):
                    answered = message.seq == PING_SEQ
                    if not answered:
                        self.report["violations"].append("pong with the wrong seq")
                        break
                elif isinstance(message, protocol.Ping):
                    await self.send(protocol.Pong(seq=message.seq))
        if answered:
            await self.send(protocol.Stdout.with_data(run.id, b"tock\n"))
            await self.exit(run, 0, counts=(10, 0, 0))
        else:
            self.report["violations"].append("no pong within 2 s [message.ping.answer]")
            await self.send(protocol.Stderr.with_data(run.id, b"no pong\n"))
            await self.exit(run, 1, counts=(5, 8, 0))

    async def play_malformed(self, run: protocol.Run) -> None:
        await self.send(protocol.Stdout.with_data(run.id, b"partial\n"))
        await self.write(struct.pack("<i", -1))
        try:
            while True:
                await self.receive(3.0)
        except TimeoutError:
            self.report["violations"].append("did not close after a malformed frame")
        raise ClientGone

    async def play_max_size(self, run: protocol.Run) -> None:
        body = bytes(i % 251 for i in range(MAX_SERVER_BODY))
        await self.send(protocol.Stdout.with_data(run.id, body), sizes=(64 * 1024 + 1,))
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

    async def play_every_byte(self, run: protocol.Run) -> None:
        out, err = b"split\n", b"at every byte\n"
        await self.send(
            protocol.Stdout.with_data(run.id, out),
            protocol.Stderr.with_data(run.id, err),
            self.exit_message(run, 0, counts=(len(out), len(err), 0)),
            sizes=(1,),
        )

    async def play_interleave_a(self, run: protocol.Run) -> None:
        other = await self._next_run(INTERLEAVE_WAIT)
        if other is None or other.argv != ["interleave-b"]:
            await self.send(protocol.Stderr.with_data(run.id, b"no interleave-b\n"))
            await self.exit(run, 1, counts=(0, 16, 0))
            if other is not None:
                await self.scenario(other, other.argv[0] if other.argv else other.shell or "")
            return
        await self.started(other)
        a, b = run.id, other.id
        frames: list[protocol.MessageBase] = [
            protocol.Stdout.with_data(a, b"a1\n"),
            protocol.Stderr.with_data(b, b"b-err\n"),
            protocol.Stdout.with_data(b, b"b1\n"),
            protocol.Stderr.with_data(a, b"a-err\n"),
            protocol.Stdout.with_data(a, b"a2\n"),
            self.exit_message(run, 3, counts=(6, 6, 0)),  # B's output follows A's exit
            protocol.Stdout.with_data(b, b"b2\n"),
            self.exit_message(other, 0, counts=(6, 6, 0)),
        ]
        pinged: list[protocol.MessageBase] = []
        for number, frame in enumerate(frames):
            pinged += [frame] if number == 0 else [self.ping(PING_SEQ + 1 + number), frame]
        await self.send(*pinged)

    async def _next_run(self, timeout: float) -> protocol.Run | None:
        """The client's next ``run`` (pings answered meanwhile), None if none
        comes within ``timeout``."""
        deadline = time.monotonic() + timeout
        with contextlib.suppress(TimeoutError):
            while True:
                message = await self.receive(max(0.01, deadline - time.monotonic()))
                if isinstance(message, protocol.Ping):
                    await self.send(protocol.Pong(seq=message.seq))
                elif isinstance(message, protocol.Run):
                    return message
        return None

    async def play_unknown_id(self, run: protocol.Run) -> None:
        await self.send(protocol.Stdout.with_data(run.id + 1, b"ghost\n"))
        try:
            with contextlib.suppress(TimeoutError):
                while True:
                    message = await self.receive(2.0)
                    if isinstance(message, protocol.Ping):
                        await self.send(protocol.Pong(seq=message.seq))
        except ClientGone:
            if self.report.get("client_fatal_error") != "command.bad_id":
                self.report["violations"].append(
                    "no fatal command.bad_id for a frame of an id never opened [command.id.unknown]"
                )
            raise
        self.report["violations"].append(
            "carried on after a frame of an id never opened [command.id.unknown]"
        )
        await self.send(protocol.Stdout.with_data(run.id, b"ok\n"))
        await self.exit(run, 0, counts=(3, 0, 0))
