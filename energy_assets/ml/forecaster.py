"""A long-context day-ahead demand forecaster in MLX, trained with ring attention over P ranks.

What belongs here (pure core, no Dagster): the model, the batches it reads (gathered from the
loader's `DatasetTensors` by window index), the training loop in one process or on one rank of
a ring group, the launcher of the P-process ring training (`forecaster_worker.py` is the
per-rank shell), prediction, the test-split evaluation against the BA's own day-ahead forecast
and a seasonal-naive baseline, and the weights <-> table/safetensors round trip.

The model
---------
One token per hour of [origin - context_hours, origin + horizon), in time order, front-padded
to a multiple of 2P (so every ring layout divides evenly; padding is its own segment, which no
real token attends to). A token's inputs:
- context hours (before the origin): the target z-score and its `is_observed` mask, the
  known-in-advance covariates (calendar, holidays, the BA's day-ahead forecast) and the
  past-only ones (observed weather, demand lags), each with its `valid__` mask;
- horizon hours (the 24 predicted): only the known-in-advance covariates and their masks. The
  target and every past-only input are zero there and flagged as such, so nothing observed at
  or after the origin enters the model;
- both: `is_pad` (no data at that hour, or before the loaded range), a horizon flag, and the
  offset from the origin as sin/cos of periods 24 h and 168 h plus a linear ramp.
A linear embedding, `n_layers` pre-norm transformer blocks with causal self-attention over the
whole token sequence, and a linear head read every token (plus a linear skip from the token's
own inputs); the loss is the masked absolute (or
squared) error of the horizon tokens' outputs against the target z-score (weight = the dataset's
`loss_weight`: imputed and missing targets do not count). Causal attention over
[context; horizon] lets each horizon hour see the whole context and the horizon hours before
it (which carry only known-in-advance inputs).

Training augmentation (`forecast_scale_jitter`, default 0.4): half the training windows get
the BA's day-ahead forecast scaled, in MW, by one factor for the whole window (log-uniform in
[0.6, 1/0.6]) while the target stays. Why: a BA's own forecast is the strongest covariate, and
without this the model learns to trust its level. When a BA's reported demand drifts away from
its forecast (TEPC in 2019-01..05: demand 0.62-0.81x the forecast, whose daily profile repeats
unchanged for weeks, while they agreed in training), the model kept much of the forecast's
level and lost to seasonal naive (README, Results).
With the scaled windows the only way to the target is to calibrate the forecast against the
demand observed in the context, which every BA's context shows. Validation, prediction and
evaluation never scale.

Attention is pluggable: `dense_attend` (one process, `mx.fast.scaled_dot_product_attention`
with the causal/segment mask: full attention) or `ring_attend` (`ring_grad.ring_attention`:
this rank's tokens in a ring layout, K/V rotating over the P ranks; gradients of shared
parameters are all-reduced with `ring_grad.all_reduce_grads`). Every rank sees the same batch
(same seed), holds its layout's N/P tokens of every window, and every rank calls the ring the
same number of times (once per block per forward). The loss is a sum over global tokens divided
by the global weight, so the all-summed gradient is the full model's gradient and ring training
equals full training (tested within 1e-4 on losses and parameters).

Evaluation (`evaluate`) scores the test split per region in MW: MAPE of the model, of the BA's
day-ahead forecast (`demand_forecast_da_mw`, denormalised from its z-score) and of the
seasonal-naive forecast (the same hour one week before), on the hours where all the available
forecasts exist and the target was observed.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import polars as pl
from mlx.utils import tree_flatten, tree_unflatten
from pydantic import BaseModel, ConfigDict, Field

from energy_assets.ml.loader import SPLIT_CODES, DatasetTensors
from energy_assets.ml.ring import Layout, layout_permutation, padded_length
from energy_assets.ml.ring_grad import all_reduce_grads, ring_attention

FORECASTER_SCHEMA_VERSION = "ml_forecaster/1"
FORECAST_FEATURE = "demand_forecast_da_mw"
SEASONAL_LAG_HOURS = 168
POSITION_PERIODS = (24.0, 168.0)
# (batch, heads, tokens, head dim) q, k, v -> attention output of the same shape
Attend = Callable[[mx.array, mx.array, mx.array], mx.array]


class ForecasterConfig(BaseModel):
    """Model size, context, training budget and the ring it trains on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    context_hours: int = Field(96, ge=1, description="hours of context before the origin")
    horizon: int = Field(24, ge=1, description="hours predicted from the origin")
    d_model: int = Field(32, ge=4)
    n_heads: int = Field(2, ge=1)
    n_layers: int = Field(1, ge=1)
    mlp_ratio: int = Field(2, ge=1)
    steps: int = Field(30, ge=0, description="optimizer steps")
    batch_size: int = Field(8, ge=1, description="windows per step")
    learning_rate: float = Field(3e-3, gt=0)
    warmup_steps: int = Field(0, ge=0)
    eval_every: int = Field(0, ge=0, description="validation loss every n steps (0: at the end)")
    eval_windows: int = Field(64, ge=1, description="validation windows scored (a fixed subset)")
    seed: int = 0
    world_size: int = Field(1, ge=1, description="ranks of the ring; 1 = full attention")
    loss: Literal["mse", "mae"] = Field(
        "mae",
        description="masked absolute (default: closer to MAPE, robust to bad hours) or squared "
        "error of the target z-score",
    )
    layout: Layout = "zigzag"
    forecast_scale_jitter: float = Field(
        0.4,
        ge=0.0,
        lt=1.0,
        description="training only: half the windows get their BA day-ahead forecast (MW) "
        "scaled by one factor drawn log-uniformly from [1 - j, 1 / (1 - j)] for the whole "
        "window, context and horizon, while the target stays; the model then learns to "
        "calibrate the BA's forecast against the demand observed in the context instead of "
        "trusting its level (0: off; see the module docstring)",
    )

    def model_post_init(self, _context: Any) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not a multiple of n_heads={self.n_heads}")

    @property
    def n_tokens(self) -> int:
        """Tokens per window: context + horizon, front-padded to a multiple of 2P."""
        return padded_length(self.context_hours + self.horizon, self.world_size)


