"""Judging the frames the implementation under test sends.

The protocol library's decoder says *that* a frame is malformed; a report
must also say *which* frame and *which* member, and under the rule that the
fault breaks (protocol.md section 2), whatever case happened to be reading at
the time. It also catches what the library's decoder accepts on purpose: a
repeated member name, which a receiver resolves by taking the last but a
sender MUST NOT produce ([frame.header.schema]).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from rexec.protocol import MODEL_BY_TYPE

#: The rule of protocol.md section 2 that each decoding error code breaks.
RULE_BY_CODE = {
    "frame.bad_length": "frame.length.negative",
    "frame.too_large": "frame.length.limit",
    "frame.body_too_large": "frame.body.limit",
    "frame.truncated": "frame.eof.truncated",
    "header.bad_json": "frame.header.json",
    "header.not_object": "frame.header.object",
    "header.unknown_type": "frame.header.type",
    "header.invalid": "frame.header.schema",
}
#: Characters of a peer-chosen name shown in a report.
NAME_SHOWN = 40


class PeerFrameError(Exception):
    """The implementation under test sent bytes that are not a valid frame.

    Attributes:
        code: the protocol error code the bytes deserve (``header.invalid`` …).
        rule: the protocol.md rule id the frame breaks (``frame.header.schema``).
        frame_type: the header's ``type`` when it has a readable one, else "".
    """

    def __init__(self, code: str, message: str, *, frame_type: str = "") -> None:
        self.code = code
        self.rule = RULE_BY_CODE.get(code, "frame.header.schema")
        self.frame_type = frame_type
        where = f"a `{frame_type}` frame" if frame_type else "a frame"
        super().__init__(f"{code}: {where} from the peer breaks [{self.rule}]: {message}")


def _show(name: object) -> str:
    text = str(name)
    return text if len(text) <= NAME_SHOWN else text[:NAME_SHOWN] + "…"


def frame_type(header: bytes) -> str:
    """The ``type`` of a raw JSON header, "" when it has no readable one."""
    try:
        parsed = json.loads(header)
    except ValueError:
        return ""
    kind = parsed.get("type") if isinstance(parsed, dict) else None
    return _show(kind) if isinstance(kind, str) else ""


def repeated_names(header: bytes) -> list[str]:
    """Member names that appear twice in one JSON object of ``header``
    (nested objects included), in order of their second appearance."""
    repeated: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for name, _ in items:
            if name in seen:
                repeated.append(_show(name))
            seen.add(name)
        return dict(items)

    json.loads(header, object_pairs_hook=pairs)
    return repeated


def diagnose(code: str, message: str, raw_header: bytes) -> PeerFrameError:
    """The report of a frame the library's decoder refused; ``raw_header``
    is the frame's length prefix and header when the fault is in the header
    (``header.*``), else ignored."""
    if not code.startswith("header."):
        return PeerFrameError(code, message)
    header = raw_header[4:]
    if code == "header.invalid":
        message = schema_fault(header) or message
    return PeerFrameError(code, message, frame_type=frame_type(header))


def schema_fault(header: bytes) -> str:
    """What is wrong with a header that fails its schema, naming the member
    (the peer's own name for an unknown one): ``member `signal`: Field required``."""
    model = MODEL_BY_TYPE.get(frame_type(header))
    if model is None:
        return ""
    try:
        model.model_validate_json(header)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(_show(part) for part in first["loc"]) or "header"
        return f"member `{where}`: {first['msg']}"
    return ""


def check_accepted(raw_header: bytes) -> None:
    """Refuse a decoded frame whose header repeats a member name.

    Raises:
        PeerFrameError: under [frame.header.schema], naming type and member.
    """
    repeated = repeated_names(raw_header[4:])
    if repeated:
        raise PeerFrameError(
            "header.invalid",
            f"member `{repeated[0]}` appears twice (senders MUST NOT repeat a member name)",
            frame_type=frame_type(raw_header[4:]),
        )
