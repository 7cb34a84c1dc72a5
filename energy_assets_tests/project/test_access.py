"""`energy_assets.load`: the stored days of an asset as one frame, filtered and projected in
the scan, with a clear error for days that are not stored; no Dagster needed."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

import energy_assets
from energy_assets.contracts.tables import CONTRACTS
from energy_assets.io.parquet import partition_path
from energy_assets_tests.ops.live_dagster import write_config

DAYS = [date(2024, 3, 4) + timedelta(days=i) for i in range(3)]


def imputed_day(day: date) -> pl.DataFrame:
    contract = CONTRACTS["imputed/series"]
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    rows = [
        {
            "interval_start_utc": start + timedelta(hours=h),
            "region": region,
            "series": series,
            "value": float(h + i),
        }
        for h in range(24)
        for i, region in enumerate(["CISO", "ERCO"])
        for series in ["demand", "net_generation"]
    ]
    frame = pl.DataFrame(rows).with_columns(
        pl.col("interval_start_utc").dt.cast_time_unit("us"),
        pl.col("value").alias("value_reported"),
        pl.lit("observed").alias("flag"),
        pl.lit(None, dtype=pl.String).alias("method"),
        pl.lit(True).alias("is_observed"),
        pl.lit("MWh").alias("units"),
        pl.lit("eia930").alias("source"),
    )
    return contract.conform(frame.select([c for c in contract.schema if c in frame.columns]))


@pytest.fixture
def config(tmp_path):
    data = tmp_path / "data"
    for day in DAYS:
        path = partition_path(str(data), "imputed/series", day)
        path.parent.mkdir(parents=True, exist_ok=True)
        imputed_day(day).write_parquet(path.path)
    return write_config(
        tmp_path / "run.yaml",
        start=DAYS[0],
        end=DAYS[-1],
        respondents=["CISO", "ERCO"],
        data_dir=data,
        dagster_home=tmp_path / "home",
    )


def test_load_filters_regions_and_series_and_projects_columns(config):
    frame = energy_assets.load(
        "imputed/series", "2024-03-04", "2024-03-06", regions=["CISO"], series=["demand"],
        columns=["interval_start_utc", "region", "value"], config=config,
    )  # fmt: skip
    assert frame.columns == ["interval_start_utc", "region", "value"]
    assert frame.height == 3 * 24 and frame["region"].unique().to_list() == ["CISO"]
    assert frame.schema["interval_start_utc"] == pl.Datetime("us", "UTC")


def test_days_not_stored_raise_naming_them_and_the_command_or_are_skipped(config):
    with pytest.raises(
        energy_assets.DataNotStored, match=r"2024-03-07.*backfill --from 2024-03-07"
    ):
        energy_assets.load("imputed/series", "2024-03-05", "2024-03-07", config=config)
    frame = energy_assets.load(
        "imputed/series", date(2024, 3, 5), date(2024, 3, 7), config=config, missing="skip"
    )
    assert frame.height == 2 * 24 * 4


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: energy_assets.load("imputed/nope", "2024-03-04", "2024-03-04", config=c),
         "unknown asset"),
        (lambda c: energy_assets.load("imputed/series", "2024-03-05", "2024-03-04", config=c),
         "before start"),
        (lambda c: energy_assets.load("imputed/series", "2024-13-01", "2024-03-04", config=c),
         "not a date"),
        (lambda c: energy_assets.load("imputed/series", "2024-03-04", "2024-03-04",
                                      columns=["megawatts"], config=c), "no columns"),
        (lambda c: energy_assets.load("ml/normalization", "2024-03-04", "2024-03-04", config=c),
         "whole-range"),
    ],
)  # fmt: skip
def test_bad_requests_get_a_clear_error(config, call, message):
    with pytest.raises(ValueError, match=message):
        call(config)


def test_reading_needs_no_dagster(config):
    code = (
        "import sys, energy_assets; "
        f"energy_assets.load('imputed/series', '2024-03-04', '2024-03-04', config={str(config)!r});"
        "assert 'dagster' not in sys.modules, 'dagster imported'; "
        "assert energy_assets.balancing_authorities().height > 60"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_sql_queries_the_stored_days_as_tables_named_by_asset(config):
    query = """
        SELECT region, count(*) AS hours, sum(value) AS total
        FROM imputed_series WHERE series = 'demand' GROUP BY region ORDER BY region
    """
    frame = energy_assets.sql(query, "2024-03-05", "2024-03-06", config=config)
    expected = (
        pl.concat([imputed_day(d) for d in DAYS[1:]])
        .filter(pl.col("series") == "demand")
        .group_by("region")
        .agg(pl.len().cast(pl.Int64).alias("hours"), pl.col("value").sum().alias("total"))
        .sort("region")
    )
    assert frame.rows() == expected.rows()
    every_day = energy_assets.sql("SELECT count(*) AS n FROM imputed_series", config=config)
    assert every_day["n"].item() == len(DAYS) * 24 * 4


def test_sql_errors_name_the_stored_tables(config):
    with pytest.raises(ValueError, match="stored tables: imputed_series"):
        energy_assets.sql("SELECT * FROM features_hourly", config=config)
    with pytest.raises(ValueError, match="both start and end"):
        energy_assets.sql("SELECT * FROM imputed_series", "2024-03-04", config=config)


def test_scan_is_lazy_and_equals_load(config):
    lazy = energy_assets.scan("imputed/series", "2024-03-04", "2024-03-06", config=config)
    assert isinstance(lazy, pl.LazyFrame)
    loaded = energy_assets.load("imputed/series", "2024-03-04", "2024-03-06", config=config)
    assert lazy.collect().equals(loaded)
