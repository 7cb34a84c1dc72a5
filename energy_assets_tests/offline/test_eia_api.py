"""The EIA stand-in speaks EIA API v2 as documented and as recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from energy_assets.offline.eia_api import eia_handlers
from energy_assets.offline.generator import GeneratorConfig, SyntheticWorld
from energy_assets.offline.server import Fault, StandInRequest, StandInServer
from energy_assets_tests.offline.fakes import TinyWorld
from energy_assets_tests.sources.eia_recordings import eia_recordings

REGION = "/v2/electricity/rto/region-data/data/"
FUEL = "/v2/electricity/rto/fuel-type-data/data/"
INTERCHANGE = "/v2/electricity/rto/interchange-data/data/"
DAY = "2024-03-10"


def base_params(**extra: object) -> list[tuple[str, str]]:
    params = [
        ("api_key", "any-key"),
        ("frequency", "hourly"),
        ("data[0]", "value"),
        ("start", f"{DAY}T01"),
        ("end", "2024-03-11T00"),
    ]
    return params + [(k, str(v)) for k, v in extra.items()]


class Ask:
    """Calls the `/v2/` handler in-process, exactly as the server would (no sockets)."""

    def __init__(self, **options: object) -> None:
        self.world = options.pop("world", None) or TinyWorld()
        self.handler = eia_handlers(self.world, **options)["/v2/"]

    def __call__(self, path, params, headers=None, fault=None) -> tuple[int, dict, dict]:
        raw = urlencode(params)
        query = parse_qs(raw, keep_blank_values=True)
        response = self.handler(StandInRequest("GET", path, query, raw, headers or {}, fault))
        return response.status, json.loads(response.body), response.headers


@pytest.fixture
def ask() -> Ask:
    return Ask()


# --- keys, routes and errors ------------------------------------------------------------------


def test_missing_key_gets_the_documented_403_envelope(ask):
    for params in ([], [("api_key", "")]):
        status, body, _ = ask(REGION, params + base_params()[1:])
        assert status == 403
        assert body == {
            "error": {
                "code": "API_KEY_MISSING",
                "message": "No api_key was supplied.  Please register for one at "
                "https://www.eia.gov/opendata/register.php",
            }
        }


def test_a_configured_key_is_enforced_and_may_come_as_header():
    ask = Ask(api_key="right")
    assert ask(REGION, [("api_key", "wrong"), *base_params()[1:]])[0] == 403
    assert ask(REGION, [("api_key", "wrong"), *base_params()[1:]])[1]["error"]["code"] == (
        "API_KEY_INVALID"
    )
    assert ask(REGION, [("api_key", "right"), *base_params()[1:]])[0] == 200
    assert ask(REGION, base_params()[1:], headers={"x-api-key": "right"})[0] == 200


def test_any_non_empty_key_is_accepted_by_default(ask):
    assert ask(REGION, base_params())[0] == 200


def test_bad_frequency_gets_the_documented_400_body(ask):
    status, body, _ = ask(REGION, [*base_params(), ("frequency", "millenially")])
    assert status == 400 and body["code"] == 400
    assert body["error"].startswith("Invalid frequency 'millenially' provided.")


@pytest.mark.parametrize(
    "path",
    [
        "/v2/electricity/rto/no-such-route/data/",
        "/v2/electricity/rto/region-sub-ba-data/data/",
        "/v2/petroleum/pri/spt/data/",
    ],
)
def test_unknown_routes_get_the_documented_404_body(ask, path):
    assert ask(path, base_params())[:2] == (404, {"error": "Not found.", "code": 404})


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([("facets[colour][]", "red")], "Invalid facet 'colour'"),
        ([("data[0]", "price")], "Invalid data 'price'"),
        ([("sort[0][column]", "colour")], "Invalid sort column 'colour'"),
        ([("offset", "-1")], "Invalid offset '-1'"),
    ],
)
def test_bad_parameters_get_400_bodies(ask, extra, message):
    params = [p for p in base_params() if p[0] not in {name for name, _ in extra}] + extra
    status, body, _ = ask(REGION, params)
    assert status == 400 and message in body["error"]


# --- data semantics ---------------------------------------------------------------------------


def test_start_and_end_are_inclusive_hour_ending_strings(ask):
    one_hour = [*base_params()[:3], ("start", f"{DAY}T05"), ("end", f"{DAY}T05")]
    _, body, _ = ask(REGION, one_hour)
    rows = body["response"]["data"]
    assert {r["period"] for r in rows} == {f"{DAY}T05"}
    assert len(rows) == 3 * 4  # respondents x types (no duplicate at that hour)

    _, body, _ = ask(REGION, base_params())
    periods = sorted({r["period"] for r in body["response"]["data"]})
    assert (periods[0], periods[-1], len(periods)) == (f"{DAY}T01", "2024-03-11T00", 24)


def test_bounds_compare_as_strings(ask):
    # "2024-03-10" sorts before "2024-03-10T00", so as an end it excludes that whole day.
    _, body, _ = ask(REGION, [*base_params()[:3], ("start", "2024-03-09T23"), ("end", DAY)])
    assert {r["period"] for r in body["response"]["data"]} == {"2024-03-09T23"}


def test_periods_are_the_world_hours_shifted_to_hour_ending(ask):
    _, body, _ = ask(REGION, [*base_params()[:3], ("start", f"{DAY}T01"), ("end", f"{DAY}T01")])
    world = ask.world.eia_region_data(
        datetime(2024, 3, 10, tzinfo=UTC), datetime(2024, 3, 10, 1, tzinfo=UTC)
    )
    expected = {(r, t): v for r, t, v in world.select("respondent", "type", "value").rows()}
    served = {(r["respondent"], r["type"]): r["value"] for r in body["response"]["data"]}
    assert served.keys() == expected.keys()
    assert all(
        (served[k] is None) == (expected[k] is None)
        and (served[k] is None or float(served[k]) == expected[k])
        for k in expected
    )


def test_facets_filter_and_unknown_values_give_zero_rows(ask):
    _, body, _ = ask(
        FUEL, base_params(**{"facets[respondent][]": "BPAT", "facets[fueltype][]": "SUN"})
    )
    rows = body["response"]["data"]
    assert {(r["respondent"], r["fueltype"]) for r in rows} == {("BPAT", "SUN")}
    assert body["response"]["total"] == "24"

    _, body, _ = ask(REGION, base_params(**{"facets[respondent][]": "NOPE"}))
    assert (body["response"]["total"], body["response"]["data"]) == ("0", [])


def test_repeated_facets_select_several_regions(ask):
    params = [*base_params(), ("facets[fromba][]", "AEC"), ("facets[fromba][]", "CISO")]
    _, body, _ = ask(INTERCHANGE, params)
    assert {r["fromba"] for r in body["response"]["data"]} == {"AEC", "CISO"}


def test_without_data_value_rows_have_no_values(ask):
    params = [p for p in base_params() if p[0] != "data[0]"]
    _, body, _ = ask(REGION, params)
    assert body["response"]["data"]
    assert all("value" not in r and "value-units" not in r for r in body["response"]["data"])


def test_sort_direction_and_columns_are_honoured(ask):
    params = base_params(
        **{
            "sort[0][column]": "period",
            "sort[0][direction]": "desc",
            "sort[1][column]": "respondent",
            "sort[1][direction]": "desc",
        }
    )
    _, body, _ = ask(REGION, params)
    keys = [(r["period"], r["respondent"]) for r in body["response"]["data"]]
    assert keys == sorted(keys, reverse=True)
    assert keys[0] == ("2024-03-11T00", "CISO")


def test_offset_and_length_page_through_the_same_rows(ask):
    _, whole, _ = ask(REGION, base_params())
    pages = []
    for offset in range(0, 289, 100):
        _, body, _ = ask(REGION, base_params(offset=offset, length=100))
        assert body["response"]["total"] == "289"
        pages += body["response"]["data"]
    assert pages == whole["response"]["data"]


def test_length_over_5000_is_capped_with_the_incomplete_return_warning():
    ask = Ask(world=TinyWorld(("AEC", "BPAT", "CISO")))
    window = [("start", "2024-01-01T01"), ("end", "2024-01-23T00")]  # 22 days
    matching = ask.world.eia_region_data(
        datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 23, tzinfo=UTC)
    ).height
    assert matching > 5000
    params = [*base_params()[:3], *window, ("length", "6000")]
    _, body, _ = ask(REGION, params)
    response = body["response"]
    assert (response["total"], len(response["data"])) == (str(matching), 5000)
    assert response["warnings"] == [
        {
            "warning": "incomplete return",
            "description": "The API can only return 5000 rows in JSON format.  Please consider "
            "constraining your request with facet, start, or end, or using offset to paginate "
            "results.",
        }
    ]
    assert next(iter(response)) == "warnings"  # placed first, as recorded
    _, body, _ = ask(REGION, [*base_params()[:3], *window, ("length", "5000")])
    assert "warnings" not in body["response"]  # asking for at most 5000 is not truncation


def test_values_and_total_are_strings_by_default_and_numbers_in_old_mode():
    _, body, _ = Ask()(REGION, base_params())
    values = [r["value"] for r in body["response"]["data"]]
    assert isinstance(body["response"]["total"], str)
    assert all(v is None or isinstance(v, str) for v in values) and None in values
    assert body["apiVersion"] == "2.1.13"

    _, body, _ = Ask(numeric_values=True)(REGION, base_params())
    values = [r["value"] for r in body["response"]["data"]]
    assert isinstance(body["response"]["total"], int)
    assert all(v is None or isinstance(v, int | float) for v in values)
    assert body["apiVersion"] == "2.1.4"


def test_whole_values_are_written_without_a_decimal_point(ask):
    _, body, _ = ask(FUEL, base_params())
    values = [r["value"] for r in body["response"]["data"] if r["value"] is not None]
    assert not any(v.endswith(".0") for v in values)
    assert any("." not in v for v in values) and any("." in v for v in values)


def test_request_echo_carries_params_including_the_key(ask):
    params = base_params(**{"facets[respondent][]": "AEC", "offset": 0, "length": 10})
    _, body, headers = ask(REGION, params)
    assert body["request"] == {
        "command": REGION,
        "params": {
            "api_key": "any-key",
            "frequency": "hourly",
            "data": ["value"],
            "facets": {"respondent": ["AEC"]},
            "start": f"{DAY}T01",
            "end": "2024-03-11T00",
            "offset": "0",
            "length": "10",
        },
    }
    assert headers["Content-Type"] == "application/json"


def test_total_drift_fault_reports_one_more_row_than_served(ask):
    _, body, _ = ask(REGION, base_params(), fault=Fault(kind="total_drift"))
    assert body["response"]["total"] == "290"
    assert len(body["response"]["data"]) == 289


def test_metadata_route_lists_facets_and_frequencies(ask):
    status, body, _ = ask("/v2/electricity/rto/interchange-data/", [("api_key", "k")])
    assert status == 200
    assert [f["id"] for f in body["response"]["facets"]] == ["fromba", "toba"]
    assert "hourly" in [f["id"] for f in body["response"]["frequency"]]


# --- conformance with the recorded bodies -----------------------------------------------------


def shape(value: object) -> object:
    """Keys, nesting and JSON types of a body, without its values."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


