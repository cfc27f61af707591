"""Frame headers: JSON, object, type, schema, integer ranges, data_size and the
body limit. Each bad-header case sends exactly the bytes that prove the fault
and nothing after them (see framing.py); one case reads what the server itself
sends, since the schema binds both directions."""

from __future__ import annotations

from rexec.protocol import Ping, Pong, encode_frame

from ..case import REACTION_WAIT, Context, Observation
from ._frames import LENGTH, fatal_case, pong_or_fatal, raw_frame, wire_of
from ._registry import case
from ._util import QUICK, run_one

AREA = "headers"

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
    fatal_case(
        AREA,
        _id,
        f"After auth, send a frame whose header is {_what}.",
        raw_frame(_header, _body),
        _expected,
    )

fatal_case(
    AREA,
    "frame.header.json/after-valid-frame",
    "After auth, send a valid ping and garbage (length 5, 'xxxxx') in one write: a pong, then "
    "fatal header.bad_json.",
    encode_frame(Ping(seq=9)) + raw_frame(b"xxxxx"),
    {"fatal:header.bad_json"},
)


@case("frame.header.schema/duplicate-member", {"pong:2"})
async def duplicate_member(ctx: Context) -> Observation:
    """After auth, send {"type":"ping","seq":1,"seq":2}: the last member wins, so pong seq 2."""
    client, wire = await wire_of(ctx, True)
    await wire.send_raw(raw_frame(b'{"type":"ping","seq":1,"seq":2}'))
    await client.pump(ctx.t(REACTION_WAIT), until=lambda: bool(client.other))
    pongs = [m.seq for m in client.other if isinstance(m, Pong)]
    return Observation(f"pong:{pongs[0]}" if pongs else "no-pong")


@case("frame.body.size/absent-is-zero", {"pong"})
async def absent_data_size(ctx: Context) -> Observation:
    """After auth, send {"type":"ping","seq":3} with no data_size: answered by pong 3."""
    return await pong_or_fatal(ctx, await ctx.client(), b'{"type":"ping","seq":3}', 3)


@case("frame.body.limit", {"fatal:frame.body_too_large"})
async def body_limit(ctx: Context) -> Observation:
    """After auth, run cat with stdin, then send a stdin header with data_size max_body + 1 and
    no body: fatal frame.body_too_large as soon as the header is in."""
    client, wire = await wire_of(ctx, True)
    run = client.run_message(argv=["cat"], stdin=True)
    header = b'{"type":"stdin","id":%d,"data_size":%d}' % (run.id, client.limits.max_body + 1)
    await wire.send_raw(encode_frame(run) + LENGTH.pack(len(header)) + header)
    return Observation(await ctx.await_fatal(wire))


@case("frame.header.schema/server-frames", {"well-formed"})
async def server_frames(ctx: Context) -> Observation:
    """After auth, ping, run a command with output on both streams and a refused one (no such
    program): every frame the server sends (pong, started, stdout, stderr, exit, error) matches
    its schema exactly and repeats no member name; the fault is named with frame type and
    member."""
    client, _ = await wire_of(ctx, True)
    if not await client.ping(77, ctx.t(REACTION_WAIT)):
        return Observation("no-pong")
    await run_one(ctx, client=client, shell="echo out; echo err >&2")
    await client.run(argv=["/nonexistent/rexec-conformance-no-such-program"])
    await client.wait_terminal(list(client.records), ctx.t(QUICK))
    kinds = sorted({kind for record in client.records.values() for kind in record.kinds})
    return Observation("well-formed", f"decoded pong and {', '.join(kinds)}")
