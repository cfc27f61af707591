"""Start-up checks of ``rexecd``: one line on stderr and a non-zero exit for
each refusal, never a traceback."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys

import forkserver
import pytest
from launch import has_ipv6_loopback, wait_for_ready

from .wire import run_once

DAEMON = [sys.executable, "-m", "rexec.daemon"]


def rexecd(*args: str, timeout: float = 5.0) -> subprocess.CompletedProcess[str]:
    """rexecd with ``args`` to its end, output captured (``run_rexecd``)."""
    return forkserver.run_rexecd(*args, timeout=timeout)


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
        proc = rexecd(
            "--port", str(port), "--key-file", str(key), "--audit-log", str(tmp_path / "audit")
        )
    line = assert_one_line_refusal(proc)
    assert str(port) in line


def test_port_in_use_creates_no_key_file(tmp_path) -> None:
    """A first start that cannot listen leaves nothing behind: the key file
    it would have created does not exist afterwards."""
    key = tmp_path / "new-key"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = rexecd("--host", "127.0.0.1", "--port", str(port), "--key-file", str(key),
                      "--state-dir", str(tmp_path / "state"), "--audit-log", "-")  # fmt: skip
    line = assert_one_line_refusal(proc)
    assert f"127.0.0.1:{port}" in line and "in use" in line
    assert not key.exists()


def test_key_file_readable_by_others_is_refused(tmp_path) -> None:
    key = write_key(tmp_path / "key", 0o644)
    proc = rexecd("--port", "0", "--key-file", str(key))
    line = assert_one_line_refusal(proc)
    assert f"chmod 600 {key}" in line


def test_key_file_others_could_replace_is_refused(tmp_path) -> None:
    """As StrictModes (attacker5 F13): a key in a directory others may write
    (not sticky) could be anyone's; one in a sticky directory (/tmp) is not."""
    shared = tmp_path / "shared"
    shared.mkdir()
    key = write_key(shared / "key")
    shared.chmod(0o777)
    line = assert_one_line_refusal(rexecd("--port", "0", "--key-file", str(key)))
    assert f"the directory {shared} lets another user replace it" in line, line
    shared.chmod(0o1777)  # sticky: nobody else can rename or remove our file
    assert rexecd("--check-config", "--key-file", str(key)).returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_key_file_of_another_user_is_refused(tmp_path) -> None:
    key = write_key(tmp_path / "key")
    os.chown(key, 65534, 65534)  # nobody's, as if planted before the first start
    line = assert_one_line_refusal(rexecd("--port", "0", "--key-file", str(key)))
    assert "is owned by uid 65534" in line, line


#: A real start, and the check an operator runs before one (retest5 item 8:
#: --check-config passed an audit log the start then refused).
START_OR_CHECK = pytest.mark.parametrize(
    "how", [("--port", "0"), ("--check-config",)], ids=["start", "check-config"]
)


@START_OR_CHECK
@pytest.mark.parametrize("mode", [0o666, 0o664])
def test_an_audit_log_others_can_rewrite_is_refused(tmp_path, how, mode) -> None:
    """Attacker5 F14: the trail is not written into a file others may write
    (nor, below, through a link another user planted)."""
    key = write_key(tmp_path / "key")
    writable = tmp_path / "audit.jsonl"
    writable.touch()
    writable.chmod(mode)
    proc = rexecd(*how, "--key-file", str(key), "--audit-log", str(writable))
    line = assert_one_line_refusal(proc)
    assert line == (
        f"rexecd: cannot open audit log {writable}: "
        "another user owns it, or group or others may write it"
    )
    assert writable.read_bytes() == b""


@START_OR_CHECK
@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a link to another user")
def test_an_audit_log_through_another_users_link_is_refused(tmp_path, how) -> None:
    key = write_key(tmp_path / "key")
    link = tmp_path / "audit.jsonl"
    link.symlink_to(tmp_path / "chosen-by-them")
    os.lchown(link, 65534, 65534)
    proc = rexecd(*how, "--key-file", str(key), "--audit-log", str(link))
    assert "a symbolic link another user owns" in assert_one_line_refusal(proc)
    assert not (tmp_path / "chosen-by-them").exists()


