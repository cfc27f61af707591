"""Output: streams kept apart and live, order, backpressure without loss,
byte counts, the output limit, and the server's own frame size bounds."""

from __future__ import annotations

import asyncio
import time

from ..case import Context, Observation
from ._registry import case
from ._util import capped_label, run_one, wait_started

#: Bytes the backpressure command writes: far more than every buffer between
#: its pipe and the suite (pipe, server, both kernels, with SO_RCVBUF pinned).
BULK = 32 * 1024 * 1024


@case("output.streams.apart/interleaved", {"apart"})
async def streams_apart(ctx: Context) -> Observation:
    """A shell alternating writes to stdout and stderr: stdout is exactly the stdout writes,
    stderr exactly the stderr writes, each in order."""
    script = "; ".join(f"printf o{i}; printf e{i} >&2" for i in range(20))
    _, record = await run_one(ctx, shell=script)
    out = b"".join(b"o%d" % i for i in range(20))
    err = b"".join(b"e%d" % i for i in range(20))
    if bytes(record.stdout) == out and bytes(record.stderr) == err:
        return Observation("apart")
    return Observation("mixed", data=record.summary())


@case("output.streams.apart/live", {"live"})
async def live(ctx: Context) -> Observation:
    """printf first; sleep 1.5; printf second: 'first' arrives at least 1 s before exit (output
    is streamed, not held until the end)."""
    _, record = await run_one(ctx, shell="printf first; sleep 1.5; printf second")
    if record.exit is None or not record.stdout_chunks or record.exit_time is None:
        return Observation("no-exit-or-output", data=record.summary())
    lead = record.exit_time - record.stdout_chunks[0][0]
    return Observation("live" if lead >= 1.0 else "held", f"first output {lead:.2f} s before exit")


@case("output.streams.apart/order", {"in-order"})
async def order(ctx: Context) -> Observation:
    """A shell printing the numbers 0..9999 one per line: they arrive complete and in order."""
    script = "i=0; while [ $i -lt 10000 ]; do echo $i; i=$((i+1)); done"
    _, record = await run_one(ctx, shell=script, wait=15.0)
    expected = "".join(f"{i}\n" for i in range(10000)).encode()
    return Observation("in-order" if bytes(record.stdout) == expected else "corrupted")


async def _bulk(ctx: Context) -> tuple[bool, int, int | None]:
    """Start BULK bytes of output then ``touch MARKER``; don't read for a while;
    report whether the command was blocked, and the bytes then read."""
    marker = ctx.temp_path("backpressure")
    client = await ctx.client(rcvbuf=64 * 1024)
    command_id = await client.run(shell=f"head -c {BULK} /dev/zero; touch {marker}")
    await wait_started(ctx, client, command_id)
    await asyncio.sleep(ctx.t(1.5))
    blocked = not await ctx.path_exists(marker)
    record = await client.wait_record(command_id, ctx.t(20.0))
    counted = record.exit.stdout_bytes if record.exit else None
    return blocked, len(record.stdout), counted


@case("output.backpressure/blocks", {"blocked"}, timeout=25.0, facts={"mib": BULK >> 20})
async def blocks(ctx: Context) -> Observation:
    """Run a command writing {mib} MiB then touching a marker, and read nothing for 1.5 s
    (SO_RCVBUF 64 KiB): the marker must not exist yet (the command is blocked on its pipe)."""
    blocked, _, _ = await _bulk(ctx)
    return Observation("blocked" if blocked else "not-blocked")


@case("output.backpressure/lossless", {"lossless"}, timeout=25.0, facts={"mib": BULK >> 20})
async def lossless(ctx: Context) -> Observation:
    """The same {mib} MiB read after the pause: every byte arrives and exit.stdout_bytes
    agrees."""
    _, received, counted = await _bulk(ctx)
    if received == BULK and counted == BULK:
        return Observation("lossless")
    return Observation("lost", f"received {received}, exit says {counted}, wrote {BULK}")


@case("exit.counts", {"5/3/6"})
async def counts(ctx: Context) -> Observation:
    """printf 12345 to stdout, 123 to stderr, 6 bytes of stdin: the exit counts 5, 3 and 6."""
    _, record = await run_one(
        ctx, shell="printf 12345; printf 123 >&2; cat >/dev/null", data=b"abcdef"
    )
    e = record.exit
    if e is None:
        return Observation("no-exit")
    return Observation(f"{e.stdout_bytes}/{e.stderr_bytes}/{e.stdin_bytes}")


