"""The body of ``rexec batch`` (options in ``rexec_client.cmd_batch``):
turn the options into targets, a job source and ``BatchOptions``; run the
batch; hand each result to the printer and the records as it finishes;
print the summary; return the exit status (``exit_codes``).

Ctrl-C (or SIGTERM) cancels the batch (``Batch.cancel``: the running
commands are cancelled on their servers) and the records are still written
to the end; a second Ctrl-C drops the connections at once (the servers kill
what still runs).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from rexec import eventloop
from rexec.keyfile import KeyFileError, default_key_path, load_key

from ..address import DEFAULT_PORT, Address
from ..cli.base import one_line
from ..cli.common import CliError, fail, keepalive_options, ssl_context
from .api import make_batch, make_connector
from .capture import Spool
from .coalesce import CoalescingPrinter
from .descriptors import fit_fanout
from .engine import Batch
from .exit_codes import EXIT_INTERRUPTED, EXIT_USAGE, batch_exit_status
from .groups import Groups
from .halt import HaltPolicy, HaltSyntaxError
from .inputs import BatchInput
from .joblog import DoneJobs, JoblogWriter
from .jobs import Job, JobInputError
from .options import BatchOptions
from .outcome import JobResult
from .output import GroupPrinter, LinePrinter, OrderedPrinter, Printer, Tagger, host_prefix, job_tag
from .progress import Progress
from .rerun import RerunWriter, rerun_format
from .results_file import ResultsWriter
from .servers import Connector
from .source import ThreadedSource
from .summary import Summary
from .targets import (
    DisplayNames,
    TargetError,
    label,
    refuse_pdsh_host_file,
    resolve_targets,
)

#: Status when our stdout was closed by its reader (as a process killed by SIGPIPE).
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE


def main(args: argparse.Namespace) -> int:
    """Run ``rexec batch`` as ``args`` say; return the exit status."""
    try:
        groups = Groups(args.groups_file) if args.groups_file else Groups()
        refuse_pdsh_host_file(args.hosts)
        specs = [*args.hosts, *(f"@{group}" for group in args.host_groups)]
        targets = resolve_targets(
            specs, args.hosts_file, args.exclude, args.port or DEFAULT_PORT, groups
        )
        if args.list_targets:
            sys.stdout.write("".join(label(t) + "\n" for t in targets))
            return 0
        batch_input = BatchInput(args)
    except (TargetError, CliError) as exc:
        return fail(str(exc), EXIT_USAGE)
    try:
        skip = _done_jobs(args)
        if args.dry_run:
            return _dry_run(args, batch_input, targets, skip)
        options = _options(args, len(targets), batch_input)
        connector = _connector(args)
    except (HaltSyntaxError, KeyFileError, CliError, ValueError, OSError) as exc:
        batch_input.close()
        return fail(str(exc), EXIT_USAGE)
    try:
        return eventloop.run(_run(args, batch_input, targets, options, skip, connector))
    except CliError as exc:
        return fail(str(exc), EXIT_USAGE)
    finally:
        batch_input.close()
        if options.spool is not None:
            options.spool.close()


# --- planning ------------------------------------------------------------------


#: The options given to ``BatchOptions`` as they are, under the same name.
_SAME_NAMED_OPTIONS = (
    "per_host",
    "onall",
    "timeout",
    "cwd",
    "retries",
    "retry_failed",
    "delay",
)


def _options(args: argparse.Namespace, n_targets: int, batch_input: BatchInput) -> BatchOptions:
    halt = HaltPolicy.parse(args.halt) if args.halt else None
    wants_total = (args.progress and sys.stderr.isatty()) or (halt is not None and halt.percent)
    total = batch_input.count() if wants_total else None
    if total is not None and args.onall:
        total *= n_targets
    fanout, note = fit_fanout(args.fanout)
    if note is not None:
        print(f"rexec batch: {note}", file=sys.stderr)
    return BatchOptions(
        max_running=args.jobs,
        fanout=fanout,
        halt=halt,
        capture=args.mode != "line" or bool(args.results),
        spool=Spool(),
        total=total,
        report_unstarted=batch_input.finite,
        **{name: getattr(args, name) for name in _SAME_NAMED_OPTIONS},
    )


def _done_jobs(args: argparse.Namespace) -> DoneJobs | None:
    if not (args.resume or args.resume_failed):
        return None
    if not args.joblog:
        option = "--resume" if args.resume else "--resume-failed"
        raise CliError(f"{option} needs --joblog FILE (the log to resume from)")
    try:
        return DoneJobs.read(args.joblog, failed_too=args.resume)
    except OSError as exc:
        raise CliError(f"cannot read {args.joblog}: {exc.strerror}") from None


def _dry_run(
    args: argparse.Namespace,
    batch_input: BatchInput,
    targets: list[Address],
    skip: DoneJobs | None,
) -> int:
    """Print 'target<TAB>command' for each job that would run ('*': spread)."""
    out = sys.stdout
    try:
        for job in batch_input.jobs():
            pairs: list[Address | None]
            if job.target is not None:
                pairs = [job.target]
            else:
                pairs = list(targets) if args.onall else [None]
            for target in pairs:
                if skip is None or not skip(job, target):
                    out.write(f"{label(target) if target else '*'}\t{job.command_text}\n")
        out.flush()
    except JobInputError as exc:
        return fail(str(exc), EXIT_USAGE)
    except BrokenPipeError:
        _silence_stdout()
    return 0


# --- running ---------------------------------------------------------------------


def _connector(args: argparse.Namespace) -> Connector:
    """One key and one TLS context for every connection (a bad key or TLS
    file is a usage error, reported once, before anything runs)."""
    return make_connector(
        load_key(Path(args.key_file) if args.key_file else default_key_path()),
        ssl=ssl_context(args),
        connect_timeout=args.connect_timeout,
        **keepalive_options(args),  # --keepalive's default is BATCH_KEEPALIVE (cli/batch.py)
    )


def _printer(
    args: argparse.Namespace, display: DisplayNames, stdout: BinaryIO, stderr: BinaryIO
) -> Printer:
    if args.mode == "coalesce":  # -b: stdout gathered, stderr as it comes (clush)
        return CoalescingPrinter(stdout, display, stderr=stderr)
    if args.mode == "coalesce-all":
        return CoalescingPrinter(stdout, display)
    tag: Tagger | None = None
    if args.tag:
        tag = job_tag
    elif args.onall and args.host_prefix:
        tag = host_prefix(display)
    if args.mode == "keep-order":
        return OrderedPrinter(stdout, stderr, tag=tag)
    if args.mode == "line":
        return LinePrinter(stdout, stderr, tag=tag)
    return GroupPrinter(stdout, stderr, tag=tag)


class _Records:
    """The files a batch writes as results come: joblog, results, re-run."""

    def __init__(self, args: argparse.Namespace, batch_input: BatchInput) -> None:
        resuming = args.resume or args.resume_failed
        self.writers: list[JoblogWriter | ResultsWriter | RerunWriter] = []
        if args.joblog:
            self.writers.append(JoblogWriter(args.joblog, append=resuming))
        if args.results:
            self.writers.append(ResultsWriter(args.results, append=resuming))
        if args.rerun_file:
            fmt = rerun_format(batch_input.format, args.onall or batch_input.one_command)
            self.writers.append(RerunWriter(args.rerun_file, fmt, pin_targets=args.onall))

    def write(self, result: JobResult) -> None:
        for writer in self.writers:
            writer.write(result)

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


def _silence_stdout() -> None:
    """After EPIPE on stdout: point it at /dev/null so exiting doesn't fail."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _install_interrupts(batch: Batch, received: list[int]) -> Callable[[], None]:
    """Ctrl-C/SIGTERM: cancel the batch; a second one: drop the connections.
    Each signal received is appended to ``received``. Returns the function
    that removes the handlers."""
    loop = asyncio.get_running_loop()

    def interrupted(signum: int) -> None:
        received.append(signum)
        if len(received) == 1:
            what = "terminated" if signum == signal.SIGTERM else "interrupted"
            print(
                f"\rrexec batch: {what}: cancelling {batch.running} running command(s) "
                "(Ctrl-C again to drop the connections)",
                file=sys.stderr,
                flush=True,
            )
            batch.cancel("interrupt")
        else:
            batch.abort()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupted, sig)

    def remove() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    return remove


