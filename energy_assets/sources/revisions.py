"""What upstream revised: the rows a re-extraction of a day changed, found by comparing the day's
stored responses with the new ones (no Dagster).

Belongs here: the comparison of two extractions of the same UTC day and the append rule of the
revisions table (`raw/<source>_revisions`). Both extractions are parsed with the *current*
parser, so a parser change is never mistaken for an upstream revision; each parsed row keeps the
fetch time of the response that carried it (`RawResponse.fetched_at_utc`).

A revision row is one key of the raw long table (interval_start_utc, region, series, copy_index)
whose value differs between the two extractions (`changed`, nulls compared as values), that only
the new one has (`added`: an hour that arrived late) or that only the old one had (`removed`).
For an added or removed row, the fetch time on the side that lacks it is the latest fetch of that
extraction's responses of the day: when upstream last said the row was not there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import date, datetime
from typing import TYPE_CHECKING

import polars as pl

from energy_assets.sources.base import TIME, RawResponse

if TYPE_CHECKING:  # the registry imports the partitions (Dagster); the schema here must not
    from energy_assets.sources.registry import Clients, SourceSpec

ROW_KEY = ("interval_start_utc", "region", "series", "copy_index")
"""The raw long table's primary key: a revision is recorded per key."""

REVISIONS_SCHEMA: dict[str, pl.DataType] = {
    "interval_start_utc": TIME,
    "region": pl.String(),
    "series": pl.String(),
    "copy_index": pl.Int16(),
    "change": pl.String(),
    "value_old": pl.Float64(),
    "value_new": pl.Float64(),
    "units": pl.String(),
    "source": pl.String(),
    "fetched_at_utc_old": TIME,
    "fetched_at_utc_new": TIME,
}
CHANGES = ("changed", "added", "removed")

_REQUEST = ("dataset", "request_params", "page", "status", "content_type", "body")
"""What identifies a stored response and what upstream said in it; the fetch time and the URL
(offline: the stand-in's port) do not say anything about the data."""


def responses_differ(old: pl.DataFrame, new: pl.DataFrame) -> bool:
    """Whether two extractions of a day (raw responses frames) differ in anything upstream said.

    The cheap test that spares parsing an unchanged re-extraction: equal bodies for equal
    requests mean equal rows.
    """
    if old.height != new.height:
        return True
    columns = list(_REQUEST)
    return not old.select(columns).sort(columns).equals(new.select(columns).sort(columns))


def latest_fetch(responses: pl.DataFrame) -> datetime | None:
    """When the newest of a day's stored responses arrived (None: no response stored)."""
    return responses["fetched_at_utc"].max() if responses.height else None  # type: ignore[return-value]


def with_fetch_times(spec: SourceSpec) -> SourceSpec:
    """The source, parsing each response into rows that carry its `fetched_at_utc`."""

    def parse(
        clients: Clients,
        responses: list[RawResponse],
        start: datetime | None,
        end: datetime | None,
    ) -> pl.DataFrame:
        fetched = [r.fetched_at_utc for r in responses]
        rows = spec.parse(clients, responses, start, end)
        if len(set(fetched)) != 1:
            raise ValueError("with_fetch_times parses one response at a time")
        return rows.with_columns(pl.lit(fetched[0], dtype=TIME).alias("fetched_at_utc"))

    return dataclasses.replace(spec, parse=parse)


def parsed_with_fetch_times(
    spec: SourceSpec,
    clients: Clients,
    days: list[date],
    stored: Callable[[date], list[RawResponse]],
) -> Iterator[tuple[date, pl.DataFrame]]:
    """`registry.parse_days` (same rows, same copy_index), each row with its fetch time."""
    from energy_assets.sources.registry import parse_days

    for day, rows in parse_days(with_fetch_times(spec), clients, days, stored):
        if "fetched_at_utc" not in rows.columns:  # a day without any parsed row
            rows = rows.with_columns(pl.lit(None, dtype=TIME).alias("fetched_at_utc"))
        yield day, rows