@case("output.limit", {"exactly-1000"}, timeout=10.0)
async def output_limit(ctx: Context) -> Observation:
    """output_limit 1000 on an endless printf loop: exactly 1000 bytes of output arrive."""
    _, record = await run_one(ctx, shell="while :; do printf 0123456789; done", output_limit=1000)
    total = len(record.stdout) + len(record.stderr)
    return Observation("exactly-1000" if total == 1000 else f"{total}-bytes")


@case("exit.output_capped", {"capped"}, timeout=10.0)
async def output_capped(ctx: Context) -> Observation:
    """output_limit 1000 on an endless loop: the exit has output_capped true."""
    _, record = await run_one(ctx, shell="while :; do printf 0123456789; done", output_limit=1000)
    return Observation(capped_label(record))


@case("output.limit/exact", {"exact:exit:0"}, timeout=10.0)
async def output_limit_exact(ctx: Context) -> Observation:
    """output_limit 1000 on a shell that writes exactly 1000 bytes, then sleeps 0.5 s and exits
    0: all 1000 arrive and it is not ended (exit 0 on its own)."""
    _, record = await run_one(ctx, shell="head -c 1000 /dev/zero; sleep 0.5", output_limit=1000)
    total = len(record.stdout) + len(record.stderr)
    if record.exit is None:
        return Observation("no-exit", data=record.summary())
    ended = (
        f"exit:{record.exit.exit_code}"
        if record.exit.signal is None
        else (f"signal:{record.exit.signal_name}")
    )
    return Observation(f"exact:{ended}" if total == 1000 else f"{total}-bytes:{ended}")


@case("exit.output_capped/exact", {"not-capped"}, timeout=10.0)
async def output_capped_exact(ctx: Context) -> Observation:
    """output_limit 1000 on a command that writes exactly 1000 bytes: nothing was withheld, so
    output_capped is false."""
    _, record = await run_one(ctx, argv=["head", "-c", "1000", "/dev/zero"], output_limit=1000)
    return Observation(capped_label(record))


@case("output.limit/both-streams", {"exactly-1000,capped"}, timeout=10.0)
async def output_limit_both(ctx: Context) -> Observation:
    """output_limit 1000 on a shell writing 600 bytes to stdout and 600 to stderr, then
    sleeping: exactly 1000 bytes arrive across the two streams, output_capped."""
    script = "head -c 600 /dev/zero; head -c 600 /dev/zero >&2; sleep 5"
    _, record = await run_one(ctx, shell=script, output_limit=1000, wait=8.0)
    total = len(record.stdout) + len(record.stderr)
    capped = record.exit is not None and record.exit.output_capped
    return Observation(
        f"{'exactly-1000' if total == 1000 else f'{total}-bytes'},"
        f"{'capped' if capped else 'not-capped'}",
        data=record.summary(),
    )


@case("output.limit/sigterm", {"exactly,SIGTERM"}, timeout=10.0)
async def output_limit_sigterm(ctx: Context) -> Observation:
    """output_limit 100000 on yes: exactly 100000 bytes, and yes ends by the server's SIGTERM
    (its pipe kept open and drained), not by SIGPIPE."""
    _, record = await run_one(ctx, argv=["yes"], output_limit=100_000, wait=8.0)
    if record.exit is None:
        return Observation("no-exit", data=record.summary())
    total = len(record.stdout) + len(record.stderr)
    ended = record.exit.signal_name or f"exit:{record.exit.exit_code}"
    return Observation(f"{'exactly' if total == 100_000 else f'{total}-bytes'},{ended}")


@case("limits.announced/server-frames", {"within-limits"}, timeout=10.0)
async def server_frames(ctx: Context) -> Observation:
    """4 MiB of output: every frame the server sends stays within 64 KiB of header and 1 MiB of
    body (a larger one is reported by the decoder as a server fault)."""
    started = time.monotonic()
    _, record = await run_one(ctx, shell="head -c 4194304 /dev/zero", wait=8.0)
    if len(record.stdout) != 4 * 1024 * 1024:
        return Observation(
            "incomplete", f"{len(record.stdout)} bytes in {time.monotonic() - started:.1f} s"
        )
    return Observation("within-limits")
