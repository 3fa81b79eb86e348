"""Opaque listing cursors: where a walk over sorted sets stopped, as a URL-safe string."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from jobbers.errors import InvalidCursorError


@dataclass(frozen=True)
class Position:
    """Where a walk stopped: which of its sorted sets (``index``), and the last (score, id) seen."""

    index: int
    score: int
    member: str

    def encode(self) -> str:
        raw = f"{self.index}:{self.score}:{self.member}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> Position:
        """Parse a cursor from ``encode``; raises ``InvalidCursorError`` for anything else."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
            index, score, member = raw.split(":", 2)
            position = cls(int(index), int(score), member)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise InvalidCursorError(f"malformed cursor {cursor[:80]!r}") from None
        if position.index < 0 or not member or len(member) > 128:
            raise InvalidCursorError(f"malformed cursor {cursor[:80]!r}")
        return position
