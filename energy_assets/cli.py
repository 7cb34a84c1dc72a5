"""`energy-assets`: a front end to the project's Dagster jobs, from a shell.

    energy-assets run                                   every asset over the config's range
    energy-assets backfill --from A --to B [--select L] the same for another range / layers
    energy-assets backfill --refresh-provisional        re-do days whose context has arrived
    energy-assets checks --from A --to B                only the asset checks (exit 1 on failure)
    energy-assets ui [--host H] [--port P]              dagster dev on the same data and instance
    energy-assets instance                              write dagster_home/dagster.yaml, pool limits
    energy-assets worker [--name N] [--concurrency C]   a Celery worker (deployment executor celery)

`--config FILE` (or $ENERGY_ASSETS_CONFIG) may come before or after the command. Planning and
execution are Dagster's (energy_assets/orchestrate.py): the runs are runs of `main_job` on the
config's instance with the config's executor, grouped by the assets' backfill policies, so the
web UI shows them. Partitions that are up to date (same code version, same inputs) are skipped
unless `--force`. Every refusal is one `error:` line and exit code 2; a failed run ends with its
root cause and exit code 1.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path

SAY = functools.partial(print, flush=True)  # progress must show up live in piped CI logs


class Refusal(Exception):
    """A request refused before anything ran: one `error:` line, exit code 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not usage + message
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day (YYYY-MM-DD)") from None


def build_parser() -> Parser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", default=argparse.SUPPRESS, help="run config YAML (default configs/main.yaml)"
    )
    parser = Parser(prog="energy-assets", description=__doc__.split("\n\n")[0], parents=[common])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    run = sub.add_parser("run", parents=[common], help="every asset over the config's range")
    backfill = sub.add_parser("backfill", parents=[common], help="materialize a range of days")
    checks = sub.add_parser("checks", parents=[common], help="only the asset checks of a range")
    for p in (backfill, checks):
        p.add_argument("--from", dest="first", type=_day, help="first UTC day (YYYY-MM-DD)")
        p.add_argument("--to", dest="last", type=_day, help="last UTC day, included")
        p.add_argument("--select", nargs="+", help="layers or asset keys (default: all)")
    for p in (run, backfill):
        p.add_argument("--force", action="store_true", help="recompute up-to-date partitions")
        p.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    backfill.add_argument(
        "--refresh-provisional",
        action="store_true",
        help="re-materialize provisional partitions (any day, or within --from/--to) and what "
        "reads them",
    )
    ui = sub.add_parser("ui", parents=[common], help="dagster dev on the config's data")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    sub.add_parser(
        "instance",
        parents=[common],
        help="write dagster_home/dagster.yaml from the config and set the pool limits",
    )
    worker = sub.add_parser(
        "worker", parents=[common], help="a Celery worker for deployment executor celery"
    )
    worker.add_argument("--name", default=None, help="worker name (default: dagster-<pid>)")
    worker.add_argument("--concurrency", type=int, default=1, help="steps at once (processes)")
    return parser


def prepare_instance(settings, source: str | os.PathLike[str] | None = None):
    """The config's instance: dagster.yaml generated from the `deployment:` block (a
    hand-written one is used only if it agrees), DAGSTER_HOME set, pool limits applied."""
    from dagster import DagsterInstance

    from energy_assets.deployment import write_instance_yaml

    path = write_instance_yaml(settings, source)
    os.environ["DAGSTER_HOME"] = str(path.parent.resolve())
    instance = DagsterInstance.get()
    apply_pool_limits(instance)
    return instance


def start_worker(settings, args) -> int:
    """exec a Celery worker of `dagster_celery.app` with the config's broker and task options;
    steps it runs load the same run config ($ENERGY_ASSETS_CONFIG) and code."""
    from energy_assets.deployment import celery_worker_module

    if settings.deployment.kind != "production" or settings.deployment.executor != "celery":
        raise Refusal(
            "energy-assets worker serves deployment.executor celery; this config's executor is "
            f"{settings.executor_name}"
        )
    folder = Path(settings.dagster_home) / "celery"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dagster_celery_config.py").write_text(celery_worker_module(settings))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p
    )
    prepare_instance(settings, os.environ.get("ENERGY_ASSETS_CONFIG"))
    name = args.name or f"dagster-{os.getpid()}"
    command = [sys.executable, "-m", "celery", "-A", "dagster_celery.app", "worker",
               "--hostname", f"{name}@%h", "--concurrency", str(args.concurrency),
               "--prefetch-multiplier", "1", "--loglevel", "INFO", "-Q", "dagster"]  # fmt: skip
    SAY(f"energy-assets worker {name}: {' '.join(command[3:])}")
    os.execv(sys.executable, command)
    return 0  # pragma: no cover


