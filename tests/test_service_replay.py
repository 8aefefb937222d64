"""``limes replay``: deterministic, and its outputs follow the wire contract exactly.

A generated scenario (simulator, seeded) is replayed twice, once through the command
line and once through :func:`service.runtime.replay_file`: the track and alert files must
be byte-identical. Every line of both files is then checked against the contract's
"Track update" and "Alert" sections (fields, types, enumerations, site ids, the alert
lifecycle). The checkers are reused by the live end-to-end test (``test_e2e_live.py``).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from alerts.model import AlertKind, AlertState
from fusion.measurements import CLASS_NAMES
from geo import Site, default_site
from service.cli import main as cli_main
from service.runtime import replay_file
from sim_sensors import generate, preset

TRACK_FIELDS = frozenset(
    {"t", "track_id", "lat", "lon", "x", "y", "vx", "vy", "pos_sigma_m", "class", "class_p",
     "status", "sector", "side", "border_dist_m", "sensors"}
)  # fmt: skip
#: documented extensions of the track update (docs/fusion.md, fusion/report.py); any other
#: extra field is flagged so that a typo in a contract field name cannot pass as "unknown"
TRACK_EXTENSIONS = frozenset({"class_probs", "confidence", "merged_into"})
ALERT_FIELDS = frozenset(
    {"alert_id", "t", "kind", "priority", "state", "track_id", "lat", "lon", "sector",
     "summary", "sensors", "recommended_units"}
)  # fmt: skip
ALERT_KINDS: frozenset[str] = frozenset(AlertKind.__args__)  # type: ignore[attr-defined]
ALERT_STATES: frozenset[str] = frozenset(AlertState.__args__)  # type: ignore[attr-defined]
TRACK_STATUS = frozenset({"tentative", "confirmed", "lost"})
#: allowed state changes (docs/alerts.md "Lifecycle"); same state = a republished update
NEXT_STATES: dict[str, frozenset[str]] = {
    "open": frozenset({"open", "acknowledged", "escalated", "resolved"}),
    "acknowledged": frozenset({"acknowledged", "escalated", "resolved"}),
    "escalated": frozenset({"escalated", "acknowledged", "resolved"}),
    "resolved": frozenset(),
}
SEED = 3
DURATION_S = 360.0


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def check_track_update(u: Mapping[str, Any], site: Site) -> None:
    """One track update against the contract (raises AssertionError with the line)."""
    keys = set(u)
    assert keys >= TRACK_FIELDS, (sorted(TRACK_FIELDS - keys), u)
    assert keys - TRACK_FIELDS <= TRACK_EXTENSIONS, (sorted(keys - TRACK_FIELDS), u)
    for k in ("t", "lat", "lon", "x", "y", "vx", "vy", "pos_sigma_m", "class_p", "border_dist_m"):
        assert _number(u[k]), (k, u)
    assert -90 <= u["lat"] <= 90, u
    assert -180 <= u["lon"] <= 180, u
    assert isinstance(u["track_id"], str), u
    assert u["track_id"], u
    assert u["class"] in CLASS_NAMES, u
    assert 0.0 <= u["class_p"] <= 1.0, u
    assert u["status"] in TRACK_STATUS, u
    assert u["sector"] in {s.id for s in site.sectors}, u
    assert u["side"] in (site.home, site.neighbour), u
    assert u["border_dist_m"] >= 0.0, u
    assert u["pos_sigma_m"] >= 0.0, u
    assert isinstance(u["sensors"], list), u
    assert u["sensors"], u
    assert set(u["sensors"]) <= set(site.sensor_ids), u
    if "merged_into" in u:
        assert isinstance(u["merged_into"], str), u
        assert u["status"] == "lost", u


def check_track_stream(
    updates: Iterable[Mapping[str, Any]],
    site: Site,
    *,
    once_lost: bool = False,
    cadence: bool = False,
) -> dict[str, int]:
    """Every update valid; per track time never goes back; with ``once_lost`` nothing
    follows its ``lost`` update; with ``cadence`` a confirmed track reports at least every
    ``track_report_s`` of event time. Returns counts by status."""
    last: dict[str, tuple[float, str]] = {}
    counts = dict.fromkeys(TRACK_STATUS, 0)
    for u in updates:
        check_track_update(u, site)
        counts[u["status"]] += 1
        prev = last.get(u["track_id"])
        if prev is not None:
            t0, st0 = prev
            assert not once_lost or st0 != "lost", ("update after lost", u)
            assert u["t"] >= t0, ("time went back", u)
            if cadence and st0 == "confirmed":
                assert u["t"] - t0 <= site.track_report_s + 1e-6, ("report gap", t0, u)
        last[u["track_id"]] = (u["t"], u["status"])
    return counts


def check_alert(a: Mapping[str, Any], site: Site, units: set[str]) -> None:
    """One alert message against the contract."""
    assert set(a) == ALERT_FIELDS, (sorted(set(a) ^ ALERT_FIELDS), a)
    assert isinstance(a["alert_id"], str), a
    assert a["alert_id"], a
    for k in ("t", "lat", "lon"):
        assert _number(a[k]), (k, a)
    assert a["kind"] in ALERT_KINDS, a
    assert type(a["priority"]) is int, a
    assert 1 <= a["priority"] <= 4, a
    assert a["state"] in ALERT_STATES, a
    assert a["track_id"] is None or isinstance(a["track_id"], str), a
    if a["kind"] == "sensor_fault":
        assert a["sensors"], ("a sensor_fault names its device", a)
    else:
        assert isinstance(a["track_id"], str), a
    assert a["sector"] in {s.id for s in site.sectors}, a
    assert isinstance(a["summary"], str), a
    assert a["summary"], a
    assert isinstance(a["sensors"], list), a
    assert set(a["sensors"]) <= set(site.sensor_ids), a
    rec = a["recommended_units"]
    assert isinstance(rec, list), a
    assert set(rec) <= units, a
    assert len(set(rec)) == len(rec), a


def check_alert_stream(
    alerts: Iterable[Mapping[str, Any]], site: Site, units: set[str]
) -> dict[str, dict[str, Any]]:
    """Every alert valid; per ``alert_id``: first message ``open``, kind fixed, time never
    goes back, allowed state changes only. Returns the latest message per alert id."""
    latest: dict[str, dict[str, Any]] = {}
    for a in alerts:
        check_alert(a, site, units)
        prev = latest.get(a["alert_id"])
        if prev is None:
            assert a["state"] == "open", ("first message not open", a)
        else:
            assert a["kind"] == prev["kind"], a
            assert a["t"] >= prev["t"], ("time went back", a)
            assert a["state"] in NEXT_STATES[prev["state"]], (prev["state"], a)
        latest[a["alert_id"]] = dict(a)
    return latest


def read_lines(path: Path) -> list[dict[str, Any]]:
    """JSON objects of a JSON-lines file (each line must be one object)."""
    out: list[dict[str, Any]] = []
    for line in path.read_bytes().splitlines():
        obj = json.loads(line)
        assert isinstance(obj, dict), line
        out.append(obj)
    return out


def patrol_units(site: Site, topics: Iterable[str]) -> set[str]:
    """Patrol ids of the site file and of ``limes/v1/patrols/{unit}/position`` topics."""
    units = {p.id for p in site.patrols}
    for topic in topics:
        parts = topic.split("/")
        if len(parts) == 5 and parts[2] == "patrols" and parts[4] == "position":
            units.add(parts[3])
    return units


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, set[str]]:
    """A 6-minute crossing scenario replayed twice: CLI run in ``a/``, API run in ``b/``."""
    site = default_site()
    root = tmp_path_factory.mktemp("replay")
    sc = generate(site, preset("crossing-10min", seed=SEED, duration_s=DURATION_S))
    src = root / "in.jsonl"
    sc.write_replay(src)
    a, b = root / "a", root / "b"
    a.mkdir()
    b.mkdir()
    site_file = Path(__file__).resolve().parents[1] / "geo" / "data" / "ro-rs.toml"
    rc = cli_main(
        ["replay", str(site_file), str(src), "--tracks", str(a / "tracks.jsonl"),
         "--alerts", str(a / "alerts.jsonl")]
    )  # fmt: skip
    assert rc == 0
    asyncio.run(replay_file(site, src, tracks=b / "tracks.jsonl", alerts=b / "alerts.jsonl"))
    return a, b, patrol_units(site, (m.topic for m in sc.messages))


def test_replay_twice_is_byte_identical(replayed: tuple[Path, Path, set[str]]) -> None:
    a, b, _ = replayed
    for name in ("tracks.jsonl", "alerts.jsonl"):
        first, second = (a / name).read_bytes(), (b / name).read_bytes()
        assert first, f"{name} is empty"
        assert first == second, name


def test_replay_tracks_follow_the_contract(replayed: tuple[Path, Path, set[str]]) -> None:
    site = default_site()
    counts = check_track_stream(read_lines(replayed[0] / "tracks.jsonl"), site)
    # a 6-minute scenario with two crossings, vehicles and animals: confirmed tracks
    # report every second, and some of them end
    assert counts["confirmed"] > 500, counts
    assert counts["lost"] > 0, counts


def test_replay_confirmed_tracks_report_every_track_report_s(
    replayed: tuple[Path, Path, set[str]],
) -> None:
    check_track_stream(read_lines(replayed[0] / "tracks.jsonl"), default_site(), cadence=True)


def test_replay_tracks_are_lost_once(replayed: tuple[Path, Path, set[str]]) -> None:
    check_track_stream(read_lines(replayed[0] / "tracks.jsonl"), default_site(), once_lost=True)


def test_replay_alerts_follow_the_contract(replayed: tuple[Path, Path, set[str]]) -> None:
    site = default_site()
    _, _, units = replayed
    latest = check_alert_stream(read_lines(replayed[0] / "alerts.jsonl"), site, units)
    kinds = {a["kind"] for a in latest.values()}
    # seed 3 crosses twice within the first 6 minutes (truth crossings at ~305 s and ~357 s)
    assert "crossing" in kinds, kinds
    assert any(a["recommended_units"] for a in latest.values())
