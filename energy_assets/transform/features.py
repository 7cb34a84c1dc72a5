"""Hourly model features per region: target, mask, calendar, lags, rolling statistics, weather.

Belongs here: `build_features` (a window of imputed series -> one wide row per region and hour
of the target range) and `FEATURE_COLUMNS`, the declaration of every output column (role, dtype,
unit, description) that the asset contract and the ML layer read.

Roles:
- `key`: identifies the row;
- `target`: what a model predicts (`demand_mw`, filled) and its reported value;
- `mask`: `is_observed`, true where the target was observed rather than imputed (weight the
  loss or score with it);
- `known_in_advance`: known before the hour starts: calendar, holidays, and the BA's day-ahead
  demand forecast (null where none was issued: known in advance only for the hours it covers);
- `past_only`: known only once the hour has passed: observed weather (a reanalysis of what
  happened, not a forecast: using it for future hours would leak them) and everything computed
  from earlier hours (lags, trailing windows ending at t - 1 h). A forecast issued at an
  origin may read these for hours before the origin only.

Lags and rolling statistics are computed over the whole window, so a target day's first hours
use the previous days' values. A daily partition should load `FeatureConfig.context_days` (8)
days before the target; with less history those columns are null. Rolling statistics need at
least half of their window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from energy_assets.transform.calendar import (
    calendar_columns,
    is_us_federal_holiday,
    region_timezones,
)
from energy_assets.transform.grid import (
    HOUR,
    HOUR_US,
    TIME,
    TIME_COL,
    as_utc,
    check_time_column,
    hour_grid,
    key_columns,
    matrix_to_long,
    require_columns,
    rolling,
    shift_rows,
    to_matrix,
)

Role = Literal["key", "target", "mask", "known_in_advance", "past_only"]


@dataclass(frozen=True)
class FeatureColumn:
    """One output column of `build_features`."""

    role: Role
    dtype: pl.DataType
    unit: str
    description: str


class FeatureConfig(BaseModel):
    """What `build_features` computes; the defaults define `FEATURE_COLUMNS`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    target_series: str = Field("demand", description="series that becomes demand_mw")
    forecast_series: str = Field("demand_forecast_da", description="known-in-advance forecast")
    temperature_series: str = Field("temperature_2m", description="weather series, degC")
    degree_base_c: float = Field(18.0, description="base of heating/cooling degree hours")
    lag_hours: tuple[int, ...] = Field((1, 24, 168), description="target lags")
    rolling_hours: tuple[int, ...] = Field((24, 168), description="trailing windows")
    weather_lag_hours: tuple[int, ...] = Field((1, 24), description="weather lags")
    timezones: dict[str, str] = Field(
        default_factory=dict, description="region -> IANA zone, overriding the packaged table"
    )
    context_days: int = Field(8, ge=0, description="days before the target to load")


def feature_columns(config: FeatureConfig | None = None) -> dict[str, FeatureColumn]:
    """Every output column of `build_features(..., config)`, in output order."""
    cfg = config or FeatureConfig()
    f64, mw, c = pl.Float64, "MW", "degC"
    cols: dict[str, FeatureColumn] = {
        TIME_COL: FeatureColumn("key", TIME, "UTC", "start of the hour (UTC)"),
        "region": FeatureColumn("key", pl.Utf8, "", "balancing authority / area code"),
        "demand_mw": FeatureColumn(
            "target", f64, mw, f"{cfg.target_series}, screened and imputed (the training target)"
        ),
        "demand_mw_reported": FeatureColumn(
            "target", f64, mw, f"{cfg.target_series} as reported (null where missing); evaluation"
        ),
        "is_observed": FeatureColumn(
            "mask", pl.Boolean, "", "target observed and passed the screens (not imputed)"
        ),
        "hour_of_day": FeatureColumn("known_in_advance", pl.Int8, "h", "local hour 0-23"),
        "day_of_week": FeatureColumn("known_in_advance", pl.Int8, "", "local ISO weekday 1-7"),
        "month": FeatureColumn("known_in_advance", pl.Int8, "", "local month 1-12"),
        "day_of_year": FeatureColumn("known_in_advance", pl.Int16, "", "local day 1-366"),
        "hour_sin": FeatureColumn("known_in_advance", f64, "", "sin(2 pi hour / 24)"),
        "hour_cos": FeatureColumn("known_in_advance", f64, "", "cos(2 pi hour / 24)"),
        "day_of_week_sin": FeatureColumn("known_in_advance", f64, "", "sin(2 pi (dow-1) / 7)"),
        "day_of_week_cos": FeatureColumn("known_in_advance", f64, "", "cos(2 pi (dow-1) / 7)"),
        "day_of_year_sin": FeatureColumn("known_in_advance", f64, "", "sin(2 pi (doy-1) / 365.25)"),
        "day_of_year_cos": FeatureColumn("known_in_advance", f64, "", "cos(2 pi (doy-1) / 365.25)"),
        "is_weekend": FeatureColumn("known_in_advance", pl.Boolean, "", "local Saturday/Sunday"),
        "is_us_federal_holiday": FeatureColumn(
            "known_in_advance", pl.Boolean, "", "local date is an observed US federal holiday"
        ),
        "demand_forecast_da_mw": FeatureColumn(
            "known_in_advance", f64, mw, f"{cfg.forecast_series} (imputed), null if absent"
        ),
        "temperature_c": FeatureColumn(
            "past_only", f64, c, f"{cfg.temperature_series} at the region's point"
        ),
        "heating_degree_hours_c": FeatureColumn(
            "past_only", f64, c, f"max(0, {cfg.degree_base_c:g} - temperature)"
        ),
        "cooling_degree_hours_c": FeatureColumn(
            "past_only", f64, c, f"max(0, temperature - {cfg.degree_base_c:g})"
        ),
    }
    for lag in cfg.lag_hours:
        cols[f"demand_mw_lag_{lag}h"] = FeatureColumn(
            "past_only", f64, mw, f"demand_mw {lag} h earlier"
        )
    for w in cfg.rolling_hours:
        cols[f"demand_mw_mean_{w}h"] = FeatureColumn(
            "past_only", f64, mw, f"mean of demand_mw over the {w} h before the hour"
        )
        cols[f"demand_mw_std_{w}h"] = FeatureColumn(
            "past_only", f64, mw, f"standard deviation of demand_mw over the {w} h before"
        )
    for lag in cfg.weather_lag_hours:
        for name in ("temperature_c", "heating_degree_hours_c", "cooling_degree_hours_c"):
            cols[f"{name}_lag_{lag}h"] = FeatureColumn(
                "past_only", f64, c, f"{name} {lag} h earlier"
            )
    return cols


