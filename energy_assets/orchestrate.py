"""Plan and launch runs of the project's own jobs for a range of days: the `energy-assets` CLI's
engine, with Dagster doing the work.

What is planned comes from the Definitions, never from a list written here:

- the assets: a selection of layers (asset groups) or asset keys, checked against the
  Definitions; the job: `main_job` (or `contract_checks` for checks only) with the Definitions'
  executor, so steps of one run that do not depend on each other run in parallel when the config
  asks for the multiprocess executor;
- which partitions need work: a partition is up to date when its file is stored, its latest
  materialization carries the asset's current code version and the fingerprint of the inputs it
  read (every day of its context window, with their content hashes) equals what the store holds
  now, and nothing it reads is recomputed by this plan. A changed raw day therefore makes exactly
  the partitions whose windows contain it out of date, and a day whose missing context has
  arrived since is recomputed (that is how provisional days are refreshed);
- how days are grouped into runs: each asset's backfill policy (`multi_run(31)` for the raw
  responses, `single_run` for the rest), exactly as a UI backfill groups them. Assets that need
  the same days and allow the same batch go into one run; a run always comes after the runs of
  its upstream assets. The assets one step makes together (a raw responses step also writes its
  source's revisions) are always selected and planned together, for the same days.

Runs are real Dagster runs of `main_job` on the configured instance (the web UI shows them),
executed with `execute_job`. Before launching, runs left STARTED by a CLI process that has died
are marked failed, and a plan that overlaps a run still in progress is refused, naming it.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psutil
from dagster import (
    AssetCheckKey,
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    RunsFilter,
    execute_job,
)
from dagster._core.definitions.reconstruct import ReconstructableRepository
from upath import UPath

from energy_assets.io.parquet import WHOLE, WINDOW_KEY
from energy_assets.lineage import latest_materializations, metadata_value
from energy_assets.partitions import FIRST_DAY
from energy_assets.versions import input_fingerprint

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
LAUNCHED_BY_TAG = "energy_assets/launched_by"
PID_TAG = "energy_assets/pid"
HOST_TAG = "energy_assets/host"
STARTED_TAG = "energy_assets/process_started"
PLAN_TAG = "energy_assets/plan"
ASSETS_TAG = "energy_assets/assets"
"""The assets a CLI run writes (`execute_job` of a job subset records no asset selection)."""
IN_PROGRESS = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]
HEARTBEAT_S = 15.0


class PlanError(ValueError):
    """The request cannot be planned (unknown layer, dates outside the partitions, a run in
    progress on the same partitions); the message says what to do."""


@dataclass
class PlannedRun:
    """One run: `days` of daily assets, or (days empty) whole-range assets, which have no
    partitions (fitted statistics, packed sequences)."""

    assets: list[AssetKey]
    days: list[str]
    checks: list[AssetCheckKey] = field(default_factory=list)

    @property
    def span(self) -> str:
        return f"{self.days[0]}..{self.days[-1]}" if self.days else "whole range"

    @property
    def steps(self) -> int:
        return max(len(self.days), 1) * max(len(self.assets), 1)

    @property
    def label(self) -> str:
        groups = sorted(
            {k.path[0] for k in self.assets} or {k.asset_key.path[0] for k in self.checks}
        )
        return "+".join(groups)


@dataclass
class Plan:
    runs: list[PlannedRun]
    targeted: dict[AssetKey, list[str]]
    up_to_date: dict[AssetKey, int]
    not_stored: dict[AssetKey, list[str]] = field(default_factory=dict)

    @property
    def partition_steps(self) -> int:
        return sum(r.steps for r in self.runs)


@dataclass
class RunOutcome:
    run: PlannedRun
    run_id: str
    success: bool
    seconds: float
    rows: int = 0
    bytes_written: int = 0
    materialized: int = 0
    checks_failed: list[str] = field(default_factory=list)
    checks_warned: list[str] = field(default_factory=list)
    error: str = ""


# --- selection and dates -------------------------------------------------------------------


def days_of(first: date, last: date) -> list[str]:
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def last_partition_day(today: date | None = None) -> date:
    """The newest daily partition: yesterday (UTC), the last complete day."""
    return (today or datetime.now(UTC).date()) - timedelta(days=1)


def check_dates(first: date, last: date, today: date | None = None) -> None:
    newest = last_partition_day(today)
    if last < first:
        raise PlanError(f"--to {last} is before --from {first}; give the earlier day first")
    if first < date.fromisoformat(FIRST_DAY):
        raise PlanError(
            f"--from {first} is before the first partition {FIRST_DAY} (EIA-930 begins)"
        )
    if last > newest:
        raise PlanError(
            f"--to {last} is after the last complete UTC day {newest}; partitions end there"
        )


def layers(graph) -> dict[str, list[AssetKey]]:
    """Asset keys by layer (asset group), in the order of the graph."""
    out: dict[str, list[AssetKey]] = {}
    for key in toposorted(graph, graph.materializable_asset_keys):
        out.setdefault(graph.get(key).group_name or "default", []).append(key)
    return out


def select(graph, names: Sequence[str] | None) -> list[AssetKey]:
    """Asset keys for layer names (`raw`, `imputed`...) or asset keys (`raw/eia930`), or all."""
    by_layer = layers(graph)
    everything = [k for keys in by_layer.values() for k in keys]
    if not names:
        return everything
    chosen: set[AssetKey] = set()
    for name in names:
        if name in by_layer:
            chosen.update(by_layer[name])
            continue
        key = AssetKey(name.strip("/").split("/"))
        if key in everything:
            chosen.add(key)
            continue
        raise PlanError(
            f"--select {name!r} is neither a layer nor an asset; layers: "
            f"{', '.join(by_layer)}; assets: {', '.join(k.to_user_string() for k in everything)}"
        )
    chosen.update(k for key in list(chosen) for k in made_together(graph, key))
    return [k for k in everything if k in chosen]


def made_together(graph, key: AssetKey) -> set[AssetKey]:
    """The other assets of `key`'s step when that step cannot make a subset of them (a raw
    responses step and its revisions): a run must select them all."""
    assets_def = graph.get(key).assets_def
    return set() if assets_def.can_subset else set(assets_def.keys) - {key}


def toposorted(graph, keys: Iterable[AssetKey]) -> list[AssetKey]:
    wanted = set(keys)
    return [k for level in graph.toposorted_asset_keys_by_level for k in level if k in wanted]


# --- what needs work -----------------------------------------------------------------------


def stored_days(data_dir: str | UPath, key: AssetKey) -> set[str]:
    """Days with a file in the store (one listing per asset, also on object stores)."""
    folder = UPath(data_dir).joinpath(*key.path)
    try:
        names = [p.name for p in folder.iterdir()]
    except (FileNotFoundError, NotADirectoryError):  # object stores: no prefix, no "folder"
        return set()
    return {
        n[: -len(".parquet")] for n in names if n.endswith(".parquet") and not n.startswith(".")
    }


def stored_whole(data_dir: str, key: AssetKey) -> bool:
    """Whether a whole-range (unpartitioned) asset has its file in the store."""
    *folder, name = key.path
    return UPath(data_dir).joinpath(*folder, f"{name}.parquet").exists()


def is_daily(graph, key: AssetKey) -> bool:
    return graph.get(key).partitions_def is not None


def latest_whole(instance: DagsterInstance, key: AssetKey):
    """The latest materialization record of an unpartitioned asset, or None."""
    from dagster import AssetRecordsFilter

    result = instance.fetch_materializations(AssetRecordsFilter(asset_key=key), limit=1)
    return result.records[0] if result.records else None


def input_windows(graph, key: AssetKey) -> dict[AssetKey, tuple[int, int] | None]:
    """Each input asset of `key` and its context window (None: reads the whole run's range)."""
    assets_def = graph.get(key).assets_def
    windows: dict[AssetKey, tuple[int, int] | None] = {}
    for input_def in assets_def.node_def.input_defs:
        upstream = assets_def.keys_by_input_name.get(input_def.name)
        if upstream is None:
            continue
        spec = (input_def.metadata or {}).get(WINDOW_KEY)
        windows[upstream] = tuple(spec) if spec is not None else None
    return windows


def _span(day: str, window: tuple[int, int] | None, run_days: list[str]) -> list[str]:
    if window is None:
        return run_days
    d = date.fromisoformat(day)
    first = max(d - timedelta(days=window[0]), date.fromisoformat(FIRST_DAY))
    return days_of(first, d + timedelta(days=window[1]))


def plan(
    graph,
    instance: DagsterInstance,
    data_dir: str | UPath,
    keys: Sequence[AssetKey],
    days: list[str],
    force: bool = False,
    only_days: dict[AssetKey, set[str]] | None = None,
) -> Plan:
    """Which (asset, day) need work, grouped into runs by the assets' backfill policies."""
    ordered = toposorted(graph, keys)
    needed: dict[AssetKey, set[str]] = {}
    up_to_date: dict[AssetKey, int] = {}
    hashes: dict[AssetKey, dict[str, str | None]] = {}

    def current_hashes(key: AssetKey) -> dict[str, str | None]:
        if key not in hashes and not is_daily(graph, key):
            record = latest_whole(instance, key) if stored_whole(data_dir, key) else None
            hashes[key] = {WHOLE: metadata_value(record, "content_hash") if record else None}
        if key not in hashes:
            stored = stored_days(data_dir, key)
            records = latest_materializations(instance, key)
            hashes[key] = {
                day: metadata_value(record, "content_hash") if day in stored else None
                for day, record in records.items()
            }
            for day in stored - set(records):
                hashes[key][day] = "unrecorded"  # a file the instance never saw: unknown content
        return hashes[key]

    for key in ordered:
        if not is_daily(graph, key):
            if only_days is not None and key not in only_days:
                continue
            stale = force or whole_needs_work(
                graph, instance, data_dir, key, needed, current_hashes
            )
            needed[key] = {WHOLE} if stale else set()
            up_to_date[key] = 0 if stale else 1
            continue
        candidates = (
            sorted(only_days.get(key, set()) & set(days)) if only_days is not None else days
        )
        if force:
            needed[key] = set(candidates)
            continue
        node = graph.get(key)
        windows = input_windows(graph, key)
        stored = stored_days(data_dir, key)
        records = latest_materializations(instance, key, candidates)
        todo: set[str] = set()
        for day in candidates:
            record = records.get(day)
            if day not in stored or record is None:
                todo.add(day)
                continue
            if record.asset_materialization.tags.get("dagster/code_version") != node.code_version:
                todo.add(day)
                continue
            read: dict[str, dict[str, str | None]] = {}
            changing = False
            for upstream, window in windows.items():
                span = _span(day, window, days) if is_daily(graph, upstream) else [WHOLE]
                if upstream in needed and needed[upstream] & set(span):
                    changing = True
                    break
                known = current_hashes(upstream)
                read[upstream.to_user_string()] = {d: known.get(d) for d in span}
            if changing or metadata_value(record, "input_fingerprint") != input_fingerprint(read):
                todo.add(day)
        needed[key] = todo
        # a step that makes several assets runs for the days any of them needs (they are roots
        # of the graph here, planned before anything that reads them)
        for other in made_together(graph, key) & needed.keys():
            needed[key] = needed[other] = needed[key] | needed[other]
            up_to_date[other] = len(candidates) - len(needed[other])
        up_to_date[key] = len(candidates) - len(needed[key])
    targeted = {k: sorted(v) for k, v in needed.items() if v}
    return Plan(runs=group_runs(graph, ordered, targeted), targeted=targeted, up_to_date=up_to_date)


def whole_needs_work(graph, instance, data_dir, key, needed, current_hashes) -> bool:
    """A whole-range asset needs work unless it is stored with the current code version and
    the days it read (recorded as `input_days`) are unchanged and not recomputed now."""
    record = latest_whole(instance, key) if stored_whole(data_dir, key) else None
    if record is None:
        return True
    if record.asset_materialization.tags.get("dagster/code_version") != graph.get(key).code_version:
        return True
    read_days = metadata_value(record, "input_days") or {}
    read: dict[str, dict[str, str | None]] = {}
    for upstream in input_windows(graph, key):
        name = upstream.to_user_string()
        span = read_days.get(name)
        if span is None:
            return True
        if needed.get(upstream, set()) & set(span):
            return True
        known = current_hashes(upstream)
        read[name] = {d: known.get(d) for d in span}
    return metadata_value(record, "input_fingerprint") != input_fingerprint(read)


def contiguous(days: Sequence[str]) -> list[list[str]]:
    ranges: list[list[str]] = []
    for day in sorted(days):
        if ranges and date.fromisoformat(day) - date.fromisoformat(ranges[-1][-1]) == timedelta(1):
            ranges[-1].append(day)
        else:
            ranges.append([day])
    return ranges


def group_runs(
    graph, ordered: list[AssetKey], targeted: dict[AssetKey, list[str]]
) -> list[PlannedRun]:
    """Runs in dependency order, honouring each asset's backfill policy.

    Assets that need the same contiguous days with the same batch share runs: one run when the
    batch covers the days (steps are then ordered, and parallel where independent, by Dagster
    within the run), else one run per batch. Whole-range assets share a run without partitions
    on the same terms. A downstream asset joins a single run only if that
    run comes at or after the last run of each of its upstream assets; batched runs are shared
    only by assets with no upstream among them (a window can reach into the next batch).
    """
    runs: list[PlannedRun] = []
    groups: dict[tuple[str, str, int], list[int]] = {}  # (first, last, batch) -> run indexes
    placed: dict[AssetKey, int] = {}  # the last run that holds each asset
    for key in ordered:
        if key not in targeted:
            continue
        node = graph.get(key)
        policy = node.backfill_policy
        limit = policy.max_partitions_per_run if policy is not None else 1
        earliest = max((placed[p] for p in node.parent_keys if p in placed), default=-1)
        if node.partitions_def is None:  # a whole-range asset: a run without partitions
            # joins the newest such run that comes at or after its inputs' runs (Dagster orders
            # the steps inside it), else starts one: fewer runs, each with its own start-up
            joinable = [i for i, r in enumerate(runs) if not r.days and i >= earliest]
            if joinable:
                runs[joinable[-1]].assets.append(key)
                placed[key] = joinable[-1]
            else:
                runs.append(PlannedRun(assets=[key], days=[]))
                placed[key] = len(runs) - 1
            continue
        for days in contiguous(targeted[key]):
            batch = min(limit or len(days), len(days))
            group = groups.get((days[0], days[-1], batch))
            usable = group is not None and (
                (len(group) == 1 and group[0] >= earliest) or min(group) > earliest
            )
            if not usable:
                group = []
                for i in range(0, len(days), batch):
                    runs.append(PlannedRun(assets=[], days=days[i : i + batch]))
                    group.append(len(runs) - 1)
                groups[(days[0], days[-1], batch)] = group
            assert group is not None
            for i in group:
                runs[i].assets.append(key)
            placed[key] = max(placed.get(key, -1), *group)
    return runs


def checks_plan(
    graph,
    data_dir: str | UPath,
    keys: Sequence[AssetKey],
    days: list[str],
    excluded: AbstractSet[AssetCheckKey] = frozenset(),
) -> Plan:
    """Checks of the selected assets over their stored days (less `excluded`: the wall-clock
    freshness checks the `contract_checks` job leaves out); days not stored are reported."""
    runs: dict[tuple[str, ...], PlannedRun] = {}
    targeted: dict[AssetKey, list[str]] = {}
    not_stored: dict[AssetKey, list[str]] = {}
    for key in toposorted(graph, keys):
        checks = sorted(set(graph.get_check_keys_for_assets([key])) - set(excluded),
                        key=lambda c: c.name)  # fmt: skip
        if not checks:
            continue
        if not is_daily(graph, key):
            if stored_whole(data_dir, key):
                targeted[key] = [WHOLE]
                runs.setdefault((WHOLE,), PlannedRun(assets=[], days=[])).checks.extend(checks)
            else:
                not_stored[key] = [WHOLE]
            continue
        stored = stored_days(data_dir, key)
        present = [d for d in days if d in stored]
        missing = [d for d in days if d not in stored]
        if missing:
            not_stored[key] = missing
        if present:
            targeted[key] = present
        for span in contiguous(present):
            runs.setdefault(tuple(span), PlannedRun(assets=[], days=span)).checks.extend(checks)
    return Plan(runs=list(runs.values()), targeted=targeted, up_to_date={}, not_stored=not_stored)


# --- instance hygiene ----------------------------------------------------------------------


def _process_alive(pid: int, started: float | None) -> bool:
    try:
        process = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return False
    return started is None or abs(process.create_time() - started) < 1.0


def fail_dead_runs(instance: DagsterInstance, say: Callable[[str], None]) -> list[str]:
    """Mark failed the runs a CLI process on this host left STARTED when it died."""
    host = socket.gethostname()
    failed = []
    for run in instance.get_runs(RunsFilter(statuses=IN_PROGRESS, tags={HOST_TAG: host})):
        pid = run.tags.get(PID_TAG)
        if pid is None:
            continue
        started = run.tags.get(STARTED_TAG)
        if _process_alive(int(pid), float(started) if started else None):
            continue
        instance.report_run_failed(
            run, f"energy-assets: the process that ran this run (pid {pid}) is gone"
        )
        failed.append(run.run_id)
    if failed:
        say(f"Marked {len(failed)} run(s) failed whose process had died: {', '.join(failed)}")
    return failed


def _run_days(run) -> tuple[str, str] | None:
    tags = run.tags
    if RANGE_START_TAG in tags and RANGE_END_TAG in tags:
        return tags[RANGE_START_TAG], tags[RANGE_END_TAG]
    if "dagster/partition" in tags:
        return tags["dagster/partition"], tags["dagster/partition"]
    return None


def run_assets(run) -> set[AssetKey]:
    """The assets a run launched by this CLI writes (from its tag)."""
    text = run.tags.get(ASSETS_TAG, "")
    return {AssetKey(name.split("/")) for name in text.split(",") if name}


def refuse_overlap(instance: DagsterInstance, planned: Plan) -> None:
    """Two writers of the same partitions would leave the store mixed: refuse at launch."""
    wanted = {k: (v[0], v[-1]) for k, v in planned.targeted.items()}
    for run in instance.get_runs(RunsFilter(statuses=IN_PROGRESS)):
        span = _run_days(run)
        assets = set(run.asset_selection or ()) | run_assets(run)
        if not assets:
            continue
        for key in assets & set(wanted):
            first, last = wanted[key]
            whole = first == WHOLE
            if whole or (span is not None and span[0] <= last and first <= span[1]):
                what = "(whole range)" if whole else f"{span[0]}..{span[1]}, which overlaps"
                asked = "" if whole else f" {first}..{last}"
                raise PlanError(
                    f"run {run.run_id} ({run.status.value}, {run.tags.get(LAUNCHED_BY_TAG, 'ui')}) "
                    f"is writing {key.to_user_string()} {what}{asked}; wait for it to finish "
                    "(or terminate it in the UI), then re-run this command"
                )


# --- launching -----------------------------------------------------------------------------


def reconstructable_job(name: str):
    root = str(Path(__file__).resolve().parents[1])
    repository = ReconstructableRepository.for_module(
        "energy_assets.definitions", "defs", working_directory=root
    )
    return repository.get_reconstructable_job(name)


def root_cause(error) -> str:
    """The innermost error of a Dagster error chain (not 'Error occurred while executing')."""
    messages = []
    while error is not None:
        messages.append(error.message.strip())
        error = error.cause
    return messages[-1] if messages else "unknown error"


def _failure_text(instance: DagsterInstance, run_id: str) -> str:
    lines = []
    for record in instance.get_records_for_run(
        run_id, of_type=DagsterEventType.STEP_FAILURE
    ).records:
        event = record.event_log_entry.dagster_event
        data = getattr(event, "event_specific_data", None)
        error = getattr(data, "error", None)
        lines.append(f"{event.step_key}: {root_cause(error)}")
    if not lines:
        for record in instance.get_records_for_run(
            run_id, of_type=DagsterEventType.RUN_FAILURE
        ).records:
            lines.append(record.event_log_entry.dagster_event.message or "run failed")
    return "\n".join(lines) or "see the run in the UI"


class Heartbeat:
    """Prints a line while a long run works: partitions materialized so far and elapsed time."""

    def __init__(
        self, instance, tag: str, label: str, total: int, say, every_s: float = HEARTBEAT_S
    ):
        self.instance, self.tag, self.label, self.total, self.say = instance, tag, label, total, say
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="heartbeat")
        self._started = time.perf_counter()

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                runs = self.instance.get_runs(RunsFilter(tags={PLAN_TAG: self.tag}), limit=1)
                done = 0
                if runs:
                    done = len(
                        self.instance.get_records_for_run(
                            runs[0].run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION
                        ).records
                    )
                elapsed = time.perf_counter() - self._started
                self.say(
                    f"      ... {self.label}: {done}/{self.total} partitions written, "
                    f"{elapsed:.0f} s"
                )
            except Exception:  # a heartbeat must never break the run
                continue


