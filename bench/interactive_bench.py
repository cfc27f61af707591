#!/usr/bin/env python3
"""rexec's interactive side against OpenSSH, in one run on one machine (issue 3).

    python bench/interactive_bench.py [--size 1G] [--reps 3] [--samples 300]
                                      [--only latency,transfer] [--no-profile]
                                      [--results bench/INTERACTIVE_RESULTS.md] [--json out.json]

1. Keystroke-to-echo latency on a pseudo-terminal: this script holds the
   master side of a local pty (pexpect), the client runs on its slave, the
   remote ``cat`` runs on a remote pty whose line discipline echoes. One byte
   is written, the time until that byte comes back is one sample (a pause of
   ``--gap`` between samples, as typing has). Rows: a local pty running
   ``cat`` directly (floor), ``rexec run -t HOST -- cat``, ``rexec shell
   --pty`` (login shell, then ``exec cat``), ``ssh -tt HOST cat`` to the
   benchmark's own sshd.
2. What a line of ``rexec shell`` costs (``--only lines``): a ``true`` line
   typed again and again, from the Enter to the next prompt, on a local pty
   (pexpect). Rows: ``rexec shell`` (the CLI: prompt_toolkit, the remote
   bash's framing, the state snapshot after each line), the same lines
   through ``rexec_client.shell.session`` in this process (the mechanism
   without the local prompt), one ``rexec run`` of ``true`` per line on a
   warm connection (what a line cost before the session kept one shell),
   and ``ssh -tt HOST bash -l`` with the same line (a prompt of its own).
   Both shells read the account's login start-up files (``/etc/profile``,
   ``~/.profile``, ...), as ``rexec shell`` and ``ssh HOST`` do: a
   ``PROMPT_COMMAND`` set there (pyenv's hook forks ``stat`` at each
   prompt) then costs both the same, and the difference is rexec's own.
3. put/get throughput of one ``--size`` file (default 1 GiB, random bytes,
   on /dev/shm on both ends so no disk is involved): ``rexec put``/``rexec
   get`` (CLI, whole process: start-up, connect, hash pass, transfer, fsync,
   rename), the client library (``rexec_client.transfer.put/get`` in a
   worker process, on an open connection), ``scp`` and ``sftp -b`` to the
   local sshd (whole process). Peak RSS of the server's process tree
   (sampled every 10 ms, and VmHWM for rexecd) and of the client's tree
   (sampled; VmHWM for the library worker), CPU seconds of both.

Every repetition runs every row, in a rotating order; medians of the
repetitions are shown, ratios are taken within a repetition. Other jobs'
CPU is tracked as in run.py (``ForeignCpu``): a measurement during which they
used more than ``--max-foreign`` CPUs is retaken (``--retries``), and what
stayed noisy is reported.

Finally (unless ``--no-profile``) one more ``rexec get`` runs with py-spy
attached to both the server and the client, to show where their time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import local_sshd  # noqa: E402
from run import (  # noqa: E402
    CLK_TCK,
    ForeignCpu,
    RssSampler,
    _read_status,
    _reset_hwm,
    _ticks,
    _tree,
    start_listening_process,
    stop_process,
    wait_for_quiet,
    warm_memory,
)

MiB = 1 << 20
GiB = 1 << 30
LETTERS = b"abcdefghijklmnopqrstuvwxyz"
#: Characters typed on one line before it is ended (and cat's copy drained).
LINE_LENGTH = 64
ENV = dict(
    os.environ,
    PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    TERM="xterm",
    LC_ALL="C",
)
#: ``python -m``-less entry point of the rexec CLI (no pyenv shim in between).
REXEC_CLI = [
    sys.executable,
    "-c",
    "import sys; from rexec_client.cli import main; sys.exit(main())",
]


# --- the servers --------------------------------------------------------------------------


class Servers:
    """rexecd and the local sshd, both children of this process."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.rexecd = None
        self.sshd = None

    def start(self) -> None:
        self.start_rexecd()
        why = local_sshd.available()
        if why:
            raise SystemExit(f"the ssh rows need OpenSSH: {why}")
        self.sshd = local_sshd.LocalSshd(self.tmp / "sshd")
        self.sshd.start()

    def start_rexecd(self) -> None:
        d = self.tmp / "rexecd"
        d.mkdir()
        self.key_file = d / "key"
        self.rexecd, self.host, self.port = start_listening_process(
            [
                sys.executable,
                "-m",
                "rexec.daemon",
                "--port",
                "0",
                "--key-file",
                str(self.key_file),
                "--audit-log",
                "/dev/null",
                "--state-dir",
                str(d / "state"),
            ],
            env=ENV,
            pattern=b"rexecd listening on ",
        )
        self.address = f"{self.host}:{self.port}"

    def stop(self) -> None:
        stop_process(self.rexecd)
        if self.sshd is not None:
            self.sshd.stop()

    # argv builders ---------------------------------------------------------------------
    def rexec(self, *args: str) -> list[str]:
        sub, rest = args[0], args[1:]
        return REXEC_CLI + [sub, "--key-file", str(self.key_file), *rest]

    def ssh_options(self) -> list[str]:
        """The sshd's client options without the program, with ``-p PORT``
        removed (scp and sftp spell it ``-P``)."""
        base = self.sshd.base()[1:]
        i = base.index("-p")
        return base[:i] + base[i + 2 :] + ["-o", "ControlPath=none"]

    def ssh_tt(self, command: list[str]) -> list[str]:
        argv = self.sshd.argv(mux=False)
        return [argv[0], "-tt", *argv[1:], *command]

    def scp(self, src: str, dst: str) -> list[str]:
        return ["scp", "-q", "-P", str(self.sshd.port), *self.ssh_options(), src, dst]

    def sftp(self, batch: Path) -> list[str]:
        return [
            "sftp",
            "-q",
            "-P",
            str(self.sshd.port),
            *self.ssh_options(),
            "-b",
            str(batch),
            "root@127.0.0.1",
        ]

    def rexecd_pids(self) -> list[int]:
        return _tree(self.rexecd.pid)

    def sshd_pids(self) -> list[int]:
        return _tree(self.sshd.process.pid)


