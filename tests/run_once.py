"""Work that a whole test run shares: done once, whichever pytest-xdist worker
asks first, and read by every other worker (imported by test modules;
``tests/`` is on ``sys.path`` as pytest's rootdir).

A session-scoped fixture is set up once per xdist *worker*, and grouping the
tests that use it on one worker (``xdist_group``) is not reliable (with
pytest 9.2 and pytest-xdist 3.8 ``--dist loadgroup`` silently stops grouping:
pytest-xdist issue 1386). So the result goes to a JSON file beside the
workers' temporary directories, under a file lock: the pattern pytest-xdist
documents for "making session-scoped fixtures execute only once".
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def once_per_run(
    tmp_path_factory: pytest.TempPathFactory, name: str, compute: Callable[[Path], Any]
) -> Any:
    """``compute(directory)``'s JSON-able result, computed once per test run.

    The first worker to call this with ``name`` runs ``compute`` in a fresh
    directory of its own while it holds the lock; the others wait for the lock
    and read the stored result. If ``compute`` raises, nothing is stored and
    the next worker to ask tries again (so each one reports the failure)."""
    base = tmp_path_factory.getbasetemp()
    # Under xdist each worker's basetemp is a folder of the run's basetemp;
    # without xdist the parent would be shared by every run, so stay put.
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    stored = shared / f"{name}.json"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stored.exists():
            return json.loads(stored.read_text())
        result = compute(tmp_path_factory.mktemp(name))
        partial = stored.with_suffix(".partial")
        partial.write_text(json.dumps(result))
        partial.replace(stored)
        return result
