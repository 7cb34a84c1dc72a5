"""Alignment: duplicates, revisions, sub-hourly rows, gaps, DST days and the quirk table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest

from energy_assets.transform.align import ALIGNED_SCHEMA, align
from energy_assets.transform.grid import TIME
from energy_assets.transform.quirks import (
    apply_quirks,
    empty_quirks,
    load_quirks,
    validate_quirks,
)

D0 = datetime(2024, 5, 1, tzinfo=UTC)
NO_QUIRKS = empty_quirks()


def _raw(rows: list[tuple], fetched: bool = False) -> pl.DataFrame:
    """Rows of (time, region, series, value[, fetched_at])."""
    cols = ["interval_start_utc", "region", "series", "value"] + (
        ["fetched_at_utc"] if fetched else []
    )
    df = pl.DataFrame(rows, schema=cols, orient="row")
    df = df.with_columns(
        pl.col("interval_start_utc").cast(TIME),
        pl.col("value").cast(pl.Float64),
        pl.lit("MW").alias("units"),
        pl.lit("eia930").alias("source"),
    )
    if fetched:
        df = df.with_columns(pl.col("fetched_at_utc").cast(TIME))
    return df


def _hourly(region: str, series: str, start: datetime, values: list[float | None]) -> list[tuple]:
    return [(start + timedelta(hours=i), region, series, v) for i, v in enumerate(values)]


def _value(out: pl.DataFrame, when: datetime, series: str = "demand", region: str = "AAA"):
    row = out.filter(
        (pl.col("interval_start_utc") == when)
        & (pl.col("series") == series)
        & (pl.col("region") == region)
    )
    assert row.height == 1
    return row.row(0, named=True)


def test_align_output_is_a_complete_grid_with_the_contract_dtypes() -> None:
    raw = _raw(_hourly("AAA", "demand", D0, [1.0, None, 3.0]) + _hourly("BBB", "lmp", D0, [9.0]))
    out = align(raw, D0, D0 + timedelta(days=1), NO_QUIRKS)
    assert out.schema == pl.Schema(ALIGNED_SCHEMA)
    assert out.height == 2 * 24
    assert out.group_by("region", "series").len().get_column("len").to_list() == [24, 24]
    r = _value(out, D0 + timedelta(hours=1))
    assert r["value"] is None and r["n_reported"] == 0
    r = _value(out, D0 + timedelta(hours=5))
    assert r["value"] is None and r["n_reported"] == 0 and r["units"] == "MW"


def test_align_identical_duplicates_collapse_silently() -> None:
    rows = _hourly("AAA", "demand", D0, [5.0, 6.0])
    out = align(_raw(rows + rows + rows[:1]), D0, D0 + timedelta(hours=2), NO_QUIRKS)
    assert out.get_column("value").to_list() == [5.0, 6.0]
    assert out.get_column("n_reported").to_list() == [1, 1]
    assert not out.get_column("is_duplicate_resolved").any()


def test_align_conflicting_duplicates_without_fetch_time_are_averaged() -> None:
    rows = [(D0, "AAA", "demand", 10.0), (D0, "AAA", "demand", 20.0)]
    out = align(_raw(rows), D0, D0 + timedelta(hours=1), NO_QUIRKS)
    again = align(_raw(rows[::-1]), D0, D0 + timedelta(hours=1), NO_QUIRKS)
    assert out.equals(again)  # the order of concatenated partitions does not matter
    r = out.row(0, named=True)
    assert r["value"] == 15.0 and r["is_duplicate_resolved"] and r["n_reported"] == 1


def test_align_latest_fetch_wins_a_revision() -> None:
    f1, f2 = D0 + timedelta(days=1), D0 + timedelta(days=2)
    rows = [(D0, "AAA", "demand", 10.0, f2), (D0, "AAA", "demand", 99.0, f1)]
    r = align(_raw(rows, fetched=True), D0, D0 + timedelta(hours=1), NO_QUIRKS).row(0, named=True)
    assert r["value"] == 10.0 and r["is_duplicate_resolved"]


def test_align_a_value_beats_a_null_duplicate() -> None:
    f1, f2 = D0 + timedelta(days=1), D0 + timedelta(days=2)
    rows = [(D0, "AAA", "demand", None, f2), (D0, "AAA", "demand", 7.0, f1)]
    r = align(_raw(rows, fetched=True), D0, D0 + timedelta(hours=1), NO_QUIRKS).row(0, named=True)
    assert r["value"] == 7.0 and not r["is_duplicate_resolved"]


def test_align_averages_five_minute_rows_into_their_hour() -> None:
    rows = [
        (D0 + timedelta(minutes=5 * i), "CA ISO-TAC", "caiso_load_actual", float(i))
        for i in range(24)
    ]
    out = align(_raw(rows), D0, D0 + timedelta(hours=3), NO_QUIRKS)
    assert out.get_column("value").to_list() == [5.5, 17.5, None]
    assert out.get_column("n_reported").to_list() == [12, 12, 0]


def test_align_partial_fifteen_minute_hour_records_how_many_fed_it() -> None:
    rows = [(D0 + timedelta(minutes=m), "X", "lmp", v) for m, v in [(0, 1.0), (15, 2.0), (45, 6.0)]]
    rows.append((D0 + timedelta(minutes=30), "X", "lmp", None))
    r = align(_raw(rows), D0, D0 + timedelta(hours=1), NO_QUIRKS).row(0, named=True)
    assert r["value"] == 3.0 and r["n_reported"] == 3


def test_align_returns_only_the_requested_range_from_a_wider_window() -> None:
    rows = _hourly("AAA", "demand", D0 - timedelta(days=1), list(np.arange(72.0)))
    out = align(_raw(rows), D0, D0 + timedelta(days=1), NO_QUIRKS)
    assert out.height == 24
    assert out.get_column("interval_start_utc").min() == D0
    assert out.get_column("value").to_list() == list(np.arange(24.0, 48.0))


@pytest.mark.parametrize("local_day", [datetime(2024, 3, 10), datetime(2024, 11, 3)])
def test_align_us_dst_days_keep_24_utc_hours_none_lost_or_doubled(local_day: datetime) -> None:
    # A source reporting every local hour of an Eastern DST day (23 or 25 of them) converts to
    # UTC once in its parser; alignment must then keep every instant exactly once.
    tz = ZoneInfo("America/New_York")
    lo = local_day.replace(tzinfo=tz).astimezone(UTC)
    hi = (local_day + timedelta(days=1)).replace(tzinfo=tz).astimezone(UTC)
    n_local = int((hi - lo) / timedelta(hours=1))
    assert n_local in (23, 25)
    instants = [lo + timedelta(hours=i) for i in range(n_local)]
    rows = [(t, "PJM", "demand", float(i)) for i, t in enumerate(instants)]
    start = datetime(local_day.year, local_day.month, local_day.day, tzinfo=UTC)
    out = align(_raw(rows), start - timedelta(days=1), start + timedelta(days=2), NO_QUIRKS)
    per_day = out.group_by(pl.col("interval_start_utc").dt.date()).len()
    assert per_day.get_column("len").to_list() == [24, 24, 24]
    assert out.get_column("interval_start_utc").is_unique().all()
    got = out.filter(pl.col("value").is_not_null())
    assert got.get_column("interval_start_utc").to_list() == instants
    assert got.get_column("value").to_list() == [float(i) for i in range(n_local)]


def test_align_refuses_naive_timestamps_and_mixed_units() -> None:
    raw = _raw(_hourly("AAA", "demand", D0, [1.0]))
    with pytest.raises(ValueError, match="time zone"):
        align(
            raw.with_columns(pl.col("interval_start_utc").dt.replace_time_zone(None)),
            D0,
            D0 + timedelta(hours=1),
            NO_QUIRKS,
        )
    mixed = pl.concat([raw, raw.with_columns(pl.lit("kW").alias("units"))])
    with pytest.raises(ValueError, match="several units"):
        align(mixed, D0, D0 + timedelta(hours=1), NO_QUIRKS)


# ------------------------------------------------------------------------------- quirks


def _rules(*rows: dict) -> pl.DataFrame:
    base = {
        "amount": "",
        "timezone": "",
        "start_utc": "",
        "end_utc": "",
        "source": "test",
        "note": "",
    }
    return validate_quirks(pl.DataFrame([{**base, **r} for r in rows]).cast(pl.Utf8))


def test_quirk_shift_moves_values_inside_its_date_range_only() -> None:
    rules = _rules(
        {
            "region": "AAA",
            "series": "demand",
            "action": "shift_hours",
            "amount": "1",
            "end_utc": "2024-05-01T03:00:00Z",
        }
    )
    raw = _raw(_hourly("AAA", "demand", D0, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]))
    out = align(raw, D0, D0 + timedelta(hours=6), rules)
    # reported 00..02 move to 01..03; 03 (not moved) collides with moved 02 and wins
    assert out.get_column("value").to_list() == [None, 0.0, 1.0, 3.0, 4.0, 5.0]
    assert out.get_column("is_quirk_adjusted").to_list() == [False, True, True, False, False, False]


def test_quirk_shift_across_midnight_needs_the_neighbouring_day() -> None:
    rules = _rules({"region": "AAA", "series": "demand", "action": "shift_hours", "amount": "2"})
    raw = _raw(_hourly("AAA", "demand", D0 - timedelta(hours=2), [10.0, 11.0, 12.0]))
    out = align(raw, D0, D0 + timedelta(hours=3), rules)
    assert out.get_column("value").to_list() == [10.0, 11.0, 12.0]


def test_quirk_flip_sign_and_scale_with_glob_alternatives() -> None:
    rules = _rules(
        {"region": "P*", "series": "interchange_to_A|interchange_to_B", "action": "flip_sign"},
        {
            "region": "*",
            "series": "generation_*",
            "action": "scale",
            "amount": "0.001",
            "start_utc": "2024-05-01T01:00:00Z",
        },
    )
    rows = (
        _hourly("PJM", "interchange_to_A", D0, [5.0])
        + _hourly("PJM", "interchange_to_C", D0, [5.0])
        + _hourly("XYZ", "generation_sun", D0, [1000.0, 2000.0])
    )
    out = align(_raw(rows), D0, D0 + timedelta(hours=2), rules)
    assert _value(out, D0, "interchange_to_A", "PJM")["value"] == -5.0
    assert _value(out, D0, "interchange_to_C", "PJM")["value"] == 5.0
    assert _value(out, D0, "generation_sun", "XYZ")["value"] == 1000.0
    assert _value(out, D0 + timedelta(hours=1), "generation_sun", "XYZ")["value"] == 2.0


def test_quirk_local_time_shift_adds_an_hour_in_daylight_time() -> None:
    rules = _rules(
        {
            "region": "SC",
            "series": "demand",
            "action": "shift_hours",
            "amount": "-5",
            "timezone": "America/New_York",
        }
    )
    winter, summer = datetime(2020, 1, 15, 12, tzinfo=UTC), datetime(2020, 7, 15, 12, tzinfo=UTC)
    raw = _raw([(winter, "SC", "demand", 1.0), (summer, "SC", "demand", 2.0)])
    moved = apply_quirks(raw, rules).get_column("interval_start_utc").to_list()
    assert moved == [winter - timedelta(hours=5), summer - timedelta(hours=4)]


def test_quirk_composition_judges_every_range_on_the_reported_stamp() -> None:
    rules = _rules(
        {"region": "AAA", "series": "x", "action": "flip_sign", "end_utc": "2024-05-01T01:00:00Z"},
        {"region": "AAA", "series": "x", "action": "shift_hours", "amount": "3"},
    )
    raw = _raw(_hourly("AAA", "x", D0, [1.0, 1.0]))
    out = apply_quirks(raw, rules).sort("interval_start_utc")
    assert out.get_column("value").to_list() == [-1.0, 1.0]
    assert out.get_column("interval_start_utc").to_list() == [
        D0 + timedelta(hours=3),
        D0 + timedelta(hours=4),
    ]


def test_quirk_table_validation_names_the_row_and_field() -> None:
    with pytest.raises(ValueError, match=r"row 2 field `action`='shift'"):
        _rules({"region": "A", "series": "d", "action": "shift"})
    with pytest.raises(ValueError, match=r"row 2: `source` is empty"):
        _rules({"region": "A", "series": "d", "action": "flip_sign", "source": ""})
    with pytest.raises(ValueError, match=r"row 2 field `amount`"):
        _rules({"region": "A", "series": "d", "action": "scale"})
    with pytest.raises(ValueError, match=r"row 2 field `start_utc`='yesterday'"):
        _rules({"region": "A", "series": "d", "action": "flip_sign", "start_utc": "yesterday"})


def test_packaged_quirk_table_carries_the_open_grid_emissions_fixes() -> None:
    table = load_quirks()
    assert table.height >= 9
    assert table.get_column("source").str.contains("open-grid-emissions").all()
    assert set(table.get_column("action")) <= {"shift_hours", "flip_sign", "scale"}
    # SC's local-time stamps: 5 h late in winter, 4 h in summer, fixed from 2020-12-31; the
    # whole clock moves (D, NG, TI, fuels, interchange).
    raw = _raw(
        [
            (datetime(2019, 1, 10, tzinfo=UTC), "SC", "demand", 1.0),
            (datetime(2019, 7, 10, tzinfo=UTC), "SC", "net_generation", 2.0),
            (datetime(2021, 7, 10, tzinfo=UTC), "SC", "demand", 3.0),
            (datetime(2019, 7, 10, tzinfo=UTC), "SC", "total_interchange", 4.0),
        ]
    )
    moved = apply_quirks(raw, table).get_column("interval_start_utc").to_list()
    assert moved == [
        datetime(2019, 1, 9, 19, tzinfo=UTC),
        datetime(2019, 7, 9, 20, tzinfo=UTC),
        datetime(2021, 7, 10, tzinfo=UTC),
        datetime(2019, 7, 9, 20, tzinfo=UTC),  # TI moves with D and NG: D = NG - TI holds
    ]


def test_align_default_applies_the_packaged_quirks() -> None:
    raw = _raw(_hourly("PJM", "demand", D0, [1.0, 2.0]))
    out = align(raw, D0, D0 + timedelta(hours=3))
    assert out.get_column("value").to_list() == [None, 1.0, 2.0]


@pytest.mark.parametrize("minutes", [60, 15, 5])
def test_duplicate_detection_equals_hashing_every_interval(minutes: int) -> None:
    """The per-hour count prefilter finds exactly the (key, timestamp) pairs seen twice."""
    from energy_assets.transform.align import _duplicated

    rng = np.random.default_rng(minutes)
    n = 5000
    step = minutes * 60 * 1_000_000
    frame = pl.DataFrame(
        {
            "_key": rng.integers(0, 7, n),
            "_us": 1_700_000_000_000_000 + rng.integers(0, 2000, n) * step,
        }
    )
    want = frame.select(pl.struct("_key", "_us").is_duplicated()).to_series()
    assert 0 < want.sum() < n
    assert _duplicated(frame).to_list() == want.to_list()
    base = 1_700_000_000_000_000
    wide = frame.with_columns(base + (pl.col("_us") - base) * 10_000)  # too wide to count
    want_wide = wide.select(pl.struct("_key", "_us").is_duplicated()).to_series()
    assert _duplicated(wide).to_list() == want_wide.to_list()
    assert _duplicated(frame.head(0)).len() == 0