# --- 1. keystroke to echo -----------------------------------------------------------------


class EchoSession:
    """A program on the slave side of a local pty (pexpect), typed at one
    byte at a time once it echoes."""

    def __init__(
        self, argv: list[str], setup: bytes | None = None, ready: bytes | None = None
    ) -> None:
        import pexpect

        self.child = pexpect.spawn(argv[0], argv[1:], env=ENV, dimensions=(24, 80), echo=True)
        self.fd = self.child.child_fd
        if setup is not None:  # a shell: make it exec cat, wait for its marker
            self._read_until(ready, 30.0)  # the prompt, roughly: anything from the shell
            os.write(self.fd, setup)
            self._read_until(b"READY", 30.0)
        # The first echo may take a connection's set-up: wait for it untimed.
        self.line = b""
        self.type_one(LETTERS[0:1], timeout=30.0)
        self.end_line()

    def _read_until(self, marker: bytes | None, timeout: float) -> bytes:
        buf = b""
        deadline = time.monotonic() + timeout
        while marker is None or marker not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"no {marker!r} within {timeout} s; got {buf[-200:]!r}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    raise RuntimeError(f"EOF before {marker!r}; got {buf[-200:]!r}")
                buf += chunk
                if marker is None:
                    return buf
        return buf

    def type_one(self, byte: bytes, timeout: float = 10.0) -> float:
        """Write one byte, return the seconds until it is echoed."""
        fd = self.fd
        t = time.perf_counter()
        os.write(fd, byte)
        got = b""
        while byte not in got:
            ready, _, _ = select.select([fd], [], [], timeout)
            if not ready:
                raise RuntimeError(f"no echo of {byte!r} within {timeout} s")
            got += os.read(fd, 4096)
        elapsed = time.perf_counter() - t
        self.line += byte
        return elapsed

    def end_line(self) -> None:
        """Enter: the pty echoes CR LF, cat prints the line; drain both."""
        os.write(self.fd, b"\r")
        want = self.line + b"\r\n"
        buf = b""
        deadline = time.monotonic() + 10
        while not (buf.endswith(want) and buf.count(b"\n") >= 2):
            ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise RuntimeError(f"line not echoed back: {buf[-200:]!r}")
            buf += os.read(self.fd, 65536)
        self.line = b""

    def close(self) -> None:
        try:
            os.write(self.fd, b"\x04")  # ^D: cat ends, so does the session
            self.child.expect(__import__("pexpect").EOF, timeout=5)
        except Exception:  # noqa: BLE001
            pass
        self.child.close(force=True)


class LatencyRow:
    def __init__(self, name: str, label: str, argv, setup: bytes | None = None, ready=None) -> None:
        self.name, self.label, self.argv, self.setup, self.ready = name, label, argv, setup, ready
        self.session: EchoSession | None = None

    def open(self) -> None:
        self.session = EchoSession(self.argv, self.setup, self.ready)

    def measure(self, samples: int, gap: float) -> list[float]:
        s = self.session
        out = []
        for i in range(samples):
            out.append(s.type_one(LETTERS[i % 26 : i % 26 + 1]))
            if len(s.line) >= LINE_LENGTH:
                s.end_line()
            time.sleep(gap)
        s.end_line()
        return out

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None


def latency_rows(servers: Servers) -> list[LatencyRow]:
    return [
        LatencyRow("local", "local pty, `cat` (floor)", ["cat"]),
        LatencyRow(
            "rexec-run-t",
            "**rexec** `run -t HOST -- cat`",
            servers.rexec("run", "-t", servers.address, "--", "cat"),
        ),
        LatencyRow(
            "rexec-shell-pty",
            "**rexec** `shell --pty`, then `exec cat`",
            servers.rexec("shell", "--pty", servers.address),
            setup=b"echo RE''ADY; exec cat\r",
            ready=None,
        ),
        LatencyRow("ssh-tt", "OpenSSH `ssh -tt HOST cat`", servers.ssh_tt(["cat"])),
    ]


# --- 2. a line of rexec shell --------------------------------------------------------------

