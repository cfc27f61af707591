"""What the frame-level case modules share: literal frames and the
send-bad-bytes-expect-a-fatal-error case."""

from __future__ import annotations

import struct

from rexec.protocol import Pong

from ..case import Context, Observation
from ..client import Client
from ..wire import Wire
from ._registry import register

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
