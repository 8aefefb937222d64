"""Snapshots of the pipeline's in-memory state, encoded explicitly (never pickle).

A snapshot holds what a restarted service needs to continue exactly where the running
one was, so that replaying the journal *after* the snapshot reproduces the same tracks
and the same alerts (same ids, same states):

* the tracker (``TrackTable`` arrays, frontier, counters, and its rewind buffers: logged
  rows, checkpoints, step times), the core's pending rows and next step time, the
  reporter's last emission times;
* the ingest de-duplication windows (``(device, seq)``), the device health registry and
  the measurement id counter;
* the alert engine's state (alerts, keys, cool-downs, track histories, patrols, ...).

Encoding: a tree of msgpack values where every non-scalar is a list whose first element
is a tag (``"l"`` list, ``"t"`` tuple, ``"d"`` dict as pairs, ``"s"`` set, ``"dq"``
deque, ``"nd"`` numpy array as ``.npy`` bytes written with ``allow_pickle=False``,
``"O"`` an object of an allow-listed class as ``module:qualname`` plus attribute
pairs, ...). Decoding only instantiates classes from the project's own packages
(:data:`ALLOWED_MODULES`) and never runs code from the snapshot: an unknown tag or class
raises :class:`SnapshotError`.

What is *not* in a snapshot: configuration (site, tracker and alert settings; a snapshot
records a fingerprint and is refused when it does not match), metrics (Prometheus
counters restart from zero), I/O objects.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import importlib
import io
import math
from typing import TYPE_CHECKING, Any, Final

import msgspec
import numpy as np

if TYPE_CHECKING:
    from service.runtime import Pipeline

#: 2: tracker checkpoints are packed buffers (``_Checkpoint.packed``) and the replay log is
#: bytes; a format-1 snapshot is refused (the journal is replayed instead)
FORMAT: Final = 2
ALLOWED_MODULES: Final = ("fusion.", "drivers.", "alerts.", "service.", "geo.")
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1

#: Per root object, the attributes that are configuration or sub-roots (rebuilt from the
#: site and settings, never snapshotted). Every *other* attribute is state and is
#: snapshotted, so state added later is captured without touching this module (and an
#: attribute that cannot be encoded fails the snapshot loudly instead of being skipped).
_CONFIG: Final[dict[str, frozenset[str]]] = {
    "core": frozenset({"site", "step_s", "ingest", "tracker", "reporter", "_to_track"}),
    "tracker": frozenset(
        {
            "config",
            "_g",
            "_kpar",
            "_cpar",
            "_prior",
            "_spd",
            "_slam",
            "_C",
            "_C_fibre",
            "_kargs",
            "_kargs_tb",
            "_one",
        }
    ),
    "reporter": frozenset({"site", "include_tentative"}),
    "ingest": frozenset(
        {
            "site",
            "metrics",
            "health",
            "windows",
            "late_after_s",
            "_fibre_units",
            "_routes",
            "_teams",
            "_rx",
            "_ok",
            "_ev",
            "_handlers",
        }
    ),
    "health": frozenset({"site", "heartbeat_s"}),
    "windows": frozenset({"window", "_mask"}),
    "engine": frozenset(
        {"site", "s", "fallback_sector", "_sector_ids", "rules", "teams", "speed_mps"}
    ),
    "durable": frozenset({"pipe", "journal", "max_pending_rows", "lock", "now"}),
}


class SnapshotError(Exception):
    """A snapshot cannot be written or read (``reason`` says why)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- value codec ----------------------------------------------------------------------------


def _qualname(obj: object) -> str:
    cls = type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


def _allowed(module: str) -> bool:
    return any(module.startswith(p) for p in ALLOWED_MODULES)


def _attrs(obj: object) -> list[tuple[str, Any]]:
    names: list[str] = []
    for cls in type(obj).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        names.extend([slots] if isinstance(slots, str) else slots)
    out = [(n, getattr(obj, n)) for n in names if n != "__weakref__" and hasattr(obj, n)]
    d = getattr(obj, "__dict__", None)
    if d is not None:
        out.extend(sorted(d.items()))
    return out


