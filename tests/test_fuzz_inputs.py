"""Hypothesis fuzzing of the inputs an operator or a field unit controls.

* site files: :func:`geo.parse_site` on arbitrary text, TOML-ish text, damaged copies of
  the shipped site and structurally valid TOML with arbitrary values in any field. Nothing
  but :class:`geo.SiteError` may escape, and its message is ``FILE: FIELD: REASON``
  (``FILE: REASON`` when no field applies, e.g. a TOML syntax error).
* operator acks and patrol positions through :meth:`drivers.Ingest.handle` on their topics
  (arbitrary ids in the topic, near-valid and arbitrary payloads): never raises; a reject
  carries a ``code: detail`` reason; what is accepted satisfies the contract.
* console action bodies: ``console._app._note_and_unit`` is the pure validator of an
  action's JSON body (the HTTP handler around it is not pure): only HTTP 400 may escape.

``tests/test_drivers_props.py`` already fuzzes event batches, statuses and replay lines.
A longer hunt: ``LIMES_FUZZ_SCALE=20 pytest tests/test_fuzz_inputs.py``.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from starlette.exceptions import HTTPException

import geo
from console._actions import MAX_NOTE
from console._app import _note_and_unit
from drivers import Ingest, IngestResult

SITE_TEXT = geo.site.DEFAULT_SITE_PATH.read_text()
SITE_DOC: dict[str, Any] = tomllib.loads(SITE_TEXT)
BORDER = geo.site.DEFAULT_SITE_PATH.parent / SITE_DOC["site"]["border"]
NOW = 1_764_000_000.0
#: LIMES_FUZZ_SCALE=20 multiplies every example count (a long hunt; CI runs 1)
SCALE = float(os.environ.get("LIMES_FUZZ_SCALE", "1"))
FAST = settings(
    max_examples=max(1, int(200 * SCALE)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
#: structured sites get past validation more often, and then build pyproj transformers
#: (~90 ms a site): fewer examples keep the test at a few seconds
SLOW = settings(
    max_examples=max(1, int(60 * SCALE)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# -- site files ---------------------------------------------------------------------------------

#: border files next to the fuzzed site file: the real one and broken ones
BORDERS: dict[str, str] = {
    "broken.geojson": '{"type": "Feature", "geometry": ',
    "point.geojson": '{"type": "Feature", "geometry": {"type": "Point", "coordinates": [20, 45]}}',
    "empty.geojson": '{"type": "FeatureCollection", "features": []}',
    "list.geojson": "[1, 2, 3]",
    "short.geojson": json.dumps(
        {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[20.5, 45.5]]}}
    ),
    "flat.geojson": json.dumps(
        {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [1, 2, 3]}}
    ),
    "ragged.geojson": json.dumps(
        {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[20, 45], [21]]}}
    ),
    "text.geojson": json.dumps(
        {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [["a", "b"]] * 2}}
    ),
    "nan.geojson": '{"type": "Feature", "geometry": {"type": "LineString", '
    '"coordinates": [[NaN, 45], [21, Infinity]]}}',
    "far.geojson": json.dumps(
        {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[500, 95], [0, 0]]}}
    ),
    "same.geojson": json.dumps(
        {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[20.5, 45.5]] * 3}}
    ),
    "no_geometry.geojson": '{"type": "Feature", "geometry": null}',
}


@pytest.fixture(scope="module")
def site_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the fuzzed site file "lives": a directory with the real border and broken ones."""
    d = tmp_path_factory.mktemp("fuzz-site")
    shutil.copy(BORDER, d / BORDER.name)
    for name, text in BORDERS.items():
        (d / name).write_text(text)
    return d / "site.toml"


def check_site(text: str | bytes, path: Path) -> None:
    """``parse_site`` returns a site or raises a well-formed :class:`geo.SiteError`."""
    try:
        site = geo.parse_site(text, path)
    except geo.SiteError as exc:
        error = exc
    else:
        assert site.border.length > 0
        assert len(site.sensor_ids) == len(set(site.sensor_ids))
        return
    assert error.file == str(path)
    assert error.reason.strip(), error
    if error.field:
        assert str(error) == f"{path}: {error.field}: {error.reason}"
        assert "\n" not in error.field
    else:
        assert str(error) == f"{path}: {error.reason}"


