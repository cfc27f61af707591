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


_PRECIOUS = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n"


def _refused(pool: Pool, tmp_path: Path, option: tuple[str, ...], path: Path, why: str) -> None:
    """The batch refuses ``path`` in one line, before any job runs."""
    marker = tmp_path / "ran"
    done = run_batch_cli(
        pool, "-w", pool.spec, option[0], str(path), *option[1:], "--", "touch", str(marker),
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (255, ""), done
    verb = "read" if "--resume" in option else "write"  # --resume reads the joblog first
    assert done.stderr.splitlines() == [f"rexec: cannot {verb} {path}: {why}"]
    assert not marker.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a link to another user")
@pytest.mark.parametrize("sticky", [False, True], ids=["plain-dir", "sticky-dir"])
@pytest.mark.parametrize("option", _OPTIONS, ids=["joblog", "results", "rerun", "resume"])
def test_a_link_another_user_planted_is_refused(
    pool: Pool, tmp_path: Path, option: tuple[str, ...], sticky: bool
) -> None:
    """In a sticky directory (as /tmp) the kernel may refuse such a link
    itself (EACCES, retest6): the same line says why."""
    victim = tmp_path / "victim"
    victim.write_text(_PRECIOUS)  # a joblog of the victim's, which --resume reads
    where = tmp_path / "shared"
    where.mkdir(mode=0o1777 if sticky else 0o755)
    where.chmod(0o1777 if sticky else 0o755)
    planted = where / "planted"
    planted.symlink_to(victim)
    os.lchown(planted, _NOBODY, _NOBODY)
    _refused(pool, tmp_path, option, planted, "it is a symbolic link another user owns")
    assert victim.read_text() == _PRECIOUS


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
@pytest.mark.parametrize("option", _OPTIONS, ids=["joblog", "results", "rerun", "resume"])
def test_a_file_another_user_made_there_first_is_refused(
    pool: Pool, tmp_path: Path, option: tuple[str, ...]
) -> None:
    """retest6: a joblog another user created first in /tmp chose which jobs
    root's --resume skipped, and took its records."""
    planted = tmp_path / "joblog.tsv"
    planted.write_text(_PRECIOUS + "1\t:\t0\t0\t0\t0\t0\t0\ttouch\n")
    os.chown(planted, _NOBODY, _NOBODY)
    _refused(pool, tmp_path, option, planted, "another user owns it")


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
