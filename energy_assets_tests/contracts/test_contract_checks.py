"""Checks generated from contracts: each fails on the frame it guards against, and blocks."""

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from dagster import AssetIn, DagsterInstance, asset, materialize

from energy_assets.checks import contract_checks
from energy_assets.contracts import tables
from energy_assets.contracts.core import Bounds, Column, Contract
from energy_assets.contracts.evaluate import check_plan, evaluate
from energy_assets.io.parquet import ParquetIOManager
from energy_assets.partitions import DAILY

HOURLY = Contract(
    name="hourly_toy",
    description="test table",
    columns=(
        tables.TIME_KEY,
        tables.REGION,
        Column(
            name="demand_mw",
            dtype="float64",
            description="demand",
            nullable=False,
            bounds=Bounds(min=0, max=1000, severity="error"),
        ),
        Column(
            name="temperature_c",
            dtype="float64",
            description="temperature",
            bounds=Bounds(min=-60, max=60, severity="warn"),
        ),
    ),
    primary_key=("interval_start_utc", "region"),
    partition_column="interval_start_utc",
    hourly_complete_by=("region",),
)


def good_day(day: str = "2024-01-02", regions=("A", "B")) -> pl.DataFrame:
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    rows = [(start + timedelta(hours=h), r, 100.0 + h, 10.0) for r in regions for h in range(24)]
    return pl.DataFrame(rows, schema=HOURLY.schema, orient="row")


def outcomes(frame: pl.DataFrame) -> dict[str, object]:
    return {o.name: o for o in evaluate(HOURLY, frame)}


def test_plan_names_every_check_with_its_severity():
    plan = {p.name: p.severity for p in check_plan(HOURLY)}
    assert plan == {
        "structure": "error",
        "bounds_demand_mw": "error",
        "bounds_temperature_c": "warn",
        "hourly_continuity": "error",
    }


def test_a_good_frame_passes_every_check():
    assert all(o.passed for o in outcomes(good_day()).values())


@pytest.mark.parametrize(
    ("breakage", "failing"),
    [
        (lambda f: pl.concat([f, f.head(1)]), "structure"),
        (lambda f: f.with_columns(pl.lit(None, pl.Float64).alias("demand_mw")), "structure"),
        (
            lambda f: f.with_columns(
                pl.when(pl.col("region") == "B")
                .then(-5.0)
                .otherwise(pl.col("demand_mw"))
                .alias("demand_mw")
            ),
            "bounds_demand_mw",
        ),
        (lambda f: f.with_columns(pl.lit(99.0).alias("temperature_c")), "bounds_temperature_c"),
        (lambda f: f.filter(pl.col("interval_start_utc").dt.hour() != 5), "hourly_continuity"),
        (lambda f: f.with_columns(pl.col("demand_mw").cast(pl.Float32)), "structure"),
    ],
)
def test_each_check_fails_on_the_breakage_it_guards_against(breakage, failing):
    results = outcomes(breakage(good_day()))
    assert not results[failing].passed
    assert results[failing].offending_rows > 0
    assert results[failing].sample is not None and results[failing].sample.height > 0
    passing_others = [n for n, o in results.items() if n != failing and o.passed]
    assert passing_others, "a targeted breakage should not fail every check"


@pytest.mark.parametrize(
    ("breakage", "part", "figure"),
    [
        (lambda f: pl.concat([f, f.head(3)]), "duplicate primary key: 3", "duplicate_keys"),
        (
            lambda f: f.with_columns(
                pl.when(pl.col("region") == "B")
                .then(None)
                .otherwise(pl.col("demand_mw"))
                .alias("demand_mw")
            ),
            "null in a required column: 24",
            "rows_with_nulls",
        ),
        (lambda f: f.drop("temperature_c"), "schema: 1", "schema_problems"),
    ],
)
def test_the_structure_check_names_the_part_that_failed_and_only_it(breakage, part, figure):
    result = outcomes(breakage(good_day()))["structure"]
    assert not result.passed
    assert result.description.endswith(f"Failed: {part}.")
    assert result.figures[figure] == float(part.rsplit(" ", 1)[1])
    assert sum(result.figures.values()) == result.figures[figure]


def test_the_structure_sample_shows_every_part_that_failed():
    frame = pl.concat([good_day(), good_day().head(20)]).with_columns(
        pl.when(pl.col("demand_mw") > 120)
        .then(None)
        .otherwise(pl.col("demand_mw"))
        .alias("demand_mw")
    )
    result = outcomes(frame)["structure"]
    assert set(result.sample["problem"]) == {"duplicate primary key", "null in a required column"}
    null = result.sample.filter(pl.col("problem") == "null in a required column")["where"][0]
    assert null.startswith("demand_mw at interval_start_utc=2024-01-02")


