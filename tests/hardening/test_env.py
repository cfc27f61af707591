"""The environment a client may set is an allowlist per key (as sshd's
AcceptEnv), above a floor no configuration can lift.

The attacks of issue 11, item 1: a key limited to fixed programs made them run
something else through variables the program's interpreter reads at start-up.
Each runs against a real rexecd and a real program, and must now be refused
with ``env.forbidden`` before anything starts.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import forkserver
import pytest

from .conftest import Daemon, open_wire, write_key

PWNED = "PWNED-by-environment"


@pytest.fixture
def restricted(daemon, tmp_path: Path) -> tuple[Daemon, bytes, bytes, dict[str, Path]]:
    """A daemon with a key ``fixed`` that may run only a bash script, ``git
    status`` and a Python script (no env_allow: no names at all), a key
    ``app`` as fixed but allowed ``APP_*``, and an unrestricted key ``ops``.
    Returns the daemon, the fixed and app keys, and the files."""
    files = {
        "script": tmp_path / "report.sh",
        "py": tmp_path / "report.py",
        "repo": tmp_path / "repo",
        "evil": tmp_path / "evil",
    }
    files["script"].write_text("date >/dev/null\necho report done\n")
    files["py"].write_text("print('report done')\n")
    files["repo"].mkdir()
    subprocess.run(["git", "init", "-q", str(files["repo"])], check=True)
    files["evil"].mkdir()
    (files["evil"] / "sitecustomize.py").write_text(f"print({PWNED!r})\n")
    keys = {name: tmp_path / f"{name}.key" for name in ("fixed", "app", "ops")}
    fixed_key, app_key = write_key(keys["fixed"]), write_key(keys["app"])
    ops_key = write_key(keys["ops"])
    programs = f'["bash {files["script"]}", "git status", "{sys.executable} {files["py"]}", "env"]'
    config = tmp_path / "rexecd.toml"
    config.write_text(f"""
[[keys]]
name = "fixed"
file = "{keys["fixed"]}"
allow_argv = {programs}

[[keys]]
name = "app"
file = "{keys["app"]}"
allow_argv = {programs}
env_allow = ["APP_MODE", "PATH"]

