"""Shared fixtures of the operations tests: a small run config and one CLI backfill of it.

The backfill runs once per session through the real `energy-assets` entry point in a subprocess
(offline stand-in, two balancing authorities, three days), and the tests that need stored
partitions copy its data folder instead of materializing again.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from energy_assets.settings import Settings
from energy_assets_tests.ops.live_dagster import REPO_ROOT, write_config

FIRST, LAST = date(2024, 3, 6), date(2024, 3, 8)
DAYS = [date.fromordinal(d).isoformat() for d in range(FIRST.toordinal(), LAST.toordinal() + 1)]
RESPONDENTS = ["CISO", "ERCO"]
# Three days are too short for the default ML windows (168 h context): shrink them so the ML
# layer runs too and the backfill covers the whole pipeline.
PIPELINE = {
    "context_length": 24,
    "horizon": 6,
    "stride": 6,
    "val_start_utc": "2024-03-07T12:00:00+00:00",
    "test_start_utc": "2024-03-08T06:00:00+00:00",
    "ring_sequence_length": 48,
}
BIN = Path(sys.executable).parent


@dataclass
class CliRun:
    config: Path
    data_dir: Path
    dagster_home: Path
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def small_config(folder: Path, **extra) -> Path:
    return write_config(
        folder / "configs" / "run.yaml",
        start=FIRST,
        end=LAST,
        respondents=RESPONDENTS,
        data_dir=folder / "data",
        dagster_home=folder / "dagster_home",
        extra={"pipeline": PIPELINE, **extra},
    )


def run_cli(*args: str, timeout: float = 300, env: dict[str, str] | None = None):
    """`energy-assets ARGS` in a subprocess from the repository root."""
    return subprocess.run(
        [str(BIN / "energy-assets"), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def copy_run(run: CliRun, folder: Path) -> Path:
    """A config over a copy of `run`'s stored partitions and a fresh, empty Dagster instance."""
    shutil.copytree(run.data_dir, folder / "data")
    return small_config(folder)


@pytest.fixture(scope="session")
def backfilled(tmp_path_factory) -> CliRun:
    folder = tmp_path_factory.mktemp("cli_backfill")
    config = small_config(folder)
    started = time.perf_counter()
    done = run_cli(
        "--config", str(config), "backfill", "--from", FIRST.isoformat(), "--to", LAST.isoformat()
    )
    return CliRun(
        config=config,
        data_dir=folder / "data",
        dagster_home=folder / "dagster_home",
        returncode=done.returncode,
        stdout=done.stdout,
        stderr=done.stderr,
        seconds=time.perf_counter() - started,
    )


def make_settings(tmp_path: Path, mode: str = "offline") -> Settings:
    """Settings for CISO over 2024-03-06..08 in `mode` (offline or live), data under tmp_path."""
    return Settings(
        start=date(2024, 3, 6),
        end=date(2024, 3, 8),
        data_dir=str(tmp_path / "data"),
        dagster_home=str(tmp_path / "home"),
        sources={"mode": mode, "respondents": ["CISO"]},
    )
