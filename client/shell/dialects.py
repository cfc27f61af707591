"""The kinds of remote shell ``rexec shell`` runs, and how it starts one.

bash (``remote.bash``) where it is the account's login shell, else POSIX sh
(``remote.sh``): each has rexec's functions, sent to it at start-up, and its
own way of quoting a line and of calling eval past a function of that name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from importlib import resources

from .syntax import ansi_c_quote, sh_quote

#: Started by /bin/sh -c on the server, with the control helper's pid and the
#: login shell (the server sets $SHELL from the account): reads the session's
#: key (``channel``) from its stdin (never to pass it on in the environment,
#: were ``key`` imported from it), checks that /proc can reach the helpers,
#: names the shell it starts on the control channel,
#: and starts it with its stdout and stderr hidden (kept on 4 and 3) until
#: rexec's functions are in place: no prompt or start-up noise leaks. An
#: interactive bash keeps a copy of its first stderr as "its terminal" and,
#: after a program killed by a signal, resets that terminal's modes, saying
#: "tcsetattr: Inappropriate ioctl for device" when it is none: a pty master
#: it never uses otherwise (and which gives it no job control) keeps it quiet.
SESSION_COMMAND = """\
exec 3>&2 4>&1 >/dev/null 2>&1
IFS= read -r key || exit 1
ctl=/proc/{control}/fd/0
if ! [ -w "$ctl" ]; then
    if [ -e "$ctl" ]; then
        echo "rexec shell: line mode can't open its helper's pipe here: this server runs commands" \
            "as another account (run_as) and keeps their pipes its own; use --pty" >&3
    else
        echo "rexec shell: this server has no /proc/PID/fd, which line mode needs (try --pty)" >&3
    fi
    exit 1
fi
case {login_shell} in */bash)
    if [ -x "$SHELL" ]; then
        tty=/dev/null
        if {{ : <>/dev/ptmx; }} 2>/dev/null; then tty=/dev/ptmx; fi
        printf '\\000%s shell 0\\nbash\\000' "$key" >"$ctl"
        unset key
        exec "$SHELL" --noediting --norc --noprofile +o history -i 2<>"$tty"
    fi
esac
printf '\\000%s shell 0\\nsh\\000' "$key" >"$ctl"
unset key
exec /bin/sh -i
"""


@dataclasses.dataclass(frozen=True)
class Dialect:
    """How rexec talks to one kind of remote shell."""

    name: str
    #: rexec's functions for it (a file beside this module).
    script: str
    #: Quotes a line's text as one word of this shell.
    quote: Callable[[str], str]
    #: How this shell's eval is called past any function of that name.
    eval_word: str


BASH = Dialect("bash", "remote.bash", ansi_c_quote, "builtin eval")
SH = Dialect("sh", "remote.sh", sh_quote, "eval")


#: What only the start needs, dropped after it: the state snapshot sent after
#: each line (functions and variables included) is that much smaller.
STARTUP_ONLY = (
    "command unset -f __rexec_begin __rexec_ready __rexec_restored;"
    " command unset -v __rexec_s_login"
)


def script(name: str) -> bytes:
    """The text of one of the remote halves beside this module."""
    return resources.files(__package__).joinpath(name).read_bytes()