#: What ``ssh -tt HOST bash`` shows as its prompt in the line rows.
SSH_PROMPT = b"RXPROMPT> "
#: Sets that prompt; split by quotes so that the typed line's own echo can't
#: be taken for the first prompt (every line would then find the previous
#: line's prompt and measure nothing).
SSH_SETUP = b"PS1='RX''PROMPT> '\r"
#: How a new prompt of ``rexec shell`` starts (prompt_toolkit turns bracketed paste on).
REXEC_PROMPT = b"\x1b[?2004h"


class PromptSession:
    """A shell on the slave side of a local pty: type a line, wait for the
    next prompt."""

    def __init__(self, argv: list[str], prompt: bytes, setup: bytes = b"") -> None:
        import pexpect

        self.child = pexpect.spawn(argv[0], argv[1:], env=ENV, dimensions=(24, 200), timeout=60)
        self.child.delaybeforesend = None  # pexpect's default 50 ms would be measured
        self.prompt = prompt
        if setup:
            self.child.expect(rb"[$#] ", timeout=60)
            self.child.send(setup)
        self.child.expect_exact(prompt, timeout=60)

    def line(self, text: bytes) -> float:
        t = time.perf_counter()
        self.child.send(text + b"\r")
        self.child.expect_exact(self.prompt, timeout=30)
        return time.perf_counter() - t

    def close(self) -> None:
        self.child.sendeof()
        self.child.close(force=True)


class LibraryShell:
    """``rexec_client.shell.session`` in this process: lines without the CLI."""

    def __init__(self, servers: Servers) -> None:
        self.loop = asyncio.new_event_loop()
        self.servers = servers
        self.loop.run_until_complete(self._open())

    async def _open(self) -> None:
        from rexec.keyfile import load_key
        from rexec_client.dial import connect
        from rexec_client.shell.opening import open_shell
        from rexec_client.term.relay import InterruptForwarder

        async def discard(data: bytes) -> None:
            pass

        self.connection = await connect(
            self.servers.host, int(self.servers.port), load_key(self.servers.key_file)
        )
        self.shell = await open_shell(
            self.connection,
            discard,
            discard,
            snapshot=None,
            status=0,
            on_snapshot=lambda s: None,
            on_warning=print,
        )
        self.interrupts = InterruptForwarder()

    def line(self, text: bytes) -> float:
        t = time.perf_counter()
        self.loop.run_until_complete(
            self.shell.run_line(
                text.decode(), "run", typed_input=None, interrupts=self.interrupts, timeout=None
            )
        )
        return time.perf_counter() - t

    def close(self) -> None:
        self.loop.run_until_complete(self.shell.leave(0))
        self.loop.run_until_complete(self.connection.close())
        self.loop.close()


class RunPerLine:
    """One ``rexec run`` of the line (``sh -c``) per line, on a warm connection."""

    def __init__(self, servers: Servers) -> None:
        from rexec.keyfile import load_key
        from rexec_client.dial import connect

        self.loop = asyncio.new_event_loop()
        self.connection = self.loop.run_until_complete(
            connect(servers.host, int(servers.port), load_key(servers.key_file))
        )

    def line(self, text: bytes) -> float:
        t = time.perf_counter()
        self.loop.run_until_complete(self.connection.run(text.decode(), shell=True))
        return time.perf_counter() - t

    def close(self) -> None:
        self.loop.run_until_complete(self.connection.close())
        self.loop.close()


class LineRow:
    """One way of running lines; ``server_pids`` gives the processes that
    serve it (their CPU is counted with the client's)."""

    def __init__(self, name: str, label: str, open_session, server_pids) -> None:
        self.name, self.label, self.open_session = name, label, open_session
        self.server_pids = server_pids
        self.session = None
        #: CPU seconds per line of the last ``measure`` (client, server side).
        self.cpu = (0.0, 0.0)

    def open(self) -> None:
        self.session = self.open_session()

    def _client_pids(self) -> list[int]:
        child = getattr(self.session, "child", None)
        return _tree(child.pid) if child is not None else [os.getpid()]

    def measure(self, samples: int, gap: float) -> list[float]:
        def cpu(pids):
            return sum(_ticks(pid) for pid in pids) / CLK_TCK

        client, server = cpu(self._client_pids()), cpu(self.server_pids())
        out = []
        for _ in range(samples):
            out.append(self.session.line(b"true"))
            time.sleep(gap)
        self.cpu = (
            (cpu(self._client_pids()) - client) / samples,
            (cpu(self.server_pids()) - server) / samples,
        )
        return out

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None


def line_rows(servers: Servers) -> list[LineRow]:
    return [
        LineRow(
            "rexec-shell",
            "**rexec** `shell HOST` (the CLI, on a pty)",
            lambda: PromptSession(servers.rexec("shell", servers.address), REXEC_PROMPT),
            servers.rexecd_pids,
        ),
        LineRow(
            "rexec-session",
            "**rexec** `shell`'s session, in-process (no prompt drawn)",
            lambda: LibraryShell(servers),
            servers.rexecd_pids,
        ),
        LineRow(
            "rexec-run",
            "one `rexec run` (`sh -c`) per line, warm connection",
            lambda: RunPerLine(servers),
            servers.rexecd_pids,
        ),
        LineRow(
            "ssh-bash",
            "OpenSSH `ssh -tt HOST bash -l`",
            # -l: the start-up files rexec shell reads (see the docstring).
            lambda: PromptSession(servers.ssh_tt(["bash", "-l"]), SSH_PROMPT, setup=SSH_SETUP),
            servers.sshd_pids,
        ),
    ]


