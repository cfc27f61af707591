"""Handshake and authentication: hello first, versions, features, order, macs
over the transcript, nonces, the auth deadline, and that nothing runs before
authentication."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import shlex
import ssl
import struct
from typing import Any

from rexec.protocol import AuthOk, Hello, Ping, Run, encode_frame, endpoint_binding, macs_match

from ..case import REACTION_WAIT, Context, Observation
from ..client import Client, Unsupported
from ..wire import Closed, Wire
from ._registry import case
from ._util import fatal_after


@case("handshake.hello.first", {"hello"})
async def hello_first(ctx: Context) -> Observation:
    """Connect and send nothing: the first frame must be a valid hello, within 2 s."""
    wire = await ctx.connect()
    got = await wire.next_frame(ctx.t(REACTION_WAIT))
    if isinstance(got, Hello):
        return Observation("hello", data={"hello": got.model_dump(mode="json")})
    if got is None:
        return Observation("no-reaction")
    return Observation("closed" if isinstance(got, Closed) else f"answered:{got.type}")


@case("frame.length.format", {"little-endian"})
async def length_format(ctx: Context) -> Observation:
    """The hello's 4-byte prefix, read as '<i', gives a sane length whose header decodes (a
    big-endian sender would announce a length in the gigabytes)."""
    wire = await ctx.connect()
    got = await wire.next_frame(ctx.t(REACTION_WAIT))
    if isinstance(got, Hello):
        return Observation("little-endian")
    return Observation(f"no-hello:{getattr(got, 'type', got)}")


async def _wrong_auth(ctx: Context, **wrong: Any) -> Observation:
    """Answer hello with an auth made wrong as ``wrong`` says (arguments of
    ``Client.auth_message``): the server's reaction."""
    client = await ctx.hello_only()
    return await fatal_after(ctx, client, client.auth_message(**wrong))


@case("handshake.version/unsupported", {"fatal:version.unsupported"})
async def version_mismatch(ctx: Context) -> Observation:
    """Answer hello with auth version 99 (not offered, otherwise valid): fatal
    version.unsupported."""
    return await _wrong_auth(ctx, version=99)


async def _before_auth(ctx: Context, what: str) -> Observation:
    client = await ctx.hello_only()
    message = Run(id=1, shell="true") if what == "run" else Ping(seq=1)
    return await fatal_after(ctx, client, message)


@case("handshake.order/run-before-auth", {"fatal:protocol.unexpected"})
async def run_before_auth(ctx: Context) -> Observation:
    """Send run instead of auth: fatal protocol.unexpected (and no command starts)."""
    return await _before_auth(ctx, "run")


@case("handshake.order/ping-before-auth", {"fatal:protocol.unexpected"})
async def ping_before_auth(ctx: Context) -> Observation:
    """Send ping instead of auth: fatal protocol.unexpected, not a pong."""
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


@case("auth.before.anything/pipelined-run", {"not-run"})
async def marker_without_auth(ctx: Context) -> Observation:
    """Pipeline a run (touch MARKER) right after hello, without auth; then check from an
    authenticated connection that MARKER does not exist."""
    return await _marker_check(ctx, with_bad_auth=False)


@case("auth.before.anything/after-bad-auth", {"not-run"})
async def marker_after_bad_auth(ctx: Context) -> Observation:
    """Send an auth with a wrong mac and a run (touch MARKER) in one write; MARKER must not
    exist."""
    return await _marker_check(ctx, with_bad_auth=True)


@case("auth.deadline", {"fatal:auth.timeout"}, timeout=15.0)
async def auth_deadline(ctx: Context) -> Observation:
    """Read hello and send nothing: within the auth deadline (--auth-deadline, default 10 s)
    plus 2 s the server sends a fatal auth.timeout and closes."""
    client = await ctx.hello_only()
    wait = ctx.options.auth_deadline + 2.0
    return Observation(await ctx.await_fatal(client.wire, wait=wait))


