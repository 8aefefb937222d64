"""``benchmarks.fusion_accuracy`` options on a one-minute scenario: ``--variants`` runs only
the named sensor sets, ``--keep`` leaves their replay inputs, tracks and alerts (never
its figures: those are the benchmark's output)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import fusion_accuracy


def test_variants_subset_and_kept_files(tmp_path: Path) -> None:
    keep, out = tmp_path / "work", tmp_path / "acc.json"
    rc = fusion_accuracy.main(
        ["--seeds", "1", "--duration", "60", "--variants", "fibre", "fibre+thermal",
         "--keep", str(keep), "--out", str(out)]
    )  # fmt: skip
    assert rc == 0
    res = json.loads(out.read_text())
    assert set(res["mean"]) == {"fibre", "fibre+thermal"}
    assert set(res["per_seed"]["1"]) == {"fibre", "fibre+thermal"}
    assert set(res["per_seed"]["1"]["fibre"]) >= set(fusion_accuracy.METRICS)
    names = {p.name for p in keep.iterdir()}
    for tag in ("1_fibre", "1_fibre_thermal"):
        assert {f"in_{tag}.jsonl", f"tracks_{tag}.jsonl", f"alerts_{tag}.jsonl"} <= names
    assert "in_1_all.jsonl" not in names
    # the thermal variant's input holds thermal events, the fibre one's none (the
    # cameras' status messages stay in both)

    def event_kinds(path: Path) -> set[str]:
        topics = [json.loads(line)["topic"].split("/") for line in path.read_text().splitlines()]
        return {t[3] for t in topics if len(t) == 6 and t[5] == "events"}

    assert event_kinds(keep / "in_1_fibre.jsonl") == {"fibre"}
    assert event_kinds(keep / "in_1_fibre_thermal.jsonl") == {"fibre", "thermal"}
