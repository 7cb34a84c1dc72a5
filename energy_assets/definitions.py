"""The one Definitions: assets, checks, resources, jobs, executor, schedules and sensors.

Built from the run settings file ($ENERGY_ASSETS_CONFIG, else configs/main.yaml), so the web UI,
the daemon, the `energy-assets` CLI and `dagster` CLI commands all see the same resources, data
folder, executor and code versions.

Code versions are derived, never bumped by hand (energy_assets/versions.py): the source of the
modules that compute an asset and the part of the settings that shapes its output. A changed
screen in transform/ makes `imputed/series` and what depends on it stale in the UI and in
`energy-assets backfill`, and nothing else.
"""

from __future__ import annotations

import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

from dagster import (
    AssetsDefinition,
    AssetSelection,
    BetaWarning,
    Definitions,
    PreviewWarning,
    define_asset_job,
)

# Backfill policies (beta) and partitioned asset checks (preview) are deliberate choices here.
warnings.filterwarnings("ignore", category=BetaWarning)
warnings.filterwarnings("ignore", category=PreviewWarning)

from energy_assets.assets import HAND_WRITTEN_CHECKS, all_assets  # noqa: E402
from energy_assets.automation import build_automation  # noqa: E402
from energy_assets.checks import contract_checks  # noqa: E402
from energy_assets.contracts.tables import CONTRACTS  # noqa: E402
from energy_assets.deployment import executor_for, storage_options  # noqa: E402
from energy_assets.io.parquet import ParquetIOManager  # noqa: E402
from energy_assets.resources import PipelineResource, SourcesResource  # noqa: E402
from energy_assets.settings import ProductionDeployment, Settings, load_settings  # noqa: E402
from energy_assets.versions import code_version  # noqa: E402

OPERATIONAL_SOURCE_KEYS = ("max_attempts", "base_delay_s", "caiso_min_interval_s", "shared_pacing")
"""`sources:` keys that change how politely data is fetched, not what is fetched."""


def freshness_selection(automation) -> AssetSelection | None:
    """Freshness checks judge today's data: historical runs and CI check runs leave them out."""
    if not automation.asset_checks:
        return None
    return AssetSelection.checks(*automation.asset_checks)


def pipeline_resource(settings: Settings) -> PipelineResource:
    """The `pipeline:` block with the ML split dates the file leaves out taken from its range:
    training from `start`, validation from 70 % and test from 85 % of it (whole days, each
    split at least one day), test ending the day after `end`. Fixed dates keep the frozen
    statistics and every day's split independent of which days a run covers."""
    days = (settings.end - settings.start).days + 1
    val = max(1, min(int(days * 0.7), days - 2))
    test = max(val + 1, min(int(days * 0.85), days - 1))
    derived = {
        "train_start_utc": settings.start,
        "val_start_utc": settings.start + timedelta(days=val),
        "test_start_utc": settings.start + timedelta(days=test),
        # a range too short for three splits leaves the test period open
        "test_end_utc": settings.end + timedelta(days=1) if days >= 3 else None,
    }
    given = dict(settings.pipeline)
    for name, day in derived.items():
        if given.get(name) is None and day is not None:
            given[name] = f"{day.isoformat()}T00:00:00+00:00"
    return PipelineResource(**given)


def version_config(settings: Settings, group: str) -> dict[str, Any]:
    """The settings that shape an asset group's output (they enter its code version)."""
    if group == "raw":
        sources = SourcesResource(**settings.sources).model_dump()
        return {k: v for k, v in sources.items() if k not in OPERATIONAL_SOURCE_KEYS}
    if group == "aligned":
        return {"quirks": SourcesResource(**settings.sources).carries_reporting_quirks}
    if group in ("ml", "forecast"):
        # the forecaster's knobs shape only the forecast group's outputs
        pipeline = pipeline_resource(settings).model_dump()
        return {
            k: v
            for k, v in pipeline.items()
            if (group == "forecast") or not k.startswith("forecaster_")
        }
    return {}


def versioned(assets: AssetsDefinition, settings: Settings) -> AssetsDefinition:
    module = assets.op.compute_fn.decorated_fn.__module__
    group = next(iter(assets.specs)).group_name or ""
    version = code_version(module, version_config(settings, group))
    return assets.map_asset_specs(lambda spec: spec.replace_attributes(code_version=version))


def sources_resource(settings: Settings) -> SourcesResource:
    """The sources as configured, with OASIS pacing shared by every step process of the
    deployment (Redis in production, a file lock in dagster_home locally)."""
    values = dict(settings.sources)
    if "shared_pacing" not in values:
        deployment = settings.deployment
        values["shared_pacing"] = (
            deployment.shared_limits_url
            if isinstance(deployment, ProductionDeployment)
            else str(Path(settings.dagster_home) / "pacing")
        )
    return SourcesResource(**values)


def io_manager(settings: Settings) -> ParquetIOManager:
    fixed, from_env = storage_options(settings)
    return ParquetIOManager(
        base_dir=settings.data_dir, storage_options=fixed, storage_options_env=from_env
    )


def build_definitions(settings: Settings) -> Definitions:
    checks = [contract_checks(path) for path in CONTRACTS]
    automation = build_automation(settings)
    freshness = freshness_selection(automation)
    everything = AssetSelection.all()
    all_checks = AssetSelection.all_asset_checks()
    if freshness is not None:
        everything, all_checks = everything - freshness, all_checks - freshness
    main_job = define_asset_job(
        "main_job",
        selection=everything,
        description="Every asset and its checks for the chosen partitions.",
    )
    checks_only = define_asset_job(
        "contract_checks",
        selection=all_checks,
        description="Only the asset checks, on stored partitions (for CI): run with a "
        "dagster/partition tag or a partition range.",
    )
    return Definitions(
        assets=[versioned(a, settings) for a in all_assets(pipeline_resource(settings))],
        asset_checks=[*checks, *HAND_WRITTEN_CHECKS, *automation.asset_checks],
        jobs=[main_job, checks_only, *automation.jobs],
        schedules=automation.schedules,
        sensors=automation.sensors,
        executor=executor_for(settings),
        resources={
            "io_manager": io_manager(settings),
            "sources": sources_resource(settings),
            "pipeline": pipeline_resource(settings),
        },
    )


defs = build_definitions(load_settings())
