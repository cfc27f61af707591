"""As whom commands run and within which resource limits: the ``Account``
from the passwd database and the ``ProcessPolicy`` every spawn follows
(spawn.py). rexecd builds the policy from its settings (``run_as``,
``rlimit_*``) once, at start-up.
"""

from __future__ import annotations

import dataclasses
import os
import pwd


@dataclasses.dataclass(frozen=True)
class Account:
    """The account commands run as, from its passwd entry."""

    uid: int
    gid: int
    name: str
    home: str
    shell: str

    @classmethod
    def of_uid(cls, uid: int) -> Account:
        try:
            entry = pwd.getpwuid(uid)
        except KeyError:  # no passwd entry (some containers): what we can tell
            return cls(
                uid,
                os.getgid(),
                os.environ.get("USER", str(uid)),
                os.path.expanduser("~"),
                os.environ.get("SHELL", "/bin/sh"),
            )
        return cls.from_entry(entry)

    @classmethod
    def named(cls, name: str) -> Account:
        """Raises KeyError when there is no such user."""
        return cls.from_entry(pwd.getpwnam(name))

    @classmethod
    def from_entry(cls, entry: pwd.struct_passwd) -> Account:
        return cls(
            entry.pw_uid, entry.pw_gid, entry.pw_name, entry.pw_dir, entry.pw_shell or "/bin/sh"
        )


@dataclasses.dataclass(frozen=True)
class ProcessPolicy:
    """How every command is started: as whom, and within which resource limits.

    ``rlimits`` pairs a ``resource.RLIMIT_*`` with the value set as both soft
    and hard limit. They are applied with prlimit right after the spawn, since
    the alternative, preexec_fn, is unsafe in a threaded process; the command
    runs for a few microseconds before they bind.
    """

    account: Account
    switch_user: bool = False
    rlimits: tuple[tuple[int, int], ...] = ()

    @classmethod
    def current(cls) -> ProcessPolicy:
        return cls(Account.of_uid(os.getuid()))
