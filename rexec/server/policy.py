"""Authorization: what the holder of a key may run, and the server's own bounds.

``authorize`` looks at a request before anything happens and either returns
the request as it will run (with the server's timeout and output caps applied)
or raises ``Denied`` with the reason, which is audited and sent as a
command-scoped ``command.denied`` error. Messages name the rule that refused,
never the client's text.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
from collections.abc import Mapping

from rexec.protocol import ErrorCode, Run
from rexec.server.environment import allowed_by_default, refusal, value_refusal
from rexec.server.refusal import Refusal
from rexec.server.settings import KeySpec, Settings


class Denied(Refusal):
    """The request is refused by its key's rules; ``code`` goes on the wire,
    ``reason`` too."""

    @property
    def reason(self) -> str:
        return self.message


@dataclasses.dataclass(frozen=True)
class KeyRules:
    """A loaded key and its rules (from a ``KeySpec``)."""

    name: str
    key: bytes
    allow_argv: tuple[tuple[str, ...], ...] = ()
    allow_shell: bool = True
    allow_pty: bool = True
    allow_transfer: bool = True
    cwd_roots: tuple[str, ...] = ()
    max_timeout: float = 0.0
    #: The names its holder may set; None: see ``env_allowed``.
    env_allow: tuple[str, ...] | None = None

    @classmethod
    def from_spec(cls, spec: KeySpec, key: bytes) -> KeyRules:
        return cls(
            name=spec.name,
            key=key,
            allow_argv=tuple(tuple(shlex.split(prefix)) for prefix in spec.allow_argv),
            allow_shell=spec.allow_shell,
            # Both off by default for a key limited to some programs (an
            # explicit true turns them back on): with a pty, a pager or an
            # editor it may run escapes to a shell; with transfers, it could
            # put its own program in place of an allowed one.
            allow_pty=_unless_limited(spec.allow_pty, spec),
            allow_transfer=_unless_limited(spec.allow_transfer, spec),
            cwd_roots=tuple(os.path.realpath(root) for root in spec.cwd_roots),
            max_timeout=spec.max_timeout,
            env_allow=spec.env_allow,
        )


def _unless_limited(switch: bool | None, spec: KeySpec) -> bool:
    """An explicit switch, or by default true unless ``allow_argv`` is set."""
    return switch if switch is not None else not spec.allow_argv


def _tightest(*limits: float) -> float | None:
    positive = [limit for limit in limits if limit > 0]
    return min(positive) if positive else None


def _allowed(argv: list[str], entry: tuple[str, ...]) -> bool:
    """Whether ``entry`` of ``allow_argv`` allows ``argv``: a prefix of whole
    words, or, when it ends in an empty word (``""``, as in sudoers), the
    whole argv and nothing after it."""
    if entry and entry[-1] == "":
        return tuple(argv) == entry[:-1]
    return tuple(argv[: len(entry)]) == entry


def authorize(run: Run, rules: KeyRules, settings: Settings) -> Run:
    """The request as it will run, or ``Denied``.

    The server's and the key's maximum timeouts clamp the client's (a client may
    only ask for less); the server's output cap likewise. The working
    directory is not looked at here: it is resolved within the roots when
    the command starts (``rexec.server.session``), as a path checked now
    could change before it is used.
    """
    if run.argv is not None:
        argv_bytes = sum(len(arg.encode()) + 1 for arg in run.argv)
        if rules.allow_argv and not any(_allowed(run.argv, entry) for entry in rules.allow_argv):
            raise Denied(ErrorCode.COMMAND_DENIED, f"key {rules.name} may not run this program")
    else:
        argv_bytes = len((run.shell or "").encode())
        if not rules.allow_shell or rules.allow_argv:
            raise Denied(ErrorCode.COMMAND_DENIED, f"key {rules.name} may not run shell strings")
    if argv_bytes > settings.max_argv_bytes:
        raise Denied(
            ErrorCode.COMMAND_DENIED, f"the command exceeds {settings.max_argv_bytes} bytes"
        )
    env_bytes = sum(len(name.encode()) + len(value.encode()) + 2 for name, value in run.env.items())
    if env_bytes > settings.max_env_bytes:
        raise Denied(
            ErrorCode.COMMAND_DENIED, f"the environment exceeds {settings.max_env_bytes} bytes"
        )
    if run.env:
        check_env(run.env, rules, settings)
    if run.pty is not None and not rules.allow_pty:
        raise Denied(ErrorCode.COMMAND_DENIED, f"key {rules.name} may not use a pty")
    timeout = _tightest(run.timeout or 0.0, rules.max_timeout, settings.max_timeout)
    output_limit = run.output_limit
    if settings.max_output > 0:
        output_limit = min(
            output_limit if output_limit is not None else settings.max_output, settings.max_output
        )
    if timeout == run.timeout and output_limit == run.output_limit:
        return run
    return run.model_copy(update={"timeout": timeout, "output_limit": output_limit})


def env_allowed(rules: KeyRules, settings: Settings) -> tuple[str, ...]:
    """The names (patterns) the holder of ``rules`` may set: the key's own
    list; without one, none for a key restricted to programs, else the
    default list and the server's ``env_allow``."""
    if rules.env_allow is not None:
        return rules.env_allow
    if rules.allow_argv:
        return ()
    return allowed_by_default(settings.env_allow)


def check_env(env: Mapping[str, str], rules: KeyRules, settings: Settings) -> None:
    """Raise ``Denied`` (``env.forbidden``) unless every name in ``env`` is
    allowed and every locale value is a locale name. (A key restricted to
    programs lists exact names: PATH, which would choose which file a
    program's name is, only when it names PATH itself.)"""
    reason = refusal(env, env_allowed(rules, settings), f"key {rules.name}") or value_refusal(env)
    if reason is not None:
        raise Denied(ErrorCode.ENV_FORBIDDEN, reason)


def authorize_transfer(rules: KeyRules) -> None:
    """Raise ``Denied`` unless the key may transfer files at all. Where to is
    checked when the file is opened (``rexec.server.transfers``): a path
    checked here could change before it is used."""
    if not rules.allow_transfer:
        raise Denied(ErrorCode.COMMAND_DENIED, f"key {rules.name} may not transfer files")
