"""The servers a batch runs on: ``--hosts`` specs, host files, exclusions.

A target is an ``Address`` (host, port). Contract:

* ``--hosts SPEC`` is node-set notation (``nodeset.expand``), each name
  ``[host][:port]``; a missing port is ``default_port``, a missing host is
  127.0.0.1 (rexecd's default address);
* a host file has one spec a line (ranges allowed); ``#`` starts a comment,
  blank lines are skipped;
* ``@name`` in a spec, host file or exclusion is a group of the groups file
  (``groups``); ``@discover`` probes the network instead;
* an exclusion with a port removes that address; without one it removes the
  host on every port;
* duplicates are dropped, the first occurrence keeps its place.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from ..address import DEFAULT_PORT, Address, parse_address
from ..discovery import DiscoveryError, discover_spec
from .groups import GroupError, Groups
from .nodeset import NodeSetError, expand

DEFAULT_HOST = "127.0.0.1"


class TargetError(ValueError):
    """A spec, host file or exclusion that can't be used (one line)."""


def refuse_pdsh_host_file(specs: Iterable[str]) -> None:
    """pdsh reads ``-w ^FILE`` as a file of hosts; here it would be a host
    named ``^FILE``: say where that went.

    Raises:
        TargetError: a spec (or one of its comma-separated parts) starts with ``^``.
    """
    for spec in specs:
        for part in spec.split(","):
            if part.startswith("^"):
                raise TargetError(
                    f"-w {part}: '^FILE' is pdsh's host file; here it is --hosts-file "
                    f"{part[1:] or 'FILE'} (see 'rexec batch --help')"
                )


def label(address: Address) -> str:
    """How a target is written in output, logs and results: ``host:port``."""
    return str(address)


class DisplayNames:
    """How targets are written for people (``--onall`` line prefixes, ``-b``
    headers, the summary): the host alone when every target has the same
    port, as pdsh and clush write node names; ``host:port`` otherwise, and
    for a target of another port. Records (joblog, results) always use
    ``label``."""

    def __init__(self, targets: Iterable[Address]) -> None:
        ports = {target.port for target in targets}
        self._port = ports.pop() if len(ports) == 1 else None

    def __call__(self, address: Address) -> str:
        return address.host if address.port == self._port else label(address)


def parse_target(name: str, default_port: int = DEFAULT_PORT) -> Address:
    """One expanded name ``[host][:port]`` as an address."""
    if name.startswith(":") and name[1:].isdigit():  # ":7000"; "::1" is an IPv6 address
        name = DEFAULT_HOST + name
    try:
        return parse_address(name, default_port)
    except ValueError as exc:
        raise TargetError(str(exc)) from None


def expand_spec(
    spec: str, default_port: int = DEFAULT_PORT, groups: Groups | None = None
) -> Iterator[Address]:
    """The addresses one ``--hosts`` spec denotes."""
    try:
        if groups is not None:
            spec = groups.expand(spec)
        for name in expand(spec):
            yield parse_target(name, default_port)
    except (NodeSetError, GroupError) as exc:
        raise TargetError(str(exc)) from None


def read_host_file(
    path: str | Path, default_port: int = DEFAULT_PORT, groups: Groups | None = None
) -> Iterator[Address]:
    """The addresses in a host file (see the module docstring)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TargetError(f"cannot read host file {str(path)!r}: {exc}") from None
    for number, line in enumerate(text.splitlines(), 1):
        spec = line.split("#", 1)[0].strip()
        if not spec:
            continue
        try:
            yield from expand_spec(spec, default_port, groups)
        except TargetError as exc:
            raise TargetError(f"{path}:{number}: {exc}") from None


def _excluded(address: Address, exclusions: list[tuple[str, int | None]]) -> bool:
    return any(
        address.host == host and (port is None or address.port == port) for host, port in exclusions
    )


def _exclusion(name: str) -> tuple[str, int | None]:
    has_port = name.startswith("[") and "]:" in name or (name.count(":") == 1)
    address = parse_target(name)
    return address.host, address.port if has_port else None


def resolve_targets(
    specs: Iterable[str] = (),
    host_files: Iterable[str | Path] = (),
    exclude: Iterable[str] = (),
    default_port: int = DEFAULT_PORT,
    groups: Groups | None = None,
) -> list[Address]:
    """The target list: every spec and host file, minus the exclusions
    (node-set specs and groups too), without duplicates, in order of
    appearance.

    Raises:
        TargetError: bad syntax, an unknown group, an unreadable host or
            groups file, or no target left.
    """
    groups = groups or Groups()
    exclusions: list[tuple[str, int | None]] = []
    for spec in exclude:
        try:
            exclusions.extend(_exclusion(name) for name in expand(groups.expand(spec)))
        except (NodeSetError, GroupError) as exc:
            raise TargetError(str(exc)) from None
    seen: dict[Address, None] = {}
    try:
        sources = [discover_spec(spec) or expand_spec(spec, default_port, groups) for spec in specs]
    except DiscoveryError as exc:  # no answer, or no probe sent: a usage error, not a traceback
        raise TargetError(str(exc)) from None
    sources += [read_host_file(path, default_port, groups) for path in host_files]
    for source in sources:
        for address in source:
            if not _excluded(address, exclusions):
                seen.setdefault(address, None)
    if not seen:
        raise TargetError("no targets: give -w/--hosts or --hosts-file (after -x none are left)")
    return list(seen)
