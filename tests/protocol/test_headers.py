"""Header failures: raw JSON header in → exact ErrorCode out (protocol.md 2).

Every row is also sent as a whole frame through a FrameDecoder, fed byte by
byte, because the code a peer sees comes from there.
"""

from __future__ import annotations

import pytest

from rexec.protocol import ErrorCode, Ping, RemoteProtocolError, Run, decode_header

from .helpers import byte_by_byte, decode_chunks, new_decoder
from .vectors import _frame

BAD_JSON = ErrorCode.HEADER_BAD_JSON
NOT_OBJECT = ErrorCode.HEADER_NOT_OBJECT
UNKNOWN_TYPE = ErrorCode.HEADER_UNKNOWN_TYPE
INVALID = ErrorCode.HEADER_INVALID

NONCE = b'"' + b"a" * 64 + b'"'
LIMITS = b'{"max_header":1,"max_body":1,"stdin_window":1,"max_commands":1}'


def _run(extra: bytes) -> bytes:
    return b'{"type":"run","id":1,' + extra + b"}"


def _hello(limits: bytes = LIMITS, server: bytes = b'"s"', versions: bytes = b"[3]") -> bytes:
    return (
        b'{"type":"hello","versions":' + versions + b',"nonce":' + NONCE
        + b',"server":' + server + b',"limits":' + limits + b"}"
    )  # fmt: skip


def _exit(members: bytes) -> bytes:
    return b'{"type":"exit","id":1,' + members + b"}"


