"""What kind of refusal a server's ``command.denied`` is, where a user can
do something about it, and the hint for a directory outside the roots:
shared by ``rexec run``, ``rexec shell`` and ``rexec batch``. Told by rexecd's
words: the protocol has no code of its own for these kinds."""

from __future__ import annotations

#: The hint for a refusal of a directory outside the server's or the key's
#: roots (cwd_roots).
CWD_HINT = "commands may run only in the allowed directories: name one with --cwd DIR"


def outside_roots(code: str | None, message: str) -> bool:
    """Whether the refusal is of a directory outside the allowed roots."""
    return code == "command.denied" and "outside the allowed roots" in message


def no_shell_strings(code: str | None, message: str) -> bool:
    """Whether the refusal is of a shell string by a key that runs programs only."""
    return code == "command.denied" and "shell strings" in message
