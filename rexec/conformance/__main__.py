"""``rexec-conformance``: check a server (or, with ``--serve`` or ``--client``, a
client) against protocol.md.

Exit status:
    0  every MUST case passed (with --strict: every SHOULD case too)
    1  a MUST case failed (with --strict: or a SHOULD case); --client: a scenario failed
    2  usage error (bad flags, unreadable key file, bad TLS files)
    3  the server could not be reached at all (refused, unresolvable, no hello)
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import ssl
import sys
import time
from pathlib import Path

from .case import Options
from .cases import all_cases
from .coverage import coverage_line, uncovered
from .report import Console, list_cases, write_json, write_junit
from .runner import exit_status, run_suite, select
from .serve import HANDSHAKES
from .wire import Target

DEFAULT_PORT = 7420
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
#: The Options that tell the suite the server's settings, each given by the
#: flag of the same name (--auth-deadline, --kill-grace, ..., --stall-timeout).
SERVER_SETTINGS = tuple(
    field.name for field in dataclasses.fields(Options) if field.name not in ("key", "multiplier")
)


class UsageError(Exception):
    """A one-line reason the command line can't be acted on."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rexec-conformance",
        description="Check a rexec server against protocol.md, case by case (ids are protocol.md "
        "requirement ids), or play a scripted server for a client under test.",
        epilog="example: rexec-conformance --key-file ~/.config/rexec/key 127.0.0.1:7420 "
        "--junit report.xml",
    )
    parser.add_argument("target", nargs="?", help="HOST[:PORT] of the server (default port 7420)")
    parser.add_argument(
        "--key-file",
        type=Path,
        help="shared key file (default: $REXEC_KEY_FILE or ~/.config/rexec/key)",
    )
    tls = parser.add_argument_group("TLS")
    tls.add_argument("--tls-ca", type=Path, help="CA bundle to verify the server (enables TLS)")
    tls.add_argument("--tls-cert", type=Path, help="client certificate (PEM)")
    tls.add_argument("--tls-key", type=Path, help="client private key (PEM)")
    tls.add_argument("--tls-server-name", help="name to verify in the server certificate")
    pick = parser.add_argument_group("selection")
    pick.add_argument(
        "--cases",
        action="append",
        default=[],
        metavar="GLOB",
        help="run only cases whose id matches (repeatable, comma-separated)",
    )
    pick.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="skip cases whose id matches (repeatable, comma-separated)",
    )
    pick.add_argument("--list", action="store_true", help="list the selected cases and exit")
    timing = parser.add_argument_group(
        "timing (the server's settings, for cases that wait on them)"
    )
    timing.add_argument(
        "--timeout-multiplier",
        type=float,
        default=1.0,
        help="scale every wait and case timeout (slow machines, CI)",
    )
    timing.add_argument(
        "--auth-deadline",
        type=float,
        default=10.0,
        help="the server's authentication deadline in seconds (default 10)",
    )
    timing.add_argument(
        "--kill-grace",
        type=float,
        default=2.0,
        help="the server's TERM-to-KILL grace in seconds (default 2)",
    )
    timing.add_argument(
        "--drain-grace",
        type=float,
        default=2.0,
        help="the server's drain grace in seconds (default 2)",
    )
    for name, what in (
        ("frame", "a frame may take from its first byte to its last"),
        ("idle", "an authenticated connection may stay silent with nothing running"),
        ("stall", "a client may leave output unread"),
    ):
        timing.add_argument(
            f"--{name}-timeout",
            type=float,
            metavar="SECONDS",
            help=f"the server's {name} timeout: seconds {what} (unset: its case is unsupported)",
        )
    out = parser.add_argument_group("reports")
    out.add_argument("--json", metavar="FILE", help="write a JSON report with a wire log per case")
    out.add_argument("--junit", metavar="FILE", help="write JUnit XML")
    out.add_argument("--strict", action="store_true", help="SHOULD failures also fail the run")
    out.add_argument("-v", "--verbose", action="store_true", help="details for passing cases too")
    serve = parser.add_argument_group("client mode")
    serve.add_argument(
        "--serve",
        type=int,
        metavar="PORT",
        help="play the scripted server on PORT (0: any) for a client under test",
    )
    serve.add_argument("--serve-host", default="127.0.0.1", help="address for --serve")
    serve.add_argument(
        "--client",
        metavar="ADAPTER",
        help="judge a client: run ADAPTER (a command line) against the scripted server once "
        "per scenario, with HOST:PORT NAME... appended and REXEC_KEY_FILE set (see "
        "rexec/conformance/client_check.py for what it must print)",
    )
    serve.add_argument(
        "--serve-handshake",
        choices=HANDSHAKES,
        default="ok",
        help="bad-mac: a wrong auth_ok mac; altered-hello: an auth_ok mac over "
        "another hello; version-1: offer only version 1",
    )
    return parser