HEADER_FAILURES: list[tuple[str, bytes, ErrorCode]] = [
    # [frame.header.json]: not UTF-8, or not JSON.
    ("invalid_utf8_in_string", b'{"type":"ping","seq":7,"x":"\xff"}', BAD_JSON),
    ("invalid_utf8_only", b"\xff\xfe", BAD_JSON),
    ("utf8_encoded_surrogate", b'{"type":"error","code":"a","message":"\xed\xa0\x80","fatal":true}',
     BAD_JSON),
    # A lone surrogate escape can't become UTF-8 text; refusing it keeps such
    # strings out of every model (they could not be re-encoded or logged).
    ("lone_surrogate_escape", b'{"type":"error","code":"a","message":"\\ud800","fatal":true}',
     BAD_JSON),
    ("utf8_bom", b'\xef\xbb\xbf{"type":"ping","seq":7}', BAD_JSON),
    ("unterminated", b'{"type":"ping","seq":7', BAD_JSON),
    ("trailing_brace", b'{"type":"ping","seq":7}}', BAD_JSON),
    ("trailing_comma", b'{"type":"ping","seq":7,}', BAD_JSON),
    ("single_quotes", b"{'type':'ping','seq':7}", BAD_JSON),
    ("trailing_nul", b'{"type":"ping","seq":7}\x00', BAD_JSON),
    ("two_objects", b'{"type":"ping","seq":7}{"type":"ping","seq":8}', BAD_JSON),
    ("bare_word", b"ping", BAD_JSON),
    # [frame.header.object]
    ("array", b'[{"type":"ping","seq":7}]', NOT_OBJECT),
    ("empty_array", b"[]", NOT_OBJECT),
    ("string", b'"ping"', NOT_OBJECT),
    ("number", b"7", NOT_OBJECT),
    ("float", b"7.5", NOT_OBJECT),
    ("null", b"null", NOT_OBJECT),
    ("true", b"true", NOT_OBJECT),
    # [frame.header.type]
    ("empty_object", b"{}", UNKNOWN_TYPE),
    ("missing_type", b'{"seq":7}', UNKNOWN_TYPE),
    ("unknown_type", b'{"type":"exec","seq":7}', UNKNOWN_TYPE),
    ("type_wrong_case", b'{"type":"PING","seq":7}', UNKNOWN_TYPE),
    ("type_number", b'{"type":5,"seq":7}', UNKNOWN_TYPE),
    ("type_null", b'{"type":null,"seq":7}', UNKNOWN_TYPE),
    # [frame.header.schema]: missing members.
    ("ping_no_seq", b'{"type":"ping"}', INVALID),
    ("run_no_id", b'{"type":"run","shell":"true"}', INVALID),
    ("run_neither_argv_nor_shell", _run(b'"cwd":"/"'), INVALID),
    ("run_both_argv_and_shell", _run(b'"argv":["ls"],"shell":"ls"'), INVALID),
    ("exit_no_duration", _exit(b'"exit_code":0,"signal":null'), INVALID),
    ("exit_neither_code_nor_signal", _exit(b'"exit_code":null,"signal":null,"duration":1'),
     INVALID),
    ("exit_both_code_and_signal", _exit(b'"exit_code":0,"signal":9,"duration":1'), INVALID),
    ("error_no_fatal", b'{"type":"error","code":"internal","message":"m"}', INVALID),
    ("hello_no_limits", b'{"type":"hello","versions":[3],"nonce":' + NONCE + b',"server":"s"}',
     INVALID),
    ("auth_no_data_size", b'{"type":"auth","version":3,"nonce":' + NONCE + b"}", INVALID),
    ("auth_ok_no_data_size", b'{"type":"auth_ok"}', INVALID),
    ("stdout_no_id", b'{"type":"stdout","data_size":0}', INVALID),
    # [message.extensible]: extra members, in every closed object (all a client
    # sends, and the server's frames other than its reports).
    ("ping_extra", b'{"type":"ping","seq":7,"extra":1}', INVALID),
    ("run_extra", _run(b'"shell":"true","user":"root"'), INVALID),
    ("pty_extra", _run(b'"shell":"true","pty":{"rows":1,"cols":1,"mode":"raw"}'), INVALID),
    ("auth_extra", b'{"type":"auth","data_size":32,"version":3,"nonce":' + NONCE
     + b',"mac":"' + b"a" * 64 + b'"}', INVALID),
    ("auth_ok_extra", b'{"type":"auth_ok","data_size":32,"mac":"' + b"a" * 64 + b'"}', INVALID),
    ("stdout_extra", b'{"type":"stdout","id":1,"data_size":0,"fd":1}', INVALID),
    ("credit_extra", b'{"type":"stdin_credit","id":1,"bytes":1,"total":1}', INVALID),
    ("cancel_extra", b'{"type":"cancel","id":1,"force":true}', INVALID),
    # Even an ignored member must be JSON (and is bounded by the header limit).
    ("exit_extra_nan", _exit(b'"exit_code":0,"signal":null,"duration":1,"x":NaN'), BAD_JSON),
    # No coercion: "5" is not an integer, 1 is not a boolean, 1.0 not an integer.
    ("seq_string", b'{"type":"ping","seq":"5"}', INVALID),
    ("seq_float", b'{"type":"ping","seq":1.0}', INVALID),
    ("seq_exponent", b'{"type":"ping","seq":1e2}', INVALID),
    ("seq_bool", b'{"type":"ping","seq":true}', INVALID),
    ("id_float", b'{"type":"cancel","id":1.0}', INVALID),
    ("id_string", b'{"type":"cancel","id":"1"}', INVALID),
    ("id_bool", b'{"type":"cancel","id":true}', INVALID),
    ("stdin_int_for_bool", _run(b'"shell":"cat","stdin":1'), INVALID),
    ("stdin_string_for_bool", _run(b'"shell":"cat","stdin":"true"'), INVALID),
    ("fatal_int_for_bool", b'{"type":"error","code":"internal","message":"m","fatal":0}',
     INVALID),
    ("timeout_string", _run(b'"shell":"true","timeout":"1"'), INVALID),
    ("argv_string", _run(b'"argv":"ls -l"'), INVALID),
    ("argv_item_number", _run(b'"argv":["ls",5]'), INVALID),
    ("data_size_string", b'{"type":"stdout","id":1,"data_size":"3"}', INVALID),
    ("data_size_float", b'{"type":"stdout","id":1,"data_size":3.0}', INVALID),
    # A member that should be an object but isn't: a schema error, not
    # header.not_object (that code is about the header itself).
    ("env_array", _run(b'"shell":"true","env":[]'), INVALID),
    ("env_string", _run(b'"shell":"true","env":"A=1"'), INVALID),
    ("pty_number", _run(b'"shell":"true","pty":5'), INVALID),
    ("limits_array", _hello(b"[]"), INVALID),
    # Ranges.
    ("seq_negative", b'{"type":"ping","seq":-1}', INVALID),
    ("id_negative", b'{"type":"cancel","id":-1}', INVALID),
    ("id_2_pow_53", b'{"type":"cancel","id":9007199254740992}', INVALID),
    ("data_size_negative", b'{"type":"stdout","id":1,"data_size":-1}', INVALID),
    ("rows_zero", b'{"type":"resize","id":1,"rows":0,"cols":80}', INVALID),
    ("cols_65536", b'{"type":"resize","id":1,"rows":24,"cols":65536}', INVALID),
    ("exit_code_256", _exit(b'"exit_code":256,"signal":null,"duration":1'), INVALID),
    ("duration_negative", _exit(b'"exit_code":0,"signal":null,"duration":-1'), INVALID),
    ("pid_zero", b'{"type":"started","id":1,"pid":0}', INVALID),
    ("credit_zero", b'{"type":"stdin_credit","id":1,"bytes":0}', INVALID),
    ("timeout_zero", _run(b'"shell":"true","timeout":0'), INVALID),
    ("output_limit_negative", _run(b'"shell":"true","output_limit":-1'), INVALID),
    ("argv_empty", _run(b'"argv":[]'), INVALID),
    ("argv0_empty", _run(b'"argv":[""]'), INVALID),
    ("env_name_with_equals", _run(b'"shell":"true","env":{"A=B":"1"}'), INVALID),
    ("env_name_empty", _run(b'"shell":"true","env":{"":"1"}'), INVALID),
    ("signal_unknown", b'{"type":"signal","id":1,"signal":"SIGFOO"}', INVALID),
    # An exit's signal name is printed by clients: no escapes, no spaces.
    ("signal_name_escape", _exit(b'"exit_code":null,"signal":9,"duration":1,'
                                 b'"signal_name":"SIG\\u001b]0;x\\u0007"'), INVALID),
    ("signal_name_lowercase", _exit(b'"exit_code":null,"signal":9,"signal_name":"kill",'
                                    b'"duration":1'), INVALID),
    ("signal_number", b'{"type":"signal","id":1,"signal":9}', INVALID),
    ("versions_empty", _hello(versions=b"[]"), INVALID),
    ("versions_zero", _hello(versions=b"[0]"), INVALID),
    ("limit_zero", _hello(LIMITS.replace(b'"max_body":1', b'"max_body":0')), INVALID),
    ("nonce_upper_hex", _hello().replace(b"a" * 64, b"A" * 64), INVALID),
    ("nonce_short", _hello().replace(b"a" * 64, b"a" * 62), INVALID),
    ("nonce_trailing_newline", _hello().replace(b"a" * 64, b"a" * 64 + b"\\n"), INVALID),
    ("auth_data_size_0", b'{"type":"auth","data_size":0,"version":3,"nonce":' + NONCE + b"}",
     INVALID),
    ("auth_ok_data_size_64", b'{"type":"auth_ok","data_size":64}', INVALID),
    ("auth_ok_data_size_bool", b'{"type":"auth_ok","data_size":true}', INVALID),
    ("ping_data_size_1", b'{"type":"ping","seq":1,"data_size":1}', INVALID),
    ("ping_data_size_false", b'{"type":"ping","seq":1,"data_size":false}', INVALID),
    ("ping_data_size_float", b'{"type":"ping","seq":1,"data_size":0.0}', INVALID),
    ("feature_upper_case", _hello().replace(b'"versions"', b'"features":["Tls"],"versions"'),
     INVALID),
    ("feature_twice", _hello().replace(b'"versions"', b'"features":["a","a"],"versions"'),
     INVALID),
    ("feature_65_chars", _hello().replace(b'"versions"', b'"features":["' + b"a" * 65
     + b'"],"versions"'), INVALID),
    ("features_33", _hello().replace(b'"versions"', b'"features":['
     + b",".join(b'"f%d"' % i for i in range(33)) + b'],"versions"'), INVALID),
    # [message.integers]: every integer is bounded.
    ("seq_2_pow_53", b'{"type":"ping","seq":9007199254740992}', INVALID),
    ("seq_2_pow_64", b'{"type":"pong","seq":18446744073709551616}', INVALID),
    ("pid_2_pow_31", b'{"type":"started","id":1,"pid":2147483648}', INVALID),
    ("credit_2_pow_31", b'{"type":"stdin_credit","id":1,"bytes":2147483648}', INVALID),
    ("limit_2_pow_31", _hello(LIMITS.replace(b'"max_body":1', b'"max_body":2147483648')),
     INVALID),
    ("version_65536", _hello(versions=b"[65536]"), INVALID),
    ("output_limit_2_pow_53", _run(b'"shell":"true","output_limit":9007199254740992'), INVALID),
    ("stdout_bytes_2_pow_53", _exit(b'"exit_code":0,"signal":null,"duration":1,'
     b'"stdout_bytes":9007199254740992'), INVALID),
    ("timeout_2_pow_31", _run(b'"shell":"true","timeout":2147483648'), INVALID),
    ("duration_2_pow_31", _exit(b'"exit_code":0,"signal":null,"duration":2147483648'), INVALID),
    ("error_code_not_dotted_lowercase",
     b'{"type":"error","code":"Bad Code","message":"m","fatal":true}', INVALID),
    ("error_message_201", b'{"type":"error","code":"internal","message":"' + b"m" * 201
     + b'","fatal":true}', INVALID),
    ("server_name_256", _hello(server=b'"' + b"s" * 256 + b'"'), INVALID),
    # [frame.header.json]: NaN and Infinity are not JSON (RFC 8259 6), though
    # parsers that accept them exist: header.bad_json wherever they stand.
    ("timeout_nan", _run(b'"shell":"true","timeout":NaN'), BAD_JSON),
    ("timeout_infinity", _run(b'"shell":"true","timeout":Infinity'), BAD_JSON),
    ("duration_nan", _exit(b'"exit_code":0,"signal":null,"duration":NaN'), BAD_JSON),
    ("duration_minus_infinity", _exit(b'"exit_code":0,"signal":null,"duration":-Infinity'),
     BAD_JSON),
    ("seq_nan", b'{"type":"ping","seq":NaN}', BAD_JSON),
    ("env_value_nan", _run(b'"shell":"true","env":{"A":NaN}'), BAD_JSON),
    ("type_nan", b'{"type":NaN}', BAD_JSON),
    ("nan_alone", b"NaN", BAD_JSON),
    # [frame.header.schema]: a number that is JSON but overflows to infinity is
    # not finite.
    ("timeout_overflow_to_infinity", _run(b'"shell":"true","timeout":1e400'), INVALID),
    # No NUL in any string: subprocess would fail with "embedded null byte".
    ("nul_in_argv0", _run(b'"argv":["l\\u0000s"]'), INVALID),
    ("nul_in_argv1", _run(b'"argv":["ls","a\\u0000"]'), INVALID),
    ("nul_in_shell", _run(b'"shell":"true\\u0000"'), INVALID),
    ("nul_in_cwd", _run(b'"shell":"true","cwd":"/tmp\\u0000"'), INVALID),
    ("nul_in_env_key", _run(b'"shell":"true","env":{"A\\u0000":"1"}'), INVALID),
    ("nul_in_env_value", _run(b'"shell":"true","env":{"A":"1\\u0000"}'), INVALID),
    ("nul_in_pty_term", _run(b'"shell":"true","pty":{"term":"vt\\u0000"}'), INVALID),
    ("nul_in_server_name", _hello(server=b'"s\\u0000"'), INVALID),
    ("nul_in_error_message",
     b'{"type":"error","code":"internal","message":"\\u0000","fatal":true}', INVALID),
    ("nul_in_signal_name", _exit(b'"exit_code":null,"signal":9,"signal_name":"K\\u0000",'
     b'"duration":1'), INVALID),
]  # fmt: skip


