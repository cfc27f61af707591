"""The suite against protocol.md: every MUST is covered, every quote is
verbatim, every level agrees with the document.

Covered means a case checks it against a server, or (for a client-side rule)
a scenario of client mode (``--serve``) checks it, as listed in
``rexec.conformance.serve.CLIENT_CHECKS``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from rexec.conformance import REQUIREMENTS, Level, all_cases
from rexec.conformance.coverage import coverage_line, uncovered
from rexec.conformance.serve import CLIENT_CHECKS, HANDSHAKES, SCENARIOS

PROTOCOL_MD = Path(__file__).resolve().parents[2] / "protocol.md"
ID = re.compile(r"\*\*\[([a-z0-9_.]+)\]\*\*")

#: Requirements neither a case nor client mode checks, and why.
NO_CASE = {
    "audit.unavailable": "only the server's operator can make its audit log fail",
    "error.internal": "a peer under test can't be made to have a bug",
    "close.server.shutdown": "needs the server under test to be shut down by its operator",
    "transfer.get.unknown_size": "needs a file whose status misstates its size (Linux /proc, "
    "/sys), which a server under test need not have nor let a key read; rexecd's own tests "
    "(tests/transfer/test_outside_findings.py) check it",
}


def normalise(text: str) -> str:
    return " ".join(text.replace("**", "").replace("`", "").split())


def blocks() -> list[str]:
    """protocol.md cut into bullets and paragraphs (the unit a requirement
    id belongs to)."""
    out: list[str] = []
    current: list[str] = []
    for line in PROTOCOL_MD.read_text(encoding="utf-8").splitlines():
        starts = line.startswith(("- ", "#", "|"))
        if not line.strip() or starts:
            if current:
                out.append(" ".join(current))
            current = []
        if line.strip():
            current.append(line.strip())
    if current:
        out.append(" ".join(current))
    return out


def requirement_blocks() -> dict[str, str]:
    """Each requirement id → the normalised text of the block defining it:
    the bullet it leads, else the first block naming it (ids defined inline,
    such as error.message.no_echo; later mentions are cross-references)."""
    found: dict[str, str] = {}
    for block in blocks():
        lead = re.match(r"- \*\*\[([a-z0-9_.]+)\]\*\*", block)
        if lead:
            found[lead.group(1)] = normalise(block)
    for block in blocks():
        for rid in ID.findall(block):
            found.setdefault(rid, normalise(block))
    return found


def must_ids() -> set[str]:
    """Ids whose bullet says MUST (the rule the issue sets for coverage)."""
    return {rid for rid, text in requirement_blocks().items() if "MUST" in text}


def case_requirements() -> set[str]:
    return {case.requirement_id for case in all_cases()}


def covered() -> set[str]:
    """Requirements a server case or a client-mode scenario checks."""
    return case_requirements() | set(CLIENT_CHECKS)


def test_protocol_md_is_parsed() -> None:
    ids = requirement_blocks()
    assert len(ids) >= 60 and "frame.length.negative" in ids
    assert {"frame.length.negative", "auth.mac.verify", "process.reaped"} <= must_ids()


@pytest.mark.parametrize("rid", sorted(must_ids()))
def test_every_must_is_covered(rid: str) -> None:
    assert rid in covered(), (
        f"MUST requirement {rid} has no conformance case and no client-mode scenario"
    )


def test_every_requirement_is_covered_or_has_a_reason() -> None:
    missing = set(requirement_blocks()) - covered() - set(NO_CASE)
    assert not missing, f"requirements without a case: {sorted(missing)}"
    assert not set(NO_CASE) & covered(), "NO_CASE lists a requirement that is covered"


@pytest.mark.parametrize("rid", sorted(CLIENT_CHECKS))
def test_client_checks_name_real_requirements_and_scenarios(rid: str) -> None:
    assert rid in REQUIREMENTS, f"{rid} is checked in client mode but not quoted"
    assert CLIENT_CHECKS[rid]
    for name in CLIENT_CHECKS[rid]:
        mode = name.removeprefix("handshake:")
        assert (mode in HANDSHAKES) if name.startswith("handshake:") else (name in SCENARIOS), name


@pytest.mark.parametrize("rid", sorted(REQUIREMENTS))
def test_quote_is_verbatim(rid: str) -> None:
    blocks_by_id = requirement_blocks()
    assert rid in blocks_by_id, f"{rid} is not a requirement id of protocol.md"
    assert normalise(REQUIREMENTS[rid].quote) in blocks_by_id[rid]


@pytest.mark.parametrize("rid", sorted(REQUIREMENTS))
def test_level_agrees_with_the_quote(rid: str) -> None:
    quote = REQUIREMENTS[rid].quote
    expected = Level.SHOULD if "SHOULD" in quote and "MUST" not in quote else Level.MUST
    assert REQUIREMENTS[rid].level is expected


def test_case_metadata() -> None:
    cases = all_cases()
    ids = [case.id for case in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    for case in cases:
        assert re.fullmatch(r"[a-z0-9_.]+(/[A-Za-z0-9_.-]+)?", case.id), case.id
        assert case.expected and case.description and case.quote
        assert case.requirement_id in REQUIREMENTS


def test_every_must_of_protocol_md_is_quoted() -> None:
    """The suite's own coverage report can only see the rules it quotes."""
    assert must_ids() <= set(REQUIREMENTS), sorted(must_ids() - set(REQUIREMENTS))


def test_the_suite_reports_no_must_without_a_case() -> None:
    assert uncovered(all_cases()) == []
    assert coverage_line(all_cases()) == "MUST requirements without a case: none"


def test_the_suite_reports_a_must_without_a_case_by_id() -> None:
    rest = [
        case
        for case in all_cases()
        if case.requirement_id not in {"timeout.kill.tree", "output.limit"}
    ]
    assert uncovered(rest) == ["output.limit", "timeout.kill.tree"]
    assert coverage_line(rest).endswith(": output.limit, timeout.kill.tree")


def test_list_reports_the_coverage_on_stderr() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "rexec.conformance", "--list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert listed.stderr.strip() == "MUST requirements without a case: none"
    assert len(listed.stdout.splitlines()) == len(all_cases())
