"""Asset checks generated from the contracts, plus the hand-written ones.

One multi-asset check per stored table evaluates every check its contract implies
(`contracts/evaluate.py`) on the partitions of the run. Error-severity checks are blocking: when
one fails, assets downstream in the same run do not execute, so bad data never propagates.
Warn-severity checks report without blocking. A failure's metadata carries the offending row
count and a sample of the rows as a markdown table.
"""

from collections.abc import Iterator

import polars as pl
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetIn,
    AssetKey,
    MetadataValue,
    multi_asset_check,
)

from energy_assets.contracts.core import CheckOutcome, Contract
from energy_assets.contracts.evaluate import SAMPLE_ROWS, PlannedCheck, check_plan, run_checks
from energy_assets.contracts.tables import EXTRA_CHECKS, contract_for
from energy_assets.io.parquet import PartitionLoader
from energy_assets.partitions import DAILY


def _markdown(frame: pl.DataFrame) -> str:
    binary = [c for c in frame.columns if frame.schema[c] == pl.Binary]
    frame = frame.with_columns(  # response bodies: show their size, not megabytes of bytes
        [(pl.col(c).bin.size().cast(pl.String) + " bytes").alias(c) for c in binary]
    )
    shown = frame.with_columns(
        [pl.col(c).cast(pl.String) for c in frame.columns if frame.schema[c] != pl.String]
    )
    header = "| " + " | ".join(shown.columns) + " |"
    rule = "|" + "---|" * len(shown.columns)
    rows = ["| " + " | ".join("" if v is None else v for v in row) + " |" for row in shown.rows()]
    return "\n".join([header, rule, *rows])


def result_for(asset_key: AssetKey, outcome: CheckOutcome) -> AssetCheckResult:
    metadata: dict[str, MetadataValue] = {
        "offending_rows": MetadataValue.int(outcome.offending_rows)
    }
    metadata.update({k: MetadataValue.float(v) for k, v in outcome.figures.items()})
    if outcome.sample is not None:
        metadata["sample"] = MetadataValue.md(_markdown(outcome.sample))
    return AssetCheckResult(
        asset_key=asset_key,
        check_name=outcome.name,
        passed=outcome.passed,
        severity=AssetCheckSeverity.ERROR
        if outcome.severity == "error"
        else AssetCheckSeverity.WARN,
        description=outcome.description,
        metadata=metadata,
    )


def merge(day_outcomes: list[list[CheckOutcome]]) -> list[CheckOutcome]:
    """Combine per-day outcomes of the same plan into one outcome per check for the range."""
    merged = []
    for per_day in zip(*day_outcomes, strict=True):
        samples = [o.sample for o in per_day if o.sample is not None]
        figures: dict[str, float] = {}
        for outcome in per_day:
            for name, value in outcome.figures.items():
                if name not in figures:
                    figures[name] = value
                elif name.startswith("min_"):
                    figures[name] = min(figures[name], value)
                elif name.startswith("max_"):
                    figures[name] = max(figures[name], value)
                else:
                    figures[name] += value
        merged.append(
            per_day[0].model_copy(
                update={
                    "passed": all(o.passed for o in per_day),
                    "offending_rows": sum(o.offending_rows for o in per_day),
                    "sample": pl.concat(samples).head(SAMPLE_ROWS) if samples else None,
                    "figures": figures,
                    "description": next(
                        (o.description for o in per_day if not o.passed), per_day[0].description
                    ),
                }
            )
        )
    return merged


def evaluate_partitions(
    contract: Contract, partitions: PartitionLoader, extra: list[PlannedCheck]
) -> list[CheckOutcome]:
    """Every check of the plan over the loaded days, one day in memory at a time.

    Row-level checks run day by day and are merged (exact, because the primary key includes
    the day); checks that compare days (`range_columns`) run once on a projection of the range.
    A contract whose key spans days (ring segments) is checked on the concatenated range.
    """
    plan = check_plan(contract, extra)
    if not partitions.keys:
        return run_checks(contract, contract.empty(), plan)
    if contract.partition_column not in contract.primary_key:
        frames = [partitions.load(k) for k in partitions.keys]
        return run_checks(contract, pl.concat(frames, how="vertical"), plan)
    daywise = [p for p in plan if not p.range_columns]
    rangewise = [p for p in plan if p.range_columns]
    needed = sorted({c for p in rangewise for c in p.range_columns})
    per_day, projections = [], []
    for key in partitions.keys:
        day = partitions.load(key)
        per_day.append(run_checks(contract, day, daywise))
        projections.append(day.select([c for c in needed if c in day.columns]))
    outcomes = {o.name: o for o in merge(per_day)}
    if rangewise:
        projection = pl.concat(projections, how="vertical")
        outcomes.update({o.name: o for o in run_checks(contract, projection, rangewise)})
    return [outcomes[p.name] for p in plan]


def contract_checks(asset_key_path: str) -> AssetChecksDefinition:
    """All checks of one asset's contract, evaluated together on the run's partitions."""
    key = AssetKey(asset_key_path.split("/"))
    contract = contract_for(asset_key_path)
    extra = EXTRA_CHECKS.get(asset_key_path, [])
    specs = [
        AssetCheckSpec(
            planned.name,
            asset=key,
            description=planned.description,
            blocking=planned.severity == "error",
            # Partitioned checks (preview in 1.13) load exactly the run's partitions of the
            # asset, and record a result per partition when a run covers one partition.
            partitions_def=DAILY,
        )
        for planned in check_plan(contract, extra)
    ]

    @multi_asset_check(
        name=f"{key.to_python_identifier()}__contract",
        specs=specs,
        ins={"frame": AssetIn(key=key)},
        description=f"Contract {contract.name}: {contract.description}",
        can_subset=False,
    )
    def _check(
        context: AssetCheckExecutionContext, frame: PartitionLoader
    ) -> Iterator[AssetCheckResult]:
        for outcome in evaluate_partitions(contract, frame, extra):
            yield result_for(key, outcome)

    return _check
