"""Asset checks in CI: `.ci/checks.sh` passes on good stored partitions and fails on a broken one.

The broken partition is the realistic failure: a stored raw file rewritten behind the platform's
back with duplicated primary keys. The checks-only run must exit 1 and name the failing check;
the documented `dagster job execute -j contract_checks` command must fail on it too.
"""

from __future__ import annotations

import json
import os
import subprocess

import polars as pl
import pytest

from energy_assets.io.parquet import partition_path
from energy_assets_tests.ops.conftest import BIN, DAYS, copy_run
from energy_assets_tests.ops.live_dagster import REPO_ROOT

CHECKS_SH = REPO_ROOT / ".ci" / "checks.sh"
BROKEN_ASSET = "raw/eia930"
BROKEN_DAY = DAYS[1]


def checks_sh(config, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ENERGY_ASSETS_CLI": str(BIN / "energy-assets")}
    return subprocess.run(
        ["bash", str(CHECKS_SH), "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def duplicate_keys(data_dir, asset: str, day: str) -> int:
    """Append copies of a few stored rows: the primary key is no longer unique."""
    path = partition_path(str(data_dir), asset, day)
    frame = pl.read_parquet(path)
    assert frame.height > 3
    pl.concat([frame, frame.head(3)]).write_parquet(path)
    return frame.height


@pytest.fixture(scope="module")
def clean(backfilled, tmp_path_factory):
    assert backfilled.returncode == 0, backfilled.stderr[-2000:]
    return copy_run(backfilled, tmp_path_factory.mktemp("checks_clean"))


@pytest.fixture(scope="module")
def broken(backfilled, tmp_path_factory):
    assert backfilled.returncode == 0, backfilled.stderr[-2000:]
    folder = tmp_path_factory.mktemp("checks_broken")
    config = copy_run(backfilled, folder)
    duplicate_keys(folder / "data", BROKEN_ASSET, BROKEN_DAY)
    return config


def stored_files(config) -> dict[str, int]:
    data = config.parent.parent / "data"
    return {str(p.relative_to(data)): p.stat().st_mtime_ns for p in data.rglob("*.parquet")}


def test_checks_sh_passes_on_the_stored_sample_range_without_rewriting_it(clean):
    before = stored_files(clean)
    done = checks_sh(clean)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "All blocking checks passed." in done.stdout
    assert "FAILED" not in done.stdout
    assert stored_files(clean) == before  # checks only: no partition was re-materialized


def test_checks_sh_fails_and_names_the_check_on_a_partition_with_duplicate_keys(broken):
    done = checks_sh(broken)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    # named with the day it failed on: each partition has its own result
    failed = f"{BROKEN_ASSET}:structure ({BROKEN_DAY})"
    assert f"FAILED CHECKS: {failed}" in done.stdout
    assert f"Failed blocking checks: {failed}" in done.stdout
    (named,) = [x.split("FAILED CHECKS: ")[1] for x in done.stdout.splitlines() if "FAILED CH" in x]
    assert named.strip() == failed  # that check alone: the others pass


def test_dagster_job_execute_contract_checks_fails_on_the_broken_partition(broken, tmp_path):
    env = {
        **os.environ,
        "ENERGY_ASSETS_CONFIG": str(broken),
        "DAGSTER_HOME": str(broken.parent.parent / "dagster_home"),
    }
    (broken.parent.parent / "dagster_home").mkdir(exist_ok=True)
    command = [str(BIN / "dagster"), "job", "execute", "-m", "energy_assets.definitions"]
    # the executor is the project's (run config `execution:` block), no -c needed
    command += ["-j", "contract_checks"]
    command += ["--tags", json.dumps({"dagster/partition": BROKEN_DAY})]
    done = subprocess.run(
        command,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-3000:]
    assert "RUN_FAILURE" in output
    assert "blocking asset check failed" in output
    assert f"{BROKEN_ASSET}: structure" in output
