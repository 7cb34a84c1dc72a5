"""Dataset build: grid and masks, splits without target leakage, training-only statistics."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from energy_assets.ml.dataset import (
    DatasetConfig,
    FeatureSpec,
    MLDataset,
    build_dataset,
    check_dataset,
    fit_normalization,
    partition_by_day,
)
from energy_assets.ml.normalize import denormalize
from energy_assets_tests.ml.conftest import SPEC, START, synthetic_features

REGIONS = ["AAA", "BBB", "CCC"]


def _build(n_hours: int = 24 * 40, seed: int = 0, **config) -> tuple[pl.DataFrame, MLDataset]:
    features = synthetic_features(REGIONS, n_hours, seed=seed, drop_fraction=0.01)
    cfg = DatasetConfig(
        **{"context_length": 48, "horizon": 24, "max_context_pad_fraction": 0.2, **config}
    )
    return features, build_dataset(features, SPEC, cfg)


def _target_hours(windows: pl.DataFrame, split: str, horizon: int) -> set[int]:
    origins = windows.filter(pl.col("split") == split)["origin_t"].to_numpy()
    return set((origins[:, None] + np.arange(horizon)[None, :]).ravel().tolist())


def test_splits_never_share_a_target_hour_and_keep_a_horizon_gap():
    rng = np.random.default_rng(1)
    for case in range(8):
        horizon = int(rng.integers(1, 49))
        stride = int(rng.integers(1, 30))
        _, ds = _build(
            24 * 30,
            seed=case,
            horizon=horizon,
            stride=stride,
            context_length=int(rng.integers(1, 72)),
        )
        b = ds.metadata["split_bounds"]
        train, val, test = (_target_hours(ds.windows, s, horizon) for s in ("train", "val", "test"))
        assert train and val and test, (horizon, stride)
        assert not train & val and not train & test and not val & test
        assert max(train) < b["val_start_t"] <= min(val)
        assert max(val) < b["test_start_t"] <= min(test)
        train_origins = ds.windows.filter(pl.col("split") == "train")["origin_t"]
        val_origins = ds.windows.filter(pl.col("split") == "val")["origin_t"]
        assert val_origins.min() - train_origins.max() >= horizon


def test_straddling_origins_are_dropped_not_relabelled():
    horizon = 6
    _, ds = _build(24 * 30, horizon=horizon, stride=1, min_target_observed_fraction=0.0)
    # Stride 1: origins in (T - horizon, T) straddle each of the two boundaries in each region.
    assert ds.counts["dropped_straddling"] == 2 * (horizon - 1) * len(REGIONS)


def test_statistics_use_only_training_rows_with_observed_target():
    features, ds = _build()
    val_start = datetime.fromisoformat(ds.metadata["split_bounds"]["val_start_utc"])
    for region in REGIONS:
        rows = features.filter(
            (pl.col("region") == region) & (pl.col("interval_start_utc") < val_start)
        )
        target = rows.filter(pl.col("is_observed"))["demand_mw"].to_numpy()
        temperature = rows["temperature_c"].to_numpy()
        stats = ds.stats.filter(pl.col("region") == region)
        got = {r["feature"]: r for r in stats.iter_rows(named=True)}
        assert got["demand_mw"]["mean"] == pytest.approx(target.mean(), rel=1e-12)
        assert got["demand_mw"]["std"] == pytest.approx(target.std(), rel=1e-9)
        assert got["demand_mw"]["n_used"] == target.size
        # Covariates carry no imputation flag: every non-null training row counts.
        assert got["temperature_c"]["mean"] == pytest.approx(temperature.mean(), rel=1e-12)


def test_statistics_ignore_later_splits_and_imputed_values():
    features, ds = _build()
    val_start = datetime.fromisoformat(ds.metadata["split_bounds"]["val_start_utc"])
    later = pl.col("interval_start_utc") >= val_start
    imputed = ~pl.col("is_observed")
    poisoned = features.with_columns(
        pl.when(later | imputed)
        .then(pl.col("demand_mw") * 1000 + 5e6)
        .otherwise(pl.col("demand_mw"))
        .alias("demand_mw"),
        pl.when(later).then(pl.col("temperature_c") + 500).otherwise(pl.col("temperature_c")),
    )
    again = build_dataset(poisoned, SPEC, DatasetConfig(**ds.metadata["config"]))
    assert again.stats.equals(ds.stats)
    assert not again.series.equals(ds.series)  # the later values themselves did change


def test_imputed_targets_stay_as_inputs_with_zero_loss_weight():
    features, ds = _build()
    joined = ds.series.join(
        features.select("region", "interval_start_utc", pl.col("is_observed").alias("src_obs")),
        on=["region", "interval_start_utc"],
        how="left",
    )
    imputed = joined.filter(pl.col("src_obs") == False)  # noqa: E712
    assert imputed.height > 0
    assert (imputed["loss_weight"] == 0).all() and (~imputed["is_observed"]).all()
    assert (imputed["target_z"].abs() > 0).all()  # kept as an input value, not zeroed
    assert (
        ds.series["loss_weight"]
        == (ds.series["is_observed"] & ~ds.series["is_pad"]).cast(pl.Float32)
    ).all()


def test_missing_hours_become_padding_rows_on_a_complete_grid():
    features, ds = _build()
    n_steps = ds.series["t"].n_unique()
    assert ds.series.height == len(REGIONS) * n_steps
    absent = len(REGIONS) * n_steps - features.height
    assert absent > 0 and ds.series["is_pad"].sum() == absent
    pads = ds.series.filter(pl.col("is_pad"))
    assert (pads["loss_weight"] == 0).all() and (~pads["is_observed"]).all()
    assert (pads["target_z"] == 0).all() and pads["demand_mw"].null_count() == pads.height
    assert (ds.series["t"].diff().drop_nulls().is_in([1, -(n_steps - 1)])).all()


def test_known_and_past_covariates_are_kept_apart():
    _, ds = _build()
    cols = ds.metadata["feature_columns"]
    assert cols["known"] == ["known_z__hour_sin", "known_z__hour_cos"]
    assert cols["past"] == ["past_z__temperature_c"]
    assert cols["target"] == "target_z" and cols["raw_target"] == "demand_mw"
    assert set(cols["all"]) <= set(ds.series.columns)


def test_normalised_target_maps_back_to_megawatts():
    _, ds = _build()
    real = ds.series.filter(~pl.col("is_pad"))
    back = real.select(
        denormalize(pl.col("target_z"), ds.stats, "demand_mw", pl.col("region")).alias("mw")
    )["mw"]
    np.testing.assert_allclose(back.to_numpy(), real["demand_mw"].to_numpy(), rtol=2e-6)


def test_region_without_training_data_falls_back_to_pooled_statistics():
    features = synthetic_features(REGIONS, 24 * 30, imputed_fraction=0.0)
    late = features.filter(
        (pl.col("region") != "CCC") | (pl.col("interval_start_utc") >= START + timedelta(days=25))
    )
    ds = build_dataset(late, SPEC, DatasetConfig(context_length=24, horizon=24))
    ccc = ds.stats.filter(pl.col("region") == "CCC")
    assert ccc["pooled"].all()
    assert not ds.stats.filter(pl.col("region") != "CCC")["pooled"].any()


def test_constant_feature_gets_unit_std_instead_of_division_by_zero():
    features = synthetic_features(REGIONS, 24 * 20).with_columns(pl.lit(1.0).alias("flag"))
    spec = FeatureSpec(target="demand_mw", known_in_advance=["flag"], past_only=[])
    ds = build_dataset(features, spec, DatasetConfig(context_length=24, horizon=24))
    flag = ds.stats.filter(pl.col("feature") == "flag")
    assert flag["std_floored"].all() and (flag["std"] == 1.0).all()
    assert (ds.series["known_z__flag"] == 0).all()


def test_frame_round_trip_and_day_partitions_rebuild_the_dataset():
    _, ds = _build()
    frame = ds.to_frame()
    parts = partition_by_day(frame)
    assert len(parts) == ds.series["t"].n_unique() // 24
    for day, part in parts.items():
        assert (part["interval_start_utc"].dt.date().cast(pl.Utf8) == day).all()
    rebuilt = MLDataset.from_frame(pl.concat(list(parts.values())[::-1]), ds.metadata)
    assert rebuilt.series.equals(ds.series)
    assert rebuilt.windows.equals(ds.windows)
    assert rebuilt.stats.equals(ds.stats)
    json.dumps(ds.metadata)  # the metadata must be JSON as it is


def test_build_is_deterministic():
    features, ds = _build()
    again = build_dataset(
        features.sample(fraction=1.0, shuffle=True, seed=3),
        SPEC,
        DatasetConfig(**ds.metadata["config"]),
    )
    assert again.series.equals(ds.series)
    assert again.metadata["statistics_fingerprint"] == ds.metadata["statistics_fingerprint"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: pl.concat([f, f.head(1)]), "duplicated"),
        (lambda f: f.drop("is_observed"), "lacks columns"),
        (
            lambda f: f.with_columns(pl.col("interval_start_utc").dt.replace_time_zone(None)),
            "time zone UTC",
        ),
        (
            lambda f: f.with_columns(pl.col("interval_start_utc") + timedelta(minutes=30)),
            "whole hours",
        ),
        (lambda f: f.with_columns(pl.lit("x").alias("temperature_c")), "numeric"),
        (lambda f: f.head(0), "empty"),
    ],
)
def test_bad_features_are_rejected_with_a_clear_message(mutate, message):
    features = synthetic_features(REGIONS, 24 * 10)
    with pytest.raises(ValueError, match=message):
        build_dataset(mutate(features), SPEC, DatasetConfig(context_length=24, horizon=24))


def test_split_dates_out_of_order_are_rejected():
    features = synthetic_features(REGIONS, 24 * 10)
    cfg = DatasetConfig(
        context_length=24,
        horizon=24,
        val_start_utc=datetime(2030, 2, 1, tzinfo=UTC),
        test_start_utc=datetime(2030, 1, 1, tzinfo=UTC),
    )
    with pytest.raises(ValueError, match="must satisfy"):
        build_dataset(features, SPEC, cfg)


def test_fractional_split_dates_outside_the_range_are_rejected():
    features = synthetic_features(REGIONS, 24 * 10)
    cfg = DatasetConfig(
        context_length=24, horizon=24, val_start_utc=datetime(2030, 1, 1, tzinfo=UTC)
    )
    with pytest.raises(ValueError, match="strictly inside"):
        build_dataset(features, SPEC, cfg)


def test_dataset_check_passes_on_a_build_and_catches_damage():
    _, ds = _build()
    frame = ds.to_frame()
    report = check_dataset(frame, ds.metadata)
    assert report["passed"], report
    assert "target_stats_from_observed_training_rows" in report["checks"]
    for part in list(partition_by_day(frame).values())[:3]:
        assert check_dataset(part, ds.metadata)["passed"]
    skewed = frame.with_columns(
        pl.when(pl.col("t") == frame["t"].min() + 5)
        .then(pl.col("demand_mw") + 1e4)
        .otherwise(pl.col("demand_mw"))
    )
    assert not check_dataset(skewed, ds.metadata)["checks"][
        "target_stats_from_observed_training_rows"
    ]
    leaky = frame.with_columns(
        pl.when(pl.col("is_pad"))
        .then(1.0)
        .otherwise(pl.col("loss_weight"))
        .cast(pl.Float32)
        .alias("loss_weight")
    )
    assert not check_dataset(leaky, ds.metadata)["checks"]["loss_weight_is_observed_and_not_pad"]
    # A validation origin inside the training period: its targets are training hours.
    overlapping = frame.with_columns(
        pl.when(pl.col("t") == frame["t"].min() + 100)
        .then(pl.lit("val"))
        .otherwise(pl.col("window_split").cast(pl.Utf8))
        .cast(pl.Enum(["train", "val", "test"]))
        .alias("window_split")
    )
    assert not check_dataset(overlapping, ds.metadata)["checks"]["no_target_overlap_between_splits"]


def test_covariate_null_everywhere_becomes_zero_but_a_target_without_data_raises():
    features = synthetic_features(REGIONS, 24 * 20).with_columns(
        pl.lit(None, dtype=pl.Float64).alias("demand_forecast_da_mw")
    )
    spec = FeatureSpec(target="demand_mw", known_in_advance=["demand_forecast_da_mw"], past_only=[])
    cfg = DatasetConfig(context_length=24, horizon=24)
    ds = build_dataset(features, spec, cfg)
    forecast = ds.stats.filter(pl.col("feature") == "demand_forecast_da_mw")
    assert (forecast["n_used"] == 0).all() and (forecast["std"] == 1.0).all()
    assert (ds.series["known_z__demand_forecast_da_mw"] == 0).all()
    with pytest.raises(ValueError, match="no observed training rows of the target"):
        build_dataset(features.with_columns(pl.lit(False).alias("is_observed")), spec, cfg)


FIXED = {
    "train_start_utc": START,
    "val_start_utc": START + timedelta(days=20),
    "test_start_utc": START + timedelta(days=30),
    "test_end_utc": START + timedelta(days=40),
}


def test_a_day_built_alone_with_frozen_statistics_equals_the_same_day_of_a_whole_build():
    features = synthetic_features(REGIONS, 24 * 40, seed=4, drop_fraction=0.02)
    cfg = DatasetConfig(context_length=48, horizon=24, max_context_pad_fraction=0.2, **FIXED)
    stats = fit_normalization(features, SPEC, cfg)
    whole = build_dataset(features, SPEC, cfg, stats=stats)
    for offset in (3, 19, 20, 29, 38, 39):  # inside splits, at each boundary, at the data's end
        day = START + timedelta(days=offset)
        context = features.filter(
            pl.col("interval_start_utc").is_between(
                day - timedelta(days=2), day + timedelta(days=2), closed="left"
            )
        )
        alone = build_dataset(
            context, SPEC, cfg, stats=stats, grid_start=day - timedelta(days=2),
            keep=(day, day + timedelta(days=1)),
        )  # fmt: skip
        same_day = pl.col("interval_start_utc").is_between(day, day + timedelta(days=1), "left")
        assert alone.to_frame().equals(whole.to_frame().filter(same_day)), day
        assert alone.metadata["statistics_fingerprint"] == whole.metadata["statistics_fingerprint"]


def test_statistics_come_from_the_training_window_only():
    features = synthetic_features(REGIONS, 24 * 40, seed=5)
    cfg = DatasetConfig(context_length=48, horizon=24, **FIXED)
    stats = fit_normalization(features, SPEC, cfg)
    outside = ~pl.col("interval_start_utc").is_between(
        FIXED["train_start_utc"], FIXED["val_start_utc"], closed="left"
    )
    poisoned = features.with_columns(
        pl.when(outside).then(pl.col("demand_mw") * 7).otherwise(pl.col("demand_mw"))
    )
    assert fit_normalization(poisoned, SPEC, cfg).equals(stats)
    later = features.with_columns(pl.col("interval_start_utc") + timedelta(days=100))
    with pytest.raises(ValueError, match="no feature rows in the training window"):
        fit_normalization(later, SPEC, cfg)


def test_missing_covariates_are_zero_with_a_validity_mask():
    features = synthetic_features(REGIONS, 24 * 40, seed=6)
    holes = pl.col("interval_start_utc").dt.hour() == 7
    features = features.with_columns(
        pl.when(holes).then(None).otherwise(pl.col("temperature_c")).alias("temperature_c")
    )
    ds = build_dataset(features, SPEC, DatasetConfig(context_length=48, horizon=24, **FIXED))
    missing = ds.series.filter(~pl.col("valid__temperature_c"))
    assert missing.height == len(REGIONS) * 40 and (missing["past_z__temperature_c"] == 0).all()
    assert ds.series.filter(~holes)["valid__temperature_c"].all()
    assert check_dataset(ds.to_frame(), ds.metadata)["checks"]["invalid_covariates_are_zero"]


def test_regions_without_statistics_are_left_out_and_named():
    features = synthetic_features(REGIONS, 24 * 40, seed=7)
    cfg = DatasetConfig(context_length=48, horizon=24, **FIXED)
    stats = fit_normalization(features.filter(pl.col("region") != "CCC"), SPEC, cfg)
    ds = build_dataset(features, SPEC, cfg, stats=stats)
    assert ds.metadata["regions_without_statistics"] == ["CCC"]
    assert sorted(ds.series["region"].unique()) == ["AAA", "BBB"]


def test_feature_spec_reads_roles_from_the_features_contract():
    """The business rule that used to live in the asset shell: the filled demand is the target,
    the day-ahead forecast and calendar are known in advance, observed weather and demand lags
    are past-only (treating weather as known ahead would leak the future)."""
    from energy_assets.ml.dataset import feature_spec

    spec = feature_spec()
    assert spec.target == "demand_mw"
    assert {"demand_forecast_da_mw", "hour_sin", "is_us_federal_holiday"} <= set(
        spec.known_in_advance
    )
    assert {"temperature_c", "demand_mw_lag_24h", "demand_mw_mean_168h"} <= set(spec.past_only)
    covariates = [*spec.known_in_advance, *spec.past_only]
    assert not {"demand_mw", "demand_mw_reported", "is_observed", "region"} & set(covariates)
    assert "temperature_c" not in spec.known_in_advance