@START_OR_CHECK
@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a FIFO to another user")
def test_an_audit_log_that_is_another_users_fifo_is_refused(tmp_path, how) -> None:
    """Attacker8 F5: a FIFO is not a regular file, yet its owner reads the
    whole trail (or stalls it); with or without a reader yet, it is refused."""
    key = write_key(tmp_path / "key")
    fifo = tmp_path / "audit.jsonl"
    os.mkfifo(fifo, 0o600)
    os.chown(fifo, 65534, 65534)
    proc = rexecd(*how, "--key-file", str(key), "--audit-log", str(fifo))
    assert "another user owns it" in assert_one_line_refusal(proc)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a link to another user")
def test_the_audit_log_follows_only_a_trusted_link_when_it_opens_it(tmp_path) -> None:
    """Attacker8 F2: the link is judged as it is when the log is opened, not
    only when the place was looked at before (a sticky directory such as /tmp
    lets another user plant one in between): theirs is refused, never
    followed; ours is followed."""
    from rexec.server import audit_file

    target = tmp_path / "root-only"
    target.write_bytes(b"kept\n")
    target.chmod(0o600)
    link = tmp_path / "audit.jsonl"
    link.symlink_to(target)
    fd = audit_file.open_log(str(link))  # ours: followed
    assert fd is not None
    os.close(fd)
    os.lchown(link, 65534, 65534)
    with pytest.raises(OSError, match="a symbolic link another user owns"):
        audit_file._open_through_trusted_link(str(link), os.O_WRONLY | os.O_APPEND)
    assert target.read_bytes() == b"kept\n"


@START_OR_CHECK
def test_an_audit_log_in_a_directory_others_may_write_in_is_refused(tmp_path, how) -> None:
    """retest6: there anyone could remove or replace the trail (as for the
    key file, a sticky directory such as /tmp is fine)."""
    key = write_key(tmp_path / "key")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    proc = rexecd(*how, "--key-file", str(key), "--audit-log", str(shared / "audit.jsonl"))
    line = assert_one_line_refusal(proc)
    assert line == (
        f"rexecd: cannot open audit log {shared / 'audit.jsonl'}: the directory {shared} lets "
        "another user replace it (it must belong to this user or root, and be writable by no "
        "one else)"
    )
    assert list(shared.iterdir()) == []
    shared.chmod(0o1777)
    proc = rexecd("--check-config", "--key-file", str(key), "--audit-log", str(shared / "a"))
    assert proc.returncode == 0, proc.stderr


def test_check_config_checks_the_audit_log_without_making_it(tmp_path) -> None:
    """The check creates nothing; a log in a missing directory fails it, as
    the start fails, and a new log where it can be made passes."""
    key = write_key(tmp_path / "key")
    missing = tmp_path / "no-such-dir" / "audit.jsonl"
    proc = rexecd("--check-config", "--key-file", str(key), "--audit-log", str(missing))
    line = assert_one_line_refusal(proc)
    assert line == f"rexecd: cannot open audit log {missing}: No such file or directory"
    new = tmp_path / "audit.jsonl"
    proc = rexecd("--check-config", "--key-file", str(key), "--audit-log", str(new))
    assert proc.returncode == 0 and "configuration OK" in proc.stdout, proc.stderr
    assert not new.exists()


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


def test_key_never_on_the_command_line_or_in_logs(start_server) -> None:
    # Exec'd, not forked from the tests' fork server: its own command line.
    server = start_server(real_exec=True)
    run_once(server, ["true"])
    key_hex = server.key.hex()
    with open(f"/proc/{server.process.pid}/cmdline", "rb") as file:
        cmdline = file.read()
    assert b"rexec.daemon" in cmdline and key_hex.encode() not in cmdline
    assert key_hex not in server.audit_log.read_text()


