"""The client command ``rexecd`` prints once it listens, for a person to
paste into another terminal: it has to work there as printed.

So it names the ``rexec`` installed beside this ``rexecd`` by its full path
when it lives in a virtual environment (``./scripts/serve`` installs into
.venv, whose programs are on PATH only where it is activated) or is not the
``rexec`` found on PATH; and it carries the options
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
import sysconfig
from pathlib import Path

from rexec.keyfile import config_dir


def client_program() -> str:
    """How to start the ``rexec`` of this installation from a new shell."""
    # rexecd's own directory first: that of its console script, then the
    # installation's, then its interpreter's.
    candidates = [Path(sysconfig.get_path("scripts")), Path(sys.executable).parent]
    if Path(sys.argv[0]).name == "rexecd":
        candidates.insert(0, Path(sys.argv[0]).parent)
    beside = next((d / "rexec" for d in candidates if (d / "rexec").is_file()), None)
    on_path = shutil.which("rexec")
    if beside is None:
        return "rexec" if on_path else f"{shlex.quote(sys.executable)} -m rexec_client.cli"
    # A virtual environment's programs are on PATH only where it is
    # activated, which a new terminal is not: name them in full.
    in_venv = sys.prefix != sys.base_prefix
    if not in_venv and on_path and os.path.samefile(on_path, beside):
        return "rexec"
    return shlex.quote(str(beside.absolute()))


#: Stands for the key file in a hint for a server with ``[[keys]]`` only: no
#: one file is everybody's, and the hint must not name a key it can't use.
KEY_FILE_OF_A_KEY = "KEY_FILE"


def connect_hint(host: str, port: int, *, key_file: str | None, tls: bool) -> str:
    """The ``rexec run`` command line that reaches a server listening on
    ``host:port`` (a wildcard address is replaced by this host's name);
    ``key_file`` may be ``KEY_FILE_OF_A_KEY``, then the command is one too."""
    try:
        wildcard = ipaddress.ip_address(host).is_unspecified
    except ValueError:
        wildcard = False
    if wildcard:
        host = socket.gethostname()
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    options = []
    # The key a client in a new terminal reads unless told otherwise.
    command = ["uname", "-a"]
    if key_file == KEY_FILE_OF_A_KEY:
        options += ["--key-file", key_file]
        command = ["COMMAND"]  # what the key may run, which its rules say
    elif key_file is not None and Path(key_file).absolute() != (config_dir() / "key").absolute():
        options += ["--key-file", str(Path(key_file).absolute())]
    if tls:
        options.append("--tls")
    return f"{client_program()} run {shlex.join([*options, address, *command])}"
