"""The forecaster and its evaluation: whole-range artifacts over the split windows.

- `ml/forecaster` (not partitioned): the day-ahead model (energy_assets/ml/forecaster.py)
  trained on the training and validation window (train_start_utc .. test_start_utc): nothing
  of the test period is read, so no test target or statistic can reach the weights. Its
  tensors are built from `features/hourly` of the window (with the stored context days the
  `ml/dataset` days read) and the current `ml/normalization` by the same code as the
  `ml/dataset` days (`assets.ml.dataset_of_days`), as `ml/ring_segments` is: it never reads
  those days, so it cannot mix days normalised with earlier statistics (two overlapping
  backfills may move the statistics while the days are being rebuilt). With
  `pipeline.forecaster_world_size` > 1 it trains on that many ring-attention processes; 1 is
  full attention in this process.
  Stored as a parquet table of named flat float32 arrays (`weights_table`) with the config, the
  input names, the statistics fingerprint and the data version (the features days read and the
  statistics) in the file metadata. Why a table and not a safetensors file beside the data
  folder: the IO manager then writes it like every other asset (atomically, content-hashed,
  data-versioned, to local disk or an object store through the same fsspec path) and its
  contract is checked; `forecaster.export_weights_safetensors` writes the same arrays and
  metadata to safetensors for MLX tools, and both round trips are tested.
- `ml/forecast_eval` (not partitioned): the test split scored per balancing authority: MAPE of
  the model, of the BA's own day-ahead forecast (EIA DF) and of the seasonal-naive forecast
  (same hour one week before), on the same hours. Built the same way from the test period's
  features days plus the stored context days before it; refuses a model trained with other
  statistics than the current ones.
"""

from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
from dagster import (
    AllPartitionMapping,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    MetadataValue,
    asset,
    multi_asset_check,
)

from energy_assets.assets.ml import (
    check_result,
    context_days_for,
    dataset_config,
    dataset_of_days,
    load_with_context,
)
from energy_assets.io.parquet import FrameWithMetadata, PartitionLoader
from energy_assets.ml import forecaster as fc
from energy_assets.ml.loader import (
    decode_parquet_metadata,
    encode_parquet_metadata,
    load_dataset_tensors,
)
from energy_assets.observe import observed
from energy_assets.plots import forecast_eval_markdown, training_curve_markdown
from energy_assets.resources import PipelineResource

GROUP = "forecast"


