"""What a command inherits from rexecd's own process, made right: signal
dispositions and mask (reset once, at start-up, before any thread exists) and
the open-file limit (raised for rexecd's connections, given back to each
command). spawn.py applies the second to every command it starts.
"""

from __future__ import annotations

import resource
import signal

#: Python ignores these itself at startup, so that a write to a closed pipe or
#: socket raises instead of killing the daemon; subprocess restores them to
#: the default in every child (``restore_signals``).
_IGNORED_BY_PYTHON = frozenset({signal.SIGPIPE, signal.SIGXFSZ})


def reset_inherited_signals() -> None:
    """Unblock every signal and set every ignored one back to its default
    action, so that every command starts as sshd starts one: default
    dispositions and an empty mask, whatever the daemon inherited (protocol.md
    [command.signals.default]). A daemon started as a background job of a
    non-interactive shell has SIGINT and SIGQUIT ignored, and ignored signals
    and the mask survive fork and exec; caught ones are reset by exec anyway.

    Call it first thing, before any thread exists: a thread takes the mask of
    the thread that creates it.
    """
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    for signum in signal.valid_signals():
        if signum in _IGNORED_BY_PYTHON:
            continue
        try:
            if signal.getsignal(signum) == signal.SIG_IGN:
                signal.signal(signum, signal.SIG_DFL)
        except (OSError, ValueError):
            continue  # SIGKILL, SIGSTOP and those the C library keeps to itself


#: The open-file limits rexecd was started with, once it has raised its own
#: (``raise_open_file_limit``): what commands get back.
_command_nofile: tuple[int, int] | None = None


def raise_open_file_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit, so
    that hundreds of connections fit; returns the soft limit now in force.

    Commands get the limits rexecd was started with back (unless
    ``rlimit_nofile`` sets theirs): some programs still use ``select`` or
    close every descriptor up to the limit, and a service manager's hard limit
    is in the hundreds of thousands (systemd's advice for services).
    """
    global _command_nofile
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if target <= soft:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return soft  # a container's limit on what the kernel allows: keep ours
    _command_nofile = (soft, hard)
    return target


def give_back_open_file_limit(pid: int) -> None:
    """Give the command ``pid`` the open-file limits rexecd was started with,
    when it has raised its own (``raise_open_file_limit``)."""
    # Best effort, like every prlimit right after the spawn (see ProcessPolicy):
    # without CAP_SYS_RESOURCE another user's process (run_as) can't be
    # changed, and a higher soft limit costs nothing in safety.
    if _command_nofile is None:
        return
    try:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, _command_nofile)
    except (OSError, ValueError):
        pass
