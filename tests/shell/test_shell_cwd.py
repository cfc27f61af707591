"""``rexec shell --cwd DIR`` (outsider5 F7b): on a server whose commands may
run only in some directories (``cwd_roots``), the shell starts in one of
them; without ``--cwd`` the refusal says how, in one line. As ``rexec run
--cwd`` and ``rexec batch --cwd``."""

from __future__ import annotations

from pathlib import Path

import pexpect

from .conftest import rexec_argv


def test_the_shell_starts_in_the_directory_given(start_server, open_shell, tmp_path: Path) -> None:
    root = tmp_path / "allowed"
    (root / "sub").mkdir(parents=True)
    server = start_server("--cwd-roots", str(root))
    shell = open_shell(server, "--cwd", str(root))
    assert shell.run("pwd").splitlines()[-1].strip() == str(root)
    shell.run("cd sub")  # the shell's own cd: not a new command
    assert shell.cwd.endswith("/allowed/sub"), shell.cwd
    assert "hello" in shell.run("echo hello")  # a line after the cd still runs


def test_without_cwd_the_refusal_names_the_way_out(start_server, spawn, tmp_path: Path) -> None:
    root = tmp_path / "allowed"
    root.mkdir()
    server = start_server("--cwd-roots", str(root))
    child = spawn(rexec_argv("shell", "--key-file", str(server.key_file), server.address))
    child.expect(pexpect.EOF)
    child.close()
    lines = child.before.decode().strip().splitlines()
    assert child.exitstatus == 255, child.before
    assert len(lines) == 1, lines
    assert "the remote shell was refused: the directory is outside the allowed roots" in lines[0]
    assert "name one with --cwd DIR" in lines[0]
