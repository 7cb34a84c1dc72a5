"""The MLX training dataset: one normalised series per balancing authority plus a window index.

What belongs here: turning the wide features frame into `MLDataset` (series rows, window index,
statistics, metadata), the frame <-> dataset round trip used for per-day parquet partitions,
and content hashing. Splitting rules live in `splits.py`, statistics in `normalize.py`, tensor
loading in `loader.py`.

Shape of the data (why: windows are never materialised, a batch is gathered from the series by
index; materialised windows of a year of ~65 BAs would be ~250x larger):
- `series`: one row per (region, hour) on a common hourly grid [start, end) shared by all
  regions, sorted by (region_index, t). `t` is the hour position on that grid.
- `windows`: one row per kept forecast origin (region, origin_t, interval_start_utc = origin
  time, split). A batch gathers series rows [origin_t - context_length, origin_t + horizon).

Masks (all with "1 = counts" polarity except `is_pad`, whose 1 means "no data here"):
- `is_observed`: 1 = the target at this hour was observed (not imputed, not missing).
- `is_pad`: 1 = the hour is absent from the features frame (grid hole); values there are 0.
- `loss_weight`: 1.0 = the target counts in the loss (= is_observed and not is_pad), else 0.0.
Imputed targets keep their imputed value as an input (`target_z`) but get loss weight 0.

Covariate groups are kept apart by column prefix: `known_z__<name>` (known in advance, e.g.
calendar) and `past_z__<name>` (observed only up to the origin, e.g. weather observations).
The raw target stays in its original column (e.g. `demand_mw`) for metrics in original units.

Per-feature validity (`valid__<name>`, 1 = the covariate had a value at this hour): a missing
covariate is 0 in z-space (the training mean), and its mask says so, so a model can tell "at the
mean" from "unknown" (a day-ahead forecast exists only for the hours it was issued for).

Statistics are frozen: `fit_normalization` fits them once on the training window (observed
target values, non-null covariates) and `build_dataset(..., stats=...)` applies them, so one day
built alone equals the same day of a build over any range that contains its context (`t` is a
position on the global grid of `splits.GRID_EPOCH`, split dates are fixed). Every day built with
the same statistics and configuration carries the same metadata (`statistics_fingerprint`);
days built with different statistics are refused together (the loader says which).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from energy_assets.ml.normalize import apply_stats, fit_stats
from energy_assets.ml.splits import (
    GRID_EPOCH,
    SPLIT_DTYPE,
    SplitBounds,
    assert_no_target_leak,
    position,
    resolve_split_bounds,
    split_bounds,
    split_of_origin,
)

DATASET_SCHEMA_VERSION = "ml_dataset/2"
VALID_PREFIX = "valid__"
TIME = "interval_start_utc"
TIME_DTYPE = pl.Datetime("us", "UTC")
HOUR_US = 3_600_000_000

MASK_POLARITY = {
    "is_observed": "1 = target observed (not imputed, not missing); counts",
    "is_pad": "1 = hour absent from the features frame (no data, values 0)",
    "loss_weight": "1.0 = target counts in the loss (is_observed and not is_pad); 0.0 = ignore",
    "window_split": "split of the window whose origin is this row; null = not a kept origin",
    "valid__<feature>": "1 = the covariate had a value at this hour; 0 = missing (z is 0)",
}


class FeatureSpec(BaseModel):
    """Roles of the feature columns: which is the target and which covariates are known ahead."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    target: str
    known_in_advance: list[str] = Field(default_factory=list)
    past_only: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _disjoint(self) -> FeatureSpec:
        names = [self.target, *self.known_in_advance, *self.past_only]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"columns {dup} appear in more than one FeatureSpec role")
        return self


def feature_spec() -> FeatureSpec:
    """The roles the features contract declares (transform/features.py FEATURE_COLUMNS):
    `demand_mw` is the target; every known-in-advance and past-only column is a covariate of
    its role. The platform's ML assets read features with exactly this split."""
    from energy_assets.transform.features import FEATURE_COLUMNS

    return FeatureSpec(
        target="demand_mw",
        known_in_advance=[n for n, c in FEATURE_COLUMNS.items() if c.role == "known_in_advance"],
        past_only=[n for n, c in FEATURE_COLUMNS.items() if c.role == "past_only"],
    )


