"""Raw assets, two per registered source, built from `sources/registry.py`:

- `raw/<source>_responses`: the verbatim HTTP responses of each UTC day (secrets redacted), so
  nothing upstream sent is lost and parsing can be redone offline.
- `raw/<source>`: the day's parsed long table (interval_start_utc, region, series, copy_index,
  value, units, source), re-parsed from the stored responses, never from the network.

Asset keys of the sources registered today: raw/eia930_responses, raw/eia930,
raw/caiso_responses, raw/caiso, raw/weather_responses, raw/weather. `registered_raw_assets()`
builds them from the registry as it is when called (the Definitions call it), so a source added
to `SOURCES` gets its two assets with no edit here.

An upstream "no data" answer (EIA total 0, OASIS error 1000, Open-Meteo nulls) is stored as
received and recorded on the day's responses materialization as `upstream_no_data` (the answers,
by dataset and request); the parsed table's blocking `complete_day` check then names what the day
lacks, so such a day is never taken for a complete one.

Retries: only a fetch's transient upstream trouble runs a step again (`_fetch_or_fail`); a
refused key, a bad request, an unusable body, a contract violation or storage that cannot be
written fail the step at once, saying what to do.
"""

from datetime import date

import polars as pl
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    Backoff,
    Failure,
    Jitter,
    MetadataValue,
    RetryPolicy,
    RetryRequested,
    asset,
)

from energy_assets.io.parquet import PartitionLoader, window
from energy_assets.observe import observed
from energy_assets.partitions import DAILY
from energy_assets.resources import SourcesResource
from energy_assets.sources.base import (
    TransientSourceError,
    raw_responses_frame,
    responses_from_frame,
)
from energy_assets.sources.registry import (
    SOURCES,
    SourceSpec,
    fetch_days,
    parse_days,
    upstream_no_data,
)


def step_retry_policy(sources: SourcesResource) -> RetryPolicy:
    """How often, and after how long, a step whose upstream trouble may pass is run again."""
    return RetryPolicy(
        max_retries=sources.step_retries,
        delay=sources.step_retry_delay_s,
        backoff=Backoff.EXPONENTIAL,
        jitter=Jitter.PLUS_MINUS,
    )


def _fetch_or_fail(
    context: AssetExecutionContext, spec: SourceSpec, sources: SourcesResource, days: list[date]
):
    """The fetch, with the step's retries decided here rather than by a RetryPolicy on the asset.

    A Dagster RetryPolicy re-runs a step on any exception, the IO manager's file write and a
    refused key included. Instead only transient upstream trouble (after the client's own
    bounded retries) asks Dagster for another run (RetryRequested, with a growing, jittered
    delay); everything else, and the last transient failure, ends the step at once with a
    Failure whose message says what to do.
    """
    try:
        return fetch_days(spec, sources, days)
    except TransientSourceError as exc:
        attempt = context.retry_number  # 0 on the first run of the step
        policy = step_retry_policy(sources)
        if attempt < policy.max_retries:
            wait = policy.calculate_delay(attempt + 1)
            context.log.warning(
                f"{spec.name} extraction hit transient trouble (run {attempt + 1} of "
                f"{policy.max_retries + 1}); retrying the step in {wait:.0f} s: {exc}"
            )
            raise RetryRequested(max_retries=policy.max_retries, seconds_to_wait=wait) from exc
        raise Failure(
            description=f"{spec.name} extraction failed {attempt + 1} times with transient "
            f"upstream trouble: {exc} Re-run the partitions later.",
            allow_retries=False,
        ) from exc
    except Exception as exc:
        raise Failure(
            description=f"{spec.name} extraction failed and retrying will not help: {exc}",
            allow_retries=False,
        ) from exc


def _days(context: AssetExecutionContext) -> list[date]:
    return [date.fromisoformat(k) for k in context.partition_keys]


def raw_assets(spec: SourceSpec) -> list[AssetsDefinition]:
    responses_key = AssetKey(["raw", f"{spec.name}_responses"])

    @asset(
        key=responses_key,
        partitions_def=DAILY,
        group_name="raw",
        description=f"Verbatim responses, secrets redacted. {spec.description}",
        pool=spec.pool,
        # no retry_policy: `_fetch_or_fail` requests retries for transient trouble only
        # A rate-limited extraction runs in month-sized runs: memory stays bounded, a failure
        # costs at most one month, and the pool keeps concurrent runs polite.
        backfill_policy=BackfillPolicy.multi_run(max_partitions_per_run=spec.max_days_per_run),
        kinds={"parquet", "api"},
    )
    @observed
    def _responses(
        context: AssetExecutionContext, sources: SourcesResource
    ) -> dict[str, pl.DataFrame]:
        by_day = _fetch_or_fail(context, spec, sources, _days(context))
        context.log.info(
            f"{spec.name}: {sum(len(r) for r in by_day.values())} responses for "
            f"{len(by_day)} day(s)"
        )
        for day, responses in by_day.items():
            empty = upstream_no_data(spec, responses)
            if empty:
                context.log.warning(f"{spec.name} {day}: upstream has no data for {empty}")
            context.add_asset_metadata(
                {
                    "upstream_no_data": MetadataValue.json(empty),
                    "upstream_no_data_count": MetadataValue.int(len(empty)),
                },
                partition_key=day.isoformat(),
            )
        return {
            day.isoformat(): raw_responses_frame(responses)
            .with_columns(pl.lit(day).alias("partition_date"))
            .unique(subset=["dataset", "request_url"], keep="last", maintain_order=True)
            for day, responses in by_day.items()
        }

    @asset(
        key=AssetKey(["raw", spec.name]),
        ins={"responses": AssetIn(key=responses_key, metadata=window(0, 0))},
        partitions_def=DAILY,
        group_name="raw",
        description=f"Parsed long table. {spec.description}",
        backfill_policy=BackfillPolicy.single_run(),
        kinds={"parquet", "polars"},
    )
    @observed
    def _parsed(
        context: AssetExecutionContext, sources: SourcesResource, responses: PartitionLoader
    ) -> dict[str, pl.DataFrame]:
        # one day's responses in memory at a time: a year of EIA pages is over a gigabyte
        def stored(day: date):
            return responses_from_frame(responses.load(day.isoformat()))

        parsed = {}
        for day, rows in parse_days(spec, sources, _days(context), stored):
            # upstream legitimately sends null values (EIA `"value": null`): kept as null, counted
            context.add_asset_metadata(
                {"null_values": MetadataValue.int(rows["value"].null_count())},
                partition_key=day.isoformat(),
            )
            parsed[day.isoformat()] = rows
        return parsed

    return [_responses, _parsed]


def registered_raw_assets() -> list[AssetsDefinition]:
    """The raw assets of every source registered now (a source added at run time included)."""
    return [a for spec in SOURCES.values() for a in raw_assets(spec)]


RAW_ASSETS: list[AssetsDefinition] = registered_raw_assets()
