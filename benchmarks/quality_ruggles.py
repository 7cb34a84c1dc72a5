"""Benchmark: the pipeline's screening and imputation, as `imputed/series` runs them, against the
labelled anomalies of Ruggles et al. (2020).

Input: a folder of Ruggles-format BA files (`<BA>.csv`: `date_time` UTC hour ending (stamped
`date_time - 1 h`, as the platform's parser does), `raw demand (MW)`,
`category`, `forecast demand (MW)`; default ../shared/realdata/ruggles_2019_release, 8 BAs
2015-07 to 2019-07). Every measurement goes through `clean` with `cleaning_config()`, the
function the asset calls (no copy of it here):

(a) screening: precision/recall of "anomalous" (any category but OKAY and MISSING) against the
    labels, per BA and overall, for two paths: the full series cleaned in one call, and daily
    partitions, each day cleaned on exactly the frame the IO manager hands the asset (the day and
    its +-context_days neighbours, `window()` in io/parquet.py) with only that day's rows kept.
    `flag_cells_differing` / `value_cells_differing` count the cells (every series) on which
    the two paths disagree;
(b) imputation, the hidden-gap protocol of ../shared/docs/eia930_cleaning.md section 8: known-good
    cells = Ruggles OKAY and not flagged by us; for each gap length L hide 25 non-overlapping runs
    per BA from numpy.random.default_rng(seed), each with a known-good hour on both sides; clean
    the masked series (full path); MAPE on the hidden cells against the reported values. Linear
    interpolation of the same cleaned observations in the same run;
(c) recurring one-hour gaps (an EIA-930 habit: a BA empty at the same UTC hour every day for
    weeks): per BA, stretches of `--recurring-days` days with one fixed hour hidden every day;
    same scoring;
(d) real gap patterns: the unusable hours of every BA-month with 1-50 % of them are copied onto
    clean BA-months (the idea of PUDL's SimulateFlagsSettings validation); MAPE by the length of
    the gap a hidden hour is in, and for "recurring" hours (in a gap of <= 6 h, the same hour a
    day before or after unusable too).

Usage:

    python benchmarks/quality_ruggles.py --json /tmp/q.json          # a few minutes on 2 cores
    python benchmarks/quality_ruggles.py --data DIR --json OUT          # any folder of BA files
    python benchmarks/quality_ruggles.py --max-days 120 --runs-per-ba 3 --lengths 1,24 \
        --json /tmp/small.json                                          # smoke
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LENGTHS = (1, 3, 6, 12, 24, 48, 168)
PATTERN_BUCKETS = ((1, 1), (2, 6), (7, 24), (25, 168), (169, 10**9))
"""Gap-length buckets (h) of the copied-pattern protocol."""
RECURRING_MAX_GAP = 6
"""A hidden hour is "recurring" when its gap is this short and the same hour a day before or
after is unusable too (in longer gaps the day before is usually part of the same gap)."""
# PUDL @002776d on the same 8 BAs and protocol (../shared/docs/eia930_cleaning.md, section 8).
PUDL_REFERENCE = {
    "pudl_tubal": {1: 0.63, 3: 1.27, 6: 2.00, 12: 3.44, 24: 4.12, 48: 5.95, 168: 7.62},
    "pudl_tnn": {1: 0.59, 3: 1.02, 6: 1.51, 12: 2.36, 24: 3.21, 48: 4.95, 168: 6.34},
}
HOUR = timedelta(hours=1)
GRIDEMISSIONS_RAW = "E_raw_2023-06-10_2023-06-20.csv"
DAY = timedelta(days=1)


# ------------------------------------------------------------------------------------ data


class Data:
    """The BA files on one hourly grid: long frame for `clean`, matrices (hours x BAs) to score."""

    def __init__(self, folder: Path, max_days: int | None) -> None:
        import polars as pl

        files = sorted(f for f in folder.glob("*.csv") if "raw demand (MW)" in f.open().readline())
        if not files:
            raise SystemExit(f"no Ruggles-format BA files (<BA>.csv) in {folder}")
        frames = []
        for f in files:
            df = pl.read_csv(f, infer_schema_length=0).select(
                (  # the release's date_time ends its hour; the platform stamps hour starts
                    pl.col("date_time").str.to_datetime(
                        "%Y-%m-%d %H:%M:%S", time_unit="us", time_zone="UTC"
                    )
                    - pl.duration(hours=1)
                ).alias("interval_start_utc"),
                pl.lit(f.stem).alias("region"),
                pl.col("raw demand (MW)").cast(pl.Float64, strict=False).alias("demand"),
                pl.col("forecast demand (MW)").cast(pl.Float64, strict=False).alias("forecast"),
                pl.col("category"),
            )
            frames.append(df)
        wide = pl.concat(frames)
        first = wide.get_column("interval_start_utc").min()
        if max_days:
            wide = wide.filter(pl.col("interval_start_utc") < first + timedelta(days=max_days))
        self.bas = tuple(f.stem for f in files)
        self.first = first
        self.end = wide.get_column("interval_start_utc").max() + HOUR
        self.n = int((self.end - self.first) / HOUR)
        row = ((wide.get_column("interval_start_utc") - first) / HOUR).cast(pl.Int64).to_numpy()
        col = wide.get_column("region").replace_strict(
            {b: j for j, b in enumerate(self.bas)}, return_dtype=pl.Int64
        )
        shape = (self.n, len(self.bas))
        self.demand = np.full(shape, np.nan)
        self.forecast = np.full(shape, np.nan)
        self.category = np.full(shape, "MISSING", dtype=object)
        self.demand[row, col] = wide.get_column("demand").fill_null(np.nan).to_numpy()
        self.forecast[row, col] = wide.get_column("forecast").fill_null(np.nan).to_numpy()
        self.category[row, col] = wide.get_column("category").to_numpy()
        self.times = pl.datetime_range(
            first, self.end - HOUR, "1h", time_unit="us", time_zone="UTC", eager=True
        )

    def long(self, demand: np.ndarray | None = None):
        """The aligned-layer frame `imputed/series` would read: demand and the forecast."""
        import polars as pl

        d = self.demand if demand is None else demand
        parts = []
        for series, m in (("demand", d), ("demand_forecast_da", self.forecast)):
            for j, ba in enumerate(self.bas):
                parts.append(
                    pl.DataFrame(
                        {
                            "interval_start_utc": self.times,
                            "region": ba,
                            "series": series,
                            "value": pl.Series(m[:, j]).fill_nan(None),
                            "units": "MW",
                            "source": "eia930",
                        }
                    )
                )
        return pl.concat(parts)


def to_matrices(data: Data, out, series: str = "demand") -> dict[str, np.ndarray]:
    """A `clean` result's `flag`, `value` and `is_observed` of one series as hours x BAs."""
    import polars as pl

    rows = out.filter(pl.col("series") == series)
    r = ((rows.get_column("interval_start_utc") - data.first) / HOUR).cast(pl.Int64).to_numpy()
    c = rows.get_column("region").replace_strict(
        {b: j for j, b in enumerate(data.bas)}, return_dtype=pl.Int64
    )
    shape = (data.n, len(data.bas))
    flag = np.full(shape, "MISSING", dtype=object)
    value = np.full(shape, np.nan)
    flag[r, c] = rows.get_column("flag").to_numpy()
    value[r, c] = rows.get_column("value").fill_null(np.nan).to_numpy()
    return {"flag": flag, "value": value}