def parse_target(text: str) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT``, ``[V6]`` or ``[V6]:PORT``."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise UsageError(f"bad address {text!r}")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    try:
        port = int(port_text) if port_text else DEFAULT_PORT
    except ValueError:
        raise UsageError(f"bad port in {text!r}") from None
    if not host or not 0 < port < 65536:
        raise UsageError(f"bad address {text!r}")
    return host, port


def load_key(path: Path | None) -> bytes:
    from rexec.keyfile import KeyFileError, default_key_path
    from rexec.keyfile import load_key as load

    try:
        return load(path or default_key_path())
    except KeyFileError as exc:
        raise UsageError(str(exc)) from None


def tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not (args.tls_ca or args.tls_cert or args.tls_key):
        return None
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    try:
        if args.tls_ca:
            context.load_verify_locations(cafile=args.tls_ca)
        if args.tls_cert:
            context.load_cert_chain(args.tls_cert, args.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot load TLS files: {exc}") from None
    return context


def _patterns(values: list[str]) -> list[str]:
    return [p for value in values for p in value.split(",") if p]


async def preflight(target: Target, key: bytes, timeout: float) -> str | None:
    """One handshake before the run; the one-line reason it failed, or None."""
    from .case import Context
    from .client import SetupError

    ctx = Context(target, Options(key=key, multiplier=timeout / 5.0))
    try:
        await ctx.client()
    except SetupError as exc:
        return str(exc)
    except (OSError, TimeoutError) as exc:
        return f"cannot reach {target.host}:{target.port}: {exc}"
    finally:
        await ctx.cleanup()
    return None


def run(args: argparse.Namespace) -> int:
    cases = select(all_cases(), _patterns(args.cases), _patterns(args.exclude))
    if args.list:
        list_cases(cases, sys.stdout)
        # stdout stays one case a line, for scripts; the coverage goes to stderr.
        print(coverage_line(all_cases()), file=sys.stderr)
        return 0
    if args.timeout_multiplier <= 0:
        raise UsageError("--timeout-multiplier must be positive")
    if not args.target:
        raise UsageError("a target HOST[:PORT] is required (or --serve PORT, or --list)")
    if not cases:
        raise UsageError("no case matches the selection (see --list)")
    host, port = parse_target(args.target)
    key = load_key(args.key_file)
    target = Target(host, port, tls_context(args), args.tls_server_name)
    told = {name: getattr(args, name) for name in SERVER_SETTINGS}
    options = Options(key=key, multiplier=args.timeout_multiplier, **told)
    reason = asyncio.run(preflight(target, key, 5.0 * args.timeout_multiplier))
    if reason is not None:
        print(f"rexec-conformance: {reason}", file=sys.stderr)
        return EXIT_UNREACHABLE
    console = Console(sys.stdout, verbose=args.verbose)
    started = time.monotonic()
    results = asyncio.run(run_suite(cases, target, options, console.result))
    elapsed = time.monotonic() - started
    console.summary(results, elapsed)
    print(coverage_line(all_cases()), flush=True)
    meta = {
        "target": f"{host}:{port}",
        "tls": target.tls is not None,
        "elapsed": round(elapsed, 3),
        "multiplier": args.timeout_multiplier,
        "strict": args.strict,
        "requirements_without_case": uncovered(all_cases()),
    }
    if args.json:
        write_json(args.json, results, meta)
    if args.junit:
        write_junit(args.junit, results)
    return exit_status(results, strict=args.strict)


def check_client(args: argparse.Namespace) -> int:
    """The ``--client`` entry point: 0 when every scenario passes, else 1."""
    from rexec.keyfile import default_key_path

    from .client_check import check_client as run_checks

    key = load_key(args.key_file)
    if args.timeout_multiplier <= 0:
        raise UsageError("--timeout-multiplier must be positive")
    key_file = (args.key_file or default_key_path()).resolve()
    results = asyncio.run(run_checks(args.client, key, key_file, args.timeout_multiplier))
    for result in results:
        verdict = "pass" if result.passed else "fail"
        rules = ", ".join(result.scenario.rules)
        print(f"{verdict:<6} client/{result.scenario.id} [{rules}]", flush=True)
        for fault in result.faults:
            print(f"           {fault}")
    failed = sum(not r.passed for r in results)
    print(f"{len(results)} client scenarios: {len(results) - failed} pass, {failed} fail")
    if args.json:
        Path(args.json).write_text(json.dumps([r.to_json() for r in results], indent=2))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 on bad flags
    try:
        if args.client is not None:
            return check_client(args)
        if args.serve is not None:
            from .serve import serve_forever

            key = load_key(args.key_file)
            return serve_forever(args.serve_host, args.serve, key, args.serve_handshake)
        return run(args)
    except UsageError as exc:
        print(f"rexec-conformance: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. --list | head
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