_SECTIONS = ["[site]", "[[sectors]]", "[[fibre]]", "[[thermal]]", "[[msv]]", "[[patrols]]"]
_KEYS = sorted(
    {k for v in SITE_DOC.values() for t in (v if isinstance(v, list) else [v]) for k in t}
    | {"unknown", "name", "id", "a.b", '"quoted key"'}
)
_VALUES = [
    "0", "-1", "1e309", "nan", "inf", "-inf", "1.5", "1_000", "0x10", "true", "false",
    '""', '"x"', '"EPSG:4326"', '"EPSG:3857"', '"EPSG:99999"', '"RO"', '"RS"', '"left"',
    '"ro_rs_border.geojson"', '"broken.geojson"', '"nan.geojson"', "[]", "[1, 2]",
    '["a", 1]', "{}", "{a = 1}", "1979-05-27T07:32:00Z", "'''x'''", '"\\u0000"', "[[1]]",
]  # fmt: skip

toml_lines = st.one_of(
    st.sampled_from(_SECTIONS),
    st.builds(
        lambda k, v: f"{k} = {v}",
        st.sampled_from(_KEYS),
        st.sampled_from(_VALUES) | st.text(max_size=12),
    ),
    st.text(max_size=30),
)
tomlish = st.lists(toml_lines, max_size=25).map("\n".join)


@st.composite
def damaged_site(draw: st.DrawFn) -> str:
    """The shipped site file with a slice deleted or replaced."""
    text = SITE_TEXT
    a = draw(st.integers(0, len(text)))
    b = draw(st.integers(a, min(len(text), a + 80)))
    return text[:a] + draw(st.text(max_size=20) | st.sampled_from(_VALUES)) + text[b:]


site_texts = st.text(max_size=300) | tomlish | damaged_site()


@FAST
@given(text=site_texts | site_texts.map(str.encode) | st.binary(max_size=300))
def test_site_text_never_escapes(site_path: Path, text: str | bytes) -> None:
    check_site(text, site_path)


# Found by this fuzzing (they escaped parse_site as UnicodeDecodeError / RecursionError).
def test_site_not_utf8(site_path: Path) -> None:
    # a site file saved by a Windows editor in the Central European code page
    text = SITE_TEXT.replace('name = "ro-rs"', 'name = "Timişoara"').encode("cp1250")
    check_site(text, site_path)


def test_site_deeply_nested_array(site_path: Path) -> None:
    check_site(SITE_TEXT.replace('name = "ro-rs"', "name = " + "[" * 5000 + "]" * 5000), site_path)


# structured: valid TOML, arbitrary values anywhere

_scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.floats(-1e6, 1e6),
    st.text(max_size=20),
    st.sampled_from(
        ["EPSG:3844", "EPSG:4326", "EPSG:3857", "EPSG:99999", "+proj=longlat", "RO", "RS",
         "JOINT", "left", "right", "FO-01", "TH-01", "S01", "", *BORDERS]
    ),
)  # fmt: skip
toml_values = st.recursive(
    _scalars,
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3)
    ),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


_SITE_PATHS = _paths(SITE_DOC)

mutation = st.tuples(
    st.sampled_from(_SITE_PATHS),
    st.sampled_from(["set", "delete", "add", "duplicate"]),
    toml_values,
)


def _mutate(doc: Any, path: tuple[Any, ...], op: str, value: Any) -> None:
    *parents, last = path
    node = doc
    for p in parents:
        if not isinstance(node, dict | list) or (isinstance(node, list) and p >= len(node)):
            return
        if isinstance(node, dict) and p not in node:
            return
        node = node[p]
    if not isinstance(node, dict | list):  # an earlier mutation replaced a parent by a value
        return
    if isinstance(node, list) and (not isinstance(last, int) or last >= len(node)):
        return
    if isinstance(node, dict) and last not in node:
        return
    if op == "set":
        node[last] = value
    elif op == "delete":
        del node[last]
    elif op == "add" and isinstance(node[last], dict):
        node[last]["extra_" + str(len(node[last]))] = value
    elif op == "duplicate" and isinstance(node, list):
        node.append(json.loads(json.dumps(node[last])))


