"""The open-file limit of ``rexec batch``: each open connection is one
descriptor, so the fanout must fit under ``RLIMIT_NOFILE``.

``fit_fanout(n)`` raises the soft limit toward what ``n`` connections need
(never past the hard limit, which only root can raise) and returns the
fanout that fits, with a note for people when it had to be lowered. What is
left after that (another part of the process opening files meanwhile) is
caught when connecting: the pool lowers its fanout further and the job waits
for a slot (``OutOfDescriptors``), so a batch never fails with
EMFILE.
"""

from __future__ import annotations

import errno
import os
import resource

#: Descriptors kept for everything but connections: the standard streams,
#: the event loop's, the joblog, results and re-run files, TLS files.
RESERVE = 32


class OutOfDescriptors(Exception):
    """Connecting failed for want of file descriptors (EMFILE, ENFILE): not the
    server's fault; the job waits for a slot and the fanout is lowered."""


def out_of_descriptors(exc: BaseException) -> bool:
    """Whether ``exc``, or an exception it arose from, is EMFILE or ENFILE."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.EMFILE, errno.ENFILE):
            return True
        seen = seen.__context__
    return False


def descriptors_in_use() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 16  # no /proc: a typical start-up count


def descriptors_free() -> bool:
    """Whether the process is below its open-file limit now."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft == resource.RLIM_INFINITY or descriptors_in_use() < soft


def fit_fanout(fanout: int) -> tuple[int, str | None]:
    """The fanout that fits the open-file limit (raised if need be and
    allowed), and a one-line note when it is below ``fanout``."""
    needed = descriptors_in_use() + RESERVE + fanout
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return fanout, None
    fitted = max(1, soft - (needed - fanout))
    shown_hard = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    return fitted, (
        f"fanout lowered from {fanout} to {fitted}: the open-file limit is {soft} "
        f"(hard limit {shown_hard}; raise it with ulimit -n or LimitNOFILE=)"
    )
