"""Completeness contracts as plain functions: what a complete day holds comes from the registry
and the settings, and a missing group is named, whatever the day's file happens to hold."""

from datetime import UTC, datetime, timedelta

import polars as pl

from energy_assets.contracts import tables
from energy_assets.contracts.evaluate import evaluate, name_groups
from energy_assets.sources.registry import SourceSettings

DAY = datetime(2024, 3, 5, tzinfo=UTC)


def long_rows(groups: list[tuple[str, str]], hours: int = 24, value: float | None = 1.0):
    rows = [
        (DAY + timedelta(hours=h), region, series)
        for region, series in groups
        for h in range(hours)
    ]
    return pl.DataFrame(
        {
            "interval_start_utc": [r[0] for r in rows],
            "region": [r[1] for r in rows],
            "series": [r[2] for r in rows],
            "copy_index": [0] * len(rows),
            "value": [value] * len(rows),
            "units": ["MW"] * len(rows),
            "source": ["eia930"] * len(rows),
        },
        schema=tables.RAW_EIA930.schema,
    )


def outcomes(path: str, frame: pl.DataFrame, respondents: tuple[str, ...]):
    expected = tables.expected_groups_for(path, SourceSettings(respondents=respondents))
    contract = tables.CONTRACTS[path]
    return {o.name: o for o in evaluate(contract, frame, tables.EXTRA_CHECKS.get(path), expected)}


def test_eia_expects_demand_only_from_balancing_authorities_that_report_it():
    expected = tables.expected_groups_for("raw/eia930", SourceSettings(respondents=("PJM", "GRIF")))
    assert expected.rows() == [
        ("GRIF", "net_generation"),
        ("GRIF", "total_interchange"),
        ("PJM", "demand"),
        ("PJM", "net_generation"),
        ("PJM", "total_interchange"),
    ]


def test_no_respondents_configured_means_every_balancing_authority_is_expected():
    from energy_assets.sources.balancing_authorities import load_balancing_authorities

    table = load_balancing_authorities()
    expected = tables.expected_groups_for("raw/eia930", SourceSettings())
    assert expected.filter(pl.col("series") == "net_generation").height == table.height
    assert expected.filter(pl.col("series") == "demand").height == table["reports_demand"].sum()


def test_a_day_without_a_respondent_fails_complete_day_naming_it():
    present = [("PJM", "demand"), ("PJM", "net_generation"), ("PJM", "total_interchange")]
    found = outcomes("raw/eia930", long_rows(present), ("PJM", "MISO", "GRIF"))
    day = found["complete_day"]
    assert not day.passed and day.severity == "error"
    assert day.offending_rows == 5
    assert "MISO (series demand, net_generation, total_interchange)" in day.description
    assert "GRIF (series net_generation, total_interchange)" in day.description
    assert day.figures == {"expected_groups": 8.0, "missing_groups": 5.0}


def test_an_empty_day_is_never_complete():
    found = outcomes("raw/eia930", tables.RAW_EIA930.empty(), ("PJM",))
    assert not found["complete_day"].passed
    assert found["complete_day"].offending_rows == 3


def test_a_day_of_nulls_holds_no_value():
    groups = [("PJM", "demand"), ("PJM", "net_generation"), ("PJM", "total_interchange")]
    assert not outcomes("raw/eia930", long_rows(groups, value=None), ("PJM",))[
        "complete_day"
    ].passed
    assert outcomes("raw/eia930", long_rows(groups), ("PJM",))["complete_day"].passed


def test_a_group_short_of_24_hours_warns_but_the_day_is_complete():
    groups = [("PJM", "demand"), ("PJM", "net_generation"), ("PJM", "total_interchange")]
    frame = long_rows(groups).filter(
        ~((pl.col("series") == "demand") & (pl.col("interval_start_utc") == DAY))
    )
    found = outcomes("raw/eia930", frame, ("PJM",))
    assert found["complete_day"].passed
    hours = found["complete_hours"]
    assert not hours.passed and hours.severity == "warn"
    assert hours.sample.select("region", "series", "hours_with_value").rows() == [
        ("PJM", "demand", 23)
    ]


