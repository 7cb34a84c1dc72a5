"""The ML layer, partitioned by what each artifact means (energy_assets/ml):

- `ml/normalization` (not partitioned): per-region statistics fitted once on the training
  window of the pipeline config (`train_start_utc` .. `val_start_utc`, observed values only).
  The window is part of its code version, so changing it makes the statistics and everything
  normalised with them stale.
- `ml/dataset` (daily): a day's rows normalised with those frozen statistics, masks, and the
  forecast origins of that day with their split (fixed dates) and window quality. A day reads
  `context_length` hours back and `horizon` hours ahead of features as context (io/parquet.py
  `window`), so it is the same whether it is built alone or in a range; a day whose horizon was
  not stored yet is provisional, like the transforms' edge days.
- `ml/ring_segments` (not partitioned): the sequences of the configured split window packed
  and laid out for P ring-attention ranks. A sequence spans many days, so it is one artifact;
  it is built from the features of its window and the current statistics by the same code as
  the `ml/dataset` days (so it never mixes days normalised with different statistics).

Observed weather is a past-only covariate (transform/features.py roles): it is not known
before the hour, and treating it as known in advance would leak the future into the inputs.
"""

from datetime import UTC, date, datetime, timedelta
from math import ceil

import polars as pl
from dagster import (
    AllPartitionMapping,
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    MetadataValue,
    asset,
    multi_asset_check,
)

from energy_assets.checks import results_per_day
from energy_assets.io.parquet import FrameWithMetadata, PartitionLoader, window
from energy_assets.ml.dataset import (
    DatasetConfig,
    MLDataset,
    build_dataset,
    feature_spec,
    fit_normalization,
)
from energy_assets.ml.dataset import check_dataset as check_dataset_rows
from energy_assets.ml.loader import decode_parquet_metadata, encode_parquet_metadata
from energy_assets.ml.normalize import STATS_SCHEMA
from energy_assets.ml.ring import RingConfig, build_ring_segments, check_ring_tokens
from energy_assets.ml.ring_attention import verify_ring_segments
from energy_assets.ml.splits import GRID_EPOCH, SplitBounds
from energy_assets.observe import observed
from energy_assets.partitions import DAILY
from energy_assets.resources import PipelineResource


def _utc(text: str | None) -> datetime | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def dataset_config(pipeline: PipelineResource) -> DatasetConfig:
    """The dataset settings of the pipeline config; the split dates must be fixed (the
    project's Definitions fill them from the config's range when the file leaves them out)."""
    config = DatasetConfig(
        context_length=pipeline.context_length,
        horizon=pipeline.horizon,
        stride=pipeline.stride,
        train_start_utc=_utc(pipeline.train_start_utc),
        val_start_utc=_utc(pipeline.val_start_utc),
        test_start_utc=_utc(pipeline.test_start_utc),
        test_end_utc=_utc(pipeline.test_end_utc),
    )
    if not config.fixed_splits or config.train_start_utc is None:
        raise ValueError(
            "pipeline.train_start_utc, val_start_utc and test_start_utc must be set for the ML "
            "assets (frozen statistics and fixed splits); the project's Definitions derive "
            "them from start/end when the config file leaves them out"
        )
    return config


def _days(first: datetime, end: datetime) -> list[str]:
    """UTC days that hold an hour of [first, end)."""
    count = (end.date() - first.date()).days + (1 if end.time() != datetime.min.time() else 0)
    return [(first.date() + timedelta(days=i)).isoformat() for i in range(count)]


def _load_days(loader: PartitionLoader, days: list[str], what: str) -> list[FrameWithMetadata]:
    missing = [d for d in days if not loader.stored(d)]
    if missing:
        raise FileNotFoundError(
            f"{what} needs {len(missing)} day(s) that are not stored: {missing[0]}..{missing[-1]}"
            f"; materialize them first (energy-assets backfill --from {missing[0]} --to "
            f"{missing[-1]})"
        )
    return [loader.load_with_metadata(d) for d in days]


