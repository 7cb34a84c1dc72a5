"""features/hourly: model features per balancing authority and hour (transform/features.py)."""

import polars as pl
from dagster import (
    AssetExecutionContext,
    AssetIn,
    BackfillPolicy,
    TimeWindowPartitionMapping,
    asset,
)

from energy_assets.observe import observed
from energy_assets.partitions import DAILY
from energy_assets.transform.features import FeatureConfig, build_features

HISTORY_DAYS = FeatureConfig().context_days  # 168 h lags and rolling windows, plus margin


@asset(
    key=["features", "hourly"],
    ins={
        "imputed": AssetIn(
            key=["imputed", "series"],
            partition_mapping=TimeWindowPartitionMapping(
                start_offset=-HISTORY_DAYS, end_offset=0, allow_nonexistent_upstream_partitions=True
            ),
            metadata={"allow_missing_partitions": True},
        )
    },
    partitions_def=DAILY,
    group_name="features",
    backfill_policy=BackfillPolicy.single_run(),
    code_version="1",
    kinds={"parquet", "polars"},
    description="Filled demand target with its observed mask, calendar and holiday features, "
    "the day-ahead forecast and weather (known in advance), lags and rolling statistics (past "
    "only).",
)
@observed
def features_hourly(context: AssetExecutionContext, imputed: pl.DataFrame) -> pl.DataFrame:
    start, end = context.partition_time_window
    return build_features(imputed, None, start, end)
