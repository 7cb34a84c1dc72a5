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
    explain: Callable[[pl.DataFrame], str] | None = None
    """When set, a failure's description ends with this account of the offending rows."""


def _outcome(planned: PlannedCheck, finding: Finding) -> CheckOutcome:
    offending, figures = finding
    n = 0 if offending is None else offending.height
    description = planned.description
    if n and planned.explain is not None:
        description = f"{description} {planned.explain(offending)}"
    return CheckOutcome(
        name=planned.name,
        passed=n == 0,
        severity=planned.severity,
        description=description,
        offending_rows=n,
        sample=None if offending is None or n == 0 else offending.head(SAMPLE_ROWS),
        figures=figures,
    )


SCHEMA, DUPLICATE_KEY, NULL_REQUIRED = (
    "schema",
    "duplicate primary key",
    "null in a required column",
)
STRUCTURE_PARTS = (SCHEMA, DUPLICATE_KEY, NULL_REQUIRED)
"""What the `structure` check covers, in the order a failure names them."""


def _problems(problem: str, where: pl.Expr, frame: pl.DataFrame, count: pl.Expr) -> pl.DataFrame:
    return frame.select(
        pl.lit(problem).alias("problem"), where.alias("where"), count.cast(pl.Int64).alias("count")
    )


def _key_text(columns: list[str]) -> pl.Expr:
    return pl.concat_str(
        [pl.lit(f"{c}=") + pl.col(c).cast(pl.String).fill_null("null") for c in columns],
        separator=", ",
    )


def _structure(contract: Contract, frame: pl.DataFrame) -> Finding:
    """Schema, unique primary key and non-null required columns: one check, one result per day.

    They are folded into one because each check result is an event in Dagster's storage
    (milliseconds each, a result per day and check): the three guard the same thing, that the
    table is what its contract says, and a failure still names which part failed and where.
    """
    schema = contract.schema_problems(frame)
    found = [
        pl.DataFrame(
            {"problem": [SCHEMA] * len(schema), "where": schema, "count": [1] * len(schema)},
            schema={"problem": pl.String, "where": pl.String, "count": pl.Int64},
        )
    ]
    key = list(contract.primary_key)
    duplicates = 0
    if all(c in frame.columns for c in key):
        dupes = (
            frame.group_by(key).agg(pl.len().alias("copies")).filter(pl.col("copies") > 1).sort(key)
        )
        duplicates = dupes.height
        found.append(_problems(DUPLICATE_KEY, _key_text(key), dupes, pl.col("copies")))
    required = [
        c.name for c in contract.columns if not c.nullable or c.name in contract.primary_key
    ]
    present = [c for c in required if c in frame.columns]
    null_rows = 0
    if present:
        nulls = frame.filter(pl.any_horizontal([pl.col(c).is_null() for c in present]))
        null_rows = nulls.height
        shown = [c for c in key if c in frame.columns] or present
        columns = pl.concat_list(
            [pl.when(pl.col(c).is_null()).then(pl.lit(c)) for c in present]
        ).list.drop_nulls()
        found.append(
            _problems(
                NULL_REQUIRED,
                columns.list.join(", ") + pl.lit(" at ") + _key_text(shown),
                nulls,
                pl.lit(1),
            )
        )
    # interleaved, so the failure's sample shows each part that failed
    offending = (
        pl.concat(found)
        .with_row_index("order")
        .sort(pl.int_range(pl.len()).over("problem"), "order")
        .drop("order")
    )
    return offending, {
        "schema_problems": float(len(schema)),
        "duplicate_keys": float(duplicates),
        "rows_with_nulls": float(null_rows),
    }


def _explain_structure(offending: pl.DataFrame) -> str:
    counts = dict(offending.group_by("problem").len().iter_rows())
    failed = [f"{part}: {counts[part]}" for part in STRUCTURE_PARTS if part in counts]
    return "Failed: " + "; ".join(failed) + "."


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


