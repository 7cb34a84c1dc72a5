"""Revisions kept: re-extracting a day that upstream revised records exactly the changed rows.

The offline world publishes vintages (`sources.vintage`): at a higher vintage some EIA values
are revised, cumulatively. The expected revisions are the generator's own served values at the
two vintages, compared here independently of the asset's code.
"""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance, materialize

import energy_assets
from energy_assets.assets.raw import RAW_ASSETS
from energy_assets.checks import contract_checks
from energy_assets.io.parquet import ParquetIOManager
from energy_assets.offline.generator import GeneratorConfig, SyntheticWorld
from energy_assets.resources import SourcesResource
from energy_assets_tests.assets.test_raw_assets import DAY, RESPONDENTS, expected_eia_rows
from energy_assets_tests.ops.live_dagster import write_config

SEED = 13
REVISIONS = AssetKey(["raw", "eia930_revisions"])
EIA = [a for a in RAW_ASSETS if any(k.path[-1].startswith("eia930") for k in a.keys)]
KEY = ["interval_start_utc", "region", "series"]


def extract(base, vintage: int):
    """Materialize the EIA raw assets (and the revisions' contract checks) for DAY."""
    result = materialize(
        [*EIA, contract_checks("raw/eia930_revisions")],
        resources={
            "io_manager": ParquetIOManager(base_dir=str(base)),
            "sources": SourcesResource(respondents=RESPONDENTS, seed=SEED, vintage=vintage),
        },
        instance=DagsterInstance.ephemeral(),
        partition_key=DAY,
    )
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks), [c.check_name for c in checks if not c.passed]
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == REVISIONS]
    metadata = event.step_materialization_data.materialization.metadata
    responses = pl.read_parquet(base / "raw/eia930_responses" / f"{DAY}.parquet")
    revisions = pl.read_parquet(base / "raw/eia930_revisions" / f"{DAY}.parquet")
    return revisions, responses, {k: getattr(v, "value", v) for k, v in metadata.items()}


def served_changes(old_vintage: int, new_vintage: int) -> pl.DataFrame:
    """(key, old value, new value) of every EIA row the world serves differently."""

    def served(vintage: int) -> pl.DataFrame:
        world = SyntheticWorld(GeneratorConfig(seed=SEED, respondents=RESPONDENTS, vintage=vintage))
        return expected_eia_rows(world, DAY).unique()  # served duplicates are identical copies

    joined = served(old_vintage).join(served(new_vintage), on=KEY, suffix="_new", how="inner")
    changed = joined.filter(pl.col("value").ne_missing(pl.col("value_new")))
    return changed.select(*KEY, pl.col("value").alias("value_old"), "value_new").sort(KEY)


def route_of(series: pl.Expr) -> pl.Expr:
    return (
        pl.when(series.str.starts_with("generation_"))
        .then(pl.lit("fuel-type-data"))
        .when(series.str.starts_with("interchange_to_"))
        .then(pl.lit("interchange-data"))
        .otherwise(pl.lit("region-data"))
    )


def fetch_times(revisions: pl.DataFrame, responses: pl.DataFrame, side: str) -> bool:
    """Whether each revision's `side` fetch time is that of a response of its row's route."""
    fetched = responses.select("dataset", pl.col("fetched_at_utc").alias("expected"))
    rows = revisions.with_columns(route_of(pl.col("series")).alias("dataset")).join(
        fetched, on="dataset", how="left"
    )
    matched = rows.filter(pl.col(f"fetched_at_utc_{side}") == pl.col("expected"))
    return matched.select(*KEY, "copy_index").unique().height == revisions.height


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """Four extractions of DAY: first publication, the same again, vintage 5, vintage 10."""
    base = tmp_path_factory.mktemp("revisions")
    steps = [extract(base, vintage) for vintage in (0, 0, 5, 10)]
    return base, steps


def test_a_first_and_an_unchanged_extraction_record_no_revision(history):
    _, steps = history
    for revisions, _, metadata in steps[:2]:
        assert revisions.height == 0
        assert metadata["rows_revised"] == 0 and metadata["max_abs_change"] == 0.0
    assert steps[0][2]["compared"] == "first extraction"
    assert steps[1][2]["compared"] == "responses unchanged"


def test_a_revised_day_records_exactly_the_changed_rows_with_both_values_and_fetch_times(history):
    _, steps = history
    (_, before, _), (revisions, after, metadata) = steps[1], steps[2]
    expected = served_changes(0, 5)
    assert expected.height >= 5  # the vintage revised something worth testing
    got = revisions.select(*KEY, "value_old", "value_new").unique().sort(KEY)
    assert got.equals(expected)
    assert set(revisions["change"]) == {"changed"}  # the world revises values, never hours
    assert fetch_times(revisions, before, "old") and fetch_times(revisions, after, "new")
    assert metadata["rows_revised"] == revisions.height == metadata["rows_changed"]
    delta = (expected["value_new"] - expected["value_old"]).abs().max()
    assert metadata["max_abs_change"] == pytest.approx(delta)


def test_a_later_revision_is_appended_and_the_earlier_ones_survive(history):
    _, steps = history
    (first, before, _), (stored, after, metadata) = steps[2], steps[3]
    # the earlier revisions are still in the day's file, unchanged
    assert stored.join(first, on=list(first.columns), how="semi").height == first.height
    new = stored.join(first, on=list(first.columns), how="anti")
    assert (
        new.select(*KEY, "value_old", "value_new").unique().sort(KEY).equals(served_changes(5, 10))
    )
    assert fetch_times(new, before, "old") and fetch_times(new, after, "new")
    assert metadata["rows_revised"] == new.height
    assert metadata["revisions_in_file"] == stored.height == first.height + new.height


def test_revisions_are_read_with_energy_assets_load(history, tmp_path):
    base, steps = history
    config = write_config(
        tmp_path / "run.yaml",
        start=date.fromisoformat(DAY),
        end=date.fromisoformat(DAY),
        respondents=RESPONDENTS,
        data_dir=base,
        dagster_home=tmp_path / "home",
    )
    stored = steps[-1][0]
    ciso = energy_assets.load("raw/eia930_revisions", DAY, DAY, regions=["CISO"], config=config)
    assert ciso.equals(stored.filter(pl.col("region") == "CISO"))
