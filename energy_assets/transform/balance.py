"""The physical identities between a balancing authority's EIA-930 series, measured on a long table.

Belongs here: the names of the series the identities tie together and the functions that measure
how far a long table (one row per region, series and hour, as `align` returns) is from them. No
Dagster; nothing here changes a value (reconciliation is a separate stage).

- Energy balance: D = NG - TI per BA-hour (EIA's sign: TI positive = net export), so the
  residual is D - (NG - TI).
- Interchange antisymmetry: ID_rs = -ID_sr per pair and hour, so the residual is ID_rs + ID_sr.
- Interchange sum: TI = sum over s of ID_rs per BA-hour (over the pairs the BA reports).
- Fuel sum: NG = sum over f of NG_f per BA-hour (over the fuels the BA reports).

The same identities say which series share a BA's clock: demand, net generation, total
interchange, the fuel mix (NG = sum of fuels) and the pairwise interchange (TI = sum of ID) of one
BA (`is_clock_series`). A time fix that moves some of them and not the others breaks an identity
the reported data may satisfy exactly (`transform/quirks.py` moves them together).

A residual "holds" within TOLERANCE_MW or TOLERANCE_SHARE of the scale (|D| for the balance, the
larger |ID| of the pair), whichever is larger: EIA rounds every value to whole MWh, and large BAs
(PJM) report D, NG and TI that balance to a few MW out of 100 GW.
"""

from __future__ import annotations

import polars as pl

from energy_assets.transform.grid import TIME_COL

DEMAND = "demand"
NET_GENERATION = "net_generation"
TOTAL_INTERCHANGE = "total_interchange"
BALANCE_SERIES = (DEMAND, NET_GENERATION, TOTAL_INTERCHANGE)
FUEL_PREFIX = "generation_"
INTERCHANGE_PREFIX = "interchange_to_"
CLOCK_SERIES_GLOB = "demand|net_generation|total_interchange|generation_*|interchange_to_*"
"""Quirk-table spelling of every series that shares a BA's clock (see `is_clock_series`)."""

TOLERANCE_MW = 1.0
TOLERANCE_SHARE = 0.001


def is_balance_series(name: str) -> bool:
    """Demand, net generation, total interchange or a fuel's generation (D = NG - TI, NG = sum)."""
    return name in BALANCE_SERIES or name.startswith(FUEL_PREFIX)


def is_clock_series(name: str) -> bool:
    """A series tied to the BA's balance by an identity: the balance series and the pairwise
    interchange (TI = sum of ID)."""
    return is_balance_series(name) or name.startswith(INTERCHANGE_PREFIX)


def holds(residual: pl.Expr, scale: pl.Expr) -> pl.Expr:
    """|residual| within max(TOLERANCE_MW, TOLERANCE_SHARE * |scale|); null where either is."""
    limit = pl.max_horizontal(pl.lit(TOLERANCE_MW), TOLERANCE_SHARE * scale.abs())
    return residual.abs() <= limit


def balance_table(long: pl.DataFrame) -> pl.DataFrame:
    """One row per (region, hour) that reports demand, net generation or total interchange.

    Columns: region, interval_start_utc, demand, net_generation, total_interchange (null where
    not reported), residual_mw = D - (NG - TI) and `holds` (null unless all three are present).
    `long` has one row per (region, series, hour) (an aligned table; align raw rows first).
    """
    cells = long.filter(pl.col("series").is_in(BALANCE_SERIES) & pl.col("value").is_not_null())
    wide = cells.group_by("region", TIME_COL).agg(
        pl.col("value").filter(pl.col("series") == name).first().alias(name)
        for name in BALANCE_SERIES
    )
    residual = pl.col(DEMAND) - (pl.col(NET_GENERATION) - pl.col(TOTAL_INTERCHANGE))
    return (
        wide.with_columns(residual.alias("residual_mw"))
        .with_columns(holds(pl.col("residual_mw"), pl.col(DEMAND)).alias("holds"))
        .sort("region", TIME_COL)
    )


def antisymmetry_table(long: pl.DataFrame) -> pl.DataFrame:
    """One row per (region, partner, hour) where both BAs report their interchange with the other.

    Columns: region, partner, interval_start_utc, value_mw (ID region->partner), partner_value_mw
    (ID partner->region), residual_mw = their sum, and `holds`. Each pair appears twice, once from
    each side, so a per-region summary sees all of its pairs.
    """
    flows = long.filter(
        pl.col("series").str.starts_with(INTERCHANGE_PREFIX) & pl.col("value").is_not_null()
    ).select(
        "region",
        pl.col("series").str.strip_prefix(INTERCHANGE_PREFIX).alias("partner"),
        TIME_COL,
        pl.col("value").alias("value_mw"),
    )
    mirror = flows.select(
        pl.col("partner").alias("region"),
        pl.col("region").alias("partner"),
        TIME_COL,
        pl.col("value_mw").alias("partner_value_mw"),
    )
    pairs = flows.join(mirror, on=["region", "partner", TIME_COL], how="inner")
    scale = pl.max_horizontal(pl.col("value_mw").abs(), pl.col("partner_value_mw").abs())
    return (
        pairs.with_columns((pl.col("value_mw") + pl.col("partner_value_mw")).alias("residual_mw"))
        .with_columns(holds(pl.col("residual_mw"), scale).alias("holds"))
        .sort("region", "partner", TIME_COL)
    )


def interchange_sum_table(long: pl.DataFrame) -> pl.DataFrame:
    """One row per (region, hour) that reports total interchange and at least one pairwise flow.

    Columns: region, interval_start_utc, total_interchange, interchange_sum (over the reported
    pairs), residual_mw = TI - sum, and `holds` (scale: |TI|).
    """
    return _sum_table(long, TOTAL_INTERCHANGE, INTERCHANGE_PREFIX, "interchange_sum")


def fuel_sum_table(long: pl.DataFrame) -> pl.DataFrame:
    """One row per (region, hour) that reports net generation and at least one fuel.

    Columns: region, interval_start_utc, net_generation, fuel_sum (over the reported fuels),
    residual_mw = NG - sum, and `holds` (scale: |NG|).
    """
    return _sum_table(long, NET_GENERATION, FUEL_PREFIX, "fuel_sum")


def _sum_table(long: pl.DataFrame, total_series: str, prefix: str, sum_name: str) -> pl.DataFrame:
    cells = long.filter(pl.col("value").is_not_null())
    parts = cells.filter(pl.col("series").str.starts_with(prefix))
    summed = parts.group_by("region", TIME_COL).agg(pl.col("value").sum().alias(sum_name))
    total = cells.filter(pl.col("series") == total_series).select(
        "region", TIME_COL, pl.col("value").alias(total_series)
    )
    residual = pl.col(total_series) - pl.col(sum_name)
    return (
        total.join(summed, on=["region", TIME_COL], how="inner")
        .with_columns(residual.alias("residual_mw"))
        .with_columns(holds(pl.col("residual_mw"), pl.col(total_series)).alias("holds"))
        .sort("region", TIME_COL)
    )
