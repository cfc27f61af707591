"""``rexec_client.transfer``: put and get against a real rexecd."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from pathlib import Path
from typing import Any

import pytest

import rexec_client
from rexec_client.transfer import TransferError, get, put

MiB = 1024 * 1024


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _connect(server: Any) -> rexec_client.ClientConnection:
    return await rexec_client.connect(server.host, server.port, server.key)


def temp_files(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if ".rexec-" in p.name]


def test_round_trip_of_random_bytes(server: Any, tmp_path: Path) -> None:
    data = os.urandom(32 * MiB + 123)
    digest = hashlib.sha256(data).hexdigest()
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    source.chmod(0o640)
    remote = tmp_path / "remote dir" / "copy \u00e9.bin"
    remote.parent.mkdir()
    back = tmp_path / "back.bin"
    seen: list[tuple[int, int]] = []

    async def main() -> tuple[Any, Any]:
        async with await _connect(server) as conn:
            sent = await put(conn, source, str(remote), progress=lambda d, t: seen.append((d, t)))
            got = await get(conn, str(remote), back)
            # The connection still runs commands afterwards.
            assert (await conn.run(["true"])).returncode == 0
            return sent, got

    sent, got = run(main())
    assert (sent.size, sent.sha256, sent.mode) == (len(data), digest, 0o640)
    assert (got.size, got.sha256, got.mode) == (len(data), digest, 0o640)
    assert sent.seconds > 0 and sent.mb_per_s > 0 and got.mb_per_s > 0
    assert remote.read_bytes() == data and back.read_bytes() == data
    assert stat.S_IMODE(back.stat().st_mode) == 0o640
    assert seen[-1] == (len(data), len(data))
    assert temp_files(tmp_path) == []


def test_explicit_mode_and_empty_file(server: Any, tmp_path: Path) -> None:
    source = tmp_path / "empty"
    source.write_bytes(b"")

    async def main() -> None:
        async with await _connect(server) as conn:
            result = await put(conn, source, str(tmp_path / "remote"), mode=0o4755)
            assert result.size == 0
            got = await get(conn, str(tmp_path / "remote"), tmp_path / "back")
            assert got.mode == 0o755  # F1: never setuid locally

    run(main())
    assert stat.S_IMODE((tmp_path / "remote").stat().st_mode) == 0o4755
    assert stat.S_IMODE((tmp_path / "back").stat().st_mode) == 0o755


@pytest.mark.parametrize(
    ("operation", "code"),
    [
        ("get_missing", "file.not_found"),
        ("put_missing_dir", "file.not_found"),
        ("put_onto_dir", "file.is_directory"),
        ("get_dir", "file.is_directory"),
        ("put_missing_local", "local.not_found"),
        ("get_missing_local_dir", "local.not_found"),
        ("get_into_dir", "local.is_directory"),
    ],
)
def test_errors_carry_their_code(server: Any, tmp_path: Path, operation: str, code: str) -> None:
    source = tmp_path / "source"
    source.write_bytes(b"content")

    async def main() -> None:
        async with await _connect(server) as conn:
            with pytest.raises(TransferError) as caught:
                if operation == "get_missing":
                    await get(conn, str(tmp_path / "nope"), tmp_path / "x")
                elif operation == "put_missing_dir":
                    await put(conn, source, str(tmp_path / "nodir" / "x"))
                elif operation == "put_onto_dir":
                    await put(conn, source, str(tmp_path))
                elif operation == "get_dir":
                    await get(conn, str(tmp_path), tmp_path / "x")
                elif operation == "put_missing_local":
                    await put(conn, tmp_path / "nope", str(tmp_path / "x"))
                elif operation == "get_missing_local_dir":
                    await get(conn, str(source), tmp_path / "nodir" / "x")
                else:
                    await get(conn, str(source), tmp_path)
            assert caught.value.code == code
            assert caught.value.remote == code.startswith("file.")
            # The connection carries on.
            assert (await conn.run(["true"])).returncode == 0

    run(main())
    assert not (tmp_path / "x").exists()
    assert temp_files(tmp_path) == []


def test_cancelled_get_leaves_nothing(server: Any, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    with open(source, "wb") as file:
        file.truncate(64 * MiB)  # sparse: quick to make
    target = tmp_path / "target.bin"

    async def main() -> None:
        async with await _connect(server) as conn:
            started = asyncio.Event()

            def progress(done: int, total: int) -> None:
                started.set()

            task = asyncio.create_task(get(conn, str(source), target, progress=progress))
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert (await conn.run(["true"])).returncode == 0

    run(main())
    assert not target.exists()
    assert temp_files(tmp_path) == []
