"""Thin asset definitions per layer: load inputs, call the pure core, return frames."""

from dagster import AssetsDefinition

from energy_assets.assets.aligned import aligned_asset
from energy_assets.assets.features import features_hourly
from energy_assets.assets.forecast import FORECAST_ASSETS, FORECAST_CHECKS
from energy_assets.assets.imputed import imputed_series
from energy_assets.assets.ml import ML_CHECKS, context_days_for, ml_assets
from energy_assets.assets.raw import registered_raw_assets
from energy_assets.assets.reconciled import reconciled_series
from energy_assets.resources import PipelineResource
from energy_assets.sources.registry import SOURCES


def all_assets(pipeline: PipelineResource | None = None) -> list[AssetsDefinition]:
    """Every asset; the ML dataset's context window follows the pipeline settings. The raw
    assets and the inputs of aligned/series follow the source registry as it is now."""
    days = context_days_for(pipeline or PipelineResource())
    return [
        *registered_raw_assets(),
        aligned_asset(list(SOURCES)),
        imputed_series,
        reconciled_series,
        features_hourly,
        *ml_assets(*days),
        *FORECAST_ASSETS,
    ]


ALL_ASSETS = all_assets()
HAND_WRITTEN_CHECKS = [*ML_CHECKS, *FORECAST_CHECKS]
