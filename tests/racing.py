"""A local process that swaps a directory for a symbolic link and back, as
fast as it can, while a test resolves paths through it (issue 11.2)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def swapping(directory: Path, elsewhere: Path) -> Iterator[None]:
    """Make ``directory`` and, while the block runs, swap it over and over
    with a link to ``elsewhere``. Each round ends as it began: afterwards
    ``directory`` is the real directory again."""
    directory.mkdir()
    link, parked = directory.with_name("evil"), directory.with_name(directory.name + ".real")
    link.symlink_to(elsewhere)
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            os.rename(directory, parked)
            os.rename(link, directory)
            os.rename(directory, link)
            os.rename(parked, directory)

    swapper = threading.Thread(target=swap)
    swapper.start()
    try:
        yield
    finally:
        stop.set()
        swapper.join()
