"""Every ``sh`` and ``python`` block of the README, run as written against a
real rexecd, so that an example that stops working fails CI.

How a section's examples run (one test per ``#``/``##`` section):

- In a fresh directory holding a small ``src/`` tree, with ``HOME`` a fresh
  home, the venv's programs first on ``PATH``, and no ``REXEC_*``/``XDG_*``
  variables. Unless the section starts rexecd itself, a rexecd with its
  default settings listens on port 0 and has made ``~/.config/rexec/key``, as
  the first start of ``./scripts/serve`` does.
- A ``sh`` block runs command by command (a line, with its ``\\``
  continuations) in ``/bin/sh``; each must exit 0 and print no traceback. A
  command that ends in ``echo $?`` under a comment starting with a number
  must print that number.
- A ``python`` block runs whole, in this interpreter; it must exit 0.
- The text is run as written but for ``readme_blocks.rewrite``: the documented
  servers (server.example.org, 192.0.2.10, 0.0.0.0) become 127.0.0.2, port
  7420 becomes the test server's port (and a bare 127.0.0.x gets it), and
  ``/tmp`` becomes a scratch directory.
- A command that starts rexecd to serve runs in the background with
  ``--port 0`` and an audit log of its own; later commands reach it.
- In a section of ``MACHINES``, each ``sh`` block runs on the machine named
  for it: a home of its own, with ``ssh HOST COMMAND`` running COMMAND in the
  server's home.
- ``SKIPS`` lists the commands that are not run, each with the reason.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from launch import wait_for_ready, write_key_file

from .readme_blocks import README, Block, Section, commands, rewrite, sections

#: Commands not run (a regular expression searched in each), and why.
SKIPS = {
    r"^\./scripts/serve\b": "serves until Ctrl-C: tests/newuser/test_scripts.py starts it and "
    "runs the command it prints",
    r"^\./scripts/test\b": "it is what runs this test; tests/newuser/test_scripts.py checks "
    "what it sets up",
    r"\[--key-file F\]": "a synopsis, not a command",
    r"\bHOST\b": "HOST is a placeholder, and these write into the server account's real home "
    "or need a terminal; tests/transfer and tests/shell run the same commands",
    r"web\[01-20\]|node\[1-4\]|hosts\.txt": "needs a fleet of named servers; tests/batch runs "
    "these options against a pool of local servers",
}

#: Sections whose ``sh`` blocks run on different machines, one name per block.
MACHINES = {"A second machine": ("server", "client")}

#: Bounds on one command, and on a server's start.
COMMAND_TIMEOUT = 60
START_TIMEOUT = 20
READY = re.compile(rb"rexecd listening on (\S+):(\d+)")
#: Options of rexecd that do something and exit, rather than serve.
_ONE_SHOT = ("--init-tls", "--check-config", "--version", "--help")
#: An expected status: ``...; echo $?   # 124: ...``.
_EXPECTED_STATUS = re.compile(r";\s*echo \$\?\s*#\s*(\d+)\b")


class Machines:
    """The homes, background servers and environment of one section's run."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.workdir = root / "work"
        self.scratch = root / "scratch"
        self.bin = root / "bin"
        for directory in (self.workdir / "src", self.scratch, self.bin):
            directory.mkdir(parents=True)
        (self.workdir / "src" / "main.c").write_text("int main(void) { return 0; }\n")
        (self.workdir / "src" / "README").write_text("a small tree for the examples\n")
        self._write_ssh()
        self.servers: list[subprocess.Popen[bytes]] = []
        self.port: int | None = None

    def home(self, machine: str) -> Path:
        home = self.root / f"home-{machine}"
        home.mkdir(exist_ok=True)
        return home

    def env(self, machine: str) -> dict[str, str]:
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("REXEC_", "XDG_", "PYTEST_"))
        }
        env["HOME"] = str(self.home(machine))
        env["PATH"] = os.pathsep.join(
            [str(self.bin), str(Path(sys.executable).parent), env.get("PATH", "")]
        )
        env["README_SERVER_HOME"] = str(self.home("server"))
        return env

    def _write_ssh(self) -> None:
        """``ssh HOST COMMAND...``: COMMAND run by a shell in the server's home,
        as ssh runs it on the other machine."""
        ssh = self.bin / "ssh"
        ssh.write_text(
            '#!/bin/sh\nshift\ncd "$README_SERVER_HOME" || exit 255\n'
            'HOME="$README_SERVER_HOME" exec /bin/sh -c "$*"\n'
        )
        ssh.chmod(ssh.stat().st_mode | stat.S_IXUSR)

    def start_server(self, command: str, machine: str) -> None:
        """Run a serving ``rexecd`` command in the background; wait until it
        listens and remember its port."""
        home = self.home(machine)
        extra = f" --port 0 --audit-log {home / 'audit.jsonl'}"
        with open(self.root / f"rexecd-{len(self.servers)}.stderr", "wb") as stderr:
            process = subprocess.Popen(
                ["/bin/sh", "-c", f"exec {command}{extra}"],
                cwd=self.workdir, env=self.env(machine),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
            )  # fmt: skip
        self.servers.append(process)
        match, output = wait_for_ready(process, READY, START_TIMEOUT)
        if match is None:
            errors = (self.root / f"rexecd-{len(self.servers) - 1}.stderr").read_text()
            pytest.fail(f"{command!r} did not start: {output!r} {errors}")
        self.port = int(match.group(2))

    def stop(self) -> None:
        for process in self.servers:
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()


