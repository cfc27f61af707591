"""``rexecd --http HOST:PORT``: ``/healthz`` and ``/metrics`` over HTTP/1.1.

A deliberately small server: one request per connection (every response says
``Connection: close``), GET and HEAD only, no request body, no keep-alive, no
chunking. That is all a load balancer's health check and a Prometheus scrape
need, and it leaves little to get wrong. Everything a peer controls is bounded:
the request head (``MAX_REQUEST_HEAD`` bytes), the time to send it
(``READ_DEADLINE``), and the connections open at once (``MAX_CONNECTIONS``).

Responses never echo the request (no path, no header in an error page) and
``/metrics`` holds counts only, never command text (rexec.metrics).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from http import HTTPStatus

from rexec.ops.metrics import CONTENT_TYPE

#: A scrape or health check sends a request line and a few headers; 8 KiB is
#: what common servers allow for the whole head (nginx's default buffer).
MAX_REQUEST_HEAD = 8 * 1024
#: Seconds a client has to send its whole request head: a slow or silent peer
#: (slowloris) can't hold a connection longer.
READ_DEADLINE = 5.0
#: Connections served at once; more are answered 503 and closed. A scraper and
#: a few health checkers need a handful.
MAX_CONNECTIONS = 32
#: Seconds a response may take to leave before the connection is dropped.
WRITE_DEADLINE = 5.0

ALLOWED_METHODS = ("GET", "HEAD")


class HttpEndpoint:
    """Serves ``/healthz`` (200 while accepting, 503 while shutting down) and
    ``/metrics`` from the callables given."""

    def __init__(self, *, healthy: Callable[[], bool], metrics: Callable[[], bytes]) -> None:
        self._healthy = healthy
        self._metrics = metrics
        self._server: asyncio.Server | None = None
        self._open = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen; returns the bound address. Raises OSError."""
        self._server = await asyncio.start_server(
            self._serve, host, port, reuse_address=True, limit=MAX_REQUEST_HEAD
        )
        bound = self._server.sockets[0].getsockname()
        return bound[0], bound[1]

    async def close(self) -> None:
        # Requests in progress are cut off first: from Python 3.12 on,
        # wait_closed() also waits for every open connection.
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._open += 1
        try:
            if self._open > MAX_CONNECTIONS:
                await self._respond(writer, HTTPStatus.SERVICE_UNAVAILABLE, b"too many connections\n")
                return
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_DEADLINE)
            except asyncio.LimitOverrunError:
                await self._respond(writer, HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, b"request too large\n")
                return
            except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                return  # gone, or too slow: nobody to answer
            await self._answer(writer, head)
        except (ConnectionError, TimeoutError):
            pass
        finally:
            self._open -= 1
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _answer(self, writer: asyncio.StreamWriter, head: bytes) -> None:
        request = parse_request_head(head)
        if request is None:
            await self._respond(writer, HTTPStatus.BAD_REQUEST, b"bad request\n")
            return
        method, path = request
        if path not in ("/healthz", "/metrics"):
            await self._respond(writer, HTTPStatus.NOT_FOUND, b"not found\n", head_only=method == "HEAD")
            return
        if method not in ALLOWED_METHODS:
            await self._respond(
                writer, HTTPStatus.METHOD_NOT_ALLOWED, b"method not allowed\n",
                extra=[("Allow", ", ".join(ALLOWED_METHODS))],
            )  # fmt: skip
            return
        head_only = method == "HEAD"
        if path == "/healthz":
            if self._healthy():
                await self._respond(writer, HTTPStatus.OK, b"ok\n", head_only=head_only)
            else:
                await self._respond(
                    writer, HTTPStatus.SERVICE_UNAVAILABLE, b"shutting down\n", head_only=head_only
                )
            return
        await self._respond(
            writer, HTTPStatus.OK, self._metrics(), content_type=CONTENT_TYPE, head_only=head_only
        )

    @staticmethod
    async def _respond(
        writer: asyncio.StreamWriter,
        status: HTTPStatus,
        body: bytes,
        *,
        content_type: str = "text/plain; charset=utf-8",
        extra: list[tuple[str, str]] | None = None,
        head_only: bool = False,
    ) -> None:
        headers = [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("Connection", "close"),
            *(extra or []),
        ]
        lines = [f"HTTP/1.1 {status.value} {status.phrase}"] + [f"{k}: {v}" for k, v in headers]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + (b"" if head_only else body))
        await asyncio.wait_for(writer.drain(), WRITE_DEADLINE)


def parse_request_head(head: bytes) -> tuple[str, str] | None:
    """``(method, path)`` of a request head (request line and headers, ending
    in a blank line), or None when it is malformed: not ASCII, not
    ``METHOD SP TARGET SP HTTP/1.x``, a header line without a colon, an
    HTTP/1.1 request without ``Host`` (RFC 9112 §3.2), or a body announced
    (this endpoint takes none). The query string is dropped from the path."""
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        return None
    lines = text[: -len("\r\n\r\n")].split("\r\n") if text.endswith("\r\n\r\n") else None
    if not lines:
        return None
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None
    method, target, version = parts
    if version not in ("HTTP/1.0", "HTTP/1.1") or not method.isalpha() or not method.isupper():
        return None
    if not target.startswith("/"):
        return None
    names = set()
    for line in lines[1:]:
        name, colon, _ = line.partition(":")
        if not colon or not name or name != name.strip() or any(c in name for c in " \t"):
            return None
        names.add(name.lower())
    if version == "HTTP/1.1" and "host" not in names:
        return None
    # A request body would have to be read (or the connection poisoned); GET
    # and HEAD don't carry one, and nothing else is served.
    if method in ALLOWED_METHODS and ("content-length" in names or "transfer-encoding" in names):
        return None
    return method, target.split("?", 1)[0]
