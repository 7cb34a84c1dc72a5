"""Asset checks generated from the contracts, plus the hand-written ones.

One multi-asset check per stored table evaluates every check its contract implies
(`contracts/evaluate.py`) on each partition of the run, one day in memory at a time, and records
one result per day and check, so the Checks tab shows passed or failed per partition whether the
run covered one day or a range. Error-severity checks are blocking: when
one fails, assets downstream in the same run do not execute, so bad data never propagates.
Warn-severity checks report without blocking. A failure's metadata carries the offending row
count and a sample of the rows as a markdown table.
"""

from collections.abc import Iterator
from datetime import date

import polars as pl
from dagster import (
    AssetCheckEvaluation,
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetIn,
    AssetKey,
    MetadataValue,
    Output,
    multi_asset_check,
)
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from energy_assets.contracts.core import CheckOutcome, Contract
from energy_assets.contracts.evaluate import PlannedCheck, check_plan, run_checks
from energy_assets.contracts.tables import EXTRA_CHECKS, contract_for, expected_groups_for
from energy_assets.io.parquet import PartitionLoader
from energy_assets.lineage import latest_materializations
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


def _severity(outcome: CheckOutcome) -> AssetCheckSeverity:
    return AssetCheckSeverity.ERROR if outcome.severity == "error" else AssetCheckSeverity.WARN


def _metadata(outcome: CheckOutcome) -> dict[str, MetadataValue]:
    metadata: dict[str, MetadataValue] = {
        "offending_rows": MetadataValue.int(outcome.offending_rows)
    }
    metadata.update({k: MetadataValue.float(v) for k, v in outcome.figures.items()})
    if outcome.sample is not None:
        metadata["sample"] = MetadataValue.md(_markdown(outcome.sample))
    return metadata


def result_for(asset_key: AssetKey, outcome: CheckOutcome) -> AssetCheckResult:
    return AssetCheckResult(
        asset_key=asset_key,
        check_name=outcome.name,
        passed=outcome.passed,
        severity=_severity(outcome),
        description=outcome.description,
        metadata=_metadata(outcome),
    )


def _target(record) -> AssetCheckEvaluationTargetMaterializationData | None:
    if record is None:
        return None
    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
    )


def per_day_results(
    context: AssetCheckExecutionContext,
    asset_key: AssetKey,
    outcomes_by_day: dict[str, list[CheckOutcome]],
    blocking: dict[str, bool],
) -> Iterator[AssetCheckEvaluation | Output]:
    """One check evaluation per day and check, so a ranged run records a passed or failed
    result for every partition (Dagster's AssetCheckResult only knows single-partition steps
    and would leave the days "skipped"). A failed blocking evaluation still fails the step, so
    downstream assets of the run do not execute."""
    step = context.op_execution_context.get_step_execution_context()
    targets = latest_materializations(context.instance, asset_key, outcomes_by_day)
    for day, outcomes in outcomes_by_day.items():
        for outcome in outcomes:
            yield AssetCheckEvaluation(
                asset_key=asset_key,
                check_name=outcome.name,
                passed=outcome.passed,
                metadata=_metadata(outcome),
                target_materialization_data=_target(targets.get(day)),
                severity=_severity(outcome),
                description=outcome.description,
                blocking=blocking[outcome.name],
                partition=day,
            )
    for name in blocking:
        output = step.job_def.asset_layer.get_op_output_name(AssetCheckKey(asset_key, name))
        if output in step.selected_output_names:
            yield Output(None, output_name=output)


def results_per_day(
    context: AssetCheckExecutionContext, asset_key: AssetKey, results: list[AssetCheckResult]
) -> Iterator[AssetCheckResult | AssetCheckEvaluation | Output]:
    """Results computed once for a whole run (checks of whole-range artifacts), recorded for
    each day of the run so that every partition shows them."""
    step = context.op_execution_context.get_step_execution_context()
    days = list(context.op_execution_context.partition_keys) if step.has_partitions else []
    if len(days) <= 1:
        yield from results
        return
    targets = latest_materializations(context.instance, asset_key, days)
    for day in days:
        for result in results:
            yield AssetCheckEvaluation(
                asset_key=asset_key,
                check_name=str(result.check_name),
                passed=result.passed,
                metadata=result.metadata,
                target_materialization_data=_target(targets.get(day)),
                severity=result.severity,
                description=result.description,
                blocking=True,
                partition=day,
            )
    for result in results:
        key = AssetCheckKey(asset_key, str(result.check_name))
        output = step.job_def.asset_layer.get_op_output_name(key)
        if output in step.selected_output_names:
            yield Output(None, output_name=output)


