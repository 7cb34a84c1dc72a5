"""CAISO OASIS client: request planning, chunking, pacing and the stand-in happy path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
import requests
from pydantic import ValidationError

from energy_assets.offline.caiso_api import NO_DATA, caiso_handlers, oasis_error_zip
from energy_assets.offline.server import StandInServer
from energy_assets.sources.caiso import (
    TRADING_HUBS,
    CAISOClient,
    CAISOConfig,
    chunk_window,
    format_oasis_time,
    parse_oasis_time,
    plan_requests,
)
from energy_assets_tests.offline.fakes_caiso_weather import CaisoWeatherWorld
from energy_assets_tests.sources.fake_clock import FakeClock

DAY = datetime(2024, 7, 1, tzinfo=UTC)


def test_oasis_time_is_gmt_text_and_round_trips() -> None:
    noon_utc = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)
    assert format_oasis_time(noon_utc) == "20240310T12:00-0000"
    assert parse_oasis_time("20240310T12:00-0000") == noon_utc
    # An aware non-UTC time is converted, never sent as its wall clock.
    pacific = noon_utc.astimezone(ZoneInfo("America/Los_Angeles"))
    assert format_oasis_time(pacific) == "20240310T12:00-0000"


def test_naive_window_is_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        plan_requests(CAISOConfig(), "lmp", datetime(2024, 1, 1), datetime(2024, 1, 2))


def test_seventy_day_lmp_request_becomes_three_chunks_of_at_most_31_days() -> None:
    plans = plan_requests(CAISOConfig(), "lmp", DAY, DAY + timedelta(days=70))
    assert len(plans) == 3
    windows = [
        (parse_oasis_time(p["startdatetime"]), parse_oasis_time(p["enddatetime"])) for p in plans
    ]
    assert windows[0][0] == DAY and windows[-1][1] == DAY + timedelta(days=70)
    for (_, a_end), (b_start, _) in pairwise(windows):
        assert a_end == b_start  # contiguous: no hour lost or asked twice
    assert all(end - start <= timedelta(days=31) for start, end in windows)


def test_chunking_respects_a_smaller_configured_limit() -> None:
    chunks = chunk_window(DAY, DAY + timedelta(days=10), 3)
    assert [round((b - a) / timedelta(days=1)) for a, b in chunks] == [3, 3, 3, 1]


def test_load_asks_once_per_market_run_per_chunk() -> None:
    plans = plan_requests(CAISOConfig(), "load", DAY, DAY + timedelta(days=40))
    assert len(plans) == 2 * 4
    assert [p["market_run_id"] for p in plans[:4]] == ["ACTUAL", "DAM", "2DA", "7DA"]
    assert {p["queryname"] for p in plans} == {"SLD_FCST"}
    assert all(p["resultformat"] == 6 and p["version"] == 1 for p in plans)


def test_lmp_asks_the_three_hubs_day_ahead() -> None:
    (plan,) = plan_requests(CAISOConfig(), "lmp", DAY, DAY + timedelta(days=1))
    assert plan["node"].split(",") == TRADING_HUBS
    assert plan["market_run_id"] == "DAM" and plan["queryname"] == "PRC_LMP"
    assert plan["startdatetime"] == "20240701T00:00-0000"
    assert plan["enddatetime"] == "20240702T00:00-0000"


def test_more_than_ten_nodes_are_split_across_requests() -> None:
    hubs = [f"NODE_{i}-APND" for i in range(23)]
    plans = plan_requests(CAISOConfig(hubs=hubs), "lmp", DAY, DAY + timedelta(days=1))
    assert [len(p["node"].split(",")) for p in plans] == [10, 10, 3]


def test_config_refuses_chunks_over_31_days_and_unknown_market_runs() -> None:
    with pytest.raises(ValidationError):
        CAISOConfig(max_chunk_days=32)
    with pytest.raises(ValidationError, match="RTM"):
        CAISOConfig(market_run_ids=["ACTUAL", "RTM"])


def test_pacing_waits_min_interval_between_requests_with_a_fake_clock() -> None:
    clock = FakeClock(start=1000.0)
    with StandInServer(caiso_handlers(CaisoWeatherWorld())) as server:
        client = CAISOClient(
            CAISOConfig(base_url=server.base_url + "/oasisapi", min_interval_s=5.0),
            sleep=clock.sleep,
            clock=clock,
        )
        client.fetch("load", DAY, DAY + timedelta(days=1))
        client.fetch("lmp", DAY, DAY + timedelta(days=1))
        assert server.count("/oasisapi/") == 5
    assert client.session.waits == [5.0, 5.0, 5.0, 5.0]
    assert all(w >= 5.0 for w in clock.sleeps)


def test_pacing_counts_from_the_end_of_a_slow_request() -> None:
    clock = FakeClock(start=1000.0)

    class SlowSession:
        calls = 0

        def get(self, url: str, **kwargs: object) -> requests.Response:
            SlowSession.calls += 1
            clock.now += 3.0  # the answer takes 3 s
            response = requests.Response()
            response.status_code = 200
            response._content = oasis_error_zip(*NO_DATA, member="x_v1.xml")
            response.url = url
            return response

    client = CAISOClient(
        CAISOConfig(min_interval_s=5.0), session=SlowSession(), sleep=clock.sleep, clock=clock
    )
    client.fetch("lmp", DAY, DAY + timedelta(days=93))
    assert SlowSession.calls == 3
    # 5 s are counted from the end of each 3 s answer, not from its start.
    assert client.session.waits == [5.0, 5.0]


def test_fetch_returns_verbatim_zips_with_their_request() -> None:
    with StandInServer(caiso_handlers(CaisoWeatherWorld())) as server:
        client = CAISOClient(
            CAISOConfig(base_url=server.base_url + "/oasisapi", min_interval_s=0.0)
        )
        responses = client.fetch("load", DAY, DAY + timedelta(days=1))
    assert [r.request_params["market_run_id"] for r in responses] == ["ACTUAL", "DAM", "2DA", "7DA"]
    assert [r.page for r in responses] == [0, 1, 2, 3]
    for r in responses:
        assert r.source == "caiso_oasis" and r.dataset == "load" and r.status == 200
        assert r.body[:2] == b"PK"
        assert r.request_url.startswith(server.base_url + "/oasisapi/SingleZip?")
        assert "startdatetime=20240701T00%3A00-0000" in r.request_url
