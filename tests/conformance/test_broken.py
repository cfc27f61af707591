"""The suite must be able to fail: each breakage of the fake server is caught
by the right case ids, and the unbroken fake server passes."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from forkserver import FORK_SERVER
from run_once import once_per_run

from rexec.conformance import Options, Result, Verdict, all_cases
from rexec.conformance.runner import budget

from .broken_server import FLAGS
from .conftest import FAKE_TIMING, FakeServer, run_cases, run_cases_async, start_fake, stop_fake

#: Rounds of every breakage: a breakage caught only some of the time is a
#: flaky case, a bug. CI runs one round; REXEC_BREAKAGE_ROUNDS=3 hunts flakes.
ROUNDS = int(os.environ.get("REXEC_BREAKAGE_ROUNDS", "1"))

#: Broken servers checked at once: most of a breakage run is spent waiting for
#: a reaction that never comes (a few seconds of wall time, hardly any CPU),
#: so they overlap well even on 2 cores.
PARALLEL = 24

#: flag -> timeout multiplier for its cases, where they can only end by
#: running out of time while an endless command's output streams at full
#: speed (a fake that never caps output: three processes spinning for the
#: whole wait). The shorter wait gives the same verdict (more than 1000
#: bytes, no capped exit) for a fifth of the CPU.
MULTIPLIER = {"ignore_output_limit": 0.2}


#: flag -> the case ids that must fail (non-strict for SHOULD cases) against it.
CAUGHT_BY: dict[str, set[str]] = {
    "accept_negative_length": {
        "frame.length.negative/00000000",
        "frame.length.negative/ffffffff",
        "frame.length.negative/00000080",
        "frame.length.negative/pre-auth",
    },
    "no_header_limit": {
        "frame.length.limit/over",
        "frame.length.limit/pre-auth",
        "frame.length.limit/http",
        "frame.length.limit/tls-client-hello",
    },
    "off_by_one_limit": {"frame.length.limit/equal"},
    "no_body_limit": {"frame.body.limit"},
    "fragile_reader": {
        "frame.stream.chunking/every-byte",
        "frame.stream.chunking/odd-sizes",
        "frame.stream.chunking/split-length",
        "frame.stream.chunking/many-in-one-write",
        "frame.header.json/after-valid-frame",
    },
    "lenient_utf8": {"frame.header.json/bad-utf8"},
    "exit_without_signal": {"frame.header.schema/server-frames"},
    "repeated_member": {"frame.header.schema/server-frames"},
    "unknown_code_fatal": {"error.unknown.accept/server"},
    "lax_schema": {
        f"frame.header.schema/{v}"
        for v in (
            "missing-member",
            "unknown-member",
            "string-for-int",
            "float-for-int",
            "negative-int",
            "int-for-bool",
            "nul",
            "argv-and-shell",
        )
    }
    | {"frame.body.size/on-ping", "message.extensible/closed-run"},
    "generic_header_error": {
        "frame.header.json/not-json",
        "frame.header.json/truncated-json",
        "frame.header.json/bad-utf8",
        "frame.header.object/array",
        "frame.header.object/string",
        "frame.header.object/number",
        "frame.header.object/null",
        "frame.header.type/missing",
        "frame.header.type/unknown",
        "frame.header.type/non-string",
        "error.message.no_echo/unknown-type",
        "error.message.no_echo/bad-json",
    },
    "echo_input": {
        "error.message.no_echo/unknown-type",
        "error.message.no_echo/schema",
        "error.message.no_echo/bad-json",
    },
    "first_member_wins": {"frame.header.schema/duplicate-member"},
    "require_data_size": {"frame.body.size/absent-is-zero"},
    "nan_is_invalid": {"frame.header.json/nan", "frame.header.json/infinity-in-unknown-member"},
    "unbounded_integers": {"message.integers/seq-2-pow-53", "message.integers/seq-2-pow-64"},
    "big_endian": {"frame.length.format", "handshake.hello.first"},
    "no_hello": {"handshake.hello.first"},
    "ignore_version": {"handshake.version/unsupported"},
    "v1_auth_invalid": {"handshake.version/version-1-auth"},
    "ignore_features": {"handshake.features/not-offered"},
    "weak_mac": {"auth.transcript/version-1-mac"},
    "unbound_ok": {"auth.binding/unbound"},
    "ignore_end_digest": {"transfer.put.end/digest-at-end"},
    "resume_from_zero": {"transfer.put.resume/after-cancel"},
    "get_offset_ignored": {"transfer.get.offset/tail"},
    "no_auth_required": {
        "handshake.order/run-before-auth",
        "handshake.order/ping-before-auth",
        "auth.before.anything/pipelined-run",
    },
    "accept_any_mac": {
        "auth.mac.verify/wrong-key",
        "auth.before.anything/after-bad-auth",
        "auth.transcript/altered-hello",
        "auth.transcript/version-1-mac",
        "auth.binding/other-binding",
        "auth.binding/unbound",
        "auth.binding/relayed-ends",
        "auth.nonce.fresh/replay",
    },
    # (A replayed auth fails on any server now: it is bound to the first
    # connection's ends. The distinct-nonce case still catches a fixed nonce.)
    "fixed_nonce": {"auth.nonce.fresh/distinct"},
    "bad_server_mac": {"auth.mutual/server-proof"},
    "no_auth_deadline": {"auth.deadline"},
    "leak_key": {"auth.key.secret"},
    "argv_via_shell": {"command.argv/no-shell"},
    "shell_split": {"command.argv/shell"},
    "ignore_cwd": {"command.cwd/given", "command.cwd/invalid"},
    "drop_env": {
        "command.env/added",
        "command.env/forbidden-LD_PRELOAD",
        "command.env/forbidden-IFS",
    },
    "allow_forbidden_env": {
        "command.env/forbidden-LD_PRELOAD",
        "command.env/forbidden-BASH_ENV",
        "command.env/forbidden-IFS",
        "command.env/forbidden-ENV",
    },
    "spawn_errors_as_exit": {
        "command.spawn.failure/not-found",
        "command.spawn.failure/permission-denied",
        "command.terminal.one/spawn-error",
    },
    "no_process_group": {"command.process.group"},
    "signal_leader_only": {"signal.group"},
    "no_id_check": {
        "command.id.increasing/repeated",
        "command.id.increasing/lower",
        "command.id.unknown/ahead",
    },
    "strict_ended": {"command.id.unknown/ended-dropped", "cancel.kill.tree/after-exit"},
    "double_terminal": {"command.terminal.one/exit"},
    "output_before_started": {"command.started.first", "command.terminal.one/exit"},
    "exit_before_output": {"exit.after.output"},
    "buffer_output": {"output.streams.apart/live"},
    "merge_stderr": {"output.streams.apart/interleaved"},
    "text_mode_output": {"frame.body.binary/stdin-roundtrip", "frame.body.binary/output"},
    "exit_code_off_by_one": {f"exit.code/{c}" for c in (0, 1, 2, 42, 127, 128, 200, 255)},
    "truncate_exit_code": {"exit.code/128", "exit.code/200", "exit.code/255"},
    "signal_as_exit_code": {
        "exit.signal.reported/SIGKILL",
        "exit.signal.reported/SIGTERM",
        "exit.signal.reported/SIGUSR1",
        "exit.signal.reported/SIGINT",
        "exit.timed_out",
    },
    "bad_counts": {"exit.counts"},
    "close_on_command_error": {"error.command.scoped"},
    "drop_when_paused": {"output.backpressure/lossless"},
    "unbounded_buffer": {"output.backpressure/blocks"},
    "huge_frames": {"limits.announced/server-frames"},
    "ignore_output_limit": {"output.limit", "exit.output_capped", "output.limit/both-streams"},
    "capped_at_limit": {"output.limit/exact", "exit.output_capped/exact"},
    "cap_closes_pipes": {"output.limit/sigterm"},
    "inherit_ignored_signals": {
        "command.signals.default/proc-status",
        "command.signals.default/SIGINT",
        "command.signals.default/SIGQUIT",
    },
    "no_credit_grant": {"stdin.credit.grant/through-cat"},
    "no_flow_control": {"stdin.credit/exceeded"},
    "blocking_stdin_write": {"stdin.credit.grant/reader-not-blocked"},
    "strict_stdin": {
        "command.frames.dropped/stdin-without-stdin",
        "command.frames.dropped/stdin-after-eof",
    },
    "stdin_pipe_always": {"stdin.closed.default/dev-null"},
    "ignore_stdin_eof": {"stdin.eof/closes", "stdin.credit/pipelined"},
    "kill_leader_only": {
        "timeout.kill.tree/term",
        "timeout.kill.tree/kill",
        "cancel.kill.tree/mid-stream",
        "disconnect.kill",
    },
    "leave_running_on_timeout": {
        "timeout.kill.tree/term",
        "timeout.kill.tree/kill",
        "timeout.kill.tree/grace",
    },
    "no_kill_grace": {"timeout.kill.tree/grace"},
    "timeout_in_ms": {"message.integers/seconds"},
    "duration_in_ms": {"message.integers/seconds"},
    "no_cancelled_flag": {
        "exit.cancelled",
        "cancel.kill.tree/mid-stream",
        "cancel.kill.tree/before-start",
    },
    "wait_for_pipes": {"exit.by.process", "exit.pipes_held"},
    "no_reap": {"process.reaped"},
    "no_kill_on_disconnect": {"disconnect.kill", "frame.eof.truncated/departure"},
    "ignore_truncated_eof": {"frame.eof.truncated/departure"},
    "eof_is_disconnect": {"close.client.eof"},
    "serialize_commands": {"command.concurrent/not-serialised", "transfer.id/concurrent"},
    "no_busy_limit": {"command.busy"},
    "slot_freed_late": {"command.slot"},
    "no_pong": {
        "message.ping.answer/idle",
        "message.ping.answer/large-seq",
        "message.ping.answer/mid-stream",
    },
    "no_close_after_fatal": {
        "frame.length.negative/ffffffff",
        "handshake.version/unsupported",
        "auth.mac.verify/wrong-key",
        "frame.header.object/array",
    },
    "continue_after_fatal": {"error.fatal.close/stops-reading"},
    "no_abort": {"error.fatal.prompt"},
    # file transfer
    "put_in_place": {
        "transfer.put.atomic/in-progress",
        "transfer.put.atomic/cut-off",
        "transfer.put.atomic/failed-replace",
        "transfer.cancel/put",
        "transfer.put.half_close",
    },
    "keep_temp": {
        "transfer.put.atomic/cut-off",
        "transfer.put.atomic/failed-replace",
        "transfer.cancel/put",
        "transfer.put.half_close",
    },
    "put_umask": {"transfer.put.mode/0666", "transfer.put.mode/0707"},
    "no_digest_check": {"transfer.put.digest/sha256", "transfer.put.atomic/failed-replace"},
    "no_size_check": {"transfer.put.digest/short", "transfer.put.digest/long"},
    "early_done": {"transfer.put.done/after-eof"},
    "put_no_credit_grant": {"transfer.put.data/credit"},
    "put_no_flow_control": {"transfer.put.data/window-exceeded"},
    "put_ignores_half_close": {"transfer.put.half_close"},
    "get_short": {"transfer.get.stream/small", "transfer.get.stream/large"},
    "done_bad_sha256": {
        "transfer.get.stream/small",
        "transfer.get.stream/large",
        "transfer.get.stream/empty",
        "transfer.put.done/after-eof",
    },
    "get_any_file": {"transfer.get.regular/device", "transfer.get.regular/fifo"},
    "generic_file_errors": {
        "transfer.get.regular/directory",
        "transfer.errors/get-missing",
        "transfer.errors/put-missing-directory",
        "transfer.put.atomic/is-directory",
        "transfer.path/no-tilde",
    }
    | {"transfer.errors/get-permission-denied"},
    "double_done": {
        "transfer.terminal.one/put",
        "transfer.terminal.one/get",
        "transfer.terminal.one/error",
    },
    "no_replace": {"transfer.put.atomic/replace"},
    "strict_transfer_frames": {"command.frames.dropped/signal-for-put"},
    "ignore_transfer_cancel": {"transfer.cancel/put", "transfer.cancel/get"},
    "transfer_ids_apart": {"transfer.id/lower", "transfer.id/run-after-get"},
    "transfers_not_counted": {"transfer.id/busy"},
    "expand_tilde": {"transfer.path/no-tilde"},
    "relative_to_cwd": {"transfer.path/relative"},
    "latin1_paths": {"transfer.path/utf8"},
}

#: Cases no breakage here fails, and why.
NOT_CAUGHT = {
    "auth.mac.verify/right-key": "a positive control: the fake must authenticate to be tested",
    "frame.eof.truncated/not-a-message": "no plausible server acts on half a header",
    "command.concurrent/interleaved": "would need a fake that mixes up ids",
    "output.streams.apart/order": "would need a fake that reorders a stream",
    "frame.header.schema/non-finite": "Python's JSON accepts 1e999 as inf; pydantic refuses it",
    "pty.run": "the fake has no ptys (it answers pty.failed: unsupported)",
    "resize.pty": "the fake has no ptys",
    "resize.pty/no-pty": "the fake ignores resize like rexecd",
    "tls.loopback.only": "needs a non-loopback address",
    "timeout.frame": "the fake has no frame deadline (unsupported here); rexecd's run checks it",
    "timeout.idle": "the fake has no idle timeout (unsupported here); rexecd's run checks it",
    "timeout.stall": "the fake has no stall timeout (unsupported here); rexecd's run checks it",
    "tls.version/tls-1.2": "needs a TLS target (the fake speaks plain TCP)",
    "transfer.put.mode/0600": "a umask of 022 or 077 leaves 0600 as it is",
    "transfer.put.end/unsized": "a fake that fails it would fail the digest-at-end case first",
}


def test_every_flag_has_cases_and_every_case_a_flag_or_a_reason() -> None:
    assert set(CAUGHT_BY) == set(FLAGS)
    ids = {case.id for case in all_cases()}
    caught = set().union(*CAUGHT_BY.values())
    assert caught <= ids, caught - ids
    assert ids - caught == set(NOT_CAUGHT)


def test_unbroken_fake_server_passes(fake_server: Callable[..., FakeServer]) -> None:
    server = fake_server()
    results = run_cases(server.host, server.port, server.key, **FAKE_TIMING)
    bad = {
        cid: (r.verdict.value, r.observed, r.detail)
        for cid, r in results.items()
        if r.verdict not in (Verdict.PASS, Verdict.UNSUPPORTED)
    }
    assert not bad
    unsupported = {cid for cid, r in results.items() if r.verdict is Verdict.UNSUPPORTED}
    assert unsupported == {
        "pty.run",
        "resize.pty",
        "tls.loopback.only",
        "tls.version/tls-1.2",
        "timeout.frame",
        "timeout.idle",
        "timeout.stall",
    }


def longest_wait(flag: str) -> float:
    """Seconds the cases run against ``flag``'s fake may take at most (their
    budgets): what orders the breakage run, longest first."""
    options = Options(key=b"", multiplier=MULTIPLIER.get(flag, 1.0), **FAKE_TIMING)
    return sum(budget(case, options) for case in all_cases() if case.id in CAUGHT_BY[flag])


class Seen(NamedTuple):
    """What a breakage test needs of one case's result (shared as JSON)."""

    verdict: Verdict
    observed: str
    detail: str
    data: dict[str, Any]


