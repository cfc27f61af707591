"""Handshake and authentication: hello first, versions, order, macs, nonces,
the auth deadline, and that nothing runs before authentication."""

from __future__ import annotations

import shlex

from rexec.protocol import AuthOk, Hello, Ping, Run, server_proof

from ..case import REACTION_WAIT, Context, Observation
from ..client import Client
from ..wire import Closed
from ._registry import case


@case(
    "handshake.hello.first",
    "Connect and send nothing: the first frame must be a valid hello, within 2 s.",
    {"hello"},
)
async def hello_first(ctx: Context) -> Observation:
    wire = await ctx.connect()
    got = await wire.next_frame(ctx.t(REACTION_WAIT))
    if isinstance(got, Hello):
        return Observation("hello", data={"hello": got.model_dump(mode="json")})
    if got is None:
        return Observation("no-reaction")
    return Observation("closed" if isinstance(got, Closed) else f"answered:{got.type}")


@case(
    "frame.length.format",
    "The hello's 4-byte prefix, read as '<i', gives a sane length whose header decodes "
    "(a big-endian sender would announce a length in the gigabytes).",
    {"little-endian"},
)
async def length_format(ctx: Context) -> Observation:
    wire = await ctx.connect()
    got = await wire.next_frame(ctx.t(REACTION_WAIT))
    if isinstance(got, Hello):
        return Observation("little-endian")
    return Observation(f"no-hello:{getattr(got, 'type', got)}")


@case(
    "handshake.version/unsupported",
    "Answer hello with auth version 99 (not offered, otherwise valid): fatal version.unsupported.",
    {"fatal:version.unsupported"},
)
async def version_mismatch(ctx: Context) -> Observation:
    client = await ctx.hello_only()
    await client.wire.send(client.auth_message(version=99))
    return Observation(await ctx.await_fatal(client.wire))


async def _before_auth(ctx: Context, what: str) -> Observation:
    client = await ctx.hello_only()
    message = Run(id=1, shell="true") if what == "run" else Ping(seq=1)
    await client.wire.send(message)
    return Observation(await ctx.await_fatal(client.wire))


@case(
    "handshake.order/run-before-auth",
    "Send run instead of auth: fatal protocol.unexpected (and no command starts).",
    {"fatal:protocol.unexpected"},
)
async def run_before_auth(ctx: Context) -> Observation:
    return await _before_auth(ctx, "run")


@case(
    "handshake.order/ping-before-auth",
    "Send ping instead of auth: fatal protocol.unexpected, not a pong.",
    {"fatal:protocol.unexpected"},
)
async def ping_before_auth(ctx: Context) -> Observation:
    return await _before_auth(ctx, "ping")


async def _marker_check(ctx: Context, *, with_bad_auth: bool) -> Observation:
    marker = ctx.temp_path("before-auth")
    client = await ctx.hello_only()
    run = Run(id=1, shell=f"touch {shlex.quote(marker)}")
    if with_bad_auth:
        await client.wire.send(client.auth_message(key=bytes(32)), run)
    else:
        await client.wire.send(run)
    first = await ctx.await_fatal(client.wire)
    if await ctx.path_exists(marker):
        return Observation("ran-before-auth", f"the marker {marker} exists; reaction: {first}")
    return Observation("not-run", f"reaction: {first}")


@case(
    "auth.before.anything/pipelined-run",
    "Pipeline a run (touch MARKER) right after hello, without auth; then check from an "
    "authenticated connection that MARKER does not exist.",
    {"not-run"},
)
async def marker_without_auth(ctx: Context) -> Observation:
    return await _marker_check(ctx, with_bad_auth=False)


@case(
    "auth.before.anything/after-bad-auth",
    "Send an auth with a wrong mac and a run (touch MARKER) in one write; MARKER must not exist.",
    {"not-run"},
)
async def marker_after_bad_auth(ctx: Context) -> Observation:
    return await _marker_check(ctx, with_bad_auth=True)


@case(
    "auth.deadline",
    "Read hello and send nothing: within the auth deadline (--auth-deadline, default 10 s) plus "
    "2 s the server sends a fatal auth.timeout and closes.",
    {"fatal:auth.timeout"},
    timeout=15.0,
)
async def auth_deadline(ctx: Context) -> Observation:
    client = await ctx.hello_only()
    wait = ctx.options.auth_deadline + 2.0
    return Observation(await ctx.await_fatal(client.wire, wait=wait))


@case(
    "auth.mac.verify/right-key",
    "A correct auth gets auth_ok.",
    {"auth_ok"},
)
async def right_key(ctx: Context) -> Observation:
    client = await ctx.hello_only()
    await client.wire.send(client.auth_message())
    got = await client.wire.next_frame(ctx.t(REACTION_WAIT))
    if isinstance(got, AuthOk):
        return Observation("auth_ok")
    return Observation(await ctx.await_fatal(client.wire) if got is None else repr(got))


@case(
    "auth.mac.verify/wrong-key",
    "An auth made with another key gets a fatal auth.failed, then close.",
    {"fatal:auth.failed"},
)
async def wrong_key(ctx: Context) -> Observation:
    client = await ctx.hello_only()
    await client.wire.send(client.auth_message(key=b"\x55" * 32))
    return Observation(await ctx.await_fatal(client.wire))


@case(
    "auth.mutual/server-proof",
    "The auth_ok mac is the server proof of protocol.md 3.1 for this key and these nonces.",
    {"valid-proof"},
)
async def server_mac(ctx: Context) -> Observation:
    client = await ctx.hello_only()
    auth = client.auth_message()
    await client.wire.send(auth)
    got = await client.wire.next_frame(ctx.t(REACTION_WAIT))
    if not isinstance(got, AuthOk):
        return Observation(f"no-auth_ok:{getattr(got, 'type', got)}")
    assert client.hello is not None
    expected = server_proof(ctx.options.key, client.hello.nonce, auth.nonce, client.hello.server)
    return Observation("valid-proof" if got.mac == expected else "wrong-proof")


@case(
    "auth.nonce.fresh/replay",
    "Capture a successful auth frame, then send the same bytes on a new connection: "
    "fatal auth.failed (the new server nonce makes the old mac wrong).",
    {"fatal:auth.failed"},
)
async def replay(ctx: Context) -> Observation:
    first = await ctx.hello_only()
    captured = first.auth_message()
    await first.wire.send(captured)
    if not isinstance(await first.wire.next_frame(ctx.t(REACTION_WAIT)), AuthOk):
        return Observation("setup:first-auth-refused")
    second = await ctx.hello_only()
    await second.wire.send(captured)
    return Observation(await ctx.await_fatal(second.wire))


@case(
    "auth.nonce.fresh/distinct",
    "Three connections get three different hello nonces.",
    {"distinct"},
)
async def distinct_nonces(ctx: Context) -> Observation:
    nonces = set()
    for _ in range(3):
        client = await ctx.hello_only()
        assert client.hello is not None
        nonces.add(client.hello.nonce)
    return Observation("distinct" if len(nonces) == 3 else "repeated")


@case(
    "auth.key.secret",
    "Over a handshake and a command, no received byte sequence contains the key, raw or as hex.",
    {"not-leaked"},
)
async def key_secret(ctx: Context) -> Observation:
    client: Client = await ctx.client()
    command_id = await client.run(argv=["true"])
    await client.wait_terminal(command_id, ctx.t(REACTION_WAIT))
    received = bytes(client.wire.raw_received)
    key = ctx.options.key
    for form in (key, key.hex().encode(), key.hex().upper().encode()):
        if form in received:
            return Observation("leaked")
    return Observation("not-leaked")
