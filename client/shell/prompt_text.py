"""What the prompt of ``rexec shell`` shows: the last line's status when it
failed, ``user@host:cwd`` and ``$`` (``#`` for root), as bash's usual PS1."""

from __future__ import annotations

from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.styles import Style

from ..cli.base import one_line
from .state import SessionState

#: The prompt's colours, where the terminal shows colour.
STYLE = Style.from_dict(
    {"status": "ansired bold", "user": "ansigreen bold", "cwd": "ansiblue bold"}
)


def prompt_text(state: SessionState) -> FormattedText:
    """The prompt of a first line in ``state``."""
    who = state.identity
    parts: list[tuple[str, str]] = []
    if state.last_label:
        parts.append(("class:status", f"[{state.last_label}] "))
    user = f"{who.user}@" if who.user else ""
    parts += [
        ("class:user", one_line(f"{user}{who.host}")),
        ("", ":"),
        ("class:cwd", one_line(state.display_cwd())),
        ("", "# " if who.user == "root" else "$ "),
    ]
    return FormattedText(parts)
