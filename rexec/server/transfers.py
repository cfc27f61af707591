"""A ``put`` or ``get`` request's lifecycle: policy → audit → file I/O →
``done`` or ``error``.

``start_transfer`` takes a request the session has routed here and either
refuses it or returns the running ``Transfer``. The file work itself (the
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


def start_transfer(request: Put | Get, host: RequestHost) -> Transfer | None:
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
    return Transfer(request, path, host)


class Transfer:
    """One running transfer of a session (a ``Request``)."""

    def __init__(self, request: Put | Get, path: str, host: RequestHost) -> None:
        self._request = request
        self._host = host
        command_id = request.id
        self._io: PutTransfer | GetTransfer
        if isinstance(request, Put):
            self._io = PutTransfer(
                request, path,
                stdin_window=host.server.config.limits.stdin_window,
                on_stdin_credit=lambda nbytes: host.grant_credit(command_id, nbytes),
                on_finish=self._finished,
            )  # fmt: skip
        else:
            self._io = GetTransfer(
                request, path,
                on_file=lambda size, mode: host.send(File(id=command_id, size=size, mode=mode)),
                on_data=lambda data: host.send(Stdout.with_data(command_id, data)),
                on_finish=self._finished,
            )  # fmt: skip
        host.server.request_started()
        self._io.start()
        if host.output_paused:
            self._io.pause_output()

    # --- from the client, routed by the session ---------------------------------------

    def write_stdin(self, data: bytes) -> None:
        self._io.write_stdin(data)

    def close_stdin(self) -> None:
        self._io.close_stdin()

    def input_ended(self) -> None:
        if isinstance(self._io, PutTransfer):
            self._io.input_ended()  # [transfer.put.half_close]

    def send_signal(self, signum: int) -> None:
        """The protocol core refuses signals for transfers."""

    def resize(self, rows: int, cols: int) -> None:
        """The protocol core refuses resizes for transfers."""

    def cancel(self) -> None:
        self._io.cancel()

    def pause_output(self) -> None:
        self._io.pause_output()

    def resume_output(self) -> None:
        self._io.resume_output()

    # --- how it ended -------------------------------------------------------------------

    def _finished(self, outcome: TransferOutcome) -> None:
        host, request = self._host, self._request
        host.server.request_finished()
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
