"""The connection as a whole: keepalive, what follows a fatal error, error
messages that don't echo input, pseudo-terminals, and plaintext off loopback."""

from __future__ import annotations

import asyncio
import ipaddress
import shlex
import struct

from rexec.protocol import Cancel, Error, Resize, Run, Stdin, encode_frame

from ..case import REACTION_WAIT, Context, Observation
from ..wire import Closed
from ._registry import case, register
from ._util import QUICK, fatal_seen, run_one, start_one, wait_output, wait_started

CANARY = b"CANARYx9q"


# --- keepalive -------------------------------------------------------------------------


@case("message.ping.answer/idle", {"pong"})
async def ping_idle(ctx: Context) -> Observation:
    """After auth, ping seq 7: pong seq 7 within 1 s."""
    client = await ctx.client()
    return Observation("pong" if await client.ping(7, ctx.t(1.0)) else "no-pong")


@case("message.ping.answer/large-seq", {"pong"})
async def ping_large(ctx: Context) -> Observation:
    """ping seq 2^53 - 1: pong with exactly that seq."""
    client = await ctx.client()
    return Observation("pong" if await client.ping(2**53 - 1, ctx.t(1.0)) else "no-pong")


@case("message.ping.answer/mid-stream", {"pong"})
async def ping_mid_stream(ctx: Context) -> Observation:
    """While a command prints a line every 20 ms, ping seq 99: the pong comes within 1 s."""
    client = await ctx.client()
    command_id = await client.run(
        shell="i=0; while [ $i -lt 100 ]; do echo $i; sleep 0.02; i=$((i+1)); done"
    )
    await wait_output(ctx, client, command_id, b"1\n")
    got = await client.ping(99, ctx.t(1.0))
    await client.wire.send(Cancel(id=command_id))
    return Observation("pong" if got else "no-pong")


# --- fatal errors ------------------------------------------------------------------------


@case("error.fatal.close/stops-reading", {"fatal:frame.bad_length"})
async def stops_reading(ctx: Context) -> Observation:
    """After auth, a bad length and a run (touch MARKER) in one write: the fatal error is sent,
    the connection closed, and the run never acted on."""
    marker = ctx.temp_path("after-fatal")
    client = await ctx.client()
    run = Run(id=client.new_id(), shell=f"touch {shlex.quote(marker)}")
    await client.wire.send_raw(struct.pack("<i", -1) + encode_frame(run))
    outcome = await ctx.await_fatal(client.wire)
    await asyncio.sleep(ctx.t(0.3))
    if await ctx.path_exists(marker):
        return Observation("acted-after-fatal", f"reaction: {outcome}")
    # A reset may eat the error frame: the bytes after the bad length were unread.
    return Observation("fatal:frame.bad_length" if outcome == "closed" else outcome)


for _variant, _header, _code in (
    ("unknown-type", b'{"type":"%s"}' % CANARY, "header.unknown_type"),
    ("schema", b'{"type":"ping","seq":"%s"}' % CANARY, "header.invalid"),
    ("bad-json", b"{%s}" % CANARY, "header.bad_json"),
):

    async def _no_echo(ctx: Context, header: bytes = _header) -> Observation:
        client = await ctx.client()
        await client.wire.send_raw(struct.pack("<i", len(header)) + header)
        return Observation(await ctx.await_fatal(client.wire, canary=CANARY))

    register(
        f"error.message.no_echo/{_variant}",
        f"A bad header carrying the string {CANARY.decode()}: fatal {_code} whose message does "
        "not contain it.",
        {f"fatal:{_code}"},
        _no_echo,
    )


# --- pseudo-terminals ---------------------------------------------------------------------


@case("pty.run", {"tty:xterm:30 100"})
async def pty_run(ctx: Context) -> Observation:
    """pty {rows 30, cols 100, term xterm}: stdin and stdout are terminals, TERM is xterm and
    stty size says '30 100' (a server without ptys answers pty.failed: unsupported)."""
    _, record = await run_one(
        ctx,
        shell='test -t 0 && test -t 1 && printf tty; printf ":%s:" "$TERM"; stty size',
        pty={"rows": 30, "cols": 100, "term": "xterm"},
    )
    return Observation(bytes(record.stdout).decode("utf-8", "replace").strip())


@case("resize.pty", {"40 120"})
async def pty_resize(ctx: Context) -> Observation:
    """A pty command waiting on a line of input is resized to 40x120, then sent a newline: stty
    size says '40 120'."""
    client = await ctx.client()
    command_id = await client.run(
        shell="read line; stty size", stdin=True, pty={"rows": 24, "cols": 80}
    )
    await wait_started(ctx, client, command_id)
    await client.wire.send(
        Resize(id=command_id, rows=40, cols=120), Stdin.with_data(command_id, b"\n")
    )
    record = await client.wait_record(command_id, ctx.t(QUICK))
    lines = bytes(record.stdout).replace(b"\r", b"").split(b"\n")
    return Observation(
        next((x.decode() for x in lines if x.strip() and x.strip()[0:1].isdigit()), "no-size")
    )


@case("resize.pty/no-pty", {"ignored"})
async def resize_no_pty(ctx: Context) -> Observation:
    """A resize for a command without a pty is ignored: it runs on and ping is answered."""
    client, command_id = await start_one(ctx, argv=["sleep", "0.3"])
    await client.wire.send(Resize(id=command_id, rows=40, cols=120))
    if not await client.ping(4, ctx.t(QUICK)):
        return Observation("closed" if client.closed or client.fatal_error() else "no-pong")
    e = (await client.wait_record(command_id, ctx.t(QUICK))).exit
    return Observation("ignored" if e is not None and e.exit_code == 0 else "disturbed")


# --- transport ------------------------------------------------------------------------------


@case("tls.loopback.only", {"tls"})
async def loopback_only(ctx: Context) -> Observation:
    """When the suite reaches the server on a non-loopback address, it must be over TLS (a
    server started with an explicit opt-out fails this case by design). Unsupported on loopback."""
    if ctx.target.tls is not None:
        return Observation("tls")
    try:
        loopback = ipaddress.ip_address(ctx.target.host).is_loopback
    except ValueError:
        loopback = ctx.target.host == "localhost"
    if loopback:
        return Observation("unsupported", "only checkable against a non-loopback address")
    wire = await ctx.connect()
    got = await wire.next_frame(ctx.t(2.0))
    if got is None or isinstance(got, Closed):
        return Observation("tls", "no plaintext hello")
    return Observation("plaintext-off-loopback")


@case("error.unknown.accept/server", {"carried-on"})
async def unknown_code(ctx: Context) -> Observation:
    """After auth, run 'sleep 0.3; echo done', then send two non-fatal errors of a code no
    version defines, one without an id and one with the command's: the server drops both,
    answers a ping, and the command runs to its exit."""
    client, command_id = await start_one(ctx, shell="sleep 0.3; echo done")
    note = "a code from a later version"
    await client.wire.send(
        Error(code="future.unknown_code", message=note, fatal=False),
        Error(code="future.unknown_code", message=note, fatal=False, id=command_id),
    )
    if not await client.ping(31, ctx.t(REACTION_WAIT)):
        fatal = fatal_seen(client)
        return Observation(f"fatal:{fatal}" if fatal else "no-pong")
    record = await client.wait_record(command_id, ctx.t(QUICK))
    if record.exit is None or bytes(record.stdout) != b"done\n":
        return Observation("command-ended", f"frames {record.kinds}")
    return Observation("carried-on")
