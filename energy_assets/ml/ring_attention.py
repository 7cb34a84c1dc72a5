"""Ring attention in MLX over `mx.distributed` (ring backend), and its full-attention references.

What belongs here: the per-rank ring algorithm (online-softmax accumulation over rotating K/V
blocks), the rotation over real neighbours, a single-process simulation that runs the same
algorithm with P simulated ranks, the float64 reference, and `run_ring_check`, which launches
P worker processes (`ring_worker.py`) on localhost and compares their output with the
reference. Layout arithmetic lives in `ring.py`.

Why these choices (shared/docs/ring_attention_mlx.md section 4):
- K and V travel as one stacked array; positions and segment ids of the incoming block are not
  sent, every rank holds the small static [P, L] tables.
- Even ranks send then receive, odd ranks receive then send: if every rank sent first, a large
  message would fill the socket buffers and hang.
- Worker processes get a hostfile on free loopback ports, a watchdog that exits the process
  after `timeout_s` (a blocked `recv` never returns to Python, so `signal.alarm` would not
  fire), their own process group, and the parent kills every group on failure or timeout.
- Only the forward pass here: `send` has no VJP in MLX 0.32. The differentiable ring (a
  custom VJP whose backward rotates K, V, dK, dV) is `ring_grad.py`, built on
  `RingAccumulator` (its `lse`) and `tile_rows`.
- Each rank computes a query tile against all its visible key tiles of a step as one row
  (`tile_rows`) and evaluates row by row, so it holds one [sub, m*sub] row of scores at a
  time, never its whole [L, L] block.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np
import polars as pl

from energy_assets.ml.ring import (
    Layout,
    block_plan,
    default_sub_blocks,
    fine_sub_blocks,
    layout_permutation,
    padded_length,
)

Rotate = Callable[[mx.array], mx.array]


@dataclass
class RingProblem:
    """Q, K, V of one sequence in global (position) order, with its segment ids.

    q, k, v: float32 [H, N, D]; segment_ids: int [N]. N must be a multiple of 2P for the world
    sizes it is run with. Position ids are 0..N-1 (global order).
    """

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    segment_ids: np.ndarray

    @property
    def n_tokens(self) -> int:
        return int(self.q.shape[1])


class RingCheckError(RuntimeError):
    """A ring worker failed, timed out or returned output of the wrong shape."""


def random_ring_problem(
    n_tokens: int,
    *,
    segment_lengths: list[int] | None = None,
    n_heads: int = 2,
    head_dim: int = 16,
    seed: int = 0,
) -> RingProblem:
    """Seeded Gaussian Q/K/V; `segment_lengths` packs several series (the rest is one segment)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    shape = (n_heads, n_tokens, head_dim)
    q, k, v = (rng.standard_normal(shape).astype(np.float32) for _ in range(3))
    lengths = list(segment_lengths or [])
    if sum(lengths) > n_tokens:
        raise ValueError(f"segment_lengths sum to {sum(lengths)} > n_tokens={n_tokens}")
    if sum(lengths) < n_tokens:
        lengths.append(n_tokens - sum(lengths))
    seg = np.repeat(np.arange(len(lengths), dtype=np.int32), lengths)
    return RingProblem(q, k, v, seg)


