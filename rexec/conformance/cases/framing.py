"""Frames: the length prefix, the JSON header, bodies, TCP chopping, and a
stream that ends inside a frame. Each bad-frame case sends exactly the bytes
that prove the fault and nothing after them, so no unread input can turn the
server's close into a reset that destroys its error frame."""

from __future__ import annotations

import asyncio
import shlex
import struct

from rexec.protocol import AuthOk, Ping, Pong, Run, encode_frame

from ..case import REACTION_WAIT, Context, Observation
from ..client import Client
from ..wire import Wire
from ._registry import case, register
from ._util import fatal_seen, run_one

LENGTH = struct.Struct("<i")


def raw_frame(header: bytes, body: bytes = b"") -> bytes:
    """A frame with a literal header (not validated): the suite's way to send
    headers no model would produce."""
    return LENGTH.pack(len(header)) + header + body


async def _wire(ctx: Context, authed: bool) -> tuple[Client, Wire]:
    client = await (ctx.client() if authed else ctx.hello_only())
    return client, client.wire


def _fatal_case(
    case_id: str,
    description: str,
    data: bytes,
    expected: set[str],
    *,
    authed: bool = True,
    canary: bytes | None = None,
) -> None:
    """Register a case: send ``data`` (after auth, or right after hello) and
    expect one of ``expected``."""

    async def function(ctx: Context) -> Observation:
        _, wire = await _wire(ctx, authed)
        await wire.send_raw(data)
        return Observation(await ctx.await_fatal(wire, canary=canary))

    register(case_id, description, expected, function)


# --- the length prefix ---------------------------------------------------------

for _name, _value in (("zero", 0), ("minus-one", -1), ("min-int", -(2**31))):
    _fatal_case(
        f"frame.length.negative/{LENGTH.pack(_value).hex()}",
        f"After auth, send only the 4 bytes of a header length of {_value} ({_name}): "
        "fatal frame.bad_length at once, without waiting for more bytes.",
        LENGTH.pack(_value),
        {"fatal:frame.bad_length"},
    )
_fatal_case(
    "frame.length.negative/pre-auth",
    "Right after hello, send only ff ff ff ff (-1): fatal frame.bad_length.",
    LENGTH.pack(-1),
    {"fatal:frame.bad_length"},
    authed=False,
)


async def _over_limit(ctx: Context, authed: bool) -> Observation:
    client, wire = await _wire(ctx, authed)
    assert client.hello is not None
    await wire.send_raw(LENGTH.pack(client.hello.limits.max_header + 1))
    return Observation(await ctx.await_fatal(wire))


@case(
    "frame.length.limit/over",
    "After auth, send only a length of the announced max_header + 1: fatal frame.too_large "
    "at once (the header itself is never sent).",
    {"fatal:frame.too_large"},
)
async def over_limit(ctx: Context) -> Observation:
    return await _over_limit(ctx, True)


@case(
    "frame.length.limit/pre-auth",
    "Right after hello, send only a length of max_header + 1 (above both the pre- and "
    "post-authentication limits): fatal frame.too_large.",
    {"fatal:frame.too_large"},
)
async def over_limit_pre_auth(ctx: Context) -> Observation:
    return await _over_limit(ctx, False)


@case(
    "frame.length.limit/equal",
    "After auth, send a ping whose header is padded with JSON whitespace to exactly the "
    "announced max_header bytes: it is accepted and answered with pong.",
    {"pong"},
)
async def equal_limit(ctx: Context) -> Observation:
    client, wire = await _wire(ctx, True)
    assert client.hello is not None
    size = client.hello.limits.max_header
    start = b'{"type":"ping","seq":4242'
    if size > 16 * 1024 * 1024:
        return Observation("unsupported", "max_header above 16 MiB")
    header = start + b" " * (size - len(start) - 1) + b"}"
    await wire.send_raw(raw_frame(header))
    if await client.pump(ctx.t(REACTION_WAIT), until=lambda: _has_pong(client, 4242)):
        return Observation("pong")
    # The pump may have read the server's fatal error already: report its code.
    fatal = fatal_seen(client)
    if fatal not in (None, "closed"):
        return Observation(f"fatal:{fatal}")
    return Observation(await ctx.await_fatal(wire))


