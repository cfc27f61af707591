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
import stat
import sys
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO

from rexec import eventloop
from rexec.keyfile import KeyFileError, default_key_path, load_key

from ..address import DEFAULT_PORT, Address
from ..cli.common import CliError, fail, open_connection
from ..connection import ClientConnection
from ..errors import RexecConnectionError
from .api import make_batch
from .coalesce import CoalescingPrinter
from .engine import Batch, BatchOptions
from .exit_codes import EXIT_INTERRUPTED, EXIT_USAGE, batch_exit_status
from .halt import HaltPolicy, HaltSyntaxError
from .joblog import DoneJobs, JoblogWriter
from .jobs import InputFormat, Job, JobInputError, read_jobs
from .outcome import JobResult
from .output import GroupPrinter, LinePrinter, OrderedPrinter, Printer
from .progress import Progress
from .rerun import RerunWriter, rerun_format
from .results_file import ResultsWriter
from .servers import Connector
from .source import ThreadedSource
from .summary import Summary
from .targets import TargetError, label, resolve_targets

#: Status when our stdout was closed by its reader (as a process killed by SIGPIPE).
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE


def main(args: argparse.Namespace) -> int:
    """Run ``rexec batch`` as ``args`` say; return the exit status."""
    try:
        targets = resolve_targets(
            args.hosts, args.hosts_file, args.exclude, args.port or DEFAULT_PORT
        )
        if args.list_targets:
            sys.stdout.write("".join(label(t) + "\n" for t in targets))
            return 0
        options = _options(args, len(targets))
        skip = _done_jobs(args)
        if args.dry_run:
            return _dry_run(args, targets, skip)
        load_key(args.key_file or default_key_path())  # a bad key is a usage error, now
    except (TargetError, HaltSyntaxError, KeyFileError, CliError, ValueError, OSError) as exc:
        return fail(str(exc), EXIT_USAGE)
    try:
        return eventloop.run(_run(args, targets, options, skip))
    except CliError as exc:
        return fail(str(exc), EXIT_USAGE)


# --- planning ------------------------------------------------------------------


def _input_format(args: argparse.Namespace) -> InputFormat:
    if args.jsonl:
        return InputFormat.JSONL
    return InputFormat.NUL if args.null else InputFormat.LINES


def _check_input(args: argparse.Namespace) -> None:
    if args.remote_command is not None:
        if not args.onall:
            raise CliError("a command after '--' needs --onall (else give commands in a file)")
        if not args.remote_command:
            raise CliError("the command after '--' is empty")
        if args.commands_file != "-":
            raise CliError("give either COMMANDS_FILE or a command after '--', not both")


def _open_jobs(args: argparse.Namespace) -> Iterator[Job]:
    """The jobs of the input, read lazily (a generator)."""
    if args.remote_command is not None:
        yield Job(id="1", argv=tuple(args.remote_command))
        return
    if args.commands_file == "-":
        yield from read_jobs(sys.stdin.buffer, _input_format(args))
        return
    with open(args.commands_file, "rb") as file:
        yield from read_jobs(file, _input_format(args), args.commands_file)


def _is_regular_file(args: argparse.Namespace) -> bool:
    if args.remote_command is not None:
        return True
    try:
        mode = os.stat(args.commands_file).st_mode if args.commands_file != "-" else os.fstat(0).st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode)


def _count_jobs(args: argparse.Namespace) -> int | None:
    """The number of jobs when the input is a regular file (a quick pass),
    else None. Only counted when someone needs it (progress, --halt P%)."""
    if args.remote_command is not None:
        return 1
    if args.commands_file == "-" or not _is_regular_file(args):
        return None
    separator = b"\0" if args.null else b"\n"
    count, tail = 0, b""
    with open(args.commands_file, "rb") as file:
        while chunk := file.read(1 << 20):
            records = (tail + chunk).split(separator)
            tail = records.pop()
            count += sum(1 for r in records if r.strip())
    return count + (1 if tail.strip() else 0)


