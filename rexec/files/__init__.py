"""Files, shared by the server, the client and the conformance suite: paths
resolved beneath allowed roots at open time (``open_path``, ``open_parent``),
the one atomic file writer (``AtomicFile``), and the record of temporary
files in flight that lets a restart remove what a crash left (``TempRecords``).

It imports nothing of rexec's but the standard library.
"""

from ._records import TempRecords, UnsafeRecords
from ._resolve import OutsideRoots, Roots, absolute, open_parent, open_path
from ._writer import (
    IOV_MAX,
    AtomicFile,
    DigestWriter,
    Registry,
    partial_name,
    temp_name,
    write_all,
)

__all__ = [
    "IOV_MAX",
    "AtomicFile",
    "DigestWriter",
    "OutsideRoots",
    "Registry",
    "Roots",
    "TempRecords",
    "UnsafeRecords",
    "absolute",
    "open_parent",
    "open_path",
    "partial_name",
    "temp_name",
    "write_all",
]
