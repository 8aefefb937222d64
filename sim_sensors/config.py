"""Scenario configuration (strict, self-describing) and the named presets.

A :class:`ScenarioConfig` fully determines a scenario together with the site: the same
site, config and ``seed`` give byte-identical replay and truth files.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from sim_sensors._errors import SimConfigError

_STRICT: dict[str, Any] = {"forbid_unknown_fields": True, "kw_only": True}

Fraction = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Count = Annotated[int, msgspec.Meta(ge=0)]
Seconds = Annotated[float, msgspec.Meta(ge=0.0)]
PositiveS = Annotated[float, msgspec.Meta(gt=0.0)]

#: 2026-11-24T22:00:00Z, a November night on the border
NIGHT_START_T = 1795557600.0


class Weather(msgspec.Struct, **_STRICT):
    """Wind and rain levels in [0, 1] driving the fibre's nuisance events.

    * wind gusts: Poisson, ``4 * wind`` gusts per km of cable per hour, each over
      ``U(0.3, 3)`` km of cable for ``U(3, 20)`` s, with ``3 * wind`` events per km per s
      inside the gust; plus a steady background of ``0.02 * wind`` events per km per s;
    * rain: steady ``0.05 * rain`` events per km of cable per s.
    """

    wind: Fraction = 0.2
    rain: Fraction = 0.0


class ScenarioConfig(msgspec.Struct, **_STRICT):
    """Everything a scenario is made from (times in seconds from ``start_t``)."""

    name: str = "custom"
    seed: int = 0
    start_t: float = NIGHT_START_T  # UNIX epoch of scenario time 0
    duration_s: PositiveS = 600.0
    # area: border chainage window [chain_from_m, chain_to_m] (None: the whole border)
    chain_from_m: float | None = None
    chain_to_m: float | None = None
    # ground truth
    n_crossings: Count = 2  # groups crossing neighbour -> home
    group_size_max: Annotated[int, msgspec.Meta(ge=1, le=40)] = 40
    p_single: Fraction = 0.4  # probability a crossing "group" is one person
    group_size_mean: Annotated[float, msgspec.Meta(ge=2.0)] = 5.0  # mean size of real groups
    p_running: Fraction = 0.25  # probability a group runs near the border
    crossing_window: tuple[Fraction, Fraction] = (0.1, 0.85)  # crossing times, fraction of D
    approach_start_m: tuple[float, float] = (800.0, 3000.0)  # start distance on the far side
    n_turnbacks: Count = 0  # people who approach the border and turn back
    n_vehicles: Count = 0  # vehicle passes on roads parallel to the border
    near_road_fraction: Fraction = 0.3  # of vehicles, on roads within ~15-45 m of the cable
    n_farm: Count = 0  # farm machines working fields next to the cable
    n_animals: Count = 0  # deer, boar, dogs on both sides
    digging: bool = False  # one person digging at one spot near the cable
    patrols: bool = True  # home patrols drive along their roads; all publish positions
    patrol_report_s: PositiveS = 10.0
    # faults
    fibre_cut_at_s: Seconds | None = None
    fibre_cut_device: str | None = None  # default: the unit holding the window's middle
    fibre_cut_chainage_m: Seconds | None = None  # cable chainage; default random
    camera_offline_at_s: Seconds | None = None
    camera_offline_device: str | None = None  # default: a camera inside the window
    camera_offline_mode: Literal["will", "status", "silence"] = "will"
    # nuisance
    weather: Weather = msgspec.field(default_factory=Weather)
    camera_clutter_per_hour: Seconds = 20.0  # false objects per camera per hour
    msv_clutter_per_scan: Seconds = 1.0  # mean false plots per radar scan
    # devices
    heartbeat_s: PositiveS | None = None  # status re-publish period; default site heartbeat/3
    fibre_batch_s: PositiveS = 1.0
    will_delay_s: PositiveS = 90.0  # broker publishes the last will 1.5 x keepalive(60 s)
    # network
    late_fraction: Fraction = 0.02  # batches delayed by seconds (lognormal, median 8 s)
    late_minutes_fraction: Fraction = 0.1  # of late batches, delayed U(60, 300) s
    duplicate_fraction: Fraction = 0.01  # QoS 1 redeliveries
    malformed_count: Count = 0  # extra bad payloads (bad JSON, wrong device, NaN, not object)
    # outputs
    truth_dt_s: PositiveS = 1.0  # truth sample period in the truth file (multiple of 1 s)
    label_events: bool = False  # add "truth_id" to every event (extension field)

    def __post_init__(self) -> None:
        lo, hi = self.crossing_window
        if hi <= lo:
            raise SimConfigError("crossing_window", "must be (lo, hi) with lo < hi")
        a, b = self.approach_start_m
        if not 0 < a <= b:
            raise SimConfigError("approach_start_m", "must be (lo, hi) with 0 < lo <= hi")
        if (self.chain_from_m is None) != (self.chain_to_m is None):
            raise SimConfigError("chain_to_m", "give both chain_from_m and chain_to_m or neither")
        if (
            self.chain_from_m is not None
            and self.chain_to_m is not None
            and self.chain_to_m <= self.chain_from_m
        ):
            raise SimConfigError("chain_to_m", "must be greater than chain_from_m")
        if round(self.truth_dt_s) != self.truth_dt_s:
            raise SimConfigError("truth_dt_s", "must be a whole number of seconds")


PRESETS: dict[str, ScenarioConfig] = {
    # The end-to-end scenario: 10 minutes on 8 km around TH-02 / MSV-1 (km 24-32),
    # two crossings, one turn-back, a little traffic and wildlife, light wind.
    "crossing-10min": ScenarioConfig(
        name="crossing-10min",
        duration_s=600.0,
        chain_from_m=24000.0,
        chain_to_m=32000.0,
        n_crossings=2,
        crossing_window=(0.3, 0.7),
        approach_start_m=(350.0, 600.0),
        p_running=0.0,
        n_turnbacks=1,
        n_vehicles=4,
        n_animals=4,
        weather=Weather(wind=0.1, rain=0.0),
        late_fraction=0.02,
        duplicate_fraction=0.01,
        malformed_count=3,
    ),
    # A whole-border night: 6 h, every kind of target, nuisance and fault.
    "night-6h": ScenarioConfig(
        name="night-6h",
        duration_s=6 * 3600.0,
        n_crossings=24,
        n_turnbacks=10,
        n_vehicles=400,
        n_farm=4,
        n_animals=120,
        digging=True,
        fibre_cut_at_s=3 * 3600.0,
        camera_offline_at_s=4 * 3600.0,
        weather=Weather(wind=0.3, rain=0.2),
        late_fraction=0.02,
        duplicate_fraction=0.01,
        malformed_count=20,
        truth_dt_s=2.0,
    ),
    # A stormy hour on one fibre unit (FO-02, km 37.4-74.9): false-alarm pressure.
    "storm-1h": ScenarioConfig(
        name="storm-1h",
        duration_s=3600.0,
        chain_from_m=37438.0,
        chain_to_m=74876.0,
        n_crossings=3,
        n_vehicles=40,
        n_animals=20,
        weather=Weather(wind=0.9, rain=0.8),
        malformed_count=5,
    ),
}


def preset(name: str, **overrides: Any) -> ScenarioConfig:
    """A named preset, with fields replaced by ``overrides`` (validated again)."""
    try:
        base = PRESETS[name]
    except KeyError:
        raise SimConfigError(
            "preset", f"unknown preset {name!r}; one of {sorted(PRESETS)}"
        ) from None
    if not overrides:
        return base
    data = msgspec.to_builtins(base)
    data.update(overrides)
    try:
        return msgspec.convert(data, ScenarioConfig)
    except msgspec.ValidationError as exc:
        raise SimConfigError("", str(exc)) from exc
