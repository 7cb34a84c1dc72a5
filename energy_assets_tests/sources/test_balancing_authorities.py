"""The packaged balancing-authority table: valid, plausible, and in agreement with EIA's list."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from energy_assets.sources.balancing_authorities import (
    SCHEMA,
    load_balancing_authorities,
    validate_balancing_authorities,
)

EIA_REGION_CODES = {
    "California": "CAL",
    "Carolinas": "CAR",
    "Central": "CENT",
    "Florida": "FLA",
    "Mid-Atlantic": "MIDA",
    "Midwest": "MIDW",
    "New England": "NE",
    "New York": "NY",
    "Northwest": "NW",
    "Southeast": "SE",
    "Southwest": "SW",
    "Tennessee": "TEN",
    "Texas": "TEX",
}
# Standard (winter) UTC offsets of EIA's time-zone names.
EIA_STANDARD_OFFSET_H = {"Pacific": -8, "Mountain": -7, "Arizona": -7, "Central": -6, "Eastern": -5}
# Our zone is the civil zone of the weather point; EIA's is the zone the BA reports in.
ONE_HOUR_APART = {"IPCO", "LGEE", "SEPA"}


def _eia_acronyms(realdata: Path) -> list[dict[str, str]]:
    path = realdata / "ruggles_2019_release" / "balancing_authority_acronyms.csv"
    with path.open(encoding="utf-8-sig") as handle:
        handle.readline()  # "SOURCE: ..." line
        rows = list(csv.DictReader(handle))
    return [r for r in rows if r["Region"] not in ("Canada", "Mexico")]


def test_packaged_table_loads_with_schema_and_unique_codes() -> None:
    table = load_balancing_authorities()
    assert table.schema == pl.Schema(SCHEMA)
    assert 60 <= table.height <= 70
    assert table["code"].is_unique().all()
    assert table["code"].to_list() == sorted(table["code"].to_list())
    assert table.null_count().sum_horizontal().item() == 0


def test_points_are_in_the_us_and_cite_their_source() -> None:
    table = load_balancing_authorities()
    assert table["latitude"].is_between(24.0, 49.5).all()
    assert table["longitude"].is_between(-125.0, -66.0).all()
    assert table["point_source"].str.contains(r"GeoNames geonameid \d+").all()
    assert (table["point_description"].str.len_chars() > 5).all()


def test_typical_peaks_have_realistic_magnitudes() -> None:
    peaks = dict(load_balancing_authorities().select("code", "typical_peak_mw").iter_rows())
    assert 120_000 <= peaks["PJM"] <= 170_000
    assert 35_000 <= peaks["CISO"] <= 55_000
    assert 65_000 <= peaks["ERCO"] <= 95_000
    assert 100_000 <= peaks["MISO"] <= 140_000
    assert peaks["HST"] < 500 and peaks["NSB"] < 500
    assert min(peaks.values()) >= 10


def test_arizona_points_use_phoenix_time() -> None:
    table = load_balancing_authorities()
    arizona = table.filter(pl.col("point_description").str.contains(", AZ "))
    assert arizona.height >= 8
    assert (arizona["timezone"] == "America/Phoenix").all()


def _valid() -> pl.DataFrame:
    return load_balancing_authorities().head(3)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (_valid().drop("timezone"), "missing column"),
        (_valid().with_columns(extra=pl.lit(1)), "unexpected column"),
        (pl.concat([_valid(), _valid().head(1)]), "duplicates"),
        (_valid().with_columns(timezone=pl.lit("Pacific")), "IANA"),
        (_valid().with_columns(latitude=pl.lit(123.0)), "latitude"),
        (_valid().with_columns(longitude=pl.lit(-190.0)), "longitude"),
        (_valid().with_columns(eia_region=pl.lit("MARS")), "eia_region"),
        (_valid().with_columns(typical_peak_mw=pl.lit(0.0)), "typical_peak_mw"),
        (_valid().with_columns(name=pl.lit(None, dtype=pl.String)), "empty cells"),
        (_valid().head(1).with_columns(code=pl.lit("bad code")), "malformed"),
    ],
)
def test_validator_names_what_is_wrong(frame: pl.DataFrame, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_balancing_authorities(frame, origin="test table")


def test_table_matches_eia_acronyms_codes_names_and_regions(realdata: Path) -> None:
    eia = _eia_acronyms(realdata)
    ours = load_balancing_authorities()
    assert sorted(r["Code"] for r in eia) == ours["code"].to_list()
    names = dict(ours.select("code", "name").iter_rows())
    regions = dict(ours.select("code", "eia_region").iter_rows())
    for row in eia:
        assert names[row["Code"]] == row["Name"], row["Code"]
        assert regions[row["Code"]] == EIA_REGION_CODES[row["Region"]], row["Code"]


def test_time_zones_agree_with_eia_up_to_documented_exceptions(realdata: Path) -> None:
    zones = dict(load_balancing_authorities().select("code", "timezone").iter_rows())
    january = datetime(2024, 1, 15, 12)
    for row in _eia_acronyms(realdata):
        offset = ZoneInfo(zones[row["Code"]]).utcoffset(january)
        assert offset is not None
        hours = offset.total_seconds() / 3600
        expected = EIA_STANDARD_OFFSET_H[row["Time Zone"]]
        if row["Code"] in ONE_HOUR_APART:
            assert abs(hours - expected) == 1, row["Code"]
        else:
            assert hours == expected, row["Code"]
