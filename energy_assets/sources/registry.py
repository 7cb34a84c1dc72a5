"""The registry of upstream sources: the single source of truth for everything per source.

Adding a source is one module (client + parser + a `SourceSpec`, no Dagster) plus one line in
`SOURCES`; the README's "Adding a source" walks through a complete example. From each spec the
platform derives, with no other file edited:

- the raw assets `raw/<name>_responses` and `raw/<name>` (assets/raw.py) and their place among
  the inputs of `aligned/series`;
- their contracts, checks and data-dictionary entries (contracts/tables.py), including what a
  complete day holds (`expected`: the (region, series) groups the settings configure);
- the source's client, built by the one resource from the run settings (`make_client`), and its
  offline stand-in handlers (`standin`), served by the one loopback stand-in.

The spec also says how a run's days are chunked into requests, which concurrency pool throttles
it, how many days trail the newest one because upstream revises them, and how to tell an upstream
"no data" answer from data (`no_data`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol

import polars as pl

from energy_assets.days import day_window
from energy_assets.sources.base import RawResponse, empty_long, load_json

EXPECTED_SCHEMA = {"region": pl.String(), "series": pl.String()}


@dataclass(frozen=True)
class SourceSettings:
    """What a source's factories see of the run settings (the `sources:` block), Dagster-free.

    `options` holds every key of the block (e.g. `eia_api_key_env`, `caiso_min_interval_s`);
    `standin_url` is the running offline stand-in's base URL (None when live).
    """

    mode: str = "offline"
    respondents: tuple[str, ...] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    standin_url: str | None = None
    recorded: Mapping[str, pl.DataFrame] = field(default_factory=dict)
    """Per source, the (region, series, day) groups an offline recording of real data holds: a
    real-data world replays what upstream published then, gaps included, and only part of it
    (the Ruggles release: demand and its forecast), so a complete replayed day holds those
    groups. A source not listed: everything the spec expects, every day."""

    @property
    def live(self) -> bool:
        return self.mode == "live"

    def base_url(self, live_url: str, standin_path: str) -> str:
        """The live service's URL, or the stand-in's URL for this source's path prefix."""
        if self.live:
            return live_url
        if self.standin_url is None:
            raise RuntimeError(
                "the offline stand-in is not running: use the sources resource inside a Dagster "
                "step, or call its setup_for_execution first"
            )
        return self.standin_url.rstrip("/") + standin_path

    def option(self, name: str, default: Any = None) -> Any:
        return self.options.get(name, default)

    def balancing_authorities(self) -> pl.DataFrame:
        """The balancing-authority table, limited to the configured respondents."""
        from energy_assets.sources.balancing_authorities import load_balancing_authorities

        table = load_balancing_authorities()
        if self.respondents is not None:
            table = table.filter(pl.col("code").is_in(list(self.respondents)))
        return table


class Clients(Protocol):
    """What a source needs from the environment: its configured client (real or stand-in),
    built by the spec's own `make_client` from the settings."""

    def client(self, source: str) -> Any: ...


MakeClient = Callable[[SourceSettings], Any]
"""Build the source's client from the settings (`settings.base_url(...)` points it at the live
service or the stand-in)."""

FetchWindow = Callable[[Any, date, date], list[RawResponse]]
"""With the source's client, fetch every response for the days [first, last] (both included)."""

Parse = Callable[[Any, list[RawResponse], datetime | None, datetime | None], pl.DataFrame]
"""With the source's client, parse stored responses into the long table (LONG_SCHEMA); with
start/end, rows in [start, end) at least, else every row the responses' request windows cover."""

Expected = Callable[[SourceSettings], pl.DataFrame]
"""The (region, series) groups a complete day holds under these settings (EXPECTED_SCHEMA)."""

NoData = Callable[[RawResponse], bool]
"""Whether a stored response is upstream's "no data" answer (an empty result, not a failure)."""

StandIn = Callable[[Any], Mapping[str, Any]]
"""Offline handlers (path prefix -> handler) for the loopback stand-in, from its world."""


