"""The client command ``rexecd`` prints once it listens, for a person to
paste into another terminal: it has to work there as printed.

So it names the ``rexec`` installed beside this ``rexecd`` by its full path
unless that is the ``rexec`` a new shell finds on PATH (``./scripts/serve``
installs into .venv, which is on nobody's PATH), and it carries the options
the server's settings make necessary: the key file when it is not the
default one, ``--tls`` when the server speaks TLS.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import shutil
import socket
import sys
from pathlib import Path

from rexec.keyfile import default_key_path


def client_program() -> str:
    """How to start the ``rexec`` of this installation from a new shell."""
    beside = Path(sys.executable).parent / "rexec"
    on_path = shutil.which("rexec")
    if not beside.exists():
        return "rexec" if on_path else f"{shlex.quote(sys.executable)} -m rexec_client.cli"
    if on_path and os.path.samefile(on_path, beside):
        return "rexec"
    return shlex.quote(str(beside))


def connect_hint(host: str, port: int, *, key_file: str | None, tls: bool) -> str:
    """The ``rexec run`` command line that reaches a server listening on
    ``host:port`` (a wildcard address is replaced by this host's name)."""
    try:
        wildcard = ipaddress.ip_address(host).is_unspecified
    except ValueError:
        wildcard = False
    if wildcard:
        host = socket.gethostname()
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    options = []
    if key_file is not None and Path(key_file).absolute() != default_key_path().absolute():
        options += ["--key-file", str(Path(key_file).absolute())]
    if tls:
        options.append("--tls")
    return f"{client_program()} run {shlex.join([*options, address, 'uname', '-a'])}"
