"""Planning by Dagster's rules: runs grouped by backfill policy, up-to-date partitions skipped,
exactly the partitions that read a changed day recomputed, and the CLI refusing bad requests
with one `error:` line before anything runs.

The end-to-end tests share one CLI backfill of their own (3 days, 2 balancing authorities) whose
data folder and instance they copy, so each starts from the same stored state.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.dagster_run import DagsterRun

import energy_assets
from energy_assets import orchestrate
from energy_assets.definitions import build_definitions
from energy_assets.io.parquet import partition_path
from energy_assets.settings import load_settings
from energy_assets_tests.ops.conftest import DAYS, FIRST, LAST, RESPONDENTS, run_cli, small_config

pytestmark = pytest.mark.slow


def graph_of(config):
    return build_definitions(load_settings(config)).resolve_asset_graph()


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A 3-day CLI backfill: its config, data folder and instance folder."""
    folder = tmp_path_factory.mktemp("orchestrate")
    config = small_config(folder)
    done = run_cli("--config", str(config), "backfill", "--from", DAYS[0], "--to", DAYS[-1])
    assert done.returncode == 0, done.stderr[-3000:]
    return folder


@pytest.fixture
def copy(stored, tmp_path) -> Path:
    """A private copy of the stored data and instance, with a config pointing at it."""
    shutil.copytree(stored / "data", tmp_path / "data")
    shutil.copytree(stored / "dagster_home", tmp_path / "dagster_home")
    return small_config(tmp_path)


def instance_of(config) -> DagsterInstance:
    return DagsterInstance.from_ref(
        InstanceRef.from_dir(str(config.parent.parent / "dagster_home"))
    )


def plan_of(config, days=DAYS, **kwargs) -> orchestrate.Plan:
    graph = graph_of(config)
    settings = load_settings(config)
    keys = orchestrate.select(graph, None)
    with instance_of(config) as instance:
        return orchestrate.plan(graph, instance, settings.data_dir, keys, list(days), **kwargs)


def test_runs_follow_the_backfill_policies_of_the_definitions(copy):
    graph = graph_of(copy)
    everything = orchestrate.toposorted(graph, orchestrate.select(graph, None))
    keys = [k for k in everything if orchestrate.is_daily(graph, k)]
    year = orchestrate.days_of(date(2023, 1, 1), date(2023, 12, 31))
    runs = orchestrate.group_runs(graph, keys, dict.fromkeys(keys, year))
    # the raw responses steps, which also make their sources' revisions
    responses = [k for k in keys if k.path[-1].endswith(("_responses", "_revisions"))]
    assert len(responses) == 6
    # multi_run(31): the raw responses in 12 runs of at most 31 days, all sources together
    batched = [r for r in runs if set(r.assets) == set(responses)]
    assert len(batched) == 12 and max(len(r.days) for r in batched) == 31
    assert sorted(d for r in batched for d in r.days) == year
    # single_run: every other asset in one run over the year, after the raw batches
    assert runs[-1].days == year and set(runs[-1].assets) == set(keys) - set(responses)
    assert len(runs) == 13
    # ten days fit every policy: one run with every asset (steps ordered by Dagster inside it)
    ten = orchestrate.days_of(date(2024, 3, 4), date(2024, 3, 13))
    (single,) = orchestrate.group_runs(graph, keys, dict.fromkeys(keys, ten))
    assert set(single.assets) == set(keys)
    # whole-range assets (statistics, sequences) share runs without partitions, after the
    # runs of what they read and before the runs that read them
    targeted = {k: ten if orchestrate.is_daily(graph, k) else [orchestrate.WHOLE]
                for k in everything}  # fmt: skip
    runs = orchestrate.group_runs(graph, everything, targeted)
    # (assets on the same level of the graph may come in either order)
    position = {k.to_user_string(): i for i, r in enumerate(runs) for k in r.assets}
    assert runs[0].days == ten and AssetKey(["ml", "dataset"]) not in runs[0].assets
    assert [k.to_user_string() for k in runs[position["ml/dataset"]].assets] == ["ml/dataset"]
    whole = ["ml/normalization", "ml/ring_segments", "ml/forecaster", "ml/forecast_eval"]
    assert all(runs[position[name]].days == [] for name in whole)
    assert position["features/hourly"] < position["ml/normalization"]
    assert position["ml/normalization"] < position["ml/dataset"]
    # the sequences and the forecaster build from features + statistics, not from ml/dataset
    assert position["ml/normalization"] <= position["ml/ring_segments"]
    assert position["ml/normalization"] <= position["ml/forecaster"]
    assert position["ml/forecaster"] <= position["ml/forecast_eval"]
    # the statistics, the sequences, the forecaster and its evaluation read nothing daily after
    # the statistics: one run; ml/dataset (daily, reads the statistics) comes after it
    assert {position[name] for name in whole} == {1}
    assert [r.days for r in runs] == [ten, [], ten]


