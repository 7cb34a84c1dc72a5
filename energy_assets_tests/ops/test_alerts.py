"""The run-failure alert: a real failed run, the sensor, and a loopback webhook receiver.

A small asset fails the way third-party code sometimes does, with a credential in its error
text; the run also carries a secret in its run config and tags. The alert that reaches the
receiver must say which run, job, partition and error, and contain none of the secrets.
"""

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
from dagster import (
    AssetExecutionContext,
    Config,
    DagsterInstance,
    SkipReason,
    asset,
    build_run_status_sensor_context,
    materialize,
)

from energy_assets import automation
from energy_assets.automation import ALERT_WEBHOOK_ENV, build_automation, post_alert
from energy_assets.partitions import DAILY
from energy_assets.settings import Settings

API_KEY = "eia-KEY-5f3a9c0d1e2b4a67"
CONFIG_SECRET = "run-config-password-0042"
TAG_SECRET = "tag-token-7777aaaa"
HOOK_TOKEN = "T0KEN-9b8a7c6d5e"
DAY = "2024-03-07"


@dataclass
class Receiver:
    url: str
    status: int = 204
    posts: list[tuple[str, bytes]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.posts.append((self.path, body))
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/{HOOK_TOKEN}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


class BoomConfig(Config):
    password: str = ""


@asset(key=["raw", "boom"], partitions_def=DAILY)
def boom(context: AssetExecutionContext, config: BoomConfig) -> None:
    raise RuntimeError(
        f"upstream refused https://api.example.org/v2/data?api_key={API_KEY}&page=2 "
        f"for {context.partition_key}"
    )


def offline_settings(tmp_path) -> Settings:
    return Settings(
        start=date(2024, 3, 6),
        end=date(2024, 3, 8),
        data_dir=str(tmp_path / "data"),
        dagster_home=str(tmp_path / "home"),
        sources={"respondents": ["CISO"]},
    )


def alert_sensor(settings):
    sensors = {s.name: s for s in build_automation(settings).sensors}
    return sensors["alert_on_run_failure"]


@pytest.fixture
def failed_run():
    instance = DagsterInstance.ephemeral()
    result = materialize(
        [boom],
        partition_key=DAY,
        instance=instance,
        raise_on_error=False,
        run_config={"ops": {"raw__boom": {"config": {"password": CONFIG_SECRET}}}},
        tags={"team/token": TAG_SECRET},
    )
    assert not result.success
    return instance, result


def sensor_context(sensor, instance, result):
    return build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
    )


def test_failed_run_posts_one_json_alert_with_run_job_error_and_partition(
    tmp_path, monkeypatch, receiver, failed_run
):
    monkeypatch.setenv(ALERT_WEBHOOK_ENV, receiver.url)
    monkeypatch.setenv("EIA_API_KEY", API_KEY)
    instance, result = failed_run
    sensor = alert_sensor(offline_settings(tmp_path))
    sensor(sensor_context(sensor, instance, result).for_run_failure())

    assert len(receiver.posts) == 1
    path, body = receiver.posts[0]
    assert path == f"/hooks/{HOOK_TOKEN}"
    alert = json.loads(body)
    assert alert["event"] == "run_failure"
    assert alert["run_id"] == result.run_id
    assert alert["job"] == result.dagster_run.job_name
    assert alert["partition"] == {"dagster/partition": DAY}
    assert [s["step"] for s in alert["failed_steps"]] == ["raw__boom"]
    assert "upstream refused" in alert["error"] and DAY in alert["error"]
    assert "api_key=REDACTED" in alert["error"]


def test_alert_contains_no_secret_from_env_error_text_run_config_tags_or_webhook(
    tmp_path, monkeypatch, receiver, failed_run
):
    monkeypatch.setenv(ALERT_WEBHOOK_ENV, receiver.url)
    monkeypatch.setenv("EIA_API_KEY", API_KEY)
    instance, result = failed_run
    sensor = alert_sensor(offline_settings(tmp_path))
    sensor(sensor_context(sensor, instance, result).for_run_failure())
    ((_, body),) = receiver.posts
    for secret in (API_KEY, CONFIG_SECRET, TAG_SECRET, HOOK_TOKEN):
        assert secret.encode() not in body, secret
    assert "team/token" not in json.loads(body)["tags"]


def test_alert_webhook_can_come_from_the_run_config(tmp_path, monkeypatch, receiver, failed_run):
    monkeypatch.delenv(ALERT_WEBHOOK_ENV, raising=False)
    base = offline_settings(tmp_path)
    settings = SimpleNamespace(sources=base.sources, alerts={"webhook_url": receiver.url})
    instance, result = failed_run
    sensor = alert_sensor(settings)
    assert sensor.default_status.value == "RUNNING"
    sensor(sensor_context(sensor, instance, result).for_run_failure())
    assert len(receiver.posts) == 1


def test_without_a_webhook_the_sensor_is_off_and_skips(tmp_path, monkeypatch, failed_run):
    monkeypatch.delenv(ALERT_WEBHOOK_ENV, raising=False)
    instance, result = failed_run
    sensor = alert_sensor(offline_settings(tmp_path))
    assert sensor.default_status.value == "STOPPED"
    outcome = sensor(sensor_context(sensor, instance, result).for_run_failure())
    assert isinstance(outcome, SkipReason) and ALERT_WEBHOOK_ENV in outcome.skip_message


def test_a_refusing_webhook_raises_naming_the_host_but_not_the_token(monkeypatch, receiver):
    monkeypatch.setattr(automation.time, "sleep", lambda s: None)
    receiver.status = 500
    with pytest.raises(RuntimeError) as failure:
        post_alert(receiver.url, {"event": "run_failure"}, attempts=3)
    assert len(receiver.posts) == 3  # retried, then gave up loudly
    message = str(failure.value)
    assert "127.0.0.1" in message and "HTTP 500" in message
    assert HOOK_TOKEN not in message
