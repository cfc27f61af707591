"""``rexec.files`` resolution: paths opened beneath roots, symbolic links
followed only while they stay inside them, and never a byte outside under a
racing swap. Every case runs twice: with the kernel's ``openat2`` and with
the component-by-component walk that stands in where the kernel lacks it."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from racing import swapping

from rexec.files import AtomicFile, OutsideRoots, Roots, _resolve, open_parent, open_path

READ = os.O_RDONLY | os.O_NONBLOCK
DIRECTORY = os.O_PATH | os.O_DIRECTORY


@pytest.fixture(params=["openat2", "walk"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "walk":
        monkeypatch.setattr(_resolve.openat2, "available", False)
    elif not _resolve.openat2.available:
        pytest.skip("this kernel has no openat2")
    yield request.param


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """root/{file, sub/inner, sub2/} and outside/secret, beside each other."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub2").mkdir()
    (root / "file").write_bytes(b"inside")
    (root / "sub" / "inner").write_bytes(b"inner")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_bytes(b"secret")
    return tmp_path


def read(fd: int) -> bytes:
    try:
        return os.read(fd, 100)
    finally:
        os.close(fd)


def open_read(path: Path | str, roots: Roots, base: Path | str = "/") -> bytes:
    return read(open_path(str(path), roots, base=str(base), flags=READ))


def test_a_file_inside_the_root(tree: Path, mode: str) -> None:
    roots = Roots([tree / "root"])
    assert open_read(tree / "root" / "file", roots) == b"inside"
    assert open_read(tree / "root" / "sub" / ".." / "sub" / "inner", roots) == b"inner"
    assert open_read("sub/inner", roots, base=tree / "root") == b"inner"


@pytest.mark.parametrize("relative", [True, False], ids=["relative", "absolute"])
def test_a_link_inside_the_root_to_inside_is_followed(
    tree: Path, mode: str, relative: bool
) -> None:
    root = tree / "root"
    (root / "sub2" / "link").symlink_to("../sub/inner" if relative else root / "sub" / "inner")
    (root / "dirlink").symlink_to("sub" if relative else root / "sub")
    roots = Roots([root])
    assert open_read(root / "sub2" / "link", roots) == b"inner"
    assert open_read(root / "dirlink" / "inner", roots) == b"inner"
    fd = open_path(str(root / "dirlink"), roots, base="/", flags=DIRECTORY)
    try:
        assert os.path.samestat(os.fstat(fd), os.stat(root / "sub"))
    finally:
        os.close(fd)


@pytest.mark.parametrize("relative", [True, False], ids=["relative", "absolute"])
def test_a_link_inside_the_root_to_outside_is_refused(
    tree: Path, mode: str, relative: bool
) -> None:
    """Issue 11.2(a): the link to a file outside gave the file, where a direct
    get of the target was refused."""
    root = tree / "root"
    (root / "link").symlink_to("../outside/secret" if relative else tree / "outside" / "secret")
    (root / "dirlink").symlink_to("../outside" if relative else tree / "outside")
    roots = Roots([root])
    outside = tree / "outside"
    for path in (root / "link", root / "dirlink" / "secret", outside / "secret", outside / "nope"):
        with pytest.raises(OutsideRoots):
            open_path(str(path), roots, base="/", flags=READ)
    with pytest.raises(OutsideRoots):
        open_path(str(root / "dirlink"), roots, base="/", flags=DIRECTORY)


@pytest.mark.parametrize(
    "path", ["root/../outside/secret", "root/sub/../../outside/secret", "root/../../etc/passwd"]
)
def test_dot_dot_out_of_the_root_is_refused(tree: Path, mode: str, path: str) -> None:
    with pytest.raises(OutsideRoots):
        open_path(str(tree / path), Roots([tree / "root"]), base="/", flags=READ)
    with pytest.raises(OutsideRoots):  # relative to a base inside the root
        open_path("../" + path.split("/", 1)[1], Roots([tree / "root"]), base=str(tree / "root"),
                  flags=READ)  # fmt: skip


def test_a_link_from_one_root_into_another_is_followed(tree: Path, mode: str) -> None:
    (tree / "root" / "link").symlink_to(tree / "outside" / "secret")
    assert open_read(tree / "root" / "link", Roots([tree / "root", tree / "outside"])) == b"secret"


def test_a_link_that_passes_outside_on_its_way_back_is_refused(tree: Path, mode: str) -> None:
    (tree / "root" / "link").symlink_to(tree / "outside" / ".." / "root" / "file")
    with pytest.raises(OutsideRoots):
        open_path(str(tree / "root" / "link"), Roots([tree / "root"]), base="/", flags=READ)