@pytest.mark.parametrize(
    ("header", "code"),
    [case[1:] for case in HEADER_FAILURES],
    ids=[case[0] for case in HEADER_FAILURES],
)
def test_header_failure(header: bytes, code: ErrorCode) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_header(header)
    assert info.value.code is code
    # The same through the decoder, byte by byte: the length is legal, so the
    # fault is found only when the whole header is in.
    decoder = new_decoder()
    with pytest.raises(RemoteProtocolError) as info:
        decode_chunks(decoder, byte_by_byte(_frame(header)))
    assert info.value.code is code


def test_header_failure_names_are_unique() -> None:
    assert len({case[0] for case in HEADER_FAILURES}) == len(HEADER_FAILURES)


MARKER = "zq9secret"


@pytest.mark.parametrize(
    "header",
    [
        _run(b'"shell":"true","env":{"' + MARKER.encode() + b'\\u0000":"1"}'),
        _run(b'"shell":"true","env":{"' + MARKER.encode() + b'":5}'),
        _run(b'"shell":"true","env":{"' + MARKER.encode() + b'=":"1"}'),
        _run(b'"shell":"true","' + MARKER.encode() + b'":1'),
        _run(b'"argv":["' + MARKER.encode() + b'\\u0000"]'),
        b'{"type":"' + MARKER.encode() + b'"}',
        b'{"type":"ping","seq":"' + MARKER.encode() + b'"}',
        b'{"' + MARKER.encode() + b"}",
    ],
)
def test_error_message_never_echoes_input(header: bytes) -> None:
    # [error.message.no_echo]: the message goes into an error frame; it must
    # name our fields, never repeat what the peer sent (env names included),
    # and must itself be a valid error message (no NUL, at most 200 chars).
    with pytest.raises(RemoteProtocolError) as info:
        decode_header(header)
    assert MARKER not in info.value.message
    assert "\x00" not in info.value.message
    assert len(info.value.message) <= 200


