"""Differentiable ring attention in MLX: the forward ring plus a hand-written ring backward.

What belongs here: the ring attention a model trains with (`ring_attention`, differentiable
under `mx.value_and_grad` on every rank), its single-process simulation with the same math
(`simulated_ring_attention`, for CI), the gradient all-reduce for parameters
(`all_reduce_grads`), the dense autodiff reference it is checked against, and the
multi-process gradient check (`run_ring_grad_checks`). The forward accumulator, the rotation
over real neighbours and the process launcher live in `ring_attention.py`; layouts in `ring.py`.

API (issue 14 item 3 builds the forecaster on it)
-------------------------------------------------
``ring_attention(q, k, v, *, positions, segment_ids, group=None, causal=True, n_sub=None)``

- Call it on every rank of `group` (default `mx.distributed.init()`; in a single process that
  is a size-1 group and the call is plain masked attention). All ranks must call it the same
  number of times in the same order, and each rank's loss must depend on its output, because
  the backward is collective (each rank's vjp exchanges blocks with its neighbours).
- q, k, v: float [..., L, D], this rank's L = N/P tokens in layout order (`ring.py`: rank r
  holds global positions `perm[r*L:(r+1)*L]`). Leading dims (batch, heads) are folded
  together, so every row of a call shares one set of positions and segment ids.
- positions, segment_ids: int, either [L] (this rank's global position ids and segment ids;
  they are all-gathered once per call, outside autodiff) or [P, L] (the table of every rank,
  e.g. `position_by_rank` from the layout; no collective). Query i sees key j iff
  `segment_ids[i] == segment_ids[j]` and, if causal, `positions[j] <= positions[i]`. Every
  query must see at least one key (itself does, whenever positions are unique).
- Returns [..., L, D], this rank's output rows. Gradients w.r.t. this rank's q, k, v are those
  of the *sum of all ranks' losses*: dK/dV carry every rank's queries' contributions.
- Parameters shared by all ranks (projections) get a per-rank partial gradient; sum them with
  ``all_reduce_grads(grads, group)`` (an `mx.distributed.all_sum` per leaf) before the
  optimizer step. Use a loss that is a sum over global tokens (divide by the global token
  count yourself), so the all-summed gradient is the gradient of the global loss.

How (shared/docs/ring_attention_mlx.md sections 2 and 4)
--------------------------------------------------------
`mx.distributed.send` has no VJP, so the whole ring is one `mx.custom_function` with a `.vjp`.
Forward: K/V rotate P-1 hops; each rank folds every visible tile into an online softmax
(`RingAccumulator`) and outputs O and the log-sum-exp per query. Backward (the published ring
attention backward): each rank keeps Q, dO, lse and its dQ; (K, V, dK, dV) rotate together;
at each step the rank recomputes the probabilities of each visible tile from lse
(P = exp(S - lse)), adds its queries' contributions to the travelling dK/dV and to its own dQ.
After P hops (the last one carries only dK, dV) the accumulators are back on their owner. The
same `block_plan` skips provably masked tiles in both passes. No rank holds more than its own
L-token blocks plus one travelling block, and a score array is one row of tiles, at most
[sub, L] with sub = L / n_sub, never N x N. MLX keeps the graph of traced arrays alive, so
both passes work on untraced copies of their arguments (see `_untraced`); the price is a host
copy of the arguments and, in the backward, of dK and dV ([H, L, D]) after every row, and that
the function cannot run under `mx.compile` (it calls `mx.eval` and talks to the neighbours
from Python).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np
from mlx.utils import tree_map

from energy_assets.ml.ring import (
    Layout,
    block_plan,
    fine_sub_blocks,
    inverse_permutation,
    layout_permutation,
)
from energy_assets.ml.ring_attention import (
    RingAccumulator,
    RingCheckError,
    RingProblem,
    Rotate,
    distributed_rotate,
    launch_ring_workers,
    tile_rows,
    write_ring_inputs,
)

GRAD_NAMES = ("out", "dq", "dk", "dv")
# Output and gradients of one case, [H, N, D] each, global order.
Grads = dict[str, np.ndarray]
# Rotates the blocks held by the local ranks of this process: rank i receives what rank i-1 held.
RotateHeld = Callable[[list[mx.array]], list[mx.array]]


@dataclass
class RingTables:
    """Static per-rank positions and segment ids ([P, L] int), the mask mode and the tiling."""

    position_by_rank: np.ndarray
    segment_by_rank: np.ndarray
    causal: bool
    n_sub: int
    plan: list[list[list[tuple[int, int, bool]]]] = field(init=False, repr=False)
    stats: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.position_by_rank = np.asarray(self.position_by_rank, dtype=np.int32)
        self.segment_by_rank = np.asarray(self.segment_by_rank, dtype=np.int32)
        if self.position_by_rank.shape != self.segment_by_rank.shape:
            raise ValueError(
                f"positions {self.position_by_rank.shape} and segment ids "
                f"{self.segment_by_rank.shape} must both be [P, L]"
            )
        self.plan = block_plan(
            self.position_by_rank, self.segment_by_rank, causal=self.causal, n_sub=self.n_sub
        )
        # What any rank ever held: checked by the tests (O(N/P) memory per rank).
        self.stats = {"max_block_tokens": 0, "max_score_entries": 0, "hops": 0}

    @property
    def world_size(self) -> int:
        return int(self.position_by_rank.shape[0])

    @property
    def block(self) -> int:
        return int(self.position_by_rank.shape[1])

    def see_scores(self, scores: mx.array) -> None:
        """Record the size of a score array a rank computed ([H, sub, m*sub], per head)."""
        entries = scores.shape[-2] * scores.shape[-1]
        self.stats["max_score_entries"] = max(self.stats["max_score_entries"], entries)

    def see_block(self, held: mx.array) -> None:
        """Record and check a held K/V(/dK/dV) block: it must be one rank's L tokens."""
        if held.shape[-2] != self.block:
            raise AssertionError(f"held block has {held.shape[-2]} tokens, expected L={self.block}")
        self.stats["max_block_tokens"] = max(self.stats["max_block_tokens"], held.shape[-2])


