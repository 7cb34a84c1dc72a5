"""Benchmark: screening and imputation quality against Ruggles et al. (2020) published labels.

Reads the 8 balancing authorities of ../shared/realdata/ruggles_2019_release (raw demand, the
Ruggles `category` label, the EIA day-ahead forecast; 2015-07-02 to 2019-07-01) and measures:

(a) screening: per-BA precision/recall of "anomalous" (any category except OKAY and MISSING)
    against the labels, for the whole series screened at once (as PUDL's anchor was measured)
    and for the daily-partition path (`clean` on target chunks with +-context days);
(b) imputation, the hidden-gap protocol of ../shared/docs/eia930_cleaning.md section 8:
    known-good cells = Ruggles OKAY and not flagged by us; for each gap length L in
    {1, 3, 6, 12, 24, 48, 168} h hide 25 non-overlapping runs per BA (200) from
    numpy.random.default_rng(0), each with a known-good hour on both sides; impute each L
    separately on the full matrix (real gaps and flagged hours still missing); MAPE on the
    hidden cells against the reported values; linear interpolation on the same masked matrix in
    the same run. PUDL's published figures (tubal, tnn, same protocol) are printed beside ours
    for reference: they were measured by the research notes, not in this run;
(c) imputation on real gap patterns: the unusable hours of every BA-month with 1-50 % of them
    are copied onto clean BA-months (6 rounds, each pattern on its own random target), the
    idea of PUDL's SimulateFlagsSettings validation (published: 2-3 % MAPE for BAs); MAPE
    overall and by the length of the gap a hidden hour falls in, linear in the same run.

Writes quality_ruggles.json and quality_ruggles.png to --out. Usage:

    python benchmarks/quality_ruggles.py                      # full, about a minute on 2 cores
    python benchmarks/quality_ruggles.py --max-days 120 --runs-per-ba 3 --lengths 1,24 \
        --out /tmp/q                                          # smoke
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

BAS = ("BPAT", "CISO", "ERCO", "MISO", "NYIS", "PJM", "SC", "TEPC")
LENGTHS = (1, 3, 6, 12, 24, 48, 168)
# PUDL @002776d on the same 8 BAs and protocol (../shared/docs/eia930_cleaning.md, section 8).
PUDL_REFERENCE = {
    "linear": {1: 0.86, 3: 2.40, 6: 5.36, 12: 9.76, 24: 13.38, 48: 14.40, 168: 14.32},
    "pudl_tubal": {1: 0.63, 3: 1.27, 6: 2.00, 12: 3.44, 24: 4.12, 48: 5.95, 168: 7.62},
    "pudl_tnn": {1: 0.59, 3: 1.02, 6: 1.51, 12: 2.36, 24: 3.21, 48: 4.95, 168: 6.34},
}
PUDL_SCREEN_REFERENCE = {"as_shipped": (0.440, 0.953), "both_bugs_patched": (1.000, 0.976)}


def load(realdata: Path, bas: tuple[str, ...], max_days: int | None):
    """(times Series, demand, forecast, category) matrices, hours x BAs, NaN = missing."""
    import polars as pl

    folder = realdata / "ruggles_2019_release"
    if not folder.is_dir():
        raise SystemExit(f"{folder} not found: pass --realdata pointing at shared/realdata")
    demand, forecast, category, times = [], [], [], None
    for ba in bas:
        df = pl.read_csv(folder / f"{ba}.csv", infer_schema_length=0)
        if max_days:
            df = df.head(24 * max_days)
        demand.append(df["raw demand (MW)"].cast(pl.Float64, strict=False).to_numpy())
        forecast.append(df["forecast demand (MW)"].cast(pl.Float64, strict=False).to_numpy())
        category.append(df["category"].to_numpy())
        t = df["date_time"].str.to_datetime("%Y-%m-%d %H:%M:%S", time_unit="us", time_zone="UTC")
        if times is None:
            times = t
        elif not times.equals(t):
            raise SystemExit(f"{ba}.csv does not share the other files' hours")
    return times, np.stack(demand, 1), np.stack(forecast, 1), np.stack(category, 1)


def precision_recall(truth: np.ndarray, pred: np.ndarray) -> dict:
    tp = int((truth & pred).sum())
    n_pred, n_true = int(pred.sum()), int(truth.sum())
    return {
        "true_positive": tp,
        "flagged": n_pred,
        "labelled": n_true,
        "precision": tp / n_pred if n_pred else None,
        "recall": tp / n_true if n_true else None,
    }


def screening_scores(category: np.ndarray, flags: np.ndarray, bas) -> dict:
    from energy_assets.transform.screen import flag_names

    names = flag_names(flags)
    truth = (category != "OKAY") & (category != "MISSING")
    pred = (names != "OKAY") & (names != "MISSING")
    out = {ba: precision_recall(truth[:, j], pred[:, j]) for j, ba in enumerate(bas)}
    out["all"] = precision_recall(truth, pred)
    out["all"]["category_agreement"] = float((names == category).mean())
    out["all"]["missing_agreement"] = bool(((names == "MISSING") == (category == "MISSING")).all())
    return out


def partitioned_flags(times, demand, forecast, bas, chunk_days: int, context_days: int):
    """Flags from `clean` run the way daily partitions run it: target chunks +- context."""
    import polars as pl

    from energy_assets.transform.clean import clean

    frames = []
    for j, ba in enumerate(bas):
        for series, values in (("demand", demand[:, j]), ("demand_forecast_da", forecast[:, j])):
            frames.append(
                pl.DataFrame(
                    {
                        "interval_start_utc": times,
                        "region": ba,
                        "series": series,
                        "value": pl.Series(values).fill_nan(None),
                        "units": "MW",
                        "source": "eia930",
                    }
                )
            )
    long = pl.concat(frames)
    first, n_hours = times[0], len(times)
    chunk, ctx = timedelta(days=chunk_days), timedelta(days=context_days)
    pieces, start = [], first
    while start < first + timedelta(hours=n_hours):
        end = min(start + chunk, first + timedelta(hours=n_hours))
        window = long.filter(
            pl.col("interval_start_utc").is_between(start - ctx, end + ctx, closed="left")
        )
        pieces.append(clean(window, start, end).filter(pl.col("series") == "demand"))
        start = end
    out = pl.concat(pieces).sort("region", "interval_start_utc")
    flags = out.pivot(on="region", index="interval_start_utc", values="flag").sort(
        "interval_start_utc"
    )
    from energy_assets.transform.screen import CODE

    names = flags.select(list(bas)).to_numpy()
    return np.vectorize(CODE.__getitem__)(names).astype(np.int8), len(pieces)


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


def hidden_gap_protocol(demand, forecast, flags, category, lengths, per_col, seed):
    from energy_assets.transform.clean import CleaningConfig
    from energy_assets.transform.impute import impute_matrix
    from energy_assets.transform.screen import OKAY, screen_ruggles

    cfg = CleaningConfig()
    observed = np.where(flags == OKAY, demand, np.nan)
    fc_flags = screen_ruggles(forecast, cfg.ruggles)
    fc = np.where(fc_flags == OKAY, forecast, np.nan)
    good = (category == "OKAY") & (flags == OKAY)
    m = demand.shape[1]
    rng = np.random.default_rng(seed)
    rows, timing = [], {"ours_s": 0.0, "linear_s": 0.0, "ours_no_forecast_s": 0.0}
    for length in lengths:
        hide = hide_runs(good, length, per_col, rng)
        masked = np.where(hide, np.nan, observed)
        t0 = time.perf_counter()
        ours, _ = impute_matrix(masked, [fc], np.ones(m, bool), np.zeros(m, int), cfg.impute)
        t1 = time.perf_counter()
        linear, _ = impute_matrix(masked, [], np.ones(m, bool), np.full(m, 10**9), cfg.impute)
        t2 = time.perf_counter()
        # Ablation: no forecast covariate (PUDL's tensor methods use demand alone).
        alone, _ = impute_matrix(masked, [], np.ones(m, bool), np.zeros(m, int), cfg.impute)
        t3 = time.perf_counter()
        timing["ours_s"] += t1 - t0
        timing["linear_s"] += t2 - t1
        timing["ours_no_forecast_s"] += t3 - t2
        truth = demand[hide]
        per_ba = {}
        for j in range(m):
            h = hide[:, j]
            per_ba[j] = float(np.mean(np.abs(ours[h, j] - demand[h, j]) / demand[h, j]) * 100)
        rows.append(
            {
                "gap_hours": length,
                "runs": int(hide.sum() // length),
                "ours_mape_pct": float(np.mean(np.abs(ours[hide] - truth) / truth) * 100),
                "linear_mape_pct": float(np.mean(np.abs(linear[hide] - truth) / truth) * 100),
                "ours_no_forecast_mape_pct": float(
                    np.mean(np.abs(alone[hide] - truth) / truth) * 100
                ),
                "ours_mape_pct_by_ba": per_ba,
            }
        )
    return rows, timing


PATTERN_BUCKETS = ((1, 1), (2, 6), (7, 24), (25, 168), (169, 10**9))
"""Gap-length buckets (h) the copied-pattern MAPE is broken down by."""


def copied_pattern_protocol(
    times, demand, forecast, flags, category, rounds: int, seed: int, rate=(0.01, 0.5)
) -> dict:
    """Real gap patterns laid over clean months (the idea of PUDL's SimulateFlagsSettings).

    Patterns: every BA-month whose share of unusable hours (missing, flagged by us, or not OKAY
    for Ruggles) lies in `rate`; targets: BA-months with no unusable hour. In each round every
    pattern is laid, hour by hour from the month's start, over its own randomly drawn target
    (no two targets of a round in the same or neighbouring months of one BA, so the hidden gaps
    never meet); the masked matrix is imputed once per round. MAPE over all hidden hours and by
    the length of the gap they fall in, linear interpolation on the same masks.
    """
    from energy_assets.transform.clean import CleaningConfig
    from energy_assets.transform.impute import _gap_geometry, impute_matrix
    from energy_assets.transform.screen import OKAY, screen_ruggles

    cfg = CleaningConfig()
    m = demand.shape[1]
    bad = (flags != OKAY) | (category != "OKAY") | np.isnan(demand)
    observed = np.where(bad, np.nan, demand)
    fc = np.where(screen_ruggles(forecast, cfg.ruggles) == OKAY, forecast, np.nan)
    month = times.dt.strftime("%Y-%m").to_numpy()
    months = np.unique(month)
    rows_of = {mo: np.flatnonzero(month == mo) for mo in months}
    share = np.array([[bad[rows_of[mo], j].mean() for j in range(m)] for mo in months])
    usable = (share >= rate[0]) & (share <= rate[1])
    patterns = list(zip(*np.nonzero(usable), strict=True))
    targets = list(zip(*np.nonzero(share == 0), strict=True))
    rng = np.random.default_rng(seed)
    hidden_truth, ours_all, linear_all, alone_all, gap_all = [], [], [], [], []
    draw_all = []  # per hidden hour: index into `draws` (target BA-month, pattern BA-month)
    draws: list[tuple[str, str]] = []  # ("BA month" of the target, of the pattern)
    for _ in range(rounds):
        hide = np.zeros_like(bad)
        draw_of = np.full(bad.shape, -1)
        taken: set[tuple[int, int]] = set()
        for pi, pj in patterns:
            free = [t for t in targets if not {(t[0] + d, t[1]) for d in (-1, 0, 1)} & taken]
            if not free:  # a short series: fewer clean months than patterns
                continue
            ti, tj = free[int(rng.integers(len(free)))]
            taken.add((ti, tj))
            src, dst = rows_of[months[pi]], rows_of[months[ti]]
            k = min(len(src), len(dst))
            hide[dst[:k], tj] = bad[src[:k], pj]
            draw_of[dst[:k], tj] = len(draws)
            draws.append((f"{BAS[tj]} {months[ti]}", f"{BAS[pj]} {months[pi]}"))
        masked = np.where(hide, np.nan, observed)
        ours, _ = impute_matrix(masked, [fc], np.ones(m, bool), np.zeros(m, int), cfg.impute)
        linear, _ = impute_matrix(masked, [], np.ones(m, bool), np.full(m, 10**9), cfg.impute)
        alone, _ = impute_matrix(masked, [], np.ones(m, bool), np.zeros(m, int), cfg.impute)
        _, _, gap_len = _gap_geometry(~np.isnan(masked))
        hidden_truth.append(demand[hide])
        ours_all.append(ours[hide])
        linear_all.append(linear[hide])
        alone_all.append(alone[hide])
        gap_all.append(gap_len[hide])
        draw_all.append(draw_of[hide])
    truth, gap = np.concatenate(hidden_truth), np.concatenate(gap_all)

    def mape(values: list[np.ndarray], sel: np.ndarray) -> float | None:
        v = np.concatenate(values)[sel]
        return float(np.mean(np.abs(v - truth[sel]) / truth[sel]) * 100) if sel.any() else None

    everything = np.ones(truth.size, dtype=bool)
    draw = np.concatenate(draw_all)
    ape = np.abs(np.concatenate(ours_all) - truth) / truth * 100
    share_of_total = np.bincount(draw, weights=ape, minlength=len(draws)) / max(truth.size, 1)
    worst = np.argsort(share_of_total)[::-1][:3]
    out = {
        "patterns": len(patterns),
        "targets": len(targets),
        "rounds": rounds,
        "unusable_share_range": list(rate),
        "hidden_hours": int(truth.size),
        "ours_mape_pct": mape(ours_all, everything),
        "ours_no_forecast_mape_pct": mape(alone_all, everything),
        "linear_mape_pct": mape(linear_all, everything),
        "by_gap_length": [],
        "worst_draws": [
            {
                "target": draws[d][0],
                "pattern_from": draws[d][1],
                "hidden_hours": int((draw == d).sum()),
                "ours_mape_pct": float(ape[draw == d].mean()),
                "points_of_total_mape": float(share_of_total[d]),
            }
            for d in worst
            if (draw == d).any()
        ],
        "ours_mape_pct_without_worst_draw": mape(ours_all, draw != worst[0])
        if worst.size
        else None,
    }
    for lo, hi in PATTERN_BUCKETS:
        sel = (gap >= lo) & (gap <= hi)
        out["by_gap_length"].append(
            {
                "gap_hours": [lo, hi],
                "hidden_hours": int(sel.sum()),
                "ours_mape_pct": mape(ours_all, sel),
                "ours_no_forecast_mape_pct": mape(alone_all, sel),
                "linear_mape_pct": mape(linear_all, sel),
            }
        )
    return out


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    rows = result["hidden_gaps"]
    ls = [r["gap_hours"] for r in rows]
    ax1.plot(ls, [r["ours_mape_pct"] for r in rows], "o-", label="ours (blend)", lw=2)
    ax1.plot(ls, [r["ours_no_forecast_mape_pct"] for r in rows], "^-", label="ours, no forecast")
    ax1.plot(ls, [r["linear_mape_pct"] for r in rows], "s-", label="linear (this run)")
    for name, style in (("pudl_tubal", "--"), ("pudl_tnn", ":")):
        ref = PUDL_REFERENCE[name]
        ax1.plot(ls, [ref.get(L, np.nan) for L in ls], style, label=f"{name} (published)")
    ax1.set_xscale("log")
    ax1.set_xticks(ls, [str(L) for L in ls])
    ax1.set_xlabel("hidden gap length (h)")
    ax1.set_ylabel("MAPE on hidden hours (%)")
    ax1.set_title("Hidden-gap protocol, 8 BAs, 200 runs per length")
    ax1.legend()
    screen = result["screening_full_series"]
    bas = [b for b in screen if b != "all"]
    x = np.arange(len(bas))
    prec = [screen[b]["precision"] if screen[b]["precision"] is not None else np.nan for b in bas]
    rec = [screen[b]["recall"] if screen[b]["recall"] is not None else np.nan for b in bas]
    ax2.bar(x - 0.2, prec, 0.4, label="precision")
    ax2.bar(x + 0.2, rec, 0.4, label="recall")
    ax2.set_xticks(x, bas)
    ax2.set_ylim(0, 1.05)
    ax2.set_title("Screening vs Ruggles labels (anomalous = not OKAY/MISSING)")
    ax2.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--realdata", type=Path, default=REPO.parent / "shared" / "realdata")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--lengths", default=",".join(map(str, LENGTHS)))
    p.add_argument("--runs-per-ba", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-days", type=int, default=None, help="truncate the series (smoke)")
    p.add_argument("--chunk-days", type=int, default=7, help="target chunk of the partition path")
    p.add_argument("--skip-partitioned", action="store_true")
    p.add_argument("--pattern-rounds", type=int, default=6, help="copied-pattern rounds (0 = skip)")
    args = p.parse_args(argv)
    if args.pattern_rounds < 0:
        p.error(f"--pattern-rounds must be 0 (skip) or more, not {args.pattern_rounds}")
    lengths = tuple(int(v) for v in args.lengths.split(","))

    from energy_assets.transform.clean import CleaningConfig
    from energy_assets.transform.screen import screen_ruggles

    t_start = time.perf_counter()
    times, demand, forecast, category = load(args.realdata, BAS, args.max_days)
    cfg = CleaningConfig()
    t0 = time.perf_counter()
    flags = screen_ruggles(demand, cfg.ruggles)
    screen_s = time.perf_counter() - t0
    result: dict = {
        "data": {
            "bas": list(BAS),
            "hours": int(demand.shape[0]),
            "cells": int(demand.size),
            "missing": int(np.isnan(demand).sum()),
            "first": str(times[0]),
            "last": str(times[-1]),
        },
        "screening_full_series": screening_scores(category, flags, BAS),
        "screen_seconds": screen_s,
    }
    if not args.skip_partitioned:
        t0 = time.perf_counter()
        part_flags, n_calls = partitioned_flags(
            times, demand, forecast, BAS, args.chunk_days, cfg.context_days
        )
        result["screening_partitioned"] = screening_scores(category, part_flags, BAS)
        result["screening_partitioned"]["all"]["clean_calls"] = n_calls
        result["screening_partitioned"]["all"]["chunk_days"] = args.chunk_days
        result["screening_partitioned"]["all"]["context_days"] = cfg.context_days
        result["partitioned_seconds"] = time.perf_counter() - t0
        result["partitioned_vs_full_flag_agreement"] = float((part_flags == flags).mean())
    rows, timing = hidden_gap_protocol(
        demand, forecast, flags, category, lengths, args.runs_per_ba, args.seed
    )
    for r in rows:
        r["ours_mape_pct_by_ba"] = {BAS[j]: v for j, v in r["ours_mape_pct_by_ba"].items()}
    result["hidden_gaps"] = rows
    result["impute_seconds"] = timing
    if args.pattern_rounds:
        t0 = time.perf_counter()
        result["copied_patterns"] = copied_pattern_protocol(
            times, demand, forecast, flags, category, args.pattern_rounds, args.seed
        )
        result["copied_patterns"]["seconds"] = time.perf_counter() - t0
    result["reference_published"] = {
        "imputation_mape_pct": PUDL_REFERENCE,
        "screening_precision_recall": PUDL_SCREEN_REFERENCE,
    }
    result["total_seconds"] = time.perf_counter() - t_start

    _print(result)
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.max_days is None else "_small"
    (args.out / f"quality_ruggles{suffix}.json").write_text(json.dumps(result, indent=2))
    plot(result, args.out / f"quality_ruggles{suffix}.png")
    print(f"wrote {args.out / f'quality_ruggles{suffix}.json'} and .png")
    return result


def _print(result: dict) -> None:
    d = result["data"]
    print(f"data: {len(d['bas'])} BAs x {d['hours']} h ({d['first']} .. {d['last']})")
    print("\nscreening vs Ruggles labels (anomalous = not OKAY and not MISSING)")
    print(f"{'BA':6} {'labelled':>8} {'flagged':>8} {'TP':>5} {'precision':>9} {'recall':>7}")
    fmt = lambda v: "   -" if v is None else f"{v:.3f}"  # noqa: E731
    for key in ("screening_full_series", "screening_partitioned"):
        if key not in result:
            continue
        print(f"-- {key}")
        for ba, s in result[key].items():
            print(
                f"{ba:6} {s['labelled']:8d} {s['flagged']:8d} {s['true_positive']:5d} "
                f"{fmt(s['precision']):>9} {fmt(s['recall']):>7}"
            )
    print("   PUDL (published): as shipped P=0.440 R=0.953; both bugs patched P=1.000 R=0.976")
    print("\nhidden-gap MAPE (%)")
    print(
        f"{'L (h)':>6} {'ours':>6} {'no-fc':>6} {'linear':>7} {'lin/ours':>8} | "
        f"{'tubal*':>6} {'tnn*':>6}"
    )
    for r in result["hidden_gaps"]:
        L = r["gap_hours"]
        tub = PUDL_REFERENCE["pudl_tubal"].get(L, float("nan"))
        tnn = PUDL_REFERENCE["pudl_tnn"].get(L, float("nan"))
        ratio = r["linear_mape_pct"] / r["ours_mape_pct"]
        print(
            f"{L:6d} {r['ours_mape_pct']:6.2f} {r['ours_no_forecast_mape_pct']:6.2f} "
            f"{r['linear_mape_pct']:7.2f} {ratio:8.1f} | "
            f"{tub:6.2f} {tnn:6.2f}"
        )
    print("   no-fc: ours without the forecast covariate (demand alone, like PUDL's methods)")
    print("   * PUDL @002776d, same protocol, published in the research notes (not this run)")
    cp = result.get("copied_patterns")
    if cp:
        print(
            f"\ncopied real gap patterns: {cp['patterns']} BA-months with "
            f"{cp['unusable_share_range'][0]:.0%}-{cp['unusable_share_range'][1]:.0%} unusable "
            f"hours laid over {cp['rounds']} x {cp['patterns']} clean BA-months "
            f"({cp['hidden_hours']:,} hidden hours); MAPE (%)"
        )
        print(f"{'gap (h)':>10} {'hours':>7} {'ours':>6} {'no-fc':>6} {'linear':>7}")
        f = lambda v: "     -" if v is None else f"{v:6.2f}"  # noqa: E731
        for b in [*cp["by_gap_length"], {**cp, "gap_hours": ["all", ""]}]:
            lo, hi = b["gap_hours"]
            label = "all" if lo == "all" else (f"{lo}" if lo == hi else f"{lo}-{hi}")
            label = label.replace("-1000000000", "+")
            print(
                f"{label:>10} {b['hidden_hours']:7d} {f(b['ours_mape_pct'])} "
                f"{f(b['ours_no_forecast_mape_pct'])} {f(b['linear_mape_pct']):>7}"
            )
        for w in cp["worst_draws"]:
            print(
                f"   worst: {w['pattern_from']} pattern on {w['target']}: {w['hidden_hours']} h,"
                f" MAPE {w['ours_mape_pct']:.1f} %, {w['points_of_total_mape']:.2f} points of all"
            )
        if cp["ours_mape_pct_without_worst_draw"] is not None:
            print(f"   all but the worst draw: {cp['ours_mape_pct_without_worst_draw']:.2f} %")
        print("   PUDL's own validation of this kind reports 2-3 % for BAs (published)")
    print(
        f"\ntimes: screen {result['screen_seconds']:.2f} s, impute "
        f"{result['impute_seconds']['ours_s']:.2f} s (linear "
        f"{result['impute_seconds']['linear_s']:.2f} s), total {result['total_seconds']:.1f} s"
    )


if __name__ == "__main__":
    main()
