"""Calendar facts as polars expressions: US federal holidays, local time of a region, encodings.

Belongs here: anything derived from a timestamp alone (no measured data). Holidays are computed
from their statutory rules (5 U.S.C. 6103) for the years a frame spans, vectorised over years,
so no holiday package is needed. Regions map to IANA time zones: EIA balancing authorities through
the packaged BA table (`sources/data/balancing_authorities.csv`, the one place BA facts live),
other regions (CAISO TAC areas and hubs, Canadian and Mexican BAs) through the glob patterns of
`data/region_timezones.csv`; a region matching neither keeps UTC.
"""

from __future__ import annotations

import fnmatch
from datetime import date
from functools import lru_cache
from importlib import resources

import numpy as np
import polars as pl

JUNETEENTH_FIRST_YEAR = 2021  # Juneteenth National Independence Day Act, 17 June 2021
MLK_FIRST_YEAR = 1986  # first observed as a federal holiday on 20 January 1986


def _nth_weekday(year: pl.Expr, month: int, weekday: int, n: int) -> pl.Expr:
    """Date of the n-th `weekday` (ISO 1=Mon..7=Sun) of `month`; n=-1 means the last one."""
    if n > 0:
        first = pl.date(year, month, 1)
        offset = (weekday - first.dt.weekday() + 7) % 7 + 7 * (n - 1)
        return first + pl.duration(days=offset)
    last = (
        pl.date(year, month + 1, 1) - pl.duration(days=1) if month < 12 else pl.date(year, 12, 31)
    )
    back = (last.dt.weekday() - weekday + 7) % 7
    return last - pl.duration(days=back)


def _observed(day: pl.Expr) -> pl.Expr:
    """Saturday holidays are observed the Friday before, Sunday ones the Monday after."""
    wd = day.dt.weekday()
    return (
        pl.when(wd == 6)
        .then(day - pl.duration(days=1))
        .when(wd == 7)
        .then(day + pl.duration(days=1))
        .otherwise(day)
    )


def us_federal_holidays(first_year: int, last_year: int) -> pl.DataFrame:
    """Observed US federal holidays for [first_year, last_year]: columns date, holiday.

    New Year's Day of the following year is included when it is observed on 31 December.
    """
    years = pl.DataFrame({"year": pl.int_range(first_year, last_year + 2, eager=True)})
    y = pl.col("year").cast(pl.Int32)
    rules: dict[str, pl.Expr] = {
        "new_years_day": _observed(pl.date(y, 1, 1)),
        "martin_luther_king_jr_day": _nth_weekday(y, 1, 1, 3),
        "washingtons_birthday": _nth_weekday(y, 2, 1, 3),
        "memorial_day": _nth_weekday(y, 5, 1, -1),
        "juneteenth": _observed(pl.date(y, 6, 19)),
        "independence_day": _observed(pl.date(y, 7, 4)),
        "labor_day": _nth_weekday(y, 9, 1, 1),
        "columbus_day": _nth_weekday(y, 10, 1, 2),
        "veterans_day": _observed(pl.date(y, 11, 11)),
        "thanksgiving_day": _nth_weekday(y, 11, 4, 4),
        "christmas_day": _observed(pl.date(y, 12, 25)),
    }
    table = years.select([expr.alias(name) for name, expr in rules.items()] + [y.alias("year")])
    long = table.unpivot(index="year", variable_name="holiday", value_name="date")
    long = long.filter(
        ~((pl.col("holiday") == "juneteenth") & (pl.col("year") < JUNETEENTH_FIRST_YEAR))
        & ~((pl.col("holiday") == "martin_luther_king_jr_day") & (pl.col("year") < MLK_FIRST_YEAR))
    )
    lo, hi = date(first_year, 1, 1), date(last_year, 12, 31)
    return long.filter(pl.col("date").is_between(lo, hi)).select("date", "holiday").sort("date")


def is_us_federal_holiday(dates: pl.Series) -> pl.Series:
    """Boolean per date: an observed US federal holiday (vectorised membership test)."""
    if dates.len() == 0 or dates.null_count() == dates.len():
        return pl.Series(dates.name, [False] * dates.len(), dtype=pl.Boolean)
    years = dates.dt.year()
    table = us_federal_holidays(int(years.min()), int(years.max()))
    return dates.is_in(table.get_column("date").implode()).fill_null(False)


@lru_cache(maxsize=1)
def _timezone_rules() -> tuple[tuple[str, str], ...]:
    text = resources.files("energy_assets.transform").joinpath("data/region_timezones.csv")
    table = pl.read_csv(text.read_bytes(), comment_prefix="#")
    return tuple(zip(table["region"].to_list(), table["timezone"].to_list(), strict=True))


@lru_cache(maxsize=1)
def _ba_timezones() -> dict[str, str]:
    from energy_assets.sources.balancing_authorities import load_balancing_authorities

    table = load_balancing_authorities()
    return dict(zip(table["code"].to_list(), table["timezone"].to_list(), strict=True))


def region_timezones(regions: list[str], overrides: dict[str, str] | None = None) -> dict[str, str]:
    """IANA time zone per region: `overrides`, then the BA table, then the patterns, else UTC."""
    rules = _timezone_rules()
    bas = _ba_timezones()
    out = {}
    for region in regions:  # a few hundred names at most
        if overrides and region in overrides:
            out[region] = overrides[region]
        elif region in bas:
            out[region] = bas[region]
        else:
            out[region] = next((tz for pat, tz in rules if fnmatch.fnmatchcase(region, pat)), "UTC")
    return out


def calendar_columns(local: pl.Expr) -> list[pl.Expr]:
    """Calendar features of a local wall-clock time: integers and cyclic sin/cos encodings."""
    hour = local.dt.hour().cast(pl.Int8)
    dow = local.dt.weekday().cast(pl.Int8)  # ISO: 1 = Monday .. 7 = Sunday
    month = local.dt.month().cast(pl.Int8)
    doy = local.dt.ordinal_day().cast(pl.Int16)
    tau = 2 * np.pi
    return [
        hour.alias("hour_of_day"),
        dow.alias("day_of_week"),
        month.alias("month"),
        doy.alias("day_of_year"),
        (hour.cast(pl.Float64) * tau / 24).sin().alias("hour_sin"),
        (hour.cast(pl.Float64) * tau / 24).cos().alias("hour_cos"),
        ((dow.cast(pl.Float64) - 1) * tau / 7).sin().alias("day_of_week_sin"),
        ((dow.cast(pl.Float64) - 1) * tau / 7).cos().alias("day_of_week_cos"),
        ((doy.cast(pl.Float64) - 1) * tau / 365.25).sin().alias("day_of_year_sin"),
        ((doy.cast(pl.Float64) - 1) * tau / 365.25).cos().alias("day_of_year_cos"),
        (dow >= 6).alias("is_weekend"),
    ]