def _options(args: argparse.Namespace, n_targets: int) -> BatchOptions:
    _check_input(args)
    if (args.resume or args.resume_failed) and not args.joblog:
        raise CliError("--resume needs --joblog FILE (the log to resume from)")
    halt = HaltPolicy.parse(args.halt) if args.halt else None
    wants_total = (args.progress and sys.stderr.isatty()) or (halt is not None and halt.percent)
    total = _count_jobs(args) if wants_total else None
    if total is not None and args.onall:
        total *= n_targets
    return BatchOptions(
        max_running=args.jobs,
        per_host=args.per_host,
        onall=args.onall,
        timeout=args.timeout,
        retries=args.retries,
        retry_failed=args.retry_failed,
        halt=halt,
        delay=args.delay,
        capture=args.mode != "line" or bool(args.results),
        total=total,
        report_unstarted=_is_regular_file(args),
    )


def _done_jobs(args: argparse.Namespace) -> DoneJobs | None:
    if not (args.resume or args.resume_failed):
        return None
    return DoneJobs.read(args.joblog, failed_too=args.resume)


def _dry_run(args: argparse.Namespace, targets: list[Address], skip: DoneJobs | None) -> int:
    """Print 'target<TAB>command' for each job that would run ('*': spread)."""
    out = sys.stdout
    try:
        for job in _open_jobs(args):
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
    async def connect(address: Address) -> ClientConnection:
        try:
            return await open_connection(args, str(address))
        except CliError as exc:  # TLS files: every server fails alike
            raise RexecConnectionError(str(exc)) from None

    return connect


def _printer(args: argparse.Namespace, stdout: BinaryIO, stderr: BinaryIO) -> Printer:
    if args.mode == "coalesce":
        return CoalescingPrinter(stdout)
    if args.mode == "keep-order":
        return OrderedPrinter(stdout, stderr, tag=args.tag)
    if args.mode == "line":
        return LinePrinter(stdout, stderr, tag=args.tag)
    return GroupPrinter(stdout, stderr, tag=args.tag)


class _Records:
    """The files a batch writes as results come: joblog, results, re-run."""

    def __init__(self, args: argparse.Namespace) -> None:
        resuming = args.resume or args.resume_failed
        self.writers: list[JoblogWriter | ResultsWriter | RerunWriter] = []
        if args.joblog:
            self.writers.append(JoblogWriter(args.joblog))
        if args.results:
            self.writers.append(ResultsWriter(args.results, append=resuming))
        if args.rerun_file:
            fmt = rerun_format(_input_format(args), args.onall or args.remote_command is not None)
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


def _install_interrupts(batch: Batch) -> Callable[[], None]:
    """Ctrl-C/SIGTERM: cancel the batch; a second Ctrl-C: drop the
    connections. Returns the function that removes the handlers."""
    loop = asyncio.get_running_loop()
    presses = 0

    def interrupted() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            print(f"\rrexec batch: interrupted: cancelling {batch.running} running command(s) "
                  "(Ctrl-C again to drop the connections)", file=sys.stderr, flush=True)
            batch.cancel("interrupt")
        else:
            batch.abort()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupted)

    def remove() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    return remove


async def _run(
    args: argparse.Namespace, targets: list[Address], options: BatchOptions, skip: DoneJobs | None
) -> int:
    stdout, stderr = sys.stdout.buffer, sys.stderr.buffer
    printer = _printer(args, stdout, stderr)
    progress = Progress(sys.stderr, options.total) if args.progress and sys.stderr.isatty() else None
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
        ThreadedSource(_open_jobs(args)),
        targets,
        connector=_connector(args),
        options=options,
        on_output=show_live if args.mode == "line" else None,
        skip=skip,
    )
    records = _Records(args)
    summary = Summary()
    remove_handlers = _install_interrupts(batch)
    started = time.monotonic()
    input_error: JobInputError | None = None
    try:
        async for result in batch.results():
            records.write(result)
            summary.add(result)
            if progress is not None:
                progress.clear()
            if not broken_pipe:
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
    if not args.quiet and (status != 0 or progress is not None):
        for line in summary.lines(time.monotonic() - started, stopped=batch.stopped):
            print(line, file=sys.stderr)
    if input_error is not None:
        fail(str(input_error), EXIT_USAGE)
    if broken_pipe and status == EXIT_INTERRUPTED:
        return EXIT_BROKEN_PIPE
    return status
