"""Connection failures, as a person meets them: exit status 255 and one
``rexec: ...`` line saying what went wrong, in words, without Python's
internals (``[Errno N]``, ``unknown error -2``, a traceback). And the
library's ``host`` written as on the command line."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import forkserver
import pytest
from client_helpers import CLI_TIMEOUT, cli_argv, fake_server, write_key

import rexec_client

PRIVATE_RESOLVER = Path(__file__).with_name("private_resolver.py")


def assert_one_line(result: subprocess.CompletedProcess[bytes], *phrases: str) -> str:
    """The one ``rexec:`` line of a 255 exit, which says each of ``phrases``."""
    text = result.stderr.decode()
    lines = text.splitlines()
    assert result.returncode == 255, text
    assert len(lines) == 1 and lines[0].startswith("rexec: "), text
    for internal in ("Errno", "rror -", "Traceback", "Exception"):
        assert internal not in lines[0]
    for phrase in phrases:
        assert phrase in lines[0], (phrase, lines[0])
    return lines[0]


def _private_namespaces() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = ["unshare", "-nm", "true"]
    return subprocess.run(probe, capture_output=True, timeout=10, check=False).returncode == 0


needs_namespaces = pytest.mark.skipif(
    not _private_namespaces(),
    reason="needs unshare -nm (root): name lookups must not leave the machine",
)


def _with_resolver(
    mode: str, tmp_path: Path, program: list[str]
) -> subprocess.CompletedProcess[bytes]:
    resolv_conf = tmp_path / "resolv.conf"
    resolv_conf.write_text("nameserver 127.0.0.1\noptions attempts:1 timeout:1\n")
    argv = ["unshare", "-nm", sys.executable, str(PRIVATE_RESOLVER), mode, str(resolv_conf)]
    return subprocess.run([*argv, *program], capture_output=True, timeout=CLI_TIMEOUT, check=False)


@needs_namespaces
def test_a_name_that_does_not_exist_says_so(tmp_path: Path) -> None:
    key = write_key(tmp_path / "key")
    program = cli_argv("run", "--key-file", str(key), "nosuchhost.invalid", "true")
    line = assert_one_line(_with_resolver("nxdomain", tmp_path, program), "nosuchhost.invalid")
    assert "no such host" in line


@needs_namespaces
def test_a_resolver_that_does_not_answer_says_so(tmp_path: Path) -> None:
    key = write_key(tmp_path / "key")
    program = cli_argv("run", "--key-file", str(key), "nosuchhost.invalid", "true")
    assert_one_line(_with_resolver("silent", tmp_path, program), "cannot resolve the host name")


@needs_namespaces
def test_the_library_says_the_same(tmp_path: Path) -> None:
    code = (
        "import rexec_client\n"
        "try:\n"
        "    rexec_client.run(['true'], host='nosuchhost.invalid:7000', key=bytes(32))\n"
        "except rexec_client.RexecConnectionError as exc:\n"
        "    print(exc)\n"
    )
    result = _with_resolver("nxdomain", tmp_path, [sys.executable, "-c", code])
    assert result.stdout.decode().strip() == (
        "cannot connect to nosuchhost.invalid:7000: no such host (the name does not resolve)"
    )


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that accepts and never says a word (as a TLS
    server waiting for a TLS hello does); yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        try:
            while True:
                accepted.append(listener.accept()[0])
        except OSError:
            return  # closed at teardown

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        for sock in accepted:
            sock.close()
        thread.join(timeout=5)


def test_a_silent_server_suggests_tls(silent_server: int, tmp_path: Path) -> None:
    key = write_key(tmp_path / "key")
    argv = cli_argv(
        "run", "--key-file", str(key), "--connect-timeout", "0.5",
        f"127.0.0.1:{silent_server}", "true",
    )  # fmt: skip
    result = forkserver.run(argv, timeout=CLI_TIMEOUT, server=forkserver.CLI_FORK_SERVER)
    assert_one_line(result, "no answer from 127.0.0.1:", "within 0.5 s", "add --tls")


@pytest.mark.parametrize(
    ("options", "phrases"),
    [
        (["--tls-ca", "{tmp}/missing-ca.pem"], ["cannot read", "missing-ca.pem", "no such file"]),
        (["--tls-ca", "{tmp}/garbage.pem"], ["garbage.pem", "not a usable PEM file"]),
        (["--tls-cert", "{tmp}/key"], ["key", "not a usable PEM file"]),
        (["--tls-dir", "{tmp}/no-such-dir"], ["ca.pem does not exist", "rexecd --init-tls"]),
        (["--key-file", "{tmp}"], ["not a regular file"]),
        (["--key-file", "{tmp}/garbage.pem"], ["64 hex digits"]),
        (["--key-file", "{tmp}/missing-key"], ["does not exist", "rexec keygen"]),
    ],
)
def test_unusable_files_are_one_line_naming_the_file(
    server: Any, tmp_path: Path, options: list[str], phrases: list[str]
) -> None:
    (tmp_path / "garbage.pem").write_text("not a certificate\n")
    (tmp_path / "garbage.pem").chmod(0o600)
    write_key(tmp_path / "key")
    given = [option.format(tmp=tmp_path) for option in options]
    if "--key-file" not in options:
        given += ["--key-file", str(server.key_file)]
    argv = cli_argv("run", *given, server.address, "true")
    result = forkserver.run(argv, timeout=CLI_TIMEOUT, server=forkserver.CLI_FORK_SERVER)
    assert_one_line(result, *phrases)


def test_the_library_takes_the_port_in_host(server: Any) -> None:
    done = rexec_client.run(["echo", "hi"], host=f"127.0.0.1:{server.port}", key=server.key)
    assert done.stdout == b"hi\n"
    same = rexec_client.run(
        ["echo", "hi"], host=f"127.0.0.1:{server.port}", port=server.port, key=server.key
    )
    assert same.stdout == b"hi\n"


@pytest.mark.parametrize(
    ("host", "port", "complaint"),
    [
        ("h:port", None, "the port must be a number"),
        ("127.0.0.1:7000", 7001, "it names port 7000, but port=7001"),
        ("[127.0.0.1]:7000", None, "not an IPv6 address"),
        ("127.0.0.1", 70000, "from 1 to 65535"),
    ],
)
def test_the_library_refuses_a_malformed_host_in_words(
    host: str, port: int | None, complaint: str
) -> None:
    with pytest.raises(ValueError, match="bad (address|port)") as info:
        rexec_client.run(["true"], host=host, port=port, key=bytes(32))
    assert complaint in str(info.value)


@pytest.fixture
def tls_files(tmp_path: Path) -> Path:
    """The CA and certificates ``rexecd --init-tls`` makes for 127.0.0.1."""
    directory = tmp_path / "tls"
    made = forkserver.run(  # forked: without rexecd's imports
        [sys.executable, "-m", "rexec.daemon", "--init-tls", str(directory),
         "--tls-name", "127.0.0.1"],
        timeout=CLI_TIMEOUT,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return directory


def test_a_tls_server_is_named_without_waiting_for_the_timeout(
    start_server: Any, tls_files: Path
) -> None:
    """Plaintext to a TLS rexecd: told at once (a TLS hello on the side gets
    a TLS answer), not after the 60 s connect timeout."""
    server = start_server(
        "--tls-cert", str(tls_files / "server.pem"), "--tls-key", str(tls_files / "server.key")
    )
    argv = cli_argv(
        "run", "--key-file", str(server.key_file), "--connect-timeout", "60", server.address, "true"
    )
    result = forkserver.run(argv, timeout=CLI_TIMEOUT - 10, server=forkserver.CLI_FORK_SERVER)
    assert_one_line(result, f"no answer from {server.address} in plaintext", "speaks TLS",
                    "add --tls")  # fmt: skip


def test_a_silent_tls_server_gets_no_certificate_hint(
    silent_server: int, tls_files: Path, tmp_path: Path
) -> None:
    """A server that does not answer (stopped, overloaded) has refused no
    certificate: the line says it did not answer, and nothing else."""
    key = write_key(tmp_path / "key")
    argv = cli_argv(
        "run", "--key-file", str(key), "--tls-dir", str(tls_files), "--connect-timeout", "0.5",
        f"127.0.0.1:{silent_server}", "true",
    )  # fmt: skip
    result = forkserver.run(argv, timeout=CLI_TIMEOUT, server=forkserver.CLI_FORK_SERVER)
    line = assert_one_line(result, "no answer from 127.0.0.1:", "within 0.5 s")
    assert "certificate" not in line


def test_keepalive_gives_up_after_three_unanswered_intervals(tmp_path: Path) -> None:
    """--keepalive N counts as ssh's ServerAliveInterval with
    ServerAliveCountMax 3: the line says how long the server was silent."""
    key = write_key(tmp_path / "key")

    async def go() -> subprocess.CompletedProcess[bytes]:
        async with fake_server(bytes.fromhex(key.read_text())) as port:
            argv = cli_argv(
                "run", "--key-file", str(key), "--keepalive", "0.3", f"127.0.0.1:{port}", "true"
            )
            process = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            async with asyncio.timeout(CLI_TIMEOUT):
                stdout, stderr = await process.communicate()
            assert process.returncode is not None
            return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)

    result = asyncio.run(go())
    assert_one_line(result, "no answer to keepalive within 0.9 s")
