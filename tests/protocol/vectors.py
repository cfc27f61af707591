"""Named wire vectors: the exact bytes of a frame, and the message they carry.

These are the single source of truth for what rexec puts on the wire. The
tests decode every vector and re-encode every canonical one, and
tools/render_protocol_examples.py prints the ``ping`` and handshake vectors
into protocol.md, so the document can't drift from the code.

The wire bytes are written out by hand (JSON text as a bytes literal, length
packed by ``_frame`` below), never produced by the encoder under test:
otherwise a vector would only check that the encoder agrees with itself.
"""

from __future__ import annotations

import dataclasses
import struct

from rexec.protocol import (
    Auth,
    AuthOk,
    Cancel,
    Error,
    Exit,
    Hello,
    Ping,
    Pong,
    Pty,
    Resize,
    Run,
    ServerLimits,
    Signal,
    Started,
    Stderr,
    Stdin,
    StdinCredit,
    StdinEof,
    Stdout,
)


def _frame(header: bytes, body: bytes = b"") -> bytes:
    """Length-prefix a hand-written header: 4 bytes, little-endian signed."""
    return struct.pack("<i", len(header)) + header + body


@dataclasses.dataclass(frozen=True)
class Vector:
    """One frame.

    Attributes:
        name: stable name, used as the pytest id and by the renderer.
        wire: the frame's bytes.
        message: what decoding ``wire`` must give.
        canonical: True when ``encode_frame(message) == wire`` too. Vectors that
            spell a header differently from our encoder (members omitted,
            reordered, spaced) are decode-only.
    """

    name: str
    wire: bytes
    message: object
    canonical: bool = True


# --- Section 3.1 of protocol.md: the deterministic handshake ------------------

HANDSHAKE_KEY = bytes(range(32))  # 00 01 02 ... 1f
HANDSHAKE_SERVER_NONCE = "aa" * 32
HANDSHAKE_CLIENT_NONCE = "bb" * 32
HANDSHAKE_SERVER_NAME = "example"
#: The two ends of the example's plaintext connection, as each side sees them.
HANDSHAKE_CLIENT_ENDPOINT = ("127.0.0.1", 50000)
HANDSHAKE_SERVER_ENDPOINT = ("127.0.0.1", 7420)
#: Their binding: SHA-256 over the length-prefixed label, client address and
#: port, server address and port (computed with the stdlib hashlib module).
HANDSHAKE_ENDPOINT_BINDING = bytes.fromhex(
    "935e4fbb00b1badada01d269bae258ff973965370a27f5cfb123d581b7fb0b8e"
)
#: A stand-in for a TLS channel binding (tls-exporter), for the macs under TLS.
HANDSHAKE_BINDING = b"\xcc" * 32
# HMAC-SHA256 over the length-prefixed label, hello frame, auth frame (without
# its body) and binding; the server's also over the client's mac. Computed
# once with the stdlib hmac module, not with rexec.protocol; test_auth.py
# recomputes them independently. Without TLS, over the endpoints' binding.
HANDSHAKE_CLIENT_MAC = bytes.fromhex(
    "4bad8752041cdd52a7b38926657e3e958f7033af35abb2c318e18d3159a33979"
)
HANDSHAKE_SERVER_MAC = bytes.fromhex(
    "57fe9b4e709c471105b2a9a45e0557a2cd97e3592b2866dd0f8f7fbfac9204ef"
)
#: The same handshake under TLS, with HANDSHAKE_BINDING as the channel binding.
HANDSHAKE_CLIENT_MAC_TLS = bytes.fromhex(
    "5f8dbc37df8f24ee50e0d973820ea1c91643ad9024d8ebc85ff60bbf0bfa5c44"
)
HANDSHAKE_SERVER_MAC_TLS = bytes.fromhex(
    "c9d2dce259905bfada7905f6dc7131ebeb0806d24ff222082f333aedf5f396b3"
)