def test_member_order_and_whitespace_do_not_matter() -> None:
    assert decode_header(b' {"seq": 7, "type": "ping"}\n') == Ping(seq=7)


def test_explicit_null_for_the_unused_command_form() -> None:
    # Our encoder writes "shell":null next to argv; a null is the same as an
    # absent member, so the other form is still "exactly one".
    assert decode_header(_run(b'"argv":["ls"],"shell":null')) == Run(id=1, argv=["ls"])
    assert decode_header(_run(b'"argv":null,"shell":"ls"')) == Run(id=1, shell="ls")


def test_id_upper_bound_is_accepted() -> None:
    # [command.id.increasing]: ids go up to 2**53 - 1 inclusive.
    assert decode_header(b'{"type":"cancel","id":9007199254740991}').id == 2**53 - 1  # type: ignore[attr-defined]


def test_the_words_nan_and_infinity_inside_strings_are_text() -> None:
    # Only the bare tokens are refused; the check must not catch text.
    header = b'{"type":"error","code":"internal","message":"NaN Infinity -Infinity","fatal":true}'
    assert decode_header(header).message == "NaN Infinity -Infinity"  # type: ignore[attr-defined]
    run = decode_header(_run(b'"argv":["echo","NaN"],"env":{"Infinity":"NaN"}'))
    assert run == Run(id=1, argv=["echo", "NaN"], env={"Infinity": "NaN"})


