"""The fleet emulator (``bench/fleet.py``) is only worth its figures if a
batch can't tell it from rexecd: the same batch runs against three emulated
servers and three real ``rexecd`` and must give the same results, field by
field (``hostname`` aside, which names each server)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import rexec_client

from .conftest import Pool, batch_argv, read_results

#: Every command of the emulator's set, as argv and as shell strings.
JOBS = [
    {"id": "true", "shell": "true"},
    {"id": "false", "shell": "false"},
    {"id": "echo", "shell": "echo hello 'big world'"},
    {"id": "echo-n", "argv": ["echo", "-n", "x y"]},
    {"id": "exit", "shell": "exit 3"},
    {"id": "sleep", "argv": ["sleep", "0.2"]},
    {"id": "timeout", "shell": "sleep 5", "timeout": 0.3},
    {"id": "missing-shell", "shell": "no-such-program-rx"},
    {"id": "missing-argv", "argv": ["no-such-program-rx"]},
    {"id": "zeros", "shell": "head -c 300000 /dev/zero"},
    {"id": "hostname", "argv": ["hostname"]},
]
COMPARED = (
    "status",
    "exit_code",
    "signal",
    "signal_name",
    "stdout",
    "stderr",
    "stdout_bytes",
    "stderr_bytes",
    "error_code",
    "attempt",
    "stdout_encoding",
)


def run_jobs(
    hosts: str, key_file: Path | str, directory: Path
) -> tuple[int, dict[str, list[dict]]]:
    results = directory / "results.jsonl"
    done = subprocess.run(
        batch_argv(
            None,
            "--key-file",
            str(key_file),
            "--onall",
            "-w",
            hosts,
            "--jsonl",
            "--results",
            str(results),
            "--quiet",
        ),
        input="".join(json.dumps(job) + "\n" for job in JOBS),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    by_id: dict[str, list[dict]] = {}
    for record in read_results(results):
        by_id.setdefault(record["id"], []).append(record)
    return done.returncode, by_id


def test_a_batch_gives_the_same_results_on_the_emulator_and_on_rexecd(
    pool: Pool, start_fleet, tmp_path: Path
) -> None:
    fleet = start_fleet(3)
    (tmp_path / "real").mkdir()
    (tmp_path / "emulated").mkdir()
    real_status, real = run_jobs(pool.spec, pool.key_file, tmp_path / "real")
    fake_status, fake = run_jobs(fleet.hosts, fleet.key_file, tmp_path / "emulated")
    assert real_status == fake_status == 3 - 1  # a timeout and failures: 2
    assert sorted(real) == sorted(fake) == sorted(job["id"] for job in JOBS)
    for job_id in real:
        assert len(real[job_id]) == len(fake[job_id]) == 3
        for field in COMPARED:
            if job_id == "hostname" and field in ("stdout", "stdout_bytes"):
                continue
            assert {str(r[field]) for r in real[job_id]} == {str(r[field]) for r in fake[job_id]}, (
                job_id,
                field,
            )
    assert {r["stdout"] for r in real["hostname"]} == {socket.gethostname() + "\n"}
    assert sorted(r["stdout"] for r in fake["hostname"]) == [
        "node00001\n",
        "node00002\n",
        "node00003\n",
    ]


def test_the_emulator_prints_its_targets_then_stops_cleanly_on_sigterm(start_fleet) -> None:
    fleet = start_fleet(600, "--down", "3")
    assert fleet.hosts == f"127.1.[0-1].[1-250]:{fleet.port},127.1.2.[1-100]:{fleet.port}"
    key_file = Path(fleet.key_file)
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    with socket.create_connection((fleet.host(600), fleet.port), timeout=5):
        pass
    try:
        socket.create_connection((fleet.host(3), fleet.port), timeout=5).close()
        raise AssertionError("a --down endpoint accepted a connection")
    except ConnectionRefusedError:
        pass
    fleet.process.send_signal(signal.SIGTERM)
    assert fleet.process.wait(timeout=15) == 0
    assert not key_file.exists()  # its temporary key is gone with it


def test_sigint_ends_the_emulator_cleanly_with_commands_running(start_fleet) -> None:
    """Ctrl-C in the middle of a batch: the emulator exits 0 without a
    traceback, and the batch reports the lost connections at once."""
    fleet = start_fleet(2)
    batch = subprocess.Popen(
        batch_argv(
            None,
            "--key-file",
            str(fleet.key_file),
            "-w",
            fleet.hosts,
            "--onall",
            "--",
            "sleep",
            "60",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while fleet.stats()["commands"] < 2:
            assert time.monotonic() < deadline, "the batch never started its commands"
            time.sleep(0.1)
        fleet.process.send_signal(signal.SIGINT)
        assert fleet.process.wait(timeout=15) == 0
        out, err = batch.communicate(timeout=30)
    finally:
        if batch.poll() is None:
            batch.kill()
            batch.communicate()
    assert b"Traceback" not in fleet.process.stderr.read()
    assert batch.returncode == 3
    assert "2 connect_error" in err and out == ""


def test_output_limit_cuts_alike_on_the_emulator_and_on_rexecd(pool: Pool, start_fleet) -> None:
    """protocol.md [output.limit]: exactly the first N bytes, then the
    command ends as for a timeout, ``output_capped``; a command within its
    limit is untouched. (How a capped command dies on rexecd is a race, its
    SIGTERM against the SIGPIPE of the closed pipe; the emulator says
    SIGTERM, as for a timeout.)"""
    fleet = start_fleet(1)
    targets = {
        "real": (pool.servers[0].host, pool.port, pool.key_file),
        "emulated": (fleet.host(1), fleet.port, fleet.key_file),
    }
    seen: dict[str, list[tuple]] = {}
    ends: dict[str, list[tuple]] = {}
    for name, (host, port, key_file) in targets.items():
        seen[name], ends[name] = [], []
        # A gigabyte: the real head is still writing when the cap ends it.
        for command, limit in (("head -c 1073741824 /dev/zero", 1000), ("echo hello", 100)):
            done = rexec_client.run(
                command,
                shell=True,
                host=host,
                port=port,
                key_file=key_file,
                output_limit=limit,
                timeout=30,
            )
            seen[name].append((done.stdout, done.stderr, done.output_capped, done.stdout_bytes))
            ends[name].append((done.exit_code, done.signal_name))
    assert (
        seen["real"]
        == seen["emulated"]
        == [(bytes(1000), b"", True, 1000), (b"hello\n", b"", False, 6)]
    )
    assert ends["emulated"] == [(None, "SIGTERM"), (0, None)]
    assert ends["real"][1] == (0, None)
