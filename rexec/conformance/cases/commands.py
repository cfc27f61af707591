"""Commands: argv and shell, cwd, env, spawn failures, process groups, ids,
terminal frames (exit codes, signals and slots are in exits.py)."""

from __future__ import annotations

from rexec.protocol import Cancel, Signal, StdinEof

from ..case import Context, Observation
from ._registry import case, register
from ._util import QUICK, exit_label, fatal_after, run_one

# --- argv, shell, cwd, env ------------------------------------------------------------


@case("command.argv/no-shell", {"literal"})
async def argv_no_shell(ctx: Context) -> Observation:
    """argv ['printf', '%s|', 'a b', '$HOME', '*'] runs without a shell: output 'a b|$HOME|*|'."""
    _, record = await run_one(ctx, argv=["printf", "%s|", "a b", "$HOME", "*"])
    out = bytes(record.stdout)
    return Observation("literal" if out == b"a b|$HOME|*|" else "expanded", repr(out))


@case("command.argv/shell", {"42"})
async def shell_string(ctx: Context) -> Observation:
    """shell "printf %s $((6*7))" runs under /bin/sh -c: output '42'."""
    _, record = await run_one(ctx, shell="printf %s $((6*7))")
    return Observation(bytes(record.stdout).decode("utf-8", "replace") or exit_label(record))


@case("command.cwd/given", {"/"})
async def cwd_given(ctx: Context) -> Observation:
    """cwd '/' : pwd prints '/'."""
    _, record = await run_one(ctx, argv=["sh", "-c", "pwd"], cwd="/")
    return Observation(bytes(record.stdout).decode("utf-8", "replace").strip())


@case("command.cwd/invalid", {"error:cwd.invalid"})
async def cwd_invalid(ctx: Context) -> Observation:
    """cwd naming no directory: the command-scoped error cwd.invalid (fatal false, with the id)."""
    _, record = await run_one(ctx, argv=["true"], cwd="/nonexistent/rexec-conformance")
    if record.error is not None and record.error.fatal:
        return Observation("fatal")
    return Observation(exit_label(record))


@case("command.env/added", {"v 1"})
async def env_added(ctx: Context) -> Observation:
    """env {REXEC_CONFORMANCE: 'v 1'} is visible to the command."""
    _, record = await run_one(
        ctx, shell='printf %s "$REXEC_CONFORMANCE"', env={"REXEC_CONFORMANCE": "v 1"}
    )
    return Observation(bytes(record.stdout).decode("utf-8", "replace") or exit_label(record))


for _name in ("LD_PRELOAD", "BASH_ENV", "IFS", "ENV"):

    async def _forbidden(ctx: Context, name: str = _name) -> Observation:
        _, record = await run_one(ctx, argv=["true"], env={name: "/nonexistent"})
        return Observation(exit_label(record))

    register(
        f"command.env/forbidden-{_name}",
        f"env {{{_name}: ...}} is refused with the command-scoped env.forbidden, not dropped.",
        {"error:env.forbidden"},
        _forbidden,
    )


# --- spawn failures and process groups -------------------------------------------------


@case("command.spawn.failure/not-found", {"error:spawn.not_found"})
async def not_found(ctx: Context) -> Observation:
    """argv ['/nonexistent/rexec-conformance']: command-scoped spawn.not_found, no exit."""
    client = await ctx.client()
    command_id = await client.run(argv=["/nonexistent/rexec-conformance"])
    return Observation(exit_label(await client.wait_record(command_id, ctx.t(QUICK))))


@case("command.spawn.failure/permission-denied", {"error:spawn.permission_denied"})
async def permission_denied(ctx: Context) -> Observation:
    """argv naming an existing file without execute permission: spawn.permission_denied."""
    path = ctx.temp_path("noexec")
    await ctx.sh(f"printf 'echo hi\\n' > {path} && chmod 644 {path}")
    client = await ctx.client()
    command_id = await client.run(argv=[path])
    return Observation(exit_label(await client.wait_record(command_id, ctx.t(QUICK))))


@case("error.command.scoped", {"carries-on"})
async def scoped_error(ctx: Context) -> Observation:
    """After a command-scoped spawn.not_found, the same connection still answers ping and runs a
    command."""
    client = await ctx.client()
    bad = await client.run(argv=["/nonexistent/rexec-conformance"])
    await client.wait_terminal(bad, ctx.t(QUICK))
    _, record = await run_one(ctx, client=client, argv=["printf", "alive"])
    if client.closed is not None or client.fatal_error():
        return Observation("connection-ended")
    if bytes(record.stdout) == b"alive" and await client.ping(5, ctx.t(QUICK)):
        return Observation("carries-on")
    return Observation("stalled", data=record.summary())