FEATURE_COLUMNS: dict[str, FeatureColumn] = feature_columns()
"""Output columns of `build_features` with the default `FeatureConfig`."""


def build_features(
    imputed_window: pl.DataFrame,
    weather_window: pl.DataFrame | None,
    target_start: datetime,
    target_end: datetime,
    config: FeatureConfig | None = None,
) -> pl.DataFrame:
    """One row per (region, hour) of [target_start, target_end) for every region with the target.

    `imputed_window`: `clean` output for the target days and `context_days` before (columns
    interval_start_utc, region, series, value, value_reported, is_observed).
    `weather_window`: long weather rows (interval_start_utc, region, series, value), aligned
    or cleaned; None takes the temperature series from `imputed_window` if it is there.
    Columns: `feature_columns(config)`, sorted by region then time.

    Works on hours x regions matrices: lags are row shifts and the trailing statistics column-wise
    rolling windows over the whole window, so no join or per-region loop touches the rows.
    """
    cfg = config or FeatureConfig()
    target_start, target_end = (
        as_utc(target_start, "target_start"),
        as_utc(target_end, "target_end"),
    )
    require_columns(
        imputed_window,
        [TIME_COL, "region", "series", "value", "value_reported", "is_observed"],
        "build_features input",
    )
    window = check_time_column(imputed_window, "build_features input")
    spec = feature_columns(cfg)
    schema = {k: v.dtype for k, v in spec.items()}
    wanted = [cfg.target_series, cfg.forecast_series]
    rows = window.filter(pl.col("series").is_in(wanted)).with_columns(
        pl.col("is_observed").cast(pl.Float64)
    )
    regions = (
        rows.filter(pl.col("series") == cfg.target_series).select("region").unique().sort("region")
    )
    if regions.height == 0:
        return pl.DataFrame(schema=schema)
    rows = rows.filter(pl.col("region").is_in(regions.get_column("region").implode()))
    t_lo = min(rows.get_column(TIME_COL).min(), target_start)
    t_hi = max(rows.get_column(TIME_COL).max() + HOUR, target_end)
    span = (t_lo, t_hi)
    names = regions.get_column("region").to_list()

    keys, t0_us, n, mats = to_matrix(
        rows, ["value", "value_reported", "is_observed"], ("region", "series"), span
    )
    demand = _by_region(keys, mats["value"], names, cfg.target_series)
    reported = _by_region(keys, mats["value_reported"], names, cfg.target_series)
    observed = _by_region(keys, mats["is_observed"], names, cfg.target_series)
    forecast = _by_region(keys, mats["value"], names, cfg.forecast_series)
    temperature = _temperature_matrix(window, weather_window, cfg, names, span, n)

    cols: dict[str, np.ndarray] = {
        "demand_mw": demand,
        "demand_mw_reported": reported,
        "is_observed": observed == 1.0,
        "demand_forecast_da_mw": forecast,
        "temperature_c": temperature,
        "heating_degree_hours_c": np.maximum(cfg.degree_base_c - temperature, 0.0),
        "cooling_degree_hours_c": np.maximum(temperature - cfg.degree_base_c, 0.0),
    }
    for lag in cfg.lag_hours:
        cols[f"demand_mw_lag_{lag}h"] = shift_rows(demand, lag)
    previous = shift_rows(demand, 1)  # trailing windows end at t - 1 h: never see hour t
    for w in cfg.rolling_hours:
        half = max(w // 2, 1)
        cols[f"demand_mw_mean_{w}h"] = rolling(previous, "mean", w, center=False, min_samples=half)
        cols[f"demand_mw_std_{w}h"] = rolling(previous, "std", w, center=False, min_samples=half)
    for lag in cfg.weather_lag_hours:
        for name in ("temperature_c", "heating_degree_hours_c", "cooling_degree_hours_c"):
            cols[f"{name}_lag_{lag}h"] = shift_rows(cols[name], lag)

    r0 = (int(target_start.timestamp() * 1_000_000) - t0_us) // HOUR_US
    r1 = (int(target_end.timestamp() * 1_000_000) - t0_us) // HOUR_US
    cols.update(_calendar(names, target_start, r1 - r0, cfg))
    sliced = {k: v if v.shape[0] == r1 - r0 else v[r0:r1] for k, v in cols.items()}
    out = matrix_to_long(regions, int(target_start.timestamp() * 1_000_000), sliced)
    return out.select(list(spec)).cast(schema)


def _by_region(keys: pl.DataFrame, m: np.ndarray, regions: list[str], series: str) -> np.ndarray:
    """Columns of `m` for (region, series) in `regions` order; all-NaN where absent.

    Column-major (each region's hours contiguous), the layout `matrix_to_long` flattens free.
    """
    col = {
        (r, s): j
        for j, (r, s) in enumerate(
            zip(
                keys.get_column("region").to_list(),
                keys.get_column("series").to_list(),
                strict=True,
            )
        )
    }
    out = np.full((m.shape[0], len(regions)), np.nan, order="F")
    for j, region in enumerate(regions):  # regions, not rows
        src = col.get((region, series))
        if src is not None:
            out[:, j] = m[:, src]
    return out


def _temperature_matrix(
    window: pl.DataFrame,
    weather: pl.DataFrame | None,
    cfg: FeatureConfig,
    regions: list[str],
    span: tuple[datetime, datetime],
    n: int,
) -> np.ndarray:
    """Hours x regions temperature; several points of a region (or repeated rows) averaged."""
    source = window if weather is None else check_time_column(weather, "weather_window")
    if weather is not None:
        require_columns(source, [TIME_COL, "region", "series", "value"], "weather_window")
    rows = source.filter(
        (pl.col("series") == cfg.temperature_series)
        & pl.col("region").is_in(pl.Series(regions, dtype=pl.Utf8).implode())
        & (pl.col(TIME_COL) >= span[0])
        & (pl.col(TIME_COL) < span[1])
    )
    out = np.full((n, len(regions)), np.nan, order="F")
    if rows.height == 0:
        return out
    keys, col = key_columns(rows, ("region",))
    us = rows.get_column(TIME_COL).dt.epoch("us").to_numpy()
    t0 = int(span[0].timestamp() * 1_000_000)
    hour = (us - t0) // HOUR_US  # a sub-hourly stamp counts for the hour it starts in
    value = rows.get_column("value").cast(pl.Float64).fill_nan(None).to_numpy()
    ok = ~np.isnan(value)
    cell = col * n + hour  # column-major cells
    total = np.bincount(cell[ok], weights=value[ok], minlength=n * keys.height)
    count = np.bincount(cell[ok], minlength=n * keys.height)
    mean = np.where(count > 0, total / np.maximum(count, 1), np.nan).reshape(keys.height, n)
    where = {r: j for j, r in enumerate(keys.get_column("region").to_list())}
    for j, region in enumerate(regions):
        if region in where:
            out[:, j] = mean[where[region]]
    return out


def _calendar(
    regions: list[str], start: datetime, n_hours: int, cfg: FeatureConfig
) -> dict[str, np.ndarray]:
    """Calendar matrices (hours x regions), computed once per time zone on the hour vector and
    gathered per region (column-major, as `matrix_to_long` flattens them without a copy)."""
    zones = region_timezones(regions, cfg.timezones)
    distinct = sorted(set(zones.values()))  # a handful of zones, not rows
    zone_of = np.array([distinct.index(zones[r]) for r in regions], dtype=np.int64)
    hours = hour_grid(start, start + n_hours * HOUR)
    per_zone = []
    for tz in distinct:
        local = hours.dt.convert_time_zone(tz).dt.replace_time_zone(None)
        frame = pl.DataFrame({"_local": local}).with_columns(calendar_columns(pl.col("_local")))
        frame = frame.with_columns(
            is_us_federal_holiday(local.dt.date()).alias("is_us_federal_holiday")
        )
        per_zone.append(frame.drop("_local").cast(pl.Float64))
    out = {}
    for name in per_zone[0].columns:
        table = np.stack([f.get_column(name).to_numpy() for f in per_zone])  # zones x hours
        out[name] = table[zone_of].T  # hours x regions, column-major
    return out
