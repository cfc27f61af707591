"""The server's observers (audit trail, metrics) sit beside the data path:
one that breaks its contract and raises must not take the others, or the
session whose output or exit the event reports, down with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from rexec.server.audit import AuditLog
from rexec.server.config import ServerConfig
from rexec.server.events import ConnectionOpened, Event, Origin
from rexec.server.policy import KeyRules
from rexec.server.server import Server
from rexec.server.settings import Settings


class _Broken:
    def notify(self, event: Event) -> None:
        raise RuntimeError("an observer's bug")


class _Recorder:
    def __init__(self) -> None:
        self.seen: list[Event] = []

    def notify(self, event: Event) -> None:
        self.seen.append(event)


def test_an_observer_that_raises_stops_neither_the_others_nor_the_event(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    audit = AuditLog(str(tmp_path / "audit.jsonl"))
    try:
        config = ServerConfig(
            keys=(KeyRules(name="k", key=bytes(32)),), server_name="t", settings=Settings()
        )
        server = Server(config, audit)
        recorder = _Recorder()
        server.subscribe(_Broken())
        server.subscribe(recorder)
        event = ConnectionOpened(Origin(1, "127.0.0.1:1"))
        server.emit(event)  # raised into the caller before: the session's output path
        server.emit(event)
    finally:
        audit.close()
    assert recorder.seen == [event, event]
    assert "_Broken failed on ConnectionOpened (a bug)" in capfd.readouterr().err