# --------------------------------------------------------------------------- batches


@dataclass
class SeriesArrays:
    """The dataset tensors as numpy (batches are gathered with numpy fancy indexing)."""

    target: np.ndarray  # [R, T] float32 z
    target_raw: np.ndarray  # [R, T] MW
    is_observed: np.ndarray  # [R, T] bool
    is_pad: np.ndarray  # [R, T] bool
    loss_weight: np.ndarray  # [R, T] float32
    known: np.ndarray  # [R, T, Fk]
    valid_known: np.ndarray  # [R, T, Fk] bool
    past: np.ndarray  # [R, T, Fp]
    valid_past: np.ndarray  # [R, T, Fp] bool
    window_region: np.ndarray  # [W]
    window_origin: np.ndarray  # [W] relative to the first loaded hour
    window_split: np.ndarray  # [W] codes (loader.SPLIT_CODES)
    metadata: dict[str, Any]

    @classmethod
    def from_tensors(cls, tensors: DatasetTensors) -> SeriesArrays:
        if tensors.valid_known is None or tensors.valid_past is None:
            raise ValueError("the dataset tensors lack the valid__ masks (loader too old?)")
        return cls(
            **{
                name: np.array(getattr(tensors, name))
                for name in (
                    "target",
                    "target_raw",
                    "is_observed",
                    "is_pad",
                    "loss_weight",
                    "known",
                    "valid_known",
                    "past",
                    "valid_past",
                    "window_region",
                    "window_origin",
                    "window_split",
                )
            },
            metadata=tensors.metadata,
        )

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: v for k, v in self.__dict__.items() if k != "metadata"}

    def windows(self, split: str) -> np.ndarray:
        """Window ids of a split (train, val, test)."""
        return np.flatnonzero(self.window_split == SPLIT_CODES[split])

    @property
    def n_known(self) -> int:
        return int(self.known.shape[-1])

    @property
    def n_past(self) -> int:
        return int(self.past.shape[-1])


def n_inputs(n_known: int, n_past: int) -> int:
    """Features per token (see `make_batch`)."""
    return 4 + 2 * n_known + 2 * n_past + 2 * len(POSITION_PERIODS) + 1


def input_names(known: Sequence[str], past: Sequence[str]) -> list[str]:
    """Names of the token features in order (stored with the weights)."""
    names = ["target_z", "is_observed", "is_pad", "is_horizon"]
    names += list(known) + [f"valid:{n}" for n in known]
    names += list(past) + [f"valid:{n}" for n in past]
    for period in POSITION_PERIODS:
        names += [f"offset_sin_{period:g}h", f"offset_cos_{period:g}h"]
    return [*names, "offset_ramp"]


@dataclass
class Batch:
    """Windows in global token order: x [B, N, F], target/weight [B, N]; positions/segments [N]."""

    x: np.ndarray
    target: np.ndarray
    weight: np.ndarray
    positions: np.ndarray
    segments: np.ndarray

    def take(self, index: np.ndarray) -> Batch:
        """The tokens `index` (a rank's layout slots) of every window."""
        return Batch(
            self.x[:, index],
            self.target[:, index],
            self.weight[:, index],
            self.positions[index],
            self.segments[index],
        )


