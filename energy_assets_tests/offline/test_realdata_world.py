"""Real-data worlds serve the files cell for cell, on the platform's hour-beginning convention."""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from energy_assets.offline.generator import frame_schema
from energy_assets.offline.realdata_world import GridEmissionsWorld, RugglesWorld

RUGGLES_BAS = ["BPAT", "CISO", "ERCO", "MISO", "NYIS", "PJM", "SC", "TEPC"]
EVERYTHING = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC))


@pytest.fixture(scope="module")
def ruggles(realdata: Path) -> RugglesWorld:
    return RugglesWorld(realdata / "ruggles_2019_release")


@pytest.fixture(scope="module")
def gridemissions(realdata: Path) -> GridEmissionsWorld:
    return GridEmissionsWorld(realdata / "gridemissions")


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _sample(rows: list, n: int, rng: np.random.Generator, must: list[int]) -> list:
    picked = set(rng.choice(len(rows), size=min(n, len(rows)), replace=False).tolist())
    return [rows[i] for i in sorted(picked | set(must))]


def _lookup(frame: pl.DataFrame, keys: list[str]) -> dict[tuple, list[float | None]]:
    out: dict[tuple, list[float | None]] = {}
    for row in frame.iter_rows(named=True):
        out.setdefault(tuple(row[k] for k in keys), []).append(row["value"])
    return out


# -- Ruggles --------------------------------------------------------------------------------------


def test_ruggles_serves_the_eight_release_bas(ruggles: RugglesWorld) -> None:
    assert ruggles.respondents() == RUGGLES_BAS


