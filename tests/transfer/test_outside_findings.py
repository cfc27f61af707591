"""The outside testers' transfer findings against a real ``rexecd``
(findings attacker1 and newcomer1): a key limited to some programs may not
replace them by a put, setuid bits need an unrestricted key, numbers in
transfer headers are bounded, /proc files come whole, a tampered resume file
is started over, a path's roots are checked before anything is said of it,
and relative paths start in the home commands run in."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pwd
import re
import secrets
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from launch import wait_for_ready

from rexec.files import partial_name
from rexec.protocol import Put

from .client import Result, TransferClient

#: rexecd's line once it listens (as tests/conftest.py reads it).
READY_LINE = re.compile(rb"rexecd listening on (\S+):(\d+)")


def _key(path: Path) -> Path:
    path.write_text(secrets.token_hex(32) + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A server with the attacker's keys: ``deploy`` (one program, inside a
    root), ``deploy_tx`` (the same, transfers explicitly allowed) and
    ``full`` (any program, the same root)."""
    root = tmp_path / "root"
    (root / "app" / "bin").mkdir(parents=True)
    migrate = root / "app" / "bin" / "migrate"
    migrate.write_text("#!/bin/sh\necho migrating\n")
    migrate.chmod(0o755)
    keys = {name: _key(tmp_path / f"{name}.key") for name in ("deploy", "deploy_tx", "full")}
    config = tmp_path / "rexecd.toml"
    config.write_text(f"""
[[keys]]
name = "deploy"
file = "{keys["deploy"]}"
cwd_roots = ["{root}"]
allow_argv = ["{migrate}"]

[[keys]]
name = "deploy_tx"
file = "{keys["deploy_tx"]}"
cwd_roots = ["{root}"]
allow_argv = ["{migrate}"]
allow_transfer = true

[[keys]]
name = "full"
file = "{keys["full"]}"
cwd_roots = ["{root}"]
""")
    # start_server gives the daemon a --key-file, which [[keys]] excludes.
    argv = [sys.executable, "-m", "rexec.daemon", "--host", "127.0.0.1", "--port", "0",
            "--config", str(config), "--audit-log", str(tmp_path / "audit.jsonl"),
            "--state-dir", str(tmp_path / "state"), "--shutdown-grace", "1"]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE)
    try:
        match, line = wait_for_ready(process, READY_LINE, 30)
        assert match is not None, line
        server = SimpleNamespace(host="127.0.0.1", port=int(match.group(2)))
        yield {"server": server, "root": root, "migrate": migrate, "keys": keys}
    finally:
        process.terminate()  # by its PID
        process.wait(timeout=15)
        assert process.stdout is not None
        process.stdout.close()


def _client(keyed: dict[str, Any], name: str) -> TransferClient:
    server = keyed["server"]
    key = bytes.fromhex(keyed["keys"][name].read_text().strip())
    return TransferClient(server.host, server.port, key)


def test_a_key_limited_to_programs_may_not_put_over_them(keyed: dict[str, Any]) -> None:
    """attacker1 #1: ``deploy`` put a script over its own allowed program and
    ran it. With allow_argv set, transfers are off unless explicitly on."""
    migrate = keyed["migrate"]
    before = migrate.read_bytes()
    with _client(keyed, "deploy") as client:
        put = client.put_bytes(str(migrate), b"#!/bin/sh\necho PWNED\n", mode=0o755)
        assert put.code == "command.denied"
        assert "may not transfer files" in put.error.message
        assert client.get(str(migrate)).code == "command.denied"
    assert migrate.read_bytes() == before
    with _client(keyed, "deploy_tx") as client:  # allow_transfer = true: on again
        assert client.put_bytes(str(keyed["root"] / "data"), b"ok").error is None


