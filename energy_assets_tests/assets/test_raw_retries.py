"""Which failures of a raw responses step Dagster runs again, and which end it at once.

Transient upstream trouble that outlasts the client's own retries asks for another run of the
step (RetryRequested); a refused key, a bad request and storage that cannot be written end it at
once (Failure, allow_retries=False) with a message that says what to do. Backoff is injected
as zero (client `base_delay_s`, resource `step_retry_delay_s`), so nothing here waits on time.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, materialize

from energy_assets.assets.raw import RAW_ASSETS
from energy_assets.io.parquet import ParquetIOManager
from energy_assets.offline.generator import GeneratorConfig, SyntheticWorld
from energy_assets.offline.server import Fault, FaultPlan
from energy_assets.offline.standin import start_standin
from energy_assets.resources import SourcesResource

DAY = "2024-03-10"
KEY = "s3cr3t-KEY-for-retry-tests"
EIA_RESPONSES = next(a for a in RAW_ASSETS if AssetKey(["raw", "eia930_responses"]) in a.keys)


@pytest.fixture(scope="module")
def world() -> SyntheticWorld:
    return SyntheticWorld(GeneratorConfig(seed=5, respondents=["CISO"]))


def run_eia(world, base: Path, faults: list[Fault], monkeypatch, **settings):
    """Materialize raw/eia930_responses for DAY against a stand-in with `faults`; returns the
    result, the step's event types, its failure message and the EIA requests made."""
    monkeypatch.setenv("EIA_API_KEY", KEY)
    with start_standin(world, FaultPlan(faults)) as server:
        sources = SourcesResource(
            mode="live",
            respondents=["CISO"],
            eia_base_url=server.base_url + "/v2",
            max_attempts=2,
            base_delay_s=0.0,
            step_retries=2,
            step_retry_delay_s=0.0,
            **settings,
        )
        result = materialize(
            [EIA_RESPONSES],
            resources={"io_manager": ParquetIOManager(base_dir=str(base)), "sources": sources},
            instance=DagsterInstance.ephemeral(),
            partition_key=DAY,
            raise_on_error=False,
        )
        requests = server.count("/v2/")
    events = [e.event_type_value for e in result.all_events]
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = str(failures[-1].event_specific_data.error.message) if failures else ""
    return result, events, message, requests


def test_transient_trouble_is_retried_by_the_step_then_fails_saying_retry_later(
    world, tmp_path, monkeypatch
):
    outage = [Fault(kind="status", path_prefix="/v2", status=503, times=1000, body=b"busy")]
    result, events, message, requests = run_eia(world, tmp_path, outage, monkeypatch)
    assert not result.success
    assert events.count("STEP_UP_FOR_RETRY") == 2  # step_retries
    assert requests == 3 * 2  # three runs of the step, two client attempts each
    assert "HTTP 503" in message and "Re-run the partitions later" in message
    assert KEY not in message


def test_transient_trouble_that_passes_succeeds_on_the_next_run_of_the_step(
    world, tmp_path, monkeypatch
):
    blip = [Fault(kind="status", path_prefix="/v2", status=503, times=2, body=b"busy")]
    result, events, _, _ = run_eia(world, tmp_path, blip, monkeypatch)
    assert result.success
    assert events.count("STEP_UP_FOR_RETRY") == 1
    assert list(tmp_path.rglob("*.parquet"))


def test_a_refused_key_fails_at_once_with_the_hint_and_without_the_key(
    world, tmp_path, monkeypatch
):
    refused = b'{"error":{"code":"API_KEY_INVALID","message":"An invalid api_key was supplied."}}'
    faults = [Fault(kind="status", path_prefix="/v2", status=403, times=1000, body=refused)]
    result, events, message, requests = run_eia(world, tmp_path, faults, monkeypatch)
    assert not result.success
    assert "STEP_UP_FOR_RETRY" not in events and requests == 1
    assert "API_KEY_INVALID" in message and "register" in message
    assert "retrying will not help" in message
    assert KEY not in message


def test_a_bad_request_fails_at_once_saying_to_fix_the_request(world, tmp_path, monkeypatch):
    bad = b'{"error":"Invalid frequency \'millenially\' provided.","code":400}'
    faults = [Fault(kind="status", path_prefix="/v2", status=400, times=1000, body=bad)]
    result, events, message, requests = run_eia(world, tmp_path, faults, monkeypatch)
    assert not result.success
    assert "STEP_UP_FOR_RETRY" not in events and requests == 1
    assert "Fix the request" in message


def test_an_unwritable_data_dir_fails_at_once_not_after_minutes_of_retries(
    world, tmp_path, monkeypatch
):
    blocked = tmp_path / "data"
    blocked.write_text("a file where the data folder should be")
    result, events, message, requests = run_eia(world, blocked, [], monkeypatch)
    assert not result.success
    assert "STEP_UP_FOR_RETRY" not in events
    assert requests >= 1 and "STEP_OUTPUT" in events  # the fetch worked; the write did not
    assert "cannot write partition file" in message and "not writable" in message
