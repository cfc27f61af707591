"""protocol.md's byte-exact examples are generated from tests/protocol/vectors.py
(design.md section 2): check they are current, and that the renderer is
idempotent and touches nothing else."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from . import vectors

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "render_protocol_examples.py"


@pytest.fixture(scope="module")
def tool() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("_render_protocol_examples", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_protocol_md_examples_are_current(tool: ModuleType) -> None:
    text = (ROOT / "protocol.md").read_text(encoding="utf-8")
    assert "HEX_" not in text, "run the renderer"
    assert tool.render(text, vectors) == text, "run tools/render_protocol_examples.py"
    for name in ("ping", "handshake", "macs"):
        assert f"<!-- vector:{name} -->" in text


def test_examples_show_the_vector_bytes(tool: ModuleType) -> None:
    # The dump is of exactly the vector's bytes: parse the hex back.
    block = tool.render_block("handshake", vectors)
    frames = []
    for paragraph in block.split("\n\n"):
        hex_bytes = "".join(line[10:58] for line in paragraph.splitlines()[1:-1])
        frames.append(bytes.fromhex(hex_bytes))
    assert frames == [vector.wire for _, vector in vectors.HANDSHAKE]
    assert "server -> client  hello" in block and "client -> server  auth" in block


def test_macs_block_shows_the_vector_macs(tool: ModuleType) -> None:
    block = tool.render_block("macs", vectors)
    for mac in (vectors.HANDSHAKE_CLIENT_MAC, vectors.HANDSHAKE_SERVER_MAC,
                vectors.HANDSHAKE_CLIENT_MAC_TLS, vectors.HANDSHAKE_SERVER_MAC_TLS):  # fmt: skip
        assert mac.hex() in block
    assert f"hello {len(vectors.HELLO.wire)} bytes" in block


def test_render_is_idempotent_and_local(tool: ModuleType) -> None:
    text = "intro\n\n```\nHEX_PING\n```\n\nmiddle `HEX_PING`\n\n```\nHEX_OTHER\n```\nend\n"
    once = tool.render(text, vectors)
    assert once.startswith("intro\n\n<!-- vector:ping -->\n```\nping: header length 37")
    assert once.endswith("<!-- /vector -->\n\nmiddle `HEX_PING`\n\n```\nHEX_OTHER\n```\nend\n")
    assert tool.render(once, vectors) == once
    # A stale generated block is regenerated in place.
    stale = once.replace("25 00 00 00", "26 00 00 00")
    assert tool.render(stale, vectors) == once


def test_check_mode(tool: ModuleType, tmp_path: Path) -> None:
    doc = tmp_path / "protocol.md"
    doc.write_text("```\nHEX_HANDSHAKE\n```\n", encoding="utf-8")
    assert tool.main(["--check", "--file", str(doc)]) == 1
    assert tool.main(["--file", str(doc)]) == 0
    assert tool.main(["--check", "--file", str(doc)]) == 0