def test_setuid_bits_need_an_unrestricted_key(
    keyed: dict[str, Any], server: Any, tmp_path: Path
) -> None:
    """attacker1 #1: a root server let any transfer key create setuid files."""
    root = keyed["root"]
    with _client(keyed, "full") as client:  # confined to a root: restricted
        assert client.put_bytes(str(root / "suid"), b"x", mode=0o6755).error is None
    assert stat.S_IMODE((root / "suid").stat().st_mode) == 0o755
    with TransferClient.to(server) as client:  # the default key: anything goes
        assert client.put_bytes(str(tmp_path / "suid"), b"x", mode=0o6755).error is None
    assert stat.S_IMODE((tmp_path / "suid").stat().st_mode) == 0o6755


@pytest.mark.parametrize("field", [
    {"mtime": 1e300}, {"mtime": -1e300}, {"mtime": 1e19}, {"mtime": float("nan")},
    {"size": 2**53}, {"mtime": 253402300800},
])  # fmt: skip
def test_out_of_range_numbers_are_a_header_error(
    server: Any, tmp_path: Path, field: dict[str, float]
) -> None:
    """attacker1 #2: put.mtime 1e300 gave an OverflowError traceback in the
    server's log and file.failed "internal server error"."""
    header = {
        "type": "put", "id": 1, "path": str(tmp_path / "f"), "size": 1, "mode": 0o644,
        "sha256": hashlib.sha256(b"x").hexdigest(), **field,
    }  # fmt: skip
    with TransferClient.to(server) as client:
        body = json.dumps(header).encode()
        client.sock.sendall(len(body).to_bytes(4, "little") + body)
        client.sock.settimeout(10)
        answer = client.sock.recv(65536)
    # NaN is not JSON at all (header.bad_json); the others are out of range.
    assert b"header.invalid" in answer or b"header.bad_json" in answer, answer
    assert not (tmp_path / "f").exists()
    log = (Path(server.key_file).parent / "rexecd.stderr").read_text(errors="replace")
    assert "Traceback" not in log


def _put(client: TransferClient, path: str, data: bytes, **fields: Any) -> Result:
    """A put of ``data`` with header ``fields`` beyond the usual."""
    result = Result(client.new_id())
    client.send(Put(id=result.id, path=path, size=len(data),
                    sha256=hashlib.sha256(data).hexdigest(), **fields))  # fmt: skip
    client.send_data(result, io.BytesIO(data))
    return client.finish_put(result)


def test_an_old_but_valid_mtime_is_set(server: Any, tmp_path: Path) -> None:
    with TransferClient.to(server) as client:
        assert _put(client, str(tmp_path / "old"), b"x", mtime=-(2**31)).error is None
    assert (tmp_path / "old").stat().st_mtime == -(2**31)


@pytest.mark.parametrize("path", ["/proc/self/status", "/proc/cpuinfo", "/proc/version"])
def test_a_proc_file_comes_whole(server: Any, path: str) -> None:
    """attacker1 #4, newcomer1 #19: /proc files said size 0 and came empty,
    with success."""
    sink = io.BytesIO()
    with TransferClient.to(server) as client:
        result = client.get(path, sink)
    assert result.error is None
    data = sink.getvalue()
    assert len(data) > 20
    assert result.file.size == len(data) == result.done.size
    assert result.done.sha256 == hashlib.sha256(data).hexdigest()


def test_a_sys_file_comes_whole(server: Any) -> None:
    """attacker1 #4: a /sys file claimed 4096 bytes, sent 23, then failed."""
    candidates = [p for p in ("/sys/kernel/mm/transparent_hugepage/enabled",
                              "/sys/devices/system/cpu/online", "/sys/kernel/osrelease")
                  if os.access(p, os.R_OK)]  # fmt: skip
    if not candidates:
        pytest.skip("no readable /sys file")
    sink = io.BytesIO()
    with TransferClient.to(server) as client:
        result = client.get(candidates[0], sink)
    assert result.error is None, result.error
    assert result.done.size == len(sink.getvalue()) > 0


