"""The declarative table of per-region reporting quirks and the one function that applies it.

Belongs here: reading and validating `data/quirks.csv`, and `apply_quirks`, which turns the table
into vectorised masks over a raw long table. There are no per-BA code paths: a new fix is a new
row with its citation and date range.

Table columns (one row per fix):

- `region`, `series`: shell globs (`*`, `?`); `series` may list alternatives with `|`
  (`demand|net_generation|generation_*`).
- `action`: `shift_hours` (move the value to interval_start + amount hours), `flip_sign`
  (multiply by -1; `amount` is ignored) or `scale` (multiply by `amount`).
  A shift that names any balance series of a BA (demand, net_generation, total_interchange or a
  `generation_*` fuel) moves the BA's clock: it is applied to every series that shares it
  (`balance.is_clock_series`: those and the pairwise `interchange_to_*`), so D = NG - TI,
  NG = sum of fuels and TI = sum of interchange stay as the BA reported them. The packaged table
  spells such rows out (`balance.CLOCK_SERIES_GLOB`). A shift naming only pairwise interchange
  is a lag of the interchange against the BA's clock: it composes with a clock shift and is
  judged by the antisymmetry ID_rs = -ID_sr (`quirk_audit`).
- `timezone`: only for `shift_hours`: when set, `amount` is the shift in standard time and the
  zone's daylight-saving offset (+1 h) is added while the reported hour is in daylight time.
  Daylight time is judged at the reported hour's END, the instant EIA stamps (`period`), which
  reproduces the published fixes exactly at the transition hours.
- `start_utc` (inclusive), `end_utc` (exclusive): ISO-8601 UTC, empty = open. Ranges are judged on
  the reported `interval_start_utc` as parsed, BEFORE any fix moves it, so fixes compose
  regardless of row order (a sign flip dated on reported stamps stays put when a lag fix for the
  same series moves those stamps).
- `source`: the citation (required); `note`: what the quirk is and, where the balance audit
  (`benchmarks/quirk_balance.py`) changed a published fix, what it measured and why.

Shifts move data, not the index: where a fix ends, hours can collide (both the moved and the
unmoved value land on one hour; `align` keeps the unmoved one) or be left empty (they become
missing and are imputed downstream).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import polars as pl

from energy_assets.transform.balance import (
    BALANCE_SERIES,
    FUEL_PREFIX,
    is_balance_series,
    is_clock_series,
)
from energy_assets.transform.grid import HOUR_US, TIME, TIME_COL, encode

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


@dataclass(frozen=True)
class QuirkEffects:
    """Per-row outcome of the quirk table: shift (microseconds), value factor, touched."""

    shift_us: np.ndarray
    factor: np.ndarray
    touched: np.ndarray


def quirk_effects(
    us: np.ndarray,
    region_code: np.ndarray,
    series_code: np.ndarray,
    regions: list[str],
    series: list[str],
    quirks: pl.DataFrame,
) -> QuirkEffects:
    """The quirk table evaluated on encoded rows.

    `us`: reported interval starts (microseconds since the epoch, UTC); `region_code[i]` indexes
    `regions` (a code >= len(regions) means null), likewise `series_code`. Globs are matched
    against the distinct names (a few hundred), rows select through those lookup tables, and
    daylight time is looked up per distinct hour, so the per-row work is a few array operations
    per rule.
    """
    n = len(us)
    shift = np.zeros(n, dtype=np.int64)
    factor = np.ones(n, dtype=np.float64)
    touched = np.zeros(n, dtype=bool)
    for rule in quirks.iter_rows(named=True):  # rules, not rows
        r_hit = _name_mask(regions, rule["region"])
        s_hit = series_mask(series, rule)
        if not r_hit.any() or not s_hit.any():
            continue
        mask = r_hit[region_code] & s_hit[series_code]
        if rule["start_utc"] is not None:
            mask &= us >= _epoch_us(rule["start_utc"])
        if rule["end_utc"] is not None:
            mask &= us < _epoch_us(rule["end_utc"])
        if not mask.any():
            continue
        if rule["action"] == "shift_hours":
            rows = np.flatnonzero(mask)
            hours = np.full(len(rows), int(rule["amount"]), dtype=np.int64)
            if rule["timezone"]:
                hours += _dst_hours_at_hour_end(us[rows], rule["timezone"])
            shift[rows] += hours * HOUR_US
        elif rule["action"] == "flip_sign":
            factor[mask] *= -1.0
        else:
            factor[mask] *= float(rule["amount"])
        touched |= mask
    return QuirkEffects(shift, factor, touched)


def apply_quirks(raw: pl.DataFrame, quirks: pl.DataFrame) -> pl.DataFrame:
    """Apply every matching rule to a raw long table (string region/series columns).

    Returns the table with `interval_start_utc` moved and `value` flipped/scaled, plus
    `is_quirk_adjusted` (Boolean). Rules compose (shifts add, factors multiply), all judged on
    the reported stamps.
    """
    regions, region_code = encode(raw.get_column("region"))
    series, series_code = encode(raw.get_column("series"))
    us = raw.get_column(TIME_COL).dt.epoch("us").to_numpy()
    fx = quirk_effects(us, region_code, series_code, regions, series, quirks)
    return raw.with_columns(
        pl.Series(TIME_COL, us + fx.shift_us).cast(TIME),
        pl.col("value") * pl.Series(fx.factor),
        pl.Series("is_quirk_adjusted", fx.touched),
    )


def series_mask(names: list[str], rule: dict) -> np.ndarray:
    """Which series names a rule applies to (a clock shift adds every clock series, see the
    module docstring); one extra False entry for null codes."""
    hit = _name_mask(names, rule["series"])
    if rule["action"] == "shift_hours" and _moves_the_clock(names, rule["series"]):
        hit |= clock_mask(names)
    return hit


def names_matching(names: list[str], pattern: str) -> list[str]:
    """The names a glob (with `|` alternatives) matches, in the given order."""
    return [name for name, hit in zip(names, _name_mask(names, pattern), strict=False) if hit]


def _name_mask(names: list[str], pattern: str) -> np.ndarray:
    """Which names match the glob; one extra False entry for null codes."""
    regex = re.compile(glob_to_regex(pattern))
    return np.array([bool(regex.match(name)) for name in names] + [False], dtype=bool)


def _moves_the_clock(names: list[str], pattern: str) -> bool:
    """Whether a shift's series glob names a balance series: D, NG, TI or a fuel (any fuel that
    is present, or a pattern that would match one such as `generation_*`)."""
    regex = re.compile(glob_to_regex(pattern))
    fuels = [n for n in names if n.startswith(FUEL_PREFIX)] + [FUEL_PREFIX + "col"]
    return any(regex.match(name) for name in (*BALANCE_SERIES, *fuels))


def balance_mask(names: list[str]) -> np.ndarray:
    """Which names are balance series (`balance.is_balance_series`); False for null codes."""
    return np.array([is_balance_series(name) for name in names] + [False], dtype=bool)


def clock_mask(names: list[str]) -> np.ndarray:
    """Which names share a BA's clock (`balance.is_clock_series`); False for null codes."""
    return np.array([is_clock_series(name) for name in names] + [False], dtype=bool)


def _epoch_us(moment) -> int:
    return int(moment.timestamp() * 1_000_000)


def _dst_hours_at_hour_end(us: np.ndarray, tz: str) -> np.ndarray:
    """Daylight-saving offset (0 or 1 h) of `tz` at each row's reported hour end (stamp + 1 h),
    looked up from the distinct hours of the span instead of converting every row."""
    end = us + HOUR_US
    first = int(end.min()) // HOUR_US * HOUR_US
    last = int(end.max()) // HOUR_US * HOUR_US
    grid = pl.Series(np.arange(first, last + HOUR_US, HOUR_US, dtype=np.int64)).cast(TIME)
    dst = grid.dt.convert_time_zone(tz).dt.dst_offset().dt.total_hours().cast(pl.Int64)
    return dst.to_numpy()[(end - first) // HOUR_US]
