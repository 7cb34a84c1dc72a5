"""The web UI in a real browser: graph, one partition, a backfill, and the checks that passed.

Drives the pages an operator uses (asset graph of the raw group, asset page -> Materialize ->
partition picker -> Launch, group -> Materialize all -> range -> Launch backfill) on a live
webserver + daemon, then confirms the outcome twice: in the UI (run page status, backfill page,
check badges on the graph) and through the GraphQL API (run/backfill status, per-asset partition
counts, every asset check execution passed).
"""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest

from energy_assets_tests.ui.conftest import FIRST, LAST

pytestmark = [pytest.mark.browser, pytest.mark.slow]

GROUP = "raw"
ASSET = "raw/eia930_responses"
DAY = "2024-03-07"

RUNS_WITH_TAG = """
query($key: String!, $value: String!) { runsOrError(filter: {tags: [{key: $key, value: $value}]}) {
  ... on Runs { results { runId status } } } }
"""

ASSET_NODES = """
query { assetNodes { assetKey { path } groupName } }
"""

ASSET_CHECKS = """
query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode {
  assetChecksOrError { ... on AssetChecks { checks { name blocking } } } } } }
"""


def dismiss_welcome(page) -> None:
    """The first visit shows a 'Join the Dagster community' dialog; skip it if it is there."""
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(timeout=10_000)
    except Exception:
        return
    skip.click()


def choose_partitions(dialog, text: str) -> None:
    """Type a partition key or a `[A...B]` range into the launch dialog's partition picker."""
    picker = dialog.locator("input[type=text]").first
    picker.wait_for()
    show_all = dialog.get_by_text("Show all partitions")
    try:  # the picker starts with the last 90 days; our days are older
        show_all.wait_for(timeout=5_000)
        show_all.click()
    except Exception:
        pass  # a range that is all recent needs no widening
    picker.fill(text)
    picker.press("Enter")


