"""Orchestration overhead of `energy-assets backfill`, and what versioned caching saves.

Three backfills of every layer except `ml` over the same days of the synthetic world (offline
stand-in), through the real CLI (the configuration the assets run: main_job runs on a SQLite
instance with the config's executor), in one session:

1. first: nothing stored. Wall time, the steps' own compute (the sum of each step's
   `step_duration_s`, measured inside the asset functions), and Dagster's share of the wall time
   (everything else: process start, planning, run and event storage, IO manager, checks).
2. second, identical: everything is up to date; its wall time against the first.
3. after 7 raw EIA days were revised upstream (a value in each stored response changes and the
   day is re-parsed): what the plan recomputes, against the partitions whose context windows
   contain a revised day, and its wall time against the first.

    python benchmarks/overhead.py [--days 365] [--respondents CISO ERCO ...] [--json OUT]

The first backfill also reports the events its runs wrote, by type, and what storing one costs
on this instance and disk (the runs' own events stored again into a scratch copy, same session):
with a result per partition and check, Dagster's event storage is most of its share.

Targets (issue "Operate it the Dagster way"): overhead <= 10 % of the first backfill's wall time,
the second < 10 % of the first, the third proportional to what changed.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CLI = str(Path(sys.executable).parent / "energy-assets")
LAYERS = ["raw", "aligned", "imputed", "features"]


def write_config(folder: Path, first: date, last: date, respondents: list[str] | None) -> Path:
    config = {
        "start": first.isoformat(),
        "end": last.isoformat(),
        "data_dir": str(folder / "data"),
        "dagster_home": str(folder / "dagster_home"),
        "sources": {"mode": "offline", "world": "synthetic", "seed": 7, "respondents": respondents},
    }
    path = folder / "configs" / "run.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(config))
    return path


def backfill(config: Path, first: date, last: date, *extra: str) -> tuple[float, str]:
    command = [CLI, "--config", str(config), "backfill", "--from", first.isoformat()]
    command += ["--to", last.isoformat(), *extra]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"backfill failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def step_seconds(home: Path, since_runs: set[str]) -> tuple[float, set[str]]:
    """Sum of the steps' own compute in runs not in `since_runs`, and those runs' ids."""
    from dagster import DagsterEventType, DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    total, runs = 0.0, set()
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        for run in instance.get_runs():
            if run.run_id in since_runs:
                continue
            runs.add(run.run_id)
            seen = set()
            records = instance.get_records_for_run(
                run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION, limit=100_000
            ).records
            for record in records:
                materialization = record.asset_materialization
                key = materialization.asset_key
                if key in seen:  # step_duration_s repeats on every day of the step
                    continue
                seen.add(key)
                value = materialization.metadata.get("step_duration_s")
                total += float(getattr(value, "value", 0.0) or 0.0)
    return total, runs


def events_by_type(home: Path, runs: set[str]) -> dict[str, int]:
    """How many events of each type the runs wrote to the instance's event log."""
    from collections import Counter

    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    counts: Counter[str] = Counter()
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        for run_id in runs:
            for entry in instance.all_logs(run_id):
                event = entry.dagster_event
                counts[event.event_type_value if event else "LOG_MESSAGE"] += 1
    return dict(counts.most_common())


def ms_per_event(home: Path, runs: set[str], sample: int = 300) -> float:
    """What Dagster's event storage costs per event on this instance and disk: the runs' own
    materialization and check events stored again (fresh timestamps) into a scratch copy of
    the instance, one by one as a run stores them."""
    import shutil

    from dagster import DagsterEventType, DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    kinds = (DagsterEventType.ASSET_MATERIALIZATION, DagsterEventType.ASSET_CHECK_EVALUATION)
    scratch = Path(tempfile.mkdtemp(prefix="event-cost-")) / "home"
    shutil.copytree(home, scratch)
    try:
        with DagsterInstance.from_ref(InstanceRef.from_dir(str(scratch))) as instance:
            entries = [
                e
                for run_id in sorted(runs)
                for e in instance.all_logs(run_id)
                if e.dagster_event and e.dagster_event.event_type in kinds
            ][:sample]
            started = time.perf_counter()
            for entry in entries:
                instance.handle_new_event(entry._replace(timestamp=time.time()))
            return (time.perf_counter() - started) * 1000 / max(len(entries), 1)
    finally:
        shutil.rmtree(scratch.parent, ignore_errors=True)


