"""Reports: a console line per case with totals, a JSON file with the wire
log of every case, and JUnit XML for CI.

Colour is used only when the stream is a terminal and ``NO_COLOR`` is unset
(https://no-color.org).
"""

from __future__ import annotations

import collections
import json
import os
import xml.etree.ElementTree as ET
from typing import Any, TextIO

from .runner import Result, Verdict

_COLOURS = {
    Verdict.PASS: "\033[32m",
    Verdict.FAIL: "\033[31m",
    Verdict.NON_STRICT: "\033[33m",
    Verdict.UNSUPPORTED: "\033[36m",
    Verdict.SETUP_ERROR: "\033[35m",
}
_RESET = "\033[0m"


def use_colour(stream: TextIO) -> bool:
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()


class Console:
    """Writes one line per result as it arrives, then the totals."""

    def __init__(
        self, stream: TextIO, *, colour: bool | None = None, verbose: bool = False
    ) -> None:
        self.stream = stream
        self.colour = use_colour(stream) if colour is None else colour
        self.verbose = verbose

    def _verdict(self, verdict: Verdict) -> str:
        text = f"{verdict.value:<11}"
        return f"{_COLOURS[verdict]}{text}{_RESET}" if self.colour else text

    def result(self, result: Result) -> None:
        line = f"{self._verdict(result.verdict)} {result.case.level.value:<6} {result.case.id}"
        if result.verdict is not Verdict.PASS or self.verbose:
            expected = " | ".join(sorted(result.case.expected))
            line += f"\n{'':18}expected {expected}; observed {result.observed}"
            if result.detail:
                line += f" ({result.detail})"
        print(line, file=self.stream, flush=True)

    def summary(self, results: list[Result], elapsed: float) -> None:
        counts = collections.Counter(r.verdict for r in results)
        parts = [f"{counts.get(v, 0)} {v.value}" for v in Verdict]
        print(
            f"\n{len(results)} cases in {elapsed:.1f} s: " + ", ".join(parts),
            file=self.stream,
            flush=True,
        )


def to_json(results: list[Result], meta: dict[str, Any]) -> dict[str, Any]:
    counts = collections.Counter(r.verdict.value for r in results)
    return {"meta": meta, "totals": dict(counts), "cases": [r.to_json() for r in results]}


def write_json(path: str, results: list[Result], meta: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as file:
        json.dump(to_json(results, meta), file, indent=1)
        file.write("\n")


def write_junit(path: str, results: list[Result], *, suite_name: str = "rexec-conformance") -> None:
    """JUnit XML: fail → <failure type="MUST">, non-strict → <failure
    type="SHOULD">, unsupported → <skipped>, setup-error → <error>."""
    counts = collections.Counter(r.verdict for r in results)
    suite = ET.Element(
        "testsuite",
        name=suite_name,
        tests=str(len(results)),
        failures=str(counts[Verdict.FAIL] + counts[Verdict.NON_STRICT]),
        errors=str(counts[Verdict.SETUP_ERROR]),
        skipped=str(counts[Verdict.UNSUPPORTED]),
        time=f"{sum(r.duration for r in results):.3f}",
    )
    for result in results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"{suite_name}.{result.case.area}",
            name=result.case.id,
            time=f"{result.duration:.3f}",
        )
        text = (
            f"[{result.case.level.value}] {result.case.quote}\nexpected: "
            f"{' | '.join(sorted(result.case.expected))}\nobserved: {result.observed}\n"
            f"{result.detail}"
        )
        message = f"expected {' | '.join(sorted(result.case.expected))}; observed {result.observed}"
        if result.verdict is Verdict.FAIL:
            ET.SubElement(case, "failure", message=message, type="MUST").text = text
        elif result.verdict is Verdict.NON_STRICT:
            ET.SubElement(case, "failure", message=message, type="SHOULD").text = text
        elif result.verdict is Verdict.UNSUPPORTED:
            ET.SubElement(case, "skipped", message=result.detail or "unsupported")
        elif result.verdict is Verdict.SETUP_ERROR:
            ET.SubElement(case, "error", message=result.detail or "setup error").text = text
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def list_cases(cases: list[Any], stream: TextIO) -> None:
    """``--list``: id, level and description of each case."""
    for case in cases:
        print(f"{case.id:<48} {case.level.value:<6} {case.description}", file=stream)
