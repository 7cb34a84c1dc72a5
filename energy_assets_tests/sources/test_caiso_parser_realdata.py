"""The OASIS parser against every recorded CAISO file in shared/realdata/api."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from energy_assets.offline.caiso_api import zip_members
from energy_assets.sources.base import LONG_SCHEMA, RawResponse
from energy_assets.sources.caiso import (
    TRADING_HUBS,
    oasis_xml_error,
    parse_caiso_responses,
    read_oasis_zip,
)
from energy_assets.sources.http import SourceError

SLD_FCST_7DA = "caiso_oasis_SLD_FCST_7DA_20250219-20250227_csv.zip"
SLD_REN_FCST = "caiso_oasis_SLD_REN_FCST_DAM_20250204-20250211_csv.zip"
PRC_LMP_ALL = "caiso_oasis_PRC_LMP_DAM_20200101_ALL_APNODES_csv.zip"
XML_REPORT = "caiso_oasis_SLD_FCST_RTM_2014-05-08_xml_trimmed_pyiso.xml"


def recorded(path: Path, params: dict[str, object] | None = None) -> RawResponse:
    return RawResponse(
        source="caiso_oasis",
        dataset="recorded",
        request_url=f"file://{path.name}",
        request_params=params or {},
        page=0,
        status=200,
        content_type="application/x-zip-compressed",
        fetched_at_utc=datetime.now(UTC),
        body=path.read_bytes(),
    )


def csv_rows(path: Path) -> list[dict[str, str]]:
    """The zip's single CSV member read with the stdlib, independently of the parser."""
    with zipfile.ZipFile(path) as archive:
        (name,) = archive.namelist()
        text = archive.read(name).decode()
    return list(csv.DictReader(io.StringIO(text)))


