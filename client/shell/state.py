"""What a ``rexec shell`` session knows of itself between lines.

The session's real state (directory, variables, functions, aliases, options,
traps, umask) lives in the remote shell, which lasts for the session. After
each line that shell sends a snapshot of it (``Snapshot``), kept here so that
a new shell, after a lost connection or a killed shell, can be made the same
again. Besides: who and where the session is (for the prompt), the last
line's status, and the per-line time limit.
"""

from __future__ import annotations

import dataclasses
import re
import signal

from ..result import ExitStatus

#: Exit status of a line ended by the session's time limit (as coreutils' timeout).
EXIT_TIMEOUT = 124
#: ``set -o`` options a restored shell must not take from the snapshot: line
#: editing would read the command stream as a terminal, job control wants one,
#: the history setting is kept aside by the shell itself, and sh's
#: interactive and stdin are how it was started.
_UNRESTORED_OPTIONS = frozenset({b"emacs", b"vi", b"monitor", b"history", b"interactive", b"stdin"})
_SET_OPTION = re.compile(rb"set [-+]o (\S+)\Z")
_FUNCTION_ATTRIBUTES = re.compile(rb"declare -f(\S*) ")


@dataclasses.dataclass
class RemoteIdentity:
    """Who and where the session is on the server, for the prompt."""

    user: str = ""
    host: str = ""
    home: str = ""


