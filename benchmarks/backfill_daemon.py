"""Benchmark: a 30-day backfill through the Dagster daemon, one run per partition vs batched runs.

Both variants launch the same asset backfill (the raw layer by default: 3 responses + 3 parsed
assets, offline stand-in, two balancing authorities) through GraphQL `launchPartitionBackfill`,
exactly what the UI's "Materialize -> Launch backfill" sends, on a fresh temporary instance with
an unmodified `dagster-webserver` + `dagster-daemon` (30 s backfill loop, 5 s run queue, the
project's default executor and dagster.yaml, i.e. what `energy-assets ui` writes):

- batched:       the project's definitions (raw responses `multi_run(31)`, the rest
                 `single_run`): 30 days are one run per policy group;
- per partition: the same definitions with every asset's policy set to `multi_run(1)`, which is
                 what a backfill of assets without a policy launches: one run per day.

Wall time is measured from the launch to the backfill's terminal status. For reference the same
range is also run by `energy-assets backfill` (in-process, no daemon). Prints both wall times and
their ratio; writes backfill_daemon.json and a run timeline (backfill_daemon.png) to --out.

    python benchmarks/backfill_daemon.py                       # 30 days, raw layer
    python benchmarks/backfill_daemon.py --days 5 --out /tmp/b  # smoke
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from energy_assets_tests.ops.live_dagster import (  # noqa: E402
    IN_PROCESS,
    start_live_dagster,
    write_config,
)

PER_PARTITION_DEFS = '''\
"""The project's definitions with one partition per run for every asset (benchmark variant)."""
from dagster import BackfillPolicy, Definitions

from energy_assets import definitions


def _per_partition(project):
    one_day = BackfillPolicy.multi_run(1)
    return Definitions(
        assets=[a.with_attributes(backfill_policy=one_day) for a in project.assets],
        asset_checks=project.asset_checks,
        resources=project.resources,
    )


