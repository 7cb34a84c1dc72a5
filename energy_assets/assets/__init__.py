"""Thin asset definitions per layer: load inputs, call the pure core, return frames."""

from energy_assets.assets.raw import RAW_ASSETS

ALL_ASSETS = [*RAW_ASSETS]