def ring_problem_from_segments(
    tokens: pl.DataFrame,
    metadata: dict[str, Any],
    *,
    sequence_id: int = 0,
    n_heads: int = 2,
    head_dim: int = 16,
    seed: int | None = None,
    allow_partial: bool = False,
) -> RingProblem:
    """Q/K/V for one stored sequence: a seeded random projection of its payload features.

    The projection is arbitrary (no trained model exists here) and bounded (tanh of the
    features, then a Gaussian matrix scaled by 1/sqrt(F)); what is checked is that the ring
    reproduces full attention on the real token, segment and padding structure.

    A sequence usually spans many day partitions. With `allow_partial=True` the tokens present
    (e.g. one day) are used in position order and padded again to a multiple of
    2 * world_size with their own padding segment: a check on real values and segment
    structure, though not on the stored full-length layout.
    """
    seq = tokens.filter(pl.col("sequence_id") == sequence_id).sort("position_id")
    n_pad, p = int(metadata["n_padded"]), int(metadata["world_size"])
    if seq.height == 0:
        raise ValueError(f"no tokens of sequence_id={sequence_id} in the frame")
    if seq.height != n_pad and not allow_partial:
        raise ValueError(
            f"sequence {sequence_id} has {seq.height} tokens, metadata says n_padded={n_pad}; "
            "pass all day partitions of the ring_segments run, or allow_partial=True"
        )
    features = metadata["feature_columns"]
    # tanh bounds the embedding: z-scores of rare outliers (e.g. a bad imputed hour at 60
    # sigma) would otherwise set the score scale, and the 1e-5 tolerance is absolute.
    x = np.tanh(seq.select(features).to_numpy().astype(np.float32))
    x = np.concatenate([x, np.ones((x.shape[0], 1), np.float32)], axis=1)
    seg = seq["segment_id"].to_numpy().astype(np.int32)
    n = padded_length(seq.height, p)
    if n != seq.height:
        x = np.concatenate([x, np.zeros((n - seq.height, x.shape[1]), np.float32)])
        seg = np.concatenate([seg, np.full(n - seq.height, seg.max() + 1, np.int32)])
    rng = np.random.Generator(np.random.PCG64(metadata["seed"] if seed is None else seed))
    w = rng.standard_normal((3, x.shape[1], n_heads * head_dim)).astype(np.float32)
    w /= np.sqrt(x.shape[1])
    q, k, v = (
        (x @ w[i]).reshape(x.shape[0], n_heads, head_dim).transpose(1, 0, 2).copy()
        for i in range(3)
    )
    return RingProblem(q, k, v, seg)


