"""The whole graph on a few days of a few balancing authorities: layers agree with each other
and with the generator, every blocking check passes, and partition windows cross day borders."""

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from dagster import DagsterInstance, materialize

from energy_assets.assets import ALL_ASSETS, HAND_WRITTEN_CHECKS
from energy_assets.checks import contract_checks
from energy_assets.contracts.tables import CONTRACTS
from energy_assets.io.parquet import ParquetIOManager, read_file_metadata
from energy_assets.offline.generator import GeneratorConfig, SyntheticWorld
from energy_assets.resources import PipelineResource, SourcesResource

RESPONDENTS = ["CISO", "ERCO", "PJM"]
FIRST, LAST = "2024-03-08", "2024-03-12"  # spans the US spring-forward day


def run_all(base, sources, pipeline=None, first=FIRST, last=LAST, selection=None):
    """Materialize every asset (or `selection`) over first..last (None: whole-range only)."""
    return materialize(
        [*ALL_ASSETS, *HAND_WRITTEN_CHECKS, *(contract_checks(p) for p in CONTRACTS)],
        selection=selection,
        resources={
            "io_manager": ParquetIOManager(base_dir=str(base)),
            "sources": sources,
            "pipeline": pipeline
            or PipelineResource(
                context_length=48,
                horizon=24,
                ring_sequence_length=240,
                train_start_utc=FIRST,
                val_start_utc="2024-03-11",
                test_start_utc="2024-03-12",
                test_end_utc="2024-03-13",
            ),
        },
        instance=DagsterInstance.ephemeral(),
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        }
        if first is not None
        else None,
        raise_on_error=False,
    )


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("clean")
    result = run_all(base, SourcesResource(respondents=RESPONDENTS, seed=21, defects=False))
    return base, result


@pytest.fixture(scope="module")
def defect_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("defects")
    result = run_all(base, SourcesResource(respondents=RESPONDENTS, seed=21, defects=True))
    return base, result


def read(base, key: str) -> pl.DataFrame:
    return pl.read_parquet(base / key / "*.parquet")


@pytest.mark.parametrize("run", ["clean_run", "defect_run"])
def test_every_layer_materializes_and_every_blocking_check_passes(run, request):
    base, result = request.getfixturevalue(run)
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    failed = [
        (e.asset_key.to_user_string(), e.check_name)
        for e in evaluations
        if not e.passed and e.severity.value == "ERROR"
    ]
    assert failed == []
    checked = {e.asset_key.path[0] for e in evaluations}
    assert checked == {"raw", "aligned", "imputed", "reconciled", "features", "ml"}
    days = 5
    for key, contract in CONTRACTS.items():
        if contract.partitioned:
            assert len(list((base / key).glob("*.parquet"))) == days, key
        else:  # a whole-range artifact: one file
            assert (base / f"{key}.parquet").is_file(), key


def test_aligned_demand_equals_the_generator_truth_on_a_clean_world(clean_run):
    base, _ = clean_run
    world = SyntheticWorld(GeneratorConfig.clean(seed=21, respondents=RESPONDENTS))
    start = datetime.fromisoformat(FIRST).replace(tzinfo=UTC)
    end = datetime.fromisoformat(LAST).replace(tzinfo=UTC) + timedelta(days=1)
    truth = (
        world.truth_region_data(start, end)
        .filter(pl.col("type") == "D")
        .select("interval_start_utc", pl.col("respondent").alias("region"), "value")
        .sort("region", "interval_start_utc")
    )
    aligned = (
        read(base, "aligned/series")
        .filter(pl.col("series") == "demand")
        .select("interval_start_utc", "region", "value")
        .sort("region", "interval_start_utc")
    )
    assert aligned.height == 5 * 24 * len(RESPONDENTS)
    assert aligned.equals(truth)


def test_imputed_keeps_reported_values_and_says_how_each_was_filled(defect_run):
    base, _ = defect_run
    imputed = read(base, "imputed/series")
    aligned = read(base, "aligned/series").select(
        "interval_start_utc", "region", "series", pl.col("value").alias("aligned")
    )
    joined = imputed.join(aligned, on=["interval_start_utc", "region", "series"], how="left")
    assert joined.height == imputed.height == aligned.height
    # the reported value is kept beside the filled one, bit for bit
    assert (joined["value_reported"].eq_missing(joined["aligned"])).all()
    observed = imputed.filter(pl.col("is_observed"))
    assert (observed["method"] == "observed").all()
    assert (observed["value"] == observed["value_reported"]).all()
    flagged = imputed.filter(~pl.col("is_observed"))
    assert flagged.height > 0, "the defect world should trip some screens"
    assert (flagged["flag"] != "OKAY").all()
    assert (flagged["method"] != "observed").all()
    demand = imputed.filter(pl.col("series") == "demand")
    assert demand["value"].null_count() == 0
    assert (demand["value"] > 0).all()