# --- 3. put/get ----------------------------------------------------------------------------


def run_client(argv: list[str], timeout: float = 600.0) -> dict:
    """Run a client process to its end: wall seconds, its CPU and peak RSS
    (``wait4``: children included; RSS sampled), its stdout and stderr."""
    out_f = tempfile.TemporaryFile()
    err_f = tempfile.TemporaryFile()
    t = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out_f, stderr=err_f, env=ENV)
    # Peak RSS by sampling the client's tree: its ru_maxrss would not do, a
    # forked child inherits the parent's high-water mark (dup_mm) and exec
    # keeps it.
    with RssSampler(lambda: _tree(proc.pid)) as sampler:
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    out_f.seek(0)
    err_f.seek(0)
    return {
        "wall": wall,
        "rc": proc.returncode,
        "cpu": usage.ru_utime + usage.ru_stime,
        "maxrss": sampler.peak,
        "stdout": out_f.read(),
        "stderr": err_f.read(),
    }


class TransferRow:
    """One way of moving the file; ``command(direction, src, dst)`` is the
    client's argv, ``server_pids`` the server tree whose RSS is sampled."""

    def __init__(self, name, label, command, server_pids, server_root, inner=False) -> None:
        self.name, self.label, self.command = name, label, command
        self.server_pids, self.server_root, self.inner = server_pids, server_root, inner

    def transfer(self, direction: str, src: Path, dst: Path, size: int) -> dict:
        pids = self.server_pids()
        hwm = len(pids) == 1 and _reset_hwm(pids[0])
        cpu0 = _ticks(self.server_root())
        with RssSampler(self.server_pids) as sampler:
            r = run_client(self.command(direction, src, dst))
        if r["rc"] != 0:
            raise RuntimeError(f"{self.name} {direction} exited {r['rc']}: {r['stderr'][-400:]!r}")
        time.sleep(0.05)  # let sshd reap its session processes (their CPU joins its cutime)
        r["server_cpu"] = (_ticks(self.server_root()) - cpu0) / CLK_TCK
        peak = sampler.peak
        if hwm:
            peak = max(peak, _read_status(pids[0]).get("VmHWM", 0))
        r["server_peak"] = peak
        got = dst.stat().st_size
        if got != size:
            raise RuntimeError(f"{self.name} {direction}: {got} bytes of {size}")
        r["seconds"] = r["wall"]
        if self.inner:  # the library worker reports the transfer's own time and rusage
            inner = json.loads(r["stdout"])
            r.update(
                seconds=inner["seconds"],
                hash_seconds=inner["hash_seconds"],
                cpu=inner["cpu"],
                maxrss=inner["maxrss"],
                process_wall=r["wall"],
            )
        r["mb_s"] = size / r["seconds"] / 1e6
        del r["stdout"], r["stderr"]
        return r


def transfer_rows(servers: Servers, work: Path) -> list[TransferRow]:
    s = servers
    remote = "root@127.0.0.1:"

    def rexec_cli(direction, src, dst):
        return s.rexec(direction, "-q", s.address, str(src), str(dst))

    def rexec_lib(direction, src, dst):
        return [
            sys.executable,
            __file__,
            "_lib",
            direction,
            s.host,
            str(s.port),
            str(s.key_file),
            str(src),
            str(dst),
        ]

    def scp(direction, src, dst):
        return (
            s.scp(str(src), remote + str(dst))
            if direction == "put"
            else s.scp(remote + str(src), str(dst))
        )

    def sftp(direction, src, dst):
        batch = work / "sftp.batch"
        batch.write_text(f"{direction} {src} {dst}\n")
        return s.sftp(batch)

    rexec_root = lambda: s.rexecd.pid  # noqa: E731
    ssh_root = lambda: s.sshd.process.pid  # noqa: E731
    return [
        TransferRow(
            "rexec-cli",
            "**rexec** CLI (`rexec put`/`get`, whole process)",
            rexec_cli,
            s.rexecd_pids,
            rexec_root,
        ),
        TransferRow(
            "rexec-lib",
            "**rexec** library (`transfer.put`/`get`, open connection)",
            rexec_lib,
            s.rexecd_pids,
            rexec_root,
            inner=True,
        ),
        TransferRow("scp", "OpenSSH `scp` (whole process)", scp, s.sshd_pids, ssh_root),
        TransferRow("sftp", "OpenSSH `sftp -b` (whole process)", sftp, s.sshd_pids, ssh_root),
    ]


def lib_worker(direction: str, host: str, port: str, key_file: str, src: str, dst: str) -> int:
    """``_lib`` sub-command: one library transfer on an open connection;
    prints its time and this process's CPU and peak RSS as JSON."""
    import resource

    import rexec_client
    from rexec.keyfile import load_key
    from rexec_client.transfer.api import get, put

    async def go():
        conn = await rexec_client.connect(host, int(port), load_key(key_file))
        async with conn:
            if direction == "put":
                return await put(conn, src, dst)
            return await get(conn, src, dst)

    before = resource.getrusage(resource.RUSAGE_SELF)
    from rexec import eventloop

    result = eventloop.run(go())
    after = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                # No hashing pass any more: the digest is computed as the bytes stream.
                "seconds": result.seconds,
                "hash_seconds": 0.0,
                "cpu": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
                # VmHWM: this exec'd process's own peak (ru_maxrss would include the parent's, see run_client)
                "maxrss": _read_status(os.getpid()).get("VmHWM", 0),
            }
        )
    )
    return 0