@pytest.mark.parametrize("tamper", ["fifo", "hardlink", "symlink"])
def test_a_tampered_resume_file_is_started_over(server: Any, tmp_path: Path, tamper: str) -> None:
    """attacker1 #5: a .part replaced by a FIFO, a hard link or a symbolic
    link made every later put of that key fail, forever."""
    target = tmp_path / "big"
    key = "k" * 32
    part = tmp_path / os.fsdecode(partial_name(b"big", key))
    victim = tmp_path / "victim"
    victim.write_bytes(b"do not touch")
    if tamper == "fifo":
        os.mkfifo(part)
    elif tamper == "hardlink":
        os.link(victim, part)
    else:
        part.symlink_to(victim)
    data = os.urandom(5000)
    with TransferClient.to(server) as client:
        result = _put(client, str(target), data, resume=key)
    assert result.error is None, result.error
    assert target.read_bytes() == data
    assert victim.read_bytes() == b"do not touch"
    assert not part.exists() and not part.is_symlink()


@pytest.fixture
def rooted(tmp_path: Path, start_server: Callable[..., Any]) -> tuple[Any, Path, Path]:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    return start_server("--cwd-roots", str(root)), root, outside


def test_a_directory_path_outside_the_roots_is_denied(rooted: tuple[Any, Path, Path]) -> None:
    """attacker1 #6: a put to '/', '/etc/', 'root/..' or a missing directory
    said file.is_directory, an oracle of what exists outside the roots."""
    server, root, outside = rooted
    (root / "ten.txt").write_bytes(b"0123456789")
    with TransferClient.to(server) as client:
        for path in ("/", "/etc/", f"{root}/..", "/nonexist_dir/", f"{outside}/"):
            assert client.put_bytes(path, b"x").code == "command.denied", path
        assert client.put_bytes(f"{root}/", b"x").code == "file.is_directory"
        enotdir = client.put_bytes(f"{root}/ten.txt/", b"x")
        assert enotdir.code == "file.failed" and "ENOTDIR" in enotdir.error.message
    assert (root / "ten.txt").read_bytes() == b"0123456789"


def test_a_link_to_a_directory_outside_is_never_replaced(rooted: tuple[Any, Path, Path]) -> None:
    """attacker1 #6: a put onto a link to a directory outside the roots
    replaced the link; one to a directory inside said file.is_directory."""
    server, root, outside = rooted
    (root / "inside").mkdir()
    (root / "ldir_in").symlink_to(root / "inside")
    (root / "ldir_out").symlink_to(outside)
    with TransferClient.to(server) as client:
        for name in ("ldir_in", "ldir_out"):
            assert client.put_bytes(str(root / name), b"x").code == "file.is_directory", name
        # Into it: the roots decide.
        assert client.put_bytes(str(root / "ldir_out" / "f"), b"x").code == "command.denied"
    assert (root / "ldir_out").is_symlink() and (root / "ldir_in").is_symlink()
    assert list(outside.iterdir()) == []


def test_relative_paths_start_in_the_home_commands_run_in(server: Any) -> None:
    """newcomer1 #2: transfers used the daemon's $HOME while commands ran in
    the account's passwd home: a file put as rel.txt was not there for cat."""
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    if not os.access(home, os.W_OK):
        pytest.skip("the account's home is not writable")
    name = f"rexec-test-{secrets.token_hex(6)}"
    assert Path.home() != home  # tests run with a HOME of their own
    try:
        with TransferClient.to(server) as client:
            assert client.put_bytes(name, b"in the real home").error is None
            sink = io.BytesIO()
            assert client.get(name, sink).error is None
        assert (home / name).read_bytes() == sink.getvalue() == b"in the real home"
        assert not (Path.home() / name).exists()
    finally:
        (home / name).unlink(missing_ok=True)


def test_an_empty_path_is_a_header_error(server: Any) -> None:
    """newcomer1 #1: the server must never take '' for '/'."""
    with TransferClient.to(server) as client:
        body = json.dumps({"type": "get", "id": 1, "path": ""}).encode()
        client.sock.sendall(len(body).to_bytes(4, "little") + body)
        client.sock.settimeout(10)
        answer = client.sock.recv(65536)
    assert b"header.invalid" in answer