[[keys]]
name = "ops"
file = "{keys["ops"]}"
""")
    server = daemon("--config", str(config), key=False)
    server.key = ops_key
    return server, fixed_key, app_key, files


def refused(result, name: str | None = None) -> str:
    """Assert an ``env.forbidden`` refusal before anything started; returns the message."""
    assert result.error is not None, result.frames
    assert result.error.code == "env.forbidden" and result.error.fatal is False
    assert result.started is None and result.exit is None
    assert PWNED not in bytes(result.stdout + result.stderr).decode(errors="replace")
    if name is not None:
        assert name in result.error.message
    return result.error.message


def test_bash_function_import_is_refused(restricted) -> None:
    server, fixed_key, _, files = restricted
    argv = ["bash", str(files["script"])]
    with open_wire(server, key=fixed_key) as wire:
        result = wire.wait(wire.run(argv, env={"BASH_FUNC_date%%": f"() {{ echo {PWNED}; }}"}), 5)
        message = refused(result)
        # The name has characters outside the portable set: not repeated.
        assert "%" not in message and "a name outside the allowed set" in message
        # Without the variable the program runs as allowed.
        assert bytes(wire.wait(wire.run(argv), 5).stdout) == b"report done\n"


def test_git_config_from_the_environment_is_refused(restricted) -> None:
    server, fixed_key, _, files = restricted
    hook = f"echo {PWNED}; false"
    env = {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "core.fsmonitor",
        "GIT_CONFIG_VALUE_0": hook,
    }
    with open_wire(server, key=fixed_key) as wire:
        refused(wire.wait(wire.run(["git", "status"], cwd=str(files["repo"]), env=env), 5))
        ok = wire.wait(wire.run(["git", "status"], cwd=str(files["repo"])), 5)
        assert ok.exit.exit_code == 0 and PWNED not in bytes(ok.stdout + ok.stderr).decode()


def test_shell_trace_options_are_refused(restricted) -> None:
    server, fixed_key, _, files = restricted
    env = {"SHELLOPTS": "xtrace", "PS4": f"$(echo {PWNED} >&2)"}
    with open_wire(server, key=fixed_key) as wire:
        refused(wire.wait(wire.run(["bash", str(files["script"])], env=env), 5))


def test_python_path_is_refused(restricted) -> None:
    server, fixed_key, _, files = restricted
    with open_wire(server, key=fixed_key) as wire:
        run = wire.run([sys.executable, str(files["py"])], env={"PYTHONPATH": str(files["evil"])})
        refused(wire.wait(run, 5))


def test_a_restricted_key_may_set_only_what_it_lists(restricted) -> None:
    server, fixed_key, app_key, _ = restricted
    with open_wire(server, key=fixed_key) as wire:
        # Nothing by default, not even the names an unrestricted key gets.
        for name in ("LANG", "TZ", "APP_MODE", "PATH"):
            message = refused(wire.wait(wire.run(["env"], env={name: "x"}), 5), name)
            assert "key fixed" in message
    with open_wire(server, key=app_key) as wire:
        result = wire.wait(wire.run(["env"], env={"APP_MODE": "blue"}), 5)
        assert b"APP_MODE=blue\n" in bytes(result.stdout)
        refused(wire.wait(wire.run(["env"], env={"LANG": "C"}), 5), "LANG")
        refused(wire.wait(wire.run(["env"], env={"APP_MODEX": "1"}), 5), "APP_MODEX")
    refusals = [r for r in server.events("refused") if r["code"] == "env.forbidden"]
    assert len(refusals) == 6
    assert [r for r in server.events("exec") if r["key"] == "fixed"] == []


def test_the_default_list_for_an_unrestricted_key(restricted) -> None:
    server, _, _, _ = restricted
    allowed = {"LANG": "C.UTF-8", "LC_ALL": "C", "LC_TIME": "C", "TZ": "UTC0", "TERM": "dumb",
               "COLORTERM": "truecolor", "NO_COLOR": "1", "COLUMNS": "132", "LINES": "50",
               "LANGUAGE": "en"}  # fmt: skip
    with open_wire(server) as wire:
        result = wire.wait(wire.run(["env"], env=allowed), 5)
        shown = dict(line.split("=", 1) for line in bytes(result.stdout).decode().splitlines())
        assert {name: shown.get(name) for name in allowed} == allowed
        for name in ("FOO", "APP_MODE", "EDITOR", "PATH_EXTRA"):
            refused(wire.wait(wire.run(["env"], env={name: "x"}), 5), name)
        # A very long name is not repeated either.
        long_name = "A" * 300
        assert long_name not in refused(wire.wait(wire.run(["true"], env={long_name: "x"}), 5))


def test_the_floor_holds_whatever_the_config_allows(daemon, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    server = daemon("--env-allow", "*")
    floor = {
        "LD_PRELOAD": "/tmp/x.so", "LD_AUDIT": "/tmp/x.so", "DYLD_INSERT_LIBRARIES": "/x",
        "GLIBC_TUNABLES": "glibc.malloc.check=3", "GCONV_PATH": "/tmp", "BASH_ENV": "/tmp/x",
        "ENV": "/tmp/x", "BASH_FUNC_ls%%": "() { id; }", "SHELLOPTS": "xtrace", "PS4": "$(id)",
        "PYTHONPATH": "/tmp", "PYTHONSTARTUP": "/tmp/x", "PERL5OPT": "-Mx", "NODE_OPTIONS": "-r x",
        "GIT_CONFIG_COUNT": "1", "GIT_SSH_COMMAND": "id", "IFS": "/", "x y": "1", "A-B": "1",
        # The second attacker's list: programs that run or load what these name.
        "LESSOPEN": "|id; echo %s", "LESSCLOSE": "id", "LESS": "+!id", "PAGER": "id",
        "MANPAGER": "id", "EDITOR": "id", "VISUAL": "id", "GIT_DIR": "/tmp",
        "GIT_SEQUENCE_EDITOR": "id", "GIT_TEMPLATE_DIR": "/tmp", "HOME": "/tmp",
        "XDG_CONFIG_HOME": "/tmp", "VIMINIT": ":!id", "EXINIT": ":!id", "MYVIMRC": "/tmp/x",
        "LUA_INIT": "os.execute'id'", "LUA_INIT_5_4": "x", "OPENSSL_CONF": "/tmp/x",
        "OPENSSL_ENGINES": "/tmp", "TERMINFO": "/tmp", "TERMINFO_DIRS": "/tmp",
        "BASH_LOADABLES_PATH": "/tmp", "PERLIO": ":via(x)", "RUBYLIB": "/tmp",
        "NODE_EXTRA_CA_CERTS": "/tmp/x", "PS1": "$(id)", "SHELL": "/tmp/x",
    }  # fmt: skip
    with open_wire(server) as wire:
        for name, value in floor.items():
            result = wire.wait(wire.run(["touch", str(marker)], env={name: value}), 5)
            message = refused(result)
            assert "may never be set" in message, (name, message)
        # Everything else is allowed by "*", and seen by the command.
        result = wire.wait(wire.run(["env"], env={"APP_MODE": "x", "TMPDIR": "/tmp"}), 5)
        assert b"APP_MODE=x\n" in bytes(result.stdout) and b"TMPDIR=/tmp\n" in bytes(result.stdout)
    assert not marker.exists()


def test_server_env_allow_adds_to_the_default_list(daemon) -> None:
    server = daemon("--env-allow", "APP_*", "--env-allow", "BUILD_ID")
    with open_wire(server) as wire:
        result = wire.wait(wire.run(["env"], env={"APP_X": "1", "BUILD_ID": "7", "LANG": "C"}), 5)
        assert result.exit.exit_code == 0
        for line in (b"APP_X=1", b"BUILD_ID=7", b"LANG=C"):
            assert line + b"\n" in bytes(result.stdout)
        refused(wire.wait(wire.run(["env"], env={"BUILD": "7"}), 5), "BUILD")


@pytest.mark.parametrize(
    "pattern", ["LD_PRELOAD", "LD_*", "BASH_FUNC_*", "PYTHON*", "GIT_CONFIG_COUNT", "BAD NAME"]
)
def test_a_config_that_allows_the_floor_is_refused_at_start(pattern: str, tmp_path: Path) -> None:
    key = tmp_path / "k.key"
    write_key(key)
    config = tmp_path / "rexecd.toml"
    config.write_text(f'[[keys]]\nname = "k"\nfile = "{key}"\nenv_allow = ["{pattern}"]\n')
    for argv in (["--config", str(config)], ["--key-file", str(key), "--env-allow", pattern]):
        result = forkserver.run(
            [sys.executable, "-m", "rexec.daemon", "--check-config", *argv], text=True, timeout=30
        )
        assert result.returncode == 1, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "env_allow" in lines[0] and "Traceback" not in result.stderr


@pytest.mark.parametrize("entry", ["*", "APP_*", "LC_?", "[A]PP"])
def test_a_key_restricted_to_programs_lists_exact_names(entry: str, tmp_path: Path) -> None:
    """A pattern (``*`` above all) on a key with allow_argv is refused at start."""
    key = tmp_path / "k.key"
    write_key(key)
    config = tmp_path / "rexecd.toml"
    config.write_text(
        f'[[keys]]\nname = "k"\nfile = "{key}"\nallow_argv = ["/usr/bin/less"]\n'
        f'env_allow = ["APP_MODE", "{entry}"]\n'
    )
    result = forkserver.run(
        [sys.executable, "-m", "rexec.daemon", "--check-config", "--config", str(config)],
        text=True,
        timeout=30,
    )
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "exact names" in lines[0] and entry in lines[0]


def test_lessopen_runs_nothing(daemon, tmp_path: Path) -> None:
    """The attack itself: ``less`` runs LESSOPEN's command (finding 4)."""
    marker, text = tmp_path / "pwned", tmp_path / "notes.txt"
    text.write_text("notes\n")
    server = daemon("--env-allow", "*")
    lessopen = f"|touch {marker}; cat %s"
    with open_wire(server) as wire:
        message = refused(wire.wait(wire.run(["less", str(text)], env={"LESSOPEN": lessopen}), 5))
        assert "LESSOPEN may never be set" in message
    assert not marker.exists()


@pytest.mark.parametrize(
    ("name", "value"),
    [("LC_ALL", "/tmp/evil"), ("LANG", "../../tmp/evil"), ("LANGUAGE", "fr:/tmp/x"),
     ("LC_CTYPE", "C.UTF-8;id"), ("LC_MESSAGES", "..")],
)  # fmt: skip
def test_locale_values_are_names_not_paths(restricted, name: str, value: str) -> None:
    server, _, _, _ = restricted
    with open_wire(server) as wire:
        message = refused(wire.wait(wire.run(["env"], env={name: value}), 5), name)
        assert "locale name" in message and value not in message
        good = {"LANG": "de_DE.UTF-8@euro", "LANGUAGE": "fr_CA:en", "LC_ALL": "C", "LC_TIME": ""}
        result = wire.wait(wire.run(["env"], env=good), 5)
        assert result.exit.exit_code == 0 and b"LANGUAGE=fr_CA:en\n" in bytes(result.stdout)
