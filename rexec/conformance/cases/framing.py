"""Frames: the length prefix, bodies, TCP chopping, and a stream that ends
inside a frame (headers are in headers.py). Each bad-frame case sends exactly the bytes
that prove the fault and nothing after them, so no unread input can turn the
server's close into a reset that destroys its error frame."""

from __future__ import annotations

import asyncio
import shlex

from rexec.protocol import AuthOk, Ping, Pong, Run, encode_frame

from ..case import REACTION_WAIT, Context, Observation
from ._frames import LENGTH, fatal_case, has_pong, pong_or_fatal, wire_of
from ._registry import case
from ._util import run_one

AREA = "framing"

# --- the length prefix ---------------------------------------------------------

for _name, _value in (("zero", 0), ("minus-one", -1), ("min-int", -(2**31))):
    fatal_case(
        AREA,
        f"frame.length.negative/{LENGTH.pack(_value).hex()}",
        f"After auth, send only the 4 bytes of a header length of {_value} ({_name}): "
        "fatal frame.bad_length at once, without waiting for more bytes.",
        LENGTH.pack(_value),
        {"fatal:frame.bad_length"},
    )
fatal_case(
    AREA,
    "frame.length.negative/pre-auth",
    "Right after hello, send only ff ff ff ff (-1): fatal frame.bad_length.",
    LENGTH.pack(-1),
    {"fatal:frame.bad_length"},
    authed=False,
)


async def _over_limit(ctx: Context, authed: bool) -> Observation:
    client, wire = await wire_of(ctx, authed)
    await wire.send_raw(LENGTH.pack(client.limits.max_header + 1))
    return Observation(await ctx.await_fatal(wire))


@case("frame.length.limit/over", {"fatal:frame.too_large"})
async def over_limit(ctx: Context) -> Observation:
    """After auth, send only a length of the announced max_header + 1: fatal frame.too_large at
    once (the header itself is never sent)."""
    return await _over_limit(ctx, True)


@case("frame.length.limit/pre-auth", {"fatal:frame.too_large"})
async def over_limit_pre_auth(ctx: Context) -> Observation:
    """Right after hello, send only a length of max_header + 1 (above both the pre- and
    post-authentication limits): fatal frame.too_large."""
    return await _over_limit(ctx, False)


@case("frame.length.limit/equal", {"pong"})
async def equal_limit(ctx: Context) -> Observation:
    """After auth, send a ping whose header is padded with JSON whitespace to exactly the
    announced max_header bytes: it is accepted and answered with pong."""
    client = await ctx.client()
    size = client.limits.max_header
    start = b'{"type":"ping","seq":4242'
    if size > 16 * 1024 * 1024:
        return Observation("unsupported", "max_header above 16 MiB")
    return await pong_or_fatal(ctx, client, start + b" " * (size - len(start) - 1) + b"}", 4242)


fatal_case(
    AREA,
    "frame.length.limit/http",
    "Right after hello, send 'GET / HTTP/1.1' with headers (a huge length as '<i'): "
    "fatal frame.too_large; a bare close is tolerated as the bytes after the 4th may be unread.",
    b"GET / HTTP/1.1\r\nHost: rexec\r\n\r\n",
    {"fatal:frame.too_large", "closed"},
    authed=False,
)
fatal_case(
    AREA,
    "frame.length.limit/tls-client-hello",
    "Right after hello, send the start of a TLS ClientHello (16 03 01 02 00 01 …): "
    "fatal frame.too_large (or a bare close).",
    bytes.fromhex("160301020001000200030300") + bytes(32),
    {"fatal:frame.too_large", "closed"},
    authed=False,
)

# --- bodies ------------------------------------------------------------------------

ALL_BYTES = bytes(range(256))


@case("frame.body.binary/stdin-roundtrip", {"verbatim"})
async def binary_roundtrip(ctx: Context) -> Observation:
    """Send every byte value 0-255 (x4) through cat's stdin: stdout returns them verbatim."""
    _, record = await run_one(ctx, argv=["cat"], stdin=True, data=ALL_BYTES * 4)
    return Observation(
        "verbatim" if bytes(record.stdout) == ALL_BYTES * 4 else "altered", data=record.summary()
    )


@case("frame.body.binary/output", {"verbatim"})
async def binary_output(ctx: Context) -> Observation:
    """printf every byte value 0-255 with octal escapes: stdout carries them verbatim."""
    script = "printf '" + "".join(f"\\{b:03o}" for b in range(256)) + "'"
    _, record = await run_one(ctx, shell=script)
    return Observation(
        "verbatim" if bytes(record.stdout) == ALL_BYTES else "altered", data=record.summary()
    )


# --- chopping ----------------------------------------------------------------------


