"""Benchmark: the day-ahead forecaster on the Ruggles world, ring training against full attention.

Input: the 8 balancing authorities of the Ruggles et al. (2020) release (raw demand D and the
BA's day-ahead forecast DF, 2015-07 to 2019-07), run through the project's own pure core:
`align` -> `clean` (screens + imputation) -> `build_features` -> `fit_normalization` on the
training window -> `build_dataset` -> `load_dataset_tensors`. The Ruggles world has no real
weather (the offline stand-in would serve synthetic weather), so the weather covariates are
absent here (null, their validity masks 0) rather than noise.

Splits: train 2015-07-01 .. --val-start, validation .. --test-start (default 2019-01-01), test
from there to the end of the data (the last 6 months).

Measured, in the same run:
1. `grad_max_abs_err`, `loss_ring_vs_full_max_diff`: the same model and batches trained for
   --check-steps steps at N = --long-context + 24 tokens (default 8,760 h of context) on P = 2
   ring processes and in one process with full attention (fused SDPA, causal mask): max abs
   difference of the first step's all-reduced parameter gradients and of every step's loss
   (and the parameters after the last step: `param_ring_vs_full_max_diff`).
2. `tokens_per_s_ring`, `tokens_per_s_full`, `peak_rss_mib_per_rank` (and the full process's):
   from the same runs (window tokens per wall second of the training steps; the slower rank).
   Both run as worker processes so each peak RSS (VmHWM) is its own.
3. `mape`: the model trained with ring attention on P = 2 processes with --context hours of
   context for --steps steps (`train_seconds`), scored on the test split per BA against the
   BA's own day-ahead forecast and the seasonal-naive forecast (same hour one week before).

Usage:
    python benchmarks/forecast_ring.py --json benchmarks/results/forecast_ring.json
    python benchmarks/forecast_ring.py --steps 20 --check-steps 1 --long-context 1000 \
        --json /tmp/f.json  # smoke
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BAS = ("BPAT", "CISO", "ERCO", "MISO", "NYIS", "PJM", "SC", "TEPC")
SERIES = {"D": "demand", "DF": "demand_forecast_da"}


def features_from_ruggles(folder: Path, bas: tuple[str, ...]):
    """features/hourly rows for the whole release, computed by the project's transforms."""
    import polars as pl

    from energy_assets.offline.realdata_world import RugglesWorld
    from energy_assets.transform.align import align
    from energy_assets.transform.clean import clean
    from energy_assets.transform.features import build_features

    world = RugglesWorld(folder)
    start, end = datetime(2015, 7, 1, tzinfo=UTC), datetime(2019, 7, 2, tzinfo=UTC)
    rows = world.eia_region_data(start, end)
    raw = rows.filter(pl.col("respondent").is_in(list(bas)) & pl.col("type").is_in(list(SERIES)))
    raw = raw.select(
        "interval_start_utc",
        pl.col("respondent").alias("region"),
        pl.col("type").replace_strict(SERIES).alias("series"),
        pl.col("value").cast(pl.Float64),
        pl.lit("MWh").alias("units"),
        pl.lit("eia930").alias("source"),
    )
    first = raw["interval_start_utc"].min().replace(hour=0)
    last = raw["interval_start_utc"].max()
    end = datetime(last.year, last.month, last.day, tzinfo=UTC)  # drop the partial last day
    aligned = align(raw, first, end)
    cleaned = clean(aligned, first, end)
    return build_features(cleaned, None, first, end), (first, end)


def dataset(features, args, first, end):
    from energy_assets.ml.dataset import (
        DatasetConfig,
        build_dataset,
        feature_spec,
        fit_normalization,
    )
    from energy_assets.ml.forecaster import SeriesArrays
    from energy_assets.ml.loader import load_dataset_tensors

    def day(text: str) -> datetime:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)

    config = DatasetConfig(
        context_length=24,
        horizon=24,
        train_start_utc=first,
        val_start_utc=day(args.val_start),
        test_start_utc=day(args.test_start),
        test_end_utc=end,
        max_context_pad_fraction=1.0,
    )
    spec = feature_spec()
    stats = fit_normalization(features, spec, config)
    built = build_dataset(features, spec, config, stats=stats)
    tensors = load_dataset_tensors(built.to_frame(), built.metadata)
    return SeriesArrays.from_tensors(tensors), built.counts