@case("auth.mac.verify/right-key", {"auth_ok"})
async def right_key(ctx: Context) -> Observation:
    """A correct auth gets auth_ok."""
    client = await ctx.hello_only()
    await client.wire.send(client.auth_message())
    got = await client.wire.next_frame(ctx.t(REACTION_WAIT))
    if isinstance(got, AuthOk):
        return Observation("auth_ok")
    return Observation(await ctx.await_fatal(client.wire) if got is None else repr(got))


@case("auth.mac.verify/wrong-key", {"fatal:auth.failed"})
async def wrong_key(ctx: Context) -> Observation:
    """An auth made with another key gets a fatal auth.failed, then close."""
    return await _wrong_auth(ctx, key=b"\x55" * 32)


@case("auth.mutual/server-proof", {"valid-proof"})
async def server_mac(ctx: Context) -> Observation:
    """The auth_ok mac is the server mac of protocol.md 3.1 over this connection's transcript."""
    client = await ctx.hello_only()
    auth = client.auth_message()
    await client.wire.send(auth)
    got = await client.wire.next_frame(ctx.t(REACTION_WAIT))
    if not isinstance(got, AuthOk):
        return Observation(f"no-auth_ok:{getattr(got, 'type', got)}")
    return Observation(
        "valid-proof" if macs_match(client.server_mac(auth), got.mac) else "wrong-proof"
    )


@case("auth.transcript/altered-hello", {"fatal:auth.failed"})
async def altered_hello(ctx: Context) -> Observation:
    """Sign the auth over the hello a man in the middle would show (limits.max_body 1), not the
    one that travelled: fatal auth.failed."""
    client = await ctx.hello_only()
    assert client.hello is not None
    limits = client.hello.limits.model_copy(update={"max_body": 1})
    shown = encode_frame(client.hello.model_copy(update={"limits": limits}))
    return await fatal_after(ctx, client, client.auth_message(hello_frame=shown))


@case("auth.transcript/version-1-mac", {"fatal:auth.failed"})
async def version_1_mac(ctx: Context) -> Observation:
    """An auth whose mac is version 1's (HMAC over the nonces and the server name only), in a
    version 3 frame: fatal auth.failed."""
    client = await ctx.hello_only()
    assert client.hello is not None
    auth = client.auth_message()
    weak = version_1_client_mac(
        ctx.options.key, client.hello.nonce, auth.nonce, client.hello.server
    )
    return await fatal_after(ctx, client, auth.signed(weak))


def version_1_client_mac(key: bytes, server_nonce: str, client_nonce: str, server: str) -> bytes:
    """Protocol version 1's client mac, which version 3 refuses: HMAC-SHA256
    over the two nonces (hex) and the server's name only, nothing of the
    rest of the exchange."""
    data = (
        b"rexec-auth-v1 client\x00"
        + bytes.fromhex(server_nonce)
        + bytes.fromhex(client_nonce)
        + server.encode()
    )
    return hmac.new(key, data, hashlib.sha256).digest()


@case("auth.binding/other-binding", {"fatal:auth.failed"})
async def other_binding(ctx: Context) -> Observation:
    """Sign the auth with a binding of 32 bytes of 5a, which neither a TLS session exports nor a
    connection's two ends give: fatal auth.failed."""
    return await _wrong_auth(ctx, binding=b"\x5a" * 32)


@case("auth.binding/unbound", {"fatal:auth.failed"})
async def unbound(ctx: Context) -> Observation:
    """Sign the auth with an empty binding, as version 2 did without TLS (a relay's connection
    would pass such a mac): fatal auth.failed."""
    return await _wrong_auth(ctx, binding=b"")


@case("auth.binding/relayed-ends", {"fatal:auth.failed"})
async def relayed_ends(ctx: Context) -> Observation:
    """Without TLS, sign the auth over the two ends a relay's connection would have (the
    client's own, and the server's address with the next port): fatal auth.failed."""
    if ctx.target.tls is not None:
        raise Unsupported("the target is TLS (its binding crosses a relay)")
    client = await ctx.hello_only()
    writer = client.wire.writer
    host, port = writer.get_extra_info("peername")[:2]
    relay = (host, port % 65535 + 1)
    binding = endpoint_binding(writer.get_extra_info("sockname"), relay)
    return await fatal_after(ctx, client, client.auth_message(binding=binding))


