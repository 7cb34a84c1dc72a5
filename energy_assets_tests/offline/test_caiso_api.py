"""The OASIS stand-in: same wire format as the recorded zips, DST operating days, error zips,
and a lossless round trip through the real client and parser."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import requests

from energy_assets.offline.caiso_api import caiso_handlers
from energy_assets.offline.generator import GeneratorConfig, SyntheticWorld
from energy_assets.offline.server import StandInServer
from energy_assets.sources.caiso import (
    LMP_SERIES,
    LOAD_SERIES,
    TRADING_HUBS,
    CAISOClient,
    CAISOConfig,
    OASISError,
    check_oasis_response,
    oasis_xml_error,
    parse_caiso_responses,
)
from energy_assets.sources.http import SourceError
from energy_assets_tests.offline.fakes_caiso_weather import CaisoWeatherWorld

MEMBER_NAME = re.compile(
    r"^\d{8}_\d{8}_[A-Z_]+_[A-Z0-9]+_(\d{8}_\d{2}_\d{2}_\d{2}|[A-Z]+)_v\d+\.csv$"
)
DOCUMENTED_NO_DATA = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<m:OASISReport xmlns:m="http://www.caiso.com/soa/OASISReport_v1.xsd">\n'
    "<m:MessageHeader><m:TimeDate>TIMEDATE</m:TimeDate><m:Source>OASIS</m:Source>"
    "<m:Version>v20131201</m:Version></m:MessageHeader>\n"
    "<m:MessagePayload><m:RTO><m:name>CAISO</m:name><m:DISCLAIMER_ITEM>DISCLAIMER"
    "</m:DISCLAIMER_ITEM>\n"
    "<m:ERROR><m:ERR_CODE>1000</m:ERR_CODE><m:ERR_DESC>No data returned for the specified "
    "selection</m:ERR_DESC></m:ERROR>\n"
    "</m:RTO></m:MessagePayload></m:OASISReport>"
)
WORLD = CaisoWeatherWorld(last=datetime(2025, 1, 1, tzinfo=UTC))


@pytest.fixture(scope="module")
def server() -> Iterator[StandInServer]:
    with StandInServer(caiso_handlers(WORLD)) as running:
        yield running


@pytest.fixture(scope="module")
def synthetic_server() -> Iterator[tuple[SyntheticWorld, StandInServer]]:
    world = SyntheticWorld(GeneratorConfig(seed=5, duplicate_rate=0.02, missing_hour_rate=0.02))
    with StandInServer(caiso_handlers(world)) as running:
        yield world, running


def client_for(server: StandInServer, **overrides: object) -> CAISOClient:
    config = CAISOConfig(base_url=server.base_url + "/oasisapi", min_interval_s=0.0, **overrides)
    return CAISOClient(config, sleep=lambda s: None)


def oasis_get(server: StandInServer, **params: object) -> requests.Response:
    return requests.get(server.base_url + "/oasisapi/SingleZip", params=params, timeout=30)


def members(response: requests.Response) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def csv_member(response: requests.Response) -> pl.DataFrame:
    ((name, body),) = members(response).items()
    assert name.endswith(".csv")
    return pl.read_csv(body, infer_schema=False)


def recorded_frame(path: Path) -> tuple[str, bytes, pl.DataFrame]:
    with zipfile.ZipFile(path) as archive:
        (name,) = archive.namelist()
        body = archive.read(name)
    return name, body, pl.read_csv(body, infer_schema=False)


def load_params(start: str, end: str, market: str = "ACTUAL") -> dict[str, object]:
    return {
        "queryname": "SLD_FCST",
        "market_run_id": market,
        "startdatetime": start,
        "enddatetime": end,
        "version": 1,
        "resultformat": 6,
    }


def lmp_params(start: str, end: str, version: int = 1) -> dict[str, object]:
    return {
        "queryname": "PRC_LMP",
        "market_run_id": "DAM",
        "startdatetime": start,
        "enddatetime": end,
        "version": version,
        "resultformat": 6,
        "node": ",".join(TRADING_HUBS),
    }


# --- wire format against the recorded zips -----------------------------------------------------


def test_sld_fcst_zip_has_the_recorded_columns_order_and_line_endings(
    server: StandInServer, realdata: Path
) -> None:
    real_name, real_body, real = recorded_frame(
        realdata / "api" / "caiso_oasis_SLD_FCST_7DA_20250219-20250227_csv.zip"
    )
    response = oasis_get(server, **load_params("20240701T07:00-0000", "20240703T07:00-0000", "7DA"))
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/x-zip-compressed"
    ((name, body),) = members(response).items()
    ours = pl.read_csv(body, infer_schema=False)
    assert ours.columns == real.columns
    assert MEMBER_NAME.match(real_name) and MEMBER_NAME.match(name)
    assert name.startswith("20240701_20240702_SLD_FCST_7DA_")
    assert response.headers["Content-Disposition"] == f"inline; filename={name[:-4]}.zip;"
    assert b"\r" not in body and b"\r" not in real_body
    # The same per-column conventions: LOAD_TYPE 0, OPR_INTERVAL 0, 7DA label and item.
    for column in ("LOAD_TYPE", "OPR_INTERVAL", "LABEL", "XML_DATA_ITEM", "EXECUTION_TYPE"):
        assert set(ours[column]) == set(real[column]), column
    assert set(ours["POS"]) <= set(real["POS"])


def test_rows_are_unsorted_like_the_recorded_zip(server: StandInServer) -> None:
    ours = csv_member(
        oasis_get(server, **load_params("20240701T07:00-0000", "20240703T07:00-0000"))
    )
    starts = ours["INTERVALSTARTTIME_GMT"].to_list()
    assert starts != sorted(starts)
    # ... but grouped: one GROUP per (operating day, TAC area), numbered in file order.
    groups = ours.group_by("GROUP").agg(
        pl.col("OPR_DT").n_unique(), pl.col("TAC_AREA_NAME").n_unique()
    )
    assert groups.height == 2 * len(set(ours["TAC_AREA_NAME"]))
    assert set(groups["OPR_DT"]) == {1} and set(groups["TAC_AREA_NAME"]) == {1}


def test_prc_lmp_v1_zip_has_the_recorded_2020_columns(
    server: StandInServer, realdata: Path
) -> None:
    _, _, real = recorded_frame(
        realdata / "api" / "caiso_oasis_PRC_LMP_DAM_20200101_ALL_APNODES_csv.zip"
    )
    ours = csv_member(oasis_get(server, **lmp_params("20240701T00:00-0000", "20240702T00:00-0000")))
    assert ours.columns == real.columns
    assert set(ours["LMP_TYPE"]) == set(real["LMP_TYPE"])
    real_items = dict(real.select("LMP_TYPE", "XML_DATA_ITEM").unique().iter_rows())
    ours_items = dict(ours.select("LMP_TYPE", "XML_DATA_ITEM").unique().iter_rows())
    assert ours_items == real_items
    assert set(ours["NODE"]) == set(TRADING_HUBS)  # the unrequested node is not served


def test_prc_lmp_v12_zip_has_one_member_per_component(server: StandInServer) -> None:
    response = oasis_get(server, **lmp_params("20240701T00:00-0000", "20240702T00:00-0000", 12))
    parts = members(response)
    assert sorted(n.rsplit("_", 2)[-2] for n in parts) == ["LMP", "MCC", "MCE", "MCL"]
    assert all(n.endswith("_v12.csv") for n in parts)


# --- DST operating days ------------------------------------------------------------------------


def test_fall_back_operating_day_has_25_hours_with_he25_the_repeated_hour(
    server: StandInServer,
) -> None:
    # Operating day 2024-11-03 runs 07:00Z (midnight PDT) to 08:00Z next day (midnight PST).
    ours = csv_member(
        oasis_get(server, **load_params("20241103T07:00-0000", "20241104T08:00-0000"))
    )
    day = ours.filter(pl.col("TAC_AREA_NAME") == "CA ISO-TAC")
    assert set(day["OPR_DT"]) == {"2024-11-03"}
    assert sorted(int(h) for h in day["OPR_HR"]) == list(range(1, 26))
    start_of = dict(day.select("OPR_HR", "INTERVALSTARTTIME_GMT").iter_rows())
    assert start_of["2"] == "2024-11-03T08:00:00-00:00"  # 01:00 PDT
    assert start_of["25"] == "2024-11-03T09:00:00-00:00"  # 01:00 PST, the repeat
    assert start_of["3"] == "2024-11-03T10:00:00-00:00"  # 02:00 PST


def test_spring_forward_operating_day_has_23_hours_and_no_he03(server: StandInServer) -> None:
    ours = csv_member(
        oasis_get(server, **load_params("20240310T08:00-0000", "20240311T07:00-0000"))
    )
    day = ours.filter(pl.col("TAC_AREA_NAME") == "CA ISO-TAC")
    hours = sorted(int(h) for h in day["OPR_HR"])
    assert len(hours) == 23 and 3 not in hours and hours == [1, 2, *range(4, 25)]


@pytest.mark.parametrize("first_day", ["2024-03-09", "2024-11-02"])
def test_dst_weeks_parse_into_continuous_utc_hours_equal_to_the_world(
    server: StandInServer, first_day: str
) -> None:
    start = datetime.fromisoformat(first_day).replace(tzinfo=UTC)
    end = start + timedelta(days=3)
    client = client_for(server)
    parsed = parse_caiso_responses(
        client.fetch("load", start, end) + client.fetch("lmp", start, end)
    )
    for (region, series), part in parsed.group_by("region", "series"):
        hours = part["interval_start_utc"]
        assert hours.to_list() == [start + timedelta(hours=i) for i in range(72)], (region, series)
    expected = pl.concat(
        [
            WORLD.caiso_load(start, end).select(
                "interval_start_utc",
                pl.col("tac_area_name").alias("region"),
                pl.col("market_run_id").replace_strict(LOAD_SERIES).alias("series"),
                pl.col("mw").alias("value"),
            ),
            WORLD.caiso_lmp(start, end)
            .filter(pl.col("node").is_in(TRADING_HUBS))
            .select(
                "interval_start_utc",
                pl.col("node").alias("region"),
                pl.col("lmp_type").replace_strict(LMP_SERIES).alias("series"),
                pl.col("mw").alias("value"),
            ),
        ]
    ).sort("interval_start_utc", "region", "series")
    assert parsed.select(expected.columns).equals(expected)


def test_one_utc_day_asks_oasis_for_exactly_that_day(server: StandInServer) -> None:
    start = datetime(2024, 11, 3, tzinfo=UTC)
    responses = client_for(server).fetch("load", start, start + timedelta(days=1))
    raw = pl.read_csv(next(iter(members_of(responses[0]).values())), infer_schema=False)
    assert raw["INTERVALSTARTTIME_GMT"].min() == "2024-11-03T00:00:00-00:00"
    assert raw["INTERVALSTARTTIME_GMT"].max() == "2024-11-03T23:00:00-00:00"
    assert set(raw["OPR_DT"]) == {"2024-11-02", "2024-11-03"}  # two operating days, 24 hours


def members_of(response: object) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(response.body)) as archive:  # type: ignore[attr-defined]
        return {name: archive.read(name) for name in archive.namelist()}


# --- round trip with the synthetic world (defects included) -------------------------------------


def test_synthetic_world_round_trip_keeps_missing_and_duplicate_rows(
    synthetic_server: tuple[SyntheticWorld, StandInServer],
) -> None:
    world, server = synthetic_server
    start = datetime(2024, 11, 2, tzinfo=UTC)
    end = start + timedelta(days=3)
    client = client_for(server)
    parsed = parse_caiso_responses(
        client.fetch("load", start, end) + client.fetch("lmp", start, end)
    )
    load = world.caiso_load(start, end)
    lmp = world.caiso_lmp(start, end)
    expected = pl.concat(
        [
            load.select(
                "interval_start_utc",
                pl.col("tac_area_name").alias("region"),
                pl.col("market_run_id").replace_strict(LOAD_SERIES).alias("series"),
                pl.col("mw").round(2).alias("value"),
            ),
            lmp.select(
                "interval_start_utc",
                pl.col("node").alias("region"),
                pl.col("lmp_type").replace_strict(LMP_SERIES).alias("series"),
                pl.col("mw").round(5).alias("value"),
            ),
        ]
    )
    key = ["interval_start_utc", "region", "series", "value"]
    assert expected.select(pl.struct(key).is_duplicated().any()).item()  # the world has dupes
    assert parsed.select(key).sort(key).equals(expected.sort(key))


# --- errors ------------------------------------------------------------------------------------


def test_no_data_answers_the_documented_xml_in_a_report_named_member(
    server: StandInServer,
) -> None:
    response = oasis_get(server, **load_params("20300101T08:00-0000", "20300102T08:00-0000"))
    assert response.status_code == 200
    ((name, body),) = members(response).items()
    assert name == "20300101_20300101_SLD_FCST_ACTUAL_v1.xml"
    assert response.headers["Content-Disposition"] == f"inline; filename={name}.zip;"
    text = body.decode()
    normalised = re.sub(
        r"<m:TimeDate>[^<]+</m:TimeDate>", "<m:TimeDate>TIMEDATE</m:TimeDate>", text
    )
    normalised = re.sub(
        r"<m:DISCLAIMER_ITEM>.*?</m:DISCLAIMER_ITEM>",
        "<m:DISCLAIMER_ITEM>DISCLAIMER</m:DISCLAIMER_ITEM>",
        normalised,
    )
    assert normalised.strip() == DOCUMENTED_NO_DATA
    assert re.search(r"<m:TimeDate>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z</m:TimeDate>", text)
    assert oasis_xml_error(body) == (1000, "No data returned for the specified selection")


def test_no_data_is_an_empty_result_for_the_client(server: StandInServer) -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    responses = client_for(server).fetch("lmp", start, start + timedelta(days=1))
    assert len(responses) == 1
    parsed = parse_caiso_responses(responses)
    assert parsed.height == 0 and parsed.columns == list(parsed.schema)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"version": None}, 1020),
        ({"queryname": "NO_SUCH_REPORT"}, 1005),
        ({"startdatetime": "2024-07-01T00:00"}, 1002),
        ({"enddatetime": "20240802T00:00-0000"}, 1004),
        ({"node": ",".join(f"N{i}" for i in range(11))}, 1017),
        ({"market_run_id": "RTM"}, 1001),
    ],
)
def test_invalid_requests_answer_invalid_request_xml_zips(
    server: StandInServer, change: dict[str, object], code: int
) -> None:
    params = {**lmp_params("20240701T00:00-0000", "20240702T00:00-0000"), **change}
    response = oasis_get(server, **{k: v for k, v in params.items() if v is not None})
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == "inline; filename=INVALID_REQUEST.xml.zip;"
    ((name, body),) = members(response).items()
    assert name == "INVALID_REQUEST.xml"
    assert oasis_xml_error(body)[0] == code
    with pytest.raises(OASISError) as raised:
        check_oasis_response(response)
    assert raised.value.code == code
    assert "/oasisapi/SingleZip" in str(raised.value)


def test_period_over_31_days_names_the_limit(server: StandInServer) -> None:
    response = oasis_get(server, **load_params("20240701T00:00-0000", "20240802T00:00-0000"))
    with pytest.raises(OASISError, match="31 days only"):
        check_oasis_response(response)


def test_xml_result_format_is_refused_by_the_parser(server: StandInServer) -> None:
    params = load_params("20240701T00:00-0000", "20240702T00:00-0000")
    del params["resultformat"]
    response = oasis_get(server, **params)
    ((name, body),) = members(response).items()
    assert name.endswith(".xml") and b"<INTERVAL>ENDING</INTERVAL>" in body
    assert oasis_xml_error(body) is None
    with pytest.raises(SourceError, match="resultformat=6"):
        check_oasis_response(response)
