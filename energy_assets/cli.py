"""`energy-assets`: the main job, ranged backfills, checks-only runs and the web UI, from a shell.

    energy-assets run [--config configs/main.yaml]        every asset for the configured range
    energy-assets backfill --from A --to B [--select raw]  the same for another range / layers
    energy-assets checks --from A --to B                   only the asset checks (exit 1 on failure)
    energy-assets ui                                       dagster dev on the same data and instance

Runs execute in-process on the Dagster instance in the config's `dagster_home` (SQLite by default;
a dagster.yaml there can point at Postgres), one run per layer and chunk of days, honouring each
asset's backfill policy, so the web UI shows the same runs and materializations afterwards.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

DEFAULT_DAGSTER_YAML = """\
# Written by energy-assets on first use. For production, replace storage with Postgres
# (dagster-postgres) and add a run launcher / executor; see the README.
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 2
"""


SAY = functools.partial(print, flush=True)  # progress must show up live in piped CI logs


@dataclass
class Step:
    layer: str
    keys: list[str]
    days: list[date]
    seconds: float = 0.0
    rows: int = 0
    bytes_written: int = 0
    checks_failed: list[str] = field(default_factory=list)
    checks_warned: list[str] = field(default_factory=list)


def prepare_instance(dagster_home: str):
    from dagster import DagsterInstance

    home = Path(dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DEFAULT_DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home.resolve())
    instance = DagsterInstance.get()
    apply_pool_limits(instance)
    return instance


def apply_pool_limits(instance) -> None:
    """Give each source's concurrency pool its default limit, unless one was already set
    (`dagster instance concurrency set <pool> <n>` or the UI's Concurrency page win)."""
    from energy_assets.sources.registry import SOURCES

    storage = instance.event_log_storage
    configured = storage.get_concurrency_keys()
    for spec in SOURCES.values():
        if spec.pool not in configured:
            storage.set_concurrency_slots(spec.pool, spec.pool_limit)


def layers_of(defs) -> list[tuple[str, list]]:
    """Asset keys grouped by layer, in dependency order of the layers."""
    from dagster import AssetKey

    graph = defs.resolve_asset_graph()
    order = ["raw", "aligned", "imputed", "features", "ml"]
    keys = sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
    toposorted = [k for level in graph.toposorted_asset_keys_by_level for k in level]
    rank = {k: i for i, k in enumerate(toposorted)}
    grouped: list[tuple[str, list[AssetKey]]] = []
    for layer in order:
        members = sorted((k for k in keys if k.path[0] == layer), key=lambda k: rank[k])
        # raw responses (rate-limited extraction) run before their parsers, in their own runs
        if layer == "raw":
            fetch = [k for k in members if k.path[-1].endswith("_responses")]
            parse = [k for k in members if k not in fetch]
            grouped += [("raw responses", fetch), ("raw parsed", parse)]
        elif members:
            grouped.append((layer, members))
    return [(name, members) for name, members in grouped if members]


def chunk_days(days: list[date], size: int | None) -> list[list[date]]:
    if not size:
        return [days]
    return [days[i : i + size] for i in range(0, len(days), size)]


def materialize_range(
    settings,
    first: date,
    last: date,
    select: Sequence[str] | None = None,
    checks_only: bool = False,
    say: Callable[[str], None] = SAY,
) -> list[Step]:
    """Materialize (or only check) every selected layer over [first, last], printing progress."""
    from dagster import AssetSelection, materialize

    from energy_assets.automation import build_automation
    from energy_assets.definitions import build_definitions, freshness_selection
    from energy_assets.partitions import days_between

    instance = prepare_instance(settings.dagster_home)
    defs = build_definitions(settings)
    freshness = freshness_selection(build_automation(settings))
    graph = defs.resolve_asset_graph()
    all_defs = [*defs.assets, *defs.asset_checks]
    days = days_between(first, last)
    steps: list[Step] = []
    plan = [
        (name, keys)
        for name, keys in layers_of(defs)
        if not select or any(name.startswith(s) or name == s for s in select)
    ]
    if not plan:
        raise SystemExit(f"--select {list(select or [])} matches no layer")
    total = sum(len(days) for _ in plan)
    done = 0
    started = time.perf_counter()
    for index, (name, keys) in enumerate(plan, start=1):
        policies = [graph.get(k).backfill_policy for k in keys]
        size = min(
            (p.max_partitions_per_run or len(days) for p in policies if p is not None),
            default=None,
        )
        for chunk in chunk_days(days, size):
            step = Step(name, [k.to_user_string() for k in keys], chunk)
            selection = AssetSelection.assets(*keys)
            if checks_only:
                selection = AssetSelection.checks_for_assets(*keys)
            if freshness is not None:
                selection = selection - freshness
            tick = time.perf_counter()
            result = materialize(
                all_defs,
                selection=selection,
                instance=instance,
                resources=defs.resources,
                tags={
                    "dagster/asset_partition_range_start": chunk[0].isoformat(),
                    "dagster/asset_partition_range_end": chunk[-1].isoformat(),
                    "energy_assets/launched_by": "cli",
                },
                raise_on_error=False,
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            )
            step.seconds = time.perf_counter() - tick
            # A ranged run records one materialization per partition, each carrying the
            # output's metadata for the whole range: count each asset once.
            per_asset = {
                e.asset_key: e.step_materialization_data.materialization.metadata
                for e in result.get_asset_materialization_events()
            }
            for metadata in per_asset.values():
                step.rows += int(getattr(metadata.get("dagster/row_count"), "value", 0) or 0)
                step.bytes_written += int(getattr(metadata.get("bytes_written"), "value", 0) or 0)
            for evaluation in result.get_asset_check_evaluations():
                if evaluation.passed:
                    continue
                name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
                if evaluation.severity.value == "ERROR":
                    step.checks_failed.append(name)
                else:
                    step.checks_warned.append(name)
            steps.append(step)
            done += len(chunk)
            rate = done / max(time.perf_counter() - started, 1e-9)
            eta = (total - done) / rate if rate else 0.0
            say(
                f"[{index}/{len(plan)}] {name:<14} {chunk[0]}..{chunk[-1]}  "
                f"{done}/{total} partition-steps  {rate:5.2f}/s  ETA {eta:4.0f} s  "
                f"{step.rows:>10,} rows  "
                f"{step.seconds:6.1f} s"
                + (
                    f"  FAILED CHECKS: {', '.join(step.checks_failed)}"
                    if step.checks_failed
                    else ""
                )
            )
            if not result.success and checks_only and step.checks_failed:
                continue  # report every failing check of every layer, then exit 1
            if not result.success:
                failure = next(
                    (e for e in result.all_events if e.event_type_value == "STEP_FAILURE"), None
                )
                detail = failure.event_specific_data.error.message if failure else "see the UI"
                raise SystemExit(
                    f"{name} failed for {chunk[0]}..{chunk[-1]} (run {result.run_id}): "
                    f"{detail.strip()}\nStored partitions of earlier layers are kept; fix the "
                    "cause and re-run the same command."
                )
    return steps


def summary(settings, steps: list[Step], seconds: float) -> str:
    lines = [
        "",
        f"Done in {seconds:.1f} s. Parquet files: {settings.data_dir}/<asset key>/<day>.parquet",
        f"Dagster instance (runs, materializations, checks): {settings.dagster_home}",
        "",
        f"{'layer':<14} {'assets':<60} {'days':>5} {'rows':>12} {'MiB':>8} {'s':>7}",
    ]
    for s in steps:
        lines.append(
            f"{s.layer:<14} {', '.join(s.keys)[:60]:<60} {len(s.days):>5} {s.rows:>12,} "
            f"{s.bytes_written / 2**20:>8.2f} {s.seconds:>7.1f}"
        )
    failed = sorted({c for s in steps for c in s.checks_failed})
    warned = sorted({c for s in steps for c in s.checks_warned})
    lines.append("")
    lines.append(
        f"Failed blocking checks: {', '.join(failed)}" if failed else "All blocking checks passed."
    )
    if warned:
        lines.append(f"Warnings (non-blocking checks that failed): {', '.join(warned)}")
    lines.append("Open the UI on the same data: energy-assets ui")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from energy_assets.settings import SettingsError, load_settings

    parser = argparse.ArgumentParser(prog="energy-assets", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="run config YAML (default configs/main.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="materialize every asset for the config's date range")
    for name in ("backfill", "checks"):
        p = sub.add_parser(name, help=f"{name} a date range")
        p.add_argument("--from", dest="first", type=date.fromisoformat)
        p.add_argument("--to", dest="last", type=date.fromisoformat)
        p.add_argument("--select", nargs="*", help="layers: raw, aligned, imputed, features, ml")
    sub.add_parser("ui", help="start dagster dev on the config's data and instance")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.config:
        os.environ["ENERGY_ASSETS_CONFIG"] = str(Path(args.config).resolve())

    if args.command == "ui":
        prepare_instance(settings.dagster_home)
        root = Path(__file__).resolve().parents[1]
        dagster = [sys.executable, "-m", "dagster", "dev", "-w", str(root / "workspace.yaml")]
        os.execv(sys.executable, dagster)

    first = getattr(args, "first", None) or settings.start
    last = getattr(args, "last", None) or settings.end
    select = getattr(args, "select", None)
    print(
        f"energy-assets {args.command}: {first}..{last}, sources="
        f"{settings.sources.get('mode', 'offline')}/{settings.sources.get('world', 'synthetic')}"
        f", data={settings.data_dir}"
    )
    started = time.perf_counter()
    try:
        steps = materialize_range(
            settings, first, last, select=select, checks_only=args.command == "checks"
        )
    except SystemExit as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(summary(settings, steps, time.perf_counter() - started))
    failed_blocking = [c for s in steps for c in s.checks_failed]
    return 1 if (args.command == "checks" and failed_blocking) else 0


if __name__ == "__main__":
    sys.exit(main())