def name_groups(groups: pl.DataFrame, limit: int = 12) -> str:
    """Groups named for a person: regions that lack the same series share one clause,
    e.g. "PJM, MISO: demand, net_generation; CISO: lmp"."""
    if groups.height == 0:
        return ""
    if set(groups.columns) != {"region", "series"}:
        shown = [", ".join(str(v) for v in row) for row in groups.head(limit).rows()]
        more = f" and {groups.height - limit} more" if groups.height > limit else ""
        return "; ".join(f"({row})" for row in shown) + more
    per_region = groups.group_by("region").agg(pl.col("series").sort().str.join(", "))
    clauses = (
        per_region.group_by("series")
        .agg(pl.col("region").sort(), pl.len().alias("n"))
        .sort(["n", "series"], descending=[True, False])
    )
    parts = []
    for series, regions, _ in clauses.head(limit).iter_rows():
        names = ", ".join(regions[:limit]) + (
            f" and {len(regions) - limit} more" if len(regions) > limit else ""
        )
        parts.append(f"{names} (series {series})")
    more = f"; {clauses.height - limit} more combinations" if clauses.height > limit else ""
    return "; ".join(parts) + more


def _complete_day(expected: pl.DataFrame | None) -> Callable[[Contract, pl.DataFrame], Finding]:
    def run(contract: Contract, frame: pl.DataFrame) -> Finding:
        rule = contract.completeness
        assert rule is not None
        if expected is None or expected.height == 0:
            return None, {"expected_groups": 0.0}
        by = list(rule.by)
        held = frame.filter(pl.col(rule.value_column).is_not_null()).select(by).unique()
        missing = expected.select(by).join(held, on=by, how="anti").sort(by)
        return missing, {
            "expected_groups": float(expected.height),
            "missing_groups": float(missing.height),
        }

    return run


def _complete_hours(expected: pl.DataFrame | None) -> Callable[[Contract, pl.DataFrame], Finding]:
    def run(contract: Contract, frame: pl.DataFrame) -> Finding:
        rule = contract.completeness
        assert rule is not None and contract.partition_column is not None
        if expected is None or expected.height == 0 or frame.height == 0:
            return None, {}
        by, time = list(rule.by), pl.col(contract.partition_column)
        days = frame.select(time.dt.truncate("1d").n_unique()).item()
        wanted = rule.hours_per_day * days
        hours = (
            frame.filter(pl.col(rule.value_column).is_not_null())
            .group_by(by)
            .agg(time.dt.truncate("1h").n_unique().alias("hours_with_value"))
        )
        short = (
            expected.select(by)
            .join(hours, on=by, how="inner")
            .filter(pl.col("hours_with_value") < wanted)
            .with_columns(pl.lit(wanted).alias("hours_expected"))
        )
        return short.sort(by), {"hours_expected_per_group": float(wanted)}

    return run


def check_plan(
    contract: Contract,
    extra: list[PlannedCheck] | None = None,
    expected: pl.DataFrame | None = None,
) -> list[PlannedCheck]:
    """Every check `contract` implies, in a stable order, plus hand-written `extra` checks.

    `expected` holds the groups a complete day must hold (the contract's `completeness`,
    resolved from the registry and the run settings: contracts/tables.py `expected_groups_for`);
    without it the completeness checks have nothing to require and pass.
    """
    plan: list[PlannedCheck] = []

    def add(name: str, severity: Severity, description: str, fn, columns=(), explain=None) -> None:
        plan.append(PlannedCheck(name, severity, description, fn, tuple(columns), explain))

    add(
        "structure",
        "error",
        f"Columns and dtypes are exactly the contract's, no two rows share the primary key "
        f"{list(contract.primary_key)}, and key and non-nullable columns hold no nulls.",
        _structure,
        explain=_explain_structure,
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
    if contract.completeness is not None:
        rule = contract.completeness
        add(
            "complete_day",
            "error",
            f"Every expected {list(rule.by)} group holds a value on the day: {rule.expected}.",
            _complete_day(expected),
            explain=lambda missing: (
                f"No value for {name_groups(missing)}. Downstream days are not built on a hole: "
                "re-extract the day later (upstream fills late data in), or leave these "
                "respondents out of sources.respondents for this range."
            ),
        )
        add(
            "complete_hours",
            "warn",
            f"Every expected group that holds a value holds one in each of the "
            f"{rule.hours_per_day} hours of the day (missing hours are filled downstream).",
            _complete_hours(expected),
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
    contract: Contract,
    frame: pl.DataFrame,
    extra: list[PlannedCheck] | None = None,
    expected: pl.DataFrame | None = None,
) -> list[CheckOutcome]:
    """Run every planned check on one frame."""
    return run_checks(contract, frame, check_plan(contract, extra, expected))