def _toml_str(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out) + '"'


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    assert isinstance(v, dict)
    return "{" + ", ".join(f"{_toml_str(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"


def toml_dumps(doc: dict[str, Any]) -> str:
    """A minimal TOML writer: top-level tables and arrays of tables, inline values below."""
    lines: list[str] = []
    for key, value in doc.items():
        if isinstance(value, dict):
            lines.append(f"[{_toml_str(key)}]")
            lines += [f"{_toml_str(k)} = {_toml_value(v)}" for k, v in value.items()]
        elif isinstance(value, list) and value and all(isinstance(x, dict) for x in value):
            for table in value:
                lines.append(f"[[{_toml_str(key)}]]")
                lines += [f"{_toml_str(k)} = {_toml_value(v)}" for k, v in table.items()]
        else:
            lines.insert(0, f"{_toml_str(key)} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def test_toml_writer_round_trips() -> None:
    assert tomllib.loads(toml_dumps(SITE_DOC)) == SITE_DOC


@SLOW
@given(mutations=st.lists(mutation, min_size=1, max_size=3))
@example(mutations=[(("site",), "set", False), (("site", "name"), "set", [])])
@example(mutations=[(("site",), "set", False), (("site", "name"), "delete", [])])
def test_site_values_never_escape(
    site_path: Path, mutations: list[tuple[tuple[Any, ...], str, Any]]
) -> None:
    doc = json.loads(json.dumps(SITE_DOC))
    for path, op, value in mutations:
        _mutate(doc, path, op, value)
    text = toml_dumps(doc)
    assert tomllib.loads(text) is not None  # valid TOML: the site rules are what is fuzzed
    check_site(text, site_path)


# -- acks and patrol positions -------------------------------------------------------------------

INGEST = Ingest(geo.default_site(), started=NOW)
TEAMS = {"RO", "RS", "JOINT"}
REASON = re.compile(r"^([a-z_]+): \S")
CODES = {"bad_topic", "invalid_json", "schema", "unsupported_version", "device_mismatch",
         "time_skew", "bad_team", "oversize"}  # fmt: skip

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3)
    ),
    max_leaves=8,
)
ids = st.sampled_from(["A-1", "RO-P01", "RS-P02", "x" * 64, "x" * 65, "", "a/b", "+", "#"]) | (
    st.text(max_size=70)
)
times = st.sampled_from([NOW, NOW - 10, NOW + 86_401, 0.0, 1e300, -1.0]) | json_values
acks = st.fixed_dictionaries(
    {"operator": st.text(max_size=12) | json_values, "t": times},
    optional={"note": st.text(max_size=20) | json_values, "v": st.integers(0, 3) | json_values,
              "extra": json_values},
)  # fmt: skip
patrols = st.fixed_dictionaries(
    {
        "unit": st.sampled_from(["RO-P01", "RS-P02"]) | st.text(max_size=8),
        "t": times,
        "lat": st.floats(-100, 100) | json_values,
        "lon": st.floats(-200, 200) | json_values,
        "team": st.sampled_from([*sorted(TEAMS), "HU", ""]) | json_values,
        "available": st.booleans() | json_values,
    },
    optional={"v": st.integers(0, 3), "extra": json_values},
)


def check_ingest(res: IngestResult) -> None:
    assert res.accepted != bool(res.dead_letters)
    for dl in res.dead_letters:
        m = REASON.match(dl.reason)
        assert m is not None, dl.reason
        assert m.group(1) in CODES, dl.reason


def _payload(value: Any) -> bytes:
    return json.dumps(value).encode() if not isinstance(value, bytes) else value


@FAST
@given(alert_id=ids, value=acks | json_values | st.binary(max_size=64))
def test_acks_never_raise(alert_id: str, value: Any) -> None:
    topic = f"limes/v1/alerts/{alert_id}/ack"
    res = INGEST.handle(topic, _payload(value), NOW)
    check_ingest(res)
    if res.accepted:
        assert res.ack is not None
        assert res.ack.alert_id == alert_id
        assert re.fullmatch(r"[^/+#]{1,128}", alert_id)
        assert isinstance(res.ack.operator, str)
        assert abs(res.ack.t - NOW) <= 86_400


@FAST
@given(unit=ids, value=patrols | json_values | st.binary(max_size=64))
def test_patrol_positions_never_raise(unit: str, value: Any) -> None:
    topic = f"limes/v1/patrols/{unit}/position"
    res = INGEST.handle(topic, _payload(value), NOW)
    check_ingest(res)
    if res.accepted:
        p = res.patrol
        assert p is not None
        assert p.unit == unit
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", unit)
        assert -90 <= p.lat <= 90
        assert -180 <= p.lon <= 180
        assert p.team in TEAMS
        assert abs(p.t - NOW) <= 86_400


# -- console action bodies ------------------------------------------------------------------------


@FAST
@given(
    action=st.sampled_from(["ack", "escalate", "resolve", "assign", "ccp"]) | st.text(max_size=8),
    data=st.dictionaries(
        st.sampled_from(["note", "unit", "x"]) | st.text(max_size=5),
        json_values | st.text(min_size=MAX_NOTE - 2, max_size=MAX_NOTE + 2),
        max_size=3,
    ),
)
def test_console_action_body_validated(action: str, data: dict[str, Any]) -> None:
    try:
        note, unit = _note_and_unit(action, data)
    except HTTPException as exc:
        error = exc
    else:
        assert isinstance(note, str)
        assert len(note) <= MAX_NOTE
        assert note == note.strip()
        assert unit is None or isinstance(unit, str)
        if action in ("ack", "escalate", "resolve"):
            assert note
        return
    assert error.status_code == 400
    assert error.detail
