"""From one machine to two: ``rexecd --init-tls`` makes a private CA and the
certificates, a client machine (a home of its own) gets ``ca.pem``,
``client.pem``, ``client.key`` and the key, and reaches a server listening on
another address (127.0.0.2) over real mutual TLS. Each way of getting it
wrong is one line saying what to change.

The README's own commands for this are run by test_readme_examples.py.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import forkserver
import pytest

TIMEOUT = 60
SERVER_ADDRESS = "127.0.0.2"
TLS_FILES = ("ca.pem", "ca.key", "server.pem", "server.key", "client.pem", "client.key")


def init_tls(directory: Path, *names: str) -> subprocess.CompletedProcess[str]:
    """``rexecd --init-tls DIRECTORY --tls-name NAME...``."""
    argv = [sys.executable, "-m", "rexec.daemon", "--init-tls", str(directory)]
    argv += [f"--tls-name={name}" for name in names]
    return forkserver.run(argv, text=True, timeout=TIMEOUT)  # forked: without rexecd's imports


class ClientMachine:
    """A client on "another machine": its own home, nothing of the server's
    but what is copied into it."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.tls_dir = home / ".config" / "rexec" / "tls"
        self.tls_dir.mkdir(parents=True)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REXEC_", "XDG_"))}
        return env | {"HOME": str(self.home)}

    def rexec(self, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        return forkserver.run(  # forked: without the program's imports (CLI_FORK_SERVER)
            [sys.executable, "-m", "rexec_client.cli", *args], input=stdin, env=self.env(),
            timeout=TIMEOUT, server=forkserver.CLI_FORK_SERVER,
        )  # fmt: skip

    def receive(self, server_tls_dir: Path, *names: str) -> None:
        for name in names:
            shutil.copy(server_tls_dir / name, self.tls_dir / name)


@pytest.fixture
def server_tls(tmp_path: Path) -> Path:
    directory = tmp_path / "server-home" / "tls"
    result = init_tls(directory, SERVER_ADDRESS)
    assert result.returncode == 0, result.stderr
    return directory


def serve_tls(start_server: Callable[..., Any], directory: Path) -> Any:
    """rexecd on 127.0.0.2 with the certificates ``--init-tls`` made in
    ``directory``, requiring client certificates from its CA."""
    return start_server(
        "--tls-cert", str(directory / "server.pem"), "--tls-key", str(directory / "server.key"),
        "--tls-client-ca", str(directory / "ca.pem"), host=SERVER_ADDRESS,
    )  # fmt: skip


@pytest.fixture
def tls_server(start_server: Callable[..., Any], server_tls: Path) -> Any:
    return serve_tls(start_server, server_tls)


@pytest.fixture
def client(tmp_path: Path, tls_server: Any, server_tls: Path) -> ClientMachine:
    """A client machine set up as README 'A second machine' says."""
    machine = ClientMachine(tmp_path / "client-home")
    machine.receive(server_tls, "ca.pem", "client.pem", "client.key")
    imported = machine.rexec("keygen", "--import", stdin=tls_server.key_file.read_bytes())
    assert imported.returncode == 0, imported.stderr
    return machine


def one_line(result: subprocess.CompletedProcess[bytes], *phrases: str) -> None:
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 255 and len(lines) == 1, result.stderr
    assert lines[0].startswith("rexec: ") and "Traceback" not in lines[0]
    for phrase in phrases:
        assert phrase in lines[0], (phrase, lines[0])


def test_init_tls_makes_a_ca_and_both_certificates(tmp_path: Path) -> None:
    directory = tmp_path / "tls"
    result = init_tls(directory, SERVER_ADDRESS, "server.example.org")
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(directory)) == sorted(TLS_FILES)
    assert directory.stat().st_mode & 0o777 == 0o700
    for name in TLS_FILES:
        mode = (directory / name).stat().st_mode & 0o777
        assert mode == (0o600 if name.endswith(".key") else 0o644), name
    out = result.stdout
    assert "127.0.0.2, server.example.org" in out
    assert f"--tls-cert {directory}/server.pem --tls-key {directory}/server.key" in out
    assert f"--tls-client-ca {directory}/ca.pem" in out and "rexec run --tls" in out


