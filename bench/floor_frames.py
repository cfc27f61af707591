"""The floor's wire: what every floor server and client of ``bench/floor.py``
shares, and nothing more than the product must do.

A frame is a 4-byte ``'<i'`` header length, a JSON header validated by one
pydantic model, then ``data_size`` body bytes (rexec's framing, protocol.md).
Transfers stream their bytes in frames of at most :data:`CHUNK` bytes with
SHA-256 computed on both ends as they pass, in one of :data:`TRANSFERS` ways.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import mmap
import os
import socket
import struct
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

LEN = struct.Struct("<i")
CHUNK = 1 << 20
MAX_HEADER = 1 << 16
#: The ways a transfer may move and hash its bytes (see send_file, receive_file).
TRANSFERS = ("plain", "threaded", "mmap")


class Header(BaseModel):
    """Every header either way; validated from the received bytes."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["run", "pty", "put", "get", "stdout", "stderr", "stdin", "data", "done", "exit"]
    data_size: int = Field(0, ge=0, le=CHUNK)
    argv: list[str] | None = None
    path: str | None = None
    size: int | None = Field(None, ge=0)
    status: int | None = None
    sha256: str | None = Field(None, pattern="^[0-9a-f]{64}$")


def frame(**header) -> bytes:
    """A header frame (without its body)."""
    raw = json.dumps(header, separators=(",", ":")).encode()
    return LEN.pack(len(raw)) + raw


def send_all(sock: socket.socket, parts: list) -> None:
    """``sendmsg`` the parts (header and body without joining them) to the end."""
    left = sum(len(p) for p in parts)
    views = [memoryview(p) for p in parts]
    while left:
        sent = sock.sendmsg(views)
        left -= sent
        while sent:
            if sent >= len(views[0]):
                sent -= len(views.pop(0))
            else:
                views[0] = views[0][sent:]
                sent = 0


class Reader:
    """Frames from a blocking socket. Headers come through a small buffer
    (``buffer`` bytes: several small frames per ``recv``); large bodies go
    straight into the caller's memory with ``recv_into``."""

    def __init__(self, sock: socket.socket, buffer: int = 65536) -> None:
        self.sock = sock
        self.buf = bytearray(buffer)
        self.view = memoryview(self.buf)
        self.start = self.end = 0

    def _fill(self, need: int) -> None:
        if self.start + need > len(self.buf):
            kept = self.end - self.start
            self.buf[:kept] = self.buf[self.start : self.end]
            self.start, self.end = 0, kept
        while self.end - self.start < need:
            n = self.sock.recv_into(self.view[self.end :])
            if not n:
                raise EOFError("connection closed mid-frame")
            self.end += n

    def header(self) -> Header:
        self._fill(4)
        (size,) = LEN.unpack_from(self.buf, self.start)
        if not 0 < size <= MAX_HEADER:
            raise ValueError(f"bad header length {size}")
        self._fill(4 + size)
        raw = bytes(self.view[self.start + 4 : self.start + 4 + size])
        self.start += 4 + size
        return Header.model_validate_json(raw)

    def body_into(self, target: memoryview) -> None:
        """Exactly ``len(target)`` body bytes into ``target``."""
        have = min(self.end - self.start, len(target))
        target[:have] = self.view[self.start : self.start + have]
        self.start += have
        got = have
        while got < len(target):
            n = self.sock.recv_into(target[got:])
            if not n:
                raise EOFError("connection closed mid-body")
            got += n

    def body(self, size: int) -> bytes:
        out = bytearray(size)
        self.body_into(memoryview(out))
        return bytes(out)


def nodelay(sock: socket.socket) -> socket.socket:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


# --- transfers: both ends hash every byte as it passes -------------------------------------


