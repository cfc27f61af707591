"""Node-set notation, as pdsh and ClusterShell write it: expand
``web[01-20/2]:7000`` into names, and fold names back into ranges.

Expansion contract (``expand``):

* a pattern is split at commas outside brackets: ``a,b[1-2]`` is three names;
* each ``[...]`` holds comma-separated items ``N``, ``N-M`` or ``N-M/STEP``;
  several brackets in one pattern give their cartesian product, left to right;
* zero padding is kept: ``[01-10]`` gives ``01 … 10``; the width is the
  start's (``[1-10]`` is unpadded);
* a bracket whose content holds a ``:`` is an IPv6 literal (``[::1]:7420``)
  and is copied as it is.

Folding (``fold``) is the inverse for display: names that differ only in their
numbers are written as one pattern, ``web[01-03,07]``, ``10.0.[0-3].[1-250]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

_ITEM = re.compile(r"(\d+)(?:-(\d+)(?:/(\d+))?)?")
_DIGITS = re.compile(r"(\d+)")


class NodeSetError(ValueError):
    """A pattern that is not valid node-set notation (the message says where)."""


def split_top_level(text: str) -> list[str]:
    """Split ``text`` at the commas that are outside brackets."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def _range_items(pattern: str, content: str) -> list[str]:
    values: list[str] = []
    for item in content.split(","):
        match = _ITEM.fullmatch(item.strip())
        if not match:
            raise NodeSetError(f"bad range [{content}] in {pattern!r}: expected N, N-M or N-M/STEP")
        start_text, end_text, step_text = match.groups()
        start = int(start_text)
        end = int(end_text) if end_text is not None else start
        step = int(step_text) if step_text is not None else 1
        if end < start or step < 1:
            raise NodeSetError(f"bad range [{content}] in {pattern!r}: empty or backwards")
        width = len(start_text) if start_text.startswith("0") and len(start_text) > 1 else 0
        values.extend(str(n).zfill(width) for n in range(start, end + 1, step))
    return values


def _expand_one(pattern: str) -> Iterator[str]:
    open_at = pattern.find("[")
    if open_at < 0:
        if "]" in pattern:
            raise NodeSetError(f"unbalanced ']' in {pattern!r}")
        yield pattern
        return
    close_at = pattern.find("]", open_at)
    if close_at < 0:
        raise NodeSetError(f"missing ']' in {pattern!r}")
    head, content, tail = (
        pattern[:open_at],
        pattern[open_at + 1 : close_at],
        pattern[close_at + 1 :],
    )
    if ":" in content:  # an IPv6 literal, not a range
        for rest in _expand_one(tail):
            yield f"{head}[{content}]{rest}"
        return
    items = _range_items(pattern, content)
    for value in items:
        for rest in _expand_one(tail):
            yield head + value + rest


def expand(text: str) -> Iterator[str]:
    """Every name ``text`` denotes, in order (lazily: a huge range costs
    nothing until iterated).

    Raises:
        NodeSetError: bad syntax (raised when the bad part is reached).
    """
    for pattern in split_top_level(text):
        yield from _expand_one(pattern)


def _consecutive(a: str, b: str) -> bool:
    same_form = len(a) == len(b) or not (a.startswith("0") or b.startswith("0"))
    return int(b) == int(a) + 1 and same_form


def _number_key(number: str) -> tuple[int, int]:
    return int(number), len(number)


def _fold_numbers(numbers: Iterable[str]) -> str:
    """``["1", "2", "3", "7"]`` → ``"1-3,7"`` (zero padding kept)."""
    runs: list[list[str]] = []
    for number in sorted(set(numbers), key=_number_key):
        if runs and _consecutive(runs[-1][-1], number):
            runs[-1].append(number)
        else:
            runs.append([number])
    return ",".join(run[0] if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs)


def _bracketed(folded: str) -> str:
    return f"[{folded}]" if "-" in folded or "," in folded else folded


def _fold_vectors(vectors: Iterable[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Fold number vectors one dimension at a time, last first: vectors that
    differ only in dimension k (the later ones already folded alike) become
    one, with a range there. ``(0, 1) (0, 2) (1, 1) (1, 2)`` → ``([0-1], [1-2])``."""
    folded: list[tuple[tuple[str, ...], tuple[str, ...]]] = [(v, ()) for v in vectors]
    width = len(folded[0][0]) if folded else 0
    for _ in range(width):
        groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[str]] = {}
        for head, tail in folded:
            groups.setdefault((head[:-1], tail), []).append(head[-1])
        folded = [
            (head, (_bracketed(_fold_numbers(numbers)), *tail))
            for (head, tail), numbers in groups.items()
        ]
    return [tail for _, tail in folded]


def _first_number(part: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(int(re.match(r"\[?(\d+)", p).group(1)) for p in part)  # type: ignore[union-attr]


def fold(names: Iterable[str]) -> str:
    """One compact pattern for ``names`` (the inverse of ``expand`` for
    display), folding every run of digits as ClusterShell folds n-dimensional
    node sets: ``web01:7000 web02:7000`` → ``web[01-02]:7000``;
    ``127.1.0.1 … 127.1.39.250`` → ``127.1.[0-39].[1-250]``. Names holding a
    bracket (IPv6 literals) are kept as they are. Parts come in the order of
    their patterns' first appearance, each sorted by number."""
    patterns: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for name in names:
        if "[" in name:
            patterns.setdefault((name,), [])
            continue
        pieces = _DIGITS.split(name)
        patterns.setdefault(tuple(pieces[0::2]), []).append(tuple(pieces[1::2]))
    parts = []
    for texts, vectors in patterns.items():
        if not vectors:
            parts.append(texts[0])
            continue
        for numbers in sorted(set(_fold_vectors(dict.fromkeys(vectors))), key=_first_number):
            parts.append("".join(t + n for t, n in zip(texts, (*numbers, ""), strict=False)))
    return ",".join(parts)
