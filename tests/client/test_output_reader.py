"""The client's per-stream buffer: every byte comes out once, in order,
whatever mix of read sizes and readline the user makes, across body borders;
a large body is handed over without a copy."""

from __future__ import annotations

import asyncio
import random

from rexec_client.streams import OutputReader


def _reader(line_limit: int = 1 << 20) -> tuple[OutputReader, list[int]]:
    consumed: list[int] = []
    return OutputReader(lambda: consumed.append(1), line_limit), consumed


def test_mixed_reads_and_lines_return_every_byte_in_order() -> None:
    rng = random.Random(15)
    payload = bytes(rng.choice(b"abc\n") for _ in range(200_000))

    async def scenario() -> bytes:
        reader, consumed = _reader(line_limit=4096)
        at = 0
        while at < len(payload):
            step = rng.choice([1, 7, 100, 5000, 70_000])
            reader.feed_data(payload[at : at + step])
            at += step
        reader.feed_eof()
        out = []
        while not reader.at_eof():
            if rng.random() < 0.5:
                out.append(await reader.readline())
            else:
                out.append(await reader.read(rng.choice([1, 3, 999, 1 << 20])))
        assert consumed, "the connection is told when bytes are taken"
        assert reader.buffered == 0
        return b"".join(out)

    assert asyncio.run(scenario()) == payload


def test_readline_spans_bodies_and_stops_at_the_line_limit() -> None:
    async def scenario() -> list[bytes]:
        reader, _ = _reader(line_limit=8)
        for piece in (b"he", b"llo\nwo", b"rld\n", b"01234", b"56789"):
            reader.feed_data(piece)
        lines = [await reader.readline(), await reader.readline()]
        # No newline, but the limit is reached: the partial line comes back
        # rather than waiting for bytes the server won't send until it is read.
        lines.append(await asyncio.wait_for(reader.readline(), 10))
        reader.feed_data(b"!\n")
        reader.feed_eof()
        return lines + [line async for line in reader]

    assert asyncio.run(scenario()) == [b"hello\n", b"world\n", b"0123456789", b"!\n"]


def test_a_large_body_is_handed_over_without_a_copy() -> None:
    body = bytes(1 << 20)

    async def scenario() -> bytes:
        reader, _ = _reader()
        reader.feed_data(body)
        reader.feed_data(b"tail")
        return await reader.read(4 << 20)

    assert asyncio.run(scenario()) is body


def test_write_through_hands_over_each_chunk_buffered_ones_first() -> None:
    async def scenario() -> tuple[list[bytes], bytes, int]:
        reader, _ = _reader()
        reader.feed_data(b"before ")
        written: list[bytes] = []
        reader.write_through(written.append)
        reader.feed_data(b"one ")
        reader.feed_data(b"two")
        reader.feed_eof()
        return written, await reader.read(100), reader.received

    written, rest, received = asyncio.run(scenario())
    assert written == [b"before ", b"one ", b"two"]
    assert rest == b"", "nothing is left for read(): it sees the end"
    assert received == len(b"before one two")


def test_a_failed_write_through_is_raised_by_read_and_the_rest_is_read() -> None:
    async def scenario() -> tuple[list[bytes], bytes]:
        reader, _ = _reader()
        written: list[bytes] = []

        def write(chunk: bytes) -> None:
            if written:
                raise BrokenPipeError("the terminal went away")
            written.append(chunk)

        reader.write_through(write)
        reader.feed_data(b"shown ")
        reader.feed_data(b"lost ")  # the write fails: writing through stops
        reader.feed_data(b"after")
        reader.feed_eof()
        try:
            await reader.read(100)
        except BrokenPipeError:
            pass
        else:
            raise AssertionError("read() did not raise the write's error")
        return written, await reader.read(-1)

    written, rest = asyncio.run(scenario())
    assert written == [b"shown "]
    assert rest == b"after", "chunks after the failure are buffered for read()"
