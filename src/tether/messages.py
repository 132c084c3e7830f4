"""One numbered link message, as the envelope carries it and the inbox applies it.

Standard library only, so that the pure envelope (link) and the use cases that apply its
messages (actions) share one shape across the layers.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Message:
    """One numbered outbox message; ``body`` is checked by whoever applies it."""

    seq: int
    type: str
    body: dict[str, Any]