def test_a_repeated_backfill_recomputes_nothing(copy):
    planned = plan_of(copy)
    assert planned.runs == [] and planned.targeted == {}
    graph = graph_of(copy)
    keys = orchestrate.select(graph, None)
    daily = [k for k in keys if orchestrate.is_daily(graph, k)]
    assert sum(planned.up_to_date.values()) == len(DAYS) * len(daily) + len(keys) - len(daily)
    with instance_of(copy) as instance:
        before = len(instance.get_runs())
    done = run_cli("--config", str(copy), "backfill", "--from", DAYS[0], "--to", DAYS[-1])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "0 partition-step(s) in 0 run(s)" in done.stdout
    with instance_of(copy) as instance:
        assert len(instance.get_runs()) == before  # nothing launched
    forced = plan_of(copy, force=True)
    assert sum(len(v) for v in forced.targeted.values()) == len(DAYS) * len(daily) + len(
        keys
    ) - len(daily)


def _revise_eia_day(config, day: str) -> None:
    """Upstream revised one day: one value in the stored EIA response changes."""
    path = partition_path(str(config.parent.parent / "data"), "raw/eia930_responses", day)
    frame = pl.read_parquet(path)
    metadata = pl.read_parquet_metadata(path)
    body = frame["body"][0]
    revised = body.replace(b'"value":"', b'"value":"1', 1)
    assert revised != body
    frame = frame.with_columns(
        pl.Series("body", [revised, *frame["body"][1:].to_list()], dtype=pl.Binary)
    )
    buffer = io.BytesIO()
    frame.write_parquet(buffer, metadata=metadata)
    path.write_bytes(buffer.getvalue())


def test_a_revised_raw_day_recomputes_exactly_the_partitions_that_read_it(copy):
    day = DAYS[0]
    _revise_eia_day(copy, day)
    reparse = run_cli(
        "--config", str(copy), "backfill", "--from", day, "--to", day,
        "--select", "raw/eia930", "--force",
    )  # fmt: skip
    assert reparse.returncode == 0, reparse.stderr[-2000:]
    planned = plan_of(copy)
    targeted = {k.to_user_string(): v for k, v in planned.targeted.items()}
    # aligned reads ±1 day of raw: the revised first day and the day after it, not the third
    assert targeted["aligned/series"] == DAYS[:2]
    # the screens read ±21 days, features 8 days back, the ML assets the whole range
    assert targeted["imputed/series"] == DAYS
    assert targeted["features/hourly"] == DAYS
    assert not any(k.startswith("raw/") for k in targeted)  # nothing upstream, no other source
    done = run_cli("--config", str(copy), "backfill", "--from", DAYS[0], "--to", DAYS[-1])
    assert done.returncode == 0, done.stderr[-2000:]
    assert plan_of(copy).runs == []


