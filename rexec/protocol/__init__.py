"""The rexec protocol, sans I/O: bytes in, messages out; messages in, bytes out.

This package contains no networking, process or clock code at all (a test
enforces it): the server, the client and the conformance suite are thin shells
around it. See protocol.md for the normative description.

Its public names are those its private modules list in their ``__all__``;
each is written there once. They are loaded on first use (PEP 562): ``import
rexec.protocol`` costs next to nothing, and a name is looked up in the modules
of ``_MODULES`` in order, those that need no pydantic first, so that a program
can import the package for a constant (the key size) and answer ``--version``
or ``--help`` without building a validator.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the same modules as _MODULES, for type checkers
    from ._command_messages import *  # noqa: F403
    from ._connection import *  # noqa: F403
    from ._discovery import *  # noqa: F403
    from ._errors import *  # noqa: F403
    from ._fields import *  # noqa: F403
    from ._framing import *  # noqa: F403
    from ._handshake import *  # noqa: F403
    from ._handshake_steps import *  # noqa: F403
    from ._limits import *  # noqa: F403
    from ._message_base import *  # noqa: F403
    from ._messages import *  # noqa: F403
    from ._session_messages import *  # noqa: F403
    from ._state import *  # noqa: F403
    from ._transfer_messages import *  # noqa: F403

#: The private modules whose ``__all__`` make up the public names, in the
#: order a name is looked for: the four that import no pydantic first.
_MODULES = (
    "_errors", "_limits", "_handshake", "_discovery",
    "_fields", "_message_base", "_session_messages", "_command_messages", "_transfer_messages",
    "_messages", "_framing", "_state", "_handshake_steps", "_connection",
)  # fmt: skip


def _module(name: str) -> ModuleType:
    # Only our own submodules, by the names in the table above.
    return importlib.import_module(f"{__name__}.{name}")


def _exports() -> dict[str, str]:
    """Every public name and the private module that defines it (loads them all)."""
    return {name: module for module in _MODULES for name in _module(module).__all__}


def __getattr__(name: str) -> object:
    if name == "__all__":
        value: object = sorted(_exports())
    else:
        for module_name in _MODULES:
            module = _module(module_name)
            if name in module.__all__:
                value = getattr(module, name)
                break
        else:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_exports()})