def test_continuity_counts_hours_against_the_days_present():
    two_days = pl.concat([good_day("2024-01-02"), good_day("2024-01-03", regions=("A",))])
    result = outcomes(two_days)["hourly_continuity"]
    assert not result.passed
    assert result.sample["region"].to_list() == ["B"]
    assert result.sample["hours_present"].to_list() == [24]


BREAK = {"on": False}


@asset(key=["test", "hourly"], partitions_def=DAILY)
def hourly(context) -> pl.DataFrame:
    frame = good_day(context.partition_key)
    if BREAK["on"]:
        frame = frame.with_columns(pl.lit(-1.0).alias("demand_mw"))
    return frame


@asset(key=["test", "downstream"], partitions_def=DAILY, ins={"x": AssetIn(["test", "hourly"])})
def downstream(x: pl.DataFrame) -> None:
    return None


def test_failed_blocking_check_stops_downstream_and_reports_a_sample(tmp_path, monkeypatch):
    monkeypatch.setitem(tables.CONTRACTS, "test/hourly", HOURLY)
    checks = contract_checks("test/hourly")
    BREAK["on"] = True
    try:
        result = materialize(
            [hourly, downstream, checks],
            partition_key="2024-01-02",
            resources={"io_manager": ParquetIOManager(base_dir=str(tmp_path))},
            instance=DagsterInstance.ephemeral(),
            raise_on_error=False,
        )
    finally:
        BREAK["on"] = False
    assert not result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not evaluations["bounds_demand_mw"].passed
    assert evaluations["bounds_demand_mw"].metadata["offending_rows"].value == 48
    assert "| interval_start_utc |" in evaluations["bounds_demand_mw"].metadata["sample"].value
    assert evaluations["bounds_temperature_c"].passed
    materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert "downstream" not in materialized
    assert "hourly" in materialized


def test_passing_checks_let_downstream_run(tmp_path, monkeypatch):
    monkeypatch.setitem(tables.CONTRACTS, "test/hourly", HOURLY)
    result = materialize(
        [hourly, downstream, contract_checks("test/hourly")],
        partition_key="2024-01-02",
        resources={"io_manager": ParquetIOManager(base_dir=str(tmp_path))},
        instance=DagsterInstance.ephemeral(),
    )
    assert result.success
    assert all(e.passed for e in result.get_asset_check_evaluations())
    assert len(result.get_asset_check_evaluations()) == len(check_plan(HOURLY))


def _checks_of_ranged_run(asset_def, tmp_path) -> dict:
    """Materialize `asset_def` over 2024-01-01..03 in one run with its contract checks."""
    result = materialize(
        [asset_def, contract_checks("test/hourly")],
        resources={"io_manager": ParquetIOManager(base_dir=str(tmp_path))},
        instance=DagsterInstance.ephemeral(),
        tags={
            "dagster/asset_partition_range_start": "2024-01-01",
            "dagster/asset_partition_range_end": "2024-01-03",
        },
        raise_on_error=False,
    )
    return {(e.check_name, e.partition): e for e in result.get_asset_check_evaluations()}


def test_a_ranged_run_checks_every_day_and_reports_the_bad_one(tmp_path, monkeypatch):
    from dagster import BackfillPolicy

    monkeypatch.setitem(tables.CONTRACTS, "test/hourly", HOURLY)

    @asset(
        key=["test", "hourly"], partitions_def=DAILY, backfill_policy=BackfillPolicy.single_run()
    )
    def ranged(context) -> pl.DataFrame:
        days = [good_day(k) for k in context.partition_keys]
        days[1] = days[1].with_columns(pl.lit(-3.0).alias("demand_mw"))  # break the middle day
        return pl.concat(days)

    evaluations = _checks_of_ranged_run(ranged, tmp_path)
    days = ["2024-01-01", "2024-01-02", "2024-01-03"]
    # one result per day and check, each naming its partition (none for the whole range)
    assert {partition for _, partition in evaluations} == set(days)
    bounds = {day: evaluations["bounds_demand_mw", day] for day in days}
    assert [bounds[d].passed for d in days] == [True, False, True]
    bad = bounds["2024-01-02"]
    assert bad.metadata["offending_rows"].value == 48  # both regions, that day only
    assert "2024-01-02" in bad.metadata["sample"].value
    assert bad.metadata["min_seen"].value == -3.0
    for day in days:
        assert evaluations["hourly_continuity", day].passed
        assert (
            evaluations["hourly_continuity", day].metadata["hours_expected_per_group"].value == 24
        )