def apply_pool_limits(instance) -> None:
    """Give each source's concurrency pool its default limit, unless one was already set
    (`dagster instance concurrency set <pool> <n>` or the UI's Concurrency page win)."""
    from energy_assets.sources.registry import SOURCES

    storage = instance.event_log_storage
    configured = storage.get_concurrency_keys()
    for spec in SOURCES.values():
        if spec.pool not in configured:
            storage.set_concurrency_slots(spec.pool, spec.pool_limit)


def _check_live_key(settings, keys) -> None:
    from energy_assets.resources import SourcesResource

    sources = SourcesResource(**settings.sources)
    fetches = any(k.path[0] == "raw" and k.path[-1].endswith("_responses") for k in keys)
    if sources.mode == "live" and fetches and not os.environ.get(sources.eia_api_key_env):
        raise Refusal(
            f"sources.mode is live but ${sources.eia_api_key_env} is not set: export your EIA "
            "API key (https://www.eia.gov/opendata/register.php) or use sources.mode: offline"
        )


def _describe(planned, say) -> None:
    from energy_assets.io.parquet import WHOLE

    for key, days in planned.targeted.items():
        span = "whole range" if days == [WHOLE] else f"{days[0]}..{days[-1]}"
        count = 0 if days == [WHOLE] else len(days)
        say(f"  {key.to_user_string():<24} {count:>5} day(s) {span}")
    for i, run in enumerate(planned.runs, start=1):
        names = ", ".join(k.to_user_string() for k in run.assets) or f"{len(run.checks)} checks"
        say(f"  run {i}: {run.span} ({len(run.days)} d): {names}")


def named_with_days(entries: Sequence[str]) -> list[str]:
    """`asset:check@day` entries as `asset:check (day)` or `asset:check (first..last, n days)`."""
    days: dict[str, list[str]] = {}
    for entry in entries:
        name, _, day = entry.partition("@")
        days.setdefault(name, [])
        if day:
            days[name].append(day)
    out = []
    for name, seen in sorted(days.items()):
        seen = sorted(set(seen))
        if not seen:
            out.append(name)
        elif len(seen) == 1:
            out.append(f"{name} ({seen[0]})")
        else:
            out.append(f"{name} ({seen[0]}..{seen[-1]}, {len(seen)} days)")
    return out


def _summary(settings, outcomes, seconds: float, skipped: int) -> str:
    lines = [
        "",
        f"Done in {seconds:.1f} s. Parquet files: {settings.data_dir}/<asset key>/<day>.parquet",
        f"Dagster instance (runs, materializations, checks): {settings.dagster_home}",
        "",
        f"{'run':<34} {'days':>5} {'partitions':>10} {'rows':>12} {'MiB':>8} {'s':>7}",
    ]
    for o in outcomes:
        lines.append(
            f"{o.run.label + ' ' + (o.run.days[0] + '..' if o.run.days else '(whole)'):<34} "
            f"{len(o.run.days):>5} "
            f"{o.materialized:>10} {o.rows:>12,} {o.bytes_written / 2**20:>8.2f} {o.seconds:>7.1f}"
        )
    if skipped:
        lines.append(f"Skipped {skipped} partition(s) already up to date (--force recomputes).")
    failed = named_with_days([c for o in outcomes for c in o.checks_failed])
    warned = named_with_days([c for o in outcomes for c in o.checks_warned])
    lines.append("")
    lines.append(
        f"Failed blocking checks: {', '.join(failed)}" if failed else "All blocking checks passed."
    )
    if warned:
        lines.append(f"Warnings (non-blocking checks that failed): {', '.join(warned[:20])}"
                     + (f" ... ({len(warned)} in all)" if len(warned) > 20 else ""))  # fmt: skip
    lines.append("Open the UI on the same data: energy-assets ui")
    return "\n".join(lines)