def encode_value(v: Any) -> Any:  # noqa: PLR0911  (one branch per supported type)
    """``v`` as a tree of msgpack-able values (see the module doc); raises on others."""
    t = type(v)
    if v is None or t is bool or t is float or t is str:
        return v
    if t is int:
        return v if _I64_MIN <= v <= _I64_MAX else ["bi", str(v)]
    if t is bytes:
        return ["b", v]
    if t is np.ndarray:
        if v.dtype.hasobject:
            msg = "object arrays are not snapshotted"
            raise SnapshotError(msg)
        buf = io.BytesIO()
        np.save(buf, v, allow_pickle=False)
        return ["nd", buf.getvalue()]
    if isinstance(v, np.generic):
        return ["ng", encode_value(np.asarray(v))]
    if t is list:
        return ["l", [encode_value(x) for x in v]]
    if t is tuple:
        return ["t", [encode_value(x) for x in v]]
    if t is set or t is frozenset:
        return ["s" if t is set else "fs", [encode_value(x) for x in v]]
    if t is dict:
        return ["d", [[encode_value(k), encode_value(x)] for k, x in v.items()]]
    if t is collections.Counter:
        return ["C", [[encode_value(k), encode_value(x)] for k, x in v.items()]]
    if t is collections.deque:
        return ["dq", v.maxlen, [encode_value(x) for x in v]]
    name = _qualname(v)
    if not _allowed(t.__module__):
        msg = f"cannot snapshot a {name}"
        raise SnapshotError(msg)
    if isinstance(v, enum.Enum):
        return ["e", name, encode_value(v.value)]
    if isinstance(v, msgspec.Struct):
        return ["S", name, [[f, encode_value(getattr(v, f))] for f in v.__struct_fields__]]
    if isinstance(v, tuple):  # NamedTuple
        return ["nt", name, [encode_value(x) for x in v]]
    if dataclasses.is_dataclass(v):
        fields = [(f.name, getattr(v, f.name)) for f in dataclasses.fields(v)]
        return ["O", name, [[k, encode_value(x)] for k, x in fields]]
    return ["O", name, [[k, encode_value(x)] for k, x in _attrs(v)]]


def _class(name: str) -> type[Any]:
    module, _, qual = name.partition(":")
    if not _allowed(module):
        msg = f"class {name} is not allowed in a snapshot"
        raise SnapshotError(msg)
    obj: Any = importlib.import_module(module)
    for part in qual.split("."):
        obj = getattr(obj, part, None)
    if not isinstance(obj, type):
        msg = f"no class {name}"
        raise SnapshotError(msg)
    return obj


def decode_value(v: Any) -> Any:  # noqa: PLR0911  (one branch per tag)
    """Inverse of :func:`encode_value`."""
    if not isinstance(v, list):
        return v
    tag = v[0]
    if tag == "bi":
        return int(v[1])
    if tag == "b":
        return bytes(v[1])
    if tag == "nd":
        return np.load(io.BytesIO(v[1]), allow_pickle=False)
    if tag == "ng":
        return decode_value(v[1])[()]
    if tag == "l":
        return [decode_value(x) for x in v[1]]
    if tag == "t":
        return tuple(decode_value(x) for x in v[1])
    if tag in ("s", "fs"):
        items = [decode_value(x) for x in v[1]]
        return set(items) if tag == "s" else frozenset(items)
    if tag in ("d", "C"):
        pairs = {decode_value(k): decode_value(x) for k, x in v[1]}
        return pairs if tag == "d" else collections.Counter(pairs)
    if tag == "dq":
        return collections.deque((decode_value(x) for x in v[2]), maxlen=v[1])
    if tag == "e":
        return _class(v[1])(decode_value(v[2]))
    if tag == "S":
        return _class(v[1])(**{k: decode_value(x) for k, x in v[2]})
    if tag == "nt":
        return _class(v[1])(*(decode_value(x) for x in v[2]))
    if tag == "O":
        cls = _class(v[1])
        obj = object.__new__(cls)
        for k, x in v[2]:
            object.__setattr__(obj, k, decode_value(x))
        return obj
    msg = f"unknown snapshot tag {tag!r}"
    raise SnapshotError(msg)


