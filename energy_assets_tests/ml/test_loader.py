"""Parquet and frames -> MLX tensors (one copy), safetensors export with metadata, batches."""

from __future__ import annotations

import tracemalloc

import mlx.core as mx
import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from energy_assets.ml import loader
from energy_assets.ml.dataset import DatasetConfig, build_dataset, partition_by_day
from energy_assets.ml.ring import RingConfig, build_ring_segments
from energy_assets_tests.ml.conftest import SPEC, synthetic_features

REGIONS = ["AAA", "BBB", "CCC"]


@pytest.fixture(scope="module")
def dataset():
    features = synthetic_features(REGIONS, 24 * 20, seed=9, drop_fraction=0.01)
    return build_dataset(
        features,
        SPEC,
        DatasetConfig(context_length=48, horizon=24, max_context_pad_fraction=0.1),
    )


def _day_files(dataset, tmp_path):
    paths = []
    for day, part in partition_by_day(dataset.to_frame()).items():
        path = tmp_path / f"{day}.parquet"
        loader.write_parquet(part, path, dataset.metadata)
        paths.append(path)
    return paths


def test_parquet_metadata_blob_round_trips_and_is_visible_to_pyarrow_file_metadata(
    dataset, tmp_path
):
    path = tmp_path / "x.parquet"
    loader.write_parquet(dataset.series.head(10), path, dataset.metadata)
    assert loader.read_parquet_metadata(path) == dataset.metadata
    schema_meta = pq.read_metadata(path).metadata  # file key-value metadata
    assert (
        loader.decode_parquet_metadata(schema_meta)["statistics_fingerprint"]
        == (dataset.metadata["statistics_fingerprint"])
    )
    with pytest.raises(KeyError, match=r"energy_assets\.ml"):
        loader.decode_parquet_metadata({b"other": b"{}"})


def test_day_partitions_in_any_order_load_to_the_grid_tensors(dataset, tmp_path):
    paths = _day_files(dataset, tmp_path)
    rng = np.random.default_rng(0)
    tensors = loader.load_dataset_tensors([paths[i] for i in rng.permutation(len(paths))])
    r, t = len(REGIONS), dataset.series["t"].n_unique()
    series = dataset.series.sort("region_index", "t")
    expected = {
        "target": series["target_z"].to_numpy().reshape(r, t),
        "known": series.select(dataset.metadata["feature_columns"]["known"])
        .to_numpy()
        .reshape(r, t, -1),
        "past": series.select(dataset.metadata["feature_columns"]["past"])
        .to_numpy()
        .reshape(r, t, -1),
        "is_observed": series["is_observed"].to_numpy().reshape(r, t),
        "is_pad": series["is_pad"].to_numpy().reshape(r, t),
        "loss_weight": series["loss_weight"].to_numpy().reshape(r, t),
        "target_raw": series["demand_mw"].to_numpy().astype(np.float32).reshape(r, t),
    }
    arrays = tensors.arrays()
    for name, want in expected.items():
        got = np.array(arrays[name])
        assert got.shape == want.shape, name
        np.testing.assert_array_equal(got, want, err_msg=name)
    windows = dataset.windows.sort("region_index", "origin_t")
    first_t = dataset.series["t"].min()
    assert tensors.metadata["first_t"] == first_t
    assert np.array_equal(np.array(tensors.window_origin), windows["origin_t"].to_numpy() - first_t)
    codes = windows["split"].cast(pl.Utf8).replace_strict(loader.SPLIT_CODES).to_numpy()
    assert np.array_equal(np.array(tensors.window_split), codes)


def test_in_memory_frame_gives_the_same_tensors_as_parquet(dataset, tmp_path):
    from_files = loader.load_dataset_tensors(_day_files(dataset, tmp_path))
    in_memory = loader.load_dataset_tensors(dataset.to_frame(), dataset.metadata)
    for name, arr in from_files.arrays().items():
        assert mx.array_equal(arr, in_memory.arrays()[name], equal_nan=True).item(), name


def test_columns_to_mx_allocates_no_intermediate_numpy_copy():
    n = 400_000
    frame = pl.DataFrame(
        {f"c{i}": np.random.default_rng(i).standard_normal(n).astype(np.float32) for i in range(4)}
    )
    tracemalloc.start()
    try:
        out = loader.columns_to_mx(frame, frame.columns)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    data_bytes = n * 4 * 4
    # numpy allocations are traced; a stack or astype of the columns would show ~data_bytes.
    assert peak < data_bytes / 20, peak
    np.testing.assert_array_equal(np.array(out), frame.to_numpy())


