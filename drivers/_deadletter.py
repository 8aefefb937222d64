"""Dead letters: building them (bounded excerpt) and their JSON for ``limes/v1/deadletter``."""

from __future__ import annotations

from drivers._models import DeadLetter, encode_dead_letter

EXCERPT_BYTES = 512
MAX_LISTED_EVENTS = 100

__all__ = ["EXCERPT_BYTES", "DeadLetter", "encode_dead_letter", "excerpt", "make"]


def excerpt(payload: bytes) -> str:
    """The start of ``payload`` as text whose UTF-8 encoding is at most 512 bytes.

    Invalid UTF-8 becomes U+FFFD; a multi-byte character cut at the end is dropped.
    """
    s = payload[:EXCERPT_BYTES].decode("utf-8", "replace")
    b = s.encode()
    if len(b) <= EXCERPT_BYTES:
        return s
    return b[:EXCERPT_BYTES].decode("utf-8", "ignore")


def make(
    topic: str, reason: str, payload: bytes, t: float, events: list[tuple[int, str]] | None = None
) -> DeadLetter:
    """A dead letter; ``events`` is capped at :data:`MAX_LISTED_EVENTS` entries."""
    if events is not None and len(events) > MAX_LISTED_EVENTS:
        events = events[:MAX_LISTED_EVENTS]
    return DeadLetter(
        topic=topic, reason=reason, payload_excerpt=excerpt(payload), t=t, events=events
    )
