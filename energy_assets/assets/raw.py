"""Raw assets, two per registered source, built from `sources/registry.py`:

- `raw/<source>_responses`: the verbatim HTTP responses of each UTC day (secrets redacted), so
  nothing upstream sent is lost and parsing can be redone offline.
- `raw/<source>`: the day's parsed long table (interval_start_utc, region, series, copy_index,
  value, units, source), re-parsed from the stored responses, never from the network.

Asset keys: raw/eia930_responses, raw/eia930, raw/caiso_responses, raw/caiso,
raw/weather_responses, raw/weather.
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
    RetryPolicy,
    asset,
)

from energy_assets.io.parquet import PartitionLoader, window
from energy_assets.observe import observed
from energy_assets.partitions import DAILY
from energy_assets.resources import SourcesResource
from energy_assets.sources.base import raw_responses_frame, responses_from_frame
from energy_assets.sources.http import TransientSourceError
from energy_assets.sources.registry import SOURCES, SourceSpec, fetch_days, parse_days

# Transient upstream trouble that outlasts the client's own retries gets another go later;
# anything else (no key, a refused request, an unparseable answer) fails at once, because
# retrying cannot fix it.
EXTRACTION_RETRY = RetryPolicy(
    max_retries=3, delay=30, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
)


def _fetch_or_fail(spec: SourceSpec, sources: SourcesResource, days: list[date]):
    try:
        return fetch_days(spec, sources, days)
    except TransientSourceError:
        raise  # the RetryPolicy re-runs the step after a jittered, growing delay
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
        retry_policy=EXTRACTION_RETRY,
        # A rate-limited extraction runs in month-sized runs: memory stays bounded, a failure
        # costs at most one month, and the pool keeps concurrent runs polite.
        backfill_policy=BackfillPolicy.multi_run(max_partitions_per_run=spec.max_days_per_run),
        kinds={"parquet", "api"},
    )
    @observed
    def _responses(
        context: AssetExecutionContext, sources: SourcesResource
    ) -> dict[str, pl.DataFrame]:
        by_day = _fetch_or_fail(spec, sources, _days(context))
        context.log.info(
            f"{spec.name}: {sum(len(r) for r in by_day.values())} responses for "
            f"{len(by_day)} day(s)"
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

        return {
            day.isoformat(): rows for day, rows in parse_days(spec, sources, _days(context), stored)
        }

    return [_responses, _parsed]


RAW_ASSETS: list[AssetsDefinition] = [a for spec in SOURCES.values() for a in raw_assets(spec)]
