"""Pure units of the batch runner: node sets, targets, halt policies,
input formats, the exit-status table. No servers."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from rexec_client.address import Address
from rexec_client.batch.capture import Captured, Spool
from rexec_client.batch.coalesce import CoalescingPrinter
from rexec_client.batch.exit_codes import batch_exit_status
from rexec_client.batch.groups import GroupError, Groups
from rexec_client.batch.halt import HaltPolicy, HaltSyntaxError
from rexec_client.batch.jobs import InputFormat, Job, JobInputError, format_job, read_jobs
from rexec_client.batch.nodeset import NodeSetError, expand, fold
from rexec_client.batch.outcome import JobResult, Status
from rexec_client.batch.summary import Summary
from rexec_client.batch.targets import DisplayNames, TargetError, resolve_targets
from rexec_client.batch.template import Template, TemplateError


def test_expand_ranges_padding_steps_and_lists() -> None:
    assert list(expand("web[01-07/3]:7000,db[1-2],x")) == [
        "web01:7000",
        "web04:7000",
        "web07:7000",
        "db1",
        "db2",
        "x",
    ]
    assert list(expand("n[1,3-4]r[0-1]")) == ["n1r0", "n1r1", "n3r0", "n3r1", "n4r0", "n4r1"]
    assert list(expand("[::1]:7420")) == ["[::1]:7420"]
    for bad in ("web[3-1]", "web[a-b]", "web[1-2", "web1]"):
        with pytest.raises(NodeSetError):
            list(expand(bad))


def test_fold_is_the_inverse_for_display() -> None:
    names = ["web01:7000", "web02:7000", "web03:7000", "web07:7000", "db9", "db10", "solo"]
    assert fold(names) == "web[01-03,07]:7000,db[9-10],solo"
    assert sorted(expand(fold(names))) == sorted(names)


def test_targets_files_exclusions_and_defaults(tmp_path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("# fleet\nweb[1-3]:7000  # web\n\n:7001\ndb1\n")
    got = resolve_targets(["a,b:9"], [hosts], exclude=["web2", "db1:7420"], default_port=7420)
    assert got == [
        Address("a", 7420),
        Address("b", 9),
        Address("web1", 7000),
        Address("web3", 7000),
        Address("127.0.0.1", 7001),
    ]
    with pytest.raises(TargetError, match="no targets"):
        resolve_targets(["a"], exclude=["a"])
    with pytest.raises(TargetError, match="bad:1"):
        (tmp_path / "bad").write_text("web[1-\n")
        resolve_targets([], [tmp_path / "bad"])


def test_halt_policies() -> None:
    assert str(HaltPolicy.parse("now,fail=1")) == "now,fail=1"
    assert str(HaltPolicy.parse("2")) == "now,fail=1"
    assert str(HaltPolicy.parse("20%")) == "soon,fail=20%"
    assert HaltPolicy.parse("never") is None
    policy = HaltPolicy.parse("soon,fail=50%")
    assert not policy.triggered(succeeded=3, failed=1, total=10)
    assert policy.triggered(succeeded=3, failed=5, total=10)
    assert HaltPolicy.parse("now,done=3").triggered(succeeded=2, failed=1, total=None)
    for bad in ("later,fail=1", "now,fail=0", "now,oops=1"):
        with pytest.raises(HaltSyntaxError):
            HaltPolicy.parse(bad)


def test_input_formats_and_stable_ids() -> None:
    lines = list(read_jobs(io.BytesIO(b"echo a\n\necho b\r\n"), InputFormat.LINES))
    assert [(j.id, j.shell) for j in lines] == [("1", "echo a"), ("3", "echo b")]
    nul = list(read_jobs(io.BytesIO(b"printf 'x\ny'\0true"), InputFormat.NUL))
    assert [j.shell for j in nul] == ["printf 'x\ny'", "true"]
    record = {
        "id": "build-7",
        "argv": ["make", "-j2"],
        "cwd": "/src",
        "env": {"A": "1"},
        "timeout": 5,
        "target": "h:9",
    }
    (job,) = read_jobs(io.BytesIO(json.dumps(record).encode()), InputFormat.JSONL)
    assert job == Job(
        id="build-7",
        argv=("make", "-j2"),
        cwd="/src",
        env={"A": "1"},
        timeout=5,
        target=Address("h", 9),
    )
    assert json.loads(format_job(job, InputFormat.JSONL)) == record
    for bad in (
        '{"argv": []}',
        '{"shell": "x", "argv": ["y"]}',
        '{"shell": "x", "oops": 1}',
        '{"shell": "x", "timeout": -1}',
        "not json",
    ):
        with pytest.raises(JobInputError, match="<stdin>:1"):
            list(read_jobs(io.BytesIO(bad.encode()), InputFormat.JSONL))


def test_exit_status_precedence() -> None:
    fail_halt = HaltPolicy.parse("now,fail=1")
    assert batch_exit_status({Status.OK: 3}) == 0
    assert batch_exit_status({Status.OK: 1, Status.FAILED: 1}) == 1
    assert batch_exit_status({Status.FAILED: 1, Status.TIMEOUT: 1}) == 2
    assert batch_exit_status({Status.FAILED: 1, Status.SIGNAL: 1, Status.CONNECT_ERROR: 1}) == 3
    assert batch_exit_status({Status.FAILED: 1, Status.SKIPPED: 2}, halted_by=fail_halt) == 4
    assert (
        batch_exit_status(
            {Status.OK: 1, Status.CANCELLED: 1}, halted_by=HaltPolicy.parse("now,success=1")
        )
        == 0
    )
    assert batch_exit_status({Status.CANCELLED: 2}, halted_by=fail_halt, interrupted=True) == 130
    assert batch_exit_status({Status.OK: 1}, interrupted=True, input_error=True) == 255


def test_fold_folds_every_number_as_clustershell() -> None:
    fleet = [f"127.1.{row}.{col}" for row in range(40) for col in range(1, 251)]
    assert fold(fleet) == "127.1.[0-39].[1-250]"
    assert fold(fleet[:-8]) == "127.1.[0-38].[1-250],127.1.39.[1-242]"
    holes = [n for n in fleet[:500] if n not in ("127.1.0.17", "127.1.1.92")]
    assert fold(holes) == "127.1.0.[1-16,18-250],127.1.1.[1-91,93-250]"
    assert sorted(expand(fold(holes))) == sorted(holes)
    assert fold(["n1r0", "n1r1", "n3r0", "n3r1"]) == "n[1,3]r[0-1]"
    assert fold(["a:7000", "a:7001", "[::1]:7420"]) == "a:[7000-7001],[::1]:7420"


def test_templates_replace_as_gnu_parallel() -> None:
    template = Template.parse(["cp", "{}", "{//}/{/.}.bak", "#{#}", ":::", "d/x.tar.gz", "y b"])
    assert [job.shell for job in template.jobs(io.BytesIO())] == [
        "cp d/x.tar.gz d/x.tar.bak #1",
        "cp 'y b' ./'y b'.bak #2",
    ]
    assert template.count == 2 and not template.reads_stdin
    stdin = Template.parse(["echo"])
    assert [(j.id, j.shell) for j in stdin.jobs(io.BytesIO(b"a\n\n$x\r\n"))] == [
        ("1", "echo a"),
        ("2", "echo ''"),
        ("3", "echo '$x'"),
    ]
    nul = Template.parse(["echo", "{}"]).jobs(io.BytesIO(b"a\nb\0c"), separator=b"\0")
    assert [j.shell for j in nul] == ["echo 'a\nb'", "echo c"]
    with pytest.raises(TemplateError):
        Template.parse([":::", "a"])
    with pytest.raises(JobInputError, match="<stdin>:2: not UTF-8"):
        list(stdin.jobs(io.BytesIO(b"ok\n\xff\n")))


def test_groups_expand_nested_names(tmp_path) -> None:
    path = tmp_path / "groups"
    path.write_text("web: w[1-2] w9  # three\nall: @web,db1\n")
    groups = Groups(path)
    assert groups.expand("@all,x") == "w[1-2],w9,db1,x"
    with pytest.raises(GroupError, match="unknown group @db"):
        groups.expand("@db")
    (tmp_path / "bad").write_text("just words\n")
    with pytest.raises(GroupError, match="bad:1: expected 'name: nodes'"):
        Groups(tmp_path / "bad").expand("@x")


def test_summary_gathers_targets_by_cause() -> None:
    def result(host: str, status: Status, **fields) -> JobResult:
        return JobResult(
            job=Job(id="1", shell="true"),
            target=Address(host, 7420),
            status=status,
            attempt=1,
            order=1,
            **fields,
        )

    summary = Summary(DisplayNames([Address("h1", 7420)]))
    for host in ("h1", "h2"):
        summary.add(
            result(
                host,
                Status.CONNECT_ERROR,
                error=f"cannot connect to {host}:7420: connection refused",
            )
        )
    summary.add(
        result(
            "h3",
            Status.CONNECT_ERROR,
            error="connection to h3:7420 lost: the server closed the connection",
        )
    )
    summary.add(result("h4", Status.FAILED, exit_code=2))
    summary.add(result("h5", Status.OK, exit_code=0))
    assert summary.lines(1.0)[1:] == [
        "  h[1-2]: connection refused (2 connect_error; jobs 1)",
        "  h3: connection lost: the server closed the connection (1 connect_error; jobs 1)",
        "  h4: exit 2 (1 failed; jobs 1)",
    ]


def test_named_nodes_fold_as_the_issue_writes_them() -> None:
    """10,000 named servers: one ``-b`` block headed ``node[00001-10000]``,
    and the failures by node set and cause (the emulator's targets are
    addresses; names as DNS gives them fold the same way)."""

    def result(index: int, status: Status, **fields) -> JobResult:
        return JobResult(
            job=Job(id="1", argv=("echo", "hi")),
            target=Address(f"node{index:05d}", 7420),
            status=status,
            attempt=1,
            order=index,
            **fields,
        )

    names = [Address(f"node{i:05d}", 7420) for i in range(1, 10_001)]
    out = io.BytesIO()
    printer = CoalescingPrinter(out, DisplayNames(names))
    for index in range(1, 10_001):
        printer.finished(result(index, Status.OK, exit_code=0, stdout_capture=Captured.of(b"hi\n")))
    printer.close()
    assert out.getvalue() == b"---------------- node[00001-10000] (10000)\nhi\n"
    summary = Summary(DisplayNames(names))
    for index in (17, 342):
        summary.add(
            result(
                index,
                Status.CONNECT_ERROR,
                error=f"cannot connect to node{index:05d}:7420: connection refused",
            )
        )
    assert summary.lines(1.0)[1:] == [
        "  node[00017,00342]: connection refused (2 connect_error; jobs 1)"
    ]


def test_spool_keeps_order_bounds_memory_and_gives_space_back(tmp_path: Path) -> None:
    spool = Spool(memory_budget=100, per_stream=100, directory=str(tmp_path))
    first, second = Captured(spool), Captured(spool)
    first.write(b"a" * 60)
    second.write(b"b" * 50)  # past the budget of 100 in all: to the file
    first.write(b"c" * 30)  # within both limits: memory
    first.write(b"d" * 20)  # past its stream's 100: the file, and so is the rest
    first.write(b"e" * 5)
    assert first.read() == b"a" * 60 + b"c" * 30 + b"d" * 20 + b"e" * 5
    assert second.read() == b"b" * 50 and second.last_byte == b"b"
    assert (spool.memory, spool.file_size, first.size) == (90, 75, 115)
    assert os.listdir(tmp_path) == []  # the file has no name
    first.release()
    assert (spool.memory, spool.file_size) == (0, 75)  # the other still holds some
    second.release()
    assert spool.file_size == 0
    spool.close()
