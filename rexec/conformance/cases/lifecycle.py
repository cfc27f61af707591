"""How commands end: timeouts and cancels that kill the whole tree, a
process that leaves pipes held, reaping, disconnects and half-closes, and how
many commands run at once.

Whether a process is gone is judged from the client side only: a second
command on the same server runs ``kill -0 PID`` (which also succeeds on a
zombie, so "gone" means killed *and* reaped when the server is its parent).
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Literal

from rexec.protocol import Cancel, encode_frame

from ..case import Context, Observation
from ..client import Client, CommandRecord
from ._registry import case
from ._util import QUICK, run_one, slots_to_fill, start_one, wait_output

#: A shell whose background child ignores SIGTERM (so only SIGKILL ends it)
#: and does not hold the command's pipes; the child's pid is printed first.
STUBBORN_TREE = "(trap '' TERM; exec sleep 60) >/dev/null 2>&1 & echo $!; wait"
#: The same with a child that dies on SIGTERM.
PLAIN_TREE = "sleep 60 >/dev/null 2>&1 & echo $!; wait"


async def _tree(ctx: Context, script: str, **fields: object) -> tuple[Client, int, int | None]:
    """Start ``script``; return the client, the command id and the child pid."""
    client = await ctx.client()
    command_id = await client.run(shell=script, **fields)
    if not await wait_output(ctx, client, command_id, b"\n"):
        return client, command_id, None
    return client, command_id, int(bytes(client.records[command_id].stdout).split()[0])


def _grace(ctx: Context) -> float:
    return ctx.options.kill_grace + 2.0


async def _tree_ended(
    ctx: Context,
    client: Client,
    command_id: int,
    child: int,
    flag: Literal["timed_out", "cancelled"],
    unflagged: str,
) -> Observation:
    """Wait for the command's exit, which must carry ``flag`` (else
    ``unflagged``); then ``tree-killed`` when its child ``child`` is gone
    within the kill grace, else ``child-survived``."""
    record = await client.wait_record(command_id, ctx.t(_grace(ctx) + QUICK))
    if record.exit is None or not getattr(record.exit, flag):
        return Observation(unflagged, data=record.summary())
    gone = await ctx.pid_gone(child, _grace(ctx), zombie_ok=True)
    return Observation("tree-killed" if gone else "child-survived")


# --- timeouts ------------------------------------------------------------------------


@case("exit.timed_out", {"timed-out"})
async def timed_out(ctx: Context) -> Observation:
    """sleep 30 with timeout 0.5: exit within a few seconds, timed_out true, ended by a signal."""
    _, record = await run_one(ctx, argv=["sleep", "30"], timeout=0.5)
    e = record.exit
    if e is None:
        return Observation("no-exit", data=record.summary())
    if not e.timed_out:
        return Observation("not-flagged", data=record.summary())
    return Observation("timed-out" if e.signal is not None else "exit-code-set")


async def _timeout_tree(ctx: Context, script: str) -> Observation:
    client, command_id, child = await _tree(ctx, script, timeout=0.5)
    if child is None:
        return Observation("no-pid-printed", data=client.records[command_id].summary())
    return await _tree_ended(ctx, client, command_id, child, "timed_out", "no-timed-out-exit")


@case("timeout.kill.tree/term", {"tree-killed"}, timeout=15.0)
async def timeout_term(ctx: Context) -> Observation:
    """A shell with a background sleep, timeout 0.5: after the exit, the sleep is gone too."""
    return await _timeout_tree(ctx, PLAIN_TREE)


@case("timeout.kill.tree/kill", {"tree-killed"}, timeout=20.0)
async def timeout_kill(ctx: Context) -> Observation:
    """As timeout.kill.tree/term with a child that ignores SIGTERM: gone within the kill grace
    (--kill-grace, default 2 s) plus 2 s."""
    return await _timeout_tree(ctx, STUBBORN_TREE)


#: A shell that survives SIGTERM and says so; its sleeps die of it, the loop
#: goes on (bounded: 60 s), so only SIGKILL can end it.
TERM_IGNORED = "trap 'echo term' TERM; i=0; while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done"


@case("timeout.kill.tree/grace", {"killed-after-grace"}, timeout=20.0)
async def timeout_grace(ctx: Context) -> Observation:
    """A shell that ignores SIGTERM (printing 'term' when it arrives), timeout 0.5: it is told
    SIGTERM first, then ends by SIGKILL, no sooner than the kill grace (--kill-grace) after the
    SIGTERM and no later than the grace plus 2 s."""
    client = await ctx.client()
    command_id = await client.run(shell=TERM_IGNORED, timeout=0.5)
    record = client.records[command_id]
    if not await wait_output(ctx, client, command_id, b"term"):
        await client.wait_terminal(command_id, ctx.t(_grace(ctx)))
        return Observation("no-sigterm-first", data=record.summary())
    term_seen = time.monotonic()
    await client.wait_terminal(command_id, ctx.t(_grace(ctx) + QUICK))
    if record.exit is None or record.exit_time is None:
        return Observation("no-exit", data=record.summary())
    waited = record.exit_time - term_seen
    detail = (
        f"SIGKILL {waited:.2f} s after the SIGTERM was seen, kill grace {ctx.options.kill_grace} s"
    )
    if record.exit.signal != signal.SIGKILL or not record.exit.timed_out:
        return Observation("not-killed-by-sigkill", detail, data=record.summary())
    # The 'term' line reaches us after the SIGTERM, so the measured wait is a
    # little short of the server's: allow a quarter of the grace.
    if waited < 0.75 * ctx.options.kill_grace:
        return Observation("killed-before-grace", detail, data=record.summary())
    return Observation("killed-after-grace", detail)


@case("message.integers/seconds", {"seconds"}, timeout=15.0)
async def durations_in_seconds(ctx: Context) -> Observation:
    """sleep 1 with timeout 5: durations are seconds, so the command is not timed out (as it
    would be at 5 ms) and its exit's duration is about 1 (not 1000)."""
    started = time.monotonic()
    _, record = await run_one(ctx, argv=["sleep", "1"], timeout=5, wait=8.0)
    elapsed = time.monotonic() - started
    if record.exit is None:
        return Observation("no-exit", data=record.summary())
    if record.exit.timed_out:
        return Observation("timed-out", "a timeout of 5 read as milliseconds?", record.summary())
    detail = f"duration {record.exit.duration}, {elapsed:.2f} s measured by the suite"
    in_seconds = 0.9 <= record.exit.duration <= elapsed + 0.5
    return Observation("seconds" if in_seconds else "duration-not-seconds", detail)


