"""The EIA client against the offline stand-in: paging, faults, retries and key redaction."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, quote_plus

import polars as pl
import pytest
from pydantic import ValidationError

from energy_assets.offline.eia_api import eia_handlers
from energy_assets.offline.generator import GeneratorConfig, SyntheticWorld
from energy_assets.offline.server import (
    Fault,
    FaultPlan,
    StandInRequest,
    StandInResponse,
    StandInServer,
)
from energy_assets.offline.world import World
from energy_assets.sources.base import RawResponse
from energy_assets.sources.eia import EIAClient, EIAConfig, eia_parse_report, parse_eia_responses
from energy_assets.sources.http import (
    KeyRefused,
    RequestRefused,
    RetriesExhausted,
    SourceError,
    TransientSourceError,
)
from energy_assets_tests.offline.fakes import TinyWorld

DAY = datetime(2024, 3, 10, tzinfo=UTC)
NEXT_DAY = DAY + timedelta(days=1)
RESPONDENTS = ["AEC", "BPAT", "CISO"]
# A key with characters that URL encoding and JSON escaping both change.
KEY = "S3cr3t+Key/with=Odd&Chars"
KEY_FORMS = {KEY, quote(KEY, safe=""), quote_plus(KEY), KEY.replace("/", "\\/")}
KEY_COLUMNS = ["interval_start_utc", "region", "series"]
SERIES = {
    "D": "demand",
    "DF": "demand_forecast_da",
    "NG": "net_generation",
    "TI": "total_interchange",
}


@pytest.fixture
def world() -> TinyWorld:
    return TinyWorld(tuple(RESPONDENTS))


class Harness:
    """A running stand-in, its fault plan, and a client factory whose sleeps are recorded."""

    def __init__(self, server: StandInServer) -> None:
        self.server = server
        self.sleeps: list[float] = []

    def use(self, handlers: dict) -> Harness:
        self.server.handlers = dict(handlers)
        return self

    def client(self, **overrides: object) -> EIAClient:
        settings: dict[str, object] = {
            "base_url": f"{self.server.base_url}/v2",
            "api_key": KEY,
            "respondents": RESPONDENTS,
            "page_length": 50,
            "max_attempts": 4,
            "base_delay_s": 0.5,
            "max_delay_s": 4.0,
            "timeout_s": 5.0,
            "retry_seed": 7,
        }
        settings.update(overrides)
        return EIAClient(EIAConfig(**settings), sleep=self.sleeps.append)

    def fault(self, **kwargs: object) -> None:
        self.server.faults.add(Fault(**kwargs))

    def queries(self) -> list[dict[str, list[str]]]:
        return [r.query for r in self.server.requests]


@pytest.fixture(scope="module")
def server() -> Iterator[StandInServer]:
    # One server for the module: stopping one costs half a second (serve_forever's poll).
    with StandInServer({}) as running:
        yield running


@pytest.fixture
def standin(server, world) -> Harness:
    server.faults = FaultPlan()
    server.requests.clear()
    return Harness(server).use(eia_handlers(world))


def tamper(world: TinyWorld, change, every_page: bool = False) -> dict:
    """Stand-in handlers whose JSON answer for page 0 (or every page) goes through `change`."""
    inner = eia_handlers(world)["/v2/"]

    def handler(request: StandInRequest) -> StandInResponse:
        response = inner(request)
        if response.status != 200 or not (every_page or request.one("offset") == "0"):
            return response
        body = change(json.loads(response.body))
        return StandInResponse(200, json.dumps(body).encode(), response.headers)

    return {"/v2/": handler}


def expected_long(world: World, route: str) -> pl.DataFrame:
    """The world's own rows for DAY in the long shape, written independently of the parser."""
    if route == "region-data":
        frame = world.eia_region_data(DAY, NEXT_DAY).select(
            "interval_start_utc",
            region="respondent",
            series=pl.col("type").replace_strict(SERIES),
            value="value",
        )
    elif route == "fuel-type-data":
        frame = world.eia_fuel_type_data(DAY, NEXT_DAY).select(
            "interval_start_utc",
            region="respondent",
            series="generation_" + pl.col("fueltype").str.to_lowercase(),
            value="value",
        )
    else:
        frame = world.eia_interchange_data(DAY, NEXT_DAY).select(
            "interval_start_utc",
            region="fromba",
            series="interchange_to_" + pl.col("toba"),
            value="value",
        )
    return frame.sort(pl.all())


