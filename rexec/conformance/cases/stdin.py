"""Stdin: /dev/null by default, credit-based flow control, its end, and a
frame reader that never blocks on a command's pipe."""

from __future__ import annotations

import asyncio

from rexec.protocol import Run, Stdin, StdinEof, encode_frame

from ..case import Context, Observation
from ._registry import case
from ._util import QUICK, run_one, wait_started


@case(
    "stdin.closed.default/dev-null",
    "cat with stdin false reads end of file at once: exit 0, no output.",
    {"exit:0,empty"},
)
async def dev_null(ctx: Context) -> Observation:
    _, record = await run_one(ctx, argv=["cat"])
    if record.exit is None:
        return Observation("no-exit", data=record.summary())
    return Observation(f"exit:{record.exit.exit_code},{'empty' if not record.stdout else 'output'}")


@case(
    "stdin.closed.default/refused",
    "A stdin frame for a command run with stdin false: fatal protocol.unexpected.",
    {"fatal:protocol.unexpected"},
)
async def refused(ctx: Context) -> Observation:
    client = await ctx.client()
    run = client.run_message(argv=["sleep", "5"])
    await client.wire.send(run, Stdin.with_data(run.id, b"x"))
    return Observation(await ctx.await_fatal(client.wire))


@case(
    "stdin.credit/exceeded",
    "sleep 5 with stdin true; one stdin frame of stdin_window + 1 bytes sent with the run: "
    "fatal flow.window_exceeded.",
    {"fatal:flow.window_exceeded"},
)
async def exceeded(ctx: Context) -> Observation:
    client = await ctx.client()
    assert client.hello is not None
    size = client.hello.limits.stdin_window + 1
    if size > client.hello.limits.max_body:
        return Observation("unsupported", "stdin_window + 1 exceeds max_body")
    run = client.run_message(argv=["sleep", "5"], stdin=True)
    await client.wire.send(run, Stdin.with_data(run.id, b"x" * size))
    return Observation(await ctx.await_fatal(client.wire))


@case(
    "stdin.credit/pipelined",
    "run cat, stdin 'early' and stdin_eof in one write (not waiting for started): output "
    "'early', exit 0.",
    {"early"},
)
async def pipelined(ctx: Context) -> Observation:
    client = await ctx.client()
    run = client.run_message(argv=["cat"], stdin=True)
    await client.wire.send(run, Stdin.with_data(run.id, b"early"), StdinEof(id=run.id))
    await client.wait_terminal(run.id, ctx.t(QUICK))
    record = client.records[run.id]
    return Observation(bytes(record.stdout).decode("utf-8", "replace") or "nothing",
                       data=record.summary())


@case(
    "stdin.credit.grant/through-cat",
    "Send 4 x stdin_window bytes through cat, honouring the credit: stdin_credit frames arrive "
    "and every byte comes back.",
    {"echoed"}, timeout=15.0,
)
async def through_cat(ctx: Context) -> Observation:
    client = await ctx.client()
    assert client.hello is not None
    data = bytes(range(256)) * (4 * client.hello.limits.stdin_window // 256)
    _, record = await run_one(ctx, client=client, argv=["cat"], data=data, wait=10.0)
    if record.credit_granted == 0:
        return Observation("no-credit", data=record.summary())
    return Observation("echoed" if bytes(record.stdout) == data else "stalled-or-lost",
                       f"{len(record.stdout)} of {len(data)} bytes")


@case(
    "stdin.credit.grant/reader-not-blocked",
    "Fill the stdin credit of a command that never reads (sleep), then run printf and ping on "
    "the same connection: both are answered at once.",
    {"not-blocked"},
)
async def reader_not_blocked(ctx: Context) -> Observation:
    client = await ctx.client()
    assert client.hello is not None
    window = client.hello.limits.stdin_window
    sleeper = client.run_message(argv=["sleep", "10"], stdin=True)
    chunk = min(window, client.hello.limits.max_body)
    frames = [Stdin.with_data(sleeper.id, b"s" * chunk)] * (window // chunk)
    await client.wire.send(sleeper, *frames)
    await wait_started(ctx, client, sleeper.id)
    await asyncio.sleep(ctx.t(0.3))
    _, record = await run_one(ctx, client=client, argv=["printf", "free"], wait=3.0)
    pong = await client.ping(21, ctx.t(2.0))
    if bytes(record.stdout) == b"free" and pong:
        return Observation("not-blocked")
    return Observation("blocked", f"printf done: {record.terminal}, pong: {pong}")


@case(
    "stdin.eof/closes",
    "cat with stdin 'abc' then stdin_eof: output 'abc' and exit 0 (cat saw end of file).",
    {"abc"},
)
async def eof_closes(ctx: Context) -> Observation:
    _, record = await run_one(ctx, argv=["cat"], data=b"abc")
    if record.exit is None:
        return Observation("no-exit", data=record.summary())
    return Observation(bytes(record.stdout).decode("utf-8", "replace"))


@case(
    "stdin.eof/stdin-after",
    "A stdin frame after stdin_eof for the same running command: fatal protocol.unexpected.",
    {"fatal:protocol.unexpected"},
)
async def stdin_after_eof(ctx: Context) -> Observation:
    client = await ctx.client()
    run = Run(id=1, argv=["sleep", "5"], stdin=True)
    client.next_id = 2
    await client.wire.send_raw(
        encode_frame(run) + encode_frame(StdinEof(id=1)) + encode_frame(Stdin.with_data(1, b"late"))
    )
    return Observation(await ctx.await_fatal(client.wire))
