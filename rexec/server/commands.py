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

import errno
import os

from rexec.files import OutsideRoots, Roots, open_path
from rexec.protocol import ErrorCode, Exit, Run, Started, Stderr, StdinEof, Stdout
from rexec.server.audit import AuditError
from rexec.server.events import CommandFinished, CommandStarted, OutputSent
from rexec.server.outcome import Stream
from rexec.server.policy import Denied, authorize
from rexec.server.process_setup import SpawnError, preflight
from rexec.server.requests import RequestHost, refuse
from rexec.server.runner import CommandRunner


def start_command(run: Run, host: RequestHost) -> Command | None:
    """Authorise, audit and spawn ``run``; None when it was refused."""
    server = host.server
    config = server.config
    what = {"argv": run.argv} if run.argv is not None else {"shell": run.shell}
    try:
        run = authorize(run, host.key, config.settings)
        preflight(run)
        cwd_fd = open_cwd(run, host)
    except Denied as denied:
        refuse(host, run, denied.code, denied.reason, **what)
        return None
    except SpawnError as exc:
        refuse(host, run, exc.code, exc.message, **what)
        return None
    try:
        try:
            server.audit.write(
                "exec", peer=host.origin.peer, session=host.origin.session, key=host.key.name,
                id=run.id, **what, cwd=run.cwd, env=sorted(run.env), pty=run.pty is not None,
                timeout=run.timeout, output_limit=run.output_limit,
            )  # fmt: skip
        except AuditError:
            refuse(host, run, ErrorCode.AUDIT_UNAVAILABLE, "the audit log can't be written")
            return None
        # The child changes into the directory through the descriptor it
        # inherits (closed at exec), not through a path looked up again.
        command = Command(run.model_copy(update={"cwd": f"/proc/self/fd/{cwd_fd}"}), host)
        try:
            command.start()
        except SpawnError as exc:
            refuse(host, run, exc.code, exc.message)
            return None
        return command
    finally:
        os.close(cwd_fd)


#: Errors opening a cwd that say the path leads to no directory we may use.
_NOT_A_DIRECTORY = frozenset(
    (errno.ENOENT, errno.ENOTDIR, errno.EACCES, errno.ELOOP, errno.ENAMETOOLONG)
)


def open_cwd(run: Run, host: RequestHost) -> int:
    """The command's working directory (``cwd``, else the account's home),
    resolved within the server's and the key's roots now, when it is used
    ([command.cwd]): the command starts in this descriptor's directory,
    whatever a path to it leads to by then.

    Raises:
        Denied: ``command.denied`` outside the roots, ``cwd.invalid`` when
            it is not an existing directory (one the path can't reach);
            ``spawn.failed`` naming the errno when the server itself failed
            (out of descriptors, EMFILE): the client's cwd may be fine.
    """
    config = host.server.config
    home = config.process_policy.account.home
    roots = Roots.intersection(config.settings.cwd_roots, host.key.cwd_roots)
    try:
        return open_path(run.cwd or home, roots, base=home, flags=os.O_PATH | os.O_DIRECTORY)
    except OutsideRoots:
        outside = "the directory is outside the allowed roots"
        raise Denied(ErrorCode.COMMAND_DENIED, outside) from None
    except OSError as exc:
        if exc.errno in _NOT_A_DIRECTORY:
            raise Denied(ErrorCode.CWD_INVALID, "cwd is not an existing directory") from None
        name = errno.errorcode.get(exc.errno or 0, "EUNKNOWN")
        raise Denied(
            ErrorCode.SPAWN_FAILED, f"could not open the working directory ({name})"
        ) from None


class Command(CommandRunner):
    """One running command of a session (a ``Request``): a ``CommandRunner``
    whose output, credit and end go to the client as frames (through the
    ``_send_*`` callbacks; names apart from the runner's own)."""

    def __init__(self, run: Run, host: RequestHost) -> None:
        self.id = run.id
        self._host = host
        config = host.server.config
        super().__init__(
            run,
            stdin_window=config.limits.stdin_window,
            on_output=self._send_output,
            on_stdin_credit=self._send_credit,
            on_finish=self._send_exit,
            graces=config.graces,
            policy=config.process_policy,
        )

    def start(self) -> int:
        """Spawn the process and announce it; raises ``SpawnError`` when
        nothing started."""
        host = self._host
        pid = super().start()
        host.server.request_started(host.key.name, pid)
        host.server.emit(CommandStarted(host.origin, self.id, pid))
        host.send_started(Started(id=self.id, pid=pid))
        if host.output_paused:
            self.pause_output()
        return pid

    def close_stdin(self, eof: StdinEof | None = None) -> None:
        """The client's ``stdin_eof`` (a command takes no size or digest in it)."""
        super().close_stdin()

    def input_ended(self) -> None:
        # No stdin can follow a FIN: the command reads EOF once the bytes
        # already received are written (else a ``cat`` waiting for input
        # would hold the connection open for ever).
        self.close_stdin()

    # --- from the process, back to the client -------------------------------------------

    def _send_output(self, stream: Stream, data: bytes) -> None:
        self._host.server.emit(OutputSent(stream, len(data)))
        kind = Stdout if stream is Stream.STDOUT else Stderr
        self._host.send(kind.with_data(self.id, data))

    def _send_credit(self, nbytes: int) -> None:
        self._host.grant_credit(self.id, nbytes)

    def _send_exit(self, exit: Exit) -> None:
        host = self._host
        host.server.request_finished(host.key.name, self.pid)
        host.server.emit(CommandFinished(host.origin, exit))
        host.end(exit)
