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
from typing import Any, Protocol, TypeVar, cast

import numba
import numpy as np
import numpy.typing as npt
from numba.core import cgutils, types
from numba.extending import intrinsic

#: LLVM fast-math flags: reassociation, contraction, approximate functions and reciprocals,
#: no signed zeros. Never ``nnan``/``ninf`` (NaN marks missing values).
FASTMATH: frozenset[str] = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})

_F = TypeVar("_F", bound=Callable[..., Any])
_A = TypeVar("_A", bound=npt.NDArray[Any])
_null: Callable[[Any], Any] = cgutils.get_null_value

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


def _borrow_typer(typingctx: Any, arr: Any) -> Any:
    """``arr`` without its owner reference (NRT meminfo and parent set to NULL).

    Numba updates an array's reference count atomically each time a view of it (``x[i]``
    of a 2-D array) or an alias (an inlined helper's argument) is made and dropped; in the
    large kernels it cannot prune those pairs, and the atomic updates were 50-70 % of the
    frame kernel's time. Views of a borrowed array skip them (NRT ignores a NULL meminfo).

    Invariant: valid only while an owner keeps the memory alive: a kernel argument (the
    caller owns it for the whole call) or a local array kept alive with :func:`keep` after
    the last use of the borrowed alias. Never return, store or box a borrowed array.
    """
    if not isinstance(arr, types.Array):
        return None
    sig = arr(arr)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        ary = context.make_array(sig.args[0])(context, builder, value=args[0])
        ary.meminfo = _null(ary.meminfo.type)
        ary.parent = _null(ary.parent.type)
        return ary._getvalue()

    return sig, codegen


def _keep_typer(typingctx: Any, arr: Any) -> Any:
    """A use of ``arr`` that emits no code: Numba releases a local array after its last use,
    so ``keep(owner)`` after the last use of ``borrow(owner)`` keeps the memory alive."""
    sig = types.none(arr)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return context.get_dummy_value()

    return sig, codegen


def _put_bytes_typer(typingctx: Any, dst: Any, off: Any, src: Any, n: Any) -> Any:
    """``memcpy(dst.data + off, src.data, n)``: the first ``n`` bytes of ``src`` at byte
    ``off`` of ``dst``, one libc copy (Numba's typed slice assignment ``d[:] = s`` runs a
    strided element loop: ~2x slower for a track-table checkpoint).

    Invariant (the caller's): both C-contiguous, ``0 <= off``, ``off + n <= dst.nbytes``,
    ``n <= src.nbytes``, no overlap. Nothing is checked."""
    if not (isinstance(dst, types.Array) and isinstance(src, types.Array)):
        return None
    if not (isinstance(off, types.Integer) and isinstance(n, types.Integer)):
        return None
    sig = types.none(dst, off, src, n)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        d = context.make_array(sig.args[0])(context, builder, value=args[0])
        s = context.make_array(sig.args[2])(context, builder, value=args[2])
        i8p = cgutils.voidptr_t
        dst_p = builder.gep(builder.bitcast(d.data, i8p), [args[1]])
        cgutils.raw_memcpy(builder, dst_p, builder.bitcast(s.data, i8p), args[3], 1)  # type: ignore[no-untyped-call]
        return context.get_dummy_value()

    return sig, codegen


class _Borrow(Protocol):
    def __call__(self, arr: _A, /) -> _A: ...


class _Keep(Protocol):
    def __call__(self, arr: object, /) -> None: ...


class _PutBytes(Protocol):
    def __call__(
        self, dst: npt.NDArray[Any], off: int, src: npt.NDArray[Any], n: int, /
    ) -> None: ...


borrow = cast(_Borrow, intrinsic(_borrow_typer))
borrow.__doc__ = _borrow_typer.__doc__
keep = cast(_Keep, intrinsic(_keep_typer))
keep.__doc__ = _keep_typer.__doc__
put_bytes = cast(_PutBytes, intrinsic(_put_bytes_typer))
put_bytes.__doc__ = _put_bytes_typer.__doc__


F8 = npt.NDArray[np.float64]
F4 = npt.NDArray[np.float32]
I8 = npt.NDArray[np.int64]
I4 = npt.NDArray[np.int32]
U1 = npt.NDArray[np.uint8]
U4 = npt.NDArray[np.uint32]
U8 = npt.NDArray[np.uint64]
B1 = npt.NDArray[np.bool_]
Rec = npt.NDArray[np.void]