@dataclass(frozen=True)
class SourceSpec:
    name: str
    description: str
    make_client: MakeClient
    fetch_window: FetchWindow
    parse: Parse
    expected: Expected
    expected_description: str
    """What `expected` holds, in words (the data dictionary prints it)."""
    no_data: NoData
    pool: str
    pool_limit: int
    max_days_per_request: int
    max_days_per_run: int
    revision_days: int
    standin: StandIn | None = None


def expected_groups(spec: SourceSpec, settings: SourceSettings) -> pl.DataFrame:
    """The spec's expected (region, series) groups, checked, unique and sorted."""
    frame = spec.expected(settings)
    if dict(frame.schema) != EXPECTED_SCHEMA:
        raise TypeError(
            f"source {spec.name}: expected() must return columns region, series (strings), got "
            f"{dict(frame.schema)}"
        )
    recorded = settings.recorded.get(spec.name)
    if recorded is not None:  # (region, series, day): what the recording holds on each day
        return (
            frame.join(recorded, on=["region", "series"], how="inner")
            .unique()
            .sort("day", "region", "series")
        )
    return frame.unique().sort("region", "series")


def upstream_no_data(spec: SourceSpec, responses: list[RawResponse]) -> list[str]:
    """The stored responses that were upstream's "no data" answer, as `dataset params` lines."""
    import json

    return [
        f"{r.dataset} {json.dumps(r.request_params, sort_keys=True, default=str)}"
        for r in responses
        if spec.no_data(r)
    ]


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
    responses = spec.fetch_window(clients.client(spec.name), chunk[0], chunk[-1])
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
    client = None
    key = ["interval_start_utc", "region", "series"]
    for day in days:
        start, end = day_window(day)
        responses = stored(day)
        today = {}
        for response in responses:
            ident = (response.dataset, response.request_url)
            today[ident] = parsed.get(ident)
            if today[ident] is None:
                client = client if client is not None else clients.client(spec.name)
                today[ident] = spec.parse(client, [response], None, None)
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
# Their glue lives here for history's sake; a new source keeps all of it in its own module
# (see the README, "Adding a source").

EIA_ROUTES = ("region-data", "fuel-type-data", "interchange-data")
EIA_EVERY_RESPONDENT = ("net_generation", "total_interchange")
"""Region-data series every EIA-930 respondent reports; `demand` is expected too where the
balancing-authority table says the BA reports demand (not the generation-only ones). Fuel mix,
the day-ahead forecast and interchange by neighbour vary by BA and are not expected."""


def _eia_client(settings: SourceSettings):
    import os

    from energy_assets.sources.eia import EIAClient, EIAConfig

    key_env = settings.option("eia_api_key_env", "EIA_API_KEY")
    key = os.environ.get(key_env) if settings.live else "offline-stand-in-key"
    if not key:
        raise ValueError(
            f"mode=live needs an EIA API key in ${key_env}: register for a free key at "
            "https://www.eia.gov/opendata/register.php and export it"
        )
    return EIAClient(
        EIAConfig(
            base_url=settings.base_url(
                settings.option("eia_base_url", "https://api.eia.gov/v2"), "/v2"
            ),
            api_key=key,
            respondents=list(settings.respondents) if settings.respondents else None,
            max_attempts=settings.option("max_attempts", 5),
            base_delay_s=settings.option("base_delay_s", 1.0),
        )
    )


def _eia_fetch(client, first: date, last: date) -> list[RawResponse]:
    start, _ = day_window(first)
    _, end = day_window(last)
    return [page for route in EIA_ROUTES for page in client.fetch(route, start, end)]


def _eia_parse(
    client, responses: list[RawResponse], start: datetime | None, end: datetime | None
) -> pl.DataFrame:
    from energy_assets.sources.eia import parse_eia_responses

    return parse_eia_responses(responses)


