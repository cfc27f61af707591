"""What the frame-level case modules share: literal frames and the
send-bad-bytes-expect-a-fatal-error case."""

from __future__ import annotations

import struct

from rexec.protocol import Pong

from ..case import REACTION_WAIT, Context, Observation
from ..client import Client
from ..wire import Wire
from ._registry import register
from ._util import fatal_seen

LENGTH = struct.Struct("<i")


def raw_frame(header: bytes, body: bytes = b"") -> bytes:
    """A frame with a literal header (not validated): the suite's way to send
    headers no model would produce."""
    return LENGTH.pack(len(header)) + header + body


async def wire_of(ctx: Context, authed: bool) -> tuple[Client, Wire]:
    client = await (ctx.client() if authed else ctx.hello_only())
    return client, client.wire


def fatal_case(
    area: str,
    case_id: str,
    description: str,
    data: bytes,
    expected: set[str],
    *,
    authed: bool = True,
    canary: bytes | None = None,
) -> None:
    """Register a case of ``area``: send ``data`` (after auth, or right after hello) and
    expect one of ``expected``."""

    async def function(ctx: Context) -> Observation:
        _, wire = await wire_of(ctx, authed)
        await wire.send_raw(data)
        return Observation(await ctx.await_fatal(wire, canary=canary))

    register(case_id, description, expected, function, area=area)


def has_pong(client: Client, seq: int) -> bool:
    return any(isinstance(m, Pong) and m.seq == seq for m in client.other)


async def pong_or_fatal(ctx: Context, client: Client, header: bytes, seq: int) -> Observation:
    """Send a ping with the literal ``header``: ``pong`` when the server
    answers pong ``seq``, else its fatal error (or what it did instead)."""
    await client.wire.send_raw(raw_frame(header))
    if await client.pump(ctx.t(REACTION_WAIT), until=lambda: has_pong(client, seq)):
        return Observation("pong")
    # The pump may have read the server's fatal error already: report its code.
    fatal = fatal_seen(client)
    if fatal not in (None, "closed"):
        return Observation(f"fatal:{fatal}")
    return Observation(await ctx.await_fatal(client.wire))