def _has_pong(client: Client, seq: int) -> bool:
    return any(isinstance(m, Pong) and m.seq == seq for m in client.other)


_fatal_case(
    "frame.length.limit/http",
    "Right after hello, send 'GET / HTTP/1.1' with headers (a huge length as '<i'): "
    "fatal frame.too_large; a bare close is tolerated as the bytes after the 4th may be unread.",
    b"GET / HTTP/1.1\r\nHost: rexec\r\n\r\n",
    {"fatal:frame.too_large", "closed"},
    authed=False,
)
_fatal_case(
    "frame.length.limit/tls-client-hello",
    "Right after hello, send the start of a TLS ClientHello (16 03 01 02 00 01 …): "
    "fatal frame.too_large (or a bare close).",
    bytes.fromhex("160301020001000200030300") + bytes(32),
    {"fatal:frame.too_large", "closed"},
    authed=False,
)

# --- the header ------------------------------------------------------------------

_HEADER_CASES: tuple[tuple[str, str, bytes, set[str]], ...] = (
    (
        "frame.header.json/not-json",
        "a header that is not JSON",
        b"{type: ping}",
        {"fatal:header.bad_json"},
    ),
    (
        "frame.header.json/truncated-json",
        "a header that is cut-off JSON",
        b'{"type":"ping",',
        {"fatal:header.bad_json"},
    ),
    (
        "frame.header.json/bad-utf8",
        "valid JSON syntax with an invalid UTF-8 byte in a string",
        b'{"type":"error","code":"x","message":"\xff\xfe","fatal":false}',
        {"fatal:header.bad_json"},
    ),
    ("frame.header.object/array", "the JSON array [1]", b"[1]", {"fatal:header.not_object"}),
    (
        "frame.header.object/string",
        'the JSON string "ping"',
        b'"ping"',
        {"fatal:header.not_object"},
    ),
    ("frame.header.object/number", "the JSON number 7", b"7", {"fatal:header.not_object"}),
    ("frame.header.object/null", "the JSON null", b"null", {"fatal:header.not_object"}),
    (
        "frame.header.type/missing",
        "an object without type",
        b'{"seq":1}',
        {"fatal:header.unknown_type"},
    ),
    (
        "frame.header.type/unknown",
        "an object of type 'teleport'",
        b'{"type":"teleport"}',
        {"fatal:header.unknown_type"},
    ),
    (
        "frame.header.type/non-string",
        "an object whose type is the number 5",
        b'{"type":5}',
        {"fatal:header.unknown_type"},
    ),
    (
        "frame.header.schema/missing-member",
        "a ping without seq",
        b'{"type":"ping"}',
        {"fatal:header.invalid"},
    ),
    (
        "frame.header.schema/unknown-member",
        "a ping with an extra member",
        b'{"type":"ping","seq":1,"colour":"red"}',
        {"fatal:header.invalid"},
    ),
    (
        "frame.header.schema/string-for-int",
        'a ping with seq "1"',
        b'{"type":"ping","seq":"1"}',
        {"fatal:header.invalid"},
    ),
    (
        "frame.header.schema/float-for-int",
        "a ping with seq 1.0",
        b'{"type":"ping","seq":1.0}',
        {"fatal:header.invalid"},
    ),
    (
        "frame.header.schema/negative-int",
        "a ping with seq -1",
        b'{"type":"ping","seq":-1}',
        {"fatal:header.invalid"},
    ),
    (
        "frame.header.schema/int-for-bool",
        "a run with stdin 1",
        b'{"type":"run","id":1,"argv":["true"],"stdin":1}',
        {"fatal:header.invalid"},
    ),
    (
        "frame.header.schema/nul",
        "a run whose argv holds U+0000",
        b'{"type":"run","id":1,"argv":["printf","a\\u0000b"]}',
        {"fatal:header.invalid"},
    ),
    # 1e999 is valid RFC 8259 syntax that overflows a double: protocol.md
    # names it, "numbers finite (a number such as 1e999 that overflows is not)".
    (
        "frame.header.schema/non-finite",
        "a run with timeout 1e999",
        b'{"type":"run","id":1,"argv":["true"],"timeout":1e999}',
        {"fatal:header.invalid"},
    ),
    (
        "frame.header.schema/argv-and-shell",
        "a run with both argv and shell",
        b'{"type":"run","id":1,"argv":["true"],"shell":"true"}',
        {"fatal:header.invalid"},
    ),
    (
        "frame.body.size/on-ping",
        "a ping with data_size 3 and a 3-byte body",
        b'{"type":"ping","seq":1,"data_size":3}',
        {"fatal:header.invalid"},
    ),
    # NaN and Infinity are not JSON: bad JSON, even where a number may stand.
    (
        "frame.header.json/nan",
        "a run with timeout NaN",
        b'{"type":"run","id":1,"argv":["true"],"timeout":NaN}',
        {"fatal:header.bad_json"},
    ),
    (
        "frame.header.json/infinity-in-unknown-member",
        "a ping with an extra member -Infinity",
        b'{"type":"ping","seq":1,"x":-Infinity}',
        {"fatal:header.bad_json"},
    ),
    (
        "message.integers/seq-2-pow-53",
        "a ping with seq 2**53 (one above the bound)",
        b'{"type":"ping","seq":9007199254740992}',
        {"fatal:header.invalid"},
    ),
    # What version 1 echoed back: no integer of the protocol reaches 2**64.
    (
        "message.integers/seq-2-pow-64",
        "a ping with seq 2**64",
        b'{"type":"ping","seq":18446744073709551616}',
        {"fatal:header.invalid"},
    ),
    (
        "message.extensible/closed-run",
        'a run with a member no version defines ("sandbox": true): never half-understood',
        b'{"type":"run","id":1,"argv":["true"],"sandbox":true}',
        {"fatal:header.invalid"},
    ),
)

