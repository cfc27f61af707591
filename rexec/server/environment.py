"""Which environment names a client may set: an allowlist per key, as sshd's
``AcceptEnv``, above a floor of names that no configuration can allow.

The allowlist is the rule. A key's ``env_allow`` lists the names (``fnmatch``
patterns, case-sensitive) its holder may set; a key that doesn't give one
gets nothing when it is restricted to programs (``allow_argv``), and
``DEFAULT_ENV_ALLOW`` plus the server's ``env_allow`` setting otherwise.
Names nobody thought of are refused by not being listed.

A key restricted to programs lists exact names only (``check_exact``): a
pattern would admit names nobody has checked against those programs.

The floor (``NEVER_ALLOWED``) is defence in depth for a broad pattern such as
``*`` (on a key that may run anything): names that make a program load other
code, start a shell or an interpreter differently, or run a command from its
configuration. They, and
any name outside the portable set ``[A-Za-z_][A-Za-z0-9_]*``, are refused
whatever the configuration says; a config that lists one by name is refused at
start-up. The locale variables' values are names, never paths
(``value_refusal``).
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Iterable, Mapping

#: What a client may set when its key is not restricted to programs and the
#: config adds nothing: the locale (what Debian's sshd accepts by default), the
#: time zone, and the terminal's type, colours and size, so that a remote
#: program formats its output for the local terminal. None of them names a
#: file of code. ``rexec run -t`` and ``rexec shell`` send the terminal type
#: in the pty request, not as a variable.
DEFAULT_ENV_ALLOW = (
    "LANG", "LANGUAGE", "LC_*", "TZ", "TERM", "COLORTERM", "NO_COLOR", "COLUMNS", "LINES",
)  # fmt: skip

#: Names no configuration can allow, for any key. glibc's own list of
#: variables it removes for setuid programs (sysdeps/generic/unsecvars.h, all
#: ``LD_*`` with them), the macOS loader's, the shells' start-up files,
#: imported functions, prompts and trace hooks, the start-up hooks and module
#: paths of common interpreters, every ``GIT_*`` (git's environment can name
#: its config, directories, hooks and the commands it runs), the commands
#: other programs run for us (pagers, editors, ``LESSOPEN``) and the places a
#: program reads its configuration from (``HOME``, ``XDG_*``: a config file
#: can name a command, as git's ``core.fsmonitor`` does).
#:
#: ``TMPDIR`` is not here: it says where a program writes scratch files, not
#: what it reads or runs, and builds need it; a key restricted to programs
#: must still name it exactly to get it.
NEVER_ALLOWED = (
    # The dynamic loader and libc.
    "LD_*", "DYLD_*", "GCONV_PATH", "GETCONF_DIR", "GLIBC_TUNABLES", "HOSTALIASES",
    "LOCALDOMAIN", "LOCPATH", "MALLOC_TRACE", "NIS_PATH", "NLSPATH", "RESOLV_HOST_CONF",
    "RES_OPTIONS", "TZDIR",
    # Shells: start-up files, imported functions (shellshock), loadable
    # builtins, prompts (expanded, so they run $(...)), history written to a
    # file of the client's choosing, the shell programs run for a shell escape.
    "BASH_*", "ENV", "SHELLOPTS", "BASHOPTS", "PS?", "PROMPT_COMMAND", "IFS", "ZDOTDIR",
    "HISTFILE", "SHELL",
    # Interpreters' start-up hooks and module paths.
    "PYTHON*", "PERL*", "RUBY*", "GEM_*", "NODE_*", "LUA_*", "TCLLIBPATH", "PHPRC",
    "PHP_INI_SCAN_DIR", "CLASSPATH", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS",
    # git, all of it.
    "GIT_*",
    # Commands other programs run: pagers, editors, browsers, password prompts,
    # less's input filters and its command-line options (LESS='+!cmd').
    "*PAGER*", "*EDITOR*", "VISUAL", "BROWSER", "*ASKPASS*", "LESS*",
    # Configuration that is code: vim and ex start-up commands and runtime,
    # OpenSSL's config (it loads engines and providers), terminfo entries
    # (parsed from a client's file).
    "VIM*", "GVIMINIT", "EXINIT", "MYVIMRC", "MYGVIMRC", "OPENSSL_*", "TERMINFO*",
    # Where configuration is read from.
    "HOME", "XDG_*",
)  # fmt: skip

#: The locale variables, whose values glibc takes as a path when they hold a
#: '/': a client names a locale, never a file.
LOCALE_NAMES = ("LANG", "LANGUAGE", "LC_*")

_PORTABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_PATTERN = re.compile(r"[A-Za-z0-9_*?\[\]!]+\Z")
_WILDCARD = re.compile(r"[*?\[\]!]")
#: A locale name or a LANGUAGE list of them (``de_DE.UTF-8@euro``, ``fr:en``).
_LOCALE_VALUE = re.compile(r"[A-Za-z0-9_.@:-]*\Z")
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


def value_refusal(env: Mapping[str, str]) -> str | None:
    """Why a value in ``env`` may not be set whatever the key, or None: a
    locale variable (``LOCALE_NAMES``) that is not a plain locale name (only
    ``A-Z a-z 0-9 _ . @ : -``, no ``..``), which glibc would read as a path."""
    for name, value in env.items():
        if _LOCALE.match(name) and (not _LOCALE_VALUE.match(value) or ".." in value):
            return f"{name} must be a locale name (letters, digits and _ . @ : -), not a path"
    return None


def check_exact(names: Iterable[str]) -> None:
    """Raise ``EnvPatternError`` for an entry that is a pattern rather than
    one name: the list of a key restricted to programs names each variable
    its programs are known to read safely, and a pattern admits names nobody
    looked at (``*`` would admit every name off the floor)."""
    for name in names:
        if _WILDCARD.search(name):
            raise EnvPatternError(
                f"env_allow entry {name!r}: a key with allow_argv lists exact names, not patterns"
            )


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
_LOCALE = _matcher(LOCALE_NAMES)


def _never_allowed(name: str) -> bool:
    return not _PORTABLE_NAME.match(name) or _FLOOR.match(name) is not None


def _shown(name: str) -> str:
    if _PORTABLE_NAME.match(name) and len(name) <= _NAME_SHOWN_MAX:
        return name
    return "a name outside the allowed set"