defs = _per_partition(definitions.defs)
'''

RUN_TIMES = """
query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill {
  runs { runId status startTime endTime creationTime } } } }
"""


def selected_keys(config: Path, groups: list[str]) -> list[str]:
    from energy_assets.definitions import build_definitions
    from energy_assets.settings import load_settings

    graph = build_definitions(load_settings(config)).resolve_asset_graph()
    return sorted(
        k.to_user_string()
        for k in graph.get_all_asset_keys()
        if graph.get(k).is_materializable and graph.get(k).group_name in groups
    )


def workspace_for(variant: str, folder: Path) -> Path:
    if variant == "batched":
        return REPO / "workspace.yaml"
    (folder / "per_partition_defs.py").write_text(PER_PARTITION_DEFS)
    workspace = folder / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_file:\n      relative_path: per_partition_defs.py\n"
        f"      location_name: energy_assets\n      working_directory: {folder}\n"
    )
    return workspace


def _write_run_config(folder: Path, args, days: list[str]) -> Path:
    """The run config of one variant: its own data folder and Dagster instance."""
    return write_config(
        folder / "configs" / "run.yaml",
        start=date.fromisoformat(days[0]),
        end=date.fromisoformat(days[-1]),
        respondents=args.respondents,
        data_dir=folder / "data",
        dagster_home=folder / "dagster_home",
    )


def run_variant(variant: str, args, days: list[str], root: Path) -> dict[str, Any]:
    from energy_assets.deployment import instance_config
    from energy_assets.settings import load_settings

    folder = root / variant
    config = _write_run_config(folder, args, days)
    keys = selected_keys(config, args.select)
    live = start_live_dagster(
        config,
        folder / "dagster_home",
        fast=False,
        dagster_yaml=instance_config(load_settings(config)),
        workspace=workspace_for(variant, folder),
    )
    try:
        print(f"[{variant}] server up at {live.url}; launching backfill of {len(keys)} assets "
              f"x {len(days)} days", flush=True)  # fmt: skip
        started = time.time()
        backfill_id = live.launch_asset_backfill(keys, days, run_config=IN_PROCESS, title=variant)
        final = live.wait_backfill(backfill_id, timeout_s=args.timeout)
        wall = time.time() - started
        runs = live.graphql(RUN_TIMES, {"id": backfill_id})["partitionBackfillOrError"]["runs"]
    finally:
        live.stop()
    spans = sorted(
        (r["startTime"] - started, r["endTime"] - started, r["status"])
        for r in runs
        if r["startTime"] and r["endTime"]
    )
    print(f"[{variant}] {final['status']}: {len(runs)} runs, {wall:.1f} s", flush=True)
    return {
        "variant": variant,
        "status": final["status"],
        "wall_s": round(wall, 2),
        "runs": len(runs),
        "failed_runs": sum(r["status"] != "SUCCESS" for r in runs),
        "run_seconds_sum": round(sum(end - start for start, end, _ in spans), 2),
        "run_spans_s": [[round(a, 2), round(b, 2), s] for a, b, s in spans],
        "assets": keys,
    }


def cli_baseline(args, days: list[str], root: Path) -> float:
    folder = root / "cli"
    config = _write_run_config(folder, args, days)
    command = [str(Path(sys.executable).parent / "energy-assets"), "--config", str(config)]
    command += ["backfill", "--from", days[0], "--to", days[-1], "--select", *args.select]
    started = time.time()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if done.returncode:
        raise SystemExit(f"energy-assets backfill failed:\n{done.stderr[-3000:]}")
    return time.time() - started


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    variants = results["variants"]
    fig, axes = plt.subplots(len(variants), 1, figsize=(10, 2.2 + 2.2 * len(variants)))
    end = max(v["wall_s"] for v in variants)
    for ax, v in zip(axes, variants, strict=True):
        for row, (start, stop, status) in enumerate(v["run_spans_s"]):
            color = "#3b82f6" if status == "SUCCESS" else "#dc2626"
            ax.barh(row, stop - start, left=start, height=0.8, color=color)
        ax.axvline(v["wall_s"], color="black", linestyle="--", linewidth=1)
        ax.set_xlim(0, end * 1.03)
        ax.set_ylabel("run (by start)")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(
            f"{v['variant']}: {v['runs']} runs, backfill done after {v['wall_s']:.0f} s "
            f"(runs busy {v['run_seconds_sum']:.0f} run-s)",
            fontsize=10,
        )
    axes[-1].set_xlabel("seconds since launch (dashed: backfill complete)")
    fig.suptitle(
        f"{results['days']}-day backfill through the daemon, {len(variants[0]['assets'])} assets "
        f"({', '.join(results['select'])}); per-partition / batched = {results['ratio']:.1f}x",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2024, 1, 1))
    parser.add_argument("--select", nargs="+", default=["raw"], help="asset groups (layers)")
    parser.add_argument("--respondents", nargs="+", default=["CISO", "ERCO"])
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    days = [(args.start + timedelta(days=i)).isoformat() for i in range(args.days)]
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="backfill_daemon_") as tmp:
        root = Path(tmp)
        variants = [run_variant(v, args, days, root) for v in ("per_partition", "batched")]
        cli_s = cli_baseline(args, days, root)
    per, batched = variants
    results = {
        "days": args.days,
        "first_day": days[0],
        "select": args.select,
        "respondents": args.respondents,
        "executor": "the project's (run config execution: block, in_process by default)",
        "daemon": "unmodified dagster-daemon run: 30 s backfill loop, 5 s run queue",
        "variants": variants,
        "ratio": per["wall_s"] / batched["wall_s"],
        "cli_in_process_s": round(cli_s, 2),
    }
    (args.out / "backfill_daemon.json").write_text(json.dumps(results, indent=2))
    plot(results, args.out / "backfill_daemon.png")
    print()
    print(f"{args.days}-day backfill of {', '.join(args.select)} ({len(per['assets'])} assets), "
          f"respondents {', '.join(args.respondents)}, executor {results['executor']}")  # fmt: skip
    print(f"{'variant':<16} {'status':<18} {'runs':>5} {'wall s':>8} {'run-s sum':>10}")
    for v in variants:
        print(f"{v['variant']:<16} {v['status']:<18} {v['runs']:>5} {v['wall_s']:>8.1f} "
              f"{v['run_seconds_sum']:>10.1f}")  # fmt: skip
    print(f"ratio per-partition / batched wall time: {results['ratio']:.2f}")
    print(f"same range in-process (energy-assets backfill, no daemon): {cli_s:.1f} s")
    print(f"figures: {args.out / 'backfill_daemon.json'}, plot: {args.out / 'backfill_daemon.png'}")


if __name__ == "__main__":
    main()
