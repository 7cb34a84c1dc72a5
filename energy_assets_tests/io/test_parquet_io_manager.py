"""The single-file-per-partition IO manager: layout, ranged runs, atomicity, contracts, loading."""

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from dagster import (
    AssetIn,
    BackfillPolicy,
    DagsterInstance,
    asset,
    materialize,
)

from energy_assets.contracts import tables
from energy_assets.contracts.core import Column, Contract, ContractViolation
from energy_assets.io.parquet import ParquetIOManager, read_file_metadata, window
from energy_assets.partitions import DAILY

TOY = Contract(
    name="toy",
    description="test table",
    columns=(
        tables.TIME_KEY,
        tables.REGION,
        Column(name="value", dtype="float64", description="a value"),
    ),
    primary_key=("interval_start_utc", "region"),
    partition_column="interval_start_utc",
)


@pytest.fixture(autouse=True)
def toy_contracts(monkeypatch):
    monkeypatch.setitem(tables.CONTRACTS, "test/toy", TOY)
    monkeypatch.setitem(tables.CONTRACTS, "test/toy_window", TOY)
    monkeypatch.setitem(tables.CONTRACTS, "test/toy_centred", TOY)


def hours(first_day: str, days: int, scale: float = 1.0) -> pl.DataFrame:
    start = datetime.fromisoformat(first_day).replace(tzinfo=UTC)
    n = 24 * days
    return pl.DataFrame(
        {
            "interval_start_utc": [start + timedelta(hours=i) for i in range(n)],
            "region": ["X"] * n,
            "value": [float(i) * scale for i in range(n)],
        },
        schema=TOY.schema,
    )


def window_of(context) -> tuple[str, int]:
    keys = context.partition_keys
    return keys[0], len(keys)


SCALE = {"value": 1.0}


@asset(key=["test", "toy"], partitions_def=DAILY, backfill_policy=BackfillPolicy.single_run())
def toy(context) -> pl.DataFrame:
    first, n = window_of(context)
    return hours(first, n, SCALE["value"])


@asset(
    key=["test", "toy_window"],
    partitions_def=DAILY,
    ins={
        # two days of look-back, read by the IO manager; Dagster sees the same-day dependency
        "upstream": AssetIn(key=["test", "toy"], metadata=window(2, 0))
    },
)
def toy_window(context, upstream: pl.DataFrame) -> pl.DataFrame:
    # record what arrived: the shape must not depend on how many partitions were mapped
    assert isinstance(upstream, pl.DataFrame)
    first, _ = window_of(context)
    day = datetime.fromisoformat(first).replace(tzinfo=UTC)
    return pl.DataFrame(
        {
            "interval_start_utc": [day],
            "region": ["rows_seen"],
            "value": [float(upstream.height)],
        },
        schema=TOY.schema,
    )


def run(assets, base: str, **kwargs):
    return materialize(
        assets,
        resources={"io_manager": ParquetIOManager(base_dir=base)},
        instance=DagsterInstance.ephemeral(),
        **kwargs,
    )


def files(base: Path) -> list[str]:
    return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())


def test_one_file_per_partition_and_rematerializing_overwrites(tmp_path):
    assert run([toy], str(tmp_path), partition_key="2024-01-02").success
    assert run([toy], str(tmp_path), partition_key="2024-01-02").success
    assert files(tmp_path) == ["test/toy/2024-01-02.parquet"]
    stored = pl.read_parquet(tmp_path / "test/toy/2024-01-02.parquet")
    assert stored.equals(hours("2024-01-02", 1))


def test_ranged_run_writes_one_file_per_day(tmp_path):
    result = run(
        [toy],
        str(tmp_path),
        tags={
            "dagster/asset_partition_range_start": "2024-01-01",
            "dagster/asset_partition_range_end": "2024-01-05",
        },
    )
    assert result.success
    assert files(tmp_path) == [f"test/toy/2024-01-0{d}.parquet" for d in range(1, 6)]
    for d in range(1, 6):
        day = pl.read_parquet(tmp_path / f"test/toy/2024-01-0{d}.parquet")
        assert day.height == 24
        assert day["interval_start_utc"].dt.day().unique().to_list() == [d]
    # every day's materialization carries its own figures, not the run's
    events = result.asset_materializations_for_node("test__toy")
    assert [e.partition for e in events] == [f"2024-01-0{d}" for d in range(1, 6)]
    for event in events:
        metadata = event.metadata
        assert metadata["dagster/row_count"].value == 24
        assert metadata["rows"].value == 24
        day_file = tmp_path / f"test/toy/{event.partition}.parquet"
        assert metadata["bytes_written"].value == day_file.stat().st_size
        assert metadata["path"].value == str(day_file)
    hashes = {e.metadata["content_hash"].value for e in events}
    assert len(hashes) == 5  # different days, different content


