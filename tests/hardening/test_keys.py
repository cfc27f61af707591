"""Per-key rules, like authorized_keys options: two keys with different rules,
each authenticating, each audited by name; and the server's own bounds."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from server.wire import wait_gone

from rexec.protocol import Pty
from rexec.server.policy import KeyRules
from rexec.server.settings import KeySpec

from .conftest import Daemon, open_wire, write_key


@pytest.fixture
def keyed(daemon, tmp_path: Path) -> tuple[Daemon, bytes, bytes, Path]:
    """A daemon with two keys: ``ops`` (any program, confined to a root, APP_*
    variables only) and ``ci`` (``echo``/``sleep``/``yes`` only, no shell, no
    pty (the default with allow_argv), 0.5 s at most). Returns the daemon,
    both keys and the ops root."""
    ops_key, ci_key = write_key(tmp_path / "ops.key"), write_key(tmp_path / "ci.key")
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "escape").symlink_to("/etc")
    (root / "file").write_text("x")
    config = tmp_path / "rexecd.toml"
    config.write_text(f"""
[commands]
kill_grace = 0.2
drain_grace = 0.3
max_output = 4096

[[keys]]
name = "ops"
file = "{tmp_path / "ops.key"}"
cwd_roots = ["{root}"]
env_allow = ["APP_*", "LANG"]

[[keys]]
name = "ci"
file = "{tmp_path / "ci.key"}"
allow_argv = ["echo", "sleep", "yes", "sh -c 'exit 3'", "sh -c 'exit 5' ''"]
allow_shell = false
max_timeout = 0.5
""")
    server = daemon("--config", str(config), key=False)
    server.key = ops_key
    return server, ops_key, ci_key, root


def denied(result, code: str = "command.denied") -> str:
    assert result.error is not None, result.frames
    assert result.started is None and result.exit is None
    assert result.error.code == code and result.error.fatal is False
    assert len(result.error.message) <= 200
    return result.error.message


def test_each_key_authenticates_and_is_audited_by_name(keyed) -> None:
    server, ops_key, ci_key, root = keyed
    for key in (ops_key, ci_key):
        with open_wire(server, key=key) as wire:
            result = wire.wait(wire.run(["echo", "hi"], cwd=str(root)), 5)
            assert bytes(result.stdout) == b"hi\n" and result.exit.exit_code == 0
    auths = [r for r in server.events("auth") if r.get("ok")]
    assert [r["key"] for r in auths] == ["ops", "ci"]
    assert [r["key"] for r in server.events("exec")] == ["ops", "ci"]
    # A wrong key is refused, and audited without a name.
    with open_wire(server, key=os.urandom(32), auth=False) as wire:
        wire.authenticate(expect_ok=False)
        wire.expect_error_then_eof("auth.failed")
    failed = [r for r in server.events("auth") if r.get("ok") is False]
    assert (
        len(failed) == 1 and "key" not in failed[0] and failed[0]["peer"].startswith("127.0.0.1:")
    )


def test_argv_prefixes(keyed) -> None:
    server, _, ci_key, _ = keyed
    with open_wire(server, key=ci_key) as wire:
        assert bytes(wire.wait(wire.run(["echo", "hi"]), 5).stdout) == b"hi\n"
        message = denied(wire.wait(wire.run(["cat", "/etc/passwd"]), 5))
        assert "ci" in message and "passwd" not in message
        # A prefix is whole words: "echo" does not allow "echoX", and a
        # multi-word prefix needs all its words.
        denied(wire.wait(wire.run(["echoX"]), 5))
        assert wire.wait(wire.run(["sh", "-c", "exit 3"]), 5).exit.exit_code == 3
        denied(wire.wait(wire.run(["sh", "-c", "exit 4"]), 5))
        denied(wire.wait(wire.run(["sh"]), 5))
        # An entry ending in an empty word ('', as in sudoers) is the whole
        # argv: nothing may follow it (attacker8 F8: `git -C REPO log` took
        # --output=FILE after it and wrote any file as root).
        assert wire.wait(wire.run(["sh", "-c", "exit 5"]), 5).exit.exit_code == 5
        denied(wire.wait(wire.run(["sh", "-c", "exit 5", "extra"]), 5))
        # A client PATH would pick which "echo" runs: refused for a key
        # restricted by program name.
        result = wire.wait(wire.run(["echo", "x"], env={"PATH": "/tmp"}), 5)
        assert result.error is not None and result.error.code == "env.forbidden"
        # The connection carries on after every refusal.
        assert wire.wait(wire.run(["echo", "still"]), 5).exit.exit_code == 0
    refused = server.events("refused")
    assert [r["code"] for r in refused] == ["command.denied"] * 5 + ["env.forbidden"]
    assert refused[0]["argv"] == ["cat", "/etc/passwd"]


def test_shell_strings_refused_for_ci(keyed) -> None:
    server, ops_key, ci_key, root = keyed
    with open_wire(server, key=ci_key) as wire:
        denied(wire.wait(wire.run(shell="echo hi"), 5))
    with open_wire(server, key=ops_key) as wire:
        assert bytes(wire.wait(wire.run(shell="echo hi", cwd=str(root)), 5).stdout) == b"hi\n"


def test_pty_refused_for_ci(keyed) -> None:
    """Attacker5 F17: a key that may run some programs gets no pty unless its
    rules say allow_pty = true: on a terminal, `git log`'s pager runs `!id`."""
    server, ops_key, ci_key, root = keyed
    with open_wire(server, key=ci_key) as wire:
        denied(wire.wait(wire.run(["echo", "hi"], pty=Pty()), 5))
    with open_wire(server, key=ops_key) as wire:
        result = wire.wait(wire.run(["echo", "hi"], pty=Pty(), cwd=str(root)), 5)
        assert b"hi" in bytes(result.stdout)


