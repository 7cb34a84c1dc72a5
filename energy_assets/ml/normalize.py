"""Per-region z-score statistics: fitted on the training split only, applied to every split.

What belongs here: fitting, applying and inverting the normalisation, nothing about windows or
layouts. Statistics are a small long frame (region, feature, role, mean, std, ...) that travels
in the dataset metadata, so a model can report errors in the original units (MW).

Fitting rules (why each exists):
- only rows before the validation start, so no information from later splits leaks;
- the target uses only observed rows (`is_observed`), so imputed values do not shape the scale;
  covariates carry no imputation flag and use every non-null, non-padding training row;
- a region with no usable training row for a feature falls back to the statistics pooled over
  all regions (`pooled = True`), so one late-starting balancing authority does not fail a run;
  a covariate with no usable training row in any region gets mean 0 and std 1 (`n_used = 0`,
  `std_floored`) and is 0 after normalisation; a target with no observed training row raises;
- a standard deviation that is null (one row) or below 1e-12 (constant column, e.g. a flag that
  never fires in training) becomes 1.0 (`std_floored = True`), which keeps centring and avoids
  dividing by zero.
"""

from __future__ import annotations

import polars as pl

STATS_SCHEMA = {
    "region": pl.Utf8,
    "feature": pl.Utf8,
    "role": pl.Utf8,
    "mean": pl.Float64,
    "std": pl.Float64,
    "n_used": pl.Int64,
    "pooled": pl.Boolean,
    "std_floored": pl.Boolean,
}
STD_FLOOR = 1e-12


def fit_stats(
    frame: pl.DataFrame,
    *,
    roles: dict[str, str],
    train: pl.Expr,
    observed_column: str = "is_observed",
    pad_column: str = "is_pad",
) -> pl.DataFrame:
    """Fit per-region mean and std of each column in `roles` (column -> role) on `train` rows.

    `frame` has one row per (region, time) with the raw columns; `train` selects the training
    rows (e.g. `pl.col("t") < val_start_t`). The column whose role is "target" also requires
    `observed_column`. Returns a frame with `STATS_SCHEMA`, sorted by region then feature order.
    """
    base = train & ~pl.col(pad_column)
    usable = {
        col: base
        & pl.col(col).is_not_null()
        & pl.col(col).is_not_nan()
        & (pl.col(observed_column) if role == "target" else pl.lit(True))
        for col, role in roles.items()
    }
    aggs = []
    for i, col in enumerate(roles):
        kept = pl.col(col).filter(usable[col])
        aggs += [
            kept.mean().alias(f"m{i}"),
            kept.std(ddof=0).alias(f"s{i}"),
            kept.len().cast(pl.Int64).alias(f"n{i}"),
        ]
    per_region = frame.group_by("region").agg(aggs)
    pooled = frame.select(aggs)
    empty = [col for i, col in enumerate(roles) if pooled[f"n{i}"][0] == 0]
    if any(roles[col] == "target" for col in empty):
        raise ValueError(
            f"no observed training rows of the target {empty} in any region: move "
            "DatasetConfig.val_start_utc later or pass a longer feature range"
        )
    parts = []
    for i, (col, role) in enumerate(roles.items()):
        n_pooled = pooled[f"n{i}"][0]
        # A covariate null everywhere in training (e.g. a forecast no region publishes) gets
        # mean 0 and a null std (floored to 1 below): it must not fail the whole build.
        pooled_mean = pooled[f"m{i}"][0] if n_pooled else 0.0
        pooled_std = pooled[f"s{i}"][0] if n_pooled else None
        part = per_region.select(
            pl.col("region"),
            pl.lit(col).alias("feature"),
            pl.lit(role).alias("role"),
            pl.col(f"m{i}").alias("mean"),
            pl.col(f"s{i}").alias("std"),
            pl.col(f"n{i}").alias("n_used"),
        ).with_columns(pl.col("n_used").eq(0).alias("pooled"))
        part = part.with_columns(
            pl.when(pl.col("pooled"))
            .then(pl.lit(pooled_mean, dtype=pl.Float64))
            .otherwise(pl.col("mean"))
            .alias("mean"),
            pl.when(pl.col("pooled"))
            .then(pl.lit(pooled_std, dtype=pl.Float64))
            .otherwise(pl.col("std"))
            .alias("std"),
            pl.when(pl.col("pooled"))
            .then(pl.lit(n_pooled, dtype=pl.Int64))
            .otherwise(pl.col("n_used"))
            .alias("n_used"),
        )
        parts.append(part)
    stats = pl.concat(parts).with_columns(
        (pl.col("std").is_null() | (pl.col("std") < STD_FLOOR)).alias("std_floored")
    )
    stats = stats.with_columns(
        pl.when(pl.col("std_floored")).then(1.0).otherwise(pl.col("std")).alias("std")
    )
    order = pl.DataFrame({"feature": list(roles), "_k": list(range(len(roles)))})
    return (
        stats.join(order, on="feature")
        .sort("region", "_k")
        .drop("_k")
        .select([pl.col(c).cast(t) for c, t in STATS_SCHEMA.items()])
    )


def apply_stats(frame: pl.DataFrame, stats: pl.DataFrame, columns: dict[str, str]) -> pl.DataFrame:
    """Add z-scored Float32 columns: `columns` maps source column -> output column name.

    Regions absent from `stats` raise (statistics must come from the same run).
    """
    unknown = set(frame["region"].unique().to_list()) - set(stats["region"].unique().to_list())
    if unknown:
        raise ValueError(f"no normalisation statistics for regions {sorted(unknown)}")
    exprs = []
    for src, dst in columns.items():
        sub = stats.filter(pl.col("feature") == src)
        # A per-row lookup instead of a join: no extra mean/std columns for every feature.
        mean = pl.col("region").replace_strict(sub["region"], sub["mean"], return_dtype=pl.Float64)
        std = pl.col("region").replace_strict(sub["region"], sub["std"], return_dtype=pl.Float64)
        exprs.append(((pl.col(src) - mean) / std).cast(pl.Float32).alias(dst))
    return frame.with_columns(exprs)


def denormalize(values: pl.Expr, stats: pl.DataFrame, feature: str, region: pl.Expr) -> pl.Expr:
    """Expression mapping z-scores of `feature` back to original units for each row's region."""
    sub = stats.filter(pl.col("feature") == feature)
    mean = region.replace_strict(sub["region"], sub["mean"], return_dtype=pl.Float64)
    std = region.replace_strict(sub["region"], sub["std"], return_dtype=pl.Float64)
    return values.cast(pl.Float64) * std + mean