# ------------------------------------------------------------------------------- the paths


def full_path(data: Data, cfg, demand: np.ndarray | None = None):
    """The whole range in one `clean` call (a backfill run of every day at once)."""
    from energy_assets.transform.clean import clean

    return clean(data.long(demand), data.first, data.end, cfg)


def partition_path(data: Data, cfg):
    """One `clean` call per day on the frame the IO manager gives that day's partition: the
    stored days from day - context to day + context (`window(context, context)`), then the
    day's rows only (`clean` returns just those)."""
    import polars as pl

    from energy_assets.transform.clean import clean

    long = data.long().sort("interval_start_utc")
    t = long.get_column("interval_start_utc")
    ctx = timedelta(days=cfg.context_days)
    pieces = []
    day = data.first.replace(hour=0)
    while day < data.end:
        lo = t.search_sorted(day - ctx, "left")
        hi = t.search_sorted(day + DAY + ctx, "left")
        window = long.slice(lo, hi - lo)
        pieces.append(clean(window, day, day + DAY, cfg))
        day += DAY
    out = pl.concat(pieces)
    return out.filter(pl.col("interval_start_utc").is_between(data.first, data.end, "left"))


def differing_by_gap(both) -> dict[str, int]:
    """Cells whose value differs between the paths, by the length of the full path's gap
    (run of unobserved hours) they are in."""
    import polars as pl

    run = (pl.col("is_observed") != pl.col("is_observed").shift(1)).fill_null(True).cum_sum()
    gaps = both.sort("region", "series", "interval_start_utc").with_columns(
        run.over("region", "series").alias("run")
    )
    gaps = gaps.with_columns(pl.len().over("region", "series", "run").alias("gap"))
    diff = gaps.filter(pl.col("value").ne_missing(pl.col("value_p")))
    edges = ((1, 72), (73, 336), (337, 10**9))
    return {
        (f"{lo}-{hi}" if hi < 10**9 else f"{lo}+"): diff.filter(
            pl.col("gap").is_between(lo, hi)
        ).height
        for lo, hi in edges
    }


