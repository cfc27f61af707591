"""A transfer's lifecycle (protocol.md 5.6): a put is atomic (nothing at the
target, nor a temporary file, unless it completes), cancel and half-close end
it cleanly, each ends in exactly one terminal frame, and its id is busy until
then while other commands and transfers run beside it. Judged from the client
side, as in ``transfer``.
"""

from __future__ import annotations

import asyncio
import secrets
import shlex

from rexec.protocol import Cancel, Put, Resize, Run, Signal, Stdin, StdinEof, encode_frame

from ..case import REACTION_WAIT, Context, Observation
from ..client import Client, CommandRecord, Unsupported
from ._registry import case
from ._transfer import (
    HUGE,
    get,
    leftovers_gone,
    make_file,
    nothing_left,
    observed,
    put,
    read_back,
    sha256,
    shell_ok,
    started_put,
    terminal_outcome,
)
from ._util import QUICK, fatal_after, fatal_seen, slots_to_fill

# --- put: atomic, cancel, half-close ------------------------------------------------------


@case("transfer.put.atomic/in-progress", {"hidden"})
async def put_in_progress(ctx: Context) -> Observation:
    """While a put has sent half its bytes (no stdin_eof), test -e on the target says no: the
    content has only a temporary name until the rename."""
    client = await ctx.client()
    path = ctx.temp_path("atomic")
    message = await started_put(ctx, client, path)
    record = client.records[message.id]
    if record.terminal:
        return observed(record, f"ended:{terminal_outcome(record)}")
    return Observation("visible" if await ctx.path_exists(path) else "hidden")


@case("transfer.put.atomic/cut-off", {"nothing-left"}, timeout=10.0)
async def put_cut_off(ctx: Context) -> Observation:
    """A put whose connection is reset after half its bytes: no file under the target name, and
    no temporary file beside it within 2 s."""
    client = await ctx.client()
    path = ctx.temp_path("atomic")
    message = await started_put(ctx, client, path)
    if client.records[message.id].terminal:
        return Observation(f"ended:{terminal_outcome(client.records[message.id])}")
    client.wire.abort()
    return Observation(await nothing_left(ctx, path))


@case("transfer.put.atomic/failed-replace", {"unchanged"}, timeout=10.0)
async def put_failed_replace(ctx: Context) -> Observation:
    """A file holds 'old'; a put of new content with a wrong sha256 fails: the file still holds
    'old', and no temporary file is left."""
    path = ctx.temp_path("atomic")
    await make_file(ctx, path, b"old\n")
    record = await put(ctx, await ctx.client(), path, b"new content\n", digest=sha256(b"x"))
    if record.error is None:
        return observed(record)
    content = await read_back(ctx, path)
    if content != b"old\n":
        return observed(record, "gone" if content is None else "changed")
    return Observation("unchanged" if await leftovers_gone(ctx, path) else "temp-left")


@case("transfer.put.atomic/replace", {"replaced"})
async def put_replace(ctx: Context) -> Observation:
    """A file holds 'old'; a put of 'new' succeeds: done, and the file holds 'new'."""
    path = ctx.temp_path("atomic")
    await make_file(ctx, path, b"old\n")
    record = await put(ctx, await ctx.client(), path, b"new\n")
    if record.done is None:
        return observed(record)
    content = await read_back(ctx, path)
    return Observation("replaced" if content == b"new\n" else "not-replaced")


@case("transfer.put.atomic/is-directory", {"error:file.is_directory"})
async def put_is_directory(ctx: Context) -> Observation:
    """put to /tmp (a directory), sending no data: file.is_directory at once."""
    client = await ctx.client()
    record = await put(ctx, client, "/tmp", b"abc", eof=False)
    await client.wait_terminal(record.id, ctx.t(REACTION_WAIT))
    return observed(record)