@pytest.mark.parametrize(
    ("header", "member", "value"),
    [
        (b'{"type":"ping","seq":9007199254740991}', "seq", 2**53 - 1),
        (b'{"type":"started","id":1,"pid":2147483647}', "pid", 2**31 - 1),
        (b'{"type":"stdin_credit","id":1,"bytes":2147483647}', "bytes", 2**31 - 1),
        (_run(b'"shell":"true","timeout":2147483647'), "timeout", 2**31 - 1),
    ],
)
def test_integer_bounds_are_inclusive(header: bytes, member: str, value: int) -> None:
    # [message.integers]: the upper bound itself is accepted.
    assert getattr(decode_header(header), member) == value


@pytest.mark.parametrize(
    "header",
    [
        _hello().replace(b'"versions"', b'"software":{"name":"x","list":[1,{}]},"versions"'),
        _hello(LIMITS[:-1] + b',"max_rate":1,"nested":{"a":[null]}}'),
        _exit(b'"exit_code":0,"signal":null,"duration":1,"rusage":{"utime":1.5}'),
        b'{"type":"started","id":1,"pid":5,"tty":"/dev/pts/1"}',
        b'{"type":"error","code":"internal","message":"m","fatal":true,"detail":["x"]}',
    ],
    ids=["hello", "hello_limits", "exit", "started", "error"],
)
def test_extensible_objects_ignore_unknown_members(header: bytes) -> None:
    # [message.extensible]: a server's reports may carry members a later
    # version (or a feature) defines; they are dropped, not kept.
    message = decode_header(header)
    assert not message.model_extra
    limits = getattr(message, "limits", None)
    assert limits is None or not limits.model_extra
