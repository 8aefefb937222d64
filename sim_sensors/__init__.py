"""Seeded scenario simulator: ground truth, sensor events, devices and network effects.

``generate(site, cfg)`` builds a :class:`Scenario` whose ``messages`` are what the MQTT
broker would deliver, in arrival order, and whose ``truth`` labels every object and
event; ``write_replay`` / ``write_truth`` write the contract replay file and the truth
file (``docs/simulator.md``). ``sim_sensors.live.publish`` plays the same messages
to a real broker, one client per device.
"""

from sim_sensors._errors import ScoreInputError, SimConfigError, SimError
from sim_sensors.config import PRESETS, ScenarioConfig, Weather, preset
from sim_sensors.scenario import Message, Scenario, generate, replay_line

__all__ = [
    "PRESETS",
    "Message",
    "Scenario",
    "ScenarioConfig",
    "ScoreInputError",
    "SimConfigError",
    "SimError",
    "Weather",
    "generate",
    "preset",
    "replay_line",
]