def _eia_expected(settings: SourceSettings) -> pl.DataFrame:
    table = settings.balancing_authorities()
    every = table.select(pl.col("code").alias("region")).join(
        pl.DataFrame({"series": list(EIA_EVERY_RESPONDENT)}), how="cross"
    )
    demand = table.filter(pl.col("reports_demand")).select(
        pl.col("code").alias("region"), pl.lit("demand").alias("series")
    )
    return pl.concat([every, demand])


def _eia_no_data(response: RawResponse) -> bool:
    """EIA's empty answer: `response.total` 0 (number or text) or `response.data` null/empty."""
    try:
        payload = load_json(response.body)
    except ValueError:
        return False
    inner = payload.get("response") if isinstance(payload, dict) else None
    if not isinstance(inner, dict) or "error" in payload:
        return False
    return str(inner.get("total")) == "0" or not inner.get("data")


def _eia_standin(world) -> Mapping[str, Any]:
    from energy_assets.offline.eia_api import eia_handlers

    return eia_handlers(world)


def _caiso_client(settings: SourceSettings):
    from energy_assets.sources.caiso import CAISOClient, CAISOConfig

    interval = settings.option("caiso_min_interval_s", 5.0) if settings.live else 0.0
    session = None
    pacing = settings.option("shared_pacing")
    if interval > 0 and pacing:
        import requests

        from energy_assets.pacing import SharedPacedSession, pacer_for

        # the gap holds across every worker, not only within this step's process
        session = SharedPacedSession(requests.Session(), pacer_for(pacing, "caiso_oasis", interval))
    return CAISOClient(
        CAISOConfig(
            base_url=settings.base_url(
                settings.option("caiso_base_url", "https://oasis.caiso.com/oasisapi"),
                "/oasisapi",
            ),
            min_interval_s=interval,
            max_attempts=settings.option("max_attempts", 5),
            base_delay_s=settings.option("base_delay_s", 1.0),
        ),
        session=session,  # type: ignore[arg-type]
    )


def _caiso_fetch(client, first: date, last: date) -> list[RawResponse]:
    start, _ = day_window(first)
    _, end = day_window(last)
    return [r for dataset in ("load", "lmp") for r in client.fetch(dataset, start, end)]


def _caiso_parse(
    client, responses: list[RawResponse], start: datetime | None, end: datetime | None
) -> pl.DataFrame:
    from energy_assets.sources.caiso import parse_caiso_responses

    return parse_caiso_responses(responses, tac_areas=client.config.tac_areas)


def _caiso_expected(settings: SourceSettings) -> pl.DataFrame:
    from energy_assets.sources.caiso import (
        CAISO_TOTAL_TAC_AREA,
        LMP_SERIES,
        LOAD_MARKET_RUN_IDS,
        LOAD_SERIES,
        TRADING_HUBS,
    )

    load = [(CAISO_TOTAL_TAC_AREA, LOAD_SERIES[m]) for m in LOAD_MARKET_RUN_IDS]
    lmp = [(hub, LMP_SERIES[t]) for hub in TRADING_HUBS for t in ("LMP", "MCE", "MCC", "MCL")]
    region, series = zip(*(load + lmp), strict=True)
    return pl.DataFrame({"region": list(region), "series": list(series)})


def _caiso_no_data(response: RawResponse) -> bool:
    from energy_assets.sources.caiso import is_no_data_zip

    return is_no_data_zip(response.body)


def _caiso_standin(world) -> Mapping[str, Any]:
    from energy_assets.offline.caiso_api import caiso_handlers

    return caiso_handlers(world)


class WeatherClient:
    """The Open-Meteo client with the points it serves: the configured BAs' weather points."""

    def __init__(self, client, points: pl.DataFrame) -> None:
        self.client = client
        self.points = points


def _weather_client(settings: SourceSettings) -> WeatherClient:
    from energy_assets.sources.openmeteo import OpenMeteoClient, OpenMeteoConfig

    client = OpenMeteoClient(
        OpenMeteoConfig(
            base_url=settings.base_url(
                settings.option("openmeteo_base_url", "https://archive-api.open-meteo.com/v1"),
                "/v1",
            ),
            # the free tier's weighted-call budget binds the real service, not our stand-in
            **({} if settings.live else {"max_weight_per_minute": 1e9, "max_weight_per_hour": 1e9}),
            max_attempts=settings.option("max_attempts", 5),
            base_delay_s=settings.option("base_delay_s", 1.0),
        )
    )
    return WeatherClient(client, weather_points(settings))


