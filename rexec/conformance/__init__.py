"""rexec-conformance: a protocol conformance suite for any rexec server (and,
with ``--serve``, client).

It speaks raw bytes through ``rexec.protocol`` only and never imports the
server (a test enforces it), so what it checks is the wire, not our code.
Case ids are protocol.md requirement ids, optionally with a ``/variant``.
Run ``rexec-conformance --list`` for the cases; see case.py for the outcome
vocabulary and the precise meaning of "closed", runner.py for the verdicts.
"""

from .case import Case, Observation, Options
from .cases import all_cases
from .requirements import REQUIREMENTS, Level, Requirement
from .runner import Result, Verdict, exit_status, run_case, run_suite, select
from .wire import Target

__all__ = [
    "REQUIREMENTS",
    "Case",
    "Level",
    "Observation",
    "Options",
    "Requirement",
    "Result",
    "Target",
    "Verdict",
    "all_cases",
    "exit_status",
    "run_case",
    "run_suite",
    "select",
]
