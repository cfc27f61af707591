"""The suite speaks the wire through rexec.protocol and never imports the
server: neither directly (checked on the AST) nor through anything it imports
(checked in a fresh interpreter)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import rexec.conformance

PACKAGE = Path(rexec.conformance.__file__).parent
FORBIDDEN = (
    "rexec.server.session",
    "rexec.server.runner",
    "rexec.daemon",
    "rexec.server.spawn",
    "rexec.server.config",
    "rexec.server.audit",
)


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_server_import_in_the_source() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 5
    offenders = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in files
        for name in _imports(path)
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)
    }
    assert not offenders


def test_no_server_module_is_loaded() -> None:
    code = (
        "import sys, json, rexec.conformance.__main__, rexec.conformance.serve;"
        "print(json.dumps(sorted(sys.modules)))"
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        ).stdout
    )
    assert not [m for m in loaded if m in FORBIDDEN]
