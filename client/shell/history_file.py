"""Where ``rexec shell`` keeps its history (apart from the prompt's own
modules, so that naming the file in ``--help`` imports no prompt_toolkit)."""

from __future__ import annotations

import os
from pathlib import Path


def history_path() -> Path:
    """Where the history is kept: ``$REXEC_HISTORY_FILE``, else
    ``$XDG_STATE_HOME/rexec/history``, else ``~/.local/state/rexec/history``."""
    if explicit := os.environ.get("REXEC_HISTORY_FILE"):
        return Path(explicit)
    state_home = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state_home) / "rexec" / "history"
