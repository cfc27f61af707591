"""``rexecd --http HOST:PORT``: ``/healthz`` and ``/metrics`` over HTTP/1.1.

HTTP is parsed and written by h11 (a sans-I/O HTTP/1.1 library, as
rexec.protocol is for our own protocol); this module is the thin asyncio shell
around it. One request per connection (every response says ``Connection:
close``), GET and HEAD only, no request body: all a load balancer's health
check and a Prometheus scrape need. Everything a peer controls is bounded: the
request head (``MAX_REQUEST_HEAD`` bytes), the time to send it
(``READ_DEADLINE``), and the connections open at once (``MAX_CONNECTIONS``).
A full table never shuts out a health check: a new connection displaces the
oldest one that has not yet sent its whole request head (what idle or
slowloris connections are), so holding connections open takes nothing from
a peer that sends its request at once.

Responses never echo the request (no path, no header in an error page) and
``/metrics`` holds counts only, never command text (rexec.ops.metrics).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from http import HTTPStatus

import h11

#: A scrape or health check sends a request line and a few headers; 8 KiB is
#: what common servers allow for the whole head (nginx's default buffer).
MAX_REQUEST_HEAD = 8 * 1024
#: Seconds a client has to send its whole request head: a slow or silent peer
#: (slowloris) can't hold a connection longer.
READ_DEADLINE = 5.0
#: Connections open at once. A new one beyond it displaces the oldest
#: connection still waiting for its request head; only when every connection
#: has a request in hand (being answered) is it answered 503 and closed. A
#: scraper and a few health checkers need a handful.
MAX_CONNECTIONS = 32
#: Seconds a response may take to leave before the connection is dropped.
WRITE_DEADLINE = 5.0

#: What ``/metrics`` is: Prometheus's text format 0.0.4, which
#: rexec.ops.metrics renders (with prometheus_client).
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

ALLOWED_METHODS = (b"GET", b"HEAD")
PATHS = (b"/healthz", b"/metrics")


class _Answer:
    """A response to send: status, body, and what else goes in the head."""

    def __init__(
        self,
        status: HTTPStatus,
        body: bytes,
        *,
        content_type: str = "text/plain; charset=utf-8",
        allow: bool = False,
    ) -> None:
        self.status = status
        self.body = body
        self.headers = [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("Connection", "close"),
        ]
        if allow:
            self.headers.append(("Allow", ", ".join(m.decode() for m in ALLOWED_METHODS)))


class HttpEndpoint:
    """Serves ``/healthz`` (200 ``ok`` while ``not_accepting`` says None, else
    503 with its reason) and ``/metrics`` from the callables given."""

    def __init__(
        self, *, not_accepting: Callable[[], str | None], metrics: Callable[[], bytes]
    ) -> None:
        self._not_accepting = not_accepting
        self._metrics = metrics
        self._server: asyncio.Server | None = None
        #: Connections still reading their request head, oldest first (a
        #: dict keeps insertion order): the ones a newcomer may displace.
        self._waiting: dict[asyncio.StreamWriter, None] = {}
        #: Connections with a whole request, being answered.
        self._answering = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen; returns the bound address. Raises OSError."""
        self._server = await asyncio.start_server(self._serve, host, port, reuse_address=True)
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
        full = self._make_room()
        self._waiting[writer] = None
        answering = False
        http = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_HEAD)
        try:
            try:
                async with asyncio.timeout(READ_DEADLINE):
                    request = await _read_request(http, reader)
                self._waiting.pop(writer, None)
                self._answering += 1
                answering = True
            except h11.RemoteProtocolError as exc:
                status = HTTPStatus(exc.error_status_hint)
                body = b"request too large\n" if status == 431 else b"bad request\n"
                answer = _Answer(status, body)
            else:
                if request is None:
                    return
                if full:
                    answer = _Answer(HTTPStatus.SERVICE_UNAVAILABLE, b"too many connections\n")
                else:
                    answer = self._answer(request)
                if request.method == b"HEAD":
                    answer.body = b""  # the head says what a GET would get
            await self._respond(http, writer, answer)
        except (ConnectionError, TimeoutError):
            pass  # gone, or too slow
        finally:
            if answering:
                self._answering -= 1
            else:
                self._waiting.pop(writer, None)  # unless displaced already
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    def _make_room(self) -> bool:
        """Free a slot for a new connection if the table is full, by closing
        the oldest connection still waiting for its request head; returns
        True if none could be closed (every slot is answering a request)."""
        if len(self._waiting) + self._answering < MAX_CONNECTIONS:
            return False
        if not self._waiting:
            return True
        oldest = next(iter(self._waiting))
        del self._waiting[oldest]
        # Its reader sees end of file and its task ends without an answer,
        # as if the peer had hung up.
        oldest.transport.abort()
        return False

    def _answer(self, request: h11.Request) -> _Answer:
        path = request.target.split(b"?", 1)[0]
        framing = (b"content-length", b"transfer-encoding")
        if request.method in ALLOWED_METHODS and any(n in framing for n, _ in request.headers):
            # A body would have to be read (or the connection poisoned); GET
            # and HEAD don't carry one, and nothing else is served.
            return _Answer(HTTPStatus.BAD_REQUEST, b"bad request\n")
        if path not in PATHS:
            return _Answer(HTTPStatus.NOT_FOUND, b"not found\n")
        if request.method not in ALLOWED_METHODS:
            return _Answer(HTTPStatus.METHOD_NOT_ALLOWED, b"method not allowed\n", allow=True)
        if path == b"/healthz":
            reason = self._not_accepting()
            if reason is None:
                return _Answer(HTTPStatus.OK, b"ok\n")
            return _Answer(HTTPStatus.SERVICE_UNAVAILABLE, reason.encode() + b"\n")
        return _Answer(HTTPStatus.OK, self._metrics(), content_type=METRICS_CONTENT_TYPE)

    @staticmethod
    async def _respond(http: h11.Connection, writer: asyncio.StreamWriter, answer: _Answer) -> None:
        response = h11.Response(
            status_code=answer.status.value, reason=answer.status.phrase, headers=answer.headers
        )
        data = http.send(response)
        if answer.body:
            data += http.send(h11.Data(data=answer.body))
        data += http.send(h11.EndOfMessage())
        writer.write(data)
        await asyncio.wait_for(writer.drain(), WRITE_DEADLINE)


async def _read_request(http: h11.Connection, reader: asyncio.StreamReader) -> h11.Request | None:
    """The request's head, or None if the peer closed first.

    Raises:
        h11.RemoteProtocolError: a malformed or too large request head.
    """
    received = 0
    while True:
        event = http.next_event()
        if isinstance(event, h11.Request):
            return event
        data = await reader.read(MAX_REQUEST_HEAD)
        if not data:
            return None  # gone before a whole request: nobody to answer
        # h11 bounds only a head still incomplete; one that came whole in a
        # single read is bounded here.
        received += len(data)
        if received > MAX_REQUEST_HEAD:
            raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
        http.receive_data(data)
