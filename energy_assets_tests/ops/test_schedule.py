"""The daily refresh: one ranged run over the newest complete day and the revision window.

The schedule is evaluated at fixed ticks with `build_schedule_context`, and the run request it
returns is executed in-process against the offline stand-in, so the tags are proven to drive a
real ranged run of every layer except ml.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from dagster import AssetKey, DagsterInstance, build_schedule_context
from dagster._core.definitions.partitions.context import partition_loading_context

from energy_assets import automation
from energy_assets.automation import REFRESH_JOB, build_automation
from energy_assets.definitions import build_definitions
from energy_assets.partitions import DAILY
from energy_assets.sources.registry import SOURCES
from energy_assets_tests.ops.conftest import make_settings

TICK = datetime(2024, 3, 13, 6, 0, tzinfo=UTC)
START, END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def refresh_schedule(settings):
    (schedule,) = build_automation(settings).schedules
    return schedule


def evaluate(schedule, when: datetime):
    result = schedule.evaluate_tick(build_schedule_context(scheduled_execution_time=when))
    return result.run_requests


def test_refresh_requests_one_run_from_the_newest_complete_day_back_over_every_revision(
    tmp_path,
):
    schedule = refresh_schedule(make_settings(tmp_path))
    (request,) = evaluate(schedule, TICK)
    first, last = date.fromisoformat(request.tags[START]), date.fromisoformat(request.tags[END])
    # the newest complete UTC day is the last partition that exists at the tick
    with partition_loading_context(TICK):
        newest = DAILY.get_last_partition_key()
    assert last.isoformat() == newest == "2024-03-12"
    # every source's revision window is inside, and the window is no wider than the widest
    for spec in SOURCES.values():
        assert first <= last - timedelta(days=spec.revision_days), spec.name
    assert first == last - timedelta(days=max(s.revision_days for s in SOURCES.values()))
    assert schedule.job_name == REFRESH_JOB


def test_refresh_runs_daily_at_six_utc_and_each_window_launches_once(tmp_path):
    schedule = refresh_schedule(make_settings(tmp_path))
    assert schedule.cron_schedule == "0 6 * * *"
    assert schedule.execution_timezone == "UTC"
    (today,) = evaluate(schedule, TICK)
    (again,) = evaluate(schedule, TICK)
    (tomorrow,) = evaluate(schedule, TICK + timedelta(days=1))
    assert today.run_key == again.run_key  # a re-evaluated tick is deduplicated
    assert tomorrow.run_key != today.run_key
    shift = date.fromisoformat(tomorrow.tags[START]) - date.fromisoformat(today.tags[START])
    assert shift == timedelta(days=1)


def test_refresh_job_selects_every_layer_except_ml_and_the_forecaster(tmp_path):
    defs = build_definitions(make_settings(tmp_path))
    graph = defs.resolve_asset_graph()
    selected = defs.resolve_job_def(REFRESH_JOB).asset_layer.selected_asset_keys
    every = {k for k in graph.get_all_asset_keys() if graph.get(k).is_materializable}
    assert selected == {k for k in every if graph.get(k).group_name not in ("ml", "forecast")}
    assert {k.path[0] for k in selected} >= {"raw", "aligned", "imputed", "features"}
    # the refreshed window is fetched again: what upstream revised in it is recorded
    assert {AssetKey(["raw", f"{name}_revisions"]) for name in SOURCES} <= selected


def run_refresh(tmp_path):
    """The tick's run request, executed in-process on an ephemeral instance."""
    settings = make_settings(tmp_path)
    defs = build_definitions(settings)
    (request,) = evaluate(refresh_schedule(settings), TICK)
    instance = DagsterInstance.ephemeral()
    result = defs.resolve_job_def(REFRESH_JOB).execute_in_process(
        instance=instance, tags=request.tags, raise_on_error=False
    )
    assert result.success
    return defs, request, instance, result


def test_refresh_request_materializes_every_day_of_the_window_in_one_run(tmp_path):
    defs, request, instance, result = run_refresh(tmp_path)
    first, last = date.fromisoformat(request.tags[START]), date.fromisoformat(request.tags[END])
    days = {(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)}
    for key in defs.resolve_job_def(REFRESH_JOB).asset_layer.selected_asset_keys:
        assert instance.get_materialized_partitions(AssetKey(key.path)) == days, key
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert not [e for e in failed if e.severity.value == "ERROR"]
    assert len(instance.get_runs()) == 1


def test_a_revision_window_wider_than_a_raw_batch_is_refused(tmp_path, monkeypatch):
    wide = {name: replace(spec, revision_days=40) for name, spec in SOURCES.items()}
    monkeypatch.setattr(automation, "SOURCES", wide)
    with pytest.raises(ValueError, match="max_days_per_run"):
        build_automation(make_settings(tmp_path))


@pytest.mark.parametrize(("mode", "status"), [("offline", "STOPPED"), ("live", "RUNNING")])
def test_refresh_schedule_starts_switched_on_only_for_live_sources(tmp_path, mode, status):
    assert refresh_schedule(make_settings(tmp_path, mode)).default_status.value == status


def test_a_successful_refresh_is_followed_by_a_run_over_the_provisional_days(tmp_path):
    from dagster import DagsterEventType, build_run_status_sensor_context

    defs, request, instance, result = run_refresh(tmp_path)
    (success,) = instance.get_records_for_run(
        result.run_id, of_type=DagsterEventType.RUN_SUCCESS
    ).records
    sensor = next(s for s in defs.sensors if s.name == "provisional_refresh")
    context = build_run_status_sensor_context(
        sensor_name="provisional_refresh",
        dagster_event=success.event_log_entry.dagster_event,
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id),
    )
    follow_up = sensor(context)
    # the window's last day is provisional (its right-hand context is not stored), and the
    # screen and fill's ±46 days make every imputed day of this short window provisional too
    assert follow_up.tags[END] == request.tags[END]
    assert follow_up.tags[START] >= request.tags[START]
    assert {k.to_user_string() for k in follow_up.asset_selection} == {
        "aligned/series",
        "imputed/series",
        "reconciled/series",
        "features/hourly",
    }