HELLO = Vector(
    "hello",
    _frame(
        b'{"type":"hello","data_size":0,"versions":[3],"features":[],'
        b'"nonce":"' + HANDSHAKE_SERVER_NONCE.encode() + b'","server":"example",'
        b'"limits":{"max_header":65536,"max_body":1048576,'
        b'"stdin_window":262144,"max_commands":64}}'
    ),
    Hello(
        versions=[3],
        nonce=HANDSHAKE_SERVER_NONCE,
        server=HANDSHAKE_SERVER_NAME,
        limits=ServerLimits(
            max_header=65536, max_body=1048576, stdin_window=262144, max_commands=64
        ),
    ),
)
#: The auth frame's length prefix and header: what the macs cover of it.
AUTH_HEADER = _frame(
    b'{"type":"auth","data_size":32,"version":3,"features":[],'
    b'"nonce":"' + HANDSHAKE_CLIENT_NONCE.encode() + b'"}'
)
AUTH = Vector(
    "auth",
    AUTH_HEADER + HANDSHAKE_CLIENT_MAC,
    Auth.unsigned(version=3, nonce=HANDSHAKE_CLIENT_NONCE).signed(HANDSHAKE_CLIENT_MAC),
)
AUTH_OK = Vector(
    "auth_ok",
    _frame(b'{"type":"auth_ok","data_size":32}', HANDSHAKE_SERVER_MAC),
    AuthOk.with_mac(HANDSHAKE_SERVER_MAC),
)

#: The handshake in wire order, with the sender of each frame.
HANDSHAKE: tuple[tuple[str, Vector], ...] = (
    ("server", HELLO),
    ("client", AUTH),
    ("server", AUTH_OK),
)

# --- protocol.md section 2: ping with seq 7 -----------------------------------

PING = Vector("ping", _frame(b'{"type":"ping","data_size":0,"seq":7}'), Ping(seq=7))

# --- Every other message type ---------------------------------------------------

#: Binary bodies that must travel verbatim: NUL, invalid UTF-8 (a lone
#: continuation byte, an overlong NUL, a UTF-16 surrogate), every byte value.
BINARY_NUL = b"a\x00b\x00"
BINARY_BAD_UTF8 = b"\x80\xc0\x80\xed\xa0\x80\xff\xfe"
BINARY_ALL_BYTES = bytes(range(256))