def revise(data: Path, day: str) -> None:
    path = data / "raw" / "eia930_responses" / f"{day}.parquet"
    frame = pl.read_parquet(path)
    metadata = pl.read_parquet_metadata(path)
    body = frame["body"][0]
    frame = frame.with_columns(
        pl.Series(
            "body",
            [body.replace(b'"value":"', b'"value":"1', 1), *frame["body"][1:].to_list()],
            dtype=pl.Binary,
        )
    )
    buffer = io.BytesIO()
    frame.write_parquet(buffer, metadata=metadata)
    path.write_bytes(buffer.getvalue())


def planned(stdout: str) -> int:
    for line in stdout.splitlines():
        if line.startswith("Plan: "):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--first", type=date.fromisoformat, default=date(2023, 1, 1))
    parser.add_argument("--respondents", nargs="*", default=None, help="default: all")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/overhead.json")
    args = parser.parse_args()
    if args.days < 30:
        raise SystemExit("error: --days must be at least 30 (7 revised days spread over them)")
    first, last = args.first, args.first + timedelta(days=args.days - 1)
    work = Path(tempfile.mkdtemp(prefix="overhead-"))
    config = write_config(work, first, last, args.respondents)
    select = ["--select", *LAYERS]
    print(f"{args.days} days {first}..{last}, layers {' '.join(LAYERS)}, work dir {work}")

    wall1, _ = backfill(config, first, last, *select)
    core1, runs1 = step_seconds(work / "dagster_home", set())
    print(f"first:  {wall1:7.1f} s wall, {core1:7.1f} s in the steps, {len(runs1)} runs, "
          f"Dagster/CLI share {(wall1 - core1) / wall1:.1%}")  # fmt: skip

    events = events_by_type(work / "dagster_home", runs1)
    per_event = ms_per_event(work / "dagster_home", runs1)
    storage = sum(events.values()) * per_event / 1000
    steps1 = args.days * 9  # nine daily assets in these layers
    print(f"        {sum(events.values())} events ({sum(events.values()) / steps1:.1f} per "
          f"partition-step; check evaluations {events.get('ASSET_CHECK_EVALUATION', 0)}), "
          f"{per_event:.1f} ms each to store: about {storage:.1f} s, "
          f"{storage / max(wall1 - core1, 1e-9):.0%} of the Dagster/CLI share")  # fmt: skip

    wall2, out2 = backfill(config, first, last, *select)
    print(f"second: {wall2:7.1f} s wall ({wall2 / wall1:.1%} of the first), "
          f"{planned(out2)} partition-steps planned")  # fmt: skip

    step = max(args.days // 7, 1)
    days = [(first + timedelta(days=3 + i * step)).isoformat() for i in range(7)]
    for day in days:
        revise(work / "data", day)
    for day in days:  # re-parse the revised responses (what a re-fetch does)
        backfill(config, date.fromisoformat(day), date.fromisoformat(day),
                 "--select", "raw/eia930", "--force")  # fmt: skip
    _, runs_before = step_seconds(work / "dagster_home", set())
    wall3, out3 = backfill(config, first, last, *select)
    core3, _ = step_seconds(work / "dagster_home", runs_before)
    revised = {date.fromisoformat(d) for d in days}

    def reach(before: int, after: int) -> int:
        return sum(
            1
            for i in range(args.days)
            if any(-after <= (d - (first + timedelta(days=i))).days <= before for d in revised)
        )

    # aligned reads ±1 day; imputed ±context_days of aligned; features 8 days back of imputed
    from energy_assets.transform.clean import CleaningConfig

    raw_days = CleaningConfig().context_days + 1
    expected = reach(1, 1) + reach(raw_days, raw_days) + reach(raw_days, raw_days + 8)
    steps3 = planned(out3)
    print(f"third:  {wall3:7.1f} s wall ({wall3 / wall1:.1%} of the first), {steps3} "
          f"partition-steps planned, {expected} expected from the windows of the 7 revised "
          f"days ({expected / (args.days * 9):.1%} of all)")  # fmt: skip
    result = {
        "days": args.days,
        "respondents": args.respondents or "all",
        "first_wall_s": round(wall1, 2),
        "first_step_compute_s": round(core1, 2),
        "first_overhead_share": round((wall1 - core1) / wall1, 4),
        "first_runs": len(runs1),
        "first_events": events,
        "event_store_ms_per_event": round(per_event, 2),
        "first_event_store_s_estimate": round(storage, 2),
        "second_wall_s": round(wall2, 2),
        "second_over_first": round(wall2 / wall1, 4),
        "third_wall_s": round(wall3, 2),
        "third_over_first": round(wall3 / wall1, 4),
        "third_step_compute_s": round(core3, 2),
        "third_partition_steps": steps3,
        "third_expected_partition_steps": expected,
        "revised_days": days,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