def test_help() -> None:
    proc = rexecd("--help")
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: rexecd")
    for flag in ("--host", "--port", "--key-file", "--tls-cert", "--kill-grace", "--insecure"):
        assert flag in proc.stdout


def test_negative_grace_is_refused(tmp_path) -> None:
    key = write_key(tmp_path / "key")
    line = assert_one_line_refusal(
        rexecd("--port", "0", "--key-file", str(key), "--kill-grace", "-1")
    )
    assert "--kill-grace" in line


def test_tls_cert_without_key_is_refused(tmp_path) -> None:
    key = write_key(tmp_path / "key")
    line = assert_one_line_refusal(
        rexecd("--port", "0", "--key-file", str(key), "--tls-cert", str(tmp_path / "cert.pem"))
    )
    assert "--tls-key" in line


def test_unreadable_tls_files_are_refused(tmp_path) -> None:
    key = write_key(tmp_path / "key")
    line = assert_one_line_refusal(
        rexecd(
            "--port",
            "0",
            "--key-file",
            str(key),
            "--tls-cert",
            str(tmp_path / "nope.pem"),
            "--tls-key",
            str(tmp_path / "nope.key"),
        )
    )
    assert "TLS" in line


def test_ready_line_names_the_address(server) -> None:
    assert server.host == "127.0.0.1" and 0 < server.port < 65536


def test_help_names_each_value_and_shows_defaults_plainly() -> None:
    out = rexecd("--help").stdout
    assert "--kill-grace SECONDS" in out and "--port PORT" in out and "--run-as USER" in out
    assert "--kill-grace KILL_GRACE" not in out and "TLS_CERT" not in out  # argparse's own
    assert "--log-format {text,json}" in out
    assert "(default: 127.0.0.0/8)" in out and "('127.0.0.0/8',)" not in out
    assert "(default: 10)" in out and "(default: 10.0)" not in out


@pytest.mark.parametrize(
    "args", [("--bogus",), ("--port",), ("--log-format", "xml"), ("--max-commands", "many")]
)
def test_bad_flag_is_one_line_and_exit_1(args: tuple[str, ...]) -> None:
    proc = rexecd(*args, "--check-config")
    line = assert_one_line_refusal(proc)
    assert proc.returncode == 1, line
    assert line.startswith("rexecd: ")


def _start_default(directory, *args: str, env: dict[str, str] | None = None):
    """rexecd as a user starts it: no --host and no --audit-log."""
    key = write_key(directory / "key")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("REXECD_", "LOGS_DIR"))}
    environ["XDG_STATE_HOME"] = str(directory / "state-home")
    environ.update(env or {})
    stderr = open(directory / "stderr", "wb")  # noqa: SIM115 -- closed by the caller's stop
    process = subprocess.Popen(
        [*DAEMON, "--port", "0", "--key-file", str(key), "--shutdown-grace", "1", *args],
        stdout=subprocess.PIPE, stderr=stderr, env=environ,
    )  # fmt: skip
    stderr.close()
    match, line = wait_for_ready(process, re.compile(rb"rexecd listening on (\S+):(\d+)"), 15.0)
    assert match, line
    return process, key, int(match.group(2)), line.decode()


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0
    assert process.stdout is not None
    process.stdout.close()


