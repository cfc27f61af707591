"""``rexec keygen``: make a new shared key file, or store one given on stdin.

The key file is what ``rexecd`` and its clients prove to each other that
they share (rexec/keyfile.py has the format: 64 hex digits, mode 0600).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rexec.keyfile import KeyFileError, default_key_path, new_key, parse_key, write_key

from .base import add_command, fail

#: Status when no key file was written (it exists, the input is not a key,
#: or the file can't be written).
EXIT_NOT_WRITTEN = 1

DESCRIPTION = f"""\
Make the shared key that rexecd and its clients prove to each other that they
hold, in --key-file (default: {default_key_path()}; $REXEC_KEY_FILE
overrides), mode 0600 in a directory of mode 0700. A directory above it that
another user owns or may write (and is not sticky, as /tmp is) is refused, as
rexec and rexecd refuse a key there.

Without --import, a new random key is made (rexecd also makes one on its first
start when it finds none). With --import, the key is read from stdin: copy the
server's key file to a client machine with

  ssh SERVER cat .config/rexec/key | rexec keygen --import

or paste its 64 hex digits. An existing key file is never replaced unless
--force is given: servers and clients holding the old key then stop matching.
"""

EPILOG = """\
key file format: 32 random bytes written as 64 hexadecimal digits on one line
(a trailing newline is fine), nothing else; readable by its owner only.

exit status: 0 written, 1 not written (the file exists, stdin held no key, or
the file can't be written), 255 usage error.

examples:
  rexec keygen
  rexec keygen --key-file /etc/rexec/deploy.key
  ssh server cat .config/rexec/key | rexec keygen --import
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "keygen",
        "make or import the shared key file",
        DESCRIPTION,
        EPILOG,
    )
    parser.add_argument("--key-file", metavar="FILE", help="where to write the key")
    parser.add_argument(
        "--import",
        dest="import_key",
        action="store_true",
        help="store the key read from stdin (64 hex digits) instead of a new one",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing key file")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    path = Path(args.key_file) if args.key_file else default_key_path()
    if args.import_key:
        if sys.stdin.isatty():
            print("paste the key (64 hex digits) and press Enter:", file=sys.stderr, flush=True)
        try:
            key = parse_key(sys.stdin.buffer.readline(1024))
        except ValueError as exc:
            return fail(f"no key on stdin: {exc}", EXIT_NOT_WRITTEN)
    else:
        key = new_key()
    try:
        write_key(path, key, replace=args.force)
    except FileExistsError:
        return fail(
            f"{path} exists; keeping it (--force replaces it, and every server or client "
            "holding the old key must then get the new one)",
            EXIT_NOT_WRITTEN,
        )
    except KeyFileError as exc:
        return fail(str(exc), EXIT_NOT_WRITTEN)
    print(f"{'stored the key' if args.import_key else 'made a new key'} in {path}")
    return 0