# ------------------------------------------------------------------------------- screening


def precision_recall(truth: np.ndarray, pred: np.ndarray) -> dict:
    tp = int((truth & pred).sum())
    n_pred, n_true = int(pred.sum()), int(truth.sum())
    return {
        "labelled": n_true,
        "flagged": n_pred,
        "true_positive": tp,
        "precision": tp / n_pred if n_pred else (1.0 if not n_true else 0.0),
        "recall": tp / n_true if n_true else 1.0,
        "flagged_share": n_pred / truth.size if truth.size else 0.0,
    }


def anomalous(flags: np.ndarray) -> np.ndarray:
    return (flags != "OKAY") & (flags != "MISSING")


# ------------------------------------------------------------------------------ imputation


def mape(values: np.ndarray, truth: np.ndarray) -> float | None:
    if truth.size == 0:
        return None
    return float(np.mean(np.abs(values - truth) / truth) * 100)


def linear_of(data: Data, out) -> np.ndarray:
    """Linear interpolation between the observations `clean` kept (its screens, its gaps);
    gaps at the series' edges hold the nearest observation."""
    import polars as pl

    rows = out.filter(pl.col("series") == "demand").sort("region", "interval_start_utc")
    kept = rows.select(
        "region",
        "interval_start_utc",
        pl.when(pl.col("is_observed"))
        .then(pl.col("value"))
        .otherwise(None)
        .interpolate()
        .forward_fill()
        .backward_fill()  # edge gaps: hold the nearest observation, as `clean` does
        .over("region")
        .alias("value"),
    )
    return to_matrices(
        data, kept.with_columns(series=pl.lit("demand"), flag=pl.lit("OKAY")), "demand"
    )["value"]


def hide_runs(good: np.ndarray, length: int, per_col: int, rng) -> np.ndarray:
    """Non-overlapping runs of `length` known-good cells, each with a known-good cell on both
    sides (runs do not share those edge cells); positions drawn from `rng`."""
    n, m = good.shape
    hide = np.zeros_like(good)
    for col in range(m):  # 25 draws per BA: a benchmark loop, not a data path
        free = good[:, col].copy()
        for _ in range(per_col):
            csum = np.concatenate([[0], np.cumsum(free)])
            s = np.arange(1, n - length)
            ok = (csum[s + length + 1] - csum[s - 1]) == length + 2
            cand = s[ok]
            if cand.size == 0:
                raise SystemExit(f"no room for another {length} h run in column {col}")
            start = int(rng.choice(cand))
            hide[start : start + length, col] = True
            free[start - 1 : start + length + 1] = False
    return hide


def hide_recurring(good: np.ndarray, days: int, per_col: int, rng) -> np.ndarray:
    """Per column, `per_col` stretches of `days` days in which one hour of the day (drawn) is
    hidden every day: the cell and both neighbours known-good, stretches apart."""
    n, m = good.shape
    hide = np.zeros_like(good)
    span = 24 * days
    for col in range(m):
        taken = np.zeros(n, dtype=bool)
        for _ in range(per_col):
            for _attempt in range(200):
                start = int(rng.integers(1, max(n - span - 1, 2)))
                hour = int(rng.integers(24))
                rows = start + hour + 24 * np.arange(days)
                rows = rows[rows < n - 1]
                if rows.size < days // 2 or taken[start : start + span].any():
                    continue
                ok = good[rows, col] & good[rows - 1, col] & good[rows + 1, col]
                if ok.mean() < 0.8:
                    continue
                hide[rows[ok], col] = True
                taken[max(start - 24, 0) : start + span + 24] = True
                break
    return hide


