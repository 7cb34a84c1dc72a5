"""Hourly model features per region: target, mask, calendar, lags, rolling statistics, weather.

Belongs here: `build_features` (a window of imputed series -> one wide row per region and hour
of the target range) and `FEATURE_COLUMNS`, the declaration of every output column (role, dtype,
unit, description) that the asset contract and the ML layer read.

Roles:
- `key`: identifies the row;
- `target`: what a model predicts (`demand_mw`, filled) and its reported value;
- `mask`: `is_observed`, true where the target was observed rather than imputed (weight the
  loss or score with it);
- `known_in_advance`: known before the hour starts: calendar, the day-ahead forecast, and
  weather (the observed reanalysis value stands in for a weather forecast);
- `past_only`: computed from strictly earlier hours (lags, trailing windows ending at t - 1 h).

Lags and rolling statistics are computed over the whole window, so a target day's first hours
use the previous days' values. A daily partition should load `FeatureConfig.context_days` (8)
days before the target; with less history those columns are null. Rolling statistics need at
least half of their window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from energy_assets.transform.calendar import (
    calendar_columns,
    is_us_federal_holiday,
    local_time,
    region_timezones,
)
from energy_assets.transform.grid import (
    HOUR,
    TIME,
    TIME_COL,
    as_utc,
    check_time_column,
    hour_grid,
    require_columns,
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
            "known_in_advance", f64, c, f"{cfg.temperature_series} at the region's point"
        ),
        "heating_degree_hours_c": FeatureColumn(
            "known_in_advance", f64, c, f"max(0, {cfg.degree_base_c:g} - temperature)"
        ),
        "cooling_degree_hours_c": FeatureColumn(
            "known_in_advance", f64, c, f"max(0, temperature - {cfg.degree_base_c:g})"
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
    Columns: `feature_columns(config)`.
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
    target = window.filter(pl.col("series") == cfg.target_series)
    if target.height == 0:
        return pl.DataFrame(schema={k: v.dtype for k, v in spec.items()})

    regions = target.select("region").unique().sort("region")
    lo = min(target.get_column(TIME_COL).min(), target_start)
    hi = max(target.get_column(TIME_COL).max(), target_end)
    hours = hour_grid(lo, max(hi + HOUR, target_end))
    frame = regions.join(hours.to_frame(), how="cross")
    frame = frame.join(
        target.select(
            TIME_COL,
            "region",
            pl.col("value").alias("demand_mw"),
            pl.col("value_reported").alias("demand_mw_reported"),
            pl.col("is_observed"),
        ),
        on=["region", TIME_COL],
        how="left",
    )
    forecast = window.filter(pl.col("series") == cfg.forecast_series).select(
        TIME_COL, "region", pl.col("value").alias("demand_forecast_da_mw")
    )
    frame = frame.join(forecast, on=["region", TIME_COL], how="left")
    frame = frame.join(
        _temperature(window, weather_window, cfg), on=["region", TIME_COL], how="left"
    )
    frame = frame.sort(["region", TIME_COL])

    base = cfg.degree_base_c
    frame = frame.with_columns(
        (base - pl.col("temperature_c")).clip(lower_bound=0).alias("heating_degree_hours_c"),
        (pl.col("temperature_c") - base).clip(lower_bound=0).alias("cooling_degree_hours_c"),
        pl.col("is_observed").fill_null(False),
    )
    past = []
    for lag in cfg.lag_hours:
        past.append(pl.col("demand_mw").shift(lag).over("region").alias(f"demand_mw_lag_{lag}h"))
    for w in cfg.rolling_hours:
        half = max(w // 2, 1)
        prev = pl.col("demand_mw").shift(1)  # the window ends at t - 1 h: never sees hour t
        past.append(
            prev.rolling_mean(w, min_samples=half).over("region").alias(f"demand_mw_mean_{w}h")
        )
        past.append(
            prev.rolling_std(w, min_samples=half).over("region").alias(f"demand_mw_std_{w}h")
        )
    for lag in cfg.weather_lag_hours:
        for name in ("temperature_c", "heating_degree_hours_c", "cooling_degree_hours_c"):
            past.append(pl.col(name).shift(lag).over("region").alias(f"{name}_lag_{lag}h"))
    frame = frame.with_columns(past)

    frame = frame.filter((pl.col(TIME_COL) >= target_start) & (pl.col(TIME_COL) < target_end))
    zones = region_timezones(regions.get_column("region").to_list(), cfg.timezones)
    local = local_time(frame, zones)
    frame = frame.with_columns(local.alias("_local")).with_columns(
        calendar_columns(pl.col("_local"))
    )
    frame = frame.with_columns(
        is_us_federal_holiday(frame.get_column("_local").dt.date()).alias("is_us_federal_holiday")
    )
    return frame.select(list(spec)).cast({k: v.dtype for k, v in spec.items()})


def _temperature(
    window: pl.DataFrame, weather: pl.DataFrame | None, cfg: FeatureConfig
) -> pl.DataFrame:
    source = window if weather is None else check_time_column(weather, "weather_window")
    if weather is not None:
        require_columns(source, [TIME_COL, "region", "series", "value"], "weather_window")
    rows = source.filter(pl.col("series") == cfg.temperature_series)
    return (
        rows.group_by(["region", TIME_COL])
        .agg(pl.col("value").cast(pl.Float64).mean().alias("temperature_c"))
        .select("region", TIME_COL, "temperature_c")
    )
