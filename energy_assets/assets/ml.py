"""ml/dataset and ml/ring_segments: MLX-ready tensors and ring-attention layouts (energy_assets/ml).

Both are computed over the run's whole partition range and written one file per day with the
run's metadata (normalisation statistics, splits, permutation) in each file's footer, so
materialize them over the training range in one run (they are single-run assets). Observed
weather is used as a past-only covariate: it is not known before the hour, and treating it as
known in advance would leak the future into the inputs.
"""

from datetime import UTC, datetime

import polars as pl
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    BackfillPolicy,
    MetadataValue,
    asset,
    multi_asset_check,
)

from energy_assets.checks import results_per_day
from energy_assets.io.parquet import FrameWithMetadata
from energy_assets.ml.dataset import DatasetConfig, FeatureSpec, MLDataset, build_dataset
from energy_assets.ml.dataset import check_dataset as check_dataset_rows
from energy_assets.ml.loader import decode_parquet_metadata, encode_parquet_metadata
from energy_assets.ml.ring import RingConfig, build_ring_segments, check_ring_tokens
from energy_assets.ml.ring_attention import verify_ring_segments
from energy_assets.observe import observed
from energy_assets.partitions import DAILY
from energy_assets.resources import PipelineResource
from energy_assets.transform.features import FEATURE_COLUMNS

OBSERVED_WEATHER = ("temperature_c", "heating_degree_hours_c", "cooling_degree_hours_c")


def feature_spec() -> FeatureSpec:
    """The features contract's roles, with observed weather moved to past-only (see above)."""
    known = [
        name
        for name, col in FEATURE_COLUMNS.items()
        if col.role == "known_in_advance" and name not in OBSERVED_WEATHER
    ]
    past = [
        name
        for name, col in FEATURE_COLUMNS.items()
        if col.role == "past_only" or name in OBSERVED_WEATHER
    ]
    return FeatureSpec(target="demand_mw", known_in_advance=known, past_only=past)


def _utc(text: str | None) -> datetime | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@asset(
    key=["ml", "dataset"],
    ins={"features": AssetIn(key=["features", "hourly"])},
    partitions_def=DAILY,
    group_name="ml",
    backfill_policy=BackfillPolicy.single_run(),
    kinds={"parquet", "mlx"},
    description="One normalised series per balancing authority plus a window index (forecast "
    "origins) with time-ordered, leak-free train/val/test splits; masks is_observed, is_pad "
    "and loss_weight (1 = counts). Statistics: training split, observed values only.",
)
@observed
def ml_dataset(
    context: AssetExecutionContext, pipeline: PipelineResource, features: pl.DataFrame
) -> FrameWithMetadata:
    config = DatasetConfig(
        context_length=pipeline.context_length,
        horizon=pipeline.horizon,
        stride=pipeline.stride,
        val_start_utc=_utc(pipeline.val_start_utc),
        test_start_utc=_utc(pipeline.test_start_utc),
    )
    dataset = build_dataset(features, feature_spec(), config)
    counts = dataset.windows.group_by("split").len().rows()
    context.add_output_metadata(
        {f"windows_{split}": MetadataValue.int(n) for split, n in counts}
        | {"regions": MetadataValue.int(dataset.series["region"].n_unique())}
    )
    frame = dataset.to_frame().with_columns(pl.col("window_split").cast(pl.String))
    return FrameWithMetadata(frame, encode_parquet_metadata(dataset.metadata))


@asset(
    key=["ml", "ring_segments"],
    ins={"dataset": AssetIn(key=["ml", "dataset"])},
    partitions_def=DAILY,
    group_name="ml",
    backfill_policy=BackfillPolicy.single_run(),
    kinds={"parquet", "mlx"},
    description="Long sequences (balancing authorities packed) padded to a multiple of 2P and "
    "laid out for P ring-attention ranks; per token global position, segment id, position in "
    "segment, masks; permutation and inverse in the file metadata.",
)
@observed
def ml_ring_segments(
    context: AssetExecutionContext, pipeline: PipelineResource, dataset: FrameWithMetadata
) -> FrameWithMetadata:
    metadata = decode_parquet_metadata(dataset.file_metadata)
    series = MLDataset.from_frame(dataset.frame, metadata).series
    segments = build_ring_segments(
        series,
        metadata,
        RingConfig(
            world_size=pipeline.ring_world_size,
            layout=pipeline.ring_layout,
            sequence_length=pipeline.ring_sequence_length,
            split=pipeline.ring_split,
        ),
    )
    balance = segments.metadata["load_balance_first_sequence"]
    context.add_output_metadata(
        {
            f"causal_work_max_over_min_{layout}": MetadataValue.float(
                round(float(figures["scored_max_over_min"]), 4)
            )
            for layout, figures in balance.items()
        }
        | {"sequences": MetadataValue.int(int(segments.metadata["n_sequences"]))}
    )
    return FrameWithMetadata(segments.tokens, encode_parquet_metadata(segments.metadata))


def _result(key: list[str], name: str, passed: bool, description: str, **figures):
    return AssetCheckResult(
        asset_key=key,
        check_name=name,
        passed=passed,
        severity=AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            k: MetadataValue.json(v) if isinstance(v, dict) else v for k, v in figures.items()
        },
    )


@multi_asset_check(
    specs=[
        AssetCheckSpec(
            "masks_splits_and_statistics",
            asset=["ml", "dataset"],
            blocking=True,
            partitions_def=DAILY,
            description="Masks consistent, no target hour shared by two splits, statistics "
            "reproduce from observed training values.",
        )
    ],
    ins={"dataset": AssetIn(key=["ml", "dataset"])},
)
def ml_dataset_check(context: AssetCheckExecutionContext, dataset: FrameWithMetadata):
    outcome = check_dataset_rows(dataset.frame, decode_parquet_metadata(dataset.file_metadata))
    result = _result(
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
            partitions_def=DAILY,
        ),
        AssetCheckSpec(
            "ring_attention_matches_full_attention",
            asset=["ml", "ring_segments"],
            blocking=True,
            partitions_def=DAILY,
            description="Ring attention over the stored layout (causal and non-causal) within "
            "1e-5 max abs error of float64 full attention.",
        ),
    ],
    ins={"segments": AssetIn(key=["ml", "ring_segments"])},
)
def ml_ring_segments_check(
    context: AssetCheckExecutionContext, pipeline: PipelineResource, segments: FrameWithMetadata
):
    metadata = decode_parquet_metadata(segments.file_metadata)
    structure = check_ring_tokens(segments.frame, metadata)
    layout = _result(
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
    attention = _result(
        ["ml", "ring_segments"],
        "ring_attention_matches_full_attention",
        verified["passed"],
        f"max abs error {verified['max_abs_err']:.2e} (tolerance {verified['tolerance']:g}), "
        f"{'distributed' if pipeline.ring_check_distributed else 'simulated'} ring.",
        max_abs_err=MetadataValue.float(float(verified["max_abs_err"])),
    )
    yield from results_per_day(context, AssetKey(["ml", "ring_segments"]), [layout, attention])


ML_CHECKS = [ml_dataset_check, ml_ring_segments_check]
