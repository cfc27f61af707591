"""Settings: a TOML file with [server]/[limits]/[commands]/[[keys]], the
precedence flags > REXECD_* > file, and one-line start-up errors."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from forkserver import run_rexecd

from .conftest import Daemon, open_wire, write_key


def rexecd(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``run_rexecd`` with no ``REXECD_`` setting inherited from this process,
    and ``env`` added."""
    merged = {k: v for k, v in os.environ.items() if not k.startswith("REXECD_")}
    merged.update(env or {})
    return run_rexecd(*args, env=merged, cwd=cwd)


@pytest.fixture(autouse=True)
def private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never near the real ~/.config/rexec/key, whatever a test forgets to pass."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.delenv("REXEC_KEY_FILE", raising=False)


def one_line_failure(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def two_keys(tmp_path: Path) -> tuple[Path, Path]:
    ops, ci = tmp_path / "ops.key", tmp_path / "ci.key"
    write_key(ops)
    write_key(ci)
    return ops, ci


def full_config(tmp_path: Path, ops: Path, ci: Path, extra_limits: str = "") -> Path:
    return write_config(
        tmp_path / "rexecd.toml",
        f"""
[server]
host = "127.0.0.1"
frame_timeout = 5.0
auth_timeout = 5

[limits]
max_connections = 50
max_output = 100
{extra_limits}

[commands]
kill_grace = 0.3
drain_grace = 0.3

[[keys]]
name = "ops"
file = "{ops}"

[[keys]]
name = "ci"
file = "{ci}"
allow_argv = ["echo"]
allow_shell = false
""",
    )


def test_check_config_accepts_a_full_file(tmp_path: Path, two_keys: tuple[Path, Path]) -> None:
    config = full_config(tmp_path, *two_keys)
    result = rexecd("--config", str(config), "--check-config")
    assert result.returncode == 0, result.stderr
    assert "configuration OK (2 key(s))" in result.stdout
    # The same file through REXECD_CONFIG.
    result = rexecd("--check-config", env={"REXECD_CONFIG": str(config)})
    assert result.returncode == 0, result.stderr
    assert "2 key(s)" in result.stdout


def test_check_config_creates_nothing(tmp_path: Path) -> None:
    """Checking changes nothing: a missing key file (which a real start
    creates) is reported, not created."""
    missing = tmp_path / "nokey"
    result = rexecd("--key-file", str(missing), "--check-config")
    assert result.returncode == 0, result.stderr
    assert not missing.exists()
    assert f"{missing} does not exist yet" in result.stdout


def test_file_settings_apply_and_keys_authenticate(daemon, tmp_path: Path, two_keys) -> None:
    ops, ci = two_keys
    config = full_config(tmp_path, ops, ci)
    server: Daemon = daemon("--config", str(config), key=False)
    for path in (ops, ci):
        key = bytes.fromhex(path.read_text().strip())
        with open_wire(server, key=key) as wire:
            result = wire.wait(wire.run(["echo", "hi"]), 5)
            assert bytes(result.stdout) == b"hi\n"
    # [limits] max_output = 100 from the file caps output.
    with open_wire(server, key=bytes.fromhex(ops.read_text().strip())) as wire:
        result = wire.wait(wire.run(["yes"]), 5)
    assert result.exit.output_capped is True and len(result.stdout) == 100


@pytest.mark.parametrize(
    ("env", "flags", "expected"),
    [
        ({}, (), 100),
        ({"REXECD_MAX_OUTPUT": "50"}, (), 50),
        ({"REXECD_MAX_OUTPUT": "50"}, ("--max-output", "10"), 10),
    ],
    ids=["file", "env-over-file", "flag-over-env"],
)
def test_precedence_flags_over_env_over_file(
    daemon, tmp_path: Path, env: dict[str, str], flags: tuple[str, ...], expected: int
) -> None:
    config = write_config(tmp_path / "c.toml", "[limits]\nmax_output = 100\n")
    merged = {k: v for k, v in os.environ.items() if not k.startswith("REXECD_")} | env
    server = daemon("--config", str(config), *flags, env=merged)
    with open_wire(server) as wire:
        result = wire.wait(wire.run(["yes"]), 5)
    assert result.exit.output_capped is True
    assert len(result.stdout) == expected


def test_env_alone_sets_a_setting(tmp_path: Path) -> None:
    """Env values are checked like file values: a bad one names the variable."""
    line = one_line_failure(rexecd("--check-config", env={"REXECD_KILL_GRACE": "soon"}))
    assert "REXECD_KILL_GRACE" in line and "kill_grace" in line


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("[server]\nframe_timout = 1\n", ["frame_timout", "unknown setting"]),
        ('[server]\nframe_timeout = "soon"\n', ["frame_timeout", "number"]),
        ("[limits]\nmax_output = -5\n", ["max_output"]),
        ("[limits]\nmax_commands = 1.5\n", ["max_commands", "whole number"]),
        ('[server]\ninsecure = "maybe"\n', ["insecure", "true or false"]),
        ("[limits]\nkill_grace = nan\n", ["kill_grace"]),
        ("[limits]\nframe_timeout = inf\n", ["frame_timeout"]),
        ("[serverr]\nport = 1\n", ["serverr", "unknown table"]),
        ("[server]\nport = 1\n\n[limits\nmax_output = 1\n", ["line 4"]),
        ("[server]\nport = 1\nport = 2\n", ["line 3"]),
        ('[[keys]]\nname = "a"\n', ["[[keys]] #1", "file"]),
        ('[[keys]]\nname = "a"\nfile = "/x"\nallow_everything = true\n', ["allow_everything"]),
        (
            '[[keys]]\nname = "a"\nfile = "/x"\nallow_argv = "echo"\n',
            ["allow_argv", "list of strings"],
        ),
        ('[[keys]]\nname = "a"\nfile = "/x"\nallow_argv = ["echo \'unclosed"]\n', ["allow_argv"]),
        ("[server]\nport = 70000\n", ["port", "65535"]),
        ('[server]\nport = "7420"\n', ["port", "whole number"]),
        ("[limits]\nmax_commands = 0\n", ["max_commands", "at least 1"]),
    ],
    ids=[
        "unknown-setting",
        "bad-type",
        "negative",
        "float-for-int",
        "bad-bool",
        "nan",
        "inf",
        "unknown-table",
        "syntax-error",
        "duplicate-key",
        "key-without-file",
        "unknown-rule",
        "rule-bad-type",
        "rule-bad-quoting",
        "port-range",
        "string-for-int",
        "zero-commands",
    ],
)
def test_bad_file_is_one_line_naming_the_file(
    tmp_path: Path, text: str, needles: list[str]
) -> None:
    config = write_config(tmp_path / "bad.toml", text)
    line = one_line_failure(rexecd("--config", str(config), "--check-config"))
    assert str(config) in line, line
    for needle in needles:
        assert needle in line, line
    # Starting for real fails the same way, before listening.
    line2 = one_line_failure(rexecd("--config", str(config), "--port", "0"))
    assert line2 == line


