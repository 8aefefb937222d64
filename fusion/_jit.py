"""Numba settings for every fusion kernel, kept in one place.

Every kernel in :mod:`fusion` is decorated with :func:`kernel`, which is
``numba.njit(cache=True, nogil=True, fastmath=FASTMATH)``. ``FASTMATH`` deliberately leaves out
``nnan`` and ``ninf``: missing measurement values are NaN and forbidden gates are ``inf``, and
kernels test for both, so the compiler must not assume they cannot occur.

Caveat (Numba): the on-disk cache of a kernel is invalidated only when *its own* source file
changes. After editing a kernel that others call, clear ``fusion/__pycache__/*.nbi|*.nbc``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np
import numpy.typing as npt

#: LLVM fast-math flags: reassociation, contraction, approximate functions and reciprocals,
#: no signed zeros. Never ``nnan``/``ninf`` (NaN marks missing values).
FASTMATH: frozenset[str] = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})

_F = TypeVar("_F", bound=Callable[..., Any])

_njit = numba.njit(cache=True, nogil=True, fastmath=set(FASTMATH))


_njit_inline = numba.njit(cache=True, nogil=True, fastmath=set(FASTMATH), inline="always")


def kernel(fn: _F) -> _F:
    """Compile ``fn`` as a cached, GIL-free Numba kernel with the project's fast-math flags."""
    return cast(_F, _njit(fn))


def inline_kernel(fn: _F) -> _F:
    """As :func:`kernel`, but inlined into calling kernels at the Numba IR level.

    For small helpers called per pair or per track: a non-inlined call that passes arrays
    costs reference-count traffic on every argument, measured at ~2x the helper's own work.
    """
    return cast(_F, _njit_inline(fn))


F8 = npt.NDArray[np.float64]
F4 = npt.NDArray[np.float32]
I8 = npt.NDArray[np.int64]
I4 = npt.NDArray[np.int32]
U1 = npt.NDArray[np.uint8]
U4 = npt.NDArray[np.uint32]
U8 = npt.NDArray[np.uint64]
B1 = npt.NDArray[np.bool_]
Rec = npt.NDArray[np.void]
