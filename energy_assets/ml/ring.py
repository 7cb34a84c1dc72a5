"""Ring-attention segments: token-to-device layouts, their permutations, packing and load balance.

What belongs here: everything about *where* a token goes when a long sequence is split across
P devices, with no MLX import (pure numpy/polars), so the layout logic is testable and usable
from an asset without touching a device.

Definitions (N tokens after padding, P ranks, token t in [0, N), see
shared/docs/ring_attention_mlx.md section 2):

- contiguous: owner(t) = t // L, local index t % L, with L = N / P.
- striped:    owner(t) = t % P,  local index t // P.
- zigzag:     chunk b = t // C with C = N / (2P); owner b if b < P else 2P-1-b; rank r holds
  chunks r and 2P-1-r in that order.

A *permutation* `perm` maps a slot (rank * L + local index) to the global token position it
holds; `inverse[perm] = arange(N)`. Every sequence is padded to a multiple of 2P so that all
three layouts apply to the same padded length, and the padding forms its own segment, so the
block-diagonal segment mask also keeps real queries away from padding keys.

Packing: the selected series (region by region, in time order) are concatenated and cut into
sequences of `sequence_length` real tokens ("concat and chunk"); a *segment* is one region's
run inside one sequence. `position_id` is the global position inside the sequence (the causal
mask is `position_q >= position_k`), `position_in_segment` restarts at 0 for every segment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from energy_assets.ml.dataset import frame_hash

Layout = Literal["contiguous", "striped", "zigzag"]
LAYOUTS: tuple[Layout, ...] = ("contiguous", "striped", "zigzag")
RING_SCHEMA_VERSION = "ring_segments/1"


# --------------------------------------------------------------------------- layouts


def padded_length(n_tokens: int, world_size: int) -> int:
    """Smallest multiple of 2P that holds `n_tokens` (every layout then divides evenly)."""
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    step = 2 * world_size
    return max(step, -(-n_tokens // step) * step)


def layout_permutation(n_tokens: int, world_size: int, layout: Layout) -> np.ndarray:
    """`perm[rank * L + local] = global position` for a padded length `n_tokens`.

    Raises when `n_tokens` is not a multiple of 2P: pad first with `padded_length`.
    """
    p = world_size
    if n_tokens % (2 * p) != 0:
        raise ValueError(
            f"n_tokens={n_tokens} is not a multiple of 2*world_size={2 * p}; pad the sequence "
            f"to padded_length(n, {p})={padded_length(n_tokens, p)} first"
        )
    block = n_tokens // p
    slot = np.arange(n_tokens, dtype=np.int64)
    rank, local = slot // block, slot % block
    if layout == "contiguous":
        perm = slot
    elif layout == "striped":
        perm = local * p + rank
    elif layout == "zigzag":
        chunk = n_tokens // (2 * p)
        second = local >= chunk
        chunk_id = np.where(second, 2 * p - 1 - rank, rank)
        perm = chunk_id * chunk + np.where(second, local - chunk, local)
    else:
        raise ValueError(f"unknown layout {layout!r}; use one of {LAYOUTS}")
    return perm.astype(np.int64)


def inverse_permutation(perm: np.ndarray) -> np.ndarray:
    """`inverse[g]` = slot holding global position g; raises if `perm` is not a bijection."""
    n = perm.shape[0]
    if not np.array_equal(np.sort(perm), np.arange(n)):
        raise ValueError("perm is not a bijection of 0..N-1 (a token is missing or duplicated)")
    inverse = np.empty(n, dtype=np.int64)
    inverse[perm] = np.arange(n, dtype=np.int64)
    return inverse


def owner_and_local(
    n_tokens: int, world_size: int, layout: Layout
) -> tuple[np.ndarray, np.ndarray]:
    """(rank, local index) of every global position 0..N-1, straight from the layout formulas."""
    inverse = inverse_permutation(layout_permutation(n_tokens, world_size, layout))
    block = n_tokens // world_size
    return inverse // block, inverse % block


def default_sub_blocks(layout: Layout) -> int:
    """Sub-blocks per local block used when skipping fully masked work.

    Contiguous and zigzag blocks are made of position-contiguous halves, so halving them lets
    the causal bound skip whole quarters; striped halves interleave, so nothing can be skipped.
    """
    return 1 if layout == "striped" else 2


def fine_sub_blocks(block: int, layout: Layout, *, min_tokens: int = 128) -> int:
    """The finest tiling of a local block into sub-blocks of at least `min_tokens` tokens.

    A multiple of `default_sub_blocks(layout)` that divides `block` (so zigzag tiles never
    straddle a rank's two chunks), or the default when no finer one qualifies. Every local
    block of every layout is sorted by position, so a tile covers a narrow range of positions
    and segment ids: with packed series of a few hundred tokens `block_plan` then skips most
    pairs as segment-disjoint, where halves of a block overlap almost every segment. Tiles of
    at least 128 tokens keep the per-pair MLX overhead small against the work they skip: on
    one unpacked 8,760-token segment (nothing segment-disjoint) 30 tiles per rank were no
    slower than halves, and faster causally (fewer tiles straddle the diagonal).
    """
    base = default_sub_blocks(layout)
    finest = base
    for n_sub in range(base, block // min_tokens + 1, base):
        if block % n_sub == 0:
            finest = n_sub
    return finest


def block_plan(
    position_by_rank: np.ndarray,
    segment_by_rank: np.ndarray,
    *,
    causal: bool,
    n_sub: int,
) -> list[list[list[tuple[int, int, bool]]]]:
    """Which (query sub-block, key sub-block) pairs each rank computes at each ring step.

    `plan[rank][step]` lists `(q_sub, k_sub, needs_mask)`; at step s rank r holds the K/V block
    of rank (r - s) mod P. A pair is skipped only when it is provably fully masked: causal and
    every key position exceeds every query position, or the segment-id ranges do not overlap.
    `needs_mask` is False when every pair in the sub-block is visible. Uses only the static
    tables, so no device synchronisation is needed to plan.
    """
    p, block = position_by_rank.shape
    if block % n_sub != 0:
        raise ValueError(f"local block {block} is not divisible into {n_sub} sub-blocks")
    sub = block // n_sub
    pos = position_by_rank.reshape(p, n_sub, sub)
    seg = segment_by_rank.reshape(p, n_sub, sub)
    pmin, pmax = pos.min(axis=2), pos.max(axis=2)
    smin, smax = seg.min(axis=2), seg.max(axis=2)
    plan: list[list[list[tuple[int, int, bool]]]] = []
    for rank in range(p):
        steps = []
        for step in range(p):
            src = (rank - step) % p
            pairs = []
            for qi in range(n_sub):
                for ki in range(n_sub):
                    if smax[rank, qi] < smin[src, ki] or smax[src, ki] < smin[rank, qi]:
                        continue
                    if causal and pmin[src, ki] > pmax[rank, qi]:
                        continue
                    one_segment = smin[rank, qi] == smax[rank, qi] == smin[src, ki] == smax[src, ki]
                    all_visible = not causal or pmax[src, ki] <= pmin[rank, qi]
                    pairs.append((qi, ki, not (one_segment and all_visible)))
            steps.append(pairs)
        plan.append(steps)
    return plan


def load_balance_report(
    segment_ids: np.ndarray,
    world_size: int,
    *,
    layouts: tuple[Layout, ...] = LAYOUTS,
    causal: bool = True,
) -> tuple[pl.DataFrame, dict[str, dict[str, float]]]:
    """Attention work per rank for each layout, for one sequence in global (position) order.

    `valid_pairs`: (query, key) pairs the mask lets through (same segment and, if causal,
    key position <= query position); `scored_pairs`: score entries that
    `ring_attention` actually computes after `block_plan` skips fully masked sub-blocks.
    Returns a long frame (layout, rank, valid_pairs, scored_pairs) and, per layout, the
    max/min ratio of both (1.0 is perfect balance).
    """
    seg = np.asarray(segment_ids, dtype=np.int64)
    n = seg.shape[0]
    position = np.arange(n, dtype=np.int64)
    # Segments are contiguous runs, so a query sees position_in_segment + 1 keys when causal.
    starts = np.r_[0, np.flatnonzero(np.diff(seg)) + 1]
    lengths = np.diff(np.r_[starts, n])
    run_start = np.repeat(starts, lengths)
    per_query = (position - run_start + 1) if causal else np.repeat(lengths, lengths)
    rows = []
    summary: dict[str, dict[str, float]] = {}
    block = n // world_size
    for layout in layouts:
        perm = layout_permutation(n, world_size, layout)
        valid = per_query[perm].reshape(world_size, block).sum(axis=1)
        plan = block_plan(
            perm.reshape(world_size, block),
            seg[perm].reshape(world_size, block),
            causal=causal,
            n_sub=default_sub_blocks(layout),
        )
        sub = block // default_sub_blocks(layout)
        scored = np.array([sum(len(s) for s in steps) * sub * sub for steps in plan])
        for rank in range(world_size):
            rows.append((layout, rank, int(valid[rank]), int(scored[rank])))
        summary[layout] = {
            "valid_max_over_min": float(valid.max() / max(valid.min(), 1)),
            "scored_max_over_min": float(scored.max() / max(scored.min(), 1)),
            # share of the computed score entries that the mask lets through (1 = no waste)
            "scored_efficiency": float(valid.sum() / max(scored.sum(), 1)),
        }
    frame = pl.DataFrame(
        rows,
        schema={
            "layout": pl.Utf8,
            "rank": pl.Int32,
            "valid_pairs": pl.Int64,
            "scored_pairs": pl.Int64,
        },
        orient="row",
    )
    return frame, summary


# --------------------------------------------------------------------------- segments


class RingConfig(BaseModel):
    """How series are packed into sequences and laid out over the ring."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    world_size: int = Field(2, ge=1, description="P, number of ring ranks")
    layout: Layout = "zigzag"
    sequence_length: int = Field(8760, ge=1, description="real tokens per packed sequence")
    split: Literal["train", "val", "test", "all"] = Field(
        "train", description="which time split of the dataset rows becomes tokens"
    )
    regions: list[str] | None = Field(None, description="regions to pack; None = all")
    seed: int = Field(0, description="seeds the epoch order of sequences")


@dataclass
class RingSegments:
    """One row per token (layout order) plus self-describing JSON metadata."""

    tokens: pl.DataFrame
    metadata: dict[str, Any]
    load_balance: pl.DataFrame = field(default_factory=pl.DataFrame)


# Token columns that are not payload features.
TOKEN_KEY_COLUMNS = (
    "interval_start_utc",
    "region",
    "t",
    "sequence_id",
    "rank",
    "local_index",
    "position_id",
    "segment_id",
    "position_in_segment",
    "is_pad",
    "is_ring_pad",
    "is_observed",
    "loss_weight",
)


def _split_filter(split: str, bounds: dict[str, Any]) -> pl.Expr:
    """Rows whose hour lies in the split's period (the whole split window for "all")."""
    t = pl.col("t")
    test_end = bounds.get("test_end_t")
    before_end = pl.lit(True) if test_end is None else t < test_end
    if split == "train":
        return t.is_between(bounds["train_start_t"], bounds["val_start_t"], closed="left")
    if split == "val":
        return t.is_between(bounds["val_start_t"], bounds["test_start_t"], closed="left")
    if split == "test":
        return (t >= bounds["test_start_t"]) & before_end
    return (t >= bounds["train_start_t"]) & before_end


def build_ring_segments(
    series: pl.DataFrame, dataset_metadata: dict[str, Any], config: RingConfig
) -> RingSegments:
    """Pack the dataset's normalised series into padded sequences laid out for `config.world_size`.

    `series` is `MLDataset.series` (or the concatenated `ml/dataset` partitions); payload
    columns are the dataset's feature columns (`target_z`, `known_z__*`, `past_z__*`). Rows are
    returned in layout order: sorted by (sequence_id, rank, local_index), so each rank's
    tokens of a sequence are one contiguous slice.

    Padding tokens (`is_ring_pad`) carry the timestamp and region of the last real token of
    their sequence so that a per-day split of the frame keeps them with the day that closes
    the sequence; the unique key of a token is (sequence_id, position_id).
    """
    p, layout = config.world_size, config.layout
    features: list[str] = list(dataset_metadata["feature_columns"]["all"])
    missing = [c for c in ("region", "t", "interval_start_utc", *features) if c not in series]
    if missing:
        raise ValueError(
            f"series frame lacks columns {missing}; pass MLDataset.series or the concatenated "
            "ml/dataset partitions"
        )
    rows = series.filter(_split_filter(config.split, dataset_metadata["split_bounds"]))
    if config.regions is not None:
        unknown = sorted(set(config.regions) - set(dataset_metadata["regions"]))
        if unknown:
            raise ValueError(f"RingConfig.regions {unknown} are not in the dataset regions")
        rows = rows.filter(pl.col("region").is_in(config.regions))
    if rows.height == 0:
        raise ValueError(f"no dataset rows for split={config.split!r} and regions={config.regions}")
    rows = rows.sort("region_index", "t")

    # Fewer tokens than one sequence (a short range): the sequence is only as long as they
    # are (padded to 2P), not padded with thousands of tokens that carry nothing.
    seq_len = min(config.sequence_length, rows.height)
    n_pad = padded_length(seq_len, p)
    real = rows.with_row_index("_g").select(
        pl.col("interval_start_utc"),
        pl.col("region"),
        pl.col("t"),
        (pl.col("_g") // seq_len).cast(pl.Int32).alias("sequence_id"),
        (pl.col("_g") % seq_len).cast(pl.Int32).alias("position_id"),
        pl.col("is_pad"),
        pl.lit(False).alias("is_ring_pad"),
        pl.col("is_observed"),
        pl.col("loss_weight"),
        *[pl.col(c) for c in features],
    )
    # A segment is one region's run inside one sequence; ids count from 0 in each sequence.
    real = real.with_columns(
        (
            pl.col("region").ne(pl.col("region").shift(1)).fill_null(True)
            | pl.col("position_id").eq(0)
        )
        .cast(pl.Int32)
        .cum_sum()
        .over("sequence_id")
        .sub(1)
        .cast(pl.Int32)
        .alias("segment_id")
    )
    real = real.with_columns(
        (pl.col("position_id") - pl.col("position_id").min().over("sequence_id", "segment_id"))
        .cast(pl.Int32)
        .alias("position_in_segment")
    )
    # Pad every sequence to n_pad tokens: one padding segment after the last real segment.
    last = real.group_by("sequence_id").agg(
        pl.col("position_id").max().alias("_last_pos"),
        pl.col("segment_id").max().alias("_last_seg"),
        pl.col("interval_start_utc").last().alias("interval_start_utc"),
        pl.col("region").last().alias("region"),
    )
    pad_positions = pl.DataFrame({"position_id": np.arange(n_pad, dtype=np.int32)})
    pads = (
        last.join(pad_positions, how="cross")
        .filter(pl.col("position_id") > pl.col("_last_pos"))
        .select(
            pl.col("interval_start_utc"),
            pl.col("region"),
            pl.lit(None, dtype=pl.Int32).alias("t"),
            pl.col("sequence_id"),
            pl.col("position_id"),
            pl.lit(True).alias("is_pad"),
            pl.lit(True).alias("is_ring_pad"),
            pl.lit(False).alias("is_observed"),
            pl.lit(0.0, dtype=pl.Float32).alias("loss_weight"),
            *[pl.lit(0.0, dtype=pl.Float32).alias(c) for c in features],
            (pl.col("_last_seg") + 1).cast(pl.Int32).alias("segment_id"),
            (pl.col("position_id") - pl.col("_last_pos") - 1)
            .cast(pl.Int32)
            .alias("position_in_segment"),
        )
    )
    tokens = pl.concat([real, pads.select(real.columns)], how="vertical")

    perm = layout_permutation(n_pad, p, layout)
    inverse = inverse_permutation(perm)
    block = n_pad // p
    slot = inverse[tokens["position_id"].to_numpy()]
    tokens = (
        tokens.with_columns(
            pl.Series("rank", slot // block, dtype=pl.Int32),
            pl.Series("local_index", slot % block, dtype=pl.Int32),
        )
        .sort("sequence_id", "rank", "local_index")
        .select(*TOKEN_KEY_COLUMNS, *features)
    )

    n_sequences = int(tokens["sequence_id"].max()) + 1
    real_counts = (
        real.group_by("sequence_id").len().sort("sequence_id")["len"].cast(pl.Int64).to_list()
    )
    # Causal work per rank of every sequence, per layout: the worst sequence is what a
    # training step waits for (packed segments make zigzag uneven, see the README).
    worst: dict[str, dict[str, float]] = {}
    report, balance = None, {}
    for (sequence,), one in (
        tokens.sort("position_id")
        .partition_by("sequence_id", as_dict=True, maintain_order=True)
        .items()
    ):
        frame, summary = load_balance_report(one["segment_id"].to_numpy(), p, causal=True)
        if sequence == 0:
            report, balance = frame, summary
        for layout_name, figures in summary.items():
            into = worst.setdefault(layout_name, dict.fromkeys(figures, 0.0))
            for name, value in figures.items():
                # the worst sequence: the highest imbalance, the lowest efficiency
                worse = min if name == "scored_efficiency" else max
                into[name] = value if sequence == 0 else worse(into[name], value)
    assert report is not None
    metadata: dict[str, Any] = {
        "schema_version": RING_SCHEMA_VERSION,
        "layout": layout,
        "world_size": p,
        "block_size": block,
        "chunk_size": n_pad // (2 * p),
        "sequence_length": seq_len,
        "n_padded": n_pad,
        "n_sequences": n_sequences,
        "n_tokens": real_counts,
        "perm": perm.tolist(),
        "inverse_perm": inverse.tolist(),
        "feature_columns": features,
        "feature_roles": dataset_metadata["feature_columns"],
        "normalization": dataset_metadata["normalization"],
        "split": config.split,
        "split_bounds": dataset_metadata["split_bounds"],
        "regions": config.regions if config.regions is not None else dataset_metadata["regions"],
        "seed": config.seed,
        "epoch_order": np.random.Generator(np.random.PCG64(config.seed))
        .permutation(n_sequences)
        .tolist(),
        "dataset_schema_version": dataset_metadata["schema_version"],
        "dataset_statistics_fingerprint": dataset_metadata.get("statistics_fingerprint"),
        "config": config.model_dump(mode="json"),
        "load_balance_first_sequence": balance,
        "load_balance_worst_sequence": worst,
        "load_balance_first_sequence_per_rank": report.to_dicts(),
        "load_balance_unpacked": load_balance_report(np.zeros(n_pad, np.int32), p)[1],
        "masks": {
            "is_pad": "1 = no data at this token (ring padding or a hole in the source grid)",
            "is_ring_pad": "1 = token added to reach a multiple of 2*world_size",
            "is_observed": "1 = target observed (not imputed)",
            "loss_weight": "1 = counts in the loss; 0 for imputed targets and padding",
        },
        "content_hash": frame_hash(tokens),
    }
    return RingSegments(tokens=tokens, metadata=metadata, load_balance=report)


def check_ring_tokens(tokens: pl.DataFrame, metadata: dict[str, Any]) -> dict[str, Any]:
    """Structural checks of stored ring tokens (all of a run, or one day partition of it).

    Returns {"passed": bool, "checks": {name: bool}}; a complete frame also checks that every
    (sequence, position) slot is present exactly once.
    """
    p, n_pad = int(metadata["world_size"]), int(metadata["n_padded"])
    block = int(metadata["block_size"])
    perm = np.asarray(metadata["perm"], dtype=np.int64)
    inverse = np.asarray(metadata["inverse_perm"], dtype=np.int64)
    checks: dict[str, bool] = {}
    checks["perm_matches_layout"] = bool(
        np.array_equal(perm, layout_permutation(n_pad, p, metadata["layout"]))
    )
    checks["inverse_restores_order"] = bool(
        perm.size == n_pad and np.array_equal(inverse[perm], np.arange(n_pad))
    )
    slot = tokens["rank"].to_numpy().astype(np.int64) * block + tokens["local_index"].to_numpy()
    checks["rank_local_match_perm"] = bool(
        np.array_equal(perm[slot], tokens["position_id"].to_numpy())
    )
    keys = tokens.select("sequence_id", "position_id")
    checks["each_token_at_most_once"] = keys.unique().height == tokens.height
    complete = tokens.height == int(metadata["n_sequences"]) * n_pad
    if complete:
        checks["every_token_exactly_once"] = checks["each_token_at_most_once"]
    ring_pad = tokens["is_ring_pad"]
    checks["ring_padding_masked"] = bool(
        (
            ~ring_pad | (tokens["is_pad"] & ~tokens["is_observed"] & (tokens["loss_weight"] == 0))
        ).all()
    )
    checks["loss_only_on_real_tokens"] = bool(
        ((tokens["loss_weight"] == 0) | (~tokens["is_pad"] & tokens["is_observed"])).all()
    )
    checks["padding_length_multiple_of_2p"] = n_pad % (2 * p) == 0
    return {"passed": all(checks.values()), "checks": checks, "complete": complete}
