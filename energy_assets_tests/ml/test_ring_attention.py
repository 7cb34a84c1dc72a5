"""Ring attention equals full attention: simulated ranks and 2 real processes (mx.distributed)."""

from __future__ import annotations

import os
import stat
import sys

import numpy as np
import pytest

from energy_assets.ml.dataset import DatasetConfig, build_dataset, partition_by_day
from energy_assets.ml.ring import (
    LAYOUTS,
    RingConfig,
    build_ring_segments,
    default_sub_blocks,
    fine_sub_blocks,
    layout_permutation,
)
from energy_assets.ml.ring_attention import (
    RingCheckError,
    RingProblem,
    dense_attention_reference,
    full_attention_mlx,
    full_attention_reference,
    launch_ring_workers,
    random_ring_problem,
    ring_problem_from_segments,
    run_ring_checks,
    simulate_ring,
    verify_ring_segments,
    write_ring_inputs,
)
from energy_assets_tests.ml.conftest import SPEC, synthetic_features

TOLERANCE = 1e-5
PACKED = [37, 90, 61]  # three packed series plus the remainder as a fourth segment


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_simulated_ring_matches_full_attention(layout, causal, world_size):
    n = 240  # a multiple of 2P for P = 1..4
    problem = random_ring_problem(n, segment_lengths=PACKED, seed=world_size)
    result = simulate_ring(problem, world_size, layout, causal)
    assert result["finite"]
    assert result["max_abs_err"] < TOLERANCE, result


