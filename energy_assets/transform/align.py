"""Alignment: parsed raw long tables -> one row per (region, series, UTC hour) on a complete grid.

Belongs here: the rules that turn whatever the sources delivered (duplicates, revisions,
sub-hourly rows, gaps, documented reporting quirks) into the platform's hourly grid. Nothing here
judges whether a value is plausible; that is `screen`'s job.

Rules, in order:

1. Quirks: `quirks.apply_quirks` with the packaged table (or the one given) moves, flips or
   scales rows, judged on their reported stamps.
2. One reported hour per BA-hour: where a shift lands a BA's values on an hour that holds
   others of the same BA, its balance series (demand, net generation, total interchange, fuels;
   `balance.is_balance_series`) are all taken from the same reported hour, the unmoved one first, so
   the balance the BA reported is kept (`_one_reported_hour_per_ba_hour`).
3. Duplicates of one source interval (same region, series, interval_start_utc), resolved by
   priority: a row a quirk did not move beats a moved one (where a time fix ends, the moved
   value collides with a correctly stamped one); then a value beats a null (a later fetch that
   lost a value is more likely a glitch than a retraction); then, when the input has
   `fetched_at_utc`, the latest fetch wins (a revision replaces what it revises). Rows still
   tied and disagreeing are averaged (order-independent, so the result does not depend on how
   partitions were concatenated) and the hour is marked `is_duplicate_resolved`. Identical
   duplicates collapse silently.
4. Sub-hourly rows (5- or 15-minute data such as CAISO RTM) are averaged into the hour they start
   in; `n_reported` counts the distinct reported intervals with a value that fed the hour
   (1 for hourly data, up to 12 for 5-minute data, 0 = missing).
5. The grid: every (region, series) present anywhere in the input gets every hour in
   [start, end), missing hours as null. Input rows outside [start, end) only matter through
   quirk shifts that move them in; pass neighbouring days when a fix shifts across midnight.

The input is UTC already, so US daylight-saving days are ordinary 24-hour UTC days here.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

from energy_assets.transform.grid import (
    HOUR_US,
    TIME,
    TIME_COL,
    as_utc,
    check_time_column,
    encode,
    matrix_to_long,
    require_columns,
)
from energy_assets.transform.quirks import QuirkEffects, balance_mask, load_quirks, quirk_effects

RAW_COLUMNS = [TIME_COL, "region", "series", "value", "units", "source"]
ALIGNED_SCHEMA = {
    TIME_COL: TIME,
    "region": pl.Utf8,
    "series": pl.Utf8,
    "value": pl.Float64,
    "units": pl.Utf8,
    "source": pl.Utf8,
    "n_reported": pl.Int32,
    "is_duplicate_resolved": pl.Boolean,
    "is_quirk_adjusted": pl.Boolean,
}
KEYS = ["region", "series"]


def align(
    raw: pl.DataFrame,
    start: datetime,
    end: datetime,
    quirks: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Raw long rows -> exactly one row per (region, series, hour) for every hour in [start, end).

    `raw` is any concatenation of parsed raw tables (columns interval_start_utc, region, series,
    value, units, source; optional fetched_at_utc), typically the target day plus its neighbours.
    `quirks=None` applies the packaged `data/quirks.csv`; pass `quirks.empty_quirks()` to apply
    none. Output columns and dtypes: `ALIGNED_SCHEMA`, sorted by region, series, time.
    """
    start, end = as_utc(start, "start"), as_utc(end, "end")
    if end <= start:
        raise ValueError(f"align: end {end.isoformat()} must be after start {start.isoformat()}")
    require_columns(raw, RAW_COLUMNS, "align input")
    raw = check_time_column(raw, "align input")
    has_fetch = "fetched_at_utc" in raw.columns
    raw = raw.filter(pl.col(TIME_COL).is_not_null())
    unnamed = raw.select((pl.col("region").is_null() | pl.col("series").is_null()).sum()).item()
    if unnamed:
        raise ValueError(
            f"align input has {unnamed} rows without a region or series; the parser must name "
            f"every row (EIA respondent / CAISO area / weather point and a series name)"
        )
    table = load_quirks() if quirks is None else quirks

    # Encode once: strings become small integer codes (sorted, so key order = name order);
    # grouping and hashing 2-string keys is what makes naive code slow and memory-hungry.
    regions, r_code = encode(raw.get_column("region").cast(pl.Utf8))
    series, s_code = encode(raw.get_column("series").cast(pl.Utf8))
    reported = raw.get_column(TIME_COL).dt.epoch("us").to_numpy()
    fx = quirk_effects(reported, r_code, s_code, regions, series, table)
    us = reported + fx.shift_us
    kept = _one_reported_hour_per_ba_hour(reported, us, r_code, balance_mask(series)[s_code])
    if not kept.all():
        raw, reported, us, r_code, s_code = (
            raw.filter(pl.Series(kept)),
            reported[kept],
            us[kept],
            r_code[kept],
            s_code[kept],
        )
        fx = QuirkEffects(fx.shift_us[kept], fx.factor[kept], fx.touched[kept])
    combo = r_code * (len(series) + 1) + s_code
    present = np.flatnonzero(np.bincount(combo, minlength=(len(regions) + 1) * (len(series) + 1)))
    key_of = np.full((len(regions) + 1) * (len(series) + 1), -1, dtype=np.int64)
    key_of[present] = np.arange(len(present))
    key = key_of[combo]
    keys = _key_table(raw, present, key, regions, series)

    s_us = int(start.timestamp() * 1_000_000)
    e_us = int(end.timestamp() * 1_000_000)
    inside = (us >= s_us) & (us < e_us)
    frame = pl.DataFrame(
        {
            "_key": key[inside],
            "_us": us[inside],
            "value": raw.get_column("value").cast(pl.Float64).fill_nan(None).filter(inside)
            * pl.Series(fx.factor[inside]),
            "is_quirk_adjusted": fx.touched[inside],
        }
    )
    if has_fetch:
        frame = frame.with_columns(raw.get_column("fetched_at_utc").filter(inside))
    intervals = _resolve_duplicates(frame, has_fetch)
    hourly = _to_hours(intervals)

    n_hours, n_keys = (e_us - s_us) // HOUR_US, keys.height
    row = ((hourly.get_column("_hour") - s_us) // HOUR_US).to_numpy()
    col = hourly.get_column("_key").to_numpy().astype(np.int64)
    value = np.full((n_hours, n_keys), np.nan)
    value[row, col] = hourly.get_column("value").fill_null(np.nan).to_numpy()
    count = np.zeros((n_hours, n_keys), dtype=np.int32)
    count[row, col] = hourly.get_column("n_reported").to_numpy()
    resolved = np.zeros((n_hours, n_keys), dtype=bool)
    resolved[row, col] = hourly.get_column("is_duplicate_resolved").to_numpy()
    adjusted = np.zeros((n_hours, n_keys), dtype=bool)
    adjusted[row, col] = hourly.get_column("is_quirk_adjusted").to_numpy()
    out = matrix_to_long(
        keys,
        s_us,
        {
            "value": value,
            "n_reported": count,
            "is_duplicate_resolved": resolved,
            "is_quirk_adjusted": adjusted,
        },
    )
    return out.select(list(ALIGNED_SCHEMA)).cast(ALIGNED_SCHEMA)


def _one_reported_hour_per_ba_hour(
    reported: np.ndarray, landed: np.ndarray, region: np.ndarray, balance: np.ndarray
) -> np.ndarray:
    """Which rows to keep so that each BA-hour's balance series come from one reported hour.

    Where a shift lands values on an hour that also holds other values of the same BA (the end
    of a fix's range, or two fixes over each other), resolving each series on its own could take
    demand from one reported hour and net generation from another, and break D = NG - TI. The
    BA-hour takes D, NG, TI and the fuels from the unmoved hour when any of their rows is there
    (value or null), else from the latest reported hour landing on it. Pairwise interchange is
    left to each series: a lag of the interchange against the BA's clock (a quirk-table row) is
    meant to land it elsewhere. Only the BA-hours a shift landed on are examined."""
    keep = np.ones(len(reported), dtype=bool)
    moved = balance & (landed != reported)
    if not moved.any():
        return keep
    landed_h, reported_h = landed // HOUR_US, reported // HOUR_US
    lo = int(landed_h.min())
    cell = region.astype(np.int64) * (int(landed_h.max()) - lo + 1) + (landed_h - lo)
    rows = np.flatnonzero(balance & np.isin(cell, np.unique(cell[moved])))
    # smaller rank wins: unmoved hour first, then the latest reported hour
    rank = np.where(reported_h[rows] == landed_h[rows], np.iinfo(np.int64).min, -reported_h[rows])
    order = np.lexsort((rank, cell[rows]))
    cells, first = np.unique(cell[rows][order], return_index=True)
    winner = reported_h[rows][order][first]
    keep[rows] = reported_h[rows] == winner[np.searchsorted(cells, cell[rows])]
    return keep


def _key_table(
    raw: pl.DataFrame,
    present: np.ndarray,
    key: np.ndarray,
    regions: list[str],
    series: list[str],
) -> pl.DataFrame:
    """One row per (region, series) in key order with its units and source; refuses a series
    reported in several units."""
    per_key = (
        pl.DataFrame({"_key": key})
        .with_columns(raw.get_column("units").cast(pl.Utf8), raw.get_column("source").cast(pl.Utf8))
        .group_by("_key")
        .agg(
            pl.col("units").drop_nulls().min(),
            pl.col("units").drop_nulls().max().alias("_units_max"),
            pl.col("source").drop_nulls().min(),
        )
        .sort("_key")
    )
    n_series = len(series) + 1
    names_r = [*regions, None]
    names_s = [*series, None]
    table = pl.DataFrame(
        {
            "region": [names_r[c // n_series] for c in present],
            "series": [names_s[c % n_series] for c in present],
        },
        schema={"region": pl.Utf8, "series": pl.Utf8},
    ).with_columns(per_key.select("units", "source", "_units_max"))
    _check_units(table)
    return table.drop("_units_max")


def _check_units(keys: pl.DataFrame) -> None:
    clash = keys.filter(pl.col("units") != pl.col("_units_max"))
    if clash.height:
        row = clash.row(0, named=True)
        raise ValueError(
            f"align: region={row['region']!r} series={row['series']!r} arrives in several units "
            f"(e.g. {row['units']!r} and {row['_units_max']!r}); convert to one unit in the "
            f"parser before aligning ({clash.height} series affected)"
        )


def _resolve_duplicates(frame: pl.DataFrame, has_fetch: bool) -> pl.DataFrame:
    """One row per reported interval (key, exact timestamp); see the module rules.

    Only the duplicated intervals go through the ranking; the rest pass straight through.
    """
    key = ["_key", "_us"]
    dup = _duplicated(frame)
    single = frame.filter(~dup).select(
        *key,
        "value",
        pl.lit(False).alias("is_duplicate_resolved"),
        "is_quirk_adjusted",
    )
    if not dup.any():
        return single
    ranked = frame.filter(dup).with_columns(
        # 0 = unmoved value, 1 = unmoved null, 2 = moved value, 3 = moved null
        (
            pl.col("is_quirk_adjusted").cast(pl.Int8) * 2 + pl.col("value").is_null().cast(pl.Int8)
        ).alias("_rank"),
        (
            pl.col("fetched_at_utc").cast(TIME).dt.epoch("us").fill_null(-(2**62))
            if has_fetch
            else pl.lit(0, dtype=pl.Int64)
        ).alias("_fetch"),
    )
    best = ranked.group_by(key).agg(
        pl.col("value").drop_nulls().n_unique().alias("_n_distinct"),
        pl.col("_rank").min().alias("_best_rank"),
    )
    ranked = ranked.join(best, on=key, how="left").filter(pl.col("_rank") == pl.col("_best_rank"))
    latest = ranked.group_by(key).agg(pl.col("_fetch").max().alias("_best_fetch"))
    ranked = ranked.join(latest, on=key, how="left").filter(
        pl.col("_fetch") == pl.col("_best_fetch")
    )
    resolved = ranked.group_by(key).agg(
        pl.col("value").mean(),
        (pl.col("_n_distinct").first() > 1).alias("is_duplicate_resolved"),
        pl.col("is_quirk_adjusted").any(),
    )
    return pl.concat([single, resolved.select(single.columns)])


def _duplicated(frame: pl.DataFrame) -> pl.Series:
    """Rows whose (key, exact timestamp) occurs more than once.

    A count per (key, hour) cell settles most rows in O(rows): a row alone in its hour is unique.
    Only rows sharing an hour (duplicates, or sub-hourly intervals) are hashed.
    """
    if frame.height == 0:
        return pl.Series("dup", [], dtype=pl.Boolean)
    us = frame.get_column("_us").to_numpy()
    keys = frame.get_column("_key").to_numpy().astype(np.int64)
    lo = int(us.min())
    hour = (us - lo) // HOUR_US
    n_hours, n_keys = int(hour.max()) + 1, int(keys.max()) + 1
    shared = np.ones(frame.height, dtype=bool)
    if n_hours * n_keys <= 4 * frame.height + 1_000_000:  # the count array stays small
        cell = keys * n_hours + hour
        shared = np.bincount(cell, minlength=n_hours * n_keys)[cell] > 1
    dup = np.zeros(frame.height, dtype=bool)
    rows = np.flatnonzero(shared)
    if rows.size:
        span = int(us.max()) - lo + 1
        sub = frame.select(pl.col("_key").cast(pl.Int64), pl.col("_us") - lo)[rows]
        if span * n_keys < 2**62:  # one int64 per interval hashes far cheaper than a struct
            hit = sub.select((pl.col("_key") * span + pl.col("_us")).is_duplicated())
        else:
            hit = sub.select(pl.struct("_key", "_us").is_duplicated())
        dup[rows] = hit.to_series().to_numpy()
    return pl.Series("dup", dup)


def _to_hours(intervals: pl.DataFrame) -> pl.DataFrame:
    """Average sub-hourly intervals into their hour; hourly rows pass through unchanged."""
    hour = pl.col("_us") - pl.col("_us") % HOUR_US
    sub = intervals.select((pl.col("_us") % HOUR_US != 0).any()).item()
    if not sub:
        return intervals.select(
            "_key",
            pl.col("_us").alias("_hour"),
            "value",
            pl.col("value").is_not_null().cast(pl.Int32).alias("n_reported"),
            "is_duplicate_resolved",
            "is_quirk_adjusted",
        )
    return intervals.group_by("_key", hour.alias("_hour")).agg(
        pl.col("value").mean(),
        pl.col("value").count().cast(pl.Int32).alias("n_reported"),
        pl.col("is_duplicate_resolved").any(),
        pl.col("is_quirk_adjusted").any(),
    )