for _id, _what, _header, _expected in _HEADER_CASES:
    _body = b"abc" if _id == "frame.body.size/on-ping" else b""
    _fatal_case(
        _id,
        f"After auth, send a frame whose header is {_what}.",
        raw_frame(_header, _body),
        _expected,
    )

_fatal_case(
    "frame.header.json/after-valid-frame",
    "After auth, send a valid ping and garbage (length 5, 'xxxxx') in one write: a pong, then "
    "fatal header.bad_json.",
    encode_frame(Ping(seq=9)) + raw_frame(b"xxxxx"),
    {"fatal:header.bad_json"},
)


@case(
    "frame.header.schema/duplicate-member",
    'After auth, send {"type":"ping","seq":1,"seq":2}: the last member wins, so pong seq 2.',
    {"pong:2"},
)
async def duplicate_member(ctx: Context) -> Observation:
    client, wire = await _wire(ctx, True)
    await wire.send_raw(raw_frame(b'{"type":"ping","seq":1,"seq":2}'))
    await client.pump(ctx.t(REACTION_WAIT), until=lambda: bool(client.other))
    pongs = [m.seq for m in client.other if isinstance(m, Pong)]
    return Observation(f"pong:{pongs[0]}" if pongs else "no-pong")


@case(
    "frame.body.size/absent-is-zero",
    'After auth, send {"type":"ping","seq":3} with no data_size: answered by pong 3.',
    {"pong"},
)
async def absent_data_size(ctx: Context) -> Observation:
    client, wire = await _wire(ctx, True)
    await wire.send_raw(raw_frame(b'{"type":"ping","seq":3}'))
    ok = await client.pump(ctx.t(REACTION_WAIT), until=lambda: _has_pong(client, 3))
    return Observation("pong" if ok else await ctx.await_fatal(wire))


@case(
    "frame.body.limit",
    "After auth, run cat with stdin, then send a stdin header with data_size max_body + 1 and "
    "no body: fatal frame.body_too_large as soon as the header is in.",
    {"fatal:frame.body_too_large"},
)
async def body_limit(ctx: Context) -> Observation:
    client, wire = await _wire(ctx, True)
    assert client.hello is not None
    run = client.run_message(argv=["cat"], stdin=True)
    header = b'{"type":"stdin","id":%d,"data_size":%d}' % (run.id, client.hello.limits.max_body + 1)
    await wire.send_raw(encode_frame(run) + LENGTH.pack(len(header)) + header)
    return Observation(await ctx.await_fatal(wire))