@pytest.mark.skipif(not has_ipv6_loopback(), reason="this host has no IPv6 loopback")
def test_default_listens_on_both_loopbacks(tmp_path) -> None:
    """The README's `rexec run '[::1]:7420' -- id` works against a default server."""
    process, key, port, ready = _start_default(tmp_path)
    try:
        assert f"rexecd listening on 127.0.0.1:{port}\n" in ready  # first: what scripts wait for
        if "[::1]" not in ready:
            match, _ = wait_for_ready(process, re.compile(rb"listening on \[::1\]:(\d+)"), 15.0)
            assert match is not None and int(match.group(1)) == port
        for address in (f"127.0.0.1:{port}", f"[::1]:{port}"):
            done = subprocess.run(
                [sys.executable, "-m", "rexec_client.cli", "run", "--key-file", str(key),
                 address, "--", "id", "-u"],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert done.stdout.strip() == str(os.getuid())
    finally:
        _stop(process)


def test_audit_log_has_a_file_of_its_own_by_default(tmp_path) -> None:
    process, key, port, _ = _start_default(tmp_path)
    try:
        assert run_once(_Address(port, key), ["true"]).exit.exit_code == 0
    finally:
        _stop(process)
    audit = tmp_path / "state-home" / "rexecd" / "audit.jsonl"
    events = [json.loads(line)["event"] for line in audit.read_text().splitlines()]
    assert "exec" in events and "exit" in events
    assert stat.S_IMODE(audit.stat().st_mode) == 0o600
    stderr = (tmp_path / "stderr").read_text()
    assert '"event"' not in stderr  # no audit line among rexecd's own messages
    assert f"audit log: {audit}" in stderr


def test_audit_log_dash_is_stderr(tmp_path) -> None:
    process, key, port, _ = _start_default(tmp_path, "--audit-log", "-")
    try:
        assert run_once(_Address(port, key), ["true"]).exit.exit_code == 0
    finally:
        _stop(process)
    records = [
        json.loads(line) for line in (tmp_path / "stderr").read_text().splitlines()
        if line.startswith("{")
    ]  # fmt: skip
    assert [r["event"] for r in records if r["event"] in ("exec", "exit")] == ["exec", "exit"]
    assert not (tmp_path / "state-home" / "rexecd" / "audit.jsonl").exists()


class _Address:
    """What run_once needs of a server: where it is and its key."""

    def __init__(self, port: int, key_file) -> None:
        self.host, self.port, self.key_file = "127.0.0.1", port, key_file

    @property
    def key(self) -> bytes:
        return bytes.fromhex(self.key_file.read_text().strip())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[server]\n# the port\nport = 7420\n\nidle_timeout = "x"\n',
         ':5: [server] idle_timeout must be a finite number'),
        ("[limits]\n'max_commands' = -3\n", ":2: [limits] max_commands must be a whole number"),
    ],
)  # fmt: skip
def test_a_bad_value_in_the_config_names_its_line(tmp_path, text: str, expected: str) -> None:
    config = tmp_path / "rexecd.toml"
    config.write_text(text)
    key = write_key(tmp_path / "key")
    proc = rexecd("--config", str(config), "--key-file", str(key), "--check-config")
    line = assert_one_line_refusal(proc)
    assert line.startswith(f"rexecd: {config}{expected}"), line


def test_the_connect_hint_of_a_server_with_only_named_keys_names_a_key_file(tmp_path) -> None:
    """Outsider finding F10: with [[keys]] only, the start-up line suggested a
    command with no key file (and a program no key may run): auth.failed."""
    key_file = write_key(tmp_path / "deploy.key")
    config = tmp_path / "rexecd.toml"
    config.write_text(f'[[keys]]\nname = "deploy"\nfile = "{key_file}"\nallow_argv = ["uptime"]\n')
    argv = [
        sys.executable, "-m", "rexec.daemon", "--host", "127.0.0.1", "--port", "0",
        "--config", str(config), "--audit-log", str(tmp_path / "audit.jsonl"),
        "--state-dir", str(tmp_path / "state"),
    ]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        for _ in range(20):  # the first few lines: key, listening, connect with
            line = process.stderr.readline()
            if "connect with" in line or not line:
                break
    finally:
        process.terminate()
        process.wait(timeout=10)
        assert process.stderr is not None
        process.stderr.close()
    assert " run --key-file KEY_FILE 127.0.0.1:" in line and " COMMAND " in line, line
    assert "a key of [[keys]]: deploy" in line, line
