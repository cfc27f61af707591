"""The cold-start floor: a fresh interpreter that imports what a client
minimally needs (socket, json, one pydantic model), connects, sends one
``run true`` frame and reads the reply frames to the exit status.

    python [-S] bench/floor_cold.py HOST PORT [--asyncio] [--core] [--path SITE_PACKAGES]

``--asyncio`` also imports asyncio (the price of a client built on it).
``-S`` skips ``site`` (its ``.pth`` files, the venv's set-up); ``--path``
then names where pydantic is installed, as a launcher would hard-code it.
``--core`` validates with a ``pydantic_core.SchemaValidator`` instead of a
model (pydantic's engine without pydantic's Python layer: informative, below
what the team fixed). The
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

if "--asyncio" in sys.argv:
    import asyncio  # noqa: F401

if "--core" in sys.argv:  # pydantic's compiled validator alone, without pydantic
    from types import SimpleNamespace

    from pydantic_core import SchemaValidator  # noqa: E402
    from pydantic_core import core_schema as cs  # noqa: E402

    _fields = {
        "type": cs.typed_dict_field(cs.literal_schema(["stdout", "stderr", "exit"])),
        "data_size": cs.typed_dict_field(cs.int_schema(ge=0, le=1 << 20), required=False),
        "status": cs.typed_dict_field(cs.nullable_schema(cs.int_schema()), required=False),
    }
    _validator = SchemaValidator(cs.typed_dict_schema(_fields))

    def validate(raw: bytes):
        fields = {"data_size": 0, "status": None, **_validator.validate_json(raw)}
        return SimpleNamespace(**fields)

else:
    from pydantic import BaseModel, Field  # noqa: E402

    class Header(BaseModel):
        type: Literal["stdout", "stderr", "exit"]
        data_size: int = Field(0, ge=0, le=1 << 20)
        status: int | None = None

    validate = Header.model_validate_json


def main() -> int:
    sock = socket.create_connection((sys.argv[1], int(sys.argv[2])))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    raw = json.dumps({"type": "run", "argv": ["true"]}).encode()
    sock.sendall(struct.pack("<i", len(raw)) + raw)
    f = sock.makefile("rb")
    while True:
        (size,) = struct.unpack("<i", f.read(4))
        h = validate(f.read(size))
        if h.type == "exit":
            return h.status
        f.read(h.data_size)


if __name__ == "__main__":
    sys.exit(main())
