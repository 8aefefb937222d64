"""Track state as a struct of arrays (one row per slot), growing by doubling.

Slot ``i`` is live when ``status[i]`` is TENTATIVE or CONFIRMED. DEAD marks a track ended
during the current step (reported once as ``lost``, then its slot returns to the free stack).
A track's ``x``/``P`` are its estimate at ``t[i]`` (its last update: prediction is lazy, so
an idle track costs nothing per frame).

Columns: ``x`` (n, 4) ``[x, y, vx, vy]``; ``P`` (n, 4, 4); ``t`` state time; ``t_upd`` last
update; ``t_birth``; ``tid`` track id (int, unique per tracker, never reused); ``status``;
``was_conf`` (ever confirmed); ``hist`` hit/miss bits, LSB newest; ``hits`` total updates;
``miss`` consecutive misses; ``class_p`` (n, 6); ``kinds`` bitmask of sensor kinds that
updated it; ``sensors`` (n, 4) 256-bit mask of sensor indices; ``last_sensor``;
``merged_into`` id of the track that absorbed it (-1).

Counters ``ctr``: ``[next_id, n_free, n_live, high_water]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fusion._jit import F8, I4, I8, U1, U4, U8, inline_kernel, kernel, put_bytes
from fusion.measurements import N_CLASSES

FREE, TENTATIVE, CONFIRMED, DEAD = 0, 1, 2, 3
SENSOR_WORDS = 4  # sensors bitmask width: 4 x 64 = 256 sensor indices
C_NEXT_ID, C_NFREE, C_NLIVE, C_HW = 0, 1, 2, 3


class TrackTable:
    """Struct-of-arrays track store with a free-slot stack (see module docstring)."""

    __slots__ = (
        "P",
        "class_p",
        "ctr",
        "free",
        "hist",
        "hits",
        "kinds",
        "last_sensor",
        "merged_into",
        "miss",
        "sensors",
        "status",
        "t",
        "t_birth",
        "t_upd",
        "tid",
        "was_conf",
        "x",
    )

    x: F8
    P: F8
    t: F8
    t_upd: F8
    t_birth: F8
    tid: I8
    status: U1
    was_conf: U1
    hist: U4
    hits: I4
    miss: I4
    class_p: F8
    kinds: U1
    sensors: U8
    last_sensor: I4
    merged_into: I8
    free: I8
    ctr: I8

    def __init__(self, capacity: int = 64) -> None:
        self.ctr = np.zeros(4, dtype=np.int64)
        self.ctr[C_NEXT_ID] = 1
        self._alloc(max(1, capacity))

    def _alloc(self, cap: int) -> None:
        self.x = np.full((cap, 4), np.nan)
        self.P = np.full((cap, 4, 4), np.nan)
        self.t = np.full(cap, np.nan)
        self.t_upd = np.full(cap, np.nan)
        self.t_birth = np.full(cap, np.nan)
        self.tid = np.full(cap, -1, dtype=np.int64)
        self.status = np.zeros(cap, dtype=np.uint8)
        self.was_conf = np.zeros(cap, dtype=np.uint8)
        self.hist = np.zeros(cap, dtype=np.uint32)
        self.hits = np.zeros(cap, dtype=np.int32)
        self.miss = np.zeros(cap, dtype=np.int32)
        self.class_p = np.zeros((cap, N_CLASSES))
        self.kinds = np.zeros(cap, dtype=np.uint8)
        self.sensors = np.zeros((cap, SENSOR_WORDS), dtype=np.uint64)
        self.last_sensor = np.full(cap, -1, dtype=np.int32)
        self.merged_into = np.full(cap, -1, dtype=np.int64)
        self.free = np.arange(cap - 1, -1, -1, dtype=np.int64)  # pop from the end: slot 0 first
        self.ctr[C_NFREE] = cap

    @property
    def capacity(self) -> int:
        """Number of slots."""
        return int(self.x.shape[0])

    def reserve(self, n_new: int) -> None:
        """Grow (doubling) until at least ``n_new`` slots are free."""
        nfree = int(self.ctr[C_NFREE])
        if nfree >= n_new:
            return
        old = self.capacity
        cap = old
        while cap - old + nfree < n_new:
            cap *= 2
        keep = {name: getattr(self, name) for name in self.__slots__ if name not in {"ctr", "free"}}
        free_old = self.free[:nfree].copy()
        self._alloc(cap)
        for name, arr in keep.items():
            getattr(self, name)[:old] = arr
        new_free = np.arange(cap - 1, old - 1, -1, dtype=np.int64)
        self.free[: len(new_free)] = new_free
        self.free[len(new_free) : len(new_free) + nfree] = free_old
        self.ctr[C_NFREE] = len(new_free) + nfree

    def copy(self) -> TrackTable:
        """Deep copy (used for rewind checkpoints)."""
        out = TrackTable.__new__(TrackTable)
        for name in self.__slots__:
            setattr(out, name, getattr(self, name).copy())
        return out

    def pack(self, into: I8 | None = None) -> I8:
        """The table as one int64 buffer (a rewind checkpoint): one compiled copy instead of
        one numpy copy per column (~16 Python-level copies per step at 1 Hz).

        Layout: ``[hw, capacity]`` then, 8-byte aligned, the raw bytes of rows ``< hw`` of
        each column in :data:`_ROW_COLUMNS` order, the whole free stack and the counters
        (:func:`packed_words` words). ``into``: a buffer no longer needed (a pruned
        checkpoint's), reused if it has enough words (no fresh memory, no page faults)."""
        hw = int(self.ctr[C_HW])
        cap = len(self.free)
        need = packed_words(hw, cap)
        buf = into if into is not None and len(into) >= need else np.empty(need, np.int64)
        _pack(
            hw, self.x, self.P, self.t, self.t_upd, self.t_birth, self.tid, self.status,
            self.was_conf, self.hist, self.hits, self.miss, self.class_p, self.kinds,
            self.sensors, self.last_sensor, self.merged_into, self.free, self.ctr, buf,
        )  # fmt: skip
        return buf

    @staticmethod
    def unpacked(buf: I8) -> TrackTable:
        """The compact table that :meth:`pack` wrote into ``buf``: rows ``< hw`` of each column,
        the whole free stack and the counters; its columns are views of ``buf`` (writes
        through them change the packed copy)."""
        hw, cap = int(buf[0]), int(buf[1])
        b = buf.view(np.uint8)
        off = 16
        out = TrackTable.__new__(TrackTable)
        for (name, dt, shape), rb in zip(_LAYOUT, _ROW_BYTES, strict=True):
            n = hw * rb
            setattr(out, name, b[off : off + n].view(dt).reshape((hw, *shape)))
            off += _align8(n)
        out.free = b[off : off + 8 * cap].view(np.int64)
        off += 8 * cap
        out.ctr = b[off : off + 32].view(np.int64)
        return out

    def expanded(self) -> TrackTable:
        """A full-capacity table from a compact one (:meth:`unpacked`)."""
        cap = len(self.free)
        hw = int(self.ctr[C_HW])
        out = TrackTable(cap)
        for name in self.__slots__:
            if name in {"ctr", "free"}:
                setattr(out, name, getattr(self, name).copy())
            else:
                getattr(out, name)[:hw] = getattr(self, name)[:hw]
        return out

    def live(self) -> I8:
        """Slot indices of live (tentative or confirmed) tracks, in slot order."""
        hw = int(self.ctr[C_HW])
        st = self.status[:hw]
        return np.flatnonzero((st == TENTATIVE) | (st == CONFIRMED)).astype(np.int64)


#: per-slot columns (everything but the counters and the free stack)
_ROW_COLUMNS: tuple[str, ...] = tuple(n for n in TrackTable.__slots__ if n not in {"ctr", "free"})


def free_dead_rows(out: TrackTable) -> None:
    """In place: DEAD slots below ``hw`` become FREE, pushed on the free stack in slot order."""
    hw = int(out.ctr[C_HW])
    dead = np.flatnonzero(out.status[:hw] == DEAD)
    if len(dead):
        out.status[dead] = FREE
        out.tid[dead] = -1
        out.merged_into[dead] = -1
        nf = int(out.ctr[C_NFREE])
        out.free[nf : nf + len(dead)] = dead
        out.ctr[C_NFREE] = nf + len(dead)


@inline_kernel
def _align8(n: int) -> int:
    """``n`` rounded up to a multiple of 8."""
    return (n + 7) & ~7


def _row_bytes(dt: np.dtype[Any], shape: tuple[int, ...]) -> int:
    return int(dt.itemsize * int(np.prod(shape, dtype=np.int64)))


def _layout() -> tuple[tuple[str, np.dtype[Any], tuple[int, ...]], ...]:
    t = TrackTable(1)
    return tuple((n, getattr(t, n).dtype, getattr(t, n).shape[1:]) for n in _ROW_COLUMNS)


#: (column, dtype, per-row shape) in pack order
_LAYOUT = _layout()


#: bytes per row of each column, in pack order
_ROW_BYTES = tuple(_row_bytes(dt, sh) for _, dt, sh in _LAYOUT)


@inline_kernel
def packed_words(hw: int, cap: int) -> int:
    """int64 words of a :meth:`TrackTable.pack` buffer for ``hw`` rows and ``cap`` slots
    (a kernel: inlined into :func:`fusion.tracker._step_kernel`, callable from Python)."""
    rows = 0
    for rb in _ROW_BYTES:
        rows += _align8(hw * rb)
    return 2 + rows // 8 + cap + 4


@kernel
def _pack(
    hw: int,
    x: F8, P: F8, t: F8, t_upd: F8, t_birth: F8, tid: I8, status: U1, was_conf: U1,
    hist: U4, hits: I4, miss: I4, class_p: F8, kinds: U1, sensors: U8, last_sensor: I4,
    merged_into: I8, free: I8, ctr: I8, buf: I8,
) -> None:  # fmt: skip
    """``buf = [hw, cap] ++ bytes(rows < hw of each column, in _ROW_COLUMNS order, each
    8-aligned) ++ bytes(free) ++ bytes(ctr)`` (:meth:`TrackTable.pack`)."""
    buf[0] = hw
    buf[1] = free.shape[0]
    b = buf.view(np.uint8)
    o = 16
    o = _put(b, o, P, hw)
    o = _put(b, o, class_p, hw)
    o = _put(b, o, hist, hw)
    o = _put(b, o, hits, hw)
    o = _put(b, o, kinds, hw)
    o = _put(b, o, last_sensor, hw)
    o = _put(b, o, merged_into, hw)
    o = _put(b, o, miss, hw)
    o = _put(b, o, sensors, hw)
    o = _put(b, o, status, hw)
    o = _put(b, o, t, hw)
    o = _put(b, o, t_birth, hw)
    o = _put(b, o, t_upd, hw)
    o = _put(b, o, tid, hw)
    o = _put(b, o, was_conf, hw)
    o = _put(b, o, x, hw)
    o = _put(b, o, free, free.shape[0])
    _put(b, o, ctr, ctr.shape[0])


@inline_kernel
def _put(b: U1, off: int, a: np.ndarray, rows: int) -> int:
    """Raw bytes of rows ``< rows`` of C-contiguous ``a`` at ``b[off:]`` (8-aligned ``off``;
    one memcpy, :func:`fusion._jit.put_bytes`); returns the next 8-aligned offset."""
    n = a.size // a.shape[0] * rows * a.itemsize
    put_bytes(b, off, a, n)
    return off + _align8(n)
