"""The shared key file: 32 random bytes, stored as 64 hex digits, mode 0600.

The format, in full: 64 hexadecimal digits (either case) on one line, optional
surrounding whitespace (a trailing newline), nothing else. Both the server and
the clients read it; ``rexecd`` creates one on first start and ``rexec keygen``
makes or imports one. A key file that others could read or replace is refused,
as OpenSSH's StrictModes refuses a loose authorized_keys.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
from pathlib import Path

from rexec.protocol import KEY_SIZE

#: The longest key file accepted: the hex digits and some whitespace around
#: them. Anything longer is not a key file (and is not read into memory).
_MAX_FILE_SIZE = 4 * KEY_SIZE
#: The key file's whole content: the key as hex, ASCII whitespace around it.
_KEY_TEXT = re.compile(rb"[ \t\r\n\f\v]*[0-9a-fA-F]{%d}[ \t\r\n\f\v]*" % (2 * KEY_SIZE))


class KeyFileError(Exception):
    """The key file is missing, unreadable, malformed or unsafe. The message is
    one line for a person, naming the file and the fix."""


def default_key_path() -> Path:
    """``$REXEC_KEY_FILE``, else ``$XDG_CONFIG_HOME/rexec/key``, else
    ``~/.config/rexec/key``."""
    explicit = os.environ.get("REXEC_KEY_FILE")
    if explicit:
        return Path(explicit)
    return config_dir() / "key"


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/rexec``, else ``~/.config/rexec``: where the key and
    the client's TLS files live by default."""
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "rexec"


def parse_key(text: bytes | str) -> bytes:
    """The key that ``text`` (a key file's content) holds.

    Raises:
        ValueError: ``text`` is not 64 hex digits with optional ASCII
            whitespace around them, 128 bytes at most in all (protocol.md 11).
    """
    if isinstance(text, str):
        text = text.encode("utf-8")
    if len(text) > _MAX_FILE_SIZE or not _KEY_TEXT.fullmatch(text):
        raise ValueError(f"a key is {2 * KEY_SIZE} hex digits on one line")
    return bytes.fromhex(text.strip().decode("ascii"))


def format_key(key: bytes) -> str:
    """The key file content for ``key``: its hex digits and a newline."""
    if len(key) != KEY_SIZE:
        raise ValueError(f"a key is {KEY_SIZE} bytes, not {len(key)}")
    return key.hex() + "\n"


def new_key() -> bytes:
    """A fresh random key."""
    return secrets.token_bytes(KEY_SIZE)


def load_key(path: Path) -> bytes:
    """Read and check the key at ``path``.

    Raises:
        KeyFileError: missing, unreadable, not 64 hex digits, or readable or
            writable by group or others.
    """
    try:
        # O_NONBLOCK: a FIFO planted at the path must not hang the caller.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise KeyFileError(
            f"key file {path} does not exist (make one with 'rexec keygen', or copy the "
            "server's; see README 'A second machine')"
        ) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise KeyFileError(
                f"key file {path} is a symbolic link; give the path of the file itself"
            ) from None
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"key file {path} is not a regular file")
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(
                f"key file {path} is accessible by group or others; run: chmod 600 {path}"
            )
        _check_owners(path, info.st_uid)
        content = os.read(fd, _MAX_FILE_SIZE + 1)
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    try:
        return parse_key(content)
    except ValueError:
        raise KeyFileError(
            f"key file {path} must hold {2 * KEY_SIZE} hex digits on one line"
        ) from None


def trusted_owner(uid: int) -> bool:
    """Whether a file or directory owned by ``uid`` is safe to trust, as
    OpenSSH's StrictModes judges: this user's or root's."""
    return uid in (os.geteuid(), 0)


def _check_owners(path: Path, owner: int) -> None:
    """As OpenSSH's StrictModes: the key file is this user's or root's, and
    no directory above it lets anyone else replace it (owned by this user or
    root, not writable by group or others unless sticky, as /tmp is).

    Raises:
        KeyFileError: someone else could have written the key.
    """
    if not trusted_owner(owner):
        raise KeyFileError(
            f"key file {path} is owned by uid {owner}, not by this user (uid {os.geteuid()}) "
            "or root: someone else could have written it"
        )
    _check_directories(path)


