"""The Dagster shell of the revisions assets (`raw/<source>_revisions`): the comparison itself
is `sources/revisions.py`.

The raw responses step calls `revisions_by_day` after fetching and before returning, while the
IO manager has not yet replaced the day's stored responses: the previous extraction is read from
the store (outside the step's inputs and lineage: it is the asset's own previous output), both
are parsed with the current parser, and the changed rows are appended to the day's stored
revisions, which the IO manager then rewrites atomically with the new responses. A day with no
stored extraction, or whose responses are identical, adds nothing.
"""

from __future__ import annotations

import time
from datetime import date, datetime

import polars as pl
from dagster import AssetExecutionContext, AssetKey, MetadataValue

from energy_assets.io.parquet import ParquetPartitionIOManager
from energy_assets.resources import SourcesResource
from energy_assets.sources.base import SourceError, responses_from_frame
from energy_assets.sources.registry import SourceSpec
from energy_assets.sources.revisions import (
    append_revisions,
    empty_revisions,
    latest_fetch,
    parsed_with_fetch_times,
    responses_differ,
    revised_rows,
    revision_summary,
)


def revisions_by_day(
    context: AssetExecutionContext,
    spec: SourceSpec,
    sources: SourcesResource,
    store: ParquetPartitionIOManager,
    responses: dict[str, pl.DataFrame],
) -> dict[str, pl.DataFrame]:
    """Each day's revisions file: the stored revisions plus what this extraction changed.

    Runs before the IO manager replaces the stored responses, so the previous extraction is
    still in place; a day whose responses say exactly the same is not even parsed.
    """
    started = time.perf_counter()
    responses_path = ["raw", f"{spec.name}_responses"]
    previous: dict[str, datetime | None] = {}  # the days to compare: their last fetch
    status: dict[str, str] = {}
    for day, new in responses.items():
        old = store.stored_partition(responses_path, day)
        if old is None:
            status[day] = "first extraction"
        elif responses_differ(old, new):
            previous[day] = latest_fetch(old)
            status[day] = f"compared with the extraction fetched at {previous[day]}"
        else:
            status[day] = "responses unchanged"
    found: dict[str, pl.DataFrame] = {}

    def compare(days: list[date]) -> None:
        olds = parsed_with_fetch_times(
            spec,
            sources,
            days,
            lambda d: responses_from_frame(store.stored_partition(responses_path, d.isoformat())),
        )
        news = parsed_with_fetch_times(
            spec, sources, days, lambda d: responses_from_frame(responses[d.isoformat()])
        )
        for (day, old), (_, new) in zip(olds, news, strict=True):
            key = day.isoformat()
            found[key] = revised_rows(old, new, previous[key], latest_fetch(responses[key]))

    changed = [date.fromisoformat(d) for d in sorted(previous)]
    try:
        compare(changed)
    except SourceError:  # a response of one day no longer parses: find out which, keep the rest
        for day in changed:
            try:
                compare([day])
            except SourceError as exc:
                status[day.isoformat()] = "not compared: a stored response does not parse"
                context.log.warning(
                    f"{spec.name} {day}: revisions not recorded, a stored response does not "
                    f"parse ({exc})"
                )
    out: dict[str, pl.DataFrame] = {}
    for day in responses:
        new = found.get(day, empty_revisions())
        out[day] = append_revisions(
            store.stored_partition(["raw", f"{spec.name}_revisions"], day), new
        )
        context.add_asset_metadata(
            {
                **revision_summary(new),
                "revisions_in_file": out[day].height,
                "compared": MetadataValue.text(status[day]),
            },
            asset_key=AssetKey(["raw", f"{spec.name}_revisions"]),
            partition_key=day,
        )
    context.add_output_metadata(
        {"step_compare_s": MetadataValue.float(round(time.perf_counter() - started, 4))},
        output_name="revisions",
    )
    return out
