"""A daemon backfill that fails part-way resumes from the failure without recomputing the rest.

Real webserver + daemon (energy_assets_tests/ops/live_dagster.py) on a small offline config.
The injected fault is a storage fault, no code hook: a directory occupies the path of one day's
`raw/eia930` file, so the IO manager's atomic rename fails and that asset's step fails (the parsed
raw assets have no retry policy, so it fails at once). Every other asset of the raw layer
completes. Then the directory is removed and the backfill re-executed FROM_FAILURE through
GraphQL, exactly what the backfill page's "Re-execute -> From failure" sends.

On the way, the daemon's `alert_on_run_failure` sensor posts the failed run to a loopback
webhook, which proves the alert path end to end.

Every expectation is stated against the runs the daemon actually launched, never against one
assumed layout. The parsed raw assets (`BackfillPolicy.single_run`) have a different policy from
their `*_responses` parents (`multi_run(31)`), so the daemon requests a parsed day only once it
sees that day of the parent materialized, and a run stores its per-day materializations one event
at a time. Usually a daemon iteration sees all three days and `raw/eia930` runs as one 3-day run
that fails as a whole; on a loaded machine an iteration can land between two of those events, and
then `raw/eia930` is split (say 06 alone, then 07..08): the day-06 run succeeds and only the
failed run's days count as failed. Both are correct Dagster behaviour, so the test reads the
failed run's partition range and checks the counts, the resume and the alert against it.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from dagster import AssetKey, DagsterInstance
from dagster._core.instance.ref import InstanceRef

from energy_assets.io.parquet import partition_path
from energy_assets_tests.ops.conftest import DAYS, small_config
from energy_assets_tests.ops.live_dagster import IN_PROCESS, start_live_dagster

pytestmark = pytest.mark.slow

FAILING = "raw/eia930"
FAILING_DAY = DAYS[1]
HOOK_TOKEN = "hook-secret-31415926"
ALERT_SENSOR = "alert_on_run_failure"
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


@pytest.fixture
def alerts():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append({"path": self.path, "body": body.decode()})
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hooks/{HOOK_TOKEN}"
    try:
        yield url, received
    finally:
        server.shutdown()
        server.server_close()


def raw_layer_keys(config) -> list[str]:
    from energy_assets.definitions import build_definitions
    from energy_assets.settings import load_settings

    graph = build_definitions(load_settings(config)).resolve_asset_graph()
    return sorted(
        k.to_user_string()
        for k in graph.get_all_asset_keys()
        if graph.get(k).group_name == "raw" and graph.get(k).is_materializable
    )


def statuses(backfill: dict) -> dict[str, dict]:
    return {
        "/".join(s["assetKey"]["path"]): s
        for s in backfill["assetBackfillData"]["assetBackfillStatuses"]
    }


def counts(status: dict) -> dict[str, int]:
    return {k: v for k, v in status.items() if k.startswith("numPartitions")}


def expected_counts(*, targeted: int, materialized: int, failed: int) -> dict[str, int]:
    return {
        "numPartitionsTargeted": targeted,
        "numPartitionsInProgress": 0,
        "numPartitionsMaterialized": materialized,
        "numPartitionsFailed": failed,
    }


def run_tags(run: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["tags"]}


def run_assets(run: dict) -> set[str]:
    return {"/".join(k["path"]) for k in run["assetSelection"] or []}


def run_days(run: dict) -> list[str]:
    """The days of a backfill run: policy runs carry a partition range, even for one day."""
    tags = run_tags(run)
    start, end = tags[RANGE_START], tags[RANGE_END]
    return [d for d in DAYS if start <= d <= end]


def materializations(home, key: str) -> Counter:
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        records = instance.fetch_materializations(AssetKey(key.split("/")), limit=1000).records
        return Counter(r.partition_key for r in records)


def test_failed_backfill_resumes_from_failure_without_recomputing_finished_partitions(
    tmp_path, alerts
):
    webhook, received = alerts
    config = small_config(tmp_path)
    data, home = tmp_path / "data", tmp_path / "dagster_home"
    keys = raw_layer_keys(config)
    blocker = partition_path(str(data), FAILING, FAILING_DAY)
    blocker.mkdir(parents=True)  # the fault: the day's file path is a directory

    live = start_live_dagster(config, home, env={"ENERGY_ASSETS_ALERT_WEBHOOK": webhook})
    try:
        # a run-failure sensor only reports failures after its first evaluation stored a cursor
        live.wait_sensor_cursor(ALERT_SENSOR)
        first_id = live.launch_asset_backfill(keys, DAYS, run_config=IN_PROCESS)
        first = live.wait_backfill(first_id)
        assert first["status"] == "COMPLETED_FAILED", first
        # exactly one run failed: the one that tried to write raw/eia930 on the faulty day
        failed = [r for r in first["runs"] if r["status"] == "FAILURE"]
        assert len(failed) == 1, first["runs"]
        assert all(r["status"] == "SUCCESS" for r in first["runs"] if r not in failed)
        failed_run = failed[0]
        assert FAILING in run_assets(failed_run), failed_run
        failed_days = run_days(failed_run)
        assert FAILING_DAY in failed_days, failed_run
        # every day of that run counts failed, also a day whose file was stored before the
        # faulty one (a step records its days only once all are stored); the asset's other days,
        # if the daemon ran them separately, and every other raw asset completed
        by_key = statuses(first)
        assert set(by_key) == set(keys)
        assert counts(by_key[FAILING]) == expected_counts(
            targeted=len(DAYS), materialized=len(DAYS) - len(failed_days), failed=len(failed_days)
        ), (by_key[FAILING], failed_run)
        for key in keys:
            if key != FAILING:
                assert counts(by_key[key]) == expected_counts(
                    targeted=len(DAYS), materialized=len(DAYS), failed=0
                ), by_key[key]
        assert materializations(home, FAILING) == Counter(
            {d: 1 for d in DAYS if d not in failed_days}
        )

        blocker.rmdir()  # the fault is gone: resume
        second_id = live.reexecute_backfill(first_id, "FROM_FAILURE")
        second = live.wait_backfill(second_id)
        assert second["status"] == "COMPLETED_SUCCESS", second
        # only the failed asset's failed days were targeted again (nothing in the selection
        # depends on raw/eia930), and every one of them was materialized
        assert set(statuses(second)) == {FAILING}
        assert counts(statuses(second)[FAILING]) == expected_counts(
            targeted=len(failed_days), materialized=len(failed_days), failed=0
        )
        assert sorted(d for r in second["runs"] for d in run_days(r)) == failed_days
        for run in second["runs"]:
            assert run_assets(run) == {FAILING}, run
            assert run_tags(run)["dagster/parent_backfill_id"] == first_id, run

        # each partition of each asset was materialized exactly once across both backfills
        for key in keys:
            assert materializations(home, key) == Counter(dict.fromkeys(DAYS, 1)), key
        assert all(partition_path(str(data), FAILING, d).is_file() for d in DAYS)

        # the daemon's failure sensor alerted about the failed run, without the hook's token
        run_id = failed_run["runId"]
        deadline = time.monotonic() + 120  # safety net only: the loop waits for the alert
        while not any(run_id in a["body"] for a in received):
            assert time.monotonic() < deadline, f"no alert for {run_id}: {received}"
            time.sleep(0.5)
        (alert,) = [json.loads(a["body"]) for a in received if run_id in a["body"]]
        assert alert["tags"]["dagster/backfill"] == first_id
        assert alert["partition"] == {RANGE_START: failed_days[0], RANGE_END: failed_days[-1]}
        assert "Is a directory" in alert["error"]
        assert all(HOOK_TOKEN not in a["body"] for a in received)
    finally:
        live.stop()
