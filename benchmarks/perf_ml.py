"""Benchmark: features -> MLX tensors for a year of ~65 balancing authorities.

Compares, in the same run and each in a fresh subprocess (so peak RSS is per variant):
- naive:             pandas read -> groupby region -> z-score -> Python lists -> mx.array
- ours_build:        polars read -> build_dataset -> load_dataset_tensors (one copy per value)
- ours_partitions:   load_dataset_tensors from the 365 daily `ml/dataset` parquet partitions
- safetensors_lazy:  mx.load of the exported safetensors, then evaluate every tensor
- ring_segments:     build_ring_segments (P=2, zigzag, 8,760-token sequences) + per-rank tensors

The synthetic features frame is generated inside the script from a fixed seed. Prints wall
time, peak RSS and bytes per variant with ratios against the naive baseline, and writes JSON +
PNG to --out. Usage:

    python benchmarks/perf_ml.py                 # full: 65 regions x 8,760 hours, 3 repeats
    python benchmarks/perf_ml.py --small         # CI smoke: 6 regions x 30 days, 1 repeat
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

VARIANTS = ("naive", "ours_build", "ours_partitions", "safetensors_lazy", "ring_segments")
START = datetime(2024, 1, 1, tzinfo=UTC)
TARGET = "demand_mw"
KNOWN = ["hour_sin", "hour_cos", "dow_sin", "dow_cos"]
PAST = ["temperature_c", "wind_speed_kmh", "relative_humidity_pct"]


def synthetic_features(n_regions: int, n_hours: int, seed: int = 20240101):
    """Deterministic wide features frame (complete grid, 5% imputed targets)."""
    import polars as pl

    rng = np.random.Generator(np.random.PCG64(seed))
    t = np.arange(n_hours)
    hour, dow = t % 24, (t // 24) % 7
    level = rng.uniform(500, 80_000, size=(n_regions, 1))
    daily = np.sin(2 * np.pi * hour / 24)
    demand = level * (1 + 0.15 * daily + 0.05 * np.sin(2 * np.pi * t / 8760))
    demand = demand + rng.normal(0, 1, (n_regions, n_hours)) * level * 0.01
    observed = rng.random((n_regions, n_hours)) >= 0.05
    times = pl.datetime_range(
        START, START + timedelta(hours=n_hours - 1), "1h", eager=True, time_unit="us"
    )
    cols = {
        "interval_start_utc": pl.concat([times] * n_regions),
        "region": np.repeat(np.array([f"BA{i:02d}" for i in range(n_regions)], object), n_hours),
        TARGET: demand.ravel(),
        "is_observed": observed.ravel(),
        "hour_sin": np.tile(daily, n_regions),
        "hour_cos": np.tile(np.cos(2 * np.pi * hour / 24), n_regions),
        "dow_sin": np.tile(np.sin(2 * np.pi * dow / 7), n_regions),
        "dow_cos": np.tile(np.cos(2 * np.pi * dow / 7), n_regions),
        "temperature_c": (15 + 10 * daily + rng.normal(0, 3, (n_regions, n_hours))).ravel(),
        "wind_speed_kmh": rng.gamma(2.0, 6.0, (n_regions, n_hours)).ravel(),
        "relative_humidity_pct": rng.uniform(20, 100, (n_regions, n_hours)).ravel(),
    }
    return pl.DataFrame(cols).with_columns(pl.col("interval_start_utc").dt.replace_time_zone("UTC"))


def _config(n_hours: int):
    from energy_assets.ml.dataset import DatasetConfig

    days = n_hours // 24
    return DatasetConfig(
        context_length=min(336, 24 * max(1, days // 10)),
        horizon=24,
        stride=24,
        val_start_utc=START + timedelta(days=int(days * 0.7)),
        test_start_utc=START + timedelta(days=int(days * 0.85)),
    )


def _spec():
    from energy_assets.ml.dataset import FeatureSpec

    return FeatureSpec(target=TARGET, known_in_advance=KNOWN, past_only=PAST)


# --------------------------------------------------------------------------- variants


def run_naive(workdir: Path, n_hours: int) -> dict:
    import mlx.core as mx
    import pandas as pd

    cfg = _config(n_hours)
    df = pd.read_parquet(workdir / "features.parquet")
    val_start = pd.Timestamp(cfg.val_start_utc)
    columns = [TARGET, *KNOWN, *PAST]
    per_region, masks = [], []
    for _region, g in df.groupby("region", sort=True):
        g = g.sort_values("interval_start_utc")
        train = g[g["interval_start_utc"] < val_start]
        z = {}
        for col in columns:
            base = train[train["is_observed"]] if col == TARGET else train
            mean, std = base[col].mean(), base[col].std(ddof=0)
            z[col] = ((g[col] - mean) / (std if std > 1e-12 else 1.0)).fillna(0.0)
        per_region.append(pd.DataFrame(z).values.tolist())
        masks.append(g["is_observed"].tolist())
    values = mx.array(per_region, dtype=mx.float32)  # [R, T, F] from Python lists
    observed = mx.array(masks)
    mx.eval(values, observed)
    return {
        "output_bytes": int(values.nbytes + observed.nbytes),
        "target": np.array(values[:, :, 0]),
        "known": np.array(values[:, :, 1 : 1 + len(KNOWN)]),
        "past": np.array(values[:, :, 1 + len(KNOWN) :]),
    }


def _tensor_result(tensors, **extra) -> dict:
    import mlx.core as mx

    mx.eval(list(tensors.arrays().values()))
    return {
        "output_bytes": tensors.nbytes,
        "target": np.array(tensors.target),
        "known": np.array(tensors.known),
        "past": np.array(tensors.past),
        **extra,
    }


def run_ours_build(workdir: Path, n_hours: int) -> dict:
    import polars as pl

    from energy_assets.ml.dataset import build_dataset
    from energy_assets.ml.loader import load_dataset_tensors

    features = pl.read_parquet(workdir / "features.parquet")
    ds = build_dataset(features, _spec(), _config(n_hours))
    tensors = load_dataset_tensors(ds.to_frame(), ds.metadata)
    return _tensor_result(tensors, n_windows=int(tensors.window_origin.shape[0]))


def run_ours_partitions(workdir: Path, n_hours: int) -> dict:

    from energy_assets.ml.loader import load_dataset_tensors

    paths = sorted((workdir / "dataset").glob("*.parquet"))
    return _tensor_result(load_dataset_tensors(paths), n_files=len(paths))


def run_safetensors_lazy(workdir: Path, n_hours: int) -> dict:
    import mlx.core as mx

    from energy_assets.ml.loader import load_safetensors

    arrays, _meta = load_safetensors(workdir / "dataset.safetensors")
    mx.eval(list(arrays.values()))
    return {
        "output_bytes": int(sum(a.nbytes for a in arrays.values())),
        "target": np.array(arrays["target"]),
        "known": np.array(arrays["known"]),
        "past": np.array(arrays["past"]),
    }


def run_ring_segments(workdir: Path, n_hours: int) -> dict:
    import mlx.core as mx
    import polars as pl

    from energy_assets.ml.dataset import MLDataset
    from energy_assets.ml.loader import read_parquet_metadata, ring_segments_to_arrays
    from energy_assets.ml.ring import RingConfig, build_ring_segments

    meta = read_parquet_metadata(workdir / "dataset_full.parquet")
    ds = MLDataset.from_frame(pl.read_parquet(workdir / "dataset_full.parquet"), meta)
    seg = build_ring_segments(
        ds.series,
        ds.metadata,
        RingConfig(world_size=2, layout="zigzag", split="all", sequence_length=min(8760, n_hours)),
    )
    arrays = ring_segments_to_arrays(seg.tokens, seg.metadata)
    mx.eval(list(arrays.values()))
    return {
        "output_bytes": int(sum(a.nbytes for a in arrays.values())),
        "n_tokens": seg.tokens.height,
        "load_balance": seg.metadata["load_balance_unpacked"],
    }


def _vm_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak_rss() -> bool:
    """Reset VmHWM (Linux >= 4.0) so the peak covers the measured work, not the imports."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def child(variant: str, workdir: Path, n_hours: int) -> None:
    """Run one variant in this (fresh) process and print a JSON line."""
    import mlx.core
    import pandas
    import polars

    import energy_assets.ml.loader
    import energy_assets.ml.ring

    del mlx, pandas, polars, energy_assets  # imported only so that they are not measured
    reset = _reset_peak_rss()
    rss_before = _vm_kib("VmRSS") * 1024
    t0 = time.perf_counter()
    result = globals()[f"run_{variant}"](workdir, n_hours)
    wall = time.perf_counter() - t0
    peak = (
        _vm_kib("VmHWM") * 1024
        if reset
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    arrays = {k: result.pop(k) for k in ("target", "known", "past") if k in result}
    if arrays:
        np.savez(workdir / f"out_{variant}.npz", **arrays)
    print(
        json.dumps(
            {
                "variant": variant,
                "wall_s": wall,
                "peak_rss_bytes": peak,
                "rss_before_bytes": rss_before,
                "peak_rss_delta_bytes": peak - rss_before,
                "peak_is_for_work_only": reset,
                **result,
            }
        )
    )


# --------------------------------------------------------------------------- parent


def setup(workdir: Path, n_regions: int, n_hours: int) -> dict:
    """Write the inputs every variant reads (not timed)."""
    from energy_assets.ml.dataset import build_dataset, partition_by_day
    from energy_assets.ml.loader import export_safetensors, load_dataset_tensors, write_parquet

    features = synthetic_features(n_regions, n_hours)
    features.write_parquet(workdir / "features.parquet")
    ds = build_dataset(features, _spec(), _config(n_hours))
    frame = ds.to_frame()
    (workdir / "dataset").mkdir()
    for day, part in partition_by_day(frame).items():
        write_parquet(part, workdir / "dataset" / f"{day}.parquet", ds.metadata)
    write_parquet(frame, workdir / "dataset_full.parquet", ds.metadata)
    tensors = load_dataset_tensors(frame, ds.metadata)
    export_safetensors(workdir / "dataset.safetensors", tensors.arrays(), ds.metadata)
    cfg = ds.metadata["config"]
    n_features = len(ds.metadata["feature_columns"]["all"])
    n_windows = ds.windows.height
    window_len = cfg["context_length"] + cfg["horizon"]
    return {
        "n_regions": n_regions,
        "n_hours": n_hours,
        "n_rows": features.height,
        "n_windows": n_windows,
        "features_parquet_bytes": (workdir / "features.parquet").stat().st_size,
        "dataset_partitions_bytes": sum(
            p.stat().st_size for p in (workdir / "dataset").glob("*.parquet")
        ),
        "dataset_safetensors_bytes": (workdir / "dataset.safetensors").stat().st_size,
        # float32 windows with every feature plus the loss weight, if they were materialised.
        "materialised_windows_bytes": n_windows * window_len * (n_features + 1) * 4,
        "series_plus_index_bytes": tensors.nbytes,
    }


def run_variant(variant: str, workdir: Path, n_hours: int) -> dict:
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            variant,
            "--workdir",
            str(workdir),
            "--hours",
            str(n_hours),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"variant {variant} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary["variants"])
    wall = [summary["variants"][n]["wall_s_median"] for n in names]
    rss = [summary["variants"][n]["peak_rss_delta_bytes_median"] / 2**20 for n in names]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].bar(names, wall, color="tab:blue")
    axes[0].set_ylabel("wall time (s, median)")
    axes[1].bar(names, rss, color="tab:orange")
    axes[1].set_ylabel("peak RSS above imports (MiB, median)")
    for ax in axes:
        ax.tick_params(axis="x", rotation=30)
    fig.suptitle(
        f"features -> MLX tensors: {summary['setup']['n_regions']} regions x "
        f"{summary['setup']['n_hours']} h"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--small", action="store_true", help="6 regions x 30 days, 1 repeat")
    parser.add_argument("--regions", type=int, default=65)
    parser.add_argument("--hours", type=int, default=8760)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.workdir, args.hours)
        return 0
    if args.small:
        args.regions, args.hours, args.repeat = 6, 24 * 30, 1

    workdir = Path(tempfile.mkdtemp(prefix="perf_ml_"))
    try:
        t0 = time.perf_counter()
        info = setup(workdir, args.regions, args.hours)
        info["setup_s"] = time.perf_counter() - t0
        runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
        for _ in range(args.repeat):
            for variant in VARIANTS:  # interleaved so that machine noise hits all alike
                runs[variant].append(run_variant(variant, workdir, args.hours))
        reference = np.load(workdir / "out_ours_build.npz")
        agreement = {}
        for variant in ("naive", "ours_partitions", "safetensors_lazy"):
            other = np.load(workdir / f"out_{variant}.npz")
            agreement[variant] = {
                k: float(np.abs(other[k] - reference[k]).max()) for k in reference.files
            }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    variants = {}
    for variant, rs in runs.items():
        variants[variant] = {
            "wall_s_median": statistics.median(r["wall_s"] for r in rs),
            "wall_s_all": [r["wall_s"] for r in rs],
            "peak_rss_bytes_median": statistics.median(r["peak_rss_bytes"] for r in rs),
            "peak_rss_delta_bytes_median": statistics.median(r["peak_rss_delta_bytes"] for r in rs),
            "output_bytes": rs[0]["output_bytes"],
            **{
                k: v
                for k, v in rs[0].items()
                if k in ("n_windows", "n_files", "n_tokens", "load_balance")
            },
        }
    naive = variants["naive"]
    ours = variants["ours_build"]
    ratios = {
        "wall_naive_over_ours_build": naive["wall_s_median"] / ours["wall_s_median"],
        "rss_delta_naive_over_ours_build": naive["peak_rss_delta_bytes_median"]
        / max(ours["peak_rss_delta_bytes_median"], 1),
        "wall_naive_over_ours_partitions": naive["wall_s_median"]
        / variants["ours_partitions"]["wall_s_median"],
        "materialised_windows_over_series_plus_index": info["materialised_windows_bytes"]
        / info["series_plus_index_bytes"],
    }
    summary = {
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "setup": info,
        "variants": variants,
        "ratios": ratios,
        "max_abs_diff_vs_ours_build": agreement,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "perf_ml_small" if args.small else "perf_ml"
    (args.out / f"{stem}.json").write_text(json.dumps(summary, indent=2))
    plot(summary, args.out / f"{stem}.png")

    print(
        f"{info['n_regions']} regions x {info['n_hours']} h = {info['n_rows']:,} rows, "
        f"{info['n_windows']:,} windows, {args.repeat} repeat(s)"
    )
    print(f"{'variant':<18}{'wall s':>10}{'peak RSS MiB':>14}{'+RSS MiB':>10}{'out MiB':>10}")
    for name, v in variants.items():
        print(
            f"{name:<18}{v['wall_s_median']:>10.3f}{v['peak_rss_bytes_median'] / 2**20:>14.1f}"
            f"{v['peak_rss_delta_bytes_median'] / 2**20:>10.1f}{v['output_bytes'] / 2**20:>10.2f}"
        )
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}x")
    print(f"max |diff| vs ours_build: {json.dumps(agreement)}")
    print(f"wrote {args.out / (stem + '.json')} and {args.out / (stem + '.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
