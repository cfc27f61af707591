"""The suite against protocol.md: every MUST has a case, every quote is
verbatim, every level agrees with the document."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rexec.conformance import REQUIREMENTS, Level, all_cases

PROTOCOL_MD = Path(__file__).resolve().parents[2] / "protocol.md"
ID = re.compile(r"\*\*\[([a-z0-9_.]+)\]\*\*")

#: Requirements with no case, and why none can exist from the client side.
NO_CASE = {
    "close.server.shutdown": "needs the server under test to be shut down by its operator",
}
#: Requirements added to protocol.md after the suite was written (the file
#: transfer section, put/get): their cases are owed. Listed so the gap is
#: explicit; the MUST ones are strict xfails, so adding a case without
#: removing the entry fails too.
PENDING = {
    "transfer.cancel", "transfer.errors", "transfer.get.regular", "transfer.get.stream",
    "transfer.id", "transfer.path", "transfer.put.atomic", "transfer.put.data",
    "transfer.put.digest", "transfer.put.done", "transfer.put.half_close", "transfer.put.mode",
    "transfer.terminal.one",
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


def test_protocol_md_is_parsed() -> None:
    ids = requirement_blocks()
    assert len(ids) >= 60 and "frame.length.negative" in ids
    assert {"frame.length.negative", "auth.mac.verify", "process.reaped"} <= must_ids()


@pytest.mark.parametrize("rid", [
    pytest.param(rid, marks=pytest.mark.xfail(strict=True, reason="case owed (PENDING)"))
    if rid in PENDING else rid
    for rid in sorted(must_ids())
])
def test_every_must_has_a_case(rid: str) -> None:
    assert rid in case_requirements(), f"MUST requirement {rid} has no conformance case"


def test_every_requirement_has_a_case_or_a_reason() -> None:
    missing = set(requirement_blocks()) - case_requirements() - set(NO_CASE) - PENDING
    assert not missing, f"requirements without a case: {sorted(missing)}"
    assert not PENDING & case_requirements(), "PENDING lists a requirement that has a case"
    assert not set(NO_CASE) & case_requirements(), "NO_CASE lists a requirement that has a case"


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