def test_init_tls_certificates_verify_as_ssl_verifies_them(tmp_path: Path) -> None:
    directory = tmp_path / "tls"
    assert init_tls(directory, SERVER_ADDRESS).returncode == 0
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(directory / "server.pem", directory / "server.key")
    server.load_verify_locations(directory / "ca.pem")
    server.verify_mode = ssl.CERT_REQUIRED
    client = ssl.create_default_context(cafile=directory / "ca.pem")
    client.load_cert_chain(directory / "client.pem", directory / "client.key")
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    server_in, server_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls_client = client.wrap_bio(incoming, outgoing, server_hostname=SERVER_ADDRESS)
    tls_server = server.wrap_bio(server_in, server_out, server_side=True)
    for _ in range(10):  # a handshake is a few round trips, each bounded
        for side in (tls_client, tls_server):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
        server_in.write(outgoing.read())
        incoming.write(server_out.read())
    assert tls_server.getpeercert()["subject"] == ((("commonName", "rexec client"),),)
    assert tls_client.getpeercert()["subjectAltName"] == (("IP Address", SERVER_ADDRESS),)


def test_init_tls_keeps_what_exists_and_reissues_what_is_missing(
    tmp_path: Path, start_server: Callable[..., Any]
) -> None:
    directory = tmp_path / "tls"
    assert init_tls(directory, "localhost").returncode == 0
    before = {name: (directory / name).read_bytes() for name in TLS_FILES}
    again = init_tls(directory, "localhost")
    assert again.returncode == 0 and "kept" in again.stdout
    assert {name: (directory / name).read_bytes() for name in TLS_FILES} == before
    # A new name: delete the server's pair and run again; the CA and the
    # client's files stay, so clients need nothing new.
    (directory / "server.pem").unlink()
    (directory / "server.key").unlink()
    reissued = init_tls(directory, SERVER_ADDRESS)
    assert reissued.returncode == 0 and "made server.pem, server.key" in reissued.stdout
    for name in ("ca.pem", "ca.key", "client.pem", "client.key"):
        assert (directory / name).read_bytes() == before[name]
    server = serve_tls(start_server, directory)
    machine = ClientMachine(tmp_path / "client-home")
    machine.receive(directory, "ca.pem", "client.pem", "client.key")
    result = machine.rexec(
        "run", "--key-file", str(server.key_file), "--tls", server.address, "echo", "ok"
    )
    assert (result.returncode, result.stdout) == (0, b"ok\n"), result.stderr


@pytest.mark.parametrize(
    ("before", "remove", "names", "complaint"),
    [
        (None, None, ["not a name!"], "neither a host name nor an IP address"),
        (None, None, ["-bad.example"], "neither a host name nor an IP address"),
        ([SERVER_ADDRESS], "client.pem", [], "client.pem is missing but"),
        ([SERVER_ADDRESS], None, ["server.example.org"], "lacks server.example.org"),
    ],
)
def test_init_tls_refuses_in_one_line(
    tmp_path: Path, before: list[str] | None, remove: str | None, names: list[str], complaint: str
) -> None:
    directory = tmp_path / "tls"
    if before is not None:
        assert init_tls(directory, *before).returncode == 0
        if remove:
            (directory / remove).unlink()
    result = init_tls(directory, *names)
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and complaint in lines[0], result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give files to another user")
def test_tls_files_another_user_could_have_made_are_refused(tmp_path: Path) -> None:
    """Attacker8 F9: --init-tls kept and signed with a CA another user had
    put in the directory, and rexecd trusted another user's client CA. As
    for the key file: refused in one line, nothing made or started."""
    planted = tmp_path / "planted"
    assert init_tls(planted).returncode == 0
    os.chown(planted / "ca.pem", 65534, 65534)
    result = init_tls(planted)
    assert result.returncode == 1 and "ca.pem: it is owned by uid 65534" in result.stderr
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, 65534, 65534)
    result = init_tls(theirs / "tls")
    assert result.returncode == 1 and "tls: the directory" in result.stderr
    assert list(theirs.iterdir()) == [], "nothing made"
    started = forkserver.run(
        [sys.executable, "-m", "rexec.daemon", "--port", "0", "--key-file", str(tmp_path / "key"),
         "--tls-cert", str(planted / "server.pem"), "--tls-key", str(planted / "server.key"),
         "--tls-client-ca", str(planted / "ca.pem")],
        text=True, timeout=TIMEOUT,
    )  # fmt: skip
    lines = started.stderr.splitlines()
    assert started.returncode != 0 and f"TLS file {planted / 'ca.pem'}" in lines[-1], lines