def test_window_input_has_the_same_shape_for_one_or_many_partitions(tmp_path):
    base = str(tmp_path)
    run(
        [toy],
        base,
        tags={
            "dagster/asset_partition_range_start": "2024-01-01",
            "dagster/asset_partition_range_end": "2024-01-03",
        },
    )
    # 2024-01-03 maps to three upstream days; 2015-07-01 (the first partition) maps to one
    assert run([toy, toy_window], base, partition_key="2024-01-03", selection=[toy_window]).success
    three = pl.read_parquet(tmp_path / "test/toy_window/2024-01-03.parquet")
    assert three["value"].to_list() == [72.0]
    run([toy], base, partition_key="2015-07-01")
    assert run([toy, toy_window], base, partition_key="2015-07-01", selection=[toy_window]).success
    one = pl.read_parquet(tmp_path / "test/toy_window/2015-07-01.parquet")
    assert one["value"].to_list() == [24.0]


def test_missing_upstream_partition_is_a_clear_error_without_allow_missing(tmp_path):
    @asset(
        key=["test", "toy_window"],
        partitions_def=DAILY,
        ins={"upstream": AssetIn(key=["test", "toy"])},
    )
    def strict(upstream: pl.DataFrame) -> pl.DataFrame:
        return upstream

    result = run(
        [toy, strict],
        str(tmp_path),
        partition_key="2024-01-09",
        selection=[strict],
        raise_on_error=False,
    )
    assert not result.success
    message = str(result.all_events)
    assert "has no stored partition(s) ['2024-01-09']" in message


def test_contract_violation_writes_nothing_and_keeps_stored_data(tmp_path):
    assert run([toy], str(tmp_path), partition_key="2024-01-02").success
    before = (tmp_path / "test/toy/2024-01-02.parquet").read_bytes()

    @asset(key=["test", "toy"], partitions_def=DAILY)
    def broken() -> pl.DataFrame:
        return hours("2024-01-02", 1).with_columns(pl.col("value").cast(pl.Float32))

    result = run([broken], str(tmp_path), partition_key="2024-01-02", raise_on_error=False)
    assert not result.success
    assert "has dtype Float32, contract says Float64" in str(result.all_events)
    assert (tmp_path / "test/toy/2024-01-02.parquet").read_bytes() == before


def test_rows_outside_the_run_partitions_are_refused(tmp_path):
    @asset(key=["test", "toy"], partitions_def=DAILY)
    def spills() -> pl.DataFrame:
        return hours("2024-01-02", 2)

    result = run([spills], str(tmp_path), partition_key="2024-01-02", raise_on_error=False)
    assert not result.success
    assert "outside the run's partitions" in str(result.all_events)
    assert files(tmp_path) == []


def test_crash_mid_write_leaves_no_partial_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    assert run([toy], str(tmp_path), partition_key="2024-01-02").success
    target = tmp_path / "test/toy/2024-01-02.parquet"
    before = target.read_bytes()

    def crash(fd):
        raise OSError("disk died mid-write")

    monkeypatch.setattr(os, "fsync", crash)
    SCALE["value"] = 2.0
    try:
        result = run([toy], str(tmp_path), partition_key="2024-01-02", raise_on_error=False)
    finally:
        SCALE["value"] = 1.0
    assert not result.success
    assert target.read_bytes() == before
    assert files(tmp_path) == ["test/toy/2024-01-02.parquet"]  # no temporary left behind


def test_fsspec_url_base_writes_the_same_layout():
    import fsspec

    base = "memory://energy-assets-test"
    assert run([toy], base, partition_key="2024-01-02").success
    fs = fsspec.filesystem("memory")
    assert fs.exists("/energy-assets-test/test/toy/2024-01-02.parquet")
    with fs.open("/energy-assets-test/test/toy/2024-01-02.parquet", "rb") as handle:
        assert pl.read_parquet(handle).equals(hours("2024-01-02", 1))


def test_contract_conform_refuses_instead_of_casting():
    with pytest.raises(ContractViolation, match="missing column 'value'"):
        TOY.conform(hours("2024-01-02", 1).drop("value"))


def test_file_metadata_round_trip(tmp_path):
    from energy_assets.io.parquet import FrameWithMetadata

    @asset(key=["test", "toy"], partitions_def=DAILY)
    def with_meta() -> FrameWithMetadata:
        return FrameWithMetadata(hours("2024-01-02", 1), {"layout": "zigzag"})

    assert run([with_meta], str(tmp_path), partition_key="2024-01-02").success
    meta = read_file_metadata(tmp_path / "test/toy/2024-01-02.parquet")
    assert meta["layout"] == "zigzag"


