"""Pure units of the batch runner: node sets, targets, halt policies,
input formats, the exit-status table. No servers."""

from __future__ import annotations

import io
import json

import pytest

from rexec_client.address import Address
from rexec_client.batch.exit_codes import batch_exit_status
from rexec_client.batch.halt import HaltPolicy, HaltSyntaxError
from rexec_client.batch.jobs import InputFormat, Job, JobInputError, format_job, read_jobs
from rexec_client.batch.nodeset import NodeSetError, expand, fold
from rexec_client.batch.outcome import Status
from rexec_client.batch.targets import TargetError, resolve_targets


def test_expand_ranges_padding_steps_and_lists() -> None:
    assert list(expand("web[01-07/3]:7000,db[1-2],x")) == [
        "web01:7000", "web04:7000", "web07:7000", "db1", "db2", "x",
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
        Address("a", 7420), Address("b", 9), Address("web1", 7000), Address("web3", 7000),
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
    record = {"id": "build-7", "argv": ["make", "-j2"], "cwd": "/src", "env": {"A": "1"},
              "timeout": 5, "target": "h:9"}
    (job,) = read_jobs(io.BytesIO(json.dumps(record).encode()), InputFormat.JSONL)
    assert job == Job(id="build-7", argv=("make", "-j2"), cwd="/src", env={"A": "1"},
                      timeout=5, target=Address("h", 9))
    assert json.loads(format_job(job, InputFormat.JSONL)) == record
    for bad in ('{"argv": []}', '{"shell": "x", "argv": ["y"]}', '{"shell": "x", "oops": 1}',
                '{"shell": "x", "timeout": -1}', "not json"):
        with pytest.raises(JobInputError, match="<stdin>:1"):
            list(read_jobs(io.BytesIO(bad.encode()), InputFormat.JSONL))


def test_exit_status_precedence() -> None:
    fail_halt = HaltPolicy.parse("now,fail=1")
    assert batch_exit_status({Status.OK: 3}) == 0
    assert batch_exit_status({Status.OK: 1, Status.FAILED: 1}) == 1
    assert batch_exit_status({Status.FAILED: 1, Status.TIMEOUT: 1}) == 2
    assert batch_exit_status({Status.FAILED: 1, Status.SIGNAL: 1, Status.CONNECT_ERROR: 1}) == 3
    assert batch_exit_status({Status.FAILED: 1, Status.SKIPPED: 2}, halted_by=fail_halt) == 4
    assert batch_exit_status({Status.OK: 1, Status.CANCELLED: 1},
                             halted_by=HaltPolicy.parse("now,success=1")) == 0
    assert batch_exit_status({Status.CANCELLED: 2}, halted_by=fail_halt, interrupted=True) == 130
    assert batch_exit_status({Status.OK: 1}, interrupted=True, input_error=True) == 255
