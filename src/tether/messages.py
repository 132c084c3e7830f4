"""One numbered link message, as the envelope carries it and the inbox applies it.

Standard library only, so that the pure envelope (link) and the use cases that apply its
messages (actions) share one shape across the layers.
"""

from __future__ import annotations

import json
import math
from typing import Any


class Message:
    """One numbered outbox message; ``body`` is checked by whoever applies it.

    Made from its body (``Message(seq, type, body)``, as the inbox makes them) or from the
    body's JSON text (``Message.from_json``, as the outbox reads them): each form is derived
    from the other only when asked for. An outbox row of a megabyte (a log update) so goes
    from the store into an envelope without being parsed and dumped again on the way: those
    passes were a fifth of the sending side's CPU in the biglog bench.
    """

    __slots__ = ("_body", "_body_json", "seq", "type")

    def __init__(self, seq: int, type: str, body: dict[str, Any]) -> None:
        self.seq = seq
        self.type = type
        self._body: dict[str, Any] | None = body
        self._body_json: str | None = None

    @classmethod
    def from_json(cls, seq: int, type_: str, body_json: str) -> Message:
        """A message whose body is the JSON text ``body_json`` (as ``dump`` wrote it)."""
        message = cls.__new__(cls)
        message.seq, message.type = seq, type_
        message._body, message._body_json = None, body_json
        return message

    @property
    def body(self) -> dict[str, Any]:
        if self._body is None:
            self._body = json.loads(self._body_json or "null")
        return self._body

    @property
    def body_json(self) -> str:
        """The body as an envelope carries it (``dump``)."""
        if self._body_json is None:
            self._body_json = dump(self.body)
        return self._body_json

    @property
    def body_bytes(self) -> int:
        """The size of ``body_json`` in UTF-8."""
        return utf8_bytes(self.body_json)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return (self.seq, self.type, self.body) == (other.seq, other.type, other.body)

    __hash__ = None  # type: ignore[assignment]  # mutable body: as the dataclass it replaces

    def __repr__(self) -> str:
        return f"Message(seq={self.seq!r}, type={self.type!r}, body={self.body!r})"


def dump(value: Any) -> str:
    """``value`` as an envelope carries it: compact JSON, UTF-8 characters as they are.

    JSON has no NaN or Infinity; a script can still put them into its outputs or log
    fields (Python's json reads and writes them), and one sent as it is would be refused by
    the other side for ever. They travel as the strings "nan", "inf" and "-inf".
    """
    try:
        return _dumps(value)
    except ValueError:
        return _dumps(_finite(value))


def utf8_bytes(text: str) -> int:
    """The size of ``text`` in UTF-8 (a lone surrogate counts as its three bytes)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


# One encoder for every dump: json.dumps makes a new one per call when given options.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _dumps(value: Any) -> str:
    return _ENCODER.encode(value)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value
