"""[error.fatal.prompt]: a fatal error's connection ends even when the peer
does not read, judged by events instead of a time window.

The case needs two facts that no fixed sleep can give on a loaded machine:
that the error frame is stuck behind output in the server's own buffer when
the server decides to fail (else a server that waits for the flush passes
because its flush succeeds), and that the server has closed its socket without
the suite reading (else a server that waits for the peer passes once the peer
reads). Both are read on the server's host through the helper connection:
the command counts what it wrote, and ``/proc/net/tcp`` shows the server's
socket (its send queue, and whether it has left ESTABLISHED). A host without
``/proc/net/tcp`` or a connection it can't find there (an address translated on
the way) makes the case unsupported.
"""

from __future__ import annotations

import array
import asyncio
import fcntl
import struct
import termios
import time

from rexec.protocol import Error, MessageBase

from ..case import Context, Observation
from ..client import Client, SetupError, Unsupported
from ..peer_frames import PeerFrameError
from ..tcp_table import ESTABLISHED, find_socket
from ._registry import case
from ._util import wait_started

#: Bytes the command writes per step; it records its step count after each.
CHUNK = 65536
#: What the server's stdout pipe may hold (Linux's default pipe size): the
#: case waits until more than this and a margin is neither in the pipe, the
#: server's kernel send queue nor on the suite's side, so it is in the
#: server's own buffer, in front of any error frame.
PIPE_BYTES = 65536
MARGIN = 65536
#: Seconds (× multiplier) each wait may take: generous, since a conforming
#: server is seen to act long before; they bound a broken server's case only.
FILL_WAIT = 15.0
CLOSE_WAIT_EVENT = 10.0
#: Attempts at most, while the error frame still reaches the suite (see ``prompt``).
ATTEMPTS = 3


def _unread_bytes(client: Client) -> int:
    """Bytes the suite's kernel holds for this connection, unread."""
    sock = client.wire.writer.get_extra_info("socket")
    count = array.array("i", [0])
    fcntl.ioctl(sock.fileno(), termios.FIONREAD, count)
    return count[0]


async def _server_view(ctx: Context, progress: str, client_port: int) -> tuple[int, str, int]:
    """(bytes the command wrote, server socket state, its send queue).

    Raises:
        Unsupported: the server's host shows no such socket.
    """
    record = await ctx.sh(
        # The count is read first: what it says was written before the queue.
        f'n=$(cat {progress} 2>/dev/null); echo "${{n:-0}}"; '
        "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null"
    )
    text = bytes(record.stdout).decode("ascii", "replace")
    first, _, table = text.partition("\n")
    found = find_socket(table, ctx.target.port, client_port)
    if found is None:
        raise Unsupported("no /proc/net/tcp entry for this connection on the server's host")
    return int(first.strip() or 0) * CHUNK, found.state, found.send_queue


async def _drain(client: Client, wait: float) -> str:
    """Read to the end: ``flushed-late`` if the fatal error arrives."""
    try:
        _, frames = await client.wire.wait_closed(wait)
    except PeerFrameError:
        return "abandoned"  # closed inside a frame: the rest was dropped
    if any(isinstance(f, Error) and f.fatal for f in frames):
        return "flushed-late"
    return "abandoned"


@case("error.fatal.prompt", {"abandoned"}, timeout=45.0)
async def prompt(ctx: Context) -> Observation:
    """Fill the pipe to the server's own buffer (a command writes 64 KiB steps and counts them;
    SO_RCVBUF 64 KiB; the suite stops reading), send a bad length, and still read nothing: the
    server's socket must leave ESTABLISHED (seen in /proc/net/tcp on its host); draining then
    ends in a close without the error frame, which was behind the unsent output. Tried again
    (ATTEMPTS in all) when the error frame arrives all the same: the server's kernel took in
    what its buffer held after the suite looked (its send buffer grows), so the server closed
    without waiting for anyone and the attempt showed nothing either way."""
    for _ in range(ATTEMPTS - 1):
        observation = await _attempt(ctx)
        if observation.outcome != "flushed-late":
            return observation
    return await _attempt(ctx)


async def _attempt(ctx: Context) -> Observation:
    client = await ctx.client(rcvbuf=64 * 1024)
    progress = ctx.temp_path("prompt-progress")
    command_id = await client.run(
        shell=f"i=0; while [ $i -lt 1024 ]; do head -c {CHUNK} /dev/zero || exit 1; "
        f"i=$((i+1)); echo $i > {progress}; done"
    )
    await wait_started(ctx, client, command_id)
    client.wire.writer.transport.pause_reading()
    # What the stream reader holds already is read (and counted in
    # received_bytes); nothing more arrives while reading is paused.
    while isinstance(await client.wire.next_frame(0.05), MessageBase):
        pass
    client_port = client.wire.writer.get_extra_info("sockname")[1]
    deadline = time.monotonic() + ctx.t(FILL_WAIT)
    while True:
        written, state, queued = await _server_view(ctx, progress, client_port)
        received = client.wire.received_bytes + _unread_bytes(client)
        held = written - received - queued - PIPE_BYTES
        if held > MARGIN:
            break
        if state != ESTABLISHED or time.monotonic() > deadline:
            raise SetupError(
                f"the output did not back up into the server ({written} written, {received} "
                f"received, {queued} in its send queue, socket state {state})"
            )
        await asyncio.sleep(0.1)
    await client.wire.send_raw(struct.pack("<i", -1))
    sent = time.monotonic()
    deadline = sent + ctx.t(CLOSE_WAIT_EVENT)
    while state == ESTABLISHED:
        if time.monotonic() > deadline:
            return Observation(
                "never-closed", f"still established {ctx.t(CLOSE_WAIT_EVENT):g} s after the error"
            )
        await asyncio.sleep(0.05)
        try:
            _, state, _ = await _server_view(ctx, progress, client_port)
        except Unsupported:
            break  # gone from the table: closed and done
    closed_after = time.monotonic() - sent
    client.wire.writer.transport.resume_reading()
    outcome = await _drain(client, ctx.t(CLOSE_WAIT_EVENT))
    return Observation(
        outcome, f"closed {closed_after:.2f} s after the error was sent; {held} B held"
    )