def load_with_context(
    loader: PartitionLoader, days: list[str], before: int, after: int, what: str
) -> tuple[pl.DataFrame, dict[str, FrameWithMetadata]]:
    """`days` (all stored, else a FileNotFoundError that says what to materialize) and the
    stored days of the `before` / `after` days around them, as one frame (what the IO
    manager's `window` gives an `ml/dataset` run over `days`); also every day read."""
    first, last = date.fromisoformat(days[0]), date.fromisoformat(days[-1])
    around = [(first - timedelta(days=i)).isoformat() for i in range(before, 0, -1)]
    around += [(last + timedelta(days=i)).isoformat() for i in range(1, after + 1)]
    read = dict(zip(days, _load_days(loader, days, what), strict=True))
    read |= {d: loader.load_with_metadata(d) for d in around if loader.stored(d)}
    ordered = dict(sorted(read.items()))
    return pl.concat([p.frame for p in ordered.values()], how="vertical"), ordered


def dataset_of_days(
    features: pl.DataFrame,
    stats: pl.DataFrame,
    config: DatasetConfig,
    start: datetime,
    end: datetime,
    context_days: int,
) -> MLDataset:
    """The `ml/dataset` rows and origins of [start, end) from features that include the days'
    context: the one build of the days, so a range equals its days built one by one, and a
    consumer that builds from features (the forecaster) equals one that reads the days."""
    return build_dataset(
        features,
        feature_spec(),
        config,
        stats=stats,
        grid_start=max(start - timedelta(days=context_days), GRID_EPOCH),
        keep=(start, end),
    )


