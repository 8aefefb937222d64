"""Property tests: arbitrary bytes and arbitrary JSON never escape the ingest path, and
every reject carries a reason code."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import geo
from drivers import Ingest, IngestResult
from drivers._replay import parse_lines

SITE = geo.default_site()
NOW = 1_764_000_000.0
INGEST = Ingest(SITE, started=NOW)
TOPICS = [
    "limes/v1/sensors/fibre/FO-01/events",
    "limes/v1/sensors/thermal/TH-01/events",
    "limes/v1/sensors/msv/MSV-1/events",
    "limes/v1/sensors/fibre/FO-01/status",
    "limes/v1/patrols/RO-P01/position",
    "limes/v1/alerts/A1/ack",
]
CODES = {
    "bad_topic",
    "unknown_kind",
    "oversize",
    "unknown_device",
    "kind_mismatch",
    "invalid_json",
    "schema",
    "unsupported_version",
    "device_mismatch",
    "empty_batch",
    "too_many_events",
    "no_valid_events",
    "partial_batch",
    "time_skew",
    "bad_team",
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=20,
)
event_keys = st.sampled_from(
    [
        "t",
        "chainage_m",
        "class",
        "confidence",
        "extent_m",
        "energy",
        "bearing_deg",
        "range_m",
        "azimuth_deg",
        "object_id",
        "bearing_sigma_deg",
        "range_sigma_m",
        "radial_velocity_mps",
    ]
)
near_events = st.lists(
    st.dictionaries(event_keys, json_values | st.floats(0, 400), max_size=8), max_size=5
)
near_batches = st.fixed_dictionaries(
    {
        "device": st.sampled_from(["FO-01", "TH-01", "MSV-1", "X"]),
        "seq": st.integers(-2, 5),
        "events": near_events,
    },
    optional={
        "v": st.integers(0, 3),
        "platform": json_values,
        "t": json_values,
        "state": st.sampled_from(["online", "fault", "offline", "x"]),
        "detail": st.text(),
    },
)


def check(res: IngestResult) -> None:
    assert res.accepted or res.dead_letters
    for dl in res.dead_letters:
        assert dl.code in CODES, dl.reason
        assert dl.reason.split(":", 1)[1].strip()
        assert len(dl.payload_excerpt.encode()) <= 512
    if not res.accepted:
        assert res.meas.size == 0


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(topic=st.sampled_from(TOPICS) | st.text(max_size=40), payload=st.binary(max_size=300))
def test_arbitrary_bytes(topic: str, payload: bytes) -> None:
    check(INGEST.handle(topic, payload, NOW))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(topic=st.sampled_from(TOPICS), value=json_values)
def test_arbitrary_json(topic: str, value: Any) -> None:
    check(INGEST.handle(topic, json.dumps(value).encode(), NOW))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(topic=st.sampled_from(TOPICS), value=near_batches)
def test_near_valid_batches(topic: str, value: dict[str, Any]) -> None:
    res = INGEST.handle(topic, json.dumps(value).encode(), NOW)
    check(res)
    n_in = len(value["events"])
    assert res.meas.size + res.rejected_events <= n_in


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.binary(max_size=80) | json_values.map(lambda v: json.dumps(v).encode())))
def test_replay_lines_never_raise(lines: list[bytes]) -> None:
    for item in parse_lines(lines):
        if item.error:
            assert item.error.startswith("bad_replay_line: ")
            reason = item.error.replace("bad_replay_line", "schema")
            check(INGEST.reject(item.topic, item.payload, reason, item.at))
