"""`energy-assets backfill --from A --to B`: the whole pipeline in-process, through the real CLI.

One subprocess backfill (session fixture `backfilled`: 3 days, 2 balancing authorities) and
what it must leave behind: a file per asset and day, the materializations on the Dagster
instance of the run config (so the web UI shows them), ranged runs, and progress lines.
"""

from __future__ import annotations

import re

import pytest
from dagster import AssetKey, DagsterInstance
from dagster._core.instance.ref import InstanceRef

from energy_assets.io.parquet import partition_path
from energy_assets_tests.ops.conftest import DAYS, FIRST, LAST

PROGRESS = re.compile(
    r"^\[(?P<i>\d+)/(?P<n>\d+)\] (?P<layer>.+?)\s+"
    r"(?:(?P<a>\d{4}-\d\d-\d\d)\.\.(?P<b>\d{4}-\d\d-\d\d)|whole range)"
    r"\s+(?P<done>\d+)/(?P<total>\d+) partition-steps\s+(?P<rate>[\d.]+)/s"
)


def asset_keys(config, daily: bool | None = True) -> list[str]:
    """Materializable asset keys: daily ones (True), whole-range ones (False) or all (None)."""
    from energy_assets.definitions import build_definitions
    from energy_assets.settings import load_settings

    graph = build_definitions(load_settings(config)).resolve_asset_graph()
    return sorted(
        k.to_user_string()
        for k in graph.get_all_asset_keys()
        if graph.get(k).is_materializable
        and (daily is None or (graph.get(k).partitions_def is not None) == daily)
    )


@pytest.fixture(scope="module")
def instance(backfilled):
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(backfilled.dagster_home))) as inst:
        yield inst


def test_cli_backfill_exits_zero_with_every_check_passing(backfilled):
    assert backfilled.returncode == 0, backfilled.stderr[-3000:]
    assert "All blocking checks passed." in backfilled.stdout


def test_cli_backfill_stores_one_file_per_asset_and_day(backfilled):
    keys = asset_keys(backfilled.config)
    layers = {k.split("/")[0] for k in keys}
    assert {"raw", "aligned", "imputed", "features"} <= layers  # the pipeline, not only raw
    missing = [
        (key, day)
        for key in keys
        for day in DAYS
        if not partition_path(str(backfilled.data_dir), key, day).exists()
    ]
    assert not missing
    whole = asset_keys(backfilled.config, daily=False)
    assert whole == ["ml/forecast_eval", "ml/forecaster", "ml/normalization", "ml/ring_segments"]
    assert all((backfilled.data_dir / f"{key}.parquet").is_file() for key in whole)


def test_cli_backfill_records_every_partition_on_the_configured_instance(backfilled, instance):
    for key in asset_keys(backfilled.config):
        materialized = instance.get_materialized_partitions(AssetKey(key.split("/")))
        assert set(DAYS) <= materialized, key
    for key in asset_keys(backfilled.config, daily=False):
        assert instance.get_latest_materialization_event(AssetKey(key.split("/"))), key


def test_cli_backfill_runs_one_ranged_run_per_layer_step_not_one_per_day(backfilled, instance):
    ranged = [r for r in instance.get_runs() if "dagster/asset_partition_range_start" in r.tags]
    whole = [r for r in instance.get_runs() if r not in ranged]
    steps = [m for m in map(PROGRESS.match, backfilled.stdout.splitlines()) if m and m["a"]]
    # three days fit every layer's batch (multi_run(31) or single_run): one run per step;
    # each whole-range asset (statistics, sequences) is a run without partitions
    assert len(ranged) == len(steps) > 0
    names = sorted(k for r in whole for k in r.tags["energy_assets/assets"].split(","))
    assert names == asset_keys(backfilled.config, daily=False)
    for run in ranged:
        assert run.tags["energy_assets/launched_by"] == "cli"
        assert run.tags["dagster/asset_partition_range_start"] == FIRST.isoformat()
        assert run.tags["dagster/asset_partition_range_end"] == LAST.isoformat()


def test_cli_backfill_reports_progress_per_chunk(backfilled):
    lines = [m for m in map(PROGRESS.match, backfilled.stdout.splitlines()) if m]
    assert lines, backfilled.stdout
    done = [int(m["done"]) for m in lines]
    total = int(lines[-1]["total"])
    assert done == sorted(done) and len(set(done)) == len(done)
    whole = len(asset_keys(backfilled.config, daily=False))
    assert done[-1] == total == len(DAYS) * len(asset_keys(backfilled.config)) + whole
    assert lines[-1]["i"] == lines[-1]["n"]
    assert all(float(m["rate"]) > 0 for m in lines)
    assert {m["a"] for m in lines} == {FIRST.isoformat(), None}
    assert {m["b"] for m in lines} == {LAST.isoformat(), None}
