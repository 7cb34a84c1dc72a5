"""Synthetic features frames for the ML tests: small, seeded, with holes and imputed hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from energy_assets.ml.dataset import FeatureSpec

SPEC = FeatureSpec(
    target="demand_mw",
    known_in_advance=["hour_sin", "hour_cos"],
    past_only=["temperature_c"],
)
START = datetime(2024, 1, 1, tzinfo=UTC)


def synthetic_features(
    regions: list[str],
    n_hours: int,
    *,
    seed: int = 0,
    start: datetime = START,
    imputed_fraction: float = 0.1,
    drop_fraction: float = 0.0,
) -> pl.DataFrame:
    """Wide features frame: a daily demand cycle per region plus noise.

    Imputed hours (is_observed False) get a deliberately extreme value (10x the region's level)
    so that any statistic which counted them would be visibly off; `drop_fraction` of the rows
    are removed to create holes in the grid.
    """
    rng = np.random.default_rng(seed)
    r = len(regions)
    t = np.arange(n_hours)
    hour = (t + start.hour) % 24
    level = rng.uniform(1_000, 50_000, size=(r, 1))
    demand = level * (1 + 0.2 * np.sin(2 * np.pi * hour / 24)) + rng.normal(0, 50, (r, n_hours))
    observed = rng.random((r, n_hours)) >= imputed_fraction
    demand = np.where(observed, demand, 10 * level)
    temperature = 10 + 8 * np.sin(2 * np.pi * hour / 24) + rng.normal(0, 2, (r, n_hours))
    times = pl.datetime_range(
        start, start + timedelta(hours=n_hours - 1), "1h", eager=True, time_unit="us"
    )
    frame = pl.DataFrame(
        {
            "interval_start_utc": pl.concat([times] * r),
            "region": np.repeat(np.array(regions, dtype=object), n_hours),
            "demand_mw": demand.ravel(),
            "is_observed": observed.ravel(),
            "hour_sin": np.tile(np.sin(2 * np.pi * hour / 24), r),
            "hour_cos": np.tile(np.cos(2 * np.pi * hour / 24), r),
            "temperature_c": temperature.ravel(),
        }
    ).with_columns(pl.col("interval_start_utc").dt.replace_time_zone("UTC"))
    if drop_fraction > 0:
        keep = rng.random(frame.height) >= drop_fraction
        frame = frame.filter(pl.Series(keep))
    return frame
