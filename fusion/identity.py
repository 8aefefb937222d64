"""Track identity across a rewind: which replayed track keeps which published id.

A rewind restores a checkpoint whose id counter is ``n0`` and replays the logged rows, so the
kernel hands out ids ``n0, n0 + 1, ...`` again, in the order the *replayed* timeline starts
tracks. A late row that starts a track earlier than before (or joins a different one) would
shift every later id onto another object: a published confirmed id would continue as somebody
else's tentative track, and the real object would go on under a new id.

Ids are therefore reconciled by measurement ownership. With ``O(m)`` the id that owned row
``m`` in the previous timeline and ``N(m)`` its owner after the replay, every replayed track
``a`` (kernel id ``>= n0``) votes for every previous id ``b`` it shares rows with::

    votes(a, b) = |{m : N(m) = a, O(m) = b}|,  a >= n0,  b not restored,  b live before

and pairs are matched greedily by ``votes`` (descending; ties by smaller ``a`` then ``b``),
each ``a`` and each ``b`` at most once, which is deterministic. Ids below ``n0`` belong to
tracks restored from the checkpoint and are kept. A matched ``a`` takes ``b``; an unmatched
one a fresh id. (``b`` not restored is ``b >= n0`` when the checkpoint was taken at a live
step; a checkpoint taken during an earlier replay holds reconciled ids, which can be lower
than ids it does not hold, so the restored ids are passed explicitly.) A previous id that
is matched by no replayed track has *vanished* (its rows went elsewhere) and must still be
reported ended; :func:`heir` names the track that took most of its rows.
"""

from __future__ import annotations

import numpy as np

from fusion._jit import I8


def _pairs(old_mid: I8, old_tid: I8, new_mid: I8, new_tid: I8) -> tuple[I8, I8]:
    """``(new owner, old owner)`` of every row present in both ownership lists."""
    if len(old_mid) == 0 or len(new_mid) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    o = np.argsort(old_mid, kind="stable")
    om = old_mid[o]
    pos = np.minimum(np.searchsorted(om, new_mid), len(om) - 1)
    hit = om[pos] == new_mid
    return new_tid[hit], old_tid[o[pos[hit]]]


def reconcile(
    old_mid: I8,
    old_tid: I8,
    new_mid: I8,
    new_tid: I8,
    n0: int,
    old_live: I8,
    restored: I8 | None = None,
) -> dict[int, int]:
    """Map replayed kernel ids ``a >= n0`` to previous ids ``b`` (see the module docstring).

    ``old_mid``/``old_tid``: row -> owner before the rewind; ``new_mid``/``new_tid``: after the
    replay (owner ``< 0``: none); ``old_live``: ids live before the rewind; ``restored``: ids
    of the tracks restored from the checkpoint (None: those below ``n0``). Returns ``{a: b}``.
    """
    a, b = _pairs(old_mid, old_tid, new_mid, new_tid)
    fresh = (b >= n0) if restored is None else ~np.isin(b, restored)
    keep = (a >= n0) & fresh & np.isin(b, old_live)
    a = a[keep]
    b = b[keep]
    if len(a) == 0:
        return {}
    pairs, votes = np.unique(np.column_stack([a, b]), axis=0, return_counts=True)
    order = np.lexsort((pairs[:, 1], pairs[:, 0], -votes))
    out: dict[int, int] = {}
    taken: set[int] = set()
    for k in order.tolist():
        pa, pb = int(pairs[k, 0]), int(pairs[k, 1])
        if pa in out or pb in taken:
            continue
        out[pa] = pb
        taken.add(pb)
    return out


def heir(old_mid: I8, old_tid: I8, new_mid: I8, new_tid: I8, b: int) -> int:
    """The owner after the replay of most of the rows ``b`` owned before (``-1``: none)."""
    a, ob = _pairs(old_mid, old_tid, new_mid, new_tid)
    a = a[(ob == b) & (a >= 0)]
    if len(a) == 0:
        return -1
    ids, n = np.unique(a, return_counts=True)
    return int(ids[np.argmax(n)])