@case("transfer.cancel/put", {"error:file.cancelled,nothing-left"}, timeout=10.0)
async def cancel_put(ctx: Context) -> Observation:
    """cancel a put after half its bytes: file.cancelled, and neither the target nor a temporary
    file is left."""
    client = await ctx.client()
    path = ctx.temp_path("cancel")
    message = await started_put(ctx, client, path)
    await client.wire.send(Cancel(id=message.id))
    record = await client.wait_record(message.id, ctx.t(QUICK))
    return observed(record, f"{terminal_outcome(record)},{await nothing_left(ctx, path)}")


@case("transfer.cancel/get", {"error:file.cancelled"}, timeout=20.0, facts={"mib": HUGE >> 20})
async def cancel_get(ctx: Context) -> Observation:
    """get a {mib} MiB file without reading (SO_RCVBUF 64 KiB), cancel it after 0.5 s, then read:
    the get ends with file.cancelled, not done."""
    path = ctx.temp_path("cancel")
    await shell_ok(ctx, f"head -c {HUGE} /dev/zero > {shlex.quote(path)}", "create the file")
    client = await ctx.client(rcvbuf=64 * 1024)
    command_id = await client.get(path)
    record = client.records[command_id]
    await client.pump(ctx.t(QUICK), until=lambda: record.file is not None or record.terminal)
    await asyncio.sleep(ctx.t(0.5))
    await client.wire.send(Cancel(id=command_id))
    await client.wait_terminal(command_id, ctx.t(15.0))
    return Observation(terminal_outcome(record), f"{len(record.stdout)} bytes before the end")


@case("transfer.put.half_close", {"error:file.cancelled,nothing-left"}, timeout=10.0)
async def put_half_close(ctx: Context) -> Observation:
    """Half-close the connection (FIN) while a put has sent half its bytes: the put ends with
    file.cancelled and nothing is left."""
    client = await ctx.client()
    path = ctx.temp_path("halfclose")
    message = await started_put(ctx, client, path)
    await client.wire.shutdown_write()
    record = await client.wait_record(message.id, ctx.t(QUICK))
    return observed(record, f"{terminal_outcome(record)},{await nothing_left(ctx, path)}")


# --- terminal frames ----------------------------------------------------------------------


async def _one_terminal(ctx: Context, client: Client, record: CommandRecord) -> str:
    """The terminal outcome, after 0.3 s more of reading: ``one-done``,
    ``one-error`` or what went wrong."""
    await client.pump(ctx.t(0.3), until=lambda: False)
    if not record.terminal:
        return "no-terminal"
    if record.after_terminal:
        return "after-terminal:" + "+".join(record.after_terminal)
    return "one-done" if record.done is not None else "one-error"


@case("transfer.terminal.one/put", {"one-done"})
async def terminal_put(ctx: Context) -> Observation:
    """A successful put: exactly one done, and nothing for its id in the 0.3 s after."""
    client = await ctx.client()
    record = await put(ctx, client, ctx.temp_path("put"), b"once\n")
    return observed(record, await _one_terminal(ctx, client, record))


@case("transfer.terminal.one/get", {"one-done"})
async def terminal_get(ctx: Context) -> Observation:
    """A successful get: exactly one done, and nothing for its id in the 0.3 s after."""
    path = ctx.temp_path("get")
    await make_file(ctx, path, b"once\n")
    client = await ctx.client()
    record = await get(ctx, client, path)
    return observed(record, await _one_terminal(ctx, client, record))


@case("transfer.terminal.one/error", {"one-error"})
async def terminal_error(ctx: Context) -> Observation:
    """A get of a missing file: exactly one error with its id (fatal false), nothing after."""
    client = await ctx.client()
    record = await get(ctx, client, ctx.temp_path("missing"))
    if record.error is not None and record.error.fatal:
        return Observation("fatal")
    return observed(record, await _one_terminal(ctx, client, record))