VECTORS: tuple[Vector, ...] = (
    HELLO,
    AUTH,
    AUTH_OK,
    PING,
    Vector("pong", _frame(b'{"type":"pong","data_size":0,"seq":7}'), Pong(seq=7)),
    Vector(
        "run_argv",
        _frame(
            b'{"type":"run","data_size":0,"id":1,"argv":["echo","hi"],"shell":null,'
            b'"cwd":null,"env":{},"stdin":false,"timeout":null,"output_limit":null,'
            b'"pty":null}'
        ),
        Run(id=1, argv=["echo", "hi"]),
    ),
    Vector(
        "run_shell_full",
        _frame(
            b'{"type":"run","data_size":0,"id":2,"argv":null,"shell":"cat | wc -c",'
            b'"cwd":"/tmp","env":{"A":"1","B":""},"stdin":true,"timeout":2.5,'
            b'"output_limit":0,"pty":{"rows":50,"cols":132,"term":"vt100"}}'
        ),
        Run(
            id=2,
            shell="cat | wc -c",
            cwd="/tmp",
            env={"A": "1", "B": ""},
            stdin=True,
            timeout=2.5,
            output_limit=0,
            pty=Pty(rows=50, cols=132, term="vt100"),
        ),
    ),
    Vector(
        # Non-ASCII text travels as UTF-8 inside JSON strings (\u escapes are
        # not needed, and our encoder does not produce them).
        "run_unicode",
        _frame(
            '{"type":"run","data_size":0,"id":3,"argv":["printf","h\u00e9\u2603"],'
            '"shell":null,"cwd":null,"env":{},"stdin":false,"timeout":null,'
            '"output_limit":null,"pty":null}'.encode()
        ),
        Run(id=3, argv=["printf", "h\u00e9\u2603"]),
    ),
    Vector(
        "stdin_nul",
        _frame(b'{"type":"stdin","data_size":4,"id":2}', BINARY_NUL),
        Stdin.with_data(2, BINARY_NUL),
    ),
    Vector(
        "stdin_empty",
        _frame(b'{"type":"stdin","data_size":0,"id":2}'),
        Stdin.with_data(2, b""),
    ),
    Vector("stdin_eof", _frame(b'{"type":"stdin_eof","data_size":0,"id":2}'), StdinEof(id=2)),
    Vector(
        "signal",
        _frame(b'{"type":"signal","data_size":0,"id":2,"signal":"SIGINT"}'),
        Signal(id=2, signal="SIGINT"),
    ),
    Vector("cancel", _frame(b'{"type":"cancel","data_size":0,"id":2}'), Cancel(id=2)),
    Vector(
        "resize",
        _frame(b'{"type":"resize","data_size":0,"id":2,"rows":40,"cols":100}'),
        Resize(id=2, rows=40, cols=100),
    ),
    Vector(
        "started",
        _frame(b'{"type":"started","data_size":0,"id":2,"pid":4242}'),
        Started(id=2, pid=4242),
    ),
    Vector(
        "stdout_bad_utf8",
        _frame(b'{"type":"stdout","data_size":8,"id":2}', BINARY_BAD_UTF8),
        Stdout.with_data(2, BINARY_BAD_UTF8),
    ),
    Vector(
        "stdout_all_bytes",
        _frame(b'{"type":"stdout","data_size":256,"id":2}', BINARY_ALL_BYTES),
        Stdout.with_data(2, BINARY_ALL_BYTES),
    ),
    Vector(
        "stderr_nul",
        _frame(b'{"type":"stderr","data_size":4,"id":2}', BINARY_NUL),
        Stderr.with_data(2, BINARY_NUL),
    ),
    Vector(
        "stdin_credit",
        _frame(b'{"type":"stdin_credit","data_size":0,"id":2,"bytes":4096}'),
        StdinCredit(id=2, bytes=4096),
    ),
    Vector(
        "exit_code",
        _frame(
            b'{"type":"exit","data_size":0,"id":2,"exit_code":3,"signal":null,'
            b'"signal_name":null,"timed_out":false,"cancelled":false,'
            b'"output_capped":false,"pipes_held":false,"duration":0.25,'
            b'"stdout_bytes":264,"stderr_bytes":4,"stdin_bytes":4}'
        ),
        Exit(
            id=2,
            exit_code=3,
            signal=None,
            duration=0.25,
            stdout_bytes=264,
            stderr_bytes=4,
            stdin_bytes=4,
        ),
    ),
    Vector(
        "exit_signal",
        _frame(
            b'{"type":"exit","data_size":0,"id":2,"exit_code":null,"signal":9,'
            b'"signal_name":"SIGKILL","timed_out":true,"cancelled":false,'
            b'"output_capped":false,"pipes_held":true,"duration":2.0,'
            b'"stdout_bytes":0,"stderr_bytes":0,"stdin_bytes":0}'
        ),
        Exit(
            id=2,
            exit_code=None,
            signal=9,
            signal_name="SIGKILL",
            timed_out=True,
            pipes_held=True,
            duration=2.0,
        ),
    ),
    Vector(
        "error_command",
        _frame(
            b'{"type":"error","data_size":0,"code":"spawn.not_found",'
            b'"message":"ENOENT","fatal":false,"id":5}'
        ),
        Error(code="spawn.not_found", message="ENOENT", fatal=False, id=5),
    ),
    Vector(
        "error_fatal",
        _frame(
            b'{"type":"error","data_size":0,"code":"frame.too_large",'
            b'"message":"header too large","fatal":true,"id":null}'
        ),
        Error(code="frame.too_large", message="header too large", fatal=True),
    ),
    # Decode-only spellings: a peer written from protocol.md alone may omit
    # defaulted members, order them differently, or add JSON whitespace.
    Vector(
        "ping_minimal",
        _frame(b'{"type":"ping","seq":7}'),
        Ping(seq=7),
        canonical=False,
    ),
    Vector(
        "ping_reordered_spaced",
        _frame(b' { "seq" : 7 ,\n\t"type" : "ping" } \r\n'),
        Ping(seq=7),
        canonical=False,
    ),
    Vector(
        "run_minimal",
        _frame(b'{"type":"run","id":9,"shell":"true"}'),
        Run(id=9, shell="true"),
        canonical=False,
    ),
    Vector(
        "exit_minimal_int_duration",
        # duration is a JSON number: an integer spelling is a number too.
        _frame(b'{"type":"exit","id":2,"exit_code":0,"signal":null,"duration":1}'),
        Exit(id=2, exit_code=0, signal=None, duration=1.0),
        canonical=False,
    ),
    Vector(
        "stdout_data_size_last",
        _frame(b'{"id":2,"type":"stdout","data_size":3}', b"\x00\xff\n"),
        Stdout.with_data(2, b"\x00\xff\n"),
        canonical=False,
    ),
    # Extensible objects (protocol.md [message.extensible]): members this
    # version does not define are ignored, in hello, its limits and exit.
    Vector(
        "hello_extended",
        _frame(
            b'{"type":"hello","versions":[3,4],"features":["x-later"],'
            b'"nonce":"' + HANDSHAKE_SERVER_NONCE.encode() + b'","server":"example",'
            b'"software":{"name":"rexecd","version":[9,1]},'
            b'"limits":{"max_header":65536,"max_body":1048576,'
            b'"stdin_window":262144,"max_commands":64,"max_files":3}}'
        ),
        Hello(
            versions=[3, 4],
            features=["x-later"],
            nonce=HANDSHAKE_SERVER_NONCE,
            server=HANDSHAKE_SERVER_NAME,
            limits=ServerLimits(
                max_header=65536, max_body=1048576, stdin_window=262144, max_commands=64
            ),
        ),
        canonical=False,
    ),
    Vector(
        "exit_extended",
        _frame(
            b'{"type":"exit","id":2,"exit_code":0,"signal":null,"duration":0.5,'
            b'"rusage":{"utime":0.25,"maxrss":1024},"note":null}'
        ),
        Exit(id=2, exit_code=0, signal=None, duration=0.5),
        canonical=False,
    ),
    Vector(
        "error_escaped_text",
        _frame(b'{"type":"error","code":"internal","message":"caf\\u00e9 \\"q\\"","fatal":true}'),
        Error(code="internal", message='caf\u00e9 "q"', fatal=True),
        canonical=False,
    ),
)