def ring_vs_full(series, args) -> dict:
    """Same model, data and seed: P=2 ring processes against one full-attention process."""
    from energy_assets.ml import forecaster as fc

    base = fc.ForecasterConfig(
        context_hours=args.long_context,
        d_model=args.d_model,
        n_heads=args.heads,
        n_layers=args.layers,
        steps=args.check_steps,
        batch_size=args.check_batch,
        learning_rate=args.lr,
        eval_every=10**6,
        eval_windows=1,
        seed=args.seed,
    )
    out: dict = {"n_tokens": base.n_tokens, "steps": args.check_steps}
    runs = {}
    for name, world in (("full", 1), ("ring", 2)):
        config = base.model_copy(update={"world_size": world})
        t0 = time.perf_counter()
        runs[name] = fc.train_distributed(series, config, timeout_s=args.timeout)
        out[f"{name}_wall_s"] = time.perf_counter() - t0
    full, ring = runs["full"], runs["ring"]
    out["grad_max_abs_err"] = max(
        float(np.abs(full.first_grads[k] - ring.first_grads[k]).max()) for k in full.first_grads
    )
    out["grad_max_abs"] = max(float(np.abs(g).max()) for g in full.first_grads.values())
    out["loss_ring_vs_full_max_diff"] = max(
        abs(a - b) for a, b in zip(full.losses, ring.losses, strict=True)
    )
    pf = dict(tree_items(full.model))
    pr = dict(tree_items(ring.model))
    out["param_ring_vs_full_max_diff"] = max(float(np.abs(pf[k] - pr[k]).max()) for k in pf)
    out["losses_full"], out["losses_ring"] = full.losses, ring.losses
    out["tokens_per_s_full"] = full.tokens_per_s
    out["tokens_per_s_ring"] = ring.tokens_per_s
    out["ring_over_full_throughput"] = ring.tokens_per_s / full.tokens_per_s
    out["peak_rss_mib_per_rank"] = [r["peak_rss_mib"] for r in ring.ranks]
    out["peak_rss_mib_full"] = full.ranks[0]["peak_rss_mib"]
    out["mlx_peak_mib_per_rank"] = [r["mlx_peak_mib"] for r in ring.ranks]
    out["mlx_peak_mib_full"] = full.ranks[0]["mlx_peak_mib"]
    return out


def tree_items(model):
    from mlx.utils import tree_flatten

    return [(k, np.array(v)) for k, v in tree_flatten(model.parameters())]


