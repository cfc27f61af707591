"""The ``rexec-conformance --client`` adapter around our own client library,
``rexec_client``, optionally with one rule broken: the client-mode mutation
self-test, as ``mutant_rexecd.py`` is for servers.

Each mutation patches one method of the real client, the smallest change
that breaks one rule the way a slip in a client would; the tests assert that
``--client`` fails the scenarios named for it and passes the plain client.

Run: ``python client_adapter.py [--mutation M] HOST:PORT NAME [NAME ...]``
(the key file from ``REXEC_KEY_FILE``); prints one JSON line per NAME, as
rexec/conformance/client_check.py asks.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rexec.keyfile import load_key
from rexec.protocol import Connection, Error, FrameDecoder, Ping, Role, Stderr, Stdout
from rexec_client import RemoteCommandError, RexecConnectionError, connect
from rexec_client.connection import ClientConnection

#: Seconds to connect and authenticate: a client that can't read a split
#: handshake fails after this.
CONNECT_TIMEOUT = 10.0


def _fragile_reader() -> None:
    receive = Connection.receive_data

    def each_read_a_fresh_frame(self: Connection, data: bytes) -> None:
        decoder = self._decoder
        if self.role is Role.CLIENT and data and decoder.mid_frame:
            fresh = FrameDecoder(max_header=decoder.max_header, max_body=decoder.max_body)
            fresh.keep_raw = decoder.keep_raw
            self._decoder = fresh  # the partial frame of the last read is lost
        receive(self, data)

    Connection.receive_data = each_read_a_fresh_frame  # type: ignore[method-assign]


def _patch_dispatch(change: Callable[[ClientConnection, Any], Any]) -> None:
    """Have the client dispatch ``change(connection, message)`` instead of
    each message (None: drop it)."""
    dispatch = ClientConnection._dispatch

    async def changed(self: ClientConnection, message: object) -> None:
        message = change(self, message)
        if message is not None:
            await dispatch(self, message)

    ClientConnection._dispatch = changed  # type: ignore[method-assign]


def _no_pong() -> None:
    _patch_dispatch(lambda _, message: None if isinstance(message, Ping) else message)


def _output_to_newest() -> None:
    def newest(self: ClientConnection, message: Any) -> Any:
        if isinstance(message, (Stdout, Stderr)) and self._processes:
            return message.model_copy(update={"id": max(self._processes)})
        return message

    _patch_dispatch(newest)


def _unknown_code_fatal() -> None:
    def fatal(_: ClientConnection, message: Any) -> Any:
        if isinstance(message, Error) and not message.fatal and message.id is None:
            return message.model_copy(update={"fatal": True})
        return message

    _patch_dispatch(fatal)


def _small_body_limit() -> None:
    init = FrameDecoder.__init__

    def small(self: FrameDecoder, *, max_header: int, max_body: int) -> None:
        init(self, max_header=max_header, max_body=min(max_body, 64 * 1024))

    FrameDecoder.__init__ = small  # type: ignore[method-assign]


#: mutation -> (what it breaks, how).
MUTATIONS: dict[str, tuple[str, Callable[[], None]]] = {
    "fragile_reader": ("each read() is taken to start a new frame", _fragile_reader),
    "no_pong": ("never answers ping", _no_pong),
    "output_to_newest": ("files output under the newest command, not by id", _output_to_newest),
    "unknown_code_fatal": ("takes an unknown error code as fatal", _unknown_code_fatal),
    "small_body_limit": ("refuses bodies over 64 KiB", _small_body_limit),
}


def _shown(name: str, result: object) -> dict[str, Any]:
    if isinstance(result, RemoteCommandError):
        return {"name": name, "error": result.code}
    if isinstance(result, BaseException):
        return {"name": name, "connection_error": str(result)}
    out, err, status = result  # type: ignore[misc]
    if status.connection_lost:
        return {"name": name, "connection_error": status.connection_error}
    return {
        "name": name,
        "stdout": base64.b64encode(out).decode(),
        "stderr": base64.b64encode(err).decode(),
        "exit_code": status.exit_code,
        "signal": status.signal,
    }


async def run(address: str, names: list[str]) -> int:
    key = load_key(Path(os.environ["REXEC_KEY_FILE"]))
    try:
        connection = await connect(address, key=key, connect_timeout=CONNECT_TIMEOUT)
    except RexecConnectionError as exc:
        print(json.dumps({"connection_error": str(exc)}), flush=True)
        return 1

    async def one(name: str) -> tuple[bytes, bytes, Any]:
        process = await connection.start([name])
        out, err = await process.communicate()
        return out or b"", err or b"", await process.wait()

    results = await asyncio.gather(*(one(name) for name in names), return_exceptions=True)
    await connection.close()
    for name, result in zip(names, results, strict=True):
        print(json.dumps(_shown(name, result)), flush=True)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="client_adapter.py")
    parser.add_argument("--mutation", choices=sorted(MUTATIONS))
    parser.add_argument("address")
    parser.add_argument("names", nargs="+")
    args = parser.parse_args(argv)
    if args.mutation:
        MUTATIONS[args.mutation][1]()
    return asyncio.run(run(args.address, args.names))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
