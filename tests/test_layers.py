"""The import layers of the code base, as the README's "Architecture" shows them.

Every import counts, typing-only and function-level ones included: a layer that
needs a name from a higher one for its annotations still depends on it; so do
imports by name (``importlib.import_module("…")``, a lazy table's strings).

    rexec.protocol                      pure: no rexec module but its own
    rexec (keyfile, log, files …)       shared by every side: the protocol, one another
    rexec.server                        the daemon's core: never ops, client, conformance
    rexec.ops                           observers of the server: never the client
    rexec.daemon                        wires server and ops together
    rexec.conformance                   the suite: the protocol and shared modules only
    rexec_client                        the client: the protocol and shared modules only

and no module imports, directly or not, one that imports it back.
"""

from __future__ import annotations

import ast
import functools
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = {"rexec": ROOT / "rexec", "rexec_client": ROOT / "client"}


def _module_name(package: str, base: pathlib.Path, path: pathlib.Path) -> str:
    parts = [package, *path.relative_to(base).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, pathlib.Path]:
    found = {}
    for package, base in PACKAGES.items():
        for path in base.rglob("*.py"):
            found[_module_name(package, base, path)] = path
    return found


MODULES = _modules()


#: Modules that import by a name they compute (``importlib.import_module``
#: of an f-string), and what they compute it from: each names its targets in
#: string constants of its own, which count as imports below.
COMPUTED_IMPORTS = {
    "rexec.protocol": "_MODULES: its own submodules",
    "rexec_client": "_SUBPACKAGES and _ORIGINS: its own submodules",
    "rexec_client.cli": "SUBCOMMANDS: its subcommands' modules",
}


def _is_import_call(node: ast.Call) -> bool:
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return called in ("import_module", "__import__")


def _imports(name: str, path: pathlib.Path, source: str | None = None) -> set[str]:
    """The project modules that ``name`` imports, anywhere in its file
    (``source``: its text, if not read from ``path``). A string constant that
    is a module's name, absolute or relative (``".connection"``), counts: it
    is how ``importlib.import_module`` and lazy tables import. An import call
    whose name is computed is allowed only in ``COMPUTED_IMPORTS``."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text() if source is None else source, str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            value = node.value
            targets = [f"{package}{value}" if value.startswith(".") else value]
            if name in COMPUTED_IMPORTS:
                targets.append(f"{name}.{value}")  # a lazy loader's bare submodule name
        elif isinstance(node, ast.Call) and _is_import_call(node):
            computed = not (node.args and isinstance(node.args[0], ast.Constant))
            assert not computed or name in COMPUTED_IMPORTS, (
                f"{name} imports a module by a computed name: the layer test can't see which; "
                "name it in a string constant and list the module in COMPUTED_IMPORTS"
            )
            continue
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # ``from package import submodule`` depends on the submodule; a
            # name from a module depends on that module.
            submodules = [
                f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in MODULES
            ]
            names = [a.name for a in node.names if f"{module}.{a.name}" not in MODULES]
            targets = submodules + ([module] if names else [])
        else:
            continue
        for target in targets:
            if target in MODULES and target != name:
                found.add(target)
    return found


@functools.cache
def graph() -> dict[str, set[str]]:
    """Each module's imports of ours: read when a test needs them, not when
    every worker collects this file (it parses every module)."""
    return {name: _imports(name, path) for name, path in MODULES.items()}


SHARED = (
    "rexec",
    "rexec.keyfile",
    "rexec.log",
    "rexec.files",
    "rexec.pki",
    "rexec.connect_hint",
    "rexec.tls_binding",
    "rexec.binding",
    "rexec.eventloop",
)


def _layer(module: str) -> str:
    for prefix in (
        "rexec.protocol",
        "rexec.server",
        "rexec.ops",
        "rexec.conformance",
        "rexec_client",
    ):
        if module == prefix or module.startswith(prefix + "."):
            return prefix
    if module == "rexec.daemon":
        return "rexec.daemon"
    if module in SHARED or any(module.startswith(s + ".") for s in SHARED[1:]):
        return "shared"
    raise AssertionError(f"{module} belongs to no layer: add it to tests/test_layers.py")


#: What each layer may import, besides itself.
ALLOWED = {
    "rexec.protocol": set(),
    "shared": {"rexec.protocol"},
    "rexec.server": {"rexec.protocol", "shared"},
    "rexec.ops": {"rexec.protocol", "shared", "rexec.server"},
    "rexec.daemon": {"rexec.protocol", "shared", "rexec.server", "rexec.ops"},
    "rexec.conformance": {"rexec.protocol", "shared"},
    "rexec_client": {"rexec.protocol", "shared"},
}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_stay_in_their_layers(module: str) -> None:
    layer = _layer(module)
    wrong = sorted(
        target
        for target in graph()[module]
        if _layer(target) != layer and _layer(target) not in ALLOWED[layer]
    )
    assert not wrong, f"{module} ({layer}) may not import {wrong}"


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph()[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph()):
        if node not in index:
            visit(node)
    return components


@pytest.mark.parametrize(
    "line",
    [
        'importlib.import_module("rexec.server.server")',
        '__import__("rexec.server.server")',
        '_LAZY = {"Thing": "rexec.server.server"}',
    ],
)
def test_an_import_by_name_is_seen(line: str) -> None:
    """An import the ``import`` statement does not show still counts."""
    path = PACKAGES["rexec"] / "protocol" / "_framing.py"
    assert "rexec.server.server" in _imports("rexec.protocol._framing", path, line)


def test_an_import_by_a_computed_name_is_refused_outside_the_known_lazy_loaders() -> None:
    path = PACKAGES["rexec"] / "protocol" / "_framing.py"
    with pytest.raises(AssertionError, match="computed name"):
        _imports("rexec.protocol._framing", path, 'importlib.import_module(f"rexec.{x}")')


def test_no_import_cycles() -> None:
    assert _cycles() == []


def test_every_module_is_in_a_layer() -> None:
    for module in MODULES:
        _layer(module)
