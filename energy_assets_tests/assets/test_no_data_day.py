"""Completeness end to end: a day the stand-in answers "no data" for fails a blocking check
that names what is missing, is recorded as upstream "no data", and a complete day passes."""

import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance, materialize

from energy_assets.assets.raw import registered_raw_assets
from energy_assets.checks import contract_checks
from energy_assets.contracts.tables import CONTRACTS
from energy_assets.io.parquet import ParquetIOManager
from energy_assets.resources import SourcesResource

RESPONDENTS = ["AVRN", "CISO", "PJM"]  # AVRN is generation-only: it reports no demand
EMPTY_DAY, FULL_DAY = "2024-03-05", "2024-03-06"


def run(base, day):
    sources = SourcesResource(respondents=RESPONDENTS, seed=5, no_data_days=[EMPTY_DAY])
    checks = [contract_checks(path) for path in CONTRACTS if path.startswith("raw/")]
    return materialize(
        [*registered_raw_assets(), *checks],
        resources={"io_manager": ParquetIOManager(base_dir=str(base)), "sources": sources},
        instance=DagsterInstance.ephemeral(),
        partition_key=day,
        raise_on_error=False,
    )


def evaluations(result) -> dict[tuple[str, str], object]:
    return {
        (e.asset_key.to_user_string(), e.check_name): e
        for e in result.get_asset_check_evaluations()
    }


def no_data_metadata(result) -> dict[str, list]:
    out = {}
    for event in result.get_asset_materialization_events():
        metadata = event.step_materialization_data.materialization.metadata
        if "upstream_no_data" in metadata:
            out[event.asset_key.to_user_string()] = metadata["upstream_no_data"].value
    return out


@pytest.fixture(scope="module")
def empty_day(tmp_path_factory):
    return run(tmp_path_factory.mktemp("empty"), EMPTY_DAY)


def test_a_no_data_day_fails_a_blocking_check_naming_the_missing_respondents(empty_day):
    assert not empty_day.success
    found = evaluations(empty_day)
    eia = found[("raw/eia930", "complete_day")]
    assert not eia.passed and eia.blocking and eia.severity.value == "ERROR"
    assert "No value for CISO, PJM (series demand, net_generation, total_interchange)" in (
        eia.description
    )
    assert "AVRN (series net_generation, total_interchange)" in eia.description
    assert eia.metadata["missing_groups"].value == 8
    for source in ("raw/caiso", "raw/weather"):
        assert not found[(source, "complete_day")].passed, source
    caiso = found[("raw/caiso", "complete_day")].description
    assert "CA ISO-TAC (series caiso_load_actual" in caiso


def test_a_no_data_day_is_recorded_as_upstream_no_data(empty_day, tmp_path):
    recorded = no_data_metadata(empty_day)
    # every EIA route answered total 0, both OASIS reports error 1000, the weather call nulls
    assert len(recorded["raw/eia930_responses"]) == 3
    assert {line.split(" ")[0] for line in recorded["raw/caiso_responses"]} == {"load", "lmp"}
    assert len(recorded["raw/weather_responses"]) >= 1
    weather = next(
        e.step_materialization_data.materialization.metadata
        for e in empty_day.get_asset_materialization_events()
        if e.asset_key == AssetKey(["raw", "weather"])
    )
    # Open-Meteo's nulls are stored as nulls (counted), never as numbers
    assert weather["null_values"].value == weather["rows"].value > 0
    found = evaluations(empty_day)
    for name in ("eia930", "caiso", "weather"):
        warn = found[(f"raw/{name}_responses", "upstream_answered_data")]
        assert not warn.passed and warn.severity.value == "WARN", name


def test_the_stored_empty_day_holds_no_eia_rows(empty_day, tmp_path_factory):
    # the parsed tables were written (nothing is hidden) and are empty, not partial
    events = {e.asset_key.to_user_string(): e for e in empty_day.get_asset_materialization_events()}
    path = events["raw/eia930"].step_materialization_data.materialization.metadata["path"].value
    assert pl.read_parquet(path).height == 0


def test_a_complete_day_passes_and_records_no_upstream_gap(tmp_path):
    result = run(tmp_path, FULL_DAY)
    assert result.success
    found = evaluations(result)
    for name in ("eia930", "caiso", "weather"):
        assert found[(f"raw/{name}", "complete_day")].passed, name
        assert found[(f"raw/{name}_responses", "upstream_answered_data")].passed, name
    assert all(v == [] for v in no_data_metadata(result).values())
    assert set(no_data_metadata(result)) == {
        f"raw/{n}_responses" for n in ("eia930", "caiso", "weather")
    }
    parsed = {
        e.asset_key: e.step_materialization_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    eia = parsed[AssetKey(["raw", "eia930"])]
    # null values upstream sent are kept as null and counted per day
    stored = pl.read_parquet(eia["path"].value)
    assert eia["null_values"].value == stored["value"].null_count()


def test_the_no_data_knob_is_for_the_offline_stand_in_and_takes_real_dates():
    with pytest.raises(ValueError, match="remove it for mode=live"):
        SourcesResource(mode="live", no_data_days=[EMPTY_DAY])
    with pytest.raises(ValueError, match="not an ISO date"):
        SourcesResource(no_data_days=["2024-13-01"])
    assert SourcesResource(no_data_days=[EMPTY_DAY]).no_data_days == [EMPTY_DAY]
