"""Scale-out: the same backfill in-process, on 1 Celery worker and on 2, in one session.

Every daily layer except `ml` (raw, aligned, imputed, features) over 30 days of the synthetic
world, all balancing authorities by default, through the real CLI:

1. in-process: the local deployment (SQLite instance, local folder, in_process executor);
2. celery, 1 worker, and 3. celery, 2 workers: the production deployment on the loopback stack
   (`python -m energy_assets.stack`: PostgreSQL, Redis, moto's S3 server), data in S3.

Each variant stores into its own empty place, so each computes everything. Printed: wall times,
the ratio 1 worker / 2 workers (target >= 1.6) and, for the Celery runs, where the time goes:
the steps' own time (STEP_SUCCESS durations, measured in the workers), the number of steps, the
critical path of asset steps, and the CPU seconds each part used during the run (workers,
moto, Postgres, Redis, the CLI that orchestrates) against what the cores could give, with
what other processes on the machine took.

    python benchmarks/scale_out.py [--days 30] [--respondents CISO ERCO ...] [--json OUT]

The machine must be able to run the loopback stack (./dev stack up installs what it needs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / ".ci"))
LAYERS = ["raw", "aligned", "imputed", "features"]


def _cpu(process: psutil.Process) -> float:
    try:
        t = process.cpu_times()
    except psutil.Error:
        return 0.0
    return t.user + t.system + t.children_user + t.children_system  # reaped children too


def stack_cpu(state: Path) -> dict[str, float]:
    """CPU seconds used so far by each part of the loopback stack (process trees)."""
    groups = {"workers": 0.0, "object store (moto)": 0.0, "redis": 0.0, "postgres": 0.0}
    names = {"s3": "object store (moto)", "redis": "redis"}
    for pidfile in (state / "pids").glob("*.pid"):
        with contextlib.suppress(psutil.Error, ValueError):
            root = psutil.Process(int(pidfile.read_text()))
            group = "workers" if pidfile.stem.startswith("worker") else names[pidfile.stem]
            groups[group] += sum(_cpu(p) for p in [root, *root.children(recursive=True)])
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if str(state / "pg") in cmdline and "postgres" in cmdline:
            groups["postgres"] += _cpu(process)
    return groups


def machine_busy() -> float:
    t = psutil.cpu_times()
    return t.user + t.system + t.nice + getattr(t, "irq", 0) + getattr(t, "softirq", 0)


def cli(config: Path, first: date, last: date) -> float:
    command = [sys.executable, "-m", "energy_assets.cli", "--config", str(config), "backfill",
               "--from", first.isoformat(), "--to", last.isoformat(),
               "--select", *LAYERS]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"backfill failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return seconds


def stack(config: Path, *args: str) -> None:
    command = [sys.executable, "-m", "energy_assets.stack", *args, "--config", str(config)]
    done = subprocess.run(command, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"stack {' '.join(args)} failed (exit {done.returncode})")


def step_profile(config: Path) -> dict:
    """Step durations of the latest run on the config's instance."""
    from dagster import DagsterEventType, DagsterInstance

    from energy_assets.settings import load_settings

    settings = load_settings(config)
    os.environ["DAGSTER_HOME"] = settings.dagster_home
    with DagsterInstance.get() as instance:
        run = instance.get_runs(limit=1)[0]
        steps: dict[str, float] = {}
        for record in instance.get_records_for_run(
            run.run_id, of_type=DagsterEventType.STEP_SUCCESS, limit=100_000
        ).records:
            event = record.event_log_entry.dagster_event
            steps[event.step_key] = event.event_specific_data.duration_ms / 1000
    assets = {k: v for k, v in steps.items() if "__contract" not in k and "_check" not in k}
    chain = ["raw__eia930_responses", "raw__eia930", "aligned__series", "imputed__series",
             "features__hourly"]  # fmt: skip
    return {
        "steps": len(steps),
        "step_seconds_total": round(sum(steps.values()), 1),
        "asset_step_seconds": {k: round(v, 2) for k, v in sorted(assets.items())},
        "critical_path_s": round(sum(steps.get(k, 0.0) for k in chain), 1),
        "check_steps": len(steps) - len(assets),
        "check_step_seconds": round(sum(steps.values()) - sum(assets.values()), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--first", type=date.fromisoformat, default=date(2023, 1, 1))
    parser.add_argument("--respondents", nargs="*", default=None, help="default: all")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/scale_out.json")
    args = parser.parse_args()
    from stack_check import write_configs  # .ci/stack_check.py: free ports, state in one folder

    first, last = args.first, args.first + timedelta(days=args.days - 1)
    work = Path(tempfile.mkdtemp(prefix="scale-out-"))
    os.chmod(work, 0o711)  # PostgreSQL runs as the postgres user when we are root
    write_configs(work)
    base = yaml.safe_load((work / "configs" / "stack.yaml").read_text())
    configs: dict[str, Path] = {}
    for name, data in (("celery_1", "w1"), ("celery_2", "w2")):
        config = dict(base, start=first.isoformat(), end=last.isoformat())
        config["data_dir"] = f"s3://energy-assets/{data}"
        config["sources"] = dict(base["sources"], respondents=args.respondents)
        configs[name] = work / "configs" / f"{name}.yaml"
        configs[name].write_text(yaml.safe_dump(config, sort_keys=False))
    local = yaml.safe_load((work / "configs" / "in_process.yaml").read_text())
    local.update(start=first.isoformat(), end=last.isoformat())
    local["sources"] = dict(local["sources"], respondents=args.respondents)
    configs["in_process"] = work / "configs" / "in_process.yaml"
    configs["in_process"].write_text(yaml.safe_dump(local, sort_keys=False))
    who = ", ".join(args.respondents) if args.respondents else "all balancing authorities"
    print(f"{args.days} days {first}..{last}, {who}, layers {' '.join(LAYERS)}; work dir {work}")

    results: dict[str, dict] = {}
    try:
        busy0, cli0 = machine_busy(), resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = cli(configs["in_process"], first, last)
        busy1, cli1 = machine_busy(), resource.getrusage(resource.RUSAGE_CHILDREN)
        ours = cli1.ru_utime + cli1.ru_stime - cli0.ru_utime - cli0.ru_stime
        results["in_process"] = {"wall_s": round(wall, 1), "cpu_s": {
            "CLI (runs every step)": round(ours, 1),
            "other sessions on the machine": round(max(busy1 - busy0 - ours, 0.0), 1),
            "capacity (cores x wall)": round(os.cpu_count() * wall, 1)}}  # fmt: skip
        results["in_process"].update(step_profile(configs["in_process"]))
        print(f"in-process:        {results['in_process']['wall_s']:7.1f} s\n"
              f"  CPU seconds: {results['in_process']['cpu_s']}")  # fmt: skip
        for workers in (1, 2):
            name = f"celery_{workers}"
            stack(configs[name], "up", "--workers", str(workers))
            env_file = work / "state" / "stack.env"
            for line in env_file.read_text().splitlines():
                key, _, value = line.partition("=")
                os.environ[key] = value
            state = work / "state"
            before, busy0 = stack_cpu(state), machine_busy()
            cli0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            wall = cli(configs[name], first, last)
            cli1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            after, busy1 = stack_cpu(state), machine_busy()
            cpu = {k: round(after[k] - before[k], 1) for k in after}
            cpu["CLI (orchestrator)"] = round(
                cli1.ru_utime + cli1.ru_stime - cli0.ru_utime - cli0.ru_stime, 1
            )
            ours = sum(cpu.values())
            cpu["other sessions on the machine"] = round(max(busy1 - busy0 - ours, 0.0), 1)
            cpu["capacity (cores x wall)"] = round(os.cpu_count() * wall, 1)
            results[name] = {"wall_s": round(wall, 1), "workers": workers, "cpu_s": cpu}
            results[name].update(step_profile(configs[name]))
            profile = results[name]
            busy = profile["step_seconds_total"] / (wall * workers)
            results[name]["worker_busy_share"] = round(busy, 3)
            print(f"celery, {workers} worker(s): {wall:7.1f} s  ({profile['steps']} steps, "
                  f"{profile['step_seconds_total']:.1f} s inside steps, workers busy "
                  f"{busy:.0%} of the wall time)\n  CPU seconds: {cpu}")  # fmt: skip
    finally:
        stack(configs["celery_1"], "down")
    one, two = results["celery_1"]["wall_s"], results["celery_2"]["wall_s"]
    results["ratio_1_over_2_workers"] = round(one / two, 3)
    results["ratio_in_process_over_2_workers"] = round(results["in_process"]["wall_s"] / two, 3)
    print(f"1 worker / 2 workers: {one / two:.2f}x (target >= 1.6); "
          f"in-process / 2 workers: {results['in_process']['wall_s'] / two:.2f}x")  # fmt: skip
    print(f"critical path of asset steps (2 workers): {results['celery_2']['critical_path_s']} s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"days": args.days, "respondents": args.respondents,
                                     **results}, indent=2))  # fmt: skip
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
