"""Fixtures of the client tests (helpers live in client_helpers.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from client_helpers import run_cli


@pytest.fixture
def rexec_run(server: Any) -> Callable[..., subprocess.CompletedProcess[bytes]]:
    """``rexec_run(*args, input=b"", options=())``: ``rexec run --key-file K
    *options ADDR *args`` against the ``server`` fixture, output captured."""

    def run(
        *args: str, input: bytes = b"", address: str | None = None, options: Sequence[str] = ()
    ) -> subprocess.CompletedProcess[bytes]:
        return run_cli(
            "run", "--key-file", str(server.key_file), *options, address or server.address, *args,
            input=input,
        )  # fmt: skip

    return run
