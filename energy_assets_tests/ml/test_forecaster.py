"""The forecaster: ring training equals full training, no leakage, weights round-trip, metrics."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest
from mlx.utils import tree_flatten

from energy_assets.ml import forecaster as fc
from energy_assets.ml.dataset import DatasetConfig, FeatureSpec, build_dataset, fit_normalization
from energy_assets.ml.loader import load_dataset_tensors, load_safetensors
from energy_assets_tests.ml.conftest import START, synthetic_features

SPEC = FeatureSpec(
    target="demand_mw",
    known_in_advance=["hour_sin", "hour_cos", "demand_forecast_da_mw"],
    past_only=["temperature_c"],
)
CONFIG = DatasetConfig(
    context_length=24,
    horizon=24,
    train_start_utc=START,
    val_start_utc=START + timedelta(days=20),
    test_start_utc=START + timedelta(days=25),
    test_end_utc=START + timedelta(days=30),
)
TEST_START = START + timedelta(days=25)
SMALL = fc.ForecasterConfig(context_hours=96, d_model=16, steps=4, batch_size=4, eval_every=2)


def _features(poison_test: bool = False) -> pl.DataFrame:
    frame = synthetic_features(["A", "B"], 24 * 30, seed=1).with_columns(
        (pl.col("demand_mw") * 1.02 + 30.0).alias("demand_forecast_da_mw")
    )
    if poison_test:
        # the test period's targets, forecasts and weather become absurd
        late = pl.col("interval_start_utc") >= TEST_START
        frame = frame.with_columns(
            pl.when(late).then(pl.col(c) * 1000 + 7).otherwise(pl.col(c)).alias(c)
            for c in ("demand_mw", "demand_forecast_da_mw", "temperature_c")
        )
    return frame


def _series(features: pl.DataFrame) -> fc.SeriesArrays:
    stats = fit_normalization(features, SPEC, CONFIG)
    dataset = build_dataset(features, SPEC, CONFIG, stats=stats)
    return fc.SeriesArrays.from_tensors(load_dataset_tensors(dataset.to_frame(), dataset.metadata))


@pytest.fixture(scope="module")
def series() -> fc.SeriesArrays:
    return _series(_features())


def _params(result: fc.TrainResult) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in tree_flatten(result.model.parameters())}


def test_ring_training_on_two_processes_equals_full_attention_training(series):
    full = fc.train(series, SMALL)
    ring = fc.train_distributed(series, SMALL.model_copy(update={"world_size": 2}), timeout_s=120)
    assert len(ring.losses) == SMALL.steps and len(ring.ranks) == 2
    assert max(abs(a - b) for a, b in zip(full.losses, ring.losses, strict=True)) < 1e-4
    assert full.losses[-1] < full.losses[0]  # it learns
    a, b = _params(full), _params(ring)
    assert a.keys() == b.keys() == full.first_grads.keys() == ring.first_grads.keys()
    grad_err = max(float(np.abs(full.first_grads[k] - ring.first_grads[k]).max()) for k in a)
    assert grad_err < 1e-5, grad_err
    diff = max(float(np.abs(a[k] - b[k]).max()) for k in a)
    assert diff < 1e-4, diff
    # training moved the parameters far more than the ring/full difference
    fresh = {k: np.array(v) for k, v in tree_flatten(fc.build_model(1, SMALL).parameters())}
    moved = max(float(np.abs(a[k] - fresh[k]).max()) for k in a if a[k].shape == fresh[k].shape)
    assert moved > 100 * diff
    for (_, va), (_, vb) in zip(full.val_losses, ring.val_losses, strict=True):
        assert abs(va - vb) < 1e-4


def test_test_period_poison_changes_neither_statistics_nor_trained_weights(series):
    clean, poisoned = _features(), _features(poison_test=True)
    assert not clean.equals(poisoned)
    stats = fit_normalization(clean, SPEC, CONFIG)
    assert stats.equals(fit_normalization(poisoned, SPEC, CONFIG))
    bad = _series(poisoned)
    assert not np.array_equal(bad.target_raw, series.target_raw)  # the poison is in the series
    a, b = _params(fc.train(series, SMALL)), _params(fc.train(bad, SMALL))
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_horizon_tokens_carry_no_target_or_past_only_input(series):
    for window in series.windows("val")[:3]:
        ids = np.array([window])
        before = fc.make_batch(series, ids, SMALL)
        poisoned = fc.SeriesArrays(
            **{k: np.copy(v) for k, v in series.arrays().items()}, metadata={}
        )
        r, o = series.window_region[window], series.window_origin[window]
        # everything observed from the origin on becomes absurd
        poisoned.target[r, o:] = 99.0
        poisoned.past[r, o:] = -99.0
        poisoned.is_observed[r, o:] = ~poisoned.is_observed[r, o:]
        poisoned.valid_past[r, o:] = ~poisoned.valid_past[r, o:]
        after = fc.make_batch(poisoned, ids, SMALL)
        assert np.array_equal(before.x, after.x)
        # ... but the target it is scored against does change: the horizon is where the loss is
        assert not np.array_equal(before.target, after.target)
        assert before.weight[:, : -SMALL.horizon].sum() == 0


def test_weights_round_trip_through_the_table_and_safetensors(series, tmp_path):
    model = fc.train(series, SMALL.model_copy(update={"steps": 1})).model
    table = fc.weights_table(model)
    assert table.schema == pl.Schema(fc.WEIGHTS_SCHEMA)
    n_in = fc.n_inputs(series.n_known, series.n_past)
    meta = {"config": SMALL.model_dump(mode="json"), "n_inputs": n_in}
    again, config = fc.model_from_table(table, meta)
    assert config == SMALL
    ids = series.windows("test")
    want = fc.predict(model, series, ids, SMALL)
    assert np.array_equal(fc.predict(again, series, ids, config), want)
    fc.export_weights_safetensors(tmp_path / "w.safetensors", table, meta)
    arrays, meta_back = load_safetensors(tmp_path / "w.safetensors")
    assert meta_back == meta
    loaded = fc.model_from_arrays({k: np.array(v) for k, v in arrays.items()}, n_in, config)
    assert np.array_equal(fc.predict(loaded, series, ids, config), want)
    with pytest.raises(ValueError, match="do not match"):
        fc.model_from_table(table.head(2), meta)


def test_tiled_one_process_prediction_equals_dense(series):
    model = fc.train(series, SMALL.model_copy(update={"steps": 1})).model
    ids = series.windows("test")
    dense = fc.predict(model, series, ids, SMALL)
    tiled = fc.predict(model, series, ids, SMALL, tiled_above=0)
    assert np.abs(dense - tiled).max() < 1e-5


def test_evaluation_scores_the_three_forecasts_on_the_same_hours(series):
    model = fc.train(series, SMALL.model_copy(update={"steps": 1})).model
    table, rows = fc.evaluate(model, series, SMALL)
    assert table["region"].to_list() == ["A", "B"]
    assert table.schema == pl.Schema(fc.EVAL_SCHEMA)
    assert (table["n_windows"] == 5).all() and (table["n_hours"] > 0).all()
    used = rows.filter(pl.col("scored"))
    # the day-ahead forecast is demand * 1.02 + 30 on imputed-and-observed hours alike: its
    # MAPE is known independently of the model
    a = used.filter(pl.col("region") == "A")
    actual = a["actual_mw"].to_numpy()
    expected = 100 * np.mean(np.abs(0.02 * actual + 30) / actual)
    got = table.filter(pl.col("region") == "A")["mape_day_ahead_forecast"][0]
    assert got == pytest.approx(expected, rel=1e-5)
    # seasonal naive = the raw target 168 h before
    t = used["t"].to_numpy() - series.metadata["first_t"]
    r = np.where(used["region"].to_numpy() == "A", 0, 1)
    assert np.array_equal(used["seasonal_naive_mw"].to_numpy(), series.target_raw[r, t - 168])
    assert np.isfinite(table["mape_model"].to_numpy()).all()
    assert fc.mape(np.array([100.0, 200.0]), np.array([110.0, 180.0])) == pytest.approx(10.0)


def test_forecast_scale_augmentation_scales_the_forecast_in_mw_and_nothing_else(series):
    ids = series.windows("train")[:3]
    plain = fc.make_batch(series, ids, SMALL)
    scale = np.array([0.5, 1.0, 1.6])
    scaled = fc.make_batch(series, ids, SMALL, forecast_scale=scale)
    names = fc.input_names(*(
        [series.metadata["feature_columns"]["source_names"][c] for c in
         series.metadata["feature_columns"][group]]
        for group in ("known", "past")
    ))  # fmt: skip
    col = names.index(fc.FORECAST_FEATURE)
    others = [i for i in range(len(names)) if i != col]
    assert np.array_equal(plain.x[..., others], scaled.x[..., others])
    assert np.array_equal(plain.target, scaled.target) and np.array_equal(
        plain.weight, scaled.weight
    )
    # in MW (the region's forecast statistics from the metadata), the forecast is scaled
    stats = {r["region"]: (r["mean"], r["std"]) for r in series.metadata["normalization"]["stats"]
             if r["feature"] == fc.FORECAST_FEATURE}  # fmt: skip
    valid = plain.x[..., names.index(f"valid:{fc.FORECAST_FEATURE}")] > 0
    assert valid.any()
    for i, window in enumerate(ids):
        mean, std = stats[series.metadata["regions"][series.window_region[window]]]
        mw, mw_scaled = plain.x[i, :, col] * std + mean, scaled.x[i, :, col] * std + mean
        ok = valid[i]
        np.testing.assert_allclose(mw_scaled[ok], scale[i] * mw[ok], rtol=1e-5)
        assert (scaled.x[i, ~ok, col] == 0).all()
    draws = fc.forecast_scales(np.random.default_rng(0), 10_000, 0.4)
    assert draws.min() >= 0.6 - 1e-9 and draws.max() <= 1 / 0.6 + 1e-9
    assert 0.45 < (draws == 1.0).mean() < 0.55
