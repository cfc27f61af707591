"""``rexec.files.AtomicFile`` and ``TempRecords``: any chunking is written
whole, the target changes only at ``commit`` (mode and time exact), nothing
is left by ``discard``, a resumable file continues where it stopped, and a
sweep after a crash removes exactly the temporary files that were ours."""

from __future__ import annotations

import hashlib
import os
import stat
import time
from pathlib import Path

import pytest

from rexec.files import IOV_MAX, AtomicFile, Roots, TempRecords, open_parent, partial_name


def writer_for(path: Path, **kwargs: object) -> AtomicFile:
    dir_fd, name = open_parent(str(path), Roots(), base="/")
    return AtomicFile.create(dir_fd, name, **kwargs)  # type: ignore[arg-type]


def leftovers(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if ".rexec-" in name)


@pytest.mark.parametrize("pieces", [IOV_MAX + 1, 4000, 262_144])
def test_any_number_of_chunks_is_written(tmp_path: Path, pieces: int) -> None:
    """Issue 11.5: more than IOV_MAX pieces in one writev failed with EINVAL."""
    data = os.urandom(pieces)
    chunks = [data[i : i + 1] for i in range(pieces)]
    writer = writer_for(tmp_path / "f")
    assert writer.write(chunks) == pieces
    writer.commit(0o600)
    assert (tmp_path / "f").read_bytes() == data
    assert writer.sha256 == hashlib.sha256(data).hexdigest()


def test_the_target_changes_only_at_commit(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")
    writer = writer_for(target)
    writer.write([b"new ", bytearray(b"content"), memoryview(b"!")])
    assert target.read_bytes() == b"old"
    assert len(leftovers(tmp_path)) == 1
    old_umask = os.umask(0o777)
    try:
        writer.commit(0o4755, mtime=1_000_000_000.5)
    finally:
        os.umask(old_umask)
    info = os.stat(target)
    assert target.read_bytes() == b"new content!"
    assert stat.S_IMODE(info.st_mode) == 0o4755
    assert info.st_mtime == 1_000_000_000.5
    assert leftovers(tmp_path) == []


def test_a_commit_that_may_not_replace_never_overwrites(tmp_path: Path) -> None:
    # What the key file needs: whoever writes it first keeps it.
    target = tmp_path / "key"
    first, second = writer_for(target), writer_for(target)
    first.write([b"first"])
    second.write([b"second"])
    first.commit(0o600, replace=False)
    with pytest.raises(FileExistsError):
        second.commit(0o600, replace=False)
    second.discard()
    assert target.read_bytes() == b"first"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert leftovers(tmp_path) == []


def test_a_link_at_the_target_is_replaced_not_written_through(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").write_bytes(b"untouched")
    (tmp_path / "f").symlink_to(tmp_path / "elsewhere")
    writer = writer_for(tmp_path / "f")
    writer.write([b"file"])
    writer.commit(0o644)
    assert not (tmp_path / "f").is_symlink()
    assert (tmp_path / "f").read_bytes() == b"file"
    assert (tmp_path / "elsewhere").read_bytes() == b"untouched"


def test_discard_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"old")
    writer = writer_for(tmp_path / "f")
    writer.write([b"x" * 100_000])
    writer.discard()
    writer.discard()
    assert (tmp_path / "f").read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_temporary_names_fit_and_differ(tmp_path: Path) -> None:
    name = "n" * 255
    writers = [writer_for(tmp_path / name) for _ in range(3)]
    names = leftovers(tmp_path)
    assert len(set(names)) == 3 and all(len(n.encode()) <= 255 for n in names)
    for writer in writers:
        writer.discard()


def test_a_resumable_file_continues(tmp_path: Path) -> None:
    target = tmp_path / "f"
    first = writer_for(target, resume_key="k1")
    first.write([b"hello "])
    first.keep()
    assert leftovers(tmp_path) == [os.fsdecode(partial_name(b"f", "k1"))]
    other = writer_for(target, resume_key="k2")  # another key: another partial file
    assert other.resumed == 0
    other.discard()
    second = writer_for(target, resume_key="k1")
    assert second.resumed == second.size == 6
    second.write([b"world"])
    assert second.sha256 == hashlib.sha256(b"hello world").hexdigest()
    second.commit(0o644)
    assert target.read_bytes() == b"hello world"
    assert leftovers(tmp_path) == []


def test_a_foreign_file_under_the_partial_name_is_never_written(tmp_path: Path) -> None:
    """A hard link to someone else's file in the partial file's place is
    unlinked (that name only) and the write starts over; the file is never
    read back nor written (findings attacker1 #5: it blocked the key)."""
    precious = tmp_path / "precious"
    precious.write_bytes(b"someone else's")
    os.link(precious, tmp_path / os.fsdecode(partial_name(b"f", "k")))
    writer = writer_for(tmp_path / "f", resume_key="k")
    assert writer.resumed == 0
    writer.write([b"mine"])
    writer.commit(0o644)
    assert precious.read_bytes() == b"someone else's" and precious.stat().st_nlink == 1
    assert (tmp_path / "f").read_bytes() == b"mine"


def test_records_let_a_sweep_remove_what_a_crash_left(tmp_path: Path) -> None:
    """Issue 11.8: a kill -9 mid-put left its temporary file, also after a
    restart. Records name exactly what was in flight."""
    records = TempRecords(tmp_path / "state")
    work = tmp_path / "work"
    work.mkdir()
    crashed = writer_for(work / "a", registry=records)
    crashed.write([b"half"])
    young = writer_for(work / "b", resume_key="k", registry=records)
    young.write([b"part"])
    young.keep()
    old = writer_for(work / "c", resume_key="k", registry=records)
    old.write([b"part"])
    old.keep()
    os.utime(work / os.fsdecode(partial_name(b"c", "k")), (0, 0))
    finished = writer_for(work / "d", registry=records)
    finished.commit(0o644)
    reused = writer_for(work / "e", registry=records)
    reused_temp = os.fsdecode(reused.temp)
    assert len(list(records.directory.iterdir())) == 4  # a's, b's, c's and e's
    # Someone else's file takes the name of e's temporary file.
    os.unlink(work / reused_temp)
    (work / reused_temp).write_bytes(b"not ours")

    removed = records.sweep(partial_max_age=3600)

    assert sorted(os.path.basename(p) for p in removed) == sorted(
        [os.fsdecode(crashed.temp), os.fsdecode(partial_name(b"c", "k"))]
    )
    assert sorted(os.listdir(work)) == sorted(
        ["d", os.fsdecode(partial_name(b"b", "k")), os.fsdecode(reused_temp)]
    )
    assert len(list(records.directory.iterdir())) == 1  # the young partial's, kept with it
    assert records.sweep(partial_max_age=3600) == []
    time.sleep(0.01)
    assert len(records.sweep(partial_max_age=0)) == 1
    assert list(records.directory.iterdir()) == []


def test_records_refuse_a_directory_others_can_write(tmp_path: Path) -> None:
    from rexec.files import UnsafeRecords

    (tmp_path / "state").mkdir(mode=0o777)
    os.chmod(tmp_path / "state", 0o777)
    with pytest.raises(UnsafeRecords):
        TempRecords(tmp_path / "state")
