"""How commands end, as the exit (or error) frame reports it."""

from __future__ import annotations

import os
import pwd
import signal

import pytest

from rexec.protocol import Ping

from .wire import run_once


@pytest.mark.parametrize("code", [0, 1, 255])
def test_exit_codes(server, code) -> None:
    result = run_once(server, shell=f"exit {code}")
    assert result.exit is not None
    assert result.exit.exit_code == code
    assert result.exit.signal is None and result.exit.signal_name is None
    assert not (result.exit.timed_out or result.exit.cancelled or result.exit.output_capped)


def test_false_and_true_by_argv(server, wires) -> None:
    wire = wires(server)
    ids = [wire.run(["true"]), wire.run(["false"])]
    codes = [r.exit.exit_code for r in wire.wait_all(ids)]
    assert codes == [0, 1]


@pytest.mark.parametrize(
    ("shell", "signum", "name"),
    [
        ("kill -KILL $$", 9, "SIGKILL"),
        ("kill -TERM $$", 15, "SIGTERM"),
        ("kill -SEGV $$", 11, "SIGSEGV"),
    ],
)
def test_killed_by_signal(server, shell, signum, name) -> None:
    result = run_once(server, shell=shell)
    assert result.exit is not None
    assert result.exit.exit_code is None
    assert result.exit.signal == signum
    assert result.exit.signal_name == name


def test_exit_status_after_closing_stdout_and_stderr_early(server) -> None:
    result = run_once(server, shell="exec >/dev/null 2>&1; sleep 0.2; exit 44")
    assert result.exit is not None and result.exit.exit_code == 44
    # Reported once the command ended, not when its pipes closed (at once):
    # the server's clock starts when the process exists, a moment after the
    # shell did, so a little under sleep's 0.2 s.
    assert result.exit.duration >= 0.15


@pytest.mark.parametrize("argv0", ["/nonexistent/program-rexec-test", "no-such-program-rexec-test"])
def test_missing_program_is_a_command_scoped_error(server, wires, argv0) -> None:
    wire = wires(server)
    command_id = wire.run([argv0, "x"])
    result = wire.wait(command_id)
    assert result.exit is None and result.started is None
    assert result.error is not None
    assert result.error.code == "spawn.not_found"
    assert result.error.id == command_id
    assert result.error.fatal is False
    assert "ENOENT" in result.error.message
    # The connection carries on.
    again = wire.run(["echo", "after"])
    assert bytes(wire.wait(again).stdout) == b"after\n"


