"""reconciled/series: the balance series of each BA made physically consistent
(transform/reconcile.py): NG - D - TI = 0, TI = sum of the pairwise interchange, ID(A->B) =
-ID(B->A) and NG = sum of the fuel mix, within 1 MW (a blocking contract check).

Its own layer after imputed/series, not a stage of it: the reconciliation needs every BA of an
hour at once (interchange couples neighbours), while imputation works one series at a time over
a +-46-day window (CleaningConfig.context_days); and each hour is reconciled on its own, so a day
reads only the same day of imputed/series. Keeping the layers apart keeps imputed/series'
values and flags as the screens left them, and the reconciled values, their adjustment and the
constraint that moved them beside each other.
"""

import polars as pl
from dagster import AssetExecutionContext, AssetIn, BackfillPolicy, MetadataValue, asset

from energy_assets.io.parquet import window
from energy_assets.observe import observed
from energy_assets.partitions import DAILY
from energy_assets.transform.reconcile import daily_reconcile_metrics, reconcile


@asset(
    key=["reconciled", "series"],
    # the same day only: the lineage (and the planner's up-to-date test) is per day
    ins={"imputed": AssetIn(key=["imputed", "series"], metadata=window(0, 0))},
    partitions_def=DAILY,
    group_name="reconciled",
    backfill_policy=BackfillPolicy.single_run(),
    kinds={"parquet", "polars"},
    description="Demand, net generation, interchange and fuel mix of every BA adjusted "
    "minimally, weighted by the screens' confidence, so the physical identities hold each "
    "hour; every value keeps its imputed input, adjustment (MW) and the constraint that moved it.",
)
@observed
def reconciled_series(context: AssetExecutionContext, imputed: pl.DataFrame) -> pl.DataFrame:
    result = reconcile(imputed)
    for day, metrics in daily_reconcile_metrics(result, context.partition_keys).items():
        context.add_asset_metadata(
            {name: MetadataValue.float(v) for name, v in metrics.items()}, partition_key=day
        )
    return result