async def _run(
    args: argparse.Namespace,
    batch_input: BatchInput,
    targets: list[Address],
    options: BatchOptions,
    skip: DoneJobs | None,
    connector: Connector,
) -> int:
    stdout, stderr = sys.stdout.buffer, sys.stderr.buffer
    display = DisplayNames(targets)
    printer = _printer(args, display, stdout, stderr)
    progress = (
        Progress(sys.stderr, options.total) if args.progress and sys.stderr.isatty() else None
    )
    broken_pipe = False

    def show_live(job: Job, target: Address, stream: str, data: bytes) -> None:
        nonlocal broken_pipe
        if broken_pipe:
            return
        if progress is not None:
            progress.clear()
        try:
            printer.feed(job, target, stream, data)
        except BrokenPipeError:
            broken_pipe = True
            batch.cancel("interrupt")

    batch = make_batch(
        ThreadedSource(batch_input.jobs()),
        targets,
        connector=connector,
        options=options,
        on_output=show_live if args.mode == "line" else None,
        skip=skip,
    )
    try:
        records = _Records(args, batch_input)
    except OSError as exc:
        raise CliError(f"cannot write {exc.filename}: {exc.strerror}") from None
    summary = Summary(display)
    signals: list[int] = []
    remove_handlers = _install_interrupts(batch, signals)
    started = time.monotonic()
    input_error: JobInputError | None = None
    ticker = (
        asyncio.create_task(
            progress.keep_drawn(lambda: (batch.succeeded, batch.failed, batch.running))
        )
        if progress is not None
        else None
    )
    try:
        async for result in batch.results():
            records.write(result)
            summary.add(result)
            if progress is not None:
                progress.clear()
            if broken_pipe:
                result.release()
            else:
                try:
                    printer.finished(result)
                except BrokenPipeError:
                    broken_pipe = True
                    batch.cancel("interrupt")
            if progress is not None:
                progress.update(batch.succeeded, batch.failed, batch.running)
    except JobInputError as exc:
        input_error = exc
    finally:
        if ticker is not None:  # stopped before the line is cleared for good
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
        remove_handlers()
        records.close()
        if progress is not None:
            progress.clear()
    try:
        if not broken_pipe:
            printer.close()
    except BrokenPipeError:
        broken_pipe = True
    if broken_pipe:
        _silence_stdout()
    status = batch_exit_status(
        summary.counts,
        halted_by=batch.halted_by,
        interrupted=batch.stopped == "interrupt",
        input_error=input_error is not None,
    )
    if not args.onall:  # with --onall each target's own jobs say it failed
        summary.add_dropped(batch.dropped)
    # A closed stdout ends the batch quietly, as every subcommand (the reader left).
    shown = status != 0 or progress is not None or summary.dropped
    if not args.quiet and not broken_pipe and shown:
        for line in summary.lines(time.monotonic() - started, stopped=batch.stopped):
            # A cause may quote a server (an error's message, a signal's
            # name): printed inert, as rexec run prints it.
            print(one_line(line), file=sys.stderr)
    if batch.fanout_note is not None:
        print(f"rexec batch: {batch.fanout_note}", file=sys.stderr)
    if input_error is not None:
        fail(str(input_error), EXIT_USAGE)
    if broken_pipe and status == EXIT_INTERRUPTED:
        return EXIT_BROKEN_PIPE
    if status == EXIT_INTERRUPTED and signals:
        return 128 + signals[0]  # SIGTERM: 143, as put and get, and shells, say
    return status
