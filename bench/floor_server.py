#!/usr/bin/env python3
"""The floor's server for ``bench/floor.py``: the least a Python server must
do for each of issue 15's rows, in its own process.

    python bench/floor_server.py [--io threads|asyncio] [--spawn posix_spawn|popen]
                                 [--out read|splice]

Prints ``floor listening on HOST:PORT``. Per connection, every request is a
frame (``floor_frames``), its header validated by the pydantic model:

* ``run``: spawn ``argv`` with stdout and stderr pipes (stdin /dev/null),
  stream each pipe back in ``stdout``/``stderr`` frames as it is read, then
  ``exit`` with the status. ``--out splice`` moves the body bytes from the pipe
  to the socket with ``splice(2)`` (the header says how many: ``FIONREAD``).
* ``pty``: ``cat`` on a new pty; ``stdin`` frames go to its master, what the
  master gives back goes out as ``stdout`` frames (the pty's echo).
* ``put``/``get``: a file streamed with SHA-256 on both ends.

``--io threads`` serves each connection in a thread with blocking sockets;
``--io asyncio`` serves ``run`` on one event loop (pipes and a pidfd watched
by the loop). Runs until terminated.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import fcntl
import os
import pty
import select
import shutil
import socket
import subprocess
import sys
import termios
import threading

import floor_frames as ff

PIPE_SIZE = 1 << 20
_paths: dict[str, str] = {}


def _resolve(name: str) -> str:
    """The executable's path, looked up once (as rexecd caches it)."""
    if name not in _paths:
        _paths[name] = shutil.which(name) or name
    return _paths[name]


def spawn(argv: list[str], how: str) -> tuple[int, int, int, subprocess.Popen | None]:
    """Start ``argv`` with stdout/stderr pipes: ``(pid, out_fd, err_fd, popen)``."""
    if how == "popen":
        p = subprocess.Popen(
            [_resolve(argv[0]), *argv[1:]],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        return p.pid, p.stdout.fileno(), p.stderr.fileno(), p
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.posix_spawn(
            _resolve(argv[0]),
            argv,
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, out_w, 1),
                (os.POSIX_SPAWN_DUP2, err_w, 2),
            ],
        )
    finally:
        os.close(out_w)
        os.close(err_w)
    return pid, out_r, err_r, None


def _available(fd: int) -> int:
    n = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, n)
    return n[0]


