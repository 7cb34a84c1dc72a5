"""The EIA parser against every real recorded EIA body, and its rules on synthetic bodies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import polars as pl
import pytest
import requests

from energy_assets.sources.base import (
    LONG_SCHEMA,
    MalformedResponse,
    RawResponse,
    RefusedValue,
    raw_responses_frame,
    responses_from_frame,
)
from energy_assets.sources.eia import (
    EIAClient,
    EIAConfig,
    eia_parse_report,
    parse_eia_body,
    parse_eia_responses,
)
from energy_assets.sources.http import SourceError
from energy_assets_tests.sources.eia_recordings import Recording, eia_recordings

REGION_AEC = "eia_region-data_AEC_D_2019-01-02T00_openbb_cassette.yaml"
FUEL_AEC = "eia_fuel-type-data_AEC_COL_2019-01-02T00_openbb_cassette.yaml"
INTERCHANGE_AEC = "eia_interchange-data_AEC-MISO_2019-01-02T00_openbb_cassette.yaml"
SUB_BA = "eia_region-sub-ba-data_CISO-PGAE_2019-01-02T00_openbb_cassette.yaml"
INTERCHANGE_25 = "eia_interchange-data_FPC-FPL_2020-01-06_25rows_electricitymaps.json"
TRIMMED_BPAT = "eia_region-data_BPAT_D_2023-05-01_trimmed_electricitymaps.json"
EMPTY = "eia_fuel-type-data_empty-result_electricitymaps.json"
NULL_VALUE = "eia_fuel-type-data_null-value_edited_electricitymaps.json"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture(scope="module")
def recordings(realdata) -> dict[str, Recording]:
    found = eia_recordings(realdata)
    if not found:
        pytest.skip("no eia_* recordings in realdata/api")
    return found


def rows(frame: pl.DataFrame) -> list[tuple]:
    return frame.select("interval_start_utc", "region", "series", "value").rows()


# --- every recorded file ----------------------------------------------------------------------


def test_every_recorded_eia_body_parses_to_the_long_schema_or_is_rejected_clearly(recordings):
    parsed = 0
    for name, recording in recordings.items():
        if "sub-ba" in name:
            with pytest.raises(SourceError, match="sub-ba-data"):
                parse_eia_body(recording.body)
            continue
        frame = parse_eia_body(recording.body)
        assert frame.schema == pl.Schema(LONG_SCHEMA), name
        declared = json.loads(recording.body)["response"]["total"]
        assert frame.height <= int(declared), name
        assert set(frame["source"]) <= {"eia930"}
        assert set(frame["units"]) <= {"MW"}
        parsed += 1
    assert parsed >= 7  # the MANIFEST lists 8 EIA files, one of them sub-BA


def test_region_cassette_hour_ending_period_becomes_hour_beginning(recordings):
    frame = parse_eia_body(recordings[REGION_AEC].body)
    # period "2019-01-02T00" (UTC, hour ending) -> the hour that starts 2019-01-01 23:00 UTC
    assert rows(frame) == [(utc(2019, 1, 1, 23), "AEC", "demand", 486.0)]
    assert frame["units"].to_list() == ["MW"]
    assert frame["source"].to_list() == ["eia930"]


def test_fuel_type_cassette_keeps_negative_generation(recordings):
    frame = parse_eia_body(recordings[FUEL_AEC].body)
    assert rows(frame) == [(utc(2019, 1, 1, 23), "AEC", "generation_col", -3.0)]


def test_interchange_cassette_names_series_after_the_receiving_ba(recordings):
    frame = parse_eia_body(recordings[INTERCHANGE_AEC].body)
    assert rows(frame) == [(utc(2019, 1, 1, 23), "AEC", "interchange_to_MISO", 112.0)]


def test_sub_ba_cassette_is_rejected_with_a_clear_error(recordings):
    with pytest.raises(SourceError, match=r"region-sub-ba-data.*not ingested"):
        parse_eia_body(recordings[SUB_BA].body)


def test_pre_2024_numeric_values_and_total_parse(recordings):
    body = json.loads(recordings[INTERCHANGE_25].body)
    assert isinstance(body["response"]["total"], int)  # the recording really is numeric
    frame = parse_eia_body(recordings[INTERCHANGE_25].body)
    assert frame.height == 25
    first, last = rows(frame)[0], rows(frame)[-1]
    assert first == (utc(2020, 1, 6, 5), "FPC", "interchange_to_FPL", -329.0)
    assert last == (utc(2020, 1, 7, 5), "FPC", "interchange_to_FPL", -368.0)
    assert frame["interval_start_utc"].diff().drop_nulls().unique().to_list() == [
        timedelta(hours=1)
    ]


def test_trimmed_body_with_total_3_and_2_rows_parses_sorted(recordings):
    frame = parse_eia_body(recordings[TRIMMED_BPAT].body)
    # recorded in descending order (T11, T10); the parser returns the platform's order
    assert rows(frame) == [
        (utc(2023, 5, 1, 9), "BPAT", "demand", 4792.0),
        (utc(2023, 5, 1, 10), "BPAT", "demand", 6215.0),
    ]


def test_empty_result_is_an_empty_long_table(recordings):
    frame = parse_eia_body(recordings[EMPTY].body)
    assert frame.height == 0
    assert frame.schema == pl.Schema(LONG_SCHEMA)


def test_null_value_is_kept_as_null(recordings):
    frame = parse_eia_body(recordings[NULL_VALUE].body)
    assert rows(frame) == [
        (utc(2022, 10, 31, 10), "PGE", "generation_ng", None),
        (utc(2022, 10, 31, 11), "PGE", "generation_ng", 400.0),
    ]


# --- recorded bodies through the client (a session that replays the recording) ---------------


class ReplaySession:
    """A requests.Session stand-in answering every GET with one recorded body."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.calls: list[tuple[str, list[tuple[str, str]]]] = []

    def get(self, url, params=None, headers=None, timeout=None) -> requests.Response:
        self.calls.append((url, list(params or [])))
        response = requests.Response()
        response.status_code = 200
        response._content = self.body
        response.headers["Content-Type"] = "application/json"
        response.url = requests.Request("GET", url, params=params).prepare().url
        return response


