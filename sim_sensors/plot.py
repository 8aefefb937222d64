"""A PNG of a scored scenario: border, cameras, truth paths, tracks, alerts (matplotlib).

The view is the scenario's chainage window (header ``chain_from_m``/``chain_to_m``)
plus 3 km, in the site's working CRS (km).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from geo import Site

if TYPE_CHECKING:
    from sim_sensors.score import Alert, Tracks, TruthFile

ROLE_STYLE: dict[str, tuple[str, float]] = {
    "crossing": ("#d62728", 1.6),
    "turnback": ("#ff7f0e", 1.4),
    "digging": ("#e377c2", 1.4),
    "road": ("#9a9a9a", 0.6),
    "farm": ("#8c8c00", 0.8),
    "animal": ("#8c564b", 0.7),
    "patrol": ("#1f77b4", 0.8),
    "msv": ("#17becf", 1.0),
}
ALERT_STYLE: dict[str, tuple[str, str]] = {
    "crossing": ("*", "#d62728"),
    "approach": ("^", "#ff7f0e"),
    "digging": ("X", "#e377c2"),
    "vehicle": ("s", "#7f7f7f"),
    "loitering": ("o", "#9467bd"),
    "sensor_fault": ("D", "#000000"),
}


def plot_scenario(
    site: Site, truth: TruthFile, tracks: Tracks, alerts: list[Alert], out: str | Path
) -> None:
    """Write the scenario picture to ``out`` (PNG)."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    h = truth.header
    lo = float(h.get("chain_from_m", 0.0))
    hi = float(h.get("chain_to_m", site.border.length))
    bx, by, _, _ = site.border.point_at(np.linspace(lo, hi, 400), 0.0)
    pad = 3000.0
    x0, x1 = bx.min() - pad, bx.max() + pad
    y0, y1 = by.min() - pad, by.max() + pad
    aspect = (y1 - y0) / max(1.0, x1 - x0)
    fig, ax = plt.subplots(figsize=(11, max(5.0, min(16.0, 11 * aspect))), dpi=110)
    v = site.border.vertices
    ax.plot(v[:, 0] / 1e3, v[:, 1] / 1e3, color="black", lw=1.8, label="border", zorder=3)
    if len(site.thermal):
        tx, ty = site.thermal_xy[:, 0], site.thermal_xy[:, 1]
        ax.scatter(tx / 1e3, ty / 1e3, marker="^", s=40, color="#2ca02c", label="thermal",
                   zorder=4)  # fmt: skip
    bounds = np.searchsorted(truth.obj, np.arange(len(truth.ids) + 1))
    seen: set[str] = set()
    for i in range(len(truth.ids)):
        a, b = int(bounds[i]), int(bounds[i + 1])
        role = truth.role[i]
        color, lw = ROLE_STYLE.get(role, ("#bcbd22", 0.6))
        lab = f"truth {role}" if role not in seen else None
        seen.add(role)
        ax.plot(truth.x[a:b] / 1e3, truth.y[a:b] / 1e3, color=color, lw=lw, label=lab, zorder=4)
    tb = np.searchsorted(tracks.trk, np.arange(len(tracks.ids) + 1))
    first = True
    for i in range(len(tracks.ids)):
        a, b = int(tb[i]), int(tb[i + 1])
        c = tracks.confirmed[a:b]
        if not c.any():
            continue
        ax.plot(tracks.x[a:b][c] / 1e3, tracks.y[a:b][c] / 1e3, color="#2ca02c", lw=2.5,
                alpha=0.35, label="confirmed tracks" if first else None, zorder=2)  # fmt: skip
        first = False
    cx = [e for e in truth.events if e.get("type") == "crossing"]
    if cx:
        ax.scatter([e["x"] / 1e3 for e in cx], [e["y"] / 1e3 for e in cx], s=90,
                   facecolors="none", edgecolors="#d62728", lw=1.5, label="truth crossing",
                   zorder=6)  # fmt: skip
    for kind, (marker, color) in ALERT_STYLE.items():
        pts = [a for a in alerts if a.kind == kind and np.isfinite(a.x)]
        if pts:
            ax.scatter([a.x / 1e3 for a in pts], [a.y / 1e3 for a in pts], marker=marker,
                       s=70, color=color, edgecolors="white", lw=0.5,
                       label=f"alert {kind} ({len(pts)})", zorder=7)  # fmt: skip
    ax.set_xlim(x0 / 1e3, x1 / 1e3)
    ax.set_ylim(y0 / 1e3, y1 / 1e3)
    ax.set_aspect("equal")
    ax.set_xlabel(f"x (km, {site.proj.name})")
    ax.set_ylabel("y (km)")
    name = h.get("name", "scenario")
    hours = float(h.get("duration_s", 0)) / 3600
    ax.set_title(
        f"{name} seed {h.get('seed', '-')} on {site.name}: "
        f"km {lo / 1e3:.1f}-{hi / 1e3:.1f}, {hours:.2f} h"
    )
    ax.legend(loc="best", fontsize=7, framealpha=0.85)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
