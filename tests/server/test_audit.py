"""The audit trail, read from the server's audit log after real sessions."""

from __future__ import annotations

import json
import time

from .wire import connect


def wait_for_records(server, predicate, timeout: float = 3.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        records = server.audit_records()
        if predicate(records) or time.monotonic() > deadline:
            return records


def test_one_exec_and_one_exit_record_per_command(server) -> None:
    with connect(server) as wire:
        ids = [wire.run(["echo", str(i)]) for i in range(3)]
        ids.append(wire.run(shell="exit 9"))
        results = wire.wait_all(ids, 10)
    records = wait_for_records(server, lambda rs: any(r["event"] == "disconnect" for r in rs))
    execs = [r for r in records if r["event"] == "exec"]
    exits = [r for r in records if r["event"] == "exit"]
    assert sorted(r["id"] for r in execs) == sorted(ids)
    assert sorted(r["id"] for r in exits) == sorted(ids)
    by_id = {r["id"]: r for r in exits}
    for result in results:
        record = by_id[result.id]
        assert record["exit_code"] == result.exit.exit_code
        assert record["stdout_bytes"] == len(result.stdout)
    assert {r["session"] for r in execs + exits} == {execs[0]["session"]}
    # Each exec is recorded before its exit.
    for command_id in ids:
        exec_at = next(
            i for i, r in enumerate(records) if r["event"] == "exec" and r["id"] == command_id
        )
        exit_at = next(
            i for i, r in enumerate(records) if r["event"] == "exit" and r["id"] == command_id
        )
        assert exec_at < exit_at
    events = [r["event"] for r in records]
    for name in ("listen", "connect", "auth", "disconnect"):
        assert name in events
    auth = next(r for r in records if r["event"] == "auth")
    assert auth["ok"] is True and auth["peer"].startswith("127.0.0.1:")


def test_env_values_are_not_audited(start_server) -> None:
    server = start_server("--env-allow", "API_TOKEN")
    with connect(server) as wire:
        wire.wait(wire.run(["true"], env={"API_TOKEN": "hunter2-secret-value"}), 5)
    # The writer thread writes the records a moment after the frames left.
    wait_for_records(server, lambda rs: any(r["event"] == "exit" for r in rs), timeout=10.0)
    text = server.audit_log.read_text()
    assert "API_TOKEN" in text
    assert "hunter2-secret-value" not in text


def test_control_characters_are_escaped(server) -> None:
    nasty = "echo one\necho two\r\n\x1b[31mred\x1b[0m; printf '\\x07' \u2028 \x7f"
    with connect(server) as wire:
        wire.wait(wire.run(shell=nasty), 5)
        wire.wait(wire.run(["printf", "%s", "a\nb", "\x1b]0;title\x07"]), 5)
    wait_for_records(server, lambda rs: sum(r["event"] == "disconnect" for r in rs) == 1)
    raw = server.audit_log.read_bytes()
    lines = raw.split(b"\n")
    assert lines[-1] == b""
    lines = lines[:-1]
    # Every line is one whole record: a newline in the command did not split one.
    records = [json.loads(line) for line in lines]
    assert [r["event"] for r in records].count("exec") == 2
    assert [r["event"] for r in records].count("exit") == 2
    for line in lines:
        assert all(32 <= byte < 127 for byte in line), line
    execs = [r for r in records if r["event"] == "exec"]
    assert execs[0]["shell"] == nasty
    assert execs[1]["argv"] == ["printf", "%s", "a\nb", "\x1b]0;title\x07"]


def test_refused_commands_are_audited_without_an_exec_that_ran(server) -> None:
    with connect(server) as wire:
        result = wire.wait(wire.run(["true"], env={"LD_PRELOAD": "x"}), 5)
        assert result.error is not None
    records = wait_for_records(server, lambda rs: any(r["event"] == "refused" for r in rs))
    refused = [r for r in records if r["event"] == "refused"]
    assert refused and refused[0]["code"] == "env.forbidden"
    assert not [r for r in records if r["event"] == "exit"]


def test_audit_log_is_private(server) -> None:
    with connect(server) as wire:
        wire.wait(wire.run(["true"]), 5)
    assert server.audit_log.stat().st_mode & 0o077 == 0


def test_unwritable_audit_log_refuses_commands(start_server, tmp_path) -> None:
    """Fail closed: when the exec record can't be written, nothing runs."""
    marker_file = tmp_path / "ran"
    server = start_server("--audit-log", "/dev/full")  # the last --audit-log wins
    with connect(server) as wire:
        result = wire.wait(wire.run(["touch", str(marker_file)]), 5)
        assert result.error is not None and result.error.code == "audit.unavailable"
        assert result.error.fatal is False and result.started is None
        # The connection carries on (and keeps refusing).
        again = wire.wait(wire.run(["true"]), 5)
        assert again.error is not None and again.error.code == "audit.unavailable"
    time.sleep(0.2)
    assert not marker_file.exists()