def forecast_column(series: SeriesArrays) -> tuple[int, np.ndarray, np.ndarray] | None:
    """(column of the BA's day-ahead forecast among the known covariates, its mean and std per
    region in MW) or None when the dataset has no such covariate."""
    meta = series.metadata
    names = meta["feature_columns"]["source_names"]
    known = [names[c] for c in meta["feature_columns"]["known"]]
    if FORECAST_FEATURE not in known:
        return None
    stats = _stat(meta, FORECAST_FEATURE)
    mean = np.array([stats.get(r, (0.0, 1.0))[0] for r in meta["regions"]])
    std = np.array([stats.get(r, (0.0, 1.0))[1] for r in meta["regions"]])
    return known.index(FORECAST_FEATURE), mean, std


def forecast_scales(rng: np.random.Generator, n: int, jitter: float) -> np.ndarray:
    """Per window: 1 for half of them, else a factor log-uniform in [1 - j, 1 / (1 - j)]."""
    bound = -math.log(1.0 - jitter)
    factor = np.exp(rng.uniform(-bound, bound, n))
    return np.where(rng.random(n) < 0.5, 1.0, factor)


def make_batch(
    series: SeriesArrays,
    window_ids: np.ndarray,
    config: ForecasterConfig,
    forecast_scale: np.ndarray | None = None,
) -> Batch:
    """Gather windows from the series by index (see the module docstring for the inputs).

    `forecast_scale` ([B], training augmentation): each window's day-ahead forecast in MW is
    multiplied by its factor (in z-space: s z + (s - 1) mean / std of its region)."""
    ctx, h, n = config.context_hours, config.horizon, config.n_tokens
    front = n - ctx - h
    region = series.window_region[window_ids][:, None]
    origin = series.window_origin[window_ids][:, None]
    offset = np.arange(-ctx, h)[None, :]  # hours from the origin of each real token
    t = origin + offset
    inside = (t >= 0) & (t < series.target.shape[1])
    tc = np.clip(t, 0, series.target.shape[1] - 1)
    context = (offset < 0) & inside
    horizon = np.broadcast_to(offset >= 0, t.shape)
    pad = ~inside | series.is_pad[region, tc]
    b = window_ids.shape[0]
    known = series.known[region, tc] * inside[..., None]
    valid_known = series.valid_known[region, tc] & inside[..., None]
    column = forecast_column(series) if forecast_scale is not None else None
    if column is not None:
        col, mean, std = column
        s = np.asarray(forecast_scale, dtype=np.float64)[:, None]
        shifted = s * known[..., col] + (s - 1.0) * (mean / std)[region]
        known[..., col] = np.where(valid_known[..., col], shifted, 0.0)
    parts = [
        np.where(context, series.target[region, tc], 0.0)[..., None],
        (context & series.is_observed[region, tc])[..., None],
        pad[..., None],
        horizon[..., None],
        known,
        valid_known,
        series.past[region, tc] * context[..., None],
        series.valid_past[region, tc] & context[..., None],
    ]
    offsets = np.broadcast_to(offset, t.shape).astype(np.float64)
    for period in POSITION_PERIODS:
        angle = 2 * np.pi * offsets / period
        parts += [np.sin(angle)[..., None], np.cos(angle)[..., None]]
    parts.append((offsets / max(ctx, 1))[..., None])
    real = np.concatenate([p.astype(np.float32) for p in parts], axis=-1)
    x = np.zeros((b, n, real.shape[-1]), dtype=np.float32)
    x[:, front:] = real
    x[:, :front, 2] = 1.0  # front padding is padding
    target = np.zeros((b, n), dtype=np.float32)
    weight = np.zeros((b, n), dtype=np.float32)
    target[:, front + ctx :] = np.where(inside, series.target[region, tc], 0.0)[:, ctx:]
    weight[:, front + ctx :] = np.where(inside, series.loss_weight[region, tc], 0.0)[:, ctx:]
    segments = np.ones(n, dtype=np.int32)
    segments[:front] = 0
    return Batch(x, target, weight, np.arange(n, dtype=np.int32), segments)


# --------------------------------------------------------------------------- model


