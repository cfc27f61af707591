"""SIGHUP with restart-only settings changed: one line per setting, naming
the old and new value, while what can be applied is (outsider5 F22); and a
value the file changed that a flag overrides says so, since a restart would
not apply it either."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from tests.server.wire import connect

from .test_service import (
    keys_config,
    reload_and_wait,
    started_with_the_first_of_two_keys,
    wait_for_line,
)


def test_restart_only_changes_are_named_one_a_line_and_the_rest_applied(
    tmp_path: Path, configured_servers
) -> None:
    process, config, first, second, port = started_with_the_first_of_two_keys(
        tmp_path, configured_servers
    )

    config.write_text(
        keys_config(("first", first, ""), ("second", second, "")).replace(
            "[server]\n", "[server]\nannounce = true\naudit_timeout = 7\nport = 7421\n"
        )
    )
    reload_and_wait(process, "ok", 1)
    stderr = tmp_path / "rexecd.stderr"
    text = wait_for_line(stderr, "announce changed false -> true: needs a restart, not applied")
    assert "audit_timeout changed 5.0 -> 7.0: needs a restart, not applied" in text
    # The port comes from --port 0 on the command line, which wins over the
    # file: not "needs a restart", since a restart would not apply it either.
    assert f"port = 7421 in {config} is not applied: --port sets 0 and wins over the file" in text
    assert "port changed" not in text
    # What can be applied is: the new key authenticates.
    as_second = SimpleNamespace(host="127.0.0.1", port=port, key=bytes.fromhex(second.read_text()))
    with connect(as_second) as wire:
        assert wire.wait(wire.run(["echo", "new key"])).stdout == b"new key\n"

    # The same file again: still not applied, said again; the override was
    # said when the file changed. (A broken file after it: once its line is
    # there, every line of the reload before it is too.)
    reload_and_wait(process, "ok", 2)
    config.write_text("[limits\n")
    reload_and_wait(process, "failed", 1)
    text = wait_for_line(stderr, "reload failed, keeping the running configuration")
    assert text.count("announce changed false -> true: needs a restart") == 2
    assert text.count("port = 7421 in") == 1
