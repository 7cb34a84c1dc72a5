"""Benchmark: physical reconciliation (transform/reconcile.py) on the gridemissions 2023-06 week.

Input (`--data`, default ../shared/realdata/gridemissions): gridemissions' rolling-cleaned values
`E_rolling_*.csv` (the input of its reconciliation), their weights `E_weights_*.csv` and its
reconciled output for the first 20 hours `E_opt_*.csv`, all every BA, 241 hours.

The weights' convention, read from the data: every weight equals A / max(gamma, |m|) with A = 1e4,
gamma = 10 MW and m the centred 240-hour rolling mean (at least 100 hours) of the same column of
E_rolling: all 193,746 cells match to 1e-3 relative, including the 5,761 cells where E_rolling
differs from E_raw, whose weights are no lower than the others' (median 28 against 32). So a
weight is the cost per MW^2 of moving a value, inversely proportional to the series' typical
size (values move in proportion to their size), and says nothing about whether the rolling
cleaner replaced the value. We use it as our `w` unchanged: minimise sum w (x - x0)^2.

Measured, with gridemissions' floors (D, NG and every fuel >= 1 MW) and its inputs (nulls as 0,
as its CvxCleaner does):
- the identity residuals before (E_rolling) and after, max and mean (MW), from
  `identity_residuals` (polars over the long table, independent of the solver);
- the mean absolute adjustment per series type (D, NG, TI, ID, fuel);
- `mape_vs_opt`: MAPE (%) of our reconciled values against E_opt on its 20 hours, per type,
  over cells where |E_opt| >= 1 MW (interchange is often ~0);
- the wall and CPU time of the vectorised solve over all 241 hours (structure included);
- with cvxpy importable (`pip install -e ".[bench]"`), in the same run: gridemissions' per-hour
  method written plainly, one cvxpy problem per hour built as its CvxCleaner builds it (scalar
  variables per interchange and fuel, sums as lists of terms; `--baseline-hours`, default the
  first 24), and the same problems as one matrix expression per hour (all hours; cvxpy compiles
  that far faster, so it is the harder baseline). For each: wall and CPU time against ours on the
  same hours (speed ratios, target >= 50x; on a shared machine the CPU ratio is the steadier),
  its residuals, objective, and the largest difference between the two solutions.

Usage:

    python benchmarks/reconcile.py --json /tmp/reconcile.json
    python benchmarks/reconcile.py --data DIR --json OUT [--baseline-hours 241]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import polars as pl  # noqa: E402

from energy_assets.offline.realdata_world import GridEmissionsWorld  # noqa: E402
from energy_assets.transform.grid import TIME_COL, matrix_to_long, to_matrix  # noqa: E402
from energy_assets.transform.reconcile import (  # noqa: E402
    GRIDEMISSIONS_FLOORS,
    KINDS,
    ReconcileConfig,
    balance_system,
    identity_residuals,
    series_kind,
    solve,
)


def stage(folder: Path, name: str) -> pl.DataFrame:
    long = GridEmissionsWorld(folder, pattern=f"E_{name}_*.csv").series_long()
    kinds = long.get_column("series").map_elements(series_kind, return_dtype=pl.Utf8)
    return long.with_columns(kinds.alias("kind")).filter(pl.col("kind").is_not_null())


def load(folder: Path):
    rolling = stage(folder, "rolling")
    weights = stage(folder, "weights").rename({"value": "weight"})
    # every weighted cell, also the few that E_rolling left null
    frame = weights.join(rolling.drop("kind"), on=[TIME_COL, "region", "series"], how="left")
    if frame.height < rolling.height:
        raise ValueError(f"{folder}: some E_rolling cells have no weight in E_weights")
    keys, t0, _, mats = to_matrix(frame, ["value", "weight"])
    return keys, t0, mats["value"], mats["weight"]


def summary(residuals: pl.DataFrame) -> dict:
    r = residuals.get_column("residual_mw").abs()
    by = residuals.group_by("identity").agg(pl.col("residual_mw").abs().max().alias("max"))
    return {
        "max": float(r.max() or 0.0),
        "mean": float(r.mean() or 0.0),
        "identities": int(r.len()),
        "max_by_identity": {k: float(v) for k, v in by.sort("identity").iter_rows()},
    }


def long_of(keys: pl.DataFrame, t0: int, x: np.ndarray) -> pl.DataFrame:
    return matrix_to_long(keys, t0, {"value": x})


def baseline_cvxpy(system, x0: np.ndarray, w: np.ndarray) -> np.ndarray:
    """gridemissions' CvxCleaner written plainly: one cvxpy problem per hour, built as it builds
    it (a vector of deltas per D, NG, TI; one scalar variable per pairwise interchange and per
    fuel; the sums as Python lists of terms), solved with cvxpy's default solver."""
    import cvxpy as cp

    regions = sorted(set(system.regions))
    col = {(r, s): i for i, (r, s) in enumerate(zip(system.regions, system.series, strict=True))}
    ids = [i for i, k in enumerate(system.kind) if k == "ID"]
    fuels = [i for i, k in enumerate(system.kind) if k == "fuel"]
    out = np.empty_like(x0)
    for h in range(x0.shape[0]):
        x, wh = x0[h], w[h]
        values = np.zeros(system.n)
        named = {}
        obj = 0
        constraints = []
        for name in ("demand", "net_generation", "total_interchange"):
            idx = [col.get((r, name), -1) for r in regions]
            delta = cp.Variable(len(regions))
            have = np.array([i >= 0 for i in idx])
            base = np.array([x[i] if i >= 0 else 0.0 for i in idx])
            weight = np.array([wh[i] ** 0.5 if i >= 0 else 1.0 for i in idx])
            obj += cp.sum_squares(cp.multiply(weight, delta))
            constraints.append(delta[~have] == 0) if (~have).any() else None
            named[name] = (idx, base, delta)
        scalar = {i: cp.Variable() for i in ids + fuels}
        for i, v in scalar.items():
            obj += wh[i] * v**2
        for k in range(system.m):  # balance and sums as written, over the named vectors
            terms = []
            for i in np.flatnonzero(system.C[k]):
                c = system.C[k, i]
                if i in scalar:
                    terms.append(c * (x[i] + scalar[i]))
                else:
                    idx, base, delta = named[system.series[i]]
                    j = idx.index(i)
                    terms.append(c * (base[j] + delta[j]))
            constraints.append(cp.sum(terms) == 0)
        for i, j in system.pairs:
            constraints.append(x[i] + scalar[i] + x[j] + scalar[j] == 0)
        for i in np.flatnonzero(np.isfinite(system.floor)):
            if i in scalar:
                constraints.append(x[i] + scalar[i] >= system.floor[i])
            else:
                idx, base, delta = named[system.series[i]]
                j = idx.index(i)
                constraints.append(base[j] + delta[j] >= system.floor[i])
        cp.Problem(cp.Minimize(obj), constraints).solve()
        for _, (idx, base, delta) in named.items():
            for j, i in enumerate(idx):
                if i >= 0:
                    values[i] = base[j] + delta.value[j]
        for i, v in scalar.items():
            values[i] = x[i] + v.value
        out[h] = values
    return out