def hidden_gaps(data: Data, cfg, flags: np.ndarray, lengths, per_col: int, seed: int) -> dict:
    good = (data.category == "OKAY") & (flags == "OKAY") & ~np.isnan(data.demand)
    rng = np.random.default_rng(seed)
    rows = {}
    for length in lengths:
        hide = hide_runs(good, length, per_col, rng)
        out = full_path(data, cfg, np.where(hide, np.nan, data.demand))
        ours = to_matrices(data, out)["value"]
        linear = linear_of(data, out)
        truth = data.demand[hide]
        rows[length] = {
            "runs": int(hide.sum() // length),
            "ours": mape(ours[hide], truth),
            "linear": mape(linear[hide], truth),
            "ours_by_ba": {
                ba: mape(ours[hide[:, j], j], data.demand[hide[:, j], j])
                for j, ba in enumerate(data.bas)
            },
        }
    return rows


def recurring_gaps(data: Data, cfg, flags: np.ndarray, days: int, per_col: int, seed: int):
    good = (data.category == "OKAY") & (flags == "OKAY") & ~np.isnan(data.demand)
    hide = hide_recurring(good, days, per_col, np.random.default_rng(seed + 1))
    out = full_path(data, cfg, np.where(hide, np.nan, data.demand))
    ours = to_matrices(data, out)["value"]
    linear = linear_of(data, out)
    truth = data.demand[hide]
    return {
        "hidden_hours": int(hide.sum()),
        "ours": mape(ours[hide], truth),
        "linear": mape(linear[hide], truth),
        "ours_by_ba": {
            ba: mape(ours[hide[:, j], j], data.demand[hide[:, j], j])
            for j, ba in enumerate(data.bas)
        },
        "linear_by_ba": {
            ba: mape(linear[hide[:, j], j], data.demand[hide[:, j], j])
            for j, ba in enumerate(data.bas)
        },
    }


def copied_patterns(data: Data, cfg, flags: np.ndarray, rounds: int, seed: int) -> dict:
    """Real gap patterns laid over clean months: every BA-month whose unusable share (missing,
    flagged by us, or not OKAY for Ruggles) is 1-50 % is copied, hour by hour from the month's
    start, onto a randomly drawn BA-month with no unusable hour (targets of one round never in
    the same or neighbouring months of a BA); each round is cleaned once."""
    from energy_assets.transform.impute import _gap_geometry

    m = len(data.bas)
    bad = (flags != "OKAY") | (data.category != "OKAY") | np.isnan(data.demand)
    month = data.times.dt.strftime("%Y-%m").to_numpy()
    months = np.unique(month)
    rows_of = {mo: np.flatnonzero(month == mo) for mo in months}
    share = np.array([[bad[rows_of[mo], j].mean() for j in range(m)] for mo in months])
    patterns = list(zip(*np.nonzero((share >= 0.01) & (share <= 0.5)), strict=True))
    targets = list(zip(*np.nonzero(share == 0), strict=True))
    rng = np.random.default_rng(seed)
    truth, ours, linear, gap, recurring = [], [], [], [], []
    for _ in range(rounds):
        hide = np.zeros_like(bad)
        taken: set[tuple[int, int]] = set()
        for pi, pj in patterns:
            free = [t for t in targets if not {(t[0] + d, t[1]) for d in (-1, 0, 1)} & taken]
            if not free:
                continue
            ti, tj = free[int(rng.integers(len(free)))]
            taken.add((ti, tj))
            src, dst = rows_of[months[pi]], rows_of[months[ti]]
            k = min(len(src), len(dst))
            hide[dst[:k], tj] = bad[src[:k], pj]
        if not hide.any():
            continue
        out = full_path(data, cfg, np.where(hide, np.nan, data.demand))
        kept = to_matrices(data, out)
        unusable = kept["flag"] != "OKAY"
        _, _, gap_len = _gap_geometry(~unusable)
        day_before = np.zeros_like(unusable)
        day_before[24:] = unusable[:-24]
        day_after = np.zeros_like(unusable)
        day_after[:-24] = unusable[24:]
        truth.append(data.demand[hide])
        ours.append(kept["value"][hide])
        linear.append(linear_of(data, out)[hide])
        gap.append(gap_len[hide])
        recurring.append(((day_before | day_after) & (gap_len <= RECURRING_MAX_GAP))[hide])
    result: dict = {"patterns": len(patterns), "targets": len(targets), "rounds": rounds}
    if not truth:
        return {**result, "hidden_hours": 0, "ours": {}, "linear": {}}
    t, o, li, g, rc = (np.concatenate(v) for v in (truth, ours, linear, gap, recurring))
    result["hidden_hours"] = int(t.size)
    result["ours"], result["linear"], result["hours"] = {}, {}, {}
    buckets = {
        (f"{lo}" if lo == hi else f"{lo}-{hi}" if hi < 10**9 else f"{lo}+"): (g >= lo) & (g <= hi)
        for lo, hi in PATTERN_BUCKETS
    }
    buckets["recurring"] = rc
    buckets["not recurring"] = ~rc
    buckets["all"] = np.ones(t.size, dtype=bool)
    for name, sel in buckets.items():
        result["hours"][name] = int(sel.sum())
        result["ours"][name] = mape(o[sel], t[sel])
        result["linear"][name] = mape(li[sel], t[sel])
    return result


# ------------------------------------------------------------------ the gridemissions week


def gridemissions_week(path: Path, cfg) -> dict:
    """Every BA of a real 10-day EIA API scrape (gridemissions' wide `E_<BA>_<D|NG|TI>` CSV,
    `period` = UTC hour ending), cleaned in one call with the pipeline's configuration: how
    many net-generation cells are rejected and left null, and how many demand hours of the
    small BAs (typical peak below SMALL_BA_PEAK_MW) the screens flag. No labels: rates only."""
    import polars as pl

    from energy_assets.sources.balancing_authorities import load_balancing_authorities
    from energy_assets.transform.clean import SMALL_BA_PEAK_MW, clean

    wide = pl.read_csv(path, infer_schema_length=0)
    start = (pl.col("period") + ":00").str.to_datetime(
        "%Y-%m-%dT%H:%M", time_unit="us", time_zone="UTC"
    )
    series = {"D": "demand", "NG": "net_generation", "TI": "total_interchange"}
    cols = [c for c in wide.columns if c.count("_") == 2 and c.split("_")[2] in series]
    long = (
        wide.select(
            (start - pl.duration(hours=1)).alias("interval_start_utc"),
            *(pl.col(c).cast(pl.Float64, strict=False) for c in cols),
        )
        .unpivot(index="interval_start_utc", variable_name="column")
        .with_columns(
            pl.col("column").str.split("_").list.get(1).alias("region"),
            pl.col("column").str.split("_").list.get(2).replace_strict(series).alias("series"),
            pl.lit("MW").alias("units"),
            pl.lit("eia930").alias("source"),
        )
        .drop("column")
    )
    t = long.get_column("interval_start_utc")
    out = clean(long, t.min(), t.max() + HOUR, cfg)
    small = set(
        load_balancing_authorities()
        .filter(pl.col("typical_peak_mw") < SMALL_BA_PEAK_MW)
        .get_column("code")
    )
    ng = out.filter(pl.col("series") == "net_generation")
    present = pl.col("value_reported").is_not_null()
    rejected = present & ~pl.col("is_observed")
    per_ng = (
        ng.group_by("region")
        .agg(rejected.sum().alias("rejected"), pl.col("value").is_null().sum().alias("null"))
        .filter((pl.col("rejected") > 0) | (pl.col("null") > 0))
        .sort("region")
    )
    dem = out.filter((pl.col("series") == "demand") & pl.col("region").is_in(list(small)))
    per_dem = dem.group_by("region").agg(
        present.sum().alias("hours"),
        rejected.sum().alias("flagged"),
        pl.col("flag").filter(rejected).unique().sort().alias("flags"),
    )
    return {
        "file": str(path),
        "hours": int(t.n_unique()),
        "net_generation_cells": int(ng.filter(present).height),
        "net_generation_rejected": int(ng.filter(rejected).height),
        "net_generation_null": int(ng.get_column("value").null_count()),
        "net_generation_by_ba": {r: {"rejected": a, "null": b} for r, a, b in per_ng.iter_rows()},
        "small_ba_demand": {
            r: {"hours": h, "flagged": f, "flags": fl}
            for r, h, f, fl in per_dem.sort("region").iter_rows()
        },
    }


# ---------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--data",
        type=Path,
        default=REPO.parent / "shared" / "realdata" / "ruggles_2019_release",
        help="folder of Ruggles-format <BA>.csv files",
    )
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    p.add_argument("--lengths", default=",".join(map(str, LENGTHS)))
    p.add_argument("--runs-per-ba", type=int, default=25)
    p.add_argument("--recurring-days", type=int, default=28)
    p.add_argument("--recurring-per-ba", type=int, default=4)
    p.add_argument("--pattern-rounds", type=int, default=6, help="copied-pattern rounds (0 = skip)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-days", type=int, default=None, help="truncate the series (smoke)")
    p.add_argument("--skip-partitioned", action="store_true")
    p.add_argument(
        "--gridemissions",
        type=Path,
        default=REPO.parent / "shared" / "realdata" / "gridemissions" / GRIDEMISSIONS_RAW,
        help="gridemissions' E_raw CSV (every BA, 10 days); skipped when absent",
    )
    args = p.parse_args(argv)
    lengths = tuple(int(v) for v in args.lengths.split(","))

    from energy_assets.transform.clean import cleaning_config

    t_start = time.perf_counter()
    data = Data(args.data, args.max_days)
    cfg = cleaning_config()
    timing = {}
    t0 = time.perf_counter()
    full = full_path(data, cfg)
    timing["full_path_s"] = time.perf_counter() - t0
    kept = to_matrices(data, full)
    truth = anomalous(data.category)
    pred = anomalous(kept["flag"])
    overall = precision_recall(truth, pred)
    result: dict = {
        "data": {
            "folder": str(args.data),
            "bas": list(data.bas),
            "hours": data.n,
            "first": str(data.first),
            "end": str(data.end),
        },
        "precision": overall["precision"],
        "recall": overall["recall"],
        "screening": overall,
        "context_days": cfg.context_days,
        "unfilled_cells": int(full.get_column("value").null_count()),
        "per_ba": {ba: precision_recall(truth[:, j], pred[:, j]) for j, ba in enumerate(data.bas)},
    }
    if not args.skip_partitioned:
        t0 = time.perf_counter()
        part = partition_path(data, cfg)
        timing["partition_path_s"] = time.perf_counter() - t0
        kept_p = to_matrices(data, part)
        pred_p = anomalous(kept_p["flag"])
        part_scores = precision_recall(truth, pred_p)
        result["precision_partitioned"] = part_scores["precision"]
        result["recall_partitioned"] = part_scores["recall"]
        for j, ba in enumerate(data.bas):
            s = precision_recall(truth[:, j], pred_p[:, j])
            result["per_ba"][ba]["precision_partitioned"] = s["precision"]
            result["per_ba"][ba]["recall_partitioned"] = s["recall"]
        keys = ["region", "series", "interval_start_utc"]
        both = full.sort(keys).join(part.sort(keys), on=keys, how="full", suffix="_p")
        flag_diff = both.filter(both["flag"].ne_missing(both["flag_p"]))
        value_diff = both.filter(both["value"].ne_missing(both["value_p"]))
        result["flag_cells_differing"] = flag_diff.height
        result["value_cells_differing"] = value_diff.height
        result["value_cells_differing_by_gap_hours"] = differing_by_gap(both)
        result["cells_compared"] = both.height
        result["flag_cells_differing_by_ba"] = dict(
            flag_diff.group_by("region").len().sort("region").iter_rows()
        )
    t0 = time.perf_counter()
    gaps = hidden_gaps(data, cfg, kept["flag"], lengths, args.runs_per_ba, args.seed)
    result["hidden_gap_mape"] = {str(L): r["ours"] for L, r in gaps.items()}
    result["hidden_gap_mape_linear"] = {str(L): r["linear"] for L, r in gaps.items()}
    result["hidden_gap_runs"] = {str(L): r["runs"] for L, r in gaps.items()}
    result["hidden_gap_mape_by_ba"] = {str(L): r["ours_by_ba"] for L, r in gaps.items()}
    if args.recurring_days:
        rec = recurring_gaps(
            data, cfg, kept["flag"], args.recurring_days, args.recurring_per_ba, args.seed
        )
        result["recurring_gap_mape"] = rec["ours"]
        result["recurring_gap_mape_linear"] = rec["linear"]
        result["recurring_gap"] = rec
    timing["imputation_s"] = time.perf_counter() - t0
    if args.pattern_rounds:
        t0 = time.perf_counter()
        pat = copied_patterns(data, cfg, kept["flag"], args.pattern_rounds, args.seed)
        result["pattern_mape"] = pat.pop("ours")
        result["pattern_mape_linear"] = pat.pop("linear")
        result["patterns"] = pat
        timing["patterns_s"] = time.perf_counter() - t0
    if args.gridemissions.is_file():
        result["gridemissions_week"] = gridemissions_week(args.gridemissions, cfg)
    timing["total_s"] = time.perf_counter() - t_start
    result["seconds"] = timing
    _print(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return result


def _print(r: dict) -> None:
    f = lambda v: "     -" if v is None else f"{v:6.3f}"  # noqa: E731
    d = r["data"]
    print(f"data: {len(d['bas'])} BAs x {d['hours']} h ({d['first']} .. {d['end']}), {d['folder']}")
    print("\nscreening vs the labels (anomalous = not OKAY and not MISSING), cleaning_config()")
    print(f"{'BA':6} {'labelled':>8} {'flagged':>8} {'share':>6} {'prec':>6} {'recall':>6}", end="")
    print(f" {'prec_p':>6} {'rec_p':>6}")
    for ba, s in r["per_ba"].items():
        print(
            f"{ba:6} {s['labelled']:8d} {s['flagged']:8d} {s['flagged_share']:6.3f} "
            f"{f(s['precision'])} {f(s['recall'])} {f(s.get('precision_partitioned'))} "
            f"{f(s.get('recall_partitioned'))}"
        )
    print(
        f"all    precision {f(r['precision'])} recall {f(r['recall'])}; daily partitions "
        f"{f(r.get('precision_partitioned'))} / {f(r.get('recall_partitioned'))}; cells differing "
        f"between the paths: flags {r.get('flag_cells_differing')}, values "
        f"{r.get('value_cells_differing')} of {r.get('cells_compared')} (by the gap they are "
        f"in, hours: {r.get('value_cells_differing_by_gap_hours')})"
    )
    print(
        f"partition window: the day +-{r['context_days']} days; cells left unfilled (no "
        f"observation within the fill's reach): {r['unfilled_cells']}"
    )
    g = lambda v: "     -" if v is None else f"{v:6.2f}"  # noqa: E731
    print("\nhidden-gap MAPE (%)")
    print(f"{'L (h)':>6} {'ours':>6} {'linear':>6} | {'tubal*':>6} {'tnn*':>6}")
    for L, v in r["hidden_gap_mape"].items():
        tub = PUDL_REFERENCE["pudl_tubal"].get(int(L))
        tnn = PUDL_REFERENCE["pudl_tnn"].get(int(L))
        print(f"{L:>6} {g(v)} {g(r['hidden_gap_mape_linear'][L])} | {g(tub)} {g(tnn)}")
    if "recurring_gap_mape" in r:
        rec = r["recurring_gap"]
        print(
            f"{'rec 1h':>6} {g(r['recurring_gap_mape'])} {g(r['recurring_gap_mape_linear'])}"
            f"   (one hour hidden every day, {rec['hidden_hours']} hours)"
        )
    print("   * PUDL @002776d, same protocol, published in the research notes (not this run)")
    if "pattern_mape" in r:
        pat = r["patterns"]
        print(
            f"\ncopied real gap patterns ({pat['patterns']} BA-months x {pat['rounds']} rounds, "
            f"{pat['hidden_hours']:,} hidden hours): MAPE (%) by the gap an hour is in"
        )
        print(f"{'gap (h)':>14} {'hours':>7} {'ours':>6} {'linear':>6}")
        for name, v in r["pattern_mape"].items():
            print(f"{name:>14} {pat['hours'][name]:7d} {g(v)} {g(r['pattern_mape_linear'][name])}")
    week = r.get("gridemissions_week")
    if week:
        print(
            f"\ngridemissions week ({week['hours']} h, every BA): net generation "
            f"{week['net_generation_rejected']} of {week['net_generation_cells']} cells rejected, "
            f"{week['net_generation_null']} left null; {week['net_generation_by_ba']}"
        )
        for ba, v in week["small_ba_demand"].items():
            print(f"   small BA {ba} demand: {v['flagged']} of {v['hours']} h flagged {v['flags']}")
    print("\nseconds: " + ", ".join(f"{k} {v:.1f}" for k, v in r["seconds"].items()))


if __name__ == "__main__":
    main()
