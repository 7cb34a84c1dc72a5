"""Property-based tests: the three parsers never crash and never store a guess.

Seeded from the real recorded responses in ../shared/realdata/api (skipped when absent), every
body is mutated (bit flips, truncations, inserted and deleted bytes; then structured edits of the
JSON tree or of the CSV cells inside the zip) and parsed. The property: the parser either
returns a long table whose every value is finite or null and whose every unit is one the
platform knows, or it raises a SourceError subclass. Any other exception is a failure.

Runs are derandomized (the same examples on every run, so CI is stable) and sized to a few
seconds per parser.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from energy_assets.sources.base import LONG_SCHEMA, UNIT_LIMITS, RawResponse, SourceError
from energy_assets.sources.caiso import parse_caiso_responses
from energy_assets.sources.eia import parse_eia_responses
from energy_assets.sources.openmeteo import parse_openmeteo_responses
from energy_assets_tests.sources.eia_recordings import eia_recordings

FUZZ = settings(
    # CI runs 250 per test (about 2 s each); FUZZ_EXAMPLES=5000 for a deeper local run
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "250")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
URL = "https://example.invalid/recorded?api_key=REDACTED"

EIA_DATASETS = {
    "region-data": "region-data",
    "fuel-type-data": "fuel-type-data",
    "interchange-data": "interchange-data",
}
OASIS_SEEDS = (
    "caiso_oasis_SLD_FCST_7DA_20250219-20250227_csv.zip",
    "caiso_oasis_SLD_REN_FCST_DAM_20250204-20250211_csv.zip",
)
# Open-Meteo seeds with the coordinates they were requested for and the zone asked.
OPENMETEO_SEEDS = (
    ("openmeteo_archive_hourly_ocean_2022-12-29_tz-Etc-GMT-plus9_tpisel.json", -12.5, -130.8),
    ("openmeteo_archive_multivar_trimmed_frenck.json", 52.27, 6.82),
    (
        "openmeteo_archive_hourly-and-daily_SaoPaulo_2022-12-29_tz-America-Sao_Paulo_tpisel.json",
        -15.8,
        -47.9,
    ),
)


def recorded(source: str, dataset: str, body: bytes, params: dict | None = None) -> RawResponse:
    return RawResponse(
        source=source,
        dataset=dataset,
        request_url=URL,
        request_params=params or {},
        page=0,
        status=200,
        content_type="",
        fetched_at_utc=datetime.now(UTC),
        body=body,
    )


def assert_parsed_or_refused(parse: Callable[[], pl.DataFrame]) -> None:
    """The property every parser must keep, whatever the body."""
    try:
        frame = parse()
    except SourceError as exc:
        assert str(exc)  # a typed error that says something
        event(f"refused: {type(exc).__name__}")  # --hypothesis-show-statistics
        return
    event("parsed")
    assert frame.schema == LONG_SCHEMA
    values = frame["value"].drop_nulls()
    assert values.is_finite().all(), "a non-finite value was stored"
    assert set(frame["units"].unique().to_list()) <= set(UNIT_LIMITS), "an unknown unit was stored"


# --- mutations ---------------------------------------------------------------------------------


@st.composite
def byte_mutations(draw: st.DrawFn, seed: bytes) -> bytes:
    """`seed` after one to four flips, truncations, insertions or deletions."""
    body = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        at = draw(st.integers(0, max(len(body) - 1, 0)))
        if kind == "flip" and body:
            body[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del body[at:]
        elif kind == "insert":
            body[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            del body[at : at + draw(st.integers(1, 16))]
    return bytes(body)


NASTY_TEXT = st.sampled_from(
    ["", " ", "NaN", "nan", "inf", "-Infinity", "1e999", "-1e999", "1_000", "0x10", "true",
     "null", "n/a", "１２", "12 ", "\u00a0", "2024-13-45T99", "1e-400", "9" * 400]
)  # fmt: skip
JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    NASTY_TEXT,
    st.text(max_size=12),
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(tree: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(tree, dict):
        for key, value in tree.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(tree, list):
        for index, value in enumerate(tree[:30]):  # long arrays: their head is enough
            out += _paths(value, (*prefix, index))
    return out


def _edit(tree: Any, path: tuple, change: Callable[[Any, Any], None]) -> Any:
    if not path:
        return tree
    parent = tree
    for step in path[:-1]:
        parent = parent[step]
    change(parent, path[-1])
    return tree


@st.composite
def json_mutations(draw: st.DrawFn, seed: bytes) -> bytes:
    """`seed` with one to three nodes of its JSON tree replaced, deleted or duplicated."""
    tree = json.loads(seed)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(tree)
        path = draw(st.sampled_from(paths))
        kind = draw(st.sampled_from(["replace", "delete", "duplicate"]))
        if not path:
            if kind == "replace":
                tree = draw(JSON_VALUES)
            continue
        if kind == "replace":
            value = draw(JSON_VALUES)

            def change(parent: Any, key: Any, value: Any = value) -> None:
                parent[key] = value

        elif kind == "delete":

            def change(parent: Any, key: Any) -> None:
                del parent[key]

        else:

            def change(parent: Any, key: Any) -> None:
                if isinstance(parent, list):
                    parent.insert(key, parent[key])
                else:
                    parent[f"{key}_copy"] = parent[key]

        tree = _edit(tree, path, change)
    return json.dumps(tree, allow_nan=True).encode()  # NaN/Infinity literals included


def _members(zipped: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
        return [(name, archive.read(name)) for name in archive.namelist()]


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


@st.composite
def csv_mutations(draw: st.DrawFn, seed_members: list[tuple[str, bytes]]) -> bytes:
    """A zip whose CSV member has cells replaced, columns renamed or dropped, lines cut."""
    name, data = seed_members[0]
    lines = data.decode().splitlines()
    lines = lines[: 1 + draw(st.integers(1, 60))]  # a head of the rows keeps examples fast
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["cell", "header", "drop_line", "bytes"]))
        row = draw(st.integers(0, len(lines) - 1))
        cells = lines[row].split(",")
        column = draw(st.integers(0, len(cells) - 1))
        if kind in ("cell", "header"):
            if kind == "header":
                row, cells = 0, lines[0].split(",")
                column = min(column, len(cells) - 1)
            cells[column] = draw(st.one_of(NASTY_TEXT, st.text(max_size=12)))
            lines[row] = ",".join(cells)
        elif kind == "drop_line" and len(lines) > 1:
            del lines[row]
        else:
            text = "\n".join(lines).encode()
            return _zip([(name, draw(byte_mutations(text)))])
    return _zip([(name, ("\n".join(lines) + "\n").encode())])


# --- seeds -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def eia_seeds(realdata: Path) -> list[tuple[str, bytes]]:
    seeds = []
    for name, recording in eia_recordings(realdata).items():
        dataset = next((d for key, d in EIA_DATASETS.items() if key in name), None)
        if dataset is not None and "sub-ba" not in name:
            seeds.append((dataset, recording.body))
    if not seeds:
        pytest.skip("no EIA recordings")
    return seeds


@pytest.fixture(scope="module")
def oasis_seeds(realdata: Path) -> list[bytes]:
    return [(realdata / "api" / name).read_bytes() for name in OASIS_SEEDS]


@pytest.fixture(scope="module")
def openmeteo_seeds(realdata: Path) -> list[tuple[bytes, float, float]]:
    return [
        ((realdata / "api" / name).read_bytes(), lat, lon) for name, lat, lon in OPENMETEO_SEEDS
    ]


def parse_eia(dataset: str, body: bytes) -> Callable[[], pl.DataFrame]:
    return lambda: parse_eia_responses([recorded("eia930", dataset, body)])


def parse_oasis(body: bytes) -> Callable[[], pl.DataFrame]:
    return lambda: parse_caiso_responses([recorded("caiso_oasis", "load", body)])


def parse_openmeteo(body: bytes, lat: float, lon: float) -> Callable[[], pl.DataFrame]:
    params = {"latitude": str(lat), "longitude": str(lon), "timezone": "GMT"}
    points = pl.DataFrame({"code": ["X"], "latitude": [lat], "longitude": [lon]})
    return lambda: parse_openmeteo_responses(
        [recorded("open_meteo", "archive_hourly", body, params)], points
    )


# --- the properties ----------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_eia_parser_survives_byte_mutations_of_recorded_bodies(eia_seeds, data) -> None:
    dataset, seed = data.draw(st.sampled_from(eia_seeds))
    assert_parsed_or_refused(parse_eia(dataset, data.draw(byte_mutations(seed))))


@FUZZ
@given(data=st.data())
def test_eia_parser_survives_json_mutations_of_recorded_bodies(eia_seeds, data) -> None:
    dataset, seed = data.draw(st.sampled_from(eia_seeds))
    assert_parsed_or_refused(parse_eia(dataset, data.draw(json_mutations(seed))))


@FUZZ
@given(data=st.data())
def test_oasis_parser_survives_byte_mutations_of_recorded_zips(oasis_seeds, data) -> None:
    seed = data.draw(st.sampled_from(oasis_seeds))
    assert_parsed_or_refused(parse_oasis(data.draw(byte_mutations(seed))))


@FUZZ
@given(data=st.data())
def test_oasis_parser_survives_csv_mutations_of_recorded_reports(oasis_seeds, data) -> None:
    seed = data.draw(st.sampled_from(oasis_seeds))
    assert_parsed_or_refused(parse_oasis(data.draw(csv_mutations(_members(seed)))))


@FUZZ
@given(data=st.data())
def test_openmeteo_parser_survives_byte_mutations_of_recorded_bodies(openmeteo_seeds, data):
    seed, lat, lon = data.draw(st.sampled_from(openmeteo_seeds))
    assert_parsed_or_refused(parse_openmeteo(data.draw(byte_mutations(seed)), lat, lon))


@FUZZ
@given(data=st.data())
def test_openmeteo_parser_survives_json_mutations_of_recorded_bodies(openmeteo_seeds, data):
    seed, lat, lon = data.draw(st.sampled_from(openmeteo_seeds))
    assert_parsed_or_refused(parse_openmeteo(data.draw(json_mutations(seed)), lat, lon))