def test_ruggles_cells_match_the_files_hour_ending_to_hour_start(
    ruggles: RugglesWorld, realdata: Path
) -> None:
    rng = np.random.default_rng(0)
    sampled: list[tuple[str, dict[str, str]]] = []
    for code in RUGGLES_BAS:
        rows = _csv_rows(realdata / "ruggles_2019_release" / f"{code}.csv")
        tokens = [i for i, r in enumerate(rows) if r["raw demand (MW)"] in ("MISSING", "EMPTY")]
        must = [0, len(rows) - 1, *tokens[:3], *tokens[-3:]]
        sampled += [(code, row) for row in _sample(rows, 40, rng, must)]

    def start_of(row: dict[str, str]) -> datetime:
        ending = datetime.strptime(row["date_time"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        return ending - timedelta(hours=1)

    starts = sorted({start_of(row) for _, row in sampled})
    frame = ruggles.eia_region_data(*EVERYTHING).filter(pl.col("interval_start_utc").is_in(starts))
    served = _lookup(frame, ["interval_start_utc", "respondent", "type"])
    checked = {"number": 0, "MISSING": 0, "EMPTY": 0}
    for code, row in sampled:
        for type_code, column in (("D", "raw demand (MW)"), ("DF", "forecast demand (MW)")):
            cell = row[column]
            got = served.get((start_of(row), code, type_code))
            if cell == "MISSING":
                assert got is None, (code, row["date_time"], type_code)
                checked["MISSING"] += 1
            elif cell == "EMPTY":
                assert got == [None], (code, row["date_time"], type_code)
                checked["EMPTY"] += 1
            else:
                assert got == [float(cell)], (code, row["date_time"], type_code)
                checked["number"] += 1
    assert min(checked.values()) > 5, checked


def test_ruggles_labels_match_the_files(ruggles: RugglesWorld, realdata: Path) -> None:
    labels = ruggles.ruggles_labels()
    assert labels.height == 8 * 35064
    rows = _csv_rows(realdata / "ruggles_2019_release" / "TEPC.csv")
    tepc = labels.filter(pl.col("respondent") == "TEPC").sort("interval_start_utc")
    for i in np.random.default_rng(1).choice(len(rows), size=50, replace=False):
        row, got = rows[i], tepc.row(int(i), named=True)
        assert got["interval_start_utc"] == datetime.strptime(
            row["date_time"], "%Y-%m-%d %H:%M:%S"
        ).replace(tzinfo=UTC) - timedelta(hours=1)
        assert got["category"] == row["category"]
        assert got["cleaned_demand"] == float(row["cleaned demand (MW)"])
        token = row["raw demand (MW)"]
        assert got["raw_token"] == (token if token in ("MISSING", "EMPTY") else None)


def test_ruggles_window_is_start_inclusive_end_exclusive(ruggles: RugglesWorld) -> None:
    start, end = datetime(2018, 3, 10, 5, tzinfo=UTC), datetime(2018, 3, 11, 17, tzinfo=UTC)
    window = ruggles.eia_region_data(start, end)
    assert window.schema == pl.Schema(frame_schema("region"))
    assert window["interval_start_utc"].min() == start
    assert window["interval_start_utc"].max() == end - timedelta(hours=1)
    everything = ruggles.eia_region_data(*EVERYTHING)
    assert_frame_equal(
        window,
        everything.filter(pl.col("interval_start_utc").is_between(start, end, closed="left")),
    )


def test_ruggles_has_no_fuel_or_interchange_and_delegates_caiso_and_weather(
    ruggles: RugglesWorld,
) -> None:
    start, end = datetime(2018, 1, 1, tzinfo=UTC), datetime(2018, 1, 2, tzinfo=UTC)
    fuel, flows = ruggles.eia_fuel_type_data(start, end), ruggles.eia_interchange_data(start, end)
    assert fuel.height == 0 and fuel.schema == pl.Schema(frame_schema("fuel"))
    assert flows.height == 0 and flows.schema == pl.Schema(frame_schema("interchange"))
    assert ruggles.caiso_load(start, end).height == 5 * 4 * 24
    assert ruggles.caiso_lmp(start, end).height == 3 * 4 * 24
    assert ruggles.weather(start, end, [(38.58, -121.49)]).height == 6 * 24


# -- gridemissions --------------------------------------------------------------------------------

_REGION = re.compile(r"^E_([A-Z0-9]+)_(D|DF|NG|TI)$")
_FLOW = re.compile(r"^E_([A-Z0-9]+)-([A-Z0-9]+)_ID$")


def test_gridemissions_cells_match_the_file(
    gridemissions: GridEmissionsWorld, realdata: Path
) -> None:
    (path,) = sorted((realdata / "gridemissions").glob("E_raw_*.csv"))
    rows = _csv_rows(path)
    region = _lookup(
        gridemissions.eia_region_data(*EVERYTHING), ["interval_start_utc", "respondent", "type"]
    )
    fuel = _lookup(
        gridemissions.eia_fuel_type_data(*EVERYTHING),
        ["interval_start_utc", "respondent", "fueltype"],
    )
    flows = _lookup(
        gridemissions.eia_interchange_data(*EVERYTHING), ["interval_start_utc", "fromba", "toba"]
    )
    columns = [c for c in rows[0] if c != "period"]
    empty_cells = [(i, c) for i, r in enumerate(rows) for c in columns if r[c] == ""]
    rng = np.random.default_rng(2)
    cells = [
        (int(i), columns[int(j)])
        for i, j in zip(
            rng.integers(0, len(rows), 400), rng.integers(0, len(columns), 400), strict=True
        )
    ]
    seen = {"region": 0, "fuel": 0, "flow": 0, "GAS": 0, "empty": 0}
    for i, column in cells + empty_cells[:20] + [(0, "E_CISO_GAS"), (5, "E_CISO_NG")]:
        row = rows[i]
        ending = datetime.strptime(row["period"], "%Y-%m-%dT%H").replace(tzinfo=UTC)
        start = ending - timedelta(hours=1)
        expected = None if row[column] == "" else [float(row[column])]
        if m := _FLOW.match(column):
            got, kind = flows.get((start, m[1], m[2])), "flow"
        elif m := _REGION.match(column):
            got, kind = region.get((start, m[1], m[2])), "region"
        else:
            ba, fuel_code = column[2:].rsplit("_", 1)
            kind = "GAS" if fuel_code == "GAS" else "fuel"
            got = fuel.get((start, ba, "NG" if fuel_code == "GAS" else fuel_code))
        assert got == expected, (row["period"], column)
        seen["empty" if expected is None else kind] += 1
    assert min(seen.values()) > 0, seen


def test_gridemissions_serves_every_reporting_ba(gridemissions: GridEmissionsWorld) -> None:
    respondents = gridemissions.respondents()
    assert len(respondents) == 62 and {"CISO", "PJM", "ERCO", "YAD"} <= set(respondents)
    start, end = datetime(2023, 6, 12, tzinfo=UTC), datetime(2023, 6, 13, tzinfo=UTC)
    flows = gridemissions.eia_interchange_data(start, end)
    foreign = flows.filter(pl.col("toba") == "CEN")
    assert foreign.height > 0 and (foreign["toba_name"] == "CEN").all()  # not in our US table
    region = gridemissions.eia_region_data(start, end)
    assert set(region["type"]) == {"D", "NG", "TI"}
    assert region.filter(pl.col("respondent") == "CISO")["respondent_name"].unique().to_list() == [
        "California Independent System Operator"
    ]


# -- errors ---------------------------------------------------------------------------------------


def test_missing_or_wrong_folders_say_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="ruggles_2019_release"):
        RugglesWorld(tmp_path / "absent")
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="no Ruggles"):
        RugglesWorld(tmp_path)
    with pytest.raises(FileNotFoundError, match="E_raw_"):
        GridEmissionsWorld(tmp_path)


def test_ruggles_rejects_unknown_tokens_naming_the_column(tmp_path: Path) -> None:
    (tmp_path / "XX.csv").write_text(
        "date_time,raw demand (MW),category,cleaned demand (MW),forecast demand (MW)\n"
        "2016-01-01 01:00:00,12,OKAY,12,13\n"
        "2016-01-01 02:00:00,n/a,OKAY,12,13\n"
    )
    with pytest.raises(ValueError, match=r"raw demand \(MW\).*n/a"):
        RugglesWorld(tmp_path).eia_region_data(*EVERYTHING)
