"""Raw assets end to end against the offline stand-in: exact values, checks, files, secrets."""

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance, materialize

from energy_assets.assets.raw import RAW_ASSETS
from energy_assets.checks import contract_checks
from energy_assets.contracts.tables import CONTRACTS
from energy_assets.io.parquet import ParquetIOManager
from energy_assets.offline.generator import GeneratorConfig, SyntheticWorld
from energy_assets.offline.standin import start_standin
from energy_assets.resources import SourcesResource

RESPONDENTS = ["CISO", "ERCO", "PJM", "BPAT"]
DAY = "2024-03-10"  # US spring-forward day
RAW_CHECKS = [contract_checks(path) for path in CONTRACTS if path.startswith("raw/")]


def run_raw(base: Path, sources: SourcesResource, **kwargs):
    return materialize(
        [*RAW_ASSETS, *RAW_CHECKS],
        resources={"io_manager": ParquetIOManager(base_dir=str(base)), "sources": sources},
        instance=DagsterInstance.ephemeral(),
        **kwargs,
    )


def expected_eia_rows(world: SyntheticWorld, day: str) -> pl.DataFrame:
    """The world's served EIA rows for the day, in the long table's naming."""
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    end = start.replace(day=start.day + 1)
    names = {"D": "demand", "DF": "demand_forecast_da", "NG": "net_generation",
             "TI": "total_interchange"}  # fmt: skip
    region = world.eia_region_data(start, end).select(
        "interval_start_utc",
        pl.col("respondent").alias("region"),
        pl.col("type").replace_strict(names).alias("series"),
        "value",
    )
    fuel = world.eia_fuel_type_data(start, end).select(
        "interval_start_utc",
        pl.col("respondent").alias("region"),
        ("generation_" + pl.col("fueltype").str.to_lowercase()).alias("series"),
        "value",
    )
    interchange = world.eia_interchange_data(start, end).select(
        "interval_start_utc",
        pl.col("fromba").alias("region"),
        ("interchange_to_" + pl.col("toba")).alias("series"),
        "value",
    )
    rows = pl.concat([region, fuel, interchange]).filter(pl.col("region").is_in(RESPONDENTS))
    return rows.sort("interval_start_utc", "region", "series", "value", nulls_last=True)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    base = tmp_path_factory.mktemp("raw")
    sources = SourcesResource(respondents=RESPONDENTS, seed=11)
    result = run_raw(base, sources, partition_key=DAY)
    assert result.success
    return base, result


def test_raw_eia_partition_holds_exactly_the_generators_values(stored):
    base, _ = stored
    world = SyntheticWorld(GeneratorConfig(seed=11, respondents=RESPONDENTS))
    got = pl.read_parquet(base / "raw/eia930" / f"{DAY}.parquet")
    expected = expected_eia_rows(world, DAY)
    got_rows = got.select("interval_start_utc", "region", "series", "value").sort(
        "interval_start_utc", "region", "series", "value", nulls_last=True
    )
    assert got_rows.height == expected.height > 0
    assert got_rows.equals(expected)
    # duplicates are kept and numbered, not silently dropped
    assert got["copy_index"].max() >= 1
    assert got["interval_start_utc"].dt.date().unique().to_list() == [
        datetime.fromisoformat(DAY).date()
    ]


def test_every_raw_asset_has_exactly_one_file_per_partition_after_rematerializing(tmp_path):
    sources = SourcesResource(respondents=["CISO"], seed=3)
    assert run_raw(tmp_path, sources, partition_key=DAY).success
    assert run_raw(tmp_path, sources, partition_key=DAY).success
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert files == [
        f"raw/{name}/{DAY}.parquet"
        for name in sorted(
            [
                "caiso",
                "caiso_responses",
                "caiso_revisions",
                "eia930",
                "eia930_responses",
                "eia930_revisions",
                "weather",
                "weather_responses",
                "weather_revisions",
            ]
        )
    ]


def test_raw_checks_pass_and_metrics_are_recorded(stored):
    _, result = stored
    evaluations = result.get_asset_check_evaluations()
    assert evaluations and all(e.passed for e in evaluations if e.severity.value == "ERROR")
    for event in result.get_asset_materialization_events():
        metadata = event.step_materialization_data.materialization.metadata
        for key in ("duration_s", "rows", "rows_per_s", "peak_rss_mib", "bytes_written",
                    "dagster/row_count", "dagster/column_schema"):  # fmt: skip
            assert key in metadata, (event.asset_key, key)
        assert metadata["peak_rss_mib"].value > 10