def make_file(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 64 * MiB)
            f.write(os.urandom(MiB) * (n // MiB) + os.urandom(n % MiB))
            left -= n


# --- measuring with the foreign-CPU guard --------------------------------------------------


class Guard:
    def __init__(self, args, started: float) -> None:
        self.args, self.started = args, started
        self.noisy: list[str] = []
        self.log: list[dict] = []

    def measure(self, what: str, fn):
        """``fn()`` under ForeignCpu; retaken while other jobs were busy."""
        a = self.args
        over = time.monotonic() - self.started > a.budget
        for attempt in range(1 if over else a.retries + 1):
            if not over:
                asyncio.run(wait_for_quiet(a.max_foreign, a.quiet_wait))
            with ForeignCpu() as foreign:
                value = fn()
            if foreign.cpus <= a.max_foreign:
                break
            if attempt < a.retries and not over:
                print(
                    f"  {what}: other jobs used {foreign.cpus:.2f} CPU -> retaken",
                    file=sys.stderr,
                    flush=True,
                )
            else:
                self.noisy.append(f"{what}: {foreign.cpus:.2f}")
        self.log.append({"what": what, "foreign_cpus": round(foreign.cpus, 3)})
        return value, foreign.cpus


# --- report -------------------------------------------------------------------------------


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def ratio(a_list, b_list):
    """Median (min, max) of per-repetition a/b."""
    rs = [a / b for a, b in zip(a_list, b_list, strict=False) if a is not None and b]
    return (statistics.median(rs), min(rs), max(rs)) if rs else None


#: Where a results file's part written by hand starts: kept when it is regenerated.
BY_HAND = "<!-- by hand: kept when this file is regenerated -->"


def _kept_by_hand(path: Path) -> str:
    """The part of ``path`` written by hand (from ``BY_HAND`` on), or ""."""
    try:
        text = path.read_text()
    except OSError:
        return ""
    start = text.find(BY_HAND)
    return "" if start < 0 else "\n" + text[start:]


def fmt_ratio(r):
    return "—" if r is None else f"{r[0]:.2f}x [{r[1]:.2f}–{r[2]:.2f}]"


def line_report(meta, rows, lines) -> list[str]:
    L = [
        f"### A `true` line, Enter to the next prompt ({meta['line_samples']} lines x "
        f"{meta['reps']} repetitions per row)",
        "",
        "| | median | p95 | p99 | on top of `ssh -tt HOST bash -l` (median) "
        "| vs `ssh -tt HOST bash -l` | CPU a line: client + server side |",
        "|---|---|---|---|---|---|---|",
    ]
    ssh = lines.get("ssh-bash")
    for row in rows:
        d = lines.get(row.name)
        if not d:
            continue
        pooled = [x for rep in d["samples"] for x in rep]
        extra = versus = "—"
        if ssh and row.name != "ssh-bash":
            diffs = [(a - b) * 1e3 for a, b in zip(d["medians"], ssh["medians"], strict=True)]
            extra = f"{statistics.median(diffs):+.2f} ms [{min(diffs):+.2f}–{max(diffs):+.2f}]"
            versus = fmt_ratio(ratio(d["medians"], ssh["medians"]))
        L.append(
            f"| {row.label} | {statistics.median(pooled) * 1e3:.2f} ms "
            f"| {pct(pooled, 0.95) * 1e3:.2f} ms | {pct(pooled, 0.99) * 1e3:.2f} ms "
            f"| {extra} | {versus} | {_cpu_cell(d.get('cpu'))} |"
        )
    L += [
        "",
        "Median and percentiles over all lines pooled; the difference and ratio to "
        "`ssh -tt HOST bash -l` are of the per-repetition medians, median [min–max] over the "
        "repetitions. Goal: a `true` line costs rexec shell under 5 ms on top of what it costs "
        "over ssh, both shells reading the account's start-up files. CPU a line: medians over the repetitions of the CPU time the client "
        "(the CLI's process tree, or this process for the in-process rows) and the server side "
        "(rexecd and its children: the remote bash and helpers; sshd and its children) used, per "
        "line, in clock ticks of 10 ms over the whole repetition: on a busy machine wall times "
        "wait for a CPU, CPU time does not.",
    ]
    return L


def _cpu_cell(cpu) -> str:
    if not cpu:
        return "—"
    client, server = med([c for c, _ in cpu]), med([s for _, s in cpu])
    return f"{client * 1e3:.2f} + {server * 1e3:.2f} = {(client + server) * 1e3:.2f} ms"


def report(meta, lat_rows, lat, xfer_rows, xfer, guard, size, line_rows_=(), lines=None) -> str:
    L = []
    if lines:
        L += line_report(meta, line_rows_, lines)
        L.append("")
    if lat:
        L.append(
            f"### Keystroke to echo on a pty ({meta['samples']} samples x {meta['reps']} "
            f"repetitions per row, {meta['gap'] * 1e3:.0f} ms between keys)"
        )
        L.append("")
        L.append("| | median | p95 | p99 | vs local pty (median) | vs `ssh -tt` (median) |")
        L.append("|---|---|---|---|---|---|")
    for row in lat_rows:
        d = lat.get(row.name)
        if not d:
            continue
        pooled = [x for rep in d["samples"] for x in rep]
        medians = d["medians"]
        L.append(
            f"| {row.label} | {statistics.median(pooled) * 1e3:.3f} ms | {pct(pooled, 0.95) * 1e3:.3f} ms "
            f"| {pct(pooled, 0.99) * 1e3:.3f} ms "
            f"| {fmt_ratio(ratio(medians, lat['local']['medians'])) if row.name != 'local' and 'local' in lat else '—'} "
            f"| {fmt_ratio(ratio(medians, lat['ssh-tt']['medians'])) if row.name != 'ssh-tt' and 'ssh-tt' in lat else '—'} |"
        )
    if lat:
        L.append("")
        L.append(
            "Median and percentiles over all samples pooled; ratios of the per-repetition medians, "
            "median [min–max] over the repetitions."
        )
    if xfer:
        sz = "1 GiB" if size == GiB else f"{size / MiB:,.0f} MiB"
        L.append("")
        L.append(
            f"### put/get of {sz} (random bytes, /dev/shm to /dev/shm), MB/s = 10^6 B/s, "
            f"median of {meta['reps']} interleaved repetitions"
        )
        L.append("")
        L.append(
            "| | put MB/s | get MB/s | put vs scp | get vs scp | client CPU-s put / get | "
            "server CPU-s put / get | client peak RSS | server peak RSS |"
        )
        L.append("|---|---|---|---|---|---|---|---|---|")
        for row in xfer_rows:
            p = xfer.get(("put", row.name), [])
            g = xfer.get(("get", row.name), [])
            if not p and not g:
                continue

            def col(rs, k):
                return med([r[k] for r in rs if r])

            def fm(x, unit=""):
                return "—" if x is None else (f"{x:,.0f}{unit}" if x >= 100 else f"{x:.2f}{unit}")

            rs_all = [r for r in p + g if r]
            cpeak = max((r["maxrss"] for r in rs_all), default=0) / MiB
            speak = max((r["server_peak"] for r in rs_all), default=0) / MiB
            mbp = [r["mb_s"] if r else None for r in p]
            mbg = [r["mb_s"] if r else None for r in g]
            scp_p = [r["mb_s"] if r else None for r in xfer.get(("put", "scp"), [])]
            scp_g = [r["mb_s"] if r else None for r in xfer.get(("get", "scp"), [])]
            L.append(
                f"| {row.label} | {fm(med(mbp))} | {fm(med(mbg))} "
                f"| {fmt_ratio(ratio(mbp, scp_p)) if row.name != 'scp' else '—'} "
                f"| {fmt_ratio(ratio(mbg, scp_g)) if row.name != 'scp' else '—'} "
                f"| {fm(col(p, 'cpu'))} / {fm(col(g, 'cpu'))} "
                f"| {fm(col(p, 'server_cpu'))} / {fm(col(g, 'server_cpu'))} "
                f"| {cpeak:,.0f} MiB | {speak:,.0f} MiB |"
            )
        lib_p = [r for r in xfer.get(("put", "rexec-lib"), []) if r]
        if lib_p:
            L.append("")
            L.append(
                f"rexec library put: of its {med([r['seconds'] for r in lib_p]):.2f} s, "
                f"{med([r['hash_seconds'] for r in lib_p]):.2f} s are the hashing pass before the first byte "
                f"is sent. Whole-process rows include interpreter start-up and connection set-up "
                f"(rexec CLI: start-up alone ≈ {meta.get('cli_startup', 0):.2f} s; ssh handshake for scp/sftp)."
            )
        L.append("")
        L.append(
            "Goal: put/get ≥ 1,000 MB/s on loopback. Peak RSS: the client's process tree sampled every "
            "10 ms (scp/sftp: with their ssh child; the library worker: its VmHWM, interpreter included), the server's process tree "
            "(rexecd: one process; sshd: listener + session + sftp-server) sampled every 10 ms. "
            "CPU-s: user+system seconds, client and server (server of sshd: its reaped sessions)."
        )
    L.append("")
    worst = max((e["foreign_cpus"] for e in guard.log), default=0.0)
    L.append(
        f"Other jobs on the machine used at most {worst:.2f} CPU (of {meta['nproc']}) during a kept "
        f"measurement; {len(guard.noisy)} measurement(s) stayed above {meta['max_foreign']} CPU after "
        f"{meta['retries']} retake(s)" + (": " + "; ".join(guard.noisy) if guard.noisy else ".")
    )
    return "\n".join(L)


# --- profile --------------------------------------------------------------------------------


def profile_get(servers: Servers, src: Path, dst: Path, out: Path) -> str:
    """One ``rexec get`` with py-spy on the server and on the client."""
    from profile_server import summarize_pyspy

    if shutil.which("py-spy") is None:
        return "py-spy not installed (pip install py-spy): no profile."
    out.mkdir(parents=True, exist_ok=True)
    srv_raw, cli_raw = out / "server.txt", out / "client.txt"
    spy_srv = subprocess.Popen(
        [
            "py-spy",
            "record",
            "--pid",
            str(servers.rexecd.pid),
            "--rate",
            "250",
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(srv_raw),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(1.0)  # attached
    cpu0 = _ticks(servers.rexecd.pid)
    r = run_client(
        [
            "py-spy",
            "record",
            "--rate",
            "250",
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(cli_raw),
            "--",
            *servers.rexec("get", "-q", servers.address, str(src), str(dst)),
        ]
    )
    srv_cpu = (_ticks(servers.rexecd.pid) - cpu0) / CLK_TCK
    spy_srv.send_signal(2)
    try:
        spy_srv.wait(20)
    except subprocess.TimeoutExpired:
        spy_srv.kill()
        spy_srv.wait()
    parts = [
        f"`rexec get` of {dst.stat().st_size / MiB:,.0f} MiB under py-spy (250 Hz, --nonblocking): "
        f"{r['wall']:.2f} s wall (profiling slows it), client CPU {r['cpu']:.2f} s, server CPU {srv_cpu:.2f} s.",
        "",
    ]
    for name, raw in (("server (rexecd)", srv_raw), ("client (rexec get)", cli_raw)):
        parts.append(f"#### {name}")
        parts.append("")
        parts.append("```")
        parts.append(summarize_pyspy(raw, top=12) if raw.exists() else "no profile written")
        parts.append("```")
        parts.append("")
    return "\n".join(parts)


def sha256_rate() -> float:
    import hashlib

    buf = os.urandom(MiB) * 256
    t = time.perf_counter()
    h = hashlib.sha256()
    for i in range(0, len(buf), MiB):
        h.update(memoryview(buf)[i : i + MiB])
    return len(buf) / (time.perf_counter() - t) / 1e6


# --- main ----------------------------------------------------------------------------------


def parse_size(text: str) -> int:
    m = re.fullmatch(r"(\d+)([KMG]?)i?B?", text.strip(), re.I)
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {text!r} (e.g. 1G, 256M, 1048576)")
    return int(m.group(1)) * {"": 1, "K": 1 << 10, "M": MiB, "G": GiB}[m.group(2).upper()]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--size", type=parse_size, default=GiB, help="file size for put/get (default 1G)"
    )
    p.add_argument("--reps", type=int, default=3, help="interleaved repetitions (default 3)")
    p.add_argument(
        "--samples", type=int, default=300, help="keystrokes per row per repetition (default 300)"
    )
    p.add_argument(
        "--gap", type=float, default=0.005, help="seconds between keystrokes (default 0.005)"
    )
    p.add_argument(
        "--only",
        default="latency,lines,transfer",
        help="some of latency, lines, transfer (default: all three)",
    )
    p.add_argument(
        "--line-samples",
        type=int,
        default=200,
        help="`true` lines per row per repetition (default 200)",
    )
    p.add_argument("--no-profile", action="store_true", help="skip the py-spy profile of one get")
    p.add_argument("--results", type=Path, help="also write this markdown file (table and profile)")
    p.add_argument("--json", type=Path, help="write every raw measurement here")
    p.add_argument(
        "--max-foreign",
        type=float,
        default=0.15,
        help="retake a measurement when other jobs used more CPUs than this (default 0.15)",
    )
    p.add_argument("--retries", type=int, default=1, help="retakes per measurement (default 1)")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=5.0,
        help="seconds to wait at most for other jobs to go quiet (default 5)",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=900.0,
        help="seconds after which measurements are no longer retaken or delayed (default 900)",
    )
    return p.parse_args(argv)


def main(argv=None) -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_lib":
        return lib_worker(*sys.argv[2:8])
    args = parse_args(argv)
    parts = {x.strip() for x in args.only.split(",")}
    meta = {
        "command": " ".join(["python", *sys.argv]),
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "reps": args.reps,
        "samples": args.samples,
        "gap": args.gap,
        "line_samples": args.line_samples,
        "size": args.size,
        "max_foreign": args.max_foreign,
        "retries": args.retries,
        "ssh": subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    tmp = Path(tempfile.mkdtemp(prefix="rexec-ibench-", dir="/dev/shm"))
    servers = Servers(tmp)
    lat_rows: list[LatencyRow] = []
    shell_rows: list[LineRow] = []
    lines: dict[str, dict] = {}
    xfer_rows: list[TransferRow] = []
    lat: dict[str, dict] = {}
    xfer: dict[tuple[str, str], list] = {}
    profile_text = ""
    guard = Guard(args, time.monotonic())
    try:
        servers.start()
        print(
            f"rexecd on {servers.address}, sshd on 127.0.0.1:{servers.sshd.port}",
            file=sys.stderr,
            flush=True,
        )
        if "latency" in parts:
            lat_rows = latency_rows(servers)
            for row in lat_rows:
                row.open()
        if "lines" in parts:
            shell_rows = line_rows(servers)
            for row in shell_rows:
                row.open()
        if "transfer" in parts:
            src = tmp / "source.bin"
            make_file(src, args.size)
            (tmp / "out").mkdir()
            xfer_rows = transfer_rows(servers, tmp)
            meta["cli_startup"] = min(run_client(REXEC_CLI + ["--help"])["wall"] for _ in range(3))
            meta["sha256_mb_s"] = sha256_rate()
            print(
                f"warming memory: {warm_memory(3.0):.1f} s for 3 GiB", file=sys.stderr, flush=True
            )
        for rep in range(args.reps):
            if lat_rows:
                k = rep % len(lat_rows)
                for row in lat_rows[k:] + lat_rows[:k]:
                    samples, foreign = guard.measure(
                        f"latency/{row.name}/rep{rep + 1}",
                        lambda: row.measure(args.samples, args.gap),
                    )
                    d = lat.setdefault(row.name, {"samples": [], "medians": [], "foreign": []})
                    d["samples"].append(samples)
                    d["medians"].append(statistics.median(samples))
                    d["foreign"].append(foreign)
                    print(
                        f"rep {rep + 1}/{args.reps} echo {row.name:16} median {statistics.median(samples) * 1e3:.3f} ms"
                        f" p95 {pct(samples, 0.95) * 1e3:.3f} ms  (other jobs: {foreign:.2f} CPU)",
                        file=sys.stderr,
                        flush=True,
                    )
            if shell_rows:
                k = rep % len(shell_rows)
                for row in shell_rows[k:] + shell_rows[:k]:
                    samples, foreign = guard.measure(
                        f"lines/{row.name}/rep{rep + 1}",
                        lambda: row.measure(args.line_samples, args.gap),
                    )
                    d = lines.setdefault(
                        row.name, {"samples": [], "medians": [], "foreign": [], "cpu": []}
                    )
                    d["cpu"].append(row.cpu)
                    d["samples"].append(samples)
                    d["medians"].append(statistics.median(samples))
                    d["foreign"].append(foreign)
                    print(
                        f"rep {rep + 1}/{args.reps} line {row.name:16} median "
                        f"{statistics.median(samples) * 1e3:.3f} ms p95 "
                        f"{pct(samples, 0.95) * 1e3:.3f} ms  (other jobs: {foreign:.2f} CPU)",
                        file=sys.stderr,
                        flush=True,
                    )
            if xfer_rows:
                warm_memory(1.5)
                k = rep % len(xfer_rows)
                for direction in ("put", "get"):
                    for row in xfer_rows[k:] + xfer_rows[:k]:
                        if direction == "put":
                            s_, d_ = src, tmp / "out" / f"put-{row.name}.bin"
                        else:
                            s_, d_ = src, tmp / "out" / f"get-{row.name}.bin"
                        try:
                            r, foreign = guard.measure(
                                f"{direction}/{row.name}/rep{rep + 1}",
                                lambda: row.transfer(direction, s_, d_, args.size),
                            )
                            r["foreign"] = foreign
                            shown = (
                                f"{r['mb_s']:,.0f} MB/s, client CPU {r['cpu']:.2f} s, server CPU "
                                f"{r['server_cpu']:.2f} s, client peak {r['maxrss'] / MiB:.0f} MiB, server peak "
                                f"{r['server_peak'] / MiB:.0f} MiB  (other jobs: {foreign:.2f} CPU)"
                            )
                        except Exception as exc:  # noqa: BLE001 - one failure must not sink the run
                            r, shown = None, f"FAILED: {exc!r}"[:300]
                        finally:
                            for p in (tmp / "out").iterdir():
                                p.unlink()
                        xfer.setdefault((direction, row.name), []).append(r)
                        print(
                            f"rep {rep + 1}/{args.reps} {direction} {row.name:10} {shown}",
                            file=sys.stderr,
                            flush=True,
                        )
        for row in [*lat_rows, *shell_rows]:
            row.close()
        if xfer_rows and not args.no_profile:
            print("profiling one rexec get with py-spy", file=sys.stderr, flush=True)
            profile_text = profile_get(servers, src, tmp / "out" / "profiled.bin", tmp / "profile")
    finally:
        for row in [*lat_rows, *shell_rows]:
            row.close()
        servers.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    text = report(meta, lat_rows, lat, xfer_rows, xfer, guard, args.size, shell_rows, lines)
    print(text)
    if "sha256_mb_s" in meta:
        print(
            f"\nsha256 alone (hashlib, 1 MiB updates, one thread): {meta['sha256_mb_s']:,.0f} MB/s"
        )
    if profile_text:
        print("\n" + profile_text)
    if args.results:
        kept = _kept_by_hand(args.results)
        args.results.write_text(
            f"<!-- generated by bench/interactive_bench.py at {meta['started']} -->\n"
            f"Command: `{meta['command']}`\n\n{text}\n\n"
            + (
                f"sha256 alone (hashlib, 1 MiB updates, one thread): {meta['sha256_mb_s']:,.0f} MB/s\n\n"
                if "sha256_mb_s" in meta
                else ""
            )
            + (f"### Profile\n\n{profile_text}\n" if profile_text else "")
            + kept
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "meta": meta,
                    "guard": guard.log,
                    "noisy": guard.noisy,
                    "latency": {k: v for k, v in lat.items()},
                    "lines": lines,
                    "transfer": {f"{d}/{n}": v for (d, n), v in xfer.items()},
                },
                indent=1,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