def test_columns_to_mx_scatters_rows_and_converts_dtypes():
    frame = pl.DataFrame({"a": [1.5, 2.5, 3.5], "b": [1, 2, 3], "m": [True, False, True]})
    rows = np.array([4, 0, 2])
    out = loader.columns_to_mx(frame, ["a", "b"], rows=rows, n_rows=5)
    np.testing.assert_array_equal(np.array(out), [[2.5, 2], [0, 0], [3.5, 3], [0, 0], [1.5, 1]])
    mask = loader.columns_to_mx(frame, ["m"], dtype=mx.bool_)
    assert np.array(mask).ravel().tolist() == [True, False, True]
    with_null = loader.columns_to_mx(pl.DataFrame({"x": [1.0, None]}), ["x"])
    assert np.isnan(np.array(with_null)[1, 0])


def test_days_normalised_with_different_statistics_are_refused(dataset, tmp_path):
    paths = _day_files(dataset, tmp_path)
    other = dict(dataset.metadata, statistics_fingerprint="other-statistics")
    loader.write_parquet(pl.read_parquet(paths[0]), paths[0], other)
    with pytest.raises(ValueError, match="different statistics"):
        loader.load_dataset_tensors(paths)


def test_safetensors_export_keeps_arrays_and_metadata(dataset, tmp_path):
    tensors = loader.load_dataset_tensors(dataset.to_frame(), dataset.metadata)
    path = tmp_path / "dataset.safetensors"
    loader.export_safetensors(path, tensors.arrays(), dataset.metadata)
    arrays, meta = loader.load_safetensors(path)
    assert meta == dataset.metadata
    assert set(arrays) == set(tensors.arrays())
    for name, arr in tensors.arrays().items():
        assert arrays[name].dtype == arr.dtype
        assert mx.array_equal(arrays[name], arr, equal_nan=True).item(), name
    mx.save_safetensors(str(tmp_path / "bare.safetensors"), {"x": mx.zeros(2)})
    with pytest.raises(KeyError, match="export_safetensors"):
        loader.load_safetensors(tmp_path / "bare.safetensors")


def test_gathered_batch_matches_series_slices_and_keeps_past_covariates_in_the_past(dataset):
    tensors = loader.load_dataset_tensors(dataset.to_frame(), dataset.metadata)
    ids = np.array([0, 3, len(dataset.windows) - 1])
    batch = loader.gather_windows(tensors, ids)
    ctx, h = 48, 24
    series = dataset.series
    for b, w in enumerate(
        dataset.windows.sort("region_index", "origin_t")[ids].iter_rows(named=True)
    ):
        rows = series.filter(pl.col("region_index") == w["region_index"]).sort("t")
        origin = w["origin_t"] - rows["t"].min()
        past = rows.slice(origin - ctx, ctx)
        future = rows.slice(origin, h)
        np.testing.assert_array_equal(np.array(batch["past_target"][b]), past["target_z"])
        np.testing.assert_array_equal(np.array(batch["future_target"][b]), future["target_z"])
        np.testing.assert_array_equal(
            np.array(batch["future_loss_weight"][b]), future["loss_weight"]
        )
        np.testing.assert_array_equal(
            np.array(batch["past_covariates"][b, :, 0]), past["past_z__temperature_c"]
        )
    assert batch["past_covariates"].shape == (3, ctx, 1)
    assert "future_covariates" not in batch


def test_ring_arrays_per_rank_reassemble_to_global_order(dataset, tmp_path):
    seg = build_ring_segments(
        dataset.series, dataset.metadata, RingConfig(world_size=2, sequence_length=200)
    )
    arrays = loader.ring_segments_to_arrays(seg.tokens, seg.metadata)
    path = tmp_path / "ring.safetensors"
    loader.export_safetensors(path, arrays, seg.metadata)
    loaded, meta = loader.load_safetensors(path)
    assert meta["layout"] == "zigzag"
    p, n = meta["world_size"], meta["n_padded"]
    positions = np.concatenate([np.array(loaded[f"rank{r}.position_ids"]) for r in range(p)], 1)
    values = np.concatenate([np.array(loaded[f"rank{r}.values"]) for r in range(p)], 1)
    inverse = np.array(loaded["inverse_perm"])
    assert np.array_equal(positions[:, inverse], np.tile(np.arange(n), (meta["n_sequences"], 1)))
    first = seg.tokens.filter(pl.col("sequence_id") == 0).sort("position_id")
    np.testing.assert_array_equal(
        values[0][inverse], first.select(meta["feature_columns"]).to_numpy()
    )
