"""Fixtures of the transfer tests: clients closed at teardown, and a server
that file permissions apply to even when the tests run as root."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .client import TransferClient


@pytest.fixture
def clients() -> Iterator[Callable[[Any], TransferClient]]:
    """Factory: ``clients(server)`` → an authenticated TransferClient."""
    opened: list[TransferClient] = []

    def make(server: Any) -> TransferClient:
        client = TransferClient.to(server)
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()


@pytest.fixture
def client(server: Any, clients: Callable[[Any], TransferClient]) -> TransferClient:
    return clients(server)


@pytest.fixture
def permission_server(
    start_server: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """A ``rexecd`` whose file accesses are subject to permission bits.

    Root ignores them (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH). When the tests
    run as root, this server runs as root without those two capabilities,
    through ``setpriv``; ``start_server`` runs ``sys.executable -m
    rexec.daemon``, so a wrapper in its place does it.
    """
    if os.geteuid() != 0:
        return start_server()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip(
            "running as root, and setpriv (util-linux) is missing to drop "
            "CAP_DAC_OVERRIDE: permission bits would not apply to the server"
        )
    wrapper = tmp_path / "python-without-dac-override"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"exec {setpriv} --inh-caps=-all "
        "--bounding-set=-dac_override,-dac_read_search "
        f'{sys.executable} "$@"\n'
    )
    wrapper.chmod(0o755)
    with monkeypatch.context() as patch:
        patch.setattr(sys, "executable", str(wrapper))
        # Exec'd through the wrapper: a server forked by the tests' fork
        # server would keep the capabilities the wrapper drops.
        return start_server(real_exec=True)
