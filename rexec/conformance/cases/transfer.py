"""File transfer (protocol.md 5.6): ``put`` writes a file atomically under
the stdin credit, ``get`` streams one as ``file``, exactly ``size`` bytes of
``stdout``, then ``done``.

What is on the server's disk is judged from the client side only, with helper
commands on a second connection (``test -e``, ``cat``, and a ``for`` loop
over ``DIR/.NAME*`` for temporary files left behind: the glob matches
rexecd's ``.NAME.rexec-XXXXXXXX.tmp`` and any name that starts the same way).
Every file a case makes is under /tmp with a fresh name, removed at cleanup.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import shlex

from rexec.protocol import Cancel, Put, Resize, Run, Signal, Stdin, StdinEof, encode_frame

from ..case import REACTION_WAIT, Context, Observation
from ..client import Client, CommandRecord, SetupError, Unsupported
from ._registry import case, register
from ._util import QUICK, fatal_seen

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


async def shell_ok(ctx: Context, script: str, what: str) -> None:
    """Run a helper script; SetupError unless it exits 0."""
    record = await ctx.sh(script, wait=10.0)
    if record.exit is None or record.exit.exit_code != 0:
        raise SetupError(f"could not {what} on the server")


async def read_back(ctx: Context, path: str) -> bytes | None:
    """The file's content, read with ``cat``; None when it does not exist."""
    record = await ctx.sh(f"cat {shlex.quote(path)} 2>/dev/null || exit 3", wait=10.0)
    if record.exit is None or record.exit.exit_code != 0:
        return None
    return bytes(record.stdout)