def evaluate_partitions(
    contract: Contract,
    partitions: PartitionLoader,
    extra: list[PlannedCheck],
    expected: pl.DataFrame | None = None,
) -> dict[str, list[CheckOutcome]]:
    """Every check of the plan for each loaded day, one day in memory at a time.

    Hourly continuity also looks across the days: a group (region, series) seen on any day of
    the checked range but absent from a whole day fails that day, which a day alone cannot tell.
    A contract whose key spans days (ring segments) is checked on the concatenated range, and
    that outcome stands for each of its days.
    """
    plan = check_plan(
        contract, extra, None if expected is None or "day" in expected.columns else expected
    )
    if not partitions.keys:
        return {}

    def plan_for(key: str) -> list[PlannedCheck]:
        if expected is None or "day" not in expected.columns:
            return plan
        # a recording of real data (offline real-data worlds) expects what it holds that day
        day = pl.col("day")
        on_day = expected.filter((day == date.fromisoformat(key)) | day.is_null()).drop("day")
        return check_plan(contract, extra, on_day)

    if contract.partition_column is None or contract.partition_column not in contract.primary_key:
        frames = [partitions.load(k) for k in partitions.keys]
        whole = run_checks(contract, pl.concat(frames, how="vertical"), plan)
        return dict.fromkeys(partitions.keys, whole)
    groups = list(contract.hourly_complete_by or ())
    outcomes: dict[str, list[CheckOutcome]] = {}
    present: dict[str, pl.DataFrame] = {}
    for key in partitions.keys:
        day = partitions.load(key)
        outcomes[key] = run_checks(contract, day, plan_for(key))
        if groups:
            present[key] = day.select(groups).unique()
    if groups and len(present) > 1:
        seen = pl.concat(present.values()).unique()
        for key, here in present.items():
            absent = seen.join(here, on=groups, how="anti")
            if absent.height:
                outcomes[key] = [_with_absent_groups(o, absent) for o in outcomes[key]]
    return outcomes


def _with_absent_groups(outcome: CheckOutcome, absent: pl.DataFrame) -> CheckOutcome:
    if outcome.name != "hourly_continuity":
        return outcome
    rows = absent.with_columns(
        pl.lit(0, dtype=pl.UInt32).alias("hours_present"), pl.lit(24).alias("hours_expected")
    )
    sample = rows if outcome.sample is None else pl.concat([outcome.sample, rows], how="diagonal")
    return outcome.model_copy(
        update={
            "passed": False,
            "offending_rows": outcome.offending_rows + absent.height,
            "sample": sample.head(10),
            "description": outcome.description
            + f" {absent.height} group(s) seen on other days of the range are absent.",
        }
    )


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
            partitions_def=DAILY if contract.partitioned else None,
        )
        for planned in check_plan(contract, extra)
    ]

    blocking = {spec.name: spec.blocking for spec in specs}
    if not contract.partitioned:

        @multi_asset_check(
            name=f"{key.to_python_identifier()}__contract",
            specs=specs,
            ins={"frame": AssetIn(key=key)},
            description=f"Contract {contract.name}: {contract.description}",
            can_subset=False,
        )
        def _whole(frame: pl.DataFrame):
            for outcome in run_checks(contract, frame, check_plan(contract, extra)):
                yield result_for(key, outcome)

        return _whole

    @multi_asset_check(
        name=f"{key.to_python_identifier()}__contract",
        specs=specs,
        ins={"frame": AssetIn(key=key)},
        description=f"Contract {contract.name}: {contract.description}",
        can_subset=False,
        # what a complete day holds follows the run's `sources:` settings
        required_resource_keys={"sources"} if contract.completeness else set(),
    )
    def _check(context: AssetCheckExecutionContext, frame: PartitionLoader):
        expected = None
        if contract.completeness is not None:
            settings = context.resources.sources.source_settings()
            expected = expected_groups_for(asset_key_path, settings)
        by_day = evaluate_partitions(contract, frame, extra, expected)
        if len(by_day) == 1:  # a single-partition run: Dagster records the day itself
            for outcome in next(iter(by_day.values())):
                yield result_for(key, outcome)
        else:
            yield from per_day_results(context, key, by_day, blocking)

    return _check
