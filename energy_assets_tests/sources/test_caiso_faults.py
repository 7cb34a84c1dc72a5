"""The OASIS client under injected faults: 429, 5xx, timeouts, cut zips, 'retry later' zips."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from energy_assets.offline.caiso_api import caiso_handlers, retry_later_fault
from energy_assets.offline.server import (
    Fault,
    FaultPlan,
    StandInRequest,
    StandInResponse,
    StandInServer,
)
from energy_assets.sources.caiso import CAISOClient, CAISOConfig, parse_caiso_responses
from energy_assets.sources.http import RetriesExhausted, SourceError, TransientSourceError
from energy_assets_tests.offline.fakes_caiso_weather import CaisoWeatherWorld
from energy_assets_tests.sources.corrupt_zip import corrupt_deflate

DAY = datetime(2024, 7, 1, tzinfo=UTC)
NEXT = DAY + timedelta(days=1)


@pytest.fixture(scope="module")
def server() -> Iterator[StandInServer]:
    with StandInServer(caiso_handlers(CaisoWeatherWorld())) as running:
        yield running


@pytest.fixture
def faults(server: StandInServer) -> Iterator[FaultPlan]:
    server.faults = FaultPlan()
    server.requests.clear()
    yield server.faults
    server.faults = FaultPlan()


def client(server: StandInServer, sleeps: list[float], **overrides: object) -> CAISOClient:
    settings: dict[str, object] = {"min_interval_s": 0.0, "base_delay_s": 0.0, "max_attempts": 4}
    settings.update(overrides)
    config = CAISOConfig(base_url=server.base_url + "/oasisapi", **settings)  # type: ignore[arg-type]
    return CAISOClient(config, sleep=sleeps.append)


def test_http_429_backs_off_for_retry_after_then_succeeds(
    server: StandInServer, faults: FaultPlan
) -> None:
    faults.add(Fault(kind="status", status=429, retry_after="7", body=b"Too Many Requests"))
    sleeps: list[float] = []
    responses = client(server, sleeps).fetch("lmp", DAY, NEXT)
    assert sleeps == [7.0]
    assert server.count("/oasisapi/") == 2
    assert parse_caiso_responses(responses).height == 3 * 4 * 24


def test_server_errors_are_retried_with_backoff(server: StandInServer, faults: FaultPlan) -> None:
    faults.add(Fault(kind="status", status=503, times=2, body=b"<html>busy</html>"))
    sleeps: list[float] = []
    client(server, sleeps).fetch("lmp", DAY, NEXT)
    assert len(sleeps) == 2 and server.count("/oasisapi/") == 3


def test_timeout_is_retried(server: StandInServer, faults: FaultPlan) -> None:
    faults.add(Fault(kind="timeout", delay_s=1.0))
    sleeps: list[float] = []
    responses = client(server, sleeps, timeout_s=0.3).fetch("lmp", DAY, NEXT)
    assert len(sleeps) == 1 and len(responses) == 1
    # Let the abandoned answer finish, so its log entry cannot land in the next test.
    deadline = time.monotonic() + 10
    while server.count("/oasisapi/") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)


def test_truncated_zip_is_detected_and_retried(server: StandInServer, faults: FaultPlan) -> None:
    faults.add(Fault(kind="truncate"))
    sleeps: list[float] = []
    responses = client(server, sleeps).fetch("lmp", DAY, NEXT)
    assert server.count("/oasisapi/") == 2 and len(sleeps) == 1
    assert parse_caiso_responses(responses).height == 3 * 4 * 24


def test_always_truncated_zip_fails_clearly_after_the_attempts(
    server: StandInServer, faults: FaultPlan
) -> None:
    faults.add(Fault(kind="truncate", times=10))
    with pytest.raises(SourceError, match="not a complete zip") as raised:
        client(server, [], max_attempts=3).fetch("lmp", DAY, NEXT)
    assert "after 3 attempts" in str(raised.value)
    assert isinstance(raised.value, TransientSourceError)
    assert "/oasisapi/SingleZip?queryname=PRC_LMP" in str(raised.value)
    assert server.count("/oasisapi/") == 3


def test_retry_later_error_zip_is_asked_again(server: StandInServer, faults: FaultPlan) -> None:
    faults.add(retry_later_fault(times=1))
    sleeps: list[float] = []
    responses = client(server, sleeps).fetch("load", DAY, NEXT)
    assert server.count("/oasisapi/") == 5  # four market runs, the first asked twice
    assert len(sleeps) == 1
    assert parse_caiso_responses(responses).height == 5 * 4 * 24


def test_persistent_retry_later_fails_naming_the_oasis_code(
    server: StandInServer, faults: FaultPlan
) -> None:
    faults.add(retry_later_fault(times=10))
    with pytest.raises(SourceError, match="OASIS error 1015") as raised:
        client(server, [], max_attempts=2).fetch("lmp", DAY, NEXT)
    assert "retry later" in str(raised.value)


def corrupting(server: StandInServer, times: int) -> None:
    """The next `times` OASIS answers arrive with a deflate stream that zlib rejects."""
    inner = caiso_handlers(CaisoWeatherWorld())["/oasisapi/"]
    left = [times]

    def handler(request: StandInRequest) -> StandInResponse:
        response = inner(request)
        if left[0] <= 0:
            return response
        left[0] -= 1
        return StandInResponse(response.status, corrupt_deflate(response.body), response.headers)

    server.handlers = {"/oasisapi/": handler}


def test_corrupt_zip_is_retried_then_a_transient_error(
    server: StandInServer, faults: FaultPlan
) -> None:
    try:
        corrupting(server, times=1)
        sleeps: list[float] = []
        responses = client(server, sleeps).fetch("lmp", DAY, NEXT)
        assert server.count("/oasisapi/") == 2 and len(sleeps) == 1
        assert parse_caiso_responses(responses).height == 3 * 4 * 24

        corrupting(server, times=10)
        with pytest.raises(RetriesExhausted, match=r"zlib\.error") as raised:
            client(server, [], max_attempts=3).fetch("lmp", DAY, NEXT)
        assert isinstance(raised.value, TransientSourceError)
    finally:
        server.handlers = caiso_handlers(CaisoWeatherWorld())
