"""Rotating the audit log as logrotate does (``create`` + ``postrotate kill
-HUP``): on SIGHUP rexecd opens the log's path again, whether or not the
reload succeeds, with the checks of the start; records written around the
rotation are neither lost nor reordered (outsider5 F26)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import RunningServer

from .wire import connect

WAIT = 20.0


def records_of(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def rotate(server: RunningServer) -> Path:
    """Move the log away as logrotate does; returns where it went."""
    rotated = server.audit_log.with_name(server.audit_log.name + ".1")
    server.audit_log.rename(rotated)
    return rotated


def events(path: Path, name: str) -> list[dict]:
    return [record for record in records_of(path) if record["event"] == name]


def test_sighup_after_a_rotation_writes_to_a_new_file_and_loses_nothing(server) -> None:
    """Commands run one after another through the rotation: each command's
    records are in exactly one of the files, the old file's all before the
    new one's, each in order."""
    count, done = 120, threading.Event()
    results: list = []

    def run_commands() -> None:
        with connect(server) as wire:
            for index in range(count):
                results.append(wire.wait(wire.run(["echo", str(index)]), WAIT))
        done.set()

    runner = threading.Thread(target=run_commands)
    runner.start()
    try:
        wait_until(lambda: len(events(server.audit_log, "exit")) >= 20, "20 commands")
        rotated = rotate(server)
        server.process.send_signal(signal.SIGHUP)
        wait_until(lambda: len(events(server.audit_log, "reload")) == 1, "the new file")
    finally:
        runner.join(WAIT * 3)
    assert done.is_set() and all(result.exit.exit_code == 0 for result in results)
    wait_until(lambda: len(events(server.audit_log, "disconnect")) == 1, "the disconnect")

    old, new = records_of(rotated), records_of(server.audit_log)
    assert old[0]["event"] == "listen" and new[0]["event"] == "reload"
    assert not [record for record in old if record["event"] == "reload"]
    assert len(events(server.audit_log, "exit")) > 0, "nothing after the rotation"
    for kind in ("exec", "exit"):
        ids = [r["id"] for r in old + new if r["event"] == kind]
        assert sorted(ids) == sorted(result.id for result in results), kind
    times = [record["time"] for record in old + new]
    assert times == sorted(times), "records reordered around the rotation"
    assert server.audit_log.stat().st_mode & 0o777 == 0o600


def test_a_failed_reload_still_reopens_the_log(start_server, tmp_path: Path) -> None:
    config = tmp_path / "rexecd.toml"
    config.write_text("[limits]\nidle_timeout = 300\n")
    server = start_server("--config", str(config))
    config.write_text("[limits\n")
    rotated = rotate(server)
    server.process.send_signal(signal.SIGHUP)
    wait_until(lambda: len(events(server.audit_log, "reload")) == 1, "the new file")
    assert events(server.audit_log, "reload")[0]["ok"] is False
    with connect(server) as wire:
        assert wire.wait(wire.run(["echo", "after"]), WAIT).exit.exit_code == 0
    wait_until(lambda: len(events(server.audit_log, "exit")) == 1, "the command's records")
    assert events(rotated, "exec") == [] and events(rotated, "reload") == []


def _another_users_link(path: Path) -> None:
    path.symlink_to(path.with_name("elsewhere"))
    os.lchown(path, 65534, 65534)


def _writable_by_others(path: Path) -> None:
    path.touch()
    os.chmod(path, 0o622)


@pytest.mark.parametrize(
    ("plant", "reason"),
    [
        pytest.param(
            _another_users_link,
            "it is a symbolic link another user owns",
            marks=pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a link away"),
        ),
        (_writable_by_others, "another user owns it, or group or others may write it"),
    ],
)
def test_a_new_file_that_fails_the_checks_is_not_used(server, plant, reason: str) -> None:
    """Someone who could plant a file at the log's path between rotation and
    SIGHUP gets nothing: the old file goes on, and stderr says why."""
    rotated = rotate(server)
    plant(server.audit_log)
    server.process.send_signal(signal.SIGHUP)
    wait_until(lambda: len(events(rotated, "reload")) == 1, "the reload record")
    with connect(server) as wire:
        assert wire.wait(wire.run(["echo", "kept"]), WAIT).exit.exit_code == 0
    wait_until(lambda: len(events(rotated, "exit")) == 1, "the command's records")
    assert not server.audit_log.with_name("elsewhere").exists()
    if not server.audit_log.is_symlink():
        assert server.audit_log.read_text() == ""
    stderr = (server.audit_log.parent / "rexecd.stderr").read_text()
    line = f"cannot reopen audit log {server.audit_log}: {reason}; still writing to the file"
    assert line in stderr, stderr
