"""features/hourly: model features per balancing authority and hour (transform/features.py)."""

import polars as pl
from dagster import AssetExecutionContext, AssetIn, BackfillPolicy, asset

from energy_assets.io.parquet import window
from energy_assets.observe import observed
from energy_assets.partitions import DAILY
from energy_assets.transform.features import FeatureConfig, build_features

HISTORY_DAYS = FeatureConfig().context_days  # 168 h lags and rolling windows, plus margin


@asset(
    key=["features", "hourly"],
    ins={
        # look-back only: a context window read by the IO manager (io/parquet.py, window)
        "imputed": AssetIn(key=["imputed", "series"], metadata=window(HISTORY_DAYS, 0))
    },
    partitions_def=DAILY,
    group_name="features",
    backfill_policy=BackfillPolicy.single_run(),
    kinds={"parquet", "polars"},
    description="Filled demand target with its observed mask, calendar and holiday features, "
    "the day-ahead forecast and weather (known in advance), lags and rolling statistics (past "
    "only).",
)
@observed
def features_hourly(context: AssetExecutionContext, imputed: pl.DataFrame) -> pl.DataFrame:
    start, end = context.partition_time_window
    return build_features(imputed, None, start, end)