# --- cancellation ---------------------------------------------------------------------


@case("cancel.kill.tree/before-start", {"cancelled", "error-terminal"})
async def cancel_before_start(ctx: Context) -> Observation:
    """run sleep 30 and cancel in one write: the command ends at once with exit cancelled true
    (or, if it never started, a command-scoped error)."""
    client = await ctx.client()
    run = client.run_message(argv=["sleep", "30"])
    await client.wire.send_raw(encode_frame(run) + encode_frame(Cancel(id=run.id)))
    record = await client.wait_record(run.id, ctx.t(_grace(ctx) + QUICK))
    if record.error is not None and not record.error.fatal:
        return Observation("error-terminal")
    if record.exit is None:
        return Observation("no-terminal", data=record.summary())
    return Observation("cancelled" if record.exit.cancelled else "not-flagged")


@case("cancel.kill.tree/mid-stream", {"tree-killed"}, timeout=20.0)
async def cancel_mid_stream(ctx: Context) -> Observation:
    """A shell printing a tick every 50 ms is cancelled after its first tick, with a child that
    ignores SIGTERM: exit cancelled true, and the child is gone within the kill grace."""
    script = (
        "(trap '' TERM; exec sleep 60) >/dev/null 2>&1 & echo $!; "
        "while :; do echo tick; sleep 0.05; done"
    )
    client, command_id, child = await _tree(ctx, script)
    if child is None:
        return Observation("no-pid-printed", data=client.records[command_id].summary())
    await wait_output(ctx, client, command_id, b"tick")
    await client.wire.send(Cancel(id=command_id))
    return await _tree_ended(ctx, client, command_id, child, "cancelled", "not-cancelled")


@case("exit.cancelled", {"cancelled"}, timeout=10.0)
async def exit_cancelled(ctx: Context) -> Observation:
    """sleep 30 cancelled after started: exit with cancelled true and timed_out false."""
    client, command_id = await start_one(ctx, argv=["sleep", "30"])
    await client.wire.send(Cancel(id=command_id))
    e = (await client.wait_record(command_id, ctx.t(_grace(ctx) + QUICK))).exit
    if e is None:
        return Observation("no-exit")
    return Observation("cancelled" if e.cancelled and not e.timed_out else "not-flagged")


@case("cancel.kill.tree/after-exit", {"dropped"})
async def cancel_after_exit(ctx: Context) -> Observation:
    """A cancel for a command that has exited is dropped: no frame for it, ping still answered."""
    client, record = await run_one(ctx, argv=["true"])
    await client.wire.send(Cancel(id=record.id))
    if not await client.ping(8, ctx.t(QUICK)):
        return Observation("closed" if client.closed or client.fatal_error() else "no-pong")
    return Observation("dropped" if not record.after_terminal else "answered")


# --- process exit vs pipes, reaping, disconnects ---------------------------------------


async def _pipes_held(ctx: Context) -> tuple[Observation | None, CommandRecord]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    _, record = await run_one(ctx, shell="sleep 30 & echo hi", wait=ctx.options.drain_grace + 5)
    elapsed = loop.time() - started
    if record.exit is None:
        return Observation("hung", f"no exit after {elapsed:.1f} s"), record
    return None, record


@case("exit.by.process", {"ended-by-process"}, timeout=12.0)
async def by_process(ctx: Context) -> Observation:
    """sh -c 'sleep 30 & echo hi': the exit comes within the drain grace (default 2 s) plus 3 s,
    with output 'hi' and exit_code 0, although the sleep holds the pipes."""
    failure, record = await _pipes_held(ctx)
    if failure or record.exit is None:
        return failure or Observation("hung")
    ok = record.exit.exit_code == 0 and bytes(record.stdout) == b"hi\n"
    return Observation("ended-by-process" if ok else "wrong-result", data=record.summary())