class _Hasher:
    """SHA-256 of a stream in a worker thread (hashlib releases the GIL) while
    the calling thread moves the next chunk, at most two chunks behind:
    once :meth:`add` returns, every chunk but the last two is hashed (and its
    ``then`` has run), so the caller may reuse the third buffer back."""

    def __init__(self) -> None:
        self.sha = hashlib.sha256()
        self.pool = ThreadPoolExecutor(1)
        self.pending: list[Future] = []

    def _one(self, view, then) -> None:
        self.sha.update(view)
        if then is not None:
            then()

    def add(self, view, then=None) -> None:
        self.pending.append(self.pool.submit(self._one, view, then))
        if len(self.pending) > 2:
            self.pending.pop(0).result()

    def hexdigest(self) -> str:
        for f in self.pending:
            f.result()
        self.pool.shutdown()
        return self.sha.hexdigest()


def _dropper(mm: mmap.mmap, offset: int, length: int):
    """Once hashed, a chunk's pages leave the mapping (the file keeps them):
    RSS stays a few chunks whatever the size."""
    start = offset - offset % mmap.PAGESIZE
    return lambda: mm.madvise(mmap.MADV_DONTNEED, start, offset + length - start)


def _buffers():
    """Three chunk buffers in turn: the hasher is at most two behind."""
    return itertools.cycle([memoryview(bytearray(CHUNK)) for _ in range(3)])


def send_file(sock: socket.socket, path: str, variant: str) -> None:
    """The file as data frames, then ``done`` with its SHA-256. ``plain``:
    read, hash, send; ``threaded``: the same, hashing in a second thread;
    ``mmap``: the file mapped and hashed in a second thread, sent with
    ``sendfile``."""
    fd = os.open(path, os.O_RDONLY)
    hasher = _Hasher()
    try:
        size = os.fstat(fd).st_size
        if variant == "mmap" and size:
            mm = mmap.mmap(fd, size, prot=mmap.PROT_READ)
            view = memoryview(mm)
            for off in range(0, size, CHUNK):
                n = min(CHUNK, size - off)
                hasher.add(view[off : off + n], _dropper(mm, off, n))
                sock.sendall(frame(type="data", data_size=n))
                sent = 0
                while sent < n:
                    sent += os.sendfile(sock.fileno(), fd, off + sent, n - sent)
            digest = hasher.hexdigest()
            view.release()
            mm.close()
        else:
            sha, buffers = hashlib.sha256(), _buffers()
            while n := os.readv(fd, [buf := next(buffers)]):
                if variant == "plain":
                    sha.update(buf[:n])
                else:
                    hasher.add(buf[:n])
                send_all(sock, [frame(type="data", data_size=n), buf[:n]])
            digest = sha.hexdigest() if variant == "plain" else hasher.hexdigest()
        sock.sendall(frame(type="done", sha256=digest))
    finally:
        os.close(fd)
        hasher.pool.shutdown()


def receive_file(reader: Reader, path: str, size: int, variant: str) -> str:
    """Data frames into ``path`` (``size`` bytes, then ``done``); the digest
    is checked, a mismatch leaves no file. Returns the digest. ``mmap``:
    received straight into the file's mapping with ``recv_into``."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    hasher = _Hasher()
    try:
        got = 0
        if variant == "mmap" and size:
            os.ftruncate(fd, size)
            mm = mmap.mmap(fd, size)
            view = memoryview(mm)
            while (h := reader.header()).type == "data":
                if got + h.data_size > size:
                    raise ValueError("more data than announced")
                reader.body_into(view[got : got + h.data_size])
                hasher.add(view[got : got + h.data_size], _dropper(mm, got, h.data_size))
                got += h.data_size
            digest = hasher.hexdigest()
            view.release()
            mm.close()
        else:
            sha, buffers = hashlib.sha256(), _buffers()
            while (h := reader.header()).type == "data":
                chunk = next(buffers)[: h.data_size]
                reader.body_into(chunk)
                if variant == "plain":
                    sha.update(chunk)
                else:
                    hasher.add(chunk)
                os.write(fd, chunk)
                got += h.data_size
            digest = sha.hexdigest() if variant == "plain" else hasher.hexdigest()
        if h.type != "done" or got != size or h.sha256 != digest:
            raise ValueError(f"transfer check failed: {got} of {size} bytes, {h.type}")
        return digest
    except BaseException:
        os.unlink(path)
        raise
    finally:
        os.close(fd)
        hasher.pool.shutdown()
