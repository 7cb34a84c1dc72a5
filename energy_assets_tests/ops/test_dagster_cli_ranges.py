"""`dagster asset materialize --partition-range A...B`: one run for single_run layers, refused
for the multi_run raw responses (those need the daemon's backfill, or `energy-assets backfill`).

The exact commands tested here are the ones the README documents.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from dagster import AssetKey, DagsterInstance
from dagster._core.instance.ref import InstanceRef

from energy_assets_tests.ops.conftest import BIN, DAYS, copy_run
from energy_assets_tests.ops.live_dagster import REPO_ROOT

RANGE = f"{DAYS[0]}...{DAYS[-1]}"
SINGLE_RUN_LAYERS = ["aligned", "imputed", "features"]


def materialize(config, select: str, tmp_path) -> subprocess.CompletedProcess:
    # the executor comes from the run config's `execution:` block (in_process by default)
    home = config.parent.parent / "dagster_home"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "ENERGY_ASSETS_CONFIG": str(config), "DAGSTER_HOME": str(home)}
    command = [str(BIN / "dagster"), "asset", "materialize", "-m", "energy_assets.definitions"]
    command += ["--select", select, "--partition-range", RANGE]
    return subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=env
    )


@pytest.fixture
def stored(backfilled, tmp_path):
    assert backfilled.returncode == 0, backfilled.stderr[-2000:]
    return copy_run(backfilled, tmp_path / "copy")


def test_partition_range_is_refused_for_multi_run_raw_responses(stored, tmp_path):
    done = materialize(stored, "raw/eia930_responses", tmp_path)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "require all selected assets to have a BackfillPolicy.single_run()" in output


def test_partition_range_runs_single_run_layers_in_one_run(stored, tmp_path):
    select = " or ".join(f"group:{layer}" for layer in SINGLE_RUN_LAYERS)
    done = materialize(stored, select, tmp_path)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    home = stored.parent.parent / "dagster_home"
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        runs = instance.get_runs()
        assert len(runs) == 1
        assert runs[0].tags["dagster/asset_partition_range_start"] == DAYS[0]
        assert runs[0].tags["dagster/asset_partition_range_end"] == DAYS[-1]
        keys = [k for k in instance.get_asset_keys() if k.path[0] in SINGLE_RUN_LAYERS]
        assert {k.path[0] for k in keys} == set(SINGLE_RUN_LAYERS)
        for key in keys:
            assert instance.get_materialized_partitions(AssetKey(key.path)) == set(DAYS), key