def _untraced(x: mx.array) -> mx.array:
    """A copy of `x` with no graph behind it (not a tracer), via a host round trip."""
    return mx.array(np.array(x))


class RingGradAccumulator:
    """One rank's backward: its Q, dO, lse and dQ stay; travelling (K, V, dK, dV) get updated.

    With S = scale * Q K^T (masked), P = exp(S - lse) and delta = rowsum(dO * O) - dlse:
    dV += P^T dO, dS = P * (dO V^T - delta), dQ += scale * dS K, dK += scale * dS^T Q.
    (dlse is the cotangent of the lse output; zero when only O is used.)
    """

    def __init__(
        self,
        q: mx.array,
        out: mx.array,
        lse: mx.array,
        d_out: mx.array,
        d_lse: mx.array,
        *,
        rank: int,
        tables: RingTables,
    ) -> None:
        h, block, d = q.shape
        self.rank, self.tables = rank, tables
        self.sub = block // tables.n_sub
        self.scale = 1.0 / float(np.sqrt(d))
        delta = (d_out * out).sum(axis=-1, keepdims=True) - d_lse
        tiles = range(tables.n_sub)
        cut = [slice(i * self.sub, (i + 1) * self.sub) for i in tiles]
        self.q = [q[:, c] * self.scale for c in cut]
        self.d_out = [d_out[:, c] for c in cut]
        self.lse = [lse[:, c] for c in cut]
        self.delta = [delta[:, c] for c in cut]
        self.dq = [mx.zeros((h, self.sub, d)) for _ in tiles]

    def update(self, held: mx.array, step: int) -> mx.array:
        """Fold in the [4, H, L, D] (K, V, dK, dV) block held at `step`; return it updated."""
        t = self.tables
        t.see_block(held)
        k, v, dk, dv = held[0], held[1], held[2], held[3]
        rows = tile_rows(
            t.plan[self.rank][step],
            t.position_by_rank,
            t.segment_by_rank,
            causal=t.causal,
            rank=self.rank,
            src=(self.rank - step) % t.world_size,
            sub=self.sub,
        )
        for row in rows:
            qi, keys = row.qi, row.keys
            k_row = k[:, keys]
            s = self.q[qi] @ k_row.transpose(0, 2, 1)
            if row.mask is not None:
                s = mx.where(row.mask[None], s, -mx.inf)
            p = mx.exp(s - self.lse[qi])
            ds = p * (self.d_out[qi] @ v[:, keys].transpose(0, 2, 1) - self.delta[qi])
            self.dq[qi] = self.dq[qi] + ds @ k_row
            dk = dk.at[:, keys].add(ds.transpose(0, 2, 1) @ self.q[qi])
            dv = dv.at[:, keys].add(p.transpose(0, 2, 1) @ self.d_out[qi])
            t.see_scores(s)
            # MLX runs a vjp with its graph retained (every array a tracer, `mx.eval` detaches
            # nothing), so this row's scores are freed only when nothing references them:
            # continue from untraced copies. One [sub, m*sub] row is then alive at a time,
            # O(L * sub) memory, not O(L^2).
            mx.eval(self.dq[qi], dk, dv)
            self.dq[qi], dk, dv = (_untraced(x) for x in (self.dq[qi], dk, dv))
        return mx.stack([k, v, dk, dv])

    def d_q(self) -> mx.array:
        return mx.concatenate(self.dq, axis=1) * self.scale


