"""The requirements of protocol.md the suite checks, quoted.

The suite ships without protocol.md, so each requirement it cites is embedded
here: its stable id, its level and a verbatim quote. ``tests/conformance``
checks every quote against protocol.md (whitespace and Markdown emphasis
aside), so a quote can't drift from the document it cites.

Level: ``MUST`` for every rule protocol.md states as mandatory, whether with the
RFC 2119 keyword or in the indicative ("is a fatal error", "has exit_code
set"); ``SHOULD`` only where the document says SHOULD.
"""

from __future__ import annotations

import dataclasses
import enum


class Level(str, enum.Enum):
    MUST = "MUST"
    SHOULD = "SHOULD"


@dataclasses.dataclass(frozen=True)
class Requirement:
    id: str
    level: Level
    quote: str


_M, _S = Level.MUST, Level.SHOULD

# A table of verbatim quotes, one entry per id, kept in its hand-made layout.
# fmt: off
_TABLE: tuple[tuple[str, Level, str], ...] = (
    ("frame.length.format", _M,
     "The header length is a signed 32-bit little-endian integer"),
    ("frame.length.negative", _M,
     ("A receiver MUST treat a header length ≤ 0 as a fatal frame.bad_length error. It MUST detect "
     "this as soon as the 4 length bytes have arrived, without waiting for more.")),
    ("frame.length.limit", _M,
     ("A receiver MUST treat a header length above its header limit (section 7) as a fatal "
     "frame.too_large error, detected as soon as the 4 length bytes have arrived and without "
     "reading the declared header. A length equal to the limit is accepted.")),
    ("frame.header.json", _M,
     ("The header MUST be UTF-8 JSON (RFC 8259). A header that is not valid UTF-8 or not valid JSON "
     "is a fatal header.bad_json error.")),
    ("frame.header.object", _M,
     "The header MUST be a JSON object; anything else is a fatal header.not_object error."),
    ("frame.header.type", _M,
     ("The header MUST have a string member type naming one of the message types of section 4; a "
     "missing or unknown type, or a type that is not a string, is a fatal header.unknown_type "
     "error.")),
    ("frame.header.schema", _M,
     ("The header MUST match its type's schema exactly: every required member present, no unknown "
     "member (except in the extensible objects of [message.extensible]), every member of its JSON "
     "type with no coercion")),
    ("frame.body.size", _M,
     ("Only stdin, stdout and stderr carry a body of any size, and auth and auth_ok one of exactly "
     "32 bytes (their mac, section 3.1); any other data_size on these two, or a non-zero data_size "
     "on any other type, is a fatal header.invalid error.")),
    ("frame.body.limit", _M,
     ("A receiver MUST treat a data_size above its body limit as a fatal frame.body_too_large "
     "error, detected when the header has arrived, before reading the body.")),
    ("frame.body.binary", _M,
     ("Command input and output bytes travel only in bodies, verbatim: never inside JSON, never "
     "re-encoded. Any byte values are allowed.")),
    ("frame.stream.chunking", _M,
     ("A receiver MUST decode the same messages whatever the chunking of the byte stream: split at "
     "any byte, or many frames in one segment.")),
    ("frame.eof.truncated", _M,
     ("A stream that ends inside a frame is a truncated frame: the receiver treats it as the peer's "
     "departure")),
    ("handshake.hello.first", _M,
     "The server MUST send hello as its first frame, at once on accepting the connection"),
    ("handshake.version", _M,
     ("A server that receives an auth with a version it does not speak MUST answer with a fatal "
     "version.unsupported error, whatever the rest of that auth looks like")),
    ("handshake.features", _M,
     ("An auth naming a feature the hello did not offer is a fatal feature.unsupported error.")),
    ("handshake.order", _M,
     ("Before the handshake is complete, the only legal frames are hello (server), then auth "
     "(client), then auth_ok (server), or at any point a fatal error from either peer. Any other "
     "frame is a fatal protocol.unexpected error.")),
    ("auth.before.anything", _M,
     ("A server MUST NOT start a command, or act on any frame other than auth, before the client "
     "has authenticated.")),
    ("auth.deadline", _M,
     ("A server MUST close a connection that has not completed authentication within its auth "
     "deadline (default 10 s), sending a fatal auth.timeout error first.")),
    ("auth.nonce.fresh", _M,
     ("Each peer MUST draw a fresh nonce for every connection; the server's nonce makes a replayed "
     "auth fail.")),
    ("auth.mac.verify", _M,
     ("On a mismatch it MUST send a fatal auth.failed error whose message does not say what was "
     "wrong, and close.")),
    ("auth.transcript", _M,
     ("Each peer MUST compute and check the macs over the transcript as it itself sent or received "
     "it.")),
    ("auth.binding", _M,
     ("Both peers MUST bind the macs to the connection: under TLS to the session's tls-exporter "
     "value, without TLS to its two ends.")),
    ("auth.mutual", _M,
     ("On a match the server sends auth_ok with its own mac. The client MUST verify it and, on a "
     "mismatch, close the connection without sending any command")),
    ("auth.key.secret", _M,
     "The key never travels, in any form other than these macs."),
    ("message.integers", _M,
     "Every integer is bounded, and out of range is header.invalid."),
    ("message.extensible", _M,
     ("a receiver MUST ignore members it does not know (of any JSON type, bounded only by the header "
     "limit). Every other object is closed: a member it does not know is a fatal header.invalid "
     "error, unless a feature chosen on the connection defines it.")),
    ("message.ping.answer", _M,
     ("A peer that receives ping MUST answer pong with the same seq promptly, at any time after the "
     "handshake, as long as it can send")),
    ("command.id.increasing", _M,
     ("Each run on a connection MUST use an id greater than every id used before on it. A run whose "
     "id is not greater is a fatal command.bad_id error.")),
    ("command.id.unknown", _M,
     ("A frame naming an id greater than every id opened so far (by a run, put or get) is a fatal "
     "command.bad_id error. A client frame naming a command that has already ended is dropped "
     "silently")),
    ("command.frames.dropped", _M,
     ("A server drops such a frame silently, whether the command is still running or has ended")),
    ("command.concurrent", _M,
     ("Several commands MAY run at once on one connection; their frames interleave. Order is "
     "preserved within each stream of each command, not across them.")),
    ("command.slot", _M,
     ("A client that has received a terminal frame may open a new command at once, without being "
     "refused busy for the one that ended.")),
    ("command.busy", _M,
     ("A run beyond the server's max_commands running commands on the connection, or its global "
     "limit, MUST be refused at once with the command-scoped error busy, never queued.")),
    ("command.argv", _M,
     ("With argv, the server executes argv[0] directly (searched in PATH), with argv as its "
     "arguments and no shell. With shell, it runs /bin/sh -c SHELL.")),
    ("command.cwd", _M,
     "A cwd that is not an existing directory is the command-scoped error cwd.invalid"),
    ("command.env", _M,
     "A server MUST refuse names that change how programs load or shells start"),
    ("command.spawn.failure", _M,
     ("A command that can't be started is answered by a command-scoped error: spawn.not_found (no "
     "such program), spawn.permission_denied (not executable)")),
    ("command.process.group", _M,
     "Each command runs in a process group (and session) of its own"),
    ("command.signals.default", _M,
     ("Every command MUST start with every signal at its default disposition and an empty signal "
     "mask, whatever the server itself inherited")),
    ("command.terminal.one", _M,
     ("Every run gets exactly one terminal frame for its id: exit if the command started, or an "
     "error with that id (fatal false) if it never started. Nothing for that id follows its "
     "terminal frame.")),
    ("command.started.first", _M,
     "For a command that starts, started comes before any output and before exit."),
    ("exit.after.output", _M,
     "exit MUST come after every stdout and stderr frame of the command."),
    ("exit.code", _M,
     "A command that exited has exit_code set (0–255) and signal null."),
    ("exit.signal.reported", _M,
     ("A command killed by a signal has signal set to the signal's number on the server and "
     "signal_name to its name, and exit_code null.")),
    ("exit.timed_out", _M,
     "timed_out is true when the server ended the command because its timeout expired."),
    ("exit.cancelled", _M,
     "cancelled is true when the server ended the command because of a cancel"),
    ("exit.output_capped", _M,
     ("output_capped is true when the server withheld output beyond output_limit, and only then")),
    ("exit.pipes_held", _M,
     ("pipes_held is true when the command's process exited but a process it left behind kept its "
     "output open past the drain grace")),
    ("exit.counts", _M,
     ("stdout_bytes and stderr_bytes are the body bytes sent in that command's stdout and stderr "
     "frames (output withheld by [output.limit] is not counted); stdin_bytes is the bytes of the "
     "stdin frames the server accepted for it")),
    ("output.streams.apart", _M,
     ("stdout and stderr MUST be kept apart, each delivered in order, as the command writes them "
     "(no waiting for the end).")),
    ("output.backpressure", _M,
     ("The server MUST NOT buffer output without bound: when the client does not read, the server "
     "stops reading the command's pipes, and the command blocks on its writes.")),
    ("output.limit", _M,
     ("With output_limit N, the server sends exactly the first N bytes of output, stdout and stderr "
     "counted together in the order it read them")),
    ("stdin.closed.default", _M,
     ("With stdin false, the command's standard input is /dev/null, and the client MUST NOT send "
     "stdin or stdin_eof for it")),
    ("stdin.credit", _M,
     ("Sending beyond the credit is a fatal flow.window_exceeded error. A client MAY send stdin "
     "right after run, without waiting for started.")),
    ("stdin.credit.grant", _M,
     ("A server's frame reader MUST NOT block on a command's stdin pipe: signals, cancels and other "
     "commands' frames are always read.")),
    ("stdin.eof", _M,
     ("stdin_eof closes the command's standard input after the bytes sent before it have been "
     "written.")),
    ("exit.by.process", _M,
     ("A command ends when its process (the one the server started) exits, not when its pipes "
     "close.")),
    ("signal.group", _M,
     "signal delivers the signal to the command's process group."),
    ("timeout.kill.tree", _M,
     ("When timeout expires, the server sends SIGTERM to the command's process group, then SIGKILL "
     "to the group after a kill grace (default 2 s) if any process of it is left, and reports "
     "timed_out.")),
    ("cancel.kill.tree", _M,
     ("cancel ends the command the same way (TERM, grace, KILL, to the group) and reports "
     "cancelled. A cancel for a command that has ended is dropped.")),
    ("transfer.id", _M,
     ("A put or get is a command for [command.id.increasing] and [command.id.unknown] (its id is "
     "greater than every id before it, run, put or get), for [command.concurrent] (transfers and "
     "commands interleave on one connection) and for [command.busy] (a running transfer counts "
     "against max_commands and the global limit, and one beyond them is refused with busy).")),
    ("transfer.path", _M,
     ("a relative path is relative to the server's default directory (as [command.cwd]: the home "
     "directory of the user it runs as). The server uses the path's UTF-8 bytes as the file name, "
     "whatever its locale; there is no ~ expansion and no shell.")),
    ("transfer.terminal.one", _M,
     ("Every put and get gets exactly one terminal frame for its id: done when it succeeded, or an "
     "error with that id (fatal false) when it did not. The error may come at any point, before or "
     "after data; nothing for that id follows the terminal frame. started, exit and stderr for a "
     "transfer, and done and file for a run, are fatal protocol.unexpected")),
    ("transfer.put.data", _M,
     ("The content of a put travels as the put's stdin frames, under the stdin credit of "
     "[stdin.credit] (the credit starts at stdin_window as for a run with stdin true, and the "
     "server grants it back as the bytes reach the file), and ends with stdin_eof [stdin.eof].")),
    ("transfer.put.end", _M,
     ("A put may leave size, sha256 or both null (a file read from a pipe, hashed as it is "
     "sent); its stdin_eof then MUST give exactly the members the put left null")),
    ("transfer.put.resume", _M,
     ("Its credit starts at 0: the server MUST first send file whose size is the number of bytes "
     "it already holds from an earlier put of the same path and key that was cancelled, cut off "
     "or half-closed (0 when none), and only then grant credit")),
    ("transfer.get.offset", _M,
     ("A get with offset sends only the bytes from offset on: file gives the whole file's size")),
    ("transfer.put.atomic", _M,
     ("A put that fails, is cancelled or is cut off MUST NOT leave a file under the target name, "
     "nor change a file already there, and its temporary file MUST be removed.")),
    ("transfer.put.digest", _M,
     ("At stdin_eof the server checks that it received exactly size bytes (otherwise "
     "file.size_mismatch; more than size is caught as soon as it arrives) and that their SHA-256 "
     "is sha256 (otherwise file.digest_mismatch).")),
    ("transfer.put.done", _M,
     ("done for a put comes only after the client's stdin_eof, and its size is the declared size")),
    ("transfer.put.mode", _M,
     ("The file gets exactly mode (permission bits, with setuid, setgid and sticky), whatever the "
     "server's umask.")),
    ("transfer.put.half_close", _M,
     ("A client half-close ([close.client.eof]) before a put's stdin_eof ends that put as a "
     "cancel does: its data can no longer arrive.")),
    ("transfer.get.stream", _M,
     ("The server answers a get with file (the size and permission bits of the file when it was "
     "opened), then exactly size bytes of stdout frames, in order, then done with the size and "
     "SHA-256 of the bytes sent.")),
    ("transfer.get.regular", _M,
     ("Only a regular file can be sent: a directory is file.is_directory, anything else (a FIFO, "
     "a device, a socket) is file.failed, refused without waiting on it.")),
    ("transfer.cancel", _M,
     ("cancel ends a transfer with the command-scoped error file.cancelled; a put leaves nothing "
     "behind, as in [transfer.put.atomic].")),
    ("transfer.errors", _M,
     ("A source or target directory that does not exist is file.not_found; one the server may not "
     "read or write is file.permission_denied")),
    ("resize.pty", _M,
     "resize sets the window size of the command's pty"),
    ("disconnect.kill", _M,
     ("When the connection ends for any reason, the server MUST kill the process group of every "
     "command still running on it (TERM, grace, KILL) and reap them.")),
    ("process.reaped", _M,
     "The server MUST reap every process it starts: no zombies."),
    ("pty.run", _M,
     ("With pty, the command's stdin, stdout and stderr are the slave side of a new "
     "pseudo-terminal of the given size, with TERM set to term")),
    ("error.message.no_echo", _M,
     "a short message for people that MUST NOT echo the peer's input"),
    ("error.fatal.close", _M,
     ("After sending a fatal error a peer MUST close the connection (at once, without reading "
     "further input)")),
    ("error.fatal.prompt", _S,
     "It SHOULD do so within 1 s even when the peer does not read."),
    ("error.command.scoped", _M,
     "A non-fatal error with an id ends that command only; the connection carries on."),
    ("error.unknown.accept", _M,
     "A receiver MUST accept codes it does not know, treating them by their fatal and id."),
    ("limits.announced", _M,
     ("The server announces its header, body, stdin and command limits in hello. A client MUST NOT "
     "exceed them; a server MUST NOT send a header above 64 KiB or a body above 1 MiB, hello "
     "included: a client that accepts headers of 64 KiB from the first frame on accepts every "
     "legal frame.")),
    ("timeout.frame", _M,
     ("A server MUST end a connection whose started frame (header and body) does not complete "
     "within its frame deadline with a fatal frame.timeout.")),
    ("timeout.idle", _M,
     ("A server that has an idle timeout MUST end an authenticated connection that sent nothing, "
     "with nothing running, for that long with a fatal idle.timeout, not a bare close.")),
    ("timeout.stall", _M,
     ("A server that has a stall timeout MUST, once a client has left output unread for that "
     "long, end the connection's commands (TERM, grace, KILL) and drop the connection without an "
     "error frame")),
    ("error.internal", _S,
     ("A peer that meets a bug of its own SHOULD end the connection with a fatal internal rather "
     "than a bare close.")),
    ("close.client.eof", _M,
     ("A half-close is not a disconnect: running commands go on and their frames are still sent; "
     "the server closes the connection when no command is left running.")),
    ("tls.version", _M,
     "The session MUST be TLS 1.3"),
    ("tls.loopback.only", _M,
     ("Without TLS, a server MUST listen only on loopback addresses unless its operator explicitly "
     "opts out")),
)
# fmt: on

#: Every requirement the suite cites, by id.
REQUIREMENTS: dict[str, Requirement] = {
    rid: Requirement(rid, level, quote) for rid, level, quote in _TABLE
}


def requirement(rid: str) -> Requirement:
    """The requirement ``rid`` (a case id without its ``/variant``).

    Raises:
        KeyError: the suite cites no such requirement (a bug in a case).
    """
    return REQUIREMENTS[rid.split("/", 1)[0]]
