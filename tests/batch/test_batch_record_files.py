"""The files a batch writes its records to never go through a symbolic link
another user planted at their path (attacker5, "Noted": ``--joblog
/tmp/a5jl`` truncated the file a link there pointed to). The real CLI and a
real rexecd pool."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .conftest import Pool, run_batch_cli

#: A uid that is not ours: the link's owner, as if another user planted it.
_NOBODY = 65534

_OPTIONS = [("--joblog",), ("--results",), ("--rerun-file",), ("--joblog", "--resume")]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a link to another user")
@pytest.mark.parametrize("option", _OPTIONS, ids=["joblog", "results", "rerun", "resume"])
def test_a_link_another_user_planted_is_refused(
    pool: Pool, tmp_path: Path, option: tuple[str, ...]
) -> None:
    victim = tmp_path / "victim"
    precious = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n"
    victim.write_text(precious)  # a joblog of the victim's, which --resume reads
    planted = tmp_path / "planted"
    planted.symlink_to(victim)
    os.lchown(planted, _NOBODY, _NOBODY)
    marker = tmp_path / "ran"
    done = run_batch_cli(
        pool, "-w", pool.spec, option[0], str(planted), *option[1:],
        "--", "touch", str(marker),
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (255, ""), done
    assert done.stderr.splitlines() == [
        f"rexec: cannot write {planted}: it is a symbolic link another user owns"
    ]
    assert victim.read_text() == precious
    assert not marker.exists()  # refused before any job ran


def test_a_link_of_ones_own_is_followed(pool: Pool, tmp_path: Path) -> None:
    """As ``> FILE`` does: a user may keep the joblog behind a link of theirs."""
    target = tmp_path / "logs" / "today.tsv"
    target.parent.mkdir()
    link = tmp_path / "joblog.tsv"
    link.symlink_to(target)
    done = run_batch_cli(pool, "-w", pool.spec, "--joblog", str(link), "--", "true")
    assert done.returncode == 0, done.stderr
    assert target.read_text().startswith("Seq\tHost\t")
    assert link.is_symlink()
