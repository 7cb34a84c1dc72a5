"""Open-Meteo archive client: call weights, batching, the weighted-call budget, dates and faults."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import polars as pl
import pytest
from pydantic import ValidationError

from energy_assets.offline.openmeteo_api import openmeteo_handlers
from energy_assets.offline.server import Fault, FaultPlan, StandInServer
from energy_assets.sources.http import SourceError
from energy_assets.sources.openmeteo import (
    OpenMeteoClient,
    OpenMeteoConfig,
    WeightBudget,
    ba_points,
    call_weight,
    coordinate_key,
    format_coordinate,
    parse_openmeteo_responses,
    plan_calls,
    request_dates,
)
from energy_assets_tests.offline.fakes_caiso_weather import CaisoWeatherWorld
from energy_assets_tests.sources.fake_clock import FakeClock

DAY = datetime(2024, 7, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def points() -> pl.DataFrame:
    return ba_points()


@pytest.fixture(scope="module")
def server() -> Iterator[StandInServer]:
    with StandInServer(openmeteo_handlers(CaisoWeatherWorld())) as running:
        yield running


@pytest.fixture
def faults(server: StandInServer) -> Iterator[FaultPlan]:
    server.faults = FaultPlan()
    server.requests.clear()
    yield server.faults
    server.faults = FaultPlan()


def test_call_weight_matches_the_documented_examples() -> None:
    assert call_weight(15, 28, 1) == pytest.approx(3.0)  # "4 weeks with 15 variables"
    assert call_weight(5, 365, 1) == pytest.approx(13.04, abs=0.01)  # "about 13 per location"
    assert call_weight(6, 1, 10) == 10.0  # a small call still counts 1 per location


def test_request_dates_are_inclusive_and_cover_the_window() -> None:
    assert request_dates(DAY, DAY + timedelta(days=1)) == (date(2024, 7, 1), date(2024, 7, 1))
    assert request_dates(DAY, DAY + timedelta(days=1, hours=5)) == (
        date(2024, 7, 1),
        date(2024, 7, 2),
    )
    with pytest.raises(ValueError, match="no time zone"):
        request_dates(datetime(2024, 7, 1), datetime(2024, 7, 2))


def test_points_are_batched_under_the_location_and_weight_caps(points: pl.DataFrame) -> None:
    config = OpenMeteoConfig(locations_per_call=10)
    calls = plan_calls(config, points, DAY, DAY + timedelta(days=1))
    assert len(calls) == -(-points.height // 10)
    sent = [lat for params, _ in calls for lat in params["latitude"].split(",")]
    assert len(sent) == points.height
    for params, weight in calls:
        assert weight <= config.max_weight_per_call
        assert params["timezone"] == "GMT"
        assert params["hourly"].split(",") == config.variables
        assert (params["start_date"], params["end_date"]) == ("2024-07-01", "2024-07-01")


def test_a_year_is_split_into_date_spans_that_respect_the_weight_cap(
    points: pl.DataFrame,
) -> None:
    config = OpenMeteoConfig(max_weight_per_call=20.0)
    start, end = datetime(2023, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)
    calls = plan_calls(config, points, start, end)
    assert all(weight <= 20.0 for _, weight in calls)
    spans = sorted({(p["start_date"], p["end_date"]) for p, _ in calls})
    assert spans[0][0] == "2023-01-01" and spans[-1][1] == "2023-12-31"
    for (_, last), (first, _) in pairwise(spans):
        assert date.fromisoformat(first) - date.fromisoformat(last) == timedelta(days=1)
    locations_per_span: dict[tuple[str, str], int] = {}
    for params, _ in calls:
        span = (params["start_date"], params["end_date"])
        locations_per_span[span] = locations_per_span.get(span, 0) + len(
            params["latitude"].split(",")
        )
    assert set(locations_per_span.values()) == {points.height}  # every point in every span


def test_balancing_authorities_sharing_a_point_cost_one_location() -> None:
    shared = pl.DataFrame(
        {
            "code": ["AAA", "BBB", "CCC"],
            "latitude": [34.05, 34.05, 40.0],
            "longitude": [-118.25, -118.25, -100.0],
        }
    )
    ((params, weight),) = plan_calls(OpenMeteoConfig(), shared, DAY, DAY + timedelta(days=1))
    assert params["latitude"] == "34.05,40" and params["longitude"] == "-118.25,-100"
    assert weight == 2.0


def test_models_are_sent_when_configured(points: pl.DataFrame) -> None:
    calls = plan_calls(OpenMeteoConfig(models=["era5"]), points, DAY, DAY + timedelta(days=1))
    assert {p["models"] for p, _ in calls} == {"era5"}


def test_config_refuses_budgets_no_call_fits() -> None:
    with pytest.raises(ValidationError, match="max_weight_per_call"):
        OpenMeteoConfig(max_weight_per_call=0.5)
    with pytest.raises(ValidationError, match="no call could ever start"):
        OpenMeteoConfig(max_weight_per_call=50, max_weight_per_minute=40)


def test_weight_budget_never_lets_a_minute_exceed_the_budget() -> None:
    clock = FakeClock()
    budget = WeightBudget({60.0: 25.0, 3600.0: 1000.0}, clock.sleep, clock)
    starts = []
    for weight in [10.0, 10.0, 10.0, 5.0, 20.0, 1.0]:
        budget.acquire(weight)
        starts.append((clock.now, weight))
        clock.now += 0.5  # each call takes half a second
    for t, _ in starts:
        in_window = sum(w for s, w in starts if t - 60 < s <= t)
        assert in_window <= 25.0
    assert budget.waits and all(w > 0 for w in budget.waits)
    assert starts[2][0] >= 60.0  # the third 10 waited for the first to leave the window


def test_weight_budget_paces_the_hour_window_too() -> None:
    clock = FakeClock()
    budget = WeightBudget({60.0: 50.0, 3600.0: 100.0}, clock.sleep, clock)
    starts = []
    for _ in range(5):
        budget.acquire(40.0)
        starts.append(clock.now)
    # Two calls per minute would fit the minute window; the hour allows only two per hour.
    assert starts[2] >= 3600.0 and starts[4] >= 7200.0
    for t in starts:
        assert sum(40.0 for s in starts if t - 3600 < s <= t) <= 100.0


def test_fetch_paces_calls_by_weight(server: StandInServer, points: pl.DataFrame) -> None:
    clock = FakeClock()
    config = OpenMeteoConfig(
        base_url=server.base_url + "/v1",
        locations_per_call=10,
        max_weight_per_call=20.0,
        max_weight_per_minute=20.0,
    )
    client = OpenMeteoClient(config, sleep=clock.sleep, clock=clock)
    responses = client.fetch(points, DAY, DAY + timedelta(days=1))
    assert len(responses) == 7  # 67 points, weights 10 x 6 + 7
    assert clock.now >= 3 * 60  # at most 20 weighted calls per minute: 67 need 4 minutes
    assert [r.page for r in responses] == list(range(7))
    assert all(r.source == "open_meteo" and r.status == 200 for r in responses)


def test_http_400_names_the_reason_and_is_not_retried(
    server: StandInServer, points: pl.DataFrame, faults: FaultPlan
) -> None:
    config = OpenMeteoConfig(
        base_url=server.base_url + "/v1", variables=["tempeture_2m"], base_delay_s=0
    )
    with pytest.raises(SourceError, match="invalid String value tempeture_2m") as raised:
        OpenMeteoClient(config, sleep=lambda s: None).fetch(
            points.head(1), DAY, DAY + timedelta(days=1)
        )
    assert "HTTP 400" in str(raised.value) and "/v1/archive?" in str(raised.value)
    assert server.count("/v1/archive") == 1


def test_http_429_backs_off_then_succeeds(
    server: StandInServer, points: pl.DataFrame, faults: FaultPlan
) -> None:
    reason = (
        b'{"error":true,"reason":"Minutely API request limit exceeded. '
        b'Please try again in one minute."}'
    )
    faults.add(Fault(kind="status", status=429, body=reason, retry_after="60"))
    sleeps: list[float] = []
    config = OpenMeteoConfig(base_url=server.base_url + "/v1", base_delay_s=0)
    responses = OpenMeteoClient(config, sleep=sleeps.append).fetch(
        points.head(3), DAY, DAY + timedelta(days=1)
    )
    assert sleeps == [60.0] and len(responses) == 1
    assert server.count("/v1/archive") == 2


def test_truncated_json_is_retried_and_persistent_truncation_fails(
    server: StandInServer, points: pl.DataFrame, faults: FaultPlan
) -> None:
    config = OpenMeteoConfig(base_url=server.base_url + "/v1", base_delay_s=0, max_attempts=3)
    client = OpenMeteoClient(config, sleep=lambda s: None)
    faults.add(Fault(kind="truncate"))
    responses = client.fetch(points.head(2), DAY, DAY + timedelta(days=1))
    assert parse_openmeteo_responses(responses, points).height == 2 * 24 * 6
    faults.add(Fault(kind="truncate", times=5))
    with pytest.raises(SourceError, match="not complete JSON"):
        client.fetch(points.head(2), DAY, DAY + timedelta(days=1))


def test_coordinate_text_round_trips_to_the_same_key() -> None:
    for value in (34.05, -118.24368, 47.659664, -0.000004, 0.0, 89.999995):
        key = coordinate_key(value)
        assert coordinate_key(float(format_coordinate(key))) == key
    assert format_coordinate(coordinate_key(-118.25)) == "-118.25"
    assert format_coordinate(coordinate_key(-0.000004)) == "0"


def test_the_same_window_is_fetched_again_when_asked_again(
    server: StandInServer, points: pl.DataFrame, faults: FaultPlan
) -> None:
    # ERA5 lands about 5 days late: the trailing window must reach the API on every run.
    client = OpenMeteoClient(
        OpenMeteoConfig(base_url=server.base_url + "/v1"), sleep=lambda s: None
    )
    client.fetch(points.head(3), DAY, DAY + timedelta(days=1))
    client.fetch(points.head(3), DAY, DAY + timedelta(days=1))
    assert server.count("/v1/archive") == 2
