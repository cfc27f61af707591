"""Where a transfer's path leads (protocol.md 5.6): a relative name from the
server's default directory, a UTF-8 name as the same bytes, and no ``~``
expansion. Judged from the client side, as in ``transfer``.
"""

from __future__ import annotations

from ..case import Context, Observation
from ._registry import case
from ._transfer import (
    observed,
    put,
    terminal_outcome,
)

# --- paths ----------------------------------------------------------------------------------


@case("transfer.path/relative", {"in-default-directory"})
async def path_relative(ctx: Context) -> Observation:
    """put to a relative name: a run without cwd (the server's default directory) finds it with
    test -e."""
    name = ctx.temp_name("rel")
    record = await put(ctx, await ctx.client(), name, b"relative\n")
    if record.done is None:
        return observed(record)
    found = await ctx.path_exists(name)
    return Observation("in-default-directory" if found else "elsewhere")


@case("transfer.path/utf8", {"found"})
async def path_utf8(ctx: Context) -> Observation:
    """put to a name with non-ASCII characters (é, ✓): test -e with the same name, as UTF-8,
    finds it."""
    path = ctx.temp_path("utf8-é✓")
    record = await put(ctx, await ctx.client(), path, b"utf-8\n")
    if record.done is None:
        return observed(record)
    return Observation("found" if await ctx.path_exists(path) else "not-found")


@case("transfer.path/no-tilde", {"error:file.not_found"})
async def path_no_tilde(ctx: Context) -> Observation:
    """put to '~/NAME': no ~ expansion, so file.not_found (no directory named ~), and no NAME in
    the home directory."""
    name = ctx.temp_name("tilde")
    record = await put(ctx, await ctx.client(), f"~/{name}", b"tilde\n")
    outcome = terminal_outcome(record)
    if await ctx.path_exists(name):
        outcome += ",expanded"
    return observed(record, outcome)