@pytest.fixture(scope="session")
def breakage_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Seen]]]:
    """Every flag's selected cases, ROUNDS times, each round against its own
    broken server, PARALLEL servers at a time: run once per test run, whichever
    xdist worker needs it first (``once_per_run``)."""

    async def one(
        root: Path, flag: str, slots: asyncio.Semaphore
    ) -> tuple[str, list[dict[str, Result]]]:
        rounds = []
        for round_number in range(ROUNDS):
            async with slots:
                server = await asyncio.to_thread(
                    start_fake, Path(root, f"{flag}-{round_number}"), [flag]
                )
                try:
                    rounds.append(
                        await run_cases_async(
                            server.host,
                            server.port,
                            server.key,
                            ids=CAUGHT_BY[flag],
                            multiplier=MULTIPLIER.get(flag, 1.0),
                            **FAKE_TIMING,
                        )
                    )
                finally:
                    await asyncio.to_thread(stop_fake, server)
        return flag, rounds

    async def all_flags(root: Path) -> dict[str, list[dict[str, Result]]]:
        slots = asyncio.Semaphore(PARALLEL)
        # Longest first, so that the run does not end waiting for one late starter.
        flags = sorted(CAUGHT_BY, key=longest_wait, reverse=True)
        return dict(await asyncio.gather(*(one(root, flag, slots) for flag in flags)))

    def run(root: Path) -> dict[str, list[dict[str, list[Any]]]]:
        return {
            flag: [
                {cid: [r.verdict.value, r.observed, r.detail, r.data] for cid, r in results.items()}
                for results in rounds
            ]
            for flag, rounds in asyncio.run(all_flags(root)).items()
        }

    FORK_SERVER.start()  # here: started from an executor thread, it would end with that thread
    shared = once_per_run(tmp_path_factory, "conformance-breakage", run)
    return {
        flag: [
            {cid: Seen(Verdict(v), *rest) for cid, (v, *rest) in results.items()}
            for results in rounds
        ]
        for flag, rounds in shared.items()
    }


