"""A ``run`` request's lifecycle: policy and preflight → audit → spawn →
output and stdin credit → exit record.

``start_command`` takes a request the session has routed here and either
refuses it (one command-scoped ``error``, recorded with why) or returns the
running ``Command``. From then on the session routes the command's stdin,
signals and cancel to it, and the command sends its frames back through the
session: ``started``, output as it is read, stdin credit, and exactly one
``exit``, last.
"""

from __future__ import annotations

from rexec.protocol import ErrorCode, Exit, Run, Started, Stderr, Stdout
from rexec.server.audit import AuditError
from rexec.server.events import CommandFinished, CommandStarted, OutputSent
from rexec.server.policy import Denied, authorize
from rexec.server.requests import RequestHost, refuse
from rexec.server.runner import CommandRunner, Stream
from rexec.server.spawn import SpawnError, preflight


def start_command(run: Run, host: RequestHost) -> Command | None:
    """Authorise, audit and spawn ``run``; None when it was refused."""
    server = host.server
    config = server.config
    what = {"argv": run.argv} if run.argv is not None else {"shell": run.shell}
    try:
        run = authorize(run, host.key, config.settings, home=config.process_policy.account.home)
        preflight(run, config.process_policy)
    except Denied as denied:
        refuse(host, run, denied.code, denied.reason, **what)
        return None
    except SpawnError as exc:
        refuse(host, run, exc.code, exc.message, **what)
        return None
    try:
        server.audit.write(
            "exec", peer=host.origin.peer, session=host.origin.session, key=host.key.name,
            id=run.id, **what, cwd=run.cwd, env=sorted(run.env), pty=run.pty is not None,
            timeout=run.timeout, output_limit=run.output_limit,
        )  # fmt: skip
    except AuditError:
        refuse(host, run, ErrorCode.AUDIT_UNAVAILABLE, "the audit log can't be written")
        return None
    command = Command(run, host)
    try:
        command.start()
    except SpawnError as exc:
        refuse(host, run, exc.code, exc.message)
        return None
    return command


class Command:
    """One running command of a session (a ``Request``): the protocol side of
    a ``CommandRunner``, which owns the process."""

    def __init__(self, run: Run, host: RequestHost) -> None:
        self.id = run.id
        self._host = host
        config = host.server.config
        self._runner = CommandRunner(
            run,
            stdin_window=config.limits.stdin_window,
            on_output=self._output,
            on_stdin_credit=self._credit,
            on_finish=self._finished,
            graces=config.graces,
            policy=config.process_policy,
        )
        self._pid: int | None = None

    def start(self) -> None:
        """Spawn the process; raises ``SpawnError`` when nothing started."""
        host = self._host
        self._pid = self._runner.start()
        host.server.request_started(self._pid)
        host.server.emit(CommandStarted(host.origin, self.id, self._pid))
        host.send_started(Started(id=self.id, pid=self._pid))
        if host.output_paused:
            self._runner.pause_output()

    # --- from the client, routed by the session ---------------------------------------

    def write_stdin(self, data: bytes) -> None:
        self._runner.write_stdin(data)

    def close_stdin(self) -> None:
        self._runner.close_stdin()

    def input_ended(self) -> None:
        # No stdin can follow a FIN: the command reads EOF once the bytes
        # already received are written (else a ``cat`` waiting for input
        # would hold the connection open for ever).
        self._runner.close_stdin()

    def send_signal(self, signum: int) -> None:
        self._runner.send_signal(signum)

    def resize(self, rows: int, cols: int) -> None:
        self._runner.resize(rows, cols)

    def cancel(self) -> None:
        self._runner.cancel()

    def pause_output(self) -> None:
        self._runner.pause_output()

    def resume_output(self) -> None:
        self._runner.resume_output()

    # --- from the process, back to the client -------------------------------------------

    def _output(self, stream: Stream, data: bytes) -> None:
        self._host.server.emit(OutputSent(stream, len(data)))
        kind = Stdout if stream is Stream.STDOUT else Stderr
        self._host.send(kind.with_data(self.id, data))

    def _credit(self, nbytes: int) -> None:
        self._host.grant_credit(self.id, nbytes)

    def _finished(self, exit: Exit) -> None:
        host = self._host
        host.server.request_finished(self._pid)
        host.server.emit(CommandFinished(host.origin, exit))
        host.end(exit)
