"""A daemon backfill that fails part-way resumes from the failure without recomputing the rest.

Real webserver + daemon (energy_assets_tests/ops/live_dagster.py) on a small offline config.
The injected fault is a storage fault, no code hook: a directory occupies the path of one day's
`raw/eia930` file, so the IO manager's atomic rename fails and that asset's step fails (the parsed
raw assets have no retry policy, so it fails at once). Every other asset of the raw layer
completes. Then the directory is removed and the backfill re-executed FROM_FAILURE through
GraphQL, exactly what the backfill page's "Re-execute -> From failure" sends.

On the way, the daemon's `alert_on_run_failure` sensor posts the failed run to a loopback
webhook, which proves the alert path end to end.
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
        first_id = live.launch_asset_backfill(keys, DAYS, run_config=IN_PROCESS)
        first = live.wait_backfill(first_id)
        assert first["status"] == "COMPLETED_FAILED", first
        by_key = statuses(first)
        assert by_key[FAILING]["numPartitionsFailed"] == len(DAYS)
        done_before = {k for k in keys if k != FAILING}
        for key in done_before:
            assert by_key[key]["numPartitionsMaterialized"] == len(DAYS), by_key[key]
        failed_runs = [r["runId"] for r in first["runs"] if r["status"] == "FAILURE"]
        assert len(failed_runs) == 1

        blocker.rmdir()  # the fault is gone: resume
        second_id = live.reexecute_backfill(first_id, "FROM_FAILURE")
        second = live.wait_backfill(second_id)
        assert second["status"] == "COMPLETED_SUCCESS", second
        # only the failed asset (and what depends on it in the selection) was targeted again
        assert set(statuses(second)) == {FAILING}
        assert statuses(second)[FAILING]["numPartitionsMaterialized"] == len(DAYS)

        # each partition of each asset was materialized exactly once across both backfills
        for key in keys:
            assert materializations(home, key) == Counter(dict.fromkeys(DAYS, 1)), key
        assert all(partition_path(str(data), FAILING, d).is_file() for d in DAYS)

        # the daemon's failure sensor alerted about the failed run, without the hook's token
        deadline = time.monotonic() + 60
        while not any(failed_runs[0] in a["body"] for a in received):
            assert time.monotonic() < deadline, f"no alert for {failed_runs[0]}: {received}"
            time.sleep(0.5)
        (alert,) = [json.loads(a["body"]) for a in received if failed_runs[0] in a["body"]]
        assert alert["tags"]["dagster/backfill"] == first_id
        assert alert["partition"] == {
            "dagster/asset_partition_range_start": DAYS[0],
            "dagster/asset_partition_range_end": DAYS[-1],
        }
        assert "Is a directory" in alert["error"]
        assert all(HOOK_TOKEN not in a["body"] for a in received)
    finally:
        live.stop()
