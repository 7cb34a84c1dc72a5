"""The declarative table of per-region reporting quirks and the one function that applies it.

Belongs here: reading and validating `data/quirks.csv`, and `apply_quirks`, which turns the table
into vectorised masks over a raw long table. There are no per-BA code paths: a new fix is a new
row with its citation and date range.

Table columns (one row per fix):

- `region`, `series`: shell globs (`*`, `?`); `series` may list alternatives with `|`
  (`demand|net_generation|generation_*`).
- `action`: `shift_hours` (move the value to interval_start + amount hours), `flip_sign`
  (multiply by -1; `amount` is ignored) or `scale` (multiply by `amount`).
- `timezone`: only for `shift_hours`: when set, `amount` is the shift in standard time and the
  zone's daylight-saving offset (+1 h) is added while the reported hour is in daylight time.
  Daylight time is judged at the reported hour's END, the instant EIA stamps (`period`), which
  reproduces the published fixes exactly at the transition hours.
- `start_utc` (inclusive), `end_utc` (exclusive): ISO-8601 UTC, empty = open. Ranges are judged on
  the reported `interval_start_utc` as parsed, BEFORE any fix moves it, so fixes compose
  regardless of row order (a sign flip dated on reported stamps stays put when a lag fix for the
  same series moves those stamps).
- `source`: the citation (required); `note`: what the quirk is.

Shifts move data, not the index: where a fix ends, hours can collide (both the moved and the
unmoved value land on one hour; `align` keeps the unmoved one) or be left empty (they become
missing and are imputed downstream).
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import polars as pl

from energy_assets.transform.grid import HOUR_US, TIME, TIME_COL

ACTIONS = ("shift_hours", "flip_sign", "scale")
QUIRK_COLUMNS = [
    "region",
    "series",
    "action",
    "amount",
    "timezone",
    "start_utc",
    "end_utc",
    "source",
    "note",
]


def glob_to_regex(pattern: str) -> str:
    """Anchored regex for a shell glob with `|` alternatives (`*` any run, `?` one character)."""
    parts = []
    for alt in pattern.split("|"):
        alt = alt.strip()
        body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in alt)
        parts.append(body)
    return "^(?:" + "|".join(parts) + ")$"


def _parse_times(table: pl.DataFrame, column: str, where: str) -> pl.Series:
    raw = table.get_column(column).cast(pl.Utf8)
    parsed = (
        raw.str.strip_chars()
        .replace("", None)
        .str.to_datetime("%Y-%m-%dT%H:%M:%S%#z", time_zone="UTC", strict=False)
    )
    bad = raw.is_not_null() & (raw.str.strip_chars() != "") & parsed.is_null()
    if bad.any():
        row = int(bad.arg_true()[0])
        raise ValueError(
            f"{where}: row {row + 2} field `{column}`={raw[row]!r} is not an ISO-8601 UTC time; "
            f"write it like 2021-10-31T23:00:00Z or leave it empty for an open range"
        )
    return parsed.cast(TIME)


def validate_quirks(table: pl.DataFrame, where: str = "quirk table") -> pl.DataFrame:
    """Check and type a quirk table; errors name the CSV row (header = row 1) and the field."""
    missing = [c for c in QUIRK_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{where} lacks columns {missing}; expected {QUIRK_COLUMNS}")
    table = table.select(QUIRK_COLUMNS).with_columns(
        pl.col("region", "series", "action", "timezone", "source", "note").cast(pl.Utf8)
    )
    for i, row in enumerate(table.iter_rows(named=True)):  # a few dozen rules, not data rows
        at = f"{where}: row {i + 2}"
        if row["action"] not in ACTIONS:
            raise ValueError(f"{at} field `action`={row['action']!r}; expected one of {ACTIONS}")
        if not row["region"] or not row["series"]:
            raise ValueError(f"{at}: `region` and `series` are required (use * for any)")
        if not (row["source"] or "").strip():
            raise ValueError(f"{at}: `source` is empty; every fix needs its citation")
        if row["action"] in ("shift_hours", "scale"):
            try:
                amount = float(row["amount"])
            except (TypeError, ValueError):
                raise ValueError(
                    f"{at} field `amount`={row['amount']!r}: {row['action']} needs a number"
                ) from None
            if row["action"] == "shift_hours" and amount != int(amount):
                raise ValueError(f"{at} field `amount`={amount}: shifts are whole hours")
        if row["timezone"] and row["action"] != "shift_hours":
            raise ValueError(f"{at} field `timezone`: only shift_hours uses a time zone")
    typed = table.with_columns(
        pl.col("amount").cast(pl.Utf8).str.strip_chars().replace("", None).cast(pl.Float64),
        pl.col("timezone").fill_null("").str.strip_chars(),
        _parse_times(table, "start_utc", where).alias("start_utc"),
        _parse_times(table, "end_utc", where).alias("end_utc"),
    )
    bad = typed.filter(pl.col("start_utc") >= pl.col("end_utc"))
    if bad.height:
        raise ValueError(f"{where}: rules with start_utc >= end_utc: {bad.rows(named=True)}")
    return typed


@lru_cache(maxsize=4)
def _load(path: str | None) -> pl.DataFrame:
    if path is None:
        blob = resources.files("energy_assets.transform").joinpath("data/quirks.csv").read_bytes()
        where = "energy_assets/transform/data/quirks.csv"
    else:
        blob = Path(path).read_bytes()
        where = path
    table = pl.read_csv(blob, infer_schema_length=0)
    return validate_quirks(table, where)


def load_quirks(path: str | Path | None = None) -> pl.DataFrame:
    """The packaged quirk table (or the CSV at `path`), validated and typed."""
    return _load(None if path is None else str(path))


def empty_quirks() -> pl.DataFrame:
    """A quirk table with no rules (to align without fixes)."""
    return load_quirks().head(0)


def apply_quirks(raw: pl.DataFrame, quirks: pl.DataFrame) -> pl.DataFrame:
    """Apply every matching rule to a raw long table.

    Returns the table with `interval_start_utc` moved and `value` flipped/scaled, plus
    `is_quirk_adjusted` (Boolean). Rules compose (shifts add, factors multiply), all judged on
    the reported stamps. Globs are matched against the distinct regions and series (a few
    hundred strings), then rows are selected with hash lookups; daylight time is looked up per
    distinct hour: the per-row work is a handful of vectorised comparisons per rule.
    """
    if quirks.height == 0 or raw.height == 0:
        return raw.with_columns(pl.lit(False).alias("is_quirk_adjusted"))
    reported = pl.col(TIME_COL)
    regions = raw.get_column("region").unique().drop_nulls()
    series = raw.get_column("series").unique().drop_nulls()
    us = raw.get_column(TIME_COL).dt.epoch("us")
    shift_us = pl.lit(0, dtype=pl.Int64)
    factor = pl.lit(1.0)
    touched = pl.lit(False)
    dst_cache: dict[str, pl.Series] = {}
    for rule in quirks.iter_rows(named=True):  # one expression per rule
        hit_regions = regions.filter(regions.str.contains(glob_to_regex(rule["region"])))
        hit_series = series.filter(series.str.contains(glob_to_regex(rule["series"])))
        if hit_regions.len() == 0 or hit_series.len() == 0:
            continue
        mask = pl.col("region").is_in(hit_regions.implode()) & pl.col("series").is_in(
            hit_series.implode()
        )
        if rule["start_utc"] is not None:
            mask = mask & (reported >= pl.lit(rule["start_utc"]).cast(TIME))
        if rule["end_utc"] is not None:
            mask = mask & (reported < pl.lit(rule["end_utc"]).cast(TIME))
        action = rule["action"]
        if action == "shift_hours":
            hours = pl.lit(int(rule["amount"]), dtype=pl.Int64)
            if rule["timezone"]:
                tz = rule["timezone"]
                if tz not in dst_cache:
                    dst_cache[tz] = _dst_hours_at_hour_end(us, tz)
                hours = hours + pl.lit(dst_cache[tz])
            shift_us = shift_us + pl.when(mask).then(hours * HOUR_US).otherwise(0)
        elif action == "flip_sign":
            factor = factor * pl.when(mask).then(-1.0).otherwise(1.0)
        else:
            factor = factor * pl.when(mask).then(float(rule["amount"])).otherwise(1.0)
        touched = touched | mask
    return raw.with_columns(
        (reported.dt.epoch("us") + shift_us).cast(TIME).alias(TIME_COL),
        (pl.col("value") * factor).alias("value"),
        touched.fill_null(False).alias("is_quirk_adjusted"),
    )


def _dst_hours_at_hour_end(us: pl.Series, tz: str) -> pl.Series:
    """Daylight-saving offset (0 or 1 h) of `tz` at each row's reported hour end (stamp + 1 h),
    looked up from the distinct hours of the span instead of converting every row."""
    end = us + HOUR_US
    first = int(end.min()) // HOUR_US * HOUR_US
    last = int(end.max()) // HOUR_US * HOUR_US
    grid = pl.Series(np.arange(first, last + HOUR_US, HOUR_US, dtype=np.int64)).cast(TIME)
    dst = grid.dt.convert_time_zone(tz).dt.dst_offset().dt.total_hours().cast(pl.Int64)
    index = ((end - first) // HOUR_US).to_numpy()
    return pl.Series("dst", dst.to_numpy()[index])
