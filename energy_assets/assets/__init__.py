"""Thin asset definitions per layer: load inputs, call the pure core, return frames."""

from energy_assets.assets.aligned import aligned_series
from energy_assets.assets.features import features_hourly
from energy_assets.assets.imputed import imputed_series
from energy_assets.assets.ml import ML_CHECKS, ml_dataset, ml_ring_segments
from energy_assets.assets.raw import RAW_ASSETS

ALL_ASSETS = [*RAW_ASSETS, aligned_series, imputed_series, features_hourly, ml_dataset,
              ml_ring_segments]  # fmt: skip
HAND_WRITTEN_CHECKS = [*ML_CHECKS]
