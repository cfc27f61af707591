"""``rexec batch``: many commands across many servers.

The Python API is ``run_batch`` (an async generator of ``JobResult``s as jobs
finish) and ``run_batch_sync``; ``Batch`` is the scheduler underneath (see
``engine``), and the CLI is ``rexec_client.cmd_batch``.

Modules, one job each: ``nodeset`` (host ranges), ``targets`` (host specs,
files, exclusions), ``jobs`` (jobs and input formats), ``source`` (pulling
input lazily), ``servers`` (one connection per server, load), ``options``
(``BatchOptions``), ``engine`` (scheduling, retries, dead servers, halt,
cancel), ``pending`` (the queued work and which starts next), ``attempt``
(one job on one server), ``capture`` (output in bounded memory, spooled to
a file), ``outcome`` (statuses), ``halt``, ``output`` and ``coalesce``
(printing), ``joblog``, ``results_file`` and ``rerun`` (records),
``progress`` and ``summary`` (for people), ``exit_codes`` (the exit status
table), ``command`` (the CLI's body).
"""

from .api import run_batch, run_batch_sync
from .engine import Batch
from .halt import HaltPolicy
from .jobs import InputFormat, Job, JobInputError
from .options import BatchOptions
from .outcome import JobResult, Status

__all__ = [
    "Batch",
    "BatchOptions",
    "HaltPolicy",
    "InputFormat",
    "Job",
    "JobInputError",
    "JobResult",
    "Status",
    "run_batch",
    "run_batch_sync",
]
