"""What ``rexec put``/``get`` print stays readable whatever the names and
however the transfer ends: a control character in a name is escaped as
``ls -b`` does, and a progress line cut short by Ctrl-C is ended by a
newline. The real CLI against a real rexecd; the terminal is a real pty."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pexpect
from client_helpers import CLI_TIMEOUT, cli_argv


def test_a_newline_in_a_name_is_escaped_in_every_line(server: Any, tmp_path: Path) -> None:
    source = tmp_path / "two\nlines\x1b[31m"
    source.write_bytes(b"data")
    key = ["--key-file", str(server.key_file)]
    sent = subprocess.run(
        cli_argv("put", "-v", *key, server.address, str(source), str(tmp_path / "copy")),
        capture_output=True, timeout=CLI_TIMEOUT, check=False,
    )  # fmt: skip
    failed = subprocess.run(
        cli_argv("put", *key, server.address, str(source), str(tmp_path / "no-dir" / "x")),
        capture_output=True, timeout=CLI_TIMEOUT, check=False,
    )  # fmt: skip
    for result, status in ((sent, 0), (failed, 1)):
        text = result.stderr.decode()
        assert result.returncode == status, text
        [line] = text.splitlines()
        assert "two\\nlines\\x1b[31m" in line and "\x1b" not in line


def test_ctrl_c_ends_the_progress_line(server: Any, tmp_path: Path) -> None:
    argv = cli_argv("put", "--key-file", str(server.key_file), server.address, "-",
                    str(tmp_path / "stream"))  # fmt: skip
    # An endless stream from a pipe; stderr, where progress goes, is the pty;
    # the shell outlives the Ctrl-C to print the status.
    pipeline = f"trap : INT; yes | {shlex.join(argv)}; echo status=$?"
    child = pexpect.spawn("sh", ["-c", pipeline], timeout=CLI_TIMEOUT)
    try:
        child.expect(rb"MB/s")  # the progress line is drawn
        child.sendintr()
        child.expect(rb"status=(\d+)")
        before = child.before
    finally:
        child.close()
    assert child.match.group(1) == b"130"
    # After the last redraw of the progress line, a newline comes before
    # anything else is printed.
    tail = before.rsplit(b"\x1b[K", 1)[1]
    assert re.fullmatch(rb"(\^C)?\r?\n", tail), tail
