"""What GNU parallel, pdsh and clush users type on the first day: command
templates with ``{}`` and ``:::``, ``host: `` prefixes with ``--onall``,
``-w``, ``-f`` and ``@group`` names; and a commands file that isn't there."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from rexec_client.cli import build_parser, split_remote_command

from .conftest import Pool, read_joblog, run_batch_cli

README = Path(__file__).resolve().parents[2] / "README.md"


# --- templates, as GNU parallel -----------------------------------------------------


def test_arguments_from_stdin_fill_the_template(pool: Pool, tmp_path: Path) -> None:
    log = tmp_path / "log.tsv"
    done = run_batch_cli(
        pool, "-w", pool.spec, "--joblog", str(log), "--", "echo", "{}", input="1\n2\n3\n"
    )
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == ["1", "2", "3"]
    assert sorted(row["Command"] for row in read_joblog(log)) == ["echo 1", "echo 2", "echo 3"]


def test_triple_colon_sources_quote_their_arguments(pool: Pool) -> None:
    done = run_batch_cli(
        pool,
        "-w",
        pool.spec,
        "-k",
        "--",
        "printf",
        "'%s|%s\\n'",
        "{}",
        "{#}",
        ":::",
        "a b",
        "$HOME",
        "it's",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "a b|1\n$HOME|2\nit's|3\n"
    product = run_batch_cli(
        pool,
        "-w",
        pool.spec,
        "-k",
        "--",
        "echo",
        "{2}-{1/.}",
        ":::",
        "/x/a.tar",
        "b.c",
        ":::",
        "1",
        "2",
    )
    assert product.stdout == "1-a\n2-a\n1-b\n2-b\n"
    appended = run_batch_cli(pool, "-w", pool.spec, "-k", "--", "echo", "got", ":::", "x", "y z")
    assert appended.stdout == "got x\ngot y z\n"


def test_q_quotes_every_word_of_the_template_as_gnu_parallel(pool: Pool, tmp_path: Path) -> None:
    """``parallel -q``: each word reaches the program as one word, shell
    characters and all (without -q the shell would split and expand them)."""
    done = run_batch_cli(
        pool,
        "-w",
        pool.spec,
        "-k",
        "-q",
        "--",
        "printf",
        "%s|%s\\n",
        "<{}>",
        "$HOME;x",
        ":::",
        "a b",
        "it's",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "<a b>|$HOME;x\n<it's>|$HOME;x\n"
    quiet = run_batch_cli(pool, "-w", pool.spec, "--quiet", "--", "false", ":::", "1")
    assert quiet.returncode == 1 and quiet.stderr == ""
    commands = tmp_path / "commands"
    commands.write_text("true\n")
    misplaced = run_batch_cli(pool, "-w", pool.spec, "-q", str(commands))
    assert misplaced.returncode == 255 and misplaced.stdout == ""
    assert "-q quotes the words of a command template" in misplaced.stderr


def test_a_template_runs_on_every_server_with_onall(pool: Pool) -> None:
    done = run_batch_cli(pool, "-w", pool.spec, "--onall", "--", "echo", "{}", input="a\nb\n")
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == sorted(
        f"{server.host}: {arg}" for server in pool.servers for arg in "ab"
    )


def test_onall_without_a_replacement_refuses_piped_input(pool: Pool, tmp_path: Path) -> None:
    """Outsider5 F13: ``printf 'a\\nb\\n' | rexec batch --onall -- echo`` ran
    ``echo`` once everywhere and dropped the input without a word (without
    --onall the same line means ``echo a; echo b``). Now it is refused in one
    line, before anything runs; an empty stdin or ``{}`` runs as before."""
    command = ("--onall", "-w", pool.spec, "--", "sh", "-c", "echo ran")
    refused = run_batch_cli(pool, *command, input="a\nb\n")
    assert (refused.returncode, refused.stdout) == (255, ""), refused
    lines = refused.stderr.splitlines()
    assert len(lines) == 1 and "stdin holds some: add {}" in lines[0], refused.stderr
    assert "</dev/null" in lines[0]
    done = run_batch_cli(pool, *command, input="")
    assert done.returncode == 0 and done.stdout.count("ran") == len(pool.servers), done


def test_dry_run_shows_the_composed_commands(pool: Pool, tmp_path: Path) -> None:
    args = tmp_path / "args"
    args.write_text("f 1.log\nf2.log\n")
    done = run_batch_cli(
        None, "-w", "h1", "--dry-run", "--", "gzip -9 {} > {.}.gz", "::::", str(args)
    )
    assert done.stdout == "*\tgzip -9 'f 1.log' > 'f 1'.gz\n*\tgzip -9 f2.log > f2.gz\n"
    bad = run_batch_cli(None, "-w", "h1", "--dry-run", "--", "echo", "{3}", ":::", "a")
    assert bad.returncode == 255 and "{3} names input source 3" in bad.stderr


# --- --onall output, as pdsh and clush -----------------------------------------------------


def test_onall_lines_start_with_the_host(pool: Pool) -> None:
    command = ("--", "sh", "-c", "echo out; echo err >&2")
    done = run_batch_cli(pool, "-w", pool.spec, "--onall", *command)
    assert done.returncode == 0, done.stderr
    hosts = [server.host for server in pool.servers]
    assert sorted(done.stdout.splitlines()) == sorted(f"{h}: out" for h in hosts)
    assert sorted(done.stderr.splitlines()) == sorted(f"{h}: err" for h in hosts)
    live = run_batch_cli(pool, "-w", pool.spec, "--onall", "--line", *command)
    assert sorted(live.stdout.splitlines()) == sorted(f"{h}: out" for h in hosts)
    plain = run_batch_cli(pool, "-w", pool.spec, "--onall", "--no-host-prefix", *command)
    assert plain.stdout == "out\n" * 3


def test_one_command_line_after_dashes_runs_in_the_shell_as_pdsh(pool: Pool) -> None:
    """Outsider finding F1: ``--onall -- 'exit 3'`` looked for a program named
    "exit 3"; pdsh, clush and ``rexec run HOST 'exit 3'`` run it in the shell.
    Several words stay an argv, run as they are."""
    done = run_batch_cli(pool, "-w", pool.spec, "--onall", "--no-host-prefix", "--", "exit 3")
    assert done.returncode == 1 and "spawn.not_found" not in done.stderr, done.stderr
    assert ": exit 3 (3 failed; jobs 1)" in done.stderr
    piped = run_batch_cli(pool, "-w", pool.spec, "--onall", "-b", "--", "echo a | tr a A")
    assert piped.returncode == 0 and "\nA\n" in piped.stdout, piped.stdout
    argv = run_batch_cli(pool, "-w", pool.spec, "--onall", "--no-host-prefix", "--", "echo", "a;b")
    assert argv.stdout == "a;b\n" * len(pool.servers)


def test_the_port_shows_when_targets_differ_in_port(pool: Pool) -> None:
    other = f"127.0.0.2:{pool.port + 1 if pool.port < 65535 else pool.port - 1}"
    done = run_batch_cli(pool, "-w", f"{pool.label(0)},{other}", "--onall", "--", "echo", "hi")
    assert done.stdout == f"{pool.label(0)}: hi\n"
    assert f"  {other}: connection refused" in done.stderr


# --- targets: -w, -f, @groups -------------------------------------------------------------


def test_groups_file_names_node_sets(tmp_path: Path) -> None:
    groups = tmp_path / "groups"
    groups.write_text("# racks\nweb: web[01-03]:7000, web09:7000\ndb: db[1-2]\nall: @web @db\n")
    listed = run_batch_cli(
        None,
        "--groups-file",
        str(groups),
        "-w",
        "@all",
        "-x",
        "@db",
        "-x",
        "web02",
        "--list-targets",
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ["web01:7000", "web03:7000", "web09:7000"]
    by_letter = run_batch_cli(None, "--groups-file", str(groups), "-g", "db", "--list-targets")
    assert by_letter.stdout.split() == ["db1:7420", "db2:7420"]
    unknown = run_batch_cli(None, "--groups-file", str(groups), "-w", "@nope", "--list-targets")
    assert unknown.returncode == 255
    assert f"unknown group @nope (not in {groups})" in unknown.stderr
    (tmp_path / "loop").write_text("a: @b\nb: @a\n")
    looped = run_batch_cli(
        None, "--groups-file", str(tmp_path / "loop"), "-w", "@a", "--list-targets"
    )
    assert looped.returncode == 255 and "cycle" in looped.stderr


def test_f_is_the_fanout_and_hosts_files_keep_their_long_option(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("h1\nh2\n")
    wrong = run_batch_cli(None, "-f", str(hosts), "--list-targets")
    assert wrong.returncode == 255 and wrong.stderr.splitlines() == [
        (
            f"rexec: argument -f/--fanout: expected a whole number >= 1, got {str(hosts)!r} "
            "(-f is the fanout, as in pdsh and clush; a hosts file is --hosts-file FILE) "
            "(see 'rexec batch --help')"
        )
    ]
    zero = run_batch_cli(None, "-f", "0", "--list-targets", "-w", "h1")
    assert zero.returncode == 255 and "expected a whole number >= 1, got '0' (see" in zero.stderr
    right = run_batch_cli(None, "--hosts-file", str(hosts), "-f", "2", "--list-targets")
    assert right.stdout.split() == ["h1:7420", "h2:7420"]


def test_a_command_given_where_the_file_goes_gets_a_hint(pool: Pool) -> None:
    """Outsider finding F2: the clush habit ``-w H 'cmd'`` names a commands
    file; when no such file exists and it reads as a command, say where it goes."""
    done = run_batch_cli(pool, "--onall", "-w", pool.spec, "echo $((1+1))")
    assert done.returncode == 255
    assert done.stderr.strip().endswith(
        "to run it on every target: rexec batch --onall -w SPEC -- 'echo $((1+1))'"
    ), done.stderr


def test_a_missing_or_unreadable_commands_file_is_an_error(pool: Pool, tmp_path: Path) -> None:
    for path in (tmp_path / "missing.txt", tmp_path):
        done = run_batch_cli(pool, "-H", pool.spec, str(path))
        assert done.returncode == 255
        assert done.stdout == ""
        assert done.stderr.startswith(f"rexec: cannot read commands file {str(path)!r}: ")


# --- one story: README, --help and the parser agree ------------------------------------------


def _readme_batch_examples() -> list[str]:
    section = README.read_text().split("## Many commands on many servers", 1)[1].split("\n## ")[0]
    return [line for line in re.findall(r"^(rexec batch .*?)(?:\s+#.*)?$", section, re.MULTILINE)]


def test_readme_examples_parse_and_help_names_the_letters() -> None:
    examples = _readme_batch_examples()
    assert len(examples) >= 5
    parser = build_parser("batch")
    for example in examples:
        own, remote = split_remote_command(shlex.split(example.split("|")[-1].strip())[1:])
        try:
            parser.parse_args(own)
        except SystemExit:
            pytest.fail(f"README example does not parse: {example}")
        assert remote is None or remote, example
    usage = parser._subparsers._group_actions[0].choices["batch"].format_help()
    for words in (
        "-w SPEC, -H SPEC, --hosts SPEC",
        "-f N, --fanout N",
        "--hosts-file FILE",
        "--groups-file FILE",
        "--no-host-prefix",
        "::: ARG",
        "-q, --quote",
        "--quiet",
    ):
        assert words in usage


def test_ipv6_targets_are_not_taken_for_a_bare_port() -> None:
    """``:7000`` is 127.0.0.1:7000, but ``::1`` is the IPv6 loopback (an
    outside tester's ``-H '::1'`` became '127.0.0.1::1')."""
    listed = run_batch_cli(
        None, "--port", "7441", "-H", "localhost,::1,:7000,[::1]:7001", "--list-targets"
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ["localhost:7441", "[::1]:7441", "127.0.0.1:7000", "[::1]:7001"]


def test_a_replacement_inside_the_templates_quotes_is_refused(pool: Pool, tmp_path: Path) -> None:
    # Attacker III, F6: inside the template's own quotes, the quotes of the
    # argument are literal: a file name's $(...) ran on the server.
    pwned = tmp_path / "pwned"
    name = f"report$(touch {pwned}).txt"
    for template in ['echo processing "{}"', "echo '{/}'"]:
        refused = run_batch_cli(pool, "-w", pool.spec, "--", template, ":::", name)
        assert refused.returncode == 255 and refused.stdout == ""
        assert "stands inside quotes in the template" in refused.stderr
    # Outside quotes, and with -q, the same name is one inert word.
    done = run_batch_cli(pool, "-w", pool.spec, "--", 'echo "processing "{}', ":::", name)
    assert done.returncode == 0 and done.stdout == f"processing {name}\n"
    assert not pwned.exists()
