"""Both transform benchmark scripts run end to end at tiny sizes (not timed)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from energy_assets_tests.conftest import REPO_ROOT

BENCH = REPO_ROOT / "benchmarks"


def _run(script: str, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def test_quality_ruggles_benchmark_smoke(realdata: Path, tmp_path: Path) -> None:
    _run(
        "quality_ruggles.py",
        "--realdata", str(realdata),
        "--out", str(tmp_path),
        "--max-days", "120",
        "--runs-per-ba", "3",
        "--lengths", "1,24",
        "--chunk-days", "30",
    )  # fmt: skip
    result = json.loads((tmp_path / "quality_ruggles_small.json").read_text())
    assert (tmp_path / "quality_ruggles_small.png").stat().st_size > 0
    assert [r["gap_hours"] for r in result["hidden_gaps"]] == [1, 24]
    for row in result["hidden_gaps"]:
        assert row["runs"] == 24
        assert _finite(row["ours_mape_pct"]) and _finite(row["linear_mape_pct"])
    assert result["screening_full_series"]["all"]["labelled"] >= 0
    assert 0.0 <= result["partitioned_vs_full_flag_agreement"] <= 1.0
    patterns = result["copied_patterns"]
    assert patterns["patterns"] > 0 and patterns["hidden_hours"] > 0
    assert patterns["ours_mape_pct"] < patterns["linear_mape_pct"]
    by_length = patterns["by_gap_length"]
    assert sum(b["hidden_hours"] for b in by_length) == patterns["hidden_hours"]


def test_perf_transform_benchmark_smoke(tmp_path: Path) -> None:
    _run(
        "perf_transform.py",
        "--days", "21",
        "--regions", "3",
        "--repeats", "1",
        "--out", str(tmp_path),
    )  # fmt: skip
    result = json.loads((tmp_path / "perf_transform_small.json").read_text())
    assert (tmp_path / "perf_transform_small.png").stat().st_size > 0
    for variant in ("ours", "pandas"):
        v = result["variants"][variant]
        assert _finite(v["total_s"]) and v["total_s"] > 0
        assert _finite(v["peak_rss_mib"]) and v["peak_rss_mib"] > 0
        assert _finite(v["rows_per_s"])
    assert _finite(result["ratio_total"])
    assert result["agreement"]["flag_agreement"] > 0.99