def values(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select("interval_start_utc", "region", "series", "value").sort(pl.all())


# --- paging and the request pattern -----------------------------------------------------------


@pytest.mark.parametrize("route", ["region-data", "fuel-type-data", "interchange-data"])
def test_round_trip_of_a_utc_day_equals_the_world_exactly(standin, world, route):
    pages = standin.client().fetch(route, DAY, NEXT_DAY)
    parsed = parse_eia_responses(pages)
    assert values(parsed).equals(expected_long(world, route))  # exact floats, nulls, duplicates
    hours = parsed["interval_start_utc"]
    assert (hours.min(), hours.max()) == (DAY, NEXT_DAY - timedelta(hours=1))
    assert set(parsed["units"]) == {"MW"} and set(parsed["source"]) == {"eia930"}


@pytest.mark.parametrize("route", ["region-data", "fuel-type-data", "interchange-data"])
def test_round_trip_against_the_synthetic_world_with_defects(standin, route):
    world = SyntheticWorld(
        GeneratorConfig(
            seed=5,
            respondents=("CISO", "BPAT", "AEC"),
            duplicate_rate=0.05,
            null_rate=0.02,
            missing_hour_rate=0.02,
        )
    )
    standin.use(eia_handlers(world))
    parsed = parse_eia_responses(standin.client(respondents=None).fetch(route, DAY, NEXT_DAY))
    expected = expected_long(world, route)
    assert values(parsed).equals(expected)
    duplicates = expected.height - expected.unique(KEY_COLUMNS).height
    assert eia_parse_report(parsed)["duplicate_rows"] == duplicates > 0


def test_a_day_is_asked_as_inclusive_hour_ending_bounds(standin):
    standin.client().fetch("region-data", DAY, NEXT_DAY)
    query = standin.queries()[0]
    assert (query["start"], query["end"]) == (["2024-03-10T01"], ["2024-03-11T00"])


def test_pages_cover_total_with_all_respondents_in_each_request(standin):
    client = standin.client()
    pages = client.fetch("region-data", DAY, NEXT_DAY)
    total = 3 * 4 * 24 + 1  # respondents x types x hours, plus the world's duplicate row
    assert len(pages) == -(-total // 50) >= 3
    assert [p.page for p in pages] == list(range(len(pages)))
    queries = standin.queries()
    assert [q["offset"] for q in queries] == [[str(50 * i)] for i in range(len(pages))]
    assert all(q["facets[respondent][]"] == RESPONDENTS for q in queries)
    assert client.requests_made == len(pages) and client.retries_made == 0


@pytest.mark.parametrize(
    ("route", "key"),
    [
        ("region-data", ["period", "respondent", "type"]),
        ("fuel-type-data", ["period", "respondent", "fueltype"]),
        ("interchange-data", ["period", "fromba", "toba"]),
    ],
)
def test_requests_sort_on_the_full_key(standin, route, key):
    standin.client().fetch(route, DAY, DAY + timedelta(hours=2))
    query = standin.queries()[0]
    assert [query[f"sort[{i}][column]"][0] for i in range(3)] == key
    assert {query[f"sort[{i}][direction]"][0] for i in range(3)} == {"asc"}


def test_interchange_selects_respondents_with_the_fromba_facet(standin):
    standin.client(respondents=["AEC", "CISO"]).fetch("interchange-data", DAY, NEXT_DAY)
    query = standin.queries()[0]
    assert query["facets[fromba][]"] == ["AEC", "CISO"]
    assert "facets[respondent][]" not in query


def test_respondent_chunks_give_the_same_rows_and_continue_page_numbers(standin):
    whole = standin.client().fetch("region-data", DAY, NEXT_DAY)
    chunked = standin.client(respondents_per_request=2).fetch("region-data", DAY, NEXT_DAY)
    facets = {tuple(q["facets[respondent][]"]) for q in standin.queries()[len(whole) :]}
    assert facets == {("AEC", "BPAT"), ("CISO",)}
    assert [p.page for p in chunked] == list(range(len(chunked)))
    assert values(parse_eia_responses(chunked)).equals(values(parse_eia_responses(whole)))


def test_all_respondents_sends_no_respondent_facet(standin, world):
    pages = standin.client(respondents=None).fetch("region-data", DAY, NEXT_DAY)
    assert not any(name.startswith("facets") for name in standin.queries()[0])
    assert set(parse_eia_responses(pages)["region"]) == set(world.respondents())


def test_pages_record_source_dataset_status_and_content_type(standin):
    pages = standin.client().fetch("fuel-type-data", DAY, NEXT_DAY)
    assert {(p.source, p.dataset, p.status, p.content_type) for p in pages} == {
        ("eia930", "fuel-type-data", 200, "application/json")
    }
    assert all(p.fetched_at_utc.tzinfo is not None for p in pages)
    assert pages[1].request_params["offset"] == "50"


def test_pre_2024_numeric_values_round_trip_too(standin, world):
    standin.use(eia_handlers(world, numeric_values=True))
    pages = standin.client().fetch("region-data", DAY, NEXT_DAY)
    assert json.loads(pages[0].body)["apiVersion"] == "2.1.4"
    assert values(parse_eia_responses(pages)).equals(expected_long(world, "region-data"))


# --- paging checks ----------------------------------------------------------------------------


def test_total_changing_between_pages_fails_loudly(standin):
    standin.fault(kind="total_drift", skip=1)  # the second page reports one more row
    with pytest.raises(SourceError, match=r"`total` changed between pages .* from 289 to 290"):
        standin.client().fetch("region-data", DAY, NEXT_DAY)


def test_capped_pages_with_warnings_are_paged_on_not_truncated(standin, world, caplog):
    # The stand-in caps pages at 20 rows with the "incomplete return" warning; the client asked
    # for 50. It must keep paging from the rows it actually got.
    standin.use(eia_handlers(world, max_rows=20))
    with caplog.at_level(logging.WARNING, logger="energy_assets"):
        pages = standin.client().fetch("region-data", DAY, NEXT_DAY)
    assert len(pages) == -(-289 // 20)
    assert values(parse_eia_responses(pages)).equals(expected_long(world, "region-data"))
    assert "incomplete return" in caplog.text


def drop_last_row(body: dict) -> dict:
    body["response"]["data"] = body["response"]["data"][:-1]
    return body


def add_warning_drop_total(body: dict) -> dict:
    body["response"]["warnings"] = [{"warning": "incomplete return", "description": "x"}]
    body["response"]["total"] = None
    return body


def empty_page(body: dict) -> dict:
    body["response"]["data"] = []
    return body


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (drop_last_row, "holds 49 rows but `total`=289 and length=50 promise 50"),
        (add_warning_drop_total, "carries warnings but no `total`"),
        (empty_page, "holds 0 rows"),
    ],
)
def test_short_or_unverifiable_pages_are_errors_not_truncations(standin, world, change, message):
    standin.use(tamper(world, change))
    with pytest.raises(SourceError, match=message):
        standin.client().fetch("region-data", DAY, NEXT_DAY)


def test_null_total_without_warnings_pages_until_a_short_page(standin, world):
    def drop_total(body: dict) -> dict:
        body["response"]["total"] = None
        return body

    standin.use(tamper(world, drop_total, every_page=True))
    pages = standin.client().fetch("region-data", DAY, NEXT_DAY)
    assert values(parse_eia_responses(pages)).equals(expected_long(world, "region-data"))


def test_error_body_with_http_200_is_an_error_and_not_retried(standin, world):
    error = {"error": "Invalid frequency 'millenially' provided.", "code": 400}
    standin.use(tamper(world, lambda body: error))
    client = standin.client()
    with pytest.raises(SourceError, match="Invalid frequency 'millenially'"):
        client.fetch("region-data", DAY, NEXT_DAY)
    assert client.requests_made == 1


# --- faults, retries and backoff --------------------------------------------------------------


def test_429_honours_retry_after_then_backs_off_without_it(standin):
    standin.fault(kind="status", status=429, retry_after="3", body=b"{}")
    standin.fault(kind="status", status=429, body=b"{}")
    client = standin.client()
    pages = client.fetch("interchange-data", DAY, NEXT_DAY)
    assert len(pages) == 3 and client.retries_made == 2
    assert standin.sleeps[0] == 3.0
    assert 0 <= standin.sleeps[1] <= 0.5 * 2  # attempt 1: uniform(0, base * 2**1)


def test_retry_after_is_capped_by_max_delay(standin):
    standin.fault(kind="status", status=429, retry_after="600")
    standin.client().fetch("interchange-data", DAY, DAY + timedelta(hours=1))
    assert standin.sleeps == [4.0]


def test_5xx_is_retried_with_bounded_jittered_backoff_then_a_clear_error(standin):
    standin.fault(kind="status", status=503, times=10, body=b'{"error":"busy"}')
    client = standin.client(max_attempts=6, base_delay_s=0.5, max_delay_s=2.0)
    with pytest.raises(SourceError) as caught:
        client.fetch("region-data", DAY, NEXT_DAY)
    message = str(caught.value)
    assert "failed after 6 attempts" in message and "HTTP 503" in message
    assert "/electricity/rto/region-data/data/" in message
    assert client.requests_made == 6 and len(standin.sleeps) == 5
    bounds = [min(2.0, 0.5 * 2**attempt) for attempt in range(5)]
    assert all(0 <= s <= b for s, b in zip(standin.sleeps, bounds, strict=True))
    assert len(set(standin.sleeps)) == 5  # jittered, not a fixed ladder


def test_500_once_is_retried_and_the_fetch_completes(standin, world):
    standin.fault(kind="status", status=500, skip=2)  # fails the third page once
    client = standin.client()
    pages = client.fetch("region-data", DAY, NEXT_DAY)
    assert client.retries_made == 1
    assert values(parse_eia_responses(pages)).equals(expected_long(world, "region-data"))


def test_timeout_is_retried(world):
    # Its own server: the stalled answer is logged after the test, which would confuse others.
    faults = FaultPlan([Fault(kind="timeout", delay_s=1.0)])
    with StandInServer(eia_handlers(world), faults) as server:
        client = Harness(server).client(timeout_s=0.2)
        pages = client.fetch("interchange-data", DAY, DAY + timedelta(hours=2))
    assert client.retries_made == 1 and len(pages) == 1


def test_truncated_body_is_retried_a_bounded_number_of_times(standin, world):
    standin.fault(kind="truncate")
    client = standin.client()
    pages = client.fetch("region-data", DAY, NEXT_DAY)
    assert client.retries_made == 1
    assert values(parse_eia_responses(pages)).equals(expected_long(world, "region-data"))

    standin.fault(kind="truncate", times=10)
    with pytest.raises(SourceError, match=r"not complete JSON.*cut off"):
        standin.client(max_attempts=3).fetch("region-data", DAY, NEXT_DAY)


def test_403_key_refused_fails_at_once_naming_the_key_problem(standin, world):
    # A refused key stays refused: retrying it (formerly for minutes) cannot help.
    standin.use(eia_handlers(world, api_key="the-right-key"))
    client = standin.client(max_attempts=3)
    with pytest.raises(KeyRefused) as caught:
        client.fetch("region-data", DAY, NEXT_DAY)
    assert client.requests_made == 1 and standin.sleeps == []
    assert not isinstance(caught.value, TransientSourceError)
    assert "API_KEY_INVALID" in str(caught.value)
    assert "EIAConfig.api_key" in str(caught.value) and not leaks(str(caught.value))


def test_missing_key_is_reported_as_missing(standin):
    with pytest.raises(KeyRefused, match="API_KEY_MISSING"):
        standin.client(api_key=None, max_attempts=2).fetch("region-data", DAY, NEXT_DAY)


def test_401_fails_at_once_as_a_refused_key(standin):
    standin.fault(kind="status", status=401, times=5, body=b"Unauthorized")
    client = standin.client()
    with pytest.raises(KeyRefused, match=r"HTTP 401.*EIAConfig\.api_key"):
        client.fetch("region-data", DAY, NEXT_DAY)
    assert client.requests_made == 1


def test_400_bad_request_fails_at_once_saying_to_fix_the_request(standin):
    error = b'{"error":"Invalid frequency \'millenially\' provided.","code":400}'
    standin.fault(kind="status", status=400, times=5, body=error)
    client = standin.client()
    with pytest.raises(RequestRefused, match="Fix the request") as caught:
        client.fetch("region-data", DAY, NEXT_DAY)
    assert client.requests_made == 1 and standin.sleeps == []
    assert not isinstance(caught.value, TransientSourceError)


def test_over_rate_limit_is_retried_then_a_transient_error(standin):
    throttled = b'{"error":{"code":"OVER_RATE_LIMIT","message":"slow down"}}'
    standin.fault(kind="status", status=403, times=10, body=throttled)
    client = standin.client(max_attempts=3)
    with pytest.raises(RetriesExhausted, match="OVER_RATE_LIMIT"):
        client.fetch("region-data", DAY, NEXT_DAY)
    assert client.requests_made == 3 and len(standin.sleeps) == 2


def test_transient_403_without_body_is_retried(standin):
    standin.fault(kind="status", status=403)
    client = standin.client()
    client.fetch("interchange-data", DAY, DAY + timedelta(hours=1))
    assert client.retries_made == 1


# --- the key never leaks ----------------------------------------------------------------------


def leaks(text: str) -> list[str]:
    return [form for form in KEY_FORMS if form in text]


def stored_text(page: RawResponse) -> str:
    return page.request_url + json.dumps(page.request_params) + page.body.decode()


@pytest.mark.parametrize("transport", ["header", "query"])
def test_key_appears_in_no_record_error_or_log(standin, caplog, transport):
    # urllib3 logs request lines (with the query string) at DEBUG; with the key in the query that
    # is outside our control, so the header transport is the default and is checked at root DEBUG.
    caplog.set_level(logging.DEBUG, logger=None if transport == "header" else "energy_assets")
    standin.fault(kind="status", status=429, retry_after="0", body=b'{"error":"slow"}')
    standin.fault(kind="truncate", skip=1)
    standin.fault(kind="status", status=500, skip=2)
    pages = standin.client(key_transport=transport).fetch("region-data", DAY, NEXT_DAY)
    assert all(not leaks(stored_text(page)) for page in pages)
    echo = json.loads(pages[0].body)["request"]["params"]
    assert echo["api_key"] == "REDACTED"  # the stand-in echoes the key, like the real API
    if transport == "query":
        assert "api_key=REDACTED" in pages[0].request_url

    standin.fault(kind="status", status=502, times=10, body=KEY.encode())
    with pytest.raises(SourceError) as caught:
        standin.client(key_transport=transport, max_attempts=2).fetch("region-data", DAY, NEXT_DAY)
    assert not leaks(str(caught.value)) and "REDACTED" in str(caught.value)
    assert caplog.text and not leaks(caplog.text)


def test_key_is_redacted_from_error_bodies_that_echo_it(standin, world):
    def echo_error(body: dict) -> dict:
        return {"error": f"bad request for key {KEY}", "code": 400}

    standin.use(tamper(world, echo_error))
    with pytest.raises(SourceError) as caught:
        standin.client(key_transport="query").fetch("region-data", DAY, NEXT_DAY)
    assert not leaks(str(caught.value))


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", [{"page_length": 5001}, {"page_length": 0}, {"respondents": []}, {"max_attempts": 0}]
)
def test_config_refuses_values_the_api_or_the_retry_loop_cannot_use(bad):
    with pytest.raises(ValidationError):
        EIAConfig(**bad)


