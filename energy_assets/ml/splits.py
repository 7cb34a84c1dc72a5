"""Train/validation/test split by forecast origin in time, with no target overlap.

What belongs here: turning split dates into positions on the hourly grid, labelling forecast
origins, and the leak check. Nothing about values or statistics.

A forecast origin o (position on the hourly grid) has context [o - context_length, o) and
target [o, o + horizon). With boundaries T_val < T_test (positions):
- train if o + horizon <= T_val,
- val   if T_val <= o and o + horizon <= T_test,
- test  if T_test <= o and o + horizon <= n_steps,
- otherwise the window straddles a boundary and is dropped.
So every target hour belongs to exactly one split, and the last training origin sits at least
`horizon` hours before the first validation origin: that gap of `horizon` is what keeps the
last training targets out of the validation period. Contexts may reach back into an earlier
split (the model may read the past), targets never do.

Boundaries are whole UTC days: explicit `val_start_utc` / `test_start_utc`, or, when absent,
fractions of the run's range rounded down to midnight. Fractions move when the range moves, so
production runs should set the dates.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import polars as pl

SPLITS = ("train", "val", "test")
SPLIT_DTYPE = pl.Enum(list(SPLITS))
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class SplitBounds:
    """Split boundaries as grid positions (hours since the run start) and as UTC instants."""

    val_start_t: int
    test_start_t: int
    n_steps: int
    val_start_utc: str
    test_start_utc: str
    gap_hours: int

    def to_dict(self) -> dict[str, int | str]:
        return asdict(self)


def _floor_day(ts: datetime) -> datetime:
    return ts.replace(hour=0, minute=0, second=0, microsecond=0)


def resolve_split_bounds(
    start_utc: datetime,
    n_steps: int,
    *,
    horizon: int,
    val_start_utc: datetime | None,
    test_start_utc: datetime | None,
    train_fraction: float,
    val_fraction: float,
) -> SplitBounds:
    """Place T_val and T_test on the grid that starts at `start_utc` with `n_steps` hours."""
    if val_start_utc is None:
        val_start_utc = _floor_day(start_utc + HOUR * int(n_steps * train_fraction))
    if test_start_utc is None:
        test_start_utc = _floor_day(
            start_utc + HOUR * int(n_steps * (train_fraction + val_fraction))
        )
    val_t = int((val_start_utc - start_utc) / HOUR)
    test_t = int((test_start_utc - start_utc) / HOUR)
    if not 0 < val_t < test_t < n_steps:
        raise ValueError(
            f"split boundaries val_start_utc={val_start_utc.isoformat()} and "
            f"test_start_utc={test_start_utc.isoformat()} must fall strictly inside the feature "
            f"range [{start_utc.isoformat()}, {(start_utc + HOUR * n_steps).isoformat()}) in "
            "that order; pass a longer range or other dates in DatasetConfig"
        )
    return SplitBounds(
        val_start_t=val_t,
        test_start_t=test_t,
        n_steps=n_steps,
        val_start_utc=val_start_utc.isoformat(),
        test_start_utc=test_start_utc.isoformat(),
        gap_hours=horizon,
    )


def split_of_origin(origin_t: pl.Expr, horizon: int, bounds: SplitBounds) -> pl.Expr:
    """Split label (Enum train/val/test) of each origin; null when the target straddles a bound."""
    end = origin_t + horizon
    return (
        pl.when(end <= bounds.val_start_t)
        .then(pl.lit("train"))
        .when((origin_t >= bounds.val_start_t) & (end <= bounds.test_start_t))
        .then(pl.lit("val"))
        .when((origin_t >= bounds.test_start_t) & (end <= bounds.n_steps))
        .then(pl.lit("test"))
        .otherwise(pl.lit(None))
        .cast(SPLIT_DTYPE)
    )


def assert_no_target_leak(windows: pl.DataFrame, horizon: int) -> None:
    """Raise if any target hour of one split is also a target hour of another split.

    `windows` has `origin_t` and `split`; checks, per split, the [min, max] range of target
    positions: train ends before val starts and val ends before test starts.
    """
    ranges = (
        windows.group_by("split")
        .agg(
            pl.col("origin_t").min().alias("first"),
            (pl.col("origin_t").max() + horizon - 1).alias("last"),
        )
        .sort("split")
    )
    rows = {r["split"]: r for r in ranges.iter_rows(named=True)}
    present = [s for s in SPLITS if s in rows]
    for earlier, later in itertools.pairwise(present):
        if rows[earlier]["last"] >= rows[later]["first"]:
            raise AssertionError(
                f"{earlier} targets reach position {rows[earlier]['last']} but {later} "
                f"targets start at {rows[later]['first']}: splits overlap"
            )
