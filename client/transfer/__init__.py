"""File transfer over a rexec connection: ``put`` and ``get``, streamed and
checked end to end (protocol.md section 5.6). ``api`` is the public door."""

from .api import *  # noqa: F403
from .api import __all__  # noqa: F401