def test_partition_loader_input_reads_one_day_at_a_time(tmp_path):
    from energy_assets.io.parquet import PartitionLoader

    seen: list[int] = []

    @asset(
        key=["test", "toy_window"],
        partitions_def=DAILY,
        backfill_policy=BackfillPolicy.single_run(),
        ins={"upstream": AssetIn(key=["test", "toy"])},
    )
    def lazy(context, upstream: PartitionLoader) -> pl.DataFrame:
        frames = []
        for key in upstream.keys:
            day = upstream.load(key)
            seen.append(day.height)
            frames.append(day.head(1).with_columns(pl.lit(float(day.height)).alias("value")))
        return pl.concat(frames)

    tags = {
        "dagster/asset_partition_range_start": "2024-01-01",
        "dagster/asset_partition_range_end": "2024-01-03",
    }
    assert run([toy], str(tmp_path), tags=tags).success
    assert run([toy, lazy], str(tmp_path), tags=tags, selection=[lazy]).success
    assert seen == [24, 24, 24]
    assert files(tmp_path).count("test/toy_window/2024-01-02.parquet") == 1


def test_rows_without_a_day_are_refused_not_dropped():
    from energy_assets.io.parquet import PartitionMismatch, split_by_day

    frame = hours("2024-01-02", 1).with_columns(
        pl.when(pl.col("value") == 0).then(None).otherwise(pl.col("interval_start_utc"))
        .alias("interval_start_utc")
    )  # fmt: skip
    with pytest.raises(PartitionMismatch, match="1 rows fall"):
        split_by_day(frame, "interval_start_utc", ["2024-01-02"])


def test_a_window_may_miss_context_days_but_not_the_runs_own_day(tmp_path):
    # only the neighbours exist: the run's own upstream day is missing
    run([toy], str(tmp_path), partition_key="2024-01-01")
    result = run(
        [toy, toy_window], str(tmp_path), partition_key="2024-01-03", selection=[toy_window],
        raise_on_error=False,
    )  # fmt: skip
    assert not result.success
    assert "has no stored partition(s) ['2024-01-03']" in str(result.all_events)


@asset(
    key=["test", "toy_centred"],
    partitions_def=DAILY,
    backfill_policy=BackfillPolicy.single_run(),
    ins={"upstream": AssetIn(key=["test", "toy"], metadata=window(1, 1))},
)
def toy_centred(context, upstream: pl.DataFrame) -> pl.DataFrame:
    return pl.concat(
        [
            hours(k, 1).with_columns(pl.lit(float(upstream.height)).alias("value"))
            for k in context.partition_keys
        ]
    )


def _centred_events(base: str, first: str, last: str):
    result = run(
        [toy, toy_centred],
        base,
        selection=[toy_centred],
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        },
    )
    assert result.success
    return {e.partition: e.metadata for e in result.asset_materializations_for_node(
        "test__toy_centred")}  # fmt: skip


def test_days_whose_right_hand_context_is_missing_are_provisional(tmp_path):
    base = str(tmp_path)
    ranged = {
        "dagster/asset_partition_range_start": "2024-01-01",
        "dagster/asset_partition_range_end": "2024-01-03",
    }
    assert run([toy], base, tags=ranged).success
    events = _centred_events(base, "2024-01-02", "2024-01-03")
    # 01-02 has both neighbours; 01-04 is not stored, so 01-03 is provisional
    assert events["2024-01-02"]["provisional"].value is False
    assert events["2024-01-03"]["provisional"].value is True
    assert events["2024-01-03"]["provisional_because"].value["missing"] == ["test/toy@2024-01-04"]
    footer = read_file_metadata(tmp_path / "test/toy_centred/2024-01-03.parquet")
    assert footer["energy_assets.provisional"] == "true"
    # the missing day arrives: 01-03's inputs changed, so its fingerprint does; 01-02's does not
    before = {day: m["input_fingerprint"].value for day, m in events.items()}
    assert run([toy], base, partition_key="2024-01-04").success
    after = _centred_events(base, "2024-01-02", "2024-01-03")
    assert after["2024-01-03"]["provisional"].value is False
    assert after["2024-01-02"]["input_fingerprint"].value == before["2024-01-02"]
    assert after["2024-01-03"]["input_fingerprint"].value != before["2024-01-03"]
    # left-hand context before the first stored day does not make a day provisional
    assert (
        _centred_events(base, "2024-01-01", "2024-01-01")["2024-01-01"]["provisional"].value
        is False
    )


def test_data_version_is_the_content_hash_of_a_single_day(tmp_path):
    result = run([toy], str(tmp_path), partition_key="2024-01-02")
    (event,) = result.get_asset_materialization_events()
    materialization = event.step_materialization_data.materialization
    assert materialization.tags["dagster/data_version"] == (
        materialization.metadata["content_hash"].value
    )
    again = run([toy], str(tmp_path), partition_key="2024-01-02")
    (second,) = again.get_asset_materialization_events()
    # same content, same version: downstream is not made stale by a re-run that changed nothing
    assert (
        second.step_materialization_data.materialization.tags["dagster/data_version"]
        == (materialization.tags["dagster/data_version"])
    )
