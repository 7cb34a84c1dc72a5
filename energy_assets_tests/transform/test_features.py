"""build_features: contract, lags across partition boundaries, no leakage, calendar, weather."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from energy_assets.transform.calendar import is_us_federal_holiday, us_federal_holidays
from energy_assets.transform.clean import clean
from energy_assets.transform.features import (
    FEATURE_COLUMNS,
    FeatureConfig,
    build_features,
    feature_columns,
)
from energy_assets_tests.transform.synth import START, demand_matrix, long_table

DAY = timedelta(days=1)
TARGET = START + timedelta(days=20)


@pytest.fixture(scope="module")
def imputed() -> pl.DataFrame:
    x = demand_matrix(24 * 40, 2, seed=9)
    x[24 * 20 - 3 : 24 * 20 + 2, 0] = np.nan  # a gap across the target's left boundary
    window = long_table(
        {
            ("PJM", "demand"): x[:, 0],
            ("PJM", "demand_forecast_da"): x[:, 0] * 1.01,
            ("ERCO", "demand"): x[:, 1],
        }
    )
    return clean(window, START + timedelta(days=5), START + timedelta(days=35))


@pytest.fixture(scope="module")
def weather() -> pl.DataFrame:
    h = np.arange(24 * 40)
    return long_table(
        {
            ("PJM", "temperature_2m"): 10 + 12 * np.sin(2 * np.pi * h / 24),
            ("ERCO", "temperature_2m"): 25 + 5 * np.sin(2 * np.pi * h / 24),
        },
        units="degC",
        source="open_meteo",
    )


def _features(imputed: pl.DataFrame, weather: pl.DataFrame | None) -> pl.DataFrame:
    return build_features(imputed, weather, TARGET, TARGET + DAY)


def test_features_columns_dtypes_and_roles_match_the_declaration(imputed, weather) -> None:
    out = _features(imputed, weather)
    assert out.columns == list(FEATURE_COLUMNS)
    assert dict(out.schema) == {k: v.dtype for k, v in FEATURE_COLUMNS.items()}
    roles = {v.role for v in FEATURE_COLUMNS.values()}
    assert roles == {"key", "target", "mask", "known_in_advance", "past_only"}
    assert out.height == 2 * 24
    assert out.select("interval_start_utc", "region").is_unique().all()
    assert out.get_column("interval_start_utc").min() == TARGET
    assert out.get_column("demand_mw").null_count() == 0


def test_features_lags_and_rolling_reach_into_the_previous_partition(imputed, weather) -> None:
    out = _features(imputed, weather).filter(pl.col("region") == "PJM").sort("interval_start_utc")
    demand = (
        imputed.filter((pl.col("region") == "PJM") & (pl.col("series") == "demand"))
        .sort("interval_start_utc")
        .select("interval_start_utc", "value")
    )
    series = dict(zip(*demand.get_columns(), strict=True))
    first = out.row(0, named=True)
    t = first["interval_start_utc"]
    assert first["demand_mw_lag_1h"] == series[t - timedelta(hours=1)]
    assert first["demand_mw_lag_24h"] == series[t - timedelta(hours=24)]
    assert first["demand_mw_lag_168h"] == series[t - timedelta(hours=168)]
    past = np.array([series[t - timedelta(hours=k)] for k in range(1, 25)])
    assert first["demand_mw_mean_24h"] == pytest.approx(past.mean())
    assert first["demand_mw_std_24h"] == pytest.approx(past.std(ddof=1))
    # the gap straddling the boundary was imputed, so the lag is a filled value
    assert first["demand_mw_lag_1h"] is not None
    assert not first["is_observed"] and first["demand_mw_reported"] is None


def test_features_past_only_columns_do_not_see_the_future(imputed, weather) -> None:
    cut = TARGET + timedelta(hours=10)
    future = pl.col("interval_start_utc") >= cut
    bumped_imp = imputed.with_columns(
        pl.when(future).then(pl.col("value") * 3 + 1000).otherwise(pl.col("value")).alias("value")
    )
    bumped_wx = weather.with_columns(
        pl.when(future).then(pl.col("value") + 40).otherwise(pl.col("value")).alias("value")
    )
    a = _features(imputed, weather).sort("region", "interval_start_utc")
    b = _features(bumped_imp, bumped_wx).sort("region", "interval_start_utc")
    past_only = [k for k, v in FEATURE_COLUMNS.items() if v.role == "past_only"]
    observed_now = ["temperature_c", "heating_degree_hours_c", "cooling_degree_hours_c"]
    from_earlier = [c for c in past_only if c not in observed_now]
    upto = pl.col("interval_start_utc") <= cut  # lags AT the cut may only use t < cut
    assert a.filter(upto).select(from_earlier).equals(b.filter(upto).select(from_earlier))
    # observed weather is past-only too (known once its hour has passed): up to the cut
    before = pl.col("interval_start_utc") < cut
    assert a.filter(before).select(observed_now).equals(b.filter(before).select(observed_now))
    assert not a.filter(~before).select(observed_now).equals(b.filter(~before).select(observed_now))
    # the perturbation is visible where it should be (guards against a vacuous comparison)
    later = pl.col("interval_start_utc") > cut
    assert (
        not a.filter(later)
        .select("demand_mw_lag_1h")
        .equals(b.filter(later).select("demand_mw_lag_1h"))
    )
    assert not a.filter(upto).select("demand_mw").equals(b.filter(upto).select("demand_mw"))


def test_features_weather_derived_columns(imputed, weather) -> None:
    out = _features(imputed, weather)
    t = out.get_column("temperature_c").to_numpy()
    assert np.allclose(out.get_column("heating_degree_hours_c").to_numpy(), np.maximum(18 - t, 0))
    assert np.allclose(out.get_column("cooling_degree_hours_c").to_numpy(), np.maximum(t - 18, 0))
    pjm = out.filter(pl.col("region") == "PJM").sort("interval_start_utc")
    lag = pjm.get_column("temperature_c_lag_24h").to_numpy()
    assert np.allclose(lag, pjm.get_column("temperature_c").to_numpy())  # a 24 h periodic signal


def test_features_without_weather_or_forecast_have_null_columns(imputed) -> None:
    out = _features(imputed, None)
    assert out.get_column("temperature_c").null_count() == out.height
    erco = out.filter(pl.col("region") == "ERCO")
    assert erco.get_column("demand_forecast_da_mw").null_count() == 24
    pjm = out.filter(pl.col("region") == "PJM")
    assert pjm.get_column("demand_forecast_da_mw").null_count() == 0


def test_features_short_history_gives_null_lags_not_errors(imputed, weather) -> None:
    recent = imputed.filter(pl.col("interval_start_utc") >= TARGET - DAY)
    out = _features(recent, weather)
    assert out.get_column("demand_mw_lag_168h").null_count() == out.height
    assert out.get_column("demand_mw_lag_24h").null_count() == 0


def test_features_calendar_uses_the_regions_local_time() -> None:
    h = np.arange(24 * 3)
    x = 1000 + 100 * np.sin(2 * np.pi * h / 24)
    start = datetime(2024, 7, 3, tzinfo=UTC)
    window = clean(
        long_table({("PJM", "demand"): x}, start=start), start, start + timedelta(days=3)
    )
    out = build_features(window, None, start, start + timedelta(days=3)).sort("interval_start_utc")
    row = {r["interval_start_utc"]: r for r in out.iter_rows(named=True)}
    july4_local_midnight = datetime(2024, 7, 4, 4, tzinfo=UTC)  # EDT = UTC-4
    assert row[july4_local_midnight]["hour_of_day"] == 0
    assert row[july4_local_midnight]["is_us_federal_holiday"]
    assert not row[july4_local_midnight - timedelta(hours=1)]["is_us_federal_holiday"]
    assert row[july4_local_midnight]["day_of_week"] == 4  # Thursday
    assert row[july4_local_midnight]["hour_sin"] == pytest.approx(0.0)


def test_us_federal_holidays_follow_the_statute() -> None:
    got = us_federal_holidays(2024, 2024).get_column("date").to_list()
    assert got == [
        date(2024, 1, 1),
        date(2024, 1, 15),
        date(2024, 2, 19),
        date(2024, 5, 27),
        date(2024, 6, 19),
        date(2024, 7, 4),
        date(2024, 9, 2),
        date(2024, 10, 14),
        date(2024, 11, 11),
        date(2024, 11, 28),
        date(2024, 12, 25),
    ]
    # weekend rules: Saturday -> Friday (incl. New Year's on 31 Dec), Sunday -> Monday
    days = pl.Series([date(2021, 12, 31), date(2022, 12, 26), date(2021, 6, 18), date(2020, 6, 19)])
    assert is_us_federal_holiday(days).to_list() == [True, True, True, False]


def test_feature_columns_follow_the_config() -> None:
    cfg = FeatureConfig(lag_hours=(2,), rolling_hours=(6,), weather_lag_hours=())
    cols = feature_columns(cfg)
    assert "demand_mw_lag_2h" in cols and "demand_mw_mean_6h" in cols
    assert "demand_mw_lag_168h" not in cols and "temperature_c_lag_24h" not in cols
    assert all(v.unit is not None and v.description for v in cols.values())


def test_features_temperature_averages_a_regions_points_and_skips_nulls(imputed) -> None:
    """Weather with two points for PJM (two rows per hour), one null, in shuffled order."""
    h = np.arange(24 * 40)
    one = long_table({("PJM", "temperature_2m"): 10.0 + 0 * h}, units="degC")
    two = long_table({("PJM", "temperature_2m"): 20.0 + 0 * h}, units="degC")
    two = two.with_columns(
        pl.when(pl.col("interval_start_utc") == TARGET + timedelta(hours=5))
        .then(None)
        .otherwise(pl.col("value"))
        .alias("value")
    )
    other = long_table({("ERCO", "temperature_2m"): 30.0 + 0 * h, ("ERCO", "x"): 0 * h})
    weather = pl.concat([one, two, other]).sample(fraction=1.0, shuffle=True, seed=1)
    out = _features(imputed, weather).sort("region", "interval_start_utc")
    pjm = out.filter(pl.col("region") == "PJM").get_column("temperature_c").to_list()
    assert pjm == [15.0] * 5 + [10.0] + [15.0] * 18
    erco = out.filter(pl.col("region") == "ERCO").get_column("temperature_c").to_list()
    assert erco == [30.0] * 24
