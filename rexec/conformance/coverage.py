"""Which MUST requirements no case checks: the suite reports them itself, so a
rule it quotes but never tests is visible in every run, not only in our tests.

A requirement counts as covered when a server case is named for it or client
mode (``--serve``) checks it (``serve.CLIENT_CHECKS``). ``tests/conformance``
checks the other direction: every MUST rule of protocol.md is quoted here.
"""

from __future__ import annotations

from collections.abc import Iterable

from .case import Case
from .requirements import REQUIREMENTS, Level
from .serve import CLIENT_CHECKS


def uncovered(cases: Iterable[Case]) -> list[str]:
    """MUST requirement ids (sorted) that none of ``cases`` and no client-mode
    scenario checks."""
    named = {case.requirement_id for case in cases} | set(CLIENT_CHECKS)
    return sorted(
        rid for rid, req in REQUIREMENTS.items() if req.level is Level.MUST and rid not in named
    )


def coverage_line(cases: Iterable[Case]) -> str:
    """The report's coverage line: every MUST rule without a case, by id."""
    missing = uncovered(cases)
    return f"MUST requirements without a case: {', '.join(missing) if missing else 'none'}"
