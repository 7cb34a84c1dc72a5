"""Synthetic hourly series for the transform tests: smooth daily/weekly demand with noise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from energy_assets.transform.grid import TIME

START = datetime(2024, 1, 1, tzinfo=UTC)


def demand_matrix(n_hours: int, n_series: int = 1, seed: int = 0) -> np.ndarray:
    """Demand-like matrix (hours x series): daily and weekly cycles, slow drift, small noise.

    Float noise keeps exact repeats (IDENTICAL_RUN) out of clean data.
    """
    rng = np.random.default_rng(seed)
    h = np.arange(n_hours)[:, None]
    scale = rng.uniform(800, 5000, size=(1, n_series))
    daily = 0.25 * np.sin(2 * np.pi * ((h % 24) - 8) / 24)
    weekly = 0.08 * ((h // 24) % 7 < 5)
    drift = 0.05 * np.sin(2 * np.pi * h / (24 * 45) + rng.uniform(0, 6, size=(1, n_series)))
    noise = rng.normal(0, 0.004, size=(n_hours, n_series))
    return scale * (1 + daily + weekly + drift + noise)


def hours(start: datetime, n_hours: int) -> pl.Series:
    return pl.datetime_range(
        start, start + timedelta(hours=n_hours - 1), "1h", eager=True, time_zone="UTC"
    ).cast(TIME)


def long_table(
    values: dict[tuple[str, str], np.ndarray],
    start: datetime = START,
    units: str = "MW",
    source: str = "eia930",
) -> pl.DataFrame:
    """Aligned-style long rows from {(region, series): hourly values} (NaN -> null)."""
    frames = []
    for (region, series), v in values.items():
        frames.append(
            pl.DataFrame(
                {
                    "interval_start_utc": hours(start, len(v)),
                    "region": region,
                    "series": series,
                    "value": pl.Series(np.asarray(v, dtype=np.float64)).fill_nan(None),
                    "units": units,
                    "source": source,
                }
            )
        )
    return pl.concat(frames)