def launch(
    planned_run: PlannedRun,
    instance: DagsterInstance,
    launched_by: str = "cli",
    say: Callable[[str], None] = print,
    heartbeat_s: float = HEARTBEAT_S,
) -> RunOutcome:
    """Execute one planned run as a run of the project's job on the instance."""
    tag = uuid.uuid4().hex
    me = psutil.Process()
    span = (
        {RANGE_START_TAG: planned_run.days[0], RANGE_END_TAG: planned_run.days[-1]}
        if planned_run.days
        else {}
    )
    tags = {
        **span,
        LAUNCHED_BY_TAG: launched_by,
        PID_TAG: str(os.getpid()),
        HOST_TAG: socket.gethostname(),
        STARTED_TAG: f"{me.create_time():.3f}",
        PLAN_TAG: tag,
        ASSETS_TAG: ",".join(k.to_user_string() for k in planned_run.assets),
    }
    if planned_run.assets:
        job = reconstructable_job("main_job").get_subset(
            asset_selection=set(planned_run.assets),
            asset_check_selection=None,
        )
    else:
        job = reconstructable_job("contract_checks").get_subset(
            asset_selection=set(), asset_check_selection=set(planned_run.checks)
        )
    total = planned_run.steps
    started = time.perf_counter()
    with Heartbeat(instance, tag, planned_run.label, total, say, heartbeat_s):
        result = execute_job(
            job,
            instance=instance,
            tags=tags,
            # the CLI prints progress and each failure's root cause; the full event log of the
            # run (step logs, stack traces) stays on the instance, shown by the UI
            run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
        )
    outcome = RunOutcome(
        run=planned_run,
        run_id=result.run_id,
        success=result.success,
        seconds=time.perf_counter() - started,
    )
    for event in result.all_events:
        if event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            metadata = event.step_materialization_data.materialization.metadata
            outcome.materialized += 1
            outcome.rows += int(getattr(metadata.get("rows"), "value", 0) or 0)
            outcome.bytes_written += int(getattr(metadata.get("bytes_written"), "value", 0) or 0)
        elif event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.asset_check_evaluation_data
            if evaluation.passed:
                continue
            name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
            if evaluation.partition:
                name += f"@{evaluation.partition}"
            if evaluation.severity.value == "ERROR":
                outcome.checks_failed.append(name)
            else:
                outcome.checks_warned.append(name)
    if not result.success:
        outcome.error = _failure_text(instance, result.run_id)
    return outcome


