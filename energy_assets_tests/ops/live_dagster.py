"""A real Dagster webserver and daemon on loopback, for tests and benchmarks that need them.

`start_live_dagster(config, dagster_home)` writes `dagster_home/dagster.yaml`, creates the
instance storage, starts `dagster-webserver` and `dagster-daemon run` in their own process groups
against the repository's `workspace.yaml` (with $ENERGY_ASSETS_CONFIG=config), waits for
`/server_info` and the code location, and returns a handle with GraphQL helpers.
`stop()` SIGKILLs each process group: dagster maps SIGTERM onto its SIGINT handler, and both
are ignored when started as background jobs (dagster_practice.md, section 7), so nothing else is
reliable.

`fast=True` shortens the daemon's fixed 30 s backfill loop (and the 5 s run-queue poll) so a
multi-step backfill completes in seconds; benchmarks pass `fast=False` to measure the real thing.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKSPACE = REPO_ROOT / "workspace.yaml"

# The backfill daemon sleeps DEFAULT_DAEMON_INTERVAL_SECONDS (30 s, not configurable) between
# iterations; tests patch it in the daemon process only, so a backfill whose layers need several
# iterations finishes in seconds. Nothing else about the daemon changes.
DAEMON_BOOT = """
import sys
import dagster._daemon.controller as controller
controller.DEFAULT_DAEMON_INTERVAL_SECONDS = int(sys.argv[1])
from dagster._daemon.cli import main
sys.argv = ["dagster-daemon", "run", *sys.argv[2:]]
main()
"""

FAST_DAGSTER_YAML = {
    "telemetry": {"enabled": False},
    "run_coordinator": {
        "module": "dagster._core.run_coordinator",
        "class": "QueuedRunCoordinator",
        "config": {"dequeue_interval_seconds": 1, "max_concurrent_runs": 4},
    },
    "run_monitoring": {"enabled": True, "poll_interval_seconds": 5},
}

IN_PROCESS: dict[str, Any] = {}
"""Run config of daemon-launched runs: none, the executor is the project's (`execution:` block of
the run config file, in_process by default), exactly as for a backfill launched in the UI."""
"""Run config for runs that need not pay a subprocess per step (tests of orchestration)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(
    path: Path,
    *,
    start: date,
    end: date,
    respondents: list[str],
    data_dir: Path,
    dagster_home: Path,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """A small run config YAML (offline synthetic sources) for a temporary instance."""
    config: dict[str, Any] = {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "data_dir": str(data_dir),
        "dagster_home": str(dagster_home),
        "sources": {"mode": "offline", "world": "synthetic", "seed": 7, "respondents": respondents},
    }
    config.update(extra or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class GraphQLError(RuntimeError):
    pass


@dataclass
class LiveDagster:
    config: Path
    dagster_home: Path
    port: int
    logs: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- process control -----------------------------------------------------------------
    def stop(self) -> None:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        self.processes.clear()

    def log_tail(self, chars: int = 3000) -> str:
        return "\n".join(
            f"--- {p.name} ---\n{p.read_text(errors='replace')[-chars:]}"
            for p in sorted(self.logs.glob("*.log"))
        )

    # --- GraphQL ---------------------------------------------------------------------------
    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        if answer.get("errors"):
            raise GraphQLError(json.dumps(answer["errors"])[:2000])
        return answer["data"]

    def launch_asset_backfill(
        self,
        asset_keys: Iterable[str],
        partitions: Iterable[str],
        run_config: Mapping[str, Any] | None = None,
        title: str | None = None,
    ) -> str:
        params: dict[str, Any] = {
            "assetSelection": [{"path": k.split("/")} for k in asset_keys],
            "partitionNames": list(partitions),
        }
        if run_config is not None:
            params["runConfigData"] = dict(run_config)
        if title:
            params["title"] = title
        data = self.graphql(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
        if data["__typename"] != "LaunchBackfillSuccess":
            raise GraphQLError(f"backfill not launched: {json.dumps(data)[:2000]}")
        return data["backfillId"]

    def reexecute_backfill(self, backfill_id: str, strategy: str = "FROM_FAILURE") -> str:
        params = {"parentRunId": backfill_id, "strategy": strategy}
        data = self.graphql(REEXECUTE_BACKFILL, {"params": params})["reexecutePartitionBackfill"]
        if data["__typename"] != "LaunchBackfillSuccess":
            raise GraphQLError(f"backfill not re-executed: {json.dumps(data)[:2000]}")
        return data["backfillId"]

    def backfill(self, backfill_id: str) -> dict[str, Any]:
        data = self.graphql(BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        if data["__typename"] != "PartitionBackfill":
            raise GraphQLError(json.dumps(data)[:2000])
        return data

    def wait_backfill(self, backfill_id: str, timeout_s: float = 300.0) -> dict[str, Any]:
        """Poll until the backfill is no longer in progress; its final status document."""
        deadline = time.monotonic() + timeout_s
        while True:
            data = self.backfill(backfill_id)
            if data["status"] not in ("REQUESTED", "CANCELING", "FAILING"):
                return data
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"backfill {backfill_id} still {data['status']} after {timeout_s:.0f} s\n"
                    f"{json.dumps(data)[:2000]}\n{self.log_tail()}"
                )
            time.sleep(1.0)

    def wait_run(self, run_id: str, timeout_s: float = 180.0) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.graphql(RUN_STATUS, {"id": run_id})["runOrError"]["status"]
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {status}\n{self.log_tail()}")
            time.sleep(1.0)

    def wait_sensor_cursor(self, sensor_name: str, timeout_s: float = 120.0) -> str:
        """Wait until the daemon has evaluated `sensor_name` once and stored its cursor (returned).

        A run-status sensor's first evaluation only records where the event log stands, and a
        run that fails before it is never reported: wait for this before causing a failure the
        sensor must see."""
        deadline = time.monotonic() + timeout_s
        while True:
            data = self.graphql(SENSOR_STATES)["repositoriesOrError"]
            if data["__typename"] != "RepositoryConnection":
                raise GraphQLError(json.dumps(data)[:2000])
            states = {s["name"]: s["sensorState"] for r in data["nodes"] for s in r["sensors"]}
            if sensor_name not in states:
                raise GraphQLError(f"no sensor {sensor_name!r}; sensors: {sorted(states)}")
            state = states[sensor_name]
            if state["status"] != "RUNNING":
                raise GraphQLError(f"sensor {sensor_name} is {state['status']}, not RUNNING")
            cursor = (state["typeSpecificData"] or {}).get("lastCursor")
            if cursor:
                return cursor
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"sensor {sensor_name} not evaluated after {timeout_s:.0f} s\n{self.log_tail()}"
                )
            time.sleep(0.5)

    def check_executions(self, asset_key: str, check_name: str, limit: int = 50) -> list[dict]:
        data = self.graphql(
            CHECK_EXECUTIONS,
            {"key": {"path": asset_key.split("/")}, "name": check_name, "limit": limit},
        )
        return data["assetCheckExecutions"]


def start_live_dagster(
    config: Path,
    dagster_home: Path,
    *,
    daemon: bool = True,
    fast: bool = True,
    daemon_interval_s: int = 2,
    env: Mapping[str, str] | None = None,
    startup_timeout_s: float = 120.0,
    dagster_yaml: Mapping[str, Any] | str | None = None,
    workspace: Path = WORKSPACE,
) -> LiveDagster:
    """Start the webserver (and daemon) on a free loopback port; returns once /server_info answers.

    `dagster_yaml` (a mapping or YAML text) replaces `dagster_home/dagster.yaml`; by default it is
    FAST_DAGSTER_YAML when `fast`, else whatever is there (or Dagster's defaults). `fast=False`
    runs the unmodified `dagster-daemon run`.
    """
    dagster_home.mkdir(parents=True, exist_ok=True)
    instance_yaml = (
        dagster_yaml if dagster_yaml is not None else (FAST_DAGSTER_YAML if fast else None)
    )
    if isinstance(instance_yaml, str):
        (dagster_home / "dagster.yaml").write_text(instance_yaml)
    elif instance_yaml is not None:
        (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(dict(instance_yaml)))
    _create_storage(dagster_home)
    logs = dagster_home / "process_logs"
    logs.mkdir(exist_ok=True)
    port = free_port()
    environment = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "ENERGY_ASSETS_CONFIG": str(config),
        "PYTHONUNBUFFERED": "1",
        **dict(env or {}),
    }
    bin_dir = Path(sys.executable).parent
    live = LiveDagster(config=config, dagster_home=dagster_home, port=port, logs=logs)
    webserver = [str(bin_dir / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port)]
    commands = {"webserver": [*webserver, "-w", str(workspace)]}
    if daemon and fast:
        interval = str(daemon_interval_s)
        commands["daemon"] = [sys.executable, "-c", DAEMON_BOOT, interval, "-w", str(workspace)]
    elif daemon:
        commands["daemon"] = [str(bin_dir / "dagster-daemon"), "run", "-w", str(workspace)]
    try:
        for name, command in commands.items():
            handle = (logs / f"{name}.log").open("ab")
            live.processes.append(
                subprocess.Popen(
                    command,
                    cwd=REPO_ROOT,
                    env=environment,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,  # own process group: killpg takes code servers too
                )
            )
        _wait_ready(live, startup_timeout_s)
    except BaseException:
        live.stop()
        raise
    return live


def _create_storage(dagster_home: Path) -> None:
    """Create the SQLite schemas once, here: webserver and daemon racing to create them on a
    fresh home leave two alembic heads ("has more than one head present")."""
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    with DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home))):
        pass