def test_non_executable_file_is_permission_denied(server, wires, tmp_path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    os.chmod(script, 0o644)
    wire = wires(server)
    command_id = wire.run([str(script)])
    result = wire.wait(command_id)
    assert result.error is not None and result.error.code == "spawn.permission_denied"
    assert result.error.fatal is False and result.error.id == command_id
    assert "EACCES" in result.error.message
    assert bytes(wire.wait(wire.run(["true"])).stdout) == b""


def test_directory_as_program_is_refused(server, wires, tmp_path) -> None:
    wire = wires(server)
    result = wire.wait(wire.run([str(tmp_path)]))
    assert result.error is not None
    assert result.error.code in ("spawn.permission_denied", "spawn.failed")
    assert result.error.fatal is False


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_bad_cwd(server, wires, tmp_path, kind) -> None:
    cwd = tmp_path / "nowhere"
    if kind == "file":
        cwd.write_text("")
    wire = wires(server)
    command_id = wire.run(["pwd"], cwd=str(cwd))
    result = wire.wait(command_id)
    assert result.error is not None and result.error.code == "cwd.invalid"
    assert result.error.id == command_id and result.error.fatal is False
    assert str(cwd) not in result.error.message  # no echo of client input


def test_cwd_is_used_and_defaults_to_home(server, wires, tmp_path) -> None:
    wire = wires(server)
    result = wire.wait(wire.run(["pwd"], cwd=str(tmp_path)))
    assert bytes(result.stdout).decode().strip() == os.path.realpath(tmp_path)
    result = wire.wait(wire.run(["pwd"]))
    # The account's home (as sshd), not whatever HOME the server was given.
    home = pwd.getpwuid(os.getuid()).pw_dir
    assert bytes(result.stdout).decode().strip() == os.path.realpath(home)


@pytest.mark.parametrize(
    "name",
    [
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "DYLD_INSERT_LIBRARIES",
        "GLIBC_TUNABLES",
        "BASH_ENV",
        "ENV",
        "PYTHONSTARTUP",
        "PERL5OPT",
        "NODE_OPTIONS",
        "IFS",
    ],
)
def test_forbidden_env_names_are_refused(server, wires, name, tmp_path) -> None:
    marker_file = tmp_path / "ran"
    wire = wires(server)
    command_id = wire.run(["touch", str(marker_file)], env={name: "/tmp/x.so"})
    result = wire.wait(command_id)
    assert result.error is not None and result.error.code == "env.forbidden"
    assert result.error.fatal is False and result.error.id == command_id
    assert not marker_file.exists()
    assert wire.wait(wire.run(["true"])).exit.exit_code == 0


def test_env_is_base_plus_client_names_only(start_server, monkeypatch, wires) -> None:
    monkeypatch.setenv("REXEC_TEST_DAEMON_SECRET", "s3cret")
    server = start_server("--env-allow", "MY_VAR")
    wire = wires(server)
    result = wire.wait(wire.run(["env"], env={"MY_VAR": "a b=c"}))
    lines = bytes(result.stdout).decode().splitlines()
    env = dict(line.split("=", 1) for line in lines)
    assert env["MY_VAR"] == "a b=c"
    assert "REXEC_TEST_DAEMON_SECRET" not in env
    allowed = {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "TZ", "TERM", "MY_VAR"}
    assert set(env) <= allowed | {"PWD", "SHLVL", "_"}, set(env) - allowed


def test_shell_metacharacters_in_argv_are_literal(server) -> None:
    result = run_once(server, ["echo", "$(id)", "`id`", ";", "|", "*"])
    assert bytes(result.stdout) == b"$(id) `id` ; | *\n"


def test_one_terminal_frame_started_first_exit_last(server, wires) -> None:
    wire = wires(server)
    ids = [
        wire.run(shell="printf out; printf err >&2; exit 3"),
        wire.run(["no-such-program-rexec-test"]),
        wire.run(shell="kill -KILL $$"),
        wire.run(["sh", "-c", "head -c 300000 /dev/zero; head -c 200000 /dev/zero >&2"]),
    ]
    results = wire.wait_all(ids)
    # Anything the server still sends for those ids would trip the recorder
    # (frame after terminal frame) or the client core: ping to flush the pipe.
    wire.send(Ping(seq=1))
    while True:
        event = wire.next_event(5)
        if event.type == "pong":
            break
    for result in results:
        assert result.terminal_count == 1, result.kinds
        assert result.kinds[-1] in ("exit", "error")
        if result.exit is not None:
            assert result.kinds[0] == "started" and result.kinds.count("started") == 1
            assert result.exit.stdout_bytes == len(result.stdout)
            assert result.exit.stderr_bytes == len(result.stderr)
            assert (result.exit.exit_code is None) != (result.exit.signal is None)
        else:
            assert result.kinds == ["error"]
    assert bytes(results[0].stdout) == b"out" and bytes(results[0].stderr) == b"err"
    assert results[0].exit.exit_code == 3
    assert len(results[3].stdout) == 300000 and len(results[3].stderr) == 200000


def test_started_pid_is_the_command_process(server, wires) -> None:
    wire = wires(server)
    result = wire.wait(wire.run(shell="echo $$"))
    assert result.started is not None
    assert int(bytes(result.stdout)) == result.started.pid


def test_command_runs_in_its_own_session_and_group(server, wires) -> None:
    wire = wires(server)
    result = wire.wait(
        wire.run(["python3", "-c", "import os; print(os.getpid(), os.getpgid(0), os.getsid(0))"])
    )
    pid, pgid, sid = map(int, bytes(result.stdout).split())
    assert pid == pgid == sid == result.started.pid
    assert sid != os.getsid(0)


def test_signal_names_match_this_host(server) -> None:
    result = run_once(server, shell="kill -USR1 $$")
    assert result.exit.signal == int(signal.SIGUSR1) and result.exit.signal_name == "SIGUSR1"