BY_NAME: dict[str, Vector] = {vector.name: vector for vector in VECTORS}
assert len(BY_NAME) == len(VECTORS), "vector names must be unique"

#: Message types, so that a test can check every one is covered.
COVERED_TYPES = frozenset(type(vector.message) for vector in VECTORS)

# --- Whole conversations, for the state machine and chunking tests -----------
#
# Each is the exact byte stream one side sends, in order, valid for a fresh
# Connection of the other role.

#: Everything the server sends: handshake, then two interleaved commands
#: (2 with stdin, 5 refused), ping, exits.
SERVER_STREAM: tuple[Vector, ...] = (
    HELLO,
    AUTH_OK,
    BY_NAME["started"],
    BY_NAME["stdin_credit"],
    BY_NAME["stdout_bad_utf8"],
    BY_NAME["stderr_nul"],
    BY_NAME["error_command"],
    BY_NAME["stdout_all_bytes"],
    PING,
    BY_NAME["exit_code"],
)

#: Everything the client sends in the same conversation.
CLIENT_STREAM: tuple[Vector, ...] = (
    AUTH,
    BY_NAME["run_shell_full"],
    BY_NAME["stdin_nul"],
    BY_NAME["stdin_empty"],
    BY_NAME["resize"],
    BY_NAME["signal"],
    Vector(
        "run_5",
        _frame(
            b'{"type":"run","data_size":0,"id":5,"argv":["nope"],"shell":null,'
            b'"cwd":null,"env":{},"stdin":false,"timeout":null,"output_limit":null,'
            b'"pty":null}'
        ),
        Run(id=5, argv=["nope"]),
    ),
    BY_NAME["stdin_eof"],
    BY_NAME["pong"],
)
