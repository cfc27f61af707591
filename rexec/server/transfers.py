"""A ``put`` or ``get`` request's lifecycle: policy → audit → file I/O →
``done`` or ``error``.

``start_transfer`` takes a request the session has routed here and either
refuses it or returns the running transfer, which the session then drives as
a ``Request``. The file work itself (the
temporary file, the rename, reading ahead, hashing) is
rexec/server/transfer_io.py's; this module decides whether it may start and
says how it ended.
"""

from __future__ import annotations

from rexec.protocol import Done, Error, ErrorCode, File, Get, Put, Stdout
from rexec.server.audit import AuditError
from rexec.server.events import TransferFinished
from rexec.server.policy import Denied, authorize_transfer
from rexec.server.requests import RequestHost, refuse
from rexec.server.transfer_io import (
    GetTransfer,
    PutTransfer,
    TransferError,
    TransferOutcome,
    resolve_path,
)


def start_transfer(request: Put | Get, host: RequestHost) -> PutTransfer | GetTransfer | None:
    """Authorise, audit and start ``request``; None when it was refused."""
    server = host.server
    path = resolve_path(request.path)
    try:
        if server.config.process_policy.switch_user:
            # File I/O happens in the daemon, with its privileges, not the
            # account's: refuse rather than write files as the wrong user.
            raise Denied(ErrorCode.COMMAND_DENIED, "file transfer is off when run_as is set")
        authorize_transfer(request, path, host.key, server.config.settings)
    except Denied as denied:
        refuse(host, request, denied.code, denied.reason, path=path)
        return None
    what = (
        {"size": request.size, "mode": oct(request.mode), "sha256": request.sha256}
        if isinstance(request, Put)
        else {}
    )
    try:
        server.audit.write(
            request.type, peer=host.origin.peer, session=host.origin.session, id=request.id,
            path=path, **what,
        )  # fmt: skip
    except AuditError:
        refuse(host, request, ErrorCode.AUDIT_UNAVAILABLE, "the audit log can't be written")
        return None
    command_id = request.id

    def finished(outcome: TransferOutcome) -> None:
        _finished(request, outcome, host)

    transfer: PutTransfer | GetTransfer
    if isinstance(request, Put):
        transfer = PutTransfer(
            request, path,
            stdin_window=server.config.limits.stdin_window,
            on_stdin_credit=lambda nbytes: host.grant_credit(command_id, nbytes),
            on_finish=finished,
        )  # fmt: skip
    else:
        transfer = GetTransfer(
            request, path,
            on_file=lambda size, mode: host.send(File(id=command_id, size=size, mode=mode)),
            on_data=lambda data: host.send(Stdout.with_data(command_id, data)),
            on_finish=finished,
        )  # fmt: skip
    server.request_started()
    transfer.start()
    if host.output_paused:
        transfer.pause_output()
    return transfer


def _finished(request: Put | Get, outcome: TransferOutcome, host: RequestHost) -> None:
    """Say how the transfer ended: ``done``, or its error."""
    host.server.request_finished()
    error = outcome.error
    if error is not None and error.code is ErrorCode.FILE_CANCELLED and host.server.shutting_down:
        error = TransferError(ErrorCode.SHUTTING_DOWN, "the server is shutting down")
    code = None if error is None else error.code.value
    host.server.emit(
        TransferFinished(host.origin, request.id, request.type, code, outcome.size, outcome.sha256)
    )
    if error is None:
        host.end(Done(id=request.id, size=outcome.size, sha256=outcome.sha256))
    else:
        host.end(Error(code=code, message=error.message, fatal=False, id=request.id))
