"""Per-device de-duplication of ``(device, seq)`` with a bounded window, and gap counting.

For each device the window keeps the highest ``seq`` accepted (``hi``) and a bitmask of
which of ``hi, hi-1, ..., hi-W+1`` were accepted (bit ``k`` is ``hi - k``). Memory is
O(devices * W / 8) bytes, whatever the traffic.

Decisions for a new ``seq`` (see :class:`SeqVerdict`):

* first batch of a device, or first after :meth:`SeqWindows.reset`: accepted (``NEW``).
* ``seq > hi``: accepted; ``seq - hi - 1`` batches are counted as lost (a gap).
* ``hi - W < seq <= hi`` and not seen: accepted late (``LATE``), fills one earlier gap
  (counted as recovered: lost - recovered is the net loss).
* seen within the window: ``DUPLICATE`` (not processed again).
* ``seq <= hi - W``: older than the window can judge. The contract lets a restarted device
  start ``seq`` again from any value (after a status ``online``, which resets the window);
  a far regression without that status is treated as such a restart (``RESTART``) and
  accepted, rather than risk dropping a restarted device's data.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

DEFAULT_WINDOW = 1024


class SeqVerdict(IntEnum):
    """Outcome of :meth:`SeqWindows.check`."""

    NEW = 0  # in order (possibly after a gap)
    LATE = 1  # out of order, inside the window, first time seen
    DUPLICATE = 2
    RESTART = 3  # far regression: window reset, accepted


@dataclass(slots=True)
class _Window:
    hi: int
    seen: int  # bitmask, bit k <=> seq hi-k accepted
    lost: int = 0
    recovered: int = 0
    duplicates: int = 0
    fresh: bool = False  # after a reset: the next seq starts a new window, no gap


class SeqWindows:
    """Sliding windows of accepted sequence numbers, one per device."""

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        if window < 1:
            msg = f"window must be >= 1, got {window}"
            raise ValueError(msg)
        self.window = window
        self._mask = (1 << window) - 1
        self._w: dict[str, _Window] = {}

    def check(self, device: str, seq: int) -> tuple[SeqVerdict, int]:
        """Record ``seq`` for ``device``; return the verdict and the batches newly lost.

        Call only for batches that passed validation (a rejected batch does not use up
        its seq). A ``DUPLICATE`` changes nothing but the duplicate count.
        """
        w = self._w.get(device)
        if w is None:
            self._w[device] = _Window(hi=seq, seen=1)
            return SeqVerdict.NEW, 0
        if w.fresh:
            w.hi, w.seen, w.fresh = seq, 1, False
            return SeqVerdict.NEW, 0
        d = seq - w.hi
        if d > 0:
            lost = d - 1
            w.seen = ((w.seen << d) | 1) & self._mask if d < self.window else 1
            w.hi = seq
            w.lost += lost
            return SeqVerdict.NEW, lost
        k = -d
        if k >= self.window:
            w.hi, w.seen = seq, 1
            return SeqVerdict.RESTART, 0
        bit = 1 << k
        if w.seen & bit:
            w.duplicates += 1
            return SeqVerdict.DUPLICATE, 0
        w.seen |= bit
        w.recovered += 1
        return SeqVerdict.LATE, 0

    def reset(self, device: str) -> None:
        """Forget the window of ``device`` (it restarted: status ``online``); keep its counts."""
        w = self._w.get(device)
        if w is not None:
            w.fresh = True

    def counts(self, device: str) -> tuple[int, int, int]:
        """``(lost, recovered, duplicates)`` batches for ``device`` since start."""
        w = self._w.get(device)
        return (w.lost, w.recovered, w.duplicates) if w is not None else (0, 0, 0)
