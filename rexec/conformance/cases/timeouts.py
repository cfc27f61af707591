"""The server's own clocks: the frame deadline, the idle timeout and the
stall timeout (protocol.md section 7). The suite can't know their values; each
case is unsupported unless told (``--frame-timeout`` …), and then waits for
the server's reaction for that long plus a margin."""

from __future__ import annotations

from ..case import Context, Observation
from ..client import Unsupported
from ..peer_frames import PeerFrameError
from ._frames import LENGTH
from ._registry import case
from ._util import wait_started

#: Seconds (× multiplier) beyond the server's timeout to wait for its reaction.
MARGIN = 3.0


def _told(value: float | None, flag: str) -> float:
    if value is None:
        raise Unsupported(f"the server's timeout is unknown (tell the suite: {flag} SECONDS)")
    return value


async def _fatal_after(ctx: Context, clock: str, data: bytes) -> Observation:
    """After auth, send ``data`` and wait for the server's ``clock`` timeout
    (its value from ``--CLOCK-timeout``) and the margin: the shared outcome."""
    timeout = _told(getattr(ctx.options, f"{clock}_timeout"), f"--{clock}-timeout")
    client = await ctx.client()
    if data:
        await client.wire.send_raw(data)
    return Observation(await ctx.await_fatal(client.wire, wait=timeout + MARGIN))


@case("timeout.frame", {"fatal:frame.timeout"})
async def frame_deadline(ctx: Context) -> Observation:
    """After auth, send a header length of 30 and 10 bytes of the header, then nothing: fatal
    frame.timeout once the server's frame deadline (--frame-timeout) has passed."""
    return await _fatal_after(ctx, "frame", LENGTH.pack(30) + b'{"type":"p')


@case("timeout.idle", {"fatal:idle.timeout"})
async def idle(ctx: Context) -> Observation:
    """After auth, send nothing and run nothing: fatal idle.timeout once the server's idle
    timeout (--idle-timeout) has passed, not a bare close."""
    return await _fatal_after(ctx, "idle", b"")


@case("timeout.stall", {"ended-and-dropped"})
async def stall(ctx: Context) -> Observation:
    """With SO_RCVBUF 64 KiB, run a command writing 32 MiB and read nothing: once the server's
    stall timeout (--stall-timeout) has passed, the command is gone (kill -0 on the helper
    connection) and the connection is dropped, without an error frame."""
    timeout = _told(ctx.options.stall_timeout, "--stall-timeout")
    client = await ctx.client(rcvbuf=64 * 1024)
    command_id = await client.run(shell="head -c 33554432 /dev/zero")
    pid = await wait_started(ctx, client, command_id)
    if pid is None or not await ctx.pid_gone(pid, timeout + 2 * ctx.options.kill_grace + MARGIN):
        return Observation("still-running", f"pid {pid} outlived the stall timeout")
    try:
        closed, frames = await client.wire.wait_closed(ctx.t(10.0))
    except PeerFrameError:
        return Observation("ended-and-dropped", "dropped inside a frame")
    if closed is None:
        return Observation("not-dropped", "the command ended, the connection stayed open")
    errors = [f.code for f in frames if getattr(f, "type", "") == "error"]
    return Observation("error-frame-sent" if errors else "ended-and-dropped", ",".join(errors))