# One xdist group: where --dist loadgroup groups, one worker runs them all and
# no other waits for the breakage run; once_per_run keeps it to one run anyway.
@pytest.mark.xdist_group("conformance-breakage")
@pytest.mark.parametrize("flag", sorted(CAUGHT_BY))
def test_breakage_is_caught(
    flag: str,
    breakage_results: dict[str, list[dict[str, Seen]]],
) -> None:
    """Caught by every named case, in every round."""
    missed = {
        (number, cid): (results[cid].verdict.value, results[cid].observed)
        for number, results in enumerate(breakage_results[flag])
        for cid in CAUGHT_BY[flag]
        if results[cid].verdict not in (Verdict.FAIL, Verdict.NON_STRICT)
    }
    assert not missed, f"{flag} ({FLAGS[flag]}) was not caught by (round, case): {missed}"


#: (flag, case) -> what the failing case must report it saw: the error the
#: broken server sent, not just that it closed.
OBSERVED = {("off_by_one_limit", "frame.length.limit/equal"): "fatal:frame.too_large"}


@pytest.mark.xdist_group("conformance-breakage")  # the group branch ci2 gives the breakage run
@pytest.mark.parametrize(("flag", "case_id"), sorted(OBSERVED))
def test_failure_names_what_the_server_sent(
    flag: str,
    case_id: str,
    breakage_results: dict[str, list[dict[str, Seen]]],
) -> None:
    assert {rounds[case_id].observed for rounds in breakage_results[flag]} == {
        OBSERVED[flag, case_id]
    }


#: flag -> what the failing frame.header.schema/server-frames case must say:
#: the frame type, the member at fault and the rule broken (not just "invalid").
NAMED_FAULT = {
    "exit_without_signal": ("`exit` frame", "member `signal`: Field required"),
    "repeated_member": ("`started` frame", "member `pid` appears twice"),
}


@pytest.mark.xdist_group("conformance-breakage")
@pytest.mark.parametrize("flag", sorted(NAMED_FAULT))
def test_malformed_server_frame_is_named_under_its_rule(
    flag: str, breakage_results: dict[str, list[dict[str, Result]]]
) -> None:
    for rounds in breakage_results[flag]:
        result = rounds["frame.header.schema/server-frames"]
        assert result.observed == "invalid-frame-from-peer:header.invalid"
        assert result.data["rule_broken"] == "frame.header.schema"
        for words in (*NAMED_FAULT[flag], "[frame.header.schema]"):
            assert words in result.detail