def test_magic_links_lead_outside(tree: Path, mode: str) -> None:
    (tree / "root" / "magic").symlink_to("/proc/self/root" + str(tree / "outside" / "secret"))
    with pytest.raises(OutsideRoots):
        open_path(str(tree / "root" / "magic"), Roots([tree / "root"]), base="/", flags=READ)


def test_errors_of_the_file_system(tree: Path, mode: str) -> None:
    root = tree / "root"
    roots = Roots([root])
    (root / "loop").symlink_to("loop")
    cases = [
        (root / "missing", errno.ENOENT),
        (root / "missing" / "deeper", errno.ENOENT),
        (root / "file" / "deeper", errno.ENOTDIR),
        (root / "loop", errno.ELOOP),
    ]
    for path, code in cases:
        with pytest.raises(OSError) as caught:
            open_path(str(path), roots, base="/", flags=READ)
        assert caught.value.errno == code, path
    with pytest.raises(NotADirectoryError):
        open_path(str(root / "file"), roots, base="/", flags=DIRECTORY)


def test_without_roots_links_resolve_as_usual(tree: Path) -> None:
    (tree / "root" / "link").symlink_to(tree / "outside" / "secret")
    assert open_read(tree / "root" / "link", Roots()) == b"secret"
    assert open_read("root/../outside/secret", Roots(), base=tree) == b"secret"


def test_open_parent_resolves_the_directory_not_the_name(tree: Path, mode: str) -> None:
    root = tree / "root"
    roots = Roots([root])
    (root / "dirlink").symlink_to("sub")
    (root / "sub" / "escape").symlink_to(tree / "outside" / "secret")
    dir_fd, name = open_parent(str(root / "dirlink" / "escape"), roots, base="/")
    try:
        assert name == b"escape"
        assert os.path.samestat(os.fstat(dir_fd), os.stat(root / "sub"))
    finally:
        os.close(dir_fd)
    (root / "outlink").symlink_to(tree / "outside")
    with pytest.raises(OutsideRoots):
        open_parent(str(root / "outlink" / "new"), roots, base="/")
    with pytest.raises(OutsideRoots):  # the root itself is an entry of its parent, outside
        open_parent(str(root), roots, base="/")
    for path in (f"{root}/sub/", f"{root}/sub/.", f"{root}/sub/.."):
        with pytest.raises(IsADirectoryError):
            open_parent(str(path), roots, base="/")


def test_roots_given_through_a_link_are_made_real(tree: Path, mode: str) -> None:
    (tree / "alias").symlink_to(tree / "root")
    roots = Roots([tree / "alias"])
    assert open_read(tree / "root" / "file", roots) == b"inside"
    assert open_read(tree / "alias" / "file", roots) == b"inside"
    with pytest.raises(OutsideRoots):
        open_path(str(tree / "outside" / "secret"), roots, base="/", flags=READ)


def test_a_racing_swap_never_writes_outside(tree: Path, mode: str) -> None:
    """Issue 11.2(b): a put to root/dir/f while another process swaps dir for a
    link to outside wrote files outside the roots; the same race ended
    connections with ``internal``. Resolved at open time, every attempt
    either writes inside or fails with a file error or OutsideRoots."""
    root = tree / "root"
    roots = Roots([root])
    outcomes: dict[str, int] = {}
    with swapping(root / "dir", tree / "outside"):
        # 400 attempts, and more (bounded) until one fell while the real
        # directory was there: under load the swapper's timing varies.
        for attempt in range(4000):
            if attempt >= 400 and outcomes.get("written"):
                break
            try:
                dir_fd, name = open_parent(str(root / "dir" / f"f{attempt}"), roots, base="/")
                writer = AtomicFile.create(dir_fd, name)
                writer.write([b"x"])
                writer.commit(0o644)
                outcome = "written"
            except OutsideRoots:
                outcome = "denied"
            except OSError as exc:
                outcome = errno.errorcode[exc.errno or 0]
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert os.listdir(tree / "outside") == ["secret"], outcomes
    assert set(outcomes) <= {"written", "denied", "ENOENT", "ENOTDIR"}, outcomes
    assert outcomes.get("written", 0) > 0, outcomes
    # The swapper ends each round as it began: the real directory is root/dir.
    assert len(os.listdir(root / "dir")) == outcomes["written"]