@case("command.process.group", {"leader"})
async def process_group(ctx: Context) -> Observation:
    """The command's shell is the leader of its own process group: kill -0 -$$ succeeds."""
    _, record = await run_one(ctx, shell="kill -0 -$$ 2>/dev/null && echo leader || echo member")
    return Observation(bytes(record.stdout).decode("utf-8", "replace").strip() or "no-output")


# --- ids -----------------------------------------------------------------------------------


async def _runs_with_ids(ctx: Context, *ids: int) -> Observation:
    """Run ``true`` under each of ``ids`` in turn on one connection: how the
    server reacts (``Context.await_fatal``)."""
    client = await ctx.client()
    for command_id in ids:
        client.next_id = command_id
        await client.run(argv=["true"])
    return Observation(await ctx.await_fatal(client.wire))


@case("command.id.increasing/repeated", {"fatal:command.bad_id"})
async def id_repeated(ctx: Context) -> Observation:
    """Two runs with the same id 5 on one connection: the second is a fatal command.bad_id."""
    return await _runs_with_ids(ctx, 5, 5)


@case("command.id.increasing/lower", {"fatal:command.bad_id"})
async def id_lower(ctx: Context) -> Observation:
    """A run with id 3 after a run with id 10: fatal command.bad_id."""
    return await _runs_with_ids(ctx, 10, 3)


@case("command.id.unknown/ahead", {"fatal:command.bad_id"})
async def id_ahead(ctx: Context) -> Observation:
    """A cancel for id 1000 when no run above 1 was sent: fatal command.bad_id."""
    client = await ctx.client()
    await client.run(argv=["true"])
    return await fatal_after(ctx, client, Cancel(id=1000))


@case("command.id.unknown/ended-dropped", {"dropped"})
async def id_ended(ctx: Context) -> Observation:
    """After a command's exit, a signal, a cancel and a stdin_eof for it are dropped silently:
    the next ping is answered and nothing else arrives for that id."""
    client, record = await run_one(ctx, argv=["true"])
    await client.wire.send(
        Signal(id=record.id, signal="SIGTERM"), Cancel(id=record.id), StdinEof(id=record.id)
    )
    if not await client.ping(11, ctx.t(QUICK)):
        return Observation(await ctx.await_fatal(client.wire) if not client.closed else "closed")
    return Observation("dropped" if not record.after_terminal else "answered")


# --- terminal frames and order ------------------------------------------------------------


@case("command.terminal.one/exit", {"one-terminal"})
async def one_terminal(ctx: Context) -> Observation:
    """A command that writes to both streams gets started, its output, one exit, and nothing
    after it (checked up to a ping answered later)."""
    client, record = await run_one(ctx, shell="printf a; printf b >&2; printf c")
    await client.ping(3, ctx.t(QUICK))
    faults = record.order_faults()
    if not record.terminal:
        return Observation("no-terminal", data=record.summary())
    return Observation("one-terminal" if not faults else "; ".join(faults), data=record.summary())


@case("command.terminal.one/spawn-error", {"one-terminal"})
async def one_terminal_error(ctx: Context) -> Observation:
    """A run that can't start gets one error with its id (fatal false) and nothing else for it."""
    client = await ctx.client()
    command_id = await client.run(argv=["/nonexistent/rexec-conformance"])
    await client.wait_terminal(command_id, ctx.t(QUICK))
    await client.ping(3, ctx.t(QUICK))
    record = client.records[command_id]
    if record.error is None or record.error.fatal:
        return Observation(exit_label(record))
    return Observation("one-terminal" if record.kinds == ["error"] else ",".join(record.kinds))


@case("command.started.first", {"started-first"})
async def started_first(ctx: Context) -> Observation:
    """printf x: started is the first frame for the id, before stdout and exit."""
    _, record = await run_one(ctx, argv=["printf", "x"])
    ok = record.kinds[:1] == ["started"] and record.terminal
    return Observation("started-first" if ok else ",".join(record.kinds) or "nothing")


@case("exit.after.output", {"exit-last"})
async def exit_after_output(ctx: Context) -> Observation:
    """A shell loop writing 300 lines to stdout and stderr, then exiting at once: every output
    frame comes before exit and all bytes arrive."""
    script = 'i=0; while [ $i -lt 300 ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done'
    _, record = await run_one(ctx, shell=script)
    expected = "".join(f"out {i}\n" for i in range(300)).encode()
    if "exit" not in record.kinds:
        return Observation(exit_label(record))
    if record.after_terminal or record.kinds[-1] != "exit":
        return Observation("output-after-exit", ",".join(record.after_terminal))
    return Observation("exit-last" if bytes(record.stdout) == expected else "output-missing")
