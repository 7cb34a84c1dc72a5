"""aligned/series: every source's raw rows on one UTC hourly grid (transform/align.py)."""

import polars as pl
from dagster import AssetExecutionContext, AssetIn, AssetsDefinition, BackfillPolicy, asset

from energy_assets.io.parquet import window
from energy_assets.observe import observed
from energy_assets.partitions import DAILY
from energy_assets.resources import SourcesResource
from energy_assets.sources.registry import SOURCES
from energy_assets.transform.align import align
from energy_assets.transform.quirks import empty_quirks

# One day each side: a quirk-table time shift can move rows across midnight. A context window,
# read by the IO manager: Dagster sees the same-day dependency only (see io/parquet.py, window).
NEIGHBOUR_DAYS = 1


def aligned_asset(source_names: list[str]) -> AssetsDefinition:
    """aligned/series over the raw tables of these sources (every registered one by default)."""

    @asset(
        key=["aligned", "series"],
        ins={
            name: AssetIn(key=["raw", name], metadata=window(NEIGHBOUR_DAYS, NEIGHBOUR_DAYS))
            for name in source_names
        },
        partitions_def=DAILY,
        group_name="aligned",
        backfill_policy=BackfillPolicy.single_run(),
        kinds={"parquet", "polars"},
        description="Every source on one UTC hourly grid: duplicates resolved, sub-hourly rows "
        "averaged, per-BA quirks applied, missing hours present as nulls.",
    )
    @observed
    def aligned_series(
        context: AssetExecutionContext, sources: SourcesResource, **raw: pl.DataFrame
    ) -> pl.DataFrame:
        start, end = context.partition_time_window
        rows = pl.concat([frame.drop("copy_index") for frame in raw.values()], how="vertical")
        quirks = None if sources.carries_reporting_quirks else empty_quirks()
        return align(rows, start, end, quirks=quirks)

    return aligned_series


aligned_series = aligned_asset(list(SOURCES))