# --- bodies ------------------------------------------------------------------------

ALL_BYTES = bytes(range(256))


@case(
    "frame.body.binary/stdin-roundtrip",
    "Send every byte value 0-255 (x4) through cat's stdin: stdout returns them verbatim.",
    {"verbatim"},
)
async def binary_roundtrip(ctx: Context) -> Observation:
    _, record = await run_one(ctx, argv=["cat"], stdin=True, data=ALL_BYTES * 4)
    return Observation(
        "verbatim" if bytes(record.stdout) == ALL_BYTES * 4 else "altered", data=record.summary()
    )


@case(
    "frame.body.binary/output",
    "printf every byte value 0-255 with octal escapes: stdout carries them verbatim.",
    {"verbatim"},
)
async def binary_output(ctx: Context) -> Observation:
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
        until=lambda: client.records[run.id].terminal and _has_pong(client, 77),
    )
    record = client.records[run.id]
    if done and bytes(record.stdout) == b"chopped-ok":
        return Observation("decoded")
    return Observation(
        await ctx.await_fatal(wire) if not done else "wrong-output", data=record.summary()
    )


@case(
    "frame.stream.chunking/every-byte",
    "Send auth, then a run and a ping, one byte per write: all decoded (auth_ok, output, pong).",
    {"decoded"},
    timeout=10.0,
)
async def every_byte(ctx: Context) -> Observation:
    return await _chopped_session(ctx, [1])


@case(
    "frame.stream.chunking/odd-sizes",
    "As every-byte, in writes of 3, 7, 2, 11, 5 and 13 bytes, crossing every boundary.",
    {"decoded"},
)
async def odd_sizes(ctx: Context) -> Observation:
    return await _chopped_session(ctx, [3, 7, 2, 11, 5, 13])


@case(
    "frame.stream.chunking/split-length",
    "As every-byte, in writes of 2 bytes then the rest of each 4+N: the length prefix is split.",
    {"decoded"},
)
async def split_length(ctx: Context) -> Observation:
    return await _chopped_session(ctx, [2, 5])


@case(
    "frame.stream.chunking/many-in-one-write",
    "After auth, 200 pings and a run in a single write: 200 pongs in seq order and the output.",
    {"decoded"},
)
async def many_in_one(ctx: Context) -> Observation:
    client, wire = await _wire(ctx, True)
    run = client.run_message(argv=["printf", "many-ok"])
    await wire.send_raw(b"".join(encode_frame(Ping(seq=i)) for i in range(200)) + encode_frame(run))
    done = await client.pump(
        ctx.t(REACTION_WAIT + 2),
        until=lambda: client.records[run.id].terminal and _has_pong(client, 199),
    )
    seqs = [m.seq for m in client.other if isinstance(m, Pong)]
    if done and seqs == list(range(200)) and bytes(client.records[run.id].stdout) == b"many-ok":
        return Observation("decoded")
    return Observation("lost-or-reordered", f"pongs {len(seqs)}, done {done}")


# --- truncation ----------------------------------------------------------------------


@case(
    "frame.eof.truncated/not-a-message",
    "After auth, send the first half of a run (touch MARKER), then end the stream: the run must "
    "not happen.",
    {"not-run"},
)
async def truncated_not_message(ctx: Context) -> Observation:
    marker = ctx.temp_path("truncated")
    _, wire = await _wire(ctx, True)
    frame = encode_frame(Run(id=1, shell=f"touch {shlex.quote(marker)}"))
    await wire.send_raw(frame[: len(frame) - 3])
    await wire.shutdown_write()
    await wire.wait_closed(ctx.t(1.0))
    return Observation("ran" if await ctx.path_exists(marker) else "not-run")


@case(
    "frame.eof.truncated/departure",
    "After auth, start sleep 60, then send half a ping and end the stream: the server treats it "
    "as a disconnect, so the command is killed (not a half-close that lets it run).",
    {"departed"},
    timeout=12.0,
)
async def truncated_departure(ctx: Context) -> Observation:
    client, wire = await _wire(ctx, True)
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