def empty_revisions() -> pl.DataFrame:
    return pl.DataFrame(schema=REVISIONS_SCHEMA)


def revised_rows(
    old: pl.DataFrame,
    new: pl.DataFrame,
    old_fetched_at: datetime | None,
    new_fetched_at: datetime | None,
) -> pl.DataFrame:
    """The rows of one day that differ between two extractions, in `REVISIONS_SCHEMA`.

    `old` and `new` are the day's parsed rows (ROW_KEY, value, units, source, fetched_at_utc);
    `old_fetched_at` / `new_fetched_at` are the latest fetch times of each extraction's
    responses, used on the side that lacks an added or removed row.
    """
    for name, frame in (("old", old), ("new", new)):
        missing = sorted(set(ROW_KEY) | {"value", "units", "source", "fetched_at_utc"})
        missing = [c for c in missing if c not in frame.columns]
        if missing:
            raise ValueError(f"the {name} rows lack columns {missing}: pass parsed raw rows")
    side = ["value", "units", "source", "fetched_at_utc"]
    joined = old.select(*ROW_KEY, *side).join(
        new.select(*ROW_KEY, *side),
        on=list(ROW_KEY),
        how="full",
        coalesce=True,
        suffix="_new",
        nulls_equal=True,
    )
    in_old = pl.col("fetched_at_utc").is_not_null()
    in_new = pl.col("fetched_at_utc_new").is_not_null()
    change = (
        pl.when(in_old & in_new)
        .then(pl.lit("changed"))
        .when(in_new)
        .then(pl.lit("added"))
        .otherwise(pl.lit("removed"))
    )
    differs = ~(in_old & in_new) | pl.col("value").ne_missing(pl.col("value_new"))
    return (
        joined.filter(differs)
        .select(
            *ROW_KEY,
            change.alias("change"),
            pl.col("value").alias("value_old"),
            pl.col("value_new"),
            pl.coalesce("units_new", "units").alias("units"),
            pl.coalesce("source_new", "source").alias("source"),
            pl.coalesce("fetched_at_utc", pl.lit(old_fetched_at, dtype=TIME)).alias(
                "fetched_at_utc_old"
            ),
            pl.coalesce("fetched_at_utc_new", pl.lit(new_fetched_at, dtype=TIME)).alias(
                "fetched_at_utc_new"
            ),
        )
        .cast(REVISIONS_SCHEMA)  # type: ignore[arg-type]
        .sort(*ROW_KEY)
    )


def append_revisions(stored: pl.DataFrame | None, new: pl.DataFrame) -> pl.DataFrame:
    """A day's revisions: every stored one plus the new ones, earlier revisions never lost.

    One exception: a stored row that records a revision *from the same old extraction* of the
    same key (same `fetched_at_utc_old`) is replaced by the new row. That happens only when a
    step compared, failed to store its new responses, and ran again: the old extraction's one
    real successor is the one whose responses were stored, the newest.
    """
    if stored is None or stored.height == 0:
        return new.select(list(REVISIONS_SCHEMA)).sort(*ROW_KEY, "fetched_at_utc_new")
    kept = stored.join(new, on=[*ROW_KEY, "fetched_at_utc_old"], how="anti", nulls_equal=True)
    return pl.concat(
        [kept.select(list(REVISIONS_SCHEMA)), new.select(list(REVISIONS_SCHEMA))]
    ).sort(*ROW_KEY, "fetched_at_utc_new")


def revision_summary(revisions: pl.DataFrame) -> dict[str, float | int]:
    """Figures for one re-extraction of a day: rows revised per kind and the largest change."""
    counts = {c: 0 for c in CHANGES} | dict(revisions.group_by("change").len().iter_rows())
    delta = (revisions["value_new"] - revisions["value_old"]).abs()
    return {
        "rows_revised": revisions.height,
        **{f"rows_{c}": int(counts[c]) for c in CHANGES},
        "max_abs_change": float(delta.max()) if delta.drop_nulls().len() else 0.0,  # type: ignore[arg-type]
    }
