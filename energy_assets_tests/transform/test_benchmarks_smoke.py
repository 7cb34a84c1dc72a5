"""The transform benchmark and audit scripts run end to end at tiny sizes (not timed)."""

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
        "--data", str(realdata / "ruggles_2019_release"),
        "--json", str(tmp_path / "q.json"),
        "--max-days", "60",
        "--runs-per-ba", "3",
        "--lengths", "1,24",
        "--recurring-days", "14",
        "--recurring-per-ba", "1",
        "--pattern-rounds", "2",
    )  # fmt: skip
    result = json.loads((tmp_path / "q.json").read_text())
    for key in ("precision", "recall", "precision_partitioned", "recall_partitioned"):
        assert 0.0 <= result[key] <= 1.0
    assert set(result["per_ba"]) == {"BPAT", "CISO", "ERCO", "MISO", "NYIS", "PJM", "SC", "TEPC"}
    assert result["flag_cells_differing"] >= 0
    assert list(result["hidden_gap_mape"]) == list(result["hidden_gap_mape_linear"]) == ["1", "24"]
    for v in (*result["hidden_gap_mape"].values(), *result["hidden_gap_mape_linear"].values()):
        assert _finite(v)
    assert _finite(result["recurring_gap_mape"]) and _finite(result["recurring_gap_mape_linear"])
    assert result["patterns"]["hidden_hours"] > 0
    assert _finite(result["pattern_mape"]["all"]) and _finite(result["pattern_mape_linear"]["all"])


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


def test_quirk_balance_audit_smoke(realdata: Path, tmp_path: Path) -> None:
    _run(
        "quirk_balance.py",
        "--data", str(realdata / "gridemissions"),
        "--json", str(tmp_path / "audit.json"),
    )  # fmt: skip
    rows = json.loads((tmp_path / "audit.json").read_text())
    assert len(rows) >= 9 and all(r["verdict"] for r in rows)
    checked = [r for r in rows if r["ba_hours"]]
    assert checked and all(r["balance_breaks"] == 0 for r in checked)
    assert all(_finite(r["balance_pct_after"]) for r in checked)


def test_reconcile_benchmark_smoke(realdata: Path, tmp_path: Path) -> None:
    _run(
        "reconcile.py",
        "--data", str(realdata / "gridemissions"),
        "--json", str(tmp_path / "r.json"),
        "--baseline-hours", "1",
    )  # fmt: skip
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["residual_before_mw"]["max"] > 1.0
    assert result["residual_after_mw"]["max"] < 1.0
    assert set(result["mape_vs_opt"]) == {"D", "NG", "TI", "ID", "fuel"}
    assert set(result["mean_abs_adjustment_mw"]) == {"D", "NG", "TI", "ID", "fuel"}
    assert _finite(result["wall_s"]) and _finite(result["cpu_s"])
    assert "baseline" in result  # measured when cvxpy imports, else the reason it was not
