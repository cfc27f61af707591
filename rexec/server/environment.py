"""Which environment names a client may set: an allowlist per key, as sshd's
``AcceptEnv``, above a floor of names that no configuration can allow.

The allowlist is the rule. A key's ``env_allow`` lists the names (``fnmatch``
patterns, case-sensitive) its holder may set; a key that doesn't give one
gets nothing when it is restricted to programs (``allow_argv``), and
``DEFAULT_ENV_ALLOW`` plus the server's ``env_allow`` setting otherwise.
Names nobody thought of are refused by not being listed.

The floor (``NEVER_ALLOWED``) is defence in depth for a broad pattern such as
``*``: names that make a program load other code, start a shell or an
interpreter differently, or run a command from its configuration. They, and
any name outside the portable set ``[A-Za-z_][A-Za-z0-9_]*``, are refused
whatever the configuration says; a config that lists one by name is refused at
start-up.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Iterable

#: What a client may set when its key is not restricted to programs and the
#: config adds nothing: the locale (what Debian's sshd accepts by default), the
#: time zone, and the terminal's type, colours and size, so that a remote
#: program formats its output for the local terminal. None of them names a
#: file of code. ``rexec run -t`` and ``rexec shell`` send the terminal type
#: in the pty request, not as a variable.
DEFAULT_ENV_ALLOW = (
    "LANG", "LANGUAGE", "LC_*", "TZ", "TERM", "COLORTERM", "NO_COLOR", "COLUMNS", "LINES",
)  # fmt: skip

#: Names no configuration can allow. glibc's own list of variables it removes
#: for setuid programs (sysdeps/generic/unsecvars.h, all ``LD_*`` with them;
#: ``TMPDIR`` aside: it names a directory, not code), the macOS loader's, the
#: shells' start-up files, imported functions and trace hooks, the start-up
#: hooks of common interpreters, and git's ways to run a configured command.
NEVER_ALLOWED = (
    # The dynamic loader and libc.
    "LD_*", "DYLD_*", "GCONV_PATH", "GETCONF_DIR", "GLIBC_TUNABLES", "HOSTALIASES",
    "LOCALDOMAIN", "LOCPATH", "MALLOC_TRACE", "NIS_PATH", "NLSPATH", "RESOLV_HOST_CONF",
    "RES_OPTIONS", "TZDIR",
    # Shells: start-up files, imported functions (shellshock), xtrace's PS4.
    "BASH_ENV", "ENV", "BASH_FUNC_*", "SHELLOPTS", "BASHOPTS", "PS4", "PROMPT_COMMAND", "IFS",
    "ZDOTDIR",
    # Interpreters' start-up hooks and module paths.
    "PYTHON*", "PERL5OPT", "PERL5LIB", "PERLLIB", "PERL5DB", "RUBYOPT", "RUBYLIB",
    "NODE_OPTIONS", "NODE_PATH", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS",
    # git: configuration from the environment (core.fsmonitor, …) and helpers it runs.
    "GIT_CONFIG*", "GIT_EXEC_PATH", "GIT_SSH", "GIT_SSH_COMMAND", "GIT_ASKPASS",
    "GIT_PROXY_COMMAND", "GIT_EXTERNAL_DIFF", "GIT_PAGER", "GIT_EDITOR",
)  # fmt: skip

_PORTABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_PATTERN = re.compile(r"[A-Za-z0-9_*?\[\]!]+\Z")
#: Longest name a refusal message repeats (the message stays short).
_NAME_SHOWN_MAX = 64


class EnvPatternError(ValueError):
    """A configured pattern can never match, or lies inside the floor."""


def allowed_by_default(extra: Iterable[str]) -> tuple[str, ...]:
    """The list of a key that gives none and may run any program."""
    return (*DEFAULT_ENV_ALLOW, *extra)


def refusal(names: Iterable[str], allow: tuple[str, ...], whose: str) -> str | None:
    """Why one of ``names`` may not be set under ``allow``, or None.

    The message names the refused name only when it is a short portable name
    (so it can't carry anything else back); ``whose`` names the key.
    """
    allowed = _matcher(allow)
    for name in names:
        if _never_allowed(name):
            return f"{_shown(name)} may never be set by a client"
        if not allowed.match(name):
            return f"{whose} may not set {_shown(name)}"
    return None


def check_patterns(patterns: Iterable[str]) -> None:
    """Raise ``EnvPatternError`` for a pattern that can only ever name
    refused names: characters outside the portable set, or a name or family
    inside the floor (``LD_PRELOAD``, ``BASH_FUNC_*``)."""
    for pattern in patterns:
        if not _PATTERN.match(pattern):
            raise EnvPatternError(
                f"env_allow pattern {pattern!r}: names are letters, digits and _ "
                "(with * ? [ ] as wildcards)"
            )
        if _FLOOR.match(pattern):
            raise EnvPatternError(
                f"env_allow pattern {pattern!r} names variables that can never be allowed "
                "(they make programs load or run other code; see README, Security)"
            )


@functools.lru_cache(maxsize=64)
def _matcher(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """One regular expression for a list of patterns (a list of keys and
    settings in force: few, so they are compiled once each)."""
    if not patterns:
        return re.compile(r"(?!)")  # matches nothing
    return re.compile("|".join(fnmatch.translate(pattern) for pattern in patterns))


_FLOOR = _matcher(NEVER_ALLOWED)


def _never_allowed(name: str) -> bool:
    return not _PORTABLE_NAME.match(name) or _FLOOR.match(name) is not None


def _shown(name: str) -> str:
    if _PORTABLE_NAME.match(name) and len(name) <= _NAME_SHOWN_MAX:
        return name
    return "a name outside the allowed set"
