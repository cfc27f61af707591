"""``-b`` and ``-B`` as clush has them (outsider5 F14): ``-b`` gathers the
commands' stdout and leaves their stderr on stderr, a line at a time after
``host: ``, so a report on stdout holds no error text and ``2>/dev/null``
drops it; ``-B`` gathers stderr too."""

from __future__ import annotations

from .conftest import Pool, run_batch_cli

#: stderr differs from job to job (the shell's pid): it must not split the
#: stdout groups of -b.
COMMAND = "echo out; echo err $$ >&2"


def test_b_gathers_stdout_only_and_capital_b_both(pool: Pool) -> None:
    gathered = run_batch_cli(pool, "--onall", "-b", "-H", pool.spec, "--", "echo out; echo err >&2")
    assert gathered.returncode == 0, gathered.stderr
    assert gathered.stdout == "---------------- 127.0.0.[2-4] (3)\nout\n"
    assert sorted(gathered.stderr.splitlines()) == [
        "127.0.0.2: err",
        "127.0.0.3: err",
        "127.0.0.4: err",
    ]
    both = run_batch_cli(pool, "--onall", "-B", "-H", pool.spec, "--", "echo out; echo err >&2")
    assert (both.returncode, both.stderr) == (0, "")
    assert both.stdout == "---------------- 127.0.0.[2-4] (3)\nout\nerr\n"


def test_b_groups_by_stdout_whatever_stderr_says(pool: Pool) -> None:
    done = run_batch_cli(pool, "--onall", "-b", "-H", pool.spec, "--", COMMAND)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "---------------- 127.0.0.[2-4] (3)\nout\n"
    lines = sorted(done.stderr.splitlines())
    assert [line.split(" ")[:2] for line in lines] == [
        [f"127.0.0.{n}:", "err"] for n in (2, 3, 4)
    ], lines
    assert len({line.split(" ")[2] for line in lines}) == 3
