"""rexecd's own messages on stderr (not the audit trail): text or JSON lines.

``text`` (the default) is ``rexecd: MESSAGE``, for a terminal and for
journald, which stamps time and level itself. ``json`` is one object per line,
``{"time", "level", "message", ...}``, for log shippers that want fields; it
is built with ``json.dumps`` (ASCII only), so no message can break a line.

Writing a message must never stop the daemon: a write to a stderr nobody
reads (a full pipe, a stopped terminal) blocks. So while the daemon serves
(``start_background`` to ``stop_background``) messages go, in order, into a
bounded queue that a thread of their own writes out; when the queue is full a
message is dropped and counted, and once the queue has drained a line says how
many were. Before and after (start-up, exit), they are written at once.

The messages of libraries (asyncio's, through ``logging``) come here too
(``capture_library_logs``), and like the event loop's unhandled errors
(``loop_exception_handler``) each kind is said at most ``BURST`` times a
minute: whatever a client can make a library say, it can't flood the log with.
"""

from __future__ import annotations

import asyncio
import datetime
import errno
import json
import logging
import os
import queue
import sys
import threading
import time
import traceback
from typing import Any

FORMATS = ("text", "json")
#: Messages held while stderr is not read; beyond, they are dropped and counted.
MAX_QUEUED = 1000
#: Times one kind of library message is said per ``WINDOW`` seconds.
BURST = 5
WINDOW = 60.0
#: Kinds of library message tracked; beyond, the rest share one count.
_MAX_KINDS = 256

_format = "text"


def set_format(name: str) -> None:
    """Choose the format of every later message (``text`` or ``json``)."""
    global _format
    if name not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}")
    _format = name


def _line(message: str, level: str, fields: dict[str, Any]) -> str:
    if _format == "json":
        record = {
            "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
            "level": level,
            "message": message,
            **fields,
        }
        return json.dumps(record, ensure_ascii=True, separators=(",", ":"), default=str)
    extra = "".join(f" {key}={value}" for key, value in fields.items())
    return f"rexecd: {message}{extra}"


def _write(fd: int, line: str) -> None:
    """Write one line to ``fd`` whole (blocking); a closed stderr swallows it."""
    view = memoryview((line + "\n").encode(errors="replace"))
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError:
        pass  # stderr closed: nowhere left to say it


class _Background:
    """The queue and the thread that write messages out (see the module doc)."""

    def __init__(self, fd: int, max_queued: int) -> None:
        self._fd = fd
        self._lines: queue.Queue[str | None] = queue.Queue(max_queued)
        self._lock = threading.Lock()  # log() is called from several threads
        self._dropped = 0
        self._thread = threading.Thread(target=self._write_out, name="rexecd-log", daemon=True)
        self._thread.start()

    def put(self, line: str) -> None:
        try:
            self._lines.put_nowait(line)
        except queue.Full:
            with self._lock:
                self._dropped += 1

    def stop(self, timeout: float) -> None:
        """Write what is queued within ``timeout`` seconds; a thread still
        stuck then (stderr not read) is left to the process's exit."""
        deadline = time.monotonic() + timeout
        try:
            self._lines.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(max(0.0, deadline - time.monotonic()))

    def _write_out(self) -> None:
        while (line := self._lines.get()) is not None:
            _write(self._fd, line)
            if self._lines.empty():
                with self._lock:
                    dropped, self._dropped = self._dropped, 0
                if dropped:
                    message = f"{dropped} log message(s) dropped: stderr was not being read"
                    _write(self._fd, _line(message, "warning", {}))


_background: _Background | None = None


def start_background(max_queued: int = MAX_QUEUED, fd: int | None = None) -> None:
    """From now on write messages through the queue and its thread (to
    ``fd``, stderr by default)."""
    global _background
    if _background is None:
        _background = _Background(sys.stderr.fileno() if fd is None else fd, max_queued)