def weather_points(settings: SourceSettings) -> pl.DataFrame:
    """The representative point of each extracted balancing authority (code, lat, lon)."""
    return settings.balancing_authorities().select("code", "latitude", "longitude")


def _weather_fetch(client: WeatherClient, first: date, last: date) -> list[RawResponse]:
    start, _ = day_window(first)
    _, end = day_window(last)
    return client.client.fetch(client.points, start, end)


def _weather_parse(
    client: WeatherClient,
    responses: list[RawResponse],
    start: datetime | None,
    end: datetime | None,
) -> pl.DataFrame:
    from energy_assets.sources.openmeteo import parse_openmeteo_responses

    return parse_openmeteo_responses(responses, client.points, start=start, end=end)


def _weather_expected(settings: SourceSettings) -> pl.DataFrame:
    from energy_assets.sources.openmeteo import DEFAULT_VARIABLES

    return (
        settings.balancing_authorities()
        .select(pl.col("code").alias("region"))
        .join(pl.DataFrame({"series": DEFAULT_VARIABLES}), how="cross")
    )


def _weather_no_data(response: RawResponse) -> bool:
    from energy_assets.sources.openmeteo import is_all_null

    return is_all_null(response.body)


def _weather_standin(world) -> Mapping[str, Any]:
    from energy_assets.offline.openmeteo_api import openmeteo_handlers

    return openmeteo_handlers(world)


SOURCES: dict[str, SourceSpec] = {
    spec.name: spec
    for spec in (
        SourceSpec(
            name="eia930",
            description="EIA-930 hourly grid monitor from EIA API v2 electricity/rto "
            "(region-data, fuel-type-data, interchange-data): demand, day-ahead forecast, net "
            "generation, total interchange, generation by fuel and interchange by BA pair; "
            "period converted from UTC hour-ending to interval start. Units MW.",
            make_client=_eia_client,
            fetch_window=_eia_fetch,
            parse=_eia_parse,
            expected=_eia_expected,
            expected_description="every configured respondent (`sources.respondents`, null: "
            "every BA of the table): net_generation and total_interchange, and demand where "
            "the BA table's `reports_demand` is true",
            no_data=_eia_no_data,
            standin=_eia_standin,
            pool="eia_api",
            pool_limit=2,  # EIA asks for < 5 requests/s burst; two runs paging at once is safe
            max_days_per_request=1,
            max_days_per_run=31,
            revision_days=7,
        ),
        SourceSpec(
            name="caiso",
            description="CAISO OASIS SingleZip: SLD_FCST load (actual and DAM/2DA/7DA "
            "forecasts) by TAC area and day-ahead hourly LMP with its components at the three "
            "trading hubs.",
            make_client=_caiso_client,
            fetch_window=_caiso_fetch,
            parse=_caiso_parse,
            expected=_caiso_expected,
            expected_description="the CAISO total TAC area (`CA ISO-TAC`): actual load and the "
            "DAM, 2DA and 7DA forecasts; each trading hub: lmp and its energy, congestion and "
            "loss components",
            no_data=_caiso_no_data,
            standin=_caiso_standin,
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
            make_client=_weather_client,
            fetch_window=_weather_fetch,
            parse=_weather_parse,
            expected=_weather_expected,
            expected_description="every configured respondent's weather point: each default "
            "variable (temperature_2m, relative_humidity_2m, dew_point_2m, wind_speed_10m, "
            "shortwave_radiation, cloud_cover)",
            no_data=_weather_no_data,
            standin=_weather_standin,
            pool="open_meteo",
            pool_limit=1,  # the free API serves one request at a time per IP
            max_days_per_request=31,
            max_days_per_run=31,
            revision_days=7,  # ERA5 arrives about 5 days late
        ),
    )
}
