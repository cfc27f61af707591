"""The report of ``bench/floor.py``: issue 15's rows with, per row, the
reference, the floor (the fastest variant of each repetition), rexec, the
goal and the verdict "goal reachable in Python: yes/no (floor = N x)"; then
every variant's median and the floor's peak memory."""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import dataclass

MiB = 1 << 20


@dataclass(frozen=True)
class Row:
    key: str  # the measurement's row in Bench.data
    what: str
    ref: str  # the reference contender's name
    ref_label: str
    goal: float
    higher_is_better: bool
    floor_filter: str = ""  # floors whose name contains it ("" = every floor)
    floor_exclude: str = ""
    prefix: str = "floor"  # what a floor contender's name starts with
    previous: tuple[str, str, str] = ("", "", "")  # results.json: section, rexec's key, the ref's

    def floors(self, names) -> list[str]:
        return [
            n
            for n in names
            if n.startswith(self.prefix)
            and self.floor_filter in n
            and not (self.floor_exclude and self.floor_exclude in n)
        ]

    def goal_text(self) -> str:
        return f"{'≥' if self.higher_is_better else '≤'} {self.goal:g}x"

    def meets(self, ratio: float) -> bool:
        return ratio >= self.goal if self.higher_is_better else ratio <= self.goal


def rows(args) -> list[Row]:
    xfer = f"{args.xfer_bytes / MiB:,.0f} MiB (tmpfs)"
    bulk = "1 GiB" if args.bulk_bytes == 1 << 30 else f"{args.bulk_bytes / MiB:,.0f} MiB"
    out = [
        Row(
            "rt",
            "warm `true` round trip",
            "ref:local",
            "local spawn",
            1.25,
            False,
            previous=("results/rt", "rexec-lib", "local"),
        ),
        Row(
            "conc",
            "`true` at 16 concurrent",
            "ref:local",
            "local spawn",
            0.9,
            True,
            previous=("results/conc", "rexec-lib", "local"),
        ),
        Row(
            "cold",
            "cold start: socket, json, pydantic",
            "ref:ssh",
            "cold `ssh HOST true`",
            0.5,
            False,
            floor_exclude="asyncio",
            previous=("session_rows", "cold/rexec", "cold/ssh"),
        ),
        Row(
            "cold",
            "cold start, asyncio imported too",
            "ref:ssh",
            "cold `ssh HOST true`",
            0.5,
            False,
            floor_filter="asyncio",
            previous=("session_rows", "cold/rexec", "cold/ssh"),
        ),
        Row(
            "cold",
            "cold start, pydantic-core validator, no model (informative)",
            "ref:ssh",
            "cold `ssh HOST true`",
            0.5,
            False,
            prefix="core:",
            previous=("session_rows", "cold/rexec", "cold/ssh"),
        ),
        Row(
            "echo",
            "pty keystroke echo (`cat`)",
            "ref:ssh-tt",
            "`ssh -tt HOST cat`",
            1.0,
            False,
            previous=("session_rows", "echo/rexec-run-t", "echo/ssh-tt"),
        ),
    ]
    for d in ("put", "get"):
        for peer in ("scp", "sftp"):
            out.append(
                Row(
                    d,
                    f"{d} of {xfer}, SHA-256 both ends",
                    f"ref:{peer}",
                    peer,
                    4.0,
                    True,
                    previous=("session_rows", f"{d}/rexec-cli", f"{d}/{peer}"),
                )
            )
    out.append(
        Row(
            "bulk",
            f"{bulk} of stdout",
            "ref:local",
            "local spawn's pipe",
            0.85,
            True,
            previous=("results/bulk", "rexec-lib", "local"),
        )
    )
    return out


def _med(xs):
    xs = [x for x in xs or [] if x is not None]
    return statistics.median(xs) if xs else None


def _ratio(xs, ys):
    rs = [x / y for x, y in zip(xs or [], ys or [], strict=False) if x is not None and y]
    return (statistics.median(rs), min(rs), max(rs)) if rs else None


def _show(key: str, x) -> str:
    if x is None:
        return "—"
    if key in ("rt", "cold", "echo"):
        return f"{x * 1e3:.2f} ms" if x < 0.01 else f"{x * 1e3:.0f} ms"
    return f"{x:,.0f} /s" if key == "conc" else f"{x:,.0f} MB/s"


