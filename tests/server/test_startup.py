"""Start-up checks of ``rexecd``: one line on stderr and a non-zero exit for
each refusal, never a traceback."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys

from .wire import run_once

DAEMON = [sys.executable, "-m", "rexec.daemon"]


def rexecd(*args: str, timeout: float = 5.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DAEMON, *args], capture_output=True, text=True, timeout=timeout, check=False)


def write_key(path, mode: int = 0o600):
    path.write_text(os.urandom(32).hex() + "\n")
    os.chmod(path, mode)
    return path


def assert_one_line_refusal(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert proc.stdout == ""
    return lines[0]


def test_non_loopback_without_tls_is_refused(tmp_path) -> None:
    key = write_key(tmp_path / "key")
    proc = rexecd("--host", "0.0.0.0", "--port", "0", "--key-file", str(key))
    line = assert_one_line_refusal(proc)
    assert "0.0.0.0" in line and "--tls-cert" in line and "--insecure" in line


def test_insecure_allows_non_loopback(start_server) -> None:
    server = start_server("--insecure", host="0.0.0.0")
    assert server.host == "0.0.0.0"
    assert server.stop() == 0


def test_port_in_use(tmp_path) -> None:
    key = write_key(tmp_path / "key")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = rexecd("--port", str(port), "--key-file", str(key),
                      "--audit-log", str(tmp_path / "audit"))
    line = assert_one_line_refusal(proc)
    assert str(port) in line


def test_key_file_readable_by_others_is_refused(tmp_path) -> None:
    key = write_key(tmp_path / "key", 0o644)
    proc = rexecd("--port", "0", "--key-file", str(key))
    line = assert_one_line_refusal(proc)
    assert f"chmod 600 {key}" in line


def test_malformed_key_file_is_refused(tmp_path) -> None:
    key = tmp_path / "key"
    key.write_text("not hex\n")
    os.chmod(key, 0o600)
    line = assert_one_line_refusal(rexecd("--port", "0", "--key-file", str(key)))
    assert str(key) in line


def test_missing_key_file_is_created_0600(start_server, tmp_path) -> None:
    key = tmp_path / "new" / "dir" / "key"
    server = start_server(key_file=key)
    assert key.exists()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(bytes.fromhex(key.read_text().strip())) == 32
    result = run_once(server, ["echo", "keyed"])
    assert bytes(result.stdout) == b"keyed\n"


def test_key_never_on_the_command_line_or_in_logs(server) -> None:
    run_once(server, ["true"])
    key_hex = server.key.hex()
    with open(f"/proc/{server.process.pid}/cmdline", "rb") as file:
        assert key_hex.encode() not in file.read()
    assert key_hex not in server.audit_log.read_text()


def test_help() -> None:
    proc = rexecd("--help")
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: rexecd")
    for flag in ("--host", "--port", "--key-file", "--tls-cert", "--kill-grace", "--insecure"):
        assert flag in proc.stdout


def test_negative_grace_is_refused(tmp_path) -> None:
    key = write_key(tmp_path / "key")
    line = assert_one_line_refusal(rexecd("--port", "0", "--key-file", str(key), "--kill-grace", "-1"))
    assert "--kill-grace" in line


def test_tls_cert_without_key_is_refused(tmp_path) -> None:
    key = write_key(tmp_path / "key")
    line = assert_one_line_refusal(rexecd("--port", "0", "--key-file", str(key),
                                          "--tls-cert", str(tmp_path / "cert.pem")))
    assert "--tls-key" in line


def test_unreadable_tls_files_are_refused(tmp_path) -> None:
    key = write_key(tmp_path / "key")
    line = assert_one_line_refusal(rexecd("--port", "0", "--key-file", str(key),
                                          "--tls-cert", str(tmp_path / "nope.pem"),
                                          "--tls-key", str(tmp_path / "nope.key")))
    assert "TLS" in line


def test_ready_line_names_the_address(server) -> None:
    assert server.host == "127.0.0.1" and 0 < server.port < 65536
