"""Scenario helpers shared by the case modules."""

from __future__ import annotations

from typing import Any

from rexec.protocol import Error, MessageBase

from ..case import Context, Observation, require_started
from ..client import Client, CommandRecord, Unsupported

#: Seconds (× multiplier) a quick command may take from run to exit.
QUICK = 5.0
#: The most commands a case keeps open at once to fill the server's max_commands.
MOST_OPEN = 256


async def run_one(
    ctx: Context,
    *,
    client: Client | None = None,
    data: bytes | None = None,
    wait: float = QUICK,
    **fields: Any,
) -> tuple[Client, CommandRecord]:
    """Run one command (on ``client`` or a fresh connection) and read until
    its terminal frame or ``wait`` seconds. With ``data``, the command gets
    stdin: the data within its credit, then ``stdin_eof``.

    Raises:
        Unsupported: the server could not spawn a suite command.
    """
    client = client or await ctx.client()
    if data is not None:
        fields["stdin"] = True
    command_id = await client.run(**fields)
    if data is not None and await client.send_stdin(command_id, data, timeout=ctx.t(wait)):
        await client.stdin_eof(command_id)
    record = await client.wait_record(command_id, ctx.t(wait))
    require_started(record)
    return client, record


async def start_one(ctx: Context, **fields: Any) -> tuple[Client, int]:
    """A fresh connection with one command (``fields`` are Run's) running:
    its ``started`` is in. Returns the client and the command id.

    Raises:
        Unsupported: the server could not spawn it.
    """
    client = await ctx.client()
    command_id = await client.run(**fields)
    await wait_started(ctx, client, command_id)
    return client, command_id


async def wait_started(ctx: Context, client: Client, command_id: int) -> int | None:
    """Pump until ``started`` (returns the pid) or the command ends."""
    record = client.records[command_id]
    await client.pump(ctx.t(QUICK), until=lambda: record.pid is not None or record.terminal)
    require_started(record)
    return record.pid


async def wait_output(ctx: Context, client: Client, command_id: int, needle: bytes) -> bool:
    """Pump until the command's stdout contains ``needle``."""
    record = client.records[command_id]
    return (
        await client.pump(ctx.t(QUICK), until=lambda: needle in record.stdout or record.terminal)
        and needle in record.stdout
    )


async def fatal_after(ctx: Context, client: Client, *messages: MessageBase) -> Observation:
    """Send ``messages`` on ``client`` in one write; the server's reaction as
    ``Context.await_fatal`` reads it (the cases that use it expect a fatal error)."""
    await client.wire.send(*messages)
    return Observation(await ctx.await_fatal(client.wire))


def fatal_seen(client: Client) -> str | None:
    """The code of the fatal error the server sent on ``client``, if any; "closed"
    when it closed the connection without one."""
    for message in client.other:
        if isinstance(message, Error) and message.fatal:
            return message.code
    return "closed" if client.closed is not None else None


def exit_label(record: CommandRecord) -> str:
    """``exit:CODE``, ``signal:NAME``, ``error:CODE`` or ``no-terminal``."""
    if record.error is not None:
        return f"error:{record.error.code}"
    if record.exit is None:
        return "no-terminal"
    if record.exit.exit_code is not None and record.exit.signal is None:
        return f"exit:{record.exit.exit_code}"
    if record.exit.signal is not None and record.exit.exit_code is None:
        return f"signal:{record.exit.signal_name}:{record.exit.signal}"
    return "malformed-exit"


def over_the_window(client: Client) -> int:
    """stdin_window + 1: the smallest stdin frame that exceeds a fresh credit.

    Raises:
        Unsupported: it would exceed max_body too (a different fault).
    """
    size = client.limits.stdin_window + 1
    if size > client.limits.max_body:
        raise Unsupported("stdin_window + 1 exceeds max_body")
    return size


def slots_to_fill(client: Client) -> int:
    """The server's max_commands, for a case that fills every slot.

    Raises:
        Unsupported: it is more than the suite keeps open (``MOST_OPEN``).
    """
    limit = client.limits.max_commands
    if limit > MOST_OPEN:
        raise Unsupported(f"max_commands {limit} is above what the suite starts")
    return limit


def capped_label(record: CommandRecord) -> str:
    """``capped`` or ``not-capped`` as the exit says, ``no-exit`` without one."""
    if record.exit is None:
        return "no-exit"
    return "capped" if record.exit.output_capped else "not-capped"
