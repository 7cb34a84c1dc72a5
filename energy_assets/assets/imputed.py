"""imputed/series: screened (Ruggles et al. 2020) and gap-filled series (transform/clean.py,
with the pipeline's configuration `cleaning_config`, which the quality benchmark runs too).

The screens and the imputation read up to `CleaningConfig.context_days` (46) days each side of
a day (21 for a day's flags, 25 more for the fill's reach, each hour of it with its own flags),
so each partition loads that window of aligned/series and equals a run over the whole range.
The newest partitions compute with whatever right-hand context exists and are provisional:
re-materialize them once later days arrive (the daily schedule re-runs the trailing window; see
the README, "Revisions").
"""

import polars as pl
from dagster import AssetExecutionContext, AssetIn, BackfillPolicy, MetadataValue, asset

from energy_assets.io.parquet import window
from energy_assets.observe import observed
from energy_assets.partitions import DAILY
from energy_assets.plots import reported_vs_filled_markdown
from energy_assets.transform.clean import CleaningConfig, clean, cleaning_config, daily_quality

CONTEXT_DAYS = CleaningConfig().context_days


@asset(
    key=["imputed", "series"],
    ins={
        # ±context_days (46) of context, read by the IO manager (io/parquet.py, window):
        # Dagster sees the same-day dependency, so a backfill of A..B targets exactly A..B
        "aligned": AssetIn(key=["aligned", "series"], metadata=window(CONTEXT_DAYS, CONTEXT_DAYS))
    },
    partitions_def=DAILY,
    group_name="imputed",
    backfill_policy=BackfillPolicy.single_run(),
    kinds={"parquet", "polars"},
    description="Screened and imputed series; every value says whether it was observed or "
    "which screen flagged it and which method filled it, beside the reported value.",
)
@observed
def imputed_series(context: AssetExecutionContext, aligned: pl.DataFrame) -> pl.DataFrame:
    start, end = context.partition_time_window
    result = clean(aligned, start, end, cleaning_config())
    for day, metrics in daily_quality(result, context.partition_keys).items():
        context.add_asset_metadata(
            {
                "imputed_share": MetadataValue.float(metrics["imputed_share"]),
                "flags": MetadataValue.json(metrics["flags"]),
            },
            partition_key=day,
        )
    chart = reported_vs_filled_markdown(result) if result.height else None
    if chart is not None:
        context.add_output_metadata({"reported_vs_filled": MetadataValue.md(chart)})
    return result
