"""Layouts, permutations, block skipping and load balance (pure numpy, no device)."""

from __future__ import annotations

import numpy as np
import pytest

from energy_assets.ml.ring import (
    LAYOUTS,
    block_plan,
    default_sub_blocks,
    fine_sub_blocks,
    inverse_permutation,
    layout_permutation,
    load_balance_report,
    owner_and_local,
    padded_length,
)


def _cases(n_cases: int = 40, seed: int = 7):
    rng = np.random.default_rng(seed)
    for _ in range(n_cases):
        p = int(rng.integers(1, 9))
        n = 2 * p * int(rng.integers(1, 40))
        yield n, p, LAYOUTS[int(rng.integers(0, 3))]


def test_permutation_is_bijection_and_inverse_restores_order_bit_for_bit():
    rng = np.random.default_rng(0)
    for n, p, layout in _cases():
        perm = layout_permutation(n, p, layout)
        assert np.array_equal(np.sort(perm), np.arange(n)), (n, p, layout)
        values = rng.standard_normal((n, 3)).astype(np.float32)
        laid_out = values[perm]
        restored = laid_out[inverse_permutation(perm)]
        assert restored.tobytes() == values.tobytes()


def test_owner_and_local_follow_the_layout_definitions():
    # Formulas written out per token, independently of the vectorised implementation.
    for n, p, layout in _cases(25, seed=3):
        block, chunk = n // p, n // (2 * p)
        expected = []
        for t in range(n):
            if layout == "contiguous":
                expected.append((t // block, t % block))
            elif layout == "striped":
                expected.append((t % p, t // p))
            else:
                b = t // chunk
                expected.append((b, t % chunk) if b < p else (2 * p - 1 - b, chunk + t % chunk))
        rank, local = owner_and_local(n, p, layout)
        assert list(zip(rank.tolist(), local.tolist(), strict=True)) == expected, (n, p, layout)


def test_zigzag_rank_holds_chunks_r_and_mirror_in_that_order():
    n, p = 48, 3
    chunk = n // (2 * p)
    perm = layout_permutation(n, p, "zigzag").reshape(p, -1)
    for r in range(p):
        first = np.arange(r * chunk, (r + 1) * chunk)
        mirror = np.arange((2 * p - 1 - r) * chunk, (2 * p - r) * chunk)
        assert np.array_equal(perm[r], np.r_[first, mirror])


def test_unpadded_length_is_rejected_and_padding_reaches_multiple_of_2p():
    with pytest.raises(ValueError, match="multiple of 2"):
        layout_permutation(10, 3, "zigzag")
    for n in (1, 5, 6, 7, 8760, 43800):
        for p in (1, 2, 3, 4, 8):
            m = padded_length(n, p)
            assert m % (2 * p) == 0 and n <= m < n + 2 * p, (n, p, m)


def test_inverse_rejects_a_non_bijection():
    with pytest.raises(ValueError, match="bijection"):
        inverse_permutation(np.array([0, 1, 1, 3]))


@pytest.mark.parametrize("tiling", ["default", "fine"])
def test_block_plan_never_skips_a_visible_pair(tiling):
    rng = np.random.default_rng(11)
    for n, p, layout in _cases(30, seed=5):
        cuts = np.sort(rng.choice(np.arange(1, n), size=min(3, n - 1), replace=False))
        seg = np.searchsorted(cuts, np.arange(n), side="right")
        perm = layout_permutation(n, p, layout)
        block = n // p
        pos_r, seg_r = perm.reshape(p, block), seg[perm].reshape(p, block)
        if tiling == "fine":  # tiles of 2+ tokens: the asset check's tiling at a small scale
            n_sub = fine_sub_blocks(block, layout, min_tokens=2)
        else:
            n_sub = default_sub_blocks(layout)
        sub = block // n_sub
        for causal in (True, False):
            plan = block_plan(pos_r, seg_r, causal=causal, n_sub=n_sub)
            for r in range(p):
                covered = np.zeros((block, block * p), dtype=bool)  # [local q, src*block + k]
                for step in range(p):
                    src = (r - step) % p
                    for qi, ki, _ in plan[r][step]:
                        k0 = src * block + ki * sub
                        covered[qi * sub : (qi + 1) * sub, k0 : k0 + sub] = True
                visible = seg_r[r][:, None] == seg_r.reshape(-1)[None, :]
                if causal:
                    visible &= pos_r[r][:, None] >= pos_r.reshape(-1)[None, :]
                assert not (visible & ~covered).any(), (n, p, layout, causal)


def test_fine_tiling_divides_the_block_into_tiles_of_at_least_min_tokens():
    for block in (2, 68, 120, 200, 626, 4380, 21900):
        for layout in LAYOUTS:
            base = default_sub_blocks(layout)
            n_sub = fine_sub_blocks(block, layout, min_tokens=128)
            assert block % n_sub == 0 and n_sub % base == 0, (block, layout, n_sub)
            # the finest such tiling, or the default when even that has smaller tiles
            finer = [m for m in range(n_sub + 1, block + 1) if block % m == 0 and m % base == 0]
            assert all(block // m < 128 for m in finer), (block, layout, n_sub)
            assert n_sub == base or block // n_sub >= 128, (block, layout, n_sub)
    # the demo's block (8,760 tokens over 2 ranks): 30 tiles of 146 tokens
    assert fine_sub_blocks(4380, "zigzag") == 30
    assert fine_sub_blocks(200, "zigzag") == 2


def test_zigzag_balances_causal_work_exactly_and_contiguous_does_not():
    for p, contiguous_ratio in ((2, 3.0), (4, 7.0)):
        frame, summary = load_balance_report(np.zeros(4096, dtype=np.int32), p, causal=True)
        assert summary["zigzag"]["valid_max_over_min"] == 1.0
        assert summary["zigzag"]["scored_max_over_min"] == 1.0
        assert summary["contiguous"]["valid_max_over_min"] == pytest.approx(
            contiguous_ratio, rel=1e-3
        )
        # Every valid causal pair is attributed to exactly one rank in every layout.
        for layout in LAYOUTS:
            total = frame.filter(frame["layout"] == layout)["valid_pairs"].sum()
            assert total == 4096 * 4097 // 2


@pytest.mark.parametrize("world_size", [2, 4])
def test_packed_segments_unbalance_zigzag_but_striped_stays_within_5_percent(world_size):
    # Segments of a packed sequence (regions of uneven length): zigzag balances one segment,
    # not several; striped deals every segment's positions round-robin, so each rank's causal
    # work stays within 5 % (at the price of scoring masked pairs: efficiency below 1).
    rng = np.random.default_rng(world_size)
    for lengths in ([2000, 3000, 3760], list(rng.integers(100, 1500, 12)), [744] * 11 + [576]):
        total = sum(lengths)
        n = padded_length(total, world_size)
        segments = np.concatenate(
            [np.full(length, i) for i, length in enumerate(lengths)]
            + [np.full(n - total, len(lengths))]
        )
        _, summary = load_balance_report(segments, world_size)
        assert summary["striped"]["valid_max_over_min"] <= 1.05, lengths
        assert summary["striped"]["scored_max_over_min"] <= 1.05, lengths
        assert summary["zigzag"]["scored_efficiency"] > summary["striped"]["scored_efficiency"]
        if len(lengths) == 3:  # three long segments: zigzag is far from balanced
            assert summary["zigzag"]["valid_max_over_min"] > 1.3
