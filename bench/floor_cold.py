"""The cold-start floor: a fresh interpreter that imports what a client
minimally needs (socket, json, one pydantic model), connects, sends one
``run true`` frame and reads the reply frames to the exit status.

    python [-S] bench/floor_cold.py HOST PORT [--asyncio] [--path SITE_PACKAGES]

``--asyncio`` also imports asyncio (the price of a client built on it).
``-S`` skips ``site`` (its ``.pth`` files, the venv's set-up); ``--path``
then names where pydantic is installed, as a launcher would hard-code it. The
collector is paused first, as the ``rexec`` program does at start-up.
Deliberately self-contained: importing ``floor_frames`` would add its imports.
"""

import gc
import sys

gc.disable()
if "--path" in sys.argv:
    sys.path.append(sys.argv[sys.argv.index("--path") + 1])

import json  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
from typing import Literal  # noqa: E402

from pydantic import BaseModel, Field  # noqa: E402

if "--asyncio" in sys.argv:
    import asyncio  # noqa: F401


class Header(BaseModel):
    type: Literal["stdout", "stderr", "exit"]
    data_size: int = Field(0, ge=0, le=1 << 20)
    status: int | None = None


def main() -> int:
    sock = socket.create_connection((sys.argv[1], int(sys.argv[2])))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    raw = json.dumps({"type": "run", "argv": ["true"]}).encode()
    sock.sendall(struct.pack("<i", len(raw)) + raw)
    f = sock.makefile("rb")
    while True:
        (size,) = struct.unpack("<i", f.read(4))
        h = Header.model_validate_json(f.read(size))
        if h.type == "exit":
            return h.status
        f.read(h.data_size)


if __name__ == "__main__":
    sys.exit(main())
