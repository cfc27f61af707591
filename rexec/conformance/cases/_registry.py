"""The case registry: each area module registers its cases on import."""

from __future__ import annotations

import ast
import inspect
import sys
import textwrap
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


def _docstring(function: CaseFunction) -> str | None:
    """``function``'s docstring, white space folded ("" without one). Under
    ``python -OO``, which drops docstrings, it is read from the source; None
    when there is no source to read."""
    doc = function.__doc__
    if doc is None and sys.flags.optimize >= 2:
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
        except (OSError, TypeError):
            return None
        node = tree.body[0]
        assert isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef)
        doc = ast.get_docstring(node)
    return " ".join((doc or "").split())


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

    Raises:
        ValueError: the function has no docstring.
    """

    def wrap(function: CaseFunction) -> CaseFunction:
        doc = _docstring(function)
        if doc == "":
            raise ValueError(f"case {case_id} has no docstring to describe it")
        if doc is None:  # python -OO and no source: the id stands in
            description = case_id
        else:
            description = doc if facts is None else doc.format_map(facts)
        register(case_id, description, expected, function, timeout=timeout, level=level)
        return function

    return wrap
