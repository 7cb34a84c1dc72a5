"""imputed/series: screened (Ruggles et al. 2020) and gap-filled series (transform/clean.py).

The screens look up to `CleaningConfig.context_days` (21) days each side of a day, so each
partition loads that window of aligned/series. The newest partitions compute with whatever right-
hand context exists and are provisional: re-materialize them once later days arrive (the daily
schedule re-runs the trailing window; see the README, "Revisions").
"""

import polars as pl
from dagster import (
    AssetExecutionContext,
    AssetIn,
    BackfillPolicy,
    MetadataValue,
    TimeWindowPartitionMapping,
    asset,
)

from energy_assets.observe import observed
from energy_assets.partitions import DAILY
from energy_assets.transform.clean import CleaningConfig, clean

CONTEXT_DAYS = CleaningConfig().context_days


@asset(
    key=["imputed", "series"],
    ins={
        "aligned": AssetIn(
            key=["aligned", "series"],
            partition_mapping=TimeWindowPartitionMapping(
                start_offset=-CONTEXT_DAYS,
                end_offset=CONTEXT_DAYS,
                allow_nonexistent_upstream_partitions=True,
            ),
            metadata={"allow_missing_partitions": True},
        )
    },
    partitions_def=DAILY,
    group_name="imputed",
    backfill_policy=BackfillPolicy.single_run(),
    code_version="1",
    kinds={"parquet", "polars"},
    description="Screened and imputed series; every value says whether it was observed or "
    "which screen flagged it and which method filled it, beside the reported value.",
)
@observed
def imputed_series(context: AssetExecutionContext, aligned: pl.DataFrame) -> pl.DataFrame:
    start, end = context.partition_time_window
    result = clean(aligned, start, end)
    summary = (
        result.group_by("flag").len().sort("len", descending=True).rows() if result.height else []
    )
    context.add_output_metadata(
        {
            "imputed_share": MetadataValue.float(
                round(1.0 - float(result["is_observed"].mean() or 0.0), 5) if result.height else 0.0
            ),
            "flags": MetadataValue.json({flag: n for flag, n in summary}),
        }
    )
    return result