def test_config_hides_the_key_in_its_repr():
    assert KEY not in repr(EIAConfig(api_key=KEY))


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (datetime(2024, 3, 10), NEXT_DAY, "naive"),
        (DAY + timedelta(minutes=30), NEXT_DAY, "whole hour"),
        (NEXT_DAY, DAY, "empty"),
    ],
)
def test_fetch_window_must_be_aware_whole_hours_and_non_empty(start, end, message):
    client = EIAClient(EIAConfig(api_key="k"), sleep=lambda s: None)
    with pytest.raises(ValueError, match=message):
        client.fetch("region-data", start, end)


def test_unknown_route_is_refused_before_any_request():
    client = EIAClient(EIAConfig(api_key="k"), sleep=lambda s: None)
    with pytest.raises(ValueError, match="sub-BA data is not ingested"):
        client.fetch("region-sub-ba-data", DAY, NEXT_DAY)
    assert client.requests_made == 0


def test_connection_dropped_mid_body_is_retried():
    import socket
    import threading

    from energy_assets.sources.http import HttpFetcher, RetryPolicy

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    served = []

    def serve() -> None:
        for _ in range(3):
            conn, _ = listener.accept()
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 50)
            conn.close()
            served.append(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    fetcher = HttpFetcher(policy=RetryPolicy(max_attempts=3, timeout_s=5), sleep=lambda s: None)
    with pytest.raises(RetriesExhausted, match="failed after 3 attempts"):
        fetcher.get(f"http://127.0.0.1:{port}/v2/x")
    thread.join(timeout=5)
    listener.close()
    assert len(served) == 3