def test_a_client_machine_runs_commands_over_mutual_tls(
    client: ClientMachine, tls_server: Any
) -> None:
    key = client.home / ".config" / "rexec" / "key"
    assert key.read_bytes() == tls_server.key_file.read_bytes()
    assert key.stat().st_mode & 0o777 == 0o600
    result = client.rexec("run", "--tls", tls_server.address, "echo", "over TLS")
    assert (result.returncode, result.stdout) == (0, b"over TLS\n"), result.stderr
    assert tls_server.address.startswith("127.0.0.2:")
    listen = [r for r in tls_server.audit_records() if r["event"] == "listen"]
    assert listen and listen[0]["tls"] is True


def test_without_tls_the_client_is_told_to_add_it(client: ClientMachine, tls_server: Any) -> None:
    result = client.rexec("run", "--connect-timeout", "1", tls_server.address, "true")
    one_line(result, "no answer", "add --tls")


def test_without_a_client_certificate_the_client_is_told_so(
    client: ClientMachine, tls_server: Any
) -> None:
    (client.tls_dir / "client.pem").unlink()
    (client.tls_dir / "client.key").unlink()
    result = client.rexec("run", "--tls", tls_server.address, "true")
    one_line(result, "closed the connection", "requires a client certificate")


def test_without_the_ca_the_client_is_told_where_it_goes(
    client: ClientMachine, tls_server: Any
) -> None:
    (client.tls_dir / "ca.pem").unlink()
    result = client.rexec("run", "--tls", tls_server.address, "true")
    one_line(
        result, "certificate verification failed", f"put the server's ca.pem in {client.tls_dir}"
    )


def test_certificates_of_another_ca_are_named(
    client: ClientMachine, tls_server: Any, tmp_path: Path
) -> None:
    other = tmp_path / "other-ca"
    assert init_tls(other, SERVER_ADDRESS).returncode == 0
    result = client.rexec("run", "--tls-dir", str(other), tls_server.address, "true")
    one_line(result, f"{other}/ca.pem did not sign it")
    mine = client.tls_dir / "ca.pem"
    result = client.rexec(
        "run", "--tls-ca", str(mine), "--tls-cert", str(other / "client.pem"),
        "--tls-key", str(other / "client.key"), tls_server.address, "true",
    )  # fmt: skip
    one_line(result, f"if the server refused {other}/client.pem", "its CA signed")


def test_a_name_the_certificate_lacks_is_named(
    tmp_path: Path, start_server: Callable[..., Any]
) -> None:
    directory = tmp_path / "tls"
    assert init_tls(directory, "localhost").returncode == 0
    server = serve_tls(start_server, directory)
    machine = ClientMachine(tmp_path / "client-home")
    machine.receive(directory, "ca.pem", "client.pem", "client.key")
    result = machine.rexec(
        "run", "--key-file", str(server.key_file), "--tls", server.address, "true"
    )
    one_line(result, "not valid for '127.0.0.2'", "--tls-name NAME")


def test_tls_name_without_init_tls_is_a_usage_error(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "rexec.daemon", "--tls-name", "server.example.org"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert result.returncode == 1 and "--tls-name goes with --init-tls DIR" in result.stderr