def gmt(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.fixture(scope="module")
def api(realdata: Path) -> Path:
    return realdata / "api"


@pytest.fixture(scope="module")
def lmp_all(api: Path) -> pl.DataFrame:
    # 162,848 rows, 32 MB unzipped: parsed once for the module.
    return parse_caiso_responses([recorded(api / PRC_LMP_ALL)])


def test_sld_fcst_7da_zip_parses_every_row_by_column_name(api: Path) -> None:
    parsed = parse_caiso_responses([recorded(api / SLD_FCST_7DA)])
    rows = csv_rows(api / SLD_FCST_7DA)
    assert parsed.schema == LONG_SCHEMA
    assert parsed.height == len(rows)
    assert set(parsed["series"]) == {"caiso_load_forecast_7da"}
    assert set(parsed["units"]) == {"MW"} and set(parsed["source"]) == {"caiso_oasis"}
    expected = {(gmt(r["INTERVALSTARTTIME_GMT"]), r["TAC_AREA_NAME"]): float(r["MW"]) for r in rows}
    got = {
        (t, region): v
        for t, region, v in parsed.select("interval_start_utc", "region", "value").iter_rows()
    }
    assert got == expected
    assert "CA ISO-TAC" in set(parsed["region"])


def test_recorded_rows_are_unsorted_and_the_parser_sorts_them(api: Path) -> None:
    starts = [gmt(r["INTERVALSTARTTIME_GMT"]) for r in csv_rows(api / SLD_FCST_7DA)]
    assert starts != sorted(starts)
    parsed = parse_caiso_responses([recorded(api / SLD_FCST_7DA)])
    assert parsed["interval_start_utc"].is_sorted()


def test_request_window_keeps_only_its_hours(api: Path) -> None:
    start = datetime(2025, 2, 21, tzinfo=UTC)
    params = {"startdatetime": "20250221T00:00-0000", "enddatetime": "20250222T00:00-0000"}
    parsed = parse_caiso_responses([recorded(api / SLD_FCST_7DA, params)])
    rows = csv_rows(api / SLD_FCST_7DA)
    inside = [
        r for r in rows if start <= gmt(r["INTERVALSTARTTIME_GMT"]) < start + timedelta(days=1)
    ]
    assert parsed.height == len(inside)
    assert parsed["interval_start_utc"].min() == start
    assert parsed["interval_start_utc"].max() == start + timedelta(hours=23)


def test_tac_area_filter_keeps_only_the_named_areas(api: Path) -> None:
    parsed = parse_caiso_responses(
        [recorded(api / SLD_FCST_7DA)], tac_areas=["CA ISO-TAC", "PGE-TAC"]
    )
    assert set(parsed["region"]) == {"CA ISO-TAC", "PGE-TAC"}
    assert parsed.height == 2 * 8 * 24


def test_renewable_forecast_zip_parses_with_opr_dt_first(api: Path) -> None:
    rows = csv_rows(api / SLD_REN_FCST)
    assert next(iter(rows[0])) == "OPR_DT"  # a different column order than SLD_FCST
    parsed = parse_caiso_responses([recorded(api / SLD_REN_FCST)])
    assert parsed.height == len(rows)
    assert set(parsed["series"]) == {
        "caiso_renewable_forecast_dam_solar",
        "caiso_renewable_forecast_dam_wind",
    }
    assert set(parsed["region"]) == {"NP15", "SP15", "ZP26"}
    counts = parsed.group_by("region", "series").len()
    assert set(counts["len"]) == {168}


def test_all_apnodes_lmp_zip_hubs_satisfy_lmp_equals_components(
    lmp_all: pl.DataFrame, api: Path
) -> None:
    hubs = lmp_all.filter(pl.col("region").is_in(TRADING_HUBS))
    assert set(hubs["region"]) == set(TRADING_HUBS)
    assert set(hubs["units"]) == {"USD/MWh"}
    wide = hubs.pivot(on="series", index=["interval_start_utc", "region"], values="value")
    assert wide.height == 3 * 24
    components = wide["lmp_energy"] + wide["lmp_congestion"] + wide["lmp_loss"]
    assert (wide["lmp"] - components).abs().max() < 2e-5  # five-decimal rounding of each
    # OASIS answered exactly the UTC day 2020-01-02 (HE17 of operating day 2020-01-01 to HE16
    # of 2020-01-02): a GMT window is served as asked, not rounded to operating days.
    for hub in TRADING_HUBS:
        hours = wide.filter(pl.col("region") == hub)["interval_start_utc"].sort()
        assert hours[0] == datetime(2020, 1, 2, tzinfo=UTC)
        assert hours.diff().drop_nulls().unique().to_list() == [timedelta(hours=1)]


def test_all_apnodes_lmp_zip_keeps_every_row(lmp_all: pl.DataFrame, api: Path) -> None:
    with zipfile.ZipFile(api / PRC_LMP_ALL) as archive:
        (name,) = archive.namelist()
        lines = archive.read(name).count(b"\n")
    assert lmp_all.height == lines - 1  # every data line but the header
    assert set(lmp_all["series"]) == {"lmp", "lmp_energy", "lmp_congestion", "lmp_loss"}


def test_xml_report_format_is_recognised_and_refused_clearly(api: Path) -> None:
    body = (api / XML_REPORT).read_bytes()
    assert oasis_xml_error(body) is None  # a data report, not an error document
    wrapped = zip_members([("20140508_20140508_SLD_FCST_RTM_v1.xml", body)])
    response = recorded(api / XML_REPORT)
    response = RawResponse(**{**response.__dict__, "body": wrapped})
    with pytest.raises(SourceError, match="resultformat=6"):
        parse_caiso_responses([response])


def test_recorded_zips_have_lf_lines_and_report_named_members(api: Path) -> None:
    for name in (SLD_FCST_7DA, SLD_REN_FCST, PRC_LMP_ALL):
        ((member, body),) = read_oasis_zip((api / name).read_bytes(), name)
        assert member.endswith("_v1.csv")
        assert b"\r\n" not in body[:100_000]
