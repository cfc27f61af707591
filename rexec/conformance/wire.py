"""Raw connections to the implementation under test, with a wire log.

``Wire`` is one TCP (optionally TLS) connection that sends exactly the bytes a
case gives it, valid or not, and decodes what comes back with the protocol
library's ``FrameDecoder`` (bounded by the protocol's own maxima, so a server
frame above 64 KiB of header or 1 MiB of body is itself reported as a fault).
It never reads in the background: a case that stops calling ``next_frame``
stops reading the socket, which is how backpressure is exercised.

Every byte sent and received, and every frame decoded, goes to the case's
``WireLog`` for the JSON report.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import ssl
import time
from typing import Any

from rexec import protocol

from .peer_frames import PeerFrameError, check_accepted, diagnose

#: Bytes of each chunk kept in the wire log (the rest is counted, not shown).
LOG_BYTES = 96
#: Log entries kept per case; the rest is counted.
LOG_ENTRIES = 400


@dataclasses.dataclass(frozen=True)
class Target:
    """Where the implementation under test listens, and how to reach it."""

    host: str
    port: int
    tls: ssl.SSLContext | None = None
    server_hostname: str | None = None


class Closed:
    """``next_frame``'s answer once the peer has ended the connection.

    ``how`` is ``"eof"`` (an orderly FIN) or ``"reset"`` (RST or a TLS abort).
    """

    def __init__(self, how: str) -> None:
        self.how = how

    def __repr__(self) -> str:
        return f"Closed({self.how})"


class WireLog:
    """What crossed the wire during one case, in order, size-bounded."""

    def __init__(self) -> None:
        self._start = time.monotonic()
        self.entries: list[dict[str, Any]] = []
        self.dropped = 0

    def _add(self, entry: dict[str, Any]) -> None:
        if len(self.entries) >= LOG_ENTRIES:
            self.dropped += 1
            return
        entry["t"] = round(time.monotonic() - self._start, 4)
        self.entries.append(entry)

    def data(self, conn: int, direction: str, data: bytes) -> None:
        shown = data[:LOG_BYTES].hex()
        self._add(
            {
                "conn": conn,
                "dir": direction,
                "bytes": len(data),
                "hex": shown,
                "truncated": len(data) > LOG_BYTES,
            }
        )

    def frame(self, conn: int, direction: str, message: protocol.MessageBase) -> None:
        header = message.model_dump(mode="json")
        self._add({"conn": conn, "dir": direction, "frame": header})

    def note(self, conn: int, text: str) -> None:
        self._add({"conn": conn, "note": text})

    def to_json(self) -> dict[str, Any]:
        return {"entries": self.entries, "dropped": self.dropped}


class Wire:
    """One raw connection. Use ``Wire.open``; always ``close`` it."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: WireLog, number: int
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.log = log
        self.number = number
        self.decoder = protocol.FrameDecoder(
            max_header=protocol.PROTOCOL_MAX_HEADER, max_body=protocol.PROTOCOL_MAX_BODY
        )
        # Every header is kept as it travelled: the handshake's transcript is
        # made of two, and a faulty one is named in the report.
        self.decoder.keep_raw = True
        self.closed: Closed | None = None
        self.auto_pong = True
        self.eof_sent = False  # after a half-close nothing can be sent, pongs included
        self.received_bytes = 0
        self.raw_received = bytearray()  # kept for cases that inspect every byte (key leak)

    @classmethod
    async def open(
        cls,
        target: Target,
        log: WireLog,
        number: int,
        *,
        timeout: float,
        rcvbuf: int | None = None,
    ) -> Wire:
        """Connect to ``target``.

        Args:
            rcvbuf: a small SO_RCVBUF, set before connecting so that the
                kernel does not autotune it (cases that must fill the pipe).

        Raises:
            OSError, TimeoutError: the connection could not be made.
        """
        sock = socket.socket(socket.AF_INET6 if ":" in target.host else socket.AF_INET)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (target.host, target.port)), timeout)
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    sock=sock,
                    ssl=target.tls,
                    limit=4 * 1024 * 1024,
                    server_hostname=(target.server_hostname or target.host) if target.tls else None,
                ),
                timeout,
            )
        except BaseException:
            sock.close()
            raise
        log.note(number, f"connected to {target.host}:{target.port}")
        return cls(reader, writer, log, number)

    # --- sending ---------------------------------------------------------------

    async def send_raw(self, data: bytes) -> None:
        """Write ``data`` as is and wait until it is handed to the kernel."""
        self.log.data(self.number, "sent", data)
        self.writer.write(data)
        await self.writer.drain()

    async def send(self, *messages: protocol.MessageBase) -> None:
        """Encode ``messages`` (no state checks: the suite may send anything
        a schema allows) and write them in one write."""
        for message in messages:
            self.log.frame(self.number, "sent", message)
        await self.send_raw(b"".join(protocol.encode_frame(m) for m in messages))

    async def shutdown_write(self) -> None:
        """Half-close: send FIN, keep reading."""
        self.log.note(self.number, "half-close (FIN) sent")
        self.eof_sent = True
        if self.writer.can_write_eof():
            self.writer.write_eof()
        await asyncio.sleep(0)

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()

    def abort(self) -> None:
        """Close with RST where possible (SO_LINGER 0), as a crashed client would."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
            except OSError:
                pass
        self.writer.transport.abort()

    # --- receiving -------------------------------------------------------------

    def _decoded(self) -> protocol.MessageBase | None:
        try:
            message = self.decoder.next_message()
        except protocol.RemoteProtocolError as exc:
            fault = diagnose(exc.code.value, exc.message, self.decoder.raw_header)
            self.log.note(self.number, f"undecodable frame from the peer: {fault}")
            raise fault from None
        if message is not None:
            self.log.frame(self.number, "recv", message)
            try:
                check_accepted(self.decoder.raw_header)
            except PeerFrameError as fault:
                self.log.note(self.number, f"malformed frame from the peer: {fault}")
                raise
        return message

    async def next_frame(self, timeout: float) -> protocol.MessageBase | Closed | None:
        """The next frame from the peer, ``Closed`` once it has gone, or None
        when nothing complete arrived within ``timeout`` seconds.

        A ``ping`` is answered with ``pong`` at once (every client must; a
        half-closed one can't and needn't) and not returned, unless
        ``auto_pong`` is False.

        Raises:
            PeerFrameError: the peer sent an invalid frame.
        """
        deadline = time.monotonic() + timeout
        while True:
            message = self._decoded()
            if message is not None:
                if self.auto_pong and isinstance(message, protocol.Ping):
                    if self.closed is None and not self.eof_sent:
                        try:
                            await self.send(protocol.Pong(seq=message.seq))
                        except (ConnectionError, OSError):
                            pass
                    continue
                return message
            if self.closed is not None:
                return self.closed
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                data = await asyncio.wait_for(self.reader.read(256 * 1024), remaining)
            except TimeoutError:
                return None
            except (ConnectionError, ssl.SSLError, OSError) as exc:
                self.log.note(self.number, f"connection reset: {type(exc).__name__}")
                self.closed = Closed("reset")
                continue
            if not data:
                self.log.note(self.number, "EOF from the peer")
                self.closed = Closed("eof")
                if self.decoder.mid_frame:
                    raise PeerFrameError("frame.truncated", "the peer closed inside a frame")
                continue
            self.received_bytes += len(data)
            if len(self.raw_received) < 1024 * 1024:
                self.raw_received += data[:4096]
            self.log.data(self.number, "recv", data)
            self.decoder.feed(data)

    async def wait_closed(self, timeout: float) -> tuple[Closed | None, list[protocol.MessageBase]]:
        """Read until the peer closes, for at most ``timeout`` seconds.

        Returns:
            How it closed (None if it did not), and the frames read meanwhile.
        """
        frames: list[protocol.MessageBase] = []
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            got = await self.next_frame(remaining)
            if got is None:
                return None, frames
            if isinstance(got, Closed):
                return got, frames
            frames.append(got)
        return None, frames