def _ring_function(
    tables: RingTables, ranks: Sequence[int], rotate: RotateHeld
) -> Callable[[mx.array, mx.array, mx.array], tuple[mx.array, mx.array]]:
    """A custom-VJP ring over the local ranks `ranks`: [R, H, L, D] q, k, v -> (out, lse).

    R = 1 in a distributed process (`rotate` talks to the neighbours), R = P in the simulation
    (`rotate` shifts a list). Both passes run the same per-rank steps.
    """
    p = tables.world_size

    @mx.custom_function
    def attend(q: mx.array, k: mx.array, v: mx.array) -> tuple[mx.array, mx.array]:
        # Under a transform the arguments are tracers, and MLX keeps the whole graph of
        # anything computed from a tracer (evaluated or not) for autodiff: every score tile of
        # the forward would stay alive, O(L^2). This vjp never needs that graph, so compute
        # from untraced copies (O(L) each), which `mx.eval` frees tile by tile.
        q, k, v = (_untraced(x) for x in (q, k, v))
        accs = [
            RingAccumulator(
                q[i],
                rank=r,
                position_by_rank=tables.position_by_rank,
                segment_by_rank=tables.segment_by_rank,
                causal=tables.causal,
                n_sub=tables.n_sub,
            )
            for i, r in enumerate(ranks)
        ]
        held = [mx.stack([k[i], v[i]]) for i in range(len(ranks))]
        mx.eval(held)
        for step in range(p):
            for acc, kv in zip(accs, held, strict=True):
                tables.see_block(kv)
                acc.update(kv, step)
                tables.stats["max_score_entries"] = max(
                    tables.stats["max_score_entries"], acc.max_score_entries
                )
            if step < p - 1:
                held = rotate(held)
                tables.stats["hops"] += 1
        out = mx.stack([acc.result() for acc in accs])
        lse = mx.stack([acc.lse() for acc in accs])
        return out, lse

    @attend.vjp
    def attend_vjp(
        primals: tuple[mx.array, ...],
        cotangents: tuple[mx.array, ...],
        outputs: tuple[mx.array, ...],
    ) -> tuple[mx.array, mx.array, mx.array]:
        # Untraced for the same reason as the forward (the arguments may be tracers).
        q, k, v, d_out, d_lse, out, lse = (_untraced(x) for x in (*primals, *cotangents, *outputs))
        grads = [
            RingGradAccumulator(q[i], out[i], lse[i], d_out[i], d_lse[i], rank=r, tables=tables)
            for i, r in enumerate(ranks)
        ]
        held = [
            mx.stack([k[i], v[i], mx.zeros_like(k[i]), mx.zeros_like(v[i])])
            for i in range(len(ranks))
        ]
        mx.eval(held)
        for step in range(p):
            held = [g.update(h, step) for g, h in zip(grads, held, strict=True)]
            # P hops: the last one carries only dK, dV home to their owner.
            held = rotate(held if step < p - 1 else [h[2:] for h in held])
            tables.stats["hops"] += 1
        dq = mx.stack([g.d_q() for g in grads])
        dk = mx.stack([h[-2] for h in held])
        dv = mx.stack([h[-1] for h in held])
        return dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype)

    return attend


def _neighbour_rotate(group: mx.distributed.Group) -> RotateHeld:
    if group.size() == 1:
        return lambda held: held
    rotate: Rotate = distributed_rotate(group)
    return lambda held: [rotate(held[0])]


