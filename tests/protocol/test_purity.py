"""rexec.protocol does no I/O: no networking, processes, clocks or threads
(design.md section 3; h11's "containing no networking code at all").

The AST check is the enforcement: it sees every import statement in the
package. The runtime check adds what the AST can't see (an import hidden in a
dependency of ours), but only against modules that are not already loaded at
interpreter start (os, time and threading always are) and not pulled in by
pydantic itself (typing_extensions imports asyncio, which imports socket, ssl,
subprocess, select, selectors and signal), so it compares against a baseline
that has already imported pydantic.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import rexec.protocol

PACKAGE_DIR = Path(rexec.protocol.__file__).parent
IO_MODULES = frozenset(
    {
        "asyncio", "socket", "subprocess", "time", "signal", "os", "threading",
        "select", "selectors", "ssl", "multiprocessing", "concurrent", "socketserver",
    }
)  # fmt: skip
#: In source, also nothing that gets around the list or reaches files,
#: randomness (nonces are the caller's job) or logging. pydantic itself loads
#: some of these (importlib.metadata for its plugins), so only the AST check
#: can hold the package to them.
FORBIDDEN = IO_MODULES | {
    "importlib", "io", "shutil", "pathlib", "random", "secrets", "logging", "tempfile",
}  # fmt: skip
SOURCES = sorted(PACKAGE_DIR.glob("*.py"))
#: The package's door loads its own submodules on first use (PEP 562), with
#: importlib.import_module; test_lazy_door_loads_only_own_modules holds it to that.
ALLOWED = {"__init__.py": {"importlib"}}


def imported_modules(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"__import__", "exec", "eval", "open"}
        ):
            names.add(f"<call {node.func.id}>")
    return names


def test_package_has_sources() -> None:
    # Guard against the glob silently matching nothing.
    assert {path.name for path in SOURCES} >= {"_framing.py", "_connection.py", "__init__.py"}


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: path.name)
def test_no_io_imports(path: Path) -> None:
    modules = imported_modules(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    forbidden = FORBIDDEN - ALLOWED.get(path.name, set())
    offending = sorted(
        name for name in modules if name.startswith("<") or name.split(".")[0] in forbidden
    )
    assert offending == [], f"{path.name} imports {offending}"


def test_lazy_door_loads_only_own_modules() -> None:
    # Every name the door can load comes from a private module of this
    # package, and every module of the package is reachable through it.
    exports = rexec.protocol._exports()
    modules = set(exports.values())
    assert modules == {path.stem for path in SOURCES if path.stem.startswith("_")} - {
        "__init__",
        "_commands",
    }
    assert sorted(exports) == sorted(rexec.protocol.__all__)
    # No name is exported by two modules.
    listed = [name for module in modules for name in rexec.protocol._module(module).__all__]
    assert sorted(listed) == sorted(exports)
    for name in exports:
        assert getattr(rexec.protocol, name) is not None


LIGHT_IMPORT = """
import json, sys
import rexec.protocol
first = "pydantic" in sys.modules
rexec.protocol.KEY_SIZE, rexec.protocol.Transcript, rexec.protocol.ErrorCode
print(json.dumps([first, "pydantic" in sys.modules]))
"""


def test_import_and_constants_do_not_load_pydantic() -> None:
    # protocol.md's constants and the handshake macs need no validator: a
    # program that only reads a key file, or answers --version, does not pay
    # for pydantic's import.
    result = subprocess.run(
        [sys.executable, "-c", LIGHT_IMPORT], capture_output=True, text=True, check=True,
        timeout=60,
    )  # fmt: skip
    assert json.loads(result.stdout) == [False, False]


def test_ast_check_catches_imports() -> None:
    # The checker itself must be able to fail.
    tree = ast.parse("import os.path\nfrom socket import socket\nx = __import__('time')\n")
    assert imported_modules(tree) >= {"os.path", "socket", "<call __import__>"}


PROBE = """
import json, sys
from typing import Annotated, Literal, Union
import pydantic, pydantic_core, typing_extensions  # baseline: our dependencies

# Pydantic imports parts of itself lazily, when models are first built: build
# models of the same kinds first, so that only what rexec.protocol itself
# imports is counted.
class A(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(
        frozen=True, strict=True, extra="forbid", allow_inf_nan=False
    )
    type: Literal["a"]
    x: Annotated[int, pydantic.Field(ge=0)] = 0
    _p: bytes = pydantic.PrivateAttr(default=b"")

    @pydantic.model_validator(mode="after")
    def check(self):
        return self

class B(pydantic.BaseModel):
    type: Literal["b"]

union = pydantic.TypeAdapter(Annotated[Union[A, B], pydantic.Field(discriminator="type")])
union.validate_json(b'{"type":"a"}')
before = set(sys.modules)
import rexec.protocol
rexec.protocol.Connection, rexec.protocol.Run  # the door loads on first use
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_importing_adds_no_io_modules() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    added = json.loads(result.stdout)
    assert "rexec.protocol._connection" in added  # the probe really imported it
    offending = sorted(name for name in added if name.split(".")[0] in IO_MODULES)
    assert offending == []
