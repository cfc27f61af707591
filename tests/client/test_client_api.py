"""``rexec_client.run`` against a real rexecd: what a caller sees."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import time
from pathlib import Path
from typing import Any, BinaryIO

import psutil
import pytest
from client_helpers import write_key

import rexec_client
from rexec_client import (
    AuthenticationError,
    CalledProcessError,
    CompletedProcess,
    RemoteCommandError,
    TimeoutExpired,
)


def run(server: Any, args: Any, **kwargs: Any) -> CompletedProcess:
    kwargs.setdefault("key", server.key)
    return rexec_client.run(args, host=server.host, port=server.port, **kwargs)


def test_exit_codes_pass_through(server: Any) -> None:
    assert run(server, ["true"]).returncode == 0
    failed = run(server, ["false"])
    assert (failed.returncode, failed.exit_code, failed.signal) == (1, 1, None)
    top = run(server, ["sh", "-c", "exit 255"])
    assert (top.returncode, top.connection_lost) == (255, False)


def test_check_raises_called_process_error_with_output(server: Any) -> None:
    with pytest.raises(CalledProcessError) as info:
        run(server, ["sh", "-c", "echo oops >&2; exit 3"], check=True)
    assert info.value.returncode == 3
    assert info.value.stderr == b"oops\n"
    assert "exit status 3" in str(info.value)


def test_killed_by_signal_reports_signal_and_128_plus_n(server: Any) -> None:
    result = run(server, ["sh", "-c", "kill -KILL $$"])
    assert (result.exit_code, result.signal, result.signal_name) == (None, 9, "SIGKILL")
    assert result.returncode == 128 + 9
    assert not result.timed_out


def test_timeout_is_enforced_by_the_server_and_kills_the_tree(server: Any) -> None:
    # The grandchild prints its pid, then the whole tree would sleep 300 s.
    script = 'sh -c "sleep 300 & echo \\$!; wait" & wait'
    started = time.monotonic()
    result = run(server, ["sh", "-c", script], timeout=1)
    assert time.monotonic() - started < 15
    assert result.timed_out and result.returncode == 124
    grandchild = int(result.stdout.split()[0])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if psutil.Process(grandchild).name() != "sleep":
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the grandchild sleep (pid {grandchild}) survived the timeout")


def test_timeout_with_check_raises_timeout_expired(server: Any) -> None:
    with pytest.raises(TimeoutExpired) as info:
        run(server, ["sleep", "30"], timeout=0.2, check=True)
    assert info.value.result.timed_out and info.value.returncode == 124


def test_stdout_and_stderr_stay_apart_and_in_order(server: Any) -> None:
    result = run(server, "for i in 1 2 3; do echo out$i; echo err$i >&2; done", shell=True)
    assert result.stdout == b"out1\nout2\nout3\n"
    assert result.stderr == b"err1\nerr2\nerr3\n"
    assert (result.stdout_bytes, result.stderr_bytes) == (15, 15)


def test_binary_and_invalid_utf8_bytes_arrive_intact(server: Any) -> None:
    data = bytes(range(256)) * 3 + b"\xff\xfe\xc3\x28\x00\r\n"
    assert run(server, ["cat"], input=data).stdout == data
    assert run(server, ["printf", "\\377\\000\\200"]).stdout == b"\xff\x00\x80"


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="needs sha256sum")
def test_16_mib_of_stdin_reaches_the_command_whole(server: Any) -> None:
    data = os.urandom(16 * 2**20)
    result = run(server, ["sha256sum"], input=data)
    assert result.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()
    assert result.stdin_bytes == len(data)


@pytest.mark.slow
def test_64_mib_through_cat_is_byte_identical(server: Any) -> None:
    data = os.urandom(64 * 2**20)
    result = run(server, ["cat"], input=data, timeout=120)
    assert result.returncode == 0
    assert len(result.stdout) == len(data)
    assert result.stdout == data


def test_input_the_command_does_not_read_is_dropped(server: Any) -> None:
    result = run(server, ["head", "-c", "3"], input=b"x" * 2**20)
    assert (result.returncode, result.stdout) == (0, b"xxx")


def test_cwd_and_env_are_applied(start_server: Any, tmp_path: Path) -> None:
    server = start_server("--env-allow", "GREETING")
    result = run(
        server, 'echo "$GREETING"; pwd', shell=True, cwd=str(tmp_path), env={"GREETING": "hi"}
    )
    assert result.stdout == f"hi\n{tmp_path}\n".encode()


def test_key_file_is_read(server: Any) -> None:
    result = rexec_client.run(
        ["true"], host=server.host, port=server.port, key_file=server.key_file
    )
    assert result.returncode == 0


def test_capture_output_false_writes_to_the_given_files(server: Any, tmp_path: Path) -> None:
    async def go(out: BinaryIO, err: BinaryIO) -> CompletedProcess:
        connection = await rexec_client.connect(server.host, server.port, server.key)
        async with connection:
            return await connection.run(
                "echo o; echo e >&2", shell=True, capture_output=False, stdout=out, stderr=err
            )

    with open(tmp_path / "out", "wb") as out, open(tmp_path / "err", "wb") as err:
        result = asyncio.run(go(out, err))
    assert (result.stdout, result.stderr) == (None, None)
    assert (tmp_path / "out").read_bytes() == b"o\n"
    assert (tmp_path / "err").read_bytes() == b"e\n"


def test_missing_program_is_a_clear_remote_command_error(server: Any) -> None:
    with pytest.raises(RemoteCommandError) as info:
        run(server, ["no-such-program-xyz"])
    assert info.value.code == "spawn.not_found"


def test_bad_cwd_is_a_clear_remote_command_error(server: Any, tmp_path: Path) -> None:
    with pytest.raises(RemoteCommandError) as info:
        run(server, ["true"], cwd=str(tmp_path / "missing"))
    assert info.value.code == "cwd.invalid"


def test_wrong_key_is_refused_clearly(server: Any, tmp_path: Path) -> None:
    with pytest.raises(AuthenticationError, match="refused the key") as info:
        run(server, ["true"], key=bytes(32))
    assert info.value.code == "auth.failed"


def test_missing_key_file_names_the_file(server: Any, tmp_path: Path) -> None:
    with pytest.raises(rexec_client.KeyFileError, match="does not exist"):
        rexec_client.run(["true"], host=server.host, port=server.port, key_file=tmp_path / "nokey")
    other = write_key(tmp_path / "other")
    with pytest.raises(AuthenticationError):
        rexec_client.run(["true"], host=server.host, port=server.port, key_file=other)
