"""``rexec batch``: run many commands across many servers (the options; the
body is ``rexec_client.batch.command``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..batch.exit_codes import HELP_TABLE
from ..batch.options import BATCH_KEEPALIVE, DEFAULT_JOBS
from ..batch.servers import DEFAULT_FANOUT
from .base import add_command
from .common import add_connection_options, positive_float

DESCRIPTION = """\
Run many commands across many rexecd servers, as GNU parallel, pdsh and
ClusterShell do: one connection per server carries all its commands, and at
most --fanout connections are open at once.

Commands come one per line from COMMANDS_FILE or stdin ('-'), each run with
/bin/sh -c (or NUL-separated with -0, or as JSON Lines with --jsonl:
{"id", "argv" | "shell", "cwd", "env", "timeout", "target"}). Without
--onall they are spread over the targets, the least-loaded server first; with
--onall every command runs on every target, and its output lines start with
'host: ' as with pdsh and clush.

A command template after '--', as with GNU parallel: 'rexec batch -w SPEC --
gzip {} ::: a b' or 'seq 3 | rexec batch -w SPEC -- echo {}' (arguments from
'::: ARG...', ':::: FILE...' or stdin, one a line; {} {.} {/} {//} {/.} {#}
and {1} {2} ... for several sources; arguments are quoted for the shell and
appended when the template has no {}; with -q each word of the template is
quoted too, as GNU parallel -q). 'rexec batch --onall -w SPEC -- CMD
ARG...' without any replacement string or ':::' runs CMD once on every
target, as an argv (no shell); one word with a blank or shell syntax in it
('exit 3') is a command line for the remote shell, as with pdsh.

Targets: -w 'web[01-20/2]:7000,db[1-3]' (ranges with zero padding and steps,
comma lists; the port defaults to --port), '@name' for a group of the groups
file ('name: nodes' lines, as ClusterShell's), --hosts-file FILE (one
[host][:port] a line, ranges allowed, '#' comments), minus -x SPEC (a name
without port excludes it on every port).

Each job has a stable id (the input line number, the argument's number, or
the JSON 'id'): the joblog, --results and --resume use it.

A keepalive ping goes every 5 s on each connection unless --keepalive says
otherwise: a server that stops answering 3 in a row (hung, its host gone)
ends its jobs as connect_error and is dropped, rather than hang the batch.
A server that refuses jobs as shutting down is dropped and its jobs run on
the others.
"""

EPILOG = (
    HELP_TABLE
    + """
