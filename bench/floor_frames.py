"""The floor's wire: what every floor server and client of ``bench/floor.py``
shares, and nothing more than the product must do.

A frame is a 4-byte ``'<i'`` header length, a JSON header validated by one
pydantic model, then ``data_size`` body bytes (rexec's framing, protocol.md).
Transfers stream their bytes in frames of at most :data:`CHUNK` bytes with
SHA-256 computed on both ends as they pass; two ways of doing it are offered
(``plain``: read, hash, send in one thread; ``fast``: ``mmap`` plus
``sendfile`` on the sending end, ``recv_into`` the receiver's ``mmap`` of the
file, hashing in a second thread while the next chunk moves).
"""

from __future__ import annotations

import hashlib
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
    """SHA-256 of a stream in a worker thread (hashlib releases the GIL), at
    most two chunks behind the bytes. Chunks are slices of one ``mmap``;
    once hashed, a chunk's pages are dropped from the mapping (the file keeps
    them), so the process's RSS stays a few chunks whatever the size."""

    def __init__(self, mm: mmap.mmap) -> None:
        self.sha = hashlib.sha256()
        self.mm = mm
        self.view = memoryview(mm)
        self.pool = ThreadPoolExecutor(1)
        self.pending: list[Future] = []

    def _one(self, offset: int, length: int) -> None:
        self.sha.update(self.view[offset : offset + length])
        start = offset - offset % mmap.PAGESIZE
        self.mm.madvise(mmap.MADV_DONTNEED, start, offset + length - start)

    def add(self, offset: int, length: int) -> None:
        self.pending.append(self.pool.submit(self._one, offset, length))
        if len(self.pending) > 2:
            self.pending.pop(0).result()

    def hexdigest(self) -> str:
        for f in self.pending:
            f.result()
        self.pool.shutdown()
        self.view.release()
        return self.sha.hexdigest()


def send_file(sock: socket.socket, path: str, variant: str) -> None:
    """The file as data frames, then ``done`` with its SHA-256."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if variant == "fast" and size:
            mm = mmap.mmap(fd, size, prot=mmap.PROT_READ)
            hasher = _Hasher(mm)
            for off in range(0, size, CHUNK):
                n = min(CHUNK, size - off)
                hasher.add(off, n)
                sock.sendall(frame(type="data", data_size=n))
                sent = 0
                while sent < n:
                    sent += os.sendfile(sock.fileno(), fd, off + sent, n - sent)
            digest = hasher.hexdigest()
            mm.close()
        else:
            sha = hashlib.sha256()
            buf = bytearray(CHUNK)
            while n := os.readv(fd, [buf]):
                chunk = memoryview(buf)[:n]
                sha.update(chunk)
                send_all(sock, [frame(type="data", data_size=n), chunk])
            digest = sha.hexdigest()
        sock.sendall(frame(type="done", sha256=digest))
    finally:
        os.close(fd)


def receive_file(reader: Reader, path: str, size: int, variant: str) -> str:
    """Data frames into ``path`` (``size`` bytes, then ``done``); the digest
    is checked, a mismatch leaves no file. Returns the digest."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        got = 0
        if variant == "fast" and size:
            os.ftruncate(fd, size)
            mm = mmap.mmap(fd, size)
            view = memoryview(mm)
            hasher = _Hasher(mm)
            while (h := reader.header()).type == "data":
                if got + h.data_size > size:
                    raise ValueError("more data than announced")
                reader.body_into(view[got : got + h.data_size])
                hasher.add(got, h.data_size)
                got += h.data_size
            digest = hasher.hexdigest()
            view.release()
            mm.close()
        else:
            sha = hashlib.sha256()
            buf = memoryview(bytearray(CHUNK))
            while (h := reader.header()).type == "data":
                chunk = buf[: h.data_size]
                reader.body_into(chunk)
                sha.update(chunk)
                os.write(fd, chunk)
                got += h.data_size
            digest = sha.hexdigest()
        if h.type != "done" or got != size or h.sha256 != digest:
            raise ValueError(f"transfer check failed: {got} of {size} bytes, {h.type}")
        return digest
    except BaseException:
        os.unlink(path)
        raise
    finally:
        os.close(fd)