def run_for_partition(live, day: str, timeout_s: float = 60.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = live.graphql(RUNS_WITH_TAG, {"key": "dagster/partition", "value": day})
        results = runs["runsOrError"]["results"]
        if results:
            return results[0]["runId"]
        time.sleep(0.5)
    raise AssertionError(f"no run for partition {day} appeared within {timeout_s:.0f} s")


def test_ui_materializes_one_partition_then_backfills_a_range_and_checks_pass(
    live_ui, page, screenshots
):
    from playwright.sync_api import expect

    url = live_ui.url
    # 1. the asset graph of the raw layer
    page.goto(f"{url}/locations/energy_assets/asset-groups/{GROUP}")
    dismiss_welcome(page)
    expect(page.get_by_text("eia930_responses", exact=True).first).to_be_visible()
    screenshots.take(page, "raw_asset_graph")

    # 2. one partition of one raw asset, from its asset page. The responses and the revisions of
    # a source are made by one step, so the UI first says the revisions come along: confirm.
    page.goto(f"{url}/assets/{ASSET}")
    page.get_by_role("button", name="Materialize…").first.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("raw / eia930_revisions")).to_be_visible()
    screenshots.take(page, "revisions_come_along")
    dialog.get_by_role("button", name="Confirm").click()
    dialog = page.get_by_role("dialog")
    choose_partitions(dialog, DAY)
    expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
    screenshots.take(page, "materialize_one_partition")
    dialog.get_by_role("button", name="Launch 1 run").click()
    run_id = run_for_partition(live_ui, DAY)
    assert live_ui.wait_run(run_id) == "SUCCESS"
    page.goto(f"{url}/runs/{run_id}")
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    expect(page.get_by_text(f"partition: {DAY}").first).to_be_visible()
    screenshots.take(page, "single_partition_run_succeeded")

    # 3. a backfill of the whole raw layer over a date range, from the group's graph
    page.goto(f"{url}/locations/energy_assets/asset-groups/{GROUP}")
    page.get_by_role("button", name="Materialize all…").click()
    dialog = page.get_by_role("dialog")
    choose_partitions(dialog, f"[{FIRST}...{LAST}]")
    days = (LAST - FIRST).days + 1
    expect(dialog.get_by_text(f"{days} partitions", exact=True)).to_be_visible()
    screenshots.take(page, "backfill_dialog")
    dialog.get_by_role("button", name="Launch backfill").click()
    toast = page.get_by_text(re.compile(r"Created backfill \w+"))
    expect(toast).to_be_visible()
    backfill_id = re.search(r"Created backfill (\w+)", toast.inner_text()).group(1)
    screenshots.take(page, "backfill_launched")

    # 4. the outcome through the GraphQL API
    backfill = live_ui.wait_backfill(backfill_id, timeout_s=240)
    assert backfill["status"] == "COMPLETED_SUCCESS", backfill
    assert backfill["runs"] and all(r["status"] == "SUCCESS" for r in backfill["runs"])
    statuses = backfill["assetBackfillData"]["assetBackfillStatuses"]
    raw_keys = ["/".join(s["assetKey"]["path"]) for s in statuses]
    assert ASSET in raw_keys and all(k.startswith(f"{GROUP}/") for k in raw_keys)
    for status in statuses:
        assert status["numPartitionsTargeted"] == days, status
        assert status["numPartitionsMaterialized"] == days, status
        assert status["numPartitionsFailed"] == 0, status
    backfill_runs = {r["runId"] for r in backfill["runs"]}
    all_days = [(FIRST + timedelta(days=i)).isoformat() for i in range(days)]
    warnings: set[tuple[str, str]] = set()
    checked = 0
    checks_by_key: dict[str, list[str]] = {}
    for key in raw_keys:
        node = live_ui.graphql(ASSET_CHECKS, {"key": {"path": key.split("/")}})
        checks = node["assetNodeOrError"]["assetChecksOrError"]["checks"]
        assert checks, f"{key} has no asset checks"
        checks_by_key[key] = [c["name"] for c in checks]
        for check in checks:
            executions = live_ui.check_executions(key, check["name"])
            in_backfill = [e for e in executions if e["runId"] in backfill_runs]
            # a ranged run records one result per day and check, none is left "skipped": every
            # blocking check passed; a warn check may fail on a day of the defect-laden world
            # (complete_hours: an hour the world dropped), and then says so on that day
            assert sorted(e["partition"] for e in in_backfill) == all_days, (key, check["name"])
            for e in in_backfill:
                warned = e["evaluation"]["severity"] == "WARN" and not e["evaluation"]["success"]
                assert e["status"] == "SUCCEEDED" or warned, (key, check["name"], e)
                if warned:
                    warnings.add((key, check["name"]))
            passed = [e for e in in_backfill if e["status"] == "SUCCEEDED"]
            assert all(e["evaluation"]["success"] for e in passed)
            checked += len(passed)
            if key == ASSET:  # the single-partition run checked its partition too
                assert any(e["runId"] == run_id and e["status"] == "SUCCEEDED" for e in executions)
    assert checked >= len(raw_keys)

    # 5. ... and in the UI: the backfill page, then the Checks tab of every asset
    page.goto(f"{url}/runs/b/{backfill_id}")
    expect(page.get_by_text("Succeeded", exact=True).first).to_be_visible()
    expect(page.get_by_text("100% completed")).to_have_count(len(raw_keys))
    screenshots.take(page, "backfill_completed")
    # Every check's latest evaluation passed, and no per-day row says "Skipped".
    for key in raw_keys:
        page.goto(f"{url}/assets/{key}?view=checks")
        for check in checks_by_key[key]:
            if (key, check) in warnings:
                continue  # its latest day may show the warning (asserted through the API above)
            page.get_by_text(check, exact=True).first.click()
            result = page.get_by_text("Evaluation result").locator("..")
            expect(result.get_by_text("Passed", exact=True)).to_be_visible()
            expect(result.get_by_text("Failed", exact=True)).to_have_count(0)
        expect(page.get_by_text("Skipped", exact=True)).to_have_count(0)
        if key == "raw/eia930":
            screenshots.take(page, "raw_eia930_checks_passed")
    page.goto(f"{url}/locations/energy_assets/asset-groups/{GROUP}")
    expect(page.get_by_text("eia930_responses", exact=True).first).to_be_visible()
    screenshots.take(page, "raw_graph_after_backfill")


