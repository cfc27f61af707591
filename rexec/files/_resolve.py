"""Opening a path beneath allowed root directories, resolved at open time.

A path checked first and opened later can change in between (a directory
swapped for a symbolic link to ``/etc``): the check then vouches for nothing.
So nothing here checks a path and then uses it. Every component is opened
relative to the descriptor of a directory already reached, and the caller gets
descriptors, never a path to reuse:

* With ``openat2`` (Linux 5.6 and later), the kernel resolves the path beneath
  a root's descriptor with ``RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS``: a
  ``..`` or a symbolic link that would leave the root fails (``EXDEV``), and a
  rename racing the lookup makes it fail rather than escape (``EAGAIN``).
* Otherwise, and whenever the kernel says ``EXDEV`` (which it also says for
  any *absolute* symbolic link, even one that stays inside the root), a walk
  decides: one component at a time, each opened ``O_NOFOLLOW`` relative to
  the directory before it, symbolic links read and followed by hand. The walk
  keeps a stack of the descriptors it went through, so ``..`` returns to the
  directory it came from (never a lookup of ``..``, which a rename could
  redirect), and it knows the real path of where it stands.

The rule the walk enforces, and the kernel's answer agrees with: every
directory the resolution passes through is inside a root or on the way down
to one (``/`` and ``/srv`` on the way to the root ``/srv/data``), and what it
ends on is inside a root. Symbolic links are read wherever they are met, and
where they lead obeys the same rule (so a root may be named through a link,
``/srv/current`` → ``/srv/releases/5``, as it was configured). A symbolic
link inside a root that points elsewhere inside the roots (relative or
absolute, into the same root or another) is followed; one that points
outside them is refused with ``OutsideRoots``, as is a ``..`` that climbs
out. With no roots at all (``Roots.anywhere``), paths
resolve as the kernel resolves them for any program.

A directory moved out of the roots *after* it was opened keeps the
descriptor: what is written then lands where the directory went. Moving it
there takes write access to both places; that is the account's own power,
not an escape through the protocol.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import sys
from collections.abc import Iterable

#: ``openat2`` resolve flags (linux/openat2.h).
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08

#: ``openat2``'s number: new system calls share one number on every Linux
#: architecture (alpha aside, which Python does not run on in practice).
_SYS_OPENAT2 = 437
#: Symbolic links followed in one resolution before ``ELOOP``, as Linux.
MAX_SYMLINKS = 40
#: A lookup that met a concurrent rename is retried this many times before
#: the walk takes over (``EAGAIN`` from ``openat2``).
_OPENAT2_RETRIES = 3

_DIRECTORY_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC


class OutsideRoots(Exception):
    """The path resolves outside the allowed roots (a ``..``, or a symbolic
    link, leads out of them). The message never quotes the path."""

    def __init__(self) -> None:
        super().__init__("the path leads outside the allowed roots")


class _OpenHow(ctypes.Structure):
    _fields_ = [
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    ]


class _Openat2:
    """``openat2`` through ``syscall(2)``; ``available`` turns False for
    good at the first ENOSYS (an old kernel, or a seccomp filter that hides
    it). ctypes releases the GIL around the call."""

    def __init__(self) -> None:
        self.available = sys.platform == "linux"
        self._syscall = ctypes.CDLL(None, use_errno=True).syscall if self.available else None

    def __call__(self, dir_fd: int, path: bytes, flags: int, resolve: int) -> int:
        assert self._syscall is not None
        how = _OpenHow(flags | os.O_CLOEXEC, 0, resolve)
        fd = self._syscall(_SYS_OPENAT2, dir_fd, path, ctypes.byref(how), ctypes.sizeof(how))
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
        return int(fd)


openat2 = _Openat2()


def _components(path: bytes) -> list[bytes]:
    return [part for part in path.split(b"/") if part]


class Roots:
    """The directories paths must resolve beneath; none means anywhere.

    Args:
        paths: the roots, absolute. Each is made real (``realpath``) once,
            here: the roots themselves and the directories above them are
            the operator's, trusted as configured.
    """

    def __init__(self, paths: Iterable[str | bytes] = ()) -> None:
        self._roots = tuple(
            tuple(_components(os.path.realpath(os.fsencode(path)))) for path in paths
        )
        self._everywhere = not self._roots

    @classmethod
    def intersection(cls, *root_sets: Iterable[str | bytes]) -> Roots:
        """What every one of ``root_sets`` allows (an empty set allows
        anywhere): a path must be inside a root of each. Two sets with no
        common ground allow nothing at all."""
        result = cls()
        for paths in root_sets:
            other = cls(paths)
            if other.anywhere:
                continue
            if result.anywhere:
                result = other
                continue
            # The deeper of each nested pair; disjoint pairs share nothing.
            result._roots = tuple(
                max(mine, theirs, key=len)
                for mine in result._roots
                for theirs in other._roots
                if mine[: len(theirs)] == theirs or theirs[: len(mine)] == mine
            )
        return result

    @property
    def anywhere(self) -> bool:
        return self._everywhere

    def contains(self, where: list[bytes]) -> bool:
        """Whether the real path ``where`` (components) is inside a root."""
        return self._everywhere or any(tuple(where[: len(root)]) == root for root in self._roots)

    def allows(self, where: list[bytes]) -> bool:
        """Whether a resolution may pass through ``where``: inside a root,
        or a directory on the way down to one."""
        return self.contains(where) or any(
            root[: len(where)] == tuple(where) for root in self._roots
        )

    def split(self, path: bytes) -> tuple[bytes, bytes] | None:
        """``(root, rest)`` for the first root the absolute ``path`` starts
        with, lexically; None when it starts with none."""
        parts = _components(path)
        for root in self._roots:
            if tuple(parts[: len(root)]) == root:
                return b"/" + b"/".join(root), b"/".join(parts[len(root) :]) or b"."
        return None


def absolute(path: str | bytes, base: str | bytes) -> bytes:
    """``path`` as an absolute path: a relative one is relative to ``base``.
    Lexical only; nothing is resolved or normalised (``..`` stays)."""
    return os.path.join(os.fsencode(base), os.fsencode(path))


def open_path(path: str | bytes, roots: Roots, *, base: str | bytes, flags: int) -> int:
    """Open what ``path`` names, following symbolic links as long as they
    stay within ``roots``.

    Args:
        path: absolute, or relative to ``base``.
        roots: where the resolution may go.
        base: the directory relative paths start from (the account's home).
        flags: ``os.open`` flags for the final component (``O_CLOEXEC`` is
            added), such as ``O_PATH | O_DIRECTORY`` for a directory or
            ``O_RDONLY | O_NONBLOCK`` for a file to read. Never ``O_CREAT``.

    Returns:
        The descriptor; the caller closes it.

    Raises:
        OutsideRoots: the resolution leaves the roots.
        OSError: as ``open`` would (``ENOENT``, ``ENOTDIR``, ``EACCES``,
            ``ELOOP`` …).
    """
    assert not flags & os.O_CREAT, "create files relative to open_parent's descriptor"
    target = absolute(path, base)
    if roots.anywhere:
        return os.open(target, flags | os.O_CLOEXEC)
    fd = _open_with_openat2(target, roots, flags)
    return fd if fd is not None else _walk(target, roots, flags)


def open_parent(path: str | bytes, roots: Roots, *, base: str | bytes) -> tuple[int, bytes]:
    """The directory that holds ``path``'s last component, and that name.

    The directory is resolved as ``open_path`` resolves (within ``roots``)
    and opened ``O_PATH``: create, rename and unlink relative to it. The
    name itself is not resolved: a symbolic link of that name is the
    caller's to replace or to refuse.

    Raises:
        IsADirectoryError: ``path`` ends with ``/``, ``.`` or ``..`` and
            names a directory within the roots (not an entry in one).
        OutsideRoots, OSError: as ``open_path``, for the directory (or, for
            a path ending so, for the whole path: the roots are checked
            first, and ``foo/`` for a file is ``ENOTDIR``).
    """
    target = absolute(path, base)
    directory, name = os.path.split(target)
    if name in (b"", b".", b".."):
        os.close(open_path(target, roots, base=b"/", flags=_DIRECTORY_FLAGS))
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
    return open_path(directory, roots, base=b"/", flags=_DIRECTORY_FLAGS), name


def _open_with_openat2(target: bytes, roots: Roots, flags: int) -> int | None:
    """The kernel's answer when it has one; None when the walk must decide
    (no ``openat2``, an absolute symbolic link, a ``..`` or link that leaves
    the root the path starts in, a magic link, or a rename racing the
    lookup)."""
    split = roots.split(target)
    if split is None or not openat2.available:
        return None
    root, rest = split
    for _ in range(_OPENAT2_RETRIES):
        try:
            # The root itself without following links: it was real when
            # configured, and a link put in its place since is not followed.
            root_fd = openat2(-100, root, _DIRECTORY_FLAGS, RESOLVE_NO_SYMLINKS)  # AT_FDCWD
        except OSError as exc:
            if exc.errno == errno.ENOSYS:
                openat2.available = False
            return None
        try:
            return openat2(root_fd, rest, flags, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)
        except OSError as exc:
            if exc.errno == errno.ENOSYS:
                openat2.available = False
                return None
            if exc.errno == errno.EAGAIN:
                continue
            if exc.errno in (errno.EXDEV, errno.ELOOP, errno.EPERM):
                return None
            raise
        finally:
            os.close(root_fd)
    return None


def _walk(target: bytes, roots: Roots, flags: int) -> int:
    """Resolve ``target`` (absolute) one component at a time; see the module
    docstring for the rule."""
    todo = _components(target)
    todo.reverse()  # a stack: the next component is last
    stack = [os.open(b"/", _DIRECTORY_FLAGS)]  # descriptors of the directories walked
    where: list[bytes] = []  # the real path of stack[-1]
    links = 0
    try:
        while todo:
            name = todo.pop()
            if name == b".":
                continue
            if name == b"..":
                # Back to the directory we came from (an ancestor of a root
                # at worst, which the next component must leave by a root).
                if len(stack) > 1:  # ".." of "/" is "/"
                    os.close(stack.pop())
                    where.pop()
                continue
            final = not todo
            candidate = [*where, name]
            if final and roots.contains(candidate):
                fd = _open_final(name, stack[-1], flags)
            else:
                # Not a place the resolution may stop: only a link to read,
                # or a directory to pass through, and O_PATH opens nothing.
                try:
                    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=stack[-1])
                except OSError:
                    if final or not roots.allows(candidate):
                        raise OutsideRoots() from None  # nothing said of what is outside
                    raise
            kind = stat.S_IFMT(os.fstat(fd).st_mode)
            if kind == stat.S_IFLNK:
                try:
                    link = os.readlink(b"", dir_fd=fd)
                finally:
                    os.close(fd)
                links += 1
                if links > MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))
                if link.startswith(b"/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                    where.clear()
                todo.extend(reversed(_components(link) or [b"."]))
                continue
            if final and roots.contains(candidate):
                return fd
            if final or not roots.allows(candidate):
                os.close(fd)
                raise OutsideRoots()
            if kind != stat.S_IFDIR:
                os.close(fd)
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
            stack.append(fd)
            where.append(name)
        # Ended on a directory already open (the path ended with "..", "."
        # or a link to a directory): open it again with the caller's flags.
        if not roots.contains(where):
            raise OutsideRoots()
        return os.open(b".", flags | os.O_CLOEXEC, dir_fd=stack[-1])
    finally:
        for fd in stack:
            os.close(fd)


def _open_final(name: bytes, dir_fd: int, flags: int) -> int:
    """Open the last component with the caller's flags, or, when it is a
    symbolic link (which fails them under O_NOFOLLOW: ELOOP, or ENOTDIR
    with O_DIRECTORY), the link itself, to be read."""
    try:
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        if not stat.S_ISLNK(os.fstat(fd).st_mode):
            os.close(fd)
            raise
        return fd
