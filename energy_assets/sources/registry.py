"""The registry of upstream sources: the raw assets of every source are built from it.

Adding a source is one module under `sources/` (client + parser, no Dagster) plus one `SourceSpec`
line in `SOURCES`. The spec says how to fetch a run's days (and how they are chunked into
requests), how to parse stored responses, which concurrency pool throttles it, and how many days
trail the newest one because upstream revises them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol

import polars as pl

from energy_assets.partitions import day_window
from energy_assets.sources.base import RawResponse, empty_long


class Clients(Protocol):
    """What a source needs from the environment: configured clients (real or stand-in)."""

    def eia(self): ...  # -> sources.eia.EIAClient

    def caiso(self): ...  # -> sources.caiso.CAISOClient

    def openmeteo(self): ...  # -> sources.openmeteo.OpenMeteoClient

    def weather_points(self) -> pl.DataFrame: ...  # code, latitude, longitude


FetchWindow = Callable[[Clients, date, date], list[RawResponse]]
"""Fetch every response for the days [first, last] (both included) in one chunk."""

Parse = Callable[[Clients, list[RawResponse], datetime | None, datetime | None], pl.DataFrame]
"""Parse stored responses into the long table (LONG_SCHEMA); with start/end, rows in [start, end)
at least, else every row the responses' own request windows cover."""


@dataclass(frozen=True)
class SourceSpec:
    name: str
    description: str
    fetch_window: FetchWindow
    parse: Parse
    pool: str
    pool_limit: int
    max_days_per_request: int
    max_days_per_run: int
    revision_days: int


def fetch_days(
    spec: SourceSpec, clients: Clients, days: list[date]
) -> dict[date, list[RawResponse]]:
    """Responses per day, in chunks of consecutive days no longer than the source allows.

    A response that covers several days is listed under each of them, so every day's stored
    responses are enough to re-parse that day.
    """
    by_day: dict[date, list[RawResponse]] = {d: [] for d in days}
    chunk: list[date] = []
    for day in sorted(days):
        contiguous = chunk and day - chunk[-1] == timedelta(days=1)
        if chunk and (not contiguous or len(chunk) >= spec.max_days_per_request):
            for d, responses in _fetch_chunk(spec, clients, chunk).items():
                by_day[d] = responses
            chunk = []
        chunk.append(day)
    if chunk:
        by_day.update(_fetch_chunk(spec, clients, chunk))
    return by_day


def _fetch_chunk(
    spec: SourceSpec, clients: Clients, chunk: list[date]
) -> dict[date, list[RawResponse]]:
    responses = spec.fetch_window(clients, chunk[0], chunk[-1])
    return {d: responses for d in chunk}


def parse_days(
    spec: SourceSpec,
    clients: Clients,
    days: list[date],
    stored: Callable[[date], list[RawResponse]],
) -> Iterator[tuple[date, pl.DataFrame]]:
    """Each day's rows parsed from its stored responses, with `copy_index` numbering repeats.

    A response stored under several days (a 31-day OASIS or Open-Meteo chunk) is parsed once
    and reused while consecutive days still list it, so a long range costs one parse per
    response and memory stays bounded by one day's responses.
    """
    parsed: dict[tuple[str, str], pl.DataFrame] = {}
    key = ["interval_start_utc", "region", "series"]
    for day in days:
        start, end = day_window(day)
        responses = stored(day)
        today = {}
        for response in responses:
            ident = (response.dataset, response.request_url)
            today[ident] = parsed.get(ident)
            if today[ident] is None:
                today[ident] = spec.parse(clients, [response], None, None)
        parsed = today
        frames = [f for f in today.values() if f.height]
        rows = pl.concat(frames, how="vertical") if frames else empty_long()
        yield (
            day,
            (
                rows.filter(
                    (pl.col("interval_start_utc") >= start) & (pl.col("interval_start_utc") < end)
                )
                .with_columns(pl.int_range(pl.len()).over(key).cast(pl.Int16).alias("copy_index"))
                .sort([*key, "copy_index"])
            ),
        )


# --- the three sources -------------------------------------------------------------------------

EIA_ROUTES = ("region-data", "fuel-type-data", "interchange-data")


def _eia_fetch(clients: Clients, first: date, last: date) -> list[RawResponse]:
    client = clients.eia()
    start, _ = day_window(first)
    _, end = day_window(last)
    return [page for route in EIA_ROUTES for page in client.fetch(route, start, end)]


def _eia_parse(
    clients: Clients, responses: list[RawResponse], start: datetime | None, end: datetime | None
) -> pl.DataFrame:
    from energy_assets.sources.eia import parse_eia_responses

    return parse_eia_responses(responses)


def _caiso_fetch(clients: Clients, first: date, last: date) -> list[RawResponse]:
    client = clients.caiso()
    start, _ = day_window(first)
    _, end = day_window(last)
    return [r for dataset in ("load", "lmp") for r in client.fetch(dataset, start, end)]


def _caiso_parse(
    clients: Clients, responses: list[RawResponse], start: datetime | None, end: datetime | None
) -> pl.DataFrame:
    from energy_assets.sources.caiso import parse_caiso_responses

    return parse_caiso_responses(responses, tac_areas=clients.caiso().config.tac_areas)


def _weather_fetch(clients: Clients, first: date, last: date) -> list[RawResponse]:
    start, _ = day_window(first)
    _, end = day_window(last)
    return clients.openmeteo().fetch(clients.weather_points(), start, end)


def _weather_parse(
    clients: Clients, responses: list[RawResponse], start: datetime | None, end: datetime | None
) -> pl.DataFrame:
    from energy_assets.sources.openmeteo import parse_openmeteo_responses

    return parse_openmeteo_responses(responses, clients.weather_points(), start=start, end=end)


SOURCES: dict[str, SourceSpec] = {
    spec.name: spec
    for spec in (
        SourceSpec(
            name="eia930",
            description="EIA API v2 electricity/rto: hourly demand, day-ahead forecast, net "
            "generation, total interchange, generation by fuel and interchange by BA pair.",
            fetch_window=_eia_fetch,
            parse=_eia_parse,
            pool="eia_api",
            pool_limit=2,  # EIA asks for < 5 requests/s burst; two runs paging at once is safe
            max_days_per_request=1,
            max_days_per_run=31,
            revision_days=7,
        ),
        SourceSpec(
            name="caiso",
            description="CAISO OASIS SingleZip: SLD_FCST load by TAC area and DAM hourly LMP "
            "at the three trading hubs.",
            fetch_window=_caiso_fetch,
            parse=_caiso_parse,
            pool="caiso_oasis",
            pool_limit=1,  # OASIS allows about one request per 5 s per client
            max_days_per_request=31,
            max_days_per_run=31,
            revision_days=3,
        ),
        SourceSpec(
            name="weather",
            description="Open-Meteo historical archive, hourly weather at each balancing "
            "authority's representative point.",
            fetch_window=_weather_fetch,
            parse=_weather_parse,
            pool="open_meteo",
            pool_limit=1,  # the free API serves one request at a time per IP
            max_days_per_request=31,
            max_days_per_run=31,
            revision_days=7,  # ERA5 arrives about 5 days late
        ),
    )
}
