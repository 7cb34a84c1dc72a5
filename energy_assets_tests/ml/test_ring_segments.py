"""Ring segments built from a dataset: every token once, padding and masks, self-description."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from energy_assets.ml.dataset import DatasetConfig, build_dataset, partition_by_day
from energy_assets.ml.ring import LAYOUTS, RingConfig, build_ring_segments, check_ring_tokens
from energy_assets_tests.ml.conftest import SPEC, synthetic_features

REGIONS = ["AAA", "BBB", "CCC", "DDD"]


@pytest.fixture(scope="module")
def dataset():
    features = synthetic_features(REGIONS, 24 * 20, seed=4, drop_fraction=0.01)
    return build_dataset(features, SPEC, DatasetConfig(context_length=24, horizon=24))


def _configs():
    rng = np.random.default_rng(2)
    for i in range(9):
        yield RingConfig(
            world_size=int(rng.integers(1, 5)),
            layout=LAYOUTS[i % 3],
            sequence_length=int(rng.integers(50, 700)),
            split=("train", "val", "test", "all")[i % 4],
        )


def test_every_dataset_row_of_the_split_becomes_exactly_one_token(dataset):
    bounds = dataset.metadata["split_bounds"]
    for cfg in _configs():
        seg = build_ring_segments(dataset.series, dataset.metadata, cfg)
        real = seg.tokens.filter(~pl.col("is_ring_pad"))
        t = dataset.series["t"]
        in_split = {
            "train": t < bounds["val_start_t"],
            "val": (t >= bounds["val_start_t"]) & (t < bounds["test_start_t"]),
            "test": t >= bounds["test_start_t"],
            "all": t >= 0,
        }[cfg.split]
        expected = dataset.series.filter(in_split).select("region", "t")
        assert real.height == expected.height
        assert real.select("region", "t").unique().height == real.height
        assert real.select("region", "t").sort("region", "t").equals(expected.sort("region", "t"))
        # Payload travels with its token.
        joined = real.join(dataset.series, on=["region", "t"], suffix="_src")
        for col in dataset.metadata["feature_columns"]["all"]:
            assert (joined[col] == joined[f"{col}_src"]).all()


def test_sequences_are_padded_to_multiple_of_2p_and_masks_match_the_padding(dataset):
    for cfg in _configs():
        seg = build_ring_segments(dataset.series, dataset.metadata, cfg)
        meta, tokens = seg.metadata, seg.tokens
        n_pad = meta["n_padded"]
        assert n_pad % (2 * cfg.world_size) == 0
        # a sequence is as long as asked, or as the tokens there are when fewer (short range)
        assert n_pad >= min(cfg.sequence_length, sum(meta["n_tokens"]))
        assert n_pad - 2 * cfg.world_size < cfg.sequence_length
        assert tokens.height == n_pad * meta["n_sequences"]
        real_counts = (
            tokens.filter(~pl.col("is_ring_pad")).group_by("sequence_id").len().sort("sequence_id")
        )
        assert real_counts["len"].to_list() == meta["n_tokens"]
        with_count = tokens.join(real_counts, on="sequence_id")
        assert (with_count["is_ring_pad"] == (with_count["position_id"] >= with_count["len"])).all()
        pads = tokens.filter(pl.col("is_ring_pad"))
        assert pads["is_pad"].all() and (pads["loss_weight"] == 0).all()
        assert not pads["is_observed"].any()
        for col in meta["feature_columns"]:
            assert (pads[col] == 0).all()
        # Padding is its own segment: a real query can never see a padding key.
        last_real = (
            tokens.filter(~pl.col("is_ring_pad"))
            .group_by("sequence_id")
            .agg(pl.col("segment_id").max().alias("last"))
        )
        check = pads.join(last_real, on="sequence_id")
        assert (check["segment_id"] == check["last"] + 1).all()


def test_rank_and_local_index_follow_the_stored_permutation(dataset):
    for cfg in _configs():
        seg = build_ring_segments(dataset.series, dataset.metadata, cfg)
        perm = np.asarray(seg.metadata["perm"])
        inverse = np.asarray(seg.metadata["inverse_perm"])
        tokens = seg.tokens
        block = seg.metadata["block_size"]
        slot = tokens["rank"].to_numpy() * block + tokens["local_index"].to_numpy()
        assert np.array_equal(perm[slot], tokens["position_id"].to_numpy())
        assert np.array_equal(inverse[perm], np.arange(perm.size))
        # Rows are in layout order: each rank's slice of a sequence is contiguous.
        assert tokens.select("sequence_id", "rank", "local_index").equals(
            tokens.select("sequence_id", "rank", "local_index").sort(
                "sequence_id", "rank", "local_index"
            )
        )


def test_segments_follow_regions_and_positions_restart_per_segment(dataset):
    cfg = RingConfig(world_size=2, layout="zigzag", sequence_length=500, split="all")
    tokens = build_ring_segments(dataset.series, dataset.metadata, cfg).tokens.sort(
        "sequence_id", "position_id"
    )
    real = tokens.filter(~pl.col("is_ring_pad"))
    per_segment = real.group_by("sequence_id", "segment_id").agg(
        pl.col("region").n_unique().alias("regions"),
        pl.col("position_in_segment").min().alias("first"),
        (pl.col("t").max() - pl.col("t").min() + 1 - pl.len()).alias("t_gaps"),
        (pl.col("position_id") - pl.col("position_in_segment")).n_unique().alias("offsets"),
    )
    assert (per_segment["regions"] == 1).all()
    assert (per_segment["first"] == 0).all()
    assert (per_segment["t_gaps"] == 0).all() and (per_segment["offsets"] == 1).all()
    assert per_segment.height > dataset.series["t"].n_unique() * len(REGIONS) // 500


def test_metadata_is_self_describing_json(dataset):
    cfg = RingConfig(world_size=2, layout="zigzag", sequence_length=300, seed=5)
    seg = build_ring_segments(dataset.series, dataset.metadata, cfg)
    meta = json.loads(json.dumps(seg.metadata))
    for key in (
        "layout",
        "world_size",
        "chunk_size",
        "block_size",
        "n_padded",
        "n_tokens",
        "perm",
        "inverse_perm",
        "feature_columns",
        "normalization",
        "split",
        "seed",
        "dataset_statistics_fingerprint",
        "load_balance_worst_sequence",
        "schema_version",
        "epoch_order",
    ):
        assert key in meta, key
    assert meta["chunk_size"] * 2 * meta["world_size"] == meta["n_padded"]
    assert sorted(meta["epoch_order"]) == list(range(meta["n_sequences"]))
    assert meta["dataset_statistics_fingerprint"] == dataset.metadata["statistics_fingerprint"]
    worst, first = meta["load_balance_worst_sequence"], meta["load_balance_first_sequence"]
    assert all(worst[k]["valid_max_over_min"] >= first[k]["valid_max_over_min"] for k in worst)
    again = build_ring_segments(dataset.series, dataset.metadata, cfg)
    assert again.tokens.equals(seg.tokens) and again.metadata == seg.metadata


def test_day_partitions_keep_padding_and_reassemble_bit_for_bit(dataset):
    cfg = RingConfig(world_size=3, layout="striped", sequence_length=400, split="all")
    seg = build_ring_segments(dataset.series, dataset.metadata, cfg)
    parts = partition_by_day(seg.tokens)
    rebuilt = pl.concat(list(parts.values())).sort("sequence_id", "rank", "local_index")
    assert rebuilt.equals(seg.tokens)


def test_unknown_region_is_rejected(dataset):
    with pytest.raises(ValueError, match="not in the dataset regions"):
        build_ring_segments(dataset.series, dataset.metadata, RingConfig(regions=["AAA", "NOPE"]))


def test_structural_check_passes_on_built_tokens_and_each_day_and_fails_on_damage(dataset):
    seg = build_ring_segments(
        dataset.series, dataset.metadata, RingConfig(world_size=2, sequence_length=300)
    )
    report = check_ring_tokens(seg.tokens, seg.metadata)
    assert report["passed"] and report["complete"], report
    for part in partition_by_day(seg.tokens).values():
        assert check_ring_tokens(part, seg.metadata)["passed"]
    duplicated = pl.concat([seg.tokens, seg.tokens.head(1)])
    assert not check_ring_tokens(duplicated, seg.metadata)["checks"]["each_token_at_most_once"]
    moved = seg.tokens.with_columns(
        pl.when(pl.col("local_index") == 0)
        .then(1)
        .otherwise(pl.col("local_index"))
        .alias("local_index")
    )
    assert not check_ring_tokens(moved, seg.metadata)["checks"]["rank_local_match_perm"]
    leaky = seg.tokens.with_columns(
        pl.when(pl.col("is_ring_pad"))
        .then(1.0)
        .otherwise(pl.col("loss_weight"))
        .cast(pl.Float32)
        .alias("loss_weight")
    )
    assert not check_ring_tokens(leaky, seg.metadata)["checks"]["ring_padding_masked"]