def test_reconciled_leaves_a_consistent_world_alone_but_for_the_floors(clean_run):
    """The synthetic truth satisfies every identity (D = NG - TI, TI = sum of flows, fuels sum
    to NG), except that its balancing fuel may dip below the 1 MW floor near zero dispatch: the
    reconciliation moves values only in BA-hours where a floor binds."""
    base, _ = clean_run
    out = read(base, "reconciled/series")
    assert (
        out.height
        == read(base, "imputed/series")
        .filter(
            pl.col("series").str.contains(
                "^(demand|net_generation|total_interchange|interchange_to_|generation_)"
            )
            & (pl.col("series") != "demand_forecast_da")
        )
        .height
    )
    floor_hours = out.filter(pl.col("moved_by") == "floor").select("interval_start_utc").unique()
    elsewhere = out.join(floor_hours, on="interval_start_utc", how="anti")
    assert elsewhere.height > 0.5 * out.height
    assert elsewhere["adjustment_mw"].abs().max() < 1e-6
    assert (elsewhere["moved_by"] == "none").all()
    assert not out["is_spike"].any()


def test_reconciled_identities_hold_on_the_defect_world_and_defects_move_most(defect_run):
    from energy_assets.transform.reconcile import identity_residuals

    base, _ = defect_run
    out = read(base, "reconciled/series")
    before = identity_residuals(out, "value_imputed")["residual_mw"].abs()
    after = identity_residuals(out)["residual_mw"].abs()
    assert before.max() > 100  # the defects break the balance
    assert after.max() < 1.0
    moved = out.filter(pl.col("adjustment_mw").abs() > 1.0)
    share_flagged_moved = moved.filter(~pl.col("is_observed") | pl.col("is_spike")).height
    assert share_flagged_moved > 0
    mean_abs = out.group_by("is_observed").agg(pl.col("adjustment_mw").abs().mean())
    by = dict(mean_abs.iter_rows())
    assert by[False] > 10 * by[True]  # a flagged value is cheap to move, an observed one is not


def test_feature_lags_cross_partition_borders(clean_run):
    base, _ = clean_run
    features = read(base, "features/hourly").sort("region", "interval_start_utc")
    imputed = read(base, "imputed/series").filter(pl.col("series") == "demand")
    day = datetime.fromisoformat("2024-03-10").replace(tzinfo=UTC)
    row = features.filter((pl.col("region") == "ERCO") & (pl.col("interval_start_utc") == day)).row(
        0, named=True
    )
    previous = imputed.filter(
        (pl.col("region") == "ERCO") & (pl.col("interval_start_utc") == day - timedelta(hours=24))
    )["value"].item()
    assert row["demand_mw_lag_24h"] == previous
    assert features.group_by("region").len()["len"].to_list() == [5 * 24] * len(RESPONDENTS)


def test_ml_files_carry_self_describing_metadata(clean_run):
    import json

    base, result = clean_run
    meta = json.loads(read_file_metadata(base / "ml/ring_segments.parquet")["energy_assets.ml"])
    assert meta["layout"] == "zigzag" and meta["world_size"] == 2
    assert {"perm", "inverse_perm", "normalization", "split", "seed", "days",
            "schema_version", "chunk_size", "feature_columns"} <= set(meta)  # fmt: skip
    assert meta["days"] == [FIRST, "2024-03-12"]  # the split window "all": train_start..test_end
    day = json.loads(read_file_metadata(base / "ml/dataset/2024-03-10.parquet")["energy_assets.ml"])
    stats = pl.read_parquet(base / "ml/normalization.parquet")
    assert day["normalization"]["stats"] == stats.to_dicts()
    ring_checks = [
        e for e in result.get_asset_check_evaluations()
        if e.check_name == "ring_attention_matches_full_attention"
    ]  # fmt: skip
    assert ring_checks and all(e.passed for e in ring_checks)
    assert all(e.metadata["max_abs_err"].value < 1e-5 for e in ring_checks)


