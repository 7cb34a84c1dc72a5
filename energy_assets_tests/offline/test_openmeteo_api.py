"""The Open-Meteo archive stand-in: the recorded JSON layout, list vs object, GMT times, snapped
coordinates, nulls, errors, and a lossless round trip through the real client and parser."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import requests

from energy_assets.offline.generator import GeneratorConfig, SyntheticWorld
from energy_assets.offline.openmeteo_api import openmeteo_handlers
from energy_assets.offline.server import StandInServer
from energy_assets.sources.openmeteo import (
    DEFAULT_VARIABLES,
    OpenMeteoClient,
    OpenMeteoConfig,
    ba_points,
    normalise_unit,
    parse_openmeteo_responses,
)
from energy_assets_tests.offline.fakes_caiso_weather import CaisoWeatherWorld

OCEAN = "openmeteo_archive_hourly_ocean_2022-12-29_tz-Etc-GMT-plus9_tpisel.json"
WORLD = CaisoWeatherWorld()
DAY = datetime(2024, 11, 3, tzinfo=UTC)


@pytest.fixture(scope="module")
def server() -> Iterator[StandInServer]:
    with StandInServer(openmeteo_handlers(WORLD)) as running:
        yield running


def archive(server: StandInServer, **params: object) -> requests.Response:
    query = {"start_date": "2024-11-03", "end_date": "2024-11-03", **params}
    return requests.get(server.base_url + "/v1/archive", params=query, timeout=30)


def test_one_location_answers_an_object_with_the_recorded_keys_in_order(
    server: StandInServer, realdata: Path
) -> None:
    recorded = json.loads((realdata / "api" / OCEAN).read_text())
    answer = archive(server, latitude="-12.5", longitude="-130.8", hourly="temperature_2m")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("application/json")
    ours = answer.json()
    assert isinstance(ours, dict)
    assert list(ours) == list(recorded)
    assert list(ours["hourly_units"]) == list(recorded["hourly_units"])
    assert ours["hourly_units"] == recorded["hourly_units"]  # {"time": "iso8601", "...": "°C"}
    assert list(ours["hourly"]) == list(recorded["hourly"])
    assert {type(ours[k]) for k in ("latitude", "longitude", "elevation")} == {float}
    assert b"\n" not in answer.content  # compact, as served (the recording was pretty-printed)


def test_several_locations_answer_a_list_in_request_order_with_snapped_coordinates(
    server: StandInServer,
) -> None:
    answer = archive(
        server, latitude="34.05,47.66", longitude="-118.25,-117.43", hourly="cloud_cover"
    )
    ours = answer.json()
    assert isinstance(ours, list) and len(ours) == 2
    assert [round(o["latitude"]) for o in ours] == [34, 48]
    assert ours[0]["latitude"] != 34.05 and ours[0]["longitude"] != -118.25
    assert abs(ours[0]["latitude"] - 34.05) < 0.1


def test_gmt_times_are_hour_strings_without_offset(server: StandInServer) -> None:
    ours = archive(server, latitude="34.05", longitude="-118.25", hourly="temperature_2m").json()
    assert (ours["timezone"], ours["utc_offset_seconds"]) == ("GMT", 0)
    times = ours["hourly"]["time"]
    assert len(times) == 24 and times[0] == "2024-11-03T00:00" and times[-1] == "2024-11-03T23:00"
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:00", t) for t in times)


def test_missing_values_are_json_null(server: StandInServer) -> None:
    answer = archive(
        server,
        latitude="34.05",
        longitude="-118.25",
        hourly=",".join(DEFAULT_VARIABLES),
        end_date="2024-11-05",
    )
    hourly = answer.json()["hourly"]
    assert any(v is None for name in DEFAULT_VARIABLES for v in hourly[name])
    assert b":null" in answer.content or b",null" in answer.content


def test_a_named_zone_gets_one_offset_for_the_whole_series(server: StandInServer) -> None:
    ours = archive(
        server,
        latitude="34.05",
        longitude="-118.25",
        hourly="temperature_2m",
        timezone="America/Los_Angeles",
    ).json()
    assert ours["utc_offset_seconds"] in (-7 * 3600, -8 * 3600)  # today's offset, not 2024's
    assert ours["hourly"]["time"][0] == "2024-11-03T00:00" and len(ours["hourly"]["time"]) == 24


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        (
            {"hourly": "tempeture_2m"},
            "Cannot initialize WeatherVariable from invalid String value tempeture_2m for key "
            "hourly",
        ),
        ({"hourly": "temperature_2m", "latitude": "91"}, "Latitude must be in range"),
        ({"hourly": "temperature_2m", "end_date": "2024-11-01"}, "End-date must be larger"),
        ({"hourly": "temperature_2m", "start_date": "03.11.2024"}, "Invalid date format"),
    ],
)
def test_bad_requests_answer_400_with_a_reason(
    server: StandInServer, params: dict[str, str], reason: str
) -> None:
    answer = archive(server, **{"latitude": "34.05", "longitude": "-118.25", **params})
    assert answer.status_code == 400
    body = answer.json()
    assert body["error"] is True and reason in body["reason"]


def _expected_from_world(
    world: object, points: pl.DataFrame, start: datetime, end: datetime
) -> pl.DataFrame:
    """The world's values at the coordinates as sent (5 decimals), one row set per BA code."""
    sent = points.select("code", pl.col("latitude").round(5), pl.col("longitude").round(5))
    coords = list(sent.select("latitude", "longitude").unique().iter_rows())
    truth = world.weather(start, end, coords)  # type: ignore[attr-defined]
    return (
        truth.join(sent, on=["latitude", "longitude"])
        .select(
            "interval_start_utc",
            pl.col("code").alias("region"),
            pl.col("variable").alias("series"),
            "value",
        )
        .sort("interval_start_utc", "region", "series")
    )


