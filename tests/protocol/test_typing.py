"""rexec.protocol is clean under ``mypy --strict`` (design.md section 4,
"Tooling"); the configuration is pyproject.toml's [tool.mypy].

mypy is a test dependency: if it is missing, the test fails rather than skips,
so an environment without it can't pass silently.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_mypy_strict_on_protocol_package() -> None:
    assert importlib.util.find_spec("mypy") is not None, (
        "mypy is not installed: it belongs in the test extras (pip install -e '.[test]')"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--package", "rexec.protocol"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