def provisional_days(
    instance: DagsterInstance, keys: Sequence[AssetKey]
) -> dict[AssetKey, set[str]]:
    """Partitions whose latest materialization is provisional (context days were missing)."""
    found: dict[AssetKey, set[str]] = {}
    for key in keys:
        days = {
            day
            for day, record in latest_materializations(instance, key).items()
            if metadata_value(record, "provisional", False)
        }
        if days:
            found[key] = days
    return found


def refresh_targets(
    graph, instance: DagsterInstance, data_dir: str | UPath, keys: Sequence[AssetKey]
) -> tuple[dict[AssetKey, set[str]], list[str]]:
    """For `--refresh-provisional`: the stored partitions that are provisional or read one
    (features look back 8 days), limited to the selection; plus the days they span. The plan
    then recomputes those whose inputs have changed since (their missing context arrived)."""
    targets: dict[AssetKey, set[str]] = provisional_days(instance, keys)
    for key in toposorted(graph, keys):
        stored = stored_days(data_dir, key)
        for upstream, window in input_windows(graph, key).items():
            if upstream not in targets:
                continue
            before, after = window if window is not None else (0, 0)
            reach = {
                (date.fromisoformat(d) + timedelta(days=s)).isoformat()
                for d in targets[upstream]
                for s in range(-after, before + 1)
            }
            targets.setdefault(key, set()).update(reach & stored)
    days = set().union(*targets.values()) if targets else set()
    return targets, sorted(days)