@case("exit.pipes_held", {"pipes-held"}, timeout=12.0)
async def pipes_held(ctx: Context) -> Observation:
    """sh -c 'sleep 30 & echo hi': the exit has pipes_held true."""
    failure, record = await _pipes_held(ctx)
    if failure or record.exit is None:
        return failure or Observation("hung")
    return Observation("pipes-held" if record.exit.pipes_held else "not-flagged")


@case("process.reaped", {"reaped"})
async def reaped(ctx: Context) -> Observation:
    """After the exit of 'true', its pid is gone (not a zombie) within 1 s."""
    _, record = await run_one(ctx, argv=["true"])
    if record.pid is None or record.exit is None:
        return Observation("no-exit", data=record.summary())
    return Observation("reaped" if await ctx.pid_gone(record.pid, 1.0) else "zombie-or-alive")


@case("disconnect.kill", {"tree-killed"}, timeout=15.0)
async def disconnect(ctx: Context) -> Observation:
    """Start a shell with a SIGTERM-ignoring child, then close the connection: both are gone
    within the kill grace plus 2 s."""
    client, command_id, child = await _tree(ctx, STUBBORN_TREE)
    pid = client.records[command_id].pid
    if child is None or pid is None:
        return Observation("no-pid-printed", data=client.records[command_id].summary())
    client.wire.abort()
    gone = await ctx.pid_gone(child, _grace(ctx), zombie_ok=True) and await ctx.pid_gone(pid, 1.0)
    return Observation("tree-killed" if gone else "survived")


@case("close.client.eof", {"served-then-closed"})
async def half_close(ctx: Context) -> Observation:
    """Run 'sleep 0.5; echo done', then half-close at once: the output and exit still arrive,
    then the server closes."""
    client = await ctx.client()
    command_id = await client.run(shell="sleep 0.5; echo done")
    await client.wire.shutdown_write()
    record = await client.wait_record(command_id, ctx.t(QUICK))
    if record.exit is None or bytes(record.stdout) != b"done\n":
        return Observation("cut-off", data=record.summary())
    closed, _ = await client.wire.wait_closed(ctx.t(2.0))
    return Observation("served-then-closed" if closed or client.closed else "left-open")


# --- concurrency and limits ---------------------------------------------------------------


@case("command.concurrent/interleaved", {"all-intact"}, timeout=10.0)
async def concurrent(ctx: Context) -> Observation:
    """20 commands (or max_commands, if lower) at once on one connection, each printing its own
    numbered lines with pauses: every command's output complete and in order."""
    client = await ctx.client()
    ids = []
    for n in range(min(20, client.limits.max_commands)):
        script = f'i=0; while [ $i -lt 20 ]; do echo "{n}:$i"; i=$((i+1)); sleep 0.01; done'
        ids.append(client.run_message(shell=script))
    await client.wire.send(*ids)
    await client.wait_terminal([r.id for r in ids], ctx.t(8.0))
    bad = []
    for n, run in enumerate(ids):
        expected = "".join(f"{n}:{i}\n" for i in range(20)).encode()
        record = client.records[run.id]
        if bytes(record.stdout) != expected or record.exit is None or record.order_faults():
            bad.append(run.id)
    return Observation("all-intact" if not bad else f"broken:{len(bad)}")


@case("command.concurrent/not-serialised", {"concurrent"})
async def not_serialised(ctx: Context) -> Observation:
    """cat (stdin open, so it waits) runs while a second command, printf, starts and ends on the
    same connection."""
    client, reader = await start_one(ctx, argv=["cat"], stdin=True)
    _, record = await run_one(ctx, client=client, argv=["printf", "second"], wait=3.0)
    await client.stdin_eof(reader)
    return Observation("concurrent" if bytes(record.stdout) == b"second" else "serialised")


@case("command.busy", {"busy"}, timeout=20.0)
async def busy(ctx: Context) -> Observation:
    """Start max_commands (announced) sleeps, then one more run: it is refused at once with the
    command-scoped busy; after cancelling one, a run is accepted again."""
    client = await ctx.client()
    limit = slots_to_fill(client)
    runs = [client.run_message(argv=["sleep", "30"]) for _ in range(limit)]
    await client.wire.send(*runs)
    await client.pump(
        ctx.t(10.0),
        until=lambda: all(
            client.records[r.id].pid is not None or client.records[r.id].terminal for r in runs
        ),
    )
    over = client.run_message(argv=["true"])
    await client.wire.send(over)
    record = await client.wait_record(over.id, ctx.t(2.0))
    await client.wire.send(*[Cancel(id=r.id) for r in runs])
    if record.error is not None and record.error.code == "busy" and not record.error.fatal:
        return Observation("busy")
    if record.exit is not None:
        return Observation("not-refused")
    return Observation(f"error:{record.error.code}" if record.error else "queued")