def status_label(status: ExitStatus | int) -> str | None:
    """How the prompt shows an outcome: None for success, else the exit code,
    or the signal's name (``SIGINT``) for 128+N as shells report a command
    killed by signal N, ``timeout`` or ``lost``."""
    if isinstance(status, ExitStatus):
        if status.connection_lost:
            return "lost"
        if status.timed_out:
            return "timeout"
        if status.signal is not None:
            return status.signal_name or f"signal {status.signal}"
        status = status.returncode
    if status == 0:
        return None
    if 128 < status < 128 + signal.NSIG:
        try:
            return signal.Signals(status - 128).name
        except ValueError:
            pass
    return str(status)


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The remote shell's state as it sent it: named sections of shell text
    (``declare -p``, ``declare -f``, ``alias -p`` … for bash; ``set``,
    ``export -p`` … for sh) that start with lines ``MARK NAME``, in the order
    a new shell must run them, and the kind of shell that can (``bash`` or
    ``sh``). It is kept as it came (one arrives after every line) and read
    only when a new shell needs it."""

    shell: str
    text: bytes
    mark: str

    @classmethod
    def whole(cls, shell: str, text: bytes, mark: str) -> Snapshot | None:
        """The snapshot in a ``state`` record's payload, or None unless it is
        whole (it ends with its ``end`` line: one cut short by Ctrl-C is not
        used)."""
        if not text.endswith(f"{mark} end\n".encode()):
            return None
        return cls(shell, text, mark)

    def sections(self) -> list[tuple[str, bytes]]:
        """(name, text) of each section, in order."""
        prefix = self.mark.encode() + b" "
        sections: list[tuple[str, bytes]] = []
        name: str | None = None
        lines: list[bytes] = []
        for line in self.text.split(b"\n"):
            if line.startswith(prefix) and line[len(prefix) :].isalpha():
                if name is not None:
                    sections.append((name, b"\n".join(lines) + b"\n"))
                name, lines = line[len(prefix) :].decode(), []
            elif name is not None:
                lines.append(line)
        return sections

    def with_options_of(self, previous: Snapshot | None) -> Snapshot:
        """This snapshot, with its shell options (``shopt``, ``setopts``)
        taken from ``previous`` when it names them as unchanged since an
        earlier one (``options SEQ``, see remote.bash) and ``previous`` has
        those. Without them (``previous`` is another), a new shell made from
        it keeps the options it starts with (``lacks_options``)."""
        options = self._section(_OPTIONS)
        if options is None or self._section(b"shopt") is not None:
            return self
        if previous is None or previous._section(_OPTIONS) != options:
            return self
        kept = b"".join(
            self._mark_line(name) + body
            for name in (b"shopt", b"setopts")
            if (body := previous._section(name)) is not None
        )
        head = self._mark_line(_OPTIONS) + options
        return dataclasses.replace(self, text=self.text.replace(head, head + kept, 1))

    @property
    def lacks_options(self) -> bool:
        """Whether the shell options this snapshot names are not in it."""
        return self._section(_OPTIONS) is not None and self._section(b"shopt") is None

    def _mark_line(self, name: bytes) -> bytes:
        return self.mark.encode() + b" " + name + b"\n"

    def _section(self, name: bytes) -> bytes | None:
        """The text of the section ``name`` (None without one)."""
        text, line = b"\n" + self.text, b"\n" + self._mark_line(name)
        start = text.find(line)
        if start < 0:
            return None
        start += len(line)
        end = text.find(b"\n" + self.mark.encode() + b" ", start - 1)
        return text[start : end + 1 if end >= 0 else len(text)]

    @property
    def editing_mode(self) -> str | None:
        """How the shell edits lines by its options: "vi" after ``set -o vi``,
        else "emacs"; None when the snapshot has no options."""
        options = self._section(b"setopts")
        if options is None:
            return None
        return "vi" if b"vi" in _editing_modes(options.splitlines()) else "emacs"

    def restore_script(self) -> bytes:
        """Shell text that makes a new shell of the same kind like this one,
        as far as text can; run at its top level, errors hidden (read-only
        variables of the shell itself refuse their old values, as they may)."""
        return b"".join(_restorable(name, text) for name, text in self.sections())


#: The start of the names of rexec's own aliases in the remote shell.
_OWN_ALIAS = b"__rexec_"
#: The section that names the snapshot whose shell options are this one's.
_OPTIONS = b"options"


def _editing_modes(lines: list[bytes]) -> list[bytes]:
    """The line editing modes (vi, emacs) that ``set +o`` lines say are on."""
    modes = (_SET_OPTION.match(line.strip()) for line in lines if line.startswith(b"set -o "))
    return [match[1] for match in modes if match and match[1] in (b"vi", b"emacs")]


def _restorable(name: str, text: bytes) -> bytes:
    lines = text.splitlines()
    if name == _OPTIONS.decode():
        lines = []
    elif name == "setopts":
        # The line editing mode is set by rexec's functions, once they are in
        # place (remote.bash, __rexec_ready): `set -o vi` here would swap the
        # shell's input for readline.
        editing = [b"__rexec_s_editing=" + mode for mode in _editing_modes(lines)]
        lines = [
            line
            for line in lines
            if not ((match := _SET_OPTION.match(line.strip())) and match[1] in _UNRESTORED_OPTIONS)
        ] + editing[:1]
    elif name == "fattrs":
        # "declare -f NAME" would print the function; only attributes matter.
        lines = [line for line in lines if (match := _FUNCTION_ATTRIBUTES.match(line)) and match[1]]
    elif name == "umask":
        lines = [b"umask " + line for line in lines if line.strip()]
    elif name == "aliases":
        # sh's `alias` prints NAME='VALUE'; bash's `alias -p` adds the word.
        lines = [line if line.startswith(b"alias ") else b"alias " + line for line in lines]
        # Not rexec's own (remote.bash keeps the session's key in one): a new
        # shell gets a key of its own.
        lines = [line for line in lines if not line.startswith(b"alias " + _OWN_ALIAS)]
    return b"".join(line + b"\n" for line in lines)


@dataclasses.dataclass
class SessionState:
    """The session as the client knows it (see the module docstring)."""

    identity: RemoteIdentity = dataclasses.field(default_factory=RemoteIdentity)
    #: The remote shell's working directory, as its last line left it.
    cwd: str | None = None
    #: Which shell runs the lines: "bash 5.2.15(1)-release", "sh".
    shell: str = ""
    #: The remote shell's state after the last line (None: not known yet).
    snapshot: Snapshot | None = None
    #: Each line's time limit in seconds (None: none).
    timeout: float | None = None
    #: The last line's status as the remote shell has it ($? in a new shell).
    shell_status: int = 0
    #: The last line's status as a number (what ``exit`` leaves with) …
    last_status: int = 0
    #: … and as the prompt shows it (None: success).
    last_label: str | None = None
    #: How lines are edited: "emacs" (as bash starts) or "vi": the remote
    #: shell's option (``set -o vi``, typed or in a sourced file, in the
    #: snapshot), whose own editor reads no terminal.
    editing_mode: str = "emacs"

    def record(self, status: ExitStatus | int, label: str | None = None) -> int:
        """Remember how the last line ended (``label`` overrides how the
        prompt shows it); return it as a number."""
        self.last_status = status if isinstance(status, int) else status.returncode
        self.last_label = label or status_label(status)
        return self.last_status

    def display_cwd(self) -> str:
        """The working directory for the prompt, with the home shown as ``~``."""
        cwd, home = self.cwd or "?", self.identity.home.rstrip("/")
        if home and (cwd == home or cwd.startswith(home + "/")):
            return "~" + cwd[len(home) :]
        return cwd
