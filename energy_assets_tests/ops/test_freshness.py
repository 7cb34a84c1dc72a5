"""Freshness of the raw tables: checks and sensor for live sources, and what the checks decide.

The checks ask, at every deadline (09:00 UTC), for the partition of the day that just ended.
They are evaluated here against an instance that has (or lacks) recent materializations.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dagster import AssetMaterialization, AssetSelection, DagsterInstance, materialize

from energy_assets.automation import build_automation, raw_table_keys
from energy_assets.definitions import build_definitions
from energy_assets.sources.registry import SOURCES
from energy_assets_tests.ops.conftest import make_settings


def evaluate_freshness(tmp_path, days_materialized: list[int]):
    """Run only the freshness checks after recording materializations N days ago."""
    defs = build_definitions(make_settings(tmp_path, "live"))
    checks = build_automation(make_settings(tmp_path, "live")).asset_checks
    instance = DagsterInstance.ephemeral()
    today = datetime.now(UTC).date()
    for key in raw_table_keys():
        for n in days_materialized:
            day = (today - timedelta(days=n)).isoformat()
            instance.report_runless_asset_event(AssetMaterialization(key, partition=day))
    result = materialize(
        [*defs.assets, *defs.asset_checks],
        selection=AssetSelection.checks(*checks),
        instance=instance,
        resources=defs.resources,
    )
    assert result.success
    return result.get_asset_check_evaluations()


def test_offline_sources_get_no_freshness_checks(tmp_path):
    automation = build_automation(make_settings(tmp_path, "offline"))
    assert automation.asset_checks == []
    assert "raw_freshness_sensor" not in {s.name for s in automation.sensors}


def test_live_sources_get_a_freshness_check_per_raw_table_and_a_running_sensor(tmp_path):
    automation = build_automation(make_settings(tmp_path, "live"))
    keys = {spec.key.asset_key for c in automation.asset_checks for spec in c.check_specs}
    assert keys == {key for key in raw_table_keys()}
    assert {k.path[-1] for k in keys} == set(SOURCES)
    assert all(not spec.blocking for c in automation.asset_checks for spec in c.check_specs)
    (sensor,) = [s for s in automation.sensors if s.name == "raw_freshness_sensor"]
    assert sensor.default_status.value == "RUNNING"


def test_raw_tables_with_the_last_days_materialized_are_fresh(tmp_path):
    # yesterday and the day before: whichever side of today's deadline we are on
    evaluations = evaluate_freshness(tmp_path, [1, 2])
    assert len(evaluations) == len(SOURCES)
    assert all(e.passed for e in evaluations)


def test_raw_tables_last_materialized_a_week_ago_are_overdue_as_a_warning(tmp_path):
    evaluations = evaluate_freshness(tmp_path, [7, 8])
    assert len(evaluations) == len(SOURCES)
    assert not any(e.passed for e in evaluations)
    assert {e.severity.value for e in evaluations} == {"WARN"}
    assert all("overdue" in (e.description or "") for e in evaluations)


@pytest.mark.parametrize("flag", [True, False])
def test_freshness_checks_follow_an_explicit_setting(tmp_path, flag):
    from types import SimpleNamespace

    base = make_settings(tmp_path, "offline" if flag else "live")
    settings = SimpleNamespace(sources=base.sources, automation={"freshness_checks": flag})
    assert bool(build_automation(settings).asset_checks) is flag