# -- pipeline state -------------------------------------------------------------------------


def _roots(pipe: Pipeline, durable: object | None) -> dict[str, tuple[object, list[str]]]:
    core = pipe.core
    objs: dict[str, object] = {
        "core": core,
        "tracker": core.tracker,
        "reporter": core.reporter,
        "ingest": core.ingest,
        "health": core.ingest.health,
        "windows": core.ingest.windows,
        "engine": pipe.engine,
    }
    if durable is not None:
        objs["durable"] = durable
    return {
        name: (obj, [a for a, _ in _attrs(obj) if a not in _CONFIG[name]])
        for name, obj in objs.items()
    }


def fingerprint(pipe: Pipeline) -> dict[str, Any]:
    """What must match between the snapshotting and the restoring service."""
    site = pipe.site
    return {
        "site": site.name,
        "sensors": list(site.sensor_ids),
        "sectors": [s.id for s in site.sectors],
        "step_s": pipe.core.step_s,
        "tracker": msgspec.to_builtins(pipe.core.tracker.config),
        "alerts": msgspec.to_builtins(pipe.engine.s),
    }


def _clean(v: Any) -> Any:
    """Fingerprints compare as JSON-ish values (NaN-safe)."""
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    return v


def capture(
    pipe: Pipeline,
    durable: object | None = None,
    *,
    position: str,
    started: float,
    now: float = -math.inf,
) -> bytes:
    """Encode ``pipe``'s state; ``position`` is the journal id the state includes, ``now``
    the service clock (message clock) at that point."""
    state = {
        name: [[a, encode_value(getattr(obj, a))] for a in attrs]
        for name, (obj, attrs) in _roots(pipe, durable).items()
    }
    doc = {
        "format": FORMAT,
        "position": position,
        "started": started,
        "now": now,
        "fingerprint": _clean(fingerprint(pipe)),
        "state": state,
    }
    return msgspec.msgpack.encode(doc)


def read_header(data: bytes) -> tuple[str, float]:
    """``(position, started)`` of a snapshot."""
    doc = _decode(data)
    return str(doc["position"]), float(doc["started"])


def _decode(data: bytes) -> dict[str, Any]:
    try:
        doc = msgspec.msgpack.decode(data)
    except msgspec.DecodeError as exc:
        msg = f"unreadable snapshot: {exc}"
        raise SnapshotError(msg) from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        msg = "not a snapshot of this format"
        raise SnapshotError(msg)
    return doc


def restore(pipe: Pipeline, data: bytes, durable: object | None = None) -> tuple[str, float]:
    """Load a :func:`capture` into a freshly built ``pipe``; return its journal position
    and clock.

    Raises :class:`SnapshotError` (and leaves ``pipe`` untouched) when the snapshot is
    unreadable or was taken with another site or configuration.
    """
    doc = _decode(data)
    if doc["fingerprint"] != _clean(fingerprint(pipe)):
        msg = "snapshot taken with another site or configuration"
        raise SnapshotError(msg)
    roots = _roots(pipe, durable)
    decoded = {
        name: [(a, decode_value(v)) for a, v in attrs] for name, attrs in doc["state"].items()
    }
    if set(decoded) != set(roots):
        msg = "snapshot roots differ"
        raise SnapshotError(msg)
    for name, attrs in decoded.items():
        obj = roots[name][0]
        for a, v in attrs:
            setattr(obj, a, v)
    return str(doc["position"]), float(doc.get("now", -math.inf))