def verify_ring_segments(
    tokens: pl.DataFrame,
    metadata: dict[str, Any],
    *,
    sequence_id: int = 0,
    distributed: bool = False,
    causal_modes: Sequence[bool] = (True, False),
    timeout_s: float = 120.0,
    allow_partial: bool = False,
    tolerance: float = 1e-5,
    n_sub: int | None = None,
) -> dict[str, Any]:
    """Ring attention on a stored sequence vs float64 full attention, for the stored layout.

    `distributed=False` runs `simulate_ring` in this process (asset checks);
    `distributed=True` launches world_size processes once for all `causal_modes`.
    `n_sub` tiles each rank's block; None = `fine_sub_blocks`. Every rank still folds in
    every K/V block at every ring step and every query is compared; tiling only decides
    which provably masked tiles are skipped, so it changes the work, not what is proved (the
    default halves are tested on random problems in energy_assets_tests/ml).
    Returns {"passed", "max_abs_err", "tolerance", "cases": [...]}.
    """
    problem = ring_problem_from_segments(
        tokens, metadata, sequence_id=sequence_id, allow_partial=allow_partial
    )
    p, layout = int(metadata["world_size"]), metadata["layout"]
    n_sub = n_sub or fine_sub_blocks(problem.n_tokens // p, layout)
    if distributed:
        cases = run_ring_checks(
            [(problem, layout, causal) for causal in causal_modes],
            p,
            timeout_s=timeout_s,
            n_sub=n_sub,
        )
    else:
        cases = [simulate_ring(problem, p, layout, causal, n_sub=n_sub) for causal in causal_modes]
    worst = max(c["max_abs_err"] for c in cases)
    return {
        "passed": bool(worst < tolerance and all(c["finite"] for c in cases)),
        "max_abs_err": worst,
        "tolerance": tolerance,
        "sequence_id": sequence_id,
        "cases": cases,
    }


# --------------------------------------------------------------------------- references


def full_attention_reference(
    problem: RingProblem, *, causal: bool, query_block: int = 512
) -> np.ndarray:
    """float64 numpy attention with the segment (and causal) mask, in global order [H, N, D].

    The segment mask is block-diagonal, so each segment is computed on its own: a query's
    softmax runs over exactly the keys the mask lets through, where a dense [N, N] score
    matrix would spend almost all its work on keys of other segments (exp(-inf) = 0). With
    the causal mask, query rows [a, b) of a segment need only its first b keys. Blocked over
    queries so that a single 8,760-token segment fits in a few hundred MiB. The dense form
    is kept as `dense_attention_reference` (tests compare the two).
    """
    q = problem.q.astype(np.float64)
    k = problem.k.astype(np.float64)
    v = problem.v.astype(np.float64)
    seg = np.asarray(problem.segment_ids)
    scale = 1.0 / np.sqrt(q.shape[2])
    out = np.empty_like(q)
    # Global positions of each segment, ascending (a stable sort keeps position order).
    order = np.argsort(seg, kind="stable")
    for positions in np.split(order, np.flatnonzero(np.diff(seg[order])) + 1):
        q_seg, k_seg, v_seg = q[:, positions], k[:, positions], v[:, positions]
        n = positions.size
        for a in range(0, n, query_block):
            b = min(n, a + query_block)
            keys = b if causal else n
            s = (q_seg[:, a:b] @ k_seg[:, :keys].transpose(0, 2, 1)) * scale
            if causal:
                visible = positions[a:b, None] >= positions[None, :keys]
                s = np.where(visible[None], s, -np.inf)
            s -= s.max(axis=-1, keepdims=True)
            p = np.exp(s)
            out[:, positions[a:b]] = (p / p.sum(axis=-1, keepdims=True)) @ v_seg[:, :keys]
    return out


def dense_attention_reference(problem: RingProblem, *, causal: bool) -> np.ndarray:
    """The same float64 attention as one dense masked [H, N, N] softmax (small N, tests only)."""
    q = problem.q.astype(np.float64)
    k = problem.k.astype(np.float64)
    v = problem.v.astype(np.float64)
    seg, pos = problem.segment_ids, np.arange(problem.n_tokens)
    s = np.einsum("hqd,hkd->hqk", q, k) / np.sqrt(q.shape[2])
    mask = seg[:, None] == seg[None, :]
    if causal:
        mask &= pos[:, None] >= pos[None, :]
    s = np.where(mask[None], s, -np.inf)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    return np.einsum("hqk,hkd->hqd", p / p.sum(axis=-1, keepdims=True), v)


def full_attention_mlx(problem: RingProblem, *, causal: bool) -> np.ndarray:
    """Single-process float32 `mx.fast.scaled_dot_product_attention` with the same mask."""
    n, d = problem.n_tokens, problem.q.shape[2]
    seg = mx.array(problem.segment_ids)
    mask = seg[:, None] == seg[None, :]
    if causal:
        pos = mx.arange(n)
        mask = mask & (pos[:, None] >= pos[None, :])
    out = mx.fast.scaled_dot_product_attention(
        mx.array(problem.q)[None],
        mx.array(problem.k)[None],
        mx.array(problem.v)[None],
        scale=1.0 / float(np.sqrt(d)),
        mask=mask,
    )
    return np.array(out[0])


# --------------------------------------------------------------------------- the algorithm


@dataclass(frozen=True)
class TileRow:
    """One query tile's visible key tiles at one ring step, computed as one [sub, m*sub] row.

    `keys`: local indices of the row's key tokens (the key tiles concatenated); `mask`: the
    [sub, m*sub] visibility (same segment and, if causal, key position <= query position),
    None when every pair is visible.
    """

    qi: int
    keys: mx.array
    mask: mx.array | None
    n_tiles: int


def tile_rows(
    pairs: list[tuple[int, int, bool]],
    position_by_rank: np.ndarray,
    segment_by_rank: np.ndarray,
    *,
    causal: bool,
    rank: int,
    src: int,
    sub: int,
) -> list[TileRow]:
    """Group a step's `block_plan` pairs by query tile: one matmul per row instead of per tile.

    Rows are evaluated one at a time, so a rank holds one [sub, m*sub] row of scores (O(L * sub)),
    never its [L, L] block.
    """
    rows = []
    for qi in dict.fromkeys(q for q, _, _ in pairs):
        tiles = [(ki, needs) for q, ki, needs in pairs if q == qi]
        keys = np.concatenate([np.arange(ki * sub, (ki + 1) * sub) for ki, _ in tiles])
        mask = None
        if any(needs for _, needs in tiles):
            qs = slice(qi * sub, (qi + 1) * sub)
            visible = segment_by_rank[rank, qs][:, None] == segment_by_rank[src, keys][None, :]
            if causal:
                visible &= (
                    position_by_rank[rank, qs][:, None] >= position_by_rank[src, keys][None, :]
                )
            mask = mx.array(visible)
        rows.append(TileRow(qi, mx.array(keys.astype(np.int32)), mask, len(tiles)))
    return rows


class RingAccumulator:
    """One rank's queries with running max `m`, softmax denominator and weighted-value sum.

    Sub-block qi keeps (m, denom, acc); each visible key block rescales them by exp(m_old - m_new)
    and adds its terms, so the final acc / denom equals softmax attention over all keys.
    """

    def __init__(
        self,
        q: mx.array,
        *,
        rank: int,
        position_by_rank: np.ndarray,
        segment_by_rank: np.ndarray,
        causal: bool,
        n_sub: int,
    ) -> None:
        h, block, d = q.shape
        self.rank = rank
        self.sub = block // n_sub
        self.scale = 1.0 / float(np.sqrt(d))
        self.pos = position_by_rank
        self.seg = segment_by_rank
        self.plan = block_plan(position_by_rank, segment_by_rank, causal=causal, n_sub=n_sub)[rank]
        self.causal = causal
        self.q = [q[:, i * self.sub : (i + 1) * self.sub] * self.scale for i in range(n_sub)]
        self.m = [mx.full((h, self.sub, 1), -mx.inf) for _ in range(n_sub)]
        self.denom = [mx.zeros((h, self.sub, 1)) for _ in range(n_sub)]
        self.acc = [mx.zeros((h, self.sub, d)) for _ in range(n_sub)]
        self.scored = 0
        self.max_score_entries = 0

    def update(self, kv: mx.array, step: int) -> None:
        """Fold in the K/V block held at ring step `step` (it came from rank - step mod P)."""
        p = self.pos.shape[0]
        src = (self.rank - step) % p
        rows = tile_rows(
            self.plan[step],
            self.pos,
            self.seg,
            causal=self.causal,
            rank=self.rank,
            src=src,
            sub=self.sub,
        )
        for row in rows:
            qi = row.qi
            s = self.q[qi] @ kv[0][:, row.keys].transpose(0, 2, 1)
            if row.mask is not None:
                s = mx.where(row.mask[None], s, -mx.inf)
            m_new = mx.maximum(self.m[qi], s.max(axis=-1, keepdims=True))
            # A row with no visible key so far keeps max -inf; shift by 0 there to avoid NaN.
            m_safe = mx.where(mx.isinf(m_new), 0.0, m_new)
            prob = mx.exp(s - m_safe)
            alpha = mx.exp(self.m[qi] - m_safe)
            self.denom[qi] = self.denom[qi] * alpha + prob.sum(axis=-1, keepdims=True)
            self.acc[qi] = self.acc[qi] * alpha + prob @ kv[1][:, row.keys]
            self.m[qi] = m_new
            self.scored += row.n_tiles * self.sub * self.sub
            self.max_score_entries = max(self.max_score_entries, s.shape[1] * s.shape[2])
            # Evaluate per row: one [sub, m*sub] row of scores alive at a time.
            mx.eval(self.m[qi], self.denom[qi], self.acc[qi])

    def result(self) -> mx.array:
        return mx.concatenate([a / d for a, d in zip(self.acc, self.denom, strict=True)], axis=1)

    def lse(self) -> mx.array:
        """Log-sum-exp of each query's (scaled, masked) scores, [H, L, 1]: what a backward needs."""
        return mx.concatenate(
            [m + mx.log(d) for m, d in zip(self.m, self.denom, strict=True)], axis=1
        )


def ring_attention_rank(
    q: mx.array,
    k: mx.array,
    v: mx.array,
    *,
    rank: int,
    position_by_rank: np.ndarray,
    segment_by_rank: np.ndarray,
    causal: bool,
    rotate: Rotate,
    n_sub: int = 2,
) -> tuple[mx.array, dict[str, float]]:
    """Ring attention for one rank: [H, L, D] local Q/K/V in layout order -> [H, L, D] output.

    `rotate(kv)` sends the held [2, H, L, D] K/V block to rank+1 and returns the block received
    from rank-1. Returns the output and timings (compute_s, comm_s, scored_pairs).
    """
    p = position_by_rank.shape[0]
    acc = RingAccumulator(
        q,
        rank=rank,
        position_by_rank=position_by_rank,
        segment_by_rank=segment_by_rank,
        causal=causal,
        n_sub=n_sub,
    )
    kv = mx.stack([k, v])
    mx.eval(kv)
    compute = comm = 0.0
    for step in range(p):
        t0 = time.perf_counter()
        acc.update(kv, step)
        t1 = time.perf_counter()
        if step < p - 1:
            kv = rotate(kv)
        comm += time.perf_counter() - t1
        compute += t1 - t0
    out = acc.result()
    mx.eval(out)
    return out, {"compute_s": compute, "comm_s": comm, "scored_pairs": float(acc.scored)}


def distributed_rotate(group: mx.distributed.Group) -> Rotate:
    """Neighbour rotation over the ring backend: even ranks send first, odd ranks receive first."""
    rank, size = group.rank(), group.size()
    dst, src = (rank + 1) % size, (rank - 1) % size

    def rotate(kv: mx.array) -> mx.array:
        if rank % 2 == 0:
            mx.eval(mx.distributed.send(kv, dst, group=group))
            received = mx.distributed.recv_like(kv, src, group=group)
            mx.eval(received)
        else:
            received = mx.distributed.recv_like(kv, src, group=group)
            mx.eval(received)
            mx.eval(mx.distributed.send(kv, dst, group=group))
        return received

    return rotate


# --------------------------------------------------------------------------- layout plumbing


def _layout_tables(n: int, world_size: int, layout: Layout, seg: np.ndarray) -> dict[str, Any]:
    perm = layout_permutation(n, world_size, layout)
    block = n // world_size
    return {
        "perm": perm,
        "block": block,
        "position_by_rank": perm.reshape(world_size, block).astype(np.int32),
        "segment_by_rank": seg[perm].reshape(world_size, block).astype(np.int32),
    }


def _check_length(problem: RingProblem, world_size: int) -> None:
    n = problem.n_tokens
    if n % (2 * world_size) != 0:
        raise ValueError(
            f"problem has N={n} tokens, not a multiple of 2*world_size={2 * world_size}; "
            f"pad to {padded_length(n, world_size)} (ring segments are padded already)"
        )


def _result(
    out: np.ndarray,
    problem: RingProblem,
    *,
    mode: str,
    layout: Layout,
    world_size: int,
    causal: bool,
    **extra: Any,
) -> dict[str, Any]:
    """Errors of a reassembled ring output against the float64 reference, plus the case."""
    ref = full_attention_reference(problem, causal=causal)
    err = np.abs(out.astype(np.float64) - ref)
    return {
        "max_abs_err": float(err.max()),
        "mean_abs_err": float(err.mean()),
        "reference_max_abs": float(np.abs(ref).max()),
        "finite": bool(np.isfinite(out).all()),
        "mode": mode,
        "layout": layout,
        "world_size": world_size,
        "causal": causal,
        "n_tokens": problem.n_tokens,
        "n_segments": int(np.unique(problem.segment_ids).size),
        **extra,
    }


def simulate_ring(
    problem: RingProblem,
    world_size: int,
    layout: Layout,
    causal: bool,
    *,
    n_sub: int | None = None,
) -> dict[str, Any]:
    """Run the ring algorithm with P simulated ranks in one process and compare to float64.

    The same `RingAccumulator` steps as the distributed run; the rotation is a list shift
    (rank r receives what rank r-1 held). Suitable for an asset check (no sockets).
    """
    _check_length(problem, world_size)
    t0 = time.perf_counter()
    n_sub = n_sub or default_sub_blocks(layout)
    tab = _layout_tables(problem.n_tokens, world_size, layout, problem.segment_ids)
    perm, block = tab["perm"], tab["block"]
    accs, held = [], []
    for rank in range(world_size):
        idx = perm[rank * block : (rank + 1) * block]
        accs.append(
            RingAccumulator(
                mx.array(problem.q[:, idx]),
                rank=rank,
                position_by_rank=tab["position_by_rank"],
                segment_by_rank=tab["segment_by_rank"],
                causal=causal,
                n_sub=n_sub,
            )
        )
        held.append(mx.stack([mx.array(problem.k[:, idx]), mx.array(problem.v[:, idx])]))
    for step in range(world_size):
        for rank in range(world_size):
            accs[rank].update(held[rank], step)
        held = [held[(rank - 1) % world_size] for rank in range(world_size)]
    out = np.empty_like(problem.q)
    for rank in range(world_size):
        out[:, perm[rank * block : (rank + 1) * block]] = np.array(accs[rank].result())
    return _result(
        out,
        problem,
        mode="simulated",
        layout=layout,
        world_size=world_size,
        causal=causal,
        scored_pairs=[int(a.scored) for a in accs],
        wall_s=time.perf_counter() - t0,
    )


# --------------------------------------------------------------------------- multi-process


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (all held open until every one is chosen)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def write_ring_inputs(
    workdir: Path,
    cases: Sequence[tuple[RingProblem, Layout, bool]],
    world_size: int,
    *,
    n_sub: int | None = None,
    cotangents: Sequence[np.ndarray] | None = None,
) -> None:
    """Per-rank inputs of several cases in one safetensors file, read lazily per rank.

    Keys `case{i}.rank{r}.q/k/v` and `case{i}.position_by_rank/segment_by_rank`; the case list
    (layout, causal, sub-blocks: `n_sub`, default `default_sub_blocks`) is JSON in the header.
    Several cases share one process launch, which is most of the wall time of a small check.
    With `cotangents` ([H, N, D] per case, global order) every case is a gradient case
    (`ring_grad.run_ring_grad_checks`): keys `case{i}.rank{r}.d_out` are added, and `n_sub`
    None lets `ring_grad.default_n_sub` choose.
    """
    arrays: dict[str, mx.array] = {}
    configs = []
    grad = cotangents is not None
    for i, (problem, layout, causal) in enumerate(cases):
        _check_length(problem, world_size)
        tab = _layout_tables(problem.n_tokens, world_size, layout, problem.segment_ids)
        perm, block = tab["perm"], tab["block"]
        arrays[f"case{i}.position_by_rank"] = mx.array(tab["position_by_rank"])
        arrays[f"case{i}.segment_by_rank"] = mx.array(tab["segment_by_rank"])
        for rank in range(world_size):
            idx = perm[rank * block : (rank + 1) * block]
            for name in ("q", "k", "v"):
                arrays[f"case{i}.rank{rank}.{name}"] = mx.array(getattr(problem, name)[:, idx])
            if cotangents is not None:
                arrays[f"case{i}.rank{rank}.d_out"] = mx.array(cotangents[i][:, idx])
        configs.append(
            {
                "layout": layout,
                "causal": causal,
                "n_sub": n_sub if grad else n_sub or default_sub_blocks(layout),
                "grad": grad,
            }
        )
    header = {"world_size": world_size, "cases": configs}
    mx.save_safetensors(
        str(workdir / "problem.safetensors"), arrays, metadata={"ring": json.dumps(header)}
    )


def _kill(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def _tail(path: Path, n: int = 1500) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else ""


def launch_ring_workers(
    workdir: Path,
    world_size: int,
    *,
    timeout_s: float,
    python: str | None = None,
    module: str = "energy_assets.ml.ring_worker",
) -> float:
    """Start P `module` processes (`ring_worker` by default; `forecaster_worker` trains the
    forecaster) on free loopback ports; wait, or kill them all.

    Returns the wall time. Raises RingCheckError naming the failed rank and its stderr tail.
    """
    ports = free_ports(world_size)
    hostfile = workdir / "hosts.json"
    hostfile.write_text(json.dumps([[f"127.0.0.1:{port}"] for port in ports]))
    package_root = str(Path(__file__).resolve().parents[2])
    env_base = {
        **os.environ,
        "MLX_HOSTFILE": str(hostfile),
        "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
    }
    procs: list[subprocess.Popen[bytes]] = []
    t0 = time.perf_counter()
    try:
        for rank in range(world_size):
            with (
                open(workdir / f"stdout_rank{rank}.txt", "wb") as out,
                open(workdir / f"stderr_rank{rank}.txt", "wb") as err,
            ):
                procs.append(
                    subprocess.Popen(
                        [
                            python or sys.executable,
                            "-m",
                            module,
                            "--workdir",
                            str(workdir),
                            "--timeout-s",
                            str(timeout_s),
                        ],
                        env={**env_base, "MLX_RANK": str(rank)},
                        stdout=out,
                        stderr=err,
                        start_new_session=True,  # own process group: killpg reaches children
                    )
                )
        deadline = t0 + timeout_s
        while True:
            codes = [proc.poll() for proc in procs]
            failed = [r for r, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                rank = failed[0]
                raise RingCheckError(
                    f"ring worker rank {rank} exited with code {codes[rank]} (ports {ports}); "
                    f"stderr tail:\n{_tail(workdir / f'stderr_rank{rank}.txt')}"
                )
            if all(c == 0 for c in codes):
                return time.perf_counter() - t0
            if time.perf_counter() > deadline:
                raise RingCheckError(
                    f"ring workers did not finish within timeout_s={timeout_s} (ports {ports}, "
                    f"exit codes {codes}); a peer probably hung in send/recv. Stderr rank 0:\n"
                    f"{_tail(workdir / 'stderr_rank0.txt')}"
                )
            time.sleep(0.01)
    finally:
        _kill(procs)


def run_ring_checks(
    cases: Sequence[tuple[RingProblem, Layout, bool]],
    world_size: int,
    *,
    timeout_s: float = 60.0,
    python: str | None = None,
    workdir: Path | None = None,
    n_sub: int | None = None,
) -> list[dict[str, Any]]:
    """Run several (problem, layout, causal) cases in one launch of `world_size` processes.

    Each result holds max/mean abs error against the float64 reference, per-rank timings and
    the launch wall time. Raises RingCheckError on a failed or hung worker (all are killed).
    """
    with tempfile.TemporaryDirectory(prefix="ring_check_") as tmp:
        wd = Path(workdir or tmp)
        wd.mkdir(parents=True, exist_ok=True)
        write_ring_inputs(wd, cases, world_size, n_sub=n_sub)
        wall = launch_ring_workers(wd, world_size, timeout_s=timeout_s, python=python)
        outputs = []
        for i, (problem, layout, _causal) in enumerate(cases):
            tab = _layout_tables(problem.n_tokens, world_size, layout, problem.segment_ids)
            perm, block = tab["perm"], tab["block"]
            out = np.empty_like(problem.q)
            for rank in range(world_size):
                part = np.load(wd / f"case{i}_out_rank{rank}.npy")
                if part.shape != (problem.q.shape[0], block, problem.q.shape[2]):
                    raise RingCheckError(f"case {i} rank {rank} returned shape {part.shape}")
                out[:, perm[rank * block : (rank + 1) * block]] = part
            outputs.append(out)
        timings = [
            json.loads((wd / f"timings_rank{rank}.json").read_text()) for rank in range(world_size)
        ]
    return [
        _result(
            out,
            problem,
            mode="distributed",
            layout=layout,
            world_size=world_size,
            causal=causal,
            ranks=[t["cases"][i] for t in timings],
            wall_s=wall,
        )
        for i, ((problem, layout, causal), out) in enumerate(zip(cases, outputs, strict=True))
    ]


def run_ring_check(
    problem: RingProblem,
    world_size: int,
    layout: Layout,
    causal: bool,
    *,
    timeout_s: float = 60.0,
    python: str | None = None,
) -> dict[str, Any]:
    """One case of `run_ring_checks`: P worker processes, compared with full attention."""
    return run_ring_checks(
        [(problem, layout, causal)], world_size, timeout_s=timeout_s, python=python
    )[0]
