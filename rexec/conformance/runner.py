"""Selecting cases, running them one at a time, and judging what they saw.

Verdicts:

``pass``         the observed outcome is in the case's set of acceptable outcomes;
``fail``         it is not, and the requirement is a MUST;
``non-strict``   it is not, and the requirement is a SHOULD;
``unsupported``  the implementation declared it can't do what the case needs
                 (a ``spawn.*``/``pty.failed`` error for a protocol.md §10
                 command, or a limit the case can't work with);
``setup-error``  the case could not get to what it tests (connect, handshake,
                 a helper command) or the suite itself failed: no judgement.

Cases run sequentially, each on its own connections, within a time budget of
its ``timeout`` × the multiplier; running out of it is the outcome
``case-timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import fnmatch
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any

from .case import UNSUPPORTED, Case, Context, Observation, Options
from .client import SetupError, Unsupported
from .requirements import Level
from .wire import PeerFrameError, Target


class Verdict(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    NON_STRICT = "non-strict"
    UNSUPPORTED = "unsupported"
    SETUP_ERROR = "setup-error"


@dataclasses.dataclass
class Result:
    """One case's verdict, with what was expected and what was seen."""

    case: Case
    verdict: Verdict
    observed: str
    detail: str
    duration: float
    wire: dict[str, Any]
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.case.id,
            "requirement": self.case.requirement_id,
            "area": self.case.area,
            "level": self.case.level.value,
            "quote": self.case.quote,
            "description": self.case.description,
            "expected": sorted(self.case.expected),
            "observed": self.observed,
            "verdict": self.verdict.value,
            "detail": self.detail,
            "duration": round(self.duration, 3),
            "data": self.data,
            "wire": self.wire,
        }


def select(
    cases: Iterable[Case], include: list[str] | None, exclude: list[str] | None
) -> list[Case]:
    """Cases whose id (or requirement id) matches an ``include`` glob (all
    when none is given) and no ``exclude`` glob."""

    def matches(case: Case, patterns: list[str]) -> bool:
        return any(
            fnmatch.fnmatchcase(case.id, p) or fnmatch.fnmatchcase(case.requirement_id, p)
            for p in patterns
        )

    return [
        case
        for case in cases
        if (not include or matches(case, include)) and not (exclude and matches(case, exclude))
    ]


def judge(case: Case, observation: Observation) -> Verdict:
    if observation.outcome == UNSUPPORTED:
        return Verdict.UNSUPPORTED
    if observation.outcome in case.expected:
        return Verdict.PASS
    return Verdict.FAIL if case.level is Level.MUST else Verdict.NON_STRICT


def budget(case: Case, options: Options) -> float:
    """Seconds case may take: its timeout, stretched for the waits that
    depend on options, times the multiplier."""
    seconds = case.timeout
    if case.requirement_id == "auth.deadline":
        seconds = max(seconds, options.auth_deadline + 5.0)
    if "kill" in case.requirement_id or case.requirement_id in ("disconnect.kill",):
        seconds += max(0.0, options.kill_grace - 2.0) * 2
    waited = {
        "timeout.frame": options.frame_timeout,
        "timeout.idle": options.idle_timeout,
        "timeout.stall": options.stall_timeout,
    }.get(case.requirement_id)
    if waited is not None:
        # The case waits for the timeout, a TERM-to-KILL grace each way and
        # a margin before it concludes; the budget leaves room for its verdict.
        seconds += waited + 2 * options.kill_grace + 10.0
    if case.requirement_id in ("exit.by.process", "exit.pipes_held"):
        seconds += max(0.0, options.drain_grace - 2.0)
    return seconds * options.multiplier


#: A path no server has: the transfer probe's get is refused or not found.
PROBE_PATH = "/nonexistent/rexec-conformance-transfer-probe"


async def transfers_refused(target: Target, options: Options) -> bool:
    """Whether the server refuses file transfers as such (a ``get`` answered
    with ``command.denied``): they are optional, as ptys are, so the transfer
    cases are then unsupported rather than failed. False when unsure."""
    ctx = Context(target, options)
    try:
        client = await ctx.client()
        command_id = await client.get(PROBE_PATH)
        await client.wait_terminal(command_id, ctx.t(5.0))
        error = client.records[command_id].error
        return error is not None and not error.fatal and error.code == "command.denied"
    except Exception:  # noqa: BLE001 - the cases themselves report what went wrong
        return False
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ctx.cleanup(), 5.0)


def uses_transfers(case: Case) -> bool:
    return case.area.startswith("transfer")


async def run_case(
    case: Case,
    target: Target,
    options: Options,
    *,
    transfers_off: bool = False,
) -> Result:
    """Run one case to a verdict; never raises (but for cancellation). With
    ``transfers_off`` (see ``transfers_refused``) a transfer case is
    unsupported without being run."""
    ctx = Context(target, options)
    started = time.monotonic()
    verdict: Verdict | None = None
    try:
        if transfers_off and uses_transfers(case):
            raise Unsupported("the server refuses file transfers (command.denied)")
        observation = await asyncio.wait_for(case.function(ctx), budget(case, options))
    except SetupError as exc:
        observation, verdict = Observation("setup-error", str(exc)), Verdict.SETUP_ERROR
    except Unsupported as exc:
        observation = Observation(UNSUPPORTED, str(exc))
    except PeerFrameError as exc:
        # Failed here because the case could not read on; the rule the frame
        # breaks is named, so the fault is not mistaken for the case's own.
        observation = Observation(
            f"invalid-frame-from-peer:{exc.code}", str(exc), {"rule_broken": exc.rule}
        )
    except TimeoutError:
        observation = Observation(
            "case-timeout", f"no verdict within {budget(case, options):.1f} s"
        )
    except (ConnectionError, OSError) as exc:
        observation = Observation("connection-lost", f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # noqa: BLE001 - a suite bug must not pass as the peer's fault
        observation = Observation(
            "setup-error",
            "suite error: " + "".join(traceback.format_exception_only(type(exc), exc)).strip(),
        )
        verdict = Verdict.SETUP_ERROR
        observation.data["traceback"] = traceback.format_exc()
    finally:
        try:
            await asyncio.wait_for(ctx.cleanup(), 5.0)
        except Exception:  # noqa: BLE001, S110 - cleanup is best effort
            pass
    return Result(
        case=case,
        verdict=verdict or judge(case, observation),
        observed=observation.outcome,
        detail=observation.detail,
        duration=time.monotonic() - started,
        wire=ctx.log.to_json(),
        data=observation.data,
    )


async def run_suite(
    cases: list[Case],
    target: Target,
    options: Options,
    on_result: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Run ``cases`` in order; ``on_result`` is called after each."""
    results = []
    transfers_off = any(map(uses_transfers, cases)) and await transfers_refused(target, options)
    for case in cases:
        result = await run_case(case, target, options, transfers_off=transfers_off)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def exit_status(results: list[Result], *, strict: bool) -> int:
    """0 when no MUST failed (and, with ``strict``, no SHOULD either); else 1."""
    bad = {Verdict.FAIL} | ({Verdict.NON_STRICT} if strict else set())
    return 1 if any(r.verdict in bad for r in results) else 0
