"""Sockets as Linux's ``/proc/net/tcp`` and ``tcp6`` show them: the state and
the queues of one connection, read on the server's host through a command.
What no frame can tell: whether a server closed its socket while the suite
was not reading, and how much it has queued."""

from __future__ import annotations

import dataclasses

ESTABLISHED = "01"


@dataclasses.dataclass(frozen=True)
class SocketRow:
    state: str  # two hex digits: "01" is ESTABLISHED
    send_queue: int  # bytes written, not yet acknowledged by the peer
    receive_queue: int  # bytes received, not yet read by the program


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1], 16)


def find_socket(table: str, local_port: int, remote_port: int) -> SocketRow | None:
    """The row of the socket from ``local_port`` to ``remote_port`` in the text
    of the tables, or None when there is none."""
    for line in table.splitlines():
        fields = line.split()
        if len(fields) < 5 or ":" not in fields[1] or ":" not in fields[4]:
            continue
        if _port(fields[1]) == local_port and _port(fields[2]) == remote_port:
            send, _, receive = fields[4].partition(":")
            return SocketRow(fields[3], int(send, 16), int(receive, 16))
    return None