def _ratio_text(r) -> str:
    return "—" if r is None else f"{r[0]:.2f}x [{r[1]:.2f}–{r[2]:.2f}]"


def _previous(prev: dict | None, row: Row):
    """rexec's values and their ratios to the same run's reference, from results.json."""
    if not prev:
        return None, None
    section, mine, ref = row.previous
    data = prev
    for part in section.split("/"):
        data = data.get(part, {})
    scale = 1e-3 if row.key == "rt" else 1.0  # run.py keeps round trips in ms
    mine_v = [x * scale for x in data.get(mine, []) if x is not None]
    ref_v = [x * scale for x in data.get(ref, []) if x is not None]
    return _med(mine_v), _ratio(mine_v, ref_v)


def best_per_rep(data: dict, row: Row) -> list:
    """The floor of each repetition: its fastest variant."""
    series = [data.get(row.key, {})[n] for n in row.floors(data.get(row.key, {}))]
    pick = max if row.higher_is_better else min
    return [pick(vs) for vs in zip(*series, strict=False)] if series else []


def issue_table(bench, args, previous) -> list[str]:
    lines = [
        "| what | reference | floor (fastest Python) | floor ratio | rexec | rexec ratio | goal "
        "| goal reachable in Python? |",
        "|---|---|---|---|---|---|---|---|",
    ]
    data = bench.data
    for row in rows(args):
        got = data.get(row.key, {})
        ref = got.get(row.ref)
        floor = best_per_rep(data, row)
        fr = _ratio(floor, ref)
        if "rexec" in got:
            mine, rr, src = _med(got["rexec"]), _ratio(got["rexec"], ref), ""
        else:
            (mine, rr), src = _previous(previous, row), " (results.json)"
        best = max if row.higher_is_better else min
        meds = {n: _med(got[n]) for n in row.floors(got)}
        winner = best(meds, key=meds.get) if meds else "—"
        verdict = (
            "— (no reference)"
            if fr is None
            else f"**{'yes' if row.meets(fr[0]) else 'no'}** (floor = {fr[0]:.2f}x)"
        )
        lines.append(
            f"| {row.what} | {row.ref_label} {_show(row.key, _med(ref))} | "
            f"{_show(row.key, _med(floor))} ({winner.removeprefix('floor:')}) | {_ratio_text(fr)} | "
            f"{_show(row.key, mine)}{src} | {_ratio_text(rr)} | {row.goal_text()} | {verdict} |"
        )
    return lines


def variants_table(bench) -> list[str]:
    lines = ["| row | contender | median | per repetition |", "|---|---|---|---|"]
    for key, contenders in bench.data.items():
        for name, values in sorted(contenders.items()):
            each = ", ".join(_show(key, v) for v in values)
            lines.append(f"| {key} | {name} | {_show(key, _med(values))} | {each} |")
    return lines


def memory_lines(bench) -> list[str]:
    out = []
    for what, values in sorted(bench.memory.items()):
        if values and max(values):
            out.append(f"- {what}: peak {max(values) / MiB:.0f} MiB")
    return out


def load_average() -> str:
    """The 1, 5 and 15 minute load averages."""
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def render(bench, args, command: str, previous) -> str:
    head = [
        f"Floor run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: `{command}`; "
        f"{os.cpu_count()} CPUs, {platform.machine()}, Linux {platform.release()}, Python "
        f"{platform.python_version()}; load average {bench.load_start} at the start, "
        f"{load_average()} at the end; "
        f"repetitions {args.reps}. Ratios per repetition, median [min–max].",
        "",
    ]
    worst = max(bench.foreign) if bench.foreign else 0.0
    tail = [
        "",
        f"Other jobs used at most {worst:.2f} CPU during a kept measurement; "
        + (f"stayed noisy: {'; '.join(bench.noisy)}." if bench.noisy else "none stayed noisy."),
    ]
    tail += [f"Skipped: {what}: {why}" for what, why in bench.skipped]
    return "\n".join(
        head
        + issue_table(bench, args, previous)
        + ["", "Every contender (the floor of a repetition is its fastest `floor:` variant):", ""]
        + variants_table(bench)
        + ["", "Peak RSS (sampled every 10 ms; client = the whole client process):", ""]
        + memory_lines(bench)
        + tail
    )
