"""Shell text on the client side: quoting for the remote shell, and a quick
look at whether a typed line is certainly complete.

Whether a line is complete is the remote shell's own decision (its parser,
with the session's options, see ``remote.bash``): asking costs a fork there, so
``surely_complete`` answers the common case here, conservatively. It says yes
only for text that has no construct that can span lines: quotes must be
closed, and any nesting (``$(``, backquotes, ``${``, ``$[``, braces, parentheses, here
documents, reserved words that open a compound command) or a trailing ``|``,
``&&`` or ``||`` sends the text to the remote parser instead.

A trailing backslash is the one case the remote parser can't report (``bash
-n`` takes backslash-newline at the end of the text as nothing), so
``ends_in_continuation`` finds it here.
"""

from __future__ import annotations

import enum
import re

#: Words that open a compound command, and ones that continue one.
_RESERVED = frozenset(
    ["if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac"]
    + ["select", "function", "coproc", "{", "}", "[[", "]]"]
)
#: Characters of an unquoted word that may begin nesting.
_NESTING = set("`()")
_OPERATOR_END = re.compile(r"(\|\||&&|\||\|&)\s*\Z")
_PRINTABLE = set(range(0x20, 0x7F)) - {ord("'"), ord("\\"), ord("!")}


def ansi_c_quote(text: str) -> str:
    """``text`` as one bash word ``$'...'`` on one line, every byte outside
    printable ASCII (and ``'``, ``\\``, ``!``, which history expansion would
    see) escaped as ``\\xHH``: what bash reads is exactly ``text``'s UTF-8."""
    return (
        "$'"
        + "".join(chr(byte) if byte in _PRINTABLE else f"\\x{byte:02x}" for byte in text.encode())
        + "'"
    )


def sh_quote(text: str) -> str:
    """``text`` as one POSIX shell word in single quotes (newlines kept)."""
    return "'" + text.replace("'", "'\\''") + "'"


class _State(enum.Enum):
    PLAIN = enum.auto()
    SINGLE = enum.auto()
    DOUBLE = enum.auto()
    ANSI_C = enum.auto()
    COMMENT = enum.auto()


def _scan(text: str) -> tuple[_State, bool, bool]:
    """Where ``text`` ends up: the quoting state at its end, whether it ends
    with an unquoted backslash, and whether it has anything that can nest or
    continue (see the module docstring)."""
    state = _State.PLAIN
    nesting = False
    word = ""
    index = 0
    while index < len(text):
        char = text[index]
        index += 1
        if state is _State.COMMENT:
            if char == "\n":
                state = _State.PLAIN
            continue
        if state is _State.SINGLE:
            state = _State.PLAIN if char == "'" else state
            continue
        if state in (_State.DOUBLE, _State.ANSI_C):
            closing = '"' if state is _State.DOUBLE else "'"
            if char == "\\":
                if index == len(text):
                    return state, True, nesting
                index += 1
            elif char == closing:
                state = _State.PLAIN
            elif state is _State.DOUBLE and (char == "`" or text.startswith("$(", index - 1)):
                nesting = True
            continue
        # Plain text.
        if char == "\\":
            if index == len(text):
                return state, True, nesting
            index += 1
            word += "x"
            continue
        if char.isspace() or char in ";&|<>":
            if word in _RESERVED:
                nesting = True
            word = ""
            if char == "<" and text.startswith("<", index):
                if text.startswith("<<", index):
                    index += 2  # <<<, a here-string, stays on its line
                else:
                    nesting = True  # a here-document
            continue
        if char == "#" and not word:
            state = _State.COMMENT
            continue
        if char == "'":
            state = _State.ANSI_C if word.endswith("$") else _State.SINGLE
        elif char == '"':
            state = _State.DOUBLE
        elif char in _NESTING or text.startswith(("${", "$["), index - 1):
            nesting = True
        word += char
    if word in _RESERVED:
        nesting = True
    return state, False, nesting


def ends_in_continuation(text: str) -> bool:
    """Whether ``text`` ends with a backslash that joins the next line."""
    state, backslash, _ = _scan(text)
    return backslash and state is not _State.SINGLE


def surely_complete(text: str) -> bool:
    """True when ``text`` is certainly a complete command line; False when
    the remote shell's parser must tell (see the module docstring)."""
    state, backslash, nesting = _scan(text)
    if nesting or backslash or state not in (_State.PLAIN, _State.COMMENT):
        return False
    return not _OPERATOR_END.search(text)