def test_caiso_day_on_dst_has_24_utc_hours_per_series(stored):
    base, _ = stored
    caiso = pl.read_parquet(base / "raw/caiso" / f"{DAY}.parquet")
    hours = (
        caiso.filter(pl.col("copy_index") == 0)
        .group_by("region", "series")
        .agg(pl.col("interval_start_utc").n_unique().alias("n"))
    )
    # the synthetic world drops a few rows as "missing hour" defects; nothing is duplicated
    assert hours["n"].max() == 24
    assert hours["n"].min() >= 20


def test_reparsing_stored_responses_reproduces_the_parsed_table(stored):
    from energy_assets.sources.base import responses_from_frame
    from energy_assets.sources.eia import parse_eia_responses

    base, _ = stored
    responses = pl.read_parquet(base / "raw/eia930_responses" / f"{DAY}.parquet")
    reparsed = parse_eia_responses(responses_from_frame(responses))
    stored_rows = pl.read_parquet(base / "raw/eia930" / f"{DAY}.parquet")
    assert reparsed.height == stored_rows.height


def test_live_mode_never_stores_or_logs_the_api_key(tmp_path, monkeypatch, capsys):
    secret = "s3cr3t-KEY-0123456789abcdef"
    monkeypatch.setenv("EIA_API_KEY", secret)
    world = SyntheticWorld(GeneratorConfig(seed=5, respondents=["CISO"]))
    with start_standin(world) as server:
        sources = SourcesResource(
            mode="live",
            respondents=["CISO"],
            eia_base_url=server.base_url + "/v2",
            caiso_base_url=server.base_url + "/oasisapi",
            openmeteo_base_url=server.base_url + "/v1",
            caiso_min_interval_s=0.0,
        )
        instance = DagsterInstance.ephemeral()
        result = materialize(
            [*RAW_ASSETS],
            resources={"io_manager": ParquetIOManager(base_dir=str(tmp_path)), "sources": sources},
            instance=instance,
            partition_key=DAY,
        )
    assert result.success
    for path in tmp_path.rglob("*.parquet"):
        assert secret.encode() not in path.read_bytes() or False
        frame = pl.read_parquet(path)
        for column in frame.columns:
            if frame.schema[column] in (pl.String, pl.Binary):
                values = frame[column].cast(pl.Binary).to_list()
                assert not any(v is not None and secret.encode() in v for v in values), column
    logs = instance.all_logs(result.run_id)
    assert secret not in "".join(str(e) for e in logs)
    assert secret not in capsys.readouterr().err


def test_live_mode_without_a_key_fails_with_instructions(tmp_path, monkeypatch):
    monkeypatch.delenv("EIA_API_KEY", raising=False)
    sources = SourcesResource(mode="live", respondents=["CISO"])
    result = materialize(
        [RAW_ASSETS[0]],
        resources={"io_manager": ParquetIOManager(base_dir=str(tmp_path)), "sources": sources},
        instance=DagsterInstance.ephemeral(),
        partition_key=DAY,
        raise_on_error=False,
    )
    assert not result.success
    assert "needs an EIA API key in $EIA_API_KEY" in str(result.all_events)
    assert not list(tmp_path.rglob("*.parquet"))


def test_asset_keys_are_grouped_by_layer():
    keys = {k for a in RAW_ASSETS for k in a.keys}
    assert AssetKey(["raw", "eia930"]) in keys
    assert AssetKey(["raw", "eia930_revisions"]) in keys
    assert all(k.path[0] == "raw" for k in keys)


def test_a_failing_source_fails_only_its_own_assets(tmp_path, monkeypatch):
    from energy_assets.offline.server import Fault, FaultPlan

    monkeypatch.setenv("EIA_API_KEY", "any-key")
    world = SyntheticWorld(GeneratorConfig(seed=5, respondents=["CISO"]))
    outage = FaultPlan([Fault(kind="status", path_prefix="/oasisapi", status=404, times=1000,
                              body=b"<html>Not Found</html>")])  # fmt: skip
    with start_standin(world, outage) as server:
        sources = SourcesResource(
            mode="live",
            respondents=["CISO"],
            eia_base_url=server.base_url + "/v2",
            caiso_base_url=server.base_url + "/oasisapi",
            openmeteo_base_url=server.base_url + "/v1",
            caiso_min_interval_s=0.0,
        )
        result = run_raw(tmp_path, sources, partition_key=DAY, raise_on_error=False)
    assert not result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"raw/eia930_responses", "raw/eia930", "raw/weather_responses", "raw/weather"} <= (
        materialized
    )
    assert not {"raw/caiso_responses", "raw/caiso"} & materialized
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert len(failures) == 1
    assert "caiso" in failures[0].step_key
    assert "retrying will not help" in str(failures[0].event_specific_data.error.message)
