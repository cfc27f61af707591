"""What the remote shell is told of the local terminal, as bash over
``ssh -t`` has it: ``TERM`` (ssh passes it), and ``COLUMNS``/``LINES`` at the
window's size (bash's ``checkwinsize`` sets them again after each command).

Only on a terminal: lines read from a pipe get none of them, as ``ssh host
bash < script`` does not. The remote stdout is a pipe, not a terminal, so
what asks the terminal itself (``tput cols`` without these variables, ``ls``
choosing columns) still sees none.
"""

from __future__ import annotations

from ..term.terminal import terminal_fd, terminal_type, window_size


def terminal_env() -> dict[str, str]:
    """``TERM``, ``COLUMNS`` and ``LINES`` of the local terminal; none without one."""
    if terminal_fd() is None:
        return {}
    rows, cols = window_size()
    return {"TERM": terminal_type(), "COLUMNS": str(cols), "LINES": str(rows)}


class WindowSize:
    """Keeps the remote ``COLUMNS``/``LINES`` at the local window's size.

    Args:
        sent: the size the remote shell has now as (rows, cols), or None
            when it is not known (a shell restored from a snapshot).
    """

    def __init__(self, sent: tuple[int, int] | None) -> None:
        self._sent = sent

    def update(self) -> str:
        """Shell text to run before a line: an ``export`` when the window was
        resized since the last one, else nothing."""
        if terminal_fd() is None:
            return ""
        size = window_size()
        if size == self._sent:
            return ""
        self._sent = size
        rows, cols = size
        return f"export COLUMNS={cols} LINES={rows}; "