def train_and_score(series, args) -> dict:
    from energy_assets.ml import forecaster as fc

    config = fc.ForecasterConfig(
        context_hours=args.context,
        d_model=args.d_model,
        n_heads=args.heads,
        n_layers=args.layers,
        steps=args.steps,
        batch_size=args.batch,
        learning_rate=args.lr,
        warmup_steps=min(50, args.steps // 10),
        eval_every=max(1, args.steps // 20),
        eval_windows=256,
        seed=args.seed,
        world_size=args.world_size,
    )
    if args.forecast_scale_jitter is not None:
        config = config.model_copy(update={"forecast_scale_jitter": args.forecast_scale_jitter})
    t0 = time.perf_counter()
    result = fc.train_forecaster(series, config, timeout_s=args.timeout)
    wall = time.perf_counter() - t0
    t1 = time.perf_counter()
    scores, rows = fc.evaluate(result.model, series, config)
    eval_s = time.perf_counter() - t1
    mape = {
        r["region"]: {
            "model": r["mape_model"],
            "day_ahead_forecast": r["mape_day_ahead_forecast"],
            "seasonal_naive": r["mape_seasonal_naive"],
            "n_windows": r["n_windows"],
            "n_hours": r["n_hours"],
        }
        for r in scores.to_dicts()
    }
    beats_naive = sum(v["model"] < v["seasonal_naive"] for v in mape.values())
    beats_df = sum(
        v["day_ahead_forecast"] is not None and v["model"] < v["day_ahead_forecast"]
        for v in mape.values()
    )
    return {
        "config": config.model_dump(mode="json"),
        "mape": mape,
        "beats_seasonal_naive": beats_naive,
        "beats_day_ahead_forecast": beats_df,
        "train_seconds": result.seconds,
        "train_wall_s": wall,
        "eval_s": eval_s,
        "tokens_per_s_training": result.tokens_per_s,
        "curve": fc.training_curve(result),
        "train_peak_rss_mib_per_rank": [r["peak_rss_mib"] for r in result.ranks],
        "rows": rows,
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mape = result["mape"]
    regions = list(mape)
    x = np.arange(len(regions))
    fig, (bars, curve) = plt.subplots(2, 1, figsize=(8, 6))
    for i, (key, label) in enumerate(
        [("model", "model"), ("day_ahead_forecast", "BA day-ahead"), ("seasonal_naive", "naive")]
    ):
        values = [mape[r][key] if mape[r][key] is not None else np.nan for r in regions]
        bars.bar(x + (i - 1) * 0.27, values, width=0.27, label=label)
    bars.set_xticks(x, regions)
    bars.set_ylabel("MAPE % (test, last 6 months)")
    bars.legend()
    c = result["curve"]
    curve.plot(c["train_loss"], lw=0.6, label="train")
    if c["val_loss"]:
        s, v = zip(*c["val_loss"], strict=True)
        curve.plot(s, v, "o-", ms=3, label="validation")
    curve.set_yscale("log")
    curve.set_xlabel("step")
    curve.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realdata", type=Path, default=Path("/work/shared/realdata"))
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--val-start", default="2018-10-01")
    parser.add_argument("--test-start", default="2019-01-01")
    parser.add_argument("--context", type=int, default=336, help="hours of context (training)")
    parser.add_argument("--long-context", type=int, default=8760, help="hours (ring vs full)")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--check-steps", type=int, default=3)
    parser.add_argument("--check-batch", type=int, default=1)
    parser.add_argument("--d-model", type=int, default=32)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--world-size", type=int, default=2)
    parser.add_argument(
        "--forecast-scale-jitter",
        type=float,
        default=None,
        help="training augmentation: half the windows get the BA's day-ahead forecast scaled "
        "by a factor in [1 - j, 1 / (1 - j)] (default: ForecasterConfig's, 0.4; 0: off)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=7200.0)
    parser.add_argument("--skip-check", action="store_true", help="no ring-vs-full runs")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    features, (first, end) = features_from_ruggles(args.realdata / "ruggles_2019_release", BAS)
    series, counts = dataset(features, args, first, end)
    prep_s = time.perf_counter() - t0
    print(f"features + dataset: {prep_s:.1f} s, windows {counts}", flush=True)
    result: dict = {
        "bas": list(BAS),
        "range": [first.isoformat(), end.isoformat()],
        "splits": {"val_start": args.val_start, "test_start": args.test_start},
        "windows": {k: int(series.windows(k).size) for k in ("train", "val", "test")},
        "prepare_s": prep_s,
    }
    if not args.skip_check:
        check = ring_vs_full(series, args)
        print(
            json.dumps({k: v for k, v in check.items() if not k.startswith("losses")}), flush=True
        )
        result["ring_vs_full"] = check
        for key in (
            "grad_max_abs_err",
            "loss_ring_vs_full_max_diff",
            "tokens_per_s_ring",
            "tokens_per_s_full",
            "peak_rss_mib_per_rank",
        ):
            result[key] = check[key]
    trained = train_and_score(series, args)
    trained.pop("rows")
    result.update(trained)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1, default=str))
    plot(result, args.json.with_suffix(".png"))
    print(json.dumps({k: v for k, v in result.items() if k not in ("curve", "config")}, indent=1))
    return result


if __name__ == "__main__":
    main()
