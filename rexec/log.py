"""rexecd's own messages on stderr (not the audit trail): text or JSON lines.

``text`` (the default) is ``rexecd: MESSAGE``, for a terminal and for
journald, which stamps time and level itself. ``json`` is one object per line,
``{"time", "level", "message", ...}``, for log shippers that want fields; it
is built with ``json.dumps`` (ASCII only), so no message can break a line.
"""

from __future__ import annotations

import datetime
import json
import sys
from typing import Any

FORMATS = ("text", "json")

_format = "text"


def set_format(name: str) -> None:
    """Choose the format of every later message (``text`` or ``json``)."""
    global _format
    if name not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}")
    _format = name


def log(message: str, *, level: str = "info", **fields: Any) -> None:
    """Write one message to stderr in the chosen format; never raises."""
    if _format == "json":
        record = {
            "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
            "level": level,
            "message": message,
            **fields,
        }
        line = json.dumps(record, ensure_ascii=True, separators=(",", ":"), default=str)
    else:
        extra = "".join(f" {key}={value}" for key, value in fields.items())
        line = f"rexecd: {message}{extra}"
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass  # stderr closed: nowhere left to say it
