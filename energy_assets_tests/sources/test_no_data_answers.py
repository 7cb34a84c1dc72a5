"""Each registered source tells upstream's "no data" answer from data and from failures."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from energy_assets.offline.caiso_api import NO_DATA, oasis_error_zip, zip_members
from energy_assets.sources.base import RawResponse
from energy_assets.sources.registry import SOURCES

REAL = Path(__file__).resolve().parents[2] / "../shared/realdata/api"


def response(body: bytes) -> RawResponse:
    return RawResponse("x", "d", "http://x", {}, 0, 200, "", datetime.now(UTC), body)


def no_data(source: str, body: bytes) -> bool:
    return SOURCES[source].no_data(response(body))


def real(name: str) -> bytes:
    path = REAL / name
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path.read_bytes()


def test_eia_recorded_empty_result_is_no_data_and_a_recorded_page_is_not():
    assert no_data("eia930", real("eia_fuel-type-data_empty-result_electricitymaps.json"))
    assert not no_data(
        "eia930", real("eia_region-data_BPAT_D_2023-05-01_trimmed_electricitymaps.json")
    )


@pytest.mark.parametrize(
    ("payload", "empty"),
    [
        ({"response": {"total": "0", "data": []}}, True),
        ({"response": {"total": 0, "data": []}}, True),
        ({"response": {"total": "24", "data": None}}, True),
        ({"response": {"total": "1", "data": [{"value": "5"}]}}, False),
        ({"error": "Not found.", "code": 404}, False),
    ],
)
def test_eia_total_zero_or_null_data_is_no_data(payload, empty):
    assert no_data("eia930", json.dumps(payload).encode()) is empty


def test_oasis_error_1000_is_no_data_and_other_errors_or_data_are_not():
    assert no_data("caiso", oasis_error_zip(*NO_DATA))
    assert not no_data("caiso", oasis_error_zip(1002, "Invalid request"))
    assert not no_data("caiso", zip_members([("SLD_FCST.csv", b"INTERVALSTARTTIME_GMT\n")]))
    assert not no_data("caiso", b"not a zip")


def test_open_meteo_hours_of_nulls_are_no_data():
    nulls = {"hourly": {"time": ["2024-03-05T00:00"], "temperature_2m": [None]}}
    value = {"hourly": {"time": ["2024-03-05T00:00"], "temperature_2m": [None, 3.5]}}
    assert no_data("weather", json.dumps([nulls, nulls]).encode())
    assert not no_data("weather", json.dumps([nulls, value]).encode())
    assert not no_data("weather", json.dumps({"error": True, "reason": "x"}).encode())
    assert not no_data("weather", real("openmeteo_archive_multivar_trimmed_frenck.json"))
