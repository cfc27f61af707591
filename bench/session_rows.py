"""The rows of issue 15 that need whole client processes: cold start, pty
echo and put/get, each against OpenSSH in the same run (``bench/run.py``
calls :func:`measure`, then :func:`issue_table` for the verdicts).

* cold: the ``rexec`` console script, ``rexec run HOST true`` from nothing
  (interpreter start, imports, connect, handshake, run) against ``ssh HOST
  true`` without a ControlMaster; wall seconds of the whole process.
* echo: keystroke to echo on a local pty holding ``rexec run -t HOST -- cat``
  and ``ssh -tt HOST cat`` (``interactive_bench.LatencyRow``).
* put/get: one file of random bytes on /dev/shm, ``rexec put``/``get``
  against ``scp`` and ``sftp -b`` (``interactive_bench.TransferRow``), with
  the client's and the server's peak RSS.

Without OpenSSH the rexec rows are still measured and the ssh references are
skipped with a line.
"""

from __future__ import annotations

import compileall
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import interactive_bench as ib
import local_sshd

MiB = 1 << 20


class _RexecOnly(ib.Servers):
    """rexecd alone, for a machine without OpenSSH."""

    def start(self) -> None:
        self.start_rexecd()


def _rexec_console_script() -> list[str]:
    """The ``rexec`` a user types: the console script next to this Python."""
    script = Path(sys.executable).parent / "rexec"
    return [str(script)] if script.exists() else ib.REXEC_CLI


def _compile_like_an_install() -> None:
    """Write the bytecode of rexec's own modules and of every installed one
    (pydantic, asyncio's dependencies…), as ``pip install`` does. The cold
    row measures a program as installed: with ``PYTHONDONTWRITEBYTECODE=1``
    (this project's machines set it) and a venv made with ``pip install
    --no-compile``, every cold ``rexec`` would compile pydantic and rexec from
    source (444 ms instead of about 250 ms a run on the bench machine).
    ``__pycache__`` is ignored by git."""
    for directory in (ib.ROOT / "rexec", ib.ROOT / "client", sysconfig.get_paths()["purelib"]):
        compileall.compile_dir(directory, quiet=1, workers=0)


def _cold_once(argv: list[str]) -> float:
    r = ib.run_client(argv, timeout=60)
    if r["rc"] != 0:
        raise RuntimeError(f"{argv[0]} exited {r['rc']}: {r['stderr'][-300:]!r}")
    return r["wall"]


def measure(reps: int, size: int, echo_samples: int, log) -> tuple[dict, list[tuple[str, str]]]:
    """Every row, ``reps`` interleaved repetitions; returns ``{row: [value per
    repetition]}`` (seconds; MB/s for transfers; bytes for ``*-rss``) and the
    skipped rows with why."""
    skipped: list[tuple[str, str]] = []
    tmp = Path(tempfile.mkdtemp(prefix="rexec-bench-s-", dir="/dev/shm"))
    no_ssh = local_sshd.available()
    servers = (_RexecOnly if no_ssh else ib.Servers)(tmp)
    if no_ssh:
        skipped.append(("OpenSSH references (cold ssh, ssh -tt, scp, sftp)", no_ssh))
    out: dict[str, list] = {}
    echo_rows: list[ib.LatencyRow] = []
    try:
        _compile_like_an_install()
        servers.start()
        rexec_cold = _rexec_console_script() + [
            "run",
            "--key-file",
            str(servers.key_file),
            servers.address,
            "true",
        ]
        cold = {"rexec": rexec_cold}
        echo_rows = [r for r in ib.latency_rows(servers) if r.name in ("local", "rexec-run-t")]
        xfer_rows = [r for r in ib.transfer_rows(servers, tmp) if r.name == "rexec-cli"]
        if not no_ssh:
            cold["ssh"] = servers.sshd.argv(mux=False) + ["true"]
            echo_rows += [r for r in ib.latency_rows(servers) if r.name == "ssh-tt"]
            xfer_rows += [r for r in ib.transfer_rows(servers, tmp) if r.name in ("scp", "sftp")]
        for row in echo_rows:
            row.open()
        src = tmp / "source.bin"
        ib.make_file(src, size)
        (tmp / "out").mkdir()
        for argv in cold.values():  # page the programs in once, untimed
            _cold_once(argv)
        for rep in range(reps):
            k = rep % 2
            for name, argv in list(cold.items())[k:] + list(cold.items())[:k]:
                walls = [_cold_once(argv) for _ in range(3)]
                out.setdefault(f"cold/{name}", []).append(statistics.median(walls))
                log(f"rep {rep + 1}/{reps} cold {name:8} {statistics.median(walls) * 1e3:.0f} ms")
            k = rep % len(echo_rows)
            for row in echo_rows[k:] + echo_rows[:k]:
                value = statistics.median(row.measure(echo_samples, 0.01))
                out.setdefault(f"echo/{row.name}", []).append(value)
                log(f"rep {rep + 1}/{reps} echo {row.name:12} {value * 1e3:.3f} ms")
            k = rep % len(xfer_rows)
            for direction in ("put", "get"):
                for row in xfer_rows[k:] + xfer_rows[:k]:
                    dst = tmp / "out" / f"{direction}-{row.name}.bin"
                    try:
                        r = row.transfer(direction, src, dst, size)
                    finally:
                        dst.unlink(missing_ok=True)
                    out.setdefault(f"{direction}/{row.name}", []).append(r["mb_s"])
                    out.setdefault(f"{direction}/{row.name}-client-rss", []).append(r["maxrss"])
                    out.setdefault(f"{direction}/{row.name}-server-rss", []).append(
                        r["server_peak"]
                    )
                    log(
                        f"rep {rep + 1}/{reps} {direction} {row.name:9} {r['mb_s']:,.0f} MB/s, client "
                        f"{r['maxrss'] / MiB:.0f} MiB, server {r['server_peak'] / MiB:.0f} MiB"
                    )
    finally:
        for row in echo_rows:
            row.close()
        servers.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return out, skipped


