"""``Refusal``: a request the server turns down with a command-scoped error.

Every refusal carries the ``ErrorCode`` that goes on the wire and a message
that says why without quoting what the client sent ([error.message.no_echo]):
a key's rules (policy.py's ``Denied``), a command that can't be started
(process_setup.py's ``SpawnError``).
"""

from __future__ import annotations

from rexec.protocol import ErrorCode


class Refusal(Exception):
    """A refused request: ``code`` for the wire, ``message`` for the client."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
