"""The quirk table checked against the identities the reported data satisfy.

Belongs here: measuring what `align` with a quirk table does to the energy balance
(D = NG - TI) and the interchange antisymmetry (ID_rs = -ID_sr) on real raw rows, per table
row (`audit_quirks`) and per BA-hour (`balance_breaks`). No Dagster; the real data come from the
caller (`benchmarks/quirk_balance.py`: a gridemissions scrape or the store's raw/eia930).

"Before" is the raw rows aligned without any fix (duplicates resolved the same way), "after"
the same rows aligned with the whole table, as `aligned/series` delivers them. A fix whose shift
breaks an identity the reported data satisfy exactly is suspect, whatever a lagged correlation
elsewhere suggested: the balance wins, and the table row says why it was changed.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

from energy_assets.transform.align import align
from energy_assets.transform.balance import (
    DEMAND,
    INTERCHANGE_PREFIX,
    antisymmetry_table,
    balance_table,
    interchange_sum_table,
)
from energy_assets.transform.grid import TIME, TIME_COL
from energy_assets.transform.quirks import (
    QUIRK_COLUMNS,
    apply_quirks,
    empty_quirks,
    names_matching,
    series_mask,
)

RULE_COLUMNS = QUIRK_COLUMNS[: QUIRK_COLUMNS.index("source")]  # region .. end_utc
AUDIT_COLUMNS = [
    "row",
    *RULE_COLUMNS,
    "ba_hours",
    "balance_pct_before",
    "balance_pct_after",
    "balance_held_before",
    "balance_held_after",
    "balance_breaks",
    "pair_hours",
    "antisymmetry_mw_before",
    "antisymmetry_mw_after",
    "interchange_sum_held_before",
    "interchange_sum_held_after",
    "verdict",
]
"""balance_pct: sum |D - (NG - TI)| / sum |D| in %, over the BA-hours of the row's regions and
dates with D, NG and TI all reported; balance_held: share of those hours within tolerance
(`balance.holds`); balance_breaks: reported BA-hours that held and no longer hold where their
demand landed (`balance_breaks`); antisymmetry_mw: median |ID_rs + ID_sr| over the hours of
the pairs whose interchange the row moves (the region's side; a median, because one pair that
never agrees, such as PJM-MISO, would dominate a mean); interchange_sum_held: share of the
BA-hours with TI and a pairwise flow where TI = sum of the reported flows holds (same hour)."""


def balance_breaks(
    raw: pl.DataFrame, start: datetime, end: datetime, quirks: pl.DataFrame
) -> pl.DataFrame:
    """Every reported BA-hour in [start, end) whose balance held, followed to the hour its
    demand lands on after alignment with `quirks`.

    Columns: region, interval_start_utc (reported), landed_utc, residual_before_mw,
    residual_after_mw (null where the aligned hour lacks D, NG or TI, or lies outside the range)
    and `broken`: the aligned hour has all three and no longer balances. A table that moves a
    BA's series together leaves no row broken.
    """
    before = balance_table(align(raw, start, end, empty_quirks()))
    after = balance_table(align(raw, start, end, quirks))
    return _followed(before, after, quirks)


def _followed(before: pl.DataFrame, after: pl.DataFrame, quirks: pl.DataFrame) -> pl.DataFrame:
    """`balance_breaks` on the balance tables of the rows aligned without and with `quirks`."""
    held = before.filter(pl.col("holds"))
    probe = held.select(
        TIME_COL,
        "region",
        pl.lit(DEMAND).alias("series"),
        pl.lit(0.0).alias("value"),
    )
    landed = apply_quirks(probe, quirks).get_column(TIME_COL).alias("landed_utc")
    return (
        held.select("region", TIME_COL, pl.col("residual_mw").alias("residual_before_mw"))
        .with_columns(landed)
        .join(
            after.filter(pl.col("holds").is_not_null()).select(
                "region",
                pl.col(TIME_COL).alias("landed_utc"),
                pl.col("residual_mw").alias("residual_after_mw"),
                pl.col("holds").alias("_holds_after"),
            ),
            on=["region", "landed_utc"],
            how="left",
        )
        .with_columns(pl.col("_holds_after").not_().fill_null(False).alias("broken"))
        .drop("_holds_after")
        .sort("region", TIME_COL)
    )


def audit_quirks(
    raw: pl.DataFrame, quirks: pl.DataFrame, start: datetime, end: datetime
) -> pl.DataFrame:
    """One row per quirk-table row (`AUDIT_COLUMNS`): the identities on the raw rows where the
    row's regions and dates apply, before and after alignment with the whole table."""
    before_long = align(raw, start, end, empty_quirks())
    after_long = align(raw, start, end, quirks)
    bal = {"before": balance_table(before_long), "after": balance_table(after_long)}
    pairs = {"before": antisymmetry_table(before_long), "after": antisymmetry_table(after_long)}
    sums = {
        "before": interchange_sum_table(before_long),
        "after": interchange_sum_table(after_long),
    }
    breaks = _followed(bal["before"], bal["after"], quirks)
    regions = sorted(set(raw.get_column("region").drop_nulls().unique()))
    series = sorted(set(raw.get_column("series").drop_nulls().unique()))
    rows = []
    for i, rule in enumerate(quirks.iter_rows(named=True)):  # rules, not data rows
        where = pl.col("region").is_in(names_matching(regions, rule["region"]))
        if rule["start_utc"] is not None:
            where &= pl.col(TIME_COL) >= pl.lit(rule["start_utc"]).cast(TIME)
        if rule["end_utc"] is not None:
            where &= pl.col(TIME_COL) < pl.lit(rule["end_utc"]).cast(TIME)
        moved = [n for n, hit in zip(series, series_mask(series, rule), strict=False) if hit]
        partners = [
            n.removeprefix(INTERCHANGE_PREFIX) for n in moved if n.startswith(INTERCHANGE_PREFIX)
        ]
        b, a = (t.filter(where & pl.col("holds").is_not_null()) for t in bal.values())
        pb, pa = (t.filter(where & pl.col("partner").is_in(partners)) for t in pairs.values())
        sb, sa = (t.filter(where) if partners else t.head(0) for t in sums.values())
        rec = {
            "row": i + 2,  # the CSV line, header = 1
            **{k: rule[k] for k in RULE_COLUMNS},
            "ba_hours": b.height,
            "balance_pct_before": _balance_pct(b),
            "balance_pct_after": _balance_pct(a),
            "balance_held_before": _mean(b, "holds"),
            "balance_held_after": _mean(a, "holds"),
            "balance_breaks": breaks.filter(where & pl.col("broken")).height,
            "pair_hours": pb.height,
            "antisymmetry_mw_before": _median_abs(pb),
            "antisymmetry_mw_after": _median_abs(pa),
            "interchange_sum_held_before": _mean(sb, "holds"),
            "interchange_sum_held_after": _mean(sa, "holds"),
        }
        rec["verdict"] = verdict(rec)
        rows.append(rec)
    schema = {c: pl.Float64 for c in AUDIT_COLUMNS if c.endswith(("before", "after"))}
    schema.update({"row": pl.Int64, "ba_hours": pl.Int64, "balance_breaks": pl.Int64})
    schema.update({"pair_hours": pl.Int64, "amount": pl.Float64})
    schema.update({"start_utc": TIME, "end_utc": TIME})
    schema.update({c: pl.Utf8 for c in AUDIT_COLUMNS if c not in schema})
    return pl.DataFrame(rows, schema=schema).select(AUDIT_COLUMNS)