def run_blocking(conn: socket.socket, argv: list[str], how: str, out: str) -> None:
    pid, out_fd, err_fd, popen = spawn(argv, how)
    fcntl.fcntl(out_fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    names = {out_fd: "stdout", err_fd: "stderr"}
    buf = bytearray(ff.CHUNK)
    poller = select.poll()
    for fd in names:
        poller.register(fd, select.POLLIN)
    while names:
        for fd, _ in poller.poll():
            if out == "splice" and (n := _available(fd)):
                conn.sendall(ff.frame(type=names[fd], data_size=min(n, ff.CHUNK)))
                left = min(n, ff.CHUNK)
                while left:
                    left -= os.splice(fd, conn.fileno(), left)
                continue
            n = os.readv(fd, [buf])
            if n:
                ff.send_all(conn, [ff.frame(type=names[fd], data_size=n), memoryview(buf)[:n]])
            else:
                poller.unregister(fd)
                del names[fd]
                if popen is None:
                    os.close(fd)
    status = popen.wait() if popen else os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if popen:
        popen.stdout.close()
        popen.stderr.close()
    conn.sendall(ff.frame(type="exit", status=status))


def pty_cat(conn: socket.socket, reader: ff.Reader) -> None:
    master, slave = pty.openpty()
    pid = os.posix_spawn(
        _resolve("cat"),
        ["cat"],
        os.environ,
        file_actions=[(os.POSIX_SPAWN_DUP2, slave, fd) for fd in (0, 1, 2)],
        setsid=True,
    )
    os.close(slave)
    poller = select.poll()
    poller.register(conn, select.POLLIN)
    poller.register(master, select.POLLIN)
    try:
        while True:
            # Frames that came with an earlier receive: poll would not report them.
            while reader.end - reader.start >= 4:
                h = reader.header()
                os.write(master, reader.body(h.data_size))
            for fd, _ in poller.poll():
                if fd == master:
                    try:
                        data = os.read(master, 65536)
                    except OSError:  # EIO: cat ended, the slave is closed
                        data = b""
                    if not data:
                        status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
                        conn.sendall(ff.frame(type="exit", status=status))
                        return
                    conn.sendall(ff.frame(type="stdout", data_size=len(data)) + data)
                else:
                    h = reader.header()
                    os.write(master, reader.body(h.data_size))
    finally:
        os.close(master)


def serve_connection(conn: socket.socket, args) -> None:
    reader = ff.Reader(conn, 4096)
    try:
        while True:
            try:
                h = reader.header()
            except EOFError:
                return
            if h.type == "run":
                run_blocking(conn, h.argv, args.spawn, args.out)
            elif h.type == "pty":
                pty_cat(conn, reader)
            elif h.type == "put":
                ff.receive_file(reader, h.path, h.size, args.transfer)
                conn.sendall(ff.frame(type="exit", status=0))
            elif h.type == "get":
                conn.sendall(ff.frame(type="data", size=os.stat(h.path).st_size))
                ff.send_file(conn, h.path, args.transfer)
    except (OSError, EOFError, ValueError) as exc:
        print(f"floor server: {exc!r}", file=sys.stderr)
    finally:
        conn.close()


def serve_threads(sock: socket.socket, args) -> None:
    while True:
        conn, _ = sock.accept()
        threading.Thread(
            target=serve_connection, args=(ff.nodelay(conn), args), daemon=True
        ).start()


class RunProtocol(asyncio.Protocol):
    """``run`` on one event loop: each command's pipes and pidfd are watched
    by the loop, its output sent as it is read."""

    def __init__(self, args) -> None:
        self.args, self.buf, self.bulk = args, bytearray(), bytearray(ff.CHUNK)

    def connection_made(self, transport) -> None:
        self.transport = transport
        ff.nodelay(transport.get_extra_info("socket"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= 4:
            (size,) = ff.LEN.unpack_from(self.buf)
            if len(self.buf) < 4 + size:
                return
            h = ff.Header.model_validate_json(bytes(self.buf[4 : 4 + size]))
            del self.buf[: 4 + size]
            self._start(h.argv)

    def _start(self, argv: list[str]) -> None:
        loop = asyncio.get_running_loop()
        pid, out_fd, err_fd, _ = spawn(argv, self.args.spawn)
        pidfd = os.pidfd_open(pid)
        state = {"open": 2}

        def readable(fd: int, name: str) -> None:
            n = os.readv(fd, [self.bulk])
            if n:
                self.transport.write(ff.frame(type=name, data_size=n))
                self.transport.write(self.bulk[:n])
                return
            loop.remove_reader(fd)
            os.close(fd)
            state["open"] -= 1
            finish()

        def finish() -> None:
            if state["open"] == 0 and state.get("status") is not None:
                self.transport.write(ff.frame(type="exit", status=state["status"]))

        def exited() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            state["status"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
            finish()

        loop.add_reader(out_fd, readable, out_fd, "stdout")
        loop.add_reader(err_fd, readable, err_fd, "stderr")
        loop.add_reader(pidfd, exited)


async def serve_asyncio(sock: socket.socket, args) -> None:
    server = await asyncio.get_running_loop().create_server(lambda: RunProtocol(args), sock=sock)
    await server.serve_forever()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--io", choices=("threads", "asyncio"), default="threads")
    p.add_argument("--spawn", choices=("posix_spawn", "popen"), default="posix_spawn")
    p.add_argument("--out", choices=("read", "splice"), default="read")
    p.add_argument("--transfer", choices=ff.TRANSFERS, default="threaded")
    args = p.parse_args(argv)
    sock = socket.create_server(("127.0.0.1", 0), backlog=128)
    print(f"floor listening on 127.0.0.1:{sock.getsockname()[1]}", flush=True)
    if args.io == "asyncio":
        asyncio.run(serve_asyncio(sock, args))
    else:
        serve_threads(sock, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
