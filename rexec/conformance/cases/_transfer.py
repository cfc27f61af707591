"""What the transfer areas share (transfer, transfer_lifecycle,
transfer_paths, transfer_pieces): the contents they send, and helpers that
send a put or get and judge what is left on the server's disk from the client
side (protocol.md 5.6).
"""

from __future__ import annotations

import hashlib
import shlex

from rexec.protocol import Put, Stdin

from ..case import Context, Observation
from ..client import Client, CommandRecord, SetupError
from ._util import QUICK

#: A small content with every byte value.
ALL_BYTES = bytes(range(256)) * 4
#: Zero bytes in the middle of the large file: more than two 1 MiB frames.
LARGE_ZEROS = 2 * 1024 * 1024 + 12345
#: The file a cancelled get reads: far more than socket buffers hold.
HUGE = 32 * 1024 * 1024


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def printf_script(data: bytes) -> str:
    """A POSIX ``printf`` writing ``data`` byte for byte (octal escapes)."""
    return "printf '" + "".join(f"\\{b:03o}" for b in data) + "'"


def terminal_outcome(record: CommandRecord) -> str:
    if record.error is not None:
        return f"error:{record.error.code}"
    if record.done is not None:
        return "done"
    if record.exit is not None:
        return "exit"
    return "no-terminal"


def observed(record: CommandRecord, outcome: str | None = None) -> Observation:
    """A transfer case's observation: ``outcome`` (by default the record's
    terminal outcome) with the record's frames as its data."""
    return Observation(
        terminal_outcome(record) if outcome is None else outcome, data=record.summary()
    )


async def shell_ok(ctx: Context, script: str, what: str) -> None:
    """Run a helper script; SetupError unless it exits 0."""
    record = await ctx.sh(script, wait=10.0)
    if not record.succeeded:
        raise SetupError(f"could not {what} on the server")


async def make_file(ctx: Context, path: str, data: bytes, *, mode: int | None = None) -> None:
    """Create ``path`` on the server holding ``data`` byte for byte, with
    ``mode`` when given; SetupError unless that worked."""
    quoted = shlex.quote(path)
    chmod = "" if mode is None else f" && chmod {mode:03o} {quoted}"
    await shell_ok(ctx, f"{printf_script(data)} > {quoted}{chmod}", "create the file")


async def read_back(ctx: Context, path: str) -> bytes | None:
    """The file's content, read with ``cat``; None when it does not exist."""
    record = await ctx.sh(f"cat {shlex.quote(path)} 2>/dev/null || exit 3", wait=10.0)
    if not record.succeeded:
        return None
    return bytes(record.stdout)


async def put(
    ctx: Context,
    client: Client,
    path: str,
    data: bytes,
    *,
    size: int | None = None,
    digest: str | None = None,
    mode: int | None = None,
    eof: bool = True,
    wait: float = QUICK,
) -> CommandRecord:
    """Send a ``put`` and ``data`` under the credit; with ``eof``, then
    ``stdin_eof`` and read until its terminal frame."""
    fields: dict[str, object] = {
        "path": path,
        "size": len(data) if size is None else size,
        "sha256": digest or sha256(data),
    }
    if mode is not None:
        fields["mode"] = mode
    message = client.put_message(**fields)
    await client.wire.send(message)
    sent = await client.send_stdin(message.id, data, timeout=ctx.t(wait))
    if sent and eof:
        await client.stdin_eof(message.id)
        await client.wait_terminal(message.id, ctx.t(wait))
    return client.records[message.id]


async def get(ctx: Context, client: Client, path: str, wait: float = QUICK) -> CommandRecord:
    command_id = await client.get(path)
    return await client.wait_record(command_id, ctx.t(wait))


def clean_up_temporaries(ctx: Context, path: str) -> str:
    """Have cleanup remove the temporary files a server may leave beside
    ``path``; returns their shell glob, ``DIR/.NAME*``."""
    directory, name = path.rsplit("/", 1)
    pattern = f"{shlex.quote(directory)}/.{name}*"  # names here are [a-z0-9-]
    ctx.remove_at_cleanup(pattern)
    return pattern


async def leftovers_gone(ctx: Context, path: str, within: float = 2.0) -> bool:
    """Whether no ``DIR/.NAME*`` (a temporary file beside ``path``) is left,
    at some point within ``within`` seconds (× multiplier)."""
    pattern = clean_up_temporaries(ctx, path)
    tries = max(1, int(ctx.t(within) / 0.1))
    script = (
        f'i=0; while :; do left=; for f in {pattern}; do test -e "$f" && left=1; done; '
        f'test -z "$left" && exit 0; i=$((i+1)); [ $i -ge {tries} ] && exit 1; sleep 0.1; done'
    )
    record = await ctx.sh(script, wait=within + 5)
    return record.succeeded


async def nothing_left(ctx: Context, path: str) -> str:
    """``nothing-left``, ``target-left`` or ``temp-left`` after a put that
    must not have written anything."""
    temp_gone = await leftovers_gone(ctx, path)
    if await ctx.path_exists(path):
        return "target-left"
    return "nothing-left" if temp_gone else "temp-left"


async def started_put(
    ctx: Context, client: Client, path: str, *, size: int = 2000, part: int = 1000
) -> Put:
    """A put of ``size`` bytes of which ``part`` are sent (no ``stdin_eof``),
    given a moment to reach the server's file: until credit for them is
    granted back (at most 0.5 s), then 0.1 s more."""
    message = client.put_message(path=path, size=size, sha256=sha256(b"p" * size))
    await client.wire.send(message, Stdin.with_data(message.id, b"p" * part))
    record = client.records[message.id]
    await client.pump(ctx.t(0.5), until=lambda: record.terminal or record.credit_granted >= part)
    await client.pump(ctx.t(0.1), until=lambda: record.terminal)
    return message
