#!/usr/bin/env python3
"""Experiment: how much of the 1 GiB figure is the client's frame decoding?

    python bench/exp_decoder.py [--gib 1] [--reps 3]

Runs the benchmark client's 1 GiB transfer against one rexecd, alternating the
protocol's ``FrameDecoder`` as it is and a variant (defined here, monkeypatched
into ``rexec.protocol._framing`` for the client process only) that does not
funnel bodies through its bytearray: body bytes are kept as the received
chunks (memoryview slices) and joined once per frame, so each body byte is
copied once instead of three to four times, and the decoder's bytearray stays
header-sized (no realloc churn of 256 KiB+ buffers, which on this machine turns
into page faults). Nothing outside bench/ is changed.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from profile_server import cpu_seconds, start_server  # noqa: E402
from rexec_fast_client import FastClient  # noqa: E402
from run import ForeignCpu, warm_memory  # noqa: E402

import rexec.protocol._connection as connection_module  # noqa: E402
from rexec.protocol._errors import ErrorCode, RemoteProtocolError  # noqa: E402
from rexec.protocol._framing import HEADER_LENGTH, FrameDecoder, decode_header  # noqa: E402


class ChunkedBodyDecoder(FrameDecoder):
    """Same messages and errors as FrameDecoder; bodies bypass the buffer."""

    def __init__(self, *, max_header: int, max_body: int) -> None:
        super().__init__(max_header=max_header, max_body=max_body)
        self._parts: list = []
        self._have = 0

    def feed(self, data: bytes) -> None:
        if self._pending is not None and not self._buffer:
            self._take_body(data)
        else:
            self._buffer += data

    def _take_body(self, data) -> None:
        need = self._pending.data_size - self._have
        if len(data) <= need:
            self._parts.append(data)
            self._have += len(data)
        else:
            view = memoryview(data)
            self._parts.append(view[:need])
            self._have += need
            self._buffer += view[need:]

    def next_message(self):
        buffer = self._buffer
        if self._pending is None:
            if len(buffer) < 4:
                return None
            (length,) = HEADER_LENGTH.unpack_from(buffer)
            if length <= 0:
                raise RemoteProtocolError(ErrorCode.FRAME_BAD_LENGTH, "header length must be positive")
            if length > self.max_header:
                raise RemoteProtocolError(
                    ErrorCode.FRAME_TOO_LARGE,
                    f"header length exceeds the limit of {self.max_header} bytes")
            if len(buffer) < 4 + length:
                return None
            message = decode_header(bytes(buffer[4 : 4 + length]))
            if message.data_size > self.max_body:
                raise RemoteProtocolError(
                    ErrorCode.FRAME_BODY_TOO_LARGE,
                    f"data_size exceeds the limit of {self.max_body} bytes")
            del buffer[: 4 + length]
            if message.data_size == 0:
                return message
            self._pending = message
            if buffer:
                rest = bytes(buffer)
                buffer.clear()
                self._take_body(rest)
        pending = self._pending
        if self._have < pending.data_size:
            return None
        parts = self._parts
        body = parts[0] if len(parts) == 1 and isinstance(parts[0], bytes) else b"".join(parts)
        self._parts = []
        self._have = 0
        self._pending = None
        pending._attach_body(body)
        return pending


def minflt_self() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


async def one(host, port, key, nbytes, variant) -> str:
    connection_module.FrameDecoder = ChunkedBodyDecoder if variant == "chunked" else FrameDecoder
    client = await FastClient.connect(host, port, key)
    connection_module.FrameDecoder = FrameDecoder
    c_cpu, c_flt = time.process_time(), minflt_self()
    t = time.perf_counter()
    with ForeignCpu() as foreign:
        _, out = await client.run(["head", "-c", str(nbytes), "/dev/zero"], keep_output=False)
    dt = time.perf_counter() - t
    client.close()
    assert out.stdout_bytes == nbytes
    gib = nbytes / 2**30
    return (f"{variant:8} {nbytes / dt / 1e6:6.0f} MB/s | client {(time.process_time() - c_cpu) / gib:.2f} "
            f"CPU-s/GiB, {(minflt_self() - c_flt) / gib:,.0f} faults/GiB | other jobs {foreign.cpus:.2f} CPU")


async def check_equivalence() -> None:
    """Both decoders give the same messages for the same stream at random cuts."""
    import random

    from rexec.protocol import Stdout, encode_frame

    stream = b"".join(encode_frame(Stdout.with_data(i, bytes([i % 256]) * (i * 997 % 300_000 + 1)))
                      for i in range(40))
    rng = random.Random(1)
    for _ in range(20):
        a = FrameDecoder(max_header=65536, max_body=1 << 20)
        b = ChunkedBodyDecoder(max_header=65536, max_body=1 << 20)
        got_a, got_b, pos = [], [], 0
        while pos < len(stream):
            n = rng.randint(1, 400_000)
            chunk = stream[pos : pos + n]
            pos += n
            for dec, got in ((a, got_a), (b, got_b)):
                dec.feed(chunk)
                while (m := dec.next_message()) is not None:
                    got.append((m.id, bytes(m.data)))
        assert got_a == got_b and len(got_a) == 40, "decoders disagree"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gib", type=float, default=1.0)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    asyncio.run(check_equivalence())
    print("decoders agree on 40 frames at random cuts")
    tmp = Path(tempfile.mkdtemp(prefix="rexec-exp-"))
    proc, host, port, key = start_server(tmp, "none", tmp / "unused")
    try:
        warm_memory(2.0)
        for _ in range(args.reps):
            for variant in ("as-is", "chunked"):
                print(asyncio.run(one(host, port, key, int(args.gib * 2**30), variant)), flush=True)
        print(f"server CPU over the whole experiment: {cpu_seconds(proc.pid):.2f} s")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
