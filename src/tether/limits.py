"""How much a script can put into one log entry, its outputs and its message, and the marker
that says what was cut.

Pure and standard library only: the child process imports it too (flow_api cuts before it
sends), and the engine cuts again, since a script can write to its channel directly.
Every cap keeps one link message within an envelope (docs/security.md, "Limits").
"""

from __future__ import annotations

import json
from typing import Any

# One log entry's text (a print, a this.log, a line a program wrote to fd 1 or 2), UTF-8.
MAX_LOG_ENTRY_BYTES = 64 * 1024
# One log entry's fields (this.log(**fields)) as JSON; larger ones are replaced by a note.
MAX_LOG_FIELDS_BYTES = 16 * 1024
# An execution's message (save(message=...), success/error/end, a traceback), UTF-8.
MAX_EXECUTION_MESSAGE_BYTES = 64 * 1024
# An execution's outputs as compact JSON: a save or set_output past it is refused.
MAX_OUTPUTS_BYTES = 1024 * 1024
# The default cap of one execution's whole log (--execution-log-mb).
DEFAULT_EXECUTION_LOG_MB = 256

_MARKER = "... [cut: {size} bytes, limit {limit}]"
_MARKER_ROOM = 64  # bytes the marker may take; a limit smaller than this keeps just the marker


def text_bytes(text: str) -> int:
    """The size of ``text`` in UTF-8 (a lone surrogate counts as its three bytes)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def cut_text(text: str, limit: int, size: int | None = None) -> str:
    """``text`` if it is at most ``limit`` bytes of UTF-8; else its head and a marker naming
    its size (``size``, when the caller knows the original's) and the limit, in ``limit`` bytes."""
    if len(text) * 4 <= limit:
        return text  # even four bytes a character fit: no need to count
    actual = text_bytes(text)
    if actual <= limit and (size is None or size <= limit):
        return text
    marker = _MARKER.format(size=max(actual, size or 0), limit=limit)
    room = max(limit - max(len(marker), _MARKER_ROOM), 0)
    head = text.encode("utf-8", "surrogatepass")[:room]
    # A cut through a character leaves a partial sequence at the end: drop it.
    return head.decode("utf-8", "ignore") + marker


def cut_fields(fields: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """``fields`` (or a note in their place when their JSON is over the cap) and their size."""
    if not fields:
        return fields, 0
    encoded = json.dumps(fields, separators=(",", ":"), default=str)
    if len(encoded) <= MAX_LOG_FIELDS_BYTES:
        return fields, len(encoded)
    note = {"cut": f"fields of {len(encoded)} bytes, limit {MAX_LOG_FIELDS_BYTES}"}
    return note, len(json.dumps(note))


def json_bytes(value: Any) -> int:
    """The size of ``value`` as compact JSON with every non-ASCII character escaped: an upper
    bound of its UTF-8 size in an envelope."""
    return len(json.dumps(value, separators=(",", ":"), default=str))


# Messages (system.message / this.message): what a script's form and a person's answer may hold.
MAX_MESSAGE_SUBJECT_CHARS = 200
MAX_MESSAGE_BODY_BYTES = 64 * 1024  # the form, as compact JSON
MAX_FORM_FIELDS = 100  # properties of one form, submit buttons and text included
MAX_FORM_KEY_CHARS = 100
MAX_ANSWER_TEXT_CHARS = 16 * 1024  # one string field of an answer
MAX_OPEN_MESSAGES = 100  # open messages of one execution at once