def test_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    line = one_line_failure(rexecd("--config", str(missing), "--check-config"))
    assert str(missing) in line and "does not exist" in line


def test_missing_key_file_of_a_key(tmp_path: Path) -> None:
    config = write_config(tmp_path / "k.toml", f'[[keys]]\nname = "a"\nfile = "{tmp_path}/none"\n')
    line = one_line_failure(rexecd("--config", str(config), "--check-config"))
    assert f"{tmp_path}/none" in line


def test_key_file_and_keys_together_refused(tmp_path: Path, two_keys) -> None:
    config = full_config(tmp_path, *two_keys)
    line = one_line_failure(
        rexecd("--config", str(config), "--key-file", str(two_keys[0]), "--check-config")
    )
    assert "key_file" in line


@pytest.mark.parametrize(
    "args", [("--frame-timeout", "-1"), ("--kill-grace", "nan"), ("--max-commands", "0")]
)
def test_bad_flag_is_one_line(args: tuple[str, str]) -> None:
    line = one_line_failure(rexecd(*args, "--check-config"))
    assert args[0].lstrip("-") in line.replace("_", "-")


def test_run_as_needs_a_real_user(tmp_path: Path) -> None:
    write_key(tmp_path / "k")
    line = one_line_failure(
        rexecd(
            "--key-file", str(tmp_path / "k"), "--run-as", "no-such-user-rexec", "--check-config"
        )
    )
    assert "no-such-user-rexec" in line


@pytest.mark.skipif(os.geteuid() != 0, reason="run_as=root refusal is checked as root")
def test_run_as_root_refused(tmp_path: Path) -> None:
    write_key(tmp_path / "k")
    line = one_line_failure(
        rexecd("--key-file", str(tmp_path / "k"), "--run-as", "root", "--check-config")
    )
    assert "unprivileged" in line


def test_state_dir_must_be_private(tmp_path: Path) -> None:
    """A sweep as root kills what the records name: a directory others can
    write would let them name any process."""
    write_key(tmp_path / "k")
    state = tmp_path / "state"
    state.mkdir()
    os.chmod(state, 0o777)
    line = one_line_failure(
        rexecd("--key-file", str(tmp_path / "k"), "--state-dir", str(state), "--port", "0")
    )
    assert str(state) in line and "chmod 700" in line