def ml_assets(context_days: int, horizon_days: int) -> list[AssetsDefinition]:
    """The three ML assets; `ml/dataset` reads `context_days` back and `horizon_days` ahead."""

    @asset(
        key=["ml", "normalization"],
        ins={
            "features": AssetIn(key=["features", "hourly"], partition_mapping=AllPartitionMapping())
        },
        group_name="ml",
        kinds={"parquet", "polars"},
        description="Per-region z-score statistics of the target and covariates, fitted once "
        "on the training window (pipeline.train_start_utc .. val_start_utc): observed target "
        "values, non-null covariates. Every ml/dataset day is normalised with them.",
    )
    @observed
    def ml_normalization(
        context: AssetExecutionContext, pipeline: PipelineResource, features: PartitionLoader
    ) -> FrameWithMetadata:
        config = dataset_config(pipeline)
        bounds = config.bounds()
        days = _days(
            datetime.fromisoformat(bounds.train_start_utc),
            datetime.fromisoformat(bounds.val_start_utc),
        )
        frames = _load_days(features, days, "ml/normalization (training window)")
        stats = fit_normalization(
            pl.concat([f.frame for f in frames], how="vertical"), feature_spec(), config
        )
        context.add_output_metadata(
            {
                "training_window": MetadataValue.text(f"{days[0]}..{days[-1]} ({len(days)} days)"),
                "regions": MetadataValue.int(stats["region"].n_unique()),
                "pooled_statistics": MetadataValue.int(int(stats["pooled"].sum())),
            }
        )
        footer = {"training_window": [days[0], days[-1]], "bounds": bounds.to_dict()}
        return FrameWithMetadata(stats, encode_parquet_metadata(footer))

    @asset(
        key=["ml", "dataset"],
        ins={
            "features": AssetIn(
                key=["features", "hourly"], metadata=window(context_days, horizon_days)
            ),
            "normalization": AssetIn(key=["ml", "normalization"]),
        },
        partitions_def=DAILY,
        group_name="ml",
        backfill_policy=BackfillPolicy.single_run(),
        kinds={"parquet", "mlx"},
        description="A day of normalised series per balancing authority (frozen statistics "
        "from ml/normalization) with per-feature validity masks, is_observed, is_pad and "
        "loss_weight, and the day's forecast origins with their fixed split (train/val/test).",
    )
    @observed
    def ml_dataset(
        context: AssetExecutionContext,
        pipeline: PipelineResource,
        features: pl.DataFrame,
        normalization: FrameWithMetadata,
    ) -> FrameWithMetadata:
        config = dataset_config(pipeline)
        needed = (ceil(config.context_length / 24), ceil(config.horizon / 24))
        if needed[0] > context_days or needed[1] > horizon_days:
            raise ValueError(
                f"pipeline context_length/horizon need {needed} days of context, but the "
                f"definitions declared ({context_days}, {horizon_days}); reload the code "
                "location after changing the config file"
            )
        start, end = context.partition_time_window
        dataset = dataset_of_days(features, normalization.frame, config, start, end, context_days)
        windows = dataset.windows.with_columns(
            pl.col("interval_start_utc").dt.date().cast(pl.String).alias("day")
        )
        for day in context.partition_keys:
            counts = windows.filter(pl.col("day") == day).group_by("split").len().rows()
            context.add_asset_metadata(
                {f"windows_{split}": MetadataValue.int(n) for split, n in counts}
                | {"origins": MetadataValue.int(sum(n for _, n in counts))},
                partition_key=day,
            )
        if "regions_without_statistics" in dataset.metadata:
            context.log.warning(
                "regions left out (no statistics: absent from the training window): "
                f"{dataset.metadata['regions_without_statistics']}"
            )
        frame = dataset.to_frame().with_columns(pl.col("window_split").cast(pl.String))
        footer = {k: v for k, v in dataset.metadata.items() if k != "regions_without_statistics"}
        footer.pop("fitted_in_build", None)
        return FrameWithMetadata(frame, encode_parquet_metadata(footer))

    @asset(
        key=["ml", "ring_segments"],
        ins={
            "features": AssetIn(
                key=["features", "hourly"], partition_mapping=AllPartitionMapping()
            ),
            "normalization": AssetIn(key=["ml", "normalization"]),
        },
        group_name="ml",
        kinds={"parquet", "mlx"},
        description="Sequences of the configured split window (pipeline.ring_split), "
        "balancing authorities packed, padded to a multiple of 2P and laid out for P "
        "ring-attention ranks; per token global position, segment id, position in segment, "
        "masks; permutation, inverse and load balance per layout in the file metadata.",
    )
    @observed
    def ml_ring_segments(
        context: AssetExecutionContext,
        pipeline: PipelineResource,
        features: PartitionLoader,
        normalization: pl.DataFrame,
    ) -> FrameWithMetadata:
        # Built from the features and the current statistics with the same code as the
        # ml/dataset days, not from those days: a day that is stale (normalised with earlier
        # statistics) can then never mix into a sequence.
        config = dataset_config(pipeline)
        days, open_ended = ring_days(config.bounds(), pipeline.ring_split, features)
        parts = _load_days(features, days, f"ml/ring_segments (split {pipeline.ring_split})")
        first = datetime.fromisoformat(days[0]).replace(tzinfo=UTC)
        dataset = build_dataset(
            pl.concat([p.frame for p in parts], how="vertical"),
            feature_spec(),
            config,
            stats=normalization,
            grid_start=first,
        )
        segments = build_ring_segments(
            dataset.series,
            dataset.metadata,
            RingConfig(
                world_size=pipeline.ring_world_size,
                layout=pipeline.ring_layout,
                sequence_length=pipeline.ring_sequence_length,
                split=pipeline.ring_split,
            ),
        )
        segments.metadata["days"] = [days[0], days[-1]]
        context.add_output_metadata(
            {
                f"causal_work_max_over_min_{layout}": MetadataValue.float(
                    round(float(figures["valid_max_over_min"]), 4)
                )
                for layout, figures in segments.metadata["load_balance_worst_sequence"].items()
            }
            | {
                "sequences": MetadataValue.int(int(segments.metadata["n_sequences"])),
                "days": MetadataValue.text(f"{days[0]}..{days[-1]} ({len(days)})"),
                "open_ended": MetadataValue.bool(open_ended),
            }
        )
        return FrameWithMetadata(segments.tokens, encode_parquet_metadata(segments.metadata))

    return [ml_normalization, ml_dataset, ml_ring_segments]


def ring_days(bounds: SplitBounds, split: str, days_of: PartitionLoader) -> tuple[list[str], bool]:
    """The days of the split's period; an open test period ends at the last stored day."""
    starts = {
        "train": bounds.train_start_utc,
        "val": bounds.val_start_utc,
        "test": bounds.test_start_utc,
        "all": bounds.train_start_utc,
    }
    ends = {"train": bounds.val_start_utc, "val": bounds.test_start_utc}
    first = datetime.fromisoformat(starts[split])
    end_text = ends.get(split, bounds.test_end_utc)
    if end_text is not None:
        return _days(first, datetime.fromisoformat(end_text)), False
    stored = [k for k in days_of.keys if k >= first.date().isoformat() and days_of.stored(k)]
    if not stored:
        raise FileNotFoundError(
            f"no features/hourly day stored from {first.date()}: materialize the split first"
        )
    last = date.fromisoformat(stored[-1]) + timedelta(days=1)
    return _days(first, datetime(last.year, last.month, last.day, tzinfo=UTC)), True


