"""The key file of protocol.md section 11, as rexec.keyfile reads and writes it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from rexec.keyfile import KeyFileError, load_key, load_or_create_key

KEY = bytes(range(32))


def _write(path: Path, content: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(content)
    path.chmod(mode)
    return path


@pytest.mark.parametrize(
    "content",
    [
        KEY.hex().encode() + b"\n",
        KEY.hex().upper().encode(),
        KEY.hex().encode() + b"\r\n",
        b"  \t" + KEY.hex().encode() + b" \n\n",
        b" " * 32 + KEY.hex().encode() + b" " * 32,  # 128 bytes in all: the most allowed
    ],
    ids=["lf", "upper", "crlf", "spaces", "128-bytes"],
)
def test_accepted_forms(tmp_path: Path, content: bytes) -> None:
    assert load_key(_write(tmp_path / "key", content)) == KEY


@pytest.mark.parametrize(
    "content",
    [
        KEY.hex()[:-1].encode(),
        KEY.hex().encode() + b"0",
        KEY.hex().encode() + b"\n# a comment\n",
        KEY.hex().encode() + b"\njunk",
        b" ".join(KEY.hex().encode()[i : i + 2] for i in range(0, 64, 2)),  # spaced pairs
        b" " * 33 + KEY.hex().encode() + b" " * 32,  # 129 bytes
        b"0x" + KEY.hex().encode(),
        KEY.hex().encode() + b"\x00",
        b"",
    ],
    ids=[
        "63-digits",
        "65-digits",
        "comment",
        "junk",
        "spaced-pairs",
        "129-bytes",
        "0x",
        "nul",
        "empty",
    ],
)
def test_refused_forms(tmp_path: Path, content: bytes) -> None:
    with pytest.raises(KeyFileError, match="64 hex digits on one line"):
        load_key(_write(tmp_path / "key", content))


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602])
def test_group_or_other_access_is_refused(tmp_path: Path, mode: int) -> None:
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_key(_write(tmp_path / "key", KEY.hex().encode(), mode))


def test_a_symbolic_link_at_its_name_is_not_followed(tmp_path: Path) -> None:
    target = _write(tmp_path / "real", KEY.hex().encode())
    (tmp_path / "key").symlink_to(target)
    with pytest.raises(KeyFileError):
        load_key(tmp_path / "key")


def test_created_key_is_64_lowercase_digits_and_a_newline(tmp_path: Path) -> None:
    path = tmp_path / "dir" / "key"
    key, created = load_or_create_key(path)
    assert created and len(key) == 32
    assert path.read_bytes() == key.hex().encode() + b"\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert load_or_create_key(path) == (key, False)