def stop_background(timeout: float = 1.0) -> None:
    """Write what is queued (for ``timeout`` seconds at most), then write
    later messages at once again."""
    global _background
    background, _background = _background, None
    if background is not None:
        background.stop(timeout)


def log(message: str, *, level: str = "info", **fields: Any) -> None:
    """Write one message to stderr in the chosen format; never raises, and
    never blocks once ``start_background`` has run."""
    line = _line(message, level, fields)
    background = _background
    if background is not None:
        background.put(line)
        return
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass  # stderr closed: nowhere left to say it


def log_exception(message: str) -> None:
    """Log ``message`` and the exception being handled, with its traceback:
    a bug, to be reported as it is."""
    log(f"{message}\n{traceback.format_exc().rstrip()}", level="error")


def log_bug_limited(kind: str, message: str) -> None:
    """As ``log_exception``, but at most ``BURST`` messages of ``kind`` per
    ``WINDOW`` seconds: for a bug that would repeat on every event."""
    _limited(kind, f"{message}\n{traceback.format_exc().rstrip()}", "error")


class _Limiter:
    """At most ``burst`` messages of a kind per ``WINDOW`` seconds; counts
    the ones held back, to be said with the next one let through."""

    def __init__(self) -> None:
        #: kind -> (window start, said in the window, held back since last said)
        self._kinds: dict[str, tuple[float, int, int]] = {}
        self._lock = threading.Lock()

    def allow(self, kind: str, burst: int) -> int | None:
        """None to hold this one back, else how many were held back before it."""
        now = time.monotonic()
        with self._lock:
            if kind not in self._kinds and len(self._kinds) >= _MAX_KINDS:
                for old in [k for k, (start, _, _) in self._kinds.items() if now - start >= WINDOW]:
                    del self._kinds[old]  # (what they held back goes unsaid)
                if len(self._kinds) >= _MAX_KINDS:
                    kind = "(other)"
            start, said, held = self._kinds.get(kind, (now, 0, 0))
            if now - start >= WINDOW:
                start, said = now, 0
            if said >= burst:
                self._kinds[kind] = (start, said, held + 1)
                return None
            self._kinds[kind] = (start, said + 1, 0)
            return held


_limiter = _Limiter()


def _limited(kind: str, message: str, level: str, burst: int = BURST) -> None:
    held = _limiter.allow(kind, burst)
    if held is None:
        return
    if held:
        message += f" ({held} more like it not shown)"
    log(message, level=level)


class _LibraryHandler(logging.Handler):
    """Library log records, rate-limited by kind (their format string)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
            kind = record.msg if isinstance(record.msg, str) and record.args else message
            _limited(f"{record.name}:{kind[:80]}", message, record.levelname.lower())
        except Exception:  # noqa: BLE001  a log record must never raise into its caller
            self.handleError(record)


def capture_library_logs() -> None:
    """Send every library's log records (warnings and worse) here."""
    root = logging.getLogger()
    if not any(isinstance(handler, _LibraryHandler) for handler in root.handlers):
        root.addHandler(_LibraryHandler(logging.WARNING))


#: What asyncio says when accept() fails for want of resources (it retries
#: every second, and says so for every connection waiting in the backlog).
_ACCEPT_FAILED = "socket.accept() out of system resource"


def loop_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The event loop's handler of errors nothing else caught: out of
    descriptors while accepting is one line, said once a minute at most;
    anything else is asyncio's report, rate-limited like library logs."""
    exc = context.get("exception")
    if context.get("message") == _ACCEPT_FAILED and isinstance(exc, OSError):
        name = errno.errorcode.get(exc.errno or 0, "EUNKNOWN")
        _limited(
            f"accept:{name}",
            f"cannot accept connections: {exc.strerror} ({name}); "
            "they wait in the listen queue, and accepting is retried every second",
            "error",
            burst=1,
        )
        return
    loop.default_exception_handler(context)
