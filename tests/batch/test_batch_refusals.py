"""``rexec batch`` when servers refuse jobs for the jobs' own sake, and the
habits of pdsh users: the real CLI against real ``rexecd`` servers. The
summary gives the server's reason with the program it could not run, and
once what to do instead (``rexec run``'s hints); ``--cwd DIR`` serves a
server that confines commands to its directories (outsider5 F1, F7, F8)."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import Pool, run_batch_cli


def test_cwd_serves_a_server_with_cwd_roots(start_pool, tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    pool = start_pool(1, "--cwd-roots", str(root))
    host = pool.servers[0].host
    refused = run_batch_cli(pool, "--onall", "-H", pool.spec, "--", "pwd")
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr.splitlines()[1:] == [
        f"  {host}: command.denied: the directory is outside the allowed roots (1 failed; jobs 1)",
        "  hint: commands may run only in the allowed directories: name one with --cwd DIR",
    ]
    done = run_batch_cli(pool, "--onall", "--cwd", str(root), "-H", pool.spec, "--", "pwd")
    assert (done.returncode, done.stdout) == (0, f"{host}: {root}\n"), done.stderr
    # A job's own directory wins over --cwd.
    jobs = [
        {"id": "own", "shell": "pwd", "cwd": str(root / "sub")},
        {"id": "default", "shell": "pwd"},
    ]
    both = run_batch_cli(
        pool,
        "--jsonl",
        "-k",
        "--cwd",
        str(root),
        "-H",
        pool.spec,
        input="".join(json.dumps(job) + "\n" for job in jobs),
    )
    assert (both.returncode, both.stdout) == (0, f"{root / 'sub'}\n{root}\n"), both.stderr


def test_a_program_not_found_is_named_with_run_s_hint_once(pool: Pool) -> None:
    """clush's habit of an option after the command: the summary names the
    program that was not found and says once what went wrong."""
    done = run_batch_cli(pool, "--onall", "-H", pool.spec, "--", "echo a", "-b")
    assert done.returncode == 1, done.stderr
    hosts = "127.0.0.[2-4]"
    assert done.stderr.splitlines()[1:] == [
        f"  {hosts}: spawn.not_found: 'echo a': no such program (ENOENT) (3 failed; jobs 1)",
        "  hint: 'echo a' was run as a program name, without a shell, because more words "
        "followed it ('-b'): a command line for the remote shell is one word after '--', "
        "and rexec batch's options go before '--'",
    ]


def test_pdsh_host_file_syntax_is_a_usage_error(pool: Pool, tmp_path: Path) -> None:
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("127.0.0.2\n")
    for extra in ((), ("--list-targets",)):
        done = run_batch_cli(pool, "--onall", *extra, "-w", f"^{hosts}", "--", "true")
        assert (done.returncode, done.stdout) == (255, ""), done.stderr
        assert done.stderr == (
            f"rexec: -w ^{hosts}: '^FILE' is pdsh's host file; here it is --hosts-file {hosts} "
            "(see 'rexec batch --help')\n"
        )
