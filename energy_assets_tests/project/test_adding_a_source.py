"""The README's worked example: a source is one module plus one registry entry.

The example module (`energy_assets_tests/sources/example_gridmix.py`) is registered at run time
with the one line the README shows; nothing else is edited, and the project's Definitions then
hold its raw assets, contracts and checks, build its client from the settings and serve it from
the offline stand-in.
"""

import re
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance

from energy_assets.settings import Settings
from energy_assets.sources import registry
from energy_assets_tests.sources import example_gridmix
from energy_assets_tests.sources.example_gridmix import GRIDMIX

DAY = "2024-03-10"
RESPONDENTS = ["CISO", "PJM"]
README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
def gridmix_registered(monkeypatch):
    monkeypatch.setitem(registry.SOURCES, "gridmix", GRIDMIX)  # the registry entry


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        start=date(2024, 3, 9),
        end=date(2024, 3, 11),
        data_dir=str(tmp_path / "data"),
        dagster_home=str(tmp_path / "home"),
        sources={"respondents": RESPONDENTS},
    )


def test_the_example_source_materializes_from_the_project_definitions(gridmix_registered, tmp_path):
    from energy_assets.definitions import build_definitions

    defs = build_definitions(_settings(tmp_path))
    graph = defs.resolve_asset_graph()
    responses, parsed = AssetKey(["raw", "gridmix_responses"]), AssetKey(["raw", "gridmix"])
    assert {responses, parsed} <= graph.get_all_asset_keys()
    assert parsed in graph.get(AssetKey(["aligned", "series"])).parent_keys

    job = defs.resolve_job_def("main_job").get_subset(asset_selection={responses, parsed})
    result = job.execute_in_process(partition_key=DAY, instance=DagsterInstance.ephemeral())
    assert result.success

    stored = pl.read_parquet(tmp_path / "data/raw/gridmix" / f"{DAY}.parquet")
    assert sorted(stored["region"].unique().to_list()) == RESPONDENTS
    assert stored.height == 24 * len(RESPONDENTS)
    # the values are the stand-in's, hour by hour (an independent call of its value function)
    first = stored.sort("region", "interval_start_utc").row(0, named=True)
    assert first["value"] == example_gridmix.share("CISO", first["interval_start_utc"])
    assert set(stored["units"]) == {"%"}
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["complete_day"].passed and checks["value_physically_possible"].passed


def test_the_example_source_gets_a_contract_and_a_completeness_rule(gridmix_registered):
    from energy_assets.contracts.tables import CONTRACTS, expected_groups_for
    from energy_assets.sources.registry import SourceSettings

    assert "raw/gridmix" in CONTRACTS and "raw/gridmix_responses" in CONTRACTS
    expected = expected_groups_for("raw/gridmix", SourceSettings(respondents=("PJM",)))
    assert expected.rows() == [("PJM", "renewable_share")]
    aligned = expected_groups_for("aligned/series", SourceSettings(respondents=("PJM",)))
    assert ("PJM", "renewable_share") in aligned.rows()


def test_unregistered_the_example_source_is_unknown():
    from energy_assets.contracts.tables import CONTRACTS

    assert "raw/gridmix" not in CONTRACTS
    assert "gridmix" not in registry.SOURCES


def test_the_readme_shows_the_example_module_as_it_is():
    """The README's worked example is the tested module, verbatim."""
    text = README.read_text()
    section = text.split("### Adding a source", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    module = Path(example_gridmix.__file__).read_text()
    assert module in blocks
    assert 'SOURCES["gridmix"] = GRIDMIX' in section