def directory_open_to_others(path: str | os.PathLike[str]) -> Path | None:
    """The first directory above ``path`` that lets another user replace what
    is in it, as OpenSSH's StrictModes judges: one not owned by this user or
    root, or writable by group or others without the sticky bit (/tmp is
    fine). Directories that do not exist yet are skipped: whoever creates
    them owns them. Both the path as written and where its symbolic links
    lead are walked, as sshd's ``secure_path`` walks the real one: a link
    into another user's directory hands them the file. None when there is
    none.

    Raises:
        OSError: a directory on the way can't be examined.
    """
    directory = Path(os.path.abspath(path)).parent
    real = Path(os.path.realpath(directory))
    for step in dict.fromkeys((directory, *directory.parents, real, *real.parents)):
        try:
            info = os.stat(step)
        except FileNotFoundError:
            continue
        open_to_others = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        if not trusted_owner(info.st_uid) or (open_to_others and not info.st_mode & stat.S_ISVTX):
            return step
    return None


def untrusted_place(path: str | os.PathLike[str]) -> str | None:
    """Why the file or directory at ``path`` (which exists) could be another
    user's doing, as StrictModes judges a key file: it is not this user's or
    root's, or a directory above it (or, a directory, itself) lets another
    user replace what is in it; None when neither.

    Raises:
        OSError: it can't be examined.
    """
    info = os.stat(path)
    if not trusted_owner(info.st_uid):
        return f"it is owned by uid {info.st_uid}, not by this user or root"
    inside = os.path.join(path, "_") if stat.S_ISDIR(info.st_mode) else path
    step = directory_open_to_others(inside)
    return None if step is None else f"the directory {step} {OPEN_DIRECTORY}"


#: How a directory another user may write in is refused, after its path.
OPEN_DIRECTORY = (
    "lets another user replace it (it must belong to this user or root, and be writable by "
    "no one else)"
)


def _check_directories(path: Path) -> None:
    """No directory above ``path`` lets anyone else replace it (``_check_owners``).

    Raises:
        KeyFileError: one does.
    """
    step = directory_open_to_others(path)
    if step is not None:
        raise KeyFileError(f"key file {path}: the directory {step} {OPEN_DIRECTORY}")


def write_key(path: Path, key: bytes, *, replace: bool = False) -> None:
    """Store ``key`` at ``path`` (mode 0600), creating its directory (0700)
    if needed. The file appears whole or not at all: the one atomic writer
    (``rexec.files.AtomicFile``) writes it under a temporary name, created
    0600, so the key is never readable by others, and links it into place
    (renames it over the old one with ``replace``).

    Raises:
        FileExistsError: ``path`` exists and ``replace`` is false.
        KeyFileError: the directory or the file can't be written, or a
            directory above it lets another user replace it (``load_key``
            would refuse the key: nothing is written).
    """
    # Here, not at the top: rexec.files loads ctypes (openat2), which a
    # program that only reads its key never needs.
    from rexec.files import AtomicFile, Roots, open_parent

    try:
        _check_directories(path)  # before making any directory of its own
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        dir_fd, name = open_parent(os.fsencode(path), Roots(), base=os.fsencode(os.getcwd()))
        writer = AtomicFile.create(dir_fd, name)
    except OSError as exc:
        raise KeyFileError(f"cannot create key file {path}: {exc.strerror}") from None
    try:
        writer.write([format_key(key).encode()])
        writer.commit(0o600, replace=replace)
    except FileExistsError:
        raise
    except OSError as exc:
        raise KeyFileError(f"cannot write key file {path}: {exc.strerror}") from None
    finally:
        writer.discard()


def load_or_create_key(path: Path) -> tuple[bytes, bool]:
    """Load the key at ``path``, creating it (and its directory, mode 0700)
    with a fresh random key when it does not exist.

    Returns:
        The key, and whether it was created now.

    Raises:
        KeyFileError: as ``load_key``, or the file can't be created.
    """
    if not os.path.lexists(path):
        try:
            write_key(path, new_key())
        except FileExistsError:
            pass  # created concurrently: load what the other process wrote
        else:
            return load_key(path), True
    return load_key(path), False
