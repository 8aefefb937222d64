"""Bayesian class fusion over (person, group, vehicle, animal, digging, unknown).

A sensor of kind ``s`` reporting class ``c`` with confidence ``w`` is soft evidence with
likelihood, for every true class ``k``::

    L_k = (1 - w) + w * C_s[k, c] / max_k' C_s[k', c]

where ``C_s[k, c] = P(report c | true k)`` is the sensor kind's confusion matrix. ``w = 0``
leaves the posterior unchanged; ``w = 1`` applies the confusion model fully. Before each update
the posterior forgets a little towards the prior (``p <- (1 - eps) p + eps prior``) so that a
long run of one sensor's reports cannot lock it, then ``p_k <- p_k L_k / sum_j p_j L_j``.

Cameras and radar cannot see digging: their row for a true ``digging`` is their ``person``
row, so ``L_digging = L_person`` for every camera/radar report and only fibre evidence moves
a track between person and digging (an ``unknown`` report used to favour digging 6:1).

**Association term.** The tracker adds to a pair's cost the class log-likelihood ratio of the
report under the track's posterior ``p`` against a new object drawn from the prior (the same
reference a track start implies), with the same soft likelihood ``L_k`` as the update::

    c_cls = -log( sum_k p_k L_k / sum_k prior_k L_k )

With ``w = 1`` this is ``-log( sum_k p_k C[k, c] / sum_k prior_k C[k, c] )``. It is 0 for a
report without class evidence: ``w = 0`` or NaN, ``c`` out of range or ``unknown``; and for a
kind whose column ``C[:, c]`` is constant (``POINT``: uniform confusion).

For fibre, the ``group`` column is not a unit's report (units never say "group") but the
evidence of several simultaneous events inside one track's gate (a group walking); see
:mod:`fusion.tracker`.
"""

from __future__ import annotations

import math

import numpy as np

from fusion._jit import F8, inline_kernel
from fusion.measurements import N_CLASSES, Cls, Kind

_UNKNOWN = int(Cls.UNKNOWN)

#: default class prior
PRIOR = np.array([0.35, 0.1, 0.2, 0.15, 0.05, 0.15])


def default_confusion() -> F8:
    """Confusion matrices ``C[kind, true, reported]`` (rows sum to 1) for the four kinds."""
    P, G, V, A, D, U = (int(c) for c in Cls)
    C = np.zeros((len(Kind), N_CLASSES, N_CLASSES))
    # fibre reports person (walking/running/climbing), vehicle, digging, unknown;
    # column GROUP carries multi-event evidence (see module docstring).
    f = C[int(Kind.FIBRE)]
    f[P] = [0.65, 0.05, 0.05, 0.0, 0.05, 0.2]
    f[G] = [0.45, 0.35, 0.05, 0.0, 0.05, 0.1]
    f[V] = [0.1, 0.05, 0.65, 0.0, 0.02, 0.18]
    f[A] = [0.45, 0.05, 0.05, 0.0, 0.05, 0.4]
    f[D] = [0.1, 0.02, 0.03, 0.0, 0.75, 0.1]
    f[U] = [0.3, 0.05, 0.1, 0.0, 0.15, 0.4]
    # cameras and radar report person, group, vehicle, animal, unknown
    for kind, acc in ((Kind.THERMAL, 0.8), (Kind.MSV, 0.65)):
        m = C[int(kind)]
        for k in (P, G, V, A):
            m[k] = (1 - acc) / 4
            m[k, k] = acc
            m[k, D] = 0.0
            m[k, U] = (1 - acc) / 4
        m[P, G] += 0.05
        m[P, P] -= 0.05
        m[G, P] += 0.1
        m[G, G] -= 0.1
        # a digger looks like a person to a camera or radar: the same row, so their reports
        # never move a track between person and digging (only fibre tells digging)
        m[D] = m[P]
        m[U] = [0.2, 0.1, 0.2, 0.2, 0.0, 0.3]
    C[int(Kind.POINT)] = np.full((N_CLASSES, N_CLASSES), 1.0 / N_CLASSES)
    return C


@inline_kernel
def _class_update(p: F8, prior: F8, C: F8, cls: int, conf: float, eps: float) -> None:
    """In-place Bayesian update of ``p`` (6,) with one report; ``C`` is that kind's (6, 6)."""
    n = p.shape[0]
    if cls < 0 or cls >= n or not (conf > 0.0):
        return
    w = min(conf, 1.0)
    cmax = 0.0
    for k in range(n):
        cmax = max(cmax, C[k, cls])
    if not (cmax > 0.0):
        return
    tot = 0.0
    for k in range(n):
        pk = (1.0 - eps) * p[k] + eps * prior[k]
        pk *= (1.0 - w) + w * C[k, cls] / cmax
        p[k] = pk
        tot += pk
    if tot > 0.0:
        for k in range(n):
            p[k] /= tot
    else:
        for k in range(n):
            p[k] = prior[k]


@inline_kernel
def _class_llr(p: F8, prior: F8, C: F8, cls: int, conf: float) -> float:
    """``log( sum_k p_k L_k / sum_k prior_k L_k )`` of one report (module docstring); 0 for a
    report without class evidence (``conf <= 0`` or NaN, ``cls`` out of range or unknown)."""
    n = p.shape[0]
    if cls < 0 or cls >= n or cls == _UNKNOWN or not (conf > 0.0):
        return 0.0
    w = min(conf, 1.0)
    cmax = 0.0
    for k in range(n):
        cmax = max(cmax, C[k, cls])
    if not (cmax > 0.0):
        return 0.0
    num = 0.0
    den = 0.0
    for k in range(n):
        lk = (1.0 - w) + w * C[k, cls] / cmax
        num += p[k] * lk
        den += prior[k] * lk
    if not (num > 0.0 and den > 0.0):
        return 0.0
    return math.log(num / den)


def class_llr(
    p: F8,
    kind: int,
    cls: int,
    conf: float,
    *,
    C: F8 | None = None,
    prior: F8 | None = None,
) -> float:
    """Class log-likelihood ratio of one report for a track with posterior ``p`` (the
    association term is its negative; see the module docstring)."""
    q, ck, pr = _checked(p, kind, C, prior)
    return float(_class_llr(q, pr, ck, int(cls), float(conf)))


def _checked(p: F8, kind: int, C: F8 | None, prior: F8 | None) -> tuple[F8, F8, F8]:
    """``(copy of p, C[kind] contiguous, prior)`` as float64 (defaults: the site's confusion
    matrices and :data:`PRIOR`); ValueError on a wrong shape or an unknown kind."""
    Cs = default_confusion() if C is None else np.asarray(C, dtype=np.float64)
    pr = PRIOR if prior is None else np.asarray(prior, dtype=np.float64)
    q = np.array(p, dtype=np.float64)
    if q.shape != (N_CLASSES,) or Cs.shape != (len(Kind), N_CLASSES, N_CLASSES):
        msg = "class vector must have 6 entries and C shape (4, 6, 6)"
        raise ValueError(msg)
    if not 0 <= kind < len(Kind):
        msg = f"unknown kind {kind}"
        raise ValueError(msg)
    return q, np.ascontiguousarray(Cs[kind]), pr


def class_update(
    p: F8,
    kind: int,
    cls: int,
    conf: float,
    *,
    C: F8 | None = None,
    prior: F8 | None = None,
    eps: float = 0.02,
) -> F8:
    """Return the posterior class vector after one report (see the module formula)."""
    out, ck, pr = _checked(p, kind, C, prior)
    _class_update(out, pr, ck, int(cls), float(conf), float(eps))
    return out