@case("command.frames.dropped/signal-for-put", {"dropped"})
async def terminal_signal(ctx: Context) -> Observation:
    """signal and resize for a running put, then the rest of its data and stdin_eof: the frames
    are dropped (no fatal error) and the put ends with done."""
    client = await ctx.client()
    message = await started_put(ctx, client, ctx.temp_path("put"))
    await client.wire.send(
        Signal(id=message.id, signal="SIGTERM"),
        Resize(id=message.id, rows=10, cols=10),
        Stdin.with_data(message.id, b"p" * 1000),
        StdinEof(id=message.id),
    )
    record = await client.wait_record(message.id, ctx.t(QUICK))
    fatal = fatal_seen(client)
    if fatal is not None:
        return Observation(f"fatal:{fatal}")
    return Observation(
        "dropped"
        if record.done is not None
        else f"error:{record.error.code}"
        if record.error
        else "no-terminal"
    )


# --- ids, concurrency, busy ---------------------------------------------------------------


@case("transfer.id/lower", {"fatal:command.bad_id"})
async def id_lower(ctx: Context) -> Observation:
    """run (id 5), then a put with id 3: fatal command.bad_id (transfers share the run ids)."""
    client = await ctx.client()
    client.next_id = 6
    path = ctx.temp_path("put")
    await client.wire.send_raw(
        encode_frame(Run(id=5, argv=["true"]))
        + encode_frame(Put(id=3, path=path, size=0, sha256=sha256(b"")))
    )
    return Observation(await ctx.await_fatal(client.wire))


@case("transfer.id/run-after-get", {"fatal:command.bad_id"})
async def id_run_after_get(ctx: Context) -> Observation:
    """get (id 7) of a missing file, then a run with the same id 7: fatal command.bad_id."""
    client = await ctx.client()
    client.next_id = 7
    record = await get(ctx, client, ctx.temp_path("missing"))
    if not record.terminal:
        return Observation("get-no-terminal")
    return await fatal_after(ctx, client, Run(id=7, argv=["true"]))


@case("transfer.id/concurrent", {"interleaved"})
async def id_concurrent(ctx: Context) -> Observation:
    """With a put open (half its bytes sent), a run of printf on the same connection completes;
    then the rest of the put and stdin_eof: done."""
    client = await ctx.client()
    path = ctx.temp_path("put")
    message = await started_put(ctx, client, path, size=2000, part=1000)
    run_id = await client.run(argv=["printf", "ok"])
    ran = await client.wait_record(run_id, ctx.t(3.0))
    if ran.error is not None and ran.error.code.startswith("spawn."):
        raise Unsupported(f"the server can't run printf: {ran.error.code}")
    record = client.records[message.id]
    if record.terminal or bytes(ran.stdout) != b"ok":
        return Observation("not-interleaved", data={"put": record.summary(), "run": ran.summary()})
    await client.wire.send(Stdin.with_data(message.id, b"p" * 1000))
    await client.stdin_eof(message.id)
    await client.wait_terminal(message.id, ctx.t(QUICK))
    return Observation(
        "interleaved" if record.done is not None else terminal_outcome(record),
        data=record.summary(),
    )


@case("transfer.id/busy", {"error:busy"}, timeout=10.0)
async def id_busy(ctx: Context) -> Observation:
    """max_commands puts left open (no data), then one more put: the command-scoped error busy
    (a running transfer counts against max_commands)."""
    client = await ctx.client()
    count = slots_to_fill(client)
    tag = secrets.token_hex(4)
    messages = [
        client.put_message(path=ctx.temp_path(f"busy{tag}-{i}"), size=1, sha256=sha256(b"b"))
        for i in range(count + 1)
    ]
    await client.wire.send(*messages[:-1])
    await client.pump(
        ctx.t(0.5), until=lambda: any(client.records[m.id].terminal for m in messages[:-1])
    )
    ended = [m.id for m in messages[:-1] if client.records[m.id].terminal]
    if ended:
        first = client.records[ended[0]]
        return observed(first, f"open-put-ended:{terminal_outcome(first)}")
    await client.wire.send(messages[-1])
    record = client.records[messages[-1].id]
    await client.wait_terminal(record.id, ctx.t(REACTION_WAIT))
    return observed(record)
