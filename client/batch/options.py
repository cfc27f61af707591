"""``BatchOptions``: how a batch runs (the CLI options of the same names)."""

from __future__ import annotations

import dataclasses

from .capture import Spool
from .halt import HaltPolicy
from .servers import DEFAULT_FANOUT

#: Commands running at once in a spread batch unless ``-j`` says otherwise.
DEFAULT_JOBS = 32
#: ``rexec batch``'s keepalive interval unless --keepalive says otherwise (as
#: the shell's): a server that stops answering (hung, its host gone) ends its
#: jobs as ``connect_error`` after 3 unanswered pings, never hangs the batch.
BATCH_KEEPALIVE = 5.0


@dataclasses.dataclass(kw_only=True)
class BatchOptions:
    """How a batch runs (the CLI options of the same names)."""

    #: Commands running at once in all; None: ``DEFAULT_JOBS``, or with
    #: ``onall`` the fanout (pdsh and clush run as many commands as their
    #: fanout, one per connection). ``running_limit`` is the number in force.
    max_running: int | None = None
    per_host: int | None = None
    #: Connections open at once (None: one per server, never closed early).
    fanout: int | None = DEFAULT_FANOUT
    onall: bool = False
    timeout: float | None = None
    #: The directory a job runs in unless it names its own (``Job.cwd``).
    cwd: str | None = None
    retries: int = 0
    retry_failed: bool = False
    halt: HaltPolicy | None = None
    delay: float = 0.0
    #: Keep each job's output in its result (else only ``on_output`` sees it).
    capture: bool = True
    #: Where captured output beyond the spool's memory budget goes (a
    #: temporary file); None: all of it stays in memory (the library's
    #: default: results stay readable after the batch).
    spool: Spool | None = None
    #: The number of jobs when known (``--halt P%``, progress ETA).
    total: int | None = None
    #: After a halt or cancel, read the rest of the input to report it skipped
    #: (only for finite inputs).
    report_unstarted: bool = False
    cancel_grace: float = 10.0
    lookahead: int | None = None

    def __post_init__(self) -> None:
        if self.max_running is not None and self.max_running < 1:
            raise ValueError("max_running must be at least 1")
        if self.fanout is not None and self.fanout < 1:
            raise ValueError("fanout must be at least 1")
        if self.per_host is not None and self.per_host < 1:
            raise ValueError("per_host must be at least 1")
        if self.retries < 0 or self.delay < 0:
            raise ValueError("retries and delay must be >= 0")

    @property
    def running_limit(self) -> int:
        if self.max_running is not None:
            return self.max_running
        return self.fanout if self.onall and self.fanout is not None else DEFAULT_JOBS
