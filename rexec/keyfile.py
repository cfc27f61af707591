"""The shared key file: 32 random bytes, stored as 64 hex digits, mode 0600.

Both the server and the clients read it; only the server creates it, on first
start. A key file that others could read or replace is refused, as OpenSSH's
StrictModes refuses a loose authorized_keys.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from pathlib import Path

from rexec.protocol import KEY_SIZE

#: The key file's whole content: the key as hex, ASCII whitespace around it.
_KEY_TEXT = re.compile(rb"[ \t\r\n\f\v]*[0-9a-fA-F]{%d}[ \t\r\n\f\v]*" % (2 * KEY_SIZE))
_MAX_KEY_FILE_SIZE = 4 * KEY_SIZE


class KeyFileError(Exception):
    """The key file is missing, unreadable, malformed or unsafe. The message is
    one line for a person, naming the file and the fix."""


def default_key_path() -> Path:
    """``$REXEC_KEY_FILE``, else ``$XDG_CONFIG_HOME/rexec/key``, else
    ``~/.config/rexec/key``."""
    explicit = os.environ.get("REXEC_KEY_FILE")
    if explicit:
        return Path(explicit)
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "rexec" / "key"


def load_key(path: Path) -> bytes:
    """Read and check the key at ``path``.

    Raises:
        KeyFileError: missing, unreadable, not 64 hex digits, or readable or
            writable by group or others.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} does not exist") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as file:
        mode = os.fstat(file.fileno()).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(
                f"key file {path} is accessible by group or others; run: chmod 600 {path}"
            )
        # protocol.md 11: 64 hex digits, whitespace around them, 128 bytes at
        # most; one byte more is read to tell a longer file.
        text = file.read(_MAX_KEY_FILE_SIZE + 1)
    if len(text) > _MAX_KEY_FILE_SIZE or not _KEY_TEXT.fullmatch(text):
        raise KeyFileError(f"key file {path} must hold {2 * KEY_SIZE} hex digits and nothing else")
    return bytes.fromhex(text.strip().decode("ascii"))


def load_or_create_key(path: Path) -> tuple[bytes, bool]:
    """Load the key at ``path``, creating it (and its directory, mode 0700)
    with a fresh random key when it does not exist.

    Returns:
        The key, and whether it was created now.

    Raises:
        KeyFileError: as ``load_key``, or the file can't be created.
    """
    if not path.exists():
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # created concurrently: load what the other process wrote
        except OSError as exc:
            raise KeyFileError(f"cannot create key file {path}: {exc.strerror}") from None
        else:
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_hex(KEY_SIZE) + "\n")
            return load_key(path), True
    return load_key(path), False