def verdict(rec: dict) -> str:
    """What a row does to the identities, in words: `breaks the balance` (some BA-hour that
    balanced no longer does) is the one that disqualifies a row."""
    if not rec["ba_hours"] and not rec["pair_hours"]:
        return "no data for its dates"
    said = []
    if rec["balance_breaks"]:
        said.append(f"breaks the balance at {rec['balance_breaks']} BA-hours")
    before, after = rec["antisymmetry_mw_before"], rec["antisymmetry_mw_after"]
    if before is not None and after is not None:
        if after > 1.1 * before + 1.0:
            said.append(f"worsens antisymmetry ({before:.0f} -> {after:.0f} MW)")
        elif after < 0.9 * before - 1.0:
            said.append(f"improves antisymmetry ({before:.0f} -> {after:.0f} MW)")
    held, kept = rec["interchange_sum_held_before"], rec["interchange_sum_held_after"]
    if held is not None and kept is not None and kept < held - 0.01:
        said.append(f"breaks TI = sum of interchange ({100 * held:.0f} -> {100 * kept:.0f} % held)")
    return "; ".join(said) or "keeps the identities"


def _balance_pct(table: pl.DataFrame) -> float | None:
    if table.height == 0:
        return None
    demand = float(table.get_column(DEMAND).abs().sum())
    residual = float(table.get_column("residual_mw").abs().sum())
    return 100.0 * residual / demand if demand else None


def _mean(table: pl.DataFrame, column: str) -> float | None:
    return None if table.height == 0 else float(table.get_column(column).cast(pl.Float64).mean())


def _median_abs(table: pl.DataFrame) -> float | None:
    if table.height == 0:
        return None
    return float(np.median(np.abs(table.get_column("residual_mw").to_numpy())))
