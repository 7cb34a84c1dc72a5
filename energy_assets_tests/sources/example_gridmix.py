"""Example source (the README's "Adding a source"): hourly renewable share per balancing authority.

A small JSON API, `GET <base>/share?date=YYYY-MM-DD&regions=A,B` answering
`{"date": ..., "rows": [{"hour": "2024-03-10T00:00Z", "region": "PJM", "share_pct": 21.5}]}`
with `hour` the UTC start of the hour and `"rows": []` when it has nothing for the day. Offline
it is served by the loopback stand-in from `standin` (deterministic values, no world needed).

This module is everything the source needs: client, parser, stand-in and the `SourceSpec`. The
one other line is its entry in `energy_assets/sources/registry.py`:
`SOURCES["gridmix"] = GRIDMIX`. From it the platform derives `raw/gridmix_responses` and
`raw/gridmix`, their contracts and checks (complete day: every configured respondent's
`renewable_share`), the client built from the run settings, and an input of `aligned/series`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import polars as pl
import requests

from energy_assets.days import day_window, days_between
from energy_assets.offline.server import StandInRequest, StandInResponse
from energy_assets.sources.base import (
    LONG_SCHEMA,
    MalformedResponse,
    RawResponse,
    RequestRefused,
    empty_long,
    load_json,
)
from energy_assets.sources.http import HttpFetcher, RetryPolicy
from energy_assets.sources.registry import SourceSettings, SourceSpec

NAME = "gridmix"
LIVE_URL = "https://gridmix.example.org/v1"
STANDIN_PATH = "/gridmix/v1"
SERIES = "renewable_share"
WIRE = {"hour": pl.String, "region": pl.String, "share_pct": pl.Float64}


@dataclass
class GridMixClient:
    base_url: str
    regions: list[str]
    fetcher: HttpFetcher

    def fetch_day(self, day: date) -> RawResponse:
        url = f"{self.base_url}/share"
        params = {"date": day.isoformat(), "regions": ",".join(self.regions)}
        response = self.fetcher.get(url, params=params, check=_check)
        return self.fetcher.record(NAME, "share", url, params, 0, response)


def _check(response: requests.Response) -> None:
    if response.status_code != 200:  # 429 and 5xx were retried by the fetcher already
        raise RequestRefused(f"GET {response.url} answered HTTP {response.status_code}")


def make_client(settings: SourceSettings) -> GridMixClient:
    regions = settings.balancing_authorities()["code"].to_list()
    policy = RetryPolicy(max_attempts=settings.option("max_attempts", 5))
    return GridMixClient(
        settings.base_url(LIVE_URL, STANDIN_PATH), regions, HttpFetcher(policy=policy)
    )


def fetch_window(client: GridMixClient, first: date, last: date) -> list[RawResponse]:
    return [client.fetch_day(day) for day in days_between(first, last)]


def parse(
    client: GridMixClient,
    responses: list[RawResponse],
    start: datetime | None,
    end: datetime | None,
) -> pl.DataFrame:
    frames = []
    for response in responses:
        try:
            rows = pl.DataFrame(load_json(response.body)["rows"], schema=WIRE, strict=True)
            frame = rows.select(
                pl.col("hour")
                .str.to_datetime("%Y-%m-%dT%H:%MZ", time_zone="UTC", time_unit="us")
                .alias("interval_start_utc"),
                "region",
                pl.lit(SERIES).alias("series"),
                pl.col("share_pct").alias("value"),
                pl.lit("%").alias("units"),
                pl.lit(NAME).alias("source"),
            )
        except (ValueError, KeyError, TypeError, pl.exceptions.PolarsError) as exc:
            raise MalformedResponse(response.request_url, f"not a gridmix answer ({exc})") from None
        frames.append(frame.cast(LONG_SCHEMA))  # type: ignore[arg-type]
    return pl.concat(frames) if frames else empty_long()


def expected(settings: SourceSettings) -> pl.DataFrame:
    regions = settings.balancing_authorities()["code"].to_list()
    return pl.DataFrame({"region": regions, "series": [SERIES] * len(regions)})


def no_data(response: RawResponse) -> bool:
    try:
        return load_json(response.body)["rows"] == []
    except (ValueError, KeyError, TypeError):
        return False


def share(region: str, hour: datetime) -> float:
    """The stand-in's deterministic value for a region and hour (0-100 %)."""
    digest = hashlib.sha256(f"{region}|{hour.isoformat()}".encode()).digest()
    return round(int.from_bytes(digest[:4]) / 2**32 * 100, 1)


def standin(world) -> dict:
    def handle(request: StandInRequest) -> StandInResponse:
        start, _ = day_window(request.one("date") or "")
        regions = (request.one("regions") or "").split(",")
        hours = [start + timedelta(hours=h) for h in range(24)]
        rows = [
            {"hour": h.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ"), "region": r,
             "share_pct": share(r, h)}
            for r in regions for h in hours
        ]  # fmt: skip
        body = json.dumps({"date": request.one("date"), "rows": rows}).encode()
        return StandInResponse(200, body, {"Content-Type": "application/json"})

    return {STANDIN_PATH + "/": handle}


GRIDMIX = SourceSpec(
    name=NAME,
    description="Example: hourly renewable share (%) of each balancing authority's "
    "generation, from a small JSON API.",
    make_client=make_client,
    fetch_window=fetch_window,
    parse=parse,
    expected=expected,
    expected_description="every configured respondent: renewable_share",
    no_data=no_data,
    standin=standin,
    pool="gridmix_api",
    pool_limit=1,
    max_days_per_request=1,
    max_days_per_run=31,
    revision_days=0,
)
