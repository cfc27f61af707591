"""The messages of a file transfer: ``put`` and ``get`` open one (client →
server), ``file`` and ``done`` report it (server → client). A put's bytes
travel as ``stdin`` under the usual credit, a get's as ``stdout``
(_command_messages.py); the order is _commands.py's (protocol.md [transfer]).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ._fields import CommandId, Count, FileMode, FileTime, Hex32, ResumeKey, Text
from ._message_base import MessageBase


class Put(MessageBase):
    """Write a file on the server: its bytes follow as ``stdin`` frames under
    the usual credit, then ``stdin_eof``. ``size`` and ``sha256`` describe the
    exact content; either may be null here and given in ``stdin_eof`` instead
    (a file read from a pipe). The server checks both before the file takes
    its final name. ``mtime`` (seconds since the epoch) sets its modification
    time; with ``resume``, a put interrupted before continues where it
    stopped (protocol.md [transfer.put.resume])."""

    type: Literal["put"] = "put"
    id: CommandId
    path: Annotated[Text, Field(min_length=1)]
    size: Count | None = None
    mode: FileMode = 0o644
    sha256: Hex32 | None = None
    mtime: FileTime | None = None
    resume: ResumeKey | None = None


class Get(MessageBase):
    """Read a file from the server: ``file``, its bytes from ``offset`` on as
    ``stdout`` frames, ``done`` (with the size and SHA-256 of the whole file)."""

    type: Literal["get"] = "get"
    id: CommandId
    path: Annotated[Text, Field(min_length=1)]
    offset: Count = 0


class File(MessageBase):
    """Server → client, first frame of a ``get``: the file's size, mode and
    modification time when it was opened; ``size`` minus the get's ``offset``
    bytes of ``stdout`` follow (``size`` null: not known, the bytes run to the
    file's end and ``done`` gives it). For a ``put`` with ``resume``: the bytes the
    server already holds (``size``), before any credit."""

    type: Literal["file"] = "file"
    id: CommandId
    size: Count | None
    mode: FileMode
    mtime: FileTime | None = None


class Done(MessageBase):
    """Server → client: the terminal frame of a transfer that succeeded, with
    the byte count and SHA-256 of the content written (put) or sent (get)."""

    type: Literal["done"] = "done"
    id: CommandId
    size: Count
    sha256: Hex32


TransferMessage = Put | Get | File | Done
#: What each side sends of these.
CLIENT_SENDS: tuple[type[MessageBase], ...] = (Put, Get)
SERVER_SENDS: tuple[type[MessageBase], ...] = (File, Done)

__all__ = ["Done", "File", "Get", "Put"]
