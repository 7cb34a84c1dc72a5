"""Checks generated from a contract, as plain functions over polars frames (no Dagster here).

`check_plan(contract)` names every check a contract implies, with its severity, so the Dagster
layer can declare the checks before any data exists; `evaluate(contract, frame)` runs them and
returns one `CheckOutcome` per planned check, each failure carrying a sample of offending rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from energy_assets.contracts.core import CheckOutcome, Contract, Severity

SAMPLE_ROWS = 10


Finding = tuple[pl.DataFrame | None, dict[str, float]]
"""What a check function returns: the offending rows (None or empty when it passes) and figures."""


@dataclass(frozen=True)
class PlannedCheck:
    name: str
    severity: Severity
    description: str
    run: Callable[[Contract, pl.DataFrame], Finding]
    range_columns: tuple[str, ...] = ()
    """Set when the check must see the whole checked range at once (it compares days); it
    then gets only these columns, so long ranges stay cheap."""


def _outcome(planned: PlannedCheck, finding: Finding) -> CheckOutcome:
    offending, figures = finding
    n = 0 if offending is None else offending.height
    return CheckOutcome(
        name=planned.name,
        passed=n == 0,
        severity=planned.severity,
        description=planned.description,
        offending_rows=n,
        sample=None if offending is None or n == 0 else offending.head(SAMPLE_ROWS),
        figures=figures,
    )


def _schema(contract: Contract, frame: pl.DataFrame) -> Finding:
    problems = contract.schema_problems(frame)
    return pl.DataFrame({"problem": problems}, schema={"problem": pl.String()}), {}


def _key_unique(contract: Contract, frame: pl.DataFrame) -> Finding:
    key = list(contract.primary_key)
    dupes = frame.group_by(key).agg(pl.len().alias("copies")).filter(pl.col("copies") > 1).sort(key)
    return dupes, {"duplicate_keys": float(dupes.height)}


def _not_null(contract: Contract, frame: pl.DataFrame) -> Finding:
    required = [
        c.name for c in contract.columns if not c.nullable or c.name in contract.primary_key
    ]
    present = [c for c in required if c in frame.columns]
    if not present:
        return None, {}
    return frame.filter(pl.any_horizontal([pl.col(c).is_null() for c in present])), {}


def _bounds_check(column: str) -> Callable[[Contract, pl.DataFrame], Finding]:
    def run(contract: Contract, frame: pl.DataFrame) -> Finding:
        bounds = contract.column(column).bounds
        assert bounds is not None
        if column not in frame.columns:
            return None, {}
        value = pl.col(column)
        outside = pl.lit(False)
        if bounds.min is not None:
            outside = outside | (value < bounds.min)
        if bounds.max is not None:
            outside = outside | (value > bounds.max)
        offending = frame.filter(outside.fill_null(False))
        figures = {}
        if frame.schema[column].is_numeric() and frame[column].drop_nulls().len():
            figures = {
                "min_seen": float(frame[column].min() or 0.0),
                "max_seen": float(frame[column].max() or 0.0),
            }
        return offending, figures

    return run


def _hourly_continuity(contract: Contract, frame: pl.DataFrame) -> Finding:
    groups = list(contract.hourly_complete_by or ())
    time = contract.partition_column
    if frame.height == 0:
        return None, {}
    days = frame.select(pl.col(time).dt.truncate("1d").unique()).height
    expected = days * 24
    counts = frame.group_by(groups).agg(pl.col(time).n_unique().alias("hours_present"))
    offending = counts.filter(pl.col("hours_present") != expected).with_columns(
        pl.lit(expected).alias("hours_expected")
    )
    return offending.sort(groups), {"hours_expected_per_group": float(expected)}


def check_plan(contract: Contract, extra: list[PlannedCheck] | None = None) -> list[PlannedCheck]:
    """Every check `contract` implies, in a stable order, plus hand-written `extra` checks."""
    plan: list[PlannedCheck] = []

    def add(name: str, severity: Severity, description: str, fn, columns=()) -> None:
        plan.append(PlannedCheck(name, severity, description, fn, tuple(columns)))

    add("schema", "error", "Columns and dtypes are exactly the contract's.", _schema)
    add(
        "primary_key_unique",
        "error",
        f"No two rows share the primary key {list(contract.primary_key)}.",
        _key_unique,
    )
    add(
        "required_not_null",
        "error",
        "Key and non-nullable columns hold no nulls.",
        _not_null,
    )
    for column in contract.columns:
        if column.bounds is not None:
            b = column.bounds
            add(
                f"bounds_{column.name}",
                b.severity,
                f"{column.name} within [{b.min}, {b.max}] {column.unit or ''}".strip()
                + f". {b.why}".rstrip(". ")
                + ".",
                _bounds_check(column.name),
            )
    if contract.hourly_complete_by:
        add(
            "hourly_continuity",
            "error",
            f"Every {list(contract.hourly_complete_by)} group has all 24 hours of each day.",
            _hourly_continuity,
            columns=(*contract.hourly_complete_by, contract.partition_column),
        )
    return plan + list(extra or [])


def run_checks(
    contract: Contract, frame: pl.DataFrame, plan: list[PlannedCheck]
) -> list[CheckOutcome]:
    """Run the given checks; a schema failure still lets the other checks run where they can."""
    outcomes = []
    for planned in plan:
        try:
            outcomes.append(_outcome(planned, planned.run(contract, frame)))
        except (pl.exceptions.PolarsError, KeyError) as exc:
            outcomes.append(
                CheckOutcome(
                    name=planned.name,
                    passed=False,
                    severity=planned.severity,
                    description=f"{planned.description} Could not evaluate: {exc}",
                )
            )
    return outcomes


def evaluate(
    contract: Contract, frame: pl.DataFrame, extra: list[PlannedCheck] | None = None
) -> list[CheckOutcome]:
    """Run every planned check on one frame."""
    return run_checks(contract, frame, check_plan(contract, extra))