def test_forecaster_and_its_evaluation_are_stored_readable_and_checked(clean_run, tmp_path):
    import json

    from energy_assets.ml import forecaster as fc
    from energy_assets.ml.loader import load_safetensors

    base, result = clean_run
    weights = pl.read_parquet(base / "ml/forecaster.parquet")
    meta = json.loads(read_file_metadata(base / "ml/forecaster.parquet")["energy_assets.ml"])
    # trained on the train + val days only (test starts 2024-03-12), on the 2-process ring
    assert meta["training_days"] == [FIRST, "2024-03-11"]
    assert meta["config"]["world_size"] == 2 and len(meta["ranks"]) == 2
    assert len(meta["data_version"]) == 64 and meta["regions"] == sorted(RESPONDENTS)
    _model, config = fc.model_from_table(weights, meta)
    assert config.world_size == 2
    fc.export_weights_safetensors(tmp_path / "w.safetensors", weights, meta)
    arrays, back = load_safetensors(tmp_path / "w.safetensors")
    assert back == meta and set(arrays) == set(weights["name"])
    scores = pl.read_parquet(base / "ml/forecast_eval.parquet")
    assert sorted(scores["region"]) == sorted(RESPONDENTS)
    assert (scores["n_hours"] > 0).all() and scores["mape_model"].is_finite().all()
    evaluations = {
        (e.asset_key.to_user_string(), e.check_name): e.passed
        for e in result.get_asset_check_evaluations()
    }
    assert evaluations[("ml/forecaster", "weights_finite_and_loss_finite")]
    assert evaluations[("ml/forecast_eval", "complete_per_region_and_finite")]
    materialized = {
        event.asset_key.to_user_string(): event.materialization.metadata
        for event in result.get_asset_materialization_events()
    }
    assert "training_curve" in materialized["ml/forecaster"]
    assert "evaluation" in materialized["ml/forecast_eval"]


def test_forecaster_trains_on_moved_statistics_without_rematerializing_ml_dataset(
    clean_run, tmp_path
):
    """Overlapping backfills can move the statistics (a revised day in the training window)
    while the ml/dataset days are stale: the forecaster and its evaluation build from
    features + the current statistics, so they neither refuse nor mix stale days, and the model
    equals one trained on the ml/dataset days rebuilt with the new statistics."""
    import json
    import shutil

    import numpy as np
    from dagster import AssetKey, AssetSelection
    from mlx.utils import tree_flatten

    from energy_assets.ml import forecaster as fc
    from energy_assets.ml.loader import load_dataset_tensors

    def footer(path):
        return json.loads(read_file_metadata(path)["energy_assets.ml"])

    base = tmp_path / "store"
    shutil.copytree(clean_run[0], base)
    day_files = sorted((base / "ml/dataset").glob("*.parquet"))
    stale = {footer(p)["statistics_fingerprint"] for p in day_files}
    day_bytes = [p.read_bytes() for p in day_files]
    stats_before = pl.read_parquet(base / "ml/normalization.parquet")
    trained_before = footer(base / "ml/forecaster.parquet")
    assert trained_before["statistics_fingerprint"] in stale and len(stale) == 1

    # another world's 2024-03-09 (inside the training window) moves the statistics
    # (with the revisions each raw responses step also makes)
    features_up = (
        AssetSelection.assets(AssetKey(["features", "hourly"]))
        .upstream()
        .required_multi_asset_neighbors()
    )
    other_world = SourcesResource(respondents=RESPONDENTS, seed=22, defects=False)
    assert run_all(base, other_world, selection=features_up, first="2024-03-09",
                   last="2024-03-09").success  # fmt: skip
    sources = SourcesResource(respondents=RESPONDENTS, seed=21, defects=False)
    whole = [AssetKey(["ml", k]) for k in ("normalization", "forecaster", "forecast_eval")]
    result = run_all(base, sources, selection=whole, first=None)
    assert result.success
    assert not pl.read_parquet(base / "ml/normalization.parquet").equals(stats_before)
    assert [p.read_bytes() for p in day_files] == day_bytes  # ml/dataset days untouched: stale
    trained = footer(base / "ml/forecaster.parquet")
    assert trained["statistics_fingerprint"] not in stale
    assert trained["data_version"] != trained_before["data_version"]
    assert trained["training_days"] == [FIRST, "2024-03-11"]
    scored = footer(base / "ml/forecast_eval.parquet")
    assert scored["model_data_version"] == trained["data_version"]
    assert pl.read_parquet(base / "ml/forecast_eval.parquet")["mape_model"].is_finite().all()

    # the same model as from the ml/dataset days of the window rebuilt with the new statistics
    assert run_all(base, sources, selection=[AssetKey(["ml", "dataset"])]).success
    window = [base / f"ml/dataset/{d}.parquet" for d in
              ("2024-03-08", "2024-03-09", "2024-03-10", "2024-03-11")]  # fmt: skip
    assert {footer(p)["statistics_fingerprint"] for p in window} == {
        trained["statistics_fingerprint"]
    }
    series = fc.SeriesArrays.from_tensors(load_dataset_tensors(window))
    expected = fc.train_forecaster(series, fc.ForecasterConfig(**trained["config"]))
    want = {k: np.array(v) for k, v in tree_flatten(expected.model.parameters())}
    got = fc.named_arrays(pl.read_parquet(base / "ml/forecaster.parquet"))
    assert got.keys() == want.keys()
    assert max(float(np.abs(got[k] - want[k]).max()) for k in got) < 1e-6