def test_a_responses_step_and_its_revisions_are_selected_and_planned_together(copy):
    graph = graph_of(copy)
    pair = {AssetKey(["raw", "eia930_responses"]), AssetKey(["raw", "eia930_revisions"])}
    assert set(orchestrate.select(graph, ["raw/eia930_revisions"])) == pair
    assert set(orchestrate.select(graph, ["raw/eia930_responses"])) == pair
    # a store from before the revisions existed: one day's revisions file is missing
    data = str(copy.parent.parent / "data")
    partition_path(data, "raw/eia930_revisions", DAYS[1]).unlink()
    with instance_of(copy) as instance:
        planned = orchestrate.plan(graph, instance, data, sorted(pair), DAYS)
    targeted = {k.to_user_string(): v for k, v in planned.targeted.items()}
    assert targeted == {"raw/eia930_responses": [DAYS[1]], "raw/eia930_revisions": [DAYS[1]]}
    ((run,),) = [planned.runs]
    assert set(run.assets) == pair and run.days == [DAYS[1]]
    done = run_cli(
        "--config", str(copy), "backfill", "--from", DAYS[0], "--to", DAYS[-1],
        "--select", "raw/eia930_revisions",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert plan_of(copy).runs == []  # the same responses again: nothing downstream is stale


def test_a_backfill_against_a_revised_upstream_records_the_revisions_of_its_days(copy):
    data = copy.parent.parent / "data"
    before = pl.read_parquet(partition_path(str(data), "raw/eia930_responses", DAYS[0]).path)
    # upstream publishes a later vintage (the offline world revises some EIA values)
    revised = small_config(
        copy.parent.parent,
        sources={"mode": "offline", "world": "synthetic", "seed": 7, "respondents": RESPONDENTS,
                 "vintage": 8},
    )  # fmt: skip
    done = run_cli(
        "--config", str(revised), "backfill", "--from", DAYS[0], "--to", DAYS[0],
        "--select", "raw/eia930_responses",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    revisions = energy_assets.load("raw/eia930_revisions", DAYS[0], DAYS[-1], config=revised)
    assert revisions.height > 0 and set(revisions["change"]) == {"changed"}
    assert revisions["interval_start_utc"].dt.date().unique().to_list() == [FIRST]
    assert set(revisions["fetched_at_utc_old"]) <= set(before["fetched_at_utc"])


def test_a_refetch_that_returns_the_same_content_makes_nothing_stale(copy):
    done = run_cli(
        "--config", str(copy), "backfill", "--from", DAYS[1], "--to", DAYS[1],
        "--select", "raw", "--force",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert plan_of(copy).runs == []


def test_new_days_after_the_stored_ones_are_exactly_the_days_asked_for(copy):
    new = [date.fromordinal(LAST.toordinal() + i).isoformat() for i in (1, 2)]
    done = run_cli("--config", str(copy), "backfill", "--from", new[0], "--to", new[-1])
    assert done.returncode == 0, done.stderr[-3000:]
    data = copy.parent.parent / "data"
    graph = graph_of(copy)
    keys = orchestrate.select(graph, None)
    # the whole-range ML artifacts read days this backfill does not change: up to date
    assert "whole range" not in done.stdout.split("Plan:")[1].split("Done")[0]
    with instance_of(copy) as instance:
        for key in [k for k in keys if orchestrate.is_daily(graph, k)]:
            days = sorted(orchestrate.stored_days(str(data), key))
            assert days == [*DAYS, *new], key
            records = instance.fetch_materializations(key, limit=100).records
            new_records = [r for r in records if r.partition_key in new]
            assert len(new_records) == 2, key  # each new day once, no neighbour re-done
            for record in new_records:
                rows = record.asset_materialization.metadata["rows"].value
                path = partition_path(str(data), key.to_user_string(), record.partition_key)
                stored_rows = pl.read_parquet(path).height
                assert rows == stored_rows, (key, record.partition_key)
        # the newest day's right-hand context is not stored: provisional
        provisional = orchestrate.provisional_days(instance, [AssetKey(["imputed", "series"])])
        assert new[-1] in provisional[AssetKey(["imputed", "series"])]


def test_a_run_left_started_by_a_dead_process_is_marked_failed(copy):
    with instance_of(copy) as instance:
        dead = subprocess.Popen(["true"])
        dead.wait()
        run = instance.add_run(
            DagsterRun(
                job_name="main_job",
                run_id="dead0000-0000-0000-0000-000000000000",
                status=DagsterRunStatus.STARTED,
                tags={
                    orchestrate.PID_TAG: str(dead.pid),
                    orchestrate.HOST_TAG: __import__("socket").gethostname(),
                },
            )
        )
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED
    done = run_cli("--config", str(copy), "backfill", "--from", DAYS[0], "--to", DAYS[-1])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Marked 1 run(s) failed whose process had died" in done.stdout
    with instance_of(copy) as instance:
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE


@pytest.mark.parametrize("launched_by", ["ui", "cli"])
def test_a_plan_overlapping_a_run_in_progress_is_refused_naming_it(copy, launched_by):
    # a UI run records its asset selection; a CLI run (a job subset) names its assets in a tag
    selection = {"asset_selection": frozenset({AssetKey(["raw", "eia930"])})}
    tags = {orchestrate.RANGE_START_TAG: DAYS[0], orchestrate.RANGE_END_TAG: DAYS[-1]}
    if launched_by == "cli":
        selection, tags = {}, tags | {orchestrate.ASSETS_TAG: "aligned/series,imputed/series"}
    with instance_of(copy) as instance:
        running = instance.add_run(
            DagsterRun(
                job_name="main_job",
                run_id=f"busy{launched_by}0-0000-0000-0000-000000000000",
                status=DagsterRunStatus.STARTED,
                tags=tags,
                **selection,
            )
        )
    done = run_cli(
        "--config", str(copy), "backfill", "--from", DAYS[0], "--to", DAYS[-1], "--force"
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: run busy") and running.run_id in done.stderr
    assert done.stderr.count("\n") == 1
    with instance_of(copy) as instance:  # leave the instance as the other tests expect it
        instance.report_run_failed(instance.get_run_by_id(running.run_id))


@pytest.mark.parametrize(
    "args, message",
    [
        (["backfill", "--from", "2024-03-08", "--to", "2024-03-06"], "is before --from"),
        (["backfill", "--from", "2015-06-30", "--to", "2015-07-01"], "before the first partition"),
        (["backfill", "--from", "2024-03-06", "--to", "2999-01-01"], "after the last complete"),
        (["backfill", "--from", "2024-13-01", "--to", "2024-03-06"], "is not a day"),
        (["backfill", "--select", "nope"], "neither a layer nor an asset; layers: raw"),
        (["backfill", "--frm", "2024-03-06"], "unrecognized arguments"),
    ],
)
def test_bad_requests_are_one_error_line_and_exit_2(tmp_path, args, message):
    config = small_config(tmp_path)
    done = run_cli(*args, "--config", str(config))  # --config after the command is accepted
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("error: ") and message in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1
    assert not (tmp_path / "data").exists()  # refused before anything ran


def test_live_mode_without_a_key_is_refused_before_any_run(tmp_path):
    config = small_config(tmp_path, sources={"mode": "live", "respondents": ["CISO"]})
    env = {k: v for k, v in __import__("os").environ.items() if k != "EIA_API_KEY"}
    done = run_cli("--config", str(config), "backfill", "--from", DAYS[0], "--to", DAYS[0], env=env)
    assert done.returncode == 2
    assert done.stderr.startswith("error: sources.mode is live but $EIA_API_KEY is not set")


def test_checks_over_days_with_nothing_stored_fail(copy):
    done = run_cli("--config", str(copy), "checks", "--from", "2023-01-01", "--to", "2023-01-02")
    assert done.returncode == 1
    assert "error: no stored partition" in done.stderr


def test_a_failed_run_ends_with_the_root_cause(copy):
    blocker = partition_path(str(copy.parent.parent / "data"), "aligned/series", DAYS[1])
    blocker.unlink()
    blocker.mkdir()  # the day's file path is a directory: the write fails
    done = run_cli(
        "--config", str(copy), "backfill", "--from", DAYS[0], "--to", DAYS[-1],
        "--select", "aligned", "--force",
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("error: run "), done.stderr[-2000:]
    # the root cause, not Dagster's wrapper ("Error occurred while handling output ...")
    assert "aligned__series: IsADirectoryError: [Errno 21] Is a directory" in done.stderr
    assert "Error occurred while" not in done.stderr


def test_date_defaults_come_from_the_config(tmp_path):
    config = small_config(tmp_path)
    done = run_cli("backfill", "--dry-run", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert f"{FIRST}..{LAST}" in done.stdout