def test_a_group_missing_a_whole_day_of_a_range_breaks_continuity(tmp_path, monkeypatch):
    from dagster import BackfillPolicy

    monkeypatch.setitem(tables.CONTRACTS, "test/hourly", HOURLY)

    @asset(
        key=["test", "hourly"], partitions_def=DAILY, backfill_policy=BackfillPolicy.single_run()
    )
    def gap(context) -> pl.DataFrame:
        days = [good_day(k) for k in context.partition_keys]
        days[1] = good_day(context.partition_keys[1], regions=("A",))  # B vanishes for a day
        return pl.concat(days)

    evaluations = _checks_of_ranged_run(gap, tmp_path)
    continuity = {day: evaluations["hourly_continuity", day] for _, day in evaluations}
    assert [continuity[d].passed for d in sorted(continuity)] == [True, False, True]
    assert "| B |" in continuity["2024-01-02"].metadata["sample"].value


def test_demand_far_from_its_own_forecast_is_reported_per_day_and_region():
    start = datetime(2024, 1, 2, tzinfo=UTC)
    hours = [start + timedelta(hours=h) for h in range(48)]
    frame = pl.DataFrame(
        {
            "interval_start_utc": hours * 2,
            "region": ["A"] * 48 + ["B"] * 48,
            "demand_mw": [1000.0] * 48 + [1000.0] * 24 + [480.0] * 24,  # B halves on day 2
            "demand_forecast_da_mw": [1030.0] * 96,
            "is_observed": [True] * 96,
        }
    )
    check = next(
        c for c in tables.EXTRA_CHECKS["features/hourly"]
        if c.name == "demand_tracks_day_ahead_forecast"
    )  # fmt: skip
    assert check.severity == "warn"
    offending, figures = check.run(tables.FEATURES, frame)
    assert offending.select("day", "region").rows() == [(datetime(2024, 1, 3).date(), "B")]
    assert figures["min_median_ratio"] == pytest.approx(480 / 1030)
    # imputed hours do not count, and a day with few observed hours is not judged
    mostly_imputed = frame.with_columns(
        (pl.col("interval_start_utc").dt.hour() < 6).alias("is_observed")
    )
    assert check.run(tables.FEATURES, mostly_imputed)[0].height == 0


def test_physically_impossible_raw_values_block_while_implausible_ones_only_warn():
    start = datetime(2024, 1, 2, tzinfo=UTC)
    rows = [
        ("SWPP", "demand", 3.6e6, "MW"),  # a real EIA glitch (June 2023): implausible, possible
        ("PJM", "demand", 2e7, "MW"),  # more than the world's generating capacity
        ("CISO", "demand", float("inf"), "MW"),
        ("CISO", "demand_forecast_da", float("nan"), "MW"),
        ("CISO", "net_generation", None, "MW"),  # upstream null: kept, not judged
        ("CISO", "temperature_2m", 20.0, "degF"),  # a unit the platform does not store
        ("CISO", "relative_humidity_2m", 101.0, "%"),
        ("CISO", "temperature_2m", 21.5, "degC"),
    ]
    frame = pl.DataFrame(
        {
            "interval_start_utc": [start + timedelta(hours=i) for i in range(len(rows))],
            "region": [r[0] for r in rows],
            "series": [r[1] for r in rows],
            "copy_index": [0] * len(rows),
            "value": [r[2] for r in rows],
            "units": [r[3] for r in rows],
            "source": ["eia930"] * len(rows),
        },
        schema=tables.RAW_EIA930.schema,
    )
    outcomes = {
        o.name: o for o in evaluate(tables.RAW_EIA930, frame, tables.EXTRA_CHECKS["raw/eia930"])
    }
    possible = outcomes["value_physically_possible"]
    assert possible.severity == "error" and not possible.passed
    assert possible.sample["region"].to_list() == ["PJM", "CISO", "CISO", "CISO", "CISO"]
    assert outcomes["bounds_value"].severity == "warn"
    assert {c.name for c in check_plan(tables.RAW_WEATHER, tables.EXTRA_CHECKS["raw/weather"])} >= {
        "value_physically_possible"
    }