def test_extra_unexpected_groups_do_not_make_a_day_complete():
    frame = long_rows([("PJM", "generation_sun"), ("PJM", "demand")])
    assert not outcomes("raw/eia930", frame, ("PJM",))["complete_day"].passed


def test_aligned_expects_every_source_and_fails_on_an_all_null_group():
    expected = tables.expected_groups_for("aligned/series", SourceSettings(respondents=("PJM",)))
    rows = set(expected.rows())
    assert {("PJM", "demand"), ("PJM", "temperature_2m"), ("CA ISO-TAC", "caiso_load_actual"),
            ("TH_NP15_GEN-APND", "lmp")} <= rows  # fmt: skip
    contract = tables.CONTRACTS["aligned/series"]
    hours = [DAY + timedelta(hours=h) for h in range(24)]
    frame = pl.DataFrame(
        {
            "interval_start_utc": [h for _ in rows for h in hours],
            "region": [r for r, _ in rows for _ in hours],
            "series": [s for _, s in rows for _ in hours],
        }
    ).with_columns(
        value=pl.when(pl.col("series") == "demand").then(None).otherwise(pl.lit(1.0)),
        units=pl.lit("MW"),
        source=pl.lit("x"),
        n_reported=pl.lit(1, pl.UInt8),
        is_duplicate_resolved=pl.lit(False),
        is_quirk_adjusted=pl.lit(False),
    )
    frame = frame.select([pl.col(c).cast(t) for c, t in contract.schema.items()])
    found = {o.name: o for o in evaluate(contract, frame, None, expected)}
    assert not found["complete_day"].passed
    assert "PJM (series demand)" in found["complete_day"].description
    assert found["hourly_continuity"].passed  # every row is there: only the values are not


def test_name_groups_shares_one_clause_per_set_of_missing_series():
    groups = pl.DataFrame(
        {
            "region": ["MISO", "PJM", "PJM", "MISO", "CISO"],
            "series": ["demand", "demand", "net_generation", "net_generation", "demand"],
        }
    )
    assert name_groups(groups) == "MISO, PJM (series demand, net_generation); CISO (series demand)"


def test_a_replayed_recording_expects_on_each_day_what_it_recorded_that_day():
    """Offline real-data worlds replay upstream's gaps of the time: a day on which the recording
    holds no CISO demand does not expect it; a day on which it does, still fails without it."""
    from energy_assets.checks import evaluate_partitions
    from energy_assets.io.parquet import PartitionLoader

    first, second = DAY.date(), (DAY + timedelta(days=1)).date()
    recorded = pl.DataFrame(
        {
            "region": ["PJM", "CISO", "PJM"],
            "series": ["demand", "demand", "demand"],
            "day": [first, first, second],
        }
    )
    settings = SourceSettings(respondents=("PJM", "CISO"), recorded={"eia930": recorded})
    expected = tables.expected_groups_for("raw/eia930", settings)
    assert set(expected.columns) == {"region", "series", "day"}
    frames = {
        first.isoformat(): long_rows([("PJM", "demand")]),
        second.isoformat(): long_rows([("PJM", "demand")]).with_columns(
            pl.col("interval_start_utc") + timedelta(days=1)
        ),
    }
    loader = PartitionLoader(keys=list(frames), _load=lambda key: (frames[key], {}))
    contract = tables.CONTRACTS["raw/eia930"]
    by_day = evaluate_partitions(contract, loader, tables.EXTRA_CHECKS.get("raw/eia930"), expected)
    verdict = {day: {o.name: o for o in found}["complete_day"] for day, found in by_day.items()}
    assert not verdict[first.isoformat()].passed
    assert "CISO" in verdict[first.isoformat()].description
    assert verdict[second.isoformat()].passed