def _as_tables(values: Any, group: mx.distributed.Group, name: str, block: int) -> np.ndarray:
    """[P, L] table from a [P, L] table or this rank's [L] ids (all-gathered)."""
    arr = np.asarray(values, dtype=np.int32)
    p = group.size()
    if arr.ndim == 1:
        if arr.shape[0] != block:
            raise ValueError(f"{name} has {arr.shape[0]} entries, q has L={block} tokens")
        if p == 1:
            return arr[None]
        gathered = mx.distributed.all_gather(mx.array(arr), group=group)
        return np.array(gathered).reshape(p, block)
    if arr.shape != (p, block):
        raise ValueError(f"{name} table has shape {arr.shape}, expected [P={p}, L={block}]")
    return arr


def default_n_sub(block: int) -> int:
    """Tiles per local block: the finest even split into tiles of >= 128 tokens.

    Even keeps zigzag tiles inside one chunk and is valid for every layout (every local block
    is sorted by position, so fine tiles let `block_plan` skip causal and segment-disjoint
    work in all three).
    """
    return fine_sub_blocks(block, "zigzag")


def ring_attention(
    q: mx.array,
    k: mx.array,
    v: mx.array,
    *,
    positions: Any,
    segment_ids: Any,
    group: mx.distributed.Group | None = None,
    causal: bool = True,
    n_sub: int | None = None,
) -> mx.array:
    """Differentiable ring attention of this rank's [..., L, D] blocks (module docstring)."""
    group = group or mx.distributed.init()
    lead, (block, d) = q.shape[:-2], q.shape[-2:]
    tables = RingTables(
        _as_tables(positions, group, "positions", block),
        _as_tables(segment_ids, group, "segment_ids", block),
        causal=causal,
        n_sub=n_sub or default_n_sub(block),
    )
    attend = _ring_function(tables, [group.rank()], _neighbour_rotate(group))
    q3, k3, v3 = (x.reshape(1, -1, block, d) for x in (q, k, v))
    out, _lse = attend(q3, k3, v3)
    return out[0].reshape(*lead, block, d)


def all_reduce_grads(grads: Any, group: mx.distributed.Group | None = None) -> Any:
    """Sum every gradient leaf over the ranks of `group` (`mx.distributed.all_sum`)."""
    group = group or mx.distributed.init()
    if group.size() == 1:
        return grads
    return tree_map(lambda g: mx.distributed.all_sum(g, group=group), grads)


def simulated_ring_attention(
    q: mx.array,
    k: mx.array,
    v: mx.array,
    *,
    segment_ids: np.ndarray,
    world_size: int,
    layout: Layout,
    causal: bool = True,
    n_sub: int | None = None,
    stats: dict[str, int] | None = None,
) -> mx.array:
    """The ring with `world_size` simulated ranks in one process: [H, N, D] in global order.

    Lays q, k, v out with `layout`, runs the same custom-VJP ring as `ring_attention` (rotation
    = list shift) and returns the output in global order; differentiable, so `mx.vjp` of it is
    compared with the dense reference. `stats`, if given, receives what any rank held
    (`max_block_tokens`, `max_score_entries` per head, `hops`).
    """
    h, n, d = q.shape
    perm = layout_permutation(n, world_size, layout)
    block = n // world_size
    seg = np.asarray(segment_ids, dtype=np.int32)
    tables = RingTables(
        perm.reshape(world_size, block),
        seg[perm].reshape(world_size, block),
        causal=causal,
        n_sub=n_sub or default_n_sub(block),
    )

    def shift(held: list[mx.array]) -> list[mx.array]:
        return [held[(r - 1) % world_size] for r in range(world_size)]

    attend = _ring_function(tables, list(range(world_size)), shift)
    index = mx.array(perm)

    def to_ranks(x: mx.array) -> mx.array:
        return x[:, index].reshape(h, world_size, block, d).transpose(1, 0, 2, 3)

    if stats is not None:
        # Shared, so the backward (run later, by mx.vjp) records into it too.
        stats.update(tables.stats)
        tables.stats = stats
    out, _lse = attend(to_ranks(q), to_ranks(k), to_ranks(v))
    flat = out.transpose(1, 0, 2, 3).reshape(h, n, d)
    return flat[:, mx.array(inverse_permutation(perm))]


def dense_attention(
    q: mx.array, k: mx.array, v: mx.array, *, segment_ids: np.ndarray, causal: bool = True
) -> mx.array:
    """Dense masked softmax attention in global order, [H, N, N] scores (the autodiff reference)."""
    n, d = q.shape[-2], q.shape[-1]
    seg = mx.array(np.asarray(segment_ids, dtype=np.int32))
    mask = seg[:, None] == seg[None, :]
    if causal:
        pos = mx.arange(n)
        mask = mask & (pos[:, None] >= pos[None, :])
    s = (q @ k.swapaxes(-1, -2)) * (1.0 / float(np.sqrt(d)))
    s = mx.where(mask, s, -mx.inf)
    return mx.softmax(s, axis=-1, precise=True) @ v


