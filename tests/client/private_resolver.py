"""Run a program where host names resolve through a resolver of our own.

    unshare -nm python private_resolver.py MODE RESOLV_CONF PROGRAM [ARG...]

Inside fresh network and mount namespaces (so nothing leaves the machine and
the host's /etc/resolv.conf is untouched), this brings up the loopback
interface, bind-mounts RESOLV_CONF (``nameserver 127.0.0.1``) over
/etc/resolv.conf, and with MODE ``nxdomain`` answers every DNS query on
127.0.0.1:53 with "no such name" (MODE ``silent``: nothing listens, so every
lookup fails at once). Then it runs PROGRAM and exits with its status.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading


def _answer_nxdomain(sock: socket.socket) -> None:
    while True:
        query, peer = sock.recvfrom(512)
        if len(query) < 12:
            continue
        answer = bytearray(query)
        answer[2] = 0x80 | (query[2] & 0x79)  # a response, with the query's opcode and RD
        answer[3] = 0x80 | 0x03  # recursion available, rcode NXDOMAIN
        sock.sendto(bytes(answer), peer)


def main() -> int:
    mode, resolv_conf, *program = sys.argv[1:]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["mount", "--bind", resolv_conf, "/etc/resolv.conf"], check=True)
    if mode == "nxdomain":
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 53))
        threading.Thread(target=_answer_nxdomain, args=(sock,), daemon=True).start()
    return subprocess.run(program, timeout=60, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
