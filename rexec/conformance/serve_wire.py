"""Client mode's wire: one connection's frames both ways, the client's
invalid frames answered with their fatal error and reported as violations."""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

from rexec import protocol

from .peer_frames import PeerFrameError, check_accepted

#: Seconds between two segments of a split write.
SEGMENT_PAUSE = 0.001

#: Scenario -> what it sent, where a fatal error from the client breaks a rule.
FATAL_IS_A_VIOLATION = {
    "unknown-error": "an unknown error code [error.unknown.accept]",
    "max-size": "frames of the largest size a server may send [limits.announced]",
}


class ClientGone(Exception):
    """The client closed the connection (or broke it)."""


class ScriptedWire:
    """One client connection's frames; ``report`` collects what the client
    did that the protocol forbids (``violations``)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = protocol.FrameDecoder(
            max_header=protocol.PROTOCOL_MAX_HEADER, max_body=protocol.PROTOCOL_MAX_BODY
        )
        self.decoder.keep_raw = True  # the auth's bytes, and a header to check for repeats
        self.report: dict[str, Any] = {"event": "connection", "scenarios": [], "violations": []}
        self.pings_sent: list[int] = []
        self.pongs: set[int] = set()

    def ping(self, seq: int) -> protocol.Ping:
        """A ``ping`` the client must answer; ``unanswered`` tells if it did."""
        self.pings_sent.append(seq)
        return protocol.Ping(seq=seq)

    def unanswered(self) -> list[int]:
        """The seqs of the pings sent that no ``pong`` answered (yet)."""
        return [seq for seq in self.pings_sent if seq not in self.pongs]

    async def write(self, data: bytes, sizes: tuple[int, ...] = ()) -> None:
        """Write ``data``; with ``sizes``, as separate segments of those sizes."""
        if not sizes:
            self.writer.write(data)
            await self.writer.drain()
            return
        at = i = 0
        while at < len(data):
            size = sizes[i % len(sizes)]
            self.writer.write(data[at : at + size])
            await self.writer.drain()
            # A pause, so that the client's reads see the segments apart.
            await asyncio.sleep(SEGMENT_PAUSE)
            at, i = at + size, i + 1

    async def send(self, *messages: protocol.MessageBase, sizes: tuple[int, ...] = ()) -> None:
        await self.write(b"".join(protocol.encode_frame(m) for m in messages), sizes)

    async def receive(self, timeout: float | None = None) -> protocol.MessageBase:
        """The next client frame. Raises ClientGone, TimeoutError."""
        while True:
            try:
                message = self.decoder.next_message()
            except protocol.RemoteProtocolError as exc:
                self.report["violations"].append(f"sent an invalid frame: {exc.code.value}")
                await self.send(
                    protocol.Error(code=exc.code.value, message=exc.message, fatal=True)
                )
                raise ClientGone from None
            if message is not None:
                try:
                    check_accepted(self.decoder.raw_header)
                except PeerFrameError as fault:  # the receiver takes the last: carry on
                    self.report["violations"].append(str(fault))
                if isinstance(message, protocol.Pong):
                    self.pongs.add(message.seq)
                if isinstance(message, protocol.Error) and message.fatal:
                    self.report["client_fatal_error"] = message.code
                    scenario = (self.report["scenarios"] or [""])[-1]
                    if scenario in FATAL_IS_A_VIOLATION:
                        self.report["violations"].append(
                            f"a fatal {message.code} after {FATAL_IS_A_VIOLATION[scenario]}"
                        )
                    raise ClientGone
                return message
            try:
                data = await asyncio.wait_for(self.reader.read(65536), timeout)
            except ConnectionError:
                data = b""
            if not data:
                raise ClientGone
            self.decoder.feed(data)


def raw_frame(header: dict[str, Any], body: bytes = b"") -> bytes:
    """A frame written from a header dict as is (members the models don't know
    included)."""
    data = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<i", len(data)) + data + body
