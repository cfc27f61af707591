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

import shlex

from rexec.protocol import Stdin

from ..case import REACTION_WAIT, Context, Observation
from ..client import CommandRecord, Unsupported
from ._registry import case, register
from ._transfer import (
    ALL_BYTES,
    LARGE_ZEROS,
    get,
    make_file,
    observed,
    printf_script,
    put,
    read_back,
    sha256,
    shell_ok,
    terminal_outcome,
)
from ._util import QUICK, fatal_after, over_the_window

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


@case("transfer.get.stream/small", {"exact"})
async def get_small(ctx: Context) -> Observation:
    """get a 1 KiB file holding every byte value, mode 0640: file {size 1024, mode 0o640},
    exactly those bytes as stdout, done with size 1024 and their sha256."""
    path = ctx.temp_path("get")
    await make_file(ctx, path, ALL_BYTES, mode=0o640)
    record = await get(ctx, await ctx.client(), path)
    return observed(record, stream_outcome(record, ALL_BYTES, 0o640))


@case(
    "transfer.get.stream/large",
    {"exact"},
    timeout=10.0,
    facts={"kib": (len(ALL_BYTES) * 2 + LARGE_ZEROS) >> 10},
)
async def get_large(ctx: Context) -> Observation:
    """get a file of {kib} KiB (several body-sized frames): exactly its bytes in order, then done
    with the size and sha256."""
    path = ctx.temp_path("get")
    tail = bytes(reversed(ALL_BYTES))
    await shell_ok(
        ctx,
        f"{{ {printf_script(ALL_BYTES)}; head -c {LARGE_ZEROS} /dev/zero; "
        f"{printf_script(tail)}; }} > {shlex.quote(path)}",
        "create the source file",
    )
    record = await get(ctx, await ctx.client(), path, wait=8.0)
    expected = ALL_BYTES + bytes(LARGE_ZEROS) + tail
    return observed(record, stream_outcome(record, expected))


@case("transfer.get.stream/empty", {"exact"})
async def get_empty(ctx: Context) -> Observation:
    """get an empty file: file {size 0}, no stdout, done with size 0 and the sha256 of nothing."""
    path = ctx.temp_path("get")
    await make_file(ctx, path, b"")
    record = await get(ctx, await ctx.client(), path)
    return observed(record, stream_outcome(record, b""))


@case("transfer.get.regular/directory", {"error:file.is_directory"})
async def get_directory(ctx: Context) -> Observation:
    """get /tmp (a directory): the command-scoped error file.is_directory."""
    record = await get(ctx, await ctx.client(), "/tmp")
    return observed(record)


@case("transfer.get.regular/device", {"error:file.failed"})
async def get_device(ctx: Context) -> Observation:
    """get /dev/null (a character device): the command-scoped error file.failed."""
    record = await get(ctx, await ctx.client(), "/dev/null")
    return observed(record)


@case("transfer.get.regular/fifo", {"error:file.failed"})
async def get_fifo(ctx: Context) -> Observation:
    """get a FIFO nobody writes to: file.failed at once, without waiting for a writer
    (unsupported when the server can't run mkfifo)."""
    path = ctx.temp_path("fifo")
    record = await ctx.sh(f"mkfifo {shlex.quote(path)}")
    if not record.succeeded:
        raise Unsupported("the server can't run mkfifo")
    record = await get(ctx, await ctx.client(), path, wait=REACTION_WAIT)
    return observed(record)


# --- errors ---------------------------------------------------------------------------


@case("transfer.errors/get-missing", {"error:file.not_found"})
async def get_missing(ctx: Context) -> Observation:
    """get a file that does not exist: the command-scoped error file.not_found."""
    record = await get(ctx, await ctx.client(), ctx.temp_path("missing"))
    return observed(record)


@case("transfer.errors/put-missing-directory", {"error:file.not_found"})
async def put_missing_directory(ctx: Context) -> Observation:
    """put into a directory that does not exist, sending no data: file.not_found at once."""
    client = await ctx.client()
    path = ctx.temp_path("nodir") + "/file"
    record = await put(ctx, client, path, b"abc", eof=False)
    await client.wait_terminal(record.id, ctx.t(REACTION_WAIT))
    return observed(record)


#: Files even root can't read: Linux's write-only sysctls (mode 0200), whose
#: permission check has no CAP_DAC_OVERRIDE bypass. Used when the server's
#: user reads a file of mode 000 anyway.
ROOT_UNREADABLE = ("/proc/sys/vm/compact_memory", "/proc/sys/vm/drop_caches")


async def unreadable_file(ctx: Context) -> str:
    """A regular file the server's user can't read: one of mode 000 it
    creates, else (root) a file of ROOT_UNREADABLE; Unsupported if none."""
    path = ctx.temp_path("noperm")
    await make_file(ctx, path, b"secret", mode=0o000)
    for candidate in (path, *ROOT_UNREADABLE):
        quoted = shlex.quote(candidate)
        check = await ctx.sh(f"test -f {quoted} && ! test -r {quoted}")
        if check.succeeded:
            return candidate
    raise Unsupported(
        "the server's user reads a file of mode 000 (root) and no write-only "
        f"file ({', '.join(ROOT_UNREADABLE)}) exists"
    )