@pytest.fixture
def machines(tmp_path: Path) -> Iterator[Machines]:
    result = Machines(tmp_path)
    yield result
    result.stop()


def _skip_reason(command: str) -> str | None:
    for pattern, reason in SKIPS.items():
        if re.search(pattern, command):
            return reason
    return None


def _serves(command: str) -> bool:
    return command.split()[0] == "rexecd" and not any(flag in command for flag in _ONE_SHOT)


def _ipv6_served(port: int | None) -> bool:
    """Whether something accepts connections on [::1]:port."""
    if port is None:
        return False
    try:
        with socket.create_connection(("::1", port), timeout=5):
            return True
    except OSError:
        return False


def _check(result: subprocess.CompletedProcess[bytes], what: str, expected: int = 0) -> None:
    problem = None
    if result.returncode != expected:
        problem = f"exited {result.returncode}, not {expected}"
    elif b"Traceback" in result.stderr:
        problem = "printed a traceback"
    if problem:
        pytest.fail(
            f"README example {what} {problem}\nstdout: {result.stdout[-2000:]!r}\n"
            f"stderr: {result.stderr[-2000:]!r}\n"
            "Fix the example (or the code), or list it in SKIPS with the reason."
        )


def _run_sh(block: Block, machines: Machines, machine: str, not_run: list[str]) -> None:
    for command in commands(block):
        if _skip_reason(command):
            continue
        if _serves(command):
            machines.start_server(
                rewrite(command, port=None, scratch=machines.scratch, names_a_port=False),
                machine,
            )
            continue
        if "[::1]" in command and not _ipv6_served(machines.port):
            not_run.append(
                f"{command!r}: rexecd does not listen on ::1 by default yet (dual-stack "
                "listening, from the server-architecture work, runs it)"
            )
            continue
        runnable = rewrite(
            command, port=machines.port, scratch=machines.scratch,
            names_a_port=command.split()[0] != "rexecd",
        )  # fmt: skip
        result = subprocess.run(
            ["/bin/sh", "-c", runnable],
            cwd=machines.workdir, env=machines.env(machine),
            stdin=subprocess.DEVNULL, capture_output=True, timeout=COMMAND_TIMEOUT, check=False,
        )  # fmt: skip
        what = f"at README.md:{block.line} ({command!r}, run as {runnable!r})"
        _check(result, what)
        if expected := _EXPECTED_STATUS.search(command):
            last = result.stdout.decode().splitlines()[-1:]
            assert last == [expected.group(1)], f"{what} printed {result.stdout!r}"