def baseline_cvxpy_matrix(system, x0: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The same per-hour problems as one matrix expression each (a stronger baseline than
    gridemissions' own formulation: cvxpy compiles it much faster)."""
    import cvxpy as cp

    anti = np.zeros((len(system.pairs), system.n))
    for row, (i, j) in enumerate(system.pairs):
        anti[row, [i, j]] = 1.0
    equalities = np.vstack([system.C, anti])
    bounded = np.flatnonzero(np.isfinite(system.floor))
    out = np.empty_like(x0)
    for h in range(x0.shape[0]):
        delta = cp.Variable(system.n)
        x = x0[h] + delta
        problem = cp.Problem(
            cp.Minimize(cp.sum_squares(cp.multiply(np.sqrt(w[h]), delta))),
            [equalities @ x == 0, x[bounded] >= system.floor[bounded]],
        )
        problem.solve()
        out[h] = x0[h] + delta.value
    return out


def compare(name: str, fn, system, keys, t0, x0, w, ours: np.ndarray, ours_s: tuple) -> dict:
    """The baseline `fn` on the same hours; `ours_s`: our (wall, CPU) seconds on them."""
    started, cpu = time.perf_counter(), time.process_time()
    base = fn(system, x0, w)
    base_s, base_cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "method": name,
        "hours": int(x0.shape[0]),
        "wall_s": base_s,
        "cpu_s": base_cpu,
        "ours_wall_s_same_hours": ours_s[0],
        "ours_cpu_s_same_hours": ours_s[1],
        "speed_ratio": base_s / ours_s[0],
        "speed_ratio_cpu": base_cpu / ours_s[1],
        "residual_after_mw": summary(identity_residuals(long_of(keys, t0, base))),
        "max_abs_difference_mw": float(np.abs(base - ours).max()),
        "objective_ours": float((w * (ours - x0) ** 2).sum()),
        "objective_baseline": float((w * (base - x0) ** 2).sum()),
    }


def pipeline_path(folder: Path) -> dict:
    """What `reconciled/series` does with this week: the raw scrape as imputed/series rows (all
    observed), through `reconcile` with the asset's own configuration (weights from the screens'
    flags, the pipeline's floors, the spike screen), not the gridemissions weights above."""
    from energy_assets.offline.realdata_world import GridEmissionsWorld
    from energy_assets.transform.reconcile import reconcile

    frame = (
        GridEmissionsWorld(folder)
        .series_long()
        .with_columns(
            flag=pl.lit("OKAY"),
            method=pl.lit("observed"),
            is_observed=pl.lit(True),
            units=pl.lit("MW"),
            source=pl.lit("eia930"),
        )
    )
    started, cpu = time.perf_counter(), time.process_time()
    out = reconcile(frame)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "residual_before_mw": summary(identity_residuals(frame)),
        "residual_after_mw": summary(identity_residuals(out)),
        "mean_abs_adjustment_mw": float(out.get_column("adjustment_mw").abs().mean()),
        "spikes_flagged": int(out.get_column("is_spike").sum()),
        "wall_s": wall,
        "cpu_s": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/realdata/gridemissions")
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument(
        "--baseline-hours",
        type=int,
        default=24,
        help="hours for gridemissions' own formulation (about 3 s per hour to build and solve); "
        "the matrix-form baseline runs on every hour",
    )
    args = parser.parse_args()

    keys, t0, x0, w = load(args.data)
    x0 = np.nan_to_num(x0, nan=0.0)  # gridemissions fills nulls with 0 before solving
    regions, series = keys.get_column("region").to_list(), keys.get_column("series").to_list()
    config = ReconcileConfig(floors=GRIDEMISSIONS_FLOORS)

    started, cpu = time.perf_counter(), time.process_time()
    system = balance_system(regions, series, config.floor_of(series))
    result = solve(system, x0, w, config.max_active_set_passes)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu

    before = long_of(keys, t0, x0)
    after = long_of(keys, t0, result.value)
    kind = np.array(system.kind)
    report: dict = {
        "data": str(args.data),
        "hours": int(x0.shape[0]),
        "variables": system.n,
        "constraints_after_merging_pairs": system.m,
        "pairs": len(system.pairs),
        "residual_before_mw": summary(identity_residuals(before)),
        "residual_after_mw": summary(identity_residuals(after)),
        "mean_abs_adjustment_mw": {
            t: float(np.abs(result.adjustment[:, kind == t]).mean()) for t in KINDS
        },
        "active_set_passes": result.passes,
        "wall_s": wall,
        "cpu_s": cpu,
    }

    opt = stage(args.data, "opt").rename({"value": "opt"})
    joined = after.join(opt, on=[TIME_COL, "region", "series"], how="inner").filter(
        pl.col("opt").abs() >= 1.0
    )
    ape = ((pl.col("value") - pl.col("opt")).abs() / pl.col("opt").abs() * 100).mean()
    mape = joined.group_by("kind").agg(ape.alias("mape"), pl.len().alias("cells"))
    report["mape_vs_opt"] = {k: float(v) for k, v, _ in mape.sort("kind").iter_rows()}
    report["mape_vs_opt_cells"] = {k: int(n) for k, _, n in mape.sort("kind").iter_rows()}
    report["opt_hours"] = int(joined.get_column(TIME_COL).n_unique())

    report["pipeline"] = pipeline_path(args.data)

    try:
        import cvxpy  # noqa: F401
    except ImportError:
        report["baseline"] = "cvxpy not importable: pip install -e '.[bench]'"
    else:
        for key, fn, n_hours, name in (
            (
                "baseline",
                baseline_cvxpy,
                args.baseline_hours,
                "gridemissions' CvxCleaner as it builds its problems, one cvxpy problem per hour",
            ),
            (
                "baseline_matrix_form",
                baseline_cvxpy_matrix,
                x0.shape[0],
                "the same per-hour problems as one cvxpy matrix expression each",
            ),
        ):
            hours = slice(0, min(n_hours, x0.shape[0]))
            started, cpu = time.perf_counter(), time.process_time()
            ours_sub = solve(system, x0[hours], w[hours], config.max_active_set_passes).value
            ours_s = (time.perf_counter() - started, time.process_time() - cpu)
            sub = (system, keys, t0, x0[hours], w[hours], ours_sub, ours_s)
            report[key] = compare(name, fn, *sub)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
