"""What the summary says of a job the server refused to start: the
server's reason with the program it could not run, and once per batch what
to do instead (the hints ``rexec run`` gives, in ``rexec batch``'s terms).

    127.0.0.[2-3]: spawn.not_found: 'echo a': no such program (ENOENT) (2 failed; jobs 1)
      hint: 'echo a' was run as a program name, without a shell, because more words
      followed it ('-b'): ...
"""

from __future__ import annotations

from ..cli.common import is_command_line
from ..refusal_kinds import CWD_HINT, no_shell_strings, outside_roots
from .outcome import JobResult, Status

#: Codes a server refuses a command with for the command's own sake (the
#: job's result: it fails, and the summary gives the server's reason).
COMMAND_REFUSALS = frozenset(
    {
        "command.denied",
        "spawn.not_found",
        "spawn.permission_denied",
        "spawn.failed",
        "cwd.invalid",
        "env.forbidden",
    }
)


def is_refusal(result: JobResult) -> bool:
    return result.status is Status.FAILED and result.error_code in COMMAND_REFUSALS


def refusal_cause(result: JobResult) -> str:
    """``code: 'program': the server's reason`` (the program only when the
    server could not run it)."""
    code, reason = result.error_code, result.error or ""
    job = result.job
    if code in ("spawn.not_found", "spawn.permission_denied") and job.argv:
        return f"{code}: {job.argv[0]!r}: {reason}"
    return f"{code}: {reason}" if reason else str(code)


def refusal_hint(result: JobResult) -> str | None:
    """What to do instead, when the refusal comes from the form of the
    command or a missing option (None: nothing to suggest)."""
    code, reason = result.error_code, result.error or ""
    argv = result.job.argv
    if outside_roots(code, reason):
        return CWD_HINT
    if no_shell_strings(code, reason):
        return "this key runs programs only, without a shell: give the command as an argv"
    if code != "spawn.not_found" or not argv:
        return None
    program, rest = argv[0], argv[1:]
    if program.startswith("-"):
        return (
            f"{program!r} came after '--', so it was run as the command: "
            "rexec batch's options go before '--' (see 'rexec batch --help')"
        )
    if is_command_line(program):
        after = f", because more words followed it ({' '.join(map(repr, rest))})" if rest else ""
        return (
            f"{program!r} was run as a program name, without a shell{after}: a command line "
            "for the remote shell is one word after '--', and rexec batch's options go "
            "before '--'"
        )
    return None