def test_client_asks_the_recorded_window_and_parses_the_recorded_body(recordings):
    recording = recordings[REGION_AEC]
    session = ReplaySession(recording.body)
    client = EIAClient(
        EIAConfig(api_key="MOCK_API_KEY", respondents=["AEC"]),
        session=session,  # type: ignore[arg-type]
        sleep=lambda s: None,
    )
    # The interval starting 2019-01-01 23:00 is EIA's period 2019-01-02T00.
    pages = client.fetch("region-data", utc(2019, 1, 1, 23), utc(2019, 1, 2, 0))
    recorded = parse_qs(urlsplit(recording.uri).query)
    sent = dict(session.calls[0][1])
    for name in ("start", "end", "frequency", "data[0]", "offset", "length"):
        assert [sent[name]] == recorded[name], name
    assert sent["facets[respondent][]"] == "AEC"
    assert rows(parse_eia_responses(pages)) == [(utc(2019, 1, 1, 23), "AEC", "demand", 486.0)]
    assert b"MOCK_API_KEY" not in pages[0].body  # the echo is redacted in the stored body


def test_trimmed_body_is_caught_by_the_client_paging_check(recordings):
    session = ReplaySession(recordings[TRIMMED_BPAT].body)
    client = EIAClient(EIAConfig(api_key="k"), session=session, sleep=lambda s: None)  # type: ignore[arg-type]
    with pytest.raises(SourceError, match="holds 2 rows but `total`=3"):
        client.fetch("region-data", utc(2023, 5, 1, 9), utc(2023, 5, 1, 11))


# --- synthetic bodies: the rules the recordings do not show ----------------------------------


def body(data: list[dict], total: object = None) -> dict:
    return {"response": {"total": len(data) if total is None else total, "data": data}}


def region_row(period: str, value: object, type_: str = "D", respondent: str = "AEC") -> dict:
    return {
        "period": period,
        "respondent": respondent,
        "type": type_,
        "value": value,
        "value-units": "megawatthours",
    }


def test_numbers_numeric_strings_and_null_mix_in_one_body():
    frame = parse_eia_body(
        body(
            [
                region_row("2024-01-01T01", 10),
                region_row("2024-01-01T02", "11.5"),
                region_row("2024-01-01T03", None),
                region_row("2024-01-01T04", -2.25),
            ]
        )
    )
    assert frame["value"].to_list() == [10.0, 11.5, None, -2.25]
    assert frame["interval_start_utc"].to_list() == [utc(2024, 1, 1, h) for h in range(4)]


def test_region_types_map_to_platform_series_and_unknown_types_are_kept():
    frame = parse_eia_body(
        body([region_row("2024-01-01T01", 1, t) for t in ("D", "DF", "NG", "TI", "XX")])
    )
    assert sorted(frame["series"]) == [
        "demand",
        "demand_forecast_da",
        "net_generation",
        "total_interchange",
        "type_xx",
    ]
    assert eia_parse_report(frame)["unknown_region_types"] == ["type_xx"]


def test_unknown_fuel_types_are_kept_and_reported():
    data = [
        {"period": "2024-01-01T01", "respondent": "ERCO", "fueltype": code, "value": "5"}
        for code in ("SUN", "ZZZ")
    ]
    frame = parse_eia_body(body(data))
    assert sorted(frame["series"]) == ["generation_sun", "generation_zzz"]
    assert eia_parse_report(frame)["unknown_fuel_types"] == ["zzz"]


