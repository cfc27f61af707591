"""The case registry: each area module registers its cases on import."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping

from ..case import Case, CaseFunction
from ..requirements import Level, requirement

REGISTRY: list[Case] = []


def register(
    case_id: str,
    description: str,
    expected: Iterable[str],
    function: CaseFunction,
    *,
    timeout: float = 5.0,
    level: Level | None = None,
    area: str | None = None,
) -> Case:
    """Add a case. Ids are unique and name a known requirement; its area is
    the module that defines ``function`` unless ``area`` names another.

    Raises:
        ValueError: a duplicate id. KeyError: an unknown requirement id.
    """
    requirement(case_id)  # fail at import on a typo, not at report time
    if any(existing.id == case_id for existing in REGISTRY):
        raise ValueError(f"duplicate case id {case_id}")
    area = area or function.__module__.rsplit(".", 1)[-1]
    new = Case(case_id, description, frozenset(expected), function, timeout, level, area)
    REGISTRY.append(new)
    return new


def case(
    case_id: str,
    expected: Iterable[str],
    *,
    timeout: float = 5.0,
    level: Level | None = None,
    facts: Mapping[str, object] | None = None,
) -> Callable[[CaseFunction], CaseFunction]:
    """Decorator form of ``register`` for a case without variants: the id and
    the outcomes that pass, above the function; its docstring describes the
    case (white space folded). With ``facts``, the docstring's ``{NAME}``
    fields are filled from them: the sizes a case computes from its constants.
    Under ``python -OO``, which drops docstrings, the id stands in.

    Raises:
        ValueError: the function has no docstring.
    """

    def wrap(function: CaseFunction) -> CaseFunction:
        doc = " ".join((function.__doc__ or "").split())
        if doc:
            description = doc.format_map(facts) if facts is not None else doc
        elif sys.flags.optimize >= 2:  # python -OO dropped the docstrings
            description = case_id
        else:
            raise ValueError(f"case {case_id} has no docstring to describe it")
        register(case_id, description, expected, function, timeout=timeout, level=level)
        return function

    return wrap