def _chunks(data: bytes, sizes: list[int]) -> list[bytes]:
    out, at, i = [], 0, 0
    while at < len(data):
        size = sizes[i % len(sizes)]
        out.append(data[at : at + size])
        at += size
        i += 1
    return out


async def _chopped_session(ctx: Context, sizes: list[int]) -> Observation:
    """Handshake and a command with every client byte stream cut into
    ``sizes``; each piece is a separate write (TCP_NODELAY)."""
    client = await ctx.hello_only()
    wire = client.wire
    for piece in _chunks(encode_frame(client.auth_message()), sizes):
        await wire.send_raw(piece)
        await asyncio.sleep(0.001)
    if not isinstance(await wire.next_frame(ctx.t(REACTION_WAIT)), AuthOk):
        return Observation("auth-failed")
    run = client.run_message(argv=["printf", "chopped-ok"])
    stream = encode_frame(run) + encode_frame(Ping(seq=77))
    for piece in _chunks(stream, sizes):
        await wire.send_raw(piece)
        await asyncio.sleep(0.001)
    done = await client.pump(
        ctx.t(REACTION_WAIT),
        until=lambda: client.records[run.id].terminal and has_pong(client, 77),
    )
    record = client.records[run.id]
    if done and bytes(record.stdout) == b"chopped-ok":
        return Observation("decoded")
    return Observation(
        await ctx.await_fatal(wire) if not done else "wrong-output", data=record.summary()
    )


@case("frame.stream.chunking/every-byte", {"decoded"}, timeout=10.0)
async def every_byte(ctx: Context) -> Observation:
    """Send auth, then a run and a ping, one byte per write: all decoded (auth_ok, output,
    pong)."""
    return await _chopped_session(ctx, [1])


@case("frame.stream.chunking/odd-sizes", {"decoded"})
async def odd_sizes(ctx: Context) -> Observation:
    """As every-byte, in writes of 3, 7, 2, 11, 5 and 13 bytes, crossing every boundary."""
    return await _chopped_session(ctx, [3, 7, 2, 11, 5, 13])


@case("frame.stream.chunking/split-length", {"decoded"})
async def split_length(ctx: Context) -> Observation:
    """As every-byte, in writes of 2 bytes then the rest of each 4+N: the length prefix is
    split."""
    return await _chopped_session(ctx, [2, 5])


@case("frame.stream.chunking/many-in-one-write", {"decoded"})
async def many_in_one(ctx: Context) -> Observation:
    """After auth, 200 pings and a run in a single write: 200 pongs in seq order and the output."""
    client, wire = await wire_of(ctx, True)
    run = client.run_message(argv=["printf", "many-ok"])
    await wire.send_raw(b"".join(encode_frame(Ping(seq=i)) for i in range(200)) + encode_frame(run))
    done = await client.pump(
        ctx.t(REACTION_WAIT + 2),
        until=lambda: client.records[run.id].terminal and has_pong(client, 199),
    )
    seqs = [m.seq for m in client.other if isinstance(m, Pong)]
    if done and seqs == list(range(200)) and bytes(client.records[run.id].stdout) == b"many-ok":
        return Observation("decoded")
    return Observation("lost-or-reordered", f"pongs {len(seqs)}, done {done}")


# --- truncation ----------------------------------------------------------------------


@case("frame.eof.truncated/not-a-message", {"not-run"})
async def truncated_not_message(ctx: Context) -> Observation:
    """After auth, send the first half of a run (touch MARKER), then end the stream: the run
    must not happen."""
    marker = ctx.temp_path("truncated")
    _, wire = await wire_of(ctx, True)
    frame = encode_frame(Run(id=1, shell=f"touch {shlex.quote(marker)}"))
    await wire.send_raw(frame[: len(frame) - 3])
    await wire.shutdown_write()
    await wire.wait_closed(ctx.t(1.0))
    return Observation("ran" if await ctx.path_exists(marker) else "not-run")


@case("frame.eof.truncated/departure", {"departed"}, timeout=12.0)
async def truncated_departure(ctx: Context) -> Observation:
    """After auth, start sleep 60, then send half a ping and end the stream: the server treats
    it as a disconnect, so the command is killed (not a half-close that lets it run)."""
    client, wire = await wire_of(ctx, True)
    command_id = await client.run(argv=["sleep", "60"])
    await client.pump(
        ctx.t(REACTION_WAIT), until=lambda: client.records[command_id].pid is not None
    )
    pid = client.records[command_id].pid
    if pid is None:
        return Observation("no-started", data=client.records[command_id].summary())
    await wire.send_raw(encode_frame(Ping(seq=1))[:6])
    await wire.shutdown_write()
    gone = await ctx.pid_gone(pid, ctx.options.kill_grace + 3)
    return Observation("departed" if gone else "still-running")
