"""The comparison of two extractions of a day and the append rule of the revisions table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from energy_assets.sources.base import TIME, RawResponse, raw_responses_frame
from energy_assets.sources.revisions import (
    REVISIONS_SCHEMA,
    append_revisions,
    empty_revisions,
    responses_differ,
    revised_rows,
    revision_summary,
)

HOUR = datetime(2024, 3, 10, tzinfo=UTC)
OLD_FETCH = datetime(2024, 3, 11, 6, tzinfo=UTC)
NEW_FETCH = datetime(2024, 3, 15, 6, tzinfo=UTC)


def rows(values: dict[tuple[int, str], float | None], fetched: datetime) -> pl.DataFrame:
    """Parsed rows of CISO: (hour, series) -> value, copy 0, all from one response."""
    return pl.DataFrame(
        {
            "interval_start_utc": [HOUR + timedelta(hours=h) for h, _ in values],
            "region": ["CISO"] * len(values),
            "series": [s for _, s in values],
            "copy_index": [0] * len(values),
            "value": list(values.values()),
            "units": ["MW"] * len(values),
            "source": ["eia930"] * len(values),
            "fetched_at_utc": [fetched] * len(values),
        },
        schema_overrides={
            "interval_start_utc": TIME,
            "copy_index": pl.Int16,
            "value": pl.Float64,
            "fetched_at_utc": TIME,
        },
    )


def test_only_changed_added_and_removed_rows_are_revisions_with_both_values_and_fetch_times():
    old = rows(
        {
            (0, "demand"): 100.0,
            (1, "demand"): 110.0,
            (2, "demand"): None,
            (3, "demand"): 130.0,
            (4, "demand"): 140.0,
        },
        OLD_FETCH,
    )
    new = rows(
        {
            (0, "demand"): 100.0,
            (1, "demand"): 111.5,
            (2, "demand"): 120.0,
            (3, "demand"): 130.0,
            (5, "demand"): 150.0,
        },
        NEW_FETCH,
    )
    got = revised_rows(old, new, OLD_FETCH, NEW_FETCH)
    assert got.schema == pl.Schema(REVISIONS_SCHEMA)
    assert got.select(
        pl.col("interval_start_utc").dt.hour(), "change", "value_old", "value_new"
    ).rows() == [
        (1, "changed", 110.0, 111.5),
        (2, "changed", None, 120.0),  # a null that became a value is a change
        (4, "removed", 140.0, None),
        (5, "added", None, 150.0),
    ]
    assert got["fetched_at_utc_old"].to_list() == [OLD_FETCH] * 4
    assert got["fetched_at_utc_new"].to_list() == [NEW_FETCH] * 4
    assert got["source"].to_list() == ["eia930"] * 4


def test_each_row_keeps_the_fetch_time_of_the_response_that_carried_it():
    a_old, b_old = OLD_FETCH, OLD_FETCH + timedelta(seconds=3)
    old = pl.concat([rows({(0, "demand"): 1.0}, a_old), rows({(0, "net_generation"): 2.0}, b_old)])
    new = pl.concat(
        [
            rows({(0, "demand"): 1.0}, NEW_FETCH),
            rows({(0, "net_generation"): 5.0}, NEW_FETCH + timedelta(seconds=1)),
        ]
    )
    (row,) = revised_rows(old, new, b_old, NEW_FETCH + timedelta(seconds=1)).iter_rows(named=True)
    assert (row["series"], row["fetched_at_utc_old"], row["fetched_at_utc_new"]) == (
        "net_generation",
        b_old,
        NEW_FETCH + timedelta(seconds=1),
    )


def test_an_identical_extraction_and_nulls_on_both_sides_are_no_revision():
    old = rows({(0, "demand"): 100.0, (1, "demand"): None}, OLD_FETCH)
    new = rows({(0, "demand"): 100.0, (1, "demand"): None}, NEW_FETCH)
    assert revised_rows(old, new, OLD_FETCH, NEW_FETCH).height == 0


def test_rows_without_the_parsed_columns_are_refused_saying_what_to_pass():
    with pytest.raises(ValueError, match=r"lack columns \['fetched_at_utc'\]"):
        revised_rows(rows({}, OLD_FETCH).drop("fetched_at_utc"), rows({}, NEW_FETCH), None, None)


def test_appending_keeps_earlier_revisions_and_replaces_only_a_retried_comparison():
    first = revised_rows(
        rows({(0, "demand"): 1.0}, OLD_FETCH),
        rows({(0, "demand"): 2.0}, NEW_FETCH),
        OLD_FETCH,
        NEW_FETCH,
    )
    later = NEW_FETCH + timedelta(days=2)
    second = revised_rows(
        rows({(0, "demand"): 2.0}, NEW_FETCH), rows({(0, "demand"): 3.0}, later), NEW_FETCH, later
    )
    stored = append_revisions(append_revisions(None, first), second)
    assert stored.select("value_old", "value_new").rows() == [(1.0, 2.0), (2.0, 3.0)]
    # an unchanged re-extraction appends nothing
    assert append_revisions(stored, empty_revisions()).equals(stored)
    # the same old extraction compared again (its successor was never stored): replaced
    retry = NEW_FETCH + timedelta(days=3)
    again = revised_rows(
        rows({(0, "demand"): 2.0}, NEW_FETCH), rows({(0, "demand"): 4.0}, retry), NEW_FETCH, retry
    )
    assert append_revisions(stored, again).select("value_old", "value_new").rows() == [
        (1.0, 2.0),
        (2.0, 4.0),
    ]


def test_summary_counts_each_kind_and_the_largest_absolute_change():
    old = rows({(0, "demand"): 100.0, (1, "demand"): 110.0, (2, "demand"): 5.0}, OLD_FETCH)
    new = rows({(0, "demand"): 93.0, (1, "demand"): 112.0, (3, "demand"): 7.0}, NEW_FETCH)
    summary = revision_summary(revised_rows(old, new, OLD_FETCH, NEW_FETCH))
    assert summary == {
        "rows_revised": 4,
        "rows_changed": 2,
        "rows_added": 1,
        "rows_removed": 1,
        "max_abs_change": 7.0,
    }
    assert revision_summary(empty_revisions())["max_abs_change"] == 0.0


def response(body: bytes, fetched: datetime, port: int) -> RawResponse:
    return RawResponse(
        source="eia930",
        dataset="region-data",
        request_url=f"http://127.0.0.1:{port}/v2/electricity/rto/region-data/data",
        request_params={"start": "2024-03-10T01"},
        page=0,
        status=200,
        content_type="application/json",
        fetched_at_utc=fetched,
        body=body,
    )


def test_responses_differ_only_in_what_upstream_said_not_when_or_from_which_port():
    old = raw_responses_frame([response(b'{"v": 1}', OLD_FETCH, 40001)])
    assert not responses_differ(old, raw_responses_frame([response(b'{"v": 1}', NEW_FETCH, 40002)]))
    assert responses_differ(old, raw_responses_frame([response(b'{"v": 2}', NEW_FETCH, 40002)]))
    two = raw_responses_frame([response(b'{"v": 1}', NEW_FETCH, 1), response(b"{}", NEW_FETCH, 1)])
    assert responses_differ(old, two)
