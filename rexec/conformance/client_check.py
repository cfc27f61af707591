"""Client mode with verdicts: ``rexec-conformance --client ADAPTER`` puts a
client under test through every scenario of the scripted server and judges
both what the server saw it do and what it showed its user.

The adapter is a small program around the client under test. The suite runs
it (``ADAPTER`` split as a shell would) with the arguments ``HOST:PORT NAME
[NAME ...]`` and the environment variable ``REXEC_KEY_FILE`` naming the key
file. It opens one connection, starts one command per NAME at once on it
(argv ``[NAME]``, no stdin), waits for them all and prints one JSON line per
NAME, in the order given::

    {"name": NAME, "stdout": BASE64, "stderr": BASE64, "exit_code": INT|null, "signal": INT|null}
    {"name": NAME, "error": CODE}             the server refused the command
    {"name": NAME, "connection_error": TEXT}  the connection ended under it

When it can't connect at all it prints ``{"connection_error": TEXT}``.

A scenario passes when every command shows exactly the expected output and
end (or, where the scenario feeds the client a fatal fault, the connection
ends under it), and the scripted server reports no violation.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import os
import shlex
from pathlib import Path
from typing import Any

from .serve import serve

#: Seconds (× multiplier) the adapter may take for one scenario.
ADAPTER_WAIT = 30.0
#: Seconds (× multiplier) for the server's report once the adapter is done.
REPORT_WAIT = 5.0


@dataclasses.dataclass(frozen=True)
class Expect:
    """What a conforming client shows for one command."""

    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int | None = 0
    signal: int | None = None


#: The connection must end under the command (the client fails it itself).
FAILS = None


@dataclasses.dataclass(frozen=True)
class ClientScenario:
    """One run of the adapter: the handshake the server plays, the command
    names, and per name what a conforming client shows (or ``FAILS``)."""

    id: str
    rules: tuple[str, ...]
    description: str
    commands: tuple[str, ...]
    expect: tuple[Expect | None, ...]
    handshake: str = "ok"


_LINES = b"".join(b"line %d\n" % i for i in range(100))

CLIENT_SCENARIOS: tuple[ClientScenario, ...] = (
    ClientScenario(
        "split-handshake",
        ("frame.stream.chunking",),
        "hello and auth_ok arrive a byte per TCP segment; then chunks",
        ("chunks",),
        (Expect(b"hello, world\n", b"warn\n"),),
        "split",
    ),
    ClientScenario(
        "coalesced-handshake",
        ("frame.stream.chunking", "message.ping.answer", "error.unknown.accept"),
        "auth_ok, a ping and a non-fatal error of an unknown code in one segment; then many-frames",
        ("many-frames",),
        (Expect(_LINES),),
        "coalesced",
    ),
    ClientScenario(
        "every-byte",
        ("frame.stream.chunking",),
        "started, stdout, stderr and exit a byte per TCP segment",
        ("every-byte",),
        (Expect(b"split\n", b"at every byte\n"),),
    ),
    ClientScenario(
        "many-frames",
        ("frame.stream.chunking",),
        "100 stdout frames in one write",
        ("many-frames",),
        (Expect(_LINES),),
    ),
    ClientScenario(
        "interleave",
        ("command.concurrent", "message.ping.answer"),
        "two commands' output, errors and exits mixed, B's after A's exit, a ping between "
        "every two frames",
        ("interleave-a", "interleave-b"),
        (Expect(b"a1\na2\n", b"a-err\n", 3), Expect(b"b1\nb2\n", b"b-err\n", 0)),
    ),
    ClientScenario(
        "ping",
        ("message.ping.answer",),
        "a ping mid-command; the command ends well only once it is answered",
        ("ping",),
        (Expect(b"tick\ntock\n"),),
    ),
    ClientScenario(
        "signal",
        ("exit.signal.reported",),
        "death by SIGKILL: signal 9, no exit code",
        ("signal",),
        (Expect(b"dying\n", exit_code=None, signal=9),),
    ),
    ClientScenario(
        "exit-255", ("exit.code",), "exit code 255", ("exit-255",), (Expect(exit_code=255),)
    ),
    ClientScenario(
        "unknown-error",
        ("error.unknown.accept",),
        "a non-fatal error of an unknown code and no id, mid-command",
        ("unknown-error",),
        (Expect(b"ok\n"),),
    ),
    ClientScenario(
        "extended",
        ("message.extensible",),
        "started and exit with members no version defines",
        ("extended",),
        (Expect(b"ok\n"),),
    ),
    ClientScenario(
        "max-size",
        ("limits.announced",),
        "a 1 MiB stdout body and a 64 KiB exit header",
        ("max-size",),
        (Expect(bytes(i % 251 for i in range(1024 * 1024))),),
    ),
    ClientScenario(
        "malformed",
        ("frame.length.negative",),
        "a header length of -1 mid-command: the client fails the connection",
        ("malformed",),
        (FAILS,),
    ),
    ClientScenario(
        "unknown-id",
        ("command.id.unknown",),
        "output for an id the client never opened: it fails the connection with command.bad_id",
        ("unknown-id",),
        (FAILS,),
    ),
)


@dataclasses.dataclass
class ClientResult:
    scenario: ClientScenario
    passed: bool
    faults: list[str]
    adapter_stderr: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.scenario.id,
            "rules": list(self.scenario.rules),
            "description": self.scenario.description,
            "verdict": "pass" if self.passed else "fail",
            "faults": self.faults,
            "adapter_stderr": self.adapter_stderr,
        }


def _shown(data: bytes) -> str:
    return repr(data[:40]) + (f"… ({len(data)} bytes)" if len(data) > 40 else "")


def judge_command(name: str, expected: Expect | None, shown: dict[str, Any] | None) -> list[str]:
    """What the adapter's line ``shown`` for command ``name`` gets wrong."""
    if shown is None:
        return [f"{name}: the adapter printed no result"]
    if expected is FAILS:
        if "connection_error" in shown:
            return []
        return [f"{name}: carried on as if nothing was wrong ({_summary(shown)})"]
    if "stdout" not in shown:
        return [f"{name}: {_summary(shown)}, expected exit {expected.exit_code}"]
    faults = []
    for stream in ("stdout", "stderr"):
        got = base64.b64decode(shown.get(stream) or "")
        want = getattr(expected, stream)
        if got != want:
            faults.append(f"{name}: {stream} {_shown(got)}, expected {_shown(want)}")
    end = (shown.get("exit_code"), shown.get("signal"))
    if end != (expected.exit_code, expected.signal):
        faults.append(
            f"{name}: exit_code/signal {end}, expected {(expected.exit_code, expected.signal)}"
        )
    return faults