class DatasetConfig(BaseModel):
    """Window geometry, split dates and window quality filters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    context_length: int = Field(336, ge=1, description="hours of context before the origin")
    horizon: int = Field(24, ge=1, description="hours of target from the origin")
    stride: int = Field(24, ge=1, description="hours between consecutive origins")
    origin_offset_hours: int = Field(
        0, ge=0, description="origins are the hours h with (epoch hour - offset) % stride == 0"
    )
    train_start_utc: datetime | None = Field(
        None, description="first training hour (midnight); None = the frame's (or grid's) start"
    )
    val_start_utc: datetime | None = Field(None, description="first validation hour (midnight)")
    test_start_utc: datetime | None = Field(None, description="first test hour (midnight)")
    test_end_utc: datetime | None = Field(
        None, description="end of the test split (exclusive); None = open-ended"
    )
    train_fraction: float = Field(0.7, gt=0, lt=1, description="used when val_start_utc is None")
    val_fraction: float = Field(0.15, gt=0, lt=1, description="used when test_start_utc is None")
    min_target_observed_fraction: float = Field(
        0.5, ge=0, le=1, description="drop windows with fewer observed target hours"
    )
    max_context_pad_fraction: float = Field(
        0.0, ge=0, le=1, description="drop windows whose context has more padded hours"
    )

    @field_validator("train_start_utc", "val_start_utc", "test_start_utc", "test_end_utc")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and (value.tzinfo is None or value.utcoffset() != timedelta(0)):
            raise ValueError(f"split dates must be timezone-aware UTC, got {value!r}")
        return value

    @property
    def fixed_splits(self) -> bool:
        """True when the split dates do not depend on the range being built."""
        return self.val_start_utc is not None and self.test_start_utc is not None

    def bounds(self, start: datetime | None = None, n_steps: int | None = None) -> SplitBounds:
        """Split positions: from the dates when fixed, else from fractions of [start, +n_steps)."""
        if self.fixed_splits:
            assert self.val_start_utc is not None and self.test_start_utc is not None
            return split_bounds(
                horizon=self.horizon,
                train_start_utc=self.train_start_utc or GRID_EPOCH,
                val_start_utc=self.val_start_utc,
                test_start_utc=self.test_start_utc,
                test_end_utc=self.test_end_utc,
            )
        if start is None or n_steps is None:
            raise ValueError("DatasetConfig without split dates needs the range to split")
        return resolve_split_bounds(
            start,
            n_steps,
            horizon=self.horizon,
            train_start_utc=self.train_start_utc,
            val_start_utc=self.val_start_utc,
            test_start_utc=self.test_start_utc,
            test_end_utc=self.test_end_utc,
            train_fraction=self.train_fraction,
            val_fraction=self.val_fraction,
        )


@dataclass
class MLDataset:
    """Normalised series, window index, statistics and metadata of one build."""

    series: pl.DataFrame
    windows: pl.DataFrame
    stats: pl.DataFrame
    metadata: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)

    def to_frame(self) -> pl.DataFrame:
        """Series rows with the window index as columns: the single frame to persist.

        `window_split` / `window_target_observed_fraction` are set on the row whose hour is a
        kept origin; split by day with `partition_by_day`.
        """
        marks = self.windows.select(
            "region_index",
            pl.col("origin_t").alias("t"),
            pl.col("split").alias("window_split"),
            pl.col("target_observed_fraction").alias("window_target_observed_fraction"),
            pl.col("context_pad_fraction").alias("window_context_pad_fraction"),
        )
        return self.series.join(marks, on=["region_index", "t"], how="left", maintain_order="left")

    @classmethod
    def from_frame(cls, frame: pl.DataFrame, metadata: dict[str, Any]) -> MLDataset:
        """Rebuild from `to_frame()` output (or the concatenation of its day partitions)."""
        frame = frame.sort("region_index", "t")
        window_cols = [c for c in frame.columns if c.startswith("window_")]
        windows = frame.filter(pl.col("window_split").is_not_null()).select(
            "region",
            "region_index",
            pl.col(TIME),
            pl.col("t").alias("origin_t"),
            pl.col("window_split").cast(SPLIT_DTYPE).alias("split"),
            pl.col("window_target_observed_fraction").alias("target_observed_fraction"),
            pl.col("window_context_pad_fraction").alias("context_pad_fraction"),
        )
        stats = pl.DataFrame(metadata["normalization"]["stats"])
        return cls(frame.drop(window_cols), windows, stats, metadata)


def frame_hash(frame: pl.DataFrame) -> str:
    """sha256 over column names and values (strings by sorted dictionary + codes).

    Independent of polars' internal hash functions, so it is stable across versions.
    """
    digest = hashlib.sha256(json.dumps(frame.columns).encode())
    for name in frame.columns:
        s = frame.get_column(name)
        if s.dtype in (pl.Utf8, pl.Categorical) or isinstance(s.dtype, pl.Enum):
            s = s.cast(pl.Utf8)
            digest.update(json.dumps(s.unique().sort().to_list()).encode())
            s = s.rank("dense")
        elif s.dtype.is_temporal():
            s = s.dt.epoch("us") if s.dtype != pl.Date else s.cast(pl.Int32)
        digest.update(s.is_null().to_numpy().tobytes())
        digest.update(np.ascontiguousarray(s.fill_null(0).to_numpy()).tobytes())
    return digest.hexdigest()


def _validate(features: pl.DataFrame, spec: FeatureSpec) -> None:
    if features.height == 0:
        raise ValueError("features frame is empty: materialise features for the range first")
    needed = [TIME, "region", "is_observed", spec.target, *spec.known_in_advance, *spec.past_only]
    missing = [c for c in needed if c not in features.columns]
    if missing:
        raise ValueError(
            f"features frame lacks columns {missing} (has {features.columns}); check the "
            "FeatureSpec against the features contract"
        )
    dtype = features.schema[TIME]
    if not isinstance(dtype, pl.Datetime) or dtype.time_zone != "UTC":
        raise ValueError(f"{TIME} must be Datetime with time zone UTC, got {dtype}")
    for col in [spec.target, *spec.known_in_advance, *spec.past_only]:
        dt = features.schema[col]
        if not (dt.is_numeric() or dt == pl.Boolean):
            raise ValueError(f"feature column {col!r} has dtype {dt}; it must be numeric")


def _check_grid(src: pl.DataFrame) -> None:
    """Whole hours and unique (region, hour) keys, on the frame sorted by (region, t)."""
    off = src.filter(pl.col(TIME).dt.epoch("us") % HOUR_US != 0)
    if off.height:
        raise ValueError(
            f"{off.height} rows of {TIME} are not whole hours, first: "
            f"{off.row(0, named=True)[TIME]}; the dataset expects an hourly grid"
        )
    same = (pl.col("region") == pl.col("region").shift(1)) & (pl.col("t").diff() == 0)
    dups = src.filter(same.fill_null(False))
    if dups.height:
        first = dups.row(0, named=True)
        raise ValueError(
            f"{dups.height} duplicated (region, {TIME}) keys in the features frame, first: "
            f"{first['region']} at {first[TIME]}; deduplicate upstream"
        )


def _roles(spec: FeatureSpec) -> tuple[dict[str, str], dict[str, str]]:
    """(column -> role, column -> output column name) of a spec."""
    roles = {spec.target: "target"}
    roles |= {c: "known" for c in spec.known_in_advance}
    roles |= {c: "past" for c in spec.past_only}
    out_name = {spec.target: "target_z"}
    out_name |= {c: f"known_z__{c}" for c in spec.known_in_advance}
    out_name |= {c: f"past_z__{c}" for c in spec.past_only}
    clash = sorted((set(out_name.values()) | {VALID_PREFIX + c for c in roles}) & set(roles))
    if clash:
        raise ValueError(f"feature names {clash} clash with generated column names; rename them")
    return roles, out_name


def _source(features: pl.DataFrame, spec: FeatureSpec) -> pl.DataFrame:
    """The features' rows typed, with `t` (global grid position), checked to be an hourly grid."""
    _validate(features, spec)
    roles, _ = _roles(spec)
    src = features.select(
        pl.col(TIME).cast(TIME_DTYPE),
        pl.col("region").cast(pl.Utf8),
        pl.col("is_observed").cast(pl.Boolean),
        *[pl.col(c).cast(pl.Float64) for c in roles],
    )
    epoch_us = int(GRID_EPOCH.timestamp() * 1_000_000)
    src = src.with_columns(
        ((pl.col(TIME).dt.epoch("us") - epoch_us) // HOUR_US).cast(pl.Int32).alias("t")
    ).sort("region", "t")
    _check_grid(src)
    return src


def _observed(target: str) -> pl.Expr:
    return (
        pl.col("is_observed").fill_null(False)
        & ~pl.col("is_pad")
        & pl.col(target).is_not_null()
        & pl.col(target).is_not_nan()
    )


def fit_normalization(
    features: pl.DataFrame, spec: FeatureSpec, config: DatasetConfig
) -> pl.DataFrame:
    """Per-region statistics (normalize.STATS_SCHEMA) fitted on the training window only:
    rows with train_start <= t < val_start, observed values of the target, non-null covariates.

    `features` may hold more than the training window (later rows are ignored); the result is
    what `build_dataset(..., stats=...)` applies to every day.
    """
    src = _source(features, spec)
    roles, _ = _roles(spec)
    start: datetime = src[TIME].min()  # type: ignore[assignment]
    n_steps = int(src["t"].max()) - int(src["t"].min()) + 1  # type: ignore[operator]
    bounds = config.bounds(start, n_steps)
    src = src.with_columns(pl.lit(False).alias("is_pad"))
    src = src.with_columns(_observed(spec.target).alias("is_observed"))
    train = (pl.col("t") >= bounds.train_start_t) & (pl.col("t") < bounds.val_start_t)
    if src.filter(train).height == 0:
        raise ValueError(
            f"no feature rows in the training window {bounds.train_start_utc} .. "
            f"{bounds.val_start_utc}: materialize features/hourly for those days first, or "
            "move pipeline.train_start_utc / val_start_utc"
        )
    return fit_stats(src, roles=roles, train=train)


def build_dataset(
    features: pl.DataFrame,
    spec: FeatureSpec,
    config: DatasetConfig,
    stats: pl.DataFrame | None = None,
    *,
    grid_start: datetime | None = None,
    keep: tuple[datetime, datetime] | None = None,
) -> MLDataset:
    """Normalised series, masks and window index of the hours in `features`.

    `features`: wide frame per (region, hour) with `interval_start_utc`, `region`,
    `is_observed`, the target and the covariates named in `spec`. The grid runs from
    `grid_start` (default: the first hour of `features`) to the last hour of `features`; hours
    missing for a region become padding rows. `stats` (from `fit_normalization`) are applied as
    they are; without them they are fitted here on the training window of this frame (a one-off
    build). Regions without statistics are left out (`regions_without_statistics`). `keep`
    restricts the returned rows and origins to [keep[0], keep[1]): the rest of `features` is
    context (an origin's window quality looks `context_length` back and `horizon` ahead).
    """
    roles, out_name = _roles(spec)
    src = _source(features, spec)
    first = grid_start or src[TIME].min()
    end: datetime = src[TIME].max() + timedelta(hours=1)  # type: ignore[operator]
    start_t, end_t = position(first), position(end)  # type: ignore[arg-type]
    bounds = config.bounds(first, end_t - start_t)  # type: ignore[arg-type]
    fitted_here = stats is None
    if stats is None:
        stats = fit_normalization(features, spec, config)
    regions = sorted(stats["region"].unique().to_list())
    unknown = sorted(set(src["region"].unique().to_list()) - set(regions))
    index = pl.DataFrame(
        {"region": regions, "region_index": np.arange(len(regions), dtype=np.int32)}
    )
    # Every region with statistics gets every hour of the grid; absent hours are padding.
    grid = index.join(
        pl.DataFrame({"t": np.arange(start_t, end_t, dtype=np.int32)}), how="cross"
    ).join(src.drop("region_index", strict=False), on=["region", "t"], how="left")
    grid = grid.with_columns(
        pl.col("is_observed").is_null().alias("is_pad"),
        (pl.lit(GRID_EPOCH).cast(TIME_DTYPE) + pl.duration(hours=pl.col("t").cast(pl.Int64))).alias(
            TIME
        ),
    )
    grid = grid.with_columns(_observed(spec.target).alias("is_observed"))
    valid = {
        c: (~pl.col("is_pad") & pl.col(c).is_not_null() & pl.col(c).is_not_nan()).alias(
            VALID_PREFIX + c
        )
        for c in roles
        if c != spec.target
    }
    series = apply_stats(grid.with_columns(valid.values()), stats, out_name).with_columns(
        [pl.col(c).fill_null(0.0).fill_nan(0.0) for c in out_name.values()]
        + [pl.col("is_observed").cast(pl.Float32).alias("loss_weight")]
    )
    feature_cols = list(out_name.values())
    valid_cols = [VALID_PREFIX + c for c in valid]
    series = series.select(
        TIME,
        "region",
        "region_index",
        "t",
        spec.target,
        *feature_cols,
        *valid_cols,
        "is_observed",
        "is_pad",
        "loss_weight",
    ).sort("region_index", "t")

    kept_t = None if keep is None else (position(keep[0]), position(keep[1]))
    windows, counts = _window_index(series, config, bounds, start_t, end_t, kept_t)
    assert_no_target_leak(windows, config.horizon)
    if kept_t is not None:
        series = series.filter(pl.col("t").is_between(*kept_t, closed="left"))

    metadata = dataset_metadata(spec, config, bounds, stats, regions)
    metadata["fitted_in_build"] = fitted_here
    if unknown:
        metadata["regions_without_statistics"] = unknown
    return MLDataset(series=series, windows=windows, stats=stats, metadata=metadata, counts=counts)


def dataset_metadata(
    spec: FeatureSpec,
    config: DatasetConfig,
    bounds: SplitBounds,
    stats: pl.DataFrame,
    regions: list[str],
) -> dict[str, Any]:
    """What every day built with these statistics and settings shares (the file footer)."""
    roles, out_name = _roles(spec)
    metadata: dict[str, Any] = {
        "schema_version": DATASET_SCHEMA_VERSION,
        "spec": spec.model_dump(mode="json"),
        "config": config.model_dump(mode="json"),
        "regions": regions,
        "grid_epoch_utc": GRID_EPOCH.isoformat(),
        "split_bounds": bounds.to_dict(),
        "feature_columns": {
            "raw_target": spec.target,
            "target": "target_z",
            "known": [out_name[c] for c in spec.known_in_advance],
            "past": [out_name[c] for c in spec.past_only],
            "all": list(out_name.values()),
            "valid": [VALID_PREFIX + c for c in roles if c != spec.target],
            "source_names": {v: k for k, v in out_name.items()},
        },
        "normalization": {
            "method": "per-region z-score (population std), Float32 outputs",
            "fitted_on": (
                f"rows {bounds.train_start_utc} <= t < {bounds.val_start_utc}; target rows "
                "only where is_observed; covariates on non-null rows"
            ),
            "stats": stats.to_dicts(),
            "stats_hash": frame_hash(stats),
        },
        "masks": MASK_POLARITY,
    }
    metadata["statistics_fingerprint"] = hashlib.sha256(
        json.dumps(metadata, sort_keys=True, default=str).encode()
    ).hexdigest()
    return metadata


def _window_index(
    series: pl.DataFrame,
    config: DatasetConfig,
    bounds: Any,
    start_t: int,
    end_t: int,
    keep: tuple[int, int] | None = None,
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Forecast origins with their split and quality fractions (vectorised per region).

    An origin is a candidate when its whole context and target lie on the grid
    [start_t, end_t); the grid of a day's build ends where the stored data ends, so an origin
    whose target is not stored yet is left for the refresh of that (provisional) day.
    """
    ctx, h = config.context_length, config.horizon
    epoch_hour = pl.col(TIME).dt.epoch("us") // HOUR_US
    # Inclusive cumulative sums c per region: sum over [a, b) = c[b-1] - c[a-1].
    cum = series.with_columns(
        pl.col("is_observed").cast(pl.Int32).cum_sum().over("region_index").alias("_co"),
        pl.col("is_pad").cast(pl.Int32).cum_sum().over("region_index").alias("_cp"),
    )

    def lag(col: str, k: int) -> pl.Expr:
        return pl.col(col).shift(k).over("region_index").fill_null(0)

    scored = cum.select(
        "region",
        "region_index",
        TIME,
        pl.col("t").alias("origin_t"),
        ((pl.col("_co").shift(-(h - 1)).over("region_index") - lag("_co", 1)) / h)
        .cast(pl.Float32)
        .alias("target_observed_fraction"),
        ((lag("_cp", 1) - lag("_cp", ctx + 1)) / ctx)
        .cast(pl.Float32)
        .alias("context_pad_fraction"),
        ((epoch_hour - config.origin_offset_hours) % config.stride == 0).alias("_aligned"),
    )
    candidates = scored.filter(
        pl.col("_aligned")
        & (pl.col("origin_t") - ctx >= start_t)
        & (pl.col("origin_t") + h <= end_t)
    ).with_columns(split_of_origin(pl.col("origin_t"), h, bounds).alias("split"))
    min_obs = max(1, int(np.ceil(config.min_target_observed_fraction * h - 1e-9)))
    quality = (pl.col("target_observed_fraction") * h >= min_obs - 1e-3) & (
        pl.col("context_pad_fraction") <= config.max_context_pad_fraction + 1e-6
    )
    if keep is not None:
        candidates = candidates.filter(pl.col("origin_t").is_between(*keep, closed="left"))
    in_split = candidates.filter(pl.col("split").is_not_null())
    counts = {
        "dropped_straddling": candidates.height - in_split.height,
        "dropped_quality": in_split.filter(~quality).height,
    }
    kept = in_split.filter(quality).select(
        "region",
        "region_index",
        TIME,
        "origin_t",
        "split",
        "target_observed_fraction",
        "context_pad_fraction",
    )
    kept = kept.sort("region_index", "origin_t")
    counts = {
        s: kept.filter(pl.col("split") == s).height for s in ("train", "val", "test")
    } | counts
    return kept, counts


def partition_by_day(frame: pl.DataFrame, column: str = TIME) -> dict[str, pl.DataFrame]:
    """Split a frame into {"YYYY-MM-DD": rows of that UTC day}, the daily partition keys."""
    keyed = frame.with_columns(pl.col(column).dt.date().alias("_day"))
    return {
        day.isoformat(): part.drop("_day")
        for (day,), part in keyed.partition_by("_day", as_dict=True, maintain_order=True).items()
    }


def check_dataset(frame: pl.DataFrame, metadata: dict[str, Any]) -> dict[str, Any]:
    """Asset-check style checks on `MLDataset.to_frame()` rows (all of a run or one day).

    Masks are consistent, padding carries no loss, no target hour is shared between splits,
    and, when the frame holds all training rows, the target statistics are recomputed from
    the raw target on observed training rows and compared with the stored ones.
    """
    checks: dict[str, bool] = {}
    cfg = metadata["config"]
    checks["loss_weight_is_observed_and_not_pad"] = bool(
        (frame["loss_weight"] == (frame["is_observed"] & ~frame["is_pad"]).cast(pl.Float32)).all()
    )
    pads = frame.filter(pl.col("is_pad"))
    checks["padding_has_zero_features"] = bool(
        all((pads[c] == 0).all() for c in metadata["feature_columns"]["all"])
    )
    valid = metadata["feature_columns"].get("valid", [])
    checks["invalid_covariates_are_zero"] = bool(
        all(
            (frame.filter(~pl.col(m))[f"{kind}_z__{m[len(VALID_PREFIX) :]}"] == 0).all()
            for m in valid
            for kind in ("known", "past")
            if f"{kind}_z__{m[len(VALID_PREFIX) :]}" in frame.columns
        )
    )
    windows = frame.filter(pl.col("window_split").is_not_null()).select(
        pl.col("t").alias("origin_t"), pl.col("window_split").alias("split")
    )
    try:
        assert_no_target_leak(windows, int(cfg["horizon"]))
        checks["no_target_overlap_between_splits"] = True
    except AssertionError:
        checks["no_target_overlap_between_splits"] = False
    bounds = metadata["split_bounds"]
    train = frame.filter(
        pl.col("t").is_between(bounds["train_start_t"], bounds["val_start_t"], closed="left")
    )
    span = bounds["val_start_t"] - bounds["train_start_t"]
    complete_train = train.height == len(metadata["regions"]) * span
    if complete_train:
        raw = metadata["feature_columns"]["raw_target"]
        got = (
            train.filter(pl.col("is_observed"))
            .group_by("region")
            .agg(pl.col(raw).mean().alias("mean"), pl.col(raw).std(ddof=0).alias("std"))
        )
        stored = pl.DataFrame(metadata["normalization"]["stats"]).filter(
            (pl.col("feature") == raw) & ~pl.col("pooled") & ~pl.col("std_floored")
        )
        both = stored.join(got, on="region", suffix="_recomputed")
        checks["target_stats_from_observed_training_rows"] = bool(
            both.height == stored.height
            and (
                ((both["mean"] - both["mean_recomputed"]).abs() <= 1e-9 * both["std"]).all()
                and ((both["std"] - both["std_recomputed"]).abs() <= 1e-9 * both["std"]).all()
            )
        )
    return {"passed": all(checks.values()), "checks": checks}
