"""Stdin: /dev/null by default, credit-based flow control, its end, and a
frame reader that never blocks on a command's pipe."""

from __future__ import annotations

import asyncio

from rexec.protocol import Ping, Pong, Stdin, StdinEof

from ..case import Context, Observation, require_started
from ..client import Client
from ._registry import case
from ._util import QUICK, fatal_after, fatal_seen, over_the_window, run_one, wait_started


@case("stdin.closed.default/dev-null", {"exit:0,empty"})
async def dev_null(ctx: Context) -> Observation:
    """cat with stdin false reads end of file at once: exit 0, no output."""
    _, record = await run_one(ctx, argv=["cat"])
    if record.exit is None:
        return Observation("no-exit", data=record.summary())
    return Observation(f"exit:{record.exit.exit_code},{'empty' if not record.stdout else 'output'}")


@case("command.frames.dropped/stdin-without-stdin", {"dropped"})
async def stdin_without_stdin(ctx: Context) -> Observation:
    """stdin and stdin_eof for a running command with stdin false (sh -c 'sleep 0.3; echo ok'),
    then ping: dropped, not fatal: the pong and the command's output and exit 0 arrive."""
    client = await ctx.client()
    run = client.run_message(argv=["sh", "-c", "sleep 0.3; echo ok"])
    await client.wire.send(run, Stdin.with_data(run.id, b"x"), StdinEof(id=run.id), Ping(seq=31))
    return await _dropped(ctx, client, run.id, b"ok\n")


@case("stdin.credit/exceeded", {"fatal:flow.window_exceeded"})
async def exceeded(ctx: Context) -> Observation:
    """sleep 5 with stdin true; one stdin frame of stdin_window + 1 bytes sent with the run:
    fatal flow.window_exceeded."""
    client = await ctx.client()
    size = over_the_window(client)
    run = client.run_message(argv=["sleep", "5"], stdin=True)
    return await fatal_after(ctx, client, run, Stdin.with_data(run.id, b"x" * size))


@case("stdin.credit/pipelined", {"early"})
async def pipelined(ctx: Context) -> Observation:
    """run cat, stdin 'early' and stdin_eof in one write (not waiting for started): output
    'early', exit 0."""
    client = await ctx.client()
    run = client.run_message(argv=["cat"], stdin=True)
    await client.wire.send(run, Stdin.with_data(run.id, b"early"), StdinEof(id=run.id))
    record = await client.wait_record(run.id, ctx.t(QUICK))
    return Observation(
        bytes(record.stdout).decode("utf-8", "replace") or "nothing", data=record.summary()
    )


@case("stdin.credit.grant/through-cat", {"echoed"}, timeout=15.0)
async def through_cat(ctx: Context) -> Observation:
    """Send 4 x stdin_window bytes through cat, honouring the credit: stdin_credit frames arrive
    and every byte comes back."""
    client = await ctx.client()
    data = bytes(range(256)) * (4 * client.limits.stdin_window // 256)
    _, record = await run_one(ctx, client=client, argv=["cat"], data=data, wait=10.0)
    if record.credit_granted == 0:
        return Observation("no-credit", data=record.summary())
    return Observation(
        "echoed" if bytes(record.stdout) == data else "stalled-or-lost",
        f"{len(record.stdout)} of {len(data)} bytes",
    )


@case("stdin.credit.grant/reader-not-blocked", {"not-blocked"})
async def reader_not_blocked(ctx: Context) -> Observation:
    """Fill the stdin credit of a command that never reads (sleep), then run printf and ping on
    the same connection: both are answered at once."""
    client = await ctx.client()
    window = client.limits.stdin_window
    sleeper = client.run_message(argv=["sleep", "10"], stdin=True)
    chunk = min(window, client.limits.max_body)
    frames = [Stdin.with_data(sleeper.id, b"s" * chunk)] * (window // chunk)
    await client.wire.send(sleeper, *frames)
    await wait_started(ctx, client, sleeper.id)
    await asyncio.sleep(ctx.t(0.3))
    _, record = await run_one(ctx, client=client, argv=["printf", "free"], wait=3.0)
    pong = await client.ping(21, ctx.t(2.0))
    if bytes(record.stdout) == b"free" and pong:
        return Observation("not-blocked")
    return Observation("blocked", f"printf done: {record.terminal}, pong: {pong}")


@case("stdin.eof/closes", {"abc"})
async def eof_closes(ctx: Context) -> Observation:
    """cat with stdin 'abc' then stdin_eof: output 'abc' and exit 0 (cat saw end of file)."""
    _, record = await run_one(ctx, argv=["cat"], data=b"abc")
    if record.exit is None:
        return Observation("no-exit", data=record.summary())
    return Observation(bytes(record.stdout).decode("utf-8", "replace"))


@case("command.frames.dropped/stdin-after-eof", {"dropped"})
async def stdin_after_eof(ctx: Context) -> Observation:
    """cat with stdin 'abc', stdin_eof, then stdin 'late', a second stdin_eof and ping, in one
    write: the late frames are dropped, not fatal: output 'abc', exit 0, stdin_bytes 3, pong."""
    client = await ctx.client()
    run = client.run_message(argv=["cat"], stdin=True)
    await client.wire.send(
        run,
        Stdin.with_data(run.id, b"abc"),
        StdinEof(id=run.id),
        Stdin.with_data(run.id, b"late"),
        StdinEof(id=run.id),
        Ping(seq=32),
    )
    observation = await _dropped(ctx, client, run.id, b"abc")
    record = client.records[run.id]
    if (
        observation.outcome == "dropped"
        and record.exit is not None
        and record.exit.stdin_bytes != 3
    ):
        return Observation(f"stdin_bytes:{record.exit.stdin_bytes}", data=record.summary())
    return observation


async def _dropped(ctx: Context, client: Client, command_id: int, output: bytes) -> Observation:
    """``dropped`` when the connection carried on (pong, output, exit 0), else
    what happened instead."""
    record = client.records[command_id]
    ponged = await client.pump(
        ctx.t(QUICK),
        until=lambda: record.terminal and any(isinstance(m, Pong) for m in client.other),
    )
    fatal = fatal_seen(client)
    if fatal is not None:
        return Observation(f"fatal:{fatal}")
    require_started(record)
    if not ponged:
        return Observation("no-pong" if record.terminal else "no-exit", data=record.summary())
    if not record.succeeded or bytes(record.stdout) != output:
        return Observation("command-disturbed", data=record.summary())
    return Observation("dropped")