@case("handshake.features/not-offered", {"fatal:feature.unsupported"})
async def feature_not_offered(ctx: Context) -> Observation:
    """Choose a feature hello did not offer (x-conformance-never) in an otherwise valid auth:
    fatal feature.unsupported."""
    client = await ctx.hello_only()
    assert client.hello is not None
    if "x-conformance-never" in client.hello.features:
        return Observation("offered", "the server offers the suite's made-up feature")
    return await fatal_after(ctx, client, client.auth_message(features=("x-conformance-never",)))


@case("handshake.version/version-1-auth", {"fatal:version.unsupported"})
async def version_1_auth(ctx: Context) -> Observation:
    """Answer hello as a version 1 client would (version 1, the mac as hex in the header, no
    body): fatal version.unsupported, not a schema error."""
    client = await ctx.hello_only()
    header = json.dumps(
        {"type": "auth", "data_size": 0, "version": 1, "nonce": "b" * 64, "mac": "e" * 64},
        separators=(",", ":"),
    ).encode()
    await client.wire.send_raw(struct.pack("<i", len(header)) + header)
    return Observation(await ctx.await_fatal(client.wire))


@case("tls.version/tls-1.2", {"refused", "closed"})
async def tls_1_2(ctx: Context) -> Observation:
    """Against a TLS target, offer TLS 1.2 at most: the TLS handshake fails (no hello arrives)."""
    if ctx.target.tls is None:
        raise Unsupported("the target is not TLS (--tls)")
    # Only the version is at stake: the server's certificate is not checked,
    # and a refusal for any other reason is reported as such.
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        wire = await Wire.open(
            dataclasses.replace(ctx.target, tls=old), ctx.log, 0, timeout=ctx.t(5.0)
        )
    except ssl.SSLError as exc:
        # A protocol_version alert, or (asyncio's servers) a close before it left.
        reason = exc.reason or ""
        if "VERSION" in reason or "EOF" in reason:
            return Observation("refused", reason)
        return Observation(f"tls-error:{reason}")
    except (ConnectionError, OSError, TimeoutError):
        return Observation("closed")
    try:
        got = await wire.next_frame(ctx.t(REACTION_WAIT))
    finally:
        wire.close()
    return Observation("served-tls-1.2" if isinstance(got, Hello) else f"no-hello:{got!r}")


@case("auth.nonce.fresh/replay", {"fatal:auth.failed"})
async def replay(ctx: Context) -> Observation:
    """Capture a successful auth frame, then send the same bytes on a new connection: fatal
    auth.failed (the new server nonce, and without TLS the new connection's ends, make the old
    mac wrong)."""
    first = await ctx.hello_only()
    captured = first.auth_message()
    await first.wire.send(captured)
    if not isinstance(await first.wire.next_frame(ctx.t(REACTION_WAIT)), AuthOk):
        return Observation("setup:first-auth-refused")
    second = await ctx.hello_only()
    await second.wire.send(captured)
    return Observation(await ctx.await_fatal(second.wire))


@case("auth.nonce.fresh/distinct", {"distinct"})
async def distinct_nonces(ctx: Context) -> Observation:
    """Three connections get three different hello nonces."""
    nonces = set()
    for _ in range(3):
        client = await ctx.hello_only()
        assert client.hello is not None
        nonces.add(client.hello.nonce)
    return Observation("distinct" if len(nonces) == 3 else "repeated")


@case("auth.key.secret", {"not-leaked"})
async def key_secret(ctx: Context) -> Observation:
    """Over a handshake and a command, no received byte sequence contains the key, raw or as
    hex."""
    client: Client = await ctx.client()
    command_id = await client.run(argv=["true"])
    await client.wait_terminal(command_id, ctx.t(REACTION_WAIT))
    received = bytes(client.wire.raw_received)
    key = ctx.options.key
    for form in (key, key.hex().encode(), key.hex().upper().encode()):
        if form in received:
            return Observation("leaked")
    return Observation("not-leaked")