def forecaster_config(pipeline: PipelineResource) -> fc.ForecasterConfig:
    """The model and budget of the pipeline config (`forecaster_*` keys)."""
    return fc.ForecasterConfig(
        context_hours=pipeline.forecaster_context_hours,
        horizon=pipeline.horizon,
        d_model=pipeline.forecaster_d_model,
        n_heads=pipeline.forecaster_heads,
        n_layers=pipeline.forecaster_layers,
        steps=pipeline.forecaster_steps,
        batch_size=pipeline.forecaster_batch_size,
        learning_rate=pipeline.forecaster_learning_rate,
        eval_every=max(1, pipeline.forecaster_steps // 10),
        seed=pipeline.forecaster_seed,
        world_size=pipeline.forecaster_world_size,
        layout=pipeline.ring_layout,
    )


def _day_range(first: date, end: date) -> list[str]:
    return [(first + timedelta(days=i)).isoformat() for i in range((end - first).days)]


def series_of_days(
    pipeline: PipelineResource,
    features: PartitionLoader,
    normalization: pl.DataFrame,
    days: list[str],
    what: str,
) -> tuple[fc.SeriesArrays, dict[str, FrameWithMetadata]]:
    """The `ml/dataset` rows of `days` as forecaster arrays, built from `features/hourly` (the
    days and their stored context) and the current statistics by the code that builds the
    `ml/dataset` days, not read from those days: a day normalised with earlier statistics can
    then never mix in. Also returns every features day read (for the data version)."""
    config = dataset_config(pipeline)
    before, after = context_days_for(pipeline)
    frame, read = load_with_context(features, days, before, after, what)
    start = datetime.fromisoformat(days[0]).replace(tzinfo=UTC)
    end = datetime.fromisoformat(days[-1]).replace(tzinfo=UTC) + timedelta(days=1)
    dataset = dataset_of_days(frame, normalization, config, start, end, before)
    tensors = load_dataset_tensors(dataset.to_frame(), dataset.metadata)
    return fc.SeriesArrays.from_tensors(tensors), read


def _utc_day(text: str) -> date:
    return datetime.fromisoformat(text).astimezone(UTC).date()


@asset(
    key=["ml", "forecaster"],
    ins={
        "normalization": AssetIn(key=["ml", "normalization"]),
        "features": AssetIn(key=["features", "hourly"], partition_mapping=AllPartitionMapping()),
    },
    group_name=GROUP,
    kinds={"parquet", "mlx"},
    description="Day-ahead demand forecaster (causal transformer over [context; 24 h horizon], "
    "ring attention over pipeline.forecaster_world_size processes) trained on the training and "
    "validation window, built from features/hourly and the current ml/normalization like the "
    "ml/dataset days; weights as a table of named float32 arrays with config, input names, "
    "statistics fingerprint and data version in the file metadata.",
)
@observed
def ml_forecaster(
    context: AssetExecutionContext,
    pipeline: PipelineResource,
    normalization: pl.DataFrame,
    features: PartitionLoader,
) -> FrameWithMetadata:
    config = forecaster_config(pipeline)
    bounds = dataset_config(pipeline).bounds()
    days = _day_range(_utc_day(bounds.train_start_utc), _utc_day(bounds.test_start_utc))
    series, read = series_of_days(
        pipeline, features, normalization, days, "ml/forecaster (train + val window)"
    )
    fingerprint = series.metadata["statistics_fingerprint"]
    result = fc.train_forecaster(series, config)
    table = fc.weights_table(result.model)
    known = [series.metadata["feature_columns"]["source_names"][c] for c in
             series.metadata["feature_columns"]["known"]]  # fmt: skip
    past = [series.metadata["feature_columns"]["source_names"][c] for c in
            series.metadata["feature_columns"]["past"]]  # fmt: skip
    curve = fc.training_curve(result)
    footer: dict[str, Any] = {
        "schema_version": fc.FORECASTER_SCHEMA_VERSION,
        "config": config.model_dump(mode="json"),
        "n_inputs": fc.n_inputs(len(known), len(past)),
        "input_names": fc.input_names(known, past),
        "known_in_advance": known,
        "past_only": past,
        "regions": series.metadata["regions"],
        "statistics_fingerprint": fingerprint,
        "data_version": fc.data_version(
            [p.file_metadata for p in read.values()], list(read), fingerprint
        ),
        "training_days": [days[0], days[-1]],
        "features_days": [next(iter(read)), next(reversed(read))],
        "windows": {s: int(series.windows(s).size) for s in ("train", "val")},
        "curve": curve,
        "train_seconds": round(result.seconds, 3),
        "tokens_per_s": round(result.tokens_per_s, 1),
        "ranks": result.ranks,
    }
    chart = training_curve_markdown(curve["train_loss"], curve["val_loss"])
    context.add_output_metadata(
        {
            "final_train_loss": MetadataValue.float(float(result.losses[-1]))
            if result.losses
            else MetadataValue.float(float("nan")),
            "val_loss": MetadataValue.float(float(result.val_losses[-1][1]))
            if result.val_losses
            else MetadataValue.float(float("nan")),
            "train_seconds": MetadataValue.float(round(result.seconds, 3)),
            "tokens_per_s": MetadataValue.float(round(result.tokens_per_s, 1)),
            "world_size": MetadataValue.int(config.world_size),
            "parameters": MetadataValue.int(
                int(sum(np.prod(np.frombuffer(b, "<f4").shape) for b in table["values"]))
            ),
            "data_version": MetadataValue.text(footer["data_version"]),
            "training_days": MetadataValue.text(f"{days[0]}..{days[-1]} ({len(days)} days)"),
        }
        | ({"training_curve": MetadataValue.md(chart)} if chart else {})
    )
    return FrameWithMetadata(table, encode_parquet_metadata(footer))


def eval_days(pipeline: PipelineResource, features: PartitionLoader) -> tuple[list[str], int]:
    """The test period's days and their stored context days (ml/forecaster.evaluation_days),
    read from features/hourly."""
    bounds = dataset_config(pipeline).bounds()
    return fc.evaluation_days(
        bounds.test_start_utc,
        bounds.test_end_utc,
        pipeline.forecaster_context_hours,
        features.stored,
        features.keys,
    )


@asset(
    key=["ml", "forecast_eval"],
    ins={
        "forecaster": AssetIn(key=["ml", "forecaster"]),
        "normalization": AssetIn(key=["ml", "normalization"]),
        "features": AssetIn(key=["features", "hourly"], partition_mapping=AllPartitionMapping()),
    },
    group_name=GROUP,
    kinds={"parquet", "mlx"},
    description="Test split scored per balancing authority: MAPE (%) of ml/forecaster, of the "
    "BA's own day-ahead forecast (EIA DF) and of the seasonal-naive forecast (same hour one "
    "week before), on the same hours (target observed, all available forecasts present).",
)
@observed
def ml_forecast_eval(
    context: AssetExecutionContext,
    pipeline: PipelineResource,
    forecaster: FrameWithMetadata,
    normalization: pl.DataFrame,
    features: PartitionLoader,
) -> FrameWithMetadata:
    stored = decode_parquet_metadata(forecaster.file_metadata)
    model, config = fc.model_from_table(forecaster.frame, stored)
    days, n_context = eval_days(pipeline, features)
    series, _ = series_of_days(
        pipeline, features, normalization, days, "ml/forecast_eval (test window)"
    )
    if series.metadata["statistics_fingerprint"] != stored["statistics_fingerprint"]:
        raise ValueError(
            "ml/forecaster was trained with other statistics (or dataset settings) than the "
            "current ml/normalization: re-materialize ml/forecaster (the UI marks it stale), "
            "then this asset"
        )
    scores, rows = fc.evaluate(model, series, config)
    footer = {
        "test_days": [days[n_context], days[-1]],
        "context_days": n_context,
        "model_data_version": stored["data_version"],
        "regions": series.metadata["regions"],
        "metric": "MAPE % over hours with the target observed and every available forecast",
    }
    chart = forecast_eval_markdown(scores, rows)
    means = {c: scores[c].mean() for c in fc.EVAL_SCHEMA if c.startswith("mape_")}
    context.add_output_metadata(
        {
            f"mean_{c}": MetadataValue.float(float(v) if v is not None else float("nan"))
            for c, v in means.items()
        }
        | {
            "test_days": MetadataValue.text(f"{days[n_context]}..{days[-1]}"),
            "scores": MetadataValue.json(scores.to_dicts()),
        }
        | ({"evaluation": MetadataValue.md(chart)} if chart else {})
    )
    return FrameWithMetadata(scores, encode_parquet_metadata(footer))


@multi_asset_check(
    specs=[
        AssetCheckSpec(
            "weights_finite_and_loss_finite",
            asset=["ml", "forecaster"],
            blocking=True,
            description="Every stored parameter finite, the stored table rebuilds the model, "
            "and the training and validation losses are finite.",
        )
    ],
    ins={"forecaster": AssetIn(key=["ml", "forecaster"])},
)
def ml_forecaster_check(forecaster: FrameWithMetadata):
    meta = decode_parquet_metadata(forecaster.file_metadata)
    arrays = fc.named_arrays(forecaster.frame)
    curve = meta["curve"]
    losses = [*curve["train_loss"], *(v for _, v in curve["val_loss"])]
    checks = {
        "weights_finite": all(bool(np.isfinite(a).all()) for a in arrays.values()),
        "losses_finite": bool(losses) and all(np.isfinite(losses)),
    }
    try:
        fc.model_from_table(forecaster.frame, meta)
        checks["rebuilds"] = True
    except ValueError:
        checks["rebuilds"] = False
    yield check_result(
        ["ml", "forecaster"],
        "weights_finite_and_loss_finite",
        all(checks.values()),
        "Stored model usable.",
        AssetCheckSeverity.ERROR,
        checks=checks,
    )


@multi_asset_check(
    specs=[
        AssetCheckSpec(
            "complete_per_region_and_finite",
            asset=["ml", "forecast_eval"],
            blocking=True,
            description="One row per region of the dataset, some region scored, the model's "
            "MAPE finite wherever a region has test windows (none: a BA without observed demand "
            "in the test period, e.g. a generation-only BA; listed as `unscored`), the "
            "baselines' finite where present (null: a BA without a day-ahead forecast, or no "
            "week of history before the test period loaded).",
        ),
        AssetCheckSpec(
            "model_beats_seasonal_naive",
            asset=["ml", "forecast_eval"],
            description="Warns for the regions where the model's MAPE is not below the "
            "seasonal-naive MAPE (expected on a tiny budget).",
        ),
    ],
    ins={"scores": AssetIn(key=["ml", "forecast_eval"])},
)
def ml_forecast_eval_check(scores: FrameWithMetadata):
    meta = decode_parquet_metadata(scores.file_metadata)
    table = scores.frame
    df = table["mape_day_ahead_forecast"].drop_nulls()
    scored = table.filter(pl.col("n_windows") > 0)
    unscored = table.filter(pl.col("n_windows") == 0)["region"].to_list()
    checks = {
        "one_row_per_region": sorted(table["region"].to_list()) == sorted(meta["regions"]),
        "some_region_scored": scored.height > 0 and bool((scored["n_hours"] > 0).all()),
        "model_finite_where_scored": bool(scored["mape_model"].is_finite().all())
        and scored["mape_model"].null_count() == 0,
        "seasonal_naive_finite_where_present": bool(
            table["mape_seasonal_naive"].drop_nulls().is_finite().all()
        ),
        "day_ahead_finite_where_present": bool(df.is_finite().all()),
    }
    yield check_result(
        ["ml", "forecast_eval"],
        "complete_per_region_and_finite",
        all(checks.values()),
        f"Evaluation complete; {len(unscored)} region(s) without test windows.",
        AssetCheckSeverity.ERROR,
        checks=checks,
        unscored=unscored,
    )
    losing = scored.filter(
        ~(pl.col("mape_model") < pl.col("mape_seasonal_naive")).fill_null(False)
    )["region"]
    yield check_result(
        ["ml", "forecast_eval"],
        "model_beats_seasonal_naive",
        losing.len() == 0,
        f"model worse than seasonal naive in {losing.len()} of {table.height} regions",
        AssetCheckSeverity.WARN,
        losing=losing.to_list(),
    )


FORECAST_ASSETS = [ml_forecaster, ml_forecast_eval]
FORECAST_CHECKS = [ml_forecaster_check, ml_forecast_eval_check]
