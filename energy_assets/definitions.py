"""The one Definitions: assets, checks, resources, jobs, schedules and sensors.

Built from the run settings file ($ENERGY_ASSETS_CONFIG, else configs/main.yaml), so the web UI,
the `energy-assets` CLI and `dagster` CLI commands all see the same resources and data folder.
"""

from __future__ import annotations

import warnings

from dagster import AssetSelection, BetaWarning, Definitions, PreviewWarning, define_asset_job

# Backfill policies (beta) and partitioned asset checks (preview) are deliberate choices here.
warnings.filterwarnings("ignore", category=BetaWarning)
warnings.filterwarnings("ignore", category=PreviewWarning)

from energy_assets.assets import ALL_ASSETS, HAND_WRITTEN_CHECKS  # noqa: E402
from energy_assets.automation import build_automation  # noqa: E402
from energy_assets.checks import contract_checks  # noqa: E402
from energy_assets.contracts.tables import CONTRACTS  # noqa: E402
from energy_assets.io.parquet import ParquetIOManager  # noqa: E402
from energy_assets.resources import PipelineResource, SourcesResource  # noqa: E402
from energy_assets.settings import Settings, load_settings  # noqa: E402


def freshness_selection(automation) -> AssetSelection | None:
    """Freshness checks judge today's data: historical runs and CI check runs leave them out."""
    if not automation.asset_checks:
        return None
    return AssetSelection.checks(*automation.asset_checks)


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
        assets=ALL_ASSETS,
        asset_checks=[*checks, *HAND_WRITTEN_CHECKS, *automation.asset_checks],
        jobs=[main_job, checks_only, *automation.jobs],
        schedules=automation.schedules,
        sensors=automation.sensors,
        resources={
            "io_manager": ParquetIOManager(base_dir=settings.data_dir),
            "sources": SourcesResource(**settings.sources),
            "pipeline": PipelineResource(**settings.pipeline),
        },
    )


defs = build_definitions(load_settings())