def _ratio(xs, ys):
    rs = [x / y for x, y in zip(xs or [], ys or [], strict=False) if x is not None and y]
    return (statistics.median(rs), min(rs), max(rs)) if rs else None


def _med(xs):
    xs = [x for x in xs or [] if x is not None]
    return statistics.median(xs) if xs else None


def issue_table(res: dict, rss: dict, sess: dict, size: int, bulk_bytes: int) -> str:
    """Issue 15's table from one run: rexec, the reference, the ratio's
    median [min–max] over repetitions, the goal and the verdict."""
    lines = [
        "| what | rexec | reference in the same run | ratio | goal | verdict |",
        "|---|---|---|---|---|---|",
    ]

    def row(what, mine, ref, r, goal, ok):
        verdict = "—" if r is None else ("**met**" if ok(r[0]) else "**not met**")
        shown = "not measured" if r is None else f"{r[0]:.2f}x [{r[1]:.2f}–{r[2]:.2f}]"
        lines.append(f"| {what} | {mine} | {ref} | {shown} | {goal} | {verdict} |")

    def ms(x):
        return "—" if x is None else f"{x * 1e3:.2f} ms" if x < 0.01 else f"{x * 1e3:.0f} ms"

    def rate(x, unit):
        return "—" if x is None else f"{x:,.0f} {unit}"

    rt, conc, bulk = res.get("rt", {}), res.get("conc", {}), res.get("bulk", {})
    lib_rt = [x and x / 1e3 for x in rt.get("rexec-lib", [])]
    loc_rt = [x and x / 1e3 for x in rt.get("local", [])]
    row(
        "warm `true` round trip, client library",
        ms(_med(lib_rt)),
        f"local spawn {ms(_med(loc_rt))}",
        _ratio(lib_rt, loc_rt),
        "≤ 1.25x",
        lambda m: m <= 1.25,
    )
    row(
        "`true` at 16 concurrent, client library",
        rate(_med(conc.get("rexec-lib")), "/s"),
        f"local spawn {rate(_med(conc.get('local')), '/s')}",
        _ratio(conc.get("rexec-lib"), conc.get("local")),
        "≥ 0.9x",
        lambda m: m >= 0.9,
    )
    row(
        "cold `rexec run HOST true` from a shell",
        ms(_med(sess.get("cold/rexec"))),
        f"cold `ssh HOST true` {ms(_med(sess.get('cold/ssh')))}",
        _ratio(sess.get("cold/rexec"), sess.get("cold/ssh")),
        "≤ 0.5x",
        lambda m: m <= 0.5,
    )
    row(
        "pty keystroke echo (`run -t -- cat`)",
        ms(_med(sess.get("echo/rexec-run-t"))),
        f"`ssh -tt HOST cat` {ms(_med(sess.get('echo/ssh-tt')))}; local pty "
        f"{ms(_med(sess.get('echo/local')))}",
        _ratio(sess.get("echo/rexec-run-t"), sess.get("echo/ssh-tt")),
        "≤ 1.0x",
        lambda m: m <= 1.0,
    )
    label = f"{size / MiB:,.0f} MiB (tmpfs)"
    for d in ("put", "get"):
        for peer in ("scp", "sftp"):
            row(
                f"{d} of {label} vs {peer}",
                rate(_med(sess.get(f"{d}/rexec-cli")), "MB/s"),
                f"{peer} {rate(_med(sess.get(f'{d}/{peer}')), 'MB/s')}",
                _ratio(sess.get(f"{d}/rexec-cli"), sess.get(f"{d}/{peer}")),
                "≥ 4x",
                lambda m: m >= 4,
            )
    gib = "1 GiB" if bulk_bytes == 1 << 30 else f"{bulk_bytes / MiB:,.0f} MiB"
    row(
        f"{gib} of stdout, client library",
        rate(_med(bulk.get("rexec-lib")), "MB/s"),
        f"local spawn's pipe {rate(_med(bulk.get('local')), 'MB/s')}",
        _ratio(bulk.get("rexec-lib"), bulk.get("local")),
        "≥ 0.85x",
        lambda m: m >= 0.85,
    )
    server = [v for k in ("rexec", "rexec-lib") for v in rss.get(k, [])]
    server += [v for k, vs in sess.items() if k.endswith("rexec-cli-server-rss") for v in vs]
    client = [v for k, vs in sess.items() if k.endswith("rexec-cli-client-rss") for v in vs]
    for who, vals in (("server", server), ("client (put/get)", client)):
        peak = max(vals) / MiB if vals else None
        lines.append(
            f"| {who} peak RSS in all of these | "
            f"{'—' if peak is None else f'{peak:.0f} MiB'} | | | < 64 MiB | "
            f"{'—' if peak is None else '**met**' if peak < 64 else '**not met**'} |"
        )
    return "\n".join(lines)


def stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