@pytest.mark.parametrize("world_size", [2, 3, 4])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_fine_tiles_skip_work_and_still_match_full_attention(layout, world_size):
    # The asset check's tiling (`fine_sub_blocks`), at a scale where tiles are 5+ tokens.
    problem = random_ring_problem(240, segment_lengths=PACKED, seed=world_size)
    n_sub = fine_sub_blocks(240 // world_size, layout, min_tokens=5)
    assert n_sub > default_sub_blocks(layout)
    for causal in (True, False):
        fine = simulate_ring(problem, world_size, layout, causal, n_sub=n_sub)
        halves = simulate_ring(problem, world_size, layout, causal)
        assert fine["finite"] and fine["max_abs_err"] < TOLERANCE, fine
        assert sum(fine["scored_pairs"]) < sum(halves["scored_pairs"])


def test_per_segment_reference_equals_one_dense_masked_softmax():
    # Independent of segment order and contiguity: ids interleave, repeat and skip values.
    rng = np.random.default_rng(4)
    packed = random_ring_problem(300, segment_lengths=PACKED, seed=1)
    shuffled = RingProblem(
        packed.q, packed.k, packed.v, rng.choice([0, 3, 7], size=300).astype(np.int32)
    )
    for problem in (packed, shuffled):
        for causal in (True, False):
            dense = dense_attention_reference(problem, causal=causal)
            for query_block in (512, 16):  # one block per segment, and many
                blocked = full_attention_reference(problem, causal=causal, query_block=query_block)
                assert np.abs(blocked - dense).max() < 1e-12


def test_two_process_ring_matches_full_attention_for_every_layout_and_mask():
    problem = random_ring_problem(256, segment_lengths=PACKED, n_heads=2, head_dim=16, seed=3)
    cases = [(problem, layout, causal) for layout in LAYOUTS for causal in (True, False)]
    results = run_ring_checks(cases, world_size=2, timeout_s=120)
    for result in results:
        assert result["mode"] == "distributed" and len(result["ranks"]) == 2
        assert result["max_abs_err"] < TOLERANCE, result
        assert result["reference_max_abs"] > 0.5  # a non-trivial output was compared


def test_comparison_detects_a_wrong_reassembly():
    # Negative control: the error metric must see a layout mix-up, or the checks prove nothing.
    problem = random_ring_problem(64, segment_lengths=[20], seed=0)
    ref = full_attention_reference(problem, causal=True)
    perm = layout_permutation(64, 2, "zigzag")
    wrong = ref[:, perm]
    assert np.abs(wrong - ref).max() > 0.1


def test_float32_sdpa_is_within_the_same_tolerance_as_the_ring():
    problem = random_ring_problem(128, segment_lengths=[50], seed=5)
    for causal in (True, False):
        sdpa = full_attention_mlx(problem, causal=causal)
        ref = full_attention_reference(problem, causal=causal)
        assert np.abs(sdpa - ref).max() < TOLERANCE


def test_ring_on_stored_segments_matches_full_attention():
    features = synthetic_features(["AAA", "BBB", "CCC"], 24 * 12, seed=1)
    dataset = build_dataset(features, SPEC, DatasetConfig(context_length=24, horizon=24))
    seg = build_ring_segments(
        dataset.series, dataset.metadata, RingConfig(world_size=2, sequence_length=300)
    )
    problem = ring_problem_from_segments(seg.tokens, seg.metadata, sequence_id=0)
    assert np.unique(problem.segment_ids).size >= 2  # packed regions plus padding
    for layout in LAYOUTS:
        result = simulate_ring(problem, 2, layout, causal=True)
        assert result["max_abs_err"] < TOLERANCE, result


def test_hung_workers_are_killed_at_the_timeout(tmp_path):
    # A "python" that never returns stands in for a peer stuck in recv.
    fake = tmp_path / "hang.sh"
    fake.write_text('#!/bin/sh\necho $$ > "$(dirname "$0")/pid_$MLX_RANK"\nexec sleep 300\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    problem = random_ring_problem(16, seed=0)
    write_ring_inputs(tmp_path, [(problem, "zigzag", True)], 2)
    with pytest.raises(RingCheckError, match="did not finish within timeout_s"):
        launch_ring_workers(tmp_path, 2, timeout_s=1.0, python=str(fake))
    for rank in range(2):
        pid = int((tmp_path / f"pid_{rank}").read_text())
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_crashing_worker_is_reported_with_its_stderr(tmp_path):
    problem = random_ring_problem(16, seed=0)
    write_ring_inputs(tmp_path, [(problem, "zigzag", True)], 2)
    (tmp_path / "problem.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(RingCheckError, match="exited with code"):
        launch_ring_workers(tmp_path, 2, timeout_s=60, python=sys.executable)


def test_verify_ring_segments_on_a_whole_run_and_on_one_day_partition():
    features = synthetic_features(["AAA", "BBB"], 24 * 10, seed=2)
    dataset = build_dataset(features, SPEC, DatasetConfig(context_length=24, horizon=24))
    seg = build_ring_segments(
        dataset.series,
        dataset.metadata,
        RingConfig(world_size=3, layout="zigzag", sequence_length=200, split="all"),
    )
    report = verify_ring_segments(seg.tokens, seg.metadata, sequence_id=1)
    assert report["passed"] and report["max_abs_err"] < TOLERANCE, report
    assert {c["causal"] for c in report["cases"]} == {True, False}
    day = next(iter(partition_by_day(seg.tokens).values()))
    with pytest.raises(ValueError, match="allow_partial"):
        verify_ring_segments(day, seg.metadata)
    partial = verify_ring_segments(day, seg.metadata, allow_partial=True)
    assert partial["passed"], partial


def test_simulated_and_two_process_checks_use_the_same_tiles():
    features = synthetic_features(["AAA", "BBB", "CCC"], 24 * 12, seed=1)
    dataset = build_dataset(features, SPEC, DatasetConfig(context_length=24, horizon=24))
    seg = build_ring_segments(
        dataset.series, dataset.metadata, RingConfig(world_size=2, sequence_length=300)
    )
    n_sub = fine_sub_blocks(150, "zigzag", min_tokens=10)
    simulated = verify_ring_segments(seg.tokens, seg.metadata, n_sub=n_sub)
    distributed = verify_ring_segments(seg.tokens, seg.metadata, n_sub=n_sub, distributed=True)
    assert simulated["passed"] and distributed["passed"], (simulated, distributed)
    for sim, dist in zip(simulated["cases"], distributed["cases"], strict=True):
        assert sim["scored_pairs"] == [int(r["scored_pairs"]) for r in dist["ranks"]]
