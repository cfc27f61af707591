#!/usr/bin/env python3
"""rexecd's resident memory across a sequence of transfers served by one
daemon, as ``bench/run.py``'s session rows use it: the peak of each step and
what stays resident after it.

    python bench/daemon_memory.py                                 # this checkout
    python bench/daemon_memory.py --tree /tmp/base-pkgs           # another tree's rexec
    python bench/daemon_memory.py --steps put,put,get,get,stdout --size 512M

``--tree`` is a directory holding ``rexec`` and ``rexec_client`` (symlinks to
another tree's ``rexec`` and ``client``, as bench/SPEED4_RESULTS.md makes
them): put first on ``PYTHONPATH`` for the daemon and the CLI. Each step runs
the ``rexec`` CLI as a whole process (``put``/``get`` of one random file on
/dev/shm, or ``run`` of ``head -c SIZE /dev/zero``); the daemon's peak is its
``VmHWM`` after a reset (``/proc/PID/clear_refs``), so a peak between samples
is not missed; the client's is its ``ru_maxrss``. Memory is barely affected
by other jobs on the machine: these figures hold under load.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from ab_stream import _checkout_packages

HERE = Path(__file__).resolve().parent
MiB = 1 << 20
CLI = "import sys; from rexec_client.cli import main; sys.exit(main())"


def _status_mib(pid: int, field: str) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":")) / 1024


def _start_daemon(work: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    daemon = subprocess.Popen(
        [sys.executable, "-m", "rexec.daemon", "--port", "0", "--key-file", str(work / "key"),
         "--audit-log", "/dev/null", "--state-dir", str(work / "state")],
        # cwd: ``-m`` puts the working directory ahead of PYTHONPATH, and a
        # checkout's would then be the daemon's rexec, whatever --tree says.
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=work,
    )  # fmt: skip
    assert daemon.stdout is not None
    for _ in range(50):  # bounded: rexecd prints a few lines before listening
        line = daemon.stdout.readline().decode()
        if line.startswith("rexecd listening on "):
            return daemon, line.split()[-1]
    daemon.kill()
    raise RuntimeError("rexecd did not start")


def _step(step: str, address: str, work: Path, size: int, env: dict[str, str]) -> float | None:
    """Run one step; returns the client's peak RSS in MiB if it is the
    highest of any client so far, else None."""
    source, copy = work / "source", work / "copy"
    common = [sys.executable, "-c", CLI]
    if step == "stdout":
        argv = [*common, "run", "--key-file", str(work / "key"), address, "--",
                "head", "-c", str(size), "/dev/zero"]  # fmt: skip
    else:
        # Both ends are this machine: a put copies the source to the copy
        # through rexecd, a get the same way round.
        argv = [*common, step, "-q", "--key-file", str(work / "key"), address, str(source),
                str(copy)]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = subprocess.run(argv, env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if out.returncode:
        raise RuntimeError(f"{step} failed: {out.stderr.decode(errors='replace')[-400:]}")
    if step != "stdout" and copy.stat().st_size != size:
        raise RuntimeError(f"{step}: {copy.stat().st_size} bytes of {size}")
    copy.unlink(missing_ok=True)
    client = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest of any child so far: new highs only.
    return None if client <= before else client / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", help="dir with another tree's rexec and rexec_client")
    parser.add_argument("--steps", default="put,put,put,get,get,get,stdout,put")
    parser.add_argument("--size", default="512M", help="bytes per step (K, M, G suffixes)")
    args = parser.parse_args()
    size = int(args.size[:-1]) * {"K": 1 << 10, "M": MiB, "G": 1 << 30}[args.size[-1].upper()]
    tree = args.tree or _checkout_packages()
    env = dict(os.environ, PYTHONPATH=str(Path(tree).resolve()))
    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
        work = Path(tmp)
        with open(work / "source", "wb") as f:
            for _ in range(size // MiB):
                f.write(os.urandom(MiB))
        daemon, address = _start_daemon(work, env)
        try:
            subprocess.run([sys.executable, "-c", CLI, "run", "--key-file", str(work / "key"),
                            address, "true"], env=env, cwd=work, check=True)  # fmt: skip
            idle = _status_mib(daemon.pid, "VmRSS")
            print(f"rexecd ({tree}) after one `true`: {idle:.1f} MiB", flush=True)
            for n, step in enumerate(args.steps.split(",")):
                with open(f"/proc/{daemon.pid}/clear_refs", "w") as f:
                    f.write("5")  # VmHWM := VmRSS
                client = _step(step, address, work, size, env)
                peak, after = _status_mib(daemon.pid, "VmHWM"), _status_mib(daemon.pid, "VmRSS")
                print(f"{n + 1}. {step:6} of {size // MiB} MiB: rexecd peak {peak:.1f} MiB, "
                      f"after {after:.1f} MiB"
                      + ("" if client is None else f"; client peak {client:.1f} MiB (a new high)"),
                      flush=True)  # fmt: skip
        finally:
            daemon.terminate()
            daemon.wait(10)


if __name__ == "__main__":
    main()
