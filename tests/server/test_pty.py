"""Commands on a pseudo-terminal."""

from __future__ import annotations

from rexec.protocol import Pty, Resize

from .wire import connect


def test_pty_size_term_and_controlling_terminal(server) -> None:
    with connect(server) as wire:
        command_id = wire.run(
            shell='stty size; echo "$TERM"; tty', pty=Pty(rows=30, cols=100, term="vt100")
        )
        result = wire.wait(command_id, 5)
        lines = bytes(result.stdout).replace(b"\r", b"").split(b"\n")
        assert lines[0] == b"30 100"
        assert lines[1] == b"vt100"
        assert lines[2].startswith(b"/dev/pts/")
        assert result.stderr == b"" and result.exit.exit_code == 0


def test_resize_signals_winch(server) -> None:
    with connect(server) as wire:
        command_id = wire.run(
            shell='trap "stty size; exit 0" WINCH; echo ready; while :; do sleep 0.05; done',
            pty=Pty(rows=24, cols=80),
        )
        wire.wait_for(lambda: b"ready" in wire.results[command_id].stdout, 5)
        wire.send(Resize(id=command_id, rows=40, cols=120))
        result = wire.wait(command_id, 5)
        assert b"40 120" in bytes(result.stdout)
        assert result.exit.exit_code == 0


def test_pty_stdin_and_eof(server) -> None:
    with connect(server) as wire:
        command_id = wire.run(["cat"], pty=Pty(), stdin=True)
        wire.stdin(command_id, b"hello\n")
        wire.stdin_eof(command_id)  # ^D on a terminal
        result = wire.wait(command_id, 5)
        assert result.exit.exit_code == 0
        assert bytes(result.stdout).count(b"hello") == 2  # the echo, then cat's copy


def test_resize_without_pty_is_ignored(server) -> None:
    with connect(server) as wire:
        command_id = wire.run(shell="sleep 0.2; echo fine")
        wire.send(Resize(id=command_id, rows=10, cols=10))
        result = wire.wait(command_id, 5)
        assert bytes(result.stdout) == b"fine\n" and result.exit.exit_code == 0