class Block(nn.Module):
    """Pre-norm transformer block; attention is passed in (dense or ring)."""

    def __init__(self, d_model: int, n_heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.norm1 = nn.LayerNorm(d_model)
        # No bias: a key bias has an exactly zero gradient (softmax ignores a shift shared by
        # all keys), so Adam would turn float noise into full-size steps of it.
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.up = nn.Linear(d_model, mlp_ratio * d_model)
        self.down = nn.Linear(mlp_ratio * d_model, d_model)

    def __call__(self, h: mx.array, attend: Attend) -> mx.array:
        b, n, d = h.shape
        qkv = self.qkv(self.norm1(h)).reshape(b, n, 3, self.n_heads, d // self.n_heads)
        q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
        a = attend(q, k, v).transpose(0, 2, 1, 3).reshape(b, n, d)
        h = h + self.out(a)
        return h + self.down(nn.gelu(self.up(self.norm2(h))))


class Forecaster(nn.Module):
    """Token embedding, transformer blocks, a per-token head (z-score of the target)."""

    def __init__(self, n_in: int, config: ForecasterConfig) -> None:
        super().__init__()
        self.embed = nn.Linear(n_in, config.d_model)
        self.blocks = [
            Block(config.d_model, config.n_heads, config.mlp_ratio) for _ in range(config.n_layers)
        ]
        self.norm = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, 1)
        # A linear map of the token's own inputs beside the transformer: on a horizon token
        # that is a regression on the known-in-advance covariates (the BA's day-ahead forecast
        # first), which the attention path then corrects from the context.
        self.skip = nn.Linear(n_in, 1)

    def __call__(self, x: mx.array, attend: Attend) -> mx.array:
        h = self.embed(x)
        for block in self.blocks:
            h = block(h, attend)
        return (self.head(self.norm(h)) + self.skip(x))[..., 0]


def build_model(n_in: int, config: ForecasterConfig) -> Forecaster:
    """A freshly initialised model; the same seed gives the same parameters on every rank."""
    mx.random.seed(config.seed)
    model = Forecaster(n_in, config)
    mx.eval(model.parameters())
    return model


def dense_attend(positions: np.ndarray, segments: np.ndarray) -> Attend:
    """Full (one-process) causal attention within segments, fused SDPA with a boolean mask."""
    pos, seg = mx.array(positions), mx.array(segments)
    mask = (seg[:, None] == seg[None, :]) & (pos[:, None] >= pos[None, :])

    def attend(q: mx.array, k: mx.array, v: mx.array) -> mx.array:
        scale = 1.0 / math.sqrt(q.shape[-1])
        return mx.fast.scaled_dot_product_attention(q, k, v, scale=scale, mask=mask)

    return attend


def ring_attend(
    position_by_rank: np.ndarray, segment_by_rank: np.ndarray, group: mx.distributed.Group
) -> Attend:
    """This rank's causal ring attention; the [P, L] tables are static per batch geometry."""

    def attend(q: mx.array, k: mx.array, v: mx.array) -> mx.array:
        return ring_attention(
            q,
            k,
            v,
            positions=position_by_rank,
            segment_ids=segment_by_rank,
            group=group,
            causal=True,
        )

    return attend


def tiled_attend(positions: np.ndarray, segments: np.ndarray) -> Attend:
    """One-process attention without an N x N score matrix (the ring with P = 1)."""
    group = mx.distributed.init()
    if group.size() != 1:
        raise RuntimeError("tiled_attend is for one process; use ring_attend in a ring group")
    return ring_attend(positions[None], segments[None], group)


# --------------------------------------------------------------------------- training


@dataclass
class TrainResult:
    """What training produced: the model, curves and timings."""

    model: Forecaster
    losses: list[float]
    val_losses: list[tuple[int, float]]
    seconds: float
    tokens: int
    ranks: list[dict[str, Any]] = field(default_factory=list)
    first_grads: dict[str, np.ndarray] = field(default_factory=dict)
    """The first step's (all-reduced) parameter gradients: ring vs full is checked on them."""

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else float("nan")


class _Geometry:
    """A rank's view of a batch: its layout slots and the ring tables (or full attention)."""

    def __init__(self, config: ForecasterConfig, group: mx.distributed.Group | None) -> None:
        self.group = group
        self.size = 1 if group is None else group.size()
        self.rank = 0 if group is None else group.rank()
        if self.size != config.world_size:
            raise ValueError(
                f"config.world_size={config.world_size} but the group has {self.size} ranks"
            )
        n = config.n_tokens
        self.perm = layout_permutation(n, self.size, config.layout)
        block = n // self.size
        self.slots = self.perm[self.rank * block : (self.rank + 1) * block]

    def local(self, batch: Batch) -> tuple[Batch, Attend]:
        if self.group is None or self.size == 1:
            return batch, dense_attend(batch.positions, batch.segments)
        block = self.perm.shape[0] // self.size
        tables = (
            batch.positions[self.perm].reshape(self.size, block),
            batch.segments[self.perm].reshape(self.size, block),
        )
        return batch.take(self.slots), ring_attend(*tables, self.group)

    def all_sum(self, value: mx.array) -> mx.array:
        if self.group is None or self.size == 1:
            return value
        return mx.distributed.all_sum(value, group=self.group)


def _loss(
    model: Forecaster,
    x: mx.array,
    y: mx.array,
    w: mx.array,
    attend: Attend,
    denom: float,
    kind: str = "mse",
) -> mx.array:
    error = model(x, attend) - y
    return (w * (mx.abs(error) if kind == "mae" else error**2)).sum() / denom


def rank_inputs(
    batch: Batch, geometry: _Geometry
) -> tuple[mx.array, mx.array, mx.array, Attend, float]:
    """This rank's x, target, weight and attention for a global batch, and the global weight
    (the loss divides by it, so the sum of the ranks' losses is the loss of the batch)."""
    denom = max(float(batch.weight.sum()), 1.0)
    local, attend = geometry.local(batch)
    x, y, w = (mx.array(a) for a in (local.x, local.target, local.weight))
    return x, y, w, attend, denom


def validation_loss(
    model: Forecaster, series: SeriesArrays, ids: np.ndarray, config: ForecasterConfig, geometry
) -> float:
    """Masked MSE over the fixed validation windows `ids` (forward only)."""
    total, weight = 0.0, 0.0
    for start in range(0, ids.shape[0], config.batch_size):
        batch = make_batch(series, ids[start : start + config.batch_size], config)
        x, y, w, attend, denom = rank_inputs(batch, geometry)
        part = geometry.all_sum(_loss(model, x, y, w, attend, 1.0, config.loss))
        total += float(part)
        weight += denom
    return total / max(weight, 1.0)


def train(
    series: SeriesArrays,
    config: ForecasterConfig,
    *,
    group: mx.distributed.Group | None = None,
    log: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train on the train split's windows; in a ring group every rank calls this alike.

    Batches are drawn with numpy PCG64(seed), the same on every rank; the loss of a step is
    reported after the all-sum (the global loss) on every rank.
    """
    geometry = _Geometry(config, group)
    train_ids = series.windows("train")
    if train_ids.size == 0:
        raise ValueError(
            "no training windows: the dataset's train split is empty (check the split dates "
            "and that the training days are materialized)"
        )
    val_ids = series.windows("val")
    if val_ids.size > config.eval_windows:
        val_ids = np.sort(
            np.random.Generator(np.random.PCG64(config.seed + 1)).choice(
                val_ids, config.eval_windows, replace=False
            )
        )
    model = build_model(n_inputs(series.n_known, series.n_past), config)
    schedule: Any = config.learning_rate
    if config.steps > 1:
        decay = optim.cosine_decay(config.learning_rate, config.steps, config.learning_rate / 10)
        schedule = (
            optim.join_schedules(
                [optim.linear_schedule(0.0, config.learning_rate, config.warmup_steps), decay],
                [config.warmup_steps],
            )
            if config.warmup_steps
            else decay
        )
    # Bias-corrected Adam: MLX's default (no correction) makes the first steps m / sqrt(v) =
    # 3.16 g / (|g| + 3.2e-7), steep for gradient entries near 1e-7, which turns the ring's
    # float32 summation-order noise (~1e-8 there) into ~1e-4 parameter differences (measured
    # 8.5e-5 after one step at N = 1,024; 4.5e-6 with the correction).
    optimizer = optim.Adam(learning_rate=schedule, bias_correction=True)
    step_fn = nn.value_and_grad(model, _loss)
    rng = np.random.Generator(np.random.PCG64(config.seed))
    # its own stream, so the batches drawn do not depend on the augmentation
    augment = np.random.Generator(np.random.PCG64(config.seed + 2))
    losses: list[float] = []
    val_losses: list[tuple[int, float]] = []
    seconds, tokens = 0.0, 0
    first_grads: dict[str, np.ndarray] = {}
    for step in range(config.steps):
        ids = rng.choice(train_ids, config.batch_size, replace=train_ids.size < config.batch_size)
        scale = (
            forecast_scales(augment, ids.size, config.forecast_scale_jitter)
            if config.forecast_scale_jitter
            else None
        )
        batch = make_batch(series, np.sort(ids), config, scale)
        t0 = time.perf_counter()
        x, y, w, attend, denom = rank_inputs(batch, geometry)
        loss, grads = step_fn(model, x, y, w, attend, denom, config.loss)
        grads = all_reduce_grads(grads, geometry.group) if geometry.size > 1 else grads
        if step == 0:
            first_grads = {k: np.array(v) for k, v in tree_flatten(grads)}
        optimizer.update(model, grads)
        total = geometry.all_sum(loss)
        mx.eval(model.parameters(), optimizer.state, total)
        seconds += time.perf_counter() - t0
        tokens += batch.x.shape[0] * batch.x.shape[1]
        losses.append(float(total))
        if log is not None:
            log(step, losses[-1])
        if val_ids.size and config.eval_every and (step + 1) % config.eval_every == 0:
            val_losses.append((step + 1, validation_loss(model, series, val_ids, config, geometry)))
    if val_ids.size and (not val_losses or val_losses[-1][0] != config.steps):
        val_losses.append((config.steps, validation_loss(model, series, val_ids, config, geometry)))
    return TrainResult(model, losses, val_losses, seconds, tokens, first_grads=first_grads)


def train_forecaster(
    series: SeriesArrays, config: ForecasterConfig, *, timeout_s: float = 3600.0
) -> TrainResult:
    """Train in this process (world_size 1: full attention) or on P ring processes."""
    if config.world_size == 1:
        return train(series, config)
    return train_distributed(series, config, timeout_s=timeout_s)


# --------------------------------------------------------------------------- P processes


def train_distributed(
    series: SeriesArrays, config: ForecasterConfig, *, timeout_s: float = 3600.0
) -> TrainResult:
    """Run `train` on `config.world_size` ring processes (`forecaster_worker`) on loopback
    (world_size 1: one worker process with full attention, e.g. to measure its own memory).

    Rank 0's parameters come back (all ranks hold the same after every step: the all-reduced
    gradient is the same everywhere); per-rank timings and peak RSS in `ranks`.
    """
    from energy_assets.ml.loader import export_safetensors, load_safetensors
    from energy_assets.ml.ring_attention import launch_ring_workers

    with tempfile.TemporaryDirectory(prefix="forecaster_") as tmp:
        wd = Path(tmp)
        export_safetensors(
            wd / "inputs.safetensors",
            {k: mx.array(v) for k, v in series.arrays().items()},
            {"config": config.model_dump(mode="json"), "dataset": series.metadata},
        )
        launch_ring_workers(
            wd,
            config.world_size,
            timeout_s=timeout_s,
            module="energy_assets.ml.forecaster_worker",
        )
        arrays, meta = load_safetensors(wd / "params.safetensors")
        ranks = [json.loads((wd / f"rank{r}.json").read_text()) for r in range(config.world_size)]
    model = build_model(n_inputs(series.n_known, series.n_past), config)
    params = [(k, v) for k, v in arrays.items() if not k.startswith("grad0.")]
    model.update(tree_unflatten(params))
    mx.eval(model.parameters())
    return TrainResult(
        model,
        meta["losses"],
        [tuple(v) for v in meta["val_losses"]],  # type: ignore[misc]
        max(r["seconds"] for r in ranks),
        int(meta["tokens"]),
        ranks,
        {k[len("grad0.") :]: np.array(v) for k, v in arrays.items() if k.startswith("grad0.")},
    )


# --------------------------------------------------------------------------- prediction


def predict(
    model: Forecaster,
    series: SeriesArrays,
    window_ids: np.ndarray,
    config: ForecasterConfig,
    *,
    batch_size: int = 16,
    tiled_above: int = 2048,
) -> np.ndarray:
    """[W, horizon] predicted target z-scores, in one process (dense attention, or the tiled
    ring with P = 1 above `tiled_above` tokens, which never holds an N x N score matrix)."""
    one = config.model_copy(update={"world_size": 1})
    out = []
    for start in range(0, window_ids.shape[0], batch_size):
        batch = make_batch(series, window_ids[start : start + batch_size], one)
        attend = (
            tiled_attend(batch.positions, batch.segments)
            if one.n_tokens > tiled_above
            else dense_attend(batch.positions, batch.segments)
        )
        pred = model(mx.array(batch.x), attend)
        mx.eval(pred)
        out.append(np.array(pred)[:, -config.horizon :])
    if not out:
        return np.zeros((0, config.horizon), dtype=np.float32)
    return np.concatenate(out)


def _stat(metadata: Mapping[str, Any], feature: str) -> dict[str, tuple[float, float]]:
    rows = metadata["normalization"]["stats"]
    return {r["region"]: (r["mean"], r["std"]) for r in rows if r["feature"] == feature}


def mape(actual: np.ndarray, forecast: np.ndarray) -> float | None:
    """Mean absolute percentage error in %, over the given hours (None when there are none)."""
    if actual.size == 0:
        return None
    return float(100.0 * np.mean(np.abs(forecast - actual) / np.abs(actual)))


EVAL_SCHEMA = {
    "region": pl.String,
    "n_windows": pl.Int32,
    "n_hours": pl.Int32,
    "mape_model": pl.Float64,
    "mape_day_ahead_forecast": pl.Float64,
    "mape_seasonal_naive": pl.Float64,
}


def forecasts(
    model: Forecaster, series: SeriesArrays, config: ForecasterConfig, split: str = "test"
) -> pl.DataFrame:
    """Per window and horizon hour of `split`: actual, model, day-ahead and seasonal naive, MW.

    `scored` marks the hours every metric uses: the target observed and, for each baseline the
    region has on any test hour, that baseline present (the BA's forecast valid; the hour a week
    before loaded and not padding). A region without a baseline gets no MAPE for it (null).
    """
    ids = series.windows(split)
    meta = series.metadata
    regions = meta["regions"]
    target_stats = _stat(meta, meta["feature_columns"]["raw_target"])
    names = meta["feature_columns"]["source_names"]
    known = [names[c] for c in meta["feature_columns"]["known"]]
    df_col = known.index(FORECAST_FEATURE) if FORECAST_FEATURE in known else None
    df_stats = _stat(meta, FORECAST_FEATURE) if df_col is not None else {}
    z = predict(model, series, ids, config)
    h = config.horizon
    region = series.window_region[ids][:, None]
    t = series.window_origin[ids][:, None] + np.arange(h)[None, :]
    mean = np.array([target_stats[regions[r]][0] for r in series.window_region[ids]])[:, None]
    std = np.array([target_stats[regions[r]][1] for r in series.window_region[ids]])[:, None]
    actual = series.target_raw[region, t].astype(np.float64)
    observed = series.loss_weight[region, t] > 0
    lag = t - SEASONAL_LAG_HOURS
    lag_ok = lag >= 0
    lag_c = np.clip(lag, 0, None)
    naive = series.target_raw[region, lag_c].astype(np.float64)
    naive_ok = lag_ok & ~series.is_pad[region, lag_c]
    if df_col is not None:
        dm = np.array([df_stats[regions[r]][0] for r in series.window_region[ids]])[:, None]
        ds = np.array([df_stats[regions[r]][1] for r in series.window_region[ids]])[:, None]
        day_ahead = series.known[region, t, df_col].astype(np.float64) * ds + dm
        day_ahead_ok = series.valid_known[region, t, df_col]
    else:
        day_ahead = np.full(actual.shape, np.nan)
        day_ahead_ok = np.zeros(actual.shape, dtype=bool)
    window_region = series.window_region[ids]

    def per_region(ok: np.ndarray) -> np.ndarray:
        """Whether a region has the forecast on any of its test hours."""
        return np.array([bool(ok[window_region == r].any()) for r in range(len(regions))])

    has_df, has_naive = per_region(day_ahead_ok), per_region(naive_ok)
    scored = (
        observed
        & (naive_ok | ~has_naive[region])
        & (day_ahead_ok | ~has_df[region])
        & (actual != 0)
    )
    w = ids.shape[0]
    return pl.DataFrame(
        {
            "region": np.repeat(np.array(regions, dtype=object)[series.window_region[ids]], h),
            "window_id": np.repeat(ids, h).astype(np.int64),
            "t": t.ravel().astype(np.int64) + int(meta.get("first_t", 0)),
            "hour_ahead": np.tile(np.arange(h), w).astype(np.int32),
            "actual_mw": actual.ravel(),
            "model_mw": (z.astype(np.float64) * std + mean).ravel(),
            "day_ahead_forecast_mw": np.where(day_ahead_ok, day_ahead, np.nan).ravel(),
            "seasonal_naive_mw": np.where(naive_ok, naive, np.nan).ravel(),
            "scored": scored.ravel(),
            "has_day_ahead_forecast": has_df[region].repeat(h, axis=1).ravel(),
            "has_seasonal_naive": has_naive[region].repeat(h, axis=1).ravel(),
        }
    )


def score(rows: pl.DataFrame, regions: Sequence[str]) -> pl.DataFrame:
    """Per region: windows, scored hours and MAPE (%) of the three forecasts (`EVAL_SCHEMA`)."""
    out = []
    for region in regions:
        mine = rows.filter(pl.col("region") == region)
        used = mine.filter(pl.col("scored"))
        actual = used["actual_mw"].to_numpy()
        has_df = bool(mine["has_day_ahead_forecast"].any()) if mine.height else False
        has_naive = bool(mine["has_seasonal_naive"].any()) if mine.height else False
        out.append(
            {
                "region": region,
                "n_windows": mine["window_id"].n_unique(),
                "n_hours": used.height,
                "mape_model": mape(actual, used["model_mw"].to_numpy()),
                "mape_day_ahead_forecast": (
                    mape(actual, used["day_ahead_forecast_mw"].to_numpy()) if has_df else None
                ),
                "mape_seasonal_naive": (
                    mape(actual, used["seasonal_naive_mw"].to_numpy()) if has_naive else None
                ),
            }
        )
    return pl.DataFrame(out, schema=EVAL_SCHEMA)


def evaluate(
    model: Forecaster, series: SeriesArrays, config: ForecasterConfig, split: str = "test"
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(per-region MAPE table, per-hour forecasts) of `split`."""
    rows = forecasts(model, series, config, split)
    return score(rows, series.metadata["regions"]), rows


# --------------------------------------------------------------------------- weights


WEIGHTS_SCHEMA = {"name": pl.String, "shape": pl.String, "dtype": pl.String, "values": pl.Binary}


def weights_table(model: Forecaster) -> pl.DataFrame:
    """Every parameter as a row: dotted name, JSON shape, dtype, little-endian bytes."""
    rows = []
    for name, value in tree_flatten(model.parameters()):
        arr = np.ascontiguousarray(np.array(value, dtype=np.float32)).astype("<f4")
        rows.append(
            {
                "name": name,
                "shape": json.dumps(list(arr.shape)),
                "dtype": "float32",
                "values": arr.tobytes(),
            }
        )
    return pl.DataFrame(rows, schema=WEIGHTS_SCHEMA)


def named_arrays(table: pl.DataFrame) -> dict[str, np.ndarray]:
    """Inverse of `weights_table`: name -> float32 array."""
    out = {}
    for row in table.iter_rows(named=True):
        if row["dtype"] != "float32":
            raise ValueError(f"parameter {row['name']} has dtype {row['dtype']}, expected float32")
        shape = tuple(json.loads(row["shape"]))
        out[row["name"]] = np.frombuffer(row["values"], dtype="<f4").reshape(shape).copy()
    return out


def model_from_arrays(arrays: Mapping[str, Any], n_in: int, config: ForecasterConfig):
    """A model with these parameters (refuses missing or extra names and wrong shapes)."""
    model = build_model(n_in, config)
    expected = dict(tree_flatten(model.parameters()))
    if set(expected) != set(arrays):
        raise ValueError(
            f"stored parameters {sorted(set(arrays) ^ set(expected))} do not match the model "
            "built from the stored config"
        )
    for name, value in arrays.items():
        if tuple(value.shape) != tuple(expected[name].shape):
            raise ValueError(
                f"parameter {name} has shape {value.shape}, model {expected[name].shape}"
            )
    model.update(tree_unflatten([(k, mx.array(np.asarray(v))) for k, v in arrays.items()]))
    mx.eval(model.parameters())
    return model


def model_from_table(
    table: pl.DataFrame, metadata: Mapping[str, Any]
) -> tuple[Forecaster, ForecasterConfig]:
    """The model stored by `ml/forecaster` (its weights table and footer metadata)."""
    config = ForecasterConfig(**metadata["config"])
    return model_from_arrays(named_arrays(table), int(metadata["n_inputs"]), config), config


def export_weights_safetensors(
    path: str | Path, table: pl.DataFrame, metadata: Mapping[str, Any]
) -> None:
    """The stored weights as a safetensors file with the same metadata (for MLX tools)."""
    from energy_assets.ml.loader import export_safetensors

    export_safetensors(path, {k: mx.array(v) for k, v in named_arrays(table).items()}, metadata)


def data_version(
    footers: Sequence[Mapping[str, Any]], day_keys: Sequence[str], statistics_fingerprint: str
) -> str:
    """sha256 over the input days' keys, the content hashes the IO manager stored for them and
    the fingerprint of the statistics (and dataset settings) they were normalised with."""
    digest = hashlib.sha256(f"statistics:{statistics_fingerprint}".encode())
    for day, footer in zip(day_keys, footers, strict=True):
        value = footer.get("energy_assets.content_hash") or footer.get(
            b"energy_assets.content_hash"
        )
        digest.update(f"{day}:{value}".encode() if not isinstance(value, bytes) else value)
    return digest.hexdigest()


def training_curve(result: TrainResult) -> dict[str, Any]:
    """The curves for the footer and the plot."""
    return {
        "train_loss": [round(v, 6) for v in result.losses],
        "val_loss": [[s, round(v, 6)] for s, v in result.val_losses],
    }


def evaluation_days(
    test_start_utc: str,
    test_end_utc: str | None,
    context_hours: int,
    stored: Callable[[str], bool],
    stored_days: Sequence[str] = (),
) -> tuple[list[str], int]:
    """The days `ml/forecast_eval` scores, preceded by the stored context days it reads.

    The test period runs from the day of `test_start_utc` to `test_end_utc` (exclusive; a
    partial last day counts); an open period (None) ends with the last of `stored_days` on or
    after its start. Context: the stored days just before the period, contiguous (the first
    gap ends them), at most max(context_hours, one week for the seasonal-naive forecast) back.
    Returns (context days + test days as ISO dates, number of context days).
    """
    from datetime import UTC, date, datetime, timedelta

    def utc_day(text: str) -> date:
        return datetime.fromisoformat(text).astimezone(UTC).date()

    first = utc_day(test_start_utc)
    if test_end_utc is not None:
        end = datetime.fromisoformat(test_end_utc).astimezone(UTC)
        last = end.date() + (
            timedelta(days=1) if end.time() != datetime.min.time() else timedelta()
        )
    else:
        later = sorted(d for d in stored_days if d >= first.isoformat() and stored(d))
        if not later:
            raise FileNotFoundError(
                f"no features/hourly day stored from {first}: materialize it first"
            )
        last = date.fromisoformat(later[-1]) + timedelta(days=1)
    back = math.ceil(max(context_hours, SEASONAL_LAG_HOURS) / 24)
    context: list[str] = []
    for i in range(1, back + 1):
        day = (first - timedelta(days=i)).isoformat()
        if not stored(day):
            break
        context.insert(0, day)
    period = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days)]
    return context + period, len(context)
