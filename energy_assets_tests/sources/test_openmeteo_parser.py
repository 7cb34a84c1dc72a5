"""The Open-Meteo parser against the recorded archive files and hand-written bodies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from energy_assets.sources.base import LONG_SCHEMA, MalformedResponse, RawResponse, RefusedValue
from energy_assets.sources.http import SourceError
from energy_assets.sources.openmeteo import normalise_unit, parse_openmeteo_responses

SAO_PAULO = (
    "openmeteo_archive_hourly-and-daily_SaoPaulo_2022-12-29_tz-America-Sao_Paulo_tpisel.json"
)
OCEAN = "openmeteo_archive_hourly_ocean_2022-12-29_tz-Etc-GMT-plus9_tpisel.json"
DAILY_ONLY = "openmeteo_archive_daily_SaoPaulo_2022-12-29_2023-01-08_tpisel.json"
MULTIVAR = "openmeteo_archive_multivar_trimmed_frenck.json"


def response(body: bytes, **params: object) -> RawResponse:
    return RawResponse(
        source="open_meteo",
        dataset="archive_hourly",
        request_url="https://archive-api.open-meteo.com/v1/archive?latitude=...",
        request_params=params,
        page=0,
        status=200,
        content_type="application/json; charset=utf-8",
        fetched_at_utc=datetime.now(UTC),
        body=body,
    )


def points(*rows: tuple[str, float, float]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "code": [r[0] for r in rows],
            "latitude": [r[1] for r in rows],
            "longitude": [r[2] for r in rows],
        }
    )


@pytest.fixture(scope="module")
def api(realdata: Path) -> Path:
    return realdata / "api"


def test_sao_paulo_local_times_are_converted_with_utc_offset_seconds(api: Path) -> None:
    body = (api / SAO_PAULO).read_bytes()
    recorded = json.loads(body)
    assert recorded["utc_offset_seconds"] == -10800
    parsed = parse_openmeteo_responses(
        [response(body, latitude="-15.8", longitude="-47.9", timezone="America/Sao_Paulo")],
        points(("SAO", -15.8, -47.9)),
    )
    assert parsed.schema == LONG_SCHEMA
    # 2022-12-29T00:00 at UTC-3 is 03:00 UTC; 24 hourly rows, the daily block ignored.
    assert parsed["interval_start_utc"].to_list() == [
        datetime(2022, 12, 29, 3, tzinfo=UTC) + timedelta(hours=i) for i in range(24)
    ]
    assert parsed["value"].to_list() == recorded["hourly"]["temperature_2m"]
    assert set(parsed["series"]) == {"temperature_2m"}
    assert set(parsed["units"]) == {"degC"} and set(parsed["source"]) == {"open_meteo"}
    assert set(parsed["region"]) == {"SAO"}


def test_fixed_offset_zone_file_is_converted_too(api: Path) -> None:
    body = (api / OCEAN).read_bytes()
    parsed = parse_openmeteo_responses(
        [response(body, latitude="-12.5", longitude="-130.8", timezone="Etc/GMT+9")],
        points(("SEA", -12.5, -130.8)),
    )
    assert json.loads(body)["utc_offset_seconds"] == -32400
    assert parsed["interval_start_utc"][0] == datetime(2022, 12, 29, 9, tzinfo=UTC)
    assert parsed.height == 24


def test_several_variables_get_ascii_units_from_hourly_units(api: Path) -> None:
    body = (api / MULTIVAR).read_bytes()
    recorded = json.loads(body)
    parsed = parse_openmeteo_responses(
        [response(body, latitude="52.27", longitude="6.82", timezone="Europe/Amsterdam")],
        points(("NLD", 52.27, 6.82)),
    )
    units = dict(parsed.select("series", "units").unique().iter_rows())
    assert units == {
        "temperature_2m": "degC",
        "wind_speed_10m": "km/h",
        "soil_moisture_index_0_to_7cm": "fraction",
    }
    # The file's own utc_offset_seconds (7200) is applied as stated, whatever the season.
    first = datetime.fromisoformat(recorded["hourly"]["time"][0]).replace(tzinfo=UTC)
    assert parsed["interval_start_utc"].min() == first - timedelta(seconds=7200)
    wind = parsed.filter(pl.col("series") == "wind_speed_10m")["value"].to_list()
    assert wind == recorded["hourly"]["wind_speed_10m"]


def test_daily_only_file_is_refused_clearly(api: Path) -> None:
    body = (api / DAILY_ONLY).read_bytes()
    with pytest.raises(SourceError, match=r"no hourly\.time array"):
        parse_openmeteo_responses(
            [response(body, latitude="-15.8", longitude="-47.9")], points(("SAO", -15.8, -47.9))
        )


def location(lat: float, lon: float, values: list[float | None]) -> dict[str, object]:
    return {
        "latitude": lat,
        "longitude": lon,
        "generationtime_ms": 0.1,
        "utc_offset_seconds": 0,
        "timezone": "GMT",
        "timezone_abbreviation": "GMT",
        "elevation": 10.0,
        "hourly_units": {"time": "iso8601", "shortwave_radiation": "W/m²"},
        "hourly": {
            "time": [f"2024-07-01T{h:02d}:00" for h in range(len(values))],
            "shortwave_radiation": values,
        },
    }


GMT_PARAMS = {"start_date": "2024-07-01", "end_date": "2024-07-01", "timezone": "GMT"}


def test_locations_are_matched_by_request_order_not_by_snapped_coordinates() -> None:
    # The returned coordinates are snapped and here even closer to the *other* request.
    body = json.dumps([location(40.0, -100.0, [1.0, 2.0]), location(34.1, -118.2, [3.0, None])])
    parsed = parse_openmeteo_responses(
        [response(body.encode(), latitude="34.05,40.01", longitude="-118.25,-100", **GMT_PARAMS)],
        points(("LA", 34.05, -118.25), ("KS", 40.01, -100.0)),
    )
    by_region = {region: part["value"].to_list() for (region,), part in parsed.group_by("region")}
    assert by_region == {"LA": [1.0, 2.0], "KS": [3.0, None]}
    assert set(parsed["units"]) == {"W/m2"}


def test_authorities_sharing_a_point_each_get_the_rows() -> None:
    body = json.dumps(location(34.1, -118.2, [5.0]))
    parsed = parse_openmeteo_responses(
        [response(body.encode(), latitude="34.05", longitude="-118.25", **GMT_PARAMS)],
        points(("AAA", 34.05, -118.25), ("BBB", 34.05, -118.25)),
    )
    assert parsed["region"].to_list() == ["AAA", "BBB"]


def test_only_hours_of_the_requested_window_are_kept() -> None:
    body = json.dumps(location(34.1, -118.2, [float(h) for h in range(24)])).encode()
    raw = response(body, latitude="34.05", longitude="-118.25", **GMT_PARAMS)
    where = points(("LA", 34.05, -118.25))
    assert parse_openmeteo_responses([raw], where).height == 24
    start = datetime(2024, 7, 1, 5, tzinfo=UTC)
    narrowed = parse_openmeteo_responses([raw], where, start, start + timedelta(hours=3))
    assert narrowed["value"].to_list() == [5.0, 6.0, 7.0]


def test_a_location_count_mismatch_is_an_error() -> None:
    body = json.dumps([location(34.1, -118.2, [1.0])]).encode()
    with pytest.raises(SourceError, match="1 locations in the body but 2 requested"):
        parse_openmeteo_responses(
            [response(body, latitude="34.05,40", longitude="-118.25,-100", **GMT_PARAMS)],
            points(("LA", 34.05, -118.25), ("KS", 40.0, -100.0)),
        )


def test_a_point_missing_from_the_table_is_an_error() -> None:
    body = json.dumps(location(34.1, -118.2, [1.0])).encode()
    with pytest.raises(SourceError, match="not a point in the points table"):
        parse_openmeteo_responses(
            [response(body, latitude="34.05", longitude="-118.25", **GMT_PARAMS)],
            points(("KS", 40.0, -100.0)),
        )


def test_an_error_body_names_the_reason() -> None:
    body = b'{"error":true,"reason":"Daily API request limit exceeded. Please try again tomorrow."}'
    with pytest.raises(SourceError, match="Daily API request limit exceeded"):
        parse_openmeteo_responses(
            [response(body, latitude="1", longitude="1")], points(("X", 1.0, 1.0))
        )


def test_units_are_normalised_to_ascii() -> None:
    assert [normalise_unit(u) for u in ["°C", "%", "km/h", "W/m²", "°", "mm"]] == [
        "degC",
        "%",
        "km/h",
        "W/m2",
        "deg",
        "mm",
    ]


# --- what is refused rather than guessed ---------------------------------------------------------


def test_a_local_time_file_without_utc_offset_seconds_is_refused_not_read_as_utc(api: Path):
    recorded = json.loads((api / OCEAN).read_bytes())
    del recorded["utc_offset_seconds"]  # timezone still says Etc/GMT+9
    with pytest.raises(RefusedValue, match=r"local to 'Etc/GMT\+9'.*no utc_offset_seconds"):
        parse_openmeteo_responses(
            [response(json.dumps(recorded).encode(), latitude="-12.5", longitude="-130.8")],
            points(("SEA", -12.5, -130.8)),
        )


def test_a_gmt_file_without_utc_offset_seconds_is_utc() -> None:
    body = location(34.1, -118.2, [1.0])
    del body["utc_offset_seconds"]
    parsed = parse_openmeteo_responses(
        [response(json.dumps(body).encode(), latitude="34.05", longitude="-118.25", **GMT_PARAMS)],
        points(("LA", 34.05, -118.25)),
    )
    assert parsed["interval_start_utc"].to_list() == [datetime(2024, 7, 1, tzinfo=UTC)]


@pytest.mark.parametrize("value", ["12.5", "n/a", True, [1.0]])
def test_values_that_are_not_json_numbers_are_refused_not_nulled(value: object) -> None:
    body = json.dumps(location(34.1, -118.2, [1.0, value])).encode()  # type: ignore[list-item]
    with pytest.raises(RefusedValue, match=r"hourly\.shortwave_radiation\[1\]"):
        parse_openmeteo_responses(
            [response(body, latitude="34.05", longitude="-118.25", **GMT_PARAMS)],
            points(("LA", 34.05, -118.25)),
        )


@pytest.mark.parametrize("literal", [b"1e999", b"NaN", b"-Infinity"])
def test_non_finite_numbers_are_refused(literal: bytes) -> None:
    body = json.dumps(location(34.1, -118.2, [1.0, 2.0])).encode().replace(b"2.0", literal)
    with pytest.raises(MalformedResponse):
        parse_openmeteo_responses(
            [response(body, latitude="34.05", longitude="-118.25", **GMT_PARAMS)],
            points(("LA", 34.05, -118.25)),
        )


@pytest.mark.parametrize("unit", ["°F", "mp/h", "BTU", None])
def test_units_the_platform_does_not_know_are_refused(unit: str | None) -> None:
    body = location(34.1, -118.2, [1.0])
    body["hourly_units"] = {"time": "iso8601", "shortwave_radiation": unit}
    with pytest.raises(RefusedValue, match=r"hourly_units\.shortwave_radiation"):
        parse_openmeteo_responses(
            [response(json.dumps(body).encode(), latitude="34.05", longitude="-118.25")],
            points(("LA", 34.05, -118.25)),
        )