def execute(settings, args, say=SAY) -> int:
    """Plan and launch; returns the exit code."""
    from energy_assets import orchestrate as o
    from energy_assets.automation import build_automation
    from energy_assets.definitions import build_definitions, freshness_selection
    from energy_assets.deployment import data_root

    instance = prepare_instance(settings, os.environ.get("ENERGY_ASSETS_CONFIG"))
    data = data_root(settings)
    graph = build_definitions(settings).resolve_asset_graph()
    freshness = freshness_selection(build_automation(settings))
    o.fail_dead_runs(instance, say)
    keys = o.select(graph, getattr(args, "select", None))
    first = getattr(args, "first", None) or settings.start
    last = getattr(args, "last", None) or settings.end
    refresh = getattr(args, "refresh_provisional", False)
    if not refresh or getattr(args, "first", None) or getattr(args, "last", None):
        o.check_dates(first, last)
    if args.command == "checks":
        excluded = freshness.resolve_checks(graph) if freshness is not None else set()
        planned = o.checks_plan(graph, data, keys, o.days_of(first, last), excluded)
    else:
        _check_live_key(settings, keys)
        if refresh:
            targets, span = o.refresh_targets(graph, instance, data, keys)
            if getattr(args, "first", None) or getattr(args, "last", None):
                window = set(o.days_of(first, last))
                targets = {k: v & window for k, v in targets.items()}
                span = sorted(set(span) & window)
            if not span:
                say("No provisional partitions: nothing to refresh.")
                return 0
            first, last = date.fromisoformat(span[0]), date.fromisoformat(span[-1])
            # only partitions whose missing context has arrived (or whose inputs changed) rerun
            planned = o.plan(graph, instance, data, keys, span, args.force, only_days=targets)
        else:
            planned = o.plan(graph, instance, data, keys, o.days_of(first, last), args.force)
    skipped = sum(planned.up_to_date.values())
    say(
        f"energy-assets {args.command}: {first}..{last}, sources="
        f"{settings.sources.get('mode', 'offline')}/{settings.sources.get('world', 'synthetic')}"
        f", executor={settings.executor_name}, data={settings.data_dir}"
    )
    say(
        f"Plan: {planned.partition_steps} partition-step(s) in {len(planned.runs)} run(s)"
        + (f"; {skipped} partition(s) up to date, skipped" if skipped else "")
    )
    if getattr(args, "dry_run", False):
        _describe(planned, say)
        return 0
    if args.command == "checks" and planned.not_stored and not any(r.days for r in planned.runs):
        print(
            f"error: no stored partition of {len(planned.not_stored)} selected asset(s) in "
            f"{first}..{last}: nothing to check; materialize them first "
            f"(energy-assets backfill --from {first} --to {last})",
            file=sys.stderr,
        )
        return 1
    o.refuse_overlap(instance, planned)
    started = time.perf_counter()
    outcomes = []
    done, total = 0, max(planned.partition_steps, 1)
    for index, run in enumerate(planned.runs, start=1):
        outcome = o.launch(run, instance, launched_by="cli", say=say)
        outcomes.append(outcome)
        done += run.steps
        elapsed = time.perf_counter() - started
        rate = done / max(elapsed, 1e-9)
        eta = (total - done) / rate if rate else 0.0
        say(
            f"[{index}/{len(planned.runs)}] {run.label:<22} {run.span}  "
            f"{done}/{total} partition-steps  {rate:5.2f}/s  ETA {eta:4.0f} s  "
            f"{outcome.rows:>10,} rows  {outcome.seconds:6.1f} s"
            + (
                f"  FAILED CHECKS: {', '.join(named_with_days(outcome.checks_failed))}"
                if outcome.checks_failed
                else ""
            )
        )
        if not outcome.success and not (args.command == "checks" and outcome.checks_failed):
            print(
                f"error: run {outcome.run_id} ({run.label} {run.span}) "
                f"failed: {outcome.error}\nStored partitions are kept; fix the cause and re-run "
                "the same command (up-to-date partitions are skipped). The run's full log: "
                f"energy-assets ui, Runs, {outcome.run_id}.",
                file=sys.stderr,
            )
            return 1
    say(_summary(settings, outcomes, time.perf_counter() - started, skipped))
    failed = any(o_.checks_failed for o_ in outcomes)
    if args.command == "checks":
        if planned.not_stored:
            say("NOT STORED (a check of absent data cannot pass): " + "; ".join(
                f"{k.to_user_string()} {v[0]}..{v[-1]} ({len(v)})"
                for k, v in planned.not_stored.items()))  # fmt: skip
            return 1
        return 1 if failed else 0
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from energy_assets.settings import CONFIG_ENV, SettingsError, load_settings

    args = build_parser().parse_args(argv)
    config = getattr(args, "config", None)
    try:
        settings = load_settings(config)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if config:
        # every process of the run (executor children, the UI's code server) loads this file
        os.environ[CONFIG_ENV] = str(Path(config).resolve())

    from energy_assets.deployment import InstanceConflict
    from energy_assets.orchestrate import PlanError

    try:
        if args.command == "instance":
            instance = prepare_instance(settings, os.environ.get(CONFIG_ENV))
            print(f"DAGSTER_HOME={instance.root_directory}")
            return 0
        if args.command == "worker":
            return start_worker(settings, args)
    except (InstanceConflict, Refusal) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    if args.command == "ui":
        try:
            prepare_instance(settings, os.environ.get(CONFIG_ENV))
        except InstanceConflict as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        root = Path(__file__).resolve().parents[1]
        dagster = [sys.executable, "-m", "dagster", "dev", "-w", str(root / "workspace.yaml"),
                   "--host", args.host, "--port", str(args.port)]  # fmt: skip
        os.execv(sys.executable, dagster)

    try:
        return execute(settings, args)
    except (PlanError, Refusal, InstanceConflict) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
