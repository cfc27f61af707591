"""Exits: exit codes, death by signal, what a command starts with (signal
dispositions and mask), and when a command's slot is freed."""

from __future__ import annotations

from rexec.protocol import Cancel, Signal

from ..case import Context, Observation, require_started
from ..client import Unsupported
from ._registry import case, register
from ._util import QUICK, exit_label, run_one, slots_to_fill, wait_output, wait_started

# --- exit codes and signals --------------------------------------------------------------

for _code in (0, 1, 2, 42, 127, 128, 200, 255):

    async def _exit_code(ctx: Context, code: int = _code) -> Observation:
        _, record = await run_one(ctx, shell=f"exit {code}")
        return Observation(exit_label(record), data=record.summary())

    register(
        f"exit.code/{_code}",
        f"sh -c 'exit {_code}': exit_code {_code}, signal null.",
        {f"exit:{_code}"},
        _exit_code,
    )


for _sig, _num in (("KILL", 9), ("TERM", 15), ("USR1", None), ("INT", None)):

    async def _killed(ctx: Context, sig: str = _sig) -> Observation:
        _, record = await run_one(ctx, shell=f"kill -{sig} $$; sleep 5")
        label = exit_label(record)
        # Numbers other than 9 and 15 differ between systems: check the name.
        return Observation(
            label if sig in ("KILL", "TERM") else label.rsplit(":", 1)[0], data=record.summary()
        )

    register(
        f"exit.signal.reported/SIG{_sig}",
        f"A shell that sends itself SIG{_sig}: signal set to its number, signal_name "
        f"'SIG{_sig}', exit_code null.",
        {f"signal:SIG{_sig}:{_num}" if _num else f"signal:SIG{_sig}"},
        _killed,
    )


@case("signal.group", {"group-signalled"}, timeout=10.0)
async def signal_group(ctx: Context) -> Observation:
    """A shell with a background sleep (pid printed) gets signal SIGTERM: the shell ends by
    SIGTERM and the background sleep is gone too (the signal went to the group)."""
    client = await ctx.client()
    command_id = await client.run(shell="sleep 60 >/dev/null 2>&1 & echo $!; wait")
    if not await wait_output(ctx, client, command_id, b"\n"):
        await wait_started(ctx, client, command_id)
        return Observation("no-pid-printed", data=client.records[command_id].summary())
    record = client.records[command_id]
    child = int(bytes(record.stdout).split()[0])
    await client.wire.send(Signal(id=command_id, signal="SIGTERM"))
    await client.wait_terminal(command_id, ctx.t(QUICK))
    gone = await ctx.pid_gone(child, 1.0, zombie_ok=True)
    label = exit_label(record)
    if label != "signal:SIGTERM:15":
        return Observation(f"leader:{label}", data=record.summary())
    return Observation("group-signalled" if gone else "child-survived")


# --- what a command starts with ------------------------------------------------------------


@case("command.signals.default/proc-status", {"default"})
async def signals_proc_status(ctx: Context) -> Observation:
    """cat /proc/self/status: SigIgn and SigBlk are all zero (no signal ignored or blocked,
    whatever the server inherited). Unsupported without /proc."""
    _, record = await run_one(ctx, argv=["cat", "/proc/self/status"])
    if not record.succeeded:
        raise Unsupported("no /proc/self/status on the server")
    fields = dict(
        line.split(":", 1)
        for line in bytes(record.stdout).decode("ascii", "replace").splitlines()
        if ":" in line
    )
    masks = {name: fields.get(name, "").strip() for name in ("SigIgn", "SigBlk")}
    if any(not value for value in masks.values()):
        raise Unsupported("no signal masks in /proc/self/status")
    changed = {name: value for name, value in masks.items() if int(value, 16) != 0}
    return Observation(
        "default" if not changed else "inherited:" + ",".join(sorted(changed)), str(masks)
    )


for _name in ("SIGINT", "SIGQUIT"):

    async def _default_action(ctx: Context, name: str = _name) -> Observation:
        client = await ctx.client()
        # "ready" once the command is really running: started may come before
        # its exec, and a signal then would hit whatever runs before it.
        command_id = await client.run(argv=["sh", "-c", "echo ready; exec sleep 30"])
        if not await wait_output(ctx, client, command_id, b"ready\n"):
            await wait_started(ctx, client, command_id)
            return Observation("not-ready", data=client.records[command_id].summary())
        await client.wire.send(Signal(id=command_id, signal=name))  # type: ignore[arg-type]
        ended = await client.wait_terminal(command_id, ctx.t(QUICK))
        record = client.records[command_id]
        if not ended:
            await client.wire.send(Cancel(id=command_id))
            return Observation("ignored", f"sleep outlived {name}")
        label = exit_label(record)  # signal numbers differ between systems: the name
        return Observation(
            label.rsplit(":", 1)[0] if label.startswith("signal:") else label, data=record.summary()
        )

    register(
        f"command.signals.default/{_name}",
        f"sh -c 'echo ready; exec sleep 30' gets signal {_name} once ready: it ends by {_name} "
        "(its default action), not ignored.",
        {f"signal:{_name}"},
        _default_action,
        timeout=10.0,
    )


# --- slots ---------------------------------------------------------------------------------


@case("command.slot", {"accepted"}, timeout=20.0)
async def slot_freed(ctx: Context) -> Observation:
    """max_commands - 1 sleeps and one true: as soon as true's exit arrives, another run is
    accepted (the slot is free once the terminal frame is sent), not refused busy."""
    client = await ctx.client()
    limit = slots_to_fill(client)
    sleeps = [client.run_message(argv=["sleep", "30"]) for _ in range(limit - 1)]
    quick = client.run_message(argv=["true"])
    await client.wire.send(*sleeps, quick)
    try:
        if not await client.wait_terminal(quick.id, ctx.t(10.0)):
            return Observation("no-exit")
        require_started(client.records[quick.id])
        if client.records[quick.id].exit is None:
            return Observation(exit_label(client.records[quick.id]))
        after = client.run_message(argv=["true"])
        await client.wire.send(after)
        label = exit_label(await client.wait_record(after.id, ctx.t(QUICK)))
    finally:
        await client.wire.send(*[Cancel(id=r.id) for r in sleeps])
    return Observation("accepted" if label == "exit:0" else label)