def test_duplicates_are_kept_and_counted():
    frame = parse_eia_body(body([region_row("2024-01-01T01", 1), region_row("2024-01-01T01", 2)]))
    assert frame["value"].to_list() == [1.0, 2.0]
    report = eia_parse_report(frame)
    assert (report["duplicate_rows"], report["duplicate_keys"]) == (1, 1)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([region_row("2024-01-01T01", "n/a")], r"`value` 'n/a' at period 2024-01-01T01"),
        ([region_row("2023-03-20T00-07", 1)], "not UTC hourly"),
        ([{"period": "2024-01-01T01", "respondent": "AEC", "type": "D"}], r"data\[0\]=value"),
        ([{"period": "2024-01-01T01", "foo": "AEC", "value": 1}], "match no known rto route"),
    ],
)
def test_unusable_rows_raise_naming_the_field_and_value(data, message):
    with pytest.raises(SourceError, match=message):
        parse_eia_body(body(data))


@pytest.mark.parametrize(
    "error_body",
    [
        {"error": "Invalid frequency 'millenially' provided.", "code": 400},
        {"error": {"code": "API_KEY_MISSING", "message": "No api_key was supplied."}},
    ],
)
def test_error_bodies_are_errors_not_empty_data(error_body):
    with pytest.raises(SourceError, match="error"):
        parse_eia_body(json.dumps(error_body).encode())


def test_body_stored_under_another_route_is_rejected():
    with pytest.raises(SourceError, match="stored as 'fuel-type-data' holds region-data"):
        parse_eia_body(body([region_row("2024-01-01T01", 1)]), route="fuel-type-data")


def test_stored_responses_parse_again_after_the_raw_table_round_trip(recordings):
    session = ReplaySession(recordings[INTERCHANGE_AEC].body)
    client = EIAClient(EIAConfig(respondents=["AEC"]), session=session, sleep=lambda s: None)  # type: ignore[arg-type]
    pages = client.fetch("interchange-data", utc(2019, 1, 1, 23), utc(2019, 1, 2, 0))
    again = responses_from_frame(raw_responses_frame(pages))
    assert parse_eia_responses(again).equals(parse_eia_responses(pages))


def test_parse_eia_responses_refuses_other_sources(recordings):
    session = ReplaySession(recordings[REGION_AEC].body)
    client = EIAClient(EIAConfig(), session=session, sleep=lambda s: None)  # type: ignore[arg-type]
    pages = client.fetch("region-data", utc(2019, 1, 1, 23), utc(2019, 1, 2, 0))
    foreign = [pages[0].__class__(**{**pages[0].__dict__, "source": "caiso_oasis"})]
    with pytest.raises(SourceError, match="'caiso_oasis' response"):
        parse_eia_responses(foreign)


# --- values that must never be stored as numbers ----------------------------------------------


def stored(data: bytes) -> RawResponse:
    return RawResponse(
        source="eia930",
        dataset="region-data",
        request_url="https://api.eia.gov/v2/electricity/rto/region-data/data/?api_key=REDACTED",
        request_params={},
        page=0,
        status=200,
        content_type="application/json",
        fetched_at_utc=utc(2024, 1, 2, 0),
        body=data,
    )


@pytest.mark.parametrize("value", ["1e999", "inf", "-Infinity", "NaN", "nan"])
def test_non_finite_numeric_strings_are_refused_not_stored(value):
    with pytest.raises(RefusedValue, match=rf"`value` '{value}' at period 2024-01-01T01"):
        parse_eia_body(body([region_row("2024-01-01T01", value)]))


@pytest.mark.parametrize("literal", [b"1e999", b"NaN", b"-Infinity"])
def test_non_finite_json_numbers_are_refused_naming_the_response(literal):
    text = json.dumps(body([region_row("2024-01-01T01", 0)])).encode()
    with pytest.raises(MalformedResponse) as raised:
        parse_eia_responses([stored(text.replace(b'"value": 0', b'"value": ' + literal))])
    assert "region-data/data/?api_key=REDACTED" in str(raised.value)


@pytest.mark.parametrize("value", [True, [], {"v": 1}, "1_000", "0x10", "１２"])
def test_values_that_are_not_plain_numbers_are_refused(value):
    with pytest.raises(RefusedValue, match="`value`"):
        parse_eia_body(body([region_row("2024-01-01T01", value)]))


def test_an_unknown_unit_is_refused_not_passed_through():
    row = {**region_row("2024-01-01T01", 5), "value-units": "gigawatthours"}
    with pytest.raises(RefusedValue, match=r"`value-units` \['gigawatthours'\]"):
        parse_eia_body(body([row]))


@pytest.mark.parametrize(
    "data",
    [b"\xff\xfe\x00garbage", b'{"response": {"data": [1, 2]}}', b"[" * 100_000, b""],
)
def test_malformed_bodies_raise_a_typed_error_naming_the_response(data):
    with pytest.raises(MalformedResponse) as raised:
        parse_eia_responses([stored(data)])
    assert raised.value.url.endswith("api_key=REDACTED")