def reference_grads(
    problem: RingProblem, d_out: np.ndarray, *, causal: bool, dtype: mx.Dtype = mx.float64
) -> Grads:
    """Dense attention's out, dq, dk, dv for cotangent `d_out`, via `mx.vjp`.

    float64 by default (MLX runs it on the CPU), so a comparison measures the ring's float32
    error and not the reference's: the float32 dense reference is itself up to ~1e-5 off at
    N = 4,096 (its dK/dV sum thousands of float32 terms).
    """

    def f(q: mx.array, k: mx.array, v: mx.array) -> mx.array:
        return dense_attention(q, k, v, segment_ids=problem.segment_ids, causal=causal)

    (out,), grads = mx.vjp(
        f,
        [mx.array(x).astype(dtype) for x in (problem.q, problem.k, problem.v)],
        [mx.array(d_out).astype(dtype)],
    )
    mx.eval(out, grads)
    return dict(zip(GRAD_NAMES, (np.array(a) for a in (out, *grads)), strict=True))


def random_cotangent(problem: RingProblem, seed: int) -> np.ndarray:
    """A seeded Gaussian d(loss)/d(out), [H, N, D] float32."""
    rng = np.random.Generator(np.random.PCG64(seed))
    return rng.standard_normal(problem.q.shape).astype(np.float32)


def grad_errors(got: Grads, ref: Grads) -> dict[str, float]:
    """Max abs error of out, dq, dk, dv against the reference, plus the gradients' scale."""
    errors = {
        f"{name}_max_abs_err": float(np.abs(got[name] - ref[name]).max()) for name in GRAD_NAMES
    }
    errors["grad_max_abs_err"] = max(errors[f"{n}_max_abs_err"] for n in ("dq", "dk", "dv"))
    errors["grad_reference_max_abs"] = max(float(np.abs(ref[n]).max()) for n in ("dq", "dk", "dv"))
    return errors


# --------------------------------------------------------------------------- one rank, one case