async def put(
    ctx: Context, client: Client, path: str, data: bytes, *, size: int | None = None,
    digest: str | None = None, mode: int | None = None, eof: bool = True, wait: float = QUICK,
) -> CommandRecord:
    """Send a ``put`` and ``data`` under the credit; with ``eof``, then
    ``stdin_eof`` and read until its terminal frame."""
    fields: dict[str, object] = {
        "path": path, "size": len(data) if size is None else size,
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
    await client.wait_terminal(command_id, ctx.t(wait))
    return client.records[command_id]


async def leftovers_gone(ctx: Context, path: str, within: float = 2.0) -> bool:
    """Whether no ``DIR/.NAME*`` (a temporary file beside ``path``) is left,
    at some point within ``within`` seconds (× multiplier)."""
    directory, name = path.rsplit("/", 1)
    pattern = f"{shlex.quote(directory)}/.{name}*"  # names here are [a-z0-9-]
    ctx.remove_at_cleanup(pattern)
    tries = max(1, int(ctx.t(within) / 0.1))
    script = (
        f'i=0; while :; do left=; for f in {pattern}; do test -e "$f" && left=1; done; '
        f'test -z "$left" && exit 0; i=$((i+1)); [ $i -ge {tries} ] && exit 1; sleep 0.1; done'
    )
    record = await ctx.sh(script, wait=within + 5)
    return record.exit is not None and record.exit.exit_code == 0


async def nothing_left(ctx: Context, path: str) -> str:
    """``nothing-left``, ``target-left`` or ``temp-left`` after a put that
    must not have written anything."""
    temp_gone = await leftovers_gone(ctx, path)
    if await ctx.path_exists(path):
        return "target-left"
    return "nothing-left" if temp_gone else "temp-left"


async def started_put(ctx: Context, client: Client, path: str, *, size: int = 2000,
                      part: int = 1000) -> Put:
    """A put of ``size`` bytes of which ``part`` are sent (no ``stdin_eof``),
    given a moment to reach the server's file: until credit for them is
    granted back (at most 0.5 s), then 0.1 s more."""
    message = client.put_message(path=path, size=size, sha256=sha256(b"p" * size))
    await client.wire.send(message, Stdin.with_data(message.id, b"p" * part))
    record = client.records[message.id]
    await client.pump(ctx.t(0.5), until=lambda: record.terminal or record.credit_granted >= part)
    await client.pump(ctx.t(0.1), until=lambda: record.terminal)
    return message


# --- get ------------------------------------------------------------------------------


def stream_outcome(record: CommandRecord, expected: bytes, mode: int | None = None) -> str:
    """``exact``, or the comma-separated faults of a get's frames."""
    if record.error is not None:
        return f"error:{record.error.code}"
    if record.file is None:
        return "no-file" if record.terminal else "no-terminal"
    faults = []
    if record.kinds[0] != "file":
        faults.append("frame-before-file")
    others = sorted({k for k in record.kinds if k not in ("file", "stdout", "done")})
    if others:
        faults.append("unexpected:" + "+".join(others))
    data = bytes(record.stdout)
    if record.file.size != len(expected):
        faults.append(f"file-size:{record.file.size}")
    if mode is not None and record.file.mode != mode:
        faults.append(f"file-mode:{record.file.mode:#o}")
    if len(data) < record.file.size:
        faults.append("short")
    elif len(data) > record.file.size:
        faults.append("beyond-size")
    elif data != expected:
        faults.append("content")
    if record.done is None:
        faults.append("no-done")
    else:
        if record.done.size != len(data):
            faults.append("done-size")
        if record.done.sha256 != sha256(data):
            faults.append("done-sha256")
    if record.after_terminal:
        faults.append("after-terminal")
    return ",".join(faults) or "exact"


@case(
    "transfer.get.stream/small",
    "get a 1 KiB file holding every byte value, mode 0640: file {size 1024, mode 0o640}, "
    "exactly those bytes as stdout, done with size 1024 and their sha256.",
    {"exact"},
)
async def get_small(ctx: Context) -> Observation:
    path = ctx.temp_path("get")
    await shell_ok(ctx, f"{printf_script(ALL_BYTES)} > {shlex.quote(path)} && chmod 640 "
                   f"{shlex.quote(path)}", "create the source file")
    record = await get(ctx, await ctx.client(), path)
    return Observation(stream_outcome(record, ALL_BYTES, 0o640), data=record.summary())


@case(
    "transfer.get.stream/large",
    f"get a file of {(len(ALL_BYTES) * 2 + LARGE_ZEROS) >> 10} KiB (several body-sized frames): "
    "exactly its bytes in order, then done with the size and sha256.",
    {"exact"}, timeout=10.0,
)
async def get_large(ctx: Context) -> Observation:
    path = ctx.temp_path("get")
    tail = bytes(reversed(ALL_BYTES))
    await shell_ok(ctx, f"{{ {printf_script(ALL_BYTES)}; head -c {LARGE_ZEROS} /dev/zero; "
                   f"{printf_script(tail)}; }} > {shlex.quote(path)}", "create the source file")
    record = await get(ctx, await ctx.client(), path, wait=8.0)
    expected = ALL_BYTES + bytes(LARGE_ZEROS) + tail
    return Observation(stream_outcome(record, expected), data=record.summary())


@case(
    "transfer.get.stream/empty",
    "get an empty file: file {size 0}, no stdout, done with size 0 and the sha256 of nothing.",
    {"exact"},
)
async def get_empty(ctx: Context) -> Observation:
    path = ctx.temp_path("get")
    await shell_ok(ctx, f": > {shlex.quote(path)}", "create the source file")
    record = await get(ctx, await ctx.client(), path)
    return Observation(stream_outcome(record, b""), data=record.summary())


@case(
    "transfer.get.regular/directory",
    "get /tmp (a directory): the command-scoped error file.is_directory.",
    {"error:file.is_directory"},
)
async def get_directory(ctx: Context) -> Observation:
    record = await get(ctx, await ctx.client(), "/tmp")
    return Observation(terminal_outcome(record), data=record.summary())


@case(
    "transfer.get.regular/device",
    "get /dev/null (a character device): the command-scoped error file.failed.",
    {"error:file.failed"},
)
async def get_device(ctx: Context) -> Observation:
    record = await get(ctx, await ctx.client(), "/dev/null")
    return Observation(terminal_outcome(record), data=record.summary())


@case(
    "transfer.get.regular/fifo",
    "get a FIFO nobody writes to: file.failed at once, without waiting for a writer "
    "(unsupported when the server can't run mkfifo).",
    {"error:file.failed"},
)
async def get_fifo(ctx: Context) -> Observation:
    path = ctx.temp_path("fifo")
    record = await ctx.sh(f"mkfifo {shlex.quote(path)}")
    if record.exit is None or record.exit.exit_code != 0:
        raise Unsupported("the server can't run mkfifo")
    record = await get(ctx, await ctx.client(), path, wait=REACTION_WAIT)
    return Observation(terminal_outcome(record), data=record.summary())


# --- errors ---------------------------------------------------------------------------


@case(
    "transfer.errors/get-missing",
    "get a file that does not exist: the command-scoped error file.not_found.",
    {"error:file.not_found"},
)
async def get_missing(ctx: Context) -> Observation:
    record = await get(ctx, await ctx.client(), ctx.temp_path("missing"))
    return Observation(terminal_outcome(record), data=record.summary())


@case(
    "transfer.errors/put-missing-directory",
    "put into a directory that does not exist, sending no data: file.not_found at once.",
    {"error:file.not_found"},
)
async def put_missing_directory(ctx: Context) -> Observation:
    client = await ctx.client()
    path = ctx.temp_path("nodir") + "/file"
    record = await put(ctx, client, path, b"abc", eof=False)
    await client.wait_terminal(record.id, ctx.t(REACTION_WAIT))
    return Observation(terminal_outcome(record), data=record.summary())


@case(
    "transfer.errors/get-permission-denied",
    "get a file of mode 000: file.permission_denied (unsupported when the server's user can "
    "read it anyway, as root can).",
    {"error:file.permission_denied"},
)
async def get_permission_denied(ctx: Context) -> Observation:
    path = ctx.temp_path("noperm")
    quoted = shlex.quote(path)
    await shell_ok(ctx, f"printf secret > {quoted} && chmod 000 {quoted}", "create the file")
    readable = await ctx.sh(f"test -r {quoted}")
    if readable.exit is not None and readable.exit.exit_code == 0:
        raise Unsupported("the server's user can read a file of mode 000 (root)")
    record = await get(ctx, await ctx.client(), path)
    return Observation(terminal_outcome(record), data=record.summary())


# --- put: data, digest, done, mode ------------------------------------------------------


@case(
    "transfer.put.data/credit",
    "put 2 x stdin_window + 4099 bytes, sending only within the credit (stdin_window, then "
    "what stdin_credit grants): done, and cat shows exactly those bytes.",
    {"stored"}, timeout=15.0,
)
async def put_credit(ctx: Context) -> Observation:
    client = await ctx.client()
    assert client.hello is not None
    size = min(2 * client.hello.limits.stdin_window + 4099, 16 * 1024 * 1024)
    data = (bytes(range(251)) * (size // 251 + 1))[:size]
    path = ctx.temp_path("put")
    record = await put(ctx, client, path, data, wait=10.0)
    if not record.terminal:
        stalled = record.credit_granted == 0 and size > client.hello.limits.stdin_window
        return Observation("stalled" if stalled else "no-terminal", data=record.summary())
    if record.done is None:
        return Observation(terminal_outcome(record), data=record.summary())
    stored = await read_back(ctx, path)
    return Observation("stored" if stored == data else "content-differs",
                       f"{len(stored or b'')} of {size} bytes read back", data=record.summary())


@case(
    "transfer.put.data/window-exceeded",
    "put stdin_window + 1 bytes in one stdin frame sent with the put: fatal "
    "flow.window_exceeded.",
    {"fatal:flow.window_exceeded"},
)
async def put_window_exceeded(ctx: Context) -> Observation:
    client = await ctx.client()
    assert client.hello is not None
    size = client.hello.limits.stdin_window + 1
    if size > client.hello.limits.max_body:
        raise Unsupported("stdin_window + 1 exceeds max_body")
    data = b"w" * size
    message = client.put_message(path=ctx.temp_path("put"), size=size, sha256=sha256(data))
    await client.wire.send(message, Stdin.with_data(message.id, data))
    return Observation(await ctx.await_fatal(client.wire))


@case(
    "transfer.put.digest/short",
    "put declaring 5 bytes more than it sends, then stdin_eof: file.size_mismatch.",
    {"error:file.size_mismatch"},
)
async def put_short(ctx: Context) -> Observation:
    record = await put(ctx, await ctx.client(), ctx.temp_path("put"), b"short",
                       size=10, digest=sha256(b"short"))
    return Observation(terminal_outcome(record), data=record.summary())


@case(
    "transfer.put.digest/long",
    "put declaring 5 bytes and sending 10 (within the credit), no stdin_eof: "
    "file.size_mismatch as soon as they arrive.",
    {"error:file.size_mismatch"},
)
async def put_long(ctx: Context) -> Observation:
    client = await ctx.client()
    record = await put(ctx, client, ctx.temp_path("put"), b"0123456789", size=5,
                       digest=sha256(b"01234"), eof=False)
    await client.wait_terminal(record.id, ctx.t(REACTION_WAIT))
    return Observation(terminal_outcome(record), data=record.summary())


@case(
    "transfer.put.digest/sha256",
    "put whose sha256 is not that of its content: file.digest_mismatch.",
    {"error:file.digest_mismatch"},
)
async def put_bad_digest(ctx: Context) -> Observation:
    record = await put(ctx, await ctx.client(), ctx.temp_path("put"), b"content\n",
                       digest=sha256(b"other\n"))
    return Observation(terminal_outcome(record), data=record.summary())


@case(
    "transfer.put.done/after-eof",
    "put sending all its bytes, then waiting 0.5 s before stdin_eof: nothing terminal before "
    "the stdin_eof, then done with the declared size and the content's sha256.",
    {"done-after-eof"},
)
async def put_done_after_eof(ctx: Context) -> Observation:
    client = await ctx.client()
    data = b"all of it\n"
    record = await put(ctx, client, ctx.temp_path("put"), data, eof=False)
    await client.pump(ctx.t(0.5), until=lambda: record.terminal)
    if record.terminal:
        return Observation(f"{terminal_outcome(record)}-before-eof", data=record.summary())
    await client.stdin_eof(record.id)
    await client.wait_terminal(record.id, ctx.t(QUICK))
    if record.done is None:
        return Observation(terminal_outcome(record), data=record.summary())
    faults = [f for f, bad in (("done-size", record.done.size != len(data)),
                               ("done-sha256", record.done.sha256 != sha256(data))) if bad]
    return Observation(",".join(faults) or "done-after-eof", data=record.summary())


for _mode in (0o600, 0o666, 0o707):
    async def _put_mode(ctx: Context, mode: int = _mode) -> Observation:
        client = await ctx.client()
        path = ctx.temp_path("mode")
        record = await put(ctx, client, path, b"mode\n", mode=mode)
        if record.done is None:
            return Observation(terminal_outcome(record), data=record.summary())
        got = await get(ctx, client, path)
        if got.file is None:
            return Observation(f"get:{terminal_outcome(got)}", data=got.summary())
        return Observation(f"mode:{got.file.mode:#o}")

    register(
        f"transfer.put.mode/{_mode:04o}",
        f"put with mode {_mode:#o}: a get of the file reports mode {_mode:#o}, whatever the "
        "server's umask.",
        {f"mode:{_mode:#o}"}, _put_mode,
    )


# --- put: atomic, cancel, half-close ------------------------------------------------------


@case(
    "transfer.put.atomic/in-progress",
    "While a put has sent half its bytes (no stdin_eof), test -e on the target says no: the "
    "content has only a temporary name until the rename.",
    {"hidden"},
)
async def put_in_progress(ctx: Context) -> Observation:
    client = await ctx.client()
    path = ctx.temp_path("atomic")
    message = await started_put(ctx, client, path)
    record = client.records[message.id]
    if record.terminal:
        return Observation(f"ended:{terminal_outcome(record)}", data=record.summary())
    return Observation("visible" if await ctx.path_exists(path) else "hidden")


@case(
    "transfer.put.atomic/cut-off",
    "A put whose connection is reset after half its bytes: no file under the target name, and "
    "no temporary file beside it within 2 s.",
    {"nothing-left"}, timeout=10.0,
)
async def put_cut_off(ctx: Context) -> Observation:
    client = await ctx.client()
    path = ctx.temp_path("atomic")
    message = await started_put(ctx, client, path)
    if client.records[message.id].terminal:
        return Observation(f"ended:{terminal_outcome(client.records[message.id])}")
    client.wire.abort()
    return Observation(await nothing_left(ctx, path))


@case(
    "transfer.put.atomic/failed-replace",
    "A file holds 'old'; a put of new content with a wrong sha256 fails: the file still holds "
    "'old', and no temporary file is left.",
    {"unchanged"}, timeout=10.0,
)
async def put_failed_replace(ctx: Context) -> Observation:
    path = ctx.temp_path("atomic")
    await shell_ok(ctx, f"printf 'old\\n' > {shlex.quote(path)}", "create the target")
    record = await put(ctx, await ctx.client(), path, b"new content\n", digest=sha256(b"x"))
    if record.error is None:
        return Observation(terminal_outcome(record), data=record.summary())
    content = await read_back(ctx, path)
    if content != b"old\n":
        return Observation("gone" if content is None else "changed", data=record.summary())
    return Observation("unchanged" if await leftovers_gone(ctx, path) else "temp-left")


@case(
    "transfer.put.atomic/replace",
    "A file holds 'old'; a put of 'new' succeeds: done, and the file holds 'new'.",
    {"replaced"},
)
async def put_replace(ctx: Context) -> Observation:
    path = ctx.temp_path("atomic")
    await shell_ok(ctx, f"printf 'old\\n' > {shlex.quote(path)}", "create the target")
    record = await put(ctx, await ctx.client(), path, b"new\n")
    if record.done is None:
        return Observation(terminal_outcome(record), data=record.summary())
    content = await read_back(ctx, path)
    return Observation("replaced" if content == b"new\n" else "not-replaced")


@case(
    "transfer.put.atomic/is-directory",
    "put to /tmp (a directory), sending no data: file.is_directory at once.",
    {"error:file.is_directory"},
)
async def put_is_directory(ctx: Context) -> Observation:
    client = await ctx.client()
    record = await put(ctx, client, "/tmp", b"abc", eof=False)
    await client.wait_terminal(record.id, ctx.t(REACTION_WAIT))
    return Observation(terminal_outcome(record), data=record.summary())


@case(
    "transfer.cancel/put",
    "cancel a put after half its bytes: file.cancelled, and neither the target nor a "
    "temporary file is left.",
    {"error:file.cancelled,nothing-left"}, timeout=10.0,
)
async def cancel_put(ctx: Context) -> Observation:
    client = await ctx.client()
    path = ctx.temp_path("cancel")
    message = await started_put(ctx, client, path)
    await client.wire.send(Cancel(id=message.id))
    await client.wait_terminal(message.id, ctx.t(QUICK))
    record = client.records[message.id]
    return Observation(f"{terminal_outcome(record)},{await nothing_left(ctx, path)}",
                       data=record.summary())


@case(
    "transfer.cancel/get",
    f"get a {HUGE >> 20} MiB file without reading (SO_RCVBUF 64 KiB), cancel it after 0.5 s, "
    "then read: the get ends with file.cancelled, not done.",
    {"error:file.cancelled"}, timeout=20.0,
)
async def cancel_get(ctx: Context) -> Observation:
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


@case(
    "transfer.put.half_close",
    "Half-close the connection (FIN) while a put has sent half its bytes: the put ends with "
    "file.cancelled and nothing is left.",
    {"error:file.cancelled,nothing-left"}, timeout=10.0,
)
async def put_half_close(ctx: Context) -> Observation:
    client = await ctx.client()
    path = ctx.temp_path("halfclose")
    message = await started_put(ctx, client, path)
    await client.wire.shutdown_write()
    await client.wait_terminal(message.id, ctx.t(QUICK))
    record = client.records[message.id]
    return Observation(f"{terminal_outcome(record)},{await nothing_left(ctx, path)}",
                       data=record.summary())


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


@case(
    "transfer.terminal.one/put",
    "A successful put: exactly one done, and nothing for its id in the 0.3 s after.",
    {"one-done"},
)
async def terminal_put(ctx: Context) -> Observation:
    client = await ctx.client()
    record = await put(ctx, client, ctx.temp_path("put"), b"once\n")
    return Observation(await _one_terminal(ctx, client, record), data=record.summary())


@case(
    "transfer.terminal.one/get",
    "A successful get: exactly one done, and nothing for its id in the 0.3 s after.",
    {"one-done"},
)
async def terminal_get(ctx: Context) -> Observation:
    path = ctx.temp_path("get")
    await shell_ok(ctx, f"printf 'once\\n' > {shlex.quote(path)}", "create the file")
    client = await ctx.client()
    record = await get(ctx, client, path)
    return Observation(await _one_terminal(ctx, client, record), data=record.summary())


@case(
    "transfer.terminal.one/error",
    "A get of a missing file: exactly one error with its id (fatal false), nothing after.",
    {"one-error"},
)
async def terminal_error(ctx: Context) -> Observation:
    client = await ctx.client()
    record = await get(ctx, client, ctx.temp_path("missing"))
    if record.error is not None and record.error.fatal:
        return Observation("fatal")
    return Observation(await _one_terminal(ctx, client, record), data=record.summary())


@case(
    "command.frames.dropped/signal-for-put",
    "signal and resize for a running put, then the rest of its data and stdin_eof: the frames "
    "are dropped (no fatal error) and the put ends with done.",
    {"dropped"},
)
async def terminal_signal(ctx: Context) -> Observation:
    client = await ctx.client()
    message = await started_put(ctx, client, ctx.temp_path("put"))
    await client.wire.send(Signal(id=message.id, signal="SIGTERM"),
                           Resize(id=message.id, rows=10, cols=10),
                           Stdin.with_data(message.id, b"p" * 1000), StdinEof(id=message.id))
    await client.wait_terminal(message.id, ctx.t(QUICK))
    record = client.records[message.id]
    fatal = fatal_seen(client)
    if fatal is not None:
        return Observation(f"fatal:{fatal}")
    return Observation("dropped" if record.done is not None else
                       f"error:{record.error.code}" if record.error else "no-terminal")


# --- ids, concurrency, busy ---------------------------------------------------------------


@case(
    "transfer.id/lower",
    "run (id 5), then a put with id 3: fatal command.bad_id (transfers share the run ids).",
    {"fatal:command.bad_id"},
)
async def id_lower(ctx: Context) -> Observation:
    client = await ctx.client()
    client.next_id = 6
    path = ctx.temp_path("put")
    await client.wire.send_raw(
        encode_frame(Run(id=5, argv=["true"]))
        + encode_frame(Put(id=3, path=path, size=0, sha256=sha256(b"")))
    )
    return Observation(await ctx.await_fatal(client.wire))


@case(
    "transfer.id/run-after-get",
    "get (id 7) of a missing file, then a run with the same id 7: fatal command.bad_id.",
    {"fatal:command.bad_id"},
)
async def id_run_after_get(ctx: Context) -> Observation:
    client = await ctx.client()
    client.next_id = 7
    record = await get(ctx, client, ctx.temp_path("missing"))
    if not record.terminal:
        return Observation("get-no-terminal")
    await client.wire.send(Run(id=7, argv=["true"]))
    return Observation(await ctx.await_fatal(client.wire))


@case(
    "transfer.id/concurrent",
    "With a put open (half its bytes sent), a run of printf on the same connection completes; "
    "then the rest of the put and stdin_eof: done.",
    {"interleaved"},
)
async def id_concurrent(ctx: Context) -> Observation:
    client = await ctx.client()
    path = ctx.temp_path("put")
    message = await started_put(ctx, client, path, size=2000, part=1000)
    run_id = await client.run(argv=["printf", "ok"])
    await client.wait_terminal(run_id, ctx.t(3.0))
    ran = client.records[run_id]
    if ran.error is not None and ran.error.code.startswith("spawn."):
        raise Unsupported(f"the server can't run printf: {ran.error.code}")
    record = client.records[message.id]
    if record.terminal or bytes(ran.stdout) != b"ok":
        return Observation("not-interleaved", data={"put": record.summary(), "run": ran.summary()})
    await client.wire.send(Stdin.with_data(message.id, b"p" * 1000))
    await client.stdin_eof(message.id)
    await client.wait_terminal(message.id, ctx.t(QUICK))
    return Observation("interleaved" if record.done is not None else terminal_outcome(record),
                       data=record.summary())


@case(
    "transfer.id/busy",
    "max_commands puts left open (no data), then one more put: the command-scoped error busy "
    "(a running transfer counts against max_commands).",
    {"error:busy"}, timeout=10.0,
)
async def id_busy(ctx: Context) -> Observation:
    client = await ctx.client()
    assert client.hello is not None
    count = client.hello.limits.max_commands
    if count > 256:
        raise Unsupported(f"max_commands {count} is too many open puts for this case")
    tag = secrets.token_hex(4)
    messages = [client.put_message(path=ctx.temp_path(f"busy{tag}-{i}"), size=1, sha256=sha256(b"b"))
                for i in range(count + 1)]
    await client.wire.send(*messages[:-1])
    await client.pump(ctx.t(0.5), until=lambda: any(client.records[m.id].terminal
                                                    for m in messages[:-1]))
    ended = [m.id for m in messages[:-1] if client.records[m.id].terminal]
    if ended:
        first = client.records[ended[0]]
        return Observation(f"open-put-ended:{terminal_outcome(first)}", data=first.summary())
    await client.wire.send(messages[-1])
    record = client.records[messages[-1].id]
    await client.wait_terminal(record.id, ctx.t(REACTION_WAIT))
    return Observation(terminal_outcome(record), data=record.summary())


# --- paths ----------------------------------------------------------------------------------


@case(
    "transfer.path/relative",
    "put to a relative name: a run without cwd (the server's default directory) finds it "
    "with test -e.",
    {"in-default-directory"},
)
async def path_relative(ctx: Context) -> Observation:
    name = f"rexec-conformance-rel-{secrets.token_hex(6)}"
    ctx.remove_at_cleanup(name)
    record = await put(ctx, await ctx.client(), name, b"relative\n")
    if record.done is None:
        return Observation(terminal_outcome(record), data=record.summary())
    found = await ctx.sh(f"test -e {name}")
    ok = found.exit is not None and found.exit.exit_code == 0
    return Observation("in-default-directory" if ok else "elsewhere")


@case(
    "transfer.path/utf8",
    "put to a name with non-ASCII characters (é, ✓): test -e with the same name, as UTF-8, "
    "finds it.",
    {"found"},
)
async def path_utf8(ctx: Context) -> Observation:
    path = ctx.temp_path("utf8-é✓")
    record = await put(ctx, await ctx.client(), path, b"utf-8\n")
    if record.done is None:
        return Observation(terminal_outcome(record), data=record.summary())
    return Observation("found" if await ctx.path_exists(path) else "not-found")


@case(
    "transfer.path/no-tilde",
    "put to '~/NAME': no ~ expansion, so file.not_found (no directory named ~), and no NAME "
    "in the home directory.",
    {"error:file.not_found"},
)
async def path_no_tilde(ctx: Context) -> Observation:
    name = f"rexec-conformance-tilde-{secrets.token_hex(6)}"
    ctx.remove_at_cleanup(name)
    record = await put(ctx, await ctx.client(), f"~/{name}", b"tilde\n")
    outcome = terminal_outcome(record)
    found = await ctx.sh(f"test -e {name}")
    if found.exit is not None and found.exit.exit_code == 0:
        outcome += ",expanded"
    return Observation(outcome, data=record.summary())
