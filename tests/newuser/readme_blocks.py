"""The README's examples as data: its sections, their fenced ``sh`` and
``python`` blocks, the commands of a ``sh`` block, and the rewrites that point
an example at a test server (see test_readme_examples.py for how they run).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"

#: Info strings of the fenced blocks that are run, and how.
LANGUAGES = {"sh": "sh", "bash": "sh", "shell": "sh", "python": "python", "py": "python"}

_FENCE = re.compile(r"^```(\S*)")
_HEADING = re.compile(r"^#{1,2} (.+)")


@dataclasses.dataclass(frozen=True)
class Block:
    """A fenced block: ``sh`` or ``python``, its text, its first line's number."""

    language: str
    text: str
    line: int


@dataclasses.dataclass(frozen=True)
class Section:
    """A ``#`` or ``##`` heading and the runnable blocks under it, in order."""

    title: str
    blocks: tuple[Block, ...]


def sections(path: Path = README) -> list[Section]:
    """The sections of ``path`` that have at least one runnable block."""
    found: list[Section] = []
    title, blocks = "", list[Block]()
    fence: tuple[str | None, int, list[str]] | None = None
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if fence is not None:
            if line.startswith("```"):
                language, start, body = fence
                if language is not None:
                    blocks.append(Block(language, "\n".join(body) + "\n", start))
                fence = None
            else:
                fence[2].append(line)
        elif match := _FENCE.match(line):
            fence = (LANGUAGES.get(match.group(1)), number + 1, [])
        elif match := _HEADING.match(line):
            if blocks:
                found.append(Section(title, tuple(blocks)))
            title, blocks = match.group(1), []
    if blocks:
        found.append(Section(title, tuple(blocks)))
    return found


def commands(block: Block) -> list[str]:
    """The commands of a ``sh`` block: its non-blank lines, each joined with
    the lines its trailing backslashes continue onto."""
    result: list[str] = []
    pending = ""
    for line in block.text.splitlines():
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        command = (pending + line).strip()
        pending = ""
        if command and not command.startswith("#"):
            result.append(command)
    return result


#: The documented servers, each replaced by the test's server address.
DOCUMENTED_SERVERS = re.compile(
    r"(?<![\w.-])(server\.example\.org|192\.0\.2\.10|0\.0\.0\.0)(?![\w.-])"
)
TEST_SERVER = "127.0.0.2"
#: The documented port.
_PORT = re.compile(r"(?<!\d)7420(?!\d)")
#: A loopback address the examples name without a port.
_BARE_LOOPBACK = re.compile(r"(?<![\w.:\[])(127\.0\.0\.[12])(?![\w.:])")
_TMP = re.compile(r"(?<![\w.~/])/tmp(?![\w.-])")


def rewrite(text: str, *, port: int | None, scratch: Path, names_a_port: bool = True) -> str:
    """``text`` pointed at the test: the documented servers become
    ``TEST_SERVER``, ``/tmp`` becomes ``scratch``, and once a server listens
    on ``port``, the documented port becomes that one and (where the text names
    a server to reach, ``names_a_port``) a bare loopback address gets it."""
    text = DOCUMENTED_SERVERS.sub(TEST_SERVER, text)
    text = _TMP.sub(str(scratch), text)
    if port is not None:
        text = _PORT.sub(str(port), text)
        if names_a_port:
            text = _BARE_LOOPBACK.sub(rf"\1:{port}", text)
    return text
