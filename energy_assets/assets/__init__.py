"""Thin asset definitions per layer: load inputs, call the pure core, return frames."""

from dagster import AssetsDefinition

from energy_assets.assets.aligned import aligned_series
from energy_assets.assets.features import features_hourly
from energy_assets.assets.forecast import FORECAST_ASSETS, FORECAST_CHECKS
from energy_assets.assets.imputed import imputed_series
from energy_assets.assets.ml import ML_CHECKS, context_days_for, ml_assets
from energy_assets.assets.raw import RAW_ASSETS
from energy_assets.assets.reconciled import reconciled_series
from energy_assets.resources import PipelineResource


def all_assets(pipeline: PipelineResource | None = None) -> list[AssetsDefinition]:
    """Every asset; the ML dataset's context window follows the pipeline settings."""
    days = context_days_for(pipeline or PipelineResource())
    return [
        *RAW_ASSETS,
        aligned_series,
        imputed_series,
        reconciled_series,
        features_hourly,
        *ml_assets(*days),
        *FORECAST_ASSETS,
    ]


ALL_ASSETS = all_assets()
HAND_WRITTEN_CHECKS = [*ML_CHECKS, *FORECAST_CHECKS]