def _run_python(block: Block, machines: Machines, machine: str) -> None:
    code = rewrite(block.text, port=machines.port, scratch=machines.scratch)
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=machines.workdir, env=machines.env(machine),
        stdin=subprocess.DEVNULL, capture_output=True, timeout=COMMAND_TIMEOUT, check=False,
    )  # fmt: skip
    _check(result, f"at README.md:{block.line} (python)")


def _runs_a_server(section: Section) -> bool:
    return any(
        _serves(command) for block in section.blocks if block.language == "sh"
        for command in commands(block)
    )  # fmt: skip


def _has_examples_to_run(section: Section) -> bool:
    return any(
        block.language == "python" or any(not _skip_reason(c) for c in commands(block))
        for block in section.blocks
    )


SECTIONS = sections()
README_TEXT = README.read_text()


@pytest.mark.timeout(600)
@pytest.mark.parametrize("section", SECTIONS, ids=[section.title for section in SECTIONS])
def test_readme_section_examples_work(section: Section, machines: Machines) -> None:
    shell_blocks = [block for block in section.blocks if block.language == "sh"]
    names = MACHINES.get(section.title, ("local",) * len(shell_blocks))
    assert len(names) == len(shell_blocks), (
        f"MACHINES names {len(names)} machines for the {len(shell_blocks)} sh blocks of "
        f"{section.title!r}: update it"
    )
    if not _has_examples_to_run(section):
        pytest.skip("every example here is in SKIPS")
    if not _runs_a_server(section):
        # The first start of ./scripts/serve: default settings, a new key.
        machines.start_server("rexecd", "local")
    not_run: list[str] = []
    machine_of = dict(zip((id(block) for block in shell_blocks), names, strict=True))
    for block in section.blocks:
        machine = machine_of.get(id(block), "local")
        if block.language == "sh":
            _run_sh(block, machines, machine, not_run)
        else:
            _run_python(block, machines, machine)
    if not_run:
        pytest.skip("the rest ran; not run: " + "; ".join(not_run))


def test_every_skip_still_matches_an_example() -> None:
    """A SKIPS entry whose example is gone would hide the next one that matches."""
    every = [
        command for section in SECTIONS for block in section.blocks if block.language == "sh"
        for command in commands(block)
    ]  # fmt: skip
    for pattern in SKIPS:
        assert any(re.search(pattern, command) for command in every), pattern


def test_the_readme_has_runnable_examples() -> None:
    titles = [section.title for section in SECTIONS]
    for title in ("rexec", "A quick tour", "A second machine"):
        assert title in titles


def test_the_inline_batch_example_works_after_import_rexec_client(
    start_server: Callable[..., Any], tmp_path: Path
) -> None:
    """The README's one-line library example of ``rexec batch`` (inline code,
    so not a block): after ``import rexec_client`` alone, with its two hosts
    and key file replaced by two test servers and their key."""
    inline = re.search(
        r"`(for r in rexec_client\.batch\.run_batch_sync\(.*?)`", README_TEXT, re.DOTALL
    )
    assert inline is not None, "the README's inline run_batch_sync example is gone"
    key_file = write_key_file(tmp_path)
    first, second = start_server(key_file=key_file), start_server(key_file=key_file)
    snippet = " ".join(inline.group(1).split())
    snippet = snippet.replace('["web1", "web2"]', repr([first.address, second.address]))
    snippet = snippet.replace('key_file="key"', f"key_file={str(key_file)!r}")
    result = subprocess.run(
        [sys.executable, "-c", f"import rexec_client\n{snippet}\n"],
        capture_output=True, timeout=COMMAND_TIMEOUT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    lines = sorted(result.stdout.decode().splitlines())
    assert len(lines) == 2, lines
    for line, server in zip(lines, sorted([first.address, second.address]), strict=True):
        assert line.startswith(server) and re.search(r"\bok\b", line, re.IGNORECASE), line
        assert "load average" in line