def test_cwd_roots(keyed) -> None:
    server, ops_key, _, root = keyed
    with open_wire(server, key=ops_key) as wire:
        result = wire.wait(wire.run(["pwd"], cwd=str(root / "sub")), 5)
        assert bytes(result.stdout).decode().strip() == str((root / "sub").resolve())
        # A path that only textually starts in the root and resolves elsewhere.
        result = wire.wait(wire.run(["pwd"], cwd=str(root / "sub" / ".." / "..")), 5)
        denied(result)
        for outside in ("/etc", str(root / "escape"), "/proc/self/cwd", str(root) + "x"):
            denied(wire.wait(wire.run(["pwd"], cwd=outside), 5))
        # No cwd: the home directory, outside the root, is refused too.
        denied(wire.wait(wire.run(["pwd"]), 5))
        # Inside the root but not a directory: cwd.invalid, as without roots.
        denied(wire.wait(wire.run(["pwd"], cwd=str(root / "file")), 5), "cwd.invalid")
        denied(wire.wait(wire.run(["pwd"], cwd=str(root / "missing")), 5), "cwd.invalid")


def test_key_max_timeout_clamps_a_longer_client_timeout(keyed, marker) -> None:
    server, _, ci_key, _ = keyed
    m = marker()
    with open_wire(server, key=ci_key) as wire:
        sent = time.monotonic()
        result = wire.wait(wire.run(["sleep", m], timeout=30.0), 5)
        elapsed = time.monotonic() - sent
    assert result.exit.timed_out is True, result.exit
    assert 0.4 < elapsed < 1.5, elapsed
    assert wait_gone(m, 1.0) == []
    exec_record = server.events("exec")[-1]
    assert exec_record["timeout"] == 0.5 and exec_record["key"] == "ci"


def test_env_allow(keyed) -> None:
    server, ops_key, _, root = keyed
    with open_wire(server, key=ops_key) as wire:
        result = wire.wait(wire.run(["env"], cwd=str(root), env={"APP_MODE": "x", "LANG": "C"}), 5)
        assert b"APP_MODE=x\n" in bytes(result.stdout)
        message = denied(
            wire.wait(wire.run(["env"], cwd=str(root), env={"OTHER": "y"}), 5), "env.forbidden"
        )
        assert message == "key ops may not set OTHER"
        # The key's list replaces the default one: TZ is not on it.
        denied(wire.wait(wire.run(["env"], cwd=str(root), env={"TZ": "UTC"}), 5), "env.forbidden")
        # The floor still applies to names a pattern would allow.
        message = denied(
            wire.wait(wire.run(["env"], cwd=str(root), env={"LD_PRELOAD": "/x.so"}), 5),
            "env.forbidden",
        )
        assert message == "LD_PRELOAD may never be set by a client"


def test_server_max_output_clamps(keyed) -> None:
    server, _, ci_key, _ = keyed
    with open_wire(server, key=ci_key) as wire:
        for asked in (None, 10**9):
            fields = {} if asked is None else {"output_limit": asked}
            result = wire.wait(wire.run(["yes"], **fields), 5)
            assert result.exit.output_capped is True
            assert len(result.stdout) + len(result.stderr) == 4096
        # Asking for less than the cap is honoured.
        result = wire.wait(wire.run(["yes"], output_limit=10), 5)
        assert len(result.stdout) == 10 and result.exit.output_capped is True


def test_server_max_timeout_clamps(daemon, marker) -> None:
    server = daemon("--max-timeout", "0.5", "--kill-grace", "0.2")
    m = marker()
    with open_wire(server) as wire:
        start = time.monotonic()
        result = wire.wait(wire.run(["sleep", m], timeout=100.0), 5)
        assert result.exit.timed_out is True and time.monotonic() - start < 1.5
        # No timeout asked: the server's maximum applies all the same.
        result = wire.wait(wire.run(["sleep", m]), 5)
        assert result.exit.timed_out is True
        # Less than the maximum is honoured.
        start = time.monotonic()
        result = wire.wait(wire.run(["sleep", m], timeout=0.1), 5)
        assert result.exit.timed_out is True and time.monotonic() - start < 0.45


def test_an_explicit_allow_pty_turns_it_back_on_for_a_key_with_allow_argv(tmp_path: Path) -> None:
    spec = {"name": "k", "file": str(tmp_path / "k"), "allow_argv": ("top",)}
    assert KeyRules.from_spec(KeySpec(**spec), bytes(32)).allow_pty is False
    assert KeyRules.from_spec(KeySpec(**spec, allow_pty=True), bytes(32)).allow_pty is True
    assert KeyRules.from_spec(KeySpec(name="k", file="f"), bytes(32)).allow_pty is True