def check_result(
    key: list[str],
    name: str,
    passed: bool,
    description: str,
    severity: AssetCheckSeverity = AssetCheckSeverity.ERROR,
    **figures,
) -> AssetCheckResult:
    """A hand-written ML check's result; dict and list figures become JSON metadata."""
    return AssetCheckResult(
        asset_key=key,
        check_name=name,
        passed=bool(passed),
        severity=severity,
        description=description,
        metadata={
            k: MetadataValue.json(v) if isinstance(v, dict | list) else v
            for k, v in figures.items()
        },
    )


@multi_asset_check(
    specs=[
        AssetCheckSpec(
            "statistics_usable",
            asset=["ml", "normalization"],
            blocking=True,
            description="Every statistic finite with a positive std; the target fitted on its "
            "own region's observed rows wherever the region has any.",
        )
    ],
    ins={"normalization": AssetIn(key=["ml", "normalization"])},
)
def ml_normalization_check(normalization: pl.DataFrame):
    stats = normalization
    checks = {
        "schema": list(stats.schema.items()) == list(STATS_SCHEMA.items()),
        "finite": bool(stats["mean"].is_finite().all() and stats["std"].is_finite().all()),
        "positive_std": bool((stats["std"] > 0).all()),
        "one_row_per_region_and_feature": stats.select("region", "feature").is_unique().all(),
        "target_rows_used": bool((stats.filter(pl.col("role") == "target")["n_used"] > 0).all()),
    }
    yield check_result(
        ["ml", "normalization"],
        "statistics_usable",
        all(checks.values()),
        "Statistics usable for normalisation.",
        checks=checks,
    )


@multi_asset_check(
    specs=[
        AssetCheckSpec(
            "masks_splits_and_statistics",
            asset=["ml", "dataset"],
            blocking=True,
            partitions_def=DAILY,
            description="Masks consistent (padding and missing covariates are 0 with their "
            "mask), no target hour shared by two splits, statistics reproduce from observed "
            "training values when the whole training window is checked.",
        )
    ],
    ins={"dataset": AssetIn(key=["ml", "dataset"])},
)
def ml_dataset_check(context: AssetCheckExecutionContext, dataset: FrameWithMetadata):
    outcome = check_dataset_rows(dataset.frame, decode_parquet_metadata(dataset.file_metadata))
    result = check_result(
        ["ml", "dataset"],
        "masks_splits_and_statistics",
        outcome["passed"],
        "Dataset invariants.",
        checks=outcome["checks"],
    )
    yield from results_per_day(context, AssetKey(["ml", "dataset"]), [result])


@multi_asset_check(
    specs=[
        AssetCheckSpec(
            "layout_is_a_bijection_and_masks_match_padding",
            asset=["ml", "ring_segments"],
            blocking=True,
        ),
        AssetCheckSpec(
            "ring_attention_matches_full_attention",
            asset=["ml", "ring_segments"],
            blocking=True,
            description="Ring attention over the stored layout (causal and non-causal) within "
            "1e-5 max abs error of float64 full attention.",
        ),
    ],
    ins={"segments": AssetIn(key=["ml", "ring_segments"])},
)
def ml_ring_segments_check(pipeline: PipelineResource, segments: FrameWithMetadata):
    metadata = decode_parquet_metadata(segments.file_metadata)
    structure = check_ring_tokens(segments.frame, metadata)
    yield check_result(
        ["ml", "ring_segments"],
        "layout_is_a_bijection_and_masks_match_padding",
        structure["passed"],
        "Permutation, inverse, padding and masks.",
        checks=structure["checks"],
    )
    verified = verify_ring_segments(
        segments.frame,
        metadata,
        distributed=pipeline.ring_check_distributed,
        allow_partial=not structure.get("complete", False),
    )
    yield check_result(
        ["ml", "ring_segments"],
        "ring_attention_matches_full_attention",
        verified["passed"],
        f"max abs error {verified['max_abs_err']:.2e} (tolerance {verified['tolerance']:g}), "
        f"{'distributed' if pipeline.ring_check_distributed else 'simulated'} ring.",
        max_abs_err=MetadataValue.float(float(verified["max_abs_err"])),
    )


ML_CHECKS = [ml_normalization_check, ml_dataset_check, ml_ring_segments_check]


def context_days_for(pipeline: PipelineResource) -> tuple[int, int]:
    """Days of features an ml/dataset day reads back and ahead, for these settings."""
    return ceil(pipeline.context_length / 24), ceil(pipeline.horizon / 24)
