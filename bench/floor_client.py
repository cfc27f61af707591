#!/usr/bin/env python3
"""The floor's client for ``bench/floor.py``: blocking sockets, ``TCP_NODELAY``.

In-process (:class:`Client`): ``run(argv)`` sends one ``run`` frame and reads
``stdout``/``stderr`` frames (counted, then dropped) until ``exit``;
:func:`run_many` keeps several connections busy from one thread.

As a program (whole process, like ``rexec put``/``scp``):

    python bench/floor_client.py put|get HOST PORT SRC DST [--transfer plain|threaded|mmap]
    python bench/floor_client.py echo HOST PORT

``echo`` is the pty row's client: its terminal in raw mode, each read from it
sent as a ``stdin`` frame, each ``stdout`` frame written to the terminal, until
the server's ``exit`` (``cat`` ended by ^D).
"""

from __future__ import annotations

import argparse
import os
import select
import selectors
import socket
import sys
import termios
import time
import tty

import floor_frames as ff

#: What ``echo`` prints once its terminal is raw and its session asked for:
#: keys typed before then would meet the terminal's own line editing.
READY = b"FLOOR UP\r\n"  # no lower-case letter: the bench types those


class Client:
    """One connection; ``run`` waits for each command's exit in turn."""

    def __init__(self, host: str, port: int, buffer: int = 65536) -> None:
        self.sock = ff.nodelay(socket.create_connection((host, port)))
        self.reader = ff.Reader(self.sock, buffer)
        self.sink = memoryview(bytearray(ff.CHUNK))

    def run(self, argv: list[str]) -> tuple[int, int]:
        """``(exit status, output bytes)``."""
        self.sock.sendall(ff.frame(type="run", argv=argv))
        got = 0
        while (h := self.reader.header()).type != "exit":
            self.reader.body_into(self.sink[: h.data_size])
            got += h.data_size
        return h.status, got

    def close(self) -> None:
        self.sock.close()


def run_many(clients: list[Client], argv: list[str], duration: float) -> float:
    """Commands run back to back on every connection from one thread (a
    selector instead of a thread per connection) for ``duration`` s; returns
    completed commands per second."""
    sel = selectors.DefaultSelector()
    request = ff.frame(type="run", argv=argv)
    count, start = 0, time.perf_counter()
    deadline = start + duration
    for c in clients:
        c.sock.sendall(request)
        sel.register(c.sock, selectors.EVENT_READ, c)
    while sel.get_map():
        for key, _ in sel.select():
            c = key.data
            while (h := c.reader.header()).type != "exit":
                c.reader.body_into(c.sink[: h.data_size])
            count += 1
            if time.perf_counter() < deadline:
                c.sock.sendall(request)
            else:
                sel.unregister(c.sock)
    sel.close()
    return count / (time.perf_counter() - start)


def transfer(direction: str, host: str, port: int, src: str, dst: str, variant: str) -> None:
    sock = ff.nodelay(socket.create_connection((host, port)))
    reader = ff.Reader(sock, 4096)
    if direction == "put":
        sock.sendall(ff.frame(type="put", path=dst, size=os.stat(src).st_size))
        ff.send_file(sock, src, variant)
        h = reader.header()
        if h.type != "exit" or h.status != 0:
            raise SystemExit(f"put failed: {h}")
    else:
        sock.sendall(ff.frame(type="get", path=src))
        ff.receive_file(reader, dst, reader.header().size, variant)
    sock.close()


def echo(host: str, port: int) -> int:
    saved = termios.tcgetattr(0)
    tty.setraw(0)
    sock = ff.nodelay(socket.create_connection((host, port)))
    reader = ff.Reader(sock, 4096)
    try:
        sock.sendall(ff.frame(type="pty"))
        os.write(1, READY)
        while True:
            ready, _, _ = select.select([0, sock], [], [])
            if 0 in ready:
                data = os.read(0, 4096)
                sock.sendall(ff.frame(type="stdin", data_size=len(data)) + data)
            if sock in ready:
                while True:
                    h = reader.header()
                    if h.type == "exit":
                        return h.status
                    os.write(1, reader.body(h.data_size))
                    if reader.end - reader.start < 4:
                        break
    finally:
        termios.tcsetattr(0, termios.TCSADRAIN, saved)
        sock.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=("put", "get", "echo"))
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("src", nargs="?")
    p.add_argument("dst", nargs="?")
    p.add_argument("--transfer", choices=ff.TRANSFERS, default="threaded")
    a = p.parse_args(argv)
    if a.what == "echo":
        return echo(a.host, a.port)
    transfer(a.what, a.host, a.port, a.src, a.dst, a.transfer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