CASSETTES = [
    "eia_region-data_AEC_D_2019-01-02T00_openbb_cassette.yaml",
    "eia_fuel-type-data_AEC_COL_2019-01-02T00_openbb_cassette.yaml",
    "eia_interchange-data_AEC-MISO_2019-01-02T00_openbb_cassette.yaml",
]


@pytest.fixture(scope="module")
def server() -> Iterator[StandInServer]:
    with StandInServer(eia_handlers(TinyWorld(("AEC", "BPAT")))) as running:
        yield running


@pytest.mark.parametrize("name", CASSETTES)
def test_stand_in_answer_has_the_recorded_shape_for_the_recorded_url(realdata, server, name):
    recording = eia_recordings(realdata)[name]
    url = urlsplit(recording.uri)
    # Over HTTP, with the recorded query string as is (percent-encoded brackets).
    response = requests.get(f"{server.base_url}{url.path}?{url.query}", timeout=10)
    recorded = json.loads(recording.body)
    served = json.loads(response.content)
    assert response.status_code == recording.status == 200
    assert shape(served) == shape(recorded)
    assert list(served["response"]["data"][0]) == list(recorded["response"]["data"][0])
    assert served["request"] == recorded["request"]  # same params, key echoed (MOCK_API_KEY)
    for field in ("dateFormat", "frequency", "description"):
        assert served["response"][field] == recorded["response"][field]
    assert (served["apiVersion"], served["ExcelAddInVersion"]) == ("2.1.13", "2.1.0")
    assert b"\\/v2\\/electricity" in response.content  # slashes escaped like EIA's PHP


# --- backed by the synthetic world ------------------------------------------------------------


def test_synthetic_world_is_served_with_its_defects_and_exact_values():
    world = SyntheticWorld(GeneratorConfig(seed=3, respondents=("CISO", "BPAT", "AEC")))
    ask = Ask(world=world)
    start = datetime(2024, 7, 1, tzinfo=UTC)
    expected = world.eia_region_data(start, start + timedelta(days=1))
    _, body, _ = ask(
        REGION, [*base_params()[:3], ("start", "2024-07-01T01"), ("end", "2024-07-02T00")]
    )
    rows = body["response"]["data"]
    assert body["response"]["total"] == str(expected.height) == str(len(rows))
    served = sorted(
        (r["period"], r["respondent"], r["type"], None if r["value"] is None else float(r["value"]))
        for r in rows
    )
    truth = sorted(
        ((t + timedelta(hours=1)).strftime("%Y-%m-%dT%H"), r, k, v)
        for t, r, k, v in expected.select(
            "interval_start_utc", "respondent", "type", "value"
        ).rows()
    )
    assert served == truth
