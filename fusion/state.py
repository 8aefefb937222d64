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

import numpy as np

from fusion._jit import F8, I4, I8, U1, U4, U8, inline_kernel, kernel
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

    def compact_copy(
        self, *, free_dead: bool = False, into: TrackTable | None = None
    ) -> TrackTable:
        """Copy holding only slots below the high-water mark ``hw`` (all slots above are
        FREE); :meth:`expanded` restores the full capacity. Checkpoints stay O(live tracks).

        Rows ``>= hw`` of a compact copy's columns are not part of it (a copy has some spare
        rows, so that it can be reused); ``free`` is copied whole (its length is the
        capacity). ``into``: a compact copy no longer needed (a pruned checkpoint), reused
        when it has ``hw`` rows and this capacity: one compiled copy into memory already
        mapped (fresh checkpoint memory cost ~60 page faults per step at 1,000 tracks).
        ``free_dead``: DEAD slots become FREE in the copy (pushed on its free stack in slot
        order, as the end of an emitting step does after reporting them); never reused."""
        hw = int(self.ctr[C_HW])
        if free_dead or into is None or len(into.x) < hw or len(into.free) != len(self.free):
            out = TrackTable.__new__(TrackTable)
            for name in _ROW_COLUMNS:
                setattr(out, name, getattr(self, name)[:hw].copy())
            out.ctr = self.ctr.copy()
            out.free = self.free.copy()
            if free_dead:
                _free_dead_rows(out, hw)
            return out
        out = into
        _copy_rows(
            hw, self.x, self.P, self.t, self.t_upd, self.t_birth, self.tid, self.status,
            self.was_conf, self.hist, self.hits, self.miss, self.class_p, self.kinds,
            self.sensors, self.last_sensor, self.merged_into, self.free, self.ctr,
            out.x, out.P, out.t, out.t_upd, out.t_birth, out.tid, out.status, out.was_conf,
            out.hist, out.hits, out.miss, out.class_p, out.kinds, out.sensors,
            out.last_sensor, out.merged_into, out.free, out.ctr,
        )  # fmt: skip
        return out

    def expanded(self) -> TrackTable:
        """A full-capacity table from a :meth:`compact_copy`."""
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


def _free_dead_rows(out: TrackTable, hw: int) -> None:
    dead = np.flatnonzero(out.status[:hw] == DEAD)
    if len(dead):
        out.status[dead] = FREE
        out.tid[dead] = -1
        out.merged_into[dead] = -1
        nf = int(out.ctr[C_NFREE])
        out.free[nf : nf + len(dead)] = dead
        out.ctr[C_NFREE] = nf + len(dead)


@kernel
def _copy_rows(
    hw: int,
    x: F8, P: F8, t: F8, t_upd: F8, t_birth: F8, tid: I8, status: U1, was_conf: U1,
    hist: U4, hits: I4, miss: I4, class_p: F8, kinds: U1, sensors: U8, last_sensor: I4,
    merged_into: I8, free: I8, ctr: I8,
    x2: F8, P2: F8, t2: F8, t_upd2: F8, t_birth2: F8, tid2: I8, status2: U1, was_conf2: U1,
    hist2: U4, hits2: I4, miss2: I4, class_p2: F8, kinds2: U1, sensors2: U8,
    last_sensor2: I4, merged_into2: I8, free2: I8, ctr2: I8,
) -> None:  # fmt: skip
    """Rows ``< hw`` of every column, the whole free stack and the counters into the
    second table's arrays (same shapes past the first axis, at least ``hw`` rows); flat
    1-D copies (contiguous, vectorised)."""
    _flat(x, x2, 4 * hw)
    _flat(P, P2, 16 * hw)
    _flat(class_p, class_p2, class_p.shape[1] * hw)
    _flat(sensors, sensors2, sensors.shape[1] * hw)
    for i in range(hw):
        t2[i] = t[i]
        t_upd2[i] = t_upd[i]
        t_birth2[i] = t_birth[i]
        tid2[i] = tid[i]
        status2[i] = status[i]
        was_conf2[i] = was_conf[i]
        hist2[i] = hist[i]
        hits2[i] = hits[i]
        miss2[i] = miss[i]
        kinds2[i] = kinds[i]
        last_sensor2[i] = last_sensor[i]
        merged_into2[i] = merged_into[i]
    for i in range(free.shape[0]):
        free2[i] = free[i]
    for i in range(ctr.shape[0]):
        ctr2[i] = ctr[i]


@inline_kernel
def _flat(a: np.ndarray, b: np.ndarray, n: int) -> None:
    """``b.flat[:n] = a.flat[:n]`` for C-contiguous arrays."""
    fa = a.reshape(a.size)
    fb = b.reshape(b.size)
    for k in range(n):
        fb[k] = fa[k]
