"""An audit log on a FIFO nobody reads yet (attacker II, finding 6): rexecd
starts, says so once, refuses commands with ``audit.unavailable`` until a
reader opens the FIFO, then writes the trail from its start."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import run, stop, wait_until
from .test_audit_trail import _runs, fifo_log  # noqa: F401  (fifo_log: a fixture)


def test_a_fifo_without_a_reader_starts_and_refuses_until_one_opens_it(
    daemon,
    fifo_log,  # noqa: F811
    tmp_path: Path,
) -> None:
    fifo, sink, ship = fifo_log
    server = daemon("--audit-log", str(fifo))  # listening, not stuck in open()
    assert wait_until(lambda: "no reader" in server.stderr(), 5), server.stderr()
    marker = tmp_path / "ran"
    refused = run(server, ["touch", str(marker)])
    assert refused.error is not None and refused.error.code == "audit.unavailable"
    assert refused.started is None and not marker.exists()
    shipper = ship()
    assert wait_until(lambda: _runs(server), 10, interval=0.1)
    assert stop(server) == 0
    shipper.wait(10)
    records = [json.loads(line) for line in sink.read_text().splitlines()]
    events = [record["event"] for record in records]
    assert events[0] == "listen" and events[-1] == "shutdown"
    refusals = [r["code"] for r in records if r["event"] == "refused"]
    assert refusals and set(refusals) == {"audit.unavailable"}
    assert "exec" in events and "exit" in events
    stderr = server.stderr()
    assert stderr.count("no reader") == 1
    assert stderr.count("commands are accepted") == 1
