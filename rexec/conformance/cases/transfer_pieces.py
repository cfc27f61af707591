"""File transfer in pieces (protocol.md 5.6): a ``put`` whose size and digest
come at the end, a resumable ``put`` continued after a cancel, and a ``get``
from an offset. Judged from the client side, as in ``transfer``."""

from __future__ import annotations

import secrets

from rexec.protocol import Cancel, Get, Stdin, StdinEof

from ..case import Context, Observation
from ..client import Client, CommandRecord
from ._registry import case
from ._transfer import (
    ALL_BYTES,
    clean_up_temporaries,
    make_file,
    nothing_left,
    observed,
    read_back,
    sha256,
    terminal_outcome,
)
from ._util import QUICK


@case("transfer.put.end/unsized", {"stored"})
async def put_unsized(ctx: Context) -> Observation:
    """put with size and sha256 null, 1 KiB of every byte value, then stdin_eof giving both:
    done with that size and digest, and cat shows exactly those bytes."""
    client = await ctx.client()
    path = ctx.temp_path("unsized")
    message = client.put_message(path=path)
    await client.wire.send(message)
    if not await client.send_stdin(message.id, ALL_BYTES, timeout=ctx.t(QUICK)):
        return Observation("stalled", data=client.records[message.id].summary())
    await client.wire.send(StdinEof(id=message.id, size=len(ALL_BYTES), sha256=sha256(ALL_BYTES)))
    record = await client.wait_record(message.id, ctx.t(QUICK))
    if record.done is None:
        return observed(record)
    if (record.done.size, record.done.sha256) != (len(ALL_BYTES), sha256(ALL_BYTES)):
        return observed(record, "done-differs")
    stored = await read_back(ctx, path)
    return Observation("stored" if stored == ALL_BYTES else "content-differs")


@case("transfer.put.end/digest-at-end", {"error:file.digest_mismatch"}, timeout=10.0)
async def put_unsized_mismatch(ctx: Context) -> Observation:
    """put with sha256 null whose stdin_eof gives a sha256 that is not the content's:
    file.digest_mismatch, and no file or temporary file is left."""
    client = await ctx.client()
    path = ctx.temp_path("unsized")
    message = client.put_message(path=path, size=4)
    await client.wire.send(message, Stdin.with_data(message.id, b"data"))
    await client.wire.send(StdinEof(id=message.id, sha256=sha256(b"other")))
    record = await client.wait_record(message.id, ctx.t(QUICK))
    outcome = terminal_outcome(record)
    if await nothing_left(ctx, path) != "nothing-left":
        outcome += ",left-behind"
    return observed(record, outcome)


@case("transfer.put.resume/after-cancel", {"resumed"}, timeout=15.0)
async def put_resume(ctx: Context) -> Observation:
    """a resumable put of 2000 bytes: file {size 0} before any credit; 1000 bytes sent, then
    cancel. A second put of the same path and key: file {size 1000}; the last 1000 bytes sent,
    then stdin_eof: done with the whole size and digest, and cat shows the whole content."""
    client = await ctx.client()
    path = ctx.temp_path("resume")
    clean_up_temporaries(ctx, path)
    data = bytes(range(250)) * 8
    key = secrets.token_hex(8)
    offsets = []
    for end in (1000, len(data)):
        record, fault = await _resumable_put(ctx, client, path, data, key, end)
        if fault:
            return observed(record, fault)
        assert record.file is not None
        offsets.append(record.file.size)
    if offsets != [0, 1000]:
        return observed(record, "offsets:" + "/".join(map(str, offsets)))
    if record.done is None:
        return observed(record)
    stored = await read_back(ctx, path)
    return observed(record, "resumed" if stored == data else "content-differs")


async def _resumable_put(
    ctx: Context, client: Client, path: str, data: bytes, key: str, end: int
) -> tuple[CommandRecord, str]:
    """A resumable put that sends from where ``file`` says up to ``end``,
    then (``end`` short of the whole) cancels, or ends with ``stdin_eof``.
    Returns its record and a fault, if any."""
    message = client.put_message(path=path, size=len(data), sha256=sha256(data), resume=key)
    await client.wire.send(message)
    record = client.records[message.id]
    await client.pump(ctx.t(QUICK), until=lambda: record.file is not None or record.terminal)
    if record.file is None:
        return record, f"no-file:{terminal_outcome(record)}"
    if record.kinds[0] != "file":
        return record, "credit-before-file"
    start = record.file.size
    await client.pump(ctx.t(QUICK), until=lambda: record.credit_granted >= end - start)
    if record.credit_granted < end - start:
        return record, "no-credit"
    granted = record.credit_granted
    await client.wire.send(Stdin.with_data(message.id, data[start:end]))
    if end < len(data):
        # Let the bytes reach the file (their credit comes back), then cancel.
        await client.pump(ctx.t(0.5), until=lambda: record.credit_granted >= granted + end)
        await client.wire.send(Cancel(id=message.id))
    else:
        await client.wire.send(StdinEof(id=message.id))
    await client.wait_terminal(message.id, ctx.t(QUICK))
    return record, ""


@case("transfer.get.offset/tail", {"exact"})
async def get_offset(ctx: Context) -> Observation:
    """get with offset 1000 of a 1 KiB file holding every byte value: file {size 1024}, exactly
    its last 24 bytes as stdout, done with size 1024 and the sha256 of the whole file."""
    path = ctx.temp_path("offset")
    await make_file(ctx, path, ALL_BYTES)
    client = await ctx.client()
    command_id = client.new_id()
    await client.wire.send(Get(id=command_id, path=path, offset=1000))
    record = await client.wait_record(command_id, ctx.t(QUICK))
    if record.file is None or record.done is None:
        return observed(record)
    faults = [
        fault for fault, bad in (
            ("file-size", record.file.size != len(ALL_BYTES)),
            ("content", bytes(record.stdout) != ALL_BYTES[1000:]),
            ("done-size", record.done.size != len(ALL_BYTES)),
            ("done-sha256", record.done.sha256 != sha256(ALL_BYTES)),
        ) if bad
    ]  # fmt: skip
    return observed(record, ",".join(faults) or "exact")