def test_round_trip_through_client_and_parser_equals_the_world(server: StandInServer) -> None:
    points = ba_points()
    client = OpenMeteoClient(
        OpenMeteoConfig(base_url=server.base_url + "/v1"), sleep=lambda s: None
    )
    start, end = DAY, DAY + timedelta(days=2)
    parsed = parse_openmeteo_responses(client.fetch(points, start, end), points)
    expected = _expected_from_world(WORLD, points, start, end)
    assert parsed.select(expected.columns).equals(expected)
    assert parsed["value"].null_count() > 0  # nulls survived the trip
    units = dict(parsed.select("series", "units").unique().iter_rows())
    assert units == {
        "temperature_2m": "degC",
        "relative_humidity_2m": "%",
        "dew_point_2m": "degC",
        "wind_speed_10m": "km/h",
        "shortwave_radiation": "W/m2",
        "cloud_cover": "%",
    }
    assert {normalise_unit(u) for u in units.values()} == set(units.values())


def test_synthetic_world_round_trip_over_the_fall_back_day() -> None:
    world = SyntheticWorld(GeneratorConfig(seed=9, null_rate=0.05))
    points = ba_points().filter(pl.col("code").is_in(["CISO", "BPAT", "ERCO", "PJM", "NYIS"]))
    with StandInServer(openmeteo_handlers(world)) as running:
        client = OpenMeteoClient(
            OpenMeteoConfig(base_url=running.base_url + "/v1", locations_per_call=2),
            sleep=lambda s: None,
        )
        responses = client.fetch(points, DAY, DAY + timedelta(days=1))
    assert len(responses) == 3
    parsed = parse_openmeteo_responses(responses, points)
    expected = _expected_from_world(world, points, DAY, DAY + timedelta(days=1))
    assert parsed.select(expected.columns).equals(expected)
    hours = parsed["interval_start_utc"].unique().sort()
    assert hours.to_list() == [DAY + timedelta(hours=i) for i in range(24)]