def _summary(shown: dict[str, Any]) -> str:
    if "error" in shown:
        return f"refused with {shown['error']}"
    if "connection_error" in shown:
        return f"connection error: {shown['connection_error']}"
    return f"exit_code {shown.get('exit_code')}, signal {shown.get('signal')}"


def parse_lines(stdout: bytes) -> dict[str, dict[str, Any]]:
    """The adapter's JSON lines by command name (other lines ignored)."""
    shown: dict[str, dict[str, Any]] = {}
    for line in stdout.decode("utf-8", "replace").splitlines():
        with contextlib.suppress(ValueError):
            item = json.loads(line)
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                shown[item["name"]] = item
    return shown


async def run_scenario(
    scenario: ClientScenario, adapter: list[str], key: bytes, key_file: Path, multiplier: float
) -> ClientResult:
    reports: list[dict[str, Any]] = []
    got_report = asyncio.Event()

    def on_report(report: dict[str, Any]) -> None:
        reports.append(report)
        got_report.set()

    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    server = asyncio.ensure_future(
        serve("127.0.0.1", 0, key, scenario.handshake, ready, on_report=on_report)
    )
    faults: list[str] = []
    stderr = b""
    try:
        port = await ready
        process = await asyncio.create_subprocess_exec(
            *adapter,
            f"127.0.0.1:{port}",
            *scenario.commands,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "REXEC_KEY_FILE": str(key_file)},
        )
        try:
            stdout, stderr = await asyncio.wait_for(
                process.communicate(), ADAPTER_WAIT * multiplier
            )
        except TimeoutError:
            process.kill()
            stdout, stderr = await process.communicate()
            faults.append(f"the client did not finish within {ADAPTER_WAIT * multiplier:g} s")
        shown = parse_lines(stdout)
        rules = " ".join(f"[{rule}]" for rule in scenario.rules)
        for name, expected in zip(scenario.commands, scenario.expect, strict=True):
            faults += [f"{f} {rules}" for f in judge_command(name, expected, shown.get(name))]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(got_report.wait(), REPORT_WAIT * multiplier)
        for report in reports:
            faults += [f"server saw: {v}" for v in report.get("violations", [])]
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server
    text = stderr.decode("utf-8", "replace")[-2000:]
    return ClientResult(scenario, not faults, faults, text)


async def check_client(
    adapter: str,
    key: bytes,
    key_file: Path,
    multiplier: float = 1.0,
    only: frozenset[str] | None = None,
) -> list[ClientResult]:
    """Every scenario (or those whose id is in ``only``), one after the
    other, against ``adapter``."""
    argv = shlex.split(adapter)
    chosen = [s for s in CLIENT_SCENARIOS if only is None or s.id in only]
    return [await run_scenario(s, argv, key, key_file, multiplier) for s in chosen]
