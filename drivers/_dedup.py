"""Per-device de-duplication of ``(device, seq)`` with a bounded window, and gap counting.

For each device a window keeps the highest ``seq`` accepted (``hi``) and a bitmask of
which of ``hi, hi-1, ..., hi-W+1`` were accepted (bit ``k`` is ``hi - k``). Memory is
O(devices * W / 8) bytes, whatever the traffic.

Decisions for a new ``seq`` (see :class:`SeqVerdict`):

* first batch of a device, or first of a new epoch (below): accepted (``NEW``).
* ``seq > hi``: accepted; ``seq - hi - 1`` batches are counted as lost (a gap).
* ``hi - W < seq <= hi`` and not seen: accepted late (``LATE``), fills one earlier gap
  (counted as recovered: lost - recovered is the net loss).
* seen within the window: ``DUPLICATE`` (not processed again).
* ``seq <= hi - W``: older than the window can judge; treated as a device restart
  (``RESTART``) and accepted, rather than risk dropping a restarted device's data.

Epochs. The contract lets a device that restarts publish status ``online`` and start
``seq`` again from any value. A status ``online`` at device time ``T`` (:meth:`reset`)
starts a new epoch. The previous epoch's window is kept: a batch *sent* before ``T`` (a
QoS 1 redelivery of an old batch, or a late one) is judged against it. The first batch
sent after ``T`` decides: a ``seq`` at or below the old window's highest means the device
restarted its numbering (a fresh window starts there, no gap counted); a higher one means
it did not (a periodic ``online``, a heartbeat): the epoch is undone and the old window
goes on, gap accounting included. So a heartbeat never lets a redelivered batch through
twice, however many heartbeats come between. Batches without a ``sent`` time count as
current.
"""

from __future__ import annotations

import math
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
class _Bits:
    """One epoch's window: highest accepted ``seq`` and the bitmask below it."""

    hi: int
    seen: int  # bitmask, bit k <=> seq hi-k accepted


@dataclass(slots=True)
class _Window:
    cur: _Bits | None  # None: fresh epoch, the next seq starts the window
    prev: _Bits | None = None  # the epoch before the latest status online
    since: float = -math.inf  # device time of the latest status online
    older: tuple[_Bits | None, float] = (None, -math.inf)  # (prev, since) before that
    lost: int = 0
    recovered: int = 0
    duplicates: int = 0


class SeqWindows:
    """Sliding windows of accepted sequence numbers, one per device (two epochs each)."""

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        if window < 1:
            msg = f"window must be >= 1, got {window}"
            raise ValueError(msg)
        self.window = window
        self._mask = (1 << window) - 1
        self._w: dict[str, _Window] = {}

    def check(self, device: str, seq: int, sent: float = math.nan) -> tuple[SeqVerdict, int]:
        """Record ``seq`` (a batch sent at device time ``sent``) for ``device``; return the
        verdict and the batches newly lost.

        Call only for batches that passed validation (a rejected batch does not use up
        its seq). A ``DUPLICATE`` changes nothing but the duplicate count.
        """
        w = self._w.get(device)
        if w is None:
            self._w[device] = _Window(cur=_Bits(hi=seq, seen=1))
            return SeqVerdict.NEW, 0
        if w.prev is not None and sent < w.since:
            verdict, _ = self._mark(w.prev, seq)  # an old epoch's batch: no gap accounting
        elif w.cur is None and (w.prev is None or seq <= w.prev.hi):
            w.cur = _Bits(hi=seq, seen=1)  # the device restarted its seq
            return SeqVerdict.NEW, 0
        else:
            if w.cur is None:  # seq goes on past the old epoch's: no restart after all
                assert w.prev is not None
                w.cur = w.prev
                w.prev, w.since = w.older
                w.older = (None, -math.inf)
            verdict, lost = self._mark(w.cur, seq)
            w.lost += lost
            if verdict is not SeqVerdict.DUPLICATE:
                if verdict is SeqVerdict.LATE:
                    w.recovered += 1
                return verdict, lost
        if verdict is SeqVerdict.DUPLICATE:
            w.duplicates += 1
        return verdict, 0

    def _mark(self, b: _Bits, seq: int) -> tuple[SeqVerdict, int]:
        d = seq - b.hi
        if d > 0:
            b.seen = ((b.seen << d) | 1) & self._mask if d < self.window else 1
            b.hi = seq
            return SeqVerdict.NEW, d - 1
        k = -d
        if k >= self.window:
            b.hi, b.seen = seq, 1
            return SeqVerdict.RESTART, 0
        bit = 1 << k
        if b.seen & bit:
            return SeqVerdict.DUPLICATE, 0
        b.seen |= bit
        return SeqVerdict.LATE, 0

    def reset(self, device: str, t: float = math.inf) -> None:
        """Start a new epoch for ``device`` (status ``online`` at device time ``t``);
        batches sent before ``t`` are still judged against the previous epoch."""
        w = self._w.get(device)
        if w is not None and w.cur is not None:
            w.older = (w.prev, w.since)
            w.prev, w.cur, w.since = w.cur, None, t

    def counts(self, device: str) -> tuple[int, int, int]:
        """``(lost, recovered, duplicates)`` batches for ``device`` since start."""
        w = self._w.get(device)
        return (w.lost, w.recovered, w.duplicates) if w is not None else (0, 0, 0)