def ring_grad_rank(
    q: mx.array,
    k: mx.array,
    v: mx.array,
    d_out: mx.array,
    *,
    positions: Any,
    segment_ids: Any,
    group: mx.distributed.Group,
    causal: bool,
    n_sub: int | None = None,
) -> tuple[dict[str, mx.array], dict[str, float]]:
    """One training-style step on one rank: out, dq, dk, dv and an all-reduced shared gradient.

    loss = sum(out * d_out) with out = ring_attention(q * g0, k * g1, v * g2) and a gain
    g = (1, 1, 1) shared by all ranks like a model's parameters: `mx.value_and_grad` gives
    this rank's partial d_gain, `all_reduce_grads` sums it over the ranks (what the optimizer
    step of a model would use; at g = 1 it equals sum(q * dq), sum(k * dk), sum(v * dv) over
    all N tokens).
    """

    def loss(q: mx.array, k: mx.array, v: mx.array, gain: mx.array) -> tuple[mx.array, mx.array]:
        out = ring_attention(
            q * gain[0],
            k * gain[1],
            v * gain[2],
            positions=positions,
            segment_ids=segment_ids,
            group=group,
            causal=causal,
            n_sub=n_sub,
        )
        return (out * d_out).sum(), out

    t0, c0 = time.perf_counter(), time.process_time()
    step = mx.value_and_grad(loss, argnums=(0, 1, 2, 3))
    (_value, out), (dq, dk, dv, d_gain) = step(q, k, v, mx.ones((3,), dtype=q.dtype))
    d_gain = all_reduce_grads({"gain": d_gain}, group)["gain"]
    mx.eval(out, dq, dk, dv, d_gain)
    timing = {"fwd_bwd_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}
    return {"out": out, "dq": dq, "dk": dk, "dv": dv, "d_gain": d_gain}, timing


# --------------------------------------------------------------------------- multi-process


def run_ring_grad_workers(
    cases: Sequence[tuple[RingProblem, Layout, bool]],
    cotangents: Sequence[np.ndarray],
    world_size: int,
    *,
    timeout_s: float = 120.0,
    n_sub: int | None = None,
) -> tuple[list[Grads], list[list[dict[str, float]]], float]:
    """Run every case on P real ranks (`ring_worker`, ring backend on loopback).

    Every rank runs `ring_grad_rank` on its own tokens. Returns per case out, dq, dk, dv
    reassembled in global order plus `d_gain_by_rank` ([P, 3], the all-reduced shared
    gradient as each rank got it), per case the per-rank timings and peak memory, and the
    launch wall time.
    """
    with tempfile.TemporaryDirectory(prefix="ring_grad_") as tmp:
        wd = Path(tmp)
        write_ring_inputs(wd, cases, world_size, n_sub=n_sub, cotangents=cotangents)
        wall = launch_ring_workers(wd, world_size, timeout_s=timeout_s)
        timings = [
            json.loads((wd / f"timings_rank{rank}.json").read_text()) for rank in range(world_size)
        ]
        outputs = []
        for i, (problem, layout, _causal) in enumerate(cases):
            gains = [np.load(wd / f"case{i}_d_gain_rank{rank}.npy") for rank in range(world_size)]
            perm = layout_permutation(problem.n_tokens, world_size, layout)
            block = problem.n_tokens // world_size
            got = {name: np.empty_like(problem.q) for name in GRAD_NAMES}
            for rank in range(world_size):
                for name, arr in got.items():
                    part = np.load(wd / f"case{i}_{name}_rank{rank}.npy")
                    if part.shape != (problem.q.shape[0], block, problem.q.shape[2]):
                        raise RingCheckError(f"case {i} rank {rank} {name} has shape {part.shape}")
                    arr[:, perm[rank * block : (rank + 1) * block]] = part
            outputs.append({**got, "d_gain_by_rank": np.stack(gains)})
    ranks = [[t["cases"][i] for t in timings] for i in range(len(cases))]
    return outputs, ranks, wall


def run_ring_grad_checks(
    cases: Sequence[tuple[RingProblem, Layout, bool]],
    world_size: int,
    *,
    seed: int = 0,
    timeout_s: float = 120.0,
    n_sub: int | None = None,
) -> list[dict[str, Any]]:
    """Gradients of P real ranks vs `mx.vjp` of dense attention, per case.

    Every case gets the cotangent seeded by `seed`, so cases sharing a problem and mask share
    their references (computed once each). Errors are against the float64 reference;
    `vs_float32_dense` and `float32_dense_vs_float64` are reported beside (the float32 dense
    reference is not exact either). Returns per case the max abs errors, per-rank timings and
    peak memory.
    """
    cotangents = [random_cotangent(problem, seed) for problem, _, _ in cases]
    outputs, ranks, wall = run_ring_grad_workers(
        cases, cotangents, world_size, timeout_s=timeout_s, n_sub=n_sub
    )
    references: dict[tuple[int, bool], tuple[Grads, Grads]] = {}
    results = []
    for i, (problem, layout, causal) in enumerate(cases):
        got = outputs[i]
        key = (id(problem), causal)
        if key not in references:
            references[key] = (
                reference_grads(problem, cotangents[i], causal=causal),
                reference_grads(problem, cotangents[i], causal=causal, dtype=mx.float32),
            )
        f64, f32 = references[key]
        # The shared gain's gradient must be the full sum over all N tokens on every rank.
        # Its terms cancel (sum ~50 from terms summing to ~10^4 in absolute value), so the
        # error is relative to the sum of absolute terms, the scale float32 rounding acts on.
        terms = [getattr(problem, x).astype(np.float64) * f64[f"d{x}"] for x in ("q", "k", "v")]
        expected = np.array([t.sum() for t in terms])
        scale = np.array([np.abs(t).sum() for t in terms])
        gain_err = np.abs(got["d_gain_by_rank"] - expected) / scale
        results.append(
            {
                **grad_errors(got, f64),
                "d_gain_max_rel_err": float(gain_err.max()),
                "vs_float32_dense": grad_errors(got, f32),
                "float32_dense_vs_float64": grad_errors(f32, f64),
                "finite": all(bool(np.isfinite(a).all()) for a in got.values()),
                "mode": "distributed",
                "layout": layout,
                "world_size": world_size,
                "causal": causal,
                "n_tokens": problem.n_tokens,
                "n_segments": int(np.unique(problem.segment_ids).size),
                "ranks": ranks[i],
                "wall_s": wall,
            }
        )
    return results