@case("transfer.errors/get-permission-denied", {"error:file.permission_denied"})
async def get_permission_denied(ctx: Context) -> Observation:
    """get a file of mode 000 (as root, a write-only sysctl such as /proc/sys/vm/compact_memory,
    which root can't read either): file.permission_denied."""
    path = await unreadable_file(ctx)
    record = await get(ctx, await ctx.client(), path)
    return Observation(terminal_outcome(record), data=record.summary(), detail=path)


# --- put: data, digest, done, mode ------------------------------------------------------


@case("transfer.put.data/credit", {"stored"}, timeout=15.0)
async def put_credit(ctx: Context) -> Observation:
    """put 2 x stdin_window + 4099 bytes, sending only within the credit (stdin_window, then
    what stdin_credit grants): done, and cat shows exactly those bytes."""
    client = await ctx.client()
    size = min(2 * client.limits.stdin_window + 4099, 16 * 1024 * 1024)
    data = (bytes(range(251)) * (size // 251 + 1))[:size]
    path = ctx.temp_path("put")
    record = await put(ctx, client, path, data, wait=10.0)
    if not record.terminal:
        stalled = record.credit_granted == 0 and size > client.limits.stdin_window
        return observed(record, "stalled" if stalled else "no-terminal")
    if record.done is None:
        return observed(record)
    stored = await read_back(ctx, path)
    return Observation(
        "stored" if stored == data else "content-differs",
        f"{len(stored or b'')} of {size} bytes read back",
        data=record.summary(),
    )


@case("transfer.put.data/window-exceeded", {"fatal:flow.window_exceeded"})
async def put_window_exceeded(ctx: Context) -> Observation:
    """put stdin_window + 1 bytes in one stdin frame sent with the put: fatal
    flow.window_exceeded."""
    client = await ctx.client()
    size = over_the_window(client)
    data = b"w" * size
    message = client.put_message(path=ctx.temp_path("put"), size=size, sha256=sha256(data))
    return await fatal_after(ctx, client, message, Stdin.with_data(message.id, data))


@case("transfer.put.digest/short", {"error:file.size_mismatch"})
async def put_short(ctx: Context) -> Observation:
    """put declaring 5 bytes more than it sends, then stdin_eof: file.size_mismatch."""
    record = await put(
        ctx, await ctx.client(), ctx.temp_path("put"), b"short", size=10, digest=sha256(b"short")
    )
    return observed(record)


@case("transfer.put.digest/long", {"error:file.size_mismatch"})
async def put_long(ctx: Context) -> Observation:
    """put declaring 5 bytes and sending 10 (within the credit), no stdin_eof:
    file.size_mismatch as soon as they arrive."""
    client = await ctx.client()
    record = await put(
        ctx, client, ctx.temp_path("put"), b"0123456789", size=5, digest=sha256(b"01234"), eof=False
    )
    await client.wait_terminal(record.id, ctx.t(REACTION_WAIT))
    return observed(record)


@case("transfer.put.digest/sha256", {"error:file.digest_mismatch"})
async def put_bad_digest(ctx: Context) -> Observation:
    """put whose sha256 is not that of its content: file.digest_mismatch."""
    record = await put(
        ctx, await ctx.client(), ctx.temp_path("put"), b"content\n", digest=sha256(b"other\n")
    )
    return observed(record)


@case("transfer.put.done/after-eof", {"done-after-eof"})
async def put_done_after_eof(ctx: Context) -> Observation:
    """put sending all its bytes, then waiting 0.5 s before stdin_eof: nothing terminal before
    the stdin_eof, then done with the declared size and the content's sha256."""
    client = await ctx.client()
    data = b"all of it\n"
    record = await put(ctx, client, ctx.temp_path("put"), data, eof=False)
    await client.pump(ctx.t(0.5), until=lambda: record.terminal)
    if record.terminal:
        return observed(record, f"{terminal_outcome(record)}-before-eof")
    await client.stdin_eof(record.id)
    await client.wait_terminal(record.id, ctx.t(QUICK))
    if record.done is None:
        return observed(record)
    faults = [
        f
        for f, bad in (
            ("done-size", record.done.size != len(data)),
            ("done-sha256", record.done.sha256 != sha256(data)),
        )
        if bad
    ]
    return observed(record, ",".join(faults) or "done-after-eof")


for _mode in (0o600, 0o666, 0o707):

    async def _put_mode(ctx: Context, mode: int = _mode) -> Observation:
        client = await ctx.client()
        path = ctx.temp_path("mode")
        record = await put(ctx, client, path, b"mode\n", mode=mode)
        if record.done is None:
            return observed(record)
        got = await get(ctx, client, path)
        if got.file is None:
            return observed(got, f"get:{terminal_outcome(got)}")
        return Observation(f"mode:{got.file.mode:#o}")

    register(
        f"transfer.put.mode/{_mode:04o}",
        f"put with mode {_mode:#o}: a get of the file reports mode {_mode:#o}, whatever the "
        "server's umask.",
        {f"mode:{_mode:#o}"},
        _put_mode,
    )