def _statuses(backfill) -> dict[str, dict]:
    return {
        "/".join(s["assetKey"]["path"]): s
        for s in backfill["assetBackfillData"]["assetBackfillStatuses"]
    }


def test_a_backfill_of_new_days_targets_exactly_those_days_and_succeeds(live_ui, page, screenshots):
    """What the UI's "Materialize all" sends for every asset: first the stored range (so the ML
    statistics have their training window), then two days that are not stored (after it).
    Exactly two partitions per daily asset, although aligned reads ±1 day, the screens ±21
    days, features 8 days back and the ML dataset its context; the whole-range ML artifacts
    (statistics, sequences) are materialized once each, after the days they read."""
    from playwright.sync_api import expect

    keys = [
        "/".join(node["assetKey"]["path"]) for node in live_ui.graphql(ASSET_NODES)["assetNodes"]
    ]
    whole = ("ml/normalization", "ml/ring_segments", "ml/forecaster", "ml/forecast_eval")
    daily = {k for k in keys if k not in whole}
    stored = [(FIRST + timedelta(days=i)).isoformat() for i in range((LAST - FIRST).days + 1)]
    first = live_ui.wait_backfill(
        live_ui.launch_asset_backfill(keys, stored, title="stored range"), timeout_s=400
    )
    assert first["status"] == "COMPLETED_SUCCESS", first
    new = [(LAST + timedelta(days=i)).isoformat() for i in (1, 2)]
    backfill_id = live_ui.launch_asset_backfill(keys, new, title="two new days")
    backfill = live_ui.wait_backfill(backfill_id, timeout_s=400)
    assert backfill["status"] == "COMPLETED_SUCCESS", backfill
    statuses = _statuses(backfill)
    assert set(statuses) == set(keys)
    for key in daily:
        status = statuses[key]
        assert status["numPartitionsTargeted"] == 2, status  # no widening to neighbours
        assert status["numPartitionsMaterialized"] == 2, status
    for key in set(keys) - daily:
        assert statuses[key]["materialized"] and not statuses[key]["failed"], statuses[key]
    data = live_ui.config.parent.parent / "data"
    for key in daily:
        assert all((data / key / f"{day}.parquet").is_file() for day in new), key
    page.goto(f"{live_ui.url}/runs/b/{backfill_id}")
    expect(page.get_by_text("Succeeded", exact=True).first).to_be_visible()
    screenshots.take(page, "new_days_backfill_completed")
    page.goto(f"{live_ui.url}/assets/imputed/series?view=partitions")
    screenshots.take(page, "imputed_partitions_after_new_days")


def test_two_overlapping_backfills_both_succeed_and_leave_one_consistent_store(live_ui):
    """Two "Materialize all" backfills over overlapping days, launched together: both succeed
    (writes are whole-file renames of deterministic content; the ML statistics are one
    artifact, not a per-run fit; the ring sequences normalise their window themselves), and
    the ML days they wrote share one set of statistics. (They reach into the training window
    at the newest edge, so the statistics themselves change: ml/dataset days outside both
    ranges are then stale, as the UI shows.)"""
    import json

    from energy_assets.io.parquet import read_file_metadata

    keys = [
        "/".join(node["assetKey"]["path"]) for node in live_ui.graphql(ASSET_NODES)["assetNodes"]
    ]
    days = [(LAST + timedelta(days=i)).isoformat() for i in (-1, 0, 1)]
    first = live_ui.launch_asset_backfill(keys, days[:2], title="overlap A")
    second = live_ui.launch_asset_backfill(keys, days[1:], title="overlap B")
    for backfill_id in (first, second):
        backfill = live_ui.wait_backfill(backfill_id, timeout_s=400)
        assert backfill["status"] == "COMPLETED_SUCCESS", backfill
        assert all(r["status"] == "SUCCESS" for r in backfill["runs"]), backfill["runs"]
    data = live_ui.config.parent.parent / "data"
    fingerprints = {
        json.loads(read_file_metadata(path)["energy_assets.ml"])["statistics_fingerprint"]
        for path in (data / "ml" / "dataset").glob("*.parquet")
        if path.stem in days
    }
    assert len(fingerprints) == 1