examples:
  rexec batch --onall -w 'web[01-20]' -b -- uname -r
  rexec batch --onall -w @compute -f 512 -- systemctl is-active sshd
  rexec batch -w 'node[1-4]:7420' -j 64 --joblog log.tsv jobs.txt
  rexec batch -w 'node[1-4]' --resume --joblog log.tsv jobs.txt
  seq 100 | rexec batch -w 'node[1-4]' -- ./simulate --seed {}
  rexec batch -w 'node[1-4]' -- 'gzip -9 {}' ::: /data/*.log
  rexec batch --hosts-file hosts.txt --jsonl --results out.jsonl --retries 2 jobs.jsonl
  rexec batch -w 'db[1-3]' --halt now,fail=1 --timeout 60 --tag --line < cmds
"""
)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def _positive(text: str) -> int:
    try:
        value = _count(text)
    except argparse.ArgumentTypeError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _port(text: str) -> int:
    value = _count(text) if text.strip().isdigit() else 0
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 1 to 65535, got {text!r}")
    return value


def _fanout(text: str) -> int:
    """``-f N``; a word that is no number is most likely a hosts file, which
    ``-f`` named before it became the fanout: say where that went."""
    try:
        return _positive(text)
    except argparse.ArgumentTypeError as exc:
        if text.strip().isdigit():
            raise
        raise argparse.ArgumentTypeError(
            f"{exc} (-f is the fanout, as in pdsh and clush; a hosts file is --hosts-file FILE)"
        ) from None


def _seconds(text: str) -> float:
    return 0.0 if text.strip() in ("0", "0.0") else positive_float(text)


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "batch",
        "run many commands across many servers",
        DESCRIPTION,
        EPILOG,
        usage="%(prog)s [options] (-w SPEC | --hosts-file F) [COMMANDS_FILE | -]\n"
        "       %(prog)s [options] (-w SPEC | --hosts-file F) -- TEMPLATE... [::: ARG... | "
        ":::: FILE...]...\n"
        "       %(prog)s [options] --onall (-w SPEC | --hosts-file F) -- CMD [ARG...]",
    )
    parser.add_argument(
        "commands_file",
        nargs="?",
        default="-",
        metavar="COMMANDS_FILE",
        help="the commands, one a line ('-': stdin, the default)",
    )
    targets = parser.add_argument_group("targets")
    targets.add_argument(
        "-w",
        "-H",
        "--hosts",
        action="append",
        default=[],
        metavar="SPEC",
        help="servers in node-set notation, @group names allowed (repeatable)",
    )
    targets.add_argument(
        "-g",
        dest="host_groups",
        action="append",
        default=[],
        metavar="GROUP",
        help="the servers of a group, as -w @GROUP (repeatable)",
    )
    targets.add_argument(
        "--hosts-file",
        action="append",
        default=[],
        metavar="FILE",
        help="a file of servers, one [host][:port] a line (repeatable)",
    )
    targets.add_argument(
        "--groups-file",
        type=Path,
        metavar="FILE",
        help="where @group names are defined ('name: nodes' lines; default: "
        "$REXEC_GROUPS_FILE or ~/.config/rexec/groups)",
    )
    targets.add_argument(
        "-x",
        "--exclude",
        action="append",
        default=[],
        metavar="SPEC",
        help="leave these servers out (repeatable)",
    )
    targets.add_argument(
        "--port",
        type=_port,
        default=None,
        metavar="PORT",
        help="port of targets that name none (default: 7420)",
    )
    targets.add_argument(
        "--list-targets", action="store_true", help="print the targets, one a line, and exit"
    )
    work = parser.add_argument_group("work")
    work.add_argument("--onall", action="store_true", help="run every command on every target")
    fmt = work.add_mutually_exclusive_group()
    fmt.add_argument(
        "-0",
        "--null",
        action="store_true",
        help="commands are NUL-separated (they may contain newlines)",
    )
    fmt.add_argument("--jsonl", action="store_true", help="jobs are JSON Lines (see above)")
    work.add_argument(
        "-q",
        "--quote",
        action="store_true",
        help="quote each word of the template, as GNU parallel -q: it reaches "
        "the program as one word, shell characters and all",
    )
    sched = parser.add_argument_group("scheduling")
    sched.add_argument(
        "-j",
        "--jobs",
        type=_positive,
        metavar="N",
        help=f"run at most N commands at once in all (default: {DEFAULT_JOBS}; "
        "with --onall, the fanout, as pdsh and clush)",
    )
    sched.add_argument(
        "--per-host",
        type=_positive,
        metavar="N",
        help="run at most N commands at once on one server (default: as many as the server allows)",
    )
    sched.add_argument(
        "-f",
        "--fanout",
        type=_fanout,
        default=DEFAULT_FANOUT,
        metavar="N",
        help="keep at most N connections open at once, as clush and pdsh -f "
        "(default: %(default)s; lowered to fit the open-file limit)",
    )
    sched.add_argument(
        "--timeout",
        type=positive_float,
        metavar="SECONDS",
        help="the server kills a command (its whole process group) after this long",
    )
    sched.add_argument(
        "--cwd",
        metavar="DIR",
        help="run the commands in DIR on the server (a --jsonl job's own 'cwd' wins; "
        "default: the server's, the home directory of its account)",
    )
    sched.add_argument(
        "--retries",
        type=_count,
        default=0,
        metavar="N",
        help="retry a job up to N more times after a transport failure "
        "(connection refused or lost), on another server when spread",
    )
    sched.add_argument(
        "--retry-failed",
        action="store_true",
        help="also retry commands that failed, timed out or were killed "
        "(preferring another server)",
    )
    sched.add_argument(
        "--halt",
        metavar="WHEN,WHY=N",
        help="stop early as GNU parallel: now|soon,fail|success|done=N|P%%",
    )
    sched.add_argument(
        "--delay",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="wait this long between starting two jobs",
    )
    out = parser.add_argument_group("output")
    mode = out.add_mutually_exclusive_group()
    mode.add_argument(
        "--group",
        dest="mode",
        action="store_const",
        const="group",
        help="print each job's output whole when it ends (default)",
    )
    mode.add_argument(
        "-k",
        "--keep-order",
        dest="mode",
        action="store_const",
        const="keep-order",
        help="like --group, in input order",
    )
    mode.add_argument(
        "--line",
        "--line-buffer",
        dest="mode",
        action="store_const",
        const="line",
        help="print output live, a line at a time",
    )
    mode.add_argument(
        "-b",
        "--coalesce",
        dest="mode",
        action="store_const",
        const="coalesce",
        help="print identical outputs once, under their folded target list, as clush -b: "
        "stdout only (stderr goes to stderr, 'host: ' before each line)",
    )
    mode.add_argument(
        "-B",
        "--coalesce-all",
        dest="mode",
        action="store_const",
        const="coalesce-all",
        help="like -b, with stderr gathered too (after stdout), as clush -B",
    )
    out.add_argument(
        "--tag",
        action="store_true",
        help="start every output line with 'host:port jobid' and a tab",
    )
    out.add_argument(
        "--no-host-prefix",
        dest="host_prefix",
        action="store_false",
        help="with --onall, print output lines as they are, without 'host: '",
    )
    records = parser.add_argument_group("records")
    for flag, text in (
        ("--joblog", "write a TSV line per job (GNU parallel's columns; --resume appends)"),
        ("--results", "write a JSON line per job as it finishes (with its output)"),
        ("--rerun-file", "write the jobs that did not succeed, ready to run again"),
    ):
        records.add_argument(flag, metavar="FILE", help=text)
    resume = records.add_mutually_exclusive_group()
    for flag, text in (
        ("--resume", "skip the jobs --joblog lists as run (one that never started runs again)"),
        ("--resume-failed", "skip the jobs --joblog lists as succeeded; run the others again"),
    ):
        resume.add_argument(flag, action="store_true", help=text)
    people = parser.add_argument_group("people")
    people.add_argument(
        "--dry-run",
        action="store_true",
        help="print 'target<TAB>command' for each job and exit ('*': spread at run time)",
    )
    people.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="no progress line (shown only when stderr is a terminal)",
    )
    people.add_argument("--quiet", action="store_true", help="no summary at the end")
    add_connection_options(parser, keepalive=BATCH_KEEPALIVE)
    parser.set_defaults(handler=_main, accepts_command=True, mode="group")


def _main(args: argparse.Namespace) -> int:
    from ..batch.command import main  # the batch machinery loads only when used

    return main(args)
