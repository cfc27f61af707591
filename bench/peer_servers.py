"""Server processes for the peers the benchmark compares rexec with.

    python bench/peer_servers.py tcp                      # raw loopback TCP source
    python bench/peer_servers.py asyncssh DIR             # asyncssh exec server

Each prints ``listening on 127.0.0.1:PORT`` on stdout once it accepts
connections, and runs until killed (the benchmark kills it by PID). Both bind
127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import socket
import struct
import sys
import threading

CHUNK = 1024 * 1024


# --- raw loopback TCP: the limit of what any protocol can move here ------------


def _tcp_serve_one(conn: socket.socket) -> None:
    buf = memoryview(bytes(CHUNK))
    with conn:
        while True:
            head = conn.recv(8, socket.MSG_WAITALL)
            if len(head) < 8:
                return
            (left,) = struct.unpack("<Q", head)
            while left > 0:
                n = conn.send(buf[: min(left, CHUNK)])
                left -= n


def tcp_main() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    print(f"listening on 127.0.0.1:{sock.getsockname()[1]}", flush=True)
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=_tcp_serve_one, args=(conn,), daemon=True).start()


# --- asyncssh: an exec server, the command spawned without a shell ----------------


async def _copy(reader: asyncio.StreamReader, writer) -> None:
    # bench-notes: SSHServerProcess.redirect() from asyncio pipes truncates big
    # outputs; copy with our own read/write/drain loop instead.
    while True:
        chunk = await reader.read(256 * 1024)
        if not chunk:
            return
        writer.write(chunk)
        await writer.drain()


async def _handle(process) -> None:
    try:
        argv = shlex.split(process.command or "true")
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        process.stderr.write(f"{exc}\n".encode())
        process.exit(127)
        return
    assert proc.stdout is not None and proc.stderr is not None
    await asyncio.gather(_copy(proc.stdout, process.stdout), _copy(proc.stderr, process.stderr))
    code = await proc.wait()
    process.exit(code if code >= 0 else 128 - code)


async def asyncssh_main(directory: str) -> None:
    import asyncssh

    host_key = asyncssh.read_private_key(os.path.join(directory, "host_key"))
    server = await asyncssh.create_server(
        asyncssh.SSHServer,
        "127.0.0.1",
        0,
        server_host_keys=[host_key],
        authorized_client_keys=os.path.join(directory, "authorized_keys"),
        process_factory=_handle,
        encoding=None,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"listening on 127.0.0.1:{port}", flush=True)
    await asyncio.Event().wait()


def make_asyncssh_keys(directory: str) -> None:
    """Host key, client key and authorized_keys for the asyncssh peer."""
    import asyncssh

    host = asyncssh.generate_private_key("ssh-ed25519")
    host.write_private_key(os.path.join(directory, "host_key"))
    client = asyncssh.generate_private_key("ssh-ed25519")
    client.write_private_key(os.path.join(directory, "client_key"))
    client.write_public_key(os.path.join(directory, "authorized_keys"))


if __name__ == "__main__":
    if sys.argv[1:2] == ["tcp"]:
        tcp_main()
    elif sys.argv[1:2] == ["asyncssh"] and len(sys.argv) == 3:
        asyncio.run(asyncssh_main(sys.argv[2]))
    else:
        sys.exit(__doc__)
