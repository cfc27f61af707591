"""A status line on a terminal: one line redrawn in place, such as the
progress of ``rexec batch`` or of ``rexec put``/``get``. The caller decides
when to redraw and whether the stream is a terminal at all."""

from __future__ import annotations

from typing import TextIO

#: Erase from the cursor to the end of the line.
_ERASE_TO_END = "\x1b[K"


def clock(seconds: float) -> str:
    """``M:SS``, or ``H:MM:SS`` from an hour on (an ETA, an elapsed time)."""
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class StatusLine:
    """One line on ``stream``, redrawn in place; cleared, or ended by a
    newline, before anything else is written to the stream."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._drawn = False

    def draw(self, text: str) -> None:
        """Show ``text`` over the line drawn before (written first, then the
        rest of the old line erased, so that it does not flicker)."""
        self._write("\r" + text + _ERASE_TO_END)
        self._drawn = True

    def clear(self) -> None:
        """Erase the line, if one is drawn; the cursor stays at its start."""
        if self._drawn:
            self._write("\r" + _ERASE_TO_END)
            self._drawn = False

    def end(self) -> None:
        """Leave the line as drawn and end it with a newline, if one is drawn
        (a transfer stopped short keeps its last figures)."""
        if self._drawn:
            self._write("\n")
            self._drawn = False

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()