def _wait_ready(live: LiveDagster, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for process in live.processes:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{process.args[0]} exited with {process.returncode}\n{live.log_tail()}"
                )
        try:
            with urllib.request.urlopen(f"{live.url}/server_info", timeout=5) as response:
                if response.status == 200:
                    break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    else:
        raise TimeoutError(f"webserver not up after {timeout_s:.0f} s\n{live.log_tail()}")
    # the code location loads after the server answers: wait until it is usable
    while time.monotonic() < deadline:
        data = live.graphql(LOCATION_STATUS)
        entries = data["workspaceOrError"].get("locationEntries", [])
        states = {e["name"]: e["loadStatus"] for e in entries}
        errors = [e for e in entries if (e.get("locationOrLoadError") or {}).get("message")]
        if errors:
            raise RuntimeError(f"code location failed to load: {json.dumps(errors)[:3000]}")
        if states and all(s == "LOADED" for s in states.values()):
            return
        time.sleep(0.5)
    raise TimeoutError(f"code location not loaded after {timeout_s:.0f} s\n{live.log_tail()}")


LOCATION_STATUS = """
query { workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""

LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId }
  ... on PythonError { message stack } ... on InvalidSubsetError { message }
  ... on PartitionSetNotFoundError { message } ... on UnauthorizedError { message } } }
"""

