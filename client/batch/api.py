"""The Python API of batches: ``run_batch`` (async generator) and
``run_batch_sync`` (its blocking twin).

    >>> from rexec_client.batch import run_batch_sync
    >>> for result in run_batch_sync(["uname -a"], ["127.0.0.2", "127.0.0.3"],
    ...                              onall=True, key_file="key"):
    ...     print(result.target, result.status.value, result.stdout)

Jobs are shell strings, argv lists or ``Job``s (or an async iterable of
them, or a ``JobSource``); targets are ``host[:port]`` strings or
``Address``es. Options are the fields of ``BatchOptions`` (``max_running``,
``per_host``, ``fanout``, ``onall``, ``timeout``, ``retries``, ``retry_failed``,
``halt`` — a ``HaltPolicy`` or its text —, ``delay``, ``capture`` …).
Results come as jobs finish, one per job (per (job, target) with
``onall``); breaking out of the loop cancels the rest (the connections are
closed, so the servers kill what still runs).
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ..address import Address
from ..api import resolve_key
from ..connection import ClientConnection
from ..dial import DEFAULT_CONNECT_TIMEOUT, DEFAULT_KEEPALIVE_TIMEOUT, connect
from .attempt import OutputCallback
from .engine import Batch, SkipPredicate
from .halt import HaltPolicy
from .options import BatchOptions
from .outcome import JobResult
from .servers import Connector, ServerPool
from .source import Command, JobSource, source_of
from .targets import parse_target


def make_connector(
    key: bytes,
    *,
    ssl: ssl_module.SSLContext | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    keepalive: float | None = None,
    keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT,
) -> Connector:
    """A connector that opens authenticated connections with these settings
    (``keepalive``, ``keepalive_timeout``: as ``connect`` takes them)."""

    async def open_connection(address: Address) -> ClientConnection:
        return await connect(
            address.host,
            address.port,
            key,
            ssl=ssl,
            connect_timeout=connect_timeout,
            keepalive=keepalive,
            keepalive_timeout=keepalive_timeout,
        )

    return open_connection


def make_batch(
    jobs: Iterable[Command] | AsyncIterable[Command] | JobSource,
    targets: Iterable[str | Address],
    *,
    connector: Connector,
    options: BatchOptions,
    on_output: OutputCallback | None = None,
    skip: SkipPredicate | None = None,
) -> Batch:
    """A ``Batch`` ready to run (its ``results()`` starts it)."""
    addresses = [t if isinstance(t, Address) else parse_target(t) for t in targets]
    pool = ServerPool(
        addresses,
        connector,
        per_host=options.per_host,
        reconnects=options.retries,
        fanout=options.fanout,
    )
    return Batch(source_of(jobs), pool, options, on_output=on_output, skip=skip)


async def run_batch(
    jobs: Iterable[Command] | AsyncIterable[Command] | JobSource,
    targets: Iterable[str | Address],
    *,
    key: bytes | None = None,
    key_file: str | Path | None = None,
    ssl: ssl_module.SSLContext | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    keepalive: float | None = None,
    on_output: OutputCallback | None = None,
    **options: Any,
) -> AsyncGenerator[JobResult, None]:
    """Run ``jobs`` on ``targets``; yield each job's ``JobResult`` as it
    finishes (see the module docstring).

    Raises:
        ValueError, KeyFileError: bad options, targets or key.
        JobInputError: a bad job (after the results of the jobs before it).
    """
    if isinstance(options.get("halt"), str):
        options["halt"] = HaltPolicy.parse(options["halt"])
    batch = make_batch(
        jobs,
        targets,
        connector=make_connector(
            resolve_key(key, key_file),
            ssl=ssl,
            connect_timeout=connect_timeout,
            keepalive=keepalive,
        ),
        options=BatchOptions(**options),
        on_output=on_output,
    )
    async for result in batch.results():
        yield result


def run_batch_sync(
    jobs: Iterable[Command], targets: Iterable[str | Address], **kwargs: Any
) -> Iterator[JobResult]:
    """``run_batch`` for code without an event loop: a generator of results
    as jobs finish, driving a private event loop between items."""
    loop = asyncio.new_event_loop()
    results = run_batch(jobs, targets, **kwargs)
    try:
        while True:
            try:
                yield loop.run_until_complete(anext(results))
            except StopAsyncIteration:
                return
    finally:
        loop.run_until_complete(results.aclose())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
