"""No subcommand imports what it does not use: each real command line, run
with ``python -X importtime``, loads none of the packages another subcommand
needs (the shell's prompt_toolkit, the batch engine, file transfer,
discovery, TLS certificate making)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from client_helpers import CLI_TIMEOUT

#: What each subcommand must not load, beyond ``NEVER``.
NOT_FOR = {
    # A plain connection needs no TLS channel binding (ctypes); a command
    # without -t, no terminal modes.
    "run": ("prompt_toolkit", "rexec_client.shell", "rexec_client.batch", "rexec_client.transfer",
            "rexec_client.discovery", "rexec.tls_binding", "ctypes",
            "rexec_client.term.pty_session", "termios"),
    "put": ("prompt_toolkit", "rexec_client.shell", "rexec_client.batch", "rexec_client.discovery"),
    "get": ("prompt_toolkit", "rexec_client.shell", "rexec_client.batch", "rexec_client.discovery"),
    "batch": ("prompt_toolkit", "rexec_client.shell", "rexec_client.transfer"),
    "shell": ("rexec_client.batch", "rexec_client.discovery"),
    "discover": ("prompt_toolkit", "ssl", "rexec_client.connection", "rexec_client.shell",
                 "rexec_client.batch", "rexec_client.transfer"),
    "keygen": ("asyncio", "ssl", "prompt_toolkit", "rexec_client.connection",
               "rexec_client.shell", "rexec_client.batch", "rexec_client.transfer",
               "rexec_client.discovery"),
}  # fmt: skip
#: What no client command loads: the server, and certificate making.
NEVER = ("cryptography", "rexec.server", "rexec.pki", "rexec.daemon")


#: ``python -c _RECORDER FILE MODULE ARG...`` runs ``python -m MODULE ARG...``
#: and, as it exits, writes to FILE the number of objects frozen out of the
#: garbage collector's sight (``gc.freeze``) on the first line, then the name
#: of every module it loaded.
_RECORDER = """
import atexit, gc, runpy, sys
record, module, *sys.argv[1:] = sys.argv[1:]
atexit.register(lambda: open(record, "w").write(
    "\\n".join([str(gc.get_freeze_count()), *sorted(sys.modules)])))
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def imported(
    module: str, args: list[str], record: Path, stdin: bytes = b""
) -> tuple[subprocess.CompletedProcess[bytes], set[str]]:
    """Run ``python -m MODULE ARGS``; return the result and every module it
    had loaded when it exited."""
    result, _, modules = recorded(module, args, record, stdin)
    return result, modules


def recorded(
    module: str, args: list[str], record: Path, stdin: bytes = b""
) -> tuple[subprocess.CompletedProcess[bytes], int, set[str]]:
    """Run ``python -m MODULE ARGS``; return the result, the objects frozen
    when it exited and every module it had loaded."""
    result = subprocess.run(
        [sys.executable, "-c", _RECORDER, str(record), module, *args], input=stdin,
        capture_output=True, timeout=CLI_TIMEOUT, check=False,
    )  # fmt: skip
    frozen, *modules = record.read_text().splitlines()
    return result, int(frozen), set(modules)


def _loaded(modules: set[str], package: str) -> list[str]:
    return sorted(name for name in modules if name == package or name.startswith(package + "."))


def _command(name: str, server: Any, tmp_path: Path) -> tuple[list[str], bytes, int]:
    """A real command line of subcommand ``name``, its stdin and exit status."""
    key = ["--key-file", str(server.key_file)]
    source = tmp_path / "source"
    source.write_bytes(b"data")
    return {
        "run": (["run", *key, server.address, "true"], b"", 0),
        "put": (["put", *key, server.address, str(source), str(tmp_path / "put")], b"", 0),
        "get": (["get", *key, server.address, str(source), str(tmp_path / "got")], b"", 0),
        "batch": (["batch", *key, "-q", "-H", server.address, "--onall", "--", "true"], b"", 0),
        "shell": (["shell", *key, server.address], b"true\n", 0),
        # Nothing announces on this port: no answer, status 1.
        "discover": (["discover", "--address", "127.0.0.1", "--port", "9", "--timeout", "0.2"],
                     b"", 1),
        "keygen": (["keygen", "--key-file", str(tmp_path / "new-key")], b"", 0),
    }[name]  # fmt: skip


@pytest.mark.parametrize("name", NOT_FOR)
def test_a_subcommand_loads_only_what_it_uses(name: str, server: Any, tmp_path: Path) -> None:
    args, stdin, status = _command(name, server, tmp_path)
    result, modules = imported("rexec_client.cli", args, tmp_path / "modules", stdin)
    assert result.returncode == status, result.stderr[-2000:]
    assert f"rexec_client.cli.{name}" in modules  # the measurement sees what it should
    for package in (*NOT_FOR[name], *NEVER):
        assert not _loaded(modules, package), f"rexec {name} loads {_loaded(modules, package)}"


def test_what_start_up_made_is_frozen(server: Any, tmp_path: Path) -> None:
    """The modules, classes and functions a cold ``rexec`` makes as it starts
    live until it exits: they are frozen out of the garbage collector's
    passes (``gc.freeze``), the one at exit included."""
    args, stdin, status = _command("run", server, tmp_path)
    result, frozen, _ = recorded("rexec_client.cli", args, tmp_path / "modules", stdin)
    assert result.returncode == status, result.stderr[-2000:]
    assert frozen > 10_000


def test_rexecd_loads_certificate_making_only_for_init_tls(tmp_path: Path) -> None:
    record = tmp_path / "modules"
    key = ["--key-file", str(tmp_path / "key")]
    result, modules = imported("rexec.daemon", ["--check-config", *key], record)
    assert result.returncode == 0, result.stderr
    assert "rexec.server.session" in modules and not _loaded(modules, "cryptography")
    result, modules = imported("rexec.daemon", ["--init-tls", str(tmp_path / "tls")], record)
    assert result.returncode == 0 and "rexec.pki" in modules