REEXECUTE_BACKFILL = """
mutation($params: ReexecutionParams!) { reexecutePartitionBackfill(reexecutionParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId }
  ... on PythonError { message stack } ... on UnauthorizedError { message } } }
"""

BACKFILL_STATUS = """
query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  __typename
  ... on PartitionBackfill { id status numPartitions partitionNames fromFailure
    runs { runId status tags { key value } assetSelection { path } }
    assetBackfillData { assetBackfillStatuses { __typename
      ... on AssetPartitionsStatusCounts { assetKey { path } numPartitionsTargeted
        numPartitionsInProgress numPartitionsMaterialized numPartitionsFailed }
      ... on UnpartitionedAssetStatus { assetKey { path } inProgress materialized failed }
      } } }
  ... on PythonError { message } ... on BackfillNotFoundError { message } } }
"""

SENSOR_STATES = """
query { repositoriesOrError { __typename
  ... on RepositoryConnection { nodes { sensors { name sensorState { status
    typeSpecificData { __typename ... on SensorData { lastCursor } } } } } }
  ... on PythonError { message } } }
"""

RUN_STATUS = """
query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }
"""

CHECK_EXECUTIONS = """
query($key: AssetKeyInput!, $name: String!, $limit: Int!) {
  assetCheckExecutions(assetKey: $key, checkName: $name, limit: $limit) {
    runId status partition evaluation { success severity } } }
"""
