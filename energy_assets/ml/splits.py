"""Train/validation/test split by forecast origin in time, with no target overlap.

What belongs here: turning split dates into positions on the hourly grid, labelling forecast
origins, and the leak check. Nothing about values or statistics.

A forecast origin o (position on the hourly grid) has context [o - context_length, o) and
target [o, o + horizon). Positions are hours since `GRID_EPOCH` (the first daily partition,
2015-07-01 00:00 UTC), the same for every run and every day, so a day's rows and origins do
not depend on which other days were built with it. With boundaries
T_train <= T_val < T_test < T_end (positions):
- train if T_train <= o and o + horizon <= T_val,
- val   if T_val <= o and o + horizon <= T_test,
- test  if T_test <= o and o + horizon <= T_end (no end: every later origin),
- otherwise (before T_train, or straddling a boundary) the origin belongs to no split.
So every target hour belongs to at most one split, and the last training origin sits at least
`horizon` hours before the first validation origin: that gap of `horizon` is what keeps the
last training targets out of the validation period. Contexts may reach back into an earlier
split (the model may read the past), targets never do.

Boundaries are whole UTC days: explicit dates (what the assets use: the pipeline config's
`train_start_utc`, `val_start_utc`, `test_start_utc`, `test_end_utc`), or, for a one-off build
over a frame, fractions of that frame's range rounded down to midnight.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import polars as pl

SPLITS = ("train", "val", "test")
SPLIT_DTYPE = pl.Enum(list(SPLITS))
HOUR = timedelta(hours=1)
GRID_EPOCH = datetime(2015, 7, 1, tzinfo=UTC)
"""Position 0 of the hourly grid: the first daily partition (EIA-930 begins)."""


def position(moment: datetime) -> int:
    """Hours from `GRID_EPOCH` to `moment` (a whole UTC hour)."""
    return int((moment - GRID_EPOCH) / HOUR)


@dataclass(frozen=True)
class SplitBounds:
    """Split boundaries as grid positions (hours since GRID_EPOCH) and as UTC instants."""

    train_start_t: int
    val_start_t: int
    test_start_t: int
    test_end_t: int | None
    train_start_utc: str
    val_start_utc: str
    test_start_utc: str
    test_end_utc: str | None
    gap_hours: int

    def to_dict(self) -> dict[str, int | str | None]:
        return asdict(self)


def _floor_day(ts: datetime) -> datetime:
    return ts.replace(hour=0, minute=0, second=0, microsecond=0)


def split_bounds(
    *,
    horizon: int,
    train_start_utc: datetime,
    val_start_utc: datetime,
    test_start_utc: datetime,
    test_end_utc: datetime | None = None,
) -> SplitBounds:
    """Boundaries from explicit dates; refuses an order that would let splits overlap."""
    ordered = [train_start_utc, val_start_utc, test_start_utc]
    if test_end_utc is not None:
        ordered.append(test_end_utc)
    if not all(a < b for a, b in itertools.pairwise(ordered)) or train_start_utc < GRID_EPOCH:
        raise ValueError(
            "split dates must satisfy "
            f"{GRID_EPOCH.date()} <= train_start_utc < val_start_utc < test_start_utc "
            "(< test_end_utc); got "
            + ", ".join(d.isoformat() for d in ordered)
            + ": fix pipeline.train_start_utc / val_start_utc / test_start_utc / test_end_utc"
        )
    return SplitBounds(
        train_start_t=position(train_start_utc),
        val_start_t=position(val_start_utc),
        test_start_t=position(test_start_utc),
        test_end_t=None if test_end_utc is None else position(test_end_utc),
        train_start_utc=train_start_utc.isoformat(),
        val_start_utc=val_start_utc.isoformat(),
        test_start_utc=test_start_utc.isoformat(),
        test_end_utc=None if test_end_utc is None else test_end_utc.isoformat(),
        gap_hours=horizon,
    )


def resolve_split_bounds(
    start_utc: datetime,
    n_steps: int,
    *,
    horizon: int,
    train_start_utc: datetime | None = None,
    val_start_utc: datetime | None,
    test_start_utc: datetime | None,
    test_end_utc: datetime | None = None,
    train_fraction: float,
    val_fraction: float,
) -> SplitBounds:
    """Boundaries for a frame covering [start_utc, start_utc + n_steps h): the dates given,
    else fractions of that range; each must fall inside it."""
    end_utc = start_utc + HOUR * n_steps
    if val_start_utc is None:
        val_start_utc = _floor_day(start_utc + HOUR * int(n_steps * train_fraction))
    if test_start_utc is None:
        test_start_utc = _floor_day(
            start_utc + HOUR * int(n_steps * (train_fraction + val_fraction))
        )
    if not start_utc < val_start_utc < test_start_utc < end_utc:
        raise ValueError(
            f"split boundaries val_start_utc={val_start_utc.isoformat()} and "
            f"test_start_utc={test_start_utc.isoformat()} must fall strictly inside the feature "
            f"range [{start_utc.isoformat()}, {end_utc.isoformat()}) in "
            "that order; pass a longer range or other dates in DatasetConfig"
        )
    return split_bounds(
        horizon=horizon,
        train_start_utc=max(train_start_utc or start_utc, GRID_EPOCH),
        val_start_utc=val_start_utc,
        test_start_utc=test_start_utc,
        test_end_utc=test_end_utc,
    )


def split_of_origin(origin_t: pl.Expr, horizon: int, bounds: SplitBounds) -> pl.Expr:
    """Split label (Enum train/val/test) of each origin; null when the target straddles a bound."""
    end = origin_t + horizon
    test_ends = pl.lit(True) if bounds.test_end_t is None else end <= bounds.test_end_t
    return (
        pl.when((origin_t >= bounds.train_start_t) & (end <= bounds.val_start_t))
        .then(pl.lit("train"))
        .when((origin_t >= bounds.val_start_t) & (end <= bounds.test_start_t))
        .then(pl.lit("val"))
        .when((origin_t >= bounds.test_start_t) & test_ends)
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
