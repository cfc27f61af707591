"""A ``put`` or ``get`` request's lifecycle: policy → audit → file I/O →
``done`` or ``error``.

``start_transfer`` takes a request the session has routed here and either
refuses it or returns the running ``Transfer``. The file work itself (the
temporary file, the rename, reading ahead, hashing) is
rexec/server/transfer_put.py's and transfer_get.py's; this module decides whether it may start and
says how it ended.
"""

from __future__ import annotations

import os
import stat

from rexec.files import Roots
from rexec.protocol import Done, Error, ErrorCode, File, Get, Put, StdinEof, Stdout
from rexec.server.audit import AuditError
from rexec.server.events import TransferFinished
from rexec.server.policy import Denied, authorize_transfer
from rexec.server.requests import RequestHost, refuse
from rexec.server.transfer_get import GetTransfer
from rexec.server.transfer_io import Place, TransferError, TransferOutcome
from rexec.server.transfer_put import PutTransfer


def start_transfer(request: Put | Get, host: RequestHost) -> Transfer | None:
    """Authorise, audit and start ``request``; None when it was refused.
    Where the path leads is decided when the file is opened
    (rexec/server/transfer_put.py, transfer_get.py), within the server's and the key's roots."""
    server = host.server
    # Audited as the client named it, joined to the home directory.
    path = os.path.join(server.config.process_policy.account.home, request.path)
    try:
        if server.config.process_policy.switch_user:
            # File I/O happens in the daemon, with its privileges, not the
            # account's: refuse rather than write files as the wrong user.
            raise Denied(ErrorCode.COMMAND_DENIED, "file transfer is off when run_as is set")
        authorize_transfer(host.key)
    except Denied as denied:
        refuse(host, request, denied.code, denied.reason, path=path)
        return None
    what = (
        {"size": request.size, "mode": oct(request.mode), "sha256": request.sha256,
         "resume": request.resume is not None}
        if isinstance(request, Put)
        else {"offset": request.offset}
    )  # fmt: skip
    try:
        server.audit.write(
            request.type, peer=host.origin.peer, session=host.origin.session, id=request.id,
            path=path, **what,
        )  # fmt: skip
    except AuditError:
        refuse(host, request, ErrorCode.AUDIT_UNAVAILABLE, "the audit log can't be written")
        return None
    return Transfer(request, host)


#: Mode bits a put keeps only for a key that may run anything anyway.
_PRIVILEGE_BITS = stat.S_ISUID | stat.S_ISGID


def _without_privilege_bits(put: Put, host: RequestHost) -> Put:
    """``put`` with its setuid and setgid bits dropped unless the key is
    unrestricted (any program, shell strings, no roots): a restricted key
    must not leave a program that runs as the server's account (as root,
    for a root server) for someone else to start."""
    key = host.key
    unrestricted = (
        not key.allow_argv and key.allow_shell and not key.cwd_roots
        and not host.server.config.settings.cwd_roots
    )  # fmt: skip
    if unrestricted or not put.mode & _PRIVILEGE_BITS:
        return put
    return put.model_copy(update={"mode": put.mode & ~_PRIVILEGE_BITS})


class Transfer:
    """One running transfer of a session (a ``Request``)."""

    def __init__(self, request: Put | Get, host: RequestHost) -> None:
        self._request = request
        self._host = host
        command_id = request.id
        server = host.server
        # Relative paths start where commands do: the home of the account
        # commands run as (its passwd entry, not the daemon's $HOME), as scp.
        place = Place(
            Roots.intersection(server.config.settings.cwd_roots, host.key.cwd_roots),
            server.config.process_policy.account.home, server.temp_records,
        )  # fmt: skip
        self._io: PutTransfer | GetTransfer
        if isinstance(request, Put):
            request = _without_privilege_bits(request, host)
            self._io = PutTransfer(
                request, request.path, place,
                stdin_window=server.config.limits.stdin_window,
                on_file=lambda size, mode: host.send(File(id=command_id, size=size, mode=mode)),
                on_stdin_credit=lambda nbytes: host.grant_credit(command_id, nbytes),
                on_finish=self._finished,
            )  # fmt: skip
        else:
            self._io = GetTransfer(
                request, request.path, place,
                on_file=lambda size, mode, mtime: host.send(
                    File(id=command_id, size=size, mode=mode, mtime=mtime)
                ),
                on_data=lambda data: host.send(Stdout.with_data(command_id, data)),
                on_finish=self._finished,
            )  # fmt: skip
        host.server.request_started(host.key.name)
        self._io.start()
        if host.output_paused:
            self._io.pause_output()

    # --- from the client, routed by the session ---------------------------------------

    def write_stdin(self, data: bytes) -> None:
        self._io.write_stdin(data)

    def close_stdin(self, eof: StdinEof) -> None:
        self._io.close_stdin(eof)  # a put's end may carry its size and digest

    def input_ended(self) -> None:
        if isinstance(self._io, PutTransfer):
            self._io.input_ended()  # [transfer.put.half_close]

    def send_signal(self, signum: int) -> None:
        """The protocol core drops signals for transfers ([command.frames.dropped])."""

    def resize(self, rows: int, cols: int) -> None:
        """The protocol core drops resizes for transfers ([command.frames.dropped])."""

    def cancel(self) -> None:
        self._io.cancel()

    def pause_output(self) -> None:
        self._io.pause_output()

    def resume_output(self) -> None:
        self._io.resume_output()

    # --- how it ended -------------------------------------------------------------------

    def _finished(self, outcome: TransferOutcome) -> None:
        host, request = self._host, self._request
        host.server.request_finished(host.key.name)
        error = outcome.error
        if (
            error is not None
            and error.code is ErrorCode.FILE_CANCELLED
            and host.server.shutting_down
        ):
            error = TransferError(ErrorCode.SHUTTING_DOWN, "the server is shutting down")
        host.server.emit(
            TransferFinished(
                host.origin,
                request.id,
                request.type,
                None if error is None else error.code.value,
                outcome.size,
                outcome.sha256,
            )
        )
        if error is None:
            host.end(Done(id=request.id, size=outcome.size, sha256=outcome.sha256))
        else:
            host.end(
                Error(code=error.code.value, message=error.message, fatal=False, id=request.id)
            )
