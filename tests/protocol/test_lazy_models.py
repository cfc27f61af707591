"""A program builds the validators of the messages it meets, not of all 21
(issue 15: building them all was the largest part of a cold ``rexec run``).
Run in a fresh interpreter, since other tests build every model."""

from __future__ import annotations

import subprocess
import sys

_PROGRAM = """
from rexec.protocol import MessageBase, decode_header


def models(base):
    for model in base.__subclasses__():
        yield model
        yield from models(model)


def built():
    return sorted(model.__name__ for model in models(MessageBase) if model.__pydantic_complete__)


assert built() == [], f"built at import: {built()}"
message = decode_header(b'{"type":"ping","seq":7}')
assert message.seq == 7
print(built())
"""


def test_decoding_one_header_builds_only_its_model() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROGRAM], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['Ping']"
